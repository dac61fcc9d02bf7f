//! The Aggregator's index of settled days, so that what a round must fetch
//! is found at a cost that follows the universe's (exchange, symbol) pairs
//! and the cells due, never the cells held: an empty tick over 20M settled
//! cells judges 20k pairs, not 20M cells.
//!
//! For each (exchange, symbol) it keeps the runs of days whose cell is
//! settled, by the source that settled them (coalesced: a series settled
//! for years is one run). The Aggregator keeps it in step with the store:
//! built once from a loaded store, then told what each applied result left
//! in its cell (`Store::settled_by`, the store's own rule). Pure data: no
//! I/O, no actors; it never reads or writes the store after it is built.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use rangemap::RangeInclusiveMap;

use crate::model::{DayRange, Exchange, Symbol, TaskKey};
use crate::store::Store;

/// Settled days (numbered from the common era) -> who settled them. An
/// empty name is an unknown source, which settles for any.
type Runs = RangeInclusiveMap<i32, Arc<str>>;

/// exchange -> symbol -> settled runs of days.
#[derive(Debug, Default)]
pub(super) struct SettledIndex {
    runs: HashMap<Exchange, HashMap<Symbol, Runs>>,
}

/// A run of settled days being gathered while a store is read.
struct Run {
    exchange: Exchange,
    symbol: Symbol,
    first: i32,
    last: i32,
    source: Arc<str>,
}

impl SettledIndex {
    /// The index of what `store` holds settled: one pass over its cells,
    /// each run inserted once.
    pub(super) fn of(store: &Store) -> Self {
        let mut index = Self::default();
        let mut run: Option<Run> = None;
        for (exchange, symbol, day, source) in store.settled() {
            let d = day.num_days_from_ce();
            if let Some(r) = run.as_mut().filter(|r| {
                r.last.checked_add(1) == Some(d)
                    && r.source == *source
                    && r.symbol == *symbol
                    && r.exchange == *exchange
            }) {
                r.last = d;
                continue;
            }
            if let Some(r) = run.take() {
                index.insert(r);
            }
            run = Some(Run {
                exchange: exchange.clone(),
                symbol: symbol.clone(),
                first: d,
                last: d,
                source: source.clone(),
            });
        }
        if let Some(r) = run {
            index.insert(r);
        }
        index
    }

    fn insert(&mut self, run: Run) {
        self.runs
            .entry(run.exchange)
            .or_default()
            .entry(run.symbol)
            .or_default()
            .insert(run.first..=run.last, run.source);
    }

    /// The cell of `key` is now settled by `settled_by`, or (`None`) is
    /// not settled.
    pub(super) fn set(&mut self, key: &TaskKey, settled_by: Option<&Arc<str>>) {
        let d = key.day.num_days_from_ce();
        match settled_by {
            Some(source) => self.insert(Run {
                exchange: key.exchange.clone(),
                symbol: key.symbol.clone(),
                first: d,
                last: d,
                source: source.clone(),
            }),
            None => {
                if let Some(runs) = self
                    .runs
                    .get_mut(&key.exchange)
                    .and_then(|m| m.get_mut(&key.symbol))
                {
                    runs.remove(d..=d);
                }
            }
        }
    }

    /// The keys of `pairs` over `days` whose cell is not settled by the
    /// source that would be asked (`sources`' for a pair listed there,
    /// else `source`), in the order a round feeds them: day, then
    /// exchange, then symbol, as `pairs` has them. Costs a look-up a pair
    /// plus the due keys.
    pub(super) fn due(
        &self,
        pairs: &[(Exchange, Arc<[Symbol]>)],
        days: DayRange,
        source: &Arc<str>,
        sources: &HashMap<(Exchange, Symbol), Arc<str>>,
    ) -> Vec<TaskKey> {
        if days.is_empty() {
            return Vec::new();
        }
        let (from, to) = (days.from.num_days_from_ce(), days.to.num_days_from_ce());
        // (day, pair, symbol): sorted, the round's order.
        let mut due: Vec<(i32, u32, u32)> = Vec::new();
        for (p, (exchange, symbols)) in pairs.iter().enumerate() {
            let held = self.runs.get(exchange);
            for (s, symbol) in symbols.iter().enumerate() {
                let asked = if sources.is_empty() {
                    source
                } else {
                    sources
                        .get(&(exchange.clone(), symbol.clone()))
                        .unwrap_or(source)
                };
                let mut next = from;
                let mut push = |days: std::ops::Range<i32>| {
                    due.extend(days.map(|d| (d, p as u32, s as u32)));
                };
                if let Some(runs) = held.and_then(|m| m.get(symbol)) {
                    for (range, by) in runs.overlapping(&(from..=to)) {
                        if !by.is_empty() && by != asked {
                            continue;
                        }
                        push(next..*range.start());
                        next = next.max(range.end().saturating_add(1));
                    }
                }
                if next <= to {
                    push(next..to.saturating_add(1));
                }
            }
        }
        due.sort_unstable();
        due.into_iter()
            .filter_map(|(d, p, s)| {
                let (exchange, symbols) = &pairs[p as usize];
                Some(TaskKey {
                    exchange: exchange.clone(),
                    symbol: symbols[s as usize].clone(),
                    day: NaiveDate::from_num_days_from_ce_opt(d)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;
    use crate::store::Observation;

    fn day(raw: &str) -> NaiveDate {
        raw.parse().unwrap()
    }

    fn key(e: &str, s: &str, d: &str) -> TaskKey {
        TaskKey {
            exchange: Exchange::new(e).unwrap(),
            symbol: Symbol::new(s).unwrap(),
            day: day(d),
        }
    }

    fn pairs(e: &str, symbols: &[&str]) -> Vec<(Exchange, Arc<[Symbol]>)> {
        vec![(
            Exchange::new(e).unwrap(),
            symbols.iter().map(|s| Symbol::new(s).unwrap()).collect(),
        )]
    }

    fn week() -> DayRange {
        DayRange {
            from: day("2020-01-01"),
            to: day("2020-01-07"),
        }
    }

    /// The slow truth the index must agree with: every key, judged by the
    /// store.
    fn walked(store: &Store, pairs: &[(Exchange, Arc<[Symbol]>)], source: &str) -> Vec<TaskKey> {
        week()
            .days()
            .flat_map(|d| {
                pairs.iter().flat_map(move |(e, ss)| {
                    ss.iter().map(move |s| TaskKey {
                        exchange: e.clone(),
                        symbol: s.clone(),
                        day: d,
                    })
                })
            })
            .filter(|k| !store.is_settled(k, source))
            .collect()
    }

    #[test]
    fn the_index_finds_what_a_walk_of_the_store_finds_as_results_arrive() {
        let mut store = Store::new();
        let mut index = SettledIndex::default();
        let both = pairs("kraken", &["btc", "eth"]);
        let here: Arc<str> = Arc::from("http://here/");
        let apply = |store: &mut Store, index: &mut SettledIndex, k: TaskKey, obs: Observation| {
            store.apply(&k, &obs);
            index.set(&k, store.settled_by(&k));
        };
        let obs = |outcome: Outcome, is_final: bool, round: u64, source: &Arc<str>| Observation {
            source: source.clone(),
            is_final,
            ..Observation::settled(outcome, round)
        };
        let none = HashMap::new();
        assert_eq!(index.due(&both, week(), &here, &none).len(), 14);
        for d in ["2020-01-02", "2020-01-03", "2020-01-04", "2020-01-06"] {
            apply(
                &mut store,
                &mut index,
                key("kraken", "btc", d),
                obs(Outcome::NoPrice, true, 1, &here),
            );
        }
        // A provisional price and a failure settle nothing.
        apply(
            &mut store,
            &mut index,
            key("kraken", "eth", "2020-01-01"),
            obs(Outcome::NoPrice, false, 1, &here),
        );
        // Settled, then unsettled again by a newer provisional answer.
        apply(
            &mut store,
            &mut index,
            key("kraken", "btc", "2020-01-07"),
            obs(Outcome::NoPrice, true, 1, &here),
        );
        apply(
            &mut store,
            &mut index,
            key("kraken", "btc", "2020-01-07"),
            obs(Outcome::NoPrice, false, 2, &here),
        );
        // Settled by another source: due for this one.
        let there: Arc<str> = Arc::from("http://there/");
        apply(
            &mut store,
            &mut index,
            key("kraken", "eth", "2020-01-05"),
            obs(Outcome::NoPrice, true, 1, &there),
        );
        let due = index.due(&both, week(), &here, &none);
        assert_eq!(due, walked(&store, &both, "http://here/"));
        assert_eq!(due.len(), 14 - 4, "{due:?}");
        assert_eq!(
            index.due(&both, week(), &there, &none),
            walked(&store, &both, "http://there/")
        );
        // Built from the store, the index says the same.
        let rebuilt = SettledIndex::of(&store);
        assert_eq!(rebuilt.due(&both, week(), &here, &none), due);
        // A pair asked elsewhere is judged by its own source.
        let eth_there: HashMap<_, _> = [(
            (
                Exchange::new("kraken").unwrap(),
                Symbol::new("eth").unwrap(),
            ),
            there.clone(),
        )]
        .into();
        let mixed = index.due(&both, week(), &here, &eth_there);
        assert!(!mixed.contains(&key("kraken", "eth", "2020-01-05")));
        assert!(mixed.contains(&key("kraken", "btc", "2020-01-01")));
    }

    #[test]
    fn a_cell_of_an_unknown_source_settles_for_any() {
        let mut store = Store::new();
        let k = key("kraken", "btc", "2020-01-03");
        store.apply(&k, &Observation::settled(Outcome::NoPrice, 1));
        let index = SettledIndex::of(&store);
        let due = index.due(
            &pairs("kraken", &["btc"]),
            week(),
            &Arc::from("http://anywhere/"),
            &HashMap::new(),
        );
        assert_eq!(due.len(), 6);
        assert!(!due.contains(&k));
    }
}
