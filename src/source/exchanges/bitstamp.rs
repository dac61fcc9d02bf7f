//! Bitstamp's OHLC data (`GET /api/v2/ohlc/{pair}/`), as the wire contract
//! fixes it.
//!
//! Bitstamp's quirks:
//! - The answer is `{"data": {"pair": "BTC/USD", "ohlc": [...]}}`, each
//!   candle an object `{"timestamp", "open", "high", "low", "close",
//!   "volume"}` whose values are ALL strings, the timestamp too (seconds).
//!   Oldest first.
//! - `start` and `end` (seconds) are both inclusive; at most `limit`
//!   (1000) candles, `step=86400` for days.
//! - Nothing marks a candle as still open (the real API has an
//!   `exclude_current_candle` option instead): today's is provisional by
//!   the clock.
//! - Errors are `{"status": "error", "reason": ..., "code": "API0005"}`:
//!   an unknown pair is a 404 ("Invalid currency pair"); the client treats
//!   ANY 404 on the ohlc route as an unknown market, since the route exists
//!   for every pair Bitstamp knows. Throttling is 429 with code API0001
//!   "Rate limit exceeded" (8000 requests per 10 minutes). The same error
//!   objects with a 200 are read the same way.
//! - Markets are lower case without separator (`btcusd`, the listing's
//!   `url_symbol`); the listing's `name` ("BTC/USD") gives base and quote.
//!   Only pairs with `trading: "Enabled"` are listed.

use serde_json::Value;

use super::common::{self, integer, seconds_to_ms, shape, text};
use super::{
    day_answers, day_start_ms, number, Candle, CandleApi, Instrument, MarketForm, PageResult,
    Profile,
};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi};
use crate::source::FetchFailure;

/// Bitstamp's v2 REST API.
pub struct Bitstamp;

/// Bitstamp's error codes for a throttled request and an unknown pair.
const RATE_LIMITED: &str = "API0001";
const INVALID_PAIR: &str = "API0005";

/// Bitstamp's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Bitstamp,
    default_url: "https://www.bitstamp.net/",
    page_days: 1000,
    // 8000 per 10 minutes is 13/s; keep under it.
    requests_per_second: 10.0,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        dashed: false,
        described: "basequote in lower case, no separator (\"btcusd\")",
    },
};

impl CandleApi for Bitstamp {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn candles_request(&self, market: &str, days: DayRange) -> String {
        format!(
            "api/v2/ohlc/{market}/?step=86400&limit=1000&start={}&end={}",
            day_start_ms(days.from) / 1000,
            day_start_ms(days.to) / 1000
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
        if let Some(failure) = common::common_status(status, retry_after) {
            return Err(failure);
        }
        match status {
            200 => {}
            404 => {
                return Err(common::unknown_market(
                    ExchangeApi::Bitstamp,
                    market,
                    &error_reason(body).unwrap_or_else(|| common::excerpt(body)),
                ))
            }
            _ => return Err(common::unexpected_status(status, body)),
        }
        let v = common::json(body)?;
        if v.get("status").and_then(Value::as_str) == Some("error") {
            let reason = error_reason(body).unwrap_or_default();
            return Err(match v.get("code").and_then(Value::as_str) {
                Some(RATE_LIMITED) => common::rate_limited(&reason, retry_after),
                Some(INVALID_PAIR) => {
                    common::unknown_market(ExchangeApi::Bitstamp, market, &reason)
                }
                _ => FetchFailure::permanent(format!("bitstamp refused the request: {reason}")),
            });
        }
        let rows = v
            .get("data")
            .and_then(|d| d.get("ohlc"))
            .and_then(Value::as_array)
            .ok_or_else(|| shape("no 'data.ohlc' list"))?;
        let candles = common::candles_of(rows, candle)?;
        day_answers(days, &candles, ohlc_order)
    }

    fn instruments_request(&self) -> String {
        "api/v2/trading-pairs-info/".to_owned()
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Bitstamp, status, body)?;
        let pairs = v
            .as_array()
            .ok_or("bitstamp trading pairs are not a list")?;
        let mut out = Vec::new();
        for p in pairs {
            if text(p, "trading")? != "Enabled" {
                continue;
            }
            let name = text(p, "name")?;
            let (base, quote) = name
                .split_once('/')
                .ok_or_else(|| format!("bitstamp pair name {name:?} is not BASE/QUOTE"))?;
            out.push(Instrument {
                market: text(p, "url_symbol")?.to_owned(),
                base: base.to_ascii_uppercase(),
                quote: quote.to_ascii_uppercase(),
            });
        }
        Ok(out)
    }
}

/// Bitstamp's error object as "reason (code)".
fn error_reason(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let reason = v.get("reason")?.as_str()?;
    Some(match v.get("code").and_then(Value::as_str) {
        Some(code) => format!("{reason} ({code})"),
        None => reason.to_owned(),
    })
}

/// One candle object; every value a string.
fn candle(c: &Value) -> Result<Candle, String> {
    let get = |name: &str| {
        c.get(name)
            .ok_or_else(|| format!("a candle has no '{name}': {c}"))
    };
    let t = integer(get("timestamp")?, "timestamp")?;
    Ok(Candle {
        open_ms: seconds_to_ms(t, "timestamp")?,
        open: number(get("open")?, "open")?,
        high: number(get("high")?, "high")?,
        low: number(get("low")?, "low")?,
        close: number(get("close")?, "close")?,
        volume: number(get("volume")?, "volume")?,
        still_open: false,
    })
}

#[cfg(test)]
pub(super) mod tests {

    use super::super::common::testing::range;
    use super::*;

    use crate::source::exchanges::fixtures::*;
    use crate::source::{Answer, Throttle};

    fn answer(status: u16, body: &str) -> PageResult {
        Bitstamp.parse_candles(
            "btcusd",
            range("2020-03-01", "2020-03-03"),
            status,
            None,
            body.as_bytes(),
            OhlcOrder::Flag,
        )
    }

    #[test]
    fn the_request_bounds_the_page_inclusively_in_seconds() {
        assert_eq!(
            Bitstamp.candles_request("btcusd", range("2020-03-01", "2020-03-03")),
            "api/v2/ohlc/btcusd/?step=86400&limit=1000&start=1583020800&end=1583193600"
        );
    }

    #[test]
    fn a_candle_not_at_utc_midnight_is_rejected() {
        let body = r#"{"data":{"pair":"BTC/USD","ohlc":[{"timestamp":"1583024400","open":"1","high":"2","low":"0.5","close":"1.5","volume":"3"}]}}"#;
        let got = answer(200, body).unwrap();
        assert!(
            matches!(&got[0].answer, Answer::Rejected { reason, .. } if reason.contains("01:00")),
            "{got:?}"
        );
    }

    #[test]
    fn failures_are_classified() {
        assert!(answer(404, "<html>")
            .unwrap_err()
            .reason
            .starts_with("unknown market"));
        let e = answer(504, "").unwrap_err();
        assert!(e.retryable && e.reason == "server error (504)");
    }

    #[test]
    fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
        for (body, needle) in [
            ("{", "malformed JSON"),
            (r#"{"data":{}}"#, "'data.ohlc'"),
            (
                r#"{"data":{"ohlc":[{"timestamp":"1583020800","open":"1"}]}}"#,
                "'high'",
            ),
            (
                r#"{"data":{"ohlc":[{"timestamp":"x","open":"1"}]}}"#,
                "'timestamp'",
            ),
        ] {
            let e = answer(200, body).unwrap_err();
            assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
        }
    }

    #[test]
    fn the_market_form_is_lower_case_without_separator() {
        assert!(Bitstamp.check_market("btcusd").is_ok());
        assert!(Bitstamp.check_market("BTCUSD").is_err());
        assert!(Bitstamp.check_market("btc/usd").is_err());
    }

    /// The recorded answers in `tests/fixtures/bitstamp/` and what each gives
    /// (read by `exchanges::fixtures`).
    pub fn fixtures() -> Vec<Fixture> {
        vec![
            page(
                recorded!("bitstamp/full_page.json"),
                "btcusd",
                "2020-03-01..2020-03-03",
            )
            .gives(vec![
                priced(8523.01, 8590.0, 8402.15, 8530.0, 2411.52386113),
                priced(8530.0, 8960.02, 8499.99, 8912.75, 5560.05),
                priced(8912.75, 8917.11, 8652.0, 8757.96, 4377.73881904),
            ]),
            page(
                recorded!("bitstamp/empty_page.json"),
                "btcusd",
                "2020-03-01..2020-03-03",
            )
            .gives(vec![none(), none(), none()]),
            page(
                recorded!("bitstamp/open_day.json"),
                "btcusd",
                "2026-11-30..2026-12-01",
            )
            .gives(yesterday_and_today()),
            page(
                recorded!("bitstamp/unknown_market.json"),
                "btcusd",
                "2020-03-01..2020-03-03",
            )
            .status(404, None)
            .fails(permanent(
                "unknown market \"btcusd\" on bitstamp: Invalid currency pair (API0005)",
            )),
            page(
                recorded!("bitstamp/throttled.json"),
                "btcusd",
                "2020-03-01..2020-03-03",
            )
            .status(429, None)
            .fails(retryable("rate limited (429)").throttled(Throttle::RateLimited, None)),
            page(
                recorded!("bitstamp/throttled.json"),
                "btcusd",
                "2020-03-01..2020-03-03",
            )
            .fails(
                retryable("rate limited: Rate limit exceeded (API0001)")
                    .throttled(Throttle::RateLimited, None),
            ),
            listing(recorded!("bitstamp/trading_pairs.json")).picks(&[
                ("btc", Some("btcusd")),
                ("eth", Some("ethusdc")),
                ("ltc", None),
            ]),
        ]
    }
}
