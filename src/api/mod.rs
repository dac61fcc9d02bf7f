//! The daemon's HTTP API (actix-web): status, prices, cross-exchange
//! aggregates, coverage (`coverage.rs`), failures, the record's rounds, a
//! stream of status events (`events.rs`), Prometheus metrics, and the web
//! page (`crate::web`) that reads only these routes.
//!
//! Read-only: it takes a frozen copy of the Aggregator's store from its
//! `StoreReader` (not through its mailbox, where a question would wait
//! behind a round's results) and computes answers on its own worker
//! threads, so a large query never holds the Aggregator. Bad query parameters are a 400 with a
//! JSON error naming the parameter. Every request passes `access` first
//! (Host, Origin, bearer token, Content-Type, query size), on a port the
//! daemon bound before it started anything else (`ApiListener`).
//!
//! This file holds the routes, their handlers and the server's start; the
//! query parameters are `params.rs`'s, the reload vocabulary the daemon
//! shares `reload.rs`'s, the failure groups `failures.rs`'s. A little over
//! 500 lines: every handler is a few lines over the shared `from_store`,
//! and they read best side by side with the route table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::{dev::ServerHandle, http::StatusCode, web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use serde::Serialize;
use tokio::sync::watch;

use crate::actors::aggregator::{Aggregator, GetStatus, GetStore, RoundSummary, StoreReader, View};
use crate::actors::supervisor::{GetStats, Supervisor};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::query::{self, Known};
use crate::record::{Record, RoundRow};
use crate::render::{self, Format};

mod access;
mod coverage;
mod events;
mod failures;
mod params;
mod reference;
mod reload;

pub use access::{Access, Refusal, Token, TokenError, MIN_TOKEN_CHARS};
pub use events::MAX_STREAMS as MAX_EVENT_STREAMS;
pub use failures::{failure_groups, FailureGroup};
use params::{check_query_size, parse_group_cursor};
pub use params::{parse_params, ParamError, Params, DEFAULT_LIMIT, MAX_LIMIT, MAX_QUERY_BYTES};
pub use reload::{DaemonView, LastReload, ReloadOutcome, ReloadRequests, ReloadResult};

/// What the handlers read from.
#[derive(Clone)]
pub struct ApiState {
    pub aggregator: Addr<Aggregator>,
    /// The Aggregator's store, read without its mailbox: a question never
    /// waits behind a round's results.
    pub store: StoreReader,
    pub supervisor: Addr<Supervisor>,
    pub metrics: Arc<Metrics>,
    /// The export directory in force (it may change on reload).
    pub snapshot_dir: watch::Receiver<PathBuf>,
    /// The record the daemon writes, read by `/v1/snapshots`.
    pub record: watch::Receiver<crate::record::Location>,
    pub started: Instant,
    /// Where `POST /v1/reload` goes (none: not a daemon).
    pub reload: Option<ReloadRequests>,
    /// Queries allowed to run at once (`api.max_concurrent_queries`).
    pub queries: Arc<tokio::sync::Semaphore>,
    /// The daemon's own state (draining, last reload, window).
    pub daemon: watch::Receiver<DaemonView>,
    /// Today, for a rolling window.
    pub clock: Clock,
    /// The latest finished round, so `/v1/events` tells a round's end at once.
    pub rounds: watch::Receiver<Option<RoundSummary>>,
    /// In a fleet: who holds what, as the last round's lease saw it.
    pub fleet: watch::Receiver<Option<crate::record::Fleet>>,
    /// Event streams allowed open at once (`events::MAX_STREAMS`).
    pub event_streams: Arc<tokio::sync::Semaphore>,
    /// The latest status the event streams sent, and when it was made:
    /// streams ticking in the same moment share it, so a status (which
    /// counts the whole store) is made about once a second however many
    /// pages are open.
    pub recent_status: Arc<tokio::sync::Mutex<Option<(Instant, serde_json::Value)>>>,
}

/// A running API server.
pub struct ApiServer {
    pub addr: SocketAddr,
    handle: ServerHandle,
    /// Its listening socket, kept so that a reload which keeps
    /// `api.listen` but changes the rest of `[api]` (a token, the allowed
    /// hosts) serves the new rules on the same port: binding it again
    /// would fail while this server holds it.
    socket: ApiListener,
    /// Ends the event streams first: a graceful stop waits for open
    /// responses, and a stream would otherwise hold it for its whole
    /// shutdown timeout.
    closing: watch::Sender<bool>,
}

impl ApiServer {
    /// Its listening socket, for a server that takes over from this one,
    /// when `listen` is the address this one was asked for.
    pub fn socket_for(&self, listen: SocketAddr) -> Option<std::io::Result<ApiListener>> {
        (self.socket.listen == listen).then(|| self.socket.try_clone())
    }

    /// Stops taking new connections (a new server took over its port);
    /// those open are served until `stop`.
    pub async fn stop_accepting(&self) {
        self.handle.pause().await;
    }

    pub async fn stop(&self) {
        self.closing.send_replace(true);
        self.handle.stop(true).await;
    }
}

fn unavailable(what: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
        .json(serde_json::json!({ "error": format!("{what} is not running") }))
}

/// A page of an answer: its text, and where the next page starts.
struct Page {
    text: String,
    next: Option<String>,
}

/// Parses `allowed` parameters, takes a frozen copy of the store, and
/// renders one page of the answer on a blocking thread. At most
/// `api.max_concurrent_queries` run at once; the rest get a `503` with
/// `Retry-After`.
async fn from_store(
    state: web::Data<ApiState>,
    req: HttpRequest,
    allowed: &[&str],
    render: impl FnOnce(&crate::store::Store, Params, Format) -> Result<Page, ParamError>
        + Send
        + 'static,
) -> HttpResponse {
    let params = match parse_params(req.query_string(), allowed) {
        Ok(p) => p,
        Err(e) => return e.response(),
    };
    let Ok(_permit) = state.queries.clone().try_acquire_owned() else {
        return HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::RETRY_AFTER, "1"))
            .json(serde_json::json!({
                "error": "too many queries at once (api.max_concurrent_queries); try again in a second"
            }));
    };
    let filter = &params.filter;
    let view = match state.store.view(&filter.symbols, filter.from, filter.to) {
        Some(view) => view,
        // A whole judging pass waits (a new `[quality]`): the Aggregator
        // makes it first.
        None => match state.aggregator.send(GetStore).await {
            Ok(store) => View::judged(store),
            Err(_) => return unavailable("the aggregator"),
        },
    };
    let format = params.format.unwrap_or(Format::Json);
    let universe = state.daemon.borrow().universe.clone();
    let answer = web::block(move || {
        let store = view.into_store();
        // Names the store holds need no list of every name (20,000
        // symbols at 20M cells); only another name is judged against it.
        let filter = &params.filter;
        let held = filter.exchanges.iter().all(|e| store.holds_exchange(e))
            && filter.symbols.iter().all(|s| store.holds_symbol(s));
        if !held {
            let mut known = Known::of_store(&store);
            if let Some(universe) = &universe {
                known = known.with_universe(universe);
            }
            if let Err(e) = known.check(filter) {
                return Err(ParamError::new(e.kind.parameter(), e.to_string()));
            }
        }
        let page = render(&store, params, format);
        drop(store);
        page
    })
    .await;
    // Only after a large answer: on a heap of gigabytes (20M cells) a trim
    // costs more than a small question itself.
    if matches!(&answer, Ok(Ok(page)) if page.text.len() >= LARGE_ANSWER) {
        crate::heap::give_back();
    }
    match answer {
        Ok(Ok(page)) => {
            let mut resp = HttpResponse::Ok();
            resp.content_type(format.media_type());
            if let Some(next) = &page.next {
                resp.insert_header(("X-Next-Cursor", next.as_str()));
            }
            resp.body(page.text)
        }
        Ok(Err(e)) => e.response(),
        Err(_) => unavailable("the query worker"),
    }
}

/// An answer this large frees enough to hand back to the system.
const LARGE_ANSWER: usize = 1 << 20;

/// A page as JSON `{"rows": [...], "next": cursor | null}`, or as CSV (the
/// cursor in the `X-Next-Cursor` header).
fn paged(rows_text: String, next: Option<String>, format: Format) -> Page {
    let text = match format {
        Format::Json => {
            let next = serde_json::to_string(&next).unwrap_or_else(|_| "null".into());
            format!("{{\"rows\": {}, \"next\": {next}}}\n", rows_text.trim_end())
        }
        _ => rows_text,
    };
    Page { text, next }
}

const PAGED: [&str; 9] = [
    "exchange",
    "symbol",
    "from",
    "to",
    "format",
    "final_only",
    "exclude_flagged",
    "limit",
    "after",
];

async fn prices(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    let mut allowed = PAGED.to_vec();
    allowed.push("field");
    from_store(state, req, &allowed, |store, params, format| {
        let after = match &params.after {
            Some(raw) => Some(
                raw.parse::<query::Cursor>()
                    .map_err(|e| ParamError::new("after", e))?,
            ),
            None => None,
        };
        let (rows, next) = query::page(store, &params.filter, after.as_ref(), params.limit);
        let text = render::render_rows(&rows, params.field, format);
        Ok(paged(text, next.map(|c| c.to_string()), format))
    })
    .await
}

async fn aggregate(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    from_store(state, req, &PAGED, |store, params, format| {
        let after = match &params.after {
            Some(raw) => Some(parse_group_cursor(raw).map_err(|e| ParamError::new("after", e))?),
            None => None,
        };
        let (groups, next) =
            query::across::across_page(store, &params.filter, after.as_ref(), params.limit);
        let text = render::render_across(&groups, format);
        Ok(paged(text, next.map(|(s, d)| format!("{s}/{d}")), format))
    })
    .await
}

/// The daemon's state as `/v1/status` and `/v1/events` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// A round is under way.
    Running,
    /// Between rounds, waiting for `next_round_at`.
    Idle,
    /// Shutting down: no new tasks, in-flight ones finishing.
    Draining,
}

/// The body of `/v1/status`, also each `status` event of `/v1/events`.
/// `None` when an actor has stopped.
pub(crate) async fn status_value(state: &ApiState) -> Option<serde_json::Value> {
    let (Ok(agg), Ok(pool)) = (
        state.aggregator.send(GetStatus).await,
        state.supervisor.send(GetStats).await,
    ) else {
        return None;
    };
    let (round, counts) = match (agg.running, agg.last) {
        (Some((round, counts)), _) => (round, Some(counts)),
        (None, Some(last)) => (last.round, Some(last.counts)),
        (None, None) => (0, None),
    };
    let daemon = state.daemon.borrow().clone();
    let run_state = if daemon.draining {
        RunState::Draining
    } else if agg.running.is_some() {
        RunState::Running
    } else {
        RunState::Idle
    };
    let window = daemon.universe.as_ref().map(|u| {
        let days = u.days(state.clock.today());
        Window {
            from: days.from,
            to: days.to,
        }
    });
    Some(serde_json::json!({
        "config_version": agg.config_version,
        "state": run_state,
        "round": round,
        "round_running": agg.running.is_some(),
        "counts": counts,
        "done": counts.map(|c| c.done()),
        "last_round": agg.last,
        "next_round_at": agg.next_round_at,
        "stored": { "prices": agg.prices, "cells": agg.cells },
        "exchanges": agg.exchanges,
        "symbols": agg.symbols,
        "window": window,
        "last_reload": daemon.last_reload,
        "workers": pool.workers,
        "in_flight": pool.in_flight,
        "queued": pool.queued,
        "retrying": pool.retrying,
        "fetcher_restarts": pool.restarts,
        "uptime_s": state.started.elapsed().as_secs(),
        "fleet": *state.fleet.borrow(),
    }))
}

/// The days of the configured universe, inclusive.
#[derive(Debug, Clone, Copy, Serialize)]
struct Window {
    from: NaiveDate,
    to: NaiveDate,
}

async fn status(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = parse_params(req.query_string(), &[]) {
        return e.response();
    }
    match status_value(&state).await {
        Some(body) => HttpResponse::Ok().json(body),
        None => unavailable("an actor"),
    }
}

/// `GET /v1/failures`: failed cells grouped by exchange and reason, with
/// counts, as JSON `{"rows": [...], "failed": total}`.
async fn failures(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    from_store(
        state,
        req,
        &["exchange", "symbol", "from", "to"],
        |store, params, _| {
            let rows = failure_groups(store, &params.filter);
            let failed: usize = rows.iter().map(|g| g.cells).sum();
            let text = serde_json::json!({ "rows": rows, "failed": failed }).to_string();
            Ok(Page { text, next: None })
        },
    )
    .await
}

/// One line of `/v1/snapshots`: a recorded round, and the JSON export
/// written at its end, if there is one in the export directory.
#[derive(Serialize)]
struct RoundLine {
    #[serde(flatten)]
    round: RoundRow,
    export: Option<String>,
}

/// `GET /v1/snapshots`: the record's rounds, newest first, as `pricegrid
/// snapshots` lists them. The record is opened read-only per request, on a
/// blocking thread, beside the recorder writing it.
async fn snapshots(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = parse_params(req.query_string(), &[]) {
        return e.response();
    }
    let path = state.record.borrow().clone();
    let dir = state.snapshot_dir.borrow().clone();
    let listed = web::block(move || {
        let rounds = Record::open_read_only_at(&path)?.rounds()?;
        Ok::<_, crate::record::RecordError>(
            rounds
                .into_iter()
                .map(|round| {
                    let file = dir.join(crate::actors::aggregator::export_name(round.round));
                    RoundLine {
                        export: file.is_file().then(|| file.to_string_lossy().into_owned()),
                        round,
                    }
                })
                .collect::<Vec<_>>(),
        )
    })
    .await;
    match listed {
        Ok(Ok(list)) => HttpResponse::Ok().json(list),
        Ok(Err(e)) => {
            HttpResponse::InternalServerError().json(serde_json::json!({ "error": e.to_string() }))
        }
        Err(_) => unavailable("the query worker"),
    }
}

async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

/// `POST /v1/reload`: re-reads the config file once it has settled; `200
/// {"version", "changed"}`, `422 {"error"}` (refused: the daemon keeps the
/// config it has) or `409 {"error"}` (still being written: nothing read).
async fn reload(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = parse_params(req.query_string(), &[]) {
        return e.response();
    }
    let Some(requests) = &state.reload else {
        return unavailable("reloading");
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if requests.send(tx).is_err() {
        return unavailable("the daemon");
    }
    match rx.await {
        Ok(outcome @ ReloadOutcome::Applied { .. }) => HttpResponse::Ok().json(outcome),
        Ok(outcome @ ReloadOutcome::Rejected { .. }) => {
            HttpResponse::UnprocessableEntity().json(outcome)
        }
        Ok(outcome @ ReloadOutcome::StillBeingWritten { .. }) => {
            HttpResponse::Conflict().json(outcome)
        }
        Err(_) => unavailable("the daemon"),
    }
}

async fn no_route() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": "no such route: see /, /v1/status, /v1/events, /v1/prices, /v1/aggregate, /v1/reference, /v1/coverage, /v1/failures, /v1/snapshots, POST /v1/reload, /metrics"
    }))
}

/// The API over a pipeline alone (no daemon: no reload, no record, no
/// token), as the benchmarks and tests use it.
pub fn start_for(
    listen: SocketAddr,
    pipeline: &crate::actors::Pipeline,
    max_concurrent_queries: usize,
) -> std::io::Result<ApiServer> {
    let (_, snapshot_dir) = watch::channel(PathBuf::new());
    let (_, record) = watch::channel(crate::record::Location::File(PathBuf::new()));
    let listener = ApiListener::bind(listen)?;
    let access = Access::new(listener.addr, Vec::new(), None);
    start(
        listener,
        access,
        ApiState {
            aggregator: pipeline.aggregator.clone(),
            store: pipeline.store.clone(),
            supervisor: pipeline.supervisor.clone(),
            metrics: pipeline.metrics.clone(),
            snapshot_dir,
            record,
            started: Instant::now(),
            reload: None,
            queries: Arc::new(tokio::sync::Semaphore::new(max_concurrent_queries)),
            daemon: watch::channel(DaemonView::default()).1,
            clock: Clock::system(),
            rounds: pipeline.rounds.clone(),
            fleet: pipeline.fleet.clone(),
            event_streams: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS)),
            recent_status: Arc::default(),
        },
    )
}

/// The API's port, bound but not yet served: the daemon binds it before
/// anything else starts, so a port in use stops it before the record is
/// opened or an actor runs.
#[derive(Debug)]
pub struct ApiListener {
    listener: std::net::TcpListener,
    /// The address asked for (`api.listen`, maybe port 0).
    pub listen: SocketAddr,
    /// The bound address (port 0 replaced by the port given).
    pub addr: SocketAddr,
}

impl ApiListener {
    pub fn bind(listen: SocketAddr) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        Ok(Self {
            listener,
            listen,
            addr,
        })
    }

    /// The same listening socket again (a duplicate of its descriptor), so
    /// that a new server can take over a port the old one still holds.
    fn try_clone(&self) -> std::io::Result<Self> {
        Ok(Self {
            listener: self.listener.try_clone()?,
            listen: self.listen,
            addr: self.addr,
        })
    }
}

/// Serves the API on `listener`, every request checked by `access` first,
/// on the current actix system.
pub fn start(listener: ApiListener, access: Access, state: ApiState) -> std::io::Result<ApiServer> {
    let data = web::Data::new(state);
    let (closing, closing_rx) = watch::channel(false);
    let closing_rx = web::Data::new(events::Closing(closing_rx));
    let reachable = !listener.addr.ip().is_loopback();
    let token = access.has_token();
    let access = Arc::new(access);
    let socket = listener.try_clone()?;
    let (addr, handle) = crate::http::start_server_on(listener.listener, 1, move |app| {
        let access = access.clone();
        app.app_data(data.clone())
            .app_data(closing_rx.clone())
            .service(
                web::scope("")
                    .wrap(actix_web::middleware::from_fn(move |req, next| {
                        access::guard(access.clone(), req, next)
                    }))
                    .configure(crate::web::routes)
                    .route("/v1/status", web::get().to(status))
                    .route("/v1/events", web::get().to(events::events))
                    .route("/v1/failures", web::get().to(failures))
                    .route("/v1/prices", web::get().to(prices))
                    .route("/v1/aggregate", web::get().to(aggregate))
                    .route("/v1/coverage", web::get().to(coverage::coverage))
                    .route("/v1/reference", web::get().to(reference::reference))
                    .route("/v1/snapshots", web::get().to(snapshots))
                    .route("/v1/reload", web::post().to(reload))
                    .route("/metrics", web::get().to(metrics))
                    .default_service(web::to(no_route)),
            );
    })?;
    log::info!("API listening on http://{addr} (the web page at http://{addr}/)");
    if reachable {
        log::warn!(
            "the API on {addr} is reachable from other hosts: every route but the page needs the bearer token in api.token_file"
        );
    }
    if token {
        log::info!("API: every route but the page needs Authorization: Bearer <token>");
    }
    Ok(ApiServer {
        addr,
        handle,
        socket,
        closing,
    })
}

#[cfg(test)]
mod tests;
