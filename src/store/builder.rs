//! Building a store from a durable record at start: cells arrive in the
//! record's key order, (symbol, day, exchange), and each is put in place as
//! it was. `StoreBuilder` keeps the series of the symbol being read in hand
//! (one per exchange) and the last source's index, so a cell costs a short
//! scan of the exchanges in hand and a slot write, not two map lookups
//! (20M cells at resume). Any other order is still correct, only slower.
//! Owns no rule of what may replace what: that is `Store::apply`, for new
//! results.

use std::sync::Arc;

use super::series::Series;
use super::{Cell, Store};
use crate::model::{Exchange, Symbol, TaskKey};

/// A store being filled from a record.
#[derive(Default)]
pub struct StoreBuilder {
    store: Store,
    /// The series of one symbol being filled, out of the store's map until
    /// another symbol comes.
    hand: Vec<(Exchange, Symbol, Series)>,
    /// The last source named, and its index.
    last_source: Option<(Arc<str>, u16)>,
}

impl StoreBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `cell` in place for `key` exactly as given (see `Store::put`).
    pub fn put(&mut self, key: &TaskKey, cell: &Cell) {
        let source = match cell.source.as_deref() {
            None | Some("") => 0,
            Some(name) => match &self.last_source {
                Some((last, i)) if **last == *name => *i,
                _ => {
                    let i = self.store.source_index(name);
                    self.last_source = Some((Arc::from(name), i));
                    i
                }
            },
        };
        if self.hand.first().is_some_and(|(_, s, _)| *s != key.symbol) {
            self.flush();
        }
        let at = match self.hand.iter().position(|(e, _, _)| *e == key.exchange) {
            Some(at) => at,
            None => {
                let series = self
                    .store
                    .series
                    .get_mut(&key.exchange)
                    .and_then(|m| Arc::make_mut(m).remove(&key.symbol))
                    .map(Arc::unwrap_or_clone)
                    .unwrap_or_default();
                self.hand
                    .push((key.exchange.clone(), key.symbol.clone(), series));
                self.hand.len() - 1
            }
        };
        let (was, now) = self.hand[at].2.restore(key.day, cell, source);
        self.store.census.replace(&was, &now);
    }

    fn flush(&mut self) {
        for (exchange, symbol, series) in self.hand.drain(..) {
            Arc::make_mut(self.store.series.entry(exchange).or_default())
                .insert(symbol, Arc::new(series));
        }
    }

    /// The store, every cell in place.
    pub fn finish(mut self) -> Store {
        self.flush();
        self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CellState, Ohlcv};
    use chrono::NaiveDate;

    fn key(e: &str, s: &str, day: u32) -> TaskKey {
        TaskKey {
            exchange: Exchange::new(e).unwrap(),
            symbol: Symbol::new(s).unwrap(),
            day: NaiveDate::from_ymd_opt(2020, 3, day).unwrap(),
        }
    }

    fn cell(close: f64, source: &str) -> Cell {
        Cell {
            state: CellState::Final,
            price: Some(Ohlcv::new(close, close, close, close, 1.0).unwrap()),
            flags: crate::model::Flags::NONE,
            fetched_at: Some("2020-03-20T10:00:00Z".parse().unwrap()),
            round: 3,
            source: Some(Arc::from(source)),
            note: None,
        }
    }

    /// In order or not, the builder gives the store that `put` one cell at
    /// a time gives.
    #[test]
    fn it_builds_what_put_builds_in_any_order() {
        let mut keys = Vec::new();
        for e in ["kraken", "okex"] {
            for s in ["btc", "eth"] {
                for day in [1, 2, 5] {
                    keys.push(key(e, s, day));
                }
            }
        }
        let sources = ["http://a/", "http://b/"];
        let mut by_put = Store::new();
        let mut built = StoreBuilder::new();
        let mut shuffled = StoreBuilder::new();
        let mut symbol_major = StoreBuilder::new();
        for (n, k) in keys.iter().enumerate() {
            let c = cell(n as f64 + 1.0, sources[n % 2]);
            by_put.put(k, &c);
            built.put(k, &c);
        }
        let mut record_order: Vec<(usize, &TaskKey)> = keys.iter().enumerate().collect();
        record_order.sort_by_key(|(_, k)| (k.symbol.clone(), k.day, k.exchange.clone()));
        for (n, k) in record_order {
            symbol_major.put(k, &cell(n as f64 + 1.0, sources[n % 2]));
        }
        for (n, k) in keys.iter().enumerate().rev() {
            shuffled.put(k, &cell(n as f64 + 1.0, sources[n % 2]));
        }
        let (built, shuffled, symbol_major) =
            (built.finish(), shuffled.finish(), symbol_major.finish());
        assert_eq!(
            symbol_major, by_put,
            "the record's (symbol, day, exchange) order"
        );
        for k in &keys {
            let want = by_put.get(&k.exchange, &k.symbol, k.day).unwrap();
            assert_eq!(
                built.get(&k.exchange, &k.symbol, k.day).as_ref(),
                Some(&want),
                "{k}"
            );
            assert_eq!(
                shuffled.get(&k.exchange, &k.symbol, k.day).as_ref(),
                Some(&want),
                "{k}"
            );
        }
        assert_eq!(built.len(), keys.len());
        assert_eq!(built, by_put);
    }
}
