//! The long-lived daemon (`pricegrid run`): rounds on a schedule, hot reload
//! of its config file (on change and on SIGHUP), and a graceful shutdown on
//! SIGINT/SIGTERM (stop dispatching, drain, final snapshot, exit 0; a second
//! signal forces the exit).
//!
//! Owns the process lifecycle and the config's versions. A reload (file
//! change, SIGHUP, `POST /v1/reload`) reads a finished file (all three
//! through the watcher's settling rule), validates it, refuses a universe
//! larger than `universe.max_tasks` once discovered, starts what the new
//! config needs (a source, an API) before anything is
//! swapped, and hands the config whole to the Producer as one `Reconfigure`,
//! which puts it in force at the next round boundary; the old source is
//! stopped in the background once the round using it is over, so signals are
//! handled meanwhile. The reload itself is `reload.rs`; serving the API is
//! `listen.rs`. It never touches the map. (A little over 500 lines: start,
//! run loop, shutdown and resume are one lifecycle and stay together.)

mod listen;
pub mod lock;
mod reload;

use listen::{bind_api, serve_api, ApiFiles, ApiLinks};
use reload::Asked;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use crate::actors::aggregator::Flush;
use crate::actors::producer::{StartSchedule, StopRounds};
use crate::actors::supervisor::Drain;
use crate::actors::{Pipeline, PipelineOptions};
pub use crate::api::ReloadOutcome;
use crate::api::{self, ApiServer, DaemonView, LastReload};
use crate::clock::Clock;
use crate::config::watcher::{self, ConfigWatcher, WatchError};
use crate::config::{Config, ConfigError};
use crate::model::CellState;
use crate::origin::{OriginError as AppError, Source};
use crate::record::{Location, Record, RecordError};
use crate::store::Store;

/// A signal sooner than this after the first is taken as the same request.
const SECOND_SIGNAL_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    Token(#[from] api::TokenError),
    /// The OS's words end the line: the error is not chained as a source,
    /// or the report would say them twice.
    #[error("cannot start the API on {listen}: {}", without_code(error))]
    ExchangeApi {
        listen: std::net::SocketAddr,
        error: std::io::Error,
    },
    #[error("an actor stopped unexpectedly: {0}")]
    Mailbox(#[from] actix::MailboxError),
}

/// An OS error as the system words it ("Address already in use"), without
/// std's " (os error 98)": a person reads the line, and the words say it.
fn without_code(e: &std::io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or(text.clone(), str::to_owned),
        None => text,
    }
}

/// How long the config file must stay unchanged before it is read.
const SETTLE: Duration = Duration::from_millis(200);

/// How long a reload asked by SIGHUP or `POST /v1/reload` waits for a file
/// being written to settle before it answers that it is still being written.
const SETTLE_WAIT: Duration = Duration::from_secs(5);

/// The outcome of the latest reload attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Version of the latest accepted config (0: the one the daemon started
    /// with). It is in force from the next round boundary.
    pub version: u64,
    /// Reload attempts so far, applied or rejected.
    pub attempts: u64,
    /// Why the latest attempt was rejected, if it was.
    pub last_error: Option<String>,
}

enum Control {
    Reload(Option<oneshot::Sender<ReloadOutcome>>),
    Shutdown,
}

/// Asks a running daemon to reload or stop; cheap to clone, `Send`.
#[derive(Clone)]
pub struct Controller(mpsc::UnboundedSender<Control>);

impl Controller {
    /// Re-reads the config file, as SIGHUP does.
    pub fn reload(&self) {
        let _ = self.0.send(Control::Reload(None));
    }

    /// Re-reads the config file and says what came of it.
    pub async fn reload_and_wait(&self) -> Option<ReloadOutcome> {
        let (tx, rx) = oneshot::channel();
        self.0.send(Control::Reload(Some(tx))).ok()?;
        rx.await.ok()
    }

    /// Stops gracefully, as SIGTERM does.
    pub fn shutdown(&self) {
        let _ = self.0.send(Control::Shutdown);
    }
}

/// What a graceful shutdown left behind.
#[derive(Debug, Clone)]
pub struct ShutdownReport {
    /// The record, up to date.
    pub record: PathBuf,
    pub prices: usize,
    /// Tasks still in flight when `fetch.drain_timeout` ran out.
    pub abandoned: usize,
}

/// Settings given on the command line (`pricegrid run --listen`): they win
/// over the config file's, at start and at every reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Where the API listens, instead of `api.listen`.
    pub api_listen: Option<std::net::SocketAddr>,
}

impl Overrides {
    fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.api_listen {
            config.api.listen = listen;
        }
    }
}

pub struct Daemon {
    path: PathBuf,
    overrides: Overrides,
    clock: Clock,
    /// The latest accepted config (in force from the next round boundary).
    config: Arc<Config>,
    source: Source,
    pipeline: Pipeline,
    api: Option<ApiServer>,
    /// What the API reads from disk (`reload.rs` moves the export
    /// directory through it).
    snapshot_dir: ApiFiles,
    started: std::time::Instant,
    status: watch::Sender<ReloadStatus>,
    /// What the API reports of the daemon itself (draining, last reload).
    view: watch::Sender<DaemonView>,
    control_tx: mpsc::UnboundedSender<Control>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    /// Finished contents of the config file, from the watcher.
    file_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    /// The last content read (applied or rejected), so one content is
    /// handled once, and the last rejected one, so it is logged once.
    last_seen: Option<u64>,
    last_rejected: Option<u64>,
    /// None when the daemon started without a config file (on the
    /// built-in defaults): a reload then reads `path` if it has appeared.
    _watcher: Option<ConfigWatcher>,
    /// This daemon's hold on its record, for as long as it runs.
    _record_lock: Option<lock::RecordLock>,
    /// SIGHUP, and SIGINT/SIGTERM: listened to from before "daemon
    /// started" is logged and systemd is told it is ready, so a signal
    /// sent on that word is never the default one that kills.
    hangup: Hangup,
    _heartbeat: Option<crate::record::Heartbeat>,
    terminate: Option<crate::shutdown::Terminate>,
}

impl Daemon {
    /// Loads the config, binds the API's port, opens the record, and only
    /// then starts the source and the actors, the schedule and the file
    /// watcher: a port in use or an unreadable token stops it before the
    /// record is touched or anything runs. Must run inside an actix system.
    pub async fn start(path: &Path) -> Result<Daemon, DaemonError> {
        Self::start_with_clock(path, Clock::system()).await
    }

    /// As `start`, with "now" from `clock` (tests move it across midnight).
    pub async fn start_with_clock(path: &Path, clock: Clock) -> Result<Daemon, DaemonError> {
        let config = Config::load(path)?;
        Self::start_on(path, config, Overrides::default(), clock).await
    }

    /// Starts on `config`, read from `path` (or the built-in defaults when
    /// there is no file at `path`: then nothing is watched, and a reload
    /// reads `path` once it exists), with `overrides` applied to it and to
    /// every config reloaded. Must run inside an actix system.
    pub async fn start_on(
        path: &Path,
        mut config: Config,
        overrides: Overrides,
        clock: Clock,
    ) -> Result<Daemon, DaemonError> {
        let text = std::fs::read(path).ok();
        overrides.apply(&mut config);
        let config = Arc::new(config);
        let api_port = if config.api.enabled {
            Some(bind_api(&config)?)
        } else {
            None
        };
        // An SQLite file has one writer, this daemon; a PostgreSQL record is
        // shared by a fleet, whose leases say who writes what.
        let record_lock = match config.store.location() {
            Location::File(path) => Some(lock::RecordLock::take(&path, chrono::Utc::now())?),
            Location::Postgres(_) => None,
        };
        // On a thread of its own: PostgreSQL's client blocks on a runtime
        // of its own, which may not start inside this one.
        let (record, store, last_round) = std::thread::scope(|s| {
            s.spawn(|| resume(&config))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        // In a fleet, the leases are renewed on a thread of their own.
        let heartbeat = record
            .shared()
            .map(|shared| shared.heartbeat(config.fleet.lease_ttl));
        let source = Source::start_with_clock(&config, &clock)?;
        if let Err(e) = source.check_reachable(&config).await {
            log::warn!("{e}; rounds will keep trying");
        }
        let pipeline = Pipeline::start_with(
            config.clone(),
            source.url.clone(),
            PipelineOptions {
                clock: clock.clone(),
                store,
                last_round,
                record: Some(record),
                ..PipelineOptions::from_source(&source)
            },
        );
        let snapshot_dir = ApiFiles {
            snapshot_dir: watch::Sender::new(config.snapshot.dir.clone()),
            record: watch::Sender::new(config.store.location()),
        };
        let started = std::time::Instant::now();
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let status = watch::Sender::new(ReloadStatus::default());
        let view = watch::Sender::new(DaemonView {
            universe: Some(config.universe.clone()),
            ..DaemonView::default()
        });
        let api = if let Some(port) = api_port {
            Some(serve_api(
                port,
                &config,
                &pipeline,
                &ApiLinks {
                    files: &snapshot_dir,
                    view: &view,
                    clock: &clock,
                },
                started,
                &control_tx,
            )?)
        } else {
            None
        };
        pipeline.producer.do_send(StartSchedule);
        let (file_tx, file_rx) = mpsc::unbounded_channel();
        let watcher = match text {
            Some(_) => Some(watcher::watch(path, SETTLE, file_tx)?),
            None => None,
        };
        let from = match text {
            Some(_) => path.display().to_string(),
            None => format!("the built-in defaults (no {})", path.display()),
        };
        let hangup = hangup_stream();
        let terminate = Some(crate::shutdown::Terminate::new());
        log::info!(
            "daemon started: config {from} (version 0), source {}, {} workers carrying {} requests in flight, every {}",
            config.source.url,
            config.fetch.workers,
            config.fetch.in_flight,
            humantime::format_duration(config.schedule.interval)
        );
        notify_systemd(&[sd_notify::NotifyState::Ready]);
        Ok(Daemon {
            path: path.to_owned(),
            overrides,
            clock,
            config,
            source,
            pipeline,
            api,
            snapshot_dir,
            started,
            status,
            view,
            control_tx,
            control_rx,
            file_rx,
            last_seen: text.as_deref().map(reload::content_hash),
            last_rejected: None,
            _watcher: watcher,
            _record_lock: record_lock,
            hangup,
            terminate,
            _heartbeat: heartbeat,
        })
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn reloads(&self) -> watch::Receiver<ReloadStatus> {
        self.status.subscribe()
    }

    pub fn controller(&self) -> Controller {
        Controller(self.control_tx.clone())
    }

    /// Where the API listens, if it is on.
    pub fn api_addr(&self) -> Option<std::net::SocketAddr> {
        self.api.as_ref().map(|a| a.addr)
    }

    /// Runs until a shutdown is asked for (signal or `Controller`), then
    /// shuts down gracefully. Reloads run one at a time; a reload never
    /// waits on a round or on a server stopping, and a signal interrupts one
    /// still waiting for the file or the source, so a signal is acted on at
    /// once (a `Controller::shutdown` waits for the reload, at most
    /// `SETTLE_WAIT` plus a discovery).
    pub async fn run(mut self) -> Result<ShutdownReport, DaemonError> {
        let mut hangup = self.hangup.take();
        let mut terminate = self.terminate.take().unwrap_or_default();
        loop {
            let (asked, reply) = tokio::select! {
                biased;
                _ = terminate.recv() => break,
                control = self.control_rx.recv() => match control {
                    Some(Control::Reload(reply)) => (Asked::Request, reply),
                    Some(Control::Shutdown) | None => break,
                },
                _ = next_hangup(&mut hangup) => {
                    log::info!("SIGHUP received: reloading {}", self.path.display());
                    (Asked::Request, None)
                }
                Some(content) = self.file_rx.recv() => (Asked::Watcher(content), None),
            };
            // One reload at a time; a signal stops it where it is (nothing is
            // swapped until its end), so waiting for the file to settle or for
            // the source to list its names never delays a shutdown.
            let outcome = tokio::select! {
                biased;
                _ = terminate.recv() => break,
                outcome = self.reload(asked) => outcome,
            };
            if let Some(reply) = reply {
                let _ = reply.send(outcome);
            }
        }
        self.shutdown().await
    }

    async fn shutdown(self) -> Result<ShutdownReport, DaemonError> {
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        self.view.send_modify(|v| v.draining = true);
        log::info!(
            "shutting down: no new tasks, draining in-flight ones for up to {}",
            humantime::format_duration(self.config.fetch.drain_timeout)
        );
        let first = std::time::Instant::now();
        actix_rt::spawn(async move {
            let mut terminate = crate::shutdown::Terminate::new();
            loop {
                terminate.recv().await;
                // Some supervisors deliver one stop request twice at once
                // (`timeout` signals the process and then its group): only
                // a signal a moment later is a second request.
                if first.elapsed() >= SECOND_SIGNAL_AFTER {
                    break;
                }
                log::debug!("a duplicate of the first signal; ignored");
            }
            log::warn!("second signal: exiting now, what is not in the record yet is lost");
            std::process::exit(130);
        });
        self.pipeline.producer.send(StopRounds).await?;
        let abandoned = self
            .pipeline
            .supervisor
            .send(Drain {
                timeout: self.config.fetch.drain_timeout,
            })
            .await?;
        if abandoned > 0 {
            log::warn!("{abandoned} tasks were still in flight after the drain timeout");
        }
        self.pipeline
            .aggregator
            .send(Flush)
            .await?
            .unwrap_or(Ok(()))?;
        // In a fleet, everything is written: the leases go back now, so
        // another daemon need not wait for them to expire.
        if let Some(recorder) = &self.pipeline.recorder {
            match recorder.send(crate::actors::recorder::ReleaseLeases).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => log::info!("{n} lease(s) given back to the fleet"),
                Ok(Err(e)) => log::warn!("leases not given back (they expire): {e}"),
                Err(e) => log::warn!("leases not given back (they expire): {e}"),
            }
        }
        let prices = self
            .pipeline
            .aggregator
            .send(crate::actors::aggregator::GetStatus)
            .await?
            .prices;
        log::info!("record {} up to date", self.config.store.location());
        if let Some(api) = &self.api {
            api.stop().await;
        }
        self.source.stop().await;
        Ok(ShutdownReport {
            record: self.config.store.path.clone(),
            prices,
            abandoned,
        })
    }
}

/// Opens the record (importing an old snapshot directory once) and loads
/// every cell's current value: where the daemon resumes. An unreadable or
/// newer-format record is an error, never a silent fresh start.
fn resume(config: &Config) -> Result<(Record, Store, u64), DaemonError> {
    let at = config.store.location();
    let mut record = Record::open_at(&at, &config.fleet.name)?;
    match record.import_snapshots(&config.snapshot.dir) {
        Ok(Some(imported)) => {
            for e in &imported.skipped {
                log::warn!("import: skipped {e}");
            }
            log::info!(
                "imported {} JSON snapshot(s) from {} into {}: {} cells",
                imported.snapshots.len(),
                imported.dir.display(),
                at,
                imported.cells
            );
        }
        Ok(None) => {}
        Err(e) => return Err(e.into()),
    }
    let (store, last_round) = record.load()?;
    if store.is_empty() {
        log::info!("record {at} is empty: starting from nothing");
    } else {
        log::info!(
            "resuming from {}: {} cells ({} prices, {} none, {} failed), round {}",
            at,
            store.len(),
            store.price_count(),
            store.count(CellState::NoPrice),
            store.count(CellState::Failed),
            last_round
        );
    }
    Ok((record, store, last_round))
}

impl Daemon {
    /// Tells the API how a reload ended.
    fn report_reload(&self, outcome: &ReloadOutcome) {
        let report = LastReload::new(self.clock.now(), outcome, self.status.borrow().version);
        let universe = self.config.universe.clone();
        self.view.send_modify(|v| {
            v.last_reload = Some(report);
            v.universe = Some(universe);
        });
    }
}

/// Tells systemd (`Type=notify`) how the daemon is doing; a no-op when not
/// run by systemd.
fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(false, state) {
        log::debug!("cannot notify systemd: {e}");
    }
}

#[cfg(unix)]
type Hangup = Option<actix_rt::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_stream() -> Hangup {
    use actix_rt::signal::unix::{signal, SignalKind};
    signal(SignalKind::hangup())
        .map_err(|e| log::warn!("cannot listen for SIGHUP ({e}); reload on file change only"))
        .ok()
}

#[cfg(unix)]
async fn next_hangup(s: &mut Option<actix_rt::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
fn hangup_stream() -> Option<()> {
    None
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Option<()>) {
    std::future::pending().await
}

/// `pricegrid run`: the daemon on `config` (read from `path`, or the
/// built-in defaults when there is no file there) until it is stopped.
pub fn run(
    path: &Path,
    config: Config,
    overrides: Overrides,
) -> anyhow::Result<std::process::ExitCode> {
    actix_rt::System::new().block_on(async {
        let daemon = Daemon::start_on(path, config, overrides, Clock::system()).await?;
        daemon.run().await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}
