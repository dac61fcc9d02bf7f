//! The daemon under test: in-process (`RunningDaemon`, awaiting its rounds
//! and reloads on their watch channels) or as the `pricegrid` binary
//! (`spawn_daemon`, reading its log).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use pricegrid::actors::aggregator::{GetStore, RoundSummary};
use pricegrid::actors::producer::{RoundError, RunRound};
use pricegrid::actors::supervisor::GetStats;
use pricegrid::actors::Pipeline;
use pricegrid::clock::Clock;
use pricegrid::daemon::{Daemon, DaemonError, ReloadOutcome, ReloadStatus, ShutdownReport};
use pricegrid::store::Store;
use tokio::sync::watch;

/// How long a test waits for a round, a reload or a log line before it
/// fails instead of hanging.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// A daemon started from a config file, running on this actix system.
pub struct RunningDaemon {
    pub pipeline: Pipeline,
    /// Where its API listens, if it is on.
    pub api: Option<SocketAddr>,
    rounds: watch::Receiver<Option<RoundSummary>>,
    reloads: watch::Receiver<ReloadStatus>,
    controller: pricegrid::daemon::Controller,
    run: actix_rt::task::JoinHandle<Result<ShutdownReport, DaemonError>>,
    /// Bound of each wait for a round or a reload.
    limit: Duration,
}

impl RunningDaemon {
    /// Starts a daemon on the config at `path` and runs it.
    pub async fn start(path: &Path) -> RunningDaemon {
        let daemon = Daemon::start(path).await.expect("the daemon starts");
        RunningDaemon::run(daemon)
    }

    /// As `start`, with the daemon on `clock`.
    pub async fn start_with_clock(path: &Path, clock: Clock) -> RunningDaemon {
        let daemon = Daemon::start_with_clock(path, clock)
            .await
            .expect("the daemon starts");
        RunningDaemon::run(daemon)
    }

    /// Runs a daemon already started (a test may look at it first).
    pub fn run(daemon: Daemon) -> RunningDaemon {
        RunningDaemon {
            pipeline: daemon.pipeline().clone(),
            api: daemon.api_addr(),
            rounds: daemon.pipeline().rounds.clone(),
            reloads: daemon.reloads(),
            controller: daemon.controller(),
            run: actix_rt::spawn(daemon.run()),
            limit: WAIT_LIMIT,
        }
    }

    /// Bounds each wait for a round or a reload by `limit` instead of
    /// `WAIT_LIMIT`.
    pub fn waiting_at_most(mut self, limit: Duration) -> RunningDaemon {
        self.limit = limit;
        self
    }

    /// The API's base URL, such as `http://127.0.0.1:40123`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.api.expect("the API is on"))
    }

    /// Waits for a finished round that satisfies `pred` (`what` names it
    /// in the failure).
    pub async fn round(
        &mut self,
        what: &str,
        pred: impl Fn(&RoundSummary) -> bool,
    ) -> RoundSummary {
        round_matching_within(&mut self.rounds, self.limit, what, pred).await
    }

    /// Waits for round 1 to finish.
    pub async fn first_round(&mut self) -> RoundSummary {
        self.round("1", |r| r.round == 1).await
    }

    /// Waits until `n` ticks in all have found nothing due (and so started
    /// no round).
    pub async fn idle_ticks(&mut self, n: u64) {
        let limit = self.limit;
        let mut ticks = self.pipeline.idle_ticks.clone();
        actix_rt::time::timeout(limit, ticks.wait_for(|t| *t >= n))
            .await
            .unwrap_or_else(|_| panic!("no {n} tick(s) with nothing due within {limit:?}"))
            .expect("the producer is alive");
    }

    /// The last round this process finished, if any.
    pub fn last_round(&self) -> Option<RoundSummary> {
        *self.rounds.borrow()
    }

    /// Waits for a reload status that satisfies `pred`.
    pub async fn reload(
        &mut self,
        what: &str,
        pred: impl Fn(&ReloadStatus) -> bool,
    ) -> ReloadStatus {
        let limit = self.limit;
        let status = actix_rt::time::timeout(limit, self.reloads.wait_for(pred))
            .await
            .unwrap_or_else(|_| panic!("no reload {what} within {limit:?}"))
            .expect("the daemon is alive");
        status.clone()
    }

    /// Waits until the config in force is version `version`.
    pub async fn reloaded_to(&mut self, version: u64) -> ReloadStatus {
        self.reload(&format!("to version {version}"), |s| s.version == version)
            .await
    }

    /// Re-reads the config file, as SIGHUP does, and says what came of it.
    pub async fn reload_and_wait(&self) -> ReloadOutcome {
        self.controller
            .reload_and_wait()
            .await
            .expect("the daemon answers")
    }

    /// The reload statuses as they come, for a test that follows each one
    /// or makes sure none comes.
    pub fn reloads(&mut self) -> &mut watch::Receiver<ReloadStatus> {
        &mut self.reloads
    }

    /// Runs a round now, as the schedule does, and waits for its end.
    pub async fn run_round(&self) -> Result<RoundSummary, RoundError> {
        self.pipeline
            .producer
            .send(RunRound)
            .await
            .expect("the producer is alive")
    }

    /// Runs a round now, as the schedule does, if any cell is due: the
    /// version of the config it ran (or found nothing due) under, which
    /// either way shows that ticks go on under that config.
    pub async fn tick(&self) -> u64 {
        match self.run_round().await {
            Ok(summary) => summary.config_version,
            Err(RoundError::NothingDue { config_version, .. }) => config_version,
            Err(e) => panic!("the tick failed: {e}"),
        }
    }

    /// The aggregator's map as it is now.
    pub async fn store(&self) -> Store {
        self.pipeline
            .aggregator
            .send(GetStore)
            .await
            .expect("the aggregator is alive")
    }

    /// How many workers the pool runs with now.
    pub async fn workers(&self) -> usize {
        self.pipeline
            .supervisor
            .send(GetStats)
            .await
            .expect("the supervisor is alive")
            .workers
    }

    /// Shuts down gracefully, as SIGTERM does; the shutdown must be clean.
    pub async fn shutdown(self) -> ShutdownReport {
        self.controller.shutdown();
        self.run
            .await
            .expect("the daemon's task ends")
            .expect("clean shutdown")
    }
}

/// Waits on `rounds` for a finished round that satisfies `pred`.
pub async fn round_matching(
    rounds: &mut watch::Receiver<Option<RoundSummary>>,
    what: &str,
    pred: impl Fn(&RoundSummary) -> bool,
) -> RoundSummary {
    round_matching_within(rounds, WAIT_LIMIT, what, pred).await
}

/// As `round_matching`, waiting at most `limit`.
pub async fn round_matching_within(
    rounds: &mut watch::Receiver<Option<RoundSummary>>,
    limit: Duration,
    what: &str,
    pred: impl Fn(&RoundSummary) -> bool,
) -> RoundSummary {
    let got = actix_rt::time::timeout(limit, rounds.wait_for(|r| r.as_ref().is_some_and(&pred)))
        .await
        .unwrap_or_else(|_| panic!("no round {what} within {limit:?}"))
        .expect("the producer is alive");
    got.expect("matched a round")
}

/// The record a daemon leaves after one round of `universe` (fetching
/// from `server`, the record beside the export directory `dir/snap`): its
/// path, and the map it held.
pub async fn recorded(
    server: &pricegrid::server::PriceServer,
    dir: &Path,
    universe: impl FnOnce(super::TestConfig) -> super::TestConfig,
) -> (std::path::PathBuf, Store) {
    let config = super::TestConfig::daemon(&server.url(), &dir.join("snap")).quick_backoff();
    let path = universe(config).write(&dir.join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    daemon.first_round().await;
    let store = daemon.store().await;
    daemon.shutdown().await;
    (dir.join("snap.db"), store)
}

/// The `pricegrid` binary's log lines (stderr).
pub type LogLines = std::io::Lines<std::io::BufReader<std::process::ChildStderr>>;

/// Runs the `pricegrid` binary with `args` (in `dir`, if given, logging at
/// info whatever the runner's RUST_LOG) to its end: exit code, stdout,
/// stderr.
pub fn pricegrid_in(
    dir: Option<&Path>,
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> (i32, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pricegrid"));
    command.args(args.iter().map(|a| a.as_ref()));
    if let Some(dir) = dir {
        command.current_dir(dir).env("RUST_LOG", "info");
    }
    let out = command.output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `pricegrid run --config CONFIG` with its log piped. A watchdog
/// kills it after a minute, so that a test waiting on its log fails
/// instead of hanging.
pub fn spawn_daemon(config: &Path) -> (std::process::Child, LogLines) {
    spawn_pricegrid(None, &[&"run", &"--config", &config])
}

/// Starts the `pricegrid` binary with `args` (in `dir`, if given) and its
/// log (stderr, at info) piped, under the same one-minute watchdog as
/// `spawn_daemon`.
pub fn spawn_pricegrid(
    dir: Option<&Path>,
    args: &[&dyn AsRef<std::ffi::OsStr>],
) -> (std::process::Child, LogLines) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut command = Command::new(env!("CARGO_BIN_EXE_pricegrid"));
    command.args(args.iter().map(|a| a.as_ref()));
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(WAIT_LIMIT);
        // Only if that pid is still a pricegrid (not a reused pid).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("pricegrid") {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let lines = std::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    (child, lines)
}

/// Reads log lines until `count` of them contain `needle`; returns what it
/// read.
pub fn read_until(lines: &mut LogLines, needle: &str, count: usize) -> String {
    let mut seen = 0;
    let mut log = String::new();
    for line in lines.by_ref() {
        let line = line.expect("utf-8 log");
        log.push_str(&line);
        log.push('\n');
        if line.contains(needle) {
            seen += 1;
            if seen == count {
                return log;
            }
        }
    }
    panic!("the log ended before {count} x {needle:?}:\n{log}");
}

/// Reads the rest of the log, to its end (the process exits).
pub fn read_to_end(lines: LogLines, log: &mut String) {
    for line in lines {
        log.push_str(&line.expect("utf-8 log"));
        log.push('\n');
    }
}

/// Sends `signal` (e.g. "-TERM") to a child process.
pub fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} failed");
}
