//! The record told as stories: what goes in comes back out, rounds can be
//! revisited after later ones changed things, files that are not a record
//! are refused without being touched, snapshots are imported once, history
//! is compacted without losing current values, and a small round writes
//! little. Helpers build keys, cells and whole rounds in one line each.

use std::fs;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use super::SqliteRecord as Record;
use super::*;
use crate::model::{CellState, Counts, Flags, Ohlcv, Outcome, RoundSummary, TaskKey};
use crate::snapshot::Snapshot;
use crate::store::{Cell, Note, Observation, Stamp, Store};

fn key(exchange: &str, symbol: &str, day: u32) -> TaskKey {
    TaskKey {
        exchange: Exchange::new(exchange).unwrap(),
        symbol: Symbol::new(symbol).unwrap(),
        day: NaiveDate::from_ymd_opt(2020, 3, day).unwrap(),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn price(close: f64) -> Ohlcv {
    Ohlcv::new(close, close + 1.0, close / 2.0, close, 10.0).unwrap()
}

/// A final price of `close`, recorded in `round` from source `a`.
/// Every cell of `exchanges` × `symbols` × `days` days from 2020-01-01,
/// each `cell(exchange, symbol, day)` by index.
fn grid(
    exchanges: usize,
    symbols: usize,
    days: usize,
    cell: impl Fn(usize, usize, usize) -> Cell,
) -> Vec<(TaskKey, Cell)> {
    let first = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let mut all = Vec::with_capacity(exchanges * symbols * days);
    for e in 0..exchanges {
        for s in 0..symbols {
            for (d, day) in first.iter_days().take(days).enumerate() {
                let key = TaskKey {
                    exchange: Exchange::new(&format!("ex-{e:04}")).unwrap(),
                    symbol: Symbol::new(&format!("sym-{s:03}")).unwrap(),
                    day,
                };
                all.push((key, cell(e, s, d)));
            }
        }
    }
    all
}

fn final_price(close: f64, round: u64) -> Cell {
    Cell {
        state: CellState::Final,
        price: Some(price(close)),
        flags: Flags::NONE,
        fetched_at: Some(at("2020-03-20T10:00:00Z")),
        round,
        source: Some(Arc::from("http://a/")),
        note: None,
    }
}

fn new_record() -> (tempfile::TempDir, PathBuf, Record) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("record.sqlite");
    let record = Record::open(&path).unwrap();
    (dir, path, record)
}

fn summary(round: u64, cells: usize, aborted: bool) -> RoundSummary {
    RoundSummary {
        round,
        config_version: 0,
        aborted,
        counts: Counts {
            tasks: cells as u64,
            finals: cells as u64,
            ..Counts::default()
        },
        elapsed: Duration::from_secs(60),
    }
}

/// Runs a whole round that changed `cells`, finished at `finished`.
fn run_round(r: &mut Record, round: u64, finished: &str, cells: &[(TaskKey, Cell)]) {
    let finished = at(finished);
    r.begin_round(round, finished - chrono::Duration::minutes(1), 0)
        .unwrap();
    r.write(round, cells).unwrap();
    r.finish_round(&summary(round, cells.len(), false), finished)
        .unwrap();
}

fn cells_of(s: &Store) -> Vec<(TaskKey, Cell)> {
    s.iter()
        .map(|(e, sym, day, c)| {
            (
                TaskKey {
                    exchange: e.clone(),
                    symbol: sym.clone(),
                    day,
                },
                c,
            )
        })
        .collect()
}

fn on_disk(path: &Path) -> u64 {
    let size = |p: PathBuf| fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path.to_owned()) + size(PathBuf::from(wal))
}

#[test]
fn every_state_flag_note_and_source_survives_write_and_load() {
    let (_dir, path, mut r) = new_record();
    let mut cells = vec![
        (key("kraken", "btc", 1), final_price(5.25, 1)),
        (
            key("kraken", "eth", 1),
            Cell {
                state: CellState::NoPrice,
                price: None,
                fetched_at: Some(at("2020-03-20T10:00:01.250Z")),
                ..final_price(0.0, 1)
            },
        ),
        (
            key("kraken", "ltc", 2),
            Cell {
                state: CellState::Provisional,
                flags: Flags::OHLC_ORDER | Flags::ZERO,
                note: Some(Note {
                    reason: "the source answered \"none\" for a day it had a price for".into(),
                    attempts: 1,
                }),
                ..final_price(0.0, 1)
            },
        ),
        (
            key("bitstamp", "btc", 3),
            Cell {
                state: CellState::Failed,
                price: None,
                fetched_at: None,
                source: None,
                note: Some(Note {
                    reason: "server error (503)".into(),
                    attempts: 3,
                }),
                ..final_price(0.0, 1)
            },
        ),
        (
            key("bitstamp", "eth", 4),
            Cell {
                state: CellState::Rejected,
                flags: Flags::ZERO,
                source: Some(Arc::from("http://b/")),
                note: Some(Note {
                    reason: "open outside low..=high".into(),
                    attempts: 1,
                }),
                ..final_price(0.1 + 0.2, 1)
            },
        ),
        (
            key("bitstamp", "ltc", 4),
            Cell {
                state: CellState::Rejected,
                price: None,
                note: Some(Note {
                    reason: "no price at all".into(),
                    attempts: 1,
                }),
                ..final_price(0.0, 1)
            },
        ),
    ];
    run_round(&mut r, 1, "2020-03-20T10:01:00Z", &cells);
    drop(r);

    let r = Record::open(&path).unwrap();
    cells.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        r.cells_at(1, &[], &[], None, None).unwrap(),
        cells,
        "history at the round gives back exactly what was written"
    );
    let (store, last) = r.load().unwrap();
    assert_eq!(last, 1);
    // The store keeps fetch times to the second.
    let eth = &mut cells[4].1;
    assert_eq!(eth.state, CellState::NoPrice);
    eth.fetched_at = Some(at("2020-03-20T10:00:01Z"));
    assert_eq!(cells_of(&store), cells, "and so does load, as a store");

    let reader = Record::open_read_only(&path).unwrap();
    assert_eq!(cells_of(&reader.load().unwrap().0), cells);
}

/// The record's one writer reads its cells on two threads, each over
/// half of the symbols, a day at a time: over days with gaps between
/// them, series that start late and end early, a source per market and
/// notes, it gives the store that one thread gives, and that `put` gives
/// cell by cell; the first and last days are found by two seeks, not a
/// scan.
#[test]
fn a_load_on_two_threads_gives_what_one_thread_and_the_cells_give() {
    let (_dir, path, mut r) = new_record();
    let cells: Vec<(TaskKey, Cell)> = grid(3, 7, 40, |e, s, d| {
        let mut cell = final_price((e * 1000 + s * 50 + d) as f64 + 0.5, 1);
        cell.source = Some(Arc::from(format!("http://x/{e}/{s}").as_str()));
        if d % 9 == 4 {
            cell.state = CellState::Failed;
            cell.price = None;
            cell.note = Some(Note {
                reason: format!("server error (5{d:02})"),
                attempts: 2,
            });
        }
        cell
    })
    .into_iter()
    // Days 10..20 held by no series, symbol 5 from day 25 on, symbol 6
    // until day 30.
    .filter(|(k, _)| {
        let d = (k.day - NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()).num_days();
        let s = k.symbol.as_str();
        let gap = (10..20).contains(&d);
        let late = s == "sym-005" && d < 25;
        let early = s == "sym-006" && d > 30;
        !(gap || late || early)
    })
    .collect();
    run_round(&mut r, 1, "2020-03-20T10:01:00Z", &cells);
    drop(r);

    let r = Record::open(&path).unwrap();
    let (first, last): (i64, i64) = r
        .conn
        .query_row("SELECT min(day), max(day) FROM cells", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    let split = load::split_symbols(&r.conn, &path, first, last).unwrap();
    assert!(
        split.is_some(),
        "the symbols are cut in two, so both threads read"
    );
    let plan: Vec<String> = r
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", load::FIRST_AND_LAST_DAY))
        .unwrap()
        .query_map([], |row| row.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        plan.iter().all(|step| !step.starts_with("SCAN cells")),
        "the first and last day by seeks: {plan:?}"
    );
    let (two, last_round) = r.load().unwrap();
    assert_eq!(last_round, 1);
    let one = Record::open_read_only(&path).unwrap().load().unwrap().0;
    let mut by_put = Store::new();
    for (k, c) in &cells {
        by_put.put(k, c);
    }
    assert_eq!(two.len(), cells.len());
    assert_eq!(cells_of(&two), cells_of(&one));
    assert_eq!(cells_of(&two), cells_of(&by_put));
    assert_eq!(two.counts_by_state(), by_put.counts_by_state());
    assert_eq!(two.price_count(), by_put.price_count());
}

#[test]
fn a_loaded_store_takes_newer_results_by_the_usual_rules() {
    let (_dir, _path, mut r) = new_record();
    let k = key("kraken", "btc", 1);
    run_round(
        &mut r,
        3,
        "2020-03-20T10:01:00Z",
        &[(k.clone(), final_price(1.0, 3))],
    );
    let (mut store, last) = r.load().unwrap();
    let next = Observation {
        outcome: Outcome::price(price(2.0)),
        is_final: true,
        asked_at: at("2020-03-21T10:00:00Z"),
        source: Arc::from("http://a/"),
        stamp: Stamp {
            round: last + 1,
            dispatch: 1,
        },
    };
    store.apply(&k, &next);
    let cell = store.get(&k.exchange, &k.symbol, k.day).unwrap();
    assert_eq!((cell.price.map(|p| p.close), cell.round), (Some(2.0), 4));
    assert!(store.is_settled(&k, "http://a/"));
}

#[test]
fn store_at_a_round_answers_with_that_rounds_values_after_later_rounds_changed_them() {
    let (_dir, _path, mut r) = new_record();
    let btc = key("kraken", "btc", 1);
    let eth = key("kraken", "eth", 1);
    let ltc = key("bitstamp", "ltc", 2);
    run_round(
        &mut r,
        1,
        "2020-03-20T10:00:00Z",
        &[
            (btc.clone(), final_price(1.0, 1)),
            (eth.clone(), final_price(10.0, 1)),
        ],
    );
    run_round(
        &mut r,
        2,
        "2020-03-21T10:00:00Z",
        &[(btc.clone(), final_price(2.0, 2))],
    );
    run_round(
        &mut r,
        3,
        "2020-03-22T10:00:00Z",
        &[
            (btc.clone(), final_price(3.0, 3)),
            (ltc.clone(), final_price(30.0, 3)),
        ],
    );

    let close = |s: &Store, k: &TaskKey| {
        s.get(&k.exchange, &k.symbol, k.day)
            .and_then(|c| c.price)
            .map(|p| p.close)
    };
    let one = r.store_at(1).unwrap();
    assert_eq!(
        (close(&one, &btc), close(&one, &eth), close(&one, &ltc)),
        (Some(1.0), Some(10.0), None)
    );
    let two = r.store_at(2).unwrap();
    assert_eq!(
        (close(&two, &btc), close(&two, &eth), close(&two, &ltc)),
        (Some(2.0), Some(10.0), None)
    );
    let three = r.store_at(3).unwrap();
    assert_eq!(
        cells_of(&three),
        cells_of(&r.load().unwrap().0),
        "the last round is the current values"
    );

    assert_eq!(r.round_at(at("2020-03-21T12:00:00Z")).unwrap(), Some(2));
    assert_eq!(
        r.round_at(at("2020-03-21T10:00:00Z")).unwrap(),
        Some(2),
        "at the very moment it finished"
    );
    assert_eq!(r.round_at(at("2020-03-19T00:00:00Z")).unwrap(), None);

    let err = r.store_at(9).unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::NoSuchRound {
                round: 9,
                newest: Some(3),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("record.sqlite") && err.to_string().contains("round 9"),
        "{err}"
    );
}

#[test]
fn one_symbol_day_across_exchanges_is_read_through_its_index() {
    let (_dir, _path, mut r) = new_record();
    let mut cells = Vec::new();
    for e in ["a", "b", "c"] {
        for s in ["btc", "eth"] {
            for day in 1..=3 {
                cells.push((key(e, s, day), final_price(f64::from(day), 1)));
            }
        }
    }
    run_round(&mut r, 1, "2020-03-20T10:00:00Z", &cells);
    run_round(
        &mut r,
        2,
        "2020-03-21T10:00:00Z",
        &[(key("b", "eth", 2), final_price(99.0, 2))],
    );

    let eth = Symbol::new("eth").unwrap();
    let day = NaiveDate::from_ymd_opt(2020, 3, 2);
    let at1 = r
        .cells_at(1, &[], std::slice::from_ref(&eth), day, day)
        .unwrap();
    let at2 = r
        .cells_at(2, &[], std::slice::from_ref(&eth), day, day)
        .unwrap();
    let closes = |v: &[(TaskKey, Cell)]| -> Vec<(String, f64)> {
        v.iter()
            .map(|(k, c)| (k.exchange.to_string(), c.price.map_or(0.0, |p| p.close)))
            .collect()
    };
    assert_eq!(
        closes(&at1),
        [("a".into(), 2.0), ("b".into(), 2.0), ("c".into(), 2.0)]
    );
    assert_eq!(
        closes(&at2),
        [("a".into(), 2.0), ("b".into(), 99.0), ("c".into(), 2.0)]
    );
    let only_b = r
        .cells_at(2, &[Exchange::new("b").unwrap()], &[], None, None)
        .unwrap();
    assert_eq!(only_b.len(), 6);

    // Both halves of a point-in-time read seek the symbol-day in their
    // primary key, in its order: no scan, no sort.
    let eth = r.interned().unwrap().symbol_id("eth").unwrap();
    let day = rows::day_number(NaiveDate::from_ymd_opt(2020, 3, 2).unwrap());
    for (table, order) in [("cells", ""), ("history", ", round")] {
        let plan: Vec<String> = r
            .conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT {} FROM {table} WHERE round <= 2 \
                 AND symbol IN ({eth}) AND day = {day} \
                 ORDER BY day, symbol, exchange{order}",
                rows::COLUMNS
            ))
            .unwrap()
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains(&format!("SEARCH {table} USING PRIMARY KEY"))),
            "{plan:?}"
        );
        assert!(
            !plan.iter().any(|p| p.contains("TEMP B-TREE")),
            "no sort: {plan:?}"
        );
    }

    // One symbol over a range of days seeks each day's symbol: the key is
    // day first, and a range read as one would read every symbol of it.
    let (from, to) = (
        NaiveDate::from_ymd_opt(2020, 3, 1),
        NaiveDate::from_ymd_opt(2020, 3, 31),
    );
    let mut params = Vec::new();
    let days = super::history::day_condition(from, to, true, &mut params);
    for (table, order) in [("cells", ""), ("history", ", round")] {
        let sql = format!(
            "SELECT {} FROM {table} WHERE round <= 2 AND symbol IN ({eth}){days} \
             ORDER BY day, symbol, exchange{order}",
            rows::COLUMNS
        );
        let plan: Vec<String> = r
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(&params), |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains(&format!(
                "SEARCH {table} USING PRIMARY KEY (day=? AND symbol=?"
            ))),
            "{plan:?}"
        );
    }
    // And it reads what a range read as one reads.
    let whole = r.cells_at(2, &[], &[], from, to).unwrap();
    let eth_name = Symbol::new("eth").unwrap();
    let sought = r
        .cells_at(2, &[], std::slice::from_ref(&eth_name), from, to)
        .unwrap();
    let expected: Vec<_> = whole
        .into_iter()
        .filter(|(k, _)| k.symbol == eth_name)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(sought, expected);
}

#[test]
fn rounds_are_listed_newest_first_with_how_they_ended() {
    let (_dir, path, mut r) = new_record();
    run_round(
        &mut r,
        1,
        "2020-03-20T10:00:00Z",
        &[(key("a", "btc", 1), final_price(1.0, 1))],
    );
    r.begin_round(2, at("2020-03-21T10:00:00Z"), 1).unwrap();
    r.finish_round(&summary(2, 0, true), at("2020-03-21T10:00:05Z"))
        .unwrap();
    // A process stopped during round 3; the next one begins round 4.
    r.begin_round(3, at("2020-03-22T10:00:00Z"), 1).unwrap();
    r.begin_round(4, at("2020-03-23T10:00:00Z"), 1).unwrap();

    let rounds = r.rounds().unwrap();
    let seen: Vec<_> = rounds.iter().map(|x| (x.round, x.status)).collect();
    assert_eq!(
        seen,
        [
            (4, RoundStatus::Running),
            (3, RoundStatus::Aborted),
            (2, RoundStatus::Aborted),
            (1, RoundStatus::Finished)
        ]
    );
    assert_eq!(rounds[3].counts.finals, 1);
    assert_eq!(rounds[3].finished, Some(at("2020-03-20T10:00:00Z")));
    let json = serde_json::to_value(&rounds[0]).unwrap();
    assert_eq!(json["status"], "running");

    let err = r.begin_round(2, Utc::now(), 1).unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::RoundOrder {
                round: 2,
                newest: 4,
                ..
            }
        ),
        "{err}"
    );
    let err = r.write(7, &[]).unwrap_err();
    assert!(
        matches!(err, RecordError::RoundNotBegun { round: 7, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn a_reader_sees_each_committed_round_while_the_daemon_writes() {
    let (_dir, path, mut r) = new_record();
    run_round(
        &mut r,
        1,
        "2020-03-20T10:00:00Z",
        &[(key("a", "btc", 1), final_price(1.0, 1))],
    );
    let reader = Record::open_read_only(&path).unwrap();
    assert_eq!(reader.rounds().unwrap().len(), 1);
    run_round(
        &mut r,
        2,
        "2020-03-21T10:00:00Z",
        &[(key("a", "btc", 1), final_price(2.0, 2))],
    );
    let (store, last) = reader.load().unwrap();
    assert_eq!(last, 2);
    assert_eq!(cells_of(&store)[0].1.price.map(|p| p.close), Some(2.0));
    let err = reader.conn.execute("DELETE FROM cells", []).unwrap_err();
    assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::ReadOnly));
}

#[test]
fn a_record_of_a_newer_schema_is_refused_and_left_as_it_was() {
    let (_dir, path, mut r) = new_record();
    run_round(
        &mut r,
        1,
        "2020-03-20T10:00:00Z",
        &[(key("a", "btc", 1), final_price(1.0, 1))],
    );
    r.conn
        .execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    r.checkpoint().unwrap();
    drop(r);
    let before = fs::read(&path).unwrap();

    for err in [
        Record::open(&path).unwrap_err(),
        Record::open_read_only(&path).unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                RecordError::NewerFormat {
                    found: 99,
                    supported: SCHEMA_VERSION,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("record.sqlite") && text.contains("newer pricegrid"),
            "{text}"
        );
    }
    assert_eq!(fs::read(&path).unwrap(), before, "the file is untouched");
    let raw = Connection::open(&path).unwrap();
    let cells: i64 = raw
        .query_row("SELECT COUNT(*) FROM cells", [], |row| row.get(0))
        .unwrap();
    assert_eq!(cells, 1, "nothing was deleted");
}

#[test]
fn files_that_are_not_a_record_are_refused_with_a_reason_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |name: &str, contents: Option<&[u8]>, why: &str| {
        let path = dir.path().join(name);
        if let Some(bytes) = contents {
            fs::write(&path, bytes).unwrap();
        }
        for err in [
            Record::open(&path).unwrap_err(),
            Record::open_read_only(&path).unwrap_err(),
        ] {
            let text = err.to_string();
            assert!(
                matches!(err, RecordError::NotARecord { .. }),
                "{name}: {text}"
            );
            assert!(text.contains(name) && text.contains(why), "{name}: {text}");
            assert!(text.contains("nothing was changed"), "{text}");
            // Only keys that exist: `record.*` is no section of the config.
            assert!(!text.contains("record."), "{text}");
        }
        if let Some(bytes) = contents {
            assert_eq!(fs::read(&path).unwrap(), bytes, "{name} is left as it was");
        }
    };
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    refused("garbage.bin", Some(&garbage), "not an SQLite database");
    refused(
        "snapshot.json",
        Some(br#"{"format": 2, "prices": {}}"#),
        "`pricegrid query --snapshot FILE`",
    );
    refused("cut.sqlite", Some(b"SQLite for"), "too short");
    let mut damaged = SQLITE_HEADER.to_vec();
    damaged.extend(std::iter::repeat_n(0xA5u8, 600));
    refused("damaged.sqlite", Some(&damaged), "damaged");
    fs::create_dir(dir.path().join("a-directory")).unwrap();
    refused("a-directory", None, "directory");

    let other = dir.path().join("other.sqlite");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let before = fs::read(&other).unwrap();
    refused(
        "other.sqlite",
        None,
        "without pricegrid's meta table (its tables: t)",
    );
    assert_eq!(fs::read(&other).unwrap(), before);
}

#[cfg(unix)]
#[test]
fn an_unreadable_record_is_an_error_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, r) = new_record();
    drop(r);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(&path).is_ok() {
        // Running as root: permissions do not stop us; the directory and
        // truncated-header cases above cover the error path.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        return;
    }
    let err = Record::open(&path).unwrap_err();
    assert!(matches!(err, RecordError::Open { .. }), "{err}");
    assert!(
        err.to_string().contains("record.sqlite") && err.to_string().contains("permission"),
        "{err}"
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn an_empty_file_becomes_a_record_and_a_missing_one_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.sqlite");
    fs::write(&empty, b"").unwrap();
    let r = Record::open(&empty).unwrap();
    assert_eq!(r.load().unwrap().1, 0);
    let err = Record::open_read_only(&dir.path().join("nowhere.sqlite")).unwrap_err();
    assert!(
        matches!(err, RecordError::Open { .. }) && err.to_string().contains("nowhere.sqlite"),
        "{err}"
    );
    assert!(
        !dir.path().join("nowhere.sqlite").exists(),
        "a reader creates nothing"
    );
    let deep = dir.path().join("a").join("b").join("r.sqlite");
    Record::open(&deep).unwrap();
    assert!(deep.exists());
}

#[test]
fn a_damaged_row_is_an_error_naming_the_table_and_the_cell() {
    let (_dir, _path, mut r) = new_record();
    run_round(
        &mut r,
        1,
        "2020-03-20T10:00:00Z",
        &[(key("a", "btc", 1), final_price(1.0, 1))],
    );
    r.conn.execute("UPDATE cells SET state = 99", []).unwrap();
    let err = r.load().unwrap_err();
    assert!(matches!(err, RecordError::Corrupt { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("table cells, a/btc/2020-03-01") && text.contains("unknown state 99"),
        "{text}"
    );
    r.conn
        .execute("UPDATE cells SET state = 0, open = NULL", [])
        .unwrap();
    let err = r.store_at(1).unwrap_err();
    assert!(err.to_string().contains("a price needs all of"), "{err}");
}

/// A version-1 snapshot of round 4 and a version-2 snapshot of round 6.
fn snapshot_dir() -> (tempfile::TempDir, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let v1 = br#"{"format": 1, "created": "2020-03-14T12:00:00Z", "config_version": 0, "round": 4,
        "counts": {"tasks": 3, "prices": 1, "missing": 1, "failed": 1},
        "prices": {"kraken": {"2020-03-13": {"btc": {"open": 1, "high": 2, "low": 1, "close": 2, "volume": 5}, "eth": null}}},
        "failed": [{"exchange": "kraken", "symbol": "ltc", "day": "2020-03-13", "reason": "timed out", "attempts": 3}]}"#;
    fs::write(dir.path().join("2020-03-14T12-00-00Z.json"), v1).unwrap();
    fs::write(
        dir.path().join("2020-03-15T00-00-00Z.json"),
        b"{\"format\": 2, \"crea",
    )
    .unwrap();

    let mut prices = Snapshot::load(&dir.path().join("2020-03-14T12-00-00Z.json"))
        .unwrap()
        .prices;
    let day13 = NaiveDate::from_ymd_opt(2020, 3, 13).unwrap();
    let k = |s: &str| TaskKey {
        exchange: Exchange::new("kraken").unwrap(),
        symbol: Symbol::new(s).unwrap(),
        day: day13,
    };
    let obs = |outcome, dispatch| Observation {
        outcome,
        is_final: true,
        asked_at: at("2020-03-16T03:00:00Z"),
        source: Arc::from("http://s/"),
        stamp: Stamp { round: 6, dispatch },
    };
    prices.apply(&k("ltc"), &obs(Outcome::price(price(50.0)), 1));
    prices.apply(&k("xrp"), &obs(Outcome::NoPrice, 2));
    let counts = Counts {
        tasks: 2,
        finals: 1,
        none: 1,
        ..Counts::default()
    };
    let mut v2 = Snapshot::new(3, 6, counts, prices);
    v2.created = at("2020-03-16T12:00:00Z");
    v2.write_atomic(&dir.path().join("2020-03-16T12-00-00Z.json"))
        .unwrap();
    (dir, v2)
}

#[test]
fn a_snapshot_directory_with_a_version_1_and_a_version_2_snapshot_is_imported_once() {
    let (snapshots, v2) = snapshot_dir();
    let names_before: Vec<_> = crate::snapshot::list(snapshots.path()).unwrap();
    let (_dir, path, mut r) = new_record();

    let imported = r
        .import_snapshots(snapshots.path())
        .unwrap()
        .expect("imported");
    let rounds: Vec<u64> = imported.snapshots.iter().map(|(_, n)| *n).collect();
    assert_eq!(rounds, [4, 6]);
    assert_eq!(imported.skipped.len(), 1, "the cut-off file is skipped");
    assert!(imported.skipped[0]
        .to_string()
        .contains("2020-03-15T00-00-00Z.json"));
    assert_eq!(imported.cells, 4);
    assert_eq!(
        imported.history_rows,
        3 + 2,
        "round 6 adds only what changed"
    );

    let (store, last) = r.load().unwrap();
    assert_eq!(last, 6);
    assert_eq!(
        cells_of(&store),
        cells_of(&v2.prices),
        "the newest snapshot is the current values"
    );

    let four = r.store_at(4).unwrap();
    let ltc = four
        .get(
            &Exchange::new("kraken").unwrap(),
            &Symbol::new("ltc").unwrap(),
            NaiveDate::from_ymd_opt(2020, 3, 13).unwrap(),
        )
        .unwrap();
    assert_eq!(
        (ltc.state, ltc.note.map(|n| n.reason)),
        (CellState::Failed, Some("timed out".into()))
    );
    assert_eq!(four.len(), 3);
    assert_eq!(r.store_at(6).unwrap().len(), 4);

    let listed = r.rounds().unwrap();
    assert_eq!(
        (listed[0].round, listed[0].config_version, listed[0].counts),
        (6, 3, v2.counts)
    );
    assert_eq!(listed[1].status, RoundStatus::Finished);
    assert_eq!(r.round_at(at("2020-03-15T00:00:00Z")).unwrap(), Some(4));
    assert_eq!(
        r.imported_from().unwrap().as_deref(),
        Some(snapshots.path())
    );

    assert!(
        r.import_snapshots(snapshots.path()).unwrap().is_none(),
        "only once"
    );
    drop(r);
    let mut again = Record::open(&path).unwrap();
    assert!(
        again.import_snapshots(snapshots.path()).unwrap().is_none(),
        "only once, across restarts"
    );
    assert_eq!(
        crate::snapshot::list(snapshots.path()).unwrap(),
        names_before,
        "the files stay"
    );
}

#[test]
fn a_snapshot_directory_where_nothing_loads_is_an_error_not_a_fresh_start() {
    let snapshots = tempfile::tempdir().unwrap();
    fs::write(
        snapshots.path().join("2020-03-15T00-00-00Z.json"),
        b"{\"format\": 2",
    )
    .unwrap();
    let (_dir, _path, mut r) = new_record();
    let err = r.import_snapshots(snapshots.path()).unwrap_err();
    assert!(matches!(err, RecordError::Import { files: 1, .. }), "{err}");
    assert!(
        err.to_string().contains("2020-03-15T00-00-00Z.json"),
        "{err}"
    );
    assert!(r.is_empty().unwrap());

    let none = tempfile::tempdir().unwrap();
    assert!(r.import_snapshots(none.path()).unwrap().is_none());
    assert!(r
        .import_snapshots(&none.path().join("missing"))
        .unwrap()
        .is_none());
}

#[test]
fn an_import_into_a_record_in_use_does_nothing() {
    let (snapshots, _) = snapshot_dir();
    let (_dir, _path, mut r) = new_record();
    run_round(
        &mut r,
        1,
        "2020-03-20T10:00:00Z",
        &[(key("a", "btc", 1), final_price(1.0, 1))],
    );
    assert!(r.import_snapshots(snapshots.path()).unwrap().is_none());
    assert_eq!(r.load().unwrap().0.len(), 1);
}

#[test]
fn compaction_keeps_current_values_and_the_point_in_time_at_the_cutoff() {
    let (_dir, _path, mut r) = new_record();
    let busy = key("a", "btc", 1);
    let quiet = key("a", "eth", 1);
    run_round(
        &mut r,
        1,
        "2020-03-01T00:00:00Z",
        &[
            (busy.clone(), final_price(1.0, 1)),
            (quiet.clone(), final_price(10.0, 1)),
        ],
    );
    run_round(
        &mut r,
        2,
        "2020-03-02T00:00:00Z",
        &[(busy.clone(), final_price(2.0, 2))],
    );
    run_round(
        &mut r,
        3,
        "2020-03-03T00:00:00Z",
        &[(busy.clone(), final_price(3.0, 3))],
    );
    run_round(
        &mut r,
        4,
        "2020-03-04T00:00:00Z",
        &[(busy.clone(), final_price(4.0, 4))],
    );
    let current = cells_of(&r.load().unwrap().0);
    let at_two = cells_of(&r.store_at(2).unwrap());
    let at_three = cells_of(&r.store_at(3).unwrap());

    let now = at("2020-03-04T12:00:00Z");
    let compacted = r.compact(Duration::from_secs(48 * 3600), now).unwrap();
    assert_eq!(
        compacted,
        Compacted {
            cutoff_round: Some(2),
            history_rows: 1,
            rounds: 1
        },
        "busy@1 folds into busy@2; quiet@1 is the latest at the cutoff and stays"
    );
    assert_eq!(
        cells_of(&r.load().unwrap().0),
        current,
        "current values are untouched"
    );
    assert_eq!(
        cells_of(&r.store_at(2).unwrap()),
        at_two,
        "point in time at the cutoff"
    );
    assert_eq!(cells_of(&r.store_at(3).unwrap()), at_three);
    assert_eq!(r.retained_from().unwrap(), Some(2));
    let err = r.store_at(1).unwrap_err();
    assert!(
        matches!(
            err,
            RecordError::Compacted {
                round: 1,
                retained_from: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("round 2 or later"), "{err}");

    assert_eq!(
        r.compact(Duration::from_secs(48 * 3600), now)
            .unwrap()
            .history_rows,
        0,
        "again: nothing more"
    );
    assert_eq!(
        r.compact(Duration::from_secs(365 * 86400), now).unwrap(),
        Compacted::default(),
        "no round is a year old"
    );
    let later = r.compact(Duration::ZERO, now).unwrap();
    assert_eq!(later.cutoff_round, Some(4));
    assert_eq!(cells_of(&r.store_at(4).unwrap()), current);
    assert_eq!(cells_of(&r.load().unwrap().0), current);
}

#[test]
fn a_round_of_100_changes_to_a_100k_cell_record_writes_a_small_fraction_of_it() {
    let (_dir, path, mut r) = new_record();
    let all = grid(100, 10, 100, |_, _, d| final_price(1.0 + d as f64, 1));
    run_round(&mut r, 1, "2020-04-10T00:00:00Z", &all);
    r.checkpoint().unwrap();
    let size = on_disk(&path);

    let changed: Vec<(TaskKey, Cell)> = all
        .iter()
        .step_by(1000)
        .map(|(k, _)| (k.clone(), final_price(7.0, 2)))
        .collect();
    assert_eq!(changed.len(), 100);
    run_round(&mut r, 2, "2020-04-11T00:00:00Z", &changed);
    let with_wal = on_disk(&path);
    r.checkpoint().unwrap();
    let after = on_disk(&path);

    let written = with_wal - size;
    let grown = after.saturating_sub(size);
    assert!(
        written < size / 20 && grown < size / 20,
        "record {size} bytes; round of 100 changes wrote {written} bytes of WAL, grew the file by {grown}"
    );
    assert_eq!(r.store_at(1).unwrap().len(), 100_000);
}

#[test]
fn the_market_a_cell_was_asked_in_is_kept_with_its_source() {
    let (_dir, path, mut r) = new_record();
    let mut on_kraken = final_price(7.0, 1);
    on_kraken.source = Some(crate::model::Market::identity(
        "kraken:https://api.kraken.com/",
        "XBTUSD",
    ));
    let classic = final_price(8.0, 1);
    run_round(
        &mut r,
        1,
        "2020-03-20T10:01:00Z",
        &[
            (key("kraken", "btc", 1), on_kraken),
            (key("bitstamp", "btc", 1), classic),
        ],
    );
    drop(r);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let market = |exchange: &str| -> Option<String> {
        conn.query_row(
            "SELECT m.name FROM cells JOIN exchanges AS e ON e.id = cells.exchange \
             JOIN sources AS s ON s.id = cells.source \
             LEFT JOIN markets AS m ON m.id = s.market WHERE e.name = ?1",
            [exchange],
            |row| row.get(0),
        )
        .unwrap()
    };
    assert_eq!(market("kraken").as_deref(), Some("XBTUSD"));
    assert_eq!(market("bitstamp"), None, "the classic API has no market");
}

#[test]
fn a_refetch_with_the_same_answer_writes_no_history_row_and_a_change_does() {
    let (_dir, _path, mut r) = new_record();
    let k = key("kraken", "btc", 1);
    run_round(
        &mut r,
        1,
        "2020-03-20T10:00:00Z",
        &[(k.clone(), final_price(1.0, 1))],
    );
    let again = Cell {
        fetched_at: Some(at("2020-03-21T10:00:00Z")),
        source: Some(Arc::from("http://new/")),
        ..final_price(1.0, 2)
    };
    r.begin_round(2, at("2020-03-21T09:59:00Z"), 0).unwrap();
    let stats = r.write(2, &[(k.clone(), again.clone())]).unwrap();
    r.finish_round(&summary(2, 1, false), at("2020-03-21T10:00:00Z"))
        .unwrap();
    assert_eq!((stats.cells, stats.history), (1, 0), "the same answer");
    let rows = |r: &Record| -> i64 {
        r.conn
            .query_row("SELECT COUNT(*) FROM history", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(rows(&r), 0);
    let (store, _) = r.load().unwrap();
    assert_eq!(
        cells_of(&store),
        [(k.clone(), again.clone())],
        "the cell holds its latest fetch, source and round"
    );
    assert_eq!(
        cells_of(&r.store_at(2).unwrap()),
        [(k.clone(), again.clone())]
    );
    let one = r.store_at(1).unwrap();
    let one = cells_of(&one);
    assert_eq!(
        (one[0].1.price, one[0].1.round),
        (Some(price(1.0)), 1),
        "round 1 still answers, with the round that recorded the answer"
    );

    // Each truth the record keeps is a change: price, state, flags, reason.
    let changes = [
        final_price(2.0, 3),
        Cell {
            state: CellState::Provisional,
            ..final_price(2.0, 4)
        },
        Cell {
            state: CellState::Provisional,
            flags: Flags::ZERO,
            ..final_price(2.0, 5)
        },
        Cell {
            state: CellState::Provisional,
            flags: Flags::ZERO,
            note: Some(Note {
                reason: "the source answered \"none\" for a day it had a price for".into(),
                attempts: 1,
            }),
            ..final_price(2.0, 6)
        },
    ];
    for (i, cell) in changes.iter().enumerate() {
        let round = 3 + i as u64;
        r.begin_round(round, at("2020-03-22T09:59:00Z"), 0).unwrap();
        let stats = r.write(round, &[(k.clone(), cell.clone())]).unwrap();
        r.finish_round(&summary(round, 1, false), at("2020-03-22T10:00:00Z"))
            .unwrap();
        assert_eq!(stats.history, 1, "round {round}: {cell:?}");
    }
    assert_eq!(rows(&r), 4);
    for (round, close) in [(1, 1.0), (2, 1.0), (3, 2.0)] {
        let at_round = cells_of(&r.store_at(round).unwrap());
        assert_eq!(
            at_round[0].1.price.map(|p| p.close),
            Some(close),
            "round {round}"
        );
    }
    for (i, cell) in changes.iter().enumerate() {
        let at_round = cells_of(&r.store_at(3 + i as u64).unwrap());
        assert_eq!(at_round, [(k.clone(), cell.clone())], "round {}", 3 + i);
    }
}

#[test]
fn a_cell_with_its_first_history_row_takes_at_most_100_bytes_and_a_repeat_adds_nothing() {
    let (_dir, path, mut r) = new_record();
    let mut all = grid(10, 10, 500, |e, _, d| {
        let p = 1000.0 + d as f64 * 0.37 + e as f64 * 0.011;
        Cell {
            price: Some(Ohlcv::new(p, p * 1.02, p * 0.97, p * 1.003, 1234.567).unwrap()),
            ..final_price(0.0, 1)
        }
    });
    run_round(&mut r, 1, "2020-06-01T00:00:00Z", &all);
    r.checkpoint().unwrap();
    let size = on_disk(&path);
    let per_cell = size as f64 / all.len() as f64;
    assert!(per_cell <= 100.0, "{per_cell:.1} bytes a cell");

    for (_, cell) in &mut all {
        cell.source = Some(Arc::from("http://another-source/"));
        cell.fetched_at = Some(at("2020-06-02T00:00:00Z"));
        cell.round = 2;
    }
    run_round(&mut r, 2, "2020-06-02T00:00:00Z", &all);
    r.checkpoint().unwrap();
    let grown = on_disk(&path).saturating_sub(size);
    assert!(
        grown <= size / 50,
        "the same answers from another source grew a {size}-byte record by {grown} bytes"
    );
    assert_eq!(cells_of(&r.load().unwrap().0), all);
}

/// Writes `cell` as schema version 1 wrote a row of `cells` or `history`.
fn v1_row(conn: &Connection, table: &str, key: &TaskKey, cell: &Cell, round: u64) {
    let p = cell.price;
    conn.execute(
        &format!(
            "INSERT INTO {table} (exchange, symbol, day, state, flags, open, high, low, close, \
             volume, fetched_at, round, source, reason, attempts, market) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        ),
        rusqlite::params![
            key.exchange.as_str(),
            key.symbol.as_str(),
            key.day.format("%Y-%m-%d").to_string(),
            cell.state.as_str(),
            cell.flags.names().join(" "),
            p.map(|p| p.open),
            p.map(|p| p.high),
            p.map(|p| p.low),
            p.map(|p| p.close),
            p.map(|p| p.volume),
            cell.fetched_at
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            round as i64,
            cell.source.as_deref(),
            cell.note.as_ref().map(|n| n.reason.as_str()),
            cell.note.as_ref().map(|n| i64::from(n.attempts)),
            cell.source
                .as_deref()
                .and_then(crate::model::Market::of_source),
        ],
    )
    .unwrap();
}

#[test]
fn a_version_1_record_is_migrated_and_every_cell_history_row_and_round_reads_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("record.sqlite");
    let kraken = Some(crate::model::Market::identity(
        "kraken:https://api.kraken.com/",
        "XBTUSD",
    ));
    let btc = key("kraken", "btc", 1);
    let eth = key("kraken", "eth", 2);
    let ltc = key("bitstamp", "ltc", 3);
    let xrp = key("bitstamp", "xrp", 4);
    // Each key's history as version 1 kept it: every value written, the
    // current one included, some of them repeats.
    let history: Vec<(TaskKey, u64, Cell)> = vec![
        (
            btc.clone(),
            1,
            Cell {
                state: CellState::Provisional,
                ..final_price(1.0, 1)
            },
        ),
        (
            btc.clone(),
            2,
            Cell {
                state: CellState::Provisional,
                fetched_at: Some(at("2020-03-21T10:00:00.250Z")),
                ..final_price(1.0, 2)
            },
        ),
        (
            btc.clone(),
            3,
            Cell {
                source: kraken.clone(),
                ..final_price(1.5, 3)
            },
        ),
        (
            eth.clone(),
            1,
            Cell {
                state: CellState::Failed,
                price: None,
                fetched_at: None,
                source: None,
                note: Some(Note {
                    reason: "server error (503)".into(),
                    attempts: 3,
                }),
                ..final_price(0.0, 1)
            },
        ),
        (
            eth.clone(),
            2,
            Cell {
                state: CellState::NoPrice,
                price: None,
                ..final_price(0.0, 2)
            },
        ),
        (
            ltc.clone(),
            2,
            Cell {
                state: CellState::Rejected,
                flags: Flags::ZERO | Flags::OHLC_ORDER,
                note: Some(Note {
                    reason: "open outside low..=high".into(),
                    attempts: 1,
                }),
                ..final_price(0.1 + 0.2, 2)
            },
        ),
        (
            xrp.clone(),
            3,
            Cell {
                flags: Flags::DERIVED_1H | Flags::QUOTES,
                ..final_price(0.5, 3)
            },
        ),
    ];
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA page_size = 2048;").unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', '1'), \
             ('imported_from', '/var/lib/pricegrid/snapshots')",
            [],
        )
        .unwrap();
        for (k, round, cell) in &history {
            v1_row(&conn, "history", k, cell, *round);
        }
        for k in [&btc, &eth, &ltc, &xrp] {
            let (_, round, cell) = history.iter().rev().find(|(h, ..)| h == k).unwrap();
            v1_row(&conn, "cells", k, cell, *round);
        }
        for (round, started, finished, status) in [
            (
                1,
                "2020-03-20T09:59:00.000Z",
                Some("2020-03-20T10:00:00.000Z"),
                "finished",
            ),
            (
                2,
                "2020-03-21T09:59:00.000Z",
                Some("2020-03-21T10:00:00.125Z"),
                "aborted",
            ),
            (3, "2020-03-22T09:59:00.000Z", None, "running"),
        ] {
            conn.execute(
                "INSERT INTO rounds (round, started, finished, config_version, status, tasks, \
                 \"final\", provisional, \"none\", failed, rejected) \
                 VALUES (?1, ?2, ?3, 7, ?4, 10, 1, 2, 3, 1, 1)",
                rusqlite::params![round, started, finished, status],
            )
            .unwrap();
        }
    }

    let r = Record::open(&path).unwrap();
    let version: String = r.meta(schema::key::SCHEMA_VERSION).unwrap().unwrap();
    assert_eq!(version, SCHEMA_VERSION.to_string());
    assert_eq!(
        r.imported_from().unwrap().as_deref(),
        Some(Path::new("/var/lib/pricegrid/snapshots"))
    );
    // At every round, each key's newest version-1 history row at or before it.
    for round in 1..=3 {
        let mut expected: Vec<(TaskKey, Cell)> = Vec::new();
        for k in [&btc, &eth, &ltc, &xrp] {
            if let Some((_, r, cell)) = history.iter().rev().find(|(h, r, _)| h == k && *r <= round)
            {
                expected.push((
                    k.clone(),
                    Cell {
                        round: *r,
                        ..cell.clone()
                    },
                ));
            }
        }
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            r.cells_at(round, &[], &[], None, None).unwrap(),
            expected,
            "round {round}"
        );
    }
    let mut current: Vec<(TaskKey, Cell)> = [&btc, &eth, &ltc, &xrp]
        .into_iter()
        .map(|k| {
            let (_, _, cell) = history.iter().rev().find(|(h, ..)| h == k).unwrap();
            (k.clone(), cell.clone())
        })
        .collect();
    current.sort_by(|a, b| a.0.cmp(&b.0));
    let (store, last) = r.load().unwrap();
    assert_eq!((cells_of(&store), last), (current, 3));
    let rounds = r.rounds().unwrap();
    let listed: Vec<_> = rounds
        .iter()
        .map(|x| {
            (
                x.round,
                x.started,
                x.finished,
                x.status,
                x.config_version,
                x.counts.none,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                3,
                at("2020-03-22T09:59:00Z"),
                None,
                RoundStatus::Running,
                7,
                3
            ),
            (
                2,
                at("2020-03-21T09:59:00Z"),
                Some(at("2020-03-21T10:00:00.125Z")),
                RoundStatus::Aborted,
                7,
                3
            ),
            (
                1,
                at("2020-03-20T09:59:00Z"),
                Some(at("2020-03-20T10:00:00Z")),
                RoundStatus::Finished,
                7,
                3
            ),
        ]
    );
    assert_eq!(r.round_at(at("2020-03-21T10:00:00.125Z")).unwrap(), Some(2));
    let (exchanges, symbols) = r.names().unwrap();
    assert_eq!(exchanges.len(), 2);
    assert_eq!(symbols.len(), 4);
    // Each current value now lives in `cells` alone; the earlier rows stay,
    // btc's repeat at round 2 included, so every round reads as it did.
    let rows: i64 = r
        .conn
        .query_row("SELECT COUNT(*) FROM history", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 3, "btc's rounds 1 and 2, eth's round 1");
    drop(r);
    let again = Record::open(&path).unwrap();
    assert_eq!(
        cells_of(&again.load().unwrap().0).len(),
        4,
        "opened again, nothing to migrate"
    );
}

/// The same record as a file of schema version 3 would hold it: version
/// 3's tables exactly as `SCHEMA_V2` and `SCHEMA_V3` create them (keys
/// symbol first), every row copied from `from`.
fn as_version_3(from: &Path, to: &Path) {
    let conn = Connection::open(to).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 2048; \
         CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
    )
    .unwrap();
    conn.execute_batch(SCHEMA_V2).unwrap();
    conn.execute_batch(SCHEMA_V3).unwrap();
    conn.execute("ATTACH ?1 AS v4", [from.to_str().unwrap()])
        .unwrap();
    for table in [
        "meta",
        "exchanges",
        "symbols",
        "markets",
        "sources",
        "cells",
        "history",
        "rounds",
        "reference",
    ] {
        conn.execute(
            &format!("INSERT INTO main.{table} SELECT * FROM v4.{table}"),
            [],
        )
        .unwrap();
    }
    conn.execute(
        "UPDATE main.meta SET value = '3' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
}

/// The primary key of `table`, as its DDL says.
fn key_of(r: &Record, table: &str) -> String {
    let ddl: String = r
        .conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |row| row.get(0),
        )
        .unwrap();
    let at = ddl.find("PRIMARY KEY").unwrap();
    ddl[at..].split(')').next().unwrap().to_owned() + ")"
}

#[test]
fn a_version_3_record_is_migrated_to_day_first_keys_and_every_cell_history_row_and_reference_reads_back_the_same(
) {
    use crate::quality::{Constituent, Excluded, Exclusion, Reference, Status};
    let dir = tempfile::tempdir().unwrap();
    let v4 = dir.path().join("v4.sqlite");
    let v3 = dir.path().join("v3.sqlite");
    let mut r = Record::open(&v4).unwrap();
    // Round 1: 3 exchanges x 4 symbols x 5 days; round 2 changes every
    // third cell (a history row each) and adds a day.
    let first = grid(3, 4, 5, |e, s, d| {
        final_price((e * 100 + s * 10 + d) as f64, 1)
    });
    run_round(&mut r, 1, "2020-03-20T10:00:00Z", &first);
    let second: Vec<(TaskKey, Cell)> = grid(3, 4, 6, |e, s, d| {
        final_price((e * 100 + s * 10 + d) as f64 + 0.5, 2)
    })
    .into_iter()
    .enumerate()
    .filter(|(i, (k, _))| i % 3 == 0 || k.day == NaiveDate::from_ymd_opt(2020, 1, 6).unwrap())
    .map(|(_, c)| c)
    .collect();
    run_round(&mut r, 2, "2020-03-21T10:00:00Z", &second);
    let judged = |close: f64, status| Reference {
        close: Some(close),
        status,
        constituents: vec![Constituent {
            exchange: Exchange::new("ex-0000").unwrap(),
            close,
            volume: 10.0,
            provisional: false,
        }],
        excluded: vec![Excluded {
            exchange: Exchange::new("ex-0001").unwrap(),
            why: Exclusion::Outlier {
                median: close,
                threshold: 2.0,
            },
        }],
        dispersion: None,
    };
    let day = |d: u32| NaiveDate::from_ymd_opt(2020, 1, d).unwrap();
    let sym = |s: usize| Symbol::new(&format!("sym-{s:03}")).unwrap();
    r.write_references(
        1,
        &[
            (sym(1), day(2), judged(12.0, Status::Provisional)),
            (sym(0), day(1), judged(1.0, Status::Final)),
        ],
    )
    .unwrap();
    r.write_references(2, &[(sym(1), day(2), judged(12.5, Status::Final))])
        .unwrap();
    let read = |r: &Record| {
        (
            cells_of(&r.load().unwrap().0),
            r.load().unwrap().1,
            r.cells_at(1, &[], &[], None, None).unwrap(),
            r.cells_at(2, &[], &[], None, None).unwrap(),
            r.references(None, None, None, Some(1)).unwrap(),
            r.references(None, None, None, None).unwrap(),
            r.rounds().unwrap().len(),
        )
    };
    let mut expected = read(&r);
    let history: i64 = r
        .conn
        .query_row("SELECT COUNT(*) FROM history", [], |row| row.get(0))
        .unwrap();
    assert!(history > 0, "round 2 changed cells of round 1");
    drop(r);

    as_version_3(&v4, &v3);
    assert!(matches!(
        Record::open_read_only(&v3),
        Err(RecordError::OlderFormat { found: 3, .. })
    ));
    let r = Record::open(&v3).unwrap();
    let version: String = r.meta(schema::key::SCHEMA_VERSION).unwrap().unwrap();
    assert_eq!(version, "4");
    assert_eq!(key_of(&r, "cells"), "PRIMARY KEY (day, symbol, exchange)");
    assert_eq!(
        key_of(&r, "history"),
        "PRIMARY KEY (day, symbol, exchange, round)"
    );
    assert_eq!(key_of(&r, "reference"), "PRIMARY KEY (day, symbol, round)");
    let mut migrated = read(&r);
    // Point-in-time reads come in the key's order, which changed.
    for got in [&mut expected, &mut migrated] {
        got.2.sort_by(|a, b| a.0.cmp(&b.0));
        got.3.sort_by(|a, b| a.0.cmp(&b.0));
    }
    assert_eq!(migrated, expected);
    assert_eq!(expected.4.len(), 2, "both symbol-days judged in round 1");
    assert_eq!(expected.5[1].close, Some(12.5), "sym-001's later judgement");
}

/// A steady round adds a new day of every pair. Written symbol by symbol
/// as a backfill writes it, the record then takes the new day's 2,000
/// cells (10 exchanges x 200 symbols, ~150 KB of rows) at the end of its
/// key: the WAL holds the pages those rows fill, not a page or three for
/// each of the 200 symbols (1.4 MB in schema 3's symbol-first key).
#[test]
fn a_new_day_of_every_pair_is_written_to_about_the_pages_it_fills() {
    let (_dir, path, mut r) = new_record();
    let all = grid(10, 200, 30, |e, s, d| final_price((e + s + d) as f64, 1));
    // As the backfill writes: a flush per 20 symbols, all their exchanges.
    let mut by_symbol = all.clone();
    by_symbol.sort_by(|a, b| (&a.0.symbol, a.0.day).cmp(&(&b.0.symbol, b.0.day)));
    let finished = at("2020-03-20T10:00:00Z");
    r.begin_round(1, finished, 0).unwrap();
    for flush in by_symbol.chunks(20 * 10 * 30) {
        r.write(1, flush).unwrap();
    }
    r.finish_round(&summary(1, all.len(), false), finished)
        .unwrap();
    r.checkpoint().unwrap();
    let before = on_disk(&path);

    let new_day: Vec<(TaskKey, Cell)> =
        grid(10, 200, 31, |e, s, d| final_price((e + s + d) as f64, 2))
            .into_iter()
            .filter(|(k, _)| k.day == NaiveDate::from_ymd_opt(2020, 1, 31).unwrap())
            .collect();
    assert_eq!(new_day.len(), 2_000);
    run_round(&mut r, 2, "2020-03-21T10:00:00Z", &new_day);
    let wal = on_disk(&path) - before;
    assert!(
        wal < 400_000,
        "a new day of 2,000 cells wrote {wal} bytes to the WAL"
    );
    let (store, _) = r.load().unwrap();
    assert_eq!(store.len(), 62_000);
}
