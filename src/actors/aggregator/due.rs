//! The Aggregator's index of settled days, so that what a round must fetch
//! is found at a cost that follows the universe's (exchange, symbol) pairs
//! and the cells due, never the cells held: an empty tick over 20M settled
//! cells judges 20k pairs, not 20M cells.
//!
//! For each (exchange, symbol) it keeps the runs of days whose cell is
//! settled, by the source that settled them (coalesced: a series settled
//! for years is one run). The Aggregator keeps it in step with the store:
//! built once from a loaded store, then told what each applied result left
//! in its cell (`Store::settled_by`, the store's own rule). A question that
//! found nothing due is remembered until the index changes: the same
//! question asked again (the Producer's next empty tick, with the same
//! shared pairs) is answered without judging 20,000 pairs again. Pure
//! data: no I/O, no actors; it never reads or writes the store after it is
//! built.

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
    /// The last question that found nothing due, while no run changed since.
    nothing_due: Option<Asked>,
    /// Questions answered by judging every pair (not from `nothing_due`).
    judged: u64,
}

/// A question to the index, as asked: the pairs' symbol lists and the
/// sources map are compared by identity (the Producer sends the ones it
/// keeps), the rest by value.
#[derive(Debug)]
struct Asked {
    pairs: Vec<(Exchange, Arc<[Symbol]>)>,
    days: DayRange,
    source: Arc<str>,
    sources: Arc<HashMap<(Exchange, Symbol), Arc<str>>>,
}

impl Asked {
    fn is(
        &self,
        pairs: &[(Exchange, Arc<[Symbol]>)],
        days: DayRange,
        source: &Arc<str>,
        sources: &Arc<HashMap<(Exchange, Symbol), Arc<str>>>,
    ) -> bool {
        self.days == days
            && self.source == *source
            && Arc::ptr_eq(&self.sources, sources)
            && self.pairs.len() == pairs.len()
            && self
                .pairs
                .iter()
                .zip(pairs)
                .all(|((e, s), (e2, s2))| e == e2 && Arc::ptr_eq(s, s2))
    }
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
        self.nothing_due = None;
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
                self.nothing_due = None;
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
    /// plus the due keys, or nothing when the same question found nothing
    /// due and no run changed since.
    pub(super) fn due(
        &mut self,
        pairs: &[(Exchange, Arc<[Symbol]>)],
        days: DayRange,
        source: &Arc<str>,
        sources: &Arc<HashMap<(Exchange, Symbol), Arc<str>>>,
    ) -> Vec<TaskKey> {
        if days.is_empty() {
            return Vec::new();
        }
        if self
            .nothing_due
            .as_ref()
            .is_some_and(|asked| asked.is(pairs, days, source, sources))
        {
            return Vec::new();
        }
        self.judged += 1;
        let due = self.judge(pairs, days, source, sources);
        self.nothing_due = due.is_empty().then(|| Asked {
            pairs: pairs.to_vec(),
            days,
            source: source.clone(),
            sources: sources.clone(),
        });
        due
    }

    /// Questions answered by judging every pair so far.
    #[cfg(test)]
    pub(super) fn judged(&self) -> u64 {
        self.judged
    }

    fn judge(
        &self,
        pairs: &[(Exchange, Arc<[Symbol]>)],
        days: DayRange,
        source: &Arc<str>,
        sources: &HashMap<(Exchange, Symbol), Arc<str>>,
    ) -> Vec<TaskKey> {
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
        let none: Arc<HashMap<(Exchange, Symbol), Arc<str>>> = Arc::default();
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
        let mut rebuilt = SettledIndex::of(&store);
        assert_eq!(rebuilt.due(&both, week(), &here, &none), due);
        // A pair asked elsewhere is judged by its own source.
        let eth_there: Arc<HashMap<_, _>> = Arc::new(HashMap::from([(
            (
                Exchange::new("kraken").unwrap(),
                Symbol::new("eth").unwrap(),
            ),
            there.clone(),
        )]));
        let mixed = index.due(&both, week(), &here, &eth_there);
        assert!(!mixed.contains(&key("kraken", "eth", "2020-01-05")));
        assert!(mixed.contains(&key("kraken", "btc", "2020-01-01")));
    }

    #[test]
    fn a_cell_of_an_unknown_source_settles_for_any() {
        let mut store = Store::new();
        let k = key("kraken", "btc", "2020-01-03");
        store.apply(&k, &Observation::settled(Outcome::NoPrice, 1));
        let mut index = SettledIndex::of(&store);
        let due = index.due(
            &pairs("kraken", &["btc"]),
            week(),
            &Arc::from("http://anywhere/"),
            &Arc::default(),
        );
        assert_eq!(due.len(), 6);
        assert!(!due.contains(&k));
    }
}

#[cfg(test)]
mod remembered {
    use super::*;
    use crate::model::Outcome;
    use crate::store::Observation;

    fn week() -> DayRange {
        DayRange {
            from: "2020-01-01".parse().unwrap(),
            to: "2020-01-07".parse().unwrap(),
        }
    }

    /// The Producer's empty ticks ask the same question again and again:
    /// it is judged once, and judged again as soon as a run changes (a
    /// cell unsettled, or settled by another source) or the question does.
    #[test]
    fn nothing_due_is_remembered_until_the_index_or_the_question_changes() {
        let mut store = Store::new();
        let btc = Symbol::new("btc").unwrap();
        let kraken = Exchange::new("kraken").unwrap();
        let source: Arc<str> = Arc::from("http://here/");
        let settle = |store: &mut Store, day: NaiveDate, is_final: bool, round: u64| {
            let k = TaskKey {
                exchange: kraken.clone(),
                symbol: btc.clone(),
                day,
            };
            store.apply(
                &k,
                &Observation {
                    source: source.clone(),
                    is_final,
                    ..Observation::settled(Outcome::NoPrice, round)
                },
            );
            k
        };
        for day in week().days() {
            settle(&mut store, day, true, 1);
        }
        let mut index = SettledIndex::of(&store);
        let pairs: Vec<(Exchange, Arc<[Symbol]>)> =
            vec![(kraken.clone(), Arc::from([btc.clone()]))];
        let sources: Arc<HashMap<(Exchange, Symbol), Arc<str>>> = Arc::default();
        for _ in 0..5 {
            assert!(index.due(&pairs, week(), &source, &sources).is_empty());
        }
        assert_eq!(index.judged(), 1, "asked five times, judged once");

        // A cell made provisional again is due at once.
        let k = settle(&mut store, "2020-01-04".parse().unwrap(), false, 2);
        index.set(&k, store.settled_by(&k));
        assert_eq!(
            index.due(&pairs, week(), &source, &sources),
            vec![k.clone()]
        );
        assert_eq!(index.judged(), 2);
        settle(&mut store, k.day, true, 3);
        index.set(&k, store.settled_by(&k));
        assert!(index.due(&pairs, week(), &source, &sources).is_empty());
        assert_eq!(index.judged(), 3);

        // Another day, another source, or new pairs: a new question.
        let longer = DayRange {
            to: "2020-01-08".parse().unwrap(),
            ..week()
        };
        assert_eq!(index.due(&pairs, longer, &source, &sources).len(), 1);
        assert_eq!(
            index
                .due(&pairs, week(), &Arc::from("http://there/"), &sources)
                .len(),
            7
        );
        let rebuilt: Vec<(Exchange, Arc<[Symbol]>)> =
            vec![(kraken.clone(), Arc::from([btc.clone()]))];
        assert!(index.due(&rebuilt, week(), &source, &sources).is_empty());
        assert_eq!(index.judged(), 6);
    }
}
