//! Building a store from a durable record at start: 20M cells at resume,
//! so a cell must cost a slot write, not map lookups. The SQLite record
//! gives its cells day first, (day, symbol, exchange), so each day repeats
//! the same run of series; the PostgreSQL record gives them symbol first,
//! one symbol's series at a time. `StoreBuilder` keeps every series it
//! fills in hand, in the order first seen, and a cursor to the one after
//! the last filled: in either order the next cell's series is usually the
//! one under the cursor, and otherwise one hash lookup away. A series
//! first seen is sized at once to reach the last day the record holds
//! (`StoreBuilder::reaching`), with a little room to grow, instead of
//! growing by an eighth a day at a time. Any other order is still correct,
//! only slower. Owns no rule of what may replace what: that is
//! `Store::apply`, for new results.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;

use super::series::Series;
use super::{Cell, Store};
use crate::model::{Exchange, Symbol, TaskKey};

/// A store being filled from a record.
#[derive(Default)]
pub struct StoreBuilder {
    store: Store,
    /// Every series being filled, in the order first seen, out of the
    /// store's map until `finish`.
    hand: Vec<(Exchange, Symbol, Series)>,
    /// Where each series of `hand` is.
    at: HashMap<(Exchange, Symbol), usize>,
    /// The series after the last one filled.
    cursor: usize,
    /// The last day the record holds, if told: how far a new series is
    /// sized at once.
    last_day: Option<NaiveDate>,
    /// The last source named, and its index.
    last_source: Option<(Arc<str>, u16)>,
}

impl StoreBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder that sizes each series at once to reach `last_day` (the
    /// record's newest day), with room for a few more days: no series is
    /// grown and copied again and again while the record is read.
    pub fn reaching(last_day: Option<NaiveDate>) -> Self {
        Self {
            last_day,
            ..Self::default()
        }
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
        let i = match self.hand.get(self.cursor) {
            Some((e, s, _)) if *e == key.exchange && *s == key.symbol => self.cursor,
            _ => self.find(key),
        };
        self.cursor = i + 1;
        let (was, now) = self.hand[i].2.restore(key.day, cell, source);
        self.store.census.replace(&was, &now);
    }

    /// The series of `key` in hand, taken in (and sized) if new.
    fn find(&mut self, key: &TaskKey) -> usize {
        let pair = (key.exchange.clone(), key.symbol.clone());
        if let Some(&i) = self.at.get(&pair) {
            return i;
        }
        let mut series = Series::default();
        if let Some(days) = self
            .last_day
            .and_then(|last| usize::try_from((last - key.day).num_days()).ok())
        {
            // To the last day, and an eighth more: the room a series grown
            // a day at a time keeps (`Series::index_mut`).
            let span = days + 1;
            series.slots.reserve_exact(span + span / 8 + 16);
        }
        self.hand.push((pair.0.clone(), pair.1.clone(), series));
        self.at.insert(pair, self.hand.len() - 1);
        self.hand.len() - 1
    }

    /// The store, every cell in place.
    pub fn finish(mut self) -> Store {
        for (exchange, symbol, series) in self.hand.drain(..) {
            Arc::make_mut(self.store.series.entry(exchange).or_default())
                .insert(symbol, Arc::new(series));
        }
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
