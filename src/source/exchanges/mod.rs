//! The real exchanges' public daily-candle APIs, behind one trait,
//! `CandleApi`: each adapter (one file per exchange) builds the request for
//! a page of days of one market, parses the exchange's answer into one
//! `DayAnswer` per day of the page, lists the exchange's markets, and says
//! what the exchange's documented limits are (page size, depth, request
//! rate). The rules every exchange shares live here, once: what a candle
//! must be to count (anchored at 00:00 UTC, finite numbers), that a day the
//! exchange does not return is "no price", how a symbol is mapped to a
//! market when the config names none (in the first of the exchange's
//! `quotes` it is listed in: `<SYMBOL>/USD`, else `/USDT`, else `/USDC` by
//! default), which listed markets make the universe under
//! `symbols = "all"`, and how a run of unsettled days is cut into pages.
//!
//! The form of market names is `model::MarketForm`; config validation asks
//! an adapter about a market through `check_market`, so `config` needs no
//! adapter of its own.
//!
//! Pure: no I/O, no clock (today is passed in). Sending the request is
//! `source::PriceClient`'s job; deciding what a failure means for the task
//! is the Supervisor's.

mod binance;
mod bitfinex;
mod bitstamp;
mod cexio;
mod choice;
mod coinbase;
mod common;
mod hitbtc;
mod htx;
mod kraken;
mod okx;
mod poloniex;

pub use binance::Binance;
pub use bitfinex::Bitfinex;
pub use bitstamp::Bitstamp;
pub use cexio::Cexio;
pub use choice::{choose_market, choose_market_in, listed_symbols, MarketIndex};
pub use coinbase::Coinbase;
pub use hitbtc::Hitbtc;
pub use htx::Htx;
pub use kraken::Kraken;
pub use okx::Okx;
pub use poloniex::Poloniex;

use chrono::{DateTime, NaiveDate, TimeDelta};

pub use crate::model::MarketForm;
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi, Flags, Ohlcv, Symbol};
use crate::source::{Answer, FetchFailure};

/// What an exchange said about one day of a page.
#[derive(Debug, Clone, PartialEq)]
pub struct DayAnswer {
    pub day: NaiveDate,
    pub answer: Answer,
    /// The exchange marked this candle as still open (OKX `confirm: "0"`,
    /// Kraken's last row): provisional whatever the clock says.
    pub open: bool,
}

/// One request's worth of answers: one per day of the page, in day order,
/// or why the request produced none.
pub type PageResult = Result<Vec<DayAnswer>, FetchFailure>;

/// A market as an exchange lists it, e.g. Kraken's `XBTUSD` (base `XBT`,
/// quote `USD`). Base and quote are upper case, in the exchange's own
/// spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instrument {
    pub market: String,
    pub base: String,
    pub quote: String,
}

/// A candle as an exchange sent it, before the shared rules: its open time
/// and its numbers (already parsed from strings or numbers, exactly).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candle {
    /// Open time, milliseconds since the Unix epoch.
    pub open_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    /// The exchange says the candle is still open.
    pub still_open: bool,
}

/// How a request is sent: most exchanges are asked with a GET and a query
/// string, CEX.IO with a POST and a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// One request to an exchange: its method, its path and query relative to
/// the base URL, and the JSON body of a POST.
#[derive(Debug, Clone, PartialEq)]
pub struct CandleRequest {
    pub method: Method,
    pub path: String,
    pub body: Option<serde_json::Value>,
}

impl CandleRequest {
    pub fn get(path: String) -> Self {
        Self {
            method: Method::Get,
            path,
            body: None,
        }
    }

    pub fn post(path: &str, body: serde_json::Value) -> Self {
        Self {
            method: Method::Post,
            path: path.to_owned(),
            body: Some(body),
        }
    }
}

/// The facts of one exchange's API that are plain values.
#[derive(Debug)]
pub struct Profile {
    pub api: ExchangeApi,
    /// The exchange's real public endpoint, e.g. `https://api.kraken.com/`.
    pub default_url: &'static str,
    /// Most daily candles one request returns.
    pub page_days: u32,
    /// A documented, safe request rate to the exchange, per second and per
    /// process.
    pub requests_per_second: f64,
    pub market_form: MarketForm,
}

/// One exchange's daily-candle API.
pub trait CandleApi: Send + Sync {
    fn profile(&self) -> &'static Profile;

    fn api(&self) -> ExchangeApi {
        self.profile().api
    }

    /// The exchange's real public endpoint, e.g. `https://api.kraken.com/`.
    fn default_url(&self) -> &'static str {
        self.profile().default_url
    }

    /// Most daily candles one request returns.
    fn page_days(&self) -> u32 {
        self.profile().page_days
    }

    /// A documented, safe request rate to the exchange, per second and
    /// per process.
    fn default_requests_per_second(&self) -> f64 {
        self.profile().requests_per_second
    }

    /// The oldest day the exchange serves when today (UTC) is `today`;
    /// `None`: no limit (Kraken serves only its 720 most recent candles).
    fn earliest_day(&self, today: NaiveDate) -> Option<NaiveDate> {
        let _ = today;
        None
    }

    /// Checks the form of a market name, offline (a typo such as
    /// `"btc-usd"` for Coinbase's `"BTC-USD"`): the error says what the form is.
    fn check_market(&self, market: &str) -> Result<(), String> {
        let form = &self.profile().market_form;
        form.check(market)
    }

    /// The exchange's spelling of a symbol's asset, upper case (Kraken
    /// calls bitcoin `XBT`).
    fn asset_name(&self, symbol: &Symbol) -> String {
        symbol.as_str().to_ascii_uppercase()
    }

    /// The symbol of a listed base asset, the inverse of `asset_name`
    /// (`XBT` is `btc` on Kraken); `None` for a base that is no valid
    /// symbol name.
    fn symbol_of(&self, base: &str) -> Option<Symbol> {
        Symbol::new(&base.to_ascii_lowercase()).ok()
    }

    /// The path and query, relative to the base URL, that asks for the
    /// daily candles of `market` over `days` (at most `page_days` days).
    fn candles_request(&self, market: &str, days: DayRange) -> String;

    /// The whole request for `candles_request`: a GET of it, unless the
    /// exchange is asked otherwise (CEX.IO's POST with a JSON body).
    fn candles_call(&self, market: &str, days: DayRange) -> CandleRequest {
        CandleRequest::get(self.candles_request(market, days))
    }

    /// Turns an answer to `candles_request(market, days)` into one
    /// `DayAnswer` per day of `days` (see `day_answers`), or a failure with
    /// its reason: throttling (`FetchFailure::throttled`), an unknown market
    /// (permanent, the reason starting "unknown market"), a server error
    /// (retryable), a body that is not the documented shape (retryable).
    fn parse_candles(
        &self,
        market: &str,
        days: DayRange,
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
        ohlc_order: OhlcOrder,
    ) -> PageResult;

    /// The path and query of the exchange's market listing.
    fn instruments_request(&self) -> String;

    /// The whole request for the market listing (see `candles_call`).
    fn instruments_call(&self) -> CandleRequest {
        CandleRequest::get(self.instruments_request())
    }

    /// The markets in an answer to `instruments_request`.
    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String>;
}

/// Checks the form of `market` as the adapter of `api` names markets,
/// offline: what config validation asks, so that `config` needs no adapter.
/// `None`: `api` has no adapter (the classic API), and so no markets.
pub fn check_market(api: ExchangeApi, market: &str) -> Option<Result<(), String>> {
    adapter(api).map(|a| a.check_market(market))
}

/// The adapter of `api`; `None` for the classic API, which has none.
pub fn adapter(api: ExchangeApi) -> Option<&'static dyn CandleApi> {
    match api {
        ExchangeApi::Classic => None,
        ExchangeApi::Binance => Some(&Binance),
        ExchangeApi::Kraken => Some(&Kraken),
        ExchangeApi::Coinbase => Some(&Coinbase),
        ExchangeApi::Bitstamp => Some(&Bitstamp),
        ExchangeApi::Okx => Some(&Okx),
        ExchangeApi::Bitfinex => Some(&Bitfinex),
        ExchangeApi::Poloniex => Some(&Poloniex),
        ExchangeApi::Hitbtc => Some(&Hitbtc),
        ExchangeApi::Htx => Some(&Htx),
        ExchangeApi::Cexio => Some(&Cexio),
    }
}

/// The reason a day older than the exchange serves is rejected with.
pub fn out_of_reach_reason(api: ExchangeApi, earliest: NaiveDate) -> String {
    format!("{OUT_OF_REACH}: {api} serves daily candles from {earliest} only")
}

const OUT_OF_REACH: &str = "out of reach";

/// Whether a rejection's reason is `out_of_reach_reason`'s: a day decided
/// without asking the exchange.
pub fn is_out_of_reach(reason: &str) -> bool {
    reason.starts_with(OUT_OF_REACH)
}

const DAY_MS: i64 = 86_400_000;

/// Midnight UTC of `day`, in milliseconds since the epoch.
pub fn day_start_ms(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp_millis())
}

/// The UTC day a millisecond timestamp falls in.
pub fn day_of_ms(ms: i64) -> Option<NaiveDate> {
    DateTime::from_timestamp_millis(ms).map(|t| t.date_naive())
}

/// The shared rules, from an exchange's candles to one answer per day of
/// `days`: a candle whose open time is not 00:00 UTC is rejected ("not
/// anchored at 00:00 UTC") for the day it falls in; a candle of a day
/// outside `days` is ignored; a day with no candle is "no price"; a price
/// whose numbers are not finite and non-negative makes the page a
/// (retryable) failure; order and zero flags as for the classic API. Two
/// candles for one day are a failure too: the page cannot say which is true.
pub fn day_answers(days: DayRange, candles: &[Candle], ohlc_order: OhlcOrder) -> PageResult {
    let mut out: Vec<DayAnswer> = days
        .days()
        .map(|day| DayAnswer {
            day,
            answer: Answer::NoPrice,
            open: false,
        })
        .collect();
    let mut seen = vec![false; out.len()];
    for c in candles {
        let Some(day) = day_of_ms(c.open_ms) else {
            return Err(FetchFailure::retryable(format!(
                "a candle's open time {} is not a valid time",
                c.open_ms
            )));
        };
        if day < days.from || day > days.to {
            continue;
        }
        let i = usize::try_from((day - days.from).num_days()).unwrap_or(usize::MAX);
        let Some(slot) = out.get_mut(i) else { continue };
        if std::mem::replace(&mut seen[i], true) {
            return Err(FetchFailure::retryable(format!(
                "two candles for {day} in one answer"
            )));
        }
        let price = Ohlcv::new(c.open, c.high, c.low, c.close, c.volume)
            .map_err(|e| FetchFailure::retryable(format!("invalid candle for {day}: {e}")))?;
        slot.open = c.still_open;
        let offset = c.open_ms.rem_euclid(DAY_MS);
        slot.answer = if offset != 0 {
            let at = TimeDelta::milliseconds(offset);
            Answer::Rejected {
                reason: format!(
                    "not anchored at 00:00 UTC: the candle opens at {:02}:{:02} UTC",
                    at.num_hours(),
                    at.num_minutes() % 60
                ),
                price: Some(price),
            }
        } else {
            match (ohlc_order, price.check_order()) {
                (OhlcOrder::Reject, Err(e)) => Answer::Rejected {
                    reason: format!("ohlc order: {e}"),
                    price: Some(price),
                },
                (order, _) => Answer::Price {
                    price,
                    flags: Flags::of(&price, order == OhlcOrder::Flag),
                },
            }
        };
    }
    Ok(out)
}

/// Whether a candle whose answer states its span (open and close times,
/// in ms) is a daily one: it closes one day less one millisecond after it
/// opens, as Binance's and Poloniex's daily candles do.
pub fn spans_one_day(open_ms: i64, close_ms: i64) -> bool {
    open_ms.checked_add(DAY_MS - 1) == Some(close_ms)
}

/// Rejects, in `answers` (from `day_answers` over `days`), the day of each
/// candle whose answer says it does not span one day (a weekly candle is
/// not the price of its first day): "not a daily candle", with `why`.
pub fn reject_not_daily(
    answers: &mut [DayAnswer],
    days: DayRange,
    not_daily: &[Candle],
    why: &str,
) {
    for c in not_daily {
        let Some(a) = day_of_ms(c.open_ms)
            .filter(|d| *d >= days.from && *d <= days.to)
            .and_then(|d| answers.iter_mut().find(|a| a.day == d))
        else {
            continue;
        };
        a.answer = Answer::Rejected {
            reason: format!("not a daily candle: {why}"),
            price: Ohlcv::new(c.open, c.high, c.low, c.close, c.volume).ok(),
        };
    }
}

/// Parses a number an exchange sent as a JSON string (`"7901.27"`) or a
/// JSON number, exactly (the nearest `f64`, as serde_json's float_roundtrip
/// does for numbers).
pub fn number(v: &serde_json::Value, field: &str) -> Result<f64, String> {
    match v {
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("field '{field}' is not a number: {n}")),
        serde_json::Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("field '{field}' is not a number: {s:?}")),
        other => Err(format!("field '{field}' is not a number: {other}")),
    }
}

/// Cuts sorted, distinct unsettled `days` into pages: runs of consecutive
/// days no longer than `page_days`, never straddling `earliest` (the days
/// before it are their own pages, answered "out of reach" without a
/// request). Gaps between runs are not fetched.
pub fn plan_pages(
    days: &[NaiveDate],
    page_days: u32,
    earliest: Option<NaiveDate>,
) -> Vec<DayRange> {
    let page = i64::from(page_days.max(1));
    let mut pages: Vec<DayRange> = Vec::new();
    for &day in days {
        if let Some(last) = pages.last_mut() {
            let consecutive = day == last.to + TimeDelta::days(1);
            let fits = (day - last.from).num_days() < page;
            let same_side = earliest.is_none_or(|e| (last.from < e) == (day < e));
            if consecutive && fits && same_side {
                last.to = day;
                continue;
            }
        }
        pages.push(DayRange { from: day, to: day });
    }
    pages
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
