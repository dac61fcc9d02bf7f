//! Coverage: per (exchange, symbol) over a window of days, the first and
//! last day it holds a cell for, its cells counted by state (and the days
//! with none at all, "missing"), the runs of missing, failed and "none"
//! days (its gaps, each a run of one kind), and the share of the window
//! that is final. What `pricegrid coverage` and `GET /v1/coverage` answer.
//!
//! Pure: a store (or the days and their states) comes in, the summaries go
//! out; where the store comes from (the live store, the record) is the
//! caller's business, and so is turning them into text (`crate::render`).
//! It never reads files, talks to actors or prints.
use chrono::NaiveDate;
use std::fmt;

use serde::Serialize;

use super::Filter;
use crate::model::{CellState, Exchange, Symbol};
use crate::store::Store;

/// What kind of day a gap is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GapKind {
    /// No cell at all: never asked, or out of the universe when asked.
    Missing,
    Failed,
    /// The source said it has no price.
    None,
}

impl GapKind {
    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            GapKind::Missing => "missing",
            GapKind::Failed => "failed",
            GapKind::None => "none",
        }
    }
}

/// A run of consecutive days of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub kind: GapKind,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub days: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    #[serde(rename = "final")]
    pub final_: u32,
    pub provisional: u32,
    pub none: u32,
    pub failed: u32,
    pub rejected: u32,
    pub missing: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// The first and last day holding a cell, if any.
    pub first: Option<NaiveDate>,
    pub last: Option<NaiveDate>,
    pub counts: StateCounts,
    pub gaps: Vec<Gap>,
    /// Final days over the window's days (0 for an empty window).
    pub share_final: f64,
}

/// The coverage of the days `days` (in order, one entry a day of the
/// window), each with the state of its cell, if it has one.
pub fn coverage(days: impl IntoIterator<Item = (NaiveDate, Option<CellState>)>) -> Coverage {
    let mut c = Coverage {
        first: None,
        last: None,
        counts: StateCounts::default(),
        gaps: Vec::new(),
        share_final: 0.0,
    };
    let mut total = 0u32;
    for (day, state) in days {
        total += 1;
        let kind = match state {
            None => Some(GapKind::Missing),
            Some(CellState::Failed) => Some(GapKind::Failed),
            Some(CellState::NoPrice) => Some(GapKind::None),
            Some(_) => None,
        };
        match state {
            None => c.counts.missing += 1,
            Some(s) => {
                c.first.get_or_insert(day);
                c.last = Some(day);
                match s {
                    CellState::Final => c.counts.final_ += 1,
                    CellState::Provisional => c.counts.provisional += 1,
                    CellState::NoPrice => c.counts.none += 1,
                    CellState::Failed => c.counts.failed += 1,
                    CellState::Rejected => c.counts.rejected += 1,
                }
            }
        }
        let Some(kind) = kind else { continue };
        match c.gaps.last_mut() {
            Some(g) if g.kind == kind && g.to.succ_opt() == Some(day) => {
                g.to = day;
                g.days += 1;
            }
            _ => c.gaps.push(Gap {
                kind,
                from: day,
                to: day,
                days: 1,
            }),
        }
    }
    if total > 0 {
        c.share_final = f64::from(c.counts.final_) / f64::from(total);
    }
    c
}

/// One (exchange, symbol)'s coverage of the window `from..=to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairCoverage {
    pub exchange: Exchange,
    pub symbol: Symbol,
    /// The window the figures are over, inclusive.
    pub from: NaiveDate,
    pub to: NaiveDate,
    #[serde(flatten)]
    pub coverage: Coverage,
}

/// Where a page of coverage ends: the last (exchange, symbol) it holds,
/// written `exchange/symbol`; the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PairCursor {
    pub exchange: Exchange,
    pub symbol: Symbol,
}

impl fmt::Display for PairCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.exchange, self.symbol)
    }
}

impl std::str::FromStr for PairCursor {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("{raw:?} is not a cursor exchange/symbol (take the `next` of a page)");
        let (e, s) = raw.split_once('/').ok_or_else(bad)?;
        Ok(PairCursor {
            exchange: Exchange::new(e).map_err(|_| bad())?,
            symbol: Symbol::new(s).map_err(|_| bad())?,
        })
    }
}

/// The window a coverage question is over: `filter`'s `from` and `to`
/// where given, else `default`'s (the configured universe's, for the
/// daemon), else the first and last day any selected (exchange, symbol)
/// holds a cell for. `None` when there is nothing to bound it by.
pub fn window(
    store: &Store,
    filter: &Filter,
    default: Option<(NaiveDate, NaiveDate)>,
) -> Option<(NaiveDate, NaiveDate)> {
    let held = || {
        let mut span: Option<(NaiveDate, NaiveDate)> = None;
        for (e, s) in pairs(store, filter) {
            let mut days = store.cells_of(e, s).map(|(d, _)| d);
            let Some(first) = days.next() else { continue };
            let last = days.last().unwrap_or(first);
            span = Some(match span {
                Some((a, b)) => (a.min(first), b.max(last)),
                None => (first, last),
            });
        }
        span
    };
    let from = filter.from.or(default.map(|d| d.0));
    let to = filter.to.or(default.map(|d| d.1));
    match (from, to) {
        (Some(from), Some(to)) => Some((from, to)),
        _ => {
            let (first, last) = held()?;
            Some((from.unwrap_or(first), to.unwrap_or(last)))
        }
    }
}

/// The (exchange, symbol) pairs of `store` that `filter`'s names select, in
/// order, each once.
fn pairs<'a>(
    store: &'a Store,
    filter: &'a Filter,
) -> impl Iterator<Item = (&'a Exchange, &'a Symbol)> + 'a {
    store.pairs().filter(|(e, s)| {
        (filter.exchanges.is_empty() || filter.exchanges.contains(*e))
            && (filter.symbols.is_empty() || filter.symbols.contains(*s))
    })
}

/// A page of coverage: at most `limit` of the (exchange, symbol) pairs
/// `filter` selects, after `after`, each over `window` (inclusive), and the
/// cursor of the next page if there is more. A pair counts the days of the
/// window in full, whether or not it holds a cell in it.
pub fn coverage_page(
    store: &Store,
    filter: &Filter,
    window: (NaiveDate, NaiveDate),
    after: Option<&PairCursor>,
    limit: usize,
) -> (Vec<PairCoverage>, Option<PairCursor>) {
    let (from, to) = window;
    let mut selected = pairs(store, filter)
        .filter(|(e, s)| after.is_none_or(|c| (&c.exchange, &c.symbol) < (*e, *s)));
    let mut out = Vec::new();
    for (e, s) in selected.by_ref().take(limit) {
        let mut held = store
            .cells_of(e, s)
            .skip_while(|(d, _)| *d < from)
            .take_while(|(d, _)| *d <= to)
            .peekable();
        let days = from.iter_days().take_while(|d| *d <= to).map(|day| {
            let state = held.next_if(|(d, _)| *d == day).map(|(_, cell)| cell.state);
            (day, state)
        });
        out.push(PairCoverage {
            exchange: e.clone(),
            symbol: s.clone(),
            from,
            to,
            coverage: coverage(days),
        });
    }
    let next = match (selected.next(), out.last()) {
        (Some(_), Some(last)) => Some(PairCursor {
            exchange: last.exchange.clone(),
            symbol: last.symbol.clone(),
        }),
        _ => None,
    };
    (out, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn runs_of_one_kind_are_one_gap_and_the_counts_add_up_to_the_window() {
        use CellState::*;
        let states = [
            None,
            Some(Final),
            Some(NoPrice),
            Some(Final),
            Some(Failed),
            Some(Failed),
            None,
            Some(Provisional),
            Some(Rejected),
            None,
        ];
        let days = d("2020-03-01").iter_days().zip(states);
        let c = coverage(days);
        assert_eq!(
            (c.first, c.last),
            (Some(d("2020-03-02")), Some(d("2020-03-09")))
        );
        assert_eq!(
            c.counts,
            StateCounts {
                final_: 2,
                provisional: 1,
                none: 1,
                failed: 2,
                rejected: 1,
                missing: 3
            }
        );
        let gaps: Vec<(GapKind, u32, u32)> = c
            .gaps
            .iter()
            .map(|g| {
                (
                    g.kind,
                    g.from.format("%d").to_string().parse().unwrap(),
                    g.days,
                )
            })
            .collect();
        assert_eq!(
            gaps,
            [
                (GapKind::Missing, 1, 1),
                (GapKind::None, 3, 1),
                (GapKind::Failed, 5, 2),
                (GapKind::Missing, 7, 1),
                (GapKind::Missing, 10, 1)
            ]
        );
        assert!((c.share_final - 0.2).abs() < 1e-12);
        assert_eq!(coverage([]).share_final, 0.0);
    }

    #[test]
    fn a_page_counts_every_day_of_the_window_and_goes_on_after_its_cursor() {
        use crate::model::{Outcome, TaskKey};
        use crate::query::fixtures::{cv, ex, sym};
        use crate::store::Observation;
        let mut store = Store::new();
        let mut put = |e: &str, s: &str, day: &str, outcome: Outcome| {
            let key = TaskKey {
                exchange: ex(e),
                symbol: sym(s),
                day: d(day),
            };
            store.apply(&key, &Observation::settled(outcome, 1));
        };
        put("kraken", "btc", "2020-03-02", Outcome::price(cv(1.0, 1.0)));
        put("kraken", "btc", "2020-03-03", Outcome::NoPrice);
        put("kraken", "eth", "2020-03-05", Outcome::price(cv(1.0, 1.0)));
        put("okex", "btc", "2020-03-01", Outcome::price(cv(1.0, 1.0)));
        let filter = Filter::default();
        // No bounds given: the first and last day held by any pair.
        let w = window(&store, &filter, None).expect("cells held");
        assert_eq!(w, (d("2020-03-01"), d("2020-03-05")));
        let (page, next) = coverage_page(&store, &filter, w, None, 2);
        let kinds = |p: &PairCoverage| -> Vec<(GapKind, NaiveDate, u32)> {
            p.coverage
                .gaps
                .iter()
                .map(|g| (g.kind, g.from, g.days))
                .collect()
        };
        assert_eq!(page.len(), 2);
        assert_eq!(
            kinds(&page[0]),
            [
                (GapKind::Missing, d("2020-03-01"), 1),
                (GapKind::None, d("2020-03-03"), 1),
                (GapKind::Missing, d("2020-03-04"), 2)
            ]
        );
        assert_eq!(page[1].coverage.counts.missing, 4);
        assert_eq!(page[1].coverage.first, Some(d("2020-03-05")));
        let next = next.expect("one pair left");
        assert_eq!(next.to_string(), "kraken/eth");
        let (rest, after) = coverage_page(
            &store,
            &filter,
            w,
            Some(&next.to_string().parse().unwrap()),
            2,
        );
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].exchange.as_str(), after), ("okex", None));
        // Given bounds win, and a window past the cells is all missing.
        let asked = Filter {
            exchanges: [ex("okex")].into_iter().collect(),
            from: Some(d("2020-04-01")),
            ..Filter::default()
        };
        let w = window(&store, &asked, None).expect("a from and a held last day");
        assert_eq!(w, (d("2020-04-01"), d("2020-03-01")));
        let w = window(&store, &asked, Some((d("2020-01-01"), d("2020-04-02")))).unwrap();
        let (page, _) = coverage_page(&store, &asked, w, None, 10);
        assert_eq!(kinds(&page[0]), [(GapKind::Missing, d("2020-04-01"), 2)]);
        assert_eq!(page[0].coverage.first, None);
    }
}
