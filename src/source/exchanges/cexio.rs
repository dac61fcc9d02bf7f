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

use super::common::{self, integer, text, Envelope};
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
        let envelope = Envelope {
            success: ("ok", "ok"),
            missing: "no \"ok\": \"ok\"",
            rows: "data",
        };
        let (_, rows) = envelope.open(status, retry_after, body, |v| {
            error_of(v).map(|message| error(market, status, message, retry_after))
        })?;
        let candles = common::candles_of(&rows, candle)?;
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
pub(super) mod tests {

    use super::super::common::testing::{d, range};
    use super::super::Method;
    use super::*;

    use crate::source::exchanges::fixtures::*;
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
    fn failures_are_classified() {
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
    fn the_market_form_is_base_dash_quote_and_the_reach_unbounded() {
        assert!(Cexio.check_market("BTC-USD").is_ok());
        assert!(Cexio.check_market("BTCUSD").is_err());
        assert_eq!(Cexio.earliest_day(d("2020-01-01")), None);
    }

    /// The recorded answers in `tests/fixtures/cexio/` and what each gives
    /// (read by `exchanges::fixtures`).
    pub fn fixtures() -> Vec<Fixture> {
        vec![
            page(
                recorded!("cexio/full_page.json"),
                "BTC-USD",
                "2020-03-01..2020-03-03",
            )
            .gives(vec![
                priced(8523.2, 8590.8, 8401.1, 8530.9, 0.0).flagged(&["quotes"]),
                none(),
                priced(8611.4, 8801.2, 8590.1, 8760.0, 0.0).flagged(&["quotes"]),
            ]),
            page(
                recorded!("cexio/open_day.json"),
                "BTC-USD",
                "2026-11-30..2026-12-01",
            )
            .gives(vec![
                priced(91000.0, 92500.0, 90500.0, 91800.0, 0.0).flagged(&["quotes"]),
                priced(91800.0, 92300.0, 91500.0, 92100.0, 0.0)
                    .flagged(&["quotes"])
                    .still_open(),
            ]),
            page(
                recorded!("cexio/ccxt_legacy_ohlcv_hd_20240312_BTC_USDT.json"),
                "BTC-USD",
                "2020-03-01..2020-03-03",
            )
            .fails(retryable(
                "answer not in the documented shape: no \"ok\": \"ok\"",
            )),
            page(
                recorded!("cexio/unknown_market.json"),
                "BTC-USD",
                "2020-03-01..2020-03-03",
            )
            .fails(permanent(
                "unknown market \"BTC-USD\" on cexio: Unsupported pair: BTC-USD",
            )),
            page(
                recorded!("cexio/throttled.json"),
                "BTC-USD",
                "2020-03-01..2020-03-03",
            )
            .status(429, None)
            .fails(
                retryable("rate limited: API rate limit reached")
                    .throttled(Throttle::RateLimited, None),
            ),
            listing(recorded!("cexio/pairs_info.json")).picks(&[
                ("btc", Some("BTC-USD")),
                ("eth", Some("ETH-USDT")),
                ("ltc", None),
            ]),
        ]
    }
}
