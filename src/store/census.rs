//! The store's counts of cells by state and of usable prices, kept as
//! cells change, so that `price_count`, `counts_by_state` and `len` cost
//! nothing at 20M cells (a walk of every slot is ~100 ms there, and each
//! round's end and each status asked for one). Every write to a slot in
//! `store` goes through `Census::replace`; this file knows nothing else
//! about the store. Pure data.

use super::series::Slot;
use crate::model::CellState;

/// Cells by state (`CellState::ALL`'s order) and cells holding a usable
/// price (final or provisional with a price).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Census {
    pub(super) by_state: [usize; CellState::ALL.len()],
    pub(super) prices: usize,
}

impl Census {
    fn at(state: CellState) -> usize {
        CellState::ALL
            .iter()
            .position(|s| *s == state)
            .unwrap_or_default()
    }

    fn count(&mut self, slot: &Slot, add: bool) {
        let Some(state) = slot.cell_state() else {
            return;
        };
        let step = |n: &mut usize| {
            *n = if add {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        step(&mut self.by_state[Self::at(state)]);
        if slot.price().is_some() && matches!(state, CellState::Final | CellState::Provisional) {
            step(&mut self.prices);
        }
    }

    /// A slot held `before` and now holds `after`.
    pub(super) fn replace(&mut self, before: &Slot, after: &Slot) {
        self.count(before, false);
        self.count(after, true);
    }

    /// Adds the counts of cells held elsewhere (a store built in parts).
    pub(super) fn add(&mut self, other: &Census) {
        for (n, m) in self.by_state.iter_mut().zip(other.by_state) {
            *n = n.saturating_add(m);
        }
        self.prices = self.prices.saturating_add(other.prices);
    }

    /// Cells held, whatever their state.
    pub(super) fn cells(&self) -> usize {
        self.by_state.iter().sum()
    }

    pub(super) fn of(&self, state: CellState) -> usize {
        self.by_state[Self::at(state)]
    }
}
