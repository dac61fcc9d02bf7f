//! CEX.IO's dialect (`trade.cex.io`): `POST
//! /api/spot/rest-public/get_candles` with a JSON body `{"pair":
//! "BTC-USD", "resolution": "1d", "dataType": "bestBid" | "bestAsk",
//! "fromISO", "toISO", "limit"}` (daily candles from `fromISO` on, or the
//! last ones up to `toISO`, or the newest; oldest first; `limit` at most
//! 1000, required with a date and refused with both) and `POST
//! /api/spot/rest-public/get_pairs_info`. A candle is built from quotes:
//! `bestBid` is the dataset's price, `bestAsk` a spread above it, `volume`
//! always `"0"`; numbers are strings, `timestamp` a string of
//! milliseconds, `isClosed` false for today. Errors (their shape is
//! UNCONFIRMED) are `{"ok": "error", "error": "..."}`: 400 for a bad
//! request or an unsupported pair, 429 "API rate limit reached" with
//! `Retry-After` over the rate limit.
//!
//! Pairs are `SYM-USD`. Every row comes from `Venue` (the dataset
//! exchange, publication, the token bucket); this file only shapes
//! requests and bodies and keeps no state.

use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, ServiceConfig};
use actix_web::HttpResponse;
use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Value};

use super::{answer, day_ms, epoch_day, num, Admission, Order, Venue, DAY_MS};
use crate::model::{Ohlcv, Symbol};

/// CEX.IO's page limit.
pub const MAX_LIMIT: u64 = 1000;
/// How far the best ask sits above the best bid, as a fraction.
const SPREAD: f64 = 0.0005;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/api/spot/rest-public/get_candles", web::post().to(candles))
        .route(
            "/api/spot/rest-public/get_pairs_info",
            web::post().to(pairs_info),
        );
}

/// The pair of a dataset symbol: `BTC-USD`.
pub fn pair(symbol: &Symbol) -> String {
    format!("{}-USD", symbol.as_str().to_ascii_uppercase())
}

fn error(status: StatusCode, retry_after: Option<u64>, message: &str) -> HttpResponse {
    answer(
        status,
        retry_after,
        &json!({"ok": "error", "error": message}),
    )
}

fn bad(message: &str) -> HttpResponse {
    error(StatusCode::BAD_REQUEST, None, message)
}

/// An ISO 8601 time of the body, in milliseconds.
fn iso(body: &Value, name: &str) -> Result<Option<i64>, String> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| Some(t.timestamp_millis()))
            .ok_or_else(|| format!("Invalid {name}: expected an ISO 8601 time, not {v}")),
    }
}

async fn candles(venue: web::Data<Venue>, body: Bytes) -> HttpResponse {
    if let Admission::Throttled { retry_after } | Admission::Banned { retry_after } =
        venue.admit().await
    {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after),
            "API rate limit reached",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad("Invalid request body: expected a JSON object");
    };
    let text = |name: &str| body.get(name).and_then(Value::as_str);
    let Some(asked) = text("pair") else {
        return bad("Missing pair");
    };
    let Some(symbol) = venue.symbol_of(asked, pair) else {
        return bad(&format!("Unsupported pair: {asked}"));
    };
    if text("resolution") != Some("1d") {
        return bad("Invalid resolution: only 1d is served");
    }
    let ask = match text("dataType") {
        Some("bestBid") => false,
        Some("bestAsk") => true,
        _ => return bad("Invalid dataType: expected bestBid or bestAsk"),
    };
    let (from, to) = match (iso(&body, "fromISO"), iso(&body, "toISO")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return bad(&e),
    };
    let limit = match body.get("limit").map(Value::as_u64) {
        None => None,
        Some(Some(n)) if (1..=MAX_LIMIT).contains(&n) => Some(n as usize),
        Some(_) => return bad("Invalid limit: expected 1..=1000"),
    };
    let today = epoch_day(venue.today());
    let (days, limit, order) = match (from, to, limit) {
        (Some(_), Some(_), Some(_)) => {
            return bad("limit cannot be combined with both fromISO and toISO")
        }
        (Some(f), Some(t), None) => (
            first_day(f)..=t.div_euclid(DAY_MS),
            usize::MAX,
            Order::OldestFirst,
        ),
        (Some(_), _, None) | (_, Some(_), None) => {
            return bad("limit is required with fromISO or toISO")
        }
        (Some(f), None, Some(l)) => (first_day(f)..=today, l, Order::OldestFirst),
        (None, Some(t), Some(l)) => (i64::MIN..=t.div_euclid(DAY_MS), l, Order::NewestFirst),
        (None, None, l) => (
            i64::MIN..=today,
            l.unwrap_or(MAX_LIMIT as usize),
            Order::NewestFirst,
        ),
    };
    let mut rows = venue.rows(&symbol, days, limit, order);
    rows.sort_by_key(|r| r.day);
    let data: Vec<Value> = rows
        .iter()
        .map(|r| {
            let p = if ask { above(&r.price) } else { r.price };
            let at = day_ms(r.day);
            json!({
                "timestamp": at.to_string(),
                "open": num(p.open),
                "high": num(p.high),
                "low": num(p.low),
                "close": num(p.close),
                "volume": "0",
                "resolution": "1d",
                "isClosed": !r.open,
                "timestampISO": DateTime::from_timestamp_millis(at)
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
                    .unwrap_or_default(),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({"ok": "ok", "data": data}))
}

/// The first day whose 00:00 UTC is at or after `ms`.
fn first_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) + i64::from(ms.rem_euclid(DAY_MS) > 0)
}

/// The best ask's candle: the bid's, a spread above.
fn above(p: &Ohlcv) -> Ohlcv {
    let up = |x: f64| x * (1.0 + SPREAD);
    Ohlcv {
        open: up(p.open),
        high: up(p.high),
        low: up(p.low),
        close: up(p.close),
        volume: 0.0,
    }
}

async fn pairs_info(venue: web::Data<Venue>) -> HttpResponse {
    let data: Vec<Value> = venue
        .dataset()
        .symbols()
        .iter()
        .map(|s| {
            json!({
                "base": s.as_str().to_ascii_uppercase(),
                "quote": "USD",
                "baseMinSize": "0.0001",
                "pricePrecision": 2,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({"ok": "ok", "data": data}))
}
