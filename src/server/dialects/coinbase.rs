//! Coinbase Exchange's dialect: `GET /products/{id}/candles` (daily
//! candles `start <= t <= end`, both inclusive, newest first, JSON numbers,
//! at most 300 points a request: more is a 400 "granularity too small ...
//! exceeds 300", and `start >= end` a 400 "start must be before end") and
//! `GET /products`, with Coinbase's `{"message": ...}` errors: 400
//! `User-Agent header is required.` for a request without one, 404
//! `NotFound` for an unknown product, 429 `Slow down` with `Retry-After`
//! over the rate limit.
//!
//! Products are `SYM-USD` (`BTC-USD`).

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{
    answer, day_secs, epoch_day, require_user_agent, Admission, BadParam, Order, Params, Venue,
};
use crate::model::Symbol;

/// Most candles (day slots) one request may span.
pub const MAX_CANDLES: i64 = 300;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/products/{product}/candles", web::get().to(candles))
        .route("/products", web::get().to(products));
}

/// The product of a dataset symbol: `BTC-USD`.
pub fn product(symbol: &Symbol) -> String {
    format!("{}-USD", symbol.as_str().to_ascii_uppercase())
}

fn message(status: StatusCode, retry_after: Option<u64>, message: &str) -> HttpResponse {
    answer(status, retry_after, &json!({"message": message}))
}

/// Coinbase's answer to a request without a User-Agent.
fn user_agent_required() -> HttpResponse {
    message(
        StatusCode::BAD_REQUEST,
        None,
        "User-Agent header is required.",
    )
}

fn bad_param(bad: &BadParam) -> HttpResponse {
    message(
        StatusCode::BAD_REQUEST,
        None,
        &format!("Invalid {}: expected {}", bad.name, bad.expected),
    )
}

/// An ISO 8601 time (`2020-03-01T00:00:00Z`), as unix seconds.
fn time(params: &Params, name: &'static str) -> Result<Option<i64>, BadParam> {
    params
        .get(name)
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc).timestamp())
                .map_err(|_| {
                    BadParam::new(
                        name,
                        format!("an ISO 8601 time such as 2020-03-01T00:00:00Z, not {raw:?}"),
                    )
                })
        })
        .transpose()
}

async fn candles(
    venue: web::Data<Venue>,
    product_id: web::Path<String>,
    req: HttpRequest,
) -> HttpResponse {
    if let Some(refused) = require_user_agent(&req, user_agent_required) {
        return refused;
    }
    if let Admission::Throttled { retry_after } | Admission::Banned { retry_after } =
        venue.admit().await
    {
        return message(
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after),
            "Slow down",
        );
    }
    let params = Params::of(&req);
    match params.int("granularity") {
        Ok(Some(86_400)) => {}
        Ok(_) => {
            return bad_param(&BadParam::new(
                "granularity",
                "86400 (daily candles are all this server has)",
            ))
        }
        Err(bad) => return bad_param(&bad),
    }
    let (start, end) = match (time(&params, "start"), time(&params, "end")) {
        (Err(bad), _) | (_, Err(bad)) => return bad_param(&bad),
        (Ok(start), Ok(end)) => (start, end),
    };
    let today = epoch_day(venue.today());
    // Day slots with start <= S(d) <= end; without either, the newest 300.
    let (first, last) = match (start, end) {
        (Some(s), Some(e)) => (
            s.div_euclid(86_400) + i64::from(s.rem_euclid(86_400) > 0),
            e.div_euclid(86_400),
        ),
        (None, None) => (today - (MAX_CANDLES - 1), today),
        (Some(_), None) => return bad_param(&BadParam::new("end", "a time, given with start")),
        (None, Some(_)) => return bad_param(&BadParam::new("start", "a time, given with end")),
    };
    if let (Some(s), Some(e)) = (start, end) {
        if s >= e {
            return message(StatusCode::BAD_REQUEST, None, "start must be before end");
        }
    }
    if last - first + 1 > MAX_CANDLES {
        return message(
            StatusCode::BAD_REQUEST,
            None,
            "granularity too small for the requested time range. Count of aggregations requested exceeds 300",
        );
    }
    let Some(symbol) = venue.symbol_of(&product_id, product) else {
        return message(StatusCode::NOT_FOUND, None, "NotFound");
    };
    let rows = venue.rows(&symbol, first..=last, usize::MAX, Order::NewestFirst);
    let candles: Vec<Value> = rows
        .iter()
        .map(|r| {
            let p = r.price;
            json!([day_secs(r.day), p.low, p.high, p.open, p.close, p.volume])
        })
        .collect();
    HttpResponse::Ok().json(candles)
}

async fn products(venue: web::Data<Venue>, req: HttpRequest) -> HttpResponse {
    if let Some(refused) = require_user_agent(&req, user_agent_required) {
        return refused;
    }
    let list: Vec<Value> = venue
        .dataset()
        .symbols()
        .iter()
        .map(|s| {
            json!({
                "id": product(s),
                "base_currency": s.as_str().to_ascii_uppercase(),
                "quote_currency": "USD",
                "status": "online",
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}
