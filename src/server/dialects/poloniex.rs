//! Poloniex's dialect: `GET /markets/{symbol}/candles?interval=DAY_1`
//! (daily candles `startTime <= startTime of the candle <= endTime`,
//! oldest first, at most `limit` of 500, default 100; 14-field rows, prices
//! as strings, `closeTime` = `startTime` + 1 day − 1 ms, in the future for
//! today's open candle, whose `ts` is the time of the answer) and `GET
//! /markets`. Errors are `{"code", "message"}`: 400 24101 "Invalid
//! symbol!" for an unknown market (as valid JSON; the one recorded real
//! body was cut after `"data":`), 400 2410x naming a bad parameter, and
//! over the rate limit 429 code 429 with `Retry-After` (Poloniex's own
//! throttling body is unconfirmed).
//!
//! Markets are `SYM_USDT`. Every row comes from `Venue` (the
//! dataset exchange, publication, the token bucket); this file only shapes
//! requests and bodies and keeps no state.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{
    answer, day_ms, days_opening_within_ms, epoch_day, num, Admission, BadParam, Order, Params,
    Venue, DAY_MS,
};
use crate::model::Symbol;

/// Poloniex's page limit, and its default.
pub const MAX_LIMIT: usize = 500;
pub const DEFAULT_LIMIT: usize = 100;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/markets/{symbol}/candles", web::get().to(candles))
        .route("/markets", web::get().to(markets));
}

/// The market of a dataset symbol: `BTC_USDT`.
pub fn market(symbol: &Symbol) -> String {
    format!("{}_USDT", symbol.as_str().to_ascii_uppercase())
}

fn error(status: StatusCode, retry_after: Option<u64>, code: u32, message: &str) -> HttpResponse {
    answer(
        status,
        retry_after,
        &json!({"code": code, "message": message}),
    )
}

fn bad_param(bad: &BadParam) -> HttpResponse {
    let code = match bad.name {
        "interval" => 24102,
        "endTime" => 24103,
        "limit" => 24104,
        _ => 24105,
    };
    error(
        StatusCode::BAD_REQUEST,
        None,
        code,
        &format!("Invalid {}: expected {}", bad.name, bad.expected),
    )
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
        );
    }
    let Some(symbol) = venue.symbol_of(&symbol, market) else {
        return error(StatusCode::BAD_REQUEST, None, 24101, "Invalid symbol!");
    };
    let params = Params::of(&req);
    if params.get("interval") != Some("DAY_1") {
        return bad_param(&BadParam::new(
            "interval",
            "DAY_1 (daily candles are all this server has)",
        ));
    }
    let (start, end) = match (params.int("startTime"), params.int("endTime")) {
        (Err(bad), _) | (_, Err(bad)) => return bad_param(&bad),
        (Ok(start), Ok(end)) => (start, end),
    };
    let limit = match params.limit("limit", DEFAULT_LIMIT, MAX_LIMIT) {
        Ok(l) => l,
        Err(bad) => return bad_param(&bad),
    };
    let days = days_opening_within_ms(start, end);
    // Without a start, the `limit` candles up to the end.
    let days = match start {
        Some(_) => days,
        None => {
            let last = (*days.end()).min(epoch_day(venue.today()));
            last.saturating_sub(limit as i64 - 1)..=last
        }
    };
    let now_ms = venue.now().timestamp_millis();
    let rows: Vec<Value> = venue
        .rows(&symbol, days, limit, Order::OldestFirst)
        .iter()
        .map(|r| {
            let p = r.price;
            let start = day_ms(r.day);
            let close_time = start + DAY_MS - 1;
            let amount = num(p.volume * p.close);
            json!([
                num(p.low),
                num(p.high),
                num(p.open),
                num(p.close),
                amount,
                num(p.volume),
                "0",
                "0",
                0,
                if r.open { now_ms } else { close_time },
                num(p.close),
                "DAY_1",
                start,
                close_time,
            ])
        })
        .collect();
    HttpResponse::Ok().json(rows)
}

async fn markets(venue: web::Data<Venue>) -> HttpResponse {
    let list: Vec<Value> = venue
        .dataset()
        .symbols()
        .iter()
        .map(|s| {
            let base = s.as_str().to_ascii_uppercase();
            json!({
                "symbol": market(s),
                "baseCurrencyName": base,
                "quoteCurrencyName": "USDT",
                "displayName": format!("{base}/USDT"),
                "state": "NORMAL",
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}
