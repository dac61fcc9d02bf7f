//! HitBTC's candles (`GET /api/3/public/candles/{symbol}`), as its API v3,
//! ccxt's code and ccxt's recorded answer show them. This file owns
//! HitBTC's request, its answers and its market list; the shared rules
//! (anchoring, "no price" days, numbers) are `exchanges/mod.rs`'s, and
//! nothing here does I/O.
//!
//! HitBTC's quirks:
//! - A candle is an object `{"timestamp": "2024-03-13T11:00:00.000Z",
//!   "open", "close", "min", "max", "volume", "volume_quote"}`: high and
//!   low are called `max` and `min`, every value is a string, the time an
//!   ISO 8601 one; `volume` is in the base currency.
//! - Without `sort=ASC` candles come NEWEST first: it is always sent.
//! - `period=D1`; `from` and `till` are ISO times. Whether they are
//!   inclusive is UNCONFIRMED, so `till` is the last millisecond of the
//!   page's last day (ccxt sends `until`, which looks like its own slip).
//!   At most `limit` = 1000 candles.
//! - Whether a day without trades has a candle is UNCONFIRMED: a missing
//!   one is "no price" as for every exchange. Nothing marks a candle as
//!   still open: today's is provisional by the clock.
//! - Errors are `{"error": {"code", "message", "description"}}`: code 2001
//!   "Symbol not found" (HTTP 400; the text is API v2's, v3's is
//!   UNCONFIRMED) is an unknown market; 429 is throttling.
//! - About 30 requests a second for market data (ccxt): 10/s by default.
//! - Symbols are BASEQUOTE in upper case (`BTCUSDT`); `GET
//!   /api/3/public/symbol` is an object keyed by symbol, each with `type`,
//!   `base_currency` and `quote_currency`; only `spot` ones are listed.

use chrono::DateTime;
use serde_json::Value;

use super::common::{self, shape, ListingFields};
use super::{day_answers, number, Candle, CandleApi, Instrument, MarketForm, PageResult, Profile};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi};
use crate::source::FetchFailure;

/// HitBTC's API v3.
pub struct Hitbtc;

const SYMBOL_NOT_FOUND: i64 = 2001;
const TOO_MANY_REQUESTS: i64 = 429;

/// HitBTC's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Hitbtc,
    default_url: "https://api.hitbtc.com/",
    page_days: 1000,
    // A third of the 30/s ccxt allows for market data.
    requests_per_second: 10.0,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        dashed: false,
        described: "BASEQUOTE in upper case, no separator (\"BTCUSDT\")",
    },
};

impl CandleApi for Hitbtc {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn candles_request(&self, market: &str, days: DayRange) -> String {
        format!(
            "api/3/public/candles/{market}?period=D1&from={}T00:00:00.000Z&till={}T23:59:59.999Z&sort=ASC&limit={}",
            days.from, days.to, PROFILE.page_days
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
            if let Some((code, message)) = error_of(v) {
                let detail = format!("{code} {message}");
                return Err(match code {
                    SYMBOL_NOT_FOUND => {
                        common::unknown_market(ExchangeApi::Hitbtc, market, &detail)
                    }
                    TOO_MANY_REQUESTS => common::rate_limited(&detail, retry_after),
                    _ => match common::common_status(status, retry_after) {
                        Some(f) => FetchFailure {
                            reason: format!("{} {detail}", f.reason),
                            ..f
                        },
                        None => {
                            FetchFailure::permanent(format!("hitbtc refused the request: {detail}"))
                        }
                    },
                });
            }
        }
        if let Some(failure) = common::common_status(status, retry_after) {
            return Err(failure);
        }
        if status != 200 {
            return Err(common::unexpected_status(status, body));
        }
        let v = v?;
        let rows = v
            .as_array()
            .ok_or_else(|| shape("the answer is not a list of candles"))?;
        let candles = common::candles_of(rows, candle)?;
        day_answers(days, &candles, ohlc_order)
    }

    fn instruments_request(&self) -> String {
        "api/3/public/symbol".to_owned()
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Hitbtc, status, body)?;
        let symbols = v
            .as_object()
            .ok_or("hitbtc symbols are not an object keyed by symbol")?;
        ListingFields {
            trading: ("type", &["spot"]),
            market: "",
            base: "base_currency",
            quote: "quote_currency",
        }
        .read_keyed(symbols)
    }
}

/// `{"error": {"code": N, "message": ...}}`, if the body is one.
fn error_of(v: &Value) -> Option<(i64, &str)> {
    let e = v.get("error")?;
    let code = e.get("code").and_then(Value::as_i64)?;
    Some((code, e.get("message").and_then(Value::as_str).unwrap_or("")))
}

/// One candle object.
fn candle(c: &Value) -> Result<Candle, String> {
    let get = |name: &str| {
        c.get(name)
            .ok_or_else(|| format!("a candle has no '{name}': {c}"))
    };
    let t = get("timestamp")?;
    let open_ms = t
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("field 'timestamp' is not an ISO 8601 time: {t}"))?;
    Ok(Candle {
        open_ms,
        open: number(get("open")?, "open")?,
        high: number(get("max")?, "max")?,
        low: number(get("min")?, "min")?,
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
        Hitbtc.parse_candles(
            "BTCUSDT",
            range("2020-03-01", "2020-03-03"),
            status,
            None,
            body.as_bytes(),
            OhlcOrder::Flag,
        )
    }

    #[test]
    fn the_request_asks_d1_oldest_first_up_to_the_last_days_end() {
        assert_eq!(
            Hitbtc.candles_request("BTCUSDT", range("2020-03-01", "2020-03-03")),
            "api/3/public/candles/BTCUSDT?period=D1&from=2020-03-01T00:00:00.000Z&till=2020-03-03T23:59:59.999Z&sort=ASC&limit=1000"
        );
    }

    #[test]
    fn an_empty_list_is_no_price() {
        assert!(answer(200, "[]")
            .unwrap()
            .iter()
            .all(|a| a.answer == Answer::NoPrice));
    }

    #[test]
    fn failures_are_classified() {
        assert_eq!(
            answer(429, "").unwrap_err().throttle,
            Some(Throttle::RateLimited)
        );
        let e = answer(
            400,
            r#"{"error":{"code":10001,"message":"Validation error"}}"#,
        )
        .unwrap_err();
        assert!(
            !e.retryable && e.reason.contains("Validation error"),
            "{e:?}"
        );
        let e = answer(
            503,
            r#"{"error":{"code":503,"message":"Service Unavailable"}}"#,
        )
        .unwrap_err();
        assert!(
            e.retryable && e.reason.contains("server error (503)"),
            "{e:?}"
        );
    }

    #[test]
    fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
        for (body, needle) in [
            ("<html>", "malformed JSON"),
            (r#"{"data":[]}"#, "not a list"),
            (
                r#"[{"timestamp":"2020-03-01T00:00:00.000Z","open":"1","close":"1.5","min":"0.5","volume":"3"}]"#,
                "'max'",
            ),
            (
                r#"[{"timestamp":"1583020800000","open":"1","close":"1.5","min":"0.5","max":"2","volume":"3"}]"#,
                "'timestamp'",
            ),
        ] {
            let e = answer(200, body).unwrap_err();
            assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
        }
    }

    #[test]
    fn the_market_form_is_upper_case_without_separator() {
        assert!(Hitbtc.check_market("BTCUSDT").is_ok());
        assert!(Hitbtc.check_market("btcusdt").is_err());
        assert!(Hitbtc.check_market("BTC-USDT").is_err());
    }

    /// The recorded answers in `tests/fixtures/hitbtc/` and what each gives
    /// (read by `exchanges::fixtures`).
    pub fn fixtures() -> Vec<Fixture> {
        vec![
            page(
                recorded!("hitbtc/ccxt_candles_H1_BTCUSDT.json"),
                "BTCUSDT",
                "2024-03-13..2024-03-13",
            )
            .gives(vec![rejected(
                "not anchored at 00:00 UTC: the candle opens at 11:00 UTC",
                Some([73264.77, 73436.75, 73245.05, 73435.86, 2.9851]),
            )]),
            page(
                recorded!("hitbtc/full_page.json"),
                "BTCUSDT",
                "2020-03-01..2020-03-03",
            )
            .gives(a_price_a_gap_a_price()),
            page(
                recorded!("hitbtc/open_day.json"),
                "BTCUSDT",
                "2026-11-30..2026-12-01",
            )
            .gives(yesterday_and_today()),
            page(
                recorded!("hitbtc/unknown_market.json"),
                "BTCUSDT",
                "2020-03-01..2020-03-03",
            )
            .status(400, None)
            .fails(permanent(
                "unknown market \"BTCUSDT\" on hitbtc: 2001 Symbol not found",
            )),
            page(
                recorded!("hitbtc/throttled.json"),
                "BTCUSDT",
                "2020-03-01..2020-03-03",
            )
            .status(429, None)
            .fails(
                retryable("rate limited: 429 Too many requests")
                    .throttled(Throttle::RateLimited, None),
            ),
            listing(recorded!("hitbtc/symbols.json")).picks(&[
                ("btc", Some("BTCUSDT")),
                ("eth", Some("ETHUSDC")),
                ("ltc", None),
            ]),
        ]
    }
}
