//! Selecting cells: which ones to keep (`Filter`), what is known about each
//! (`Row`), and which of a price's five numbers to show (`Field`). The
//! cross-exchange statistics are in `across`, the gaps of each (exchange,
//! symbol) in `coverage`; turning rows into text is
//! `crate::render`'s job (re-exported here, where callers look for it).
//!
//! Everything here is pure: a store comes in, rows go out. This module never
//! reads files, talks to actors or prints; the caller decides where the rows
//! come from and where they go.

pub mod across;
pub mod coverage;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod names;

use std::collections::BTreeSet;
use std::fmt;

use chrono::NaiveDate;
use serde::Serialize;

use crate::model::{CellState, Exchange, Flags, Ohlcv, Symbol};

pub use across::{across, Across};
pub use names::{Known, UnknownName};

/// One cell and what is known about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub exchange: Exchange,
    pub symbol: Symbol,
    pub day: NaiveDate,
    pub state: CellState,
    /// The price of a final or provisional cell (a rejected price is not
    /// shown as one: its reason says what it was).
    pub price: Option<Ohlcv>,
    pub flags: Flags,
    pub fetched_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why a cell failed or was rejected (or a refetch's last failure).
    pub reason: Option<String>,
    /// The exchange's market the cell was asked in (`XBTUSD`), for an
    /// exchange asked through its own API.
    pub market: Option<String>,
}

/// Which rows to keep. An empty set means no filter on that dimension, so
/// the default filter keeps everything. `from` and `to` are inclusive because
/// people name the first and the last day they want, not the day after.
/// Names are sets: a lookup costs a log, however many are asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub exchanges: BTreeSet<Exchange>,
    pub symbols: BTreeSet<Symbol>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Leave out provisional cells (prices or "none" that may still change).
    pub final_only: bool,
    /// Leave out prices with any quality flag.
    pub exclude_flagged: bool,
}

impl Filter {
    /// Whether a cell in `state` with `flags` is kept.
    pub fn keeps(&self, state: CellState, flags: Flags) -> bool {
        !(self.final_only && state == CellState::Provisional
            || self.exclude_flagged && !flags.is_empty())
    }

    /// Whether a row at these coordinates is kept. Takes the coordinates
    /// rather than a `Row` so callers can filter before building rows.
    /// A `from` later than `to` keeps nothing.
    pub fn matches(&self, exchange: &Exchange, symbol: &Symbol, day: NaiveDate) -> bool {
        let exchange_ok = self.exchanges.is_empty() || self.exchanges.contains(exchange);
        let symbol_ok = self.symbols.is_empty() || self.symbols.contains(symbol);
        let from_ok = match self.from {
            Some(from) => from <= day,
            None => true,
        };
        let to_ok = match self.to {
            Some(to) => day <= to,
            None => true,
        };
        exchange_ok && symbol_ok && from_ok && to_ok
    }
}

/// The cells in `store` that `filter` keeps, every state included, by
/// exchange, day, symbol (the snapshot's order).
pub fn rows(store: &crate::store::Store, filter: &Filter) -> Vec<Row> {
    let mut out: Vec<Row> = store
        .iter()
        .filter(|(e, s, d, c)| filter.matches(e, s, *d) && filter.keeps(c.state, c.flags))
        .map(|(e, s, day, c)| row(e, s, day, c))
        .collect();
    out.sort_by(|a, b| (&a.exchange, a.day, &a.symbol).cmp(&(&b.exchange, b.day, &b.symbol)));
    out
}

/// Where a page ends: the last (exchange, symbol, day) it holds, written
/// `exchange/symbol/YYYY-MM-DD`; the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(pub crate::model::TaskKey);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{raw:?} is not a cursor exchange/symbol/YYYY-MM-DD (take the `next` of a page)"
            )
        };
        let mut parts = raw.split('/');
        let (Some(e), Some(s), Some(d), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Cursor(crate::model::TaskKey {
            exchange: Exchange::new(e).map_err(|_| bad())?,
            symbol: Symbol::new(s).map_err(|_| bad())?,
            day: d.parse::<crate::model::Day>().map_err(|_| bad())?.0,
        }))
    }
}

/// A page of the cells `filter` keeps, in (exchange, symbol, day) order,
/// starting after `after`: at most `limit` rows, and the cursor of the next
/// page if there is more. Costs the page, not the store.
pub fn page(
    store: &crate::store::Store,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: usize,
) -> (Vec<Row>, Option<Cursor>) {
    let mut out = Vec::with_capacity(limit.min(4096));
    let mut kept = store
        .iter_where(
            after.map(|c| &c.0),
            &filter.exchanges,
            &filter.symbols,
            filter.from,
            filter.to,
        )
        .filter(|(e, s, d, c)| filter.matches(e, s, *d) && filter.keeps(c.state, c.flags));
    for (e, s, day, c) in kept.by_ref().take(limit) {
        out.push(row(e, s, day, c));
    }
    let next = match (kept.next(), out.last()) {
        (Some(_), Some(last)) => Some(Cursor(crate::model::TaskKey {
            exchange: last.exchange.clone(),
            symbol: last.symbol.clone(),
            day: last.day,
        })),
        _ => None,
    };
    (out, next)
}

fn row(e: &Exchange, s: &Symbol, day: NaiveDate, c: crate::store::Cell) -> Row {
    Row {
        exchange: e.clone(),
        symbol: s.clone(),
        day,
        state: c.state,
        price: c.usable_price(),
        flags: c.flags,
        fetched_at: c.fetched_at,
        reason: c.note.map(|n| n.reason),
        market: c
            .source
            .as_deref()
            .and_then(crate::model::Market::of_source)
            .map(str::to_owned),
    }
}

/// One of the five numbers of an `Ohlcv`, chosen by name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Open,
    High,
    Low,
    Close,
    Volume,
}

impl Field {
    /// Every field, in the order the columns are shown.
    pub const ALL: [Field; 5] = [
        Field::Open,
        Field::High,
        Field::Low,
        Field::Close,
        Field::Volume,
    ];

    /// This field's number in `p`.
    pub fn of(self, p: &Ohlcv) -> f64 {
        match self {
            Field::Open => p.open,
            Field::High => p.high,
            Field::Low => p.low,
            Field::Close => p.close,
            Field::Volume => p.volume,
        }
    }

    /// The lowercase name, as used for column headers, JSON keys and parsing.
    pub fn name(self) -> &'static str {
        match self {
            Field::Open => "open",
            Field::High => "high",
            Field::Low => "low",
            Field::Close => "close",
            Field::Volume => "volume",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no `Field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown field {0:?}, expected one of 'open', 'high', 'low', 'close', 'volume'")]
pub struct ParseFieldError(pub String);

impl std::str::FromStr for Field {
    type Err = ParseFieldError;

    /// Exact lowercase names only, the same spelling clap and serde accept,
    /// so one name means one field wherever it is written.
    fn from_str(s: &str) -> Result<Self, ParseFieldError> {
        Field::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| ParseFieldError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{day, ex, sym};
    use super::*;

    // ---- Filter ----

    #[test]
    fn an_empty_filter_keeps_every_row() {
        let f = Filter::default();
        assert!(f.matches(&ex("kraken"), &sym("btc"), day(1999, 1, 1)));
        assert!(f.matches(&ex("binance"), &sym("eth"), day(2030, 12, 31)));
    }

    #[test]
    fn a_filter_keeps_only_the_listed_exchanges() {
        let f = Filter {
            exchanges: [ex("kraken"), ex("binance")].into_iter().collect(),
            ..Filter::default()
        };
        let d = day(2020, 3, 13);
        assert!(f.matches(&ex("kraken"), &sym("btc"), d));
        assert!(f.matches(&ex("binance"), &sym("eth"), d));
        assert!(!f.matches(&ex("coinbase"), &sym("btc"), d));
    }

    #[test]
    fn a_filter_keeps_only_the_listed_symbols() {
        let f = Filter {
            symbols: [sym("btc")].into_iter().collect(),
            ..Filter::default()
        };
        let d = day(2020, 3, 13);
        assert!(f.matches(&ex("kraken"), &sym("btc"), d));
        assert!(!f.matches(&ex("kraken"), &sym("eth"), d));
    }

    #[test]
    fn filter_dates_include_both_bounds() {
        let f = Filter {
            from: Some(day(2020, 3, 10)),
            to: Some(day(2020, 3, 13)),
            ..Filter::default()
        };
        let (e, s) = (ex("kraken"), sym("btc"));
        assert!(!f.matches(&e, &s, day(2020, 3, 9)));
        assert!(f.matches(&e, &s, day(2020, 3, 10)));
        assert!(f.matches(&e, &s, day(2020, 3, 11)));
        assert!(f.matches(&e, &s, day(2020, 3, 13)));
        assert!(!f.matches(&e, &s, day(2020, 3, 14)));
    }

    #[test]
    fn a_filter_with_one_date_bound_is_open_on_the_other_side() {
        let (e, s) = (ex("kraken"), sym("btc"));
        let from_only = Filter {
            from: Some(day(2020, 3, 10)),
            ..Filter::default()
        };
        assert!(!from_only.matches(&e, &s, day(2020, 3, 9)));
        assert!(from_only.matches(&e, &s, day(2099, 1, 1)));
        let to_only = Filter {
            to: Some(day(2020, 3, 10)),
            ..Filter::default()
        };
        assert!(to_only.matches(&e, &s, day(1970, 1, 1)));
        assert!(!to_only.matches(&e, &s, day(2020, 3, 11)));
    }

    #[test]
    fn filter_dimensions_must_all_match() {
        let f = Filter {
            exchanges: [ex("kraken")].into_iter().collect(),
            symbols: [sym("btc")].into_iter().collect(),
            from: Some(day(2020, 1, 1)),
            to: Some(day(2020, 12, 31)),
            ..Filter::default()
        };
        assert!(f.matches(&ex("kraken"), &sym("btc"), day(2020, 6, 1)));
        assert!(!f.matches(&ex("binance"), &sym("btc"), day(2020, 6, 1)));
        assert!(!f.matches(&ex("kraken"), &sym("eth"), day(2020, 6, 1)));
        assert!(!f.matches(&ex("kraken"), &sym("btc"), day(2021, 6, 1)));
    }

    #[test]
    fn a_filter_whose_from_is_after_its_to_keeps_nothing() {
        let f = Filter {
            from: Some(day(2020, 3, 14)),
            to: Some(day(2020, 3, 13)),
            ..Filter::default()
        };
        for d in [day(2020, 3, 13), day(2020, 3, 14)] {
            assert!(!f.matches(&ex("kraken"), &sym("btc"), d));
        }
    }

    // ---- Field ----

    #[test]
    fn field_of_picks_its_own_number() {
        let p = Ohlcv {
            open: 1.0,
            high: 2.0,
            low: 3.0,
            close: 4.0,
            volume: 5.0,
        };
        let got: Vec<f64> = Field::ALL.iter().map(|f| f.of(&p)).collect();
        assert_eq!(got, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn one_field_name_means_the_same_field_everywhere() {
        for f in Field::ALL {
            assert_eq!(f.name().parse::<Field>(), Ok(f));
            assert_eq!(<Field as clap::ValueEnum>::from_str(f.name(), false), Ok(f));
            let json = format!("\"{}\"", f.name());
            assert_eq!(serde_json::from_str::<Field>(&json).expect("serde name"), f);
            assert_eq!(f.to_string(), f.name());
        }
    }

    #[test]
    fn a_bad_field_name_is_named_in_the_error() {
        let err = "closing".parse::<Field>().expect_err("not a field");
        assert_eq!(err, ParseFieldError("closing".to_owned()));
        let msg = err.to_string();
        assert!(msg.contains("\"closing\""), "{msg}");
        for allowed in ["open", "high", "low", "close", "volume"] {
            assert!(msg.contains(allowed), "{msg} lacks {allowed}");
        }
        assert!("Close".parse::<Field>().is_err());
        assert!("".parse::<Field>().is_err());
    }
}
