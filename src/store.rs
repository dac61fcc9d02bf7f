//! The compact exchange -> date -> symbol store the Aggregator owns: one
//! cell per (exchange, symbol, day) saying what is known about it (a final
//! or provisional price, "none", a failure, a rejection), with its flags,
//! when it was fetched, in which round and from which source.
//!
//! Cells are kept per (exchange, symbol) as a series indexed by day, one
//! fixed-size slot a day (no per-key allocation, names stored once per
//! series), so a million cells cost tens of megabytes. Each series sits
//! behind an `Arc`: cloning the store for a snapshot is cheap, and a later
//! write copies only the series it touches. The rules of what may replace
//! what live here (`Store::apply`): a stale answer never overwrites a newer
//! one, a failure never replaces an answer, and a provisional "none" never
//! drops a price. Pure data: no I/O, no actors. The JSON form is in
//! `store::json`.

pub mod json;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::model::{CellState, Exchange, Flags, Ohlcv, Outcome, Symbol, TaskKey};

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

/// `state` byte of an empty slot.
const EMPTY: u8 = 0;
/// Bit of `flags` set when the slot holds a price.
const HAS_PRICE: u8 = 0x80;

fn state_code(s: CellState) -> u8 {
    match s {
        CellState::Final => 1,
        CellState::Provisional => 2,
        CellState::NoPrice => 3,
        CellState::Failed => 4,
        CellState::Rejected => 5,
    }
}

fn state_of(code: u8) -> Option<CellState> {
    Some(match code & 7 {
        1 => CellState::Final,
        2 => CellState::Provisional,
        3 => CellState::NoPrice,
        4 => CellState::Failed,
        5 => CellState::Rejected,
        _ => return None,
    })
}

const NO_PRICE: Ohlcv = Ohlcv {
    open: 0.0,
    high: 0.0,
    low: 0.0,
    close: 0.0,
    volume: 0.0,
};

/// One day of one series: 64 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Slot {
    price: Ohlcv,
    /// Unix seconds; `i64::MIN` when unknown.
    fetched_at: i64,
    dispatch: u64,
    round: u32,
    /// Low 3 bits: the cell's state; next 3 bits: what `round` counted it as.
    state: u8,
    /// `Flags` bits, and `HAS_PRICE`.
    flags: u8,
    /// Index into `Store::sources`; 0 = unknown.
    source: u16,
}

impl Slot {
    const EMPTY: Slot = Slot {
        price: NO_PRICE,
        fetched_at: i64::MIN,
        dispatch: 0,
        round: 0,
        state: EMPTY,
        flags: 0,
        source: 0,
    };

    fn cell_state(&self) -> Option<CellState> {
        state_of(self.state)
    }

    fn counted(&self) -> Option<CellState> {
        state_of(self.state >> 3)
    }

    fn set_state(&mut self, state: CellState, counted: CellState) {
        self.state = state_code(state) | state_code(counted) << 3;
    }

    fn price(&self) -> Option<Ohlcv> {
        (self.flags & HAS_PRICE != 0).then_some(self.price)
    }

    fn set_price(&mut self, price: Option<Ohlcv>, flags: Flags) {
        match price {
            Some(p) => {
                self.price = p;
                self.flags = flags.bits() | HAS_PRICE;
            }
            None => {
                self.price = NO_PRICE;
                self.flags = flags.bits();
            }
        }
    }

    fn stamp(&self) -> Stamp {
        Stamp {
            round: u64::from(self.round),
            dispatch: self.dispatch,
        }
    }
}

/// The days of one (exchange, symbol), from `first` on.
#[derive(Debug, Clone, PartialEq, Default)]
struct Series {
    first: Option<NaiveDate>,
    slots: Vec<Slot>,
    notes: HashMap<u32, Note>,
}

impl Series {
    fn index(&self, day: NaiveDate) -> Option<usize> {
        let offset = (day - self.first?).num_days();
        usize::try_from(offset)
            .ok()
            .filter(|&i| i < self.slots.len())
    }

    /// The slot index for `day`, growing the series to cover it.
    fn index_mut(&mut self, day: NaiveDate) -> usize {
        let Some(first) = self.first else {
            self.first = Some(day);
            self.slots.push(Slot::EMPTY);
            return 0;
        };
        if day < first {
            let grow = usize::try_from((first - day).num_days()).unwrap_or(0);
            self.slots
                .splice(0..0, std::iter::repeat_n(Slot::EMPTY, grow));
            let grow = grow as u32;
            self.notes = std::mem::take(&mut self.notes)
                .into_iter()
                .map(|(i, n)| (i + grow, n))
                .collect();
            self.first = Some(day);
            return 0;
        }
        let i = usize::try_from((day - first).num_days()).unwrap_or(0);
        if i >= self.slots.len() {
            self.slots.resize(i + 1, Slot::EMPTY);
        }
        i
    }

    fn day(&self, i: usize) -> NaiveDate {
        self.first
            .map_or(NaiveDate::MIN, |f| f + chrono::Days::new(i as u64))
    }

    fn cell(&self, i: usize, sources: &[Arc<str>]) -> Option<Cell> {
        let slot = self.slots.get(i)?;
        let state = slot.cell_state()?;
        Some(Cell {
            state,
            price: slot.price(),
            flags: Flags::from_bits(slot.flags),
            fetched_at: (slot.fetched_at != i64::MIN)
                .then(|| DateTime::from_timestamp(slot.fetched_at, 0))
                .flatten(),
            round: u64::from(slot.round),
            source: (slot.source != 0)
                .then(|| sources.get(usize::from(slot.source)).cloned())
                .flatten(),
            note: self.notes.get(&(i as u32)).cloned(),
        })
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

/// exchange -> date -> symbol -> cell, compactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    series: BTreeMap<Exchange, BTreeMap<Symbol, Arc<Series>>>,
    /// Source identities; index 0 is "unknown".
    sources: Vec<Arc<str>>,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            series: BTreeMap::new(),
            sources: vec![Arc::from("")],
        }
    }
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    fn source_index(&mut self, source: &str) -> u16 {
        if source.is_empty() {
            return 0;
        }
        if let Some(i) = self.sources.iter().position(|s| &**s == source) {
            return u16::try_from(i).unwrap_or(0);
        }
        match u16::try_from(self.sources.len()) {
            Ok(i) => {
                self.sources.push(Arc::from(source));
                i
            }
            // 65,535 distinct sources: later ones are recorded as unknown.
            Err(_) => 0,
        }
    }

    fn series_mut(&mut self, key: &TaskKey) -> &mut Series {
        Arc::make_mut(
            self.series
                .entry(key.exchange.clone())
                .or_default()
                .entry(key.symbol.clone())
                .or_default(),
        )
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
        let series = self.series_mut(key);
        let i = series.index_mut(key.day);
        let slot = &mut series.slots[i];
        if slot.cell_state().is_some() && obs.stamp <= slot.stamp() {
            return Applied::Stale;
        }
        let counted = obs.outcome.state(obs.is_final);
        let before = (slot.cell_state().is_some() && u64::from(slot.round) == obs.stamp.round)
            .then(|| slot.counted())
            .flatten();
        let held = slot.cell_state();
        let holds_answer = held.is_some_and(|s| s != CellState::Failed);
        let mut note = None;
        let fresh = |slot: &mut Slot, state: CellState| {
            slot.set_state(state, counted);
            slot.fetched_at = obs.asked_at.timestamp();
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
        slot.round = u32::try_from(obs.stamp.round).unwrap_or(u32::MAX);
        slot.dispatch = obs.stamp.dispatch;
        match note {
            Some(n) => series.notes.insert(i as u32, n),
            None => series.notes.remove(&(i as u32)),
        };
        match before {
            None => Applied::New(counted),
            Some(before) => Applied::Again {
                before,
                now: counted,
            },
        }
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

    /// Cells in `state`.
    pub fn count(&self, state: CellState) -> usize {
        self.count_slots(|s| s.cell_state() == Some(state))
    }

    /// Cells holding a final or provisional price.
    pub fn price_count(&self) -> usize {
        self.count_slots(|s| {
            s.price().is_some()
                && matches!(
                    s.cell_state(),
                    Some(CellState::Final | CellState::Provisional)
                )
        })
    }

    /// Cells held, whatever their state.
    pub fn len(&self) -> usize {
        self.count_slots(|s| s.cell_state().is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn count_slots(&self, pred: impl Fn(&Slot) -> bool) -> usize {
        self.series
            .values()
            .flat_map(BTreeMap::values)
            .map(|s| s.slots.iter().filter(|x| pred(x)).count())
            .sum()
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
        self.iter()
            .filter(|(_, _, _, c)| c.state == CellState::Failed)
            .map(|(e, s, day, c)| {
                let note = c.note.unwrap_or(Note {
                    reason: "unknown".into(),
                    attempts: 0,
                });
                FailedTask {
                    exchange: e.clone(),
                    symbol: s.clone(),
                    day,
                    reason: note.reason,
                    attempts: note.attempts,
                }
            })
            .collect()
    }

    /// Puts a loaded cell in place as it was (snapshot loading); `source`
    /// is its index into the sources named later by `set_loaded_sources`.
    fn restore(&mut self, key: &TaskKey, cell: &Cell, source: u16) {
        let series = self.series_mut(key);
        let i = series.index_mut(key.day);
        let slot = &mut series.slots[i];
        slot.set_price(cell.price, cell.flags);
        slot.set_state(cell.state, cell.state);
        slot.fetched_at = cell.fetched_at.map_or(i64::MIN, |t| t.timestamp());
        slot.round = u32::try_from(cell.round).unwrap_or(u32::MAX);
        slot.dispatch = 0;
        slot.source = source;
        match &cell.note {
            Some(n) => series.notes.insert(i as u32, n.clone()),
            None => series.notes.remove(&(i as u32)),
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(exchange: &str, symbol: &str, day: u32) -> TaskKey {
        TaskKey {
            exchange: Exchange::new(exchange).unwrap(),
            symbol: Symbol::new(symbol).unwrap(),
            day: NaiveDate::from_ymd_opt(2020, 3, day).unwrap(),
        }
    }

    fn price(close: f64) -> Outcome {
        Outcome::price(Ohlcv::new(close, close, close, close, 1.0).unwrap())
    }

    fn failed() -> Outcome {
        Outcome::Failed {
            reason: "server error (503)".into(),
            attempts: 3,
        }
    }

    fn obs(outcome: Outcome, round: u64, dispatch: u64, is_final: bool) -> Observation {
        Observation {
            outcome,
            is_final,
            asked_at: "2020-03-20T00:00:00Z".parse().unwrap(),
            source: Arc::from("http://a/"),
            stamp: Stamp { round, dispatch },
        }
    }

    fn get(s: &Store, k: &TaskKey) -> Cell {
        s.get(&k.exchange, &k.symbol, k.day).expect("held")
    }

    #[test]
    fn a_repeat_in_the_same_round_is_counted_again_not_anew() {
        let mut s = Store::new();
        let k = key("kraken", "btc", 1);
        assert_eq!(
            s.apply(&k, &obs(price(5.0), 1, 1, true)),
            Applied::New(CellState::Final)
        );
        assert_eq!(
            s.apply(&k, &obs(price(5.0), 1, 2, true)),
            Applied::Again {
                before: CellState::Final,
                now: CellState::Final
            }
        );
        assert_eq!(
            s.apply(&k, &obs(price(5.0), 2, 3, true)),
            Applied::New(CellState::Final)
        );
        assert_eq!(s.price_count(), 1);
    }

    #[test]
    fn a_stale_answer_never_overwrites_a_newer_one() {
        let mut s = Store::new();
        let k = key("kraken", "btc", 1);
        s.apply(&k, &obs(price(6.0), 2, 10, false));
        // A hung attempt of round 1 answers late, and a superseded attempt
        // of round 2 too.
        assert_eq!(s.apply(&k, &obs(price(5.0), 1, 99, true)), Applied::Stale);
        assert_eq!(s.apply(&k, &obs(price(5.0), 2, 9, true)), Applied::Stale);
        assert_eq!(s.apply(&k, &obs(price(6.0), 2, 10, false)), Applied::Stale);
        let c = get(&s, &k);
        assert_eq!(c.price.unwrap().close, 6.0);
        assert_eq!((c.state, c.round), (CellState::Provisional, 2));
    }

    #[test]
    fn a_failure_never_replaces_an_answer_but_is_noted_and_counted() {
        let mut s = Store::new();
        let k = key("kraken", "btc", 1);
        s.apply(&k, &obs(price(5.0), 1, 1, false));
        assert_eq!(
            s.apply(&k, &obs(failed(), 2, 2, false)),
            Applied::New(CellState::Failed)
        );
        let c = get(&s, &k);
        assert_eq!(c.state, CellState::Provisional);
        assert_eq!(c.price.unwrap().close, 5.0);
        assert_eq!(c.note.unwrap().reason, "server error (503)");
        assert!(
            s.failed().is_empty(),
            "the cell holds a price, not a failure"
        );
    }

    #[test]
    fn a_provisional_none_keeps_a_held_price_and_a_final_none_replaces_it() {
        let mut s = Store::new();
        let k = key("kraken", "btc", 1);
        s.apply(&k, &obs(price(5.0), 1, 1, false));
        assert_eq!(
            s.apply(&k, &obs(Outcome::NoPrice, 2, 2, false)),
            Applied::New(CellState::Provisional)
        );
        assert_eq!(get(&s, &k).price.unwrap().close, 5.0);
        s.apply(&k, &obs(Outcome::NoPrice, 3, 3, true));
        let c = get(&s, &k);
        assert_eq!((c.state, c.price), (CellState::NoPrice, None));
    }

    #[test]
    fn an_answer_replaces_a_failure_and_its_reason() {
        let mut s = Store::new();
        let k = key("kraken", "btc", 1);
        s.apply(&k, &obs(failed(), 1, 1, true));
        assert_eq!(s.failed().len(), 1);
        assert_eq!(s.failed()[0].reason, "server error (503)");
        s.apply(&k, &obs(Outcome::NoPrice, 1, 2, true));
        assert!(s.failed().is_empty());
        let c = get(&s, &k);
        assert_eq!((c.state, c.note), (CellState::NoPrice, None));
    }

    #[test]
    fn only_final_answers_and_rejections_from_the_same_source_settle() {
        let mut s = Store::new();
        let settled = |s: &Store, d| s.is_settled(&key("kraken", "btc", d), "http://a/");
        s.apply(&key("kraken", "btc", 1), &obs(price(1.0), 1, 1, true));
        s.apply(&key("kraken", "btc", 2), &obs(price(1.0), 1, 2, false));
        s.apply(&key("kraken", "btc", 3), &obs(Outcome::NoPrice, 1, 3, true));
        s.apply(
            &key("kraken", "btc", 4),
            &obs(Outcome::NoPrice, 1, 4, false),
        );
        s.apply(&key("kraken", "btc", 5), &obs(failed(), 1, 5, true));
        let rejected = Outcome::Rejected {
            reason: "ohlc order".into(),
            price: None,
        };
        s.apply(&key("kraken", "btc", 6), &obs(rejected, 1, 6, true));
        let got: Vec<bool> = (1..=7).map(|d| settled(&s, d)).collect();
        assert_eq!(got, [true, false, true, false, false, true, false]);
        assert!(
            !s.is_settled(&key("kraken", "btc", 1), "http://b/"),
            "another source makes the cell due again"
        );
    }

    #[test]
    fn series_grow_both_ways_and_keep_notes_aligned() {
        let mut s = Store::new();
        s.apply(&key("kraken", "btc", 10), &obs(failed(), 1, 1, true));
        s.apply(&key("kraken", "btc", 20), &obs(price(2.0), 1, 2, true));
        s.apply(&key("kraken", "btc", 2), &obs(price(1.0), 1, 3, true));
        let got: Vec<_> = s
            .iter()
            .map(|(_, _, d, c)| (d.format("%d").to_string(), c.state))
            .collect();
        assert_eq!(
            got,
            vec![
                ("02".into(), CellState::Final),
                ("10".into(), CellState::Failed),
                ("20".into(), CellState::Final)
            ]
        );
        assert_eq!(s.failed()[0].day, key("kraken", "btc", 10).day);
    }

    #[test]
    fn a_clone_is_a_frozen_copy() {
        let mut s = Store::new();
        let k = key("kraken", "btc", 1);
        s.apply(&k, &obs(price(5.0), 1, 1, true));
        let frozen = s.clone();
        s.apply(&k, &obs(price(6.0), 2, 2, true));
        s.apply(&key("kraken", "eth", 1), &obs(price(7.0), 2, 3, true));
        assert_eq!(frozen.price_count(), 1);
        assert_eq!(get(&frozen, &k).price.unwrap().close, 5.0);
    }

    #[test]
    fn a_slot_stays_64_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 64);
    }
}
