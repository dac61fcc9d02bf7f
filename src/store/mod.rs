//! The compact exchange -> date -> symbol store the Aggregator owns: one
//! cell per (exchange, symbol, day) saying what is known about it (a final
//! or provisional price, "none", a failure, a rejection), with its flags,
//! when it was fetched, in which round and from which source.
//!
//! This file owns the rules of what may replace what (`Store::apply`): a
//! stale answer never overwrites a newer one, a failure never replaces an
//! answer, and a provisional "none" never drops a price; and the questions
//! asked of the store (`get`, `answer`, `is_settled`, counts, failures).
//! How cells are packed is `store::series` (one fixed-size slot a day per
//! (exchange, symbol), names stored once per series, so a million cells cost
//! tens of megabytes); each series, each exchange's map of them and the
//! source names sit behind an `Arc`, so cloning the store (a snapshot, each
//! API question) costs a handful of counts, not a walk of 20,000 series,
//! and a later write copies only what it touches. The JSON form is `store::json`; filling a store from the
//! record at start is `store::builder`; walking its cells in order is
//! `store::iter`. Pure data: no I/O, no actors.

mod builder;
mod census;
mod iter;
pub mod json;
mod series;
mod sources;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::model::{CellState, Exchange, Flags, Ohlcv, Outcome, Symbol, TaskKey};
pub use builder::{SeriesAt, StoreBuilder};
use census::Census;
use series::{Series, Slot};
use sources::Sources;

/// The order in which answers were asked for: a round, then the
/// Supervisor's dispatch number within the process. A result whose stamp is
/// not newer than the cell's is stale (or a duplicate) and changes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub round: u64,
    pub dispatch: u64,
}

/// One result to record, as the Supervisor decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub outcome: Outcome,
    /// The answer was given after the day closed plus the settle grace.
    pub is_final: bool,
    /// When the source was asked.
    pub asked_at: DateTime<Utc>,
    /// Which source answered (its identity, e.g. the server's URL).
    pub source: Arc<str>,
    pub stamp: Stamp,
}

impl Observation {
    /// A final answer of `round` from an unnamed source, asked now: for
    /// building stores by hand (tests, benchmarks, imports).
    pub fn settled(outcome: Outcome, round: u64) -> Self {
        Self {
            outcome,
            is_final: true,
            asked_at: Utc::now(),
            source: Arc::from(""),
            stamp: Stamp { round, dispatch: 0 },
        }
    }
}

/// A note kept beside a cell: why it failed or was rejected, or the last
/// failure of a refetch that left an earlier answer in place.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Note {
    pub reason: String,
    pub attempts: u32,
}

/// What the store knows about one cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub state: CellState,
    /// Held for final and provisional prices, and for a rejected price.
    pub price: Option<Ohlcv>,
    pub flags: Flags,
    /// When the source was asked for what the cell holds (unknown for
    /// cells loaded from a version-1 snapshot).
    pub fetched_at: Option<DateTime<Utc>>,
    /// The round that last recorded a result for the cell.
    pub round: u64,
    /// The source that gave what the cell holds (unknown for version 1).
    pub source: Option<Arc<str>>,
    pub note: Option<Note>,
}

impl Cell {
    /// A price that counts as one: final or provisional (never a rejected one).
    pub fn usable_price(&self) -> Option<Ohlcv> {
        match self.state {
            CellState::Final | CellState::Provisional => self.price,
            _ => None,
        }
    }
}

/// How a result changed the counts of its round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The cell's first result in this round, counted as this state.
    New(CellState),
    /// A newer result in the same round: `before` is replaced by `now` in
    /// the counts.
    Again { before: CellState, now: CellState },
    /// Older than (or the same as) what the cell holds: nothing changed.
    Stale,
}

/// One exchange's series, by symbol.
type BySymbol = BTreeMap<Symbol, Arc<Series>>;

/// exchange -> date -> symbol -> cell, compactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    series: BTreeMap<Exchange, Arc<BySymbol>>,
    /// Source identities; index 0 is "unknown".
    sources: Arc<Sources>,
    /// Cells by state and usable prices, kept as slots change.
    census: Census,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    fn source_index(&mut self, source: &str) -> u16 {
        // Found without a write: the names stay shared with any clone.
        match self.sources.find(source) {
            Some(i) => i,
            None => Arc::make_mut(&mut self.sources).index(source),
        }
    }

    fn series_mut(&mut self, key: &TaskKey) -> &mut Series {
        let by_symbol = Arc::make_mut(self.series.entry(key.exchange.clone()).or_default());
        Arc::make_mut(by_symbol.entry(key.symbol.clone()).or_default())
    }

    /// Records a result for `key`, by the rules every cell lives by:
    /// - a result not newer (by `Stamp`) than the cell's last is stale and
    ///   changes nothing;
    /// - a failure never replaces an answer (price, "none", rejection): the
    ///   answer stays and the failure is kept as the cell's note;
    /// - a provisional "none" never drops a held price;
    /// - anything else replaces what the cell held.
    pub fn apply(&mut self, key: &TaskKey, obs: &Observation) -> Applied {
        let source = self.source_index(&obs.source);
        let mut census = self.census;
        let series = self.series_mut(key);
        let i = series.index_mut(key.day);
        let slot = &mut series.slots[i];
        if slot.cell_state().is_some() && !slot.is_older_than(obs.stamp) {
            return Applied::Stale;
        }
        let was = *slot;
        let counted = obs.outcome.state(obs.is_final);
        let before = (slot.cell_state().is_some() && u64::from(slot.round) == obs.stamp.round)
            .then(|| slot.counted())
            .flatten();
        let held = slot.cell_state();
        let holds_answer = held.is_some_and(|s| s != CellState::Failed);
        let mut note = None;
        let fresh = |slot: &mut Slot, state: CellState| {
            slot.set_state(state, counted);
            slot.set_fetched_at(Some(obs.asked_at));
            slot.source = source;
        };
        match &obs.outcome {
            Outcome::Price { price, flags } => {
                slot.set_price(Some(*price), *flags);
                fresh(slot, counted);
            }
            Outcome::NoPrice if !obs.is_final && slot.price().is_some() => {
                // Keep the price; the cell stays due.
                slot.set_state(CellState::Provisional, counted);
                note = Some(Note {
                    reason: "the source answered \"none\" for a day it had a price for".into(),
                    attempts: 1,
                });
            }
            Outcome::NoPrice => {
                slot.set_price(None, Flags::NONE);
                fresh(slot, counted);
            }
            Outcome::Failed { reason, attempts } => {
                let failure = Note {
                    reason: reason.clone(),
                    attempts: *attempts,
                };
                if holds_answer {
                    let state = held.unwrap_or(CellState::Failed);
                    slot.set_state(state, counted);
                } else {
                    slot.set_price(None, Flags::NONE);
                    fresh(slot, CellState::Failed);
                }
                note = Some(failure);
            }
            Outcome::Rejected { reason, price } => {
                slot.set_price(*price, Flags::NONE);
                fresh(slot, CellState::Rejected);
                note = Some(Note {
                    reason: reason.clone(),
                    attempts: 1,
                });
            }
        }
        slot.set_stamp(obs.stamp);
        census.replace(&was, slot);
        match note {
            Some(n) => series.notes.insert(i as u32, n),
            None => series.notes.remove(&(i as u32)),
        };
        self.census = census;
        match before {
            None => Applied::New(counted),
            Some(before) => Applied::Again {
                before,
                now: counted,
            },
        }
    }

    /// Sets the cross-exchange checks' flags of a held cell (the rest of
    /// it, the price above all, is kept as sent); whether they changed.
    /// The checks are the Aggregator's, recomputed for a whole symbol-day.
    pub fn set_checks(&mut self, key: &TaskKey, checks: Flags) -> bool {
        let held = self
            .series
            .get(&key.exchange)
            .and_then(|m| m.get(&key.symbol))
            .and_then(|s| s.index(key.day).map(|i| s.slots[i]));
        match held {
            Some(slot)
                if slot.cell_state().is_some()
                    && Flags::from_bits(slot.flags_bits()).with_checks(checks)
                        != Flags::from_bits(slot.flags_bits()) =>
            {
                let series = self.series_mut(key);
                let i = series.index_mut(key.day);
                series.slots[i].set_checks(checks)
            }
            _ => false,
        }
    }

    /// The series of `symbol`, by exchange: the cells of one symbol-day
    /// are each exchange's slot of that day.
    pub fn exchanges_of<'a>(
        &'a self,
        symbol: &'a Symbol,
    ) -> impl Iterator<Item = &'a Exchange> + 'a {
        self.series
            .iter()
            .filter(move |(_, m)| m.contains_key(symbol))
            .map(|(e, _)| e)
    }

    /// What the store knows about a key.
    pub fn get(&self, exchange: &Exchange, symbol: &Symbol, day: NaiveDate) -> Option<Cell> {
        let s = self.series.get(exchange)?.get(symbol)?;
        s.cell(s.index(day)?, &self.sources)
    }

    /// The source's answer for a key: `Some(Some(p))` a price (final or
    /// provisional), `Some(None)` it has none, `None` no answer (never
    /// fetched, failed, or rejected).
    pub fn answer(
        &self,
        exchange: &Exchange,
        symbol: &Symbol,
        day: NaiveDate,
    ) -> Option<Option<Ohlcv>> {
        let c = self.get(exchange, symbol, day)?;
        match c.state {
            CellState::Final | CellState::Provisional => Some(c.price),
            CellState::NoPrice => Some(None),
            CellState::Failed | CellState::Rejected => None,
        }
    }

    /// Settled and from `source` (or from an unknown source: a version-1
    /// snapshot): no need to fetch it again.
    pub fn is_settled(&self, key: &TaskKey, source: &str) -> bool {
        let Some(s) = self
            .series
            .get(&key.exchange)
            .and_then(|m| m.get(&key.symbol))
        else {
            return false;
        };
        let Some(slot) = s.index(key.day).map(|i| &s.slots[i]) else {
            return false;
        };
        let same_source = slot.source == 0
            || self
                .sources
                .get(usize::from(slot.source))
                .is_some_and(|s| &**s == source);
        slot.cell_state().is_some_and(CellState::is_settled) && same_source
    }

    /// Who settled the cell of `key`: its source's identity (empty for an
    /// unknown source, which settles for any) if the cell is settled,
    /// `None` if it is not (or not held). The one rule `is_settled` reads,
    /// for an index of settled days kept beside the store.
    pub fn settled_by(&self, key: &TaskKey) -> Option<&Arc<str>> {
        let s = self.series.get(&key.exchange)?.get(&key.symbol)?;
        let slot = &s.slots[s.index(key.day)?];
        self.settled_source(slot)
    }

    fn settled_source(&self, slot: &Slot) -> Option<&Arc<str>> {
        if !slot.cell_state().is_some_and(CellState::is_settled) {
            return None;
        }
        self.sources.get(usize::from(slot.source))
    }

    /// Every settled cell with who settled it (as `settled_by`), by
    /// exchange, symbol, then day; without unpacking the cells.
    pub fn settled(&self) -> impl Iterator<Item = (&Exchange, &Symbol, NaiveDate, &Arc<str>)> + '_ {
        self.series.iter().flat_map(move |(e, by_symbol)| {
            by_symbol.iter().flat_map(move |(s, series)| {
                series
                    .slots
                    .iter()
                    .enumerate()
                    .filter_map(move |(i, slot)| {
                        Some((e, s, series.day(i), self.settled_source(slot)?))
                    })
            })
        })
    }

    /// Cells held, by state (every state, 0 where none): kept as cells
    /// change, not counted.
    pub fn counts_by_state(&self) -> BTreeMap<CellState, usize> {
        CellState::ALL.map(|s| (s, self.census.of(s))).into()
    }

    /// Whether any exchange holds a cell of `symbol` (a look-up an
    /// exchange, not a set of every symbol).
    pub fn holds_symbol(&self, symbol: &Symbol) -> bool {
        self.series.values().any(|m| m.contains_key(symbol))
    }

    /// Whether the store holds a cell of `exchange`.
    pub fn holds_exchange(&self, exchange: &Exchange) -> bool {
        self.series.contains_key(exchange)
    }

    /// Every symbol held, in order.
    pub fn symbols(&self) -> std::collections::BTreeSet<&Symbol> {
        self.series.values().flat_map(|m| m.keys()).collect()
    }

    /// Cells in `state`.
    pub fn count(&self, state: CellState) -> usize {
        self.census.of(state)
    }

    /// Cells holding a final or provisional price.
    pub fn price_count(&self) -> usize {
        self.census.prices
    }

    /// Cells held, whatever their state.
    pub fn len(&self) -> usize {
        self.census.cells()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.series.keys()
    }

    /// Whether any cell of `exchange` holds a price.
    pub fn has_prices(&self, exchange: &Exchange) -> bool {
        self.series.get(exchange).is_some_and(|m| {
            m.values()
                .any(|s| s.slots.iter().any(|x| x.price().is_some()))
        })
    }

    /// The failed cells with their reasons.
    pub fn failed(&self) -> Vec<FailedTask> {
        // A failed cell keeps its reason as a note: walking the notes, not
        // every slot, costs the failures, not the cells held.
        let mut out: Vec<FailedTask> = Vec::new();
        for (e, by_symbol) in &self.series {
            for (s, series) in by_symbol.iter() {
                for (&i, note) in &series.notes {
                    let slot = series.slots.get(i as usize);
                    if slot.and_then(Slot::cell_state) != Some(CellState::Failed) {
                        continue;
                    }
                    out.push(FailedTask {
                        exchange: e.clone(),
                        symbol: s.clone(),
                        day: series.day(i as usize),
                        reason: note.reason.clone(),
                        attempts: note.attempts,
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.exchange, &a.symbol, a.day).cmp(&(&b.exchange, &b.symbol, b.day)));
        out
    }

    /// Puts `cell` in place for `key` exactly as given, replacing whatever
    /// the key held and bypassing the rules of `apply`: for rebuilding a
    /// store from a durable record (`record`), whose cells were decided
    /// when they were first applied. The cell's source is named (interned)
    /// here; its dispatch number is unknown and taken as 0, so any result
    /// of a later round replaces it.
    pub fn put(&mut self, key: &TaskKey, cell: &Cell) {
        let source = cell
            .source
            .as_deref()
            .map_or(0, |name| self.source_index(name));
        self.restore(key, cell, source);
    }

    /// Puts a loaded cell in place as it was (snapshot loading); `source`
    /// is its index into the sources named later by `set_loaded_sources`.
    fn restore(&mut self, key: &TaskKey, cell: &Cell, source: u16) {
        let (was, now) = self.series_mut(key).restore(key.day, cell, source);
        self.census.replace(&was, &now);
    }
}

/// A cell that ended without an answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FailedTask {
    pub exchange: Exchange,
    pub symbol: Symbol,
    pub day: NaiveDate,
    pub reason: String,
    pub attempts: u32,
}
