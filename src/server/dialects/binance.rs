//! Binance's dialect: `GET /api/v3/klines` (daily klines, oldest first,
//! `startTime <= openTime <= endTime`, at most `limit` of 1000) and
//! `GET /api/v3/exchangeInfo`, with Binance's error bodies: -1121 for an
//! unknown symbol, -1003 with `Retry-After` over the rate limit, and 418
//! (an IP ban) for a client that keeps going after `ban_after` 429s.
//!
//! Markets are `SYM` + `USDT` (`BTCUSDT`). Only the answer is built here;
//! rows and throttling are the shared `Venue`'s.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::{answer, day_ms, num, Admission, BadParam, Order, Params, Row, Venue, DAY_MS};
use crate::model::Symbol;

/// Binance's page limit.
pub const MAX_LIMIT: usize = 1000;
/// Binance's limit when none is given.
pub const DEFAULT_LIMIT: usize = 500;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/api/v3/klines", web::get().to(klines))
        .route("/api/v3/exchangeInfo", web::get().to(exchange_info));
}

/// The market of a dataset symbol: `BTCUSDT`.
pub fn market(symbol: &Symbol) -> String {
    format!("{}USDT", symbol.as_str().to_ascii_uppercase())
}

fn bad_param(bad: &BadParam) -> HttpResponse {
    let (code, msg) = if bad.missing {
        (
            -1102,
            format!(
                "Mandatory parameter '{}' was not sent, was empty/null, or malformed.",
                bad.name
            ),
        )
    } else {
        (
            -1100,
            format!(
                "Illegal characters found in parameter '{}'; expected {}.",
                bad.name, bad.expected
            ),
        )
    };
    answer(
        StatusCode::BAD_REQUEST,
        None,
        &json!({"code": code, "msg": msg}),
    )
}

fn refused(admission: Admission) -> Option<HttpResponse> {
    match admission {
        Admission::Admitted => None,
        Admission::Throttled { retry_after } => Some(answer(
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after),
            &json!({
                "code": -1003,
                "msg": "Too many requests; current request rate exceeds the limit. Please use the websocket for live updates to avoid polling the API.",
            }),
        )),
        Admission::Banned { retry_after } => Some(answer(
            StatusCode::IM_A_TEAPOT,
            Some(retry_after),
            &json!({
                "code": -1003,
                "msg": format!("Way too many requests; IP banned for {retry_after} more seconds. Please use the websocket for live updates to avoid bans."),
            }),
        )),
    }
}

/// What a klines request asks for.
struct Klines {
    market: String,
    first_day: i64,
    last_day: i64,
    limit: usize,
}

/// Why a klines request cannot be answered, each with Binance's own code.
enum Refused {
    Param(BadParam),
    Interval,
    StartAfterEnd,
}

impl From<BadParam> for Refused {
    fn from(bad: BadParam) -> Self {
        Refused::Param(bad)
    }
}

impl Refused {
    fn answer(&self) -> HttpResponse {
        let (code, msg) = match self {
            Refused::Param(bad) => return bad_param(bad),
            Refused::Interval => (-1120, "Invalid interval."),
            Refused::StartAfterEnd => (
                -1128,
                "Combination of optional parameters invalid: startTime is after endTime.",
            ),
        };
        answer(
            StatusCode::BAD_REQUEST,
            None,
            &json!({"code": code, "msg": msg}),
        )
    }
}

fn parse(params: &Params, today: i64) -> Result<Klines, Refused> {
    let market = params.required("symbol")?;
    match params.get("interval") {
        Some("1d") => {}
        None => return Err(BadParam::missing("interval").into()),
        Some(_) => return Err(Refused::Interval),
    }
    let start = params.int("startTime")?;
    let end = params.int("endTime")?;
    let limit = params.limit("limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(Refused::StartAfterEnd);
        }
    }
    // The day of the first open time at or after startTime, of the last at
    // or before endTime.
    let last_day = end.map_or(today, |ms| ms.div_euclid(DAY_MS));
    let first_day = match start {
        Some(ms) => ms.div_euclid(DAY_MS) + i64::from(ms.rem_euclid(DAY_MS) > 0),
        // Without a start Binance answers the newest `limit` klines.
        None => last_day.saturating_sub(limit as i64 - 1),
    };
    Ok(Klines {
        market: market.to_owned(),
        first_day,
        last_day,
        limit,
    })
}

/// One kline: `[openMs,"o","h","l","c","v",closeMs,"quoteVol",trades,
/// "takerBase","takerQuote","0"]`.
fn kline(row: &Row) -> Value {
    let p = row.price;
    let open_ms = day_ms(row.day);
    let quote = p.volume * p.close;
    json!([
        open_ms,
        num(p.open),
        num(p.high),
        num(p.low),
        num(p.close),
        num(p.volume),
        open_ms + DAY_MS - 1,
        num(quote),
        trades(p.volume),
        num(p.volume / 2.0),
        num(quote / 2.0),
        "0",
    ])
}

/// A plausible trade count for a volume (clients do not read it).
pub(super) fn trades(volume: f64) -> u64 {
    (volume.clamp(0.0, 1e15) as u64).max(1)
}

async fn klines(venue: web::Data<Venue>, req: HttpRequest) -> HttpResponse {
    if let Some(refusal) = refused(venue.admit().await) {
        return refusal;
    }
    let today = super::epoch_day(venue.today());
    let k = match parse(&Params::of(&req), today) {
        Ok(k) => k,
        Err(refused) => return refused.answer(),
    };
    let Some(symbol) = venue.symbol_of(&k.market, market) else {
        return answer(
            StatusCode::BAD_REQUEST,
            None,
            &json!({"code": -1121, "msg": "Invalid symbol."}),
        );
    };
    let rows = venue.rows(
        &symbol,
        k.first_day..=k.last_day,
        k.limit,
        Order::OldestFirst,
    );
    HttpResponse::Ok().json(rows.iter().map(kline).collect::<Vec<_>>())
}

async fn exchange_info(venue: web::Data<Venue>) -> HttpResponse {
    let symbols: Vec<Value> = venue
        .dataset()
        .symbols()
        .iter()
        .map(|s| {
            json!({
                "symbol": market(s),
                "status": "TRADING",
                "baseAsset": s.as_str().to_ascii_uppercase(),
                "quoteAsset": "USDT",
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "timezone": "UTC",
        "serverTime": venue.now().timestamp_millis(),
        "symbols": symbols,
    }))
}
