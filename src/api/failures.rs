//! The failure groups `GET /v1/failures` answers: the failed cells a
//! filter keeps, grouped by exchange and reason, most cells first. Pure
//! arithmetic over a frozen store: the route itself is `api/mod.rs`'s.

use chrono::NaiveDate;
use serde::Serialize;

use crate::model::{Exchange, Symbol};
use crate::query::Filter;

/// One line of `/v1/failures`: how many failed cells of an exchange share
/// a reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureGroup {
    pub exchange: Exchange,
    pub reason: String,
    pub cells: usize,
    /// The symbols among them, and their first and last day.
    pub symbols: Vec<Symbol>,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// The failed cells that `filter` keeps, grouped by (exchange, reason),
/// most cells first.
pub fn failure_groups(store: &crate::store::Store, filter: &Filter) -> Vec<FailureGroup> {
    let mut groups: std::collections::BTreeMap<(Exchange, String), FailureGroup> =
        std::collections::BTreeMap::new();
    for f in store.failed() {
        if !filter.matches(&f.exchange, &f.symbol, f.day) {
            continue;
        }
        let g = groups
            .entry((f.exchange.clone(), f.reason.clone()))
            .or_insert_with(|| FailureGroup {
                exchange: f.exchange.clone(),
                reason: f.reason.clone(),
                cells: 0,
                symbols: Vec::new(),
                first_day: f.day,
                last_day: f.day,
            });
        g.cells += 1;
        if !g.symbols.contains(&f.symbol) {
            g.symbols.push(f.symbol.clone());
        }
        g.first_day = g.first_day.min(f.day);
        g.last_day = g.last_day.max(f.day);
    }
    let mut out: Vec<FailureGroup> = groups.into_values().collect();
    for g in &mut out {
        g.symbols.sort();
    }
    out.sort_by(|a, b| {
        b.cells
            .cmp(&a.cells)
            .then_with(|| (&a.exchange, &a.reason).cmp(&(&b.exchange, &b.reason)))
    });
    out
}
