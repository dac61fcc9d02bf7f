//! The daemon's HTTP API (actix-web): status, prices, cross-exchange
//! aggregates, failures, the record's rounds, a stream of status events
//! (`events.rs`), Prometheus metrics, and the web page (`crate::web`) that
//! reads only these routes.
//!
//! Read-only: it asks the Aggregator for a frozen copy of the store and
//! computes answers on its own worker threads, so a large query never
//! holds the Aggregator's mailbox. Bad query parameters are a 400 with a
//! JSON error naming the parameter. Every request passes `access` first
//! (Host, Origin, bearer token, Content-Type, query size), on a port the
//! daemon bound before it started anything else (`ApiListener`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::{dev::ServerHandle, http::StatusCode, web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::actors::aggregator::{Aggregator, GetStatus, GetStore, RoundSummary};
use crate::actors::supervisor::{GetStats, Supervisor};
use crate::clock::Clock;
use crate::config::{Day, UniverseConfig};
use crate::metrics::Metrics;
use crate::model::{Exchange, Symbol};
use crate::query::{self, names, Field, Filter, Known};
use crate::record::{Record, RoundRow};
use crate::render::{self, Format};

mod access;
mod events;

pub use access::{Access, Refusal, Token, TokenError, MIN_TOKEN_CHARS};
pub use events::MAX_STREAMS as MAX_EVENT_STREAMS;

/// What a reload ended with, as `POST /v1/reload` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ReloadOutcome {
    /// Accepted as `version`; in force from the next round boundary.
    /// `changed` is empty when the file's settings were those in force.
    Applied { version: u64, changed: Vec<String> },
    /// Refused; the daemon keeps running on the config it has.
    Rejected { error: String },
    /// Not read: the file kept changing for as long as the reload waited
    /// for it to settle. Nothing changed; ask again once it is saved.
    StillBeingWritten { error: String },
}

/// Whether the latest reload was applied or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadResult {
    Applied,
    Rejected,
}

/// The latest reload attempt, as `/v1/status` reports it under
/// `last_reload`, so a person watching the page sees a rejected edit
/// without reading the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastReload {
    pub at: DateTime<Utc>,
    pub result: ReloadResult,
    /// The accepted version (applied), or the version still in force
    /// (rejected).
    pub version: u64,
    pub changed: Vec<String>,
    pub error: Option<String>,
}

impl LastReload {
    /// The report of `outcome`; `in_force` is the version kept when it was
    /// rejected.
    pub fn new(at: DateTime<Utc>, outcome: &ReloadOutcome, in_force: u64) -> Self {
        match outcome {
            ReloadOutcome::Applied { version, changed } => Self {
                at,
                result: ReloadResult::Applied,
                version: *version,
                changed: changed.clone(),
                error: None,
            },
            ReloadOutcome::Rejected { error } => Self {
                at,
                result: ReloadResult::Rejected,
                version: in_force,
                changed: Vec::new(),
                error: Some(error.clone()),
            },
            // Not a reload the daemon made: kept as a refusal with its reason.
            ReloadOutcome::StillBeingWritten { error } => Self {
                at,
                result: ReloadResult::Rejected,
                version: in_force,
                changed: Vec::new(),
                error: Some(error.clone()),
            },
        }
    }
}

/// What the daemon tells the API about itself, beyond the actors' figures:
/// whether it is draining, the latest reload, and the universe of the
/// latest accepted config (for the window the page draws).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonView {
    /// A shutdown is under way: no new tasks, in-flight ones finishing.
    pub draining: bool,
    pub last_reload: Option<LastReload>,
    /// None when the API runs over a bare pipeline (no daemon).
    pub universe: Option<UniverseConfig>,
}

/// Asks the daemon to re-read its config file; each request is answered
/// with the outcome.
pub type ReloadRequests =
    tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<ReloadOutcome>>;

/// What the handlers read from.
#[derive(Clone)]
pub struct ApiState {
    pub aggregator: Addr<Aggregator>,
    pub supervisor: Addr<Supervisor>,
    pub metrics: Arc<Metrics>,
    /// The export directory in force (it may change on reload).
    pub snapshot_dir: watch::Receiver<PathBuf>,
    /// The record the daemon writes, read by `/v1/snapshots`.
    pub record: watch::Receiver<PathBuf>,
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

/// A bad query parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("parameter '{parameter}': {error}")]
pub struct ParamError {
    pub parameter: String,
    pub error: String,
}

impl ParamError {
    fn new(parameter: &str, error: impl Into<String>) -> Self {
        Self {
            parameter: parameter.to_owned(),
            error: error.into(),
        }
    }

    fn response(&self) -> HttpResponse {
        HttpResponse::BadRequest().json(self)
    }
}

/// Rows in a page when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 10_000;
/// Most rows in a page.
pub const MAX_LIMIT: usize = 100_000;
/// Longest query string answered; a longer one is a 400 naming it.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// A query string longer than `MAX_QUERY_BYTES` is refused, naming it.
/// Every route checks this (`access`), well below the HTTP layer's own
/// ceilings (a request target over 65,534 bytes, a head over 128 KiB),
/// which actix-http answers before any handler with an empty 400 or 431.
fn check_query_size(query: &str) -> Result<(), ParamError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ParamError::new(
            "query",
            format!(
                "the query string is {} bytes, more than {MAX_QUERY_BYTES}: ask for fewer names at a time",
                query.len()
            ),
        ));
    }
    Ok(())
}

/// The parameters `/v1/prices` and `/v1/aggregate` take.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub filter: Filter,
    pub field: Option<Field>,
    pub format: Option<Format>,
    /// Rows in a page (1..=MAX_LIMIT).
    pub limit: usize,
    /// Where the page starts: the `next` of the page before.
    pub after: Option<String>,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            filter: Filter::default(),
            field: None,
            format: None,
            limit: DEFAULT_LIMIT,
            after: None,
        }
    }
}

/// Parses a query string, accepting only `allowed` parameters. Lists are
/// comma-separated (`exchange=kraken,bitstamp`) or repeated.
pub fn parse_params(query: &str, allowed: &[&str]) -> Result<Params, ParamError> {
    check_query_size(query)?;
    let mut p = Params::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let key = key.as_ref();
        if !allowed.contains(&key) {
            return Err(ParamError::new(
                key,
                format!("unknown parameter, expected one of: {}", allowed.join(", ")),
            ));
        }
        let day = |v: &str| {
            v.parse::<Day>()
                .map(|d| d.0)
                .map_err(|e| ParamError::new(key, e))
        };
        match key {
            "exchange" => {
                for name in value.split(',').filter(|s| !s.is_empty()) {
                    p.filter.exchanges.insert(
                        names::exchange(name).map_err(|e| ParamError::new(key, e.to_string()))?,
                    );
                }
            }
            "symbol" => {
                for name in value.split(',').filter(|s| !s.is_empty()) {
                    p.filter.symbols.insert(
                        names::symbol(name).map_err(|e| ParamError::new(key, e.to_string()))?,
                    );
                }
            }
            "final_only" | "exclude_flagged" => {
                let on = match value.as_ref() {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(ParamError::new(
                            key,
                            format!("{other:?} is not a boolean, expected true or false"),
                        ))
                    }
                };
                if key == "final_only" {
                    p.filter.final_only = on;
                } else {
                    p.filter.exclude_flagged = on;
                }
            }
            "limit" => {
                p.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ParamError::new(
                            key,
                            format!("{value:?} is not a row count from 1 to {MAX_LIMIT}"),
                        )
                    })?
            }
            "after" => p.after = Some(value.into_owned()),
            "from" => p.filter.from = Some(day(&value)?),
            "to" => p.filter.to = Some(day(&value)?),
            "field" => {
                p.field = Some(
                    value
                        .parse()
                        .map_err(|e: query::ParseFieldError| ParamError::new(key, e.to_string()))?,
                )
            }
            "format" => p.format = Some(api_format(&value).map_err(|e| ParamError::new(key, e))?),
            _ => {}
        }
    }
    if let (Some(from), Some(to)) = (p.filter.from, p.filter.to) {
        if from > to {
            return Err(ParamError::new(
                "to",
                format!("{to} is before from = {from}"),
            ));
        }
    }
    Ok(p)
}

/// The formats the API answers in: `Format`'s own names, less `table`
/// (aligned text is for terminals, not for programs reading a URL).
fn api_format(raw: &str) -> Result<Format, String> {
    match Format::from_str(raw) {
        Ok(f @ (Format::Json | Format::Csv)) => Ok(f),
        Ok(Format::Table) | Err(_) => Err(format!(
            "{raw:?} is not a format the API answers in, expected one of 'json', 'csv'"
        )),
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
    let Ok(store) = state.aggregator.send(GetStore).await else {
        return unavailable("the aggregator");
    };
    let format = params.format.unwrap_or(Format::Json);
    let universe = state.daemon.borrow().universe.clone();
    let answer = web::block(move || {
        let mut known = Known::of_store(&store);
        if let Some(universe) = &universe {
            known = known.with_universe(universe);
        }
        if let Err(e) = known.check(&params.filter) {
            return Err(ParamError::new(e.kind.parameter(), e.to_string()));
        }
        let page = render(&store, params, format);
        drop(store);
        page
    })
    .await;
    give_back_memory();
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

/// Hands freed memory back to the system after a large answer: glibc keeps
/// it in per-thread arenas otherwise, and the daemon's RSS would stay at its
/// peak for as long as it runs.
fn give_back_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory at the top of the heaps;
    // it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

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

/// `symbol/YYYY-MM-DD`, the cursor of `/v1/aggregate`.
fn parse_group_cursor(raw: &str) -> Result<(Symbol, chrono::NaiveDate), String> {
    let bad = || format!("{raw:?} is not a cursor symbol/YYYY-MM-DD (take the `next` of a page)");
    let (s, d) = raw.split_once('/').ok_or_else(bad)?;
    Ok((
        Symbol::new(s).map_err(|_| bad())?,
        d.parse::<Day>().map_err(|_| bad())?.0,
    ))
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

/// One line of `/v1/failures`: how many failed cells of an exchange share
/// a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureGroup {
    pub exchange: Exchange,
    pub reason: String,
    pub cells: usize,
    /// The symbols among them, and their first and last day.
    pub symbols: Vec<Symbol>,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// The failed cells that `filter` keeps, grouped by (exchange, reason),
/// most cells first.
pub fn failure_groups(store: &crate::store::Store, filter: &Filter) -> Vec<FailureGroup> {
    let mut groups: std::collections::BTreeMap<(Exchange, String), FailureGroup> =
        std::collections::BTreeMap::new();
    for f in store.failed() {
        if !filter.matches(&f.exchange, &f.symbol, f.day) {
            continue;
        }
        let g = groups
            .entry((f.exchange.clone(), f.reason.clone()))
            .or_insert_with(|| FailureGroup {
                exchange: f.exchange.clone(),
                reason: f.reason.clone(),
                cells: 0,
                symbols: Vec::new(),
                first_day: f.day,
                last_day: f.day,
            });
        g.cells += 1;
        if !g.symbols.contains(&f.symbol) {
            g.symbols.push(f.symbol.clone());
        }
        g.first_day = g.first_day.min(f.day);
        g.last_day = g.last_day.max(f.day);
    }
    let mut out: Vec<FailureGroup> = groups.into_values().collect();
    for g in &mut out {
        g.symbols.sort();
    }
    out.sort_by(|a, b| {
        b.cells
            .cmp(&a.cells)
            .then_with(|| (&a.exchange, &a.reason).cmp(&(&b.exchange, &b.reason)))
    });
    out
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
        let rounds = Record::open_read_only(&path)?.rounds()?;
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
        "error": "no such route: see /, /v1/status, /v1/events, /v1/prices, /v1/aggregate, /v1/failures, /v1/snapshots, POST /v1/reload, /metrics"
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
    let (_, record) = watch::channel(PathBuf::new());
    let listener = ApiListener::bind(listen)?;
    let access = Access::new(listener.addr, Vec::new(), None);
    start(
        listener,
        access,
        ApiState {
            aggregator: pipeline.aggregator.clone(),
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
mod tests {
    use super::*;

    const ALL: &[&str] = &[
        "exchange",
        "symbol",
        "from",
        "to",
        "field",
        "format",
        "final_only",
        "exclude_flagged",
    ];

    #[test]
    fn lists_dates_and_fields_parse() {
        let p = parse_params("exchange=kraken,bitstamp&symbol=btc&symbol=eth&from=2020-03-01&to=2020-03-31&field=close", ALL).unwrap();
        assert_eq!(p.filter.exchanges.len(), 2);
        assert_eq!(p.filter.symbols.len(), 2);
        assert_eq!(p.filter.from, chrono::NaiveDate::from_ymd_opt(2020, 3, 1));
        assert_eq!(p.field, Some(Field::Close));
    }

    #[test]
    fn each_bad_parameter_is_named() {
        for (query, parameter) in [
            ("from=2020-13-01", "from"),
            ("to=yesterday", "to"),
            ("exchange=Kra%20ken", "exchange"),
            ("symbol=b%2Ftc", "symbol"),
            ("field=price", "field"),
            ("format=xml", "format"),
            ("format=table", "format"),
            ("limit=10", "limit"),
            ("from=2020-03-02&to=2020-03-01", "to"),
        ] {
            let err = parse_params(query, ALL).unwrap_err();
            assert_eq!(err.parameter, parameter, "{query}: {err}");
        }
    }

    #[test]
    fn names_are_lower_cased() {
        let p = parse_params("exchange=Kraken&symbol=BTC,eth", ALL).unwrap();
        assert_eq!(
            p.filter
                .exchanges
                .iter()
                .map(|e| e.as_str())
                .collect::<Vec<_>>(),
            ["kraken"]
        );
        assert_eq!(
            p.filter
                .symbols
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            ["btc", "eth"]
        );
    }

    #[test]
    fn the_api_answers_in_json_or_csv_and_says_so() {
        assert_eq!(
            parse_params("format=csv", ALL).unwrap().format,
            Some(Format::Csv)
        );
        assert_eq!(
            parse_params("format=json", ALL).unwrap().format,
            Some(Format::Json)
        );
        for raw in ["table", "xml", "CSV"] {
            let err = parse_params(&format!("format={raw}"), ALL).unwrap_err();
            assert_eq!(err.parameter, "format");
            assert!(err.error.contains(&format!("{raw:?}")), "{err}");
            assert!(
                err.error.ends_with("expected one of 'json', 'csv'"),
                "{err}"
            );
        }
    }

    #[test]
    fn failures_are_grouped_by_exchange_and_reason_most_first() {
        use crate::model::{Outcome, TaskKey};
        use crate::query::fixtures::{cv, day, ex, sym};
        use crate::store::{Observation, Store};
        let mut store = Store::new();
        let mut put = |exchange: &str, symbol: &str, d: u32, outcome: Outcome| {
            let key = TaskKey {
                exchange: ex(exchange),
                symbol: sym(symbol),
                day: day(2020, 3, d),
            };
            store.apply(&key, &Observation::settled(outcome, 1));
        };
        let failed = |reason: &str| Outcome::Failed {
            reason: reason.into(),
            attempts: 3,
        };
        put("kraken", "btc", 1, failed("server error (503)"));
        put("kraken", "eth", 4, failed("server error (503)"));
        put("kraken", "btc", 2, failed("timed out"));
        put("bitstamp", "btc", 3, failed("server error (503)"));
        put("bitstamp", "btc", 5, Outcome::NoPrice);
        put(
            "bitstamp",
            "btc",
            6,
            Outcome::Price {
                price: cv(1.0, 1.0),
                flags: crate::model::Flags::NONE,
            },
        );
        let groups = failure_groups(&store, &Filter::default());
        let view: Vec<(&str, &str, usize)> = groups
            .iter()
            .map(|g| (g.exchange.as_str(), g.reason.as_str(), g.cells))
            .collect();
        assert_eq!(
            view,
            [
                ("kraken", "server error (503)", 2),
                ("bitstamp", "server error (503)", 1),
                ("kraken", "timed out", 1),
            ]
        );
        assert_eq!(groups[0].symbols, [sym("btc"), sym("eth")]);
        assert_eq!(
            (groups[0].first_day, groups[0].last_day),
            (day(2020, 3, 1), day(2020, 3, 4))
        );

        let only_btc = parse_params("symbol=btc&exchange=kraken", &["symbol", "exchange"]).unwrap();
        let groups = failure_groups(&store, &only_btc.filter);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert!(groups
            .iter()
            .all(|g| g.cells == 1 && g.exchange == ex("kraken")));
    }
}
