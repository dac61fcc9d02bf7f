//! The built-in server speaking a real exchange's API (`pricegrid serve
//! --dialect kraken`): one file per exchange registers that exchange's
//! candle and instruments routes and writes its bodies, exactly as
//! `notes/wire-contract.md` says, so a round against it gives the cells the
//! classic server gives for the same dataset exchange.
//!
//! This module owns what the dialects share: which dataset exchange is
//! served, the rows of a range of days (published as `publication` says,
//! days without a price left out, in the order and number the dialect
//! asks), the query-string reader that names a bad parameter, and the
//! token bucket (plus Binance's ban, `throttle.rs`) in front of candle
//! requests. It never
//! serves the classic routes; `server::start` picks one or the other.

pub mod binance;
pub mod bitfinex;
pub mod bitstamp;
pub mod cexio;
pub mod coinbase;
pub mod hitbtc;
pub mod htx;
pub mod kraken;
pub mod okx;
pub mod poloniex;
mod throttle;

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{NaiveDate, TimeDelta};

use super::{publication, Lookup, PriceServer, ServerOptions, ServerStats};
use crate::clock::Clock;
use crate::model::{Exchange, ExchangeApi, Ohlcv, Symbol};
use crate::server::Dataset;
#[cfg(test)]
use throttle::whole_seconds;
use throttle::Throttle;

/// How long a Binance IP ban lasts by default: Binance's shortest.
pub const DEFAULT_BAN: Duration = Duration::from_secs(120);

/// Milliseconds in a day.
pub(crate) const DAY_MS: i64 = 86_400_000;

/// What every dialect's handlers share (actix app data).
pub(crate) struct Venue {
    dataset: Arc<Dataset>,
    /// The dataset exchange whose prices this server answers with.
    exchange: Exchange,
    clock: Clock,
    publish_delay: Option<Duration>,
    latency: Duration,
    stats: Arc<ServerStats>,
    throttle: Option<Throttle>,
}

/// One candle row of an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Row {
    pub day: NaiveDate,
    pub price: Ohlcv,
    /// The day is today: its candle is still open (partial while
    /// publication is on).
    pub open: bool,
}

/// In which order a dialect lists its candles; the page limit keeps the
/// first ones in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    OldestFirst,
    NewestFirst,
}

/// Whether a candle request may be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    Admitted,
    /// Over the rate limit; a token is free in this many seconds (>= 1).
    Throttled {
        retry_after: u64,
    },
    /// Binance's ban after too many 429s; it ends in this many seconds.
    Banned {
        retry_after: u64,
    },
}

/// A query parameter that is missing or malformed: its name and what it
/// should be, for the dialect's own error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadParam {
    pub name: &'static str,
    pub expected: String,
    /// Not given at all (some exchanges say so with another code).
    pub missing: bool,
}

impl BadParam {
    pub fn new(name: &'static str, expected: impl Into<String>) -> Self {
        Self {
            name,
            expected: expected.into(),
            missing: false,
        }
    }

    pub fn missing(name: &'static str) -> Self {
        Self {
            name,
            expected: "a value (it is required)".to_owned(),
            missing: true,
        }
    }
}

/// The query string of a request, decoded once.
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub fn of(req: &HttpRequest) -> Self {
        Self(
            url::form_urlencoded::parse(req.query_string().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The last value given for `name` (empty counts as absent).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn required(&self, name: &'static str) -> Result<&str, BadParam> {
        self.get(name).ok_or_else(|| BadParam::missing(name))
    }

    /// An integer parameter, if given.
    pub fn int(&self, name: &'static str) -> Result<Option<i64>, BadParam> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| BadParam::new(name, format!("an integer, not {v:?}")))
            })
            .transpose()
    }

    /// A page limit: `default` when absent, at most `max` (a larger one is
    /// cut to `max`, as the exchanges do), at least 1.
    pub fn limit(&self, name: &'static str, default: usize, max: usize) -> Result<usize, BadParam> {
        match self.int(name)? {
            None => Ok(default),
            Some(n) if n < 1 => Err(BadParam::new(name, format!("1..={max}, not {n}"))),
            Some(n) => Ok(usize::try_from(n).unwrap_or(max).min(max)),
        }
    }
}

/// Days since 1970-01-01 (negative before).
pub(crate) fn epoch_day(day: NaiveDate) -> i64 {
    (day - NaiveDate::default()).num_days()
}

/// The day `n` days after 1970-01-01, if it is a date chrono knows.
pub(crate) fn day_at(n: i64) -> Option<NaiveDate> {
    NaiveDate::default().checked_add_signed(TimeDelta::try_days(n)?)
}

/// Unix seconds of `day` 00:00 UTC.
pub(crate) fn day_secs(day: NaiveDate) -> i64 {
    epoch_day(day) * 86_400
}

/// Unix milliseconds of `day` 00:00 UTC.
pub(crate) fn day_ms(day: NaiveDate) -> i64 {
    epoch_day(day) * DAY_MS
}

/// The days (numbered as `epoch_day`) whose 00:00 UTC lies in
/// `from ..= to` (milliseconds, both inclusive; an absent bound is open).
pub(crate) fn days_opening_within_ms(from: Option<i64>, to: Option<i64>) -> RangeInclusive<i64> {
    let first = from.map_or(i64::MIN, |f| {
        f.div_euclid(DAY_MS) + i64::from(f.rem_euclid(DAY_MS) > 0)
    });
    let last = to.map_or(i64::MAX, |t| t.div_euclid(DAY_MS));
    first..=last
}

/// A number the exchange sends as a string: `f64` Display, the shortest
/// form that parses back to the same number.
pub(crate) fn num(x: f64) -> String {
    format!("{x}")
}

/// A JSON answer with `Retry-After` when there is one.
pub(crate) fn answer(
    status: StatusCode,
    retry_after: Option<u64>,
    body: &serde_json::Value,
) -> HttpResponse {
    let mut b = HttpResponse::build(status);
    if let Some(secs) = retry_after {
        b.insert_header(("Retry-After", secs.to_string()));
    }
    b.json(body)
}

/// The refusal of an exchange that requires a `User-Agent` (Coinbase
/// answers 400 `{"message":"User-Agent header is required."}`, HTX 403):
/// `None` when `req` carries a non-empty one, else `refuse()`'s answer.
/// Called first by each such dialect's handlers, so tests prove that
/// pricegrid sends one.
pub(crate) fn require_user_agent(
    req: &HttpRequest,
    refuse: impl FnOnce() -> HttpResponse,
) -> Option<HttpResponse> {
    let present = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .is_some_and(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace));
    (!present).then(refuse)
}

impl Venue {
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    /// The server's time (its clock, manual in tests).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The dataset symbol whose market (as `market_of` spells it) is
    /// `market`; `None`: an unknown market.
    pub fn symbol_of(&self, market: &str, market_of: impl Fn(&Symbol) -> String) -> Option<Symbol> {
        self.dataset
            .symbols()
            .iter()
            .find(|s| market_of(s) == market)
            .cloned()
    }

    /// Counts a candle request, then says whether it may be answered;
    /// an admitted one waits the server's latency first.
    pub async fn admit(&self) -> Admission {
        self.stats.count_price_request();
        let admission = self
            .throttle
            .as_ref()
            .map_or(Admission::Admitted, Throttle::admit);
        if admission == Admission::Admitted {
            if !self.latency.is_zero() {
                actix_rt::time::sleep(self.latency).await;
            }
        } else {
            self.stats.count_throttled();
        }
        admission
    }

    /// The published candles of `symbol` on the days `days` (numbered as
    /// `epoch_day`; any range, however wide or empty), in `order`, at
    /// most `limit`. A day the dataset has no price for, or whose price is
    /// not yet published, has no row.
    pub fn rows(
        &self,
        symbol: &Symbol,
        days: RangeInclusive<i64>,
        limit: usize,
        order: Order,
    ) -> Vec<Row> {
        let Some((first, last)) = self.dataset.span() else {
            return Vec::new();
        };
        // Only where prices can be: a range from 1970 to 9999 costs no
        // more than the dataset's own span.
        let now = self.clock.now();
        let today = now.date_naive();
        // A published dataset has no day after today (and one that runs to
        // today has no last day of its own).
        let last = match self.publish_delay {
            Some(_) => last.min(today),
            None => last,
        };
        let lo = (*days.start()).max(epoch_day(first));
        let hi = (*days.end()).min(epoch_day(last));
        if lo > hi || limit == 0 {
            return Vec::new();
        }
        let row = |n: i64| {
            let day = day_at(n)?;
            let full = self
                .dataset
                .lookup(self.exchange.as_str(), symbol.as_str(), day);
            match publication::published(full, day, now, self.publish_delay) {
                Lookup::Price(price) => Some(Row {
                    day,
                    price,
                    open: day == today,
                }),
                _ => None,
            }
        };
        match order {
            Order::OldestFirst => (lo..=hi).filter_map(row).take(limit).collect(),
            Order::NewestFirst => (lo..=hi).rev().filter_map(row).take(limit).collect(),
        }
    }
}

/// The built-in dataset's exchange each dialect serves when `--exchange`
/// names none and the dataset has no exchange named like the dialect (the
/// classic dataset has no binance, coinbase or okx). `serve --help` says
/// the same.
pub const SEED_EXCHANGES: [(ExchangeApi, &str); 7] = [
    (ExchangeApi::Binance, "hitbtc"),
    (ExchangeApi::Kraken, "kraken"),
    (ExchangeApi::Coinbase, "coinbase-pro"),
    (ExchangeApi::Bitstamp, "bitstamp"),
    (ExchangeApi::Okx, "okex"),
    (ExchangeApi::Htx, "huobi"),
    (ExchangeApi::Cexio, "cexio"),
];

/// The dataset exchange a dialect serves: `chosen`, else the one named
/// like the dialect, else its seed exchange (`SEED_EXCHANGES`); an error,
/// listing the dataset's exchanges, if the dataset has none of them.
pub fn served_exchange(
    dialect: ExchangeApi,
    chosen: Option<&Exchange>,
    dataset: &Dataset,
) -> Result<Exchange, String> {
    let known = dataset.exchanges();
    let find = |name: &str| known.iter().find(|e| e.as_str() == name).cloned();
    if let Some(chosen) = chosen {
        let names = crate::query::Known {
            exchanges: known.iter().cloned().collect(),
            ..Default::default()
        };
        let asked = crate::query::Filter {
            exchanges: [chosen.clone()].into_iter().collect(),
            ..Default::default()
        };
        names
            .check(&asked)
            .map_err(|e| format!("the dataset has no such exchange: {e}"))?;
        return find(chosen.as_str())
            .ok_or_else(|| format!("the dataset has no exchange {chosen:?}"));
    }
    let seed = SEED_EXCHANGES
        .iter()
        .find(|(api, _)| *api == dialect)
        .map(|(_, name)| *name);
    if let Some(e) = find(dialect.as_str()).or_else(|| seed.and_then(find)) {
        return Ok(e);
    }
    let listed = known
        .iter()
        .map(Exchange::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    Err(format!(
        "the dataset has no exchange {:?} for the {dialect} dialect: choose one with --exchange (the dataset has: {listed})",
        seed.unwrap_or(dialect.as_str())
    ))
}

/// Registers `dialect`'s routes.
fn routes(dialect: ExchangeApi, cfg: &mut ServiceConfig) {
    match dialect {
        ExchangeApi::Binance => binance::routes(cfg),
        ExchangeApi::Kraken => kraken::routes(cfg),
        ExchangeApi::Coinbase => coinbase::routes(cfg),
        ExchangeApi::Bitstamp => bitstamp::routes(cfg),
        ExchangeApi::Okx => okx::routes(cfg),
        ExchangeApi::Bitfinex => bitfinex::routes(cfg),
        ExchangeApi::Poloniex => poloniex::routes(cfg),
        ExchangeApi::Hitbtc => hitbtc::routes(cfg),
        ExchangeApi::Htx => htx::routes(cfg),
        ExchangeApi::Cexio => cexio::routes(cfg),
        ExchangeApi::Classic => {}
    }
}

async fn no_route(dialect: web::Data<ExchangeApi>) -> HttpResponse {
    answer(
        StatusCode::NOT_FOUND,
        None,
        &serde_json::json!({
            "error": format!("no such route on the built-in server's {} dialect", **dialect),
        }),
    )
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

/// Binds and starts a dialect's server on the current actix system, in
/// the background; logs `listening on http://ADDR`. Refused
/// (`InvalidInput`) before binding: no dataset exchange to serve, a rate
/// limit that is not a positive number, `ban_after` on a dialect other
/// than Binance, faults (they are the classic server's).
pub(crate) fn start(opts: &ServerOptions) -> std::io::Result<PriceServer> {
    let dialect = opts.dialect;
    let exchange =
        served_exchange(dialect, opts.exchange.as_ref(), &opts.dataset).map_err(invalid)?;
    if opts.faults.any() {
        return Err(invalid(format!(
            "fault injection is the classic server's; the {dialect} dialect has none"
        )));
    }
    if opts.ban_after.is_some() && dialect != ExchangeApi::Binance {
        return Err(invalid(format!(
            "--ban-after is Binance's (418 after 429s); the {dialect} dialect has no ban"
        )));
    }
    let throttle = opts
        .rate_limit
        .map(|rate| Throttle::new(rate, opts.ban_after, opts.ban_for))
        .transpose()
        .map_err(invalid)?;
    let stats = Arc::new(ServerStats::default());
    let venue = web::Data::new(Venue {
        dataset: opts.dataset.clone(),
        exchange: exchange.clone(),
        clock: opts.clock.clone(),
        publish_delay: opts.dataset.publish_delay(opts.publish_delay),
        latency: opts.latency,
        stats: stats.clone(),
        throttle,
    });
    let name = web::Data::new(dialect);
    let (addr, handle) = crate::http::start_server(opts.listen, opts.workers, move |cfg| {
        cfg.app_data(venue.clone()).app_data(name.clone());
        routes(dialect, cfg);
        cfg.default_service(web::to(no_route));
    })?;
    log::info!("serving exchange {exchange} in the {dialect} dialect");
    if let Some(rate) = opts.rate_limit {
        log::info!("candle requests limited to {rate}/s");
    }
    log::info!("listening on http://{addr}");
    Ok(PriceServer {
        addr,
        stats,
        dataset: opts.dataset.clone(),
        handle,
    })
}

#[cfg(test)]
mod tests;
