//! The compact layout of the store: one `Series` per (exchange, symbol), a
//! run of days from its first, one fixed-size `Slot` (56 bytes) a day, with
//! the rare notes kept beside the slots rather than in them. This file owns
//! how a cell is packed into a slot and unpacked into a `Cell`; what may
//! replace what is decided in `store` (`Store::apply`), and the JSON form in
//! `store::json`. Pure data: no I/O.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate};

use super::{Cell, Note, Stamp};
use crate::model::{CellState, Flags, Ohlcv};

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

/// One day of one series: 56 bytes (the price's five numbers are 40).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Slot {
    price: Ohlcv,
    /// Unix seconds (good until 2106); 0 when unknown.
    fetched_at: u32,
    /// The low 32 bits of the Supervisor's dispatch number: only results of
    /// one round are ever ordered by it (see `is_older_than`).
    dispatch: u32,
    pub(super) round: u32,
    /// Low 3 bits: the cell's state; next 3 bits: what `round` counted it as.
    state: u8,
    /// `Flags` bits, and `HAS_PRICE`.
    flags: u8,
    /// Index into `Store::sources`; 0 = unknown.
    pub(super) source: u16,
}

impl Slot {
    pub(super) const EMPTY: Slot = Slot {
        price: NO_PRICE,
        fetched_at: 0,
        dispatch: 0,
        round: 0,
        state: EMPTY,
        flags: 0,
        source: 0,
    };

    pub(super) fn cell_state(&self) -> Option<CellState> {
        state_of(self.state)
    }

    pub(super) fn counted(&self) -> Option<CellState> {
        state_of(self.state >> 3)
    }

    pub(super) fn set_state(&mut self, state: CellState, counted: CellState) {
        self.state = state_code(state) | state_code(counted) << 3;
    }

    pub(super) fn flags_bits(&self) -> u8 {
        self.flags
    }

    pub(super) fn price(&self) -> Option<Ohlcv> {
        (self.flags & HAS_PRICE != 0).then_some(self.price)
    }

    pub(super) fn set_price(&mut self, price: Option<Ohlcv>, flags: Flags) {
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

    /// Replaces the cross-exchange checks' flags (`Flags::CHECKS`) with
    /// `checks`', keeping the others and the price; whether they changed.
    pub(super) fn set_checks(&mut self, checks: Flags) -> bool {
        let has = self.flags & HAS_PRICE;
        let before = Flags::from_bits(self.flags);
        let after = before.with_checks(checks);
        self.flags = after.bits() | has;
        after != before
    }

    /// Whether what the slot holds is older than a result stamped `stamp`:
    /// an earlier round, or in the same round an earlier dispatch. Only the
    /// low 32 bits of dispatch numbers are kept, compared as serial numbers
    /// (RFC 1982): two results for one cell in one round are never 2^31
    /// dispatches apart (a round holds at most `max_tasks`, 2^26, tasks).
    pub(super) fn is_older_than(&self, stamp: Stamp) -> bool {
        let round = u32::try_from(stamp.round).unwrap_or(u32::MAX);
        match round.cmp(&self.round) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => {
                // The low bits, as a wrapping difference read signed.
                let ahead = (stamp.dispatch as u32).wrapping_sub(self.dispatch) as i32;
                ahead > 0
            }
        }
    }

    /// Records that a result stamped `stamp` was applied.
    pub(super) fn set_stamp(&mut self, stamp: Stamp) {
        self.round = u32::try_from(stamp.round).unwrap_or(u32::MAX);
        self.dispatch = stamp.dispatch as u32;
    }

    /// When the source was asked, to the second.
    pub(super) fn set_fetched_at(&mut self, at: Option<DateTime<chrono::Utc>>) {
        self.fetched_at = at
            .map(|t| t.timestamp().clamp(1, i64::from(u32::MAX)) as u32)
            .unwrap_or(0);
    }
}

/// The slots a new series of `days` days is given at once: those days,
/// and the room a series grown a day at a time keeps (an eighth, as
/// `index_mut` grows), so the days after are added in place.
pub(super) fn sized(days: usize) -> usize {
    days + days / 8 + 16
}

/// How many days `from..=to` holds (0 when `to` is before `from`).
pub(super) fn span(from: NaiveDate, to: NaiveDate) -> usize {
    usize::try_from((to - from).num_days().saturating_add(1)).unwrap_or(0)
}

/// The days of one (exchange, symbol), from `first` on.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Series {
    pub(super) first: Option<NaiveDate>,
    pub(super) slots: Vec<Slot>,
    pub(super) notes: HashMap<u32, Note>,
}

impl Series {
    /// The index of the first slot after `day` (`slots.len()` if none).
    pub(super) fn first_after(&self, day: NaiveDate) -> usize {
        let Some(first) = self.first else {
            return self.slots.len();
        };
        let after = (day - first).num_days().saturating_add(1).max(0);
        usize::try_from(after).map_or(self.slots.len(), |i| i.min(self.slots.len()))
    }

    pub(super) fn index(&self, day: NaiveDate) -> Option<usize> {
        let offset = (day - self.first?).num_days();
        usize::try_from(offset)
            .ok()
            .filter(|&i| i < self.slots.len())
    }

    /// The slot index for `day`, growing the series to cover it.
    pub(super) fn index_mut(&mut self, day: NaiveDate) -> usize {
        let Some(first) = self.first else {
            self.first = Some(day);
            self.slots.push(Slot::EMPTY);
            return 0;
        };
        if day < first {
            let grow = usize::try_from((first - day).num_days()).unwrap_or(0);
            // Exactly the days added, and the spare room kept at the end
            // (a splice would let the Vec double; a load reading the later
            // days first comes here once for each series).
            let mut slots = Vec::with_capacity(self.slots.capacity() + grow);
            slots.resize(grow, Slot::EMPTY);
            slots.extend_from_slice(&self.slots);
            self.slots = slots;
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
            // Grown by an eighth at a time, not doubled: a series gains a
            // day a day, and at 20M cells a doubled Vec's spare half would
            // be most of the memory. Still amortised O(1) a day.
            let len = self.slots.len();
            if i >= self.slots.capacity() {
                self.slots.reserve_exact((i + 1 - len).max(len / 8).max(16));
            }
            self.slots.resize(i + 1, Slot::EMPTY);
        }
        i
    }

    /// Puts a loaded cell in place for `day` as it was, bypassing the rules
    /// of `Store::apply` (it was decided when first applied); the slot
    /// before and after, for the store's census.
    pub(super) fn restore(&mut self, day: NaiveDate, cell: &Cell, source: u16) -> (Slot, Slot) {
        let i = self.index_mut(day);
        let slot = &mut self.slots[i];
        let was = *slot;
        slot.set_price(cell.price, cell.flags);
        slot.set_state(cell.state, cell.state);
        slot.set_fetched_at(cell.fetched_at);
        slot.set_stamp(Stamp {
            round: cell.round,
            dispatch: 0,
        });
        slot.source = source;
        let now = *slot;
        match &cell.note {
            Some(n) => {
                self.notes.insert(i as u32, n.clone());
            }
            // Most series have no note at all: no key is hashed for them.
            None if self.notes.is_empty() => {}
            None => {
                self.notes.remove(&(i as u32));
            }
        }
        (was, now)
    }

    pub(super) fn day(&self, i: usize) -> NaiveDate {
        self.first
            .map_or(NaiveDate::MIN, |f| f + chrono::Days::new(i as u64))
    }

    pub(super) fn cell(&self, i: usize, sources: &[Arc<str>]) -> Option<Cell> {
        let slot = self.slots.get(i)?;
        let state = slot.cell_state()?;
        Some(Cell {
            state,
            price: slot.price(),
            flags: Flags::from_bits(slot.flags),
            fetched_at: (slot.fetched_at != 0)
                .then(|| DateTime::from_timestamp(i64::from(slot.fetched_at), 0))
                .flatten(),
            round: u64::from(slot.round),
            source: (slot.source != 0)
                .then(|| sources.get(usize::from(slot.source)).cloned())
                .flatten(),
            note: self.notes.get(&(i as u32)).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_stays_56_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 56);
    }

    /// A series that grows a day at a time keeps at most an eighth spare
    /// (a doubling Vec of 1,100 days would hold 2,048 slots).
    #[test]
    fn a_growing_series_keeps_little_spare_room() {
        let mut s = Series::default();
        let first = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        for day in first.iter_days().take(1100) {
            s.index_mut(day);
        }
        assert_eq!(s.slots.len(), 1100);
        assert!(
            s.slots.capacity() <= 1100 + 1100 / 8 + 16,
            "{}",
            s.slots.capacity()
        );
    }
}
