//! The prices the built-in server answers with: either generated from a seed
//! (the default, so everything runs on a fresh machine) or loaded from a CSV
//! file with the classic server's columns, plain or gzip-compressed.
//!
//! A generated price is a pure function of (seed, exchange, symbol, day):
//! nothing is stored, so a dataset of a million prices costs no memory and
//! the same seed always serves the same prices. The default generated
//! dataset has no last day: it runs to whatever day it is, and the server
//! publishes it as a live exchange would (no future day, today's candle
//! open). A CSV file serves the days it has, no others. This module does
//! no network I/O, reads no clock and knows nothing of HTTP.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{Exchange, NameError, Ohlcv, Symbol};

/// The classic server's exchanges.
pub const CLASSIC_EXCHANGES: [&str; 11] = [
    "bitfinex",
    "bitstamp",
    "bittrex",
    "cexio",
    "coinbase-pro",
    "hitbtc",
    "huobi",
    "kraken",
    "mexbt",
    "okex",
    "poloniex",
];

/// The classic server's symbols.
pub const CLASSIC_SYMBOLS: [&str; 3] = ["btc", "eth", "ltc"];

/// What the dataset says about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Price(Ohlcv),
    NoPrice,
    UnknownExchange,
    UnknownSymbol,
}

/// How to generate a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedSpec {
    pub seed: u64,
    pub exchanges: Vec<Exchange>,
    pub symbols: Vec<Symbol>,
    pub from: NaiveDate,
    /// The last day with a price, or [`GeneratedSpec::THROUGH_TODAY`].
    pub to: NaiveDate,
    /// Share of (exchange, symbol, day) left without a price, 0..1.
    pub missing_rate: f64,
}

impl GeneratedSpec {
    /// A `to` that means "whatever day it is": the dataset has a price for
    /// every day from `from` on, and the server serves none after today
    /// (see [`Dataset::runs_to_today`]).
    pub const THROUGH_TODAY: NaiveDate = NaiveDate::MAX;

    /// The classic universe from 2020-01-01 through today, ~2% of prices
    /// missing. A day's price does not depend on where the range ends, so
    /// 2020 is the same whatever day it is.
    pub fn classic(seed: u64) -> Self {
        Self {
            seed,
            exchanges: names(&CLASSIC_EXCHANGES).expect("classic exchange names are valid"),
            symbols: names(&CLASSIC_SYMBOLS).expect("classic symbol names are valid"),
            from: NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date"),
            to: Self::THROUGH_TODAY,
            missing_rate: 0.02,
        }
    }

    /// A universe as large as asked (`serve --exchanges N --markets N
    /// --days N`): `exchanges` over `markets` symbols (`s0001`, `s0002`,
    /// ...: plain letters and digits, so every dialect's market names
    /// take them, e.g. Binance's `S0001USDT`) and `days` days from
    /// 2020-01-01, every cell with a price (so a settled round is all
    /// final). Like every generated dataset it holds nothing per cell: 20
    /// exchanges x 1,000 markets x 1,000 days cost their names only.
    pub fn universe(seed: u64, exchanges: Vec<Exchange>, markets: usize, days: u32) -> Self {
        let from = NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date");
        let width = markets.to_string().len().max(4);
        Self {
            seed,
            exchanges,
            symbols: (1..=markets)
                .map(|i| Symbol::new(&format!("s{i:0width$}")).expect("valid name"))
                .collect(),
            from,
            to: from + chrono::Days::new(u64::from(days.saturating_sub(1))),
            missing_rate: 0.0,
        }
    }

    /// `n` exchanges named `ex-0001`, `ex-0002`, ... (for `universe`).
    pub fn numbered_exchanges(n: usize) -> Vec<Exchange> {
        let width = n.to_string().len().max(4);
        (1..=n)
            .map(|i| Exchange::new(&format!("ex-{i:0width$}")).expect("valid name"))
            .collect()
    }

    /// A synthetic universe of `exchanges` x `symbols` (named `ex-0001`,
    /// `sym-001`, ...) over `days` days from 2020-01-01, for benchmarks.
    pub fn synthetic(seed: u64, exchanges: usize, symbols: usize, days: u32) -> Self {
        let from = NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date");
        Self {
            seed,
            exchanges: (0..exchanges)
                .map(|i| Exchange::new(&format!("ex-{i:04}")).expect("valid name"))
                .collect(),
            symbols: (0..symbols)
                .map(|i| Symbol::new(&format!("sym-{i:03}")).expect("valid name"))
                .collect(),
            from,
            to: from + chrono::Days::new(u64::from(days.saturating_sub(1))),
            missing_rate: 0.02,
        }
    }
}

fn names<T>(raw: &[&str]) -> Result<Vec<T>, NameError>
where
    T: std::str::FromStr<Err = NameError>,
{
    raw.iter().map(|n| n.parse()).collect()
}

/// Why a CSV data file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: cannot read the data file: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Csv {
        path: String,
        #[source]
        source: csv::Error,
    },
    #[error("{path}:{line}: {message}")]
    Row {
        path: String,
        line: u64,
        message: String,
    },
}

#[derive(Debug)]
enum Prices {
    Generated(GeneratedSpec),
    /// (exchange index, symbol index, day) -> price.
    Table(HashMap<(u32, u32, NaiveDate), Ohlcv>),
}

/// A set of prices to serve.
#[derive(Debug)]
pub struct Dataset {
    exchanges: Vec<Exchange>,
    symbols: Vec<Symbol>,
    exchange_index: HashMap<String, u32>,
    symbol_index: HashMap<String, u32>,
    prices: Prices,
    /// The first and last day with any price; `None`: no price at all.
    span: Option<(NaiveDate, NaiveDate)>,
}

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

#[derive(Debug, serde::Deserialize)]
struct CsvRow {
    exchange: String,
    symbol: String,
    day: String,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

impl Dataset {
    pub fn generated(spec: GeneratedSpec) -> Self {
        Self::index(
            spec.exchanges.clone(),
            spec.symbols.clone(),
            Prices::Generated(spec),
        )
    }

    /// Loads a CSV with the header `exchange,symbol,day,open,high,low,close,volume`,
    /// plain or gzip-compressed (told apart by the gzip magic bytes, whatever
    /// the file is called).
    pub fn from_csv(path: &Path) -> Result<Self, DatasetError> {
        let shown = path.display().to_string();
        let unreadable = |source| DatasetError::Read {
            path: shown.clone(),
            source,
        };
        let mut file = BufReader::new(std::fs::File::open(path).map_err(unreadable)?);
        let gzip = file
            .fill_buf()
            .map_err(unreadable)?
            .starts_with(&GZIP_MAGIC);
        let input: Box<dyn Read> = if gzip {
            Box::new(flate2::bufread::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        let mut reader = csv::Reader::from_reader(input);
        reader.headers().map_err(|source| DatasetError::Csv {
            path: shown.clone(),
            source,
        })?;
        let mut exchanges: Vec<Exchange> = Vec::new();
        let mut symbols: Vec<Symbol> = Vec::new();
        let mut ex_idx: HashMap<String, u32> = HashMap::new();
        let mut sym_idx: HashMap<String, u32> = HashMap::new();
        let mut table = HashMap::new();
        for (i, row) in reader.deserialize::<CsvRow>().enumerate() {
            let line = i as u64 + 2;
            let bad = |message: String| DatasetError::Row {
                path: shown.clone(),
                line,
                message,
            };
            let row = row.map_err(|e| bad(e.to_string()))?;
            let exchange = Exchange::new(&row.exchange).map_err(|e| bad(e.to_string()))?;
            let symbol = Symbol::new(&row.symbol).map_err(|e| bad(e.to_string()))?;
            let day = NaiveDate::parse_from_str(&row.day, "%Y-%m-%d")
                .map_err(|e| bad(format!("day {:?}: {e}", row.day)))?;
            let price = Ohlcv::new(row.open, row.high, row.low, row.close, row.volume)
                .map_err(|e| bad(e.to_string()))?;
            let e = *ex_idx.entry(row.exchange).or_insert_with(|| {
                exchanges.push(exchange);
                exchanges.len() as u32 - 1
            });
            let s = *sym_idx.entry(row.symbol).or_insert_with(|| {
                symbols.push(symbol);
                symbols.len() as u32 - 1
            });
            table.insert((e, s, day), price);
        }
        Ok(Self::index(exchanges, symbols, Prices::Table(table)))
    }

    /// Indexes names by their position in the given order (which the
    /// generated prices' seeds depend on); listings are served sorted.
    fn index(exchanges: Vec<Exchange>, symbols: Vec<Symbol>, prices: Prices) -> Self {
        let exchange_index = exchanges
            .iter()
            .enumerate()
            .map(|(i, e)| (e.as_str().to_owned(), i as u32))
            .collect();
        let symbol_index = symbols
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_str().to_owned(), i as u32))
            .collect();
        let (mut exchanges, mut symbols) = (exchanges, symbols);
        exchanges.sort();
        exchanges.dedup();
        symbols.sort();
        symbols.dedup();
        let span = match &prices {
            Prices::Generated(spec) => (spec.from <= spec.to).then_some((spec.from, spec.to)),
            Prices::Table(t) => {
                t.keys()
                    .map(|k| k.2)
                    .fold(None, |span: Option<(NaiveDate, NaiveDate)>, d| {
                        Some(span.map_or((d, d), |(a, b)| (a.min(d), b.max(d))))
                    })
            }
        };
        Self {
            exchanges,
            symbols,
            exchange_index,
            symbol_index,
            prices,
            span,
        }
    }

    /// Exchange names, sorted.
    pub fn exchanges(&self) -> &[Exchange] {
        &self.exchanges
    }

    /// Symbol names, sorted.
    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// The first and last day any price can be on (`None`: no price at
    /// all), so that a request for a range of days looks only where prices
    /// can be, however wide the range it asks for. The last day of a
    /// dataset that runs to today is [`GeneratedSpec::THROUGH_TODAY`]: a
    /// server cuts it at its own today.
    pub fn span(&self) -> Option<(NaiveDate, NaiveDate)> {
        self.span
    }

    /// The dataset has no last day: it has a price for every day up to
    /// whatever day it is (the default generated dataset).
    pub fn runs_to_today(&self) -> bool {
        matches!(&self.prices, Prices::Generated(spec) if spec.to == GeneratedSpec::THROUGH_TODAY)
    }

    /// How a server publishes this dataset given the `configured` delay:
    /// as configured; unset, a dataset that runs to today is published as
    /// a live exchange does (delay zero: no future day, today's candle open
    /// and growing, a closed day at once), any other as it is.
    pub fn publish_delay(&self, configured: Option<Duration>) -> Option<Duration> {
        configured.or_else(|| self.runs_to_today().then_some(Duration::ZERO))
    }

    /// The price for one request, by the names as they came in the URL.
    pub fn lookup(&self, exchange: &str, symbol: &str, day: NaiveDate) -> Lookup {
        let Some(&e) = self.exchange_index.get(exchange) else {
            return Lookup::UnknownExchange;
        };
        let Some(&s) = self.symbol_index.get(symbol) else {
            return Lookup::UnknownSymbol;
        };
        let price = match &self.prices {
            Prices::Table(t) => t.get(&(e, s, day)).copied(),
            Prices::Generated(spec) => generate(spec, e as usize, s as usize, symbol, day),
        };
        price.map_or(Lookup::NoPrice, Lookup::Price)
    }

    /// The price the dataset has for a key, if any (for comparisons).
    pub fn price_of(&self, exchange: &Exchange, symbol: &Symbol, day: NaiveDate) -> Option<Ohlcv> {
        match self.lookup(exchange.as_str(), symbol.as_str(), day) {
            Lookup::Price(p) => Some(p),
            _ => None,
        }
    }
}

/// A plausible price for a symbol on a day: the symbol's market level (slow
/// cycles around a base price, shared by all exchanges), an exchange's small
/// deviation, and a day's open/close/high/low drawn around it.
fn generate(
    spec: &GeneratedSpec,
    exchange: usize,
    symbol: usize,
    symbol_name: &str,
    day: NaiveDate,
) -> Option<Ohlcv> {
    if day < spec.from || day > spec.to {
        return None;
    }
    let t = f64::from(day.num_days_from_ce());
    let mut market = rng(spec.seed, u64::MAX, symbol as u64, 0);
    let base = match symbol_name {
        "btc" => 7000.0,
        "eth" => 200.0,
        "ltc" => 50.0,
        _ => market.gen_range(0.5..2000.0),
    };
    let tau = std::f64::consts::TAU;
    let level = base
        * (0.30 * (tau * t / 365.0 + market.gen_range(0.0..tau)).sin()
            + 0.10 * (tau * t / 29.0 + market.gen_range(0.0..tau)).sin()
            + 0.03 * (tau * t / 7.0 + market.gen_range(0.0..tau)).sin())
        .exp();

    let mut r = rng(
        spec.seed,
        exchange as u64,
        symbol as u64,
        day.num_days_from_ce() as u64,
    );
    if r.gen_bool(spec.missing_rate.clamp(0.0, 1.0)) {
        return None;
    }
    let mid = level * (1.0 + r.gen_range(-0.01..0.01));
    let scale = if mid >= 10.0 { 100.0 } else { 1_000_000.0 };
    let open = (mid * (1.0 + r.gen_range(-0.02..0.02)) * scale).round() / scale;
    let close = (mid * (1.0 + r.gen_range(-0.02..0.02)) * scale).round() / scale;
    let high = (open.max(close) * (1.0 + r.gen_range(0.0..0.03)) * scale).ceil() / scale;
    let low = (open.min(close) * (1.0 - r.gen_range(0.0..0.03)) * scale).floor() / scale;
    let volume = (r.gen_range(10.0..50_000.0) * 1e8_f64).round() / 1e8;
    Ohlcv::new(open, high, low, close, volume).ok()
}

fn rng(seed: u64, a: u64, b: u64, c: u64) -> ChaCha8Rng {
    let mut bytes = [0u8; 32];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip([seed, a, b, c]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(bytes)
}

#[cfg(test)]
mod tests;
