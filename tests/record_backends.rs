//! The record's meaning on both backends: every story here runs once on an
//! SQLite file and once on a real PostgreSQL database (a throwaway cluster,
//! tests/common/postgres.rs), through the one `Record` interface, and both
//! must tell it alike. Then what only PostgreSQL has: a lost connection
//! that loses nothing, its schema version, and a URL that names the
//! problem.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use common::*;
use pricegrid::model::{CellState, Counts, Exchange, Flags, Ohlcv, RoundSummary, Symbol, TaskKey};
use pricegrid::record::{Location, Record, RecordError, RoundStatus};
use pricegrid::store::{Cell, Note};

/// A record of each kind, empty, and what keeps it alive.
#[allow(dead_code)] // held for their drop
enum Held {
    File(tempfile::TempDir),
    Db(TestDatabase),
}

fn backends() -> Vec<(&'static str, Location, Held)> {
    let dir = tempfile::tempdir().unwrap();
    let file = Location::File(dir.path().join("record.db"));
    let db = TestDatabase::new();
    let url = Location::parse(&db.url);
    vec![
        ("sqlite", file, Held::File(dir)),
        ("postgres", url, Held::Db(db)),
    ]
}

fn key(exchange: &str, symbol: &str, d: u32) -> TaskKey {
    TaskKey {
        exchange: Exchange::new(exchange).unwrap(),
        symbol: Symbol::new(symbol).unwrap(),
        day: NaiveDate::from_ymd_opt(2020, 3, d).unwrap(),
    }
}

fn final_price(close: f64, round: u64, source: &str) -> Cell {
    Cell {
        state: CellState::Final,
        price: Some(Ohlcv::new(close, close + 1.0, close / 2.0, close, 10.0).unwrap()),
        flags: Flags::NONE,
        fetched_at: Some(at("2020-03-20T10:00:00Z")),
        round,
        source: Some(Arc::from(source)),
        note: None,
    }
}

fn failed(reason: &str, round: u64) -> Cell {
    Cell {
        state: CellState::Failed,
        price: None,
        flags: Flags::NONE,
        fetched_at: Some(at("2020-03-20T10:00:01Z")),
        round,
        source: None,
        note: Some(Note {
            reason: reason.into(),
            attempts: 3,
        }),
    }
}

/// The cell the store holds for `k`.
fn cell(store: &pricegrid::store::Store, k: &TaskKey) -> Option<Cell> {
    store.get(&k.exchange, &k.symbol, k.day)
}

fn summary(round: u64, tasks: u64) -> RoundSummary {
    RoundSummary {
        round,
        config_version: 7,
        counts: Counts {
            tasks,
            finals: tasks,
            ..Counts::default()
        },
        elapsed: Duration::from_millis(1500),
        aborted: false,
    }
}

/// Begins `round`, writes `cells`, finishes it; returns the history rows
/// the write made.
fn round(record: &mut Record, round: u64, cells: &[(TaskKey, Cell)]) -> usize {
    let started = at("2020-03-20T10:00:00Z") + chrono::Duration::minutes(round as i64);
    record.begin_round(round, started, 7).unwrap();
    let stats = record.write(round, cells).unwrap();
    record
        .finish_round(
            &summary(round, cells.len() as u64),
            started + chrono::Duration::seconds(2),
        )
        .unwrap();
    stats.history
}

#[test]
fn what_goes_in_comes_back_out_on_both_backends() {
    for (kind, at_, _held) in backends() {
        let mut record = Record::open_at(&at_, "test-daemon").unwrap();
        let cells = vec![
            (
                key("kraken", "btc", 1),
                final_price(100.5, 1, "https://api.kraken.com/0/public/OHLC?pair=XBTUSD"),
            ),
            (
                key("kraken", "eth", 1),
                failed("HTTP 503 after 3 attempts", 1),
            ),
            (
                key("binance", "btc", 2),
                final_price(101.25, 1, "http://a/"),
            ),
            (
                key("binance", "eth", 2),
                Cell {
                    state: CellState::NoPrice,
                    price: None,
                    flags: Flags::NONE,
                    fetched_at: None,
                    round: 1,
                    source: None,
                    note: None,
                },
            ),
        ];
        assert_eq!(round(&mut record, 1, &cells), 0, "{kind}");
        drop(record);
        let record = Record::open_read_only_at(&at_).unwrap();
        let (store, last) = record.load().unwrap();
        assert_eq!(last, 1, "{kind}");
        assert_eq!(store.len(), 4, "{kind}");
        for (k, c) in &cells {
            assert_eq!(cell(&store, k).as_ref(), Some(c), "{kind}: {k}");
        }
        let (exchanges, symbols) = record.names().unwrap();
        assert_eq!(exchanges.len(), 2, "{kind}");
        assert_eq!(symbols.len(), 2, "{kind}");
        let rounds = record.rounds().unwrap();
        assert_eq!(rounds.len(), 1, "{kind}");
        assert_eq!(rounds[0].status, RoundStatus::Finished, "{kind}");
        assert_eq!(rounds[0].counts.tasks, 4, "{kind}");
        assert_eq!(rounds[0].config_version, 7, "{kind}");
    }
}

#[test]
fn a_past_round_reads_as_it_stood_and_a_repeated_answer_writes_no_history() {
    for (kind, at_, _held) in backends() {
        let mut record = Record::open_at(&at_, "test-daemon").unwrap();
        let k = key("kraken", "btc", 1);
        let other = key("kraken", "btc", 2);
        round(
            &mut record,
            1,
            &[
                (k.clone(), failed("timeout", 1)),
                (other.clone(), final_price(5.0, 1, "http://a/")),
            ],
        );
        // The same answer again, from another source: no history row.
        assert_eq!(
            round(
                &mut record,
                2,
                &[(other.clone(), final_price(5.0, 2, "http://b/"))]
            ),
            0,
            "{kind}"
        );
        // A new value: the old one moves into history.
        assert_eq!(
            round(
                &mut record,
                3,
                &[(k.clone(), final_price(7.0, 3, "http://a/"))]
            ),
            1,
            "{kind}"
        );
        let then = record.store_at(1).unwrap();
        assert_eq!(cell(&then, &k).unwrap().state, CellState::Failed, "{kind}");
        assert_eq!(
            cell(&then, &other).unwrap().price.unwrap().close,
            5.0,
            "{kind}"
        );
        let now = record.store_at(3).unwrap();
        assert_eq!(cell(&now, &k).unwrap().price.unwrap().close, 7.0, "{kind}");
        // Filtered: one symbol-day across exchanges.
        let one = record
            .cells_at(
                1,
                &[],
                &[Symbol::new("btc").unwrap()],
                Some(k.day),
                Some(k.day),
            )
            .unwrap();
        assert_eq!(one.len(), 1, "{kind}");
        assert_eq!(one[0].1.state, CellState::Failed, "{kind}");
        assert!(
            record
                .cells_at(1, &[Exchange::new("nowhere").unwrap()], &[], None, None)
                .unwrap()
                .is_empty(),
            "{kind}"
        );
        // The round finished by a time.
        assert_eq!(
            record.round_at(at("2020-03-20T10:02:30Z")).unwrap(),
            Some(2),
            "{kind}"
        );
        assert_eq!(
            record.round_at(at("2020-01-01T00:00:00Z")).unwrap(),
            None,
            "{kind}"
        );
        // An unknown round is an error naming the newest.
        let err = record.store_at(9).unwrap_err();
        assert!(
            matches!(
                err,
                RecordError::NoSuchRound {
                    newest: Some(3),
                    ..
                }
            ),
            "{kind}: {err}"
        );
    }
}

#[test]
fn rounds_begin_in_order_and_compaction_keeps_every_current_value() {
    for (kind, at_, _held) in backends() {
        let mut record = Record::open_at(&at_, "test-daemon").unwrap();
        let k = key("kraken", "btc", 1);
        for r in 1..=4 {
            round(
                &mut record,
                r,
                &[(k.clone(), final_price(r as f64, r, "http://a/"))],
            );
        }
        let err = record
            .begin_round(2, at("2020-03-21T00:00:00Z"), 7)
            .unwrap_err();
        assert!(
            matches!(err, RecordError::RoundOrder { newest: 4, .. }),
            "{kind}: {err}"
        );
        // Rounds finished 10:01:02 … 10:04:02; keep what finished after 10:03.
        let compacted = record
            .compact(Duration::from_secs(60), at("2020-03-20T10:04:00Z"))
            .unwrap();
        assert_eq!(compacted.cutoff_round, Some(2), "{kind}");
        assert_eq!(compacted.rounds, 1, "{kind}");
        assert_eq!(compacted.history_rows, 1, "{kind}: round 1's value folded");
        assert_eq!(record.retained_from().unwrap(), Some(2), "{kind}");
        assert!(
            matches!(
                record.store_at(1).unwrap_err(),
                RecordError::Compacted {
                    retained_from: 2,
                    ..
                }
            ),
            "{kind}"
        );
        assert_eq!(
            cell(&record.store_at(2).unwrap(), &k)
                .unwrap()
                .price
                .unwrap()
                .close,
            2.0,
            "{kind}"
        );
        let (store, last) = record.load().unwrap();
        assert_eq!(last, 4, "{kind}");
        assert_eq!(
            cell(&store, &k).unwrap().price.unwrap().close,
            4.0,
            "{kind}"
        );
    }
}

#[test]
fn a_lost_postgres_connection_loses_nothing_and_is_made_again() {
    let db = TestDatabase::new();
    let mut record = Record::open_at(&Location::parse(&db.url), "test-daemon").unwrap();
    let k = key("kraken", "btc", 1);
    round(
        &mut record,
        1,
        &[(k.clone(), final_price(1.0, 1, "http://a/"))],
    );
    record
        .begin_round(2, at("2020-03-21T00:00:00Z"), 7)
        .unwrap();
    // The server ends every other connection, ours among them.
    psql(
        &db.url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    // pg_terminate_backend only signals: wait until ours is gone.
    let gone = std::time::Instant::now();
    while psql(
        &db.url,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    ) != "0"
    {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "the session outlived its end"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let cells = [(k.clone(), final_price(2.0, 2, "http://a/"))];
    let err = record.write(2, &cells).unwrap_err();
    assert!(matches!(err, RecordError::Postgres { .. }), "{err}");
    assert!(err.to_string().contains("tries again"), "{err}");
    // The caller keeps the cells and writes them again: it works now.
    let stats = record.write(2, &cells).unwrap();
    assert_eq!(stats.cells, 1);
    let (store, _) = record.load().unwrap();
    assert_eq!(cell(&store, &k).unwrap().price.unwrap().close, 2.0);
}

#[test]
fn a_postgres_record_of_a_newer_schema_or_none_at_all_is_refused_untouched() {
    let db = TestDatabase::new();
    let at_ = Location::parse(&db.url);
    let err = Record::open_read_only_at(&at_).unwrap_err();
    assert!(
        err.to_string().contains("holds no pricegrid record yet"),
        "{err}"
    );
    drop(Record::open_at(&at_, "d").unwrap());
    psql(
        &db.url,
        "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
    );
    let err = Record::open_at(&at_, "d").unwrap_err();
    assert!(
        matches!(err, RecordError::NewerFormat { found: 99, .. }),
        "{err}"
    );
    assert_eq!(
        psql(
            &db.url,
            "SELECT value FROM meta WHERE key = 'schema_version'"
        ),
        "99"
    );
    // Another program's table called meta is not taken for a record.
    let other = TestDatabase::new();
    psql(&other.url, "CREATE TABLE meta (k text, v text)");
    let err = Record::open_at(&Location::parse(&other.url), "d").unwrap_err();
    assert!(err.to_string().contains("another program"), "{err}");
}

#[test]
fn a_postgres_url_that_cannot_connect_says_where_and_hides_the_password() {
    let url = format!(
        "postgres://ann:s3cret@127.0.0.1:{}/nothing?connect_timeout=2",
        nothing_listens().port().unwrap()
    );
    let err = Record::open_at(&Location::parse(&url), "d").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("connecting to PostgreSQL"), "{text}");
    assert!(text.contains("ann:***@127.0.0.1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

/// Daemons started together on a new PostgreSQL database create its
/// schema once between them (the others wait, then find it made).
#[test]
fn daemons_opening_a_new_postgres_record_together_create_it_once() {
    let db = TestDatabase::new();
    let at_ = Location::parse(&db.url);
    let opened: Vec<Result<Record, RecordError>> = std::thread::scope(|s| {
        let handles: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|name| {
                let at_ = &at_;
                s.spawn(move || Record::open_at(at_, name))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &opened {
        assert!(r.is_ok(), "{:?}", r.as_ref().err().map(|e| e.to_string()));
    }
    assert_eq!(psql(&db.url, "SELECT count(*) FROM daemons"), "4");
}

/// The reference closes, on both backends: a row only when a symbol-day's
/// judgement changes, and each round reads back as it stood.
#[test]
fn reference_closes_are_kept_per_round_on_both_backends() {
    use pricegrid::quality::{Dispersion, Reference};
    let judged = |close: f64| Reference {
        dispersion: Some(Dispersion {
            min: close,
            max: close,
            spread: 0.0,
            mad: 0.0,
        }),
        ..judged(close, &["bitstamp", "kraken", "okex"])
    };
    let btc = Symbol::new("btc").unwrap();
    let day = NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
    for (kind, at_, _held) in backends() {
        let mut record = Record::open_at(&at_, "test-daemon").unwrap();
        round(&mut record, 1, &[]);
        record
            .write_references(1, &[(btc.clone(), day, judged(100.0))])
            .unwrap();
        round(&mut record, 2, &[]);
        // The same judgement again: no row.
        record
            .write_references(2, &[(btc.clone(), day, judged(100.0))])
            .unwrap();
        round(&mut record, 3, &[]);
        record
            .write_references(3, &[(btc.clone(), day, judged(101.5))])
            .unwrap();
        assert!(record.has_references().unwrap(), "{kind}");
        let at = |r: Option<u64>| {
            let rows = record.references(Some(&btc), None, None, r).unwrap();
            assert_eq!(rows.len(), 1, "{kind}");
            (rows[0].round, rows[0].close, rows[0].constituents.len())
        };
        assert_eq!(at(Some(2)), (1, Some(100.0), 3), "{kind}");
        assert_eq!(at(None), (3, Some(101.5), 3), "{kind}");
        assert!(record
            .references(Some(&Symbol::new("eth").unwrap()), None, None, None)
            .unwrap()
            .is_empty());
    }
}

/// Leases by market (`fleet.lease = "market"`): two daemons take a share
/// each, with SKIP LOCKED never the same lane twice; a write of a lane its
/// writer does not hold, or holds no longer under the epoch it was asked
/// under, is refused and counted, and the holder's cell is left as it was.
#[test]
fn market_leases_are_shared_and_a_write_outside_them_is_refused() {
    use pricegrid::model::LeaseScope::Market;
    let db = TestDatabase::new();
    let at_ = Location::parse(&db.url);
    let mut a = Record::open_at(&at_, "a").unwrap();
    let mut b = Record::open_at(&at_, "b").unwrap();
    let lanes: Vec<String> = ["kraken/btc", "kraken/eth", "okex/btc"]
        .map(String::from)
        .to_vec();
    let ttl = Duration::from_secs(30);
    let held_a = a.shared_mut().unwrap().lease(&lanes, Market, ttl).unwrap();
    let held_b = b.shared_mut().unwrap().lease(&lanes, Market, ttl).unwrap();
    assert_eq!(held_a.lanes.len(), 2, "a's share of 3 lanes over 2 daemons");
    assert_eq!(held_b.lanes.len(), 1, "what a left");
    assert!(held_b.lanes.keys().all(|l| !held_a.lanes.contains_key(l)));
    assert_ne!(held_a.round, held_b.round, "one sequence numbers both");
    let b_lane = held_b.lanes.keys().next().unwrap().clone();
    let (exchange, symbol) = b_lane.split_once('/').unwrap();
    let k = key(exchange, symbol, 1);
    // b writes its lane; a's write of the same cell is refused.
    b.begin_round(held_b.round, at("2020-03-20T10:00:00Z"), 7)
        .unwrap();
    let mine = b
        .write(
            held_b.round,
            &[(k.clone(), final_price(5.0, held_b.round, "http://b/"))],
        )
        .unwrap();
    assert_eq!((mine.cells, mine.refused), (1, 0));
    a.begin_round(held_a.round, at("2020-03-20T10:00:00Z"), 7)
        .unwrap();
    let late = a
        .write(
            held_a.round,
            &[(k.clone(), final_price(9.0, held_a.round, "http://a/"))],
        )
        .unwrap();
    assert_eq!((late.cells, late.refused), (0, 1));
    let (store, _) = b.load().unwrap();
    assert_eq!(
        cell(&store, &k).unwrap().price.unwrap().close,
        5.0,
        "b's value stands"
    );
    // b stops (no heartbeat, no round): its lease lapses, and a, alone
    // alive, takes the lane under a new epoch; b's answer of its old
    // round arrives late and is refused.
    psql(
        &db.url,
        &format!(
            "UPDATE leases SET expires_at = now() - interval '1 s' WHERE lane = '{b_lane}'; \
             UPDATE daemons SET last_seen = now() - interval '1 hour' WHERE name = 'b'"
        ),
    );
    let again = a.shared_mut().unwrap().lease(&lanes, Market, ttl).unwrap();
    assert_eq!(again.taken, std::slice::from_ref(&b_lane));
    assert_eq!(
        again.lanes[&b_lane],
        held_b.lanes[&b_lane] + 1,
        "a new epoch"
    );
    let stale = b
        .write(
            held_b.round,
            &[(k.clone(), final_price(6.0, held_b.round, "http://b/"))],
        )
        .unwrap();
    assert_eq!((stale.cells, stale.refused), (0, 1));
}

/// `cells_now`, what `query` without `--round` reads, is the loaded
/// store's cells that the filter keeps, on both backends: after a value
/// moved into history and with a round still being written, for every
/// mix of exchanges, symbols and open or closed ends of the days.
#[test]
fn the_current_cells_filtered_are_the_loaded_ones_on_both_backends() {
    let exchanges = ["a", "b", "c"];
    let symbols = ["btc", "eth", "ltc"];
    for (kind, at_, _held) in backends() {
        let mut record = Record::open_at(&at_, "test-daemon").unwrap();
        let mut first = Vec::new();
        for (i, e) in exchanges.iter().enumerate() {
            for (j, s) in symbols.iter().enumerate() {
                for d in 1..=10 {
                    let cell = if (i + j + d as usize).is_multiple_of(7) {
                        failed("timeout", 1)
                    } else {
                        final_price(d as f64 + i as f64, 1, "http://a/")
                    };
                    first.push((key(e, s, d), cell));
                }
            }
        }
        round(&mut record, 1, &first);
        // Round 2 changes some values (the old ones go to history); round
        // 3 is still being written.
        let changed: Vec<_> = first
            .iter()
            .step_by(4)
            .map(|(k, _)| (k.clone(), final_price(99.0, 2, "http://b/")))
            .collect();
        assert!(round(&mut record, 2, &changed) > 0, "{kind}");
        record
            .begin_round(3, at("2020-03-21T10:00:00Z"), 7)
            .unwrap();
        let running = [(key("b", "eth", 11), final_price(42.0, 3, "http://a/"))];
        record.write(3, &running).unwrap();

        let (loaded, _) = record.load().unwrap();
        let mut every: Vec<(TaskKey, Cell)> = loaded
            .iter()
            .map(|(e, s, day, c)| {
                let k = TaskKey {
                    exchange: e.clone(),
                    symbol: s.clone(),
                    day,
                };
                (k, c)
            })
            .collect();
        every.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(every.len(), 3 * 3 * 10 + 1, "{kind}");
        let day = |d| NaiveDate::from_ymd_opt(2020, 3, d);
        let names = |n: &[&str]| n.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let filters = [
            (names(&[]), names(&[]), None, None),
            (names(&["b"]), names(&[]), None, None),
            (names(&[]), names(&["eth"]), None, None),
            (names(&[]), names(&["eth"]), day(3), None),
            (names(&[]), names(&["eth", "ltc"]), None, day(4)),
            (names(&[]), names(&["btc"]), day(5), day(5)),
            (names(&["a", "c"]), names(&["btc", "ltc"]), day(2), day(9)),
            (names(&[]), names(&[]), day(10), day(11)),
            (names(&["b"]), names(&["eth"]), day(11), None),
            (names(&["nowhere"]), names(&[]), None, None),
            (names(&[]), names(&["doge"]), None, None),
        ];
        for (e, s, from, to) in filters {
            let ex: Vec<Exchange> = e.iter().map(|n| Exchange::new(n).unwrap()).collect();
            let sy: Vec<Symbol> = s.iter().map(|n| Symbol::new(n).unwrap()).collect();
            let expected: Vec<_> = every
                .iter()
                .filter(|(k, _)| ex.is_empty() || ex.contains(&k.exchange))
                .filter(|(k, _)| sy.is_empty() || sy.contains(&k.symbol))
                .filter(|(k, _)| from.is_none_or(|f| k.day >= f) && to.is_none_or(|t| k.day <= t))
                .cloned()
                .collect();
            let got = record.cells_now(&ex, &sy, from, to).unwrap();
            assert_eq!(got, expected, "{kind}: {e:?} {s:?} {from:?}..{to:?}");
        }
    }
}
