//! OKX's candlestick history (`GET /api/v5/market/history-candles`), as the
//! wire contract fixes it.
//!
//! OKX's quirks:
//! - `bar=1D` is a day in Hong Kong time (it opens at 16:00 UTC the day
//!   before); only `bar=1Dutc` is a UTC day. This adapter only ever sends
//!   `1Dutc`, and a `1D`-style answer is caught by the shared rule (every
//!   candle "not anchored at 00:00 UTC").
//! - The answer is `{"code": "0", "msg": "", "data": [...]}`, each candle
//!   `[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`, ALL strings, ts
//!   in milliseconds; `vol` (field 5) is in the base currency for spot.
//! - Candles come NEWEST first.
//! - The pagination names are backwards from their plain meaning: `after`
//!   asks for candles OLDER than it and `before` for NEWER than it, both
//!   exclusive. So a page `from ..= to` sends `after = MS(to) + 1 day` and
//!   `before = MS(from) - 1`; at most `limit` (100) candles.
//! - `confirm` is "0" while the candle is still open (today), "1" once
//!   closed: "0" flags the day still open.
//! - Failures come in `code`/`msg`, often with a 200: "51001" Instrument ID
//!   does not exist (unknown market), "50011" Too Many Requests (throttled;
//!   the contract's server sends it with a 429), other "50xxx" are OKX's
//!   own system errors (worth another attempt), anything else is the
//!   request's fault.
//! - Instrument ids are `BASE-QUOTE` in upper case; only `live` ones are
//!   listed.

use serde_json::Value;

use super::common::{self, field, integer, Envelope, ListingFields};
use super::{
    day_answers, day_start_ms, number, Candle, CandleApi, Instrument, MarketForm, PageResult,
    Profile,
};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi};
use crate::source::FetchFailure;

/// OKX's v5 REST API.
pub struct Okx;

const DAY_MS: i64 = 86_400_000;
const UNKNOWN_INSTRUMENT: &str = "51001";
const TOO_MANY_REQUESTS: &str = "50011";

/// Okx's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Okx,
    default_url: "https://www.okx.com/",
    page_days: 100,
    // history-candles allows 20 requests per 2 seconds.
    requests_per_second: 8.0,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        dashed: true,
        described: "BASE-QUOTE in upper case, a spot instrument (\"BTC-USDT\")",
    },
};

impl CandleApi for Okx {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn candles_request(&self, market: &str, days: DayRange) -> String {
        format!(
            "api/v5/market/history-candles?instId={market}&bar=1Dutc&after={}&before={}&limit=100",
            day_start_ms(days.to) + DAY_MS,
            day_start_ms(days.from) - 1
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
        // OKX's own code says more than the status: read it first when the
        // body has one (a 429 comes with code 50011).
        let envelope = Envelope {
            success: ("code", "0"),
            missing: "no 'code' string",
            rows: "data",
        };
        let (_, rows) = envelope.open(status, retry_after, body, |v| {
            v.get("code")
                .and_then(Value::as_str)
                .filter(|code| *code != "0")
                .map(|code| code_failure(market, code, v, retry_after))
        })?;
        let candles = common::candles_of(&rows, candle)?;
        day_answers(days, &candles, ohlc_order)
    }

    fn instruments_request(&self) -> String {
        "api/v5/public/instruments?instType=SPOT".to_owned()
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Okx, status, body)?;
        match v.get("code").and_then(Value::as_str) {
            Some("0") => {}
            code => return Err(format!("okx instruments answered code {code:?}: {v}")),
        }
        let data = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or("okx instruments without a 'data' list")?;
        ListingFields {
            trading: ("state", &["live"]),
            market: "instId",
            base: "baseCcy",
            quote: "quoteCcy",
        }
        .read(data)
    }
}

/// The failure an OKX error code means.
fn code_failure(market: &str, code: &str, v: &Value, retry_after: Option<&str>) -> FetchFailure {
    let msg = v.get("msg").and_then(Value::as_str).unwrap_or("");
    let detail = format!("{code} {msg}");
    match code {
        TOO_MANY_REQUESTS => common::rate_limited(&detail, retry_after),
        UNKNOWN_INSTRUMENT => common::unknown_market(ExchangeApi::Okx, market, &detail),
        c if c.starts_with("50") => FetchFailure::retryable(format!("okx system error: {detail}")),
        _ => FetchFailure::permanent(format!("okx refused the request: {detail}")),
    }
}

/// One candle: `[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`.
fn candle(row: &Value) -> Result<Candle, String> {
    let row = row
        .as_array()
        .ok_or_else(|| format!("a candle is not a list: {row}"))?;
    if row.len() < 9 {
        return Err(format!("a candle has {} fields, not 9", row.len()));
    }
    let still_open = match field(row, 8, "confirm")?.as_str() {
        Some("0") => true,
        Some("1") => false,
        _ => return Err(format!("field 'confirm' is not \"0\" or \"1\": {}", row[8])),
    };
    Ok(Candle {
        open_ms: integer(field(row, 0, "ts")?, "ts")?,
        open: number(field(row, 1, "open")?, "open")?,
        high: number(field(row, 2, "high")?, "high")?,
        low: number(field(row, 3, "low")?, "low")?,
        close: number(field(row, 4, "close")?, "close")?,
        volume: number(field(row, 5, "vol")?, "vol")?,
        still_open,
    })
}

#[cfg(test)]
pub(super) mod tests {

    use super::super::common::testing::range;
    use super::*;

    use crate::source::exchanges::fixtures::*;
    use crate::source::Throttle;

    fn answer(status: u16, body: &str) -> PageResult {
        Okx.parse_candles(
            "BTC-USDT",
            range("2020-03-01", "2020-03-03"),
            status,
            None,
            body.as_bytes(),
            OhlcOrder::Flag,
        )
    }

    #[test]
    fn the_request_asks_utc_days_between_exclusive_bounds() {
        let req = Okx.candles_request("BTC-USDT", range("2020-03-01", "2020-03-03"));
        assert_eq!(
            req,
            "api/v5/market/history-candles?instId=BTC-USDT&bar=1Dutc&after=1583280000000&before=1583020799999&limit=100"
        );
        assert!(!req.contains("bar=1D&"), "never Hong Kong days");
    }

    #[test]
    fn failures_are_classified() {
        assert_eq!(
            answer(429, "").unwrap_err().throttle,
            Some(Throttle::RateLimited)
        );
        let e = answer(503, "").unwrap_err();
        assert!(e.retryable && e.reason == "server error (503)");
        let e = answer(
            200,
            r#"{"code":"51000","msg":"Parameter bar error","data":[]}"#,
        )
        .unwrap_err();
        assert!(!e.retryable && e.reason.contains("Parameter bar error"));
    }

    #[test]
    fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
        for (body, needle) in [
            ("<html>", "malformed JSON"),
            (r#"{"data":[]}"#, "'code'"),
            (r#"{"code":"0"}"#, "'data'"),
            (
                r#"{"code":"0","data":[["1583020800000","1","2","0.5","1.5","3"]]}"#,
                "6 fields",
            ),
            (
                r#"{"code":"0","data":[["1583020800000","1","2","0.5","1.5","3","0","0","2"]]}"#,
                "'confirm'",
            ),
            (
                r#"{"code":"0","data":[["1583020800000","1","2","0.5","1.5","3","0","0",1]]}"#,
                "'confirm'",
            ),
        ] {
            let e = answer(200, body).unwrap_err();
            assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
        }
    }

    #[test]
    fn the_market_form_is_base_dash_quote_in_upper_case() {
        assert!(Okx.check_market("BTC-USDT").is_ok());
        assert!(Okx.check_market("BTC-USDT-SWAP").is_err());
        assert!(Okx.check_market("btc-usdt").is_err());
    }

    /// The recorded answers in `tests/fixtures/okx/` and what each gives
    /// (read by `exchanges::fixtures`).
    pub fn fixtures() -> Vec<Fixture> {
        vec![
            page(
                recorded!("okx/full_page.json"),
                "BTC-USDT",
                "2020-03-01..2020-03-03",
            )
            .gives(vec![
                priced(8522.9, 8594.6, 8401.3, 8531.5, 10432.05341),
                priced(8531.5, 8964.8, 8497.7, 8914.3, 28115.2),
                priced(8912.1, 8918.9, 8650.2, 8759.9, 15321.71122),
            ]),
            page(
                recorded!("okx/empty_page.json"),
                "BTC-USDT",
                "2020-03-01..2020-03-03",
            )
            .gives(vec![none(), none(), none()]),
            page(
                recorded!("okx/open_day.json"),
                "BTC-USDT",
                "2026-11-30..2026-12-01",
            )
            .gives(vec![
                priced(91877.0, 92500.0, 91000.0, 92010.1, 1100.0),
                priced(92010.1, 92300.0, 91900.0, 92100.0, 120.5).still_open(),
            ]),
            page(
                recorded!("okx/hong_kong_1d.json"),
                "BTC-USDT",
                "2020-03-01..2020-03-03",
            )
            .gives(vec![
                rejected(
                    "not anchored at 00:00 UTC: the candle opens at 16:00 UTC",
                    Some([8520.0, 8960.0, 8490.0, 8905.3, 27001.9]),
                ),
                rejected(
                    "not anchored at 00:00 UTC: the candle opens at 16:00 UTC",
                    Some([8905.3, 8920.0, 8640.1, 8770.2, 15011.3]),
                ),
                none(),
            ]),
            page(
                recorded!("okx/unknown_market.json"),
                "BTC-USDT",
                "2020-03-01..2020-03-03",
            )
            .fails(permanent(
                "unknown market \"BTC-USDT\" on okx: 51001 Instrument ID does not exist",
            )),
            page(
                recorded!("okx/throttled.json"),
                "BTC-USDT",
                "2020-03-01..2020-03-03",
            )
            .status(429, None)
            .fails(
                retryable("rate limited: 50011 Too Many Requests")
                    .throttled(Throttle::RateLimited, None),
            ),
            page(
                recorded!("okx/throttled.json"),
                "BTC-USDT",
                "2020-03-01..2020-03-03",
            )
            .fails(
                retryable("rate limited: 50011 Too Many Requests")
                    .throttled(Throttle::RateLimited, None),
            ),
            listing(recorded!("okx/instruments.json")).picks(&[
                ("btc", Some("BTC-USDT")),
                ("eth", Some("ETH-USD")),
                ("sol", Some("SOL-USDC")),
                ("ltc", None),
            ]),
        ]
    }
}
