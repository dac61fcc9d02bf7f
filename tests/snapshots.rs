//! Logged snapshots, resume after a restart or a crash, the `query` and
//! `snapshots` commands, and the daemon's HTTP API.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use pricegrid::actors::aggregator::{GetStore, WriteSnapshot};
use pricegrid::daemon::Daemon;
use pricegrid::model::{CellState, Exchange, Ohlcv, Outcome, Symbol, TaskKey};
use pricegrid::server::PriceServer;
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
    let next = daemon.round("2", |r| r.round == 2).await;
    assert_eq!(
        next.counts.tasks, 0,
        "rounds are numbered on and nothing is due"
    );
    assert_eq!(
        server.stats.price_requests(),
        requests,
        "no request for a settled key"
    );
    daemon.shutdown().await;
}

#[test]
fn sigkill_during_snapshot_writes_never_costs_the_newest_complete_snapshot() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(4));
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snap");
    let path = march_daemon(&server.url, &snapshots)
        .workers(2)
        .snapshot_every(Duration::from_millis(40))
        .keep(5)
        .write(&dir.path().join("pricegrid.toml"));

    let mut answers = 0;
    for kill in 1..=6 {
        let (mut child, mut lines) = spawn_daemon(&path);
        // Kill right after the kill-th write of this run: the next write
        // is typically under way.
        read_until(&mut lines, " bytes, ", kill);
        signal(&child, "-KILL");
        child.wait().unwrap();
        let newest = snapshot::load_newest(&snapshots).unwrap();
        assert!(
            newest.skipped.is_empty(),
            "run {kill}: {:?}",
            newest.skipped
        );
        let (_, snap) = newest.found.expect("a complete snapshot loads");
        let now = snap.prices.price_count() + snap.prices.count(CellState::NoPrice);
        assert!(
            now >= answers,
            "run {kill}: the aggregate shrank from {answers} to {now}"
        );
        answers = now;
        assert_answers_match(&snap.prices, &server.dataset);
        assert!(
            snapshot::list(&snapshots).unwrap().len() <= 5 + 1,
            "retention keeps 5 (+1 being written)"
        );
    }
    assert!(answers > 0);
}

/// A truncated newest file (a disk that lost the tail) is skipped, with a
/// log line, and the daemon resumes from the one before.
#[test]
fn a_truncated_newest_snapshot_is_skipped_and_the_daemon_resumes_from_the_one_before() {
    let server = ServerThread::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snap");
    std::fs::create_dir(&snapshots).unwrap();
    let complete = hand_made(&snapshots);
    let newest = &snapshot::list(&snapshots).unwrap()[0];
    let bad = snapshots.join(snapshot::file_name(
        newest.time + chrono::Duration::hours(1),
    ));
    let bytes = std::fs::read(&complete).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let path = march_daemon(&server.url, &snapshots).write(&dir.path().join("pricegrid.toml"));

    let (mut child, mut lines) = spawn_daemon(&path);
    let log = read_until(&mut lines, "resuming from", 1);
    signal(&child, "-TERM");
    child.wait().unwrap();
    let bad_name = bad.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        log.contains("skipping snapshot") && log.contains(&bad_name),
        "{log}"
    );
    let resumed = log.lines().last().unwrap_or("");
    assert!(!resumed.contains(&bad_name), "{log}");
    let complete_name = complete.file_name().unwrap().to_string_lossy();
    assert!(resumed.contains(&*complete_name), "{log}");
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
    let out = Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs one round of `config` as the `fetch` command would and writes its
/// snapshot into `dir`; returns it.
async fn fetched_snapshot_in(config: TestConfig, server: &PriceServer, dir: &Path) -> Snapshot {
    let report = pricegrid::commands::fetch::fetch_round(
        arc(config.build()),
        &pricegrid::source::Source::remote(server.url()),
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

fn dir_arg(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

#[actix_rt::test]
async fn query_as_csv_lists_every_key_once_as_the_snapshot_holds_it() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let snap = fetched_snapshot_in(march(&server, 16), &server, dir.path()).await;

    let (code, csv_text, err) = pricegrid(&["query", "--dir", dir_arg(&dir), "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut n = 0;
    for rec in reader.records() {
        let rec = rec.unwrap();
        let e = Exchange::new(&rec[0]).unwrap();
        let s = Symbol::new(&rec[1]).unwrap();
        let d = day(&rec[2]);
        let want = snap
            .prices
            .answer(&e, &s, d)
            .expect("a key of the snapshot");
        let settled = ["final", "none"];
        assert!(
            settled.contains(&&rec[3]),
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
    let snap = fetched_snapshot_in(kraken_and_okex_mid_march(&server), &server, dir.path()).await;

    let (code, json, err) = pricegrid(&[
        "query",
        "--dir",
        dir_arg(&dir),
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
        let want = snap
            .prices
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
    fetched_snapshot_in(kraken_and_okex_mid_march(&server), &server, dir.path()).await;

    let (code, table, _) = pricegrid(&[
        "query",
        "--dir",
        dir_arg(&dir),
        "--format",
        "table",
        "--exchange",
        "kraken",
        "--from",
        "2020-03-13",
        "--to",
        "2020-03-13",
    ]);
    assert_eq!(code, 0);
    assert_eq!(table.lines().count(), 1 + 3, "{table}");
}

#[test]
fn query_at_a_time_before_every_snapshot_says_there_is_none_then() {
    let dir = tempfile::tempdir().unwrap();
    hand_made(dir.path());
    let (code, _, err) = pricegrid(&[
        "query",
        "--dir",
        dir_arg(&dir),
        "--at",
        "2001-01-01T00:00:00Z",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no snapshot") && err.contains("2001-01-01"),
        "{err}"
    );
}

#[test]
fn query_refuses_an_impossible_date_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    hand_made(dir.path());
    let (code, _, err) = pricegrid(&["query", "--dir", dir_arg(&dir), "--from", "2020-03-40"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--from") && err.contains("2020-03-40"),
        "{err}"
    );
}

#[test]
fn query_refuses_an_exchange_name_in_capitals() {
    let dir = tempfile::tempdir().unwrap();
    hand_made(dir.path());
    let (code, _, err) = pricegrid(&["query", "--dir", dir_arg(&dir), "--exchange", "Kraken"]);
    assert_ne!(code, 0);
    assert!(err.contains("Kraken"), "{err}");
}

#[test]
fn query_in_an_empty_directory_says_there_is_no_snapshot() {
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = pricegrid(&["query", "--dir", dir_arg(&empty)]);
    assert_eq!(code, 1);
    assert!(err.contains("no snapshot in"), "{err}");
}

#[test]
fn query_across_matches_a_hand_computed_day() {
    let dir = tempfile::tempdir().unwrap();
    hand_made(dir.path());
    let (code, out, err) = pricegrid(&[
        "query",
        "--dir",
        dir.path().to_str().unwrap(),
        "--across",
        "--format",
        "json",
    ]);
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

#[test]
fn snapshots_lists_each_file_with_its_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = hand_made(dir.path());
    std::fs::write(
        dir.path().join("2001-01-01T00-00-00Z.json"),
        "{\"format\": 1, \"trunc",
    )
    .unwrap();
    let (code, out, err) = pricegrid(&[
        "snapshots",
        "--dir",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{err}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[0]["file"]["path"],
        path.to_str().unwrap(),
        "newest first"
    );
    assert_eq!(list[0]["header"]["round"], 1);
    assert_eq!(
        list[0]["file"]["bytes"],
        std::fs::metadata(&path).unwrap().len()
    );
    assert!(list[1]["error"]
        .as_str()
        .unwrap()
        .contains("2001-01-01T00-00-00Z.json"));
    let (code, table, _) = pricegrid(&[
        "snapshots",
        "--dir",
        dir.path().to_str().unwrap(),
        "--format",
        "table",
    ]);
    assert_eq!(code, 0);
    assert!(table.starts_with("time"), "{table}");
    assert!(table.contains("unreadable"), "{table}");
}

/// A running daemon whose first round (over `universe`) is done and
/// written, the map it stored, and a client for its API.
struct Api {
    daemon: RunningDaemon,
    base: String,
    store: Store,
    client: awc::Client,
    _server: PriceServer,
    _dir: tempfile::TempDir,
}

impl Api {
    /// Starts a daemon on its own server, with the default 32 workers, and
    /// waits for its first round and a snapshot of it.
    async fn after_one_round(universe: impl FnOnce(TestConfig) -> TestConfig) -> Api {
        let server = spawn_price_server(|_| {});
        let dir = tempfile::tempdir().unwrap();
        let config = TestConfig::daemon(&server.url(), &dir.path().join("snap"));
        let path = universe(config).write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&path).await;
        daemon.first_round().await;
        // Queues behind the end-of-round write, so both are on disk after it.
        let written = daemon
            .pipeline
            .aggregator
            .send(WriteSnapshot)
            .await
            .unwrap()
            .expect("snapshots are on");
        assert!(written.is_ok());
        let store = daemon.pipeline.aggregator.send(GetStore).await.unwrap();
        Api {
            base: daemon.api_url(),
            daemon,
            store,
            client: awc::Client::default(),
            _server: server,
            _dir: dir,
        }
    }

    /// After a round over every exchange and symbol in March 2020.
    async fn after_march() -> Api {
        Api::after_one_round(|c| c.every_exchange().every_symbol().march()).await
    }

    /// After a round over every exchange, btc and eth, 2020-03-01..=14
    /// (308 keys): enough for a route's exchange, symbol and day filters
    /// each to leave keys out.
    async fn after_btc_and_eth_early_march() -> Api {
        Api::after_one_round(|c| {
            c.every_exchange()
                .symbols(["btc", "eth"])
                .window("2020-03-01", "2020-03-14")
        })
        .await
    }

    /// After a round of one task: for answers that do not depend on data.
    async fn after_one_task() -> Api {
        Api::after_one_round(|c| {
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
    let api = Api::after_march().await;
    let (code, body) = api.get("/v1/status").await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["round"], 1);
    assert_eq!(status["counts"]["tasks"], 1023);
    assert_eq!(status["workers"], 32);
    assert_eq!(status["stored"]["prices"], api.store.price_count());
    api.stop().await;
}

#[actix_rt::test]
async fn the_prices_route_gives_the_stored_closes_of_the_asked_keys() {
    let api = Api::after_btc_and_eth_early_march().await;
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

#[actix_rt::test]
async fn the_prices_route_as_csv_has_a_header_and_a_line_per_exchange() {
    let api = Api::after_btc_and_eth_early_march().await;
    let (code, body) = api
        .get("/v1/prices?symbol=eth&from=2020-03-01&to=2020-03-01&format=csv")
        .await;
    assert_eq!(code, 200);
    assert_eq!(body.lines().count(), 1 + 11, "{body}");
    api.stop().await;
}

#[actix_rt::test]
async fn the_aggregate_route_spans_the_stored_closes_across_exchanges() {
    let api = Api::after_btc_and_eth_early_march().await;
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
async fn the_snapshots_route_lists_the_end_of_round_snapshot() {
    let api = Api::after_one_task().await;
    let (code, body) = api.get("/v1/snapshots").await;
    assert_eq!(code, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(!list.is_empty(), "the end-of-round snapshot is listed");
    assert_eq!(list[0]["header"]["round"], 1);
    api.stop().await;
}

#[actix_rt::test]
async fn the_metrics_count_the_round_and_every_fetch() {
    let api = Api::after_march().await;
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
    let api = Api::after_one_task().await;
    for (route, parameter) in [
        ("/v1/prices?from=2020-13-01", "from"),
        ("/v1/prices?to=soon", "to"),
        ("/v1/prices?exchange=KRAKEN", "exchange"),
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
async fn an_oversized_query_string_is_a_400_in_json() {
    let api = Api::after_one_task().await;
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
    let api = Api::after_btc_and_eth_early_march().await;
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
    let api = Api::after_one_task().await;
    let (code, body) = api.get("/v2/nothing").await;
    assert_eq!(code, 404);
    assert!(body.contains("/v1/status"), "{body}");
    api.stop().await;
}
