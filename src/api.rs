//! The daemon's HTTP API (actix-web): status, prices, cross-exchange
//! aggregates, the snapshot list and Prometheus metrics.
//!
//! Read-only: it asks the Aggregator for a frozen copy of the store and
//! computes answers on its own worker threads, so a large query never
//! holds the Aggregator's mailbox. Bad query parameters are a 400 with a
//! JSON error naming the parameter.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::{
    dev::ServerHandle, http::StatusCode, web, App, HttpRequest, HttpResponse, HttpServer,
};
use chrono::NaiveDate;
use serde::Serialize;
use tokio::sync::watch;

use crate::actors::aggregator::{Aggregator, GetStatus, GetStore};
use crate::actors::supervisor::{GetStats, Supervisor};
use crate::metrics::Metrics;
use crate::model::{Exchange, Symbol};
use crate::query::{self, Field, Filter, Format};
use crate::snapshot;

/// What the handlers read from.
#[derive(Clone)]
pub struct ApiState {
    pub aggregator: Addr<Aggregator>,
    pub supervisor: Addr<Supervisor>,
    pub metrics: Arc<Metrics>,
    /// The snapshot directory in force (it may change on reload).
    pub snapshot_dir: watch::Receiver<PathBuf>,
    pub started: Instant,
}

/// A running API server.
pub struct ApiServer {
    pub addr: SocketAddr,
    handle: ServerHandle,
}

impl ApiServer {
    pub async fn stop(&self) {
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

/// The parameters `/v1/prices` and `/v1/aggregate` take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    pub filter: Filter,
    pub field: Option<Field>,
    pub format: Option<Format>,
}

/// Parses a query string, accepting only `allowed` parameters. Lists are
/// comma-separated (`exchange=kraken,bitstamp`) or repeated.
pub fn parse_params(query: &str, allowed: &[&str]) -> Result<Params, ParamError> {
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
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|e| ParamError::new(key, format!("{v:?} is not a date YYYY-MM-DD: {e}")))
        };
        match key {
            "exchange" => {
                for name in value.split(',').filter(|s| !s.is_empty()) {
                    p.filter.exchanges.push(
                        Exchange::new(name).map_err(|e| ParamError::new(key, e.to_string()))?,
                    );
                }
            }
            "symbol" => {
                for name in value.split(',').filter(|s| !s.is_empty()) {
                    p.filter
                        .symbols
                        .push(Symbol::new(name).map_err(|e| ParamError::new(key, e.to_string()))?);
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
            "from" => p.filter.from = Some(day(&value)?),
            "to" => p.filter.to = Some(day(&value)?),
            "field" => {
                p.field = Some(
                    value
                        .parse()
                        .map_err(|e: query::ParseFieldError| ParamError::new(key, e.to_string()))?,
                )
            }
            "format" => {
                p.format = Some(match value.as_ref() {
                    "json" => Format::Json,
                    "csv" => Format::Csv,
                    other => {
                        return Err(ParamError::new(
                            key,
                            format!("{other:?} is not a format, expected json or csv"),
                        ))
                    }
                })
            }
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

fn rendered(text: String, format: Format) -> HttpResponse {
    let content_type = match format {
        Format::Csv => "text/csv; charset=utf-8",
        _ => "application/json",
    };
    HttpResponse::Ok().content_type(content_type).body(text)
}

fn unavailable(what: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
        .json(serde_json::json!({ "error": format!("{what} is not running") }))
}

/// Parses `allowed` parameters, takes a frozen copy of the store, and
/// renders the answer on a blocking thread.
async fn from_store(
    state: web::Data<ApiState>,
    req: HttpRequest,
    allowed: &[&str],
    render: impl FnOnce(&crate::store::Store, Params, Format) -> String + Send + 'static,
) -> HttpResponse {
    let params = match parse_params(req.query_string(), allowed) {
        Ok(p) => p,
        Err(e) => return e.response(),
    };
    let Ok(store) = state.aggregator.send(GetStore).await else {
        return unavailable("the aggregator");
    };
    let format = params.format.unwrap_or(Format::Json);
    match web::block(move || render(&store, params, format)).await {
        Ok(text) => rendered(text, format),
        Err(_) => unavailable("the query worker"),
    }
}

async fn prices(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    let allowed = [
        "exchange",
        "symbol",
        "from",
        "to",
        "field",
        "format",
        "final_only",
        "exclude_flagged",
    ];
    from_store(state, req, &allowed, |store, params, format| {
        query::render_rows(&query::rows(store, &params.filter), params.field, format)
    })
    .await
}

async fn aggregate(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    let allowed = [
        "exchange",
        "symbol",
        "from",
        "to",
        "format",
        "final_only",
        "exclude_flagged",
    ];
    from_store(state, req, &allowed, |store, params, format| {
        query::render_across(&query::across(&query::rows(store, &params.filter)), format)
    })
    .await
}

async fn status(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = parse_params(req.query_string(), &[]) {
        return e.response();
    }
    let (Ok(agg), Ok(pool)) = (
        state.aggregator.send(GetStatus).await,
        state.supervisor.send(GetStats).await,
    ) else {
        return unavailable("an actor");
    };
    let (round, counts) = match (agg.running, agg.last) {
        (Some((round, counts)), _) => (round, Some(counts)),
        (None, Some(last)) => (last.round, Some(last.counts)),
        (None, None) => (0, None),
    };
    HttpResponse::Ok().json(serde_json::json!({
        "config_version": agg.config_version,
        "round": round,
        "round_running": agg.running.is_some(),
        "counts": counts,
        "last_round": agg.last,
        "next_round_at": agg.next_round_at,
        "stored": { "prices": agg.prices, "cells": agg.cells },
        "workers": pool.workers,
        "in_flight": pool.in_flight,
        "queued": pool.queued,
        "retrying": pool.retrying,
        "fetcher_restarts": pool.restarts,
        "uptime_s": state.started.elapsed().as_secs(),
    }))
}

async fn snapshots(state: web::Data<ApiState>, req: HttpRequest) -> HttpResponse {
    if let Err(e) = parse_params(req.query_string(), &[]) {
        return e.response();
    }
    let dir = state.snapshot_dir.borrow().clone();
    let listed = web::block(move || listing(&dir)).await;
    match listed {
        Ok(Ok(list)) => HttpResponse::Ok().json(list),
        Ok(Err(e)) => {
            HttpResponse::InternalServerError().json(serde_json::json!({ "error": e.to_string() }))
        }
        Err(_) => unavailable("the query worker"),
    }
}

/// One line of the snapshot list: the file and, if it reads, its header.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub file: snapshot::SnapshotFile,
    pub header: Option<snapshot::Header>,
    pub error: Option<String>,
}

/// The snapshots in `dir`, newest first, with their headers.
pub fn listing(dir: &std::path::Path) -> std::io::Result<Vec<Listed>> {
    Ok(snapshot::list(dir)?
        .into_iter()
        .rev()
        .map(|file| match snapshot::read_header(&file.path) {
            Ok(h) => Listed {
                file,
                header: Some(h),
                error: None,
            },
            Err(e) => Listed {
                file,
                header: None,
                error: Some(e.to_string()),
            },
        })
        .collect())
}

async fn metrics(state: web::Data<ApiState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.encode())
}

async fn no_route() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": "no such route: see /v1/status, /v1/prices, /v1/aggregate, /v1/snapshots, /metrics"
    }))
}

/// Binds and starts the API on the current actix system.
pub fn start(listen: SocketAddr, state: ApiState) -> std::io::Result<ApiServer> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/status", web::get().to(status))
            .route("/v1/prices", web::get().to(prices))
            .route("/v1/aggregate", web::get().to(aggregate))
            .route("/v1/snapshots", web::get().to(snapshots))
            .route("/metrics", web::get().to(metrics))
            .default_service(web::to(no_route))
    })
    .workers(1)
    .disable_signals()
    .bind(listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("the API bound no address"))?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    log::info!("API listening on http://{addr}");
    Ok(ApiServer { addr, handle })
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
        assert_eq!(p.filter.from, NaiveDate::from_ymd_opt(2020, 3, 1));
        assert_eq!(p.field, Some(Field::Close));
    }

    #[test]
    fn each_bad_parameter_is_named() {
        for (query, parameter) in [
            ("from=2020-13-01", "from"),
            ("to=yesterday", "to"),
            ("exchange=Kraken", "exchange"),
            ("symbol=b%2Ftc", "symbol"),
            ("field=price", "field"),
            ("format=xml", "format"),
            ("limit=10", "limit"),
            ("from=2020-03-02&to=2020-03-01", "to"),
        ] {
            let err = parse_params(query, ALL).unwrap_err();
            assert_eq!(err.parameter, parameter, "{query}: {err}");
        }
    }
}
