//! Poloniex's candles (`GET /markets/{symbol}/candles`), as its v3 spot
//! docs, ccxt's code and ccxt's recorded answer show them. This file owns
//! Poloniex's request, its answers and its market list; the shared rules
//! (anchoring, "no price" days, numbers) are `exchanges/mod.rs`'s, and
//! nothing here does I/O.
//!
//! Poloniex's quirks:
//! - A candle is a list of 14 fields: `[low, high, open, close, amount,
//!   quantity, buyTakerAmount, buyTakerQuantity, tradeCount, ts,
//!   weightedAverage, interval, startTime, closeTime]`. Prices and volumes
//!   are strings, the counts and times numbers; `quantity` is the volume
//!   in the base currency (`amount` is the quote's).
//! - `ts` is NOT the candle's time (it is the time of the answer for the
//!   live candle, 0 in older answers): `startTime` is. `closeTime` is
//!   `startTime` + the interval − 1 ms; a candle whose `closeTime` is not
//!   one day − 1 ms after its start, or whose `interval` is not `DAY_1`,
//!   is rejected for its day ("not a daily candle").
//! - The open candle's `closeTime` is in the future: that is, its day is
//!   today, which the Supervisor's clock already treats as provisional;
//!   nothing else marks it.
//! - `startTime` and `endTime` in milliseconds; `endTime` is the last
//!   millisecond of the page's last day. At most `limit` = 500 candles
//!   (ccxt: "between 100 and 500"). Which candles a range wider than
//!   `limit` gets is UNCONFIRMED; pages are never wider. Oldest first.
//!   Whether a day without trades has a candle is UNCONFIRMED: a missing
//!   one is "no price" as for every exchange.
//! - Errors are `{"code": N, "message": ...}`: 24101 "Invalid symbol!"
//!   (HTTP 400) is an unknown market. The one recorded body had
//!   `"data":` with no value after it (not JSON), so error bodies are
//!   read leniently. Throttling is HTTP 429 (code 429 in Poloniex's
//!   table; its body is UNCONFIRMED).
//! - About 200 requests a second for market data (ccxt): 20/s by default.
//! - Markets are `BASE_QUOTE` in upper case (`BTC_USDT`); `GET /markets`
//!   lists them with `baseCurrencyName`, `quoteCurrencyName` and `state`
//!   (`NORMAL`, `PAUSE`, `POST_ONLY`); paused ones are left out.

use serde_json::Value;

use super::common::{self, field, integer, shape, ListingFields};
use super::{
    day_answers, day_start_ms, number, reject_not_daily, spans_one_day, Candle, CandleApi,
    Instrument, MarketForm, PageResult, Profile,
};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi};
use crate::source::FetchFailure;

/// Poloniex's v3 public REST API.
pub struct Poloniex;

const DAY_MS: i64 = 86_400_000;
const INVALID_SYMBOL: i64 = 24101;
const TOO_MANY_REQUESTS: i64 = 429;

/// Poloniex's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Poloniex,
    default_url: "https://api.poloniex.com/",
    page_days: 500,
    // A tenth of the 200/s ccxt allows: the number is not Poloniex's own.
    requests_per_second: 20.0,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        dashed: false,
        described: "BASE_QUOTE in upper case (\"BTC_USDT\")",
    },
};

impl CandleApi for Poloniex {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn check_market(&self, market: &str) -> Result<(), String> {
        let form = &PROFILE.market_form;
        match market.split_once('_') {
            Some((base, quote)) => crate::model::check_form(
                &format!("{base}-{quote}"),
                form.char_ok,
                true,
                form.described,
            )
            .map_err(|_| format!("market {market:?} is not of the form {}", form.described)),
            None => Err(format!(
                "market {market:?} is not of the form {}",
                form.described
            )),
        }
    }

    fn candles_request(&self, market: &str, days: DayRange) -> String {
        format!(
            "markets/{market}/candles?interval=DAY_1&startTime={}&endTime={}&limit={}",
            day_start_ms(days.from),
            day_start_ms(days.to) + DAY_MS - 1,
            PROFILE.page_days
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
        if status != 200 {
            if let Some((code, message)) = error_of(body) {
                let detail = format!("{code} {message}");
                match code {
                    INVALID_SYMBOL => {
                        return Err(common::unknown_market(
                            ExchangeApi::Poloniex,
                            market,
                            &detail,
                        ))
                    }
                    TOO_MANY_REQUESTS => return Err(common::rate_limited(&detail, retry_after)),
                    _ => {}
                }
            }
        }
        if let Some(failure) = common::common_status(status, retry_after) {
            return Err(failure);
        }
        if status != 200 {
            return Err(common::unexpected_status(status, body));
        }
        let v = common::json(body)?;
        if let Some((code, message)) = error_of(body) {
            let detail = format!("{code} {message}");
            return Err(match code {
                INVALID_SYMBOL => common::unknown_market(ExchangeApi::Poloniex, market, &detail),
                TOO_MANY_REQUESTS => common::rate_limited(&detail, retry_after),
                _ => FetchFailure::permanent(format!("poloniex refused the request: {detail}")),
            });
        }
        let rows = v
            .as_array()
            .ok_or_else(|| shape("the answer is not a list of candles"))?;
        let mut daily = Vec::new();
        let mut not_daily = Vec::new();
        for row in rows {
            let (c, is_daily) = candle(row).map_err(shape)?;
            if is_daily {
                daily.push(c);
            } else {
                not_daily.push(c);
            }
        }
        let mut answers = day_answers(days, &daily, ohlc_order)?;
        reject_not_daily(
            &mut answers,
            days,
            &not_daily,
            "its closeTime is not one day after its startTime",
        );
        Ok(answers)
    }

    fn instruments_request(&self) -> String {
        "markets".to_owned()
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Poloniex, status, body)?;
        let list = v.as_array().ok_or("poloniex markets are not a list")?;
        ListingFields {
            trading: ("state", &["NORMAL", "POST_ONLY"]),
            market: "symbol",
            base: "baseCurrencyName",
            quote: "quoteCurrencyName",
        }
        .read(list)
    }
}

/// Poloniex's `{"code": N, "message": ...}`, read leniently: as JSON, or,
/// when the body is not JSON (the recorded `"data":` with no value), the
/// same fields out of the text.
fn error_of(body: &[u8]) -> Option<(i64, String)> {
    #[derive(serde::Deserialize)]
    struct Error {
        code: i64,
        #[serde(default)]
        message: String,
    }
    if let Ok(e) = serde_json::from_slice::<Error>(body) {
        return Some((e.code, e.message));
    }
    let text = std::str::from_utf8(body).ok()?.trim();
    if !text.starts_with('{') {
        return None;
    }
    // The fields before the broken one are whole: cut at the first field
    // that does not parse and close the object.
    let mut cut = text.len();
    loop {
        let candidate = format!("{}}}", text[..cut].trim_end().trim_end_matches(','));
        if let Ok(e) = serde_json::from_str::<Error>(&candidate) {
            return Some((e.code, e.message));
        }
        cut = text[..cut].rfind(',')?;
    }
}

/// One candle and whether it is a daily one (`closeTime` = `startTime` +
/// one day − 1 ms, `interval` `DAY_1`).
fn candle(row: &Value) -> Result<(Candle, bool), String> {
    let row = row
        .as_array()
        .ok_or_else(|| format!("a candle is not a list: {row}"))?;
    if row.len() != 14 {
        return Err(format!("a candle has {} fields, not 14", row.len()));
    }
    let start = integer(field(row, 12, "startTime")?, "startTime")?;
    let close_time = integer(field(row, 13, "closeTime")?, "closeTime")?;
    let interval = field(row, 11, "interval")?.as_str();
    let c = Candle {
        open_ms: start,
        low: number(field(row, 0, "low")?, "low")?,
        high: number(field(row, 1, "high")?, "high")?,
        open: number(field(row, 2, "open")?, "open")?,
        close: number(field(row, 3, "close")?, "close")?,
        volume: number(field(row, 5, "quantity")?, "quantity")?,
        still_open: false,
    };
    let daily = spans_one_day(start, close_time) && interval == Some("DAY_1");
    Ok((c, daily))
}

#[cfg(test)]
pub(super) mod tests {

    use super::super::common::testing::{price, range};
    use super::*;

    use crate::source::exchanges::fixtures::*;
    use crate::source::{Answer, Throttle};

    fn answer(status: u16, body: &str) -> PageResult {
        Poloniex.parse_candles(
            "BTC_USDT",
            range("2020-03-01", "2020-03-03"),
            status,
            None,
            body.as_bytes(),
            OhlcOrder::Flag,
        )
    }

    #[test]
    fn the_request_asks_day_1_candles_up_to_the_last_days_end() {
        assert_eq!(
            Poloniex.candles_request("BTC_USDT", range("2020-03-01", "2020-03-03")),
            "markets/BTC_USDT/candles?interval=DAY_1&startTime=1583020800000&endTime=1583279999999&limit=500"
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
    fn a_candle_closing_other_than_a_day_later_is_not_a_daily_candle() {
        let row = |close: i64, interval: &str| {
            format!(
                r#"[["1","2","1.5","1.6","10","5","0","0",3,0,"1.5","{interval}",1583020800000,{close}]]"#
            )
        };
        let good = answer(200, &row(1583107199999, "DAY_1")).unwrap();
        assert_eq!(price(&good[0]).volume, 5.0, "quantity is the base volume");
        for body in [row(1583024399999, "DAY_1"), row(1583107199999, "HOUR_1")] {
            let got = answer(200, &body).unwrap();
            assert!(
                matches!(&got[0].answer, Answer::Rejected { reason, .. } if reason.starts_with("not a daily candle")),
                "{body}: {got:?}"
            );
        }
    }

    #[test]
    fn an_invalid_symbol_is_permanent_even_as_the_broken_body_recorded() {
        // The recorded body (in the fixtures' table) is broken JSON; the
        // well-formed one must read the same.
        let e = answer(400, r#"{"code":24101,"message":"Invalid symbol!"}"#).unwrap_err();
        assert!(!e.retryable);
        assert_eq!(
            e.reason,
            "unknown market \"BTC_USDT\" on poloniex: 24101 Invalid symbol!"
        );
        assert_eq!(
            answer(429, "").unwrap_err().throttle,
            Some(Throttle::RateLimited)
        );
        let e = answer(400, r#"{"code":24104,"message":"Invalid limit!"}"#).unwrap_err();
        assert!(!e.retryable && e.reason.contains("Invalid limit"), "{e:?}");
        assert!(answer(502, "").unwrap_err().retryable);
    }

    #[test]
    fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
        for (body, needle) in [
            ("<html>", "malformed JSON"),
            (r#"{"data":[]}"#, "not a list"),
            (r#"[["1","2","1.5","1.6"]]"#, "4 fields"),
            (
                r#"[["1","2","x","1.6","10","5","0","0",3,0,"1.5","DAY_1",1583020800000,1583107199999]]"#,
                "'open'",
            ),
        ] {
            let e = answer(200, body).unwrap_err();
            assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
        }
    }

    #[test]
    fn the_market_form_is_base_underscore_quote_in_upper_case() {
        assert!(Poloniex.check_market("BTC_USDT").is_ok());
        for bad in ["btc_usdt", "BTC-USDT", "BTCUSDT", "BTC_USDT_X", "_USDT"] {
            let e = Poloniex.check_market(bad).unwrap_err();
            assert!(e.contains("BASE_QUOTE"), "{bad}: {e}");
        }
    }

    /// The recorded answers in `tests/fixtures/poloniex/` and what each gives
    /// (read by `exchanges::fixtures`).
    pub fn fixtures() -> Vec<Fixture> {
        vec![
            page(
                recorded!("poloniex/ccxt_candles_HOUR_1_BTC_USDT.json"),
                "BTC_USDT",
                "2024-03-13..2024-03-13",
            )
            .gives(vec![rejected(
                "not a daily candle: its closeTime is not one day after its startTime",
                Some([73229.19, 73444.8, 73189.21, 73429.86, 13.769917]),
            )]),
            page(
                recorded!("poloniex/full_page.json"),
                "BTC_USDT",
                "2020-03-01..2020-03-03",
            )
            .gives(a_price_a_gap_a_price()),
            page(
                recorded!("poloniex/open_day.json"),
                "BTC_USDT",
                "2026-11-30..2026-12-01",
            )
            .gives(yesterday_and_today()),
            page(
                recorded!("poloniex/unknown_market.txt"),
                "BTC_USDT",
                "2020-03-01..2020-03-03",
            )
            .status(400, None)
            .fails(permanent(
                "unknown market \"BTC_USDT\" on poloniex: 24101 Invalid symbol!",
            )),
            page(
                recorded!("poloniex/throttled.json"),
                "BTC_USDT",
                "2020-03-01..2020-03-03",
            )
            .status(429, None)
            .fails(
                retryable("rate limited: 429 Too many requests")
                    .throttled(Throttle::RateLimited, None),
            ),
            listing(recorded!("poloniex/markets.json")).picks(&[
                ("btc", Some("BTC_USDT")),
                ("eth", Some("ETH_USDC")),
                ("ltc", None),
            ]),
        ]
    }
}
