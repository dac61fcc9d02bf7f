//! The daemon: incremental rounds, hot reload, graceful shutdown, against
//! the real built-in server on loopback and the real actors.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pricegrid::actors::aggregator::TakeSnapshot;
use pricegrid::actors::producer::{RoundError, RunRound};
use pricegrid::actors::supervisor::GetStats;
use pricegrid::clock::Clock;
use pricegrid::config::OhlcOrder;
use pricegrid::server::{Dataset, PriceServer, ServerStats};

/// Every exchange and symbol over March 2020 (1,023 tasks) with 4
/// workers, a round every 200 ms: the config the reload tests start from
/// and then edit.
fn march_every_200ms(server: &PriceServer, dir: &Path) -> TestConfig {
    TestConfig::daemon(&server.url(), &dir.join("snap"))
        .every_exchange()
        .every_symbol()
        .march()
        .workers(4)
        .interval(Duration::from_millis(200))
}

/// As `march_every_200ms`, for kraken's btc alone (31 tasks).
fn kraken_btc_in_march(server: &PriceServer, dir: &Path) -> TestConfig {
    march_every_200ms(server, dir)
        .exchanges(["kraken"])
        .symbols(["btc"])
}

/// Waits (off the actix thread) until the server has answered `count`
/// price requests in all.
async fn price_requests_reach(stats: &Arc<ServerStats>, count: u64) -> bool {
    let stats = stats.clone();
    actix_rt::task::spawn_blocking(move || stats.wait_for_price_requests(count, WAIT_LIMIT))
        .await
        .expect("the waiting thread ends")
}

#[actix_rt::test]
async fn the_second_round_fetches_only_provisional_tasks() {
    // The daemon and the server share a clock that stands at noon: on the
    // machine's clock a run that crosses UTC midnight sees another today.
    let clock = Clock::manual(at("2026-11-24T12:00:00Z"));
    let today = clock.today();
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
    let server = spawn_price_server({
        let clock = clock.clone();
        move |o| {
            o.dataset = Arc::new(Dataset::from_csv(&csv_path).unwrap());
            o.clock = clock;
        }
    });
    let path = TestConfig::daemon(&server.url(), &dir.path().join("snap"))
        .ohlc_order(OhlcOrder::Reject)
        .settle_after(Duration::ZERO)
        .exchanges(["kraken", "bitstamp"])
        .symbols(["btc", "eth"])
        .last_days(3)
        .workers(4)
        .max_attempts(1)
        .interval(Duration::from_secs(3600))
        .write(&dir.path().join("pricegrid.toml"));

    let mut daemon = RunningDaemon::start_with_clock(&path, clock).await;
    let c = daemon.first_round().await.counts;
    assert_eq!(
        (c.tasks, c.finals, c.provisional, c.rejected, c.failed),
        (12, 6, 4, 2, 0)
    );
    assert_eq!(server.stats.price_requests(), 12);

    let second = daemon
        .pipeline
        .producer
        .send(RunRound)
        .await
        .unwrap()
        .expect("round 2 runs");
    // Refetched: today's 4 provisional keys only; the 6 final and the 2
    // rejected closed-day keys are settled.
    assert_eq!(second.counts.tasks, 4);
    assert_eq!(server.stats.price_requests(), 12 + 4);
    assert_eq!(second.counts.provisional, 4, "today is still open");

    let report = daemon.shutdown().await;
    assert_eq!(report.prices, 10);
}

/// A plain write (not a rename) is noticed, and a symbol it adds is
/// fetched in a later round: its 31 tasks, and only those.
#[actix_rt::test]
async fn a_plain_write_that_adds_a_symbol_fetches_its_tasks_in_a_later_round() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let config = kraken_btc_in_march(&server, dir.path());
    let path = config.write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    assert_eq!(daemon.first_round().await.counts.tasks, 31);

    config.symbols(["btc", "eth"]).write(&path);
    daemon.reloaded_to(1).await;
    let with_eth = daemon
        .round("with eth", |r| r.counts.tasks == 31 && r.round > 1)
        .await;
    assert_eq!(with_eth.counts.done(), 31);
    daemon.shutdown().await;
}

/// An edit saved the way editors save (a new file renamed over the old)
/// widens the universe to all exchanges and symbols: the next rounds fetch
/// everything not yet settled, and the map ends equal to the server's.
#[actix_rt::test]
async fn an_edit_saved_by_rename_widens_the_universe_to_every_exchange_and_symbol() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let config = kraken_btc_in_march(&server, dir.path());
    let path = config.write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    assert_eq!(daemon.first_round().await.counts.tasks, 31);

    config.every_exchange().every_symbol().save_by_rename(&path);
    daemon.reloaded_to(1).await;
    let all = daemon
        .round("over the whole universe", |r| r.counts.tasks == 1023 - 31)
        .await;
    assert_eq!(all.counts.done(), all.counts.tasks);
    assert_eq!(all.counts.failed, 0);
    let snap = daemon.pipeline.aggregator.send(TakeSnapshot).await.unwrap();
    assert_matches_server(&snap, &server, "2020-03-01", "2020-03-31");
    daemon.shutdown().await;
}

/// 4 -> 16 workers while a round runs: the pool is replaced and the round
/// still ends with every task done and every price the server's.
#[actix_rt::test]
async fn a_new_worker_count_mid_round_starts_a_new_pool_and_loses_no_task() {
    let server = spawn_price_server(|o| o.latency = Duration::from_millis(5));
    let dir = tempfile::tempdir().unwrap();
    let config = march_every_200ms(&server, dir.path());
    let path = config.write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    assert!(
        price_requests_reach(&server.stats, 50).await,
        "the round over the whole universe did not start"
    );

    config.workers(16).save_by_rename(&path);
    daemon.reloaded_to(1).await;
    assert!(
        daemon.pipeline.rounds.borrow().is_none(),
        "the reload landed while round 1 still ran"
    );
    let round = daemon
        .round("over the whole universe", |r| r.counts.tasks == 1023)
        .await;
    assert_eq!(round.counts.done(), round.counts.tasks);
    assert_eq!(round.counts.failed, 0);
    let stats = daemon.pipeline.supervisor.send(GetStats).await.unwrap();
    assert_eq!((stats.workers, stats.pools_started), (16, 2));
    let snap = daemon.pipeline.aggregator.send(TakeSnapshot).await.unwrap();
    assert_matches_server(&snap, &server, "2020-03-01", "2020-03-31");
    daemon.shutdown().await;
}

/// A broken file is rejected with its position; the config in force stays
/// (same version, same pool) and rounds go on.
#[actix_rt::test]
async fn a_broken_file_is_rejected_with_its_position_and_the_old_config_keeps_running() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = kraken_btc_in_march(&server, dir.path()).write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    daemon.first_round().await;

    // The text is the subject here: the error must point into it.
    save_by_rename(
        &path,
        r#"[fetch]
workers = 0
"#,
    );
    let rejected = daemon.reload("rejected", |s| s.last_error.is_some()).await;
    let error = rejected.last_error.unwrap();
    assert!(
        error.contains("pricegrid.toml:2:1: fetch.workers"),
        "{error}"
    );
    assert_eq!(rejected.version, 0, "the config in force is the first");
    let after = daemon.pipeline.producer.send(RunRound).await.unwrap();
    assert!(
        after.is_ok()
            || matches!(
                &after,
                Err(RoundError::Busy(_) | RoundError::NothingDue { .. })
            ),
        "the daemon still runs rounds: {after:?}"
    );
    assert_eq!(
        daemon
            .pipeline
            .supervisor
            .send(GetStats)
            .await
            .unwrap()
            .workers,
        4
    );
    daemon.shutdown().await;
}

#[actix_rt::test]
async fn a_shutdown_mid_round_keeps_every_result_received() {
    let server = spawn_price_server(|o| o.latency = Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let path = TestConfig::daemon(&server.url(), &dir.path().join("snap"))
        .every_exchange()
        .every_symbol()
        .march()
        .workers(4)
        .drain_timeout(Duration::from_secs(5))
        .write(&dir.path().join("pricegrid.toml"));
    let daemon = RunningDaemon::start(&path).await;

    assert!(
        price_requests_reach(&server.stats, 100).await,
        "the round made no progress"
    );
    let before = daemon.pipeline.aggregator.send(TakeSnapshot).await.unwrap();
    let report = daemon.shutdown().await;
    assert_eq!(report.abandoned, 0);
    let record =
        pricegrid::record::Record::open_read_only(&report.record).expect("the record opens");
    let rounds = record.rounds().unwrap();
    assert_eq!(rounds[0].status.as_str(), "aborted", "{rounds:?}");
    assert!(rounds[0].counts.done() < 1023, "the round was cut short");
    let (last, _) = record.load().unwrap();
    for (exchange, symbol, d, cell) in before.prices.iter() {
        let got = last.get(exchange, symbol, d).expect("in the record");
        assert_eq!(
            (got.state, got.price, got.flags),
            (cell.state, cell.price, cell.flags),
            "{exchange}/{symbol}/{d}"
        );
    }
    assert!(last.price_count() >= before.price_count());
}

/// The binary, a real SIGTERM: exit 0 and a record, up to date, that holds
/// only the server's prices.
#[test]
fn sigterm_during_a_slow_round_exits_0_with_the_record_up_to_date() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snap");
    let path = TestConfig::daemon(&server.url, &snapshots)
        .every_exchange()
        .every_symbol()
        .march()
        .workers(4)
        .write(&dir.path().join("pricegrid.toml"));
    let (mut child, mut lines) = spawn_daemon(&path);
    let mut log = read_until(&mut lines, "round 1 started", 1);
    assert!(
        server.stats.wait_for_price_requests(60, WAIT_LIMIT),
        "the round did not progress"
    );
    signal(&child, "-TERM");
    read_to_end(lines, &mut log);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}\n{log}");
    assert!(
        log.contains("SIGTERM received") && log.contains("up to date"),
        "{log}"
    );
    // Its WAL is folded into the record before it exits: a stopped daemon
    // leaves the record at its size (a WAL of up to 64 MiB stayed beside it).
    let wal = std::fs::metadata(snapshots.with_extension("db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "bytes left in the WAL");
    let record =
        pricegrid::record::Record::open_read_only(&snapshots.with_extension("db")).unwrap();
    let (store, _) = record.load().unwrap();
    assert!(
        store.price_count() >= 40,
        "results before the signal are kept: {}",
        store.price_count()
    );
    let round = &record.rounds().unwrap()[0];
    assert_eq!(round.status, pricegrid::record::RoundStatus::Aborted);
    assert!(round.counts.done() < 1023, "the round was cut short");
    assert_answers_match(&store, &server.dataset);
}

/// While the daemon drains, a second signal (not a duplicate of the first
/// delivered at the same moment) ends it at once with 130.
#[test]
fn a_second_signal_during_the_drain_forces_the_exit() {
    let server = ServerThread::start(|o| o.latency = Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let path = TestConfig::daemon(&server.url, &dir.path().join("snap"))
        .exchanges(["kraken"])
        .symbols(["btc"])
        .window("2020-03-01", "2020-03-04")
        .workers(4)
        .drain_timeout(Duration::from_secs(30))
        .write(&dir.path().join("pricegrid.toml"));
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
    read_to_end(lines, &mut log);
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
    // Noon on a clock of its own: a run across UTC midnight would see a
    // second open day (yesterday's provisional and today's).
    let clock = Clock::manual(at("2026-11-24T12:00:00Z"));
    let server = spawn_price_server({
        let clock = clock.clone();
        move |o| o.clock = clock
    });
    let dir = tempfile::tempdir().unwrap();
    let hourly = TestConfig::daemon(&server.url(), &dir.path().join("snap"))
        .exchanges(["kraken"])
        .symbols(["btc"])
        .last_days(2)
        .interval(Duration::from_secs(3600));
    let path = hourly.write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start_with_clock(&path, clock).await;
    daemon.first_round().await;

    hourly
        .interval(Duration::from_millis(200))
        .save_by_rename(&path);
    daemon.reloaded_to(1).await;
    // With the old interval the next round would be an hour away.
    let started = std::time::Instant::now();
    let second = daemon.round("2", |r| r.round >= 2).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(second.counts.tasks, 1, "only today's key is open");
    daemon.shutdown().await;
}

/// Two daemons on one record: the second exits 1 naming the first's pid
/// (before, both ran and the first's rounds vanished from `rounds`), and
/// a reader (`query`) still works beside the running one.
#[test]
fn a_second_daemon_on_the_same_record_is_refused_and_readers_still_read() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(5));
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snap");
    let first = TestConfig::daemon(&server.url, &snapshots)
        .exchanges(["kraken"])
        .symbols(["btc"])
        .march()
        .write(&dir.path().join("first.toml"));
    let (mut child, mut lines) = spawn_daemon(&first);
    // Recorded, not only finished: the record is read below.
    let mut log = read_until(&mut lines, "round 1 recorded", 1);
    let record = snapshots.with_extension("db");
    let second = TestConfig::daemon(&server.url, &snapshots)
        .exchanges(["okex"])
        .symbols(["eth"])
        .march()
        .write(&dir.path().join("second.toml"));
    let (mut other, other_lines) = spawn_daemon(&second);
    let mut other_log = String::new();
    read_to_end(other_lines, &mut other_log);
    let exit = other.wait().unwrap();
    assert_eq!(exit.code(), Some(1), "{other_log}");
    let expected = format!(
        "record {} is in use by pid {} (started ",
        record.display(),
        child.id()
    );
    assert!(other_log.contains(&expected), "{other_log}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .args(["query", "--db"])
        .arg(&record)
        .args(["--exchange", "kraken", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"kraken\""));
    signal(&child, "-TERM");
    read_to_end(lines, &mut log);
    assert!(child.wait().unwrap().success(), "{log}");
    let rounds = pricegrid::record::Record::open_read_only(&record)
        .unwrap()
        .rounds()
        .unwrap();
    assert!(!rounds.is_empty(), "the first daemon's rounds are kept");
}
