//! Bitstamp's dialect: `GET /api/v2/ohlc/{pair}/` (daily candles
//! `start <= timestamp <= end`, oldest first, at most `limit` of 1000, every
//! number a string) and `GET /api/v2/trading-pairs-info/`, with Bitstamp's
//! `{"status":"error",...}` bodies: 404 `API0005` for an unknown pair, 429
//! `API0001` with `Retry-After` over the rate limit.
//!
//! Pairs are `symusd` in URLs (`btcusd`) and `SYM/USD` by name.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{answer, day_secs, epoch_day, num, Admission, BadParam, Order, Params, Venue};
use crate::model::Symbol;

/// Bitstamp's page limit.
pub const MAX_LIMIT: usize = 1000;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/api/v2/ohlc/{pair}/", web::get().to(ohlc))
        .route("/api/v2/ohlc/{pair}", web::get().to(ohlc))
        .route("/api/v2/trading-pairs-info/", web::get().to(pairs_info))
        .route("/api/v2/trading-pairs-info", web::get().to(pairs_info));
}

/// The URL symbol of a dataset symbol's USD pair: `btcusd`.
pub fn url_symbol(symbol: &Symbol) -> String {
    format!("{}usd", symbol.as_str().to_ascii_lowercase())
}

/// The pair's name: `BTC/USD`.
pub fn pair_name(symbol: &Symbol) -> String {
    format!("{}/USD", symbol.as_str().to_ascii_uppercase())
}

fn error(status: StatusCode, retry_after: Option<u64>, reason: &str, code: &str) -> HttpResponse {
    answer(
        status,
        retry_after,
        &json!({"status": "error", "reason": reason, "code": code}),
    )
}

fn bad_param(bad: &BadParam) -> HttpResponse {
    error(
        StatusCode::BAD_REQUEST,
        None,
        &format!("Invalid {} parameter: expected {}", bad.name, bad.expected),
        "API0002",
    )
}

async fn ohlc(
    venue: web::Data<Venue>,
    url_pair: web::Path<String>,
    req: HttpRequest,
) -> HttpResponse {
    if let Admission::Throttled { retry_after } | Admission::Banned { retry_after } =
        venue.admit().await
    {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after),
            "Rate limit exceeded",
            "API0001",
        );
    }
    let Some(symbol) = venue.symbol_of(&url_pair, url_symbol) else {
        return error(
            StatusCode::NOT_FOUND,
            None,
            "Invalid currency pair",
            "API0005",
        );
    };
    let params = Params::of(&req);
    match params.int("step") {
        Ok(Some(86_400)) => {}
        Ok(_) => {
            return bad_param(&BadParam::new(
                "step",
                "86400 (daily candles are all this server has)",
            ))
        }
        Err(bad) => return bad_param(&bad),
    }
    let limit = match params.limit("limit", MAX_LIMIT, MAX_LIMIT) {
        Ok(l) => l,
        Err(bad) => return bad_param(&bad),
    };
    let (start, end) = match (params.int("start"), params.int("end")) {
        (Err(bad), _) | (_, Err(bad)) => return bad_param(&bad),
        (Ok(start), Ok(end)) => (start, end),
    };
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return bad_param(&BadParam::new("start", "a time no later than end"));
        }
    }
    let last = end.map_or(epoch_day(venue.today()), |e| e.div_euclid(86_400));
    let first = match start {
        Some(s) => s.div_euclid(86_400) + i64::from(s.rem_euclid(86_400) > 0),
        // Without a start, Bitstamp answers the `limit` candles up to end.
        None => last.saturating_sub(limit as i64 - 1),
    };
    let rows = venue.rows(&symbol, first..=last, limit, Order::OldestFirst);
    let ohlc: Vec<Value> = rows
        .iter()
        .map(|r| {
            let p = r.price;
            json!({
                "timestamp": day_secs(r.day).to_string(),
                "open": num(p.open),
                "high": num(p.high),
                "low": num(p.low),
                "close": num(p.close),
                "volume": num(p.volume),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({"data": {"pair": pair_name(&symbol), "ohlc": ohlc}}))
}

async fn pairs_info(venue: web::Data<Venue>) -> HttpResponse {
    let list: Vec<Value> = venue
        .dataset()
        .symbols()
        .iter()
        .map(|s| {
            json!({
                "name": pair_name(s),
                "url_symbol": url_symbol(s),
                "trading": "Enabled",
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}
