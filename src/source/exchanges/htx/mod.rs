//! HTX's (formerly Huobi) candles, asked hourly: `GET
//! /market/history/candles?symbol&period=60min&from&to&size`, and each UTC
//! day built from its 24 hourly candles. This file owns HTX's request, its
//! answers, the building of a day from hours and HTX's market list; the
//! shared rules (anchoring, numbers, ohlc order) are `exchanges/mod.rs`'s,
//! and nothing here does I/O or reads a clock.
//!
//! HTX's quirks:
//! - Its `1day` candle opens at 00:00 UTC+8 (16:00 UTC, the docs' example
//!   id 1499184000): it is not a UTC day. Its `60min` candles open on UTC
//!   hours, so a UTC day is built from 24 of them: open of the first, close
//!   of the last, max high, min low, summed base volume, flagged
//!   `derived:1h`.
//! - HTX emits an hourly candle for an hour without trades (`count` 0,
//!   flat prices; seen on 1min candles, medium confidence), so a past day
//!   with 1 to 23 hourly candles fails with its reason ("23 of 24 hourly
//!   candles") and is asked again next round; a day with none is "no
//!   price" (the market did not trade yet, or the day is not published).
//! - The endpoint: `/market/history/candles` takes a window (`from`, `to`
//!   in seconds, `to` inclusive as reported by ccxt's users) and at most
//!   `size` = 1000 candles, so a page is 41 days (984 hours) of one
//!   market. It is ccxt's default for spot; `/market/history/kline` (the
//!   one the docs show) answers only the newest `size` <= 2000 candles,
//!   without a window, so every page would cost 2000 rows whatever it
//!   needs. Rows come newest first; the order is not relied on.
//! - How far back `/market/history/candles` reaches is UNCONFIRMED. Until
//!   it is, only the reach documented for hourly candles is asked: the
//!   2000 most recent (`/market/history/kline`'s `size` limit), i.e. the
//!   days from today - 82 on; older days are "out of reach" without a
//!   request.
//! - An answer is `{"status": "ok", "ch", "ts", "data": [{"id", "open",
//!   "close", "low", "high", "amount", "vol", "count"}]}`: `id` is the open
//!   time in seconds, `amount` the base volume, `vol` the quote turnover
//!   (the Chinese docs; the old English docs say the opposite and are
//!   wrong). `ts` is the server's time in milliseconds: the UTC day it
//!   falls in is the open day, built from the hours so far and marked
//!   still open.
//! - Errors come with HTTP 200: `{"status": "error", "err-code":
//!   "invalid-parameter", "err-msg": "invalid symbol"}` is an unknown
//!   market; other codes are permanent. A throttling answer is
//!   UNCONFIRMED: 429, or an `err-msg` saying "request limit" (ccxt's
//!   mapping), is read as throttling. About 10 requests a second per IP
//!   (ccxt, the KR docs): 5/s by default.
//! - Symbols are lower case, base and quote joined (`btcusdt`); `GET
//!   /v1/common/symbols` lists them with `base-currency`, `quote-currency`
//!   and `state` (only `online` ones are kept).
//! - HTX answers 403 through Cloudflare to a request without a
//!   (browser-like) User-Agent (the issue; UNCONFIRMED in the facts):
//!   `PriceClient` always sends one.

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeDelta};
use serde_json::Value;

use super::common::{self, integer, seconds_to_ms, shape, Envelope, ListingFields};
use super::{
    day_answers, day_of_ms, day_start_ms, number, Candle, CandleApi, DayAnswer, Instrument,
    MarketForm, PageResult, Profile,
};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi, Flags};
use crate::source::{Answer, FetchFailure};

/// HTX's spot REST API.
pub struct Htx;

/// Hours in a UTC day.
const HOURS: usize = 24;
const HOUR_MS: i64 = 3_600_000;
/// Most candles one request returns.
const MAX_SIZE: u32 = 1000;
/// The most recent hourly candles HTX is known to serve (the documented
/// `size` limit of `/market/history/kline`).
const REACH_HOURS: i64 = 2000;
/// Whole UTC days before today within `REACH_HOURS`, whatever the hour
/// (the oldest hourly candle opens no later than 00:00 of today - 83),
/// less a day for the exchange's clock and ours to disagree: 82.
const REACH_DAYS: i64 = (REACH_HOURS - 1) / 24 - 1;

/// HTX's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Htx,
    default_url: "https://api.huobi.pro/",
    page_days: MAX_SIZE / HOURS as u32,
    // Half of the 10/s ccxt and the KR docs allow.
    requests_per_second: 5.0,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        dashed: false,
        described: "basequote in lower case, no separator (\"btcusdt\")",
    },
};

impl CandleApi for Htx {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn earliest_day(&self, today: NaiveDate) -> Option<NaiveDate> {
        Some(today - TimeDelta::days(REACH_DAYS))
    }

    fn candles_request(&self, market: &str, days: DayRange) -> String {
        let from = day_start_ms(days.from) / 1000;
        // `to` is inclusive: the open time of the last day's last hour.
        let to = day_start_ms(days.to) / 1000 + 23 * 3600;
        let size = (days.len() * HOURS).min(MAX_SIZE as usize);
        format!(
            "market/history/candles?symbol={market}&period=60min&from={from}&to={to}&size={size}"
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
            success: ("status", "ok"),
            missing: "no \"status\": \"ok\"",
            rows: "data",
        };
        let (v, rows) = envelope.open(status, retry_after, body, |v| {
            (v.get("status").and_then(Value::as_str) == Some("error"))
                .then(|| error(market, status, v, retry_after))
        })?;
        let hours = rows
            .iter()
            .map(hourly)
            .collect::<Result<Vec<Candle>, String>>()
            .map_err(shape)?;
        let open_day = v
            .get("ts")
            .and_then(|t| integer(t, "ts").ok())
            .and_then(day_of_ms);
        utc_days(days, &hours, open_day, ohlc_order)
    }

    fn instruments_request(&self) -> String {
        "v1/common/symbols".to_owned()
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Htx, status, body)?;
        if v.get("status").and_then(Value::as_str) == Some("error") {
            return Err(format!("htx market listing: {}", message(&v)));
        }
        let list = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or("htx market listing without a 'data' list")?;
        ListingFields {
            trading: ("state", &["online"]),
            market: "symbol",
            base: "base-currency",
            quote: "quote-currency",
        }
        .read(list)
    }
}

/// `err-code err-msg` of an error body.
fn message(v: &Value) -> String {
    let field = |name| v.get(name).and_then(Value::as_str).unwrap_or("");
    format!("{} {}", field("err-code"), field("err-msg"))
        .trim()
        .to_owned()
}

/// What an `{"status": "error"}` body means.
fn error(market: &str, status: u16, v: &Value, retry_after: Option<&str>) -> FetchFailure {
    let detail = message(v);
    let msg = v.get("err-msg").and_then(Value::as_str).unwrap_or("");
    if msg.contains("invalid symbol") {
        return common::unknown_market(ExchangeApi::Htx, market, &detail);
    }
    if status == 429 || msg.contains("request limit") {
        return common::rate_limited(&detail, retry_after);
    }
    match common::common_status(status, retry_after) {
        Some(f) => FetchFailure {
            reason: format!("{} {detail}", f.reason),
            ..f
        },
        None => FetchFailure::permanent(format!("htx refused the request: {detail}")),
    }
}

/// One hourly candle: `{"id", "open", "close", "low", "high", "amount"}`;
/// its open time must be on the hour.
fn hourly(c: &Value) -> Result<Candle, String> {
    let get = |name: &str| {
        c.get(name)
            .ok_or_else(|| format!("a candle has no '{name}': {c}"))
    };
    let open_ms = seconds_to_ms(integer(get("id")?, "id")?, "id")?;
    if open_ms.rem_euclid(HOUR_MS) != 0 {
        return Err(format!(
            "an hourly candle opens at {open_ms} ms, not on the hour"
        ));
    }
    Ok(Candle {
        open_ms,
        open: number(get("open")?, "open")?,
        high: number(get("high")?, "high")?,
        low: number(get("low")?, "low")?,
        close: number(get("close")?, "close")?,
        volume: number(get("amount")?, "amount")?,
        still_open: false,
    })
}

/// The UTC days of `days` built from hourly candles: a day with all 24 is a
/// price flagged `derived:1h`; the open day (the day of the server's time)
/// is built from the hours so far and marked open; a past day with some
/// hours missing fails saying how many it has; a day with none is "no
/// price". Two candles for one hour fail the page.
pub(crate) fn utc_days(
    days: DayRange,
    hours: &[Candle],
    open_day: Option<NaiveDate>,
    ohlc_order: OhlcOrder,
) -> PageResult {
    let mut by_day: BTreeMap<NaiveDate, BTreeMap<i64, &Candle>> = BTreeMap::new();
    for c in hours {
        let Some(day) = day_of_ms(c.open_ms) else {
            return Err(FetchFailure::retryable(format!(
                "a candle's open time {} is not a valid time",
                c.open_ms
            )));
        };
        if day < days.from || day > days.to {
            continue;
        }
        if by_day
            .entry(day)
            .or_default()
            .insert(c.open_ms, c)
            .is_some()
        {
            return Err(FetchFailure::retryable(format!(
                "two hourly candles for {} in one answer",
                c.open_ms
            )));
        }
    }
    let mut incomplete: Vec<(NaiveDate, usize)> = Vec::new();
    let mut built: Vec<Candle> = Vec::new();
    for (day, hours) in &by_day {
        let open = Some(*day) == open_day;
        if hours.len() < HOURS && !open {
            incomplete.push((*day, hours.len()));
            continue;
        }
        let mut it = hours.values();
        let Some(first) = it.next() else { continue };
        let mut day_candle = Candle {
            open_ms: day_start_ms(*day),
            still_open: open,
            ..**first
        };
        for h in it {
            day_candle.high = day_candle.high.max(h.high);
            day_candle.low = day_candle.low.min(h.low);
            day_candle.close = h.close;
            day_candle.volume += h.volume;
        }
        built.push(day_candle);
    }
    let mut answers = day_answers(days, &built, ohlc_order)?;
    for a in &mut answers {
        if let Answer::Price { flags, .. } = &mut a.answer {
            *flags |= Flags::DERIVED_1H;
        }
        if open_day.is_some_and(|o| a.day > o) {
            a.open = true;
        }
        if let Some((_, n)) = incomplete.iter().find(|(d, _)| *d == a.day) {
            *a = DayAnswer {
                day: a.day,
                answer: Answer::Failed {
                    reason: format!("{n} of {HOURS} hourly candles: the UTC day cannot be built"),
                },
                open: false,
            };
        }
    }
    Ok(answers)
}

#[cfg(test)]
pub(super) mod tests;
