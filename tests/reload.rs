//! Hot reload of the daemon's config: a reload is applied whole at a round
//! boundary, a broken, empty or half-written file never reaches the actors,
//! and a reload never delays a shutdown. Real daemon, real actors, the real
//! built-in price server on loopback.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{
    read_until, round_matching_within, save_by_rename, signal, spawn_daemon, spawn_price_server,
    within, RunningDaemon, TestConfig,
};
use pricegrid::actors::aggregator::GetStatus;
use pricegrid::daemon::{Daemon, ReloadOutcome};
use pricegrid::server::{PriceServer, ServerStats, DEFAULT_SEED};
use pricegrid::store::Store;
use tempfile::TempDir;

/// Bound of any one wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

/// A daemon config: kraken's btc over `2020-03-01..=to`, `workers`
/// fetchers, prices from the built-in server (`source` for another),
/// snapshots under `dir`, the API on an ephemeral loopback port, and rounds
/// an hour apart, so that after the first one (which the daemon starts
/// itself) rounds run when a test asks for one.
fn kraken_btc(dir: &Path, to: &str, workers: usize) -> TestConfig {
    TestConfig::new()
        .timeout(Duration::from_secs(5))
        .exchanges(["kraken"])
        .symbols(["btc"])
        .window("2020-03-01", to)
        .workers(workers)
        .quick_backoff()
        .task_deadline(Duration::from_secs(6))
        .drain_timeout(Duration::from_secs(2))
        .interval(Duration::from_secs(3600))
        .snapshots(&dir.join("snap"))
        .api_on_loopback()
}

/// What a test reloads: a price server, a daemon fetching kraken's btc
/// from it over `2020-03-01..=to`, and the daemon's config file
/// (`pricegrid.toml` in a temporary dir).
struct Fixture {
    server: PriceServer,
    dir: TempDir,
    path: PathBuf,
    to: &'static str,
    daemon: RunningDaemon,
}

impl Fixture {
    /// Starts a price server that answers each price request after
    /// `latency`, and a daemon on it with `workers` fetchers; each wait on
    /// the daemon is bounded by `LIMIT`.
    async fn start(latency: Duration, to: &'static str, workers: usize) -> Fixture {
        let server = spawn_price_server(|o| o.latency = latency);
        let dir = tempfile::tempdir().unwrap();
        let config = kraken_btc(dir.path(), to, workers).source(&server.url());
        let path = config.save_by_rename(&dir.path().join("pricegrid.toml"));
        let daemon = RunningDaemon::start(&path).await.waiting_at_most(LIMIT);
        Fixture {
            server,
            dir,
            path,
            to,
            daemon,
        }
    }

    /// The daemon's config with `workers` fetchers instead, for an edit.
    fn with_workers(&self, workers: usize) -> TestConfig {
        kraken_btc(self.dir.path(), self.to, workers).source(&self.server.url())
    }
}

/// Runs `scenario` on a new `Fixture` (see `Fixture::start`), then shuts
/// its daemon down, which must be clean; all within 20 s.
async fn scenario(
    latency: Duration,
    to: &'static str,
    workers: usize,
    scenario: impl AsyncFnOnce(&mut Fixture),
) {
    within(Duration::from_secs(20), async {
        let mut fixture = Fixture::start(latency, to, workers).await;
        scenario(&mut fixture).await;
        fixture.daemon.shutdown().await;
    })
    .await
}

/// Saves `text` in place: the file is truncated, then written.
fn save_in_place(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Waits (off the actix thread) until `stats` has seen `n` price requests.
async fn price_requests_reach(stats: &Arc<ServerStats>, n: u64) {
    let stats = stats.clone();
    let reached = actix_rt::task::spawn_blocking(move || stats.wait_for_price_requests(n, LIMIT))
        .await
        .unwrap();
    assert!(reached, "the server did not see {n} price requests");
}

/// "exchange/symbol" of every cell that `round` recorded, with how many.
fn written_in(store: &Store, round: u64) -> (std::collections::BTreeSet<String>, usize) {
    let mut pairs = std::collections::BTreeSet::new();
    let mut cells = 0;
    for (e, s, _, cell) in store.iter() {
        if cell.round == round {
            pairs.insert(format!("{e}/{s}"));
            cells += 1;
        }
    }
    (pairs, cells)
}

fn pairs(list: &[&str]) -> std::collections::BTreeSet<String> {
    list.iter().map(|p| p.to_string()).collect()
}

/// One HTTP request to the daemon's API on a fresh connection (so that no
/// kept-alive connection holds a server open): (status, body).
async fn http(method: &'static str, url: String) -> (u16, String) {
    actix_rt::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new().timeout(LIMIT).build();
        // A POST carries JSON, as the API requires of every POST.
        let request = agent.request(method, &url);
        let request = match method {
            "POST" => request.set("Content-Type", "application/json"),
            _ => request,
        };
        match request.call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("{method} {url}: {e}"),
        }
    })
    .await
    .unwrap()
}

#[actix_rt::test]
async fn a_reload_during_a_round_applies_at_the_next_round() {
    // 31 tasks, 2 workers, 100 ms each: round 1 takes about 1.6 s.
    scenario(Duration::from_millis(100), "2020-03-31", 2, async |f| {
        price_requests_reach(&f.server.stats, 4).await;
        // A universe that shares no key with the old one, and more workers.
        f.with_workers(4)
            .exchanges(["bitstamp", "coinbase-pro"])
            .symbols(["eth", "ltc"])
            .window("2020-03-01", "2020-03-05")
            .save_by_rename(&f.path);
        let outcome = f.daemon.reload_and_wait().await;
        let ReloadOutcome::Applied { version, changed } = outcome else {
            panic!("the reload was rejected: {outcome:?}");
        };
        assert_eq!(version, 1);
        assert!(
            changed.iter().any(|c| c.starts_with("universe"))
                && changed.iter().any(|c| c.starts_with("fetch")),
            "{changed:?}"
        );
        assert!(
            f.daemon.pipeline.rounds.borrow().is_none(),
            "round 1 was over before the reload: the test did not reload mid-round"
        );

        let first = f.daemon.first_round().await;
        assert_eq!(first.config_version, 0, "round 1 started under version 0");
        assert_eq!(first.counts.tasks, 31, "the old universe's tasks");
        assert_eq!(first.counts.done(), 31);
        assert!(!first.aborted);
        let store = f.daemon.store().await;
        assert_eq!(written_in(&store, 1), (pairs(&["kraken/btc"]), 31));

        let second = f.daemon.run_round().await.expect("round 2 runs");
        assert_eq!(second.config_version, 1);
        assert_eq!(second.counts.tasks, 2 * 2 * 5, "the new universe's tasks");
        assert_eq!(second.counts.done(), second.counts.tasks);
        let store = f.daemon.store().await;
        assert_eq!(
            written_in(&store, 2),
            (
                pairs(&[
                    "bitstamp/eth",
                    "bitstamp/ltc",
                    "coinbase-pro/eth",
                    "coinbase-pro/ltc"
                ]),
                20
            )
        );
        assert_eq!(f.daemon.workers().await, 4);
    })
    .await
}

#[actix_rt::test]
async fn a_source_change_during_a_round_loses_no_task() {
    // Two servers with the same dataset: only their request counts tell
    // which one was asked. The daemon starts on `a`.
    let b = spawn_price_server(|o| o.latency = Duration::from_millis(20));
    scenario(Duration::from_millis(100), "2020-03-31", 2, async |f| {
        let a = &f.server;
        price_requests_reach(&a.stats, 4).await;
        f.with_workers(2).source(&b.url()).save_by_rename(&f.path);
        let outcome = f.daemon.reload_and_wait().await;
        assert!(
            matches!(&outcome, ReloadOutcome::Applied { version: 1, changed } if !changed.is_empty()),
            "{outcome:?}"
        );
        assert!(
            f.daemon.pipeline.rounds.borrow().is_none(),
            "round 1 was over before the reload"
        );

        let first = f.daemon.first_round().await;
        let c = first.counts;
        assert_eq!((c.tasks, c.done(), c.failed), (31, 31, 0), "{first:?}");
        assert_eq!(first.config_version, 0);
        assert_eq!(b.stats.price_requests(), 0, "round 1 asked the new source");
        let asked_a = a.stats.price_requests();
        assert_eq!(asked_a, 31, "one request per task, all to the old source");

        let second = f.daemon.run_round().await.expect("round 2 runs");
        let c = second.counts;
        // A new source identity makes every key due again.
        assert_eq!((c.tasks, c.done(), c.failed), (31, 31, 0), "{second:?}");
        assert_eq!(second.config_version, 1);
        assert_eq!(b.stats.price_requests(), 31);
        assert_eq!(a.stats.price_requests(), asked_a, "round 2 asked the old source");
        let store = f.daemon.store().await;
        let b_id = b.url().to_string();
        for (e, s, d, cell) in store.iter() {
            assert_eq!(cell.source.as_deref(), Some(b_id.as_str()), "{e}/{s}/{d}");
            assert_eq!(cell.round, 2, "{e}/{s}/{d}");
        }
        assert_eq!(store.len(), 31);
    })
    .await
}

#[actix_rt::test]
async fn post_reload_answers_the_outcome() {
    scenario(Duration::ZERO, "2020-03-05", 2, async |f| {
        f.daemon.first_round().await;
        let api = f.daemon.api_url();
        let reload = format!("{api}/v1/reload");

        // A good edit: 200 with the version and what changed.
        let good = f.with_workers(3).toml(&f.path);
        save_by_rename(&f.path, &good);
        let (status, body) = http("POST", reload.clone()).await;
        assert_eq!(status, 200, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({ "version": 1, "changed": ["fetch (new pool)"] })
        );

        // A broken edit: 422 naming the file, line and column; nothing changes.
        let broken = good.replace("workers = 3", "workers = 0");
        let line = broken
            .lines()
            .position(|l| l == "workers = 0")
            .expect("the edit is in the file")
            + 1;
        save_by_rename(&f.path, &broken);
        let (status, body) = http("POST", reload).await;
        assert_eq!(status, 422, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = body["error"].as_str().expect("an error message");
        assert!(
            error.contains(&format!("pricegrid.toml:{line}:1: fetch.workers")),
            "{error}"
        );

        // The daemon keeps version 1: a round runs under it, with 3 workers.
        assert_eq!(f.daemon.tick().await, 1, "ticks go on under version 1");
        assert_eq!(f.daemon.workers().await, 3);

        let (status, metrics) = http("GET", format!("{api}/metrics")).await;
        assert_eq!(status, 200);
        for expected in [
            "pricegrid_config_reloads_total{result=\"applied\"} 1\n",
            "pricegrid_config_reloads_total{result=\"rejected\"} 1\n",
        ] {
            assert!(metrics.contains(expected), "{expected} in\n{metrics}");
        }
        let last_reload: f64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("pricegrid_config_last_reload_timestamp_seconds "))
            .expect("the last reload's time")
            .parse()
            .unwrap();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (now - 60.0..=now).contains(&last_reload),
            "last reload at {last_reload}, now {now}"
        );
    })
    .await
}

#[actix_rt::test]
async fn an_empty_config_file_is_refused_at_start_and_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("pricegrid.toml");
    std::fs::write(&empty, "").unwrap();
    let error = Daemon::start(&empty)
        .await
        .err()
        .expect("an empty file is refused at start");
    assert!(error.to_string().contains("empty"), "{error}");

    scenario(Duration::ZERO, "2020-03-05", 2, async |f| {
        f.daemon.first_round().await;

        // Truncated, as a `>` redirect leaves it before anything is written.
        std::fs::File::create(&f.path).unwrap();
        let status = f
            .daemon
            .reload("rejected", |s| s.last_error.is_some())
            .await;
        let error = status.last_error.as_deref().unwrap();
        assert!(error.contains("config file is empty"), "{error}");
        assert_eq!((status.version, status.attempts), (0, 1));
        assert_eq!(f.daemon.tick().await, 0, "ticks go on under version 0");
    })
    .await
}

#[actix_rt::test]
async fn moving_the_record_while_the_daemon_runs_is_refused_naming_it() {
    scenario(Duration::ZERO, "2020-03-02", 1, async |f| {
        f.daemon.first_round().await;
        let moved = f.with_workers(1).record(&f.dir.path().join("elsewhere.db"));
        moved.write(&f.path);
        let status = f
            .daemon
            .reload("rejected", |s| s.last_error.is_some())
            .await;
        let error = status.last_error.as_deref().unwrap();
        assert!(
            error.contains("store.path") && error.contains("elsewhere.db"),
            "{error}"
        );
        assert_eq!(status.version, 0);
        assert!(
            !f.dir.path().join("elsewhere.db").exists(),
            "no second record is created"
        );
    })
    .await
}

/// 50 writes 60 ms apart, alternating valid and invalid contents, the last
/// one valid: once the file is left alone, the last content is in force;
/// no invalid content was applied, and the watcher, which waits for the
/// file to settle, handed over few contents.
async fn a_burst_of_writes_ends_with_the_last_valid_content(write: fn(&Path, &str)) {
    scenario(Duration::ZERO, "2020-03-02", 1, async |f| {
        f.daemon.first_round().await;

        let invalid = ["", "[fetch\nworkers = 3\n", "[fetch]\nworkers = 0\n"];
        let mut valid = Vec::new();
        for i in 0..50 {
            if i % 2 == 1 {
                let workers = 2 + i / 2;
                valid.push(workers);
                write(&f.path, &f.with_workers(workers).toml(&f.path));
            } else {
                write(&f.path, invalid[(i / 2) % invalid.len()]);
            }
            // The pause between writes is the behaviour under test: shorter
            // than the watcher's settling time.
            actix_rt::time::sleep(Duration::from_millis(60)).await;
            // What the pool runs with now: the first config or a valid write.
            let workers = f.daemon.workers().await;
            assert!(
                workers == 1 || valid.contains(&workers),
                "after write {i}, {workers} workers: no valid write had that"
            );
        }
        let last = *valid.last().unwrap();

        // Whatever the watcher hands over is applied at once (no round runs);
        // a round after each accepted version shows the pool it set.
        let deadline = Instant::now() + LIMIT;
        let mut seen = Vec::new();
        loop {
            let status = f.daemon.reloads().borrow_and_update().clone();
            if status.version > 0 {
                let version = f.daemon.tick().await;
                let workers = f.daemon.workers().await;
                seen.push((status.clone(), version, workers));
                assert!(
                    valid.contains(&workers),
                    "a config no valid write had is in force: {seen:?}"
                );
                if workers == last {
                    break;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            actix_rt::time::timeout(left, f.daemon.reloads().changed())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the last write ({last} workers) was not in force within {LIMIT:?}: {seen:?}"
                    )
                })
                .expect("the daemon is alive");
        }
        let status = f.daemon.reloads().borrow().clone();
        assert_eq!(status.last_error, None, "{seen:?}");
        assert!(
            status.attempts <= 5,
            "the watcher handed over {} contents of 50 writes: {seen:?}",
            status.attempts
        );
    })
    .await
}

#[actix_rt::test]
async fn the_last_valid_content_written_in_place_is_in_force_after_a_burst_of_writes() {
    a_burst_of_writes_ends_with_the_last_valid_content(save_in_place).await
}

#[actix_rt::test]
async fn the_last_valid_content_saved_by_rename_is_in_force_after_a_burst_of_writes() {
    a_burst_of_writes_ends_with_the_last_valid_content(save_by_rename).await
}

#[actix_rt::test]
async fn touching_the_file_does_not_reload_again_and_again() {
    scenario(Duration::ZERO, "2020-03-02", 2, async |f| {
        f.daemon.first_round().await;

        // Same bytes, new modification times, as `touch` leaves it.
        let file = std::fs::File::options().write(true).open(&f.path).unwrap();
        for i in 1..=4 {
            file.set_modified(SystemTime::now() + Duration::from_secs(i))
                .unwrap();
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        drop(file);
        // Long enough for the watcher to settle (2 x 200 ms) and hand over.
        let window = Duration::from_millis(1500);
        let reloaded =
            actix_rt::time::timeout(window, f.daemon.reloads().wait_for(|s| s.attempts > 0))
                .await
                .map(|r| r.map(|s| s.clone()));
        assert!(
            reloaded.is_err(),
            "an unchanged content was reloaded: {reloaded:?}"
        );
    })
    .await
}

#[actix_rt::test]
async fn a_reload_that_keeps_the_api_section_keeps_the_api_server() {
    scenario(Duration::ZERO, "2020-03-02", 2, async |f| {
        f.daemon.first_round().await;
        // Port 0 in the config: a restarted API would listen elsewhere.
        let status_url = format!("{}/v1/status", f.daemon.api_url());
        let (code, body) = http("GET", status_url.clone()).await;
        assert_eq!(code, 200, "{body}");

        f.with_workers(5).save_by_rename(&f.path);
        let outcome = f.daemon.reload_and_wait().await;
        assert_eq!(
            outcome,
            ReloadOutcome::Applied {
                version: 1,
                changed: vec!["fetch (new pool)".into()]
            }
        );
        assert_eq!(f.daemon.tick().await, 1);

        let (code, body) = http("GET", status_url).await;
        assert_eq!(code, 200, "{body}");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["config_version"], 1, "{status}");
        assert_eq!(status["workers"], 5, "{status}");
    })
    .await
}

/// The binary: a SIGHUP whose reload starts a new built-in source while a
/// slow round runs, then SIGTERM as soon as it is accepted: the shutdown begins within a
/// second (the reload does not wait for the round using the old source)
/// and the process exits 0.
#[test]
fn sigterm_during_a_reload_is_acted_on_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    // The built-in server; 31 tasks, 1 worker, 200 ms each: round 1 takes
    // about 6 s.
    let config =
        kraken_btc(dir.path(), "2020-03-31", 1).builtin_latency(Duration::from_millis(200));
    let path = config.save_by_rename(&dir.path().join("pricegrid.toml"));
    let (mut child, mut lines) = spawn_daemon(&path);
    let mut log = read_until(&mut lines, "round 1 started", 1);

    config.builtin_seed(DEFAULT_SEED + 1).save_by_rename(&path);
    signal(&child, "-HUP");
    // Once the reload is accepted (a SIGTERM while it waits for the file to
    // settle would stop it, and no reload would be applied), SIGTERM right
    // away: the old source is still in use by round 1.
    log.push_str(&read_until(&mut lines, "config version 1 accepted", 1));
    signal(&child, "-TERM");
    let sent = Instant::now();
    log.push_str(&read_until(&mut lines, "shutting down", 1));
    let acted = sent.elapsed();
    assert!(
        acted < Duration::from_secs(1),
        "shutdown began after {acted:?}:\n{log}"
    );

    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        for line in lines {
            rest.push_str(&line.unwrap());
            rest.push('\n');
        }
        let _ = done_tx.send((child.wait().unwrap(), rest));
    });
    let (exit, rest) = done_rx
        .recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("the daemon did not exit within {LIMIT:?}:\n{log}"));
    log.push_str(&rest);
    assert!(exit.success(), "exit {exit:?}\n{log}");
    assert!(
        log.contains("config version 1 accepted") && log.contains("up to date"),
        "{log}"
    );
}

#[actix_rt::test]
async fn a_round_cut_short_by_shutdown_is_recorded_as_aborted() {
    within(Duration::from_secs(20), async {
        // 31 tasks, 1 worker, 100 ms each: about 3 s.
        let f = Fixture::start(Duration::from_millis(100), "2020-03-31", 1).await;
        let pipeline = f.daemon.pipeline.clone();

        price_requests_reach(&f.server.stats, 3).await;
        f.daemon.shutdown().await;
        let mut rounds = pipeline.rounds.clone();
        let last = round_matching_within(&mut rounds, LIMIT, "1", |r| r.round == 1).await;
        assert!(last.aborted, "{last:?}");
        assert_eq!(last.counts.tasks, 31);
        assert!(last.counts.done() < last.counts.tasks, "{last:?}");
        let status = pipeline.aggregator.send(GetStatus).await.unwrap();
        assert_eq!(status.last, Some(last), "the aggregator's record of it");
    })
    .await
}

#[actix_rt::test]
async fn an_exchange_moved_to_its_own_api_on_reload_is_asked_there_from_the_next_round() {
    // The built-in server speaking OKX's API with the same dataset's kraken
    // prices: the cells must come out the same, now asked in a market.
    let okx = spawn_price_server(|o| {
        o.dialect = pricegrid::model::ExchangeApi::Okx;
        o.exchange = Some("kraken".parse().unwrap());
    });
    scenario(Duration::ZERO, "2020-03-31", 2, async |f| {
        let first = f.daemon.first_round().await;
        assert_eq!(first.counts.failed, 0, "{first:?}");
        let before = f.daemon.store().await;
        f.with_workers(2)
            .exchange_api("kraken", pricegrid::model::ExchangeApi::Okx, &okx.url(), 100.0)
            .save_by_rename(&f.path);
        let outcome = f.daemon.reload_and_wait().await;
        assert!(
            matches!(&outcome, ReloadOutcome::Applied { version: 1, changed } if changed.iter().any(|c| c.starts_with("exchanges"))),
            "{outcome:?}"
        );
        let classic_asked = f.server.stats.price_requests();
        let second = f.daemon.run_round().await.expect("round 2 runs");
        let c = second.counts;
        // A new source (and market) makes every key due again: 31 days, one page.
        assert_eq!((c.tasks, c.done(), c.failed), (31, 31, 0), "{second:?}");
        assert_eq!(okx.stats.candle_requests(), 1, "one page for 31 days");
        assert_eq!(f.server.stats.price_requests(), classic_asked, "the classic source was not asked");
        let after = f.daemon.store().await;
        for (e, s, d, cell) in after.iter() {
            let old = before.get(e, s, d).expect("the same cells");
            assert_eq!((cell.state, cell.price), (old.state, old.price), "{e}/{s}/{d}");
            assert!(
                cell.source.as_deref().is_some_and(|x| x.ends_with(" market=BTC-USDT")),
                "{e}/{s}/{d}: {:?}",
                cell.source
            );
        }
    })
    .await
}

/// Writes `text` in place in `pieces` pieces (whole lines), `pause` apart,
/// as a slow script would (fewer if the lines do not divide evenly);
/// after each, `written` says how many are in. Returns how many it wrote.
async fn write_in_pieces(
    path: &Path,
    text: &str,
    pieces: usize,
    pause: Duration,
    written: &tokio::sync::watch::Sender<usize>,
) -> usize {
    use std::io::Write;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let per_piece = lines.len().div_ceil(pieces);
    let mut file = std::fs::File::create(path).unwrap();
    for (i, piece) in lines.chunks(per_piece).enumerate() {
        file.write_all(piece.concat().as_bytes()).unwrap();
        file.flush().unwrap();
        written.send_replace(i + 1);
        // The pause between pieces is the behaviour under test.
        actix_rt::time::sleep(pause).await;
    }
    *written.borrow()
}

#[actix_rt::test]
async fn reloads_asked_while_the_file_is_written_apply_only_the_whole_file_once() {
    scenario(Duration::ZERO, "2020-03-02", 2, async |f| {
        f.daemon.first_round().await;
        // Every whole-line prefix of this file parses: read half-way, it is
        // a valid config with other settings (the defaults for the rest).
        let whole = f.with_workers(3).symbols(["btc", "eth"]).toml(&f.path);
        let (written, in_file) = tokio::sync::watch::channel(0);
        let post_url = format!("{}/v1/reload", f.daemon.api_url());
        let mut post_after = in_file.clone();
        let mut hup_after = in_file;
        let daemon = &f.daemon;
        // 10 pieces 100 ms apart (about 1 s); POST /v1/reload after the
        // second, the SIGHUP reload after the fifth.
        let (pieces, (status, body), outcome) = tokio::join!(
            write_in_pieces(&f.path, &whole, 10, Duration::from_millis(100), &written),
            async move {
                post_after.wait_for(|n| *n >= 2).await.unwrap();
                http("POST", post_url).await
            },
            async move {
                hup_after.wait_for(|n| *n >= 5).await.unwrap();
                daemon.reload_and_wait().await
            },
        );
        assert!(pieces >= 8, "the file was written in {pieces} pieces");
        // Each waited for the file to settle (or said it was still being
        // written): a reload that read a prefix would be version 1 here,
        // and the whole file version 2.
        assert!(
            status == 200 || status == 409,
            "POST /v1/reload: {status} {body}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        if status == 200 {
            assert_eq!(body["version"], 1, "{body}");
        } else {
            assert!(body["error"]
                .as_str()
                .unwrap()
                .contains("still being written"));
        }
        match &outcome {
            ReloadOutcome::Applied { version: 1, .. } => {}
            ReloadOutcome::StillBeingWritten { error } if error.contains("still being written") => {
            }
            other => panic!("the SIGHUP reload: {other:?}"),
        }

        // The whole file is in force, applied once: version 1, whatever
        // the watcher hands over too.
        let status = f.daemon.reloaded_to(1).await;
        assert_eq!(status.last_error, None, "{status:?}");
        let again = f.daemon.reload_and_wait().await;
        assert_eq!(
            again,
            ReloadOutcome::Applied {
                version: 1,
                changed: Vec::new()
            }
        );
        let round = f.daemon.run_round().await.expect("a round runs");
        assert_eq!(round.config_version, 1);
        assert_eq!(
            round.counts.tasks, 2,
            "kraken's eth, now also asked: 2 days"
        );
        assert_eq!(f.daemon.workers().await, 3);
        assert_eq!(f.daemon.reloads().borrow().version, 1);
    })
    .await
}

#[actix_rt::test]
async fn a_reload_whose_discovered_universe_exceeds_max_tasks_is_refused_and_rounds_go_on() {
    scenario(Duration::ZERO, "2020-03-05", 2, async |f| {
        f.daemon.first_round().await;
        // Lists are "all": only the source's /exchanges and /symbols say
        // how large the universe is (the classic server's: 33 pairs x 5 days).
        f.with_workers(2)
            .every_exchange()
            .every_symbol()
            .max_tasks(100)
            .save_by_rename(&f.path);
        let (status, body) = http("POST", format!("{}/v1/reload", f.daemon.api_url())).await;
        assert_eq!(status, 422, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = body["error"].as_str().expect("an error message");
        assert!(
            error.contains("pricegrid.toml: the universe is too large: ")
                && error.contains("x 5 days = 165 tasks, more than universe.max_tasks (100)"),
            "{error}"
        );
        let status = f.daemon.reloads().borrow().clone();
        assert_eq!(status.version, 0, "{status:?}");

        // Rounds keep fetching under the config in force.
        let fetched_before = f.server.stats.price_requests();
        assert_eq!(f.daemon.tick().await, 0);
        assert_eq!(
            f.server.stats.price_requests(),
            fetched_before,
            "the settled kraken/btc days are not asked again"
        );
        let store = f.daemon.store().await;
        assert_eq!(written_in(&store, 1), (pairs(&["kraken/btc"]), 5));
    })
    .await
}

#[actix_rt::test]
async fn a_hot_reload_to_an_absurd_universe_is_refused_and_the_daemon_lives() {
    scenario(Duration::ZERO, "2020-03-02", 2, async |f| {
        f.daemon.first_round().await;
        let absurd = f.with_workers(2).absurd_universe().unchecked_toml();
        save_by_rename(&f.path, &absurd);
        let (status, body) = http("POST", format!("{}/v1/reload", f.daemon.api_url())).await;
        assert_eq!(status, 422, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = body["error"].as_str().expect("an error message");
        for said in [
            "universe.max_tasks: 9000000000000000000 is more than this process can hold",
            "100 exchanges x 9999 symbols x ",
        ] {
            assert!(error.contains(said), "{said:?} not in {error}");
        }
        assert_eq!(f.daemon.tick().await, 0, "the daemon is alive");
        assert_eq!(f.daemon.reloads().borrow().version, 0);
    })
    .await
}

#[actix_rt::test]
async fn a_reload_to_every_listed_symbol_is_judged_by_the_exchanges_own_listing() {
    // OKX's API with kraken's prices over 203 symbols, each listed in USDT
    // (one of the default quotes): its listing, not the classic source's
    // three symbols, is kraken's universe under "all".
    let mut spec = pricegrid::server::GeneratedSpec::classic(DEFAULT_SEED);
    spec.symbols = (1..=203)
        .map(|i| format!("c{i:03}").parse().expect("a valid name"))
        .collect();
    let wide = Arc::new(pricegrid::server::Dataset::generated(spec));
    let okx = spawn_price_server(|o| {
        o.dialect = pricegrid::model::ExchangeApi::Okx;
        o.exchange = Some("kraken".parse().unwrap());
        o.dataset = wide;
    });
    scenario(Duration::ZERO, "2020-03-05", 2, async |f| {
        f.daemon.first_round().await;
        f.with_workers(2)
            .every_symbol()
            .exchange_api(
                "kraken",
                pricegrid::model::ExchangeApi::Okx,
                &okx.url(),
                100.0,
            )
            .max_tasks(100)
            .save_by_rename(&f.path);
        let (status, body) = http("POST", format!("{}/v1/reload", f.daemon.api_url())).await;
        assert_eq!(status, 422, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = body["error"].as_str().expect("an error message");
        assert!(
            error.ends_with(
                "the universe is too large: 203 markets (1 exchange, 203 symbols) x 5 days \
                 = 1015 tasks, more than universe.max_tasks (100)"
            ),
            "{error}"
        );
        assert_eq!(f.daemon.reloads().borrow().version, 0);
        assert_eq!(okx.stats.candle_requests(), 0, "no candle asked");
    })
    .await
}
