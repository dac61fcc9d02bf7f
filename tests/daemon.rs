//! The daemon: incremental rounds, hot reload, graceful shutdown, against
//! the real built-in server on loopback and the real actors.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use pricegrid::actors::aggregator::{RoundSummary, TakeSnapshot};
use pricegrid::actors::producer::RunRound;
use pricegrid::actors::supervisor::GetStats;
use pricegrid::daemon::{Daemon, ReloadStatus};
use pricegrid::server::Dataset;
use pricegrid::snapshot::Snapshot;
use tokio::sync::watch;

const LIMIT: Duration = Duration::from_secs(60);

fn config_text(url: &url::Url, snapshots: &Path, extra: &str) -> String {
    daemon_config(url, snapshots, extra)
}

/// Writes like an editor that saves to a new file and renames it over the old.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn round_matching(
    rounds: &mut watch::Receiver<Option<RoundSummary>>,
    what: &str,
    pred: impl Fn(&RoundSummary) -> bool,
) -> RoundSummary {
    let got = actix_rt::time::timeout(LIMIT, rounds.wait_for(|r| r.as_ref().is_some_and(&pred)))
        .await
        .unwrap_or_else(|_| panic!("no round {what} within {LIMIT:?}"))
        .expect("the producer is alive");
    got.expect("matched a round")
}

async fn reload_matching(
    reloads: &mut watch::Receiver<ReloadStatus>,
    what: &str,
    pred: impl Fn(&ReloadStatus) -> bool,
) -> ReloadStatus {
    actix_rt::time::timeout(LIMIT, reloads.wait_for(pred))
        .await
        .unwrap_or_else(|_| panic!("no reload {what} within {LIMIT:?}"))
        .expect("the daemon is alive")
        .clone()
}

#[actix_rt::test]
async fn the_second_round_fetches_only_provisional_tasks() {
    let today = Utc::now().date_naive();
    let dir = tempfile::tempdir().unwrap();
    // Three days up to today; two closed-day rows break low <= open and are
    // rejected (source.ohlc_order = "reject"): rejected cells settle.
    let mut csv = String::from("exchange,symbol,day,open,high,low,close,volume\n");
    for (i, d) in [
        today - chrono::Days::new(2),
        today - chrono::Days::new(1),
        today,
    ]
    .iter()
    .enumerate()
    {
        for exchange in ["kraken", "bitstamp"] {
            for symbol in ["btc", "eth"] {
                let broken = i < 2 && exchange == "kraken" && symbol == "eth";
                let low = if broken { 11.0 } else { 9.0 };
                csv.push_str(&format!("{exchange},{symbol},{d},10,12,{low},11,100\n"));
            }
        }
    }
    let csv_path = dir.path().join("prices.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let server =
        spawn_price_server(|o| o.dataset = Arc::new(Dataset::from_csv(&csv_path).unwrap()));
    let path = dir.path().join("pricegrid.toml");
    let extra = "[universe]\nexchanges = [\"kraken\", \"bitstamp\"]\nsymbols = [\"btc\", \"eth\"]\nlast_days = 3\n\n\
                 [fetch]\nworkers = 4\nmax_attempts = 1\n\n[schedule]\ninterval = \"1h\"\n";
    let text = config_text(&server.url(), &dir.path().join("snap"), extra).replace(
        "[source]\n",
        "[source]\nohlc_order = \"reject\"\nsettle_after = \"0s\"\n",
    );
    std::fs::write(&path, text).unwrap();

    let daemon = Daemon::start(&path).await.expect("daemon starts");
    let mut rounds = daemon.pipeline().rounds.clone();
    let producer = daemon.pipeline().producer.clone();
    let ctl = daemon.controller();
    let run = actix_rt::spawn(daemon.run());

    let first = round_matching(&mut rounds, "1", |r| r.round == 1).await;
    let c = first.counts;
    assert_eq!(
        (c.tasks, c.finals, c.provisional, c.rejected, c.failed),
        (12, 6, 4, 2, 0)
    );
    assert_eq!(server.stats.price_requests(), 12);

    let second = producer
        .send(RunRound)
        .await
        .unwrap()
        .expect("round 2 runs");
    // Refetched: today's 4 provisional keys only; the 6 final and the 2
    // rejected closed-day keys are settled.
    assert_eq!(second.counts.tasks, 4);
    assert_eq!(server.stats.price_requests(), 12 + 4);
    assert_eq!(second.counts.provisional, 4, "today is still open");

    ctl.shutdown();
    let report = run.await.unwrap().expect("clean shutdown");
    assert_eq!(report.prices, 10);
}

#[actix_rt::test]
async fn reload_applies_a_new_universe_and_pool_and_rejects_a_broken_file() {
    let server = spawn_price_server(|o| o.latency = Duration::from_millis(5));
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snap");
    let path = dir.path().join("pricegrid.toml");
    let universe = |exchanges: &str, symbols: &str| {
        format!("[universe]\nexchanges = {exchanges}\nsymbols = {symbols}\nfrom = \"2020-03-01\"\nto = \"2020-03-31\"\n\n")
    };
    let text = |u: String, workers: usize| {
        config_text(
            &server.url(),
            &snapshots,
            &format!("{u}[fetch]\nworkers = {workers}\n\n[schedule]\ninterval = \"200ms\"\n"),
        )
    };
    std::fs::write(&path, text(universe("[\"kraken\"]", "[\"btc\"]"), 4)).unwrap();

    let daemon = Daemon::start(&path).await.expect("daemon starts");
    let pipeline = daemon.pipeline().clone();
    let mut rounds = pipeline.rounds.clone();
    let mut reloads = daemon.reloads();
    let ctl = daemon.controller();
    let run = actix_rt::spawn(daemon.run());
    let first = round_matching(&mut rounds, "1", |r| r.round == 1).await;
    assert_eq!(first.counts.tasks, 31);

    // 1. Add a symbol (plain write): its 31 tasks appear in a later round.
    std::fs::write(
        &path,
        text(universe("[\"kraken\"]", "[\"btc\", \"eth\"]"), 4),
    )
    .unwrap();
    reload_matching(&mut reloads, "to version 1", |s| s.version == 1).await;
    let with_eth = round_matching(&mut rounds, "with eth", |r| {
        r.counts.tasks == 31 && r.round > 1
    })
    .await;
    assert_eq!(with_eth.counts.done(), 31);

    // 2. The whole universe (saved by rename), and while that round runs,
    //    4 -> 16 workers: the pool is replaced and no task is lost.
    save_by_rename(&path, &text(universe("\"all\"", "\"all\""), 4));
    reload_matching(&mut reloads, "to version 2", |s| s.version == 2).await;
    // Only the round over the new universe makes new requests.
    let before = server.stats.price_requests();
    let stats = server.stats.clone();
    let running =
        actix_rt::task::spawn_blocking(move || stats.wait_for_price_requests(before + 50, LIMIT))
            .await
            .unwrap();
    assert!(running, "the round over the whole universe did not start");
    save_by_rename(&path, &text(universe("\"all\"", "\"all\""), 16));
    reload_matching(&mut reloads, "to version 3", |s| s.version == 3).await;
    let big = round_matching(&mut rounds, "over the whole universe", |r| {
        r.counts.tasks == 1023 - 62
    })
    .await;
    assert_eq!(big.counts.done(), big.counts.tasks);
    assert_eq!(big.counts.failed, 0);
    let stats = pipeline.supervisor.send(GetStats).await.unwrap();
    assert_eq!((stats.workers, stats.pools_started), (16, 2));
    let snap = pipeline.aggregator.send(TakeSnapshot).await.unwrap();
    assert_matches_server(&snap, &server, "2020-03-01", "2020-03-31");

    // 3. A broken file is rejected with its position; the old config stays.
    save_by_rename(&path, "[fetch]\nworkers = 0\n");
    let rejected = reload_matching(&mut reloads, "rejected", |s| s.last_error.is_some()).await;
    let error = rejected.last_error.unwrap();
    assert!(
        error.contains("pricegrid.toml:2:1: fetch.workers"),
        "{error}"
    );
    assert_eq!(rejected.version, 3);
    let after = pipeline.producer.send(RunRound).await.unwrap();
    assert!(
        after.is_ok()
            || matches!(
                &after,
                Err(pricegrid::actors::producer::RoundError::Busy(_))
            ),
        "the daemon still runs rounds: {after:?}"
    );
    assert_eq!(
        pipeline.supervisor.send(GetStats).await.unwrap().workers,
        16
    );

    ctl.shutdown();
    run.await.unwrap().expect("clean shutdown");
}

#[actix_rt::test]
async fn a_shutdown_mid_round_keeps_every_result_received() {
    let server = spawn_price_server(|o| o.latency = Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pricegrid.toml");
    let extra = "[universe]\nexchanges = \"all\"\nsymbols = \"all\"\nfrom = \"2020-03-01\"\nto = \"2020-03-31\"\n\n\
                 [fetch]\nworkers = 4\ndrain_timeout = \"5s\"\n";
    std::fs::write(
        &path,
        config_text(&server.url(), &dir.path().join("snap"), extra),
    )
    .unwrap();
    let daemon = Daemon::start(&path).await.expect("daemon starts");
    let aggregator = daemon.pipeline().aggregator.clone();
    let ctl = daemon.controller();
    let run = actix_rt::spawn(daemon.run());

    let server_stats = server.stats.clone();
    let progressed =
        actix_rt::task::spawn_blocking(move || server_stats.wait_for_price_requests(100, LIMIT))
            .await
            .unwrap();
    assert!(progressed, "the round made no progress");
    let before = aggregator.send(TakeSnapshot).await.unwrap();
    ctl.shutdown();
    let report = run.await.unwrap().expect("clean shutdown");
    assert_eq!(report.abandoned, 0);
    let last = Snapshot::load(&report.snapshot).expect("the final snapshot loads");
    assert!(last.counts.done() < 1023, "the round was cut short");
    for (exchange, symbol, d, outcome) in before.prices.iter() {
        assert_eq!(
            last.prices.get(exchange, symbol, d),
            Some(outcome),
            "{exchange}/{symbol}/{d}"
        );
    }
    assert!(last.price_count() >= before.price_count());
}

/// The binary, a real SIGTERM: exit 0 and a final snapshot that holds only
/// the server's prices.
#[test]
fn sigterm_during_a_slow_round_exits_0_with_a_final_snapshot() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let snapshots: PathBuf = dir.path().join("snap");
    let path = dir.path().join("pricegrid.toml");
    let extra = "[universe]\nexchanges = \"all\"\nsymbols = \"all\"\nfrom = \"2020-03-01\"\nto = \"2020-03-31\"\n\n[fetch]\nworkers = 4\n";
    std::fs::write(&path, config_text(&server.url, &snapshots, extra)).unwrap();
    let (mut child, mut lines) = spawn_daemon(&path);
    let mut log = read_until(&mut lines, "round 1 started", 1);
    assert!(
        server.stats.wait_for_price_requests(60, LIMIT),
        "the round did not progress"
    );
    signal(&child, "-TERM");
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}\n{log}");
    assert!(
        log.contains("SIGTERM received") && log.contains("final snapshot"),
        "{log}"
    );
    let files: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let snap = Snapshot::load(&files[0]).unwrap();
    assert!(
        snap.price_count() >= 40,
        "results before the signal are kept: {}",
        snap.price_count()
    );
    assert!(snap.counts.done() < 1023, "the round was cut short");
    assert_answers_match(&snap.prices, &server.dataset);
}

/// While the daemon drains, a second signal (not a duplicate of the first
/// delivered at the same moment) ends it at once with 130.
#[test]
fn a_second_signal_during_the_drain_forces_the_exit() {
    let server = ServerThread::start(|o| o.latency = Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pricegrid.toml");
    let extra = "[universe]\nexchanges = [\"kraken\"]\nsymbols = [\"btc\"]\nfrom = \"2020-03-01\"\nto = \"2020-03-04\"\n\n\
                 [fetch]\nworkers = 4\ndrain_timeout = \"30s\"\n";
    std::fs::write(
        &path,
        config_text(&server.url, &dir.path().join("snap"), extra),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let (mut child, mut lines) = spawn_daemon(&path);
    let mut log = read_until(&mut lines, "round 1 started", 1);
    // Two at once, as `timeout` sends them: one request.
    signal(&child, "-TERM");
    signal(&child, "-TERM");
    log.push_str(&read_until(&mut lines, "shutting down", 1));
    // The deliberate pause is what makes the next one a second request.
    std::thread::sleep(Duration::from_millis(800));
    signal(&child, "-TERM");
    for line in lines {
        log.push_str(&line.unwrap());
        log.push('\n');
    }
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130), "{log}");
    assert!(log.contains("second signal"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "it did not wait for the drain: {log}"
    );
}

/// A shorter `schedule.interval` applied by reload reschedules the
/// pending round instead of waiting out the old interval.
#[actix_rt::test]
async fn a_reloaded_interval_reschedules_the_next_round() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pricegrid.toml");
    let text = |interval: &str| {
        config_text(
            &server.url(),
            &dir.path().join("snap"),
            &format!(
                "[universe]\nexchanges = [\"kraken\"]\nsymbols = [\"btc\"]\nlast_days = 2\n\n[schedule]\ninterval = \"{interval}\"\n"
            ),
        )
    };
    std::fs::write(&path, text("1h")).unwrap();
    let daemon = Daemon::start(&path).await.expect("daemon starts");
    let mut rounds = daemon.pipeline().rounds.clone();
    let mut reloads = daemon.reloads();
    let ctl = daemon.controller();
    let run = actix_rt::spawn(daemon.run());
    round_matching(&mut rounds, "1", |r| r.round == 1).await;
    save_by_rename(&path, &text("200ms"));
    reload_matching(&mut reloads, "to version 1", |s| s.version == 1).await;
    // With the old interval the next round would be an hour away.
    let started = std::time::Instant::now();
    let second = round_matching(&mut rounds, "2", |r| r.round >= 2).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(second.counts.tasks, 1, "only today's key is open");
    ctl.shutdown();
    run.await.unwrap().expect("clean shutdown");
}
