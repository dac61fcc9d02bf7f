//! The `Aggregator`: the one owner of the exchange -> date -> symbol map.
//!
//! Fetchers send it `PriceResult`s; the Producer tells it when a round starts
//! and ends and asks it which keys are still unsettled. Its upsert is
//! idempotent: a duplicate delivery changes nothing, and a failure never
//! replaces an answer the source already gave. It performs no network I/O.

use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::NaiveDate;
use serde::Serialize;

use crate::model::{Outcome, OutcomeKind, TaskKey};
use crate::snapshot::Snapshot;
use crate::store::{Counted, Store};

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
    store: Store,
    round: Option<Tally>,
    last: Option<RoundSummary>,
    config_version: u64,
    progress_every: Duration,
}

impl Aggregator {
    pub fn new(progress_every: Duration) -> Self {
        Self {
            store: Store::new(),
            round: None,
            last: None,
            config_version: 0,
            progress_every,
        }
    }

    fn upsert(&mut self, round: u64, key: &TaskKey, outcome: Outcome) {
        let stamp = u32::try_from(round).unwrap_or(u32::MAX >> 2);
        let counted = self.store.upsert(key, outcome, stamp);
        if let Some(t) = self.round.as_mut().filter(|t| t.round == round) {
            match counted {
                Counted::New(kind) => t.counts.add(kind, 1),
                Counted::Again { before, now } => {
                    t.counts.add(before, -1);
                    t.counts.add(now, 1);
                }
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let (round, counts) = match (&self.round, &self.last) {
            (Some(t), _) => (t.round, t.counts),
            (None, Some(s)) => (s.round, s.counts),
            (None, None) => (0, Counts::default()),
        };
        Snapshot::new(self.config_version, round, counts, self.store.clone())
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
        self.upsert(msg.round, &msg.key, msg.outcome);
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
        MessageResult(
            msg.keys
                .into_iter()
                .filter(|k| !self.store.is_settled(k, today))
                .collect(),
        )
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
    use crate::model::{Exchange, Ohlcv, Symbol};

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

    fn with_round(a: &mut Aggregator, round: u64, tasks: u64) {
        a.round = Some(Tally {
            round,
            counts: Counts {
                tasks,
                ..Counts::default()
            },
            started: Instant::now(),
        });
    }

    fn counts(a: &Aggregator) -> Counts {
        a.round.as_ref().unwrap().counts
    }

    #[test]
    fn duplicate_delivery_changes_nothing() {
        let mut a = Aggregator::new(Duration::from_secs(60));
        with_round(&mut a, 1, 1);
        a.upsert(1, &key(1), price(5.0));
        a.upsert(1, &key(1), price(5.0));
        assert_eq!((counts(&a).prices, counts(&a).done()), (1, 1));
    }

    #[test]
    fn a_late_failure_never_replaces_an_answer() {
        let mut a = Aggregator::new(Duration::from_secs(60));
        with_round(&mut a, 1, 1);
        a.upsert(1, &key(1), price(5.0));
        a.upsert(1, &key(1), failed());
        assert_eq!((counts(&a).prices, counts(&a).failed), (1, 0));
        let snap = a.snapshot();
        assert_eq!(snap.price_count(), 1);
        assert!(snap.failed().is_empty());
    }

    #[test]
    fn an_answer_replaces_an_earlier_failure() {
        let mut a = Aggregator::new(Duration::from_secs(60));
        with_round(&mut a, 1, 1);
        a.upsert(1, &key(1), failed());
        a.upsert(1, &key(1), Outcome::Missing);
        assert_eq!(
            (counts(&a).missing, counts(&a).failed, counts(&a).done()),
            (1, 0, 1)
        );
    }

    #[test]
    fn a_failed_refetch_keeps_the_old_price_but_counts_as_failed() {
        let mut a = Aggregator::new(Duration::from_secs(60));
        with_round(&mut a, 1, 1);
        a.upsert(1, &key(1), price(5.0));
        with_round(&mut a, 2, 1);
        a.upsert(2, &key(1), failed());
        assert_eq!(counts(&a).failed, 1);
        assert_eq!(a.snapshot().price_count(), 1);
    }

    #[test]
    fn results_of_another_round_do_not_touch_this_rounds_counts() {
        let mut a = Aggregator::new(Duration::from_secs(60));
        with_round(&mut a, 2, 1);
        a.upsert(1, &key(1), price(5.0));
        assert_eq!(counts(&a).done(), 0);
        assert_eq!(
            a.snapshot().price_count(),
            1,
            "the price is kept all the same"
        );
    }
}
