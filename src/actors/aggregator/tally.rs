//! A round's tally: its counts by cell state, its failures grouped by
//! exchange and kind of reason, and its answers about closed days, with the
//! end-of-round lines they give (what failed and why, names the source does
//! not know, exchanges that answer "none" for most closed days). Pure: the
//! Aggregator feeds it and asks it to log.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::model::{reason_kind, Counts, Exchange, TaskKey};
use crate::store::Store;
use crate::wire::{UNKNOWN_EXCHANGE, UNKNOWN_SYMBOL};

/// Per exchange, what a round's answers about closed days were.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ClosedDays {
    pub(super) answered: u64,
    pub(super) none: u64,
}

#[derive(Debug)]
pub(super) struct Tally {
    pub(super) round: u64,
    pub(super) counts: Counts,
    pub(super) started: Instant,
    /// Failures of this round: exchange -> kind of reason -> (count, an example).
    pub(super) failures: BTreeMap<Exchange, BTreeMap<String, (u64, String)>>,
    pub(super) closed: BTreeMap<Exchange, ClosedDays>,
}

impl Tally {
    pub(super) fn new(round: u64, tasks: u64) -> Self {
        Self {
            round,
            counts: Counts {
                tasks,
                ..Counts::default()
            },
            started: Instant::now(),
            failures: BTreeMap::new(),
            closed: BTreeMap::new(),
        }
    }

    pub(super) fn note_failure(&mut self, key: &TaskKey, reason: &str) {
        let slot = self
            .failures
            .entry(key.exchange.clone())
            .or_default()
            .entry(reason_kind(reason).to_owned())
            .or_insert_with(|| (0, format!("{key}: {reason}")));
        slot.0 += 1;
    }

    /// One line per exchange that had failures: how many, and why; and one
    /// error line per exchange whose names (or markets) the source does not
    /// know.
    pub(super) fn log_failures(&self) {
        for (exchange, reasons) in &self.failures {
            for unknown in [UNKNOWN_EXCHANGE, UNKNOWN_SYMBOL] {
                if let Some((n, example)) = reasons.get(unknown) {
                    log::error!(
                        "round {}: configuration problem: the source answers \"{unknown}\" for {n} task(s) of {exchange} (e.g. {example}); check universe.exchanges and universe.symbols",
                        self.round
                    );
                }
            }
            for (kind, (n, _)) in reasons {
                if kind.starts_with("unknown market") || kind.starts_with("no market") {
                    log::error!(
                        "round {}: configuration problem: {kind} ({n} cell(s)); check exchanges.{exchange}.markets",
                        self.round
                    );
                }
            }
            let total: u64 = reasons.values().map(|(n, _)| n).sum();
            let mut by_count: Vec<_> = reasons.values().collect();
            by_count.sort_by_key(|r| std::cmp::Reverse(r.0));
            let why: Vec<String> = by_count
                .iter()
                .take(4)
                .map(|(n, example)| format!("{n} x {example}"))
                .collect();
            log::warn!(
                "round {}: {exchange}: {total} failed: {}{}",
                self.round,
                why.join("; "),
                if reasons.len() > 4 { "; ..." } else { "" }
            );
        }
    }

    /// Exchanges that have prices and answered "none" for more than half
    /// of the closed days asked about this round: (exchange, none, answered).
    pub(super) fn suspicious_none<'a>(&'a self, store: &'a Store) -> Vec<(&'a Exchange, u64, u64)> {
        self.closed
            .iter()
            .filter(|(e, c)| c.none * 2 > c.answered && store.has_prices(e))
            .map(|(e, c)| (e, c.none, c.answered))
            .collect()
    }

    pub(super) fn log_suspicious_none(&self, store: &Store) {
        for (exchange, none, answered) in self.suspicious_none(store) {
            log::warn!(
                "round {}: {exchange} answered \"no price\" for {none} of {answered} closed days although it has prices for others; is the source serving what it should?",
                self.round
            );
        }
    }
}
