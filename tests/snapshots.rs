//! The record and its snapshots: resume after a restart or a crash (from
//! the record), the one-time import of old JSON snapshots, JSON exports,
//! the `query`, `snapshots` and `export` commands (now and point in time),
//! and the daemon's HTTP API.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use pricegrid::actors::aggregator::{Flush, GetStore};
use pricegrid::daemon::Daemon;
use pricegrid::model::{CellState, Exchange, Ohlcv, Outcome, Symbol, TaskKey};
use pricegrid::record::Record;
use pricegrid::server::{PriceServer, ServerOptions};
use pricegrid::snapshot::{self, Snapshot};
use pricegrid::store::{Observation, Store};

/// A daemon's config over every exchange and symbol in March 2020 (1,023
/// tasks), fetched from `url`, snapshots in `snapshots`.
fn march_daemon(url: &url::Url, snapshots: &Path) -> TestConfig {
    TestConfig::daemon(url, snapshots)
        .every_exchange()
        .every_symbol()
        .march()
}

#[actix_rt::test]
async fn a_restart_after_a_complete_round_fetches_no_settled_key() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = march_daemon(&server.url(), &dir.path().join("snap"))
        .workers(8)
        .write(&dir.path().join("pricegrid.toml"));

    let mut daemon = RunningDaemon::start(&path).await;
    assert_eq!(daemon.first_round().await.counts.done(), 1023);
    daemon.shutdown().await;
    let requests = server.stats.price_requests();
    assert_eq!(requests, 1023);

    let restarted = Daemon::start(&path).await.expect("restarts");
    let store = restarted
        .pipeline()
        .aggregator
        .send(GetStore)
        .await
        .unwrap();
    assert_eq!(
        store.price_count() + store.count(CellState::NoPrice),
        1023,
        "resumed with the whole map"
    );
    let mut daemon = RunningDaemon::run(restarted);
    daemon.idle_ticks(1).await;
    assert_eq!(daemon.last_round(), None, "nothing is due: no round runs");
    assert_eq!(
        server.stats.price_requests(),
        requests,
        "no request for a settled key"
    );
    daemon.shutdown().await;
}

/// The cells done so far in a progress line `round 1: 300/1023 done (29%), …`.
fn done_in(line: &str) -> usize {
    let (_, rest) = line.split_once(": ").expect("a progress line");
    let (done, _) = rest.split_once('/').expect("done/tasks");
    done.parse().expect("a count")
}

/// Answers (prices and "none") a store holds.
fn answered(store: &Store) -> usize {
    store.price_count() + store.count(CellState::NoPrice)
}

#[test]
fn sigkill_during_rounds_never_leaves_an_unreadable_record_and_loses_at_most_the_last_flush() {
    // 1,023 tasks at 2 workers and 4 ms each: a round takes seconds, so
    // every kill below lands in the middle of one.
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(4));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pricegrid.db");
    let path = march_daemon(&server.url, &dir.path().join("exports"))
        .record(&db)
        .workers(2)
        .flush_every(Duration::from_millis(20))
        .progress_every(Duration::from_millis(100))
        .write(&dir.path().join("pricegrid.toml"));

    let mut answers = 0;
    for kill in 1..=4 {
        let (mut child, mut lines) = spawn_daemon(&path);
        let log = read_until(&mut lines, " done (", 4);
        signal(&child, "-KILL");
        child.wait().unwrap();
        // The first of the four progress lines came at least 300 ms (15
        // flushes) before the kill: what was done then is on disk.
        let first = log.lines().find(|l| l.contains(" done (")).unwrap();
        let flushed = answers + done_in(first);

        let record = Record::open(&db).unwrap_or_else(|e| panic!("run {kill}: {e}"));
        let (store, _) = record.load().unwrap_or_else(|e| panic!("run {kill}: {e}"));
        let now = answered(&store);
        assert!(
            now >= flushed,
            "run {kill}: the record holds {now} answers, fewer than the {flushed} done 300 ms \
             before the kill"
        );
        assert!(now < 1023, "run {kill}: the kill came after the round");
        assert_answers_match(&store, &server.dataset);
        answers = now;
    }
    assert!(answers > 0);
}

#[test]
fn an_unreadable_record_stops_the_daemon_naming_the_file_and_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pricegrid.db");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let path = TestConfig::daemon(&nothing_listens(), &dir.path().join("exports"))
        .record(&db)
        .write(&dir.path().join("pricegrid.toml"));

    let (mut child, lines) = spawn_daemon(&path);
    let mut log = String::new();
    read_to_end(lines, &mut log);
    let status = child.wait().unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.contains(db.to_str().unwrap()), "{log}");
    assert!(log.contains("not a pricegrid record"), "{log}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        garbage,
        "the file is untouched"
    );
}

#[actix_rt::test]
async fn the_first_start_imports_old_json_snapshots_and_fetches_nothing_they_settled() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("snap");
    std::fs::create_dir(&old).unwrap();
    let snap = fetched_snapshot_in(kraken_and_okex_mid_march(&server), &server, &old).await;
    let requests = server.stats.price_requests();
    let path = TestConfig::daemon(&server.url(), &old)
        .exchanges(["kraken", "okex"])
        .every_symbol()
        .window("2020-03-09", "2020-03-13")
        .write(&dir.path().join("pricegrid.toml"));
    assert!(!old.with_extension("db").exists(), "a fresh record");

    let mut daemon = RunningDaemon::start(&path).await;
    daemon.idle_ticks(1).await;
    assert_eq!(daemon.last_round(), None, "nothing is due: no round runs");
    assert_eq!(server.stats.price_requests(), requests, "no price request");
    assert_eq!(answers(&daemon.store().await), answers(&snap.prices));
    daemon.shutdown().await;
    let (store, _) = Record::open(&old.with_extension("db"))
        .unwrap()
        .load()
        .unwrap();
    assert_eq!(answers(&store), answers(&snap.prices), "and it is recorded");
}

#[test]
fn exports_are_named_by_round_and_retention_spares_a_foreign_file() {
    let server = ServerThread::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    std::fs::create_dir(&exports).unwrap();
    // Left by another process: never removed, whatever its name.
    let foreign = exports.join("round-000000.json");
    std::fs::write(&foreign, "{\"written by\": \"someone else\"}").unwrap();
    // Never settled (2020 plus 50 years has not come), so every round
    // fetches the cell again and ends with an export.
    let path = TestConfig::daemon(&server.url, &exports)
        .exchanges(["kraken"])
        .symbols(["btc"])
        .window("2020-03-01", "2020-03-01")
        .settle_after(Duration::from_secs(50 * 365 * 24 * 3600))
        .interval(Duration::from_millis(100))
        .snapshot_every(Duration::from_millis(1))
        .keep(2)
        .write(&dir.path().join("pricegrid.toml"));

    let (mut child, mut lines) = spawn_daemon(&path);
    read_until(&mut lines, " bytes, ", 4);
    signal(&child, "-TERM");
    let mut log = String::new();
    read_to_end(lines, &mut log);
    assert!(child.wait().unwrap().success(), "{log}");

    let mut files: Vec<String> = std::fs::read_dir(&exports)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        3,
        "two exports and the foreign file: {files:?}"
    );
    assert_eq!(files[0], "round-000000.json");
    assert_eq!(
        std::fs::read_to_string(&foreign).unwrap(),
        "{\"written by\": \"someone else\"}"
    );
    let newest = Snapshot::load(&exports.join(&files[2])).unwrap();
    assert!(newest.round >= 4, "{files:?}");
    assert_eq!(
        files[2],
        pricegrid::actors::aggregator::export_name(newest.round)
    );
    assert_eq!(newest.prices.len(), 1);
    assert_answers_match(&newest.prices, &server.dataset);
}

/// A small hand-made snapshot: btc on 2020-03-13 at three exchanges with
/// closes 100, 110, 104 and volumes 1, 2, 1; eth missing at one.
fn hand_made(dir: &std::path::Path) -> std::path::PathBuf {
    let day = day("2020-03-13");
    let mut store = Store::new();
    for (exchange, close, volume) in [
        ("bitstamp", 100.0, 1.0),
        ("kraken", 110.0, 2.0),
        ("okex", 104.0, 1.0),
    ] {
        let key = TaskKey {
            exchange: Exchange::new(exchange).unwrap(),
            symbol: Symbol::new("btc").unwrap(),
            day,
        };
        let p = Ohlcv::new(close, close + 1.0, close - 1.0, close, volume).unwrap();
        store.apply(&key, &Observation::settled(Outcome::price(p), 1));
    }
    let eth = TaskKey {
        exchange: Exchange::new("kraken").unwrap(),
        symbol: Symbol::new("eth").unwrap(),
        day,
    };
    store.apply(&eth, &Observation::settled(Outcome::NoPrice, 1));
    let snap = Snapshot::new(0, 1, Default::default(), store);
    let path = dir.join(snapshot::file_name(snap.created));
    snap.write_atomic(&path).unwrap();
    path
}

fn pricegrid(args: &[&str]) -> (i32, String, String) {
    let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as _).collect();
    pricegrid_in(None, &args)
}

/// Runs one round of `config` as the `fetch` command would and writes its
/// snapshot into `dir`; returns it.
async fn fetched_snapshot_in(config: TestConfig, server: &PriceServer, dir: &Path) -> Snapshot {
    let report = pricegrid::commands::fetch::fetch_round(
        arc(config.build()),
        &pricegrid::origin::Source::remote(server.url()),
        false,
    )
    .await
    .unwrap();
    report
        .snapshot
        .write_atomic(&dir.join(snapshot::file_name(report.snapshot.created)))
        .unwrap();
    report.snapshot
}

/// Kraken and okex, every symbol, 2020-03-09..=13 (30 keys): enough for a
/// query's exchange, symbol and day filters each to leave keys out.
fn kraken_and_okex_mid_march(server: &PriceServer) -> TestConfig {
    TestConfig::fetching_from(&server.url())
        .exchanges(["kraken", "okex"])
        .every_symbol()
        .window("2020-03-09", "2020-03-13")
        .quick_backoff()
}

/// Kraken and okex, every symbol, 2020-03-09..=13 (30 keys).
fn mid_march(config: TestConfig) -> TestConfig {
    config
        .exchanges(["kraken", "okex"])
        .every_symbol()
        .window("2020-03-09", "2020-03-13")
}

/// A record of two rounds over `mid_march` whose second changed every
/// value: round 1 fetched from one server, then the daemon restarted on a
/// server with another dataset (another source, so round 2 fetched every
/// key again).
struct TwoRounds {
    db: PathBuf,
    config: PathBuf,
    first: Store,
    second: Store,
    _servers: (PriceServer, PriceServer),
    _dir: tempfile::TempDir,
}

impl TwoRounds {
    async fn new() -> TwoRounds {
        let one = spawn_price_server(|_| {});
        let two = spawn_price_server(|o| o.dataset = ServerOptions::new(o.listen, 4242).dataset);
        let dir = tempfile::tempdir().unwrap();
        let (db, first) = recorded(&one, dir.path(), mid_march).await;
        let config = mid_march(TestConfig::daemon(&two.url(), &dir.path().join("snap")))
            .quick_backoff()
            .write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&config).await;
        let round = daemon.round("2", |r| r.round == 2).await;
        assert_eq!(round.counts.tasks, 30, "a new source: every key again");
        let second = daemon.store().await;
        daemon.shutdown().await;
        let changed = answers(&first)
            .iter()
            .zip(answers(&second))
            .filter(|(a, b)| **a != *b)
            .count();
        assert!(changed > 20, "the second dataset changed the values");
        TwoRounds {
            db,
            config,
            first,
            second,
            _servers: (one, two),
            _dir: dir,
        }
    }

    fn db(&self) -> &str {
        self.db.to_str().unwrap()
    }
}

/// The answers in CSV rows of `query` or `export`, keyed as `answers` keys
/// them.
fn csv_answers(text: &str) -> Vec<(String, Option<Ohlcv>)> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut out = Vec::new();
    for rec in reader.records() {
        let rec = rec.unwrap();
        if rec[3] != *"final" && rec[3] != *"none" {
            continue;
        }
        let price = if rec[4].is_empty() {
            None
        } else {
            let f = |i: usize| rec[i].parse::<f64>().unwrap();
            Some(Ohlcv::new(f(4), f(5), f(6), f(7), f(8)).unwrap())
        };
        out.push((format!("{}/{}/{}", &rec[0], &rec[1], &rec[2]), price));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn sorted(mut v: Vec<(String, Option<Ohlcv>)>) -> Vec<(String, Option<Ohlcv>)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[actix_rt::test]
async fn query_as_csv_lists_every_key_once_as_the_record_holds_it() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = recorded(&server, dir.path(), |c| {
        c.every_exchange().every_symbol().march()
    })
    .await;
    let config = dir.path().join("pricegrid.toml");

    let (code, csv_text, err) = pricegrid(&[
        "query",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut n = 0;
    for rec in reader.records() {
        let rec = rec.unwrap();
        let e = Exchange::new(&rec[0]).unwrap();
        let s = Symbol::new(&rec[1]).unwrap();
        let d = day(&rec[2]);
        let want = store.answer(&e, &s, d).expect("a key of the record");
        assert!(
            ["final", "none"].contains(&&rec[3]),
            "{e}/{s}/{d}: a closed day of 2020 settles"
        );
        let got = if rec[4].is_empty() {
            None
        } else {
            let f = |i: usize| rec[i].parse::<f64>().unwrap();
            Some(Ohlcv::new(f(4), f(5), f(6), f(7), f(8)).unwrap())
        };
        assert_eq!(got, want, "{e}/{s}/{d}");
        n += 1;
    }
    assert_eq!(n, 1023, "every key once");
}

#[actix_rt::test]
async fn query_as_json_gives_only_the_asked_keys_and_field() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = recorded(&server, dir.path(), mid_march).await;

    let (code, json, err) = pricegrid(&[
        "query",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "json",
        "--exchange",
        "kraken",
        "--symbol",
        "eth,btc",
        "--from",
        "2020-03-10",
        "--to",
        "2020-03-12",
        "--field",
        "close",
    ]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 6);
    for r in rows {
        let e = Exchange::new(r["exchange"].as_str().unwrap()).unwrap();
        let s = Symbol::new(r["symbol"].as_str().unwrap()).unwrap();
        let want = store
            .answer(&e, &s, day(r["day"].as_str().unwrap()))
            .unwrap();
        assert_eq!(r["close"].as_f64(), want.map(|p| p.close));
        assert!(r.get("open").is_none(), "only the asked field");
    }
}

#[actix_rt::test]
async fn query_as_a_table_prints_a_header_and_a_line_per_key() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = recorded(&server, dir.path(), mid_march).await;

    let (code, table, err) = pricegrid(&[
        "query",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "table",
        "--exchange",
        "kraken",
        "--from",
        "2020-03-13",
        "--to",
        "2020-03-13",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(table.lines().count(), 1 + 3, "{table}");
}

#[actix_rt::test]
async fn query_round_1_answers_as_round_1_ended_after_round_2_changed_every_value() {
    let two = TwoRounds::new().await;
    let query = |extra: &[&str]| {
        let mut args = vec!["query", "--db", two.db(), "--format", "csv"];
        args.extend_from_slice(extra);
        let (code, out, err) = pricegrid(&args);
        assert_eq!(code, 0, "{extra:?}: {err}");
        csv_answers(&out)
    };
    assert_eq!(query(&[]), sorted(answers(&two.second)), "now");
    assert_eq!(query(&["--round", "2"]), sorted(answers(&two.second)));
    assert_eq!(
        query(&["--round", "1"]),
        sorted(answers(&two.first)),
        "as round 1 ended"
    );

    let rounds = Record::open_read_only(&two.db).unwrap().rounds().unwrap();
    let first_end = rounds[1].finished.expect("round 1 finished");
    let at = first_end.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(
        query(&["--at", &at]),
        sorted(answers(&two.first)),
        "at the end of round 1, round 1 is in force"
    );
    // One symbol at round 1, through the index: the same values.
    let btc: Vec<_> = sorted(answers(&two.first))
        .into_iter()
        .filter(|(k, _)| k.contains("/btc/"))
        .collect();
    assert_eq!(query(&["--round", "1", "--symbol", "btc"]), btc);
}

#[actix_rt::test]
async fn query_of_a_round_not_recorded_or_before_the_first_says_so() {
    let two = TwoRounds::new().await;
    let (code, _, err) = pricegrid(&["query", "--db", two.db(), "--round", "9"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("round 9 is not in the record") && err.contains(two.db()),
        "{err}"
    );
    let (code, _, err) = pricegrid(&["query", "--db", two.db(), "--at", "2001-01-01T00:00:00Z"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no round had finished") && err.contains("2001-01-01"),
        "{err}"
    );
}

#[test]
fn query_without_a_record_says_to_run_the_daemon_or_pass_db() {
    let empty = tempfile::tempdir().unwrap();
    let db = empty.path().join("none.db");
    let (code, _, err) = pricegrid(&["query", "--db", db.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no record at") && err.contains(db.to_str().unwrap()),
        "{err}"
    );
    assert!(err.contains("--db"), "{err}");
    assert!(!db.exists(), "a query creates nothing");
}

#[test]
fn query_refuses_an_impossible_date_naming_the_option() {
    let (code, _, err) = pricegrid(&["query", "--db", "x.db", "--from", "2020-03-40"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--from") && err.contains("2020-03-40"),
        "{err}"
    );
}

#[test]
fn query_refuses_an_exchange_name_that_is_no_name() {
    let (code, _, err) = pricegrid(&["query", "--db", "x.db", "--exchange", "kra ken"]);
    assert_eq!(code, 2);
    assert!(err.contains("kra ken"), "{err}");
}

#[test]
fn query_across_matches_a_hand_computed_day() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("snap");
    std::fs::create_dir(&old).unwrap();
    let file = hand_made(&old);
    let db = dir.path().join("pricegrid.db");
    Record::open(&db).unwrap().import_snapshots(&old).unwrap();
    for source in [
        ["--db", db.to_str().unwrap()],
        ["--snapshot", file.to_str().unwrap()],
    ] {
        let mut args = vec!["query", "--across", "--format", "json"];
        args.extend(source);
        let (code, out, err) = pricegrid(&args);
        assert_eq!(code, 0, "{err}");
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(rows.len(), 1, "eth has no price anywhere: {out}");
        let r = &rows[0];
        assert_eq!(r["symbol"], "btc");
        assert_eq!(r["exchanges"], 3);
        assert_eq!(
            (r["min_close"].as_f64(), r["min_exchange"].as_str()),
            (Some(100.0), Some("bitstamp"))
        );
        assert_eq!(
            (r["max_close"].as_f64(), r["max_exchange"].as_str()),
            (Some(110.0), Some("kraken"))
        );
        assert_eq!(r["median_close"].as_f64(), Some(104.0));
        // (100*1 + 110*2 + 104*1) / 4
        assert_eq!(r["vwap_close"].as_f64(), Some(106.0));
        assert!((r["spread_pct"].as_f64().unwrap() - 10.0).abs() < 1e-9);
    }
}

#[actix_rt::test]
async fn snapshots_lists_the_rounds_newest_first_with_their_counts() {
    let two = TwoRounds::new().await;
    let (code, out, err) = pricegrid(&[
        "snapshots",
        "--config",
        two.config.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 2, "{out}");
    assert_eq!(list[0]["round"], 2, "newest first");
    assert_eq!(list[1]["round"], 1);
    for r in &list {
        assert_eq!(r["status"], "finished", "{r}");
        assert_eq!(r["counts"]["tasks"], 30, "{r}");
        assert_eq!(r["config_version"], 0, "{r}");
        assert!(r["finished"].as_str().unwrap() >= r["started"].as_str().unwrap());
    }
    let (code, table, _) = pricegrid(&["snapshots", "--db", two.db(), "--format", "table"]);
    assert_eq!(code, 0);
    assert!(table.starts_with("round"), "{table}");
    assert_eq!(table.lines().count(), 1 + 2, "{table}");
}

#[actix_rt::test]
async fn export_writes_a_snapshot_that_loads_back_equal_to_the_record() {
    let two = TwoRounds::new().await;
    let out = two.db.with_file_name("export.json");
    let (code, _, err) = pricegrid(&[
        "export",
        "--db",
        two.db(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let snap = Snapshot::load(&out).unwrap();
    let record = Record::open_read_only(&two.db).unwrap();
    let (now, _) = record.load().unwrap();
    assert_eq!(snap.prices, now, "every cell as the record holds it");
    let newest = &record.rounds().unwrap()[0];
    assert_eq!(
        (snap.round, snap.config_version, snap.counts),
        (2, newest.config_version, newest.counts)
    );

    let (code, _, err) = pricegrid(&[
        "export",
        "--db",
        two.db(),
        "--round",
        "1",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let snap = Snapshot::load(&out).unwrap();
    assert_eq!(snap.round, 1);
    assert_eq!(snap.prices, record.store_at(1).unwrap());
    assert_eq!(sorted(answers(&snap.prices)), sorted(answers(&two.first)));
}

#[actix_rt::test]
async fn export_as_csv_to_stdout_gives_a_line_per_cell_of_the_round() {
    let two = TwoRounds::new().await;
    let (code, out, err) = pricegrid(&[
        "export",
        "--db",
        two.db(),
        "--round",
        "1",
        "--format",
        "csv",
        "--output",
        "-",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            "exchange,symbol,day,state,open,high,low,close,volume,flags,reason,attempts,\
             fetched_at,round,source,market\n"
        ),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1 + two.first.len());
    assert_eq!(csv_answers(&out), sorted(answers(&two.first)));
    assert_ne!(csv_answers(&out), sorted(answers(&two.second)));
}

/// A running daemon whose first round (over `universe`) is done and
/// written, the map it stored, and a client for its API.
struct ExchangeApi {
    daemon: RunningDaemon,
    base: String,
    store: Store,
    client: awc::Client,
    _server: PriceServer,
    _dir: tempfile::TempDir,
}

impl ExchangeApi {
    /// Starts a daemon on its own server, with the default 32 workers, and
    /// waits for its first round and a snapshot of it.
    async fn after_one_round(universe: impl FnOnce(TestConfig) -> TestConfig) -> ExchangeApi {
        let server = spawn_price_server(|_| {});
        let dir = tempfile::tempdir().unwrap();
        let config = TestConfig::daemon(&server.url(), &dir.path().join("snap"));
        let path = universe(config).write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&path).await;
        daemon.first_round().await;
        // Queues behind the end-of-round writes, so the round is on disk
        // after it.
        let flushed = daemon
            .pipeline
            .aggregator
            .send(Flush)
            .await
            .unwrap()
            .expect("the daemon keeps a record");
        assert!(flushed.is_ok(), "{flushed:?}");
        let store = daemon.pipeline.aggregator.send(GetStore).await.unwrap();
        ExchangeApi {
            base: daemon.api_url(),
            daemon,
            store,
            client: awc::Client::default(),
            _server: server,
            _dir: dir,
        }
    }

    /// After a round over every exchange and symbol in March 2020.
    async fn after_march() -> ExchangeApi {
        ExchangeApi::after_one_round(|c| c.every_exchange().every_symbol().march()).await
    }

    /// After a round over every exchange, btc and eth, 2020-03-01..=14
    /// (308 keys): enough for a route's exchange, symbol and day filters
    /// each to leave keys out.
    async fn after_btc_and_eth_early_march() -> ExchangeApi {
        ExchangeApi::after_one_round(|c| {
            c.every_exchange()
                .symbols(["btc", "eth"])
                .window("2020-03-01", "2020-03-14")
        })
        .await
    }

    /// After a round of one task: for answers that do not depend on data.
    async fn after_one_task() -> ExchangeApi {
        ExchangeApi::after_one_round(|c| {
            c.exchanges(["kraken"])
                .symbols(["btc"])
                .window("2020-03-01", "2020-03-01")
        })
        .await
    }

    /// GETs `route` (e.g. "/v1/status"): the status code and the body.
    async fn get(&self, route: &str) -> (u16, String) {
        let url = format!("{}{route}", self.base);
        let mut resp = self
            .client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let body = resp.body().limit(16 << 20).await.unwrap();
        (
            resp.status().as_u16(),
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    async fn stop(self) {
        self.daemon.shutdown().await;
    }
}

#[actix_rt::test]
async fn the_status_route_reports_the_round_the_workers_and_what_is_stored() {
    let api = ExchangeApi::after_march().await;
    let (code, body) = api.get("/v1/status").await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["round"], 1);
    assert_eq!(status["counts"]["tasks"], 1023);
    assert_eq!(
        status["workers"],
        pricegrid::config::default_workers(),
        "a fetcher thread per core by default"
    );
    assert_eq!(status["stored"]["prices"], api.store.price_count());
    api.stop().await;
}

#[actix_rt::test]
async fn the_prices_route_gives_the_stored_closes_of_the_asked_keys() {
    let api = ExchangeApi::after_btc_and_eth_early_march().await;
    let (code, body) = api
        .get("/v1/prices?exchange=kraken,okex&symbol=btc&from=2020-03-10&to=2020-03-14")
        .await;
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(page["next"].is_null(), "one page holds it all: {body}");
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10);
    for r in rows {
        let e = Exchange::new(r["exchange"].as_str().unwrap()).unwrap();
        let want = api
            .store
            .answer(
                &e,
                &Symbol::new("btc").unwrap(),
                day(r["day"].as_str().unwrap()),
            )
            .unwrap();
        assert_eq!(r["close"].as_f64(), want.map(|p| p.close));
    }
    api.stop().await;
}

/// A question reads the Aggregator's store without its mailbox: while the
/// thread the actors share is held (as a round's results, its planning and
/// its pumping hold it at 20M cells), `/v1/prices` still answers, with
/// what is stored.
#[actix_rt::test]
async fn the_prices_route_answers_while_the_actors_thread_is_held() {
    let api = ExchangeApi::after_btc_and_eth_early_march().await;
    let url = format!(
        "{}/v1/prices?symbol=btc&from=2020-03-13&to=2020-03-13",
        api.base
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let answer = ureq::get(&url)
            .timeout(Duration::from_secs(5))
            .call()
            .map(|r| r.into_string());
        let _ = tx.send(answer);
    });
    // Blocks this thread, where the daemon's actors run: the Aggregator
    // handles no message until the other thread has its answer.
    let answer = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the asking thread ends");
    let body = answer
        .expect("answered within 5 s while the actors' thread was held")
        .expect("a body");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = page["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 11, "btc on every exchange that day: {body}");
    for r in rows {
        let e = Exchange::new(r["exchange"].as_str().unwrap()).unwrap();
        let want = api
            .store
            .answer(&e, &Symbol::new("btc").unwrap(), day("2020-03-13"))
            .unwrap();
        assert_eq!(r["close"].as_f64(), want.map(|p| p.close), "{e}");
    }
    api.stop().await;
}

#[actix_rt::test]
async fn the_prices_route_as_csv_has_a_header_and_a_line_per_exchange() {
    let api = ExchangeApi::after_btc_and_eth_early_march().await;
    let (code, body) = api
        .get("/v1/prices?symbol=eth&from=2020-03-01&to=2020-03-01&format=csv")
        .await;
    assert_eq!(code, 200);
    assert_eq!(body.lines().count(), 1 + 11, "{body}");
    api.stop().await;
}

#[actix_rt::test]
async fn the_aggregate_route_spans_the_stored_closes_across_exchanges() {
    let api = ExchangeApi::after_btc_and_eth_early_march().await;
    let (code, body) = api
        .get("/v1/aggregate?symbol=btc&from=2020-03-13&to=2020-03-13")
        .await;
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    let across = page["rows"].as_array().unwrap();
    assert_eq!(across.len(), 1);
    let closes: Vec<f64> = api
        .store
        .iter()
        .filter_map(|(_, s, d, c)| match c.usable_price() {
            Some(p) if s.as_str() == "btc" && d == day("2020-03-13") => Some(p.close),
            _ => None,
        })
        .collect();
    assert_eq!(across[0]["exchanges"], closes.len());
    assert_eq!(
        across[0]["min_close"].as_f64(),
        closes.iter().copied().reduce(f64::min)
    );
    assert_eq!(
        across[0]["max_close"].as_f64(),
        closes.iter().copied().reduce(f64::max)
    );
    api.stop().await;
}

#[actix_rt::test]
async fn the_snapshots_route_lists_the_rounds_of_the_record() {
    let api = ExchangeApi::after_one_task().await;
    let (code, body) = api.get("/v1/snapshots").await;
    assert_eq!(code, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["round"], 1);
    assert_eq!(list[0]["status"], "finished");
    assert_eq!(list[0]["counts"]["tasks"], 1);
    assert!(list[0]["export"].is_null(), "exports are off: {body}");
    api.stop().await;
}

#[actix_rt::test]
async fn the_metrics_count_the_round_and_every_fetch() {
    let api = ExchangeApi::after_march().await;
    let (code, body) = api.get("/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("pricegrid_rounds_total 1"), "{body}");
    assert!(
        body.contains("pricegrid_tasks_total{outcome=\"final\"}"),
        "{body}"
    );
    assert!(
        body.contains("pricegrid_fetch_duration_seconds_count 1023"),
        "{body}"
    );
    api.stop().await;
}

#[actix_rt::test]
async fn every_bad_parameter_is_a_400_that_names_it() {
    let api = ExchangeApi::after_one_task().await;
    for (route, parameter) in [
        ("/v1/prices?from=2020-13-01", "from"),
        ("/v1/prices?to=soon", "to"),
        ("/v1/prices?exchange=krakn", "exchange"),
        ("/v1/prices?exchange=KRA!KEN", "exchange"),
        ("/v1/prices?field=price", "field"),
        ("/v1/prices?format=xml", "format"),
        ("/v1/prices?from=2020-03-05&to=2020-03-01", "to"),
        ("/v1/prices?limit=0", "limit"),
        ("/v1/prices?limit=100001", "limit"),
        ("/v1/prices?after=kraken", "after"),
        ("/v1/aggregate?after=btc/yesterday", "after"),
        ("/v1/aggregate?symbol=B!", "symbol"),
        ("/v1/aggregate?field=close", "field"),
        ("/v1/status?verbose=1", "verbose"),
        ("/v1/snapshots?page=2", "page"),
    ] {
        let (code, body) = api.get(route).await;
        assert_eq!(code, 400, "{route}: {body}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["parameter"], parameter, "{route}: {body}");
        assert!(!err["error"].as_str().unwrap().is_empty());
    }
    api.stop().await;
}

#[actix_rt::test]
async fn an_unknown_name_in_a_filter_is_a_400_that_suggests_the_known_one() {
    let api = ExchangeApi::after_one_task().await;
    for route in [
        "/v1/prices?exchange=krakn",
        "/v1/aggregate?exchange=krakn&symbol=btc",
        "/v1/failures?exchange=krakn",
    ] {
        let (code, body) = api.get(route).await;
        assert_eq!(code, 400, "{route}: {body}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            err,
            serde_json::json!({
                "parameter": "exchange",
                "error": "unknown exchange \"krakn\": did you mean kraken? known: kraken"
            }),
            "{route}"
        );
    }
    let (code, body) = api.get("/v1/prices?symbol=doge").await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("unknown symbol \\\"doge\\\": known: btc"),
        "{body}"
    );
    // Names are lower-cased: BTC is btc.
    let (code, body) = api.get("/v1/prices?exchange=Kraken&symbol=BTC").await;
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["rows"][0]["symbol"], "btc", "{body}");
    api.stop().await;
}

#[actix_rt::test]
async fn an_oversized_query_string_is_a_400_in_json() {
    let api = ExchangeApi::after_one_task().await;
    let names = vec!["kraken"; 4000].join(",");
    let (code, body) = api.get(&format!("/v1/prices?exchange={names}")).await;
    assert_eq!(code, 400, "{body}");
    let err: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["parameter"], "query", "{body}");
    assert!(err["error"].as_str().unwrap().contains("bytes"), "{body}");
    api.stop().await;
}

#[actix_rt::test]
async fn prices_and_aggregates_page_through_everything_once() {
    let api = ExchangeApi::after_btc_and_eth_early_march().await;
    let all = api.store.len();
    let mut seen = Vec::new();
    let mut route = "/v1/prices?limit=7".to_owned();
    for _ in 0..1000 {
        let (code, body) = api.get(&route).await;
        assert_eq!(code, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rows = page["rows"].as_array().unwrap();
        assert!(rows.len() <= 7);
        for r in rows {
            seen.push(format!("{}/{}/{}", r["exchange"], r["symbol"], r["day"]));
        }
        match page["next"].as_str() {
            Some(next) => route = format!("/v1/prices?limit=7&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), all, "every cell once");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all, "no cell twice");

    let mut groups = 0;
    let mut route = "/v1/aggregate?limit=3".to_owned();
    for _ in 0..1000 {
        let (code, body) = api.get(&route).await;
        assert_eq!(code, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        groups += page["rows"].as_array().unwrap().len();
        match page["next"].as_str() {
            Some(next) => route = format!("/v1/aggregate?limit=3&after={next}"),
            None => break,
        }
    }
    let (_, body) = api.get("/v1/aggregate?limit=100000").await;
    let whole: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(groups, whole["rows"].as_array().unwrap().len());
    assert!(groups > 3, "more than one page");
    api.stop().await;
}

#[actix_rt::test]
async fn an_unknown_route_is_a_404_that_points_to_the_routes() {
    let api = ExchangeApi::after_one_task().await;
    let (code, body) = api.get("/v2/nothing").await;
    assert_eq!(code, 404);
    assert!(body.contains("/v1/status"), "{body}");
    api.stop().await;
}
