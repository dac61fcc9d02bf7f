//! The `Aggregator`: the one owner of the exchange -> date -> symbol map.
//!
//! Fetchers send it `PriceResult`s; the Producer tells it when a round starts
//! and ends and asks it which keys are still unsettled. Its upsert is
//! idempotent: a duplicate delivery changes nothing, and a failure never
//! replaces an answer the source already gave. It performs no network I/O.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::NaiveDate;
use serde::Serialize;

use crate::model::{Exchange, Outcome, OutcomeKind, Symbol, TaskKey};
use crate::snapshot::{FailedTask, Snapshot};

/// One key's state in the map.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub outcome: Outcome,
    /// The round that last delivered a result for this key.
    round: u64,
    /// What that round counted for this key (may differ from `outcome` when
    /// a failure did not replace an earlier answer).
    counted: OutcomeKind,
}

/// exchange -> day -> symbol -> entry.
pub type PriceMap = BTreeMap<Exchange, BTreeMap<NaiveDate, BTreeMap<Symbol, Entry>>>;

/// Tasks of a round and what became of them so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    pub tasks: u64,
    pub prices: u64,
    pub missing: u64,
    pub failed: u64,
}

impl Counts {
    /// Tasks with a final outcome.
    pub fn done(&self) -> u64 {
        self.prices + self.missing + self.failed
    }

    fn add(&mut self, kind: OutcomeKind, by: i64) {
        let slot = match kind {
            OutcomeKind::Price => &mut self.prices,
            OutcomeKind::Missing => &mut self.missing,
            OutcomeKind::Failed => &mut self.failed,
        };
        *slot = slot.saturating_add_signed(by);
    }
}

/// What a finished round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RoundSummary {
    pub round: u64,
    pub counts: Counts,
    pub elapsed: Duration,
}

#[derive(Debug)]
struct Tally {
    round: u64,
    counts: Counts,
    started: Instant,
}

/// Owns the map and the running round's counts.
pub struct Aggregator {
    map: PriceMap,
    round: Option<Tally>,
    last: Option<RoundSummary>,
    progress_every: Duration,
}

impl Aggregator {
    pub fn new(progress_every: Duration) -> Self {
        Self {
            map: PriceMap::new(),
            round: None,
            last: None,
            progress_every,
        }
    }

    fn upsert(&mut self, round: u64, key: TaskKey, outcome: Outcome) {
        let kind = outcome.kind();
        let slot = self
            .map
            .entry(key.exchange)
            .or_default()
            .entry(key.day)
            .or_default()
            .entry(key.symbol);
        let counted_before = match slot {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Entry {
                    outcome,
                    round,
                    counted: kind,
                });
                None
            }
            std::collections::btree_map::Entry::Occupied(mut o) => {
                let e = o.get_mut();
                let before = (e.round == round).then_some(e.counted);
                // A duplicate failure within a round cannot undo an answer.
                let counted = match before {
                    Some(prev) if prev != OutcomeKind::Failed && kind == OutcomeKind::Failed => {
                        prev
                    }
                    _ => kind,
                };
                if outcome.is_answer() || !e.outcome.is_answer() {
                    e.outcome = outcome;
                }
                e.round = round;
                e.counted = counted;
                before.map(|b| (b, counted))
            }
        };
        if let Some(t) = self.round.as_mut().filter(|t| t.round == round) {
            match counted_before {
                None => t.counts.add(kind, 1),
                Some((before, now)) => {
                    t.counts.add(before, -1);
                    t.counts.add(now, 1);
                }
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut prices = BTreeMap::new();
        let mut failed = Vec::new();
        for (exchange, days) in &self.map {
            let by_day: &mut BTreeMap<NaiveDate, BTreeMap<Symbol, _>> =
                prices.entry(exchange.clone()).or_default();
            for (day, symbols) in days {
                for (symbol, entry) in symbols {
                    match &entry.outcome {
                        Outcome::Price(p) => {
                            by_day
                                .entry(*day)
                                .or_default()
                                .insert(symbol.clone(), Some(*p));
                        }
                        Outcome::Missing => {
                            by_day.entry(*day).or_default().insert(symbol.clone(), None);
                        }
                        Outcome::Failed { reason, attempts } => failed.push(FailedTask {
                            exchange: exchange.clone(),
                            symbol: symbol.clone(),
                            day: *day,
                            reason: reason.clone(),
                            attempts: *attempts,
                        }),
                    }
                }
            }
        }
        let (round, counts) = match (&self.round, &self.last) {
            (Some(t), _) => (t.round, t.counts),
            (None, Some(s)) => (s.round, s.counts),
            (None, None) => (0, Counts::default()),
        };
        Snapshot::new(round, counts, prices, failed)
    }

    fn log_progress(&self) {
        if let Some(t) = &self.round {
            let c = t.counts;
            let secs = t.started.elapsed().as_secs_f64().max(1e-3);
            let pct = if c.tasks == 0 {
                100.0
            } else {
                100.0 * c.done() as f64 / c.tasks as f64
            };
            log::info!(
                "round {}: {}/{} done ({pct:.0}%), {:.0}/s, prices {} missing {} failed {}",
                t.round,
                c.done(),
                c.tasks,
                c.done() as f64 / secs,
                c.prices,
                c.missing,
                c.failed
            );
        }
    }
}

impl Actor for Aggregator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.progress_every, |act, _| act.log_progress());
    }
}

/// The final outcome of one task, from a fetcher (or from the supervisor
/// when no fetcher survived to say it).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PriceResult {
    pub round: u64,
    pub key: TaskKey,
    pub outcome: Outcome,
}

impl Handler<PriceResult> for Aggregator {
    type Result = ();

    fn handle(&mut self, msg: PriceResult, _: &mut Self::Context) {
        if let Outcome::Failed { reason, attempts } = &msg.outcome {
            log::warn!("{}: failed after {attempts} attempt(s): {reason}", msg.key);
        }
        self.upsert(msg.round, msg.key, msg.outcome);
    }
}

/// A round begins with this many tasks.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct RoundStarted {
    pub round: u64,
    pub tasks: u64,
}

impl Handler<RoundStarted> for Aggregator {
    type Result = ();

    fn handle(&mut self, msg: RoundStarted, _: &mut Self::Context) {
        log::info!("round {} started: {} tasks", msg.round, msg.tasks);
        self.round = Some(Tally {
            round: msg.round,
            counts: Counts {
                tasks: msg.tasks,
                ..Counts::default()
            },
            started: Instant::now(),
        });
    }
}

/// Every task of the round has been answered; closes the round's counts.
/// Sent after the last fetcher reply, so every result is already in the
/// mailbox ahead of it.
#[derive(Message, Debug)]
#[rtype(result = "Option<RoundSummary>")]
pub struct RoundFinished {
    pub round: u64,
}

impl Handler<RoundFinished> for Aggregator {
    type Result = Option<RoundSummary>;

    fn handle(&mut self, msg: RoundFinished, _: &mut Self::Context) -> Option<RoundSummary> {
        let t = self.round.take_if(|t| t.round == msg.round)?;
        let summary = RoundSummary {
            round: t.round,
            counts: t.counts,
            elapsed: t.started.elapsed(),
        };
        let c = summary.counts;
        log::info!(
            "round {} finished: {} tasks, {} prices, {} missing, {} failed in {:.2}s",
            summary.round,
            c.tasks,
            c.prices,
            c.missing,
            c.failed,
            summary.elapsed.as_secs_f64()
        );
        self.last = Some(summary);
        Some(summary)
    }
}

/// Of these keys, the ones still to fetch: a key whose day is closed
/// (before `today`) and whose outcome is an answer is settled.
#[derive(Message, Debug)]
#[rtype(result = "Vec<TaskKey>")]
pub struct Unsettled {
    pub keys: Vec<TaskKey>,
    pub today: NaiveDate,
}

impl Handler<Unsettled> for Aggregator {
    type Result = MessageResult<Unsettled>;

    fn handle(&mut self, msg: Unsettled, _: &mut Self::Context) -> Self::Result {
        let today = msg.today;
        let settled = |k: &TaskKey| {
            k.day < today
                && self
                    .map
                    .get(&k.exchange)
                    .and_then(|d| d.get(&k.day))
                    .and_then(|s| s.get(&k.symbol))
                    .is_some_and(|e| e.outcome.is_answer())
        };
        MessageResult(msg.keys.into_iter().filter(|k| !settled(k)).collect())
    }
}

/// The running round's counts, if a round runs.
#[derive(Message, Debug)]
#[rtype(result = "Option<(u64, Counts)>")]
pub struct GetProgress;

impl Handler<GetProgress> for Aggregator {
    type Result = Option<(u64, Counts)>;

    fn handle(&mut self, _: GetProgress, _: &mut Self::Context) -> Self::Result {
        self.round.as_ref().map(|t| (t.round, t.counts))
    }
}

/// A copy of the whole map, in the snapshot format.
#[derive(Message, Debug)]
#[rtype(result = "Snapshot")]
pub struct TakeSnapshot;

impl Handler<TakeSnapshot> for Aggregator {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ohlcv;

    fn key(day: u32) -> TaskKey {
        TaskKey {
            exchange: Exchange::new("kraken").unwrap(),
            symbol: Symbol::new("btc").unwrap(),
            day: NaiveDate::from_ymd_opt(2020, 3, day).unwrap(),
        }
    }

    fn price(close: f64) -> Outcome {
        Outcome::Price(Ohlcv::new(close, close, close, close, 1.0).unwrap())
    }

    fn failed() -> Outcome {
        Outcome::Failed {
            reason: "x".into(),
            attempts: 1,
        }
    }

    fn agg_with_round(round: u64, tasks: u64) -> Aggregator {
        let mut a = Aggregator::new(Duration::from_secs(60));
        a.round = Some(Tally {
            round,
            counts: Counts {
                tasks,
                ..Counts::default()
            },
            started: Instant::now(),
        });
        a
    }

    #[test]
    fn duplicate_delivery_changes_nothing() {
        let mut a = agg_with_round(1, 1);
        a.upsert(1, key(1), price(5.0));
        a.upsert(1, key(1), price(5.0));
        let c = a.round.as_ref().unwrap().counts;
        assert_eq!((c.prices, c.done()), (1, 1));
    }

    #[test]
    fn a_late_failure_never_replaces_an_answer() {
        let mut a = agg_with_round(1, 1);
        a.upsert(1, key(1), price(5.0));
        a.upsert(1, key(1), failed());
        let c = a.round.as_ref().unwrap().counts;
        assert_eq!((c.prices, c.failed), (1, 0));
        assert_eq!(a.snapshot().prices.len(), 1);
        assert!(a.snapshot().failed.is_empty());
    }

    #[test]
    fn an_answer_replaces_an_earlier_failure() {
        let mut a = agg_with_round(1, 1);
        a.upsert(1, key(1), failed());
        a.upsert(1, key(1), Outcome::Missing);
        let c = a.round.as_ref().unwrap().counts;
        assert_eq!((c.missing, c.failed, c.done()), (1, 0, 1));
    }

    #[test]
    fn a_failed_refetch_keeps_the_old_price_but_counts_as_failed() {
        let mut a = agg_with_round(1, 1);
        a.upsert(1, key(1), price(5.0));
        a.round = Some(Tally {
            round: 2,
            counts: Counts {
                tasks: 1,
                ..Counts::default()
            },
            started: Instant::now(),
        });
        a.upsert(2, key(1), failed());
        assert_eq!(a.round.as_ref().unwrap().counts.failed, 1);
        let snap = a.snapshot();
        assert!(snap
            .prices
            .values()
            .next()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .values()
            .all(Option::is_some));
    }
}
