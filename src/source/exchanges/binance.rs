//! Binance's spot klines (`GET /api/v3/klines`), as the wire contract fixes
//! it, on the market-data-only host `data-api.binance.vision`.
//!
//! Binance's quirks:
//! - A kline is a 12-field list `[openTime, open, high, low, close, volume,
//!   closeTime, quoteVolume, trades, takerBase, takerQuote, ignore]`: times
//!   in milliseconds as numbers, prices and volumes as strings. Oldest
//!   first; `startTime` and `endTime` are both inclusive bounds on the open
//!   time; at most `limit` (1000) klines.
//! - Nothing marks a kline as still open (its closeTime is just in the
//!   future): today's candle is provisional by the clock, not by the answer.
//! - `closeTime` is the open time + the interval − 1 ms: a kline whose
//!   closeTime is not its open + 1 day − 1 ms (the docs' own example is a
//!   week, 2017-07-03 to 07-09 23:59:59.999) is rejected for its day
//!   ("not a daily candle"), never stored as that day's price.
//! - Errors are `{"code": <negative>, "msg": ...}`: unknown symbol is 400
//!   with code -1121 "Invalid symbol.".
//! - Throttling: 429 with `Retry-After` (seconds); a client that keeps
//!   asking after 429s is banned with 418 and a `Retry-After` (2 minutes up
//!   to 3 days, per Binance's docs): the exchange pauses for that long.
//! - 451 is Binance refusing the client's country and 403 its WAF: neither
//!   heals by asking again this round.
//! - Binance lists no USD markets (binance.com): a symbol maps to its USDT
//!   market, else USDC. Only markets with status `TRADING` are listed.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde_json::Value;

use super::common::{self, field, integer, shape, ListingFields};
use super::{
    day_answers, day_start_ms, number, reject_not_daily, spans_one_day, Candle, CandleApi,
    Instrument, MarketForm, PageResult, Profile,
};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi};
use crate::source::response::parse_retry_after;
use crate::source::{FetchFailure, Throttle};

/// Binance's spot REST API.
pub struct Binance;

/// Binance's "Invalid symbol." error code.
const INVALID_SYMBOL: i64 = -1121;

/// Binance's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Binance,
    default_url: "https://data-api.binance.vision/",
    page_days: 1000,
    // A klines call weighs 2 of 6000 a minute (50/s); well under it.
    requests_per_second: 10.0,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        dashed: false,
        described: "BASEQUOTE in upper case, no separator (\"BTCUSDT\")",
    },
};

impl CandleApi for Binance {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn candles_request(&self, market: &str, days: DayRange) -> String {
        format!(
            "api/v3/klines?symbol={market}&interval=1d&startTime={}&endTime={}&limit=1000",
            day_start_ms(days.from),
            day_start_ms(days.to)
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
        match status {
            200 => {}
            418 => {
                return Err(FetchFailure::throttled(
                    format!("banned (418): {}", error_text(body)),
                    Throttle::Banned,
                    retry_after.and_then(parse_retry_after),
                ))
            }
            403 | 451 => {
                return Err(FetchFailure::permanent(format!(
                    "blocked location or WAF ({status})"
                )))
            }
            400 => {
                let code = common::json(body)
                    .ok()
                    .and_then(|v| v.get("code").and_then(Value::as_i64));
                return Err(if code == Some(INVALID_SYMBOL) {
                    common::unknown_market(ExchangeApi::Binance, market, &error_text(body))
                } else {
                    FetchFailure::permanent(format!(
                        "binance refused the request (400): {}",
                        error_text(body)
                    ))
                });
            }
            _ => {
                if let Some(failure) = common::common_status(status, retry_after) {
                    return Err(failure);
                }
                return Err(common::unexpected_status(status, body));
            }
        }
        let (daily, not_daily) = match typed_candles(body) {
            Some(split) => split,
            None => value_candles(body)?,
        };
        let mut answers = day_answers(days, &daily, ohlc_order)?;
        reject_not_daily(
            &mut answers,
            days,
            &not_daily,
            "its closeTime is not one day after its openTime",
        );
        Ok(answers)
    }

    fn instruments_request(&self) -> String {
        "api/v3/exchangeInfo".to_owned()
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Binance, status, body)?;
        let symbols = v
            .get("symbols")
            .and_then(Value::as_array)
            .ok_or("binance exchangeInfo without a 'symbols' list")?;
        ListingFields {
            trading: ("status", &["TRADING"]),
            market: "symbol",
            base: "baseAsset",
            quote: "quoteAsset",
        }
        .read(symbols)
    }
}

/// Daily and other klines.
type Split = (Vec<Candle>, Vec<Candle>);

/// A kline exactly as the wire contract gives it: `openTime` and
/// `closeTime` as numbers, prices and volumes as strings, 12 fields.
#[derive(serde::Deserialize)]
struct Kline<'a>(
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    i64,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
    IgnoredAny,
);

/// The klines of a body in the documented shape, read straight into typed
/// rows (no tree of values: most answers are one kline); `None` for any
/// other shape, which `value_candles` reads field by field to say what is
/// wrong.
fn typed_candles(body: &[u8]) -> Option<Split> {
    let rows: Vec<Kline<'_>> = serde_json::from_slice(body).ok()?;
    let price = |s: &str| s.trim().parse::<f64>().ok();
    let mut split: Split = (Vec::with_capacity(rows.len()), Vec::new());
    for Kline(open_ms, open, high, low, close, volume, close_ms, ..) in rows {
        let c = Candle {
            open_ms,
            open: price(&open)?,
            high: price(&high)?,
            low: price(&low)?,
            close: price(&close)?,
            volume: price(&volume)?,
            still_open: false,
        };
        if spans_one_day(open_ms, close_ms) {
            split.0.push(c);
        } else {
            split.1.push(c);
        }
    }
    Some(split)
}

/// The klines of any body, each field checked: the reason names the
/// field and what it held.
fn value_candles(body: &[u8]) -> Result<Split, FetchFailure> {
    let v = common::json(body)?;
    let rows = v.as_array().ok_or_else(|| shape("klines are not a list"))?;
    let mut split: Split = (Vec::new(), Vec::new());
    for row in rows {
        let (c, is_daily) = candle(row).map_err(shape)?;
        if is_daily {
            split.0.push(c);
        } else {
            split.1.push(c);
        }
    }
    Ok(split)
}

/// Binance's `{"code", "msg"}` as "msg (code)", or the body's start.
fn error_text(body: &[u8]) -> String {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    match v.as_ref().map(|v| (v.get("code"), v.get("msg"))) {
        Some((Some(code), Some(Value::String(msg)))) => format!("{msg} ({code})"),
        _ => common::excerpt(body),
    }
}

/// One kline and whether it is a daily one (closeTime = openTime + one
/// day − 1 ms); the fields after closeTime do not matter.
fn candle(row: &Value) -> Result<(Candle, bool), String> {
    let row = row
        .as_array()
        .ok_or_else(|| format!("a kline is not a list: {row}"))?;
    if row.len() < 7 {
        return Err(format!("a kline has {} fields, not 12", row.len()));
    }
    let open_ms = integer(field(row, 0, "openTime")?, "openTime")?;
    let close_ms = integer(field(row, 6, "closeTime")?, "closeTime")?;
    let c = Candle {
        open_ms,
        open: number(field(row, 1, "open")?, "open")?,
        high: number(field(row, 2, "high")?, "high")?,
        low: number(field(row, 3, "low")?, "low")?,
        close: number(field(row, 4, "close")?, "close")?,
        volume: number(field(row, 5, "volume")?, "volume")?,
        still_open: false,
    };
    Ok((c, spans_one_day(open_ms, close_ms)))
}

#[cfg(test)]
pub(super) mod tests {
    use crate::source::exchanges::fixtures::*;
    use std::time::Duration;

    use super::super::common::testing::range;
    use super::*;

    use crate::source::Answer;

    fn answer(status: u16, retry_after: Option<&str>, body: &str) -> PageResult {
        Binance.parse_candles(
            "BTCUSDT",
            range("2020-03-01", "2020-03-03"),
            status,
            retry_after,
            body.as_bytes(),
            OhlcOrder::Flag,
        )
    }

    #[test]
    fn the_request_bounds_open_times_inclusively_in_milliseconds() {
        assert_eq!(
            Binance.candles_request("BTCUSDT", range("2020-03-01", "2020-03-03")),
            "api/v3/klines?symbol=BTCUSDT&interval=1d&startTime=1583020800000&endTime=1583193600000&limit=1000"
        );
    }

    #[test]
    fn a_kline_not_at_utc_midnight_is_rejected() {
        let body = r#"[[1583046000000,"1","2","0.5","1.5","10",1583132399999,"0",1,"0","0","0"]]"#;
        let got = answer(200, None, body).unwrap();
        assert!(
            matches!(&got[0].answer, Answer::Rejected { reason, .. } if reason.contains("07:00")),
            "{got:?}"
        );
    }

    /// Answers in the documented shape are read straight into typed rows;
    /// they give what reading each field of a tree of values gives.
    #[test]
    fn klines_in_the_documented_shape_read_typed_as_field_by_field() {
        for body in [
            include_str!("../../../tests/fixtures/binance/full_page.json"),
            include_str!("../../../tests/fixtures/binance/docs_weekly_kline.json"),
            include_str!("../../../tests/fixtures/binance/empty_page.json"),
        ] {
            let typed = typed_candles(body.as_bytes()).expect("the documented shape");
            assert_eq!(typed, value_candles(body.as_bytes()).unwrap(), "{body}");
        }
        // Not the documented shape: left to the field-by-field reading.
        assert!(typed_candles(br#"[[1583020800000,"1","2"]]"#).is_none());
    }

    #[test]
    fn failures_are_classified() {
        let e = answer(451, None, "").unwrap_err();
        assert!(!e.retryable && e.reason == "blocked location or WAF (451)");
        let e = answer(403, None, "<html>").unwrap_err();
        assert!(!e.retryable && e.reason.contains("(403)"));
        let e = answer(503, None, "").unwrap_err();
        assert!(e.retryable && e.reason == "server error (503)");
    }

    #[test]
    fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
        for (body, needle) in [
            ("[[1583020800000", "malformed JSON"),
            (r#"{"symbol":"BTCUSDT"}"#, "not a list"),
            (r#"[[1583020800000,"1","2"]]"#, "3 fields"),
            (
                r#"[["1583020800000x","1","2","0.5","1.5","10",0]]"#,
                "'openTime'",
            ),
            (
                r#"[[1583020800000,"1","2","0.5",null,"10",1583107199999]]"#,
                "'close'",
            ),
            (
                r#"[[1583020800000,"1","2","0.5","1.5","10","x"]]"#,
                "'closeTime'",
            ),
        ] {
            let e = answer(200, None, body).unwrap_err();
            assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
        }
    }

    #[test]
    fn the_listing_keeps_trading_markets_and_prefers_usd_then_usdt_then_usdc() {
        let body = include_str!("../../../tests/fixtures/binance/exchange_info.json");
        let list = Binance.parse_instruments(200, body.as_bytes()).unwrap();
        assert!(list.iter().all(|i| i.market != "ETHUSDT"), "not trading");
        assert!(Binance.parse_instruments(500, b"").is_err());
    }

    #[test]
    fn the_market_form_is_upper_case_without_separator() {
        assert!(Binance.check_market("BTCUSDT").is_ok());
        assert!(Binance.check_market("btcusdt").is_err());
        assert!(Binance.check_market("BTC-USDT").is_err());
    }

    /// The recorded answers in `tests/fixtures/binance/` and what each gives
    /// (read by `exchanges::fixtures`).
    pub fn fixtures() -> Vec<Fixture> {
        vec![
        page(recorded!("binance/full_page.json"), "BTCUSDT", "2020-03-01..2020-03-03").gives(vec![priced(8523.61, 8595.0, 8400.0, 8531.88, 40509.414679), priced(8531.88, 8965.0, 8498.0, 8915.24, 79154.326184), priced(8911.28, 8919.03, 8651.0, 8760.07, 64102.957122)]),
        page(recorded!("binance/empty_page.json"), "BTCUSDT", "2020-03-01..2020-03-03").gives(vec![none(), none(), none()]),
        page(recorded!("binance/open_day.json"), "BTCUSDT", "2026-11-30..2026-12-01").gives(vec![priced(91877.01, 92500.0, 91000.0, 92010.1, 11000.123), priced(92010.1, 92300.0, 91900.0, 92100.0, 1200.5)]),
        page(recorded!("binance/docs_weekly_kline.json"), "BNBBTC", "2017-07-03..2017-07-04").gives(vec![rejected("not a daily candle: its closeTime is not one day after its openTime", Some([0.0163479, 0.8, 0.015758, 0.015771, 148976.11427815])), none()]),
        page(recorded!("binance/unknown_market.json"), "BTCUSDT", "2020-03-01..2020-03-03").status(400, None).fails(permanent("unknown market \"BTCUSDT\" on binance: Invalid symbol. (-1121)")),
        page(recorded!("binance/throttled.json"), "BTCUSDT", "2020-03-01..2020-03-03").status(429, Some("12")).fails(retryable("rate limited (429)").throttled(Throttle::RateLimited, Some(Duration::from_secs(12)))),
        page(recorded!("binance/banned.json"), "BTCUSDT", "2020-03-01..2020-03-03").status(418, Some("120")).fails(retryable("banned (418): Way too much request weight used; IP banned until 1796086800000. Please use WebSocket Streams for live updates to avoid bans. (-1003)").throttled(Throttle::Banned, Some(Duration::from_secs(120)))),
        listing(recorded!("binance/exchange_info.json")).picks(&[("btc", Some("BTCUSDT")), ("eth", Some("ETHUSDC")), ("sol", Some("SOLUSD")), ("ltc", None)]),
        ]
    }
}
