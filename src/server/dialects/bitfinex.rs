//! Bitfinex's dialect: `GET /v2/candles/trade:1D:t{PAIR}/hist` (daily
//! candles `start <= MTS <= end`, newest first unless `sort=1`, at most
//! `limit` of 10000, default 100, rows `[MTS, OPEN, CLOSE, HIGH, LOW,
//! VOLUME]` as JSON numbers) and `GET /v2/conf/pub:list:pair:exchange`.
//! Errors are Bitfinex's `["error", CODE, "MESSAGE"]` with a 500: 10020
//! "symbol: invalid" for an unknown pair (Bitfinex's real answer there is
//! unconfirmed), 10020 naming any other bad parameter; over the rate limit
//! a 429 `["error", 11010, "ratelimit: error"]` without `Retry-After`, as
//! Bitfinex sends it.
//!
//! Pairs are `SYMUSD` (`tBTCUSD` in the key); nothing marks today's candle
//! as open. Every row comes from `Venue` (the
//! dataset exchange, publication, the token bucket); this file only shapes
//! requests and bodies and keeps no state.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{answer, day_ms, days_opening_within_ms, Admission, BadParam, Order, Params, Venue};
use crate::model::Symbol;

/// Bitfinex's page limit, and its default.
pub const MAX_LIMIT: usize = 10_000;
pub const DEFAULT_LIMIT: usize = 100;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/v2/candles/{key}/hist", web::get().to(candles))
        .route("/v2/conf/pub:list:pair:exchange", web::get().to(pairs));
}

/// The pair of a dataset symbol: `BTCUSD`.
pub fn pair(symbol: &Symbol) -> String {
    format!("{}USD", symbol.as_str().to_ascii_uppercase())
}

fn error(status: StatusCode, code: u32, message: &str) -> HttpResponse {
    answer(status, None, &json!(["error", code, message]))
}

fn invalid(name: &str) -> HttpResponse {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        10020,
        &format!("{name}: invalid"),
    )
}

fn bad_param(bad: &BadParam) -> HttpResponse {
    invalid(bad.name)
}

async fn candles(
    venue: web::Data<Venue>,
    key: web::Path<String>,
    req: HttpRequest,
) -> HttpResponse {
    if let Admission::Throttled { .. } | Admission::Banned { .. } = venue.admit().await {
        return error(StatusCode::TOO_MANY_REQUESTS, 11010, "ratelimit: error");
    }
    // trade:1D:tBTCUSD (a long pair has its own ':', tAAVE:USD).
    let Some((frame, symbol)) = key
        .strip_prefix("trade:")
        .and_then(|rest| rest.split_once(':'))
    else {
        return invalid("key");
    };
    if frame != "1D" {
        return invalid("time_frame");
    }
    let Some(symbol) = symbol
        .strip_prefix('t')
        .and_then(|p| venue.symbol_of(p, pair))
    else {
        return invalid("symbol");
    };
    let params = Params::of(&req);
    let order = match params.int("sort") {
        Ok(Some(1)) => Order::OldestFirst,
        Ok(None | Some(-1)) => Order::NewestFirst,
        Ok(Some(_)) => return invalid("sort"),
        Err(bad) => return bad_param(&bad),
    };
    let (start, end) = match (params.int("start"), params.int("end")) {
        (Err(bad), _) | (_, Err(bad)) => return bad_param(&bad),
        (Ok(start), Ok(end)) => (start, end),
    };
    let limit = match params.limit("limit", DEFAULT_LIMIT, MAX_LIMIT) {
        Ok(l) => l,
        Err(bad) => return bad_param(&bad),
    };
    let rows = venue.rows(&symbol, days_opening_within_ms(start, end), limit, order);
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let p = r.price;
            json!([day_ms(r.day), p.open, p.close, p.high, p.low, p.volume])
        })
        .collect();
    HttpResponse::Ok().json(rows)
}

async fn pairs(venue: web::Data<Venue>) -> HttpResponse {
    let list: Vec<String> = venue.dataset().symbols().iter().map(pair).collect();
    HttpResponse::Ok().json(json!([list]))
}
