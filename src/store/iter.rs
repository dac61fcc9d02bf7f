//! Walking a store's cells in order: every cell, from a cursor, only the
//! exchanges, symbols and days a question names (each name looked up, each
//! series sliced to the days asked), or one (exchange, symbol). Reading
//! only; what a cell may become is `store`'s `apply`.

use chrono::NaiveDate;

use std::sync::Arc;

use super::series::Series;
use super::{BySymbol, Cell, Store};
use crate::model::{Exchange, Symbol, TaskKey};

impl Store {
    /// Every held cell, by exchange, symbol, then day.
    pub fn iter(&self) -> impl Iterator<Item = (&Exchange, &Symbol, NaiveDate, Cell)> + '_ {
        self.series.iter().flat_map(move |(e, by_symbol)| {
            by_symbol.iter().flat_map(move |(s, series)| {
                (0..series.slots.len()).filter_map(move |i| {
                    Some((e, s, series.day(i), series.cell(i, &self.sources)?))
                })
            })
        })
    }

    /// The held cells strictly after `after` in (exchange, symbol, day)
    /// order (all of them for `None`), skipping straight to it: a page of a
    /// large store costs the page, not what lies before it.
    pub fn iter_after<'a>(
        &'a self,
        after: Option<&'a TaskKey>,
    ) -> impl Iterator<Item = (&'a Exchange, &'a Symbol, NaiveDate, Cell)> + 'a {
        use std::ops::Bound::{Included, Unbounded};
        let exchanges = match after {
            Some(k) => self.series.range((Included(&k.exchange), Unbounded)),
            None => self.series.range::<Exchange, _>(..),
        };
        exchanges.flat_map(move |(e, by_symbol)| {
            let at_cursor = after.filter(|k| &k.exchange == e);
            let symbols = match at_cursor {
                Some(k) => by_symbol.range((Included(&k.symbol), Unbounded)),
                None => by_symbol.range::<Symbol, _>(..),
            };
            symbols.flat_map(move |(s, series)| {
                let start = match at_cursor.filter(|k| &k.symbol == s) {
                    Some(k) => series.first_after(k.day),
                    None => 0,
                };
                (start..series.slots.len()).filter_map(move |i| {
                    Some((e, s, series.day(i), series.cell(i, &self.sources)?))
                })
            })
        })
    }

    /// The held cells strictly after `after`, of the exchanges and symbols
    /// named (every one held for an empty set), within `from..=to`, in
    /// (exchange, symbol, day) order: each name is looked up and each
    /// series sliced to the days, so a question about one symbol-day costs
    /// the exchanges asked, not the cells held.
    pub fn iter_where<'a>(
        &'a self,
        after: Option<&'a TaskKey>,
        exchanges: &'a std::collections::BTreeSet<Exchange>,
        symbols: &'a std::collections::BTreeSet<Symbol>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> impl Iterator<Item = (&'a Exchange, &'a Symbol, NaiveDate, Cell)> + 'a {
        use std::ops::Bound::{Included, Unbounded};
        let by_exchange: Box<dyn Iterator<Item = (&Exchange, &Arc<BySymbol>)>> =
            if exchanges.is_empty() {
                match after {
                    Some(k) => Box::new(self.series.range((Included(&k.exchange), Unbounded))),
                    None => Box::new(self.series.iter()),
                }
            } else {
                Box::new(
                    exchanges
                        .iter()
                        .filter(move |e| after.is_none_or(|k| **e >= k.exchange))
                        .filter_map(|e| self.series.get_key_value(e)),
                )
            };
        by_exchange.flat_map(move |(e, by_symbol)| {
            let at_cursor = after.filter(|k| &k.exchange == e);
            let pairs: Box<dyn Iterator<Item = (&Symbol, &Arc<Series>)>> = if symbols.is_empty() {
                match at_cursor {
                    Some(k) => Box::new(by_symbol.range((Included(&k.symbol), Unbounded))),
                    None => Box::new(by_symbol.iter()),
                }
            } else {
                Box::new(
                    symbols
                        .iter()
                        .filter(move |s| at_cursor.is_none_or(|k| **s >= k.symbol))
                        .filter_map(|s| by_symbol.get_key_value(s)),
                )
            };
            pairs.flat_map(move |(s, series)| {
                let mut start = match at_cursor.filter(|k| &k.symbol == s) {
                    Some(k) => series.first_after(k.day),
                    None => 0,
                };
                if let Some(from) = from.and_then(|d| d.pred_opt()) {
                    start = start.max(series.first_after(from));
                }
                let end = to.map_or(series.slots.len(), |d| series.first_after(d));
                (start..end.max(start)).filter_map(move |i| {
                    Some((e, s, series.day(i), series.cell(i, &self.sources)?))
                })
            })
        })
    }

    /// Every (exchange, symbol) with a series, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&Exchange, &Symbol)> + '_ {
        self.series
            .iter()
            .flat_map(|(e, by_symbol)| by_symbol.keys().map(move |s| (e, s)))
    }

    /// The held cells of one (exchange, symbol), by day.
    pub fn cells_of<'a>(
        &'a self,
        exchange: &Exchange,
        symbol: &Symbol,
    ) -> impl Iterator<Item = (NaiveDate, Cell)> + 'a {
        let series = self.series.get(exchange).and_then(|m| m.get(symbol));
        series.into_iter().flat_map(move |series| {
            (0..series.slots.len())
                .filter_map(move |i| Some((series.day(i), series.cell(i, &self.sources)?)))
        })
    }
}
