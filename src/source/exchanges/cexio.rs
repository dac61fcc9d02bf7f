//! CEX.IO's candles (`POST /api/spot/rest-public/get_candles` on
//! `trade.cex.io`, a JSON body), as ccxt's code and its sample answer show
//! them. This file owns CEX.IO's request, its answers and its market list;
//! the shared rules (anchoring, "no price" days, numbers) are
//! `exchanges/mod.rs`'s, and nothing here does I/O.
//!
//! CEX.IO's quirks:
//! - Two APIs. The legacy `GET https://cex.io/api/ohlcv/hd/YYYYMMDD/BTC/USD`
//!   gave trade candles (about 100 days ending at the date asked, each
//!   resolution a JSON list inside a JSON *string*, days without trades
//!   absent); ccxt dropped it and whether it still answers is
//!   UNCONFIRMED. This adapter uses the current API, the one ccxt uses:
//!   it pages by date and is documented to answer.
//! - Its candles are built from best bid/ask **quotes**, not trades:
//!   `dataType` (`bestBid` or `bestAsk`) is required (ccxt), and `volume`
//!   is `"0"`. The adapter asks `bestBid` (what a holder could sell at)
//!   and flags every price `quotes`; its volume is kept as sent (0).
//! - The body is `{"pair": "BTC-USD", "resolution": "1d", "dataType",
//!   "fromISO", "limit"}`: `limit` (at most 1000, ccxt) is required with
//!   `fromISO` or `toISO` and may not be given with both, so a page sends
//!   `fromISO` and `limit` = its days.
//! - An answer is `{"ok": "ok", "data": [{"timestamp": "1728643320000",
//!   "open", "high", "low", "close", "volume", "resolution", "isClosed",
//!   "timestampISO"}]}`: the time is a *string* of milliseconds, numbers
//!   are strings; `isClosed: false` marks the open day. Whether a day
//!   without quotes is absent, and the order of the rows, are UNCONFIRMED
//!   (a missing day is "no price"; the order is not relied on).
//! - Error bodies are UNCONFIRMED: `{"ok": "error", "error": "..."}` or
//!   `{"error": "..."}` is read leniently; a message naming the pair as
//!   unknown or unsupported is an unknown market, "API rate limit reached"
//!   (ccxt's text) and 429 are throttling.
//! - About 3 requests a second (ccxt's 300 ms; the official figure is
//!   UNCONFIRMED): 2/s by default.
//! - Pairs are `BASE-QUOTE` in upper case (`BTC-USD`); `POST
//!   /api/spot/rest-public/get_pairs_info` (body `{}`) lists `{"base",
//!   "quote"}`.

use serde_json::{json, Value};

use super::common::{self, integer, shape, text};
use super::{
    day_answers, number, Candle, CandleApi, CandleRequest, Instrument, MarketForm, PageResult,
    Profile,
};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi, Flags};
use crate::source::{Answer, FetchFailure};

/// CEX.IO's spot REST API (`trade.cex.io`).
pub struct Cexio;

const CANDLES: &str = "api/spot/rest-public/get_candles";
const PAIRS: &str = "api/spot/rest-public/get_pairs_info";
/// The quotes a candle is built from.
pub const DATA_TYPE: &str = "bestBid";

/// CEX.IO's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Cexio,
    default_url: "https://trade.cex.io/",
    page_days: 1000,
    // Under the ~3.3/s of ccxt's 300 ms.
    requests_per_second: 2.0,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        dashed: true,
        described: "BASE-QUOTE in upper case (\"BTC-USD\")",
    },
};

impl CandleApi for Cexio {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn candles_request(&self, _market: &str, _days: DayRange) -> String {
        CANDLES.to_owned()
    }

    fn candles_call(&self, market: &str, days: DayRange) -> CandleRequest {
        CandleRequest::post(
            CANDLES,
            json!({
                "pair": market,
                "resolution": "1d",
                "dataType": DATA_TYPE,
                "fromISO": format!("{}T00:00:00.000Z", days.from),
                "limit": days.len(),
            }),
        )
    }

    fn parse_candles(
        &self,
        market: &str,
        days: DayRange,
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
        ohlc_order: OhlcOrder,
    ) -> PageResult {
        let v = common::json(body);
        if let Ok(v) = &v {
            if let Some(message) = error_of(v) {
                return Err(error(market, status, message, retry_after));
            }
        }
        if let Some(failure) = common::common_status(status, retry_after) {
            return Err(failure);
        }
        if status != 200 {
            return Err(common::unexpected_status(status, body));
        }
        let v = v?;
        if v.get("ok").and_then(Value::as_str) != Some("ok") {
            return Err(shape("no \"ok\": \"ok\""));
        }
        let rows = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| shape("no 'data' list"))?;
        let candles = common::candles_of(rows, candle)?;
        let mut answers = day_answers(days, &candles, ohlc_order)?;
        for a in &mut answers {
            if let Answer::Price { flags, .. } = &mut a.answer {
                *flags |= Flags::QUOTES;
            }
        }
        Ok(answers)
    }

    fn instruments_request(&self) -> String {
        PAIRS.to_owned()
    }

    fn instruments_call(&self) -> CandleRequest {
        CandleRequest::post(PAIRS, json!({}))
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Cexio, status, body)?;
        if let Some(message) = error_of(&v) {
            return Err(format!("cexio market listing: {message}"));
        }
        let list = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or("cexio market listing without a 'data' list")?;
        list.iter()
            .map(|p| {
                let base = text(p, "base")?.to_ascii_uppercase();
                let quote = text(p, "quote")?.to_ascii_uppercase();
                Ok(Instrument {
                    market: format!("{base}-{quote}"),
                    base,
                    quote,
                })
            })
            .collect()
    }
}

/// The message of an error body: `{"error": "..."}`, with or without
/// `"ok": "error"`.
fn error_of(v: &Value) -> Option<&str> {
    let e = v.get("error")?;
    Some(e.as_str().unwrap_or("(no message)"))
        .filter(|_| v.get("ok").and_then(Value::as_str) != Some("ok"))
}

fn error(market: &str, status: u16, message: &str, retry_after: Option<&str>) -> FetchFailure {
    let lower = message.to_ascii_lowercase();
    if status == 429 || lower.contains("rate limit") {
        return common::rate_limited(message, retry_after);
    }
    if lower.contains("pair") && (lower.contains("unknown") || lower.contains("unsupported")) {
        return common::unknown_market(ExchangeApi::Cexio, market, message);
    }
    match common::common_status(status, retry_after) {
        Some(f) => FetchFailure {
            reason: format!("{} {message}", f.reason),
            ..f
        },
        None => FetchFailure::permanent(format!("cexio refused the request: {message}")),
    }
}

/// One candle object; `resolution`, when sent, must be `1d`.
fn candle(c: &Value) -> Result<Candle, String> {
    let get = |name: &str| {
        c.get(name)
            .ok_or_else(|| format!("a candle has no '{name}': {c}"))
    };
    if let Some(r) = c.get("resolution").and_then(Value::as_str) {
        if r != "1d" {
            return Err(format!("a candle of resolution {r:?}, not 1d"));
        }
    }
    Ok(Candle {
        open_ms: integer(get("timestamp")?, "timestamp")?,
        open: number(get("open")?, "open")?,
        high: number(get("high")?, "high")?,
        low: number(get("low")?, "low")?,
        close: number(get("close")?, "close")?,
        volume: number(get("volume")?, "volume")?,
        still_open: c.get("isClosed").and_then(Value::as_bool) == Some(false),
    })
}

#[cfg(test)]
mod tests {
    use super::super::choose_market;
    use super::super::common::testing::{d, ohlcv, price, range};
    use super::super::Method;
    use super::*;
    use crate::model::Symbol;
    use crate::source::Throttle;

    fn answer(status: u16, body: &str) -> PageResult {
        Cexio.parse_candles(
            "BTC-USD",
            range("2020-03-01", "2020-03-03"),
            status,
            None,
            body.as_bytes(),
            OhlcOrder::Flag,
        )
    }

    #[test]
    fn the_request_is_a_post_of_best_bid_daily_candles_from_the_first_day() {
        let call = Cexio.candles_call("BTC-USD", range("2020-03-01", "2020-03-03"));
        assert_eq!(call.method, Method::Post);
        assert_eq!(call.path, "api/spot/rest-public/get_candles");
        assert_eq!(
            call.body,
            Some(
                json!({"pair": "BTC-USD", "resolution": "1d", "dataType": "bestBid",
                "fromISO": "2020-03-01T00:00:00.000Z", "limit": 3})
            )
        );
        assert_eq!(Cexio.instruments_call().method, Method::Post);
    }

    #[test]
    fn a_daily_page_is_read_exactly_and_flagged_quotes() {
        let body = include_str!("../../../tests/fixtures/cexio/full_page.json");
        let got = answer(200, body).unwrap();
        assert_eq!(
            price(&got[0]),
            ohlcv(8523.2, 8590.8, 8401.1, 8530.9, 0.0),
            "volume as sent"
        );
        match &got[0].answer {
            Answer::Price { flags, .. } => assert_eq!(flags.names(), ["quotes"]),
            other => panic!("{other:?}"),
        }
        assert_eq!(got[1].answer, Answer::NoPrice);
        assert_eq!(price(&got[2]).close, 8760.0);
        assert!(got.iter().all(|a| !a.open));
    }

    #[test]
    fn a_candle_not_closed_is_the_open_day() {
        let body = include_str!("../../../tests/fixtures/cexio/open_day.json");
        let got = Cexio
            .parse_candles(
                "BTC-USD",
                range("2026-11-30", "2026-12-01"),
                200,
                None,
                body.as_bytes(),
                OhlcOrder::Flag,
            )
            .unwrap();
        assert_eq!(
            got.iter().map(|a| a.open).collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!(price(&got[1]).close, 92100.0);
    }

    #[test]
    fn the_legacy_apis_answer_is_not_misread_as_prices() {
        let body = include_str!(
            "../../../tests/fixtures/cexio/ccxt_legacy_ohlcv_hd_20240312_BTC_USDT.json"
        );
        let e = answer(200, body).unwrap_err();
        assert!(e.retryable && e.reason.contains("\"ok\""), "{e:?}");
    }

    #[test]
    fn failures_are_classified() {
        let e = answer(
            200,
            include_str!("../../../tests/fixtures/cexio/unknown_market.json"),
        )
        .unwrap_err();
        assert!(!e.retryable);
        assert!(
            e.reason.starts_with("unknown market \"BTC-USD\" on cexio"),
            "{e:?}"
        );
        let e = answer(
            429,
            include_str!("../../../tests/fixtures/cexio/throttled.json"),
        )
        .unwrap_err();
        assert_eq!(e.throttle, Some(Throttle::RateLimited));
        assert!(e.reason.contains("API rate limit reached"), "{e:?}");
        let e = answer(200, r#"{"ok":"error","error":"Invalid resolution"}"#).unwrap_err();
        assert!(
            !e.retryable && e.reason.contains("Invalid resolution"),
            "{e:?}"
        );
        let e = answer(503, "").unwrap_err();
        assert!(e.retryable && e.reason == "server error (503)", "{e:?}");
    }

    #[test]
    fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
        for (body, needle) in [
            ("<html>", "malformed JSON"),
            (r#"{"ok":"ok"}"#, "'data'"),
            (
                r#"{"ok":"ok","data":[{"timestamp":"1583020800000","open":"1","high":"2","low":"0.5","volume":"0"}]}"#,
                "'close'",
            ),
            (
                r#"{"ok":"ok","data":[{"timestamp":"1583020800000","open":"1","high":"2","low":"0.5","close":"1","volume":"0","resolution":"1h"}]}"#,
                "resolution",
            ),
        ] {
            let e = answer(200, body).unwrap_err();
            assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
        }
    }

    #[test]
    fn the_listing_names_pairs_base_dash_quote() {
        let body = include_str!("../../../tests/fixtures/cexio/pairs_info.json");
        let list = Cexio.parse_instruments(200, body.as_bytes()).unwrap();
        let pick = |s: &str| {
            choose_market(&Cexio, &Symbol::new(s).unwrap(), &list).map(|i| i.market.clone())
        };
        assert_eq!(pick("btc").as_deref(), Some("BTC-USD"));
        assert_eq!(pick("eth").as_deref(), Some("ETH-USDT"));
        assert_eq!(pick("ltc"), None);
        assert!(Cexio.check_market("BTC-USD").is_ok());
        assert!(Cexio.check_market("BTCUSD").is_err());
        assert_eq!(Cexio.earliest_day(d("2020-01-01")), None);
    }
}
