//! Coinbase Exchange's product candles (`GET /products/{id}/candles`), as
//! the wire contract fixes it.
//!
//! Coinbase's quirks:
//! - A candle is `[time, low, high, open, close, volume]`: low and high
//!   come *before* open and close, unlike every other exchange here. Time
//!   in whole seconds; all six are JSON numbers (read exactly, strings
//!   accepted too).
//! - Candles come NEWEST first.
//! - A day without trades has no candle at all ("no data is published for
//!   intervals where there are no ticks"): it is "no price".
//! - `start` and `end` are ISO 8601 times, both inclusive (a real answer
//!   to `start=00:00&end=00:01&granularity=60` holds both minutes; Coinbase's
//!   docs warn that an answer may also hold candles before `start`: they
//!   are ignored like any day off the page). More than 300 points in the
//!   range is refused with a 400 ("granularity too small ... exceeds
//!   300"), so a page of N ≤ 300 days asks `end = start + (N − 1) days`;
//!   `start` must be before `end` ("start must be before end"), so a
//!   one-day page asks `end = start + 1 s`, which still holds one candle.
//! - A request without a `User-Agent` is refused: 400 "User-Agent header
//!   is required." (`PriceClient` always sends one).
//! - Nothing marks a candle as still open: today's is provisional by the
//!   clock.
//! - Errors are `{"message": ...}`: an unknown product is 404 "NotFound";
//!   throttling is 429 "Slow down" (public limit about 10 requests/s).
//! - Product ids are `BASE-QUOTE` in upper case; only `online` products are
//!   listed.

use serde_json::Value;

use super::common::{self, field, integer, seconds_to_ms, shape, ListingFields};
use super::{day_answers, number, Candle, CandleApi, Instrument, MarketForm, PageResult, Profile};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi};
use crate::source::FetchFailure;

/// Coinbase Exchange's public REST API.
pub struct Coinbase;

/// Coinbase's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Coinbase,
    default_url: "https://api.exchange.coinbase.com/",
    page_days: 300,
    // Half the public limit of 10/s: candles are "not to be polled
    // frequently".
    requests_per_second: 5.0,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        dashed: true,
        described: "BASE-QUOTE in upper case (\"BTC-USD\")",
    },
};

impl CandleApi for Coinbase {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn candles_request(&self, market: &str, days: DayRange) -> String {
        // Both bounds are inclusive, and start must be before end.
        let end = if days.to > days.from {
            format!("{}T00:00:00Z", days.to)
        } else {
            format!("{}T00:00:01Z", days.from)
        };
        format!(
            "products/{market}/candles?granularity=86400&start={}T00:00:00Z&end={end}",
            days.from
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
                    ExchangeApi::Coinbase,
                    market,
                    &message(body),
                ))
            }
            400 => {
                return Err(FetchFailure::permanent(format!(
                    "coinbase refused the request (400): {}",
                    message(body)
                )))
            }
            _ => return Err(common::unexpected_status(status, body)),
        }
        let v = common::json(body)?;
        let rows = v
            .as_array()
            .ok_or_else(|| shape("candles are not a list"))?;
        let candles = common::candles_of(rows, candle)?;
        day_answers(days, &candles, ohlc_order)
    }

    fn instruments_request(&self) -> String {
        "products".to_owned()
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Coinbase, status, body)?;
        let products = v.as_array().ok_or("coinbase products are not a list")?;
        ListingFields {
            trading: ("status", &["online"]),
            market: "id",
            base: "base_currency",
            quote: "quote_currency",
        }
        .read(products)
    }
}

/// Coinbase's `{"message": ...}`, or the body's start.
fn message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| common::excerpt(body))
}

/// One candle: `[time, low, high, open, close, volume]`.
fn candle(row: &Value) -> Result<Candle, String> {
    let row = row
        .as_array()
        .ok_or_else(|| format!("a candle is not a list: {row}"))?;
    if row.len() < 6 {
        return Err(format!("a candle has {} fields, not 6", row.len()));
    }
    let t = integer(field(row, 0, "time")?, "time")?;
    Ok(Candle {
        open_ms: seconds_to_ms(t, "time")?,
        low: number(field(row, 1, "low")?, "low")?,
        high: number(field(row, 2, "high")?, "high")?,
        open: number(field(row, 3, "open")?, "open")?,
        close: number(field(row, 4, "close")?, "close")?,
        volume: number(field(row, 5, "volume")?, "volume")?,
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
        Coinbase.parse_candles(
            "BTC-USD",
            range("2020-03-01", "2020-03-03"),
            status,
            None,
            body.as_bytes(),
            OhlcOrder::Flag,
        )
    }

    #[test]
    fn the_request_names_the_product_and_iso_bounds() {
        assert_eq!(
            Coinbase.candles_request("BTC-USD", range("2020-03-01", "2020-03-03")),
            "products/BTC-USD/candles?granularity=86400&start=2020-03-01T00:00:00Z&end=2020-03-03T00:00:00Z"
        );
    }

    #[test]
    fn a_one_day_page_is_a_valid_range_of_one_candle() {
        assert_eq!(
            Coinbase.candles_request("BTC-USD", range("2024-03-13", "2024-03-13")),
            "products/BTC-USD/candles?granularity=86400&start=2024-03-13T00:00:00Z&end=2024-03-13T00:00:01Z"
        );
    }

    /// Coinbase counts the points of an inclusive range: a recorded real
    /// answer to `start=00:00:00&end=00:01:00&granularity=60` holds both
    /// minutes, so a page of N days (start + (N − 1) days) asks N points.
    #[test]
    fn bounds_are_inclusive_as_a_recorded_answer_shows() {
        let body = include_str!(
            "../../../tests/fixtures/coinbase/ccxt_pr5891_candles_60_BTC-USD_start_end_inclusive.json"
        );
        let rows: Vec<Vec<f64>> = serde_json::from_str(body).unwrap();
        let (start, end) = (1_546_300_800_i64, 1_546_300_860_i64);
        let points = (end - start) / 60 + 1;
        assert_eq!(rows.len() as i64, points);
        let times: Vec<i64> = rows.iter().map(|r| r[0] as i64).collect();
        assert_eq!(times, [end, start], "newest first, both bounds in");
        let page = range("2019-08-21", "2020-06-15");
        assert_eq!(page.days().count(), 300);
        assert!(Coinbase
            .candles_request("BTC-USD", page)
            .ends_with("start=2019-08-21T00:00:00Z&end=2020-06-15T00:00:00Z"));
    }

    #[test]
    fn a_candle_not_at_utc_midnight_is_rejected_and_strings_are_read_too() {
        let got = answer(200, r#"[[1583042400,"1","2","0.5","1.5","10"]]"#).unwrap();
        assert!(
            matches!(&got[0].answer, Answer::Rejected { reason, .. } if reason.contains("06:00")),
            "{got:?}"
        );
    }

    #[test]
    fn failures_are_classified() {
        let e = answer(400, r#"{"message":"granularity too small"}"#).unwrap_err();
        assert!(!e.retryable && e.reason.contains("granularity too small"));
        let e = answer(500, "").unwrap_err();
        assert!(e.retryable && e.reason == "server error (500)");
    }

    #[test]
    fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
        for (body, needle) in [
            ("", "malformed JSON"),
            (r#"{"candles":[]}"#, "not a list"),
            ("[[1583020800,1,2,3,4]]", "5 fields"),
            ("[[1583020800.5,1,2,3,4,5]]", "'time'"),
            (r#"[[1583020800,1,2,3,"four",5]]"#, "'close'"),
        ] {
            let e = answer(200, body).unwrap_err();
            assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
        }
    }

    #[test]
    fn the_market_form_is_base_dash_quote_in_upper_case() {
        assert!(Coinbase.check_market("BTC-USD").is_ok());
        assert!(Coinbase.check_market("btc-usd").is_err());
        assert!(Coinbase.check_market("BTCUSD").is_err());
        assert!(Coinbase.check_market("BTC-USD-X").is_err());
    }

    /// The recorded answers in `tests/fixtures/coinbase/` and what each gives
    /// (read by `exchanges::fixtures`).
    pub fn fixtures() -> Vec<Fixture> {
        vec![
        page(recorded!("coinbase/full_page.json"), "BTC-USD", "2020-03-01..2020-03-03").gives(vec![priced(8523.75, 8598.15, 8400.0, 8531.24, 9872.5), priced(8531.2, 8965.0, 8495.4, 8915.98, 24212.12345678), priced(8911.45, 8918.99, 8651.01, 8760.32, 14532.93164785)]),
        page(recorded!("coinbase/missing_day.json"), "BTC-USD", "2020-03-01..2020-03-03").gives(vec![priced(8523.75, 8598.15, 8400.0, 8531.24, 9872.5), none(), priced(8911.45, 8918.99, 8651.01, 8760.32, 14532.93164785)]),
        page(recorded!("coinbase/empty_page.json"), "BTC-USD", "2020-03-01..2020-03-03").gives(vec![none(), none(), none()]),
        page(recorded!("coinbase/open_day.json"), "BTC-USD", "2026-11-30..2026-12-01").gives(vec![priced(91877.0, 92500.0, 91000.0, 92010.1, 1100.0), priced(92010.1, 92300.0, 91900.0, 92100.0, 120.5)]),
        page(recorded!("coinbase/unknown_market.json"), "BTC-USD", "2020-03-01..2020-03-03").status(404, None).fails(permanent("unknown market \"BTC-USD\" on coinbase: NotFound")),
        page(recorded!("coinbase/throttled.json"), "BTC-USD", "2020-03-01..2020-03-03").status(429, None).fails(retryable("rate limited (429)").throttled(Throttle::RateLimited, None)),
        page(recorded!("coinbase/error_400_granularity_too_small_reconstructed.json"), "BTC-USD", "2020-03-01..2020-03-03").status(400, None).fails(permanent("coinbase refused the request (400): granularity too small for the requested time range. Count of aggregations requested exceeds 300")),
        page(recorded!("coinbase/ccxt_issue848_error_400_user_agent_required.json"), "BTC-USD", "2020-03-01..2020-03-03").status(400, None).fails(permanent("coinbase refused the request (400): User-Agent header is required.")),
        read_by(recorded!("coinbase/ccxt_pr5891_candles_60_BTC-USD_start_end_inclusive.json"), "bounds_are_inclusive_as_a_recorded_answer_shows"),
        listing(recorded!("coinbase/products.json")).picks(&[("btc", Some("BTC-USD")), ("eth", Some("ETH-USDT")), ("sol", Some("SOL-USDC")), ("ltc", None)]),
        ]
    }
}
