//! HitBTC's dialect: `GET /api/3/public/candles/{symbol}?period=D1` (daily
//! candles `from <= timestamp <= till`, ISO times or milliseconds, newest
//! first unless `sort=ASC`, at most `limit` of 1000, default 100; objects
//! `{"timestamp", "open", "close", "min", "max", "volume",
//! "volume_quote"}`, every value a string) and `GET /api/3/public/symbol`
//! (an object keyed by symbol). Errors are `{"error": {"code", "message",
//! "description"}}`: 400 2001 "Symbol not found" for an unknown symbol,
//! 400 10001 "Validation error" naming a bad parameter, and over the rate
//! limit 429 code 429 with `Retry-After`.
//!
//! Symbols are `SYMUSDT`; nothing marks today's candle as open. Every row comes from `Venue` (the
//! dataset exchange, publication, the token bucket); this file only shapes
//! requests and bodies and keeps no state.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Map, Value};

use super::{
    answer, day_ms, days_opening_within_ms, num, Admission, BadParam, Order, Params, Venue,
};
use crate::model::Symbol;

/// HitBTC's page limit, and its default.
pub const MAX_LIMIT: usize = 1000;
pub const DEFAULT_LIMIT: usize = 100;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/api/3/public/candles/{symbol}", web::get().to(candles))
        .route("/api/3/public/symbol", web::get().to(symbols));
}

/// The symbol HitBTC lists for a dataset symbol: `BTCUSDT`.
pub fn symbol_id(symbol: &Symbol) -> String {
    format!("{}USDT", symbol.as_str().to_ascii_uppercase())
}

fn error(
    status: StatusCode,
    retry_after: Option<u64>,
    code: u32,
    message: &str,
    description: &str,
) -> HttpResponse {
    answer(
        status,
        retry_after,
        &json!({"error": {"code": code, "message": message, "description": description}}),
    )
}

fn bad_param(bad: &BadParam) -> HttpResponse {
    error(
        StatusCode::BAD_REQUEST,
        None,
        10001,
        "Validation error",
        &format!("{}: expected {}", bad.name, bad.expected),
    )
}

/// A time parameter: an ISO 8601 time or milliseconds.
fn time(params: &Params, name: &'static str) -> Result<Option<i64>, BadParam> {
    params
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .or_else(|| {
                    DateTime::parse_from_rfc3339(v)
                        .ok()
                        .map(|t| t.timestamp_millis())
                })
                .ok_or_else(|| {
                    BadParam::new(name, format!("an ISO 8601 time or milliseconds, not {v:?}"))
                })
        })
        .transpose()
}

async fn candles(
    venue: web::Data<Venue>,
    symbol: web::Path<String>,
    req: HttpRequest,
) -> HttpResponse {
    if let Admission::Throttled { retry_after } | Admission::Banned { retry_after } =
        venue.admit().await
    {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after),
            429,
            "Too many requests",
            "Too many requests",
        );
    }
    let Some(symbol) = venue.symbol_of(&symbol, symbol_id) else {
        return error(
            StatusCode::BAD_REQUEST,
            None,
            2001,
            "Symbol not found",
            "Try get /api/3/public/symbol, to get list of all available symbols.",
        );
    };
    let params = Params::of(&req);
    if params.get("period") != Some("D1") {
        return bad_param(&BadParam::new(
            "period",
            "D1 (daily candles are all this server has)",
        ));
    }
    let order = match params.get("sort") {
        Some("ASC") => Order::OldestFirst,
        None | Some("DESC") => Order::NewestFirst,
        Some(_) => return bad_param(&BadParam::new("sort", "ASC or DESC")),
    };
    let (from, till) = match (time(&params, "from"), time(&params, "till")) {
        (Err(bad), _) | (_, Err(bad)) => return bad_param(&bad),
        (Ok(from), Ok(till)) => (from, till),
    };
    let limit = match params.limit("limit", DEFAULT_LIMIT, MAX_LIMIT) {
        Ok(l) => l,
        Err(bad) => return bad_param(&bad),
    };
    let rows: Vec<Value> = venue
        .rows(&symbol, days_opening_within_ms(from, till), limit, order)
        .iter()
        .map(|r| {
            let p = r.price;
            let at = DateTime::from_timestamp_millis(day_ms(r.day))
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                .unwrap_or_default();
            json!({
                "timestamp": at,
                "open": num(p.open),
                "close": num(p.close),
                "min": num(p.low),
                "max": num(p.high),
                "volume": num(p.volume),
                "volume_quote": num(p.volume * p.close),
            })
        })
        .collect();
    HttpResponse::Ok().json(rows)
}

async fn symbols(venue: web::Data<Venue>) -> HttpResponse {
    let list: Map<String, Value> = venue
        .dataset()
        .symbols()
        .iter()
        .map(|s| {
            (
                symbol_id(s),
                json!({
                    "type": "spot",
                    "base_currency": s.as_str().to_ascii_uppercase(),
                    "quote_currency": "USDT",
                    "status": "working",
                }),
            )
        })
        .collect();
    HttpResponse::Ok().json(list)
}
