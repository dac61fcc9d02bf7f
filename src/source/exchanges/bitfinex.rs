//! Bitfinex's candles (`GET /v2/candles/trade:1D:tBTCUSD/hist`), as its
//! v2 public docs and ccxt's recorded answers show them. This file owns
//! Bitfinex's request, its answers and its market list; the shared rules
//! (anchoring, "no price" days, numbers) are `exchanges/mod.rs`'s, and
//! nothing here does I/O.
//!
//! Bitfinex's quirks:
//! - The candle key names the time frame and the market: `trade:1D:` then
//!   `t` + the pair. A pair is 3 + 3 letters (`BTCUSD`) or, when either
//!   code is longer, `BASE:QUOTE` (`AAVE:USD`). Bitfinex spells USDT
//!   `UST` (`tBTCUST`); the listing's `UST` is read as USDT so that a
//!   symbol maps to it when there is no USD market. The config names the
//!   pair as listed, without the `t`.
//! - A candle is `[MTS, OPEN, CLOSE, HIGH, LOW, VOLUME]`: close comes
//!   *before* high and low. JSON numbers (strings accepted too), MTS in
//!   milliseconds; volume in the base currency.
//! - `sort=1` lists oldest first (the default, `-1`, newest first);
//!   `start` is inclusive ("MTS >= start"). Whether `end` is inclusive is
//!   UNCONFIRMED (the docs page is cut off there), so `end` is the last
//!   millisecond of the page's last day: its candle is in either way.
//!   `start` is always a UTC midnight (an unaligned `start` once gave `[]`).
//! - At most `limit` = 10000 candles a request (ccxt and the docs.rs crate;
//!   2018 reports said 1000). A day without trades has no candle (seen as
//!   gaps by Bitfinex's own tools): it is "no price".
//! - Nothing marks a candle as still open: today's is provisional by the
//!   clock.
//! - Errors are `["error", CODE, "MESSAGE"]`, usually with an HTTP 500:
//!   `11010 "ratelimit: error"` (with a 429) is throttling, after which
//!   Bitfinex blocks the address for about 60 s (no `Retry-After` seen), so
//!   the exchange pauses 60 s unless told otherwise; `10020` is a bad
//!   parameter, "symbol: invalid" an unknown market. What the candles route
//!   answers for an unknown pair is UNCONFIRMED (perhaps an empty `[]`,
//!   which reads as "no price" for the page).
//! - The candles route allows 30 requests a minute (one docs version says
//!   90; Bitfinex's own tools keep to 30): 0.4/s by default, a margin
//!   under the limit as for Kraken (at exactly 0.5/s the exchanges bench
//!   met one 60 s block: the two clocks' jitter).
//! - Markets: `GET /v2/conf/pub:list:pair:exchange` is documented as the
//!   list of trading pairs, `[["BTCUSD", "AAVE:USD", ...]]`; that exact
//!   shape is UNCONFIRMED (not seen raw).

use std::time::Duration;

use serde_json::Value;

use super::common::{self, field, integer, shape};
use super::{
    day_answers, day_start_ms, number, Candle, CandleApi, Instrument, MarketForm, PageResult,
    Profile,
};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi};
use crate::source::FetchFailure;

/// Bitfinex's v2 public REST API.
pub struct Bitfinex;

const DAY_MS: i64 = 86_400_000;
/// Bitfinex's error codes: throttled, and a bad parameter (the symbol's
/// among them).
const RATE_LIMITED: i64 = 11010;
const INVALID_PARAMETER: i64 = 10020;
/// How long Bitfinex blocks an address that asked too often.
pub const BLOCK: Duration = Duration::from_secs(60);

/// Bitfinex's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Bitfinex,
    default_url: "https://api-pub.bitfinex.com/",
    page_days: 10_000,
    // 30 requests a minute on the candles route.
    requests_per_second: 0.4,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        dashed: false,
        described: "the pair as listed, in upper case without the 't': BASEQUOTE of 3 + 3 letters or BASE:QUOTE (\"BTCUSD\", \"AAVE:USD\")",
    },
};

impl CandleApi for Bitfinex {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn check_market(&self, market: &str) -> Result<(), String> {
        let ok = |p: &str| (3..=8).contains(&p.len()) && p.chars().all(PROFILE.market_form.char_ok);
        let good = match market.split_once(':') {
            Some((base, quote)) => ok(base) && ok(quote),
            None => market.len() == 6 && ok(market),
        };
        if good {
            Ok(())
        } else {
            Err(format!(
                "market {market:?} is not of the form {}",
                PROFILE.market_form.described
            ))
        }
    }

    fn candles_request(&self, market: &str, days: DayRange) -> String {
        format!(
            "v2/candles/trade:1D:t{market}/hist?sort=1&start={}&end={}&limit={}",
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
        // Bitfinex's own error says more than its status (a bad parameter
        // comes with a 500): read it first.
        let v = common::json(body);
        if let Ok(v) = &v {
            if let Some((code, message)) = error_of(v) {
                return Err(code_failure(market, status, code, message, retry_after));
            }
        }
        if let Some(failure) = common::common_status(status, retry_after) {
            return Err(with_block(failure));
        }
        if status != 200 {
            return Err(common::unexpected_status(status, body));
        }
        let rows = v?;
        let rows = rows
            .as_array()
            .ok_or_else(|| shape("the answer is not a list of candles"))?;
        let candles = common::candles_of(rows, candle)?;
        day_answers(days, &candles, ohlc_order)
    }

    fn instruments_request(&self) -> String {
        "v2/conf/pub:list:pair:exchange".to_owned()
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Bitfinex, status, body)?;
        let pairs = v.get(0).and_then(Value::as_array).ok_or_else(|| {
            format!(
                "bitfinex pairs are not a list in a list: {}",
                common::excerpt(body)
            )
        })?;
        let mut out = Vec::new();
        for p in pairs {
            let pair = p
                .as_str()
                .ok_or_else(|| format!("a bitfinex pair is not a string: {p}"))?;
            let Some((base, quote)) = split_pair(pair) else {
                log::debug!(
                    "bitfinex: pair {pair:?} is neither 3 + 3 letters nor BASE:QUOTE, skipped"
                );
                continue;
            };
            out.push(Instrument {
                market: pair.to_owned(),
                base: base.to_ascii_uppercase(),
                quote: common_quote(&quote.to_ascii_uppercase()).to_owned(),
            });
        }
        Ok(out)
    }
}

/// A pair's base and quote: split at `:`, else 3 + 3.
fn split_pair(pair: &str) -> Option<(&str, &str)> {
    match pair.split_once(':') {
        Some((b, q)) if !b.is_empty() && !q.is_empty() => Some((b, q)),
        Some(_) => None,
        None if pair.len() == 6 && pair.is_ascii() => Some(pair.split_at(3)),
        None => None,
    }
}

/// The usual name of a quote Bitfinex spells its own way.
fn common_quote(quote: &str) -> &str {
    match quote {
        "UST" => "USDT",
        q => q,
    }
}

/// `["error", CODE, "MESSAGE"]`, if the body is one.
fn error_of(v: &Value) -> Option<(i64, &str)> {
    let a = v.as_array()?;
    if a.first()?.as_str()? != "error" {
        return None;
    }
    let code = a.get(1).and_then(Value::as_i64).unwrap_or(0);
    let message = a.get(2).and_then(Value::as_str).unwrap_or("");
    Some((code, message))
}

/// A throttling failure without a `Retry-After` waits out Bitfinex's block.
fn with_block(mut failure: FetchFailure) -> FetchFailure {
    if failure.throttle.is_some() && failure.retry_after.is_none() {
        failure.retry_after = Some(BLOCK);
    }
    failure
}

/// The failure a Bitfinex error means.
fn code_failure(
    market: &str,
    status: u16,
    code: i64,
    message: &str,
    retry_after: Option<&str>,
) -> FetchFailure {
    let detail = format!("{code} {message}");
    match code {
        RATE_LIMITED => with_block(common::rate_limited(&detail, retry_after)),
        _ if status == 429 => with_block(common::rate_limited(&detail, retry_after)),
        INVALID_PARAMETER if message.starts_with("symbol") => {
            common::unknown_market(ExchangeApi::Bitfinex, market, &detail)
        }
        INVALID_PARAMETER => {
            FetchFailure::permanent(format!("bitfinex refused the request: {detail}"))
        }
        _ => FetchFailure::retryable(format!("bitfinex error ({status}): {detail}")),
    }
}

/// One candle: `[MTS, OPEN, CLOSE, HIGH, LOW, VOLUME]`.
fn candle(row: &Value) -> Result<Candle, String> {
    let row = row
        .as_array()
        .ok_or_else(|| format!("a candle is not a list: {row}"))?;
    if row.len() != 6 {
        return Err(format!("a candle has {} fields, not 6", row.len()));
    }
    Ok(Candle {
        open_ms: integer(field(row, 0, "MTS")?, "MTS")?,
        open: number(field(row, 1, "OPEN")?, "OPEN")?,
        close: number(field(row, 2, "CLOSE")?, "CLOSE")?,
        high: number(field(row, 3, "HIGH")?, "HIGH")?,
        low: number(field(row, 4, "LOW")?, "LOW")?,
        volume: number(field(row, 5, "VOLUME")?, "VOLUME")?,
        still_open: false,
    })
}

#[cfg(test)]
pub(super) mod tests {

    use super::super::common::testing::range;
    use super::*;

    use crate::source::exchanges::fixtures::*;
    use crate::source::Throttle;

    fn answer(status: u16, body: &str) -> PageResult {
        Bitfinex.parse_candles(
            "BTCUSD",
            range("2020-03-01", "2020-03-03"),
            status,
            None,
            body.as_bytes(),
            OhlcOrder::Flag,
        )
    }

    #[test]
    fn the_request_asks_day_aligned_start_oldest_first_up_to_the_last_days_end() {
        assert_eq!(
            Bitfinex.candles_request("BTCUSD", range("2020-03-01", "2020-03-03")),
            "v2/candles/trade:1D:tBTCUSD/hist?sort=1&start=1583020800000&end=1583279999999&limit=10000"
        );
        assert!(Bitfinex
            .candles_request("AAVE:UST", range("2020-03-01", "2020-03-01"))
            .starts_with("v2/candles/trade:1D:tAAVE:UST/hist?"));
    }

    #[test]
    fn throttling_waits_out_bitfinexs_block_and_an_unknown_symbol_is_permanent() {
        let e = Bitfinex
            .parse_candles(
                "BTCUSD",
                range("2020-03-01", "2020-03-03"),
                429,
                Some("5"),
                b"",
                OhlcOrder::Flag,
            )
            .unwrap_err();
        assert_eq!(
            e.retry_after,
            Some(Duration::from_secs(5)),
            "Retry-After wins"
        );
        assert_eq!(answer(429, "").unwrap_err().retry_after, Some(BLOCK));
        let e = answer(500, r#"["error",10020,"limit: invalid"]"#).unwrap_err();
        assert!(!e.retryable && e.reason.contains("limit: invalid"), "{e:?}");
        let e = answer(500, r#"["error",10000,"unknown error"]"#).unwrap_err();
        assert!(e.retryable && e.throttle.is_none(), "{e:?}");
        assert_eq!(answer(503, "").unwrap_err().reason, "server error (503)");
    }

    #[test]
    fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
        for (body, needle) in [
            ("<html>", "malformed JSON"),
            (r#"{"data":[]}"#, "not a list"),
            (r#"[[1583020800000,1,2,3,0.5]]"#, "5 fields"),
            (r#"[[1583020800000,1,2,3,"x",4]]"#, "'LOW'"),
            (r#"[["now",1,2,3,0.5,4]]"#, "'MTS'"),
        ] {
            let e = answer(200, body).unwrap_err();
            assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
        }
    }

    #[test]
    fn the_listing_splits_pairs_and_reads_ust_as_usdt() {
        let body = include_str!("../../../tests/fixtures/bitfinex/pairs.json");
        let list = Bitfinex.parse_instruments(200, body.as_bytes()).unwrap();
        assert!(list.contains(&Instrument {
            market: "AAVE:UST".into(),
            base: "AAVE".into(),
            quote: "USDT".into()
        }));
        assert!(Bitfinex.parse_instruments(200, b"[]").is_err());
    }

    #[test]
    fn the_market_form_is_the_listed_pair_without_the_t() {
        for good in ["BTCUSD", "BTCUST", "AAVE:USD", "TESTBTC:TESTUSD"] {
            assert!(Bitfinex.check_market(good).is_ok(), "{good}");
        }
        for bad in [
            "tBTCUSD",
            "btcusd",
            "BTC-USD",
            "BTCUSDT",
            "BTC:",
            "BTC:USD:X",
        ] {
            let e = Bitfinex.check_market(bad).unwrap_err();
            assert!(e.contains("AAVE:USD"), "{bad}: {e}");
        }
    }

    /// The recorded answers in `tests/fixtures/bitfinex/` and what each gives
    /// (read by `exchanges::fixtures`).
    pub fn fixtures() -> Vec<Fixture> {
        vec![
            page(
                recorded!("bitfinex/ccxt_candles_1h_tBTCUST.json"),
                "BTCUST",
                "2019-03-11..2019-03-11",
            )
            .gives(vec![rejected(
                "not anchored at 00:00 UTC: the candle opens at 10:00 UTC",
                Some([3870.1, 3890.0, 3870.1, 3890.0, 0.05]),
            )]),
            page(
                recorded!("bitfinex/full_page.json"),
                "BTCUSD",
                "2020-03-01..2020-03-03",
            )
            .gives(a_price_a_gap_a_price()),
            page(
                recorded!("bitfinex/empty_page.json"),
                "BTCUSD",
                "2020-03-01..2020-03-03",
            )
            .gives(vec![none(), none(), none()]),
            page(
                recorded!("bitfinex/open_day.json"),
                "BTCUSD",
                "2026-11-30..2026-12-01",
            )
            .gives(yesterday_and_today()),
            page(
                recorded!("bitfinex/throttled.json"),
                "BTCUSD",
                "2020-03-01..2020-03-03",
            )
            .status(429, None)
            .fails(
                retryable("rate limited: 11010 ratelimit: error")
                    .throttled(Throttle::RateLimited, Some(Duration::from_secs(60))),
            ),
            page(
                recorded!("bitfinex/throttled.json"),
                "BTCUSD",
                "2020-03-01..2020-03-03",
            )
            .status(500, None)
            .fails(
                retryable("rate limited: 11010 ratelimit: error")
                    .throttled(Throttle::RateLimited, Some(Duration::from_secs(60))),
            ),
            page(
                recorded!("bitfinex/throttled.json"),
                "BTCUSD",
                "2020-03-01..2020-03-03",
            )
            .fails(
                retryable("rate limited: 11010 ratelimit: error")
                    .throttled(Throttle::RateLimited, Some(Duration::from_secs(60))),
            ),
            page(
                recorded!("bitfinex/unknown_market.json"),
                "BTCUSD",
                "2020-03-01..2020-03-03",
            )
            .status(500, None)
            .fails(permanent(
                "unknown market \"BTCUSD\" on bitfinex: 10020 symbol: invalid",
            )),
            listing(recorded!("bitfinex/pairs.json")).picks(&[
                ("btc", Some("BTCUSD")),
                ("aave", Some("AAVE:UST")),
                ("ltc", None),
            ]),
        ]
    }
}
