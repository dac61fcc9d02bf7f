//! HTX's dialect: `GET /market/history/candles?symbol&period=60min&from&to&size`
//! (hourly candles whose open time, in seconds, lies in `from ..= to`,
//! newest first, at most `size` of 1000, default 150, only among the 2000
//! most recent hours) and `GET /v1/common/symbols`. Errors come with HTTP
//! 200 as `{"status": "error", "err-code", "err-msg"}`: `invalid symbol`,
//! `invalid period` (only `60min` is served: the dataset is daily, and
//! HTX's `1day` is anchored at 00:00 UTC+8, which a daily dataset cannot
//! give), `invalid size`; over the rate limit 429 "request limit exceeded"
//! (UNCONFIRMED). A request without a User-Agent is refused 403, as HTX's
//! Cloudflare front does.
//!
//! The hourly candles are made from the dataset's daily OHLCV so that the
//! 24 of a day add up to it exactly: open at hour 0, high in hour 5, low
//! and the move from open to close in hour 17, close at hour 23, the
//! volume halved between hours 5 and 17 (halves add up exactly), every
//! other hour flat with no trades (HTX emits such hours). Today's hours run
//! to the current one, and add up to today's (partial) candle. Every row
//! comes from `Venue` (the dataset exchange, publication, the token
//! bucket); this file only shapes requests and bodies and keeps no state.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::Timelike;
use serde_json::{json, Value};

use super::{answer, day_secs, require_user_agent, Admission, Order, Params, Venue};
use crate::model::{Ohlcv, Symbol};

/// HTX's page limit on `/market/history/candles`, and its default.
pub const MAX_SIZE: usize = 1000;
pub const DEFAULT_SIZE: usize = 150;
/// How many of the most recent hourly candles are served.
pub const REACH_HOURS: i64 = 2000;
/// The hours of a day that carry its high, and its low and move.
const HIGH_HOUR: u32 = 5;
const MOVE_HOUR: u32 = 17;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/market/history/candles", web::get().to(candles))
        .route("/v1/common/symbols", web::get().to(symbols));
}

/// The symbol HTX lists for a dataset symbol: `btcusdt`.
pub fn symbol_id(symbol: &Symbol) -> String {
    format!("{}usdt", symbol.as_str())
}

fn error(status: StatusCode, venue: &Venue, code: &str, message: &str) -> HttpResponse {
    answer(
        status,
        None,
        &json!({"ts": venue.now().timestamp_millis(), "status": "error",
            "err-code": code, "err-msg": message, "data": null}),
    )
}

/// HTX's Cloudflare front refuses a request that names no client.
fn forbidden() -> HttpResponse {
    HttpResponse::Forbidden()
        .content_type("text/html")
        .body("<html><body><h1>403 Forbidden</h1></body></html>")
}

/// One hourly candle of a day's OHLCV: see the module's opening.
pub fn hour_of(day: &Ohlcv, hour: u32, last_hour: u32) -> Ohlcv {
    let high_hour = HIGH_HOUR.min(last_hour);
    let move_hour = MOVE_HOUR.min(last_hour);
    let (open, close) = match hour {
        h if h < move_hour => (day.open, day.open),
        h if h == move_hour => (day.open, day.close),
        _ => (day.close, day.close),
    };
    let half = day.volume / 2.0;
    let volume = match hour {
        h if h == high_hour && h == move_hour => day.volume,
        h if h == high_hour => half,
        h if h == move_hour => day.volume - half,
        _ => 0.0,
    };
    Ohlcv {
        open,
        close,
        high: if hour == high_hour {
            day.high
        } else {
            day.high.min(open.max(close))
        },
        low: if hour == move_hour {
            day.low
        } else {
            day.low.max(open.min(close))
        },
        volume,
    }
}

async fn candles(venue: web::Data<Venue>, req: HttpRequest) -> HttpResponse {
    if let Some(refusal) = require_user_agent(&req, forbidden) {
        return refusal;
    }
    if let Admission::Throttled { retry_after } | Admission::Banned { retry_after } =
        venue.admit().await
    {
        return answer(
            StatusCode::TOO_MANY_REQUESTS,
            Some(retry_after),
            &json!({"status": "error", "err-code": "too-many-request",
                "err-msg": "request limit exceeded", "data": null}),
        );
    }
    let params = Params::of(&req);
    let bad = |code: &str, message: &str| error(StatusCode::OK, &venue, code, message);
    let Some(symbol) = params
        .get("symbol")
        .and_then(|s| venue.symbol_of(s, symbol_id))
    else {
        return bad("invalid-parameter", "invalid symbol");
    };
    if params.get("period") != Some("60min") {
        return bad("invalid-parameter", "invalid period");
    }
    let size = match params.int("size") {
        Ok(None) => DEFAULT_SIZE,
        Ok(Some(n)) if (1..=MAX_SIZE as i64).contains(&n) => n as usize,
        _ => return bad("bad-request", "invalid size, valid range: [1,1000]"),
    };
    let (from, to) = match (params.int("from"), params.int("to")) {
        (Ok(from), Ok(to)) => (from, to),
        _ => return bad("invalid-parameter", "invalid from or to"),
    };
    let now = venue.now();
    let this_hour = now.timestamp().div_euclid(3600) * 3600;
    let oldest = this_hour - (REACH_HOURS - 1) * 3600;
    let from = from.unwrap_or(i64::MIN).max(oldest);
    let to = to.unwrap_or(i64::MAX).min(this_hour);
    let mut data: Vec<Value> = Vec::new();
    if from <= to {
        let days = from.div_euclid(86_400)..=to.div_euclid(86_400);
        for row in venue.rows(&symbol, days, usize::MAX, Order::NewestFirst) {
            let last_hour = if row.open { now.hour() } else { 23 };
            for hour in (0..=last_hour).rev() {
                let id = day_secs(row.day) + i64::from(hour) * 3600;
                if id < from || id > to {
                    continue;
                }
                let p = hour_of(&row.price, hour, last_hour);
                let count = if p.volume > 0.0 {
                    super::binance::trades(p.volume)
                } else {
                    0
                };
                data.push(json!({
                    "id": id, "open": p.open, "close": p.close, "low": p.low,
                    "high": p.high, "amount": p.volume, "vol": p.volume * p.close,
                    "count": count,
                }));
                if data.len() == size {
                    break;
                }
            }
            if data.len() == size {
                break;
            }
        }
    }
    HttpResponse::Ok().json(json!({
        "ch": format!("market.{}.kline.60min", symbol_id(&symbol)),
        "status": "ok",
        "ts": now.timestamp_millis(),
        "data": data,
    }))
}

async fn symbols(venue: web::Data<Venue>) -> HttpResponse {
    let data: Vec<Value> = venue
        .dataset()
        .symbols()
        .iter()
        .map(|s| {
            json!({
                "symbol": symbol_id(s),
                "base-currency": s.as_str(),
                "quote-currency": "usdt",
                "state": "online",
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({"status": "ok", "data": data}))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 24 hours (or the hours so far) add up to the day exactly.
    #[test]
    fn the_hours_of_a_day_add_up_to_it_exactly() {
        let day = Ohlcv {
            open: 8523.2,
            high: 8590.8,
            low: 8401.1,
            close: 8530.9,
            volume: 2411.52386113,
        };
        for last in [23, 0, 5, 12, 17, 20] {
            let hours: Vec<Ohlcv> = (0..=last).map(|h| hour_of(&day, h, last)).collect();
            let mut sum = hours[0];
            for h in &hours[1..] {
                sum.high = sum.high.max(h.high);
                sum.low = sum.low.min(h.low);
                sum.close = h.close;
                sum.volume += h.volume;
            }
            assert_eq!(sum, day, "hours 0..={last}");
        }
    }
}
