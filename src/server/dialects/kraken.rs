//! Kraken's dialect: `GET /0/public/OHLC` (daily candles after `since`,
//! oldest first, only among the 720 most recent days, today's open candle
//! last, `last` the newest committed candle: the row before today's) and `GET /0/public/AssetPairs`. Kraken answers errors with 200 and
//! an `error` list (`EQuery:Unknown asset pair`, `EGeneral:Too many
//! requests`); a malformed parameter is a 400 naming it.
//!
//! Markets are Kraken's altnames (`XBTUSD`, `ETHUSD`, `LTCUSD`, others
//! `SYM` + `USD`); results are keyed by Kraken's own pair name
//! (`XXBTZUSD`), and a request may name a pair either way.

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{answer, day_secs, epoch_day, num, Admission, BadParam, Order, Params, Venue};
use crate::model::Symbol;

/// How many of the most recent days Kraken serves (today included).
pub const DEPTH_DAYS: i64 = 720;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/0/public/OHLC", web::get().to(ohlc))
        .route("/0/public/AssetPairs", web::get().to(asset_pairs));
}

/// Kraken's names of a symbol's USD pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The result key, Kraken's own name: `XXBTZUSD`.
    pub key: String,
    /// The market clients send: `XBTUSD`.
    pub altname: String,
    pub wsname: String,
    pub base: String,
    pub quote: String,
}

pub fn pair(symbol: &Symbol) -> Pair {
    let (asset, legacy) = match symbol.as_str() {
        "btc" => ("XBT".to_owned(), true),
        "eth" => ("ETH".to_owned(), true),
        "ltc" => ("LTC".to_owned(), true),
        other => (other.to_ascii_uppercase(), false),
    };
    if legacy {
        Pair {
            key: format!("X{asset}ZUSD"),
            altname: format!("{asset}USD"),
            wsname: format!("{asset}/USD"),
            base: format!("X{asset}"),
            quote: "ZUSD".to_owned(),
        }
    } else {
        Pair {
            key: format!("{asset}USD"),
            altname: format!("{asset}USD"),
            wsname: format!("{asset}/USD"),
            base: asset,
            quote: "USD".to_owned(),
        }
    }
}

fn error(status: StatusCode, message: &str) -> HttpResponse {
    answer(status, None, &json!({"error": [message]}))
}

fn bad_param(bad: &BadParam) -> HttpResponse {
    error(
        StatusCode::BAD_REQUEST,
        &format!(
            "EGeneral:Invalid arguments:{}: expected {}",
            bad.name, bad.expected
        ),
    )
}

async fn ohlc(venue: web::Data<Venue>, req: HttpRequest) -> HttpResponse {
    if let Admission::Throttled { .. } | Admission::Banned { .. } = venue.admit().await {
        return error(StatusCode::OK, "EGeneral:Too many requests");
    }
    let params = Params::of(&req);
    let requested = match params.required("pair") {
        Ok(p) => p.to_owned(),
        Err(bad) => return bad_param(&bad),
    };
    match params.int("interval") {
        Ok(Some(1440)) => {}
        Ok(_) => {
            return bad_param(&BadParam::new(
                "interval",
                "1440 (daily candles are all this server has)",
            ))
        }
        Err(bad) => return bad_param(&bad),
    }
    let since = match params.int("since") {
        Ok(s) => s,
        Err(bad) => return bad_param(&bad),
    };
    let Some(symbol) = venue
        .symbol_of(&requested, |s| pair(s).altname)
        .or_else(|| venue.symbol_of(&requested, |s| pair(s).key))
    else {
        return error(StatusCode::OK, "EQuery:Unknown asset pair");
    };
    let today = epoch_day(venue.today());
    let oldest = today - (DEPTH_DAYS - 1);
    // Rows with t > since: the first day whose midnight is after it.
    let first = since
        .map_or(oldest, |s| s.div_euclid(86_400) + 1)
        .max(oldest);
    let rows = venue.rows(&symbol, first..=today, usize::MAX, Order::OldestFirst);
    let candles: Vec<Value> = rows
        .iter()
        .map(|r| {
            let p = r.price;
            json!([
                day_secs(r.day),
                num(p.open),
                num(p.high),
                num(p.low),
                num(p.close),
                num((p.high + p.low + p.close) / 3.0),
                num(p.volume),
                super::binance::trades(p.volume),
            ])
        })
        .collect();
    // `last` is the newest committed candle, as the real Kraken sends it:
    // the row before the newest when the newest is today's open candle.
    let last = match rows.last() {
        Some(r) if epoch_day(r.day) == today => day_secs(r.day) - 86_400,
        Some(r) => day_secs(r.day),
        None => since.unwrap_or(0),
    };
    let mut result = Map::new();
    result.insert(pair(&symbol).key, Value::Array(candles));
    result.insert("last".to_owned(), json!(last));
    HttpResponse::Ok().json(json!({"error": [], "result": result}))
}

async fn asset_pairs(venue: web::Data<Venue>) -> HttpResponse {
    let result: Map<String, Value> = venue
        .dataset()
        .symbols()
        .iter()
        .map(|s| {
            let p = pair(s);
            (
                p.key,
                json!({
                    "altname": p.altname,
                    "wsname": p.wsname,
                    "base": p.base,
                    "quote": p.quote,
                }),
            )
        })
        .collect();
    HttpResponse::Ok().json(json!({"error": [], "result": result}))
}
