//! OKX's dialect: `GET /api/v5/market/history-candles` (daily candles
//! `before < ts < after`, newest first, at most `limit` of 100, strings,
//! `confirm` "0" for the open day) and `GET /api/v5/public/instruments`,
//! with OKX's `{"code","msg","data"}` bodies: 51001 for an unknown
//! instrument (200), 50011 with `Retry-After` over the rate limit (429),
//! 51000 naming a bad parameter (400).
//!
//! `bar=1Dutc` candles open at 00:00 UTC; `bar=1D` ones at Hong Kong
//! midnight (ts = 00:00 UTC - 8 h), as OKX's are: the same day's prices
//! under another open time, which a client must never take for UTC days.
//! Instruments are `SYM-USDT`.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{answer, day_ms, num, Admission, BadParam, Order, Params, Venue, DAY_MS};
use crate::model::Symbol;

/// OKX's page limit (and default).
pub const MAX_LIMIT: usize = 100;

/// Where a `1D` candle opens: Hong Kong midnight, 8 h before UTC's.
pub const HONG_KONG_OFFSET_MS: i64 = -8 * 3_600_000;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route(
        "/api/v5/market/history-candles",
        web::get().to(history_candles),
    )
    .route("/api/v5/public/instruments", web::get().to(instruments));
}

/// The instrument of a dataset symbol: `BTC-USDT`.
pub fn inst_id(symbol: &Symbol) -> String {
    format!("{}-USDT", symbol.as_str().to_ascii_uppercase())
}

fn body(status: StatusCode, retry_after: Option<u64>, code: &str, msg: &str) -> HttpResponse {
    answer(
        status,
        retry_after,
        &json!({"code": code, "msg": msg, "data": []}),
    )
}

fn bad_param(bad: &BadParam) -> HttpResponse {
    body(
        StatusCode::BAD_REQUEST,
        None,
        "51000",
        &format!("Parameter {} error: expected {}", bad.name, bad.expected),
    )
}

async fn history_candles(venue: web::Data<Venue>, req: HttpRequest) -> HttpResponse {
    if let Admission::Throttled { retry_after } | Admission::Banned { retry_after } =
        venue.admit().await
    {
        return body(
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after),
            "50011",
            "Too Many Requests",
        );
    }
    let params = Params::of(&req);
    let inst = match params.required("instId") {
        Ok(i) => i.to_owned(),
        Err(bad) => return bad_param(&bad),
    };
    let offset = match params.get("bar") {
        Some("1Dutc") => 0,
        Some("1D") => HONG_KONG_OFFSET_MS,
        _ => {
            return bad_param(&BadParam::new(
                "bar",
                "1Dutc or 1D (daily candles are all this server has)",
            ))
        }
    };
    let (after, before) = match (params.int("after"), params.int("before")) {
        (Err(bad), _) | (_, Err(bad)) => return bad_param(&bad),
        (Ok(after), Ok(before)) => (after, before),
    };
    let limit = match params.limit("limit", MAX_LIMIT, MAX_LIMIT) {
        Ok(l) => l,
        Err(bad) => return bad_param(&bad),
    };
    let Some(symbol) = venue.symbol_of(&inst, inst_id) else {
        return body(
            StatusCode::OK,
            None,
            "51001",
            "Instrument ID does not exist",
        );
    };
    // Days whose ts = MS(d) + offset lies strictly between before and after.
    let first = before.map_or(i64::MIN, |b| {
        b.saturating_sub(offset).div_euclid(DAY_MS) + 1
    });
    let last = after.map_or(i64::MAX, |a| {
        a.saturating_sub(offset)
            .saturating_sub(1)
            .div_euclid(DAY_MS)
    });
    let rows = venue.rows(&symbol, first..=last, limit, Order::NewestFirst);
    let data: Vec<Value> = rows
        .iter()
        .map(|r| {
            let p = r.price;
            let quote = num(p.volume * p.close);
            json!([
                (day_ms(r.day) + offset).to_string(),
                num(p.open),
                num(p.high),
                num(p.low),
                num(p.close),
                num(p.volume),
                quote,
                quote,
                if r.open { "0" } else { "1" },
            ])
        })
        .collect();
    HttpResponse::Ok().json(json!({"code": "0", "msg": "", "data": data}))
}

async fn instruments(venue: web::Data<Venue>, req: HttpRequest) -> HttpResponse {
    let params = Params::of(&req);
    let inst_type = match params.required("instType") {
        Ok(t) => t,
        Err(bad) => return bad_param(&bad),
    };
    let data: Vec<Value> = if inst_type == "SPOT" {
        venue
            .dataset()
            .symbols()
            .iter()
            .map(|s| {
                json!({
                    "instId": inst_id(s),
                    "baseCcy": s.as_str().to_ascii_uppercase(),
                    "quoteCcy": "USDT",
                    "state": "live",
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    HttpResponse::Ok().json(json!({"code": "0", "msg": "", "data": data}))
}
