//! The long-lived daemon (`pricegrid run`): rounds on a schedule, hot reload
//! of its config file (on change and on SIGHUP), and a graceful shutdown on
//! SIGINT/SIGTERM (stop dispatching, drain, final snapshot, exit 0; a second
//! signal forces the exit).
//!
//! Owns the process lifecycle and the config's versions; it hands each new
//! config whole to the actors and never touches the map itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::{new_debouncer, notify::RecursiveMode, DebounceEventResult};
use tokio::sync::{mpsc, watch};

use crate::actors::aggregator::{Configure, SnapshotSettings, WriteSnapshot};
use crate::actors::producer::{ApplyConfig, StartSchedule, StopRounds};
use crate::actors::supervisor::{Drain, PoolSettings, Reconfigure};
use crate::actors::{Pipeline, PipelineOptions};
use crate::api::{self, ApiServer, ApiState};
use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::model::CellState;
use crate::snapshot::{self, SnapshotError};
use crate::source::{OriginError as AppError, Source};
use crate::store::Store;

/// A signal sooner than this after the first is taken as the same request.
const SECOND_SIGNAL_AFTER: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    App(#[from] AppError),
    #[error("cannot watch the config file {path}: {reason}")]
    Watch { path: PathBuf, reason: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("cannot read the snapshot directory {path}: {source}")]
    SnapshotDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the API on {listen}: {source}")]
    Api {
        listen: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("an actor stopped unexpectedly: {0}")]
    Mailbox(#[from] actix::MailboxError),
}

/// The outcome of the latest reload attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Version of the config in force (0: the one the daemon started with).
    pub version: u64,
    /// Reload attempts so far, applied or rejected.
    pub attempts: u64,
    /// Why the latest attempt was rejected, if it was.
    pub last_error: Option<String>,
}

enum Control {
    Reload,
    Shutdown,
}

/// Asks a running daemon to reload or stop; cheap to clone, `Send`.
#[derive(Clone)]
pub struct Controller(mpsc::UnboundedSender<Control>);

impl Controller {
    /// Re-reads the config file, as SIGHUP does.
    pub fn reload(&self) {
        let _ = self.0.send(Control::Reload);
    }

    /// Stops gracefully, as SIGTERM does.
    pub fn shutdown(&self) {
        let _ = self.0.send(Control::Shutdown);
    }
}

/// What a graceful shutdown left behind.
#[derive(Debug, Clone)]
pub struct ShutdownReport {
    pub snapshot: PathBuf,
    pub prices: usize,
    /// Tasks still in flight when `fetch.drain_timeout` ran out.
    pub abandoned: usize,
}

pub struct Daemon {
    path: PathBuf,
    clock: Clock,
    config: Arc<Config>,
    source: Source,
    pipeline: Pipeline,
    api: Option<ApiServer>,
    snapshot_dir: watch::Sender<PathBuf>,
    started: std::time::Instant,
    status: watch::Sender<ReloadStatus>,
    control_tx: mpsc::UnboundedSender<Control>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    _watcher: notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
}

impl Daemon {
    /// Loads the config, starts the source and the actors, the schedule and
    /// the file watcher. Must run inside an actix system.
    pub async fn start(path: &Path) -> Result<Daemon, DaemonError> {
        Self::start_with_clock(path, Clock::system()).await
    }

    /// As `start`, with "now" from `clock` (tests move it across midnight).
    pub async fn start_with_clock(path: &Path, clock: Clock) -> Result<Daemon, DaemonError> {
        let config = Arc::new(Config::load(path)?);
        let (store, last_round) = resume(&config)?;
        let source = Source::start_with_clock(&config, &clock)?;
        if let Err(e) = source.check_reachable(&config).await {
            log::warn!("{e}; rounds will keep trying");
        }
        let pipeline = Pipeline::start_with(
            config.clone(),
            source.url.clone(),
            PipelineOptions {
                source_id: Some(source.identity.clone()),
                clock: clock.clone(),
                store,
                last_round,
            },
        );
        pipeline.aggregator.do_send(configure(&config, 0));
        let (snapshot_dir, _) = watch::channel(config.snapshot.dir.clone());
        let started = std::time::Instant::now();
        let api = if config.api.enabled {
            Some(start_api(&config, &pipeline, &snapshot_dir, started)?)
        } else {
            None
        };
        pipeline.producer.do_send(StartSchedule);
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let watcher = watch_file(path, control_tx.clone())?;
        log::info!(
            "daemon started: config {} (version 0), source {}, {} workers, every {}",
            path.display(),
            config.source.url,
            config.fetch.workers,
            humantime::format_duration(config.schedule.interval)
        );
        Ok(Daemon {
            path: path.to_owned(),
            clock,
            config,
            source,
            pipeline,
            api,
            snapshot_dir,
            started,
            status: watch::Sender::new(ReloadStatus::default()),
            control_tx,
            control_rx,
            _watcher: watcher,
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
    /// shuts down gracefully.
    pub async fn run(mut self) -> Result<ShutdownReport, DaemonError> {
        let mut hangup = hangup_stream();
        let mut terminate = crate::shutdown::Terminate::new();
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = next_hangup(&mut hangup) => {
                    log::info!("SIGHUP received: reloading {}", self.path.display());
                    self.reload().await;
                }
                control = self.control_rx.recv() => match control {
                    Some(Control::Reload) => self.reload().await,
                    Some(Control::Shutdown) | None => break,
                },
            }
        }
        self.shutdown().await
    }

    /// Records and logs a rejected reload; the config in force stays.
    fn reject(&self, mut status: ReloadStatus, error: String) {
        log::error!(
            "config reload rejected, still running version {}:\n{error}",
            status.version
        );
        status.last_error = Some(error);
        self.status.send_replace(status);
    }

    /// Re-reads the config; applies it whole if valid, keeps the old one
    /// (and says why) if not.
    async fn reload(&mut self) {
        let mut status = self.status.borrow().clone();
        status.attempts += 1;
        let new = match Config::load(&self.path) {
            Ok(c) => c,
            Err(e) => return self.reject(status, e.to_string()),
        };
        status.last_error = None;
        if new == *self.config {
            log::debug!("config file changed but its content did not");
            self.status.send_replace(status);
            return;
        }
        let changed = changed_sections(&self.config, &new);
        // Start what the new config needs first; only when all of it is up
        // is anything swapped, so a failure leaves the old config whole.
        let new_source = if new.source.url != self.config.source.url
            || new.source.builtin != self.config.source.builtin
        {
            match Source::start_with_clock(&new, &self.clock) {
                Ok(source) => Some(source),
                Err(e) => return self.reject(status, e.to_string()),
            }
        } else {
            None
        };
        let new_api = if new.api != self.config.api && new.api.enabled {
            match start_api(&new, &self.pipeline, &self.snapshot_dir, self.started) {
                Ok(api) => Some(api),
                Err(e) => {
                    if let Some(source) = new_source {
                        source.stop().await;
                    }
                    return self.reject(status, e.to_string());
                }
            }
        } else {
            None
        };
        let old_source = new_source.map(|s| std::mem::replace(&mut self.source, s));
        let old_api = if new.api != self.config.api {
            std::mem::replace(&mut self.api, new_api)
        } else {
            None
        };
        let new = Arc::new(new);
        status.version += 1;
        let base = self.source.url.clone();
        self.pipeline
            .supervisor
            .do_send(Reconfigure(PoolSettings::new(
                base.clone(),
                self.source.identity.clone(),
                &new.source,
                &new.fetch,
            )));
        self.pipeline.producer.do_send(ApplyConfig {
            config: new.clone(),
            version: status.version,
            base,
            source_id: self.source.identity.clone(),
        });
        self.pipeline
            .aggregator
            .do_send(configure(&new, status.version));
        self.snapshot_dir.send_replace(new.snapshot.dir.clone());
        self.config = new;
        log::info!(
            "config version {} applied from {} (changed: {})",
            status.version,
            self.path.display(),
            changed.join(", ")
        );
        self.status.send_replace(status);
        if let Some(old) = old_source {
            old.stop().await;
        }
        if let Some(old) = old_api {
            old.stop().await;
        }
    }

    async fn shutdown(self) -> Result<ShutdownReport, DaemonError> {
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
            log::warn!("second signal: exiting now, without a final snapshot");
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
        let written = self
            .pipeline
            .aggregator
            .send(WriteSnapshot)
            .await?
            .ok_or_else(|| SnapshotError::Write {
                path: self.config.snapshot.dir.clone(),
                source: std::io::Error::other("snapshots are not configured"),
            })??;
        log::info!("final snapshot {}", written.path.display());
        if let Some(api) = &self.api {
            api.stop().await;
        }
        self.source.stop().await;
        Ok(ShutdownReport {
            snapshot: written.path,
            prices: written.prices,
            abandoned,
        })
    }
}

/// The newest snapshot that loads, to start from (an empty map if none).
fn resume(config: &Config) -> Result<(Store, u64), DaemonError> {
    let dir = &config.snapshot.dir;
    let snapshot::Newest { found, skipped } =
        snapshot::load_newest(dir).map_err(|source| DaemonError::SnapshotDir {
            path: dir.clone(),
            source,
        })?;
    for e in skipped {
        log::warn!("skipping snapshot: {e}");
    }
    Ok(match found {
        Some((file, snap)) => {
            log::info!(
                "resuming from {}: {} cells ({} prices, {} none, {} failed), round {}",
                file.path.display(),
                snap.prices.len(),
                snap.prices.price_count(),
                snap.prices.count(CellState::NoPrice),
                snap.prices.count(CellState::Failed),
                snap.round
            );
            (snap.prices, snap.round)
        }
        None => {
            log::info!(
                "no snapshot in {} to resume from: starting empty",
                dir.display()
            );
            (Store::new(), 0)
        }
    })
}

fn configure(config: &Config, version: u64) -> Configure {
    Configure {
        config_version: version,
        progress_every: config.log.progress_every,
        snapshots: Some(SnapshotSettings {
            dir: config.snapshot.dir.clone(),
            every: config.snapshot.every,
            keep: config.snapshot.keep,
        }),
    }
}

fn start_api(
    config: &Config,
    pipeline: &Pipeline,
    snapshot_dir: &watch::Sender<PathBuf>,
    started: std::time::Instant,
) -> Result<ApiServer, DaemonError> {
    let state = ApiState {
        aggregator: pipeline.aggregator.clone(),
        supervisor: pipeline.supervisor.clone(),
        metrics: pipeline.metrics.clone(),
        snapshot_dir: snapshot_dir.subscribe(),
        started,
    };
    api::start(config.api.listen, state).map_err(|source| DaemonError::Api {
        listen: config.api.listen,
        source,
    })
}

/// Which top-level sections differ, for the reload log line.
fn changed_sections(old: &Config, new: &Config) -> Vec<&'static str> {
    [
        ("source", old.source != new.source),
        ("universe", old.universe != new.universe),
        ("fetch", old.fetch != new.fetch),
        ("schedule", old.schedule != new.schedule),
        ("snapshot", old.snapshot != new.snapshot),
        ("api", old.api != new.api),
        ("log", old.log != new.log),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Watches the config file's directory (so editors that write a new file and
/// rename it over the old one are seen too) and asks for a reload when the
/// file changes.
fn watch_file(
    path: &Path,
    control: mpsc::UnboundedSender<Control>,
) -> Result<
    notify_debouncer_mini::Debouncer<notify_debouncer_mini::notify::RecommendedWatcher>,
    DaemonError,
> {
    let err = |reason: String| DaemonError::Watch {
        path: path.to_owned(),
        reason,
    };
    let absolute = std::path::absolute(path).map_err(|e| err(e.to_string()))?;
    let dir = absolute
        .parent()
        .ok_or_else(|| err("it has no parent directory".into()))?
        .to_owned();
    let name = absolute
        .file_name()
        .ok_or_else(|| err("it names no file".into()))?
        .to_owned();
    let mut debouncer = new_debouncer(
        Duration::from_millis(200),
        move |res: DebounceEventResult| match res {
            Ok(events) => {
                if events
                    .iter()
                    .any(|e| e.path.file_name() == Some(name.as_os_str()))
                {
                    let _ = control.send(Control::Reload);
                }
            }
            Err(e) => log::warn!("config watcher: {e}"),
        },
    )
    .map_err(|e| err(e.to_string()))?;
    debouncer
        .watcher()
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| err(e.to_string()))?;
    Ok(debouncer)
}

#[cfg(unix)]
fn hangup_stream() -> Option<actix_rt::signal::unix::Signal> {
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

/// `pricegrid run`: the daemon until SIGINT/SIGTERM.
pub fn run(path: &Path) -> anyhow::Result<std::process::ExitCode> {
    actix_rt::System::new().block_on(async {
        let daemon = Daemon::start(path).await?;
        daemon.run().await?;
        Ok(std::process::ExitCode::SUCCESS)
    })
}
