//! Building a store from a durable record at start: 20M cells at resume,
//! so a cell must cost a slot write, not map lookups. A loader names each
//! series once (`StoreBuilder::series`, sized at once to reach the last
//! day the record holds, `StoreBuilder::reaching`, with a little room to
//! grow instead of growing by an eighth a day at a time) and each source
//! once (`StoreBuilder::source`), and then places every cell by the handle
//! it got (`StoreBuilder::place`): the record's loader keeps the handles
//! by the record's integer ids. Several builders may each fill their own
//! series on their own thread and be joined at the end
//! (`StoreBuilder::absorb`). `put` names a cell's series and source by
//! name, for callers with names in hand. Owns no rule of what may replace
//! what: that is `Store::apply`, for new results.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;

use super::series::{sized, span, Series};
use super::{Cell, Store};
use crate::model::{Exchange, Symbol, TaskKey};

/// A series being filled: a handle `StoreBuilder::series` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesAt(usize);

/// A store being filled from a record.
#[derive(Default)]
pub struct StoreBuilder {
    store: Store,
    /// Every series being filled, in the order first named, out of the
    /// store's map until `finish`.
    hand: Vec<(Exchange, Symbol, Series)>,
    /// Where each series of `hand` is.
    at: HashMap<(Exchange, Symbol), SeriesAt>,
    /// The last day the record holds, if told: how far a new series is
    /// sized at once.
    last_day: Option<NaiveDate>,
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

    /// An empty builder with this one's sources, numbered alike, and its
    /// last day: one to fill other series on another thread and `absorb`
    /// at the end.
    pub fn sibling(&self) -> Self {
        let mut store = Store::new();
        store.sources = self.store.sources.clone();
        Self {
            store,
            last_day: self.last_day,
            ..Self::default()
        }
    }

    /// The index a cell's `source` is placed under.
    pub fn source(&mut self, name: &str) -> u16 {
        self.store.source_index(name)
    }

    /// The series of (`exchange`, `symbol`), taken in if new and then
    /// sized from `first` (the first day it will be given) to the last
    /// day.
    pub fn series(&mut self, exchange: &Exchange, symbol: &Symbol, first: NaiveDate) -> SeriesAt {
        let pair = (exchange.clone(), symbol.clone());
        if let Some(&at) = self.at.get(&pair) {
            return at;
        }
        let mut series = Series::default();
        if let Some(last) = self.last_day.filter(|last| *last >= first) {
            series.slots.reserve_exact(sized(span(first, last)));
        }
        let at = SeriesAt(self.hand.len());
        self.hand.push((pair.0.clone(), pair.1.clone(), series));
        self.at.insert(pair, at);
        at
    }

    /// Puts `cell` in place for `day` of the series `at`, exactly as given
    /// (see `Store::put`), with the source `source` (from `source`; the
    /// cell's own `source` is not read).
    pub fn place(&mut self, at: SeriesAt, day: NaiveDate, cell: &Cell, source: u16) {
        let (was, now) = self.hand[at.0].2.restore(day, cell, source);
        self.store.census.replace(&was, &now);
    }

    /// Puts `cell` in place for `key` exactly as given (see `Store::put`).
    pub fn put(&mut self, key: &TaskKey, cell: &Cell) {
        let source = cell.source.as_deref().map_or(0, |name| self.source(name));
        let at = self.series(&key.exchange, &key.symbol, key.day);
        self.place(at, key.day, cell, source);
    }

    /// Takes in every series `other` filled. A series both filled gets
    /// `other`'s cells placed over its own; sources numbered differently
    /// are renumbered.
    pub fn absorb(&mut self, mut other: StoreBuilder) {
        let alike = Arc::ptr_eq(&self.store.sources, &other.store.sources)
            || self.store.sources == other.store.sources;
        let renumber: Option<Vec<u16>> = (!alike).then(|| {
            let names: Vec<Arc<str>> = other.store.sources.iter().cloned().collect();
            names.iter().map(|n| self.source(n)).collect()
        });
        for (exchange, symbol, mut series) in other.hand.drain(..) {
            if let Some(map) = &renumber {
                for slot in &mut series.slots {
                    slot.source = map.get(usize::from(slot.source)).copied().unwrap_or(0);
                }
            }
            match self.at.get(&(exchange.clone(), symbol.clone())) {
                None => {
                    self.at.insert(
                        (exchange.clone(), symbol.clone()),
                        SeriesAt(self.hand.len()),
                    );
                    self.hand.push((exchange, symbol, series));
                }
                Some(&at) => {
                    let sources = self.store.sources.clone();
                    for i in 0..series.slots.len() {
                        if let Some(cell) = series.cell(i, &sources) {
                            let source = series.slots[i].source;
                            let day = series.day(i);
                            self.place(at, day, &cell, source);
                        }
                    }
                    // Those cells are counted again by `place`.
                    for slot in &series.slots {
                        other
                            .store
                            .census
                            .replace(slot, &super::series::Slot::EMPTY);
                    }
                }
            }
        }
        self.store.census.add(&other.store.census);
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

    /// Builders filled apart are joined into the store one builder gives:
    /// a sibling numbers sources alike; another builder's sources are
    /// renumbered, and a series both filled gets the other's cells over
    /// its own, counted once.
    #[test]
    fn builders_filled_apart_join_into_the_store_one_gives() {
        let a = key("kraken", "btc", 1);
        let b = key("kraken", "eth", 2);
        let c = key("okex", "btc", 3);
        let mut one = StoreBuilder::new();
        for (k, s) in [(&a, "http://a/"), (&b, "http://b/"), (&c, "http://c/")] {
            one.put(k, &cell(1.0, s));
        }
        let one = one.finish();

        let mut left = StoreBuilder::new();
        left.source("http://a/");
        left.source("http://b/");
        let mut right = left.sibling();
        left.put(&a, &cell(1.0, "http://a/"));
        right.put(&b, &cell(1.0, "http://b/"));
        right.put(&c, &cell(1.0, "http://c/"));
        left.absorb(right);
        assert_eq!(left.finish(), one, "siblings");

        let mut left = StoreBuilder::new();
        left.put(&a, &cell(1.0, "http://a/"));
        left.put(&b, &cell(9.0, "http://a/"));
        let mut other = StoreBuilder::new();
        other.put(&c, &cell(1.0, "http://c/"));
        other.put(&b, &cell(1.0, "http://b/"));
        left.absorb(other);
        let joined = left.finish();
        for k in [&a, &b, &c] {
            assert_eq!(
                joined.get(&k.exchange, &k.symbol, k.day),
                one.get(&k.exchange, &k.symbol, k.day),
                "{k}"
            );
        }
        assert_eq!(joined.len(), 3);
        assert_eq!(joined.counts_by_state(), one.counts_by_state());
        assert_eq!(joined.price_count(), one.price_count());
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
