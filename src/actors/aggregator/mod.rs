//! The `Aggregator`: the one owner of the exchange -> date -> symbol map.
//!
//! The Supervisor sends it one `PriceResult` per task outcome; the Producer
//! tells it when a round starts and ends and asks it which keys are still
//! unsettled, answered from an index of settled days kept in step with the
//! map (`due.rs`), never by walking the cells held. What may replace what in a cell is the store's rule
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
//! (`persist.rs`, which also holds the Aggregator's flush, compaction,
//! export and `Flush`), so no write holds its mailbox. The cross-exchange
//! checks of each symbol-day a result changed (flags `outlier`, `stale`,
//! `off_peg`, and its reference close, sent to the record) are worked out
//! at each flush and before a question is answered (`quality.rs`). It performs no
//! network I/O. (A little over 500 lines: the actor and the messages of its
//! mailbox stay together; a round's tally is `tally.rs`.)

mod adopt;
mod due;
mod live;
mod persist;
pub mod quality;
mod tally;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::messages::{Reconfigure, Stop};
use super::recorder::{BeginRound, FinishRound, Recorder};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::model::{CellState, DayRange, Exchange, Outcome, Symbol, TaskKey};
pub use crate::model::{Counts, RoundSummary};
use crate::snapshot::Snapshot;
use crate::store::{Applied, Observation, Stamp, Store};
pub use adopt::Adopt;
use due::SettledIndex;
use live::Live;
pub use live::{StoreReader, View};
pub use persist::{export_name, Flush, Written};
use persist::{Dirty, Exports};
pub use quality::{GetReferenceView, ReferenceView};
use tally::Tally;

/// Owns the map and the running round's counts.
pub struct Aggregator {
    /// The store, the symbol-days whose cross-exchange checks must be
    /// worked out again, and what judging needs besides the cells (the
    /// settings, each market's quote, the peg markets): written here alone,
    /// read by questions without this mailbox (`live.rs`).
    live: StoreReader,
    /// The store's settled days, kept in step with it, so a round's due
    /// keys cost what is due rather than what is held.
    settled: SettledIndex,
    round: Option<Tally>,
    last: Option<RoundSummary>,
    /// The last round the record held at start (0 for a new one).
    resumed_from: u64,
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
    /// An aggregator without a record (`fetch`), under the config
    /// `initial` brings.
    pub fn new(initial: &Reconfigure, metrics: Arc<Metrics>) -> Self {
        Self::build(initial, None, metrics)
    }

    /// An aggregator that keeps the record through `recorder` (the daemon),
    /// under the config `initial` brings.
    pub fn recording(
        initial: &Reconfigure,
        recorder: Addr<Recorder>,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::build(initial, Some((recorder, clock)), metrics)
    }

    /// Start-up is a reconfiguration like any other: the settings come
    /// from `initial`, through `configure`, once.
    fn build(
        initial: &Reconfigure,
        record: Option<(Addr<Recorder>, Clock)>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (recorder, clock) = match record {
            Some((recorder, clock)) => (Some(recorder), clock),
            None => (None, Clock::system()),
        };
        let mut aggregator = Self {
            live: StoreReader::default(),
            settled: SettledIndex::default(),
            round: None,
            last: None,
            resumed_from: 0,
            next_round: None,
            config_version: 0,
            progress_every: Duration::ZERO,
            progress_timer: None,
            recorder,
            clock,
            dirty: Dirty::default(),
            flush_timer: None,
            exports: Exports::default(),
            export_lock: Arc::new(tokio::sync::Mutex::new(())),
            metrics,
        };
        aggregator.configure(initial);
        aggregator
    }

    /// Takes the settings of a config (at start-up, or in force from the
    /// next round); timers are re-armed by the caller.
    /// Applies the sections of the diff that concern the Aggregator (`log`
    /// for its progress lines, `store` for flushing and keeping history,
    /// `snapshot` for exports) and nothing else; whether its timers must be
    /// armed again.
    fn configure(&mut self, msg: &Reconfigure) -> bool {
        let config = &msg.config;
        self.config_version = msg.version;
        let mut timers = false;
        if msg.diff.changed("log") {
            self.progress_every = config.log.progress_every;
            timers = true;
        }
        if msg.diff.changed("store") {
            self.dirty.flush_every = config.store.flush_every;
            self.dirty.keep_for = config.store.keep_for;
            timers = true;
        }
        if msg.diff.changed("snapshot") && self.recorder.is_some() {
            self.exports.configure(config);
        }
        if msg.diff.changed("quality") {
            let mut live = self.live.write();
            Arc::make_mut(&mut live.judge).configure(config);
            if !live.store.is_empty() {
                live.checks.everything();
            }
        }
        timers
    }

    /// Starts from a store loaded from a snapshot.
    pub fn with_store(mut self, store: Store) -> Self {
        self.metrics.prices_stored.set(store.price_count() as i64);
        self.settled = SettledIndex::of(&store);
        self.live.write().store = store;
        self
    }

    /// Where questions read the store without this actor's mailbox.
    pub fn reader(&self) -> StoreReader {
        self.live.clone()
    }

    /// Resumes after round `last` of the record.
    pub fn numbered_from(mut self, last: u64) -> Self {
        self.resumed_from = last;
        self
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
        let mut live = self.live.write();
        let applied = live.store.apply(&key, &obs);
        match applied {
            Applied::Stale => {
                drop(live);
                self.metrics.stale_results.inc();
                log::debug!("{key}: a result of round {round} older than the cell's, dropped");
                return;
            }
            Applied::New(state) => self.metrics.count_task(state),
            Applied::Again { .. } => {}
        }
        self.settled.set(&key, live.store.settled_by(&key));
        let Live { checks, judge, .. } = &mut *live;
        checks.touched(judge, &key);
        drop(live);
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
        let live = self.live.read();
        AggregatorStatus {
            config_version: self.config_version,
            running: self.round.as_ref().map(|t| (t.round, t.counts)),
            last: self.last,
            next_round_at: self.next_round,
            prices: live.store.price_count(),
            cells: live.store.counts_by_state(),
            exchanges: live.store.exchanges().cloned().collect(),
            symbols: live.store.symbols().into_iter().cloned().collect(),
        }
    }

    fn snapshot(&self) -> Snapshot {
        let (round, counts) = match (&self.round, &self.last) {
            (Some(t), _) => (t.round, t.counts),
            (None, Some(s)) => (s.round, s.counts),
            (None, None) => (0, Counts::default()),
        };
        Snapshot::new(self.config_version, round, counts, self.store())
    }

    /// A frozen copy of the store (a few reference counts).
    fn store(&self) -> Store {
        self.live.read().store.clone()
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
            || {},
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
        self.judge_pending(ctx);
        let t = self.round.take_if(|t| t.round == msg.round)?;
        t.log_failures();
        t.log_suspicious_none(&self.live.read().store);
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
            .set(self.live.read().store.price_count() as i64);
        self.flush(ctx);
        // The recorder writes in order: once this is written, so are the
        // round's cells, and the log says the round is in the record.
        self.tell(
            ctx,
            FinishRound {
                summary,
                finished: self.clock.now(),
            },
            move || log::info!("round {} recorded", summary.round),
        );
        self.compact_if_due(ctx);
        if summary.counts.tasks > 0 {
            self.export_if_due(ctx);
        }
        Some(summary)
    }
}

/// Of a universe's keys (each exchange's symbols over `days`), the ones
/// still to fetch, in the order a round feeds them (day, exchange, symbol):
/// all but the settled cells (final prices, final "none", rejections) that
/// their source gave: `sources`' for an (exchange, symbol) listed there,
/// else `source`. Answered from the index of settled days: the cost
/// follows the pairs and the keys due, not the cells held.
#[derive(Message, Debug)]
#[rtype(result = "Vec<TaskKey>")]
pub struct Unsettled {
    pub pairs: Vec<(Exchange, Arc<[Symbol]>)>,
    pub days: DayRange,
    pub source: Arc<str>,
    /// Shared: the Producer keeps it between ticks.
    pub sources: Arc<HashMap<(Exchange, Symbol), Arc<str>>>,
    /// The quote of each market (by source identity) the round asks in,
    /// for the cross-exchange checks.
    pub quotes: HashMap<Arc<str>, Arc<str>>,
}

impl Handler<Unsettled> for Aggregator {
    type Result = MessageResult<Unsettled>;

    fn handle(&mut self, msg: Unsettled, _: &mut Self::Context) -> Self::Result {
        if !msg.quotes.is_empty() {
            Arc::make_mut(&mut self.live.write().judge).learn_quotes(msg.quotes);
        }
        MessageResult(
            self.settled
                .due(&msg.pairs, msg.days, &msg.source, &msg.sources),
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

    fn handle(&mut self, _: TakeSnapshot, ctx: &mut Self::Context) -> Self::Result {
        self.judge_pending(ctx);
        MessageResult(self.snapshot())
    }
}

impl Handler<Reconfigure> for Aggregator {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        if self.configure(&msg) {
            self.arm_timers(ctx);
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

    fn handle(&mut self, _: GetStore, ctx: &mut Self::Context) -> Self::Result {
        self.judge_pending(ctx);
        MessageResult(self.store())
    }
}

impl Handler<Stop> for Aggregator {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
