//! How the daemon serves its HTTP API: binding `api.listen` (taking over
//! the running API's socket when a reload keeps the address), reading the
//! token, and handing the API what it reads (the pipeline, the files in
//! force as watch channels, the daemon's view). It starts and binds; it
//! decides nothing about reloads (`reload.rs`) or the process (`mod.rs`),
//! and it holds no handler (`crate::api`).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};

use super::{Control, DaemonError};
use crate::actors::Pipeline;
use crate::api::{
    self, Access, ApiListener, ApiServer, ApiState, DaemonView, ReloadOutcome, Token,
};
use crate::clock::Clock;
use crate::config::Config;

/// The files the API reads, as watch channels, so that an API started
/// before a reload reads what is in force after it: the export directory
/// (`snapshot.dir`) and the record. The record stays the file the daemon
/// opened at start: the Recorder keeps its connection across reloads, so a
/// reloaded `store.path` takes effect at the next start.
pub(super) struct ApiFiles {
    pub(super) snapshot_dir: watch::Sender<PathBuf>,
    pub(super) record: watch::Sender<crate::record::Location>,
}

impl ApiFiles {
    /// A reload's new export directory.
    pub(super) fn send_replace(&self, snapshot_dir: PathBuf) -> PathBuf {
        self.snapshot_dir.send_replace(snapshot_dir)
    }
}

/// What an API started by the daemon reads besides the pipeline.
pub(super) struct ApiLinks<'a> {
    pub(super) files: &'a ApiFiles,
    pub(super) view: &'a watch::Sender<DaemonView>,
    pub(super) clock: &'a Clock,
}

/// The API's port, bound, and what it will accept (its token read).
pub(super) struct BoundApi {
    listener: ApiListener,
    access: Access,
}

/// Reads `api.token_file`, if set, and binds `api.listen`.
pub(super) fn bind_api(config: &Config) -> Result<BoundApi, DaemonError> {
    bind_api_beside(config, None)
}

/// As `bind_api`, taking over `running`'s socket when it was asked for the
/// same address (a reload that changes `[api]` but not `api.listen`).
pub(super) fn bind_api_beside(
    config: &Config,
    running: Option<&ApiServer>,
) -> Result<BoundApi, DaemonError> {
    let token = config
        .api
        .token_file
        .as_deref()
        .map(Token::read)
        .transpose()?;
    let listen = config.api.listen;
    let listener = running
        .and_then(|api| api.socket_for(listen))
        .unwrap_or_else(|| ApiListener::bind(listen))
        .map_err(|error| DaemonError::ExchangeApi { listen, error })?;
    let access = Access::new(listener.addr, config.api.allowed_hosts.clone(), token);
    Ok(BoundApi { listener, access })
}

/// Binds and serves the API of `config` (a reload that changes `[api]`),
/// on `running`'s socket when `api.listen` is unchanged.
pub(super) fn start_api(
    config: &Config,
    running: Option<&ApiServer>,
    pipeline: &Pipeline,
    links: &ApiLinks<'_>,
    started: std::time::Instant,
    control: &mpsc::UnboundedSender<Control>,
) -> Result<ApiServer, DaemonError> {
    let port = bind_api_beside(config, running)?;
    serve_api(port, config, pipeline, links, started, control)
}

/// Serves the API on a port bound by `bind_api`.
pub(super) fn serve_api(
    port: BoundApi,
    config: &Config,
    pipeline: &Pipeline,
    links: &ApiLinks<'_>,
    started: std::time::Instant,
    control: &mpsc::UnboundedSender<Control>,
) -> Result<ApiServer, DaemonError> {
    let (reload, mut requests) = mpsc::unbounded_channel::<oneshot::Sender<ReloadOutcome>>();
    let control = control.clone();
    actix_rt::spawn(async move {
        while let Some(reply) = requests.recv().await {
            if control.send(Control::Reload(Some(reply))).is_err() {
                return;
            }
        }
    });
    let state = ApiState {
        aggregator: pipeline.aggregator.clone(),
        store: pipeline.store.clone(),
        supervisor: pipeline.supervisor.clone(),
        metrics: pipeline.metrics.clone(),
        snapshot_dir: links.files.snapshot_dir.subscribe(),
        record: links.files.record.subscribe(),
        started,
        reload: Some(reload),
        queries: Arc::new(tokio::sync::Semaphore::new(
            config.api.max_concurrent_queries,
        )),
        daemon: links.view.subscribe(),
        clock: links.clock.clone(),
        rounds: pipeline.rounds.clone(),
        fleet: pipeline.fleet.clone(),
        event_streams: Arc::new(tokio::sync::Semaphore::new(api::MAX_EVENT_STREAMS)),
        recent_status: Arc::default(),
    };
    api::start(port.listener, port.access, state).map_err(|error| DaemonError::ExchangeApi {
        listen: config.api.listen,
        error,
    })
}
