//! Logged snapshots, resume after a restart or a crash, the `query` and
//! `snapshots` commands, and the daemon's HTTP API.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use pricegrid::actors::aggregator::{GetStore, RoundSummary, WriteSnapshot};
use pricegrid::daemon::Daemon;
use pricegrid::model::{CellState, Exchange, Ohlcv, Outcome, Symbol, TaskKey};
use pricegrid::snapshot::{self, Snapshot};
use pricegrid::store::{Observation, Store};
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(60);
const MARCH: &str = "[universe]\nexchanges = \"all\"\nsymbols = \"all\"\nfrom = \"2020-03-01\"\nto = \"2020-03-31\"\n\n";

async fn round_matching(
    rounds: &mut watch::Receiver<Option<RoundSummary>>,
    pred: impl Fn(&RoundSummary) -> bool,
) -> RoundSummary {
    actix_rt::time::timeout(LIMIT, rounds.wait_for(|r| r.as_ref().is_some_and(&pred)))
        .await
        .expect("a matching round in time")
        .expect("the producer is alive")
        .expect("matched")
}

#[actix_rt::test]
async fn a_restart_after_a_complete_round_fetches_no_settled_key() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pricegrid.toml");
    let text = daemon_config(
        &server.url(),
        &dir.path().join("snap"),
        &format!("{MARCH}[fetch]\nworkers = 8\n"),
    );
    std::fs::write(&path, text).unwrap();

    let daemon = Daemon::start(&path).await.expect("starts");
    let mut rounds = daemon.pipeline().rounds.clone();
    let ctl = daemon.controller();
    let run = actix_rt::spawn(daemon.run());
    let first = round_matching(&mut rounds, |r| r.round == 1).await;
    assert_eq!(first.counts.done(), 1023);
    ctl.shutdown();
    run.await.unwrap().expect("clean shutdown");
    let requests = server.stats.price_requests();
    assert_eq!(requests, 1023);

    let daemon = Daemon::start(&path).await.expect("restarts");
    let store = daemon.pipeline().aggregator.send(GetStore).await.unwrap();
    assert_eq!(
        store.price_count() + store.count(CellState::NoPrice),
        1023,
        "resumed with the whole map"
    );
    let mut rounds = daemon.pipeline().rounds.clone();
    let ctl = daemon.controller();
    let run = actix_rt::spawn(daemon.run());
    let next = round_matching(&mut rounds, |r| r.round == 2).await;
    assert_eq!(
        next.counts.tasks, 0,
        "rounds are numbered on and nothing is due"
    );
    assert_eq!(
        server.stats.price_requests(),
        requests,
        "no request for a settled key"
    );
    ctl.shutdown();
    run.await.unwrap().expect("clean shutdown");
}

#[test]
fn sigkill_during_snapshot_writes_never_costs_the_newest_complete_snapshot() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(4));
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snap");
    let path = dir.path().join("pricegrid.toml");
    let text = daemon_config(
        &server.url,
        &snapshots,
        &format!("{MARCH}[fetch]\nworkers = 2\n"),
    )
    .replace(
        "[snapshot]\ndir",
        "[snapshot]\nevery = \"40ms\"\nkeep = 5\ndir",
    );
    std::fs::write(&path, text).unwrap();

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

    // A truncated newest file (a disk that lost the tail) is skipped, with
    // a log line, and the daemon resumes from the one before.
    let files = snapshot::list(&snapshots).unwrap();
    let newest = files.last().unwrap();
    let bad = snapshots.join(snapshot::file_name(
        newest.time + chrono::Duration::hours(1),
    ));
    let bytes = std::fs::read(&newest.path).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let (mut child, mut lines) = spawn_daemon(&path);
    let log = read_until(&mut lines, "resuming from", 1);
    signal(&child, "-TERM");
    child.wait().unwrap();
    let bad_name = bad.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        log.contains("skipping snapshot") && log.contains(&bad_name),
        "{log}"
    );
    assert!(
        !log.lines().last().unwrap_or("").contains(&bad_name),
        "{log}"
    );
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

#[actix_rt::test]
async fn query_outputs_equal_the_snapshot_and_csv_parses_back() {
    let server = spawn_price_server(|_| {});
    let report = pricegrid::commands::fetch::fetch_round(
        arc(march_config(&server, 16)),
        &pricegrid::source::Source::remote(server.url()),
        false,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    report
        .snapshot
        .write_atomic(
            &dir.path()
                .join(snapshot::file_name(report.snapshot.created)),
        )
        .unwrap();
    let d = dir.path().to_str().unwrap();

    let (code, csv_text, err) = pricegrid(&["query", "--dir", d, "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let mut n = 0;
    for rec in reader.records() {
        let rec = rec.unwrap();
        let e = Exchange::new(&rec[0]).unwrap();
        let s = Symbol::new(&rec[1]).unwrap();
        let d = day(&rec[2]);
        let want = report
            .snapshot
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

    let (code, json, err) = pricegrid(&[
        "query",
        "--dir",
        d,
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
        let want = report
            .snapshot
            .prices
            .answer(&e, &s, day(r["day"].as_str().unwrap()))
            .unwrap();
        assert_eq!(r["close"].as_f64(), want.map(|p| p.close));
        assert!(r.get("open").is_none(), "only the asked field");
    }

    let (code, table, _) = pricegrid(&[
        "query",
        "--dir",
        d,
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

    let (code, _, err) = pricegrid(&["query", "--dir", d, "--at", "2001-01-01T00:00:00Z"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no snapshot") && err.contains("2001-01-01"),
        "{err}"
    );
    let (code, _, err) = pricegrid(&["query", "--dir", d, "--from", "2020-03-40"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--from") && err.contains("2020-03-40"),
        "{err}"
    );
    let (code, _, err) = pricegrid(&["query", "--dir", d, "--exchange", "Kraken"]);
    assert_ne!(code, 0);
    assert!(err.contains("Kraken"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = pricegrid(&["query", "--dir", empty.path().to_str().unwrap()]);
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

async fn get(client: &awc::Client, url: String) -> (u16, String) {
    let mut resp = client
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

#[actix_rt::test]
async fn every_api_route_answers_good_and_bad_parameters() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pricegrid.toml");
    std::fs::write(
        &path,
        daemon_config(&server.url(), &dir.path().join("snap"), MARCH),
    )
    .unwrap();
    let daemon = Daemon::start(&path).await.expect("starts");
    let api = format!("http://{}", daemon.api_addr().expect("the API is on"));
    let mut rounds = daemon.pipeline().rounds.clone();
    let aggregator = daemon.pipeline().aggregator.clone();
    let ctl = daemon.controller();
    let run = actix_rt::spawn(daemon.run());
    round_matching(&mut rounds, |r| r.round == 1).await;
    // Queues behind the end-of-round write, so both are on disk after it.
    let written = aggregator
        .send(WriteSnapshot)
        .await
        .unwrap()
        .expect("snapshots are on");
    assert!(written.is_ok());
    let store = aggregator.send(GetStore).await.unwrap();
    let client = awc::Client::default();

    let (code, body) = get(&client, format!("{api}/v1/status")).await;
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["round"], 1);
    assert_eq!(status["counts"]["tasks"], 1023);
    assert_eq!(status["workers"], 32);
    assert_eq!(status["stored"]["prices"], store.price_count());

    let (code, body) = get(
        &client,
        format!("{api}/v1/prices?exchange=kraken,okex&symbol=btc&from=2020-03-10&to=2020-03-14"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 10);
    for r in &rows {
        let e = Exchange::new(r["exchange"].as_str().unwrap()).unwrap();
        let want = store
            .answer(
                &e,
                &Symbol::new("btc").unwrap(),
                day(r["day"].as_str().unwrap()),
            )
            .unwrap();
        assert_eq!(r["close"].as_f64(), want.map(|p| p.close));
    }
    let (code, body) = get(
        &client,
        format!("{api}/v1/prices?symbol=eth&from=2020-03-01&to=2020-03-01&format=csv"),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body.lines().count(), 1 + 11, "{body}");

    let (code, body) = get(
        &client,
        format!("{api}/v1/aggregate?symbol=btc&from=2020-03-13&to=2020-03-13"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let across: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(across.len(), 1);
    let closes: Vec<f64> = store
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

    let (code, body) = get(&client, format!("{api}/v1/snapshots")).await;
    assert_eq!(code, 200, "{body}");
    let list: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(!list.is_empty(), "the end-of-round snapshot is listed");
    assert_eq!(list[0]["header"]["round"], 1);

    let (code, body) = get(&client, format!("{api}/metrics")).await;
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

    for (url, parameter) in [
        ("/v1/prices?from=2020-13-01", "from"),
        ("/v1/prices?to=soon", "to"),
        ("/v1/prices?exchange=KRAKEN", "exchange"),
        ("/v1/prices?field=price", "field"),
        ("/v1/prices?format=xml", "format"),
        ("/v1/prices?from=2020-03-05&to=2020-03-01", "to"),
        ("/v1/prices?limit=5", "limit"),
        ("/v1/aggregate?symbol=B!", "symbol"),
        ("/v1/aggregate?field=close", "field"),
        ("/v1/status?verbose=1", "verbose"),
        ("/v1/snapshots?page=2", "page"),
    ] {
        let (code, body) = get(&client, format!("{api}{url}")).await;
        assert_eq!(code, 400, "{url}: {body}");
        let err: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["parameter"], parameter, "{url}: {body}");
        assert!(!err["error"].as_str().unwrap().is_empty());
    }
    let (code, body) = get(&client, format!("{api}/v2/nothing")).await;
    assert_eq!(code, 404);
    assert!(body.contains("/v1/status"), "{body}");

    ctl.shutdown();
    run.await.unwrap().expect("clean shutdown");
}
