//! The store as a question reads it while a round writes it: the
//! Aggregator's cells, the symbol-days whose checks wait to be judged, and
//! the judge, behind one lock (`Live`), so that the API takes a frozen copy
//! without queueing in the Aggregator's mailbox behind a round's results
//! (and behind whatever else the actors' shared thread is doing).
//!
//! The Aggregator alone writes, a result at a time, holding the lock for
//! the few microseconds of applying it. A reader (`StoreReader`) holds it
//! only to clone the store (a handful of reference counts) and to note the
//! symbol-days its question covers whose checks wait; it judges those on
//! its own copy, off the lock, as the Aggregator's next pass will judge
//! them. So a question sees every result applied before it, never an older
//! cell than one it could have seen before, and never a cell whose check
//! flags are out of step with the cells. When the checks wait for a whole
//! pass (a new `[quality]`, a peg market's close that changed every
//! symbol's day), the reader says so and the question goes to the
//! Aggregator instead (`GetStore`). No I/O; no actor.

use std::collections::BTreeSet;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::NaiveDate;

use super::quality::{Judge, Pending};
use crate::model::Symbol;
use crate::store::Store;

/// What the Aggregator writes and a question reads.
#[derive(Debug, Default)]
pub(super) struct Live {
    pub store: Store,
    /// Symbol-days whose checks and reference must be worked out again.
    pub checks: Pending,
    /// What judging needs besides the cells, shared with every view.
    pub judge: Arc<Judge>,
}

/// A handle on the Aggregator's live store, for questions (the API).
#[derive(Debug, Clone, Default)]
pub struct StoreReader(Arc<RwLock<Live>>);

impl StoreReader {
    pub(super) fn read(&self) -> RwLockReadGuard<'_, Live> {
        // A panic while the lock was held left a result half-applied at
        // worst; the cells themselves are always whole.
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write(&self) -> RwLockWriteGuard<'_, Live> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// A frozen copy for a question about `symbols` (every symbol when
    /// empty) from `from` to `to` (open ends when `None`), with the
    /// symbol-days it covers whose checks wait; `None` when the checks wait
    /// for a whole pass, which only the Aggregator makes (`GetStore`).
    pub fn view(
        &self,
        symbols: &BTreeSet<Symbol>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Option<View> {
        let live = self.read();
        let waiting = live.checks.covering(symbols, from, to)?;
        Some(View {
            store: live.store.clone(),
            judge: live.judge.clone(),
            waiting,
        })
    }
}

/// A frozen store and the symbol-days of it still to judge.
#[derive(Debug)]
pub struct View {
    store: Store,
    judge: Arc<Judge>,
    waiting: Vec<(Symbol, NaiveDate)>,
}

impl View {
    /// A store already judged (the Aggregator's answer to `GetStore`).
    pub fn judged(store: Store) -> View {
        View {
            store,
            judge: Arc::default(),
            waiting: Vec::new(),
        }
    }

    /// The store with the check flags of its waiting symbol-days worked
    /// out (on this copy: the Aggregator's own pass is unchanged). Where
    /// the caller runs: an API's blocking thread.
    pub fn into_store(self) -> Store {
        let View {
            mut store,
            judge,
            waiting,
        } = self;
        for (symbol, day) in waiting {
            judge.set_checks(&mut store, &symbol, day);
        }
        store
    }
}
