//! The `Aggregator`: the one owner of the exchange -> date -> symbol map.
//!
//! Fetchers send it `PriceResult`s; the Producer tells it when a round starts
//! and ends and asks it which keys are still unsettled. Its upsert is
//! idempotent: a duplicate delivery changes nothing, and a failure never
//! replaces an answer the source already gave. In the daemon it also logs
//! snapshots (at each round's end, every `snapshot.every` while a round
//! runs, and on request); it hands a frozen copy of the store to a blocking
//! writer, so a write never holds its mailbox. It performs no network I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::NaiveDate;
use serde::Serialize;

use crate::metrics::Metrics;
use crate::model::{Exchange, Outcome, OutcomeKind, TaskKey};
use crate::snapshot::{self, Snapshot, SnapshotError};
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
    /// Failures of this round: exchange -> kind of reason -> (count, an example).
    failures: BTreeMap<Exchange, BTreeMap<String, (u64, String)>>,
}

impl Tally {
    fn new(round: u64, tasks: u64) -> Self {
        Self {
            round,
            counts: Counts {
                tasks,
                ..Counts::default()
            },
            started: Instant::now(),
            failures: BTreeMap::new(),
        }
    }

    /// One line per exchange that had failures: how many, and why.
    fn log_failures(&self) {
        for (exchange, reasons) in &self.failures {
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
}

/// The kind of a failure reason, for grouping: the text before the first
/// ": " (details such as positions vary from one answer to the next).
fn reason_kind(reason: &str) -> &str {
    reason.split(": ").next().unwrap_or(reason)
}

/// Where and how often the daemon logs snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSettings {
    pub dir: PathBuf,
    pub every: Duration,
    pub keep: usize,
}

/// A snapshot file written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    pub path: PathBuf,
    pub prices: usize,
    pub bytes: u64,
    pub millis: u128,
}

/// Owns the map and the running round's counts.
pub struct Aggregator {
    store: Store,
    round: Option<Tally>,
    last: Option<RoundSummary>,
    config_version: u64,
    progress_every: Duration,
    progress_timer: Option<SpawnHandle>,
    snapshots: Option<SnapshotSettings>,
    snapshot_timer: Option<SpawnHandle>,
    /// One snapshot write at a time; periodic ones skip while it is held.
    write_lock: Arc<tokio::sync::Mutex<()>>,
    metrics: Arc<Metrics>,
}

impl Aggregator {
    pub fn new(progress_every: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            store: Store::new(),
            round: None,
            last: None,
            config_version: 0,
            progress_every,
            progress_timer: None,
            snapshots: None,
            snapshot_timer: None,
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
            metrics,
        }
    }

    /// Starts from a store loaded from a snapshot.
    pub fn with_store(mut self, store: Store) -> Self {
        self.metrics.prices_stored.set(store.price_count() as i64);
        self.store = store;
        self
    }

    /// A write of the current store, for `ctx.spawn`/awaiting. `wait`: queue
    /// behind a write in progress; otherwise skip if one is.
    fn write(
        &self,
        wait: bool,
    ) -> Option<impl std::future::Future<Output = Option<Result<Written, SnapshotError>>>> {
        let settings = self.snapshots.clone()?;
        let snap = self.snapshot();
        let lock = self.write_lock.clone();
        let metrics = self.metrics.clone();
        Some(async move {
            let _guard = if wait {
                lock.lock_owned().await
            } else {
                lock.try_lock_owned().ok()?
            };
            let result = actix_rt::task::spawn_blocking(move || write_and_prune(&snap, &settings))
                .await
                .unwrap_or_else(|e| {
                    Err(SnapshotError::Write {
                        path: PathBuf::from("<snapshot writer>"),
                        source: std::io::Error::other(e.to_string()),
                    })
                });
            match &result {
                Ok(w) => {
                    metrics.snapshot_writes.inc();
                    log::info!(
                        "snapshot {}: {} prices, {} bytes, {} ms",
                        w.path.display(),
                        w.prices,
                        w.bytes,
                        w.millis
                    );
                }
                Err(e) => log::error!("{e}"),
            }
            Some(result)
        })
    }

    fn arm_timers(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.progress_timer.take() {
            ctx.cancel_future(h);
        }
        self.progress_timer =
            Some(ctx.run_interval(self.progress_every, |act, _| act.log_progress()));
        if let Some(h) = self.snapshot_timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(every) = self.snapshots.as_ref().map(|s| s.every) {
            self.snapshot_timer = Some(ctx.run_interval(every, |act, ctx| {
                if act.round.is_some() {
                    if let Some(w) = act.write(false) {
                        ctx.spawn(w.into_actor(act).map(|_, _, _| ()));
                    }
                }
            }));
        }
    }

    fn upsert(&mut self, round: u64, key: &TaskKey, outcome: Outcome) {
        let stamp = u32::try_from(round).unwrap_or(u32::MAX >> 2);
        let counted = self.store.upsert(key, outcome, stamp);
        match counted {
            Counted::New(kind) => {
                self.metrics.count_task(kind);
                if kind == OutcomeKind::Price {
                    self.metrics.prices_stored.inc();
                }
            }
            Counted::Again { .. } => {}
        }
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

    /// The status of the map and the rounds.
    fn status(&self) -> AggregatorStatus {
        AggregatorStatus {
            config_version: self.config_version,
            running: self.round.as_ref().map(|t| (t.round, t.counts)),
            last: self.last,
            prices: self.store.price_count(),
            missing: self.store.missing_count(),
            failed: self.store.failed_count(),
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
        self.arm_timers(ctx);
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
            log::debug!("{}: failed after {attempts} attempt(s): {reason}", msg.key);
            if let Some(t) = self.round.as_mut().filter(|t| t.round == msg.round) {
                let slot = t
                    .failures
                    .entry(msg.key.exchange.clone())
                    .or_default()
                    .entry(reason_kind(reason).to_owned())
                    .or_insert_with(|| (0, format!("{}: {reason}", msg.key)));
                slot.0 += 1;
            }
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
        self.round = Some(Tally::new(msg.round, msg.tasks));
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

    fn handle(&mut self, msg: RoundFinished, ctx: &mut Self::Context) -> Option<RoundSummary> {
        let t = self.round.take_if(|t| t.round == msg.round)?;
        t.log_failures();
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
        self.metrics.rounds.inc();
        self.metrics
            .prices_stored
            .set(self.store.price_count() as i64);
        if summary.counts.tasks > 0 {
            if let Some(w) = self.write(true) {
                ctx.spawn(w.into_actor(self).map(|_, _, _| ()));
            }
        }
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

/// Config the Aggregator runs on; applied whole.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Configure {
    pub config_version: u64,
    pub progress_every: Duration,
    /// `None`: no snapshot files (the `fetch` command).
    pub snapshots: Option<SnapshotSettings>,
}

impl Handler<Configure> for Aggregator {
    type Result = ();

    fn handle(&mut self, msg: Configure, ctx: &mut Self::Context) {
        self.config_version = msg.config_version;
        self.progress_every = msg.progress_every;
        self.snapshots = msg.snapshots;
        self.arm_timers(ctx);
    }
}

/// Write a snapshot now (after any write in progress). `None` when
/// snapshots are not configured.
#[derive(Message, Debug)]
#[rtype(result = "Option<Result<Written, SnapshotError>>")]
pub struct WriteSnapshot;

impl Handler<WriteSnapshot> for Aggregator {
    type Result = ResponseFuture<Option<Result<Written, SnapshotError>>>;

    fn handle(&mut self, _: WriteSnapshot, _: &mut Self::Context) -> Self::Result {
        match self.write(true) {
            Some(w) => Box::pin(w),
            None => Box::pin(async { None }),
        }
    }
}

/// Figures for `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AggregatorStatus {
    pub config_version: u64,
    /// The running round and its counts so far.
    pub running: Option<(u64, Counts)>,
    pub last: Option<RoundSummary>,
    pub prices: usize,
    pub missing: usize,
    pub failed: usize,
}

#[derive(Message, Debug)]
#[rtype(result = "AggregatorStatus")]
pub struct GetStatus;

impl Handler<GetStatus> for Aggregator {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status())
    }
}

/// A frozen copy of the store (cheap: series are shared until written).
#[derive(Message, Debug)]
#[rtype(result = "Store")]
pub struct GetStore;

impl Handler<GetStore> for Aggregator {
    type Result = MessageResult<GetStore>;

    fn handle(&mut self, _: GetStore, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.store.clone())
    }
}

fn write_and_prune(snap: &Snapshot, settings: &SnapshotSettings) -> Result<Written, SnapshotError> {
    let started = Instant::now();
    let path = settings.dir.join(snapshot::file_name(snap.created));
    let bytes = snap.write_atomic(&path)?;
    let millis = started.elapsed().as_millis();
    match snapshot::prune(&settings.dir, settings.keep) {
        Ok(removed) => {
            for r in removed {
                log::debug!("snapshot retention: removed {}", r.display());
            }
        }
        Err(e) => log::warn!("snapshot retention in {}: {e}", settings.dir.display()),
    }
    Ok(Written {
        path,
        prices: snap.price_count(),
        bytes,
        millis,
    })
}

impl Handler<super::Stop> for Aggregator {
    type Result = ();

    fn handle(&mut self, _: super::Stop, ctx: &mut Self::Context) {
        ctx.stop();
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
        a.round = Some(Tally::new(round, tasks));
    }

    fn counts(a: &Aggregator) -> Counts {
        a.round.as_ref().unwrap().counts
    }

    #[test]
    fn failures_are_grouped_per_exchange_by_kind_of_reason() {
        assert_eq!(
            reason_kind("malformed price JSON: EOF at line 1"),
            "malformed price JSON"
        );
        assert_eq!(reason_kind("server error (503)"), "server error (503)");
        let mut t = Tally::new(1, 3);
        for (e, r) in [
            ("kraken", "server error (503)"),
            ("kraken", "server error (503)"),
            ("okex", "timed out"),
        ] {
            t.failures
                .entry(Exchange::new(e).unwrap())
                .or_default()
                .entry(reason_kind(r).to_owned())
                .or_insert_with(|| (0, r.to_owned()))
                .0 += 1;
        }
        assert_eq!(
            t.failures[&Exchange::new("kraken").unwrap()]["server error (503)"].0,
            2
        );
        assert_eq!(t.failures.len(), 2);
    }

    #[test]
    fn duplicate_delivery_changes_nothing() {
        let mut a = Aggregator::new(Duration::from_secs(60), Metrics::new());
        with_round(&mut a, 1, 1);
        a.upsert(1, &key(1), price(5.0));
        a.upsert(1, &key(1), price(5.0));
        assert_eq!((counts(&a).prices, counts(&a).done()), (1, 1));
    }

    #[test]
    fn a_late_failure_never_replaces_an_answer() {
        let mut a = Aggregator::new(Duration::from_secs(60), Metrics::new());
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
        let mut a = Aggregator::new(Duration::from_secs(60), Metrics::new());
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
        let mut a = Aggregator::new(Duration::from_secs(60), Metrics::new());
        with_round(&mut a, 1, 1);
        a.upsert(1, &key(1), price(5.0));
        with_round(&mut a, 2, 1);
        a.upsert(2, &key(1), failed());
        assert_eq!(counts(&a).failed, 1);
        assert_eq!(a.snapshot().price_count(), 1);
    }

    #[test]
    fn results_of_another_round_do_not_touch_this_rounds_counts() {
        let mut a = Aggregator::new(Duration::from_secs(60), Metrics::new());
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
