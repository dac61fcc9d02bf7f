//! Hot reload of the daemon's config: a reload is applied whole at a round
//! boundary, a broken, empty or half-written file never reaches the actors,
//! and a reload never delays a shutdown. Real daemon, real actors, the real
//! built-in price server on loopback.

mod common;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{day, read_until, signal, spawn_daemon, spawn_price_server};
use pricegrid::actors::aggregator::{GetStatus, GetStore, RoundSummary};
use pricegrid::actors::producer::RunRound;
use pricegrid::actors::supervisor::GetStats;
use pricegrid::config::{Config, Day, Selection, SourceUrl};
use pricegrid::daemon::ReloadOutcome;
use pricegrid::daemon::{Daemon, ReloadStatus};
use pricegrid::model::{Exchange, Symbol};
use pricegrid::server::ServerStats;
use pricegrid::store::Store;
use tokio::sync::watch;

/// Bound of any one wait in these tests.
const LIMIT: Duration = Duration::from_secs(10);

/// Runs a test's body, failing it if it takes longer than `limit`.
async fn within<T>(limit: Duration, body: impl Future<Output = T>) -> T {
    actix_rt::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"))
}

/// A daemon config: prices from `source`, the listed exchanges and symbols
/// over `from..=to` (2020), `workers` fetchers, snapshots under `dir`, the
/// API on an ephemeral loopback port, and rounds an hour apart, so that
/// after the first one (which the daemon starts itself) rounds run when a
/// test sends `RunRound`.
fn config(
    source: SourceUrl,
    dir: &Path,
    (exchanges, symbols): (&[&str], &[&str]),
    (from, to): (&str, &str),
    workers: usize,
) -> Config {
    let mut c = Config::default();
    c.source.url = source;
    c.source.timeout = Duration::from_secs(5);
    c.universe.exchanges = Selection::List(
        exchanges
            .iter()
            .map(|e| Exchange::new(e).unwrap())
            .collect(),
    );
    c.universe.symbols = Selection::List(symbols.iter().map(|s| Symbol::new(s).unwrap()).collect());
    c.universe.from = Some(Day(day(from)));
    c.universe.to = Some(Day(day(to)));
    c.fetch.workers = workers;
    c.fetch.backoff_base = Duration::from_millis(10);
    c.fetch.backoff_max = Duration::from_millis(100);
    c.fetch.task_deadline = Duration::from_secs(6);
    c.fetch.drain_timeout = Duration::from_secs(2);
    c.schedule.interval = Duration::from_secs(3600);
    c.snapshot.dir = dir.join("snap");
    c.api.listen = "127.0.0.1:0".parse().unwrap();
    c.check().expect("the test config is valid");
    c
}

fn remote(url: url::Url) -> SourceUrl {
    SourceUrl::Remote(url)
}

/// Saves `text` whole, as an editor that writes a new file and renames it
/// over the old one.
fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Saves `text` in place: the file is truncated, then written.
fn save_in_place(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn save(path: &Path, c: &Config) {
    save_by_rename(path, &c.to_toml());
}

/// Waits (off the actix thread) until `stats` has seen `n` price requests.
async fn price_requests_reach(stats: &Arc<ServerStats>, n: u64) {
    let stats = stats.clone();
    let reached = actix_rt::task::spawn_blocking(move || stats.wait_for_price_requests(n, LIMIT))
        .await
        .unwrap();
    assert!(reached, "the server did not see {n} price requests");
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
        match agent.request(method, &url).call() {
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
    within(Duration::from_secs(20), async {
        // 31 tasks, 2 workers, 100 ms each: round 1 takes about 1.6 s.
        let server = spawn_price_server(|o| o.latency = Duration::from_millis(100));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricegrid.toml");
        let old = config(
            remote(server.url()),
            dir.path(),
            (&["kraken"], &["btc"]),
            ("2020-03-01", "2020-03-31"),
            2,
        );
        save(&path, &old);
        let daemon = Daemon::start(&path).await.expect("daemon starts");
        let pipeline = daemon.pipeline().clone();
        let mut rounds = pipeline.rounds.clone();
        let ctl = daemon.controller();
        let run = actix_rt::spawn(daemon.run());

        price_requests_reach(&server.stats, 4).await;
        // A universe that shares no key with the old one, and more workers.
        let new = config(
            remote(server.url()),
            dir.path(),
            (&["bitstamp", "coinbase-pro"], &["eth", "ltc"]),
            ("2020-03-01", "2020-03-05"),
            4,
        );
        save(&path, &new);
        let outcome = ctl.reload_and_wait().await.expect("the daemon answers");
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
            rounds.borrow().is_none(),
            "round 1 was over before the reload: the test did not reload mid-round"
        );

        let first = round_matching(&mut rounds, "1", |r| r.round == 1).await;
        assert_eq!(first.config_version, 0, "round 1 started under version 0");
        assert_eq!(first.counts.tasks, 31, "the old universe's tasks");
        assert_eq!(first.counts.done(), 31);
        assert!(!first.aborted);
        let store = pipeline.aggregator.send(GetStore).await.unwrap();
        assert_eq!(written_in(&store, 1), (pairs(&["kraken/btc"]), 31));

        let second = pipeline
            .producer
            .send(RunRound)
            .await
            .unwrap()
            .expect("round 2 runs");
        assert_eq!(second.config_version, 1);
        assert_eq!(second.counts.tasks, 2 * 2 * 5, "the new universe's tasks");
        assert_eq!(second.counts.done(), second.counts.tasks);
        let store = pipeline.aggregator.send(GetStore).await.unwrap();
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
        assert_eq!(pipeline.supervisor.send(GetStats).await.unwrap().workers, 4);

        ctl.shutdown();
        run.await.unwrap().expect("clean shutdown");
    })
    .await
}

#[actix_rt::test]
async fn a_source_change_during_a_round_loses_no_task() {
    within(Duration::from_secs(20), async {
        // Two servers with the same dataset: only their request counts tell
        // which one was asked.
        let a = spawn_price_server(|o| o.latency = Duration::from_millis(100));
        let b = spawn_price_server(|o| o.latency = Duration::from_millis(20));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricegrid.toml");
        let on = |server: &pricegrid::server::PriceServer| {
            config(
                remote(server.url()),
                dir.path(),
                (&["kraken"], &["btc"]),
                ("2020-03-01", "2020-03-31"),
                2,
            )
        };
        save(&path, &on(&a));
        let daemon = Daemon::start(&path).await.expect("daemon starts");
        let pipeline = daemon.pipeline().clone();
        let mut rounds = pipeline.rounds.clone();
        let ctl = daemon.controller();
        let run = actix_rt::spawn(daemon.run());

        price_requests_reach(&a.stats, 4).await;
        save(&path, &on(&b));
        let outcome = ctl.reload_and_wait().await.expect("the daemon answers");
        assert!(
            matches!(&outcome, ReloadOutcome::Applied { version: 1, changed } if !changed.is_empty()),
            "{outcome:?}"
        );
        assert!(rounds.borrow().is_none(), "round 1 was over before the reload");

        let first = round_matching(&mut rounds, "1", |r| r.round == 1).await;
        let c = first.counts;
        assert_eq!((c.tasks, c.done(), c.failed), (31, 31, 0), "{first:?}");
        assert_eq!(first.config_version, 0);
        assert_eq!(b.stats.price_requests(), 0, "round 1 asked the new source");
        let asked_a = a.stats.price_requests();
        assert_eq!(asked_a, 31, "one request per task, all to the old source");

        let second = pipeline
            .producer
            .send(RunRound)
            .await
            .unwrap()
            .expect("round 2 runs");
        let c = second.counts;
        // A new source identity makes every key due again.
        assert_eq!((c.tasks, c.done(), c.failed), (31, 31, 0), "{second:?}");
        assert_eq!(second.config_version, 1);
        assert_eq!(b.stats.price_requests(), 31);
        assert_eq!(a.stats.price_requests(), asked_a, "round 2 asked the old source");
        let store = pipeline.aggregator.send(GetStore).await.unwrap();
        let b_id = b.url().to_string();
        for (e, s, d, cell) in store.iter() {
            assert_eq!(cell.source.as_deref(), Some(b_id.as_str()), "{e}/{s}/{d}");
            assert_eq!(cell.round, 2, "{e}/{s}/{d}");
        }
        assert_eq!(store.len(), 31);

        ctl.shutdown();
        run.await.unwrap().expect("clean shutdown");
    })
    .await
}

#[actix_rt::test]
async fn post_reload_answers_the_outcome() {
    within(Duration::from_secs(20), async {
        let server = spawn_price_server(|_| {});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricegrid.toml");
        let with_workers = |workers| {
            config(
                remote(server.url()),
                dir.path(),
                (&["kraken"], &["btc"]),
                ("2020-03-01", "2020-03-05"),
                workers,
            )
        };
        save(&path, &with_workers(2));
        let daemon = Daemon::start(&path).await.expect("daemon starts");
        let pipeline = daemon.pipeline().clone();
        let mut rounds = pipeline.rounds.clone();
        let api = daemon.api_addr().expect("the API is on");
        let ctl = daemon.controller();
        let run = actix_rt::spawn(daemon.run());
        round_matching(&mut rounds, "1", |r| r.round == 1).await;
        let reload = format!("http://{api}/v1/reload");

        // A good edit: 200 with the version and what changed.
        let good = with_workers(3).to_toml();
        save_by_rename(&path, &good);
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
        save_by_rename(&path, &broken);
        let (status, body) = http("POST", reload).await;
        assert_eq!(status, 422, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let error = body["error"].as_str().expect("an error message");
        assert!(
            error.contains(&format!("pricegrid.toml:{line}:1: fetch.workers")),
            "{error}"
        );

        // The daemon keeps version 1: a round runs under it, with 3 workers.
        let after = pipeline
            .producer
            .send(RunRound)
            .await
            .unwrap()
            .expect("a round still runs");
        assert_eq!(after.config_version, 1);
        assert_eq!(pipeline.supervisor.send(GetStats).await.unwrap().workers, 3);

        let (status, metrics) = http("GET", format!("http://{api}/metrics")).await;
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

        ctl.shutdown();
        run.await.unwrap().expect("clean shutdown");
    })
    .await
}

#[actix_rt::test]
async fn an_empty_config_file_is_refused_at_start_and_on_reload() {
    within(Duration::from_secs(20), async {
        let server = spawn_price_server(|_| {});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricegrid.toml");

        std::fs::write(&path, "").unwrap();
        let error = Daemon::start(&path)
            .await
            .err()
            .expect("an empty file is refused at start");
        assert!(error.to_string().contains("empty"), "{error}");

        let c = config(
            remote(server.url()),
            dir.path(),
            (&["kraken"], &["btc"]),
            ("2020-03-01", "2020-03-05"),
            2,
        );
        save(&path, &c);
        let daemon = Daemon::start(&path).await.expect("daemon starts");
        let pipeline = daemon.pipeline().clone();
        let mut rounds = pipeline.rounds.clone();
        let mut reloads = daemon.reloads();
        let ctl = daemon.controller();
        let run = actix_rt::spawn(daemon.run());
        round_matching(&mut rounds, "1", |r| r.round == 1).await;

        // Truncated, as a `>` redirect leaves it before anything is written.
        std::fs::File::create(&path).unwrap();
        let status = reload_matching(&mut reloads, "rejected", |s| s.last_error.is_some()).await;
        let error = status.last_error.as_deref().unwrap();
        assert!(error.contains("config file is empty"), "{error}");
        assert_eq!((status.version, status.attempts), (0, 1));
        let after = pipeline
            .producer
            .send(RunRound)
            .await
            .unwrap()
            .expect("a round still runs");
        assert_eq!(after.config_version, 0);

        ctl.shutdown();
        run.await.unwrap().expect("clean shutdown");
    })
    .await
}

/// 50 writes 60 ms apart, alternating valid and invalid contents, the last
/// one valid: once the file is left alone, the last content is in force;
/// no invalid content was applied, and the watcher, which waits for the
/// file to settle, handed over few contents.
async fn a_burst_of_writes_ends_with_the_last_valid_content(write: fn(&Path, &str)) {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pricegrid.toml");
    let with_workers = |workers| {
        config(
            remote(server.url()),
            dir.path(),
            (&["kraken"], &["btc"]),
            ("2020-03-01", "2020-03-02"),
            workers,
        )
    };
    save(&path, &with_workers(1));
    let daemon = Daemon::start(&path).await.expect("daemon starts");
    let pipeline = daemon.pipeline().clone();
    let mut rounds = pipeline.rounds.clone();
    let mut reloads = daemon.reloads();
    let ctl = daemon.controller();
    let run = actix_rt::spawn(daemon.run());
    round_matching(&mut rounds, "1", |r| r.round == 1).await;

    let invalid = ["", "[fetch\nworkers = 3\n", "[fetch]\nworkers = 0\n"];
    let mut valid = Vec::new();
    for i in 0..50 {
        if i % 2 == 1 {
            let workers = 2 + i / 2;
            valid.push(workers);
            write(&path, &with_workers(workers).to_toml());
        } else {
            write(&path, invalid[(i / 2) % invalid.len()]);
        }
        // The pause between writes is the behaviour under test: shorter
        // than the watcher's settling time.
        actix_rt::time::sleep(Duration::from_millis(60)).await;
        // What the pool runs with now: the first config or a valid write.
        let workers = pipeline.supervisor.send(GetStats).await.unwrap().workers;
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
        let status = reloads.borrow_and_update().clone();
        if status.version > 0 {
            let summary = pipeline
                .producer
                .send(RunRound)
                .await
                .unwrap()
                .expect("a round runs");
            let stats = pipeline.supervisor.send(GetStats).await.unwrap();
            seen.push((status.clone(), summary.config_version, stats.workers));
            assert!(
                valid.contains(&stats.workers),
                "a config no valid write had is in force: {seen:?}"
            );
            if stats.workers == last {
                break;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        actix_rt::time::timeout(left, reloads.changed())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the last write ({last} workers) was not in force within {LIMIT:?}: {seen:?}"
                )
            })
            .expect("the daemon is alive");
    }
    let status = reloads.borrow().clone();
    assert_eq!(status.last_error, None, "{seen:?}");
    assert!(
        status.attempts <= 5,
        "the watcher handed over {} contents of 50 writes: {seen:?}",
        status.attempts
    );

    ctl.shutdown();
    run.await.unwrap().expect("clean shutdown");
}

#[actix_rt::test]
async fn the_last_valid_content_written_in_place_is_in_force_after_a_burst_of_writes() {
    within(
        Duration::from_secs(20),
        a_burst_of_writes_ends_with_the_last_valid_content(save_in_place),
    )
    .await
}

#[actix_rt::test]
async fn the_last_valid_content_saved_by_rename_is_in_force_after_a_burst_of_writes() {
    within(
        Duration::from_secs(20),
        a_burst_of_writes_ends_with_the_last_valid_content(save_by_rename),
    )
    .await
}

#[actix_rt::test]
async fn touching_the_file_does_not_reload_again_and_again() {
    within(Duration::from_secs(20), async {
        let server = spawn_price_server(|_| {});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricegrid.toml");
        let c = config(
            remote(server.url()),
            dir.path(),
            (&["kraken"], &["btc"]),
            ("2020-03-01", "2020-03-02"),
            2,
        );
        save(&path, &c);
        let daemon = Daemon::start(&path).await.expect("daemon starts");
        let mut rounds = daemon.pipeline().rounds.clone();
        let mut reloads = daemon.reloads();
        let ctl = daemon.controller();
        let run = actix_rt::spawn(daemon.run());
        round_matching(&mut rounds, "1", |r| r.round == 1).await;

        // Same bytes, new modification times, as `touch` leaves it.
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        for i in 1..=4 {
            file.set_modified(SystemTime::now() + Duration::from_secs(i))
                .unwrap();
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        drop(file);
        // Long enough for the watcher to settle (2 x 200 ms) and hand over.
        let window = Duration::from_millis(1500);
        let reloaded = actix_rt::time::timeout(window, reloads.wait_for(|s| s.attempts > 0))
            .await
            .map(|r| r.map(|s| s.clone()));
        assert!(
            reloaded.is_err(),
            "an unchanged content was reloaded: {reloaded:?}"
        );

        ctl.shutdown();
        run.await.unwrap().expect("clean shutdown");
    })
    .await
}

#[actix_rt::test]
async fn a_reload_that_keeps_the_api_section_keeps_the_api_server() {
    within(Duration::from_secs(20), async {
        let server = spawn_price_server(|_| {});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricegrid.toml");
        let with_workers = |workers| {
            config(
                remote(server.url()),
                dir.path(),
                (&["kraken"], &["btc"]),
                ("2020-03-01", "2020-03-02"),
                workers,
            )
        };
        save(&path, &with_workers(2));
        let daemon = Daemon::start(&path).await.expect("daemon starts");
        let pipeline = daemon.pipeline().clone();
        let mut rounds = pipeline.rounds.clone();
        // Port 0 in the config: a restarted API would listen elsewhere.
        let api = daemon.api_addr().expect("the API is on");
        let ctl = daemon.controller();
        let run = actix_rt::spawn(daemon.run());
        round_matching(&mut rounds, "1", |r| r.round == 1).await;
        let status_url = format!("http://{api}/v1/status");
        let (code, body) = http("GET", status_url.clone()).await;
        assert_eq!(code, 200, "{body}");

        save(&path, &with_workers(5));
        let outcome = ctl.reload_and_wait().await.expect("the daemon answers");
        assert_eq!(
            outcome,
            ReloadOutcome::Applied {
                version: 1,
                changed: vec!["fetch (new pool)".into()]
            }
        );
        let round = pipeline
            .producer
            .send(RunRound)
            .await
            .unwrap()
            .expect("a round runs");
        assert_eq!(round.config_version, 1);

        let (code, body) = http("GET", status_url).await;
        assert_eq!(code, 200, "{body}");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(status["config_version"], 1, "{status}");
        assert_eq!(status["workers"], 5, "{status}");

        ctl.shutdown();
        run.await.unwrap().expect("clean shutdown");
    })
    .await
}

/// The binary: a SIGHUP whose reload starts a new built-in source while a
/// slow round runs, then SIGTERM at once: the shutdown begins within a
/// second (the reload does not wait for the round using the old source)
/// and the process exits 0.
#[test]
fn sigterm_during_a_reload_is_acted_on_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("pricegrid.toml");
    // 31 tasks, 1 worker, 200 ms each: round 1 takes about 6 s.
    let mut c = config(
        SourceUrl::Builtin,
        dir.path(),
        (&["kraken"], &["btc"]),
        ("2020-03-01", "2020-03-31"),
        1,
    );
    c.source.builtin.latency = Duration::from_millis(200);
    save(&path, &c);
    let (mut child, mut lines) = spawn_daemon(&path);
    let mut log = read_until(&mut lines, "round 1 started", 1);

    c.source.builtin.seed += 1;
    save(&path, &c);
    signal(&child, "-HUP");
    // Once the daemon has taken the SIGHUP (a SIGTERM pending at the same
    // moment would win and no reload would run), SIGTERM right away.
    log.push_str(&read_until(&mut lines, "SIGHUP received", 1));
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
        log.contains("config version 1 accepted") && log.contains("final snapshot"),
        "{log}"
    );
}

#[actix_rt::test]
async fn a_round_cut_short_by_shutdown_is_recorded_as_aborted() {
    within(Duration::from_secs(20), async {
        // 31 tasks, 1 worker, 100 ms each: about 3 s.
        let server = spawn_price_server(|o| o.latency = Duration::from_millis(100));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricegrid.toml");
        let c = config(
            remote(server.url()),
            dir.path(),
            (&["kraken"], &["btc"]),
            ("2020-03-01", "2020-03-31"),
            1,
        );
        save(&path, &c);
        let daemon = Daemon::start(&path).await.expect("daemon starts");
        let pipeline = daemon.pipeline().clone();
        let mut rounds = pipeline.rounds.clone();
        let ctl = daemon.controller();
        let run = actix_rt::spawn(daemon.run());

        price_requests_reach(&server.stats, 3).await;
        ctl.shutdown();
        run.await.unwrap().expect("clean shutdown");
        let last = round_matching(&mut rounds, "1", |r| r.round == 1).await;
        assert!(last.aborted, "{last:?}");
        assert_eq!(last.counts.tasks, 31);
        assert!(last.counts.done() < last.counts.tasks, "{last:?}");
        let status = pipeline.aggregator.send(GetStatus).await.unwrap();
        assert_eq!(status.last, Some(last), "the aggregator's record of it");
    })
    .await
}
