//! The `Aggregator`: the one owner of the exchange -> date -> symbol map.
//!
//! The Supervisor sends it one `PriceResult` per task outcome; the Producer
//! tells it when a round starts and ends and asks it which keys are still
//! unsettled. What may replace what in a cell is the store's rule
//! (`Store::apply`): an older round's or a superseded dispatch's answer never
//! overwrites a newer one, and a failure never replaces an answer. It counts
//! each round by cell state (tasks = final + provisional + none + failed +
//! rejected) and, at the round's end, says per exchange what failed and why,
//! names an exchange or symbol the source does not know as a configuration
//! problem, and warns when an exchange that has prices answers "none" for
//! most closed days. In the daemon it also keeps the record: the cells that
//! changed go to the `Recorder` every `store.flush_every` and at each round's
//! end, and a JSON export of the whole aggregate is written every
//! `snapshot.every` (off by default) from a frozen copy on a blocking task
//! (`persist.rs`), so no write holds its mailbox. It performs no network
//! I/O. (A little over 500 lines: the
//! actor and the messages of its mailbox stay together; a round's tally is
//! `tally.rs`.)

mod persist;
mod tally;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::recorder::{Barrier, BeginRound, Compact, FinishRound, Persist, Recorder};
use super::Reconfigure;
use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::model::{CellState, Outcome, TaskKey};
pub use crate::model::{Counts, RoundSummary};
use crate::record::RecordError;
use crate::snapshot::Snapshot;
use crate::store::{Applied, Observation, Stamp, Store};
pub use persist::{export_name, Written};
use persist::{Dirty, Exports};
use tally::Tally;

/// Owns the map and the running round's counts.
pub struct Aggregator {
    store: Store,
    round: Option<Tally>,
    last: Option<RoundSummary>,
    /// When the Producer will start the next round, if it runs on a schedule.
    next_round: Option<DateTime<Utc>>,
    config_version: u64,
    progress_every: Duration,
    progress_timer: Option<SpawnHandle>,
    /// The daemon's record (none for `fetch`), and what changed since the
    /// last flush.
    recorder: Option<Addr<Recorder>>,
    /// When rounds start and end, for the record.
    clock: Clock,
    dirty: Dirty,
    flush_timer: Option<SpawnHandle>,
    exports: Exports,
    /// Held while an export is being written.
    export_lock: Arc<tokio::sync::Mutex<()>>,
    metrics: Arc<Metrics>,
}

impl Aggregator {
    pub fn new(progress_every: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            store: Store::new(),
            round: None,
            last: None,
            next_round: None,
            config_version: 0,
            progress_every,
            progress_timer: None,
            recorder: None,
            clock: Clock::system(),
            dirty: Dirty::default(),
            flush_timer: None,
            exports: Exports::default(),
            export_lock: Arc::new(tokio::sync::Mutex::new(())),
            metrics,
        }
    }

    /// Keeps the record through `recorder` (the daemon), under config
    /// `version` of `config`.
    pub fn recording(
        mut self,
        recorder: Addr<Recorder>,
        clock: Clock,
        config: &Config,
        version: u64,
    ) -> Self {
        self.recorder = Some(recorder);
        self.clock = clock;
        self.configure(config, version);
        self
    }

    /// Takes the settings of `config` (version `version`); timers are
    /// re-armed by the caller.
    fn configure(&mut self, config: &Config, version: u64) {
        self.config_version = version;
        self.progress_every = config.log.progress_every;
        self.dirty.flush_every = config.store.flush_every;
        self.dirty.keep_for = config.store.keep_for;
        if self.recorder.is_some() {
            self.exports.configure(config);
        }
    }

    /// Starts from a store loaded from a snapshot.
    pub fn with_store(mut self, store: Store) -> Self {
        self.metrics.prices_stored.set(store.price_count() as i64);
        self.store = store;
        self
    }

    /// Sends the cells changed since the last flush to the record (as
    /// changed in the running round, or the last one); if the write fails
    /// they stay marked, for the next flush.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        let Some(recorder) = self.recorder.clone() else {
            return;
        };
        if self.dirty.keys.is_empty() {
            return;
        }
        let round = self
            .round
            .as_ref()
            .map(|t| t.round)
            .or(self.last.map(|s| s.round))
            .unwrap_or(0);
        let keys: Vec<TaskKey> = self.dirty.keys.drain().collect();
        let cells: Vec<(TaskKey, crate::store::Cell)> = keys
            .iter()
            .filter_map(|k| Some((k.clone(), self.store.get(&k.exchange, &k.symbol, k.day)?)))
            .collect();
        let write = recorder.send(Persist { round, cells });
        ctx.spawn(write.into_actor(self).map(move |reply, act, _| {
            let error = match reply {
                Ok(Ok(stats)) => {
                    log::debug!("record: {} cells of round {round} written", stats.cells);
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("the recorder is not running: {e}"),
            };
            log::error!(
                "{error}; the {} changed cells stay in memory and are written at the next flush",
                keys.len()
            );
            act.metrics.record_errors.inc();
            act.dirty.keys.extend(keys);
        }));
    }

    /// Tells the record, and logs what went wrong if it did.
    fn tell<M>(&self, ctx: &mut Context<Self>, msg: M)
    where
        M: Message<Result = Result<(), crate::record::RecordError>> + Send + 'static,
        Recorder: Handler<M>,
    {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let metrics = self.metrics.clone();
        ctx.spawn(
            recorder
                .send(msg)
                .into_actor(self)
                .map(move |reply, _, _| match reply {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        metrics.record_errors.inc();
                        log::error!("{e}");
                    }
                    Err(e) => log::error!("the recorder is not running: {e}"),
                }),
        );
    }

    /// Compacts the record's history older than `store.keep_for`, at most
    /// once a day.
    fn compact_if_due(&mut self, ctx: &mut Context<Self>) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        if !self.dirty.compaction_due() {
            return;
        }
        self.dirty.compacted = Some(Instant::now());
        let compact = recorder.send(Compact {
            keep_for: self.dirty.keep_for,
            now: self.clock.now(),
        });
        ctx.spawn(compact.into_actor(self).map(|reply, _, _| match reply {
            Ok(Ok(c)) if c.history_rows > 0 => log::info!(
                "record: history before round {} compacted ({} rows, {} rounds)",
                c.cutoff_round.unwrap_or(0),
                c.history_rows,
                c.rounds
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => log::error!("{e}"),
            Err(e) => log::error!("the recorder is not running: {e}"),
        }));
    }

    /// Exports the aggregate as JSON if `snapshot.every` says it is time.
    fn export_if_due(&mut self, ctx: &mut Context<Self>) {
        if !self.exports.due() {
            return;
        }
        // Taken here, not in the task, so a `Flush` that comes next waits
        // for this export; a previous export still running skips this one.
        let Ok(guard) = self.export_lock.clone().try_lock_owned() else {
            log::debug!("an export is still being written; this round's is skipped");
            return;
        };
        self.exports.last = Some(Instant::now());
        let snap = self.snapshot();
        let path = self.exports.path(snap.round);
        let written = self.exports.written.clone();
        let keep = self.exports.keep;
        let work = actix_rt::task::spawn_blocking(move || {
            let result = persist::export(&snap, &path, &written, keep);
            drop(guard);
            result
        });
        ctx.spawn(work.into_actor(self).map(|result, act, _| match result {
            Ok(Ok((w, removed))) => {
                act.metrics.snapshot_writes.inc();
                log::info!(
                    "snapshot {}: {} prices, {} bytes, {} ms",
                    w.path.display(),
                    w.prices,
                    w.bytes,
                    w.millis
                );
                act.exports
                    .written
                    .retain(|p| !removed.contains(p) && *p != w.path);
                act.exports.written.push(w.path);
            }
            Ok(Err(e)) => log::error!("{e}"),
            Err(e) => log::error!("the snapshot export stopped: {e}"),
        }));
    }

    fn arm_timers(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.progress_timer.take() {
            ctx.cancel_future(h);
        }
        self.progress_timer =
            Some(ctx.run_interval(self.progress_every, |act, _| act.log_progress()));
        if let Some(h) = self.flush_timer.take() {
            ctx.cancel_future(h);
        }
        if self.recorder.is_some() && !self.dirty.flush_every.is_zero() {
            self.flush_timer = Some(ctx.run_interval(self.dirty.flush_every, |act, ctx| {
                act.flush(ctx);
            }));
        }
    }

    fn record(&mut self, msg: PriceResult) {
        let key = msg.key;
        let round = msg.round;
        if let Outcome::Failed { reason, attempts } = &msg.outcome {
            log::debug!("{key}: failed after {attempts} attempt(s): {reason}");
        }
        let failure = match &msg.outcome {
            Outcome::Failed { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        let closed_answer = msg.is_final && msg.outcome.is_answer();
        let none = matches!(msg.outcome, Outcome::NoPrice);
        let obs = Observation {
            outcome: msg.outcome,
            is_final: msg.is_final,
            asked_at: msg.asked_at,
            source: msg.source,
            stamp: Stamp {
                round,
                dispatch: msg.dispatch,
            },
        };
        let applied = self.store.apply(&key, &obs);
        match applied {
            Applied::Stale => {
                self.metrics.stale_results.inc();
                log::debug!("{key}: a result of round {round} older than the cell's, dropped");
                return;
            }
            Applied::New(state) => self.metrics.count_task(state),
            Applied::Again { .. } => {}
        }
        if self.recorder.is_some() {
            self.dirty.keys.insert(key.clone());
        }
        let Some(t) = self.round.as_mut().filter(|t| t.round == round) else {
            return;
        };
        match applied {
            Applied::New(state) => t.counts.add(state, 1),
            Applied::Again { before, now } => {
                t.counts.add(before, -1);
                t.counts.add(now, 1);
            }
            Applied::Stale => {}
        }
        if let Some(reason) = failure {
            t.note_failure(&key, &reason);
        }
        if closed_answer {
            let c = t.closed.entry(key.exchange.clone()).or_default();
            c.answered += 1;
            c.none += u64::from(none);
        }
    }

    /// The status of the map and the rounds.
    fn status(&self) -> AggregatorStatus {
        AggregatorStatus {
            config_version: self.config_version,
            running: self.round.as_ref().map(|t| (t.round, t.counts)),
            last: self.last,
            next_round_at: self.next_round,
            prices: self.store.price_count(),
            cells: CellState::ALL.map(|s| (s, self.store.count(s))).into(),
            exchanges: self.store.exchanges().cloned().collect(),
            symbols: self.store.symbols().into_iter().cloned().collect(),
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
                "round {}: {}/{} done ({pct:.0}%), {:.0}/s, final {} provisional {} none {} failed {} rejected {}",
                t.round,
                c.done(),
                c.tasks,
                c.done() as f64 / secs,
                c.finals,
                c.provisional,
                c.none,
                c.failed,
                c.rejected
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

/// The outcome of one task, as the Supervisor decided it.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PriceResult {
    pub round: u64,
    /// The Supervisor's number for the dispatch that produced it; with the
    /// round, it orders results (a newer one wins).
    pub dispatch: u64,
    pub key: TaskKey,
    pub outcome: Outcome,
    /// Asked after the day closed plus `source.settle_after`.
    pub is_final: bool,
    /// When the source was asked.
    pub asked_at: DateTime<Utc>,
    /// Which source answered.
    pub source: Arc<str>,
}

impl Handler<PriceResult> for Aggregator {
    type Result = ();

    fn handle(&mut self, msg: PriceResult, _: &mut Self::Context) {
        self.record(msg);
    }
}

/// When the next scheduled round starts (the daemon), so that failed and
/// provisional cells can say when they will be tried again.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct NextRound {
    pub at: Option<DateTime<Utc>>,
}

impl Handler<NextRound> for Aggregator {
    type Result = ();

    fn handle(&mut self, msg: NextRound, _: &mut Self::Context) {
        self.next_round = msg.at;
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

    fn handle(&mut self, msg: RoundStarted, ctx: &mut Self::Context) {
        log::info!("round {} started: {} tasks", msg.round, msg.tasks);
        // Whatever changed between rounds (late answers) belongs to the last.
        self.flush(ctx);
        self.round = Some(Tally::new(msg.round, msg.tasks));
        self.tell(
            ctx,
            BeginRound {
                round: msg.round,
                started: self.clock.now(),
                config_version: self.config_version,
            },
        );
    }
}

/// Every task of the round has been answered; closes the round's counts.
/// Sent after the last fetcher reply, so every result is already in the
/// mailbox ahead of it.
#[derive(Message, Debug)]
#[rtype(result = "Option<RoundSummary>")]
pub struct RoundFinished {
    pub round: u64,
    /// Cut short by a shutdown.
    pub aborted: bool,
}

impl Handler<RoundFinished> for Aggregator {
    type Result = Option<RoundSummary>;

    fn handle(&mut self, msg: RoundFinished, ctx: &mut Self::Context) -> Option<RoundSummary> {
        let t = self.round.take_if(|t| t.round == msg.round)?;
        t.log_failures();
        t.log_suspicious_none(&self.store);
        let summary = RoundSummary {
            round: t.round,
            config_version: self.config_version,
            aborted: msg.aborted,
            counts: t.counts,
            elapsed: t.started.elapsed(),
        };
        let c = summary.counts;
        log::info!(
            "round {} {}: {c} in {:.2}s",
            summary.round,
            if msg.aborted {
                "aborted by shutdown"
            } else {
                "finished"
            },
            summary.elapsed.as_secs_f64()
        );
        self.last = Some(summary);
        self.metrics.rounds.inc();
        self.metrics
            .prices_stored
            .set(self.store.price_count() as i64);
        self.flush(ctx);
        self.tell(
            ctx,
            FinishRound {
                summary,
                finished: self.clock.now(),
            },
        );
        self.compact_if_due(ctx);
        if summary.counts.tasks > 0 {
            self.export_if_due(ctx);
        }
        Some(summary)
    }
}

/// Of these keys, the ones still to fetch: all but the settled cells (final
/// prices, final "none", rejections) that their source gave: `sources`'
/// for an (exchange, symbol) listed there, else `source`.
#[derive(Message)]
#[rtype(result = "Vec<TaskKey>")]
pub struct Unsettled {
    /// The round's keys, made as they are judged (a universe's keys are
    /// never all in memory at once, only the unsettled ones).
    pub keys: Box<dyn Iterator<Item = TaskKey> + Send>,
    pub source: Arc<str>,
    pub sources:
        std::collections::HashMap<(crate::model::Exchange, crate::model::Symbol), Arc<str>>,
}

impl std::fmt::Debug for Unsettled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unsettled")
            .field("keys", &self.keys.size_hint())
            .field("source", &self.source)
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl Handler<Unsettled> for Aggregator {
    type Result = MessageResult<Unsettled>;

    fn handle(&mut self, msg: Unsettled, _: &mut Self::Context) -> Self::Result {
        let source = msg.source;
        let sources = msg.sources;
        MessageResult(
            msg.keys
                .filter(|k| {
                    let source = if sources.is_empty() {
                        &source
                    } else {
                        sources
                            .get(&(k.exchange.clone(), k.symbol.clone()))
                            .unwrap_or(&source)
                    };
                    !self.store.is_settled(k, source)
                })
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

impl Handler<Reconfigure> for Aggregator {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        self.configure(&msg.config, msg.version);
        self.arm_timers(ctx);
    }
}

/// Writes what is not in the record yet; answered once the Recorder has
/// written everything sent before (the daemon's last step). `None` when
/// there is no record (`fetch`).
#[derive(Message, Debug)]
#[rtype(result = "Option<Result<(), RecordError>>")]
pub struct Flush;

impl Handler<Flush> for Aggregator {
    type Result = ResponseFuture<Option<Result<(), RecordError>>>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        self.flush(ctx);
        let Some(recorder) = self.recorder.clone() else {
            return Box::pin(async { None });
        };
        // The Recorder handles its mailbox in order: when this is answered,
        // every write sent before it is done; an export under way is waited
        // for too.
        let exporting = self.export_lock.clone();
        Box::pin(async move {
            let written = match recorder.send(Barrier).await {
                Ok(r) => r,
                Err(e) => Err(RecordError::Stopped(e.to_string())),
            };
            let _ = exporting.lock().await;
            Some(written)
        })
    }
}

/// Figures for `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AggregatorStatus {
    pub config_version: u64,
    /// The running round and its counts so far.
    pub running: Option<(u64, Counts)>,
    pub last: Option<RoundSummary>,
    /// When failed and provisional cells will be tried again.
    pub next_round_at: Option<DateTime<Utc>>,
    /// Cells holding a final or provisional price.
    pub prices: usize,
    /// Cells by state.
    pub cells: BTreeMap<CellState, usize>,
    /// The exchanges and symbols the map holds cells of, in order.
    pub exchanges: Vec<crate::model::Exchange>,
    pub symbols: Vec<crate::model::Symbol>,
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

impl Handler<super::Stop> for Aggregator {
    type Result = ();

    fn handle(&mut self, _: super::Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
