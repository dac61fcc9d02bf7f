//! The `Supervisor`: the one owner of a task's outcome. It sees every task
//! through the fetcher pool and decides, from what each fetch produced,
//! whether to try again or what the task's outcome is, and forwards that
//! outcome to the Aggregator as one `PriceResult`.
//!
//! It takes tasks from the Producer (`Submit`, answered only when there is
//! room: that is the Producer's backpressure; tasks waiting for a retry
//! count against the window too), keeps at most `fetch.queue` of them handed
//! to the pool (the SyncArbiter's own mailbox is unbounded), and keeps an
//! in-flight ledger so that no task is lost: a transient failure, a fetcher
//! panic, a hung fetch (past `fetch.task_deadline` from when a fetcher
//! started it) or a dead worker thread all send the task round again after
//! a backoff, until `fetch.retry_for` has passed since its first attempt or
//! `fetch.max_attempts` is reached. An exchange whose host cannot be
//! reached at all (DNS, a refused port, TLS) before it has answered once
//! in a round is given up for that round at once: one error line, and all
//! its cells of the round fail with that reason without a retry (the next
//! round tries again). The bookkeeping (lanes, limits, ledger,
//! retry heap, room) is `crate::dispatch`, a plain struct; this actor owns
//! the pool, the timers (one for due retries, one periodic sweep for hung
//! fetches) and the decisions. Every dispatch has its own number; a reply
//! to a dispatch that was given up on (hung) is stale and dropped. It
//! replaces the pool when a thread has died or the worker count changes. It
//! never reads a response body: that is the fetchers' job. What it runs on,
//! taken from the config, is `settings.rs`. (About 650 lines: the actor and
//! the messages of its mailbox stay together.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::oneshot;

mod settings;

use super::aggregator::{Aggregator, PriceResult};
use super::fetcher::{Fetch, FetchReply, Fetcher, FetcherFactory, FetcherLost};
use super::Reconfigure;
use crate::clock::{self, Clock};
use crate::dispatch::{backoff, Dispatch, Next, Pending};
use crate::metrics::Metrics;
use crate::model::{reason_kind, Exchange, Outcome, Task, TaskKey};
use crate::source::exchanges::{self, out_of_reach_reason, DayAnswer};
use crate::source::{Answer, FetchFailure, Throttle};
pub use settings::PoolSettings;

/// How long an exchange that said "too many requests" without saying for
/// how long is left alone: doubling from 1 s with each throttle in a row,
/// at most a minute.
fn throttle_pause(in_a_row: u32) -> Duration {
    Duration::from_secs(1u64 << in_a_row.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// Counters an operator (and the tests) can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, MessageResponse)]
pub struct SupervisorStats {
    pub workers: usize,
    pub queued: usize,
    pub in_flight: usize,
    /// Tasks waiting for a retry.
    pub retrying: usize,
    /// Fetcher actors rebuilt after a panic.
    pub restarts: u64,
    /// Worker threads that died.
    pub threads_lost: u64,
    /// Pools started, the first included.
    pub pools_started: u64,
    /// Attempts sent round again.
    pub retries: u64,
    /// Fetches that outlived the task deadline.
    pub hung: u64,
    /// Replies to dispatches already given up on.
    pub stale_replies: u64,
}

pub struct Supervisor {
    settings: PoolSettings,
    clock: Clock,
    metrics: Arc<Metrics>,
    aggregator: Addr<Aggregator>,
    pool: Option<Addr<Fetcher>>,
    generation: u64,
    /// Queued, in-flight and retrying tasks.
    dispatch: Dispatch,
    /// A pump due when a rate-limited lane may go again.
    wake: Option<SpawnHandle>,
    /// The one timer for due retries, and when it fires.
    retry_timer: Option<(Instant, SpawnHandle)>,
    submit_waiters: Vec<oneshot::Sender<()>>,
    idle_waiters: Vec<oneshot::Sender<()>>,
    /// Shutting down: nothing new is dispatched, retries are dropped.
    draining: bool,
    /// Throttling answers in a row, per exchange (reset by an answer).
    throttled: HashMap<Exchange, u32>,
    /// Exchanges whose server has answered (spoken HTTP), with the round.
    answered: HashSet<(Exchange, u64)>,
    /// Exchanges given up for a round because their host cannot be
    /// reached: the round and the reason their cells fail with.
    unreachable: HashMap<Exchange, (u64, String)>,
    stats: SupervisorStats,
}

impl Supervisor {
    pub fn new(
        settings: PoolSettings,
        clock: Clock,
        aggregator: Addr<Aggregator>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            dispatch: Dispatch::new(settings.dispatch_limits()),
            settings,
            clock,
            metrics,
            aggregator,
            pool: None,
            generation: 0,
            wake: None,
            retry_timer: None,
            submit_waiters: Vec::new(),
            idle_waiters: Vec::new(),
            draining: false,
            throttled: HashMap::new(),
            answered: HashSet::new(),
            unreachable: HashMap::new(),
            stats: SupervisorStats::default(),
        }
    }

    /// Starts a new pool; the old one (if any) finishes what it holds and
    /// its threads exit once its address is dropped.
    fn start_pool(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let factory = FetcherFactory {
            base: self.settings.base.clone(),
            limits: self.settings.limits.clone(),
            endpoints: self.settings.endpoints.clone(),
            clock: self.clock.clone(),
            lost: ctx.address().recipient(),
            generation: self.generation,
            metrics: self.metrics.clone(),
        };
        let workers = self.settings.workers;
        self.pool = Some(SyncArbiter::start(workers, move || factory.build()));
        self.stats.pools_started += 1;
        self.stats.workers = workers;
        log::info!(
            "fetcher pool {} started: {workers} workers, window {}",
            self.generation,
            self.settings.window
        );
    }

    fn is_idle(&self) -> bool {
        self.dispatch.is_idle(self.draining)
    }

    /// Hands queued tasks to the pool up to the window, lanes round-robin
    /// within the per-exchange limits, then wakes whoever waits for room or
    /// for idleness.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if let Some(pool) = self.pool.clone() {
            loop {
                match self.dispatch.next(Instant::now()) {
                    Next::Go(id, job) => {
                        let request = pool.send(Fetch {
                            key: job.task.key,
                            span: job.task.span,
                            market: job.task.market,
                            started: job.started,
                        });
                        ctx.spawn(
                            request
                                .into_actor(self)
                                .map(move |reply, act, ctx| act.on_reply(id, reply, ctx)),
                        );
                    }
                    Next::Wait(wait) => {
                        if let (Some(wait), None) = (wait, &self.wake) {
                            self.wake = Some(ctx.run_later(wait, |act, ctx| {
                                act.wake = None;
                                act.pump(ctx);
                            }));
                        }
                        break;
                    }
                }
            }
        }
        self.metrics.in_flight.set(self.dispatch.in_flight() as i64);
        if self.dispatch.has_room(Instant::now()) {
            for w in self.submit_waiters.drain(..) {
                let _ = w.send(());
            }
        }
        if self.is_idle() {
            for w in self.idle_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }

    fn on_reply(
        &mut self,
        id: u64,
        reply: Result<FetchReply, MailboxError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(job) = self.dispatch.finish(id) else {
            // Given up on as hung and sent again: this answer is stale.
            self.stats.stale_replies += 1;
            self.metrics.stale_results.inc();
            log::debug!("dispatch {id}: a reply after its deadline, dropped");
            return;
        };
        let pending = job.pending;
        match reply {
            Ok(FetchReply::Answered {
                result: Ok(days),
                asked_at,
            }) => {
                self.throttled.remove(&pending.task.key.exchange);
                self.note_answered(&pending);
                self.deliver_days(id, &pending, days, asked_at);
            }
            Ok(FetchReply::Answered {
                result: Err(failure),
                asked_at,
            }) if failure.unreachable.is_some()
                && !self
                    .answered
                    .contains(&(pending.task.key.exchange.clone(), pending.round)) =>
            {
                self.give_up_unreachable(id, &pending, &failure.reason, asked_at);
            }
            Ok(FetchReply::Answered {
                result: Err(failure),
                asked_at,
            }) => {
                if failure.unreachable.is_none() {
                    self.note_answered(&pending);
                }
                if let Some(kind) = failure.throttle {
                    self.pause_exchange(&pending.task.key.exchange, kind, &failure, ctx);
                }
                if failure.retryable {
                    log::debug!(
                        "{}: attempt {} failed: {}",
                        pending.task.key,
                        pending.task.attempt + 1,
                        failure.reason
                    );
                    self.again(pending, failure, ctx);
                } else {
                    let outcome = Outcome::Failed {
                        reason: failure.reason,
                        attempts: pending.task.attempt + 1,
                    };
                    self.deliver_all(id, &pending, outcome, asked_at);
                }
            }
            Ok(FetchReply::Panicked(reason)) => {
                self.stats.restarts += 1;
                self.metrics.fetcher_restarts.inc();
                log::warn!("{}: {reason}; fetcher rebuilt", pending.task.key);
                self.again(pending, FetchFailure::retryable(reason), ctx);
            }
            Err(MailboxError::Timeout) => {
                // No timeout is set on the send; deadlines are the sweep's.
                self.again(pending, FetchFailure::retryable("no reply"), ctx);
            }
            Err(MailboxError::Closed) => {
                log::warn!("{}: its fetcher thread died; re-queued", pending.task.key);
                if self.pool.as_ref().is_some_and(|p| !p.connected()) {
                    self.replace_pool("every worker thread died", ctx);
                }
                self.again(pending, FetchFailure::retryable("fetcher thread died"), ctx);
            }
        }
        self.pump(ctx);
    }

    /// `pending`'s exchange has answered in its round: from now on a
    /// failure to connect there is worth retrying.
    fn note_answered(&mut self, pending: &Pending) {
        let key = (pending.task.key.exchange.clone(), pending.round);
        if !self.answered.contains(&key) {
            // Only the newest round matters: older entries go.
            self.answered.retain(|(_, round)| *round >= pending.round);
            self.answered.insert(key);
        }
    }

    /// `pending`'s exchange cannot be reached and has not answered in this
    /// round: said once (one error line naming the exchange, the host and
    /// the cause), and its cells of the round fail with that reason, those
    /// waiting in its lane or for a retry too, without a request.
    fn give_up_unreachable(
        &mut self,
        dispatch: u64,
        pending: &Pending,
        reason: &str,
        asked_at: chrono::DateTime<chrono::Utc>,
    ) {
        let exchange = &pending.task.key.exchange;
        let round = pending.round;
        if self.unreachable.get(exchange).map(|(r, _)| *r) != Some(round) {
            log::error!(
                "{exchange}: {reason}; its cells fail this round without retrying (the next round tries again)"
            );
            self.unreachable
                .insert(exchange.clone(), (round, reason.to_owned()));
        }
        let failed = |attempts: u32| Outcome::Failed {
            reason: reason.to_owned(),
            attempts,
        };
        self.deliver_all(
            dispatch,
            pending,
            failed(pending.task.attempt + 1),
            asked_at,
        );
        for other in self.dispatch.take_exchange(exchange, round) {
            let id = self.dispatch.new_id();
            self.deliver_all(id, &other, failed(other.task.attempt), asked_at);
        }
    }

    /// One `PriceResult` per day of a page the source answered.
    fn deliver_days(
        &self,
        dispatch: u64,
        pending: &Pending,
        days: Vec<DayAnswer>,
        asked_at: chrono::DateTime<chrono::Utc>,
    ) {
        for d in days {
            let outcome = match d.answer {
                Answer::Price { price, flags } => Outcome::Price { price, flags },
                Answer::NoPrice => Outcome::NoPrice,
                Answer::Rejected { reason, price } => Outcome::Rejected { reason, price },
                Answer::Failed { reason } => Outcome::Failed {
                    reason,
                    attempts: pending.task.attempt + 1,
                },
            };
            let key = TaskKey {
                day: d.day,
                ..pending.task.key.clone()
            };
            let is_final = !d.open && clock::is_final(d.day, asked_at, self.settings.settle_after);
            self.deliver(dispatch, pending, key, outcome, is_final, asked_at);
        }
    }

    /// The same outcome for every day a task covers (a failure, a rule).
    fn deliver_all(
        &self,
        dispatch: u64,
        pending: &Pending,
        outcome: Outcome,
        asked_at: chrono::DateTime<chrono::Utc>,
    ) {
        for key in pending.task.keys() {
            let is_final = clock::is_final(key.day, asked_at, self.settings.settle_after);
            self.deliver(dispatch, pending, key, outcome.clone(), is_final, asked_at);
        }
    }

    /// One cell's outcome is decided: one `PriceResult` to the Aggregator.
    fn deliver(
        &self,
        dispatch: u64,
        pending: &Pending,
        key: TaskKey,
        outcome: Outcome,
        is_final: bool,
        asked_at: chrono::DateTime<chrono::Utc>,
    ) {
        let source = pending
            .task
            .market
            .as_ref()
            .map_or_else(|| self.settings.source_id.clone(), |m| m.source.clone());
        self.aggregator.do_send(PriceResult {
            round: pending.round,
            dispatch,
            key,
            outcome,
            is_final,
            asked_at,
            source,
        });
    }

    /// The exchange asked us to slow down: nothing more goes to it until
    /// its `Retry-After` (or a pause that doubles while it keeps saying so).
    fn pause_exchange(
        &mut self,
        exchange: &Exchange,
        kind: Throttle,
        failure: &FetchFailure,
        ctx: &mut Context<Self>,
    ) {
        let in_a_row = self.throttled.entry(exchange.clone()).or_default();
        *in_a_row += 1;
        let pause = failure
            .retry_after
            .unwrap_or_else(|| throttle_pause(*in_a_row));
        self.dispatch.pause(exchange, Instant::now() + pause);
        self.metrics
            .count_throttle(exchange.as_str(), kind == Throttle::Banned);
        let pause_text = humantime::format_duration(pause);
        match kind {
            Throttle::Banned => log::error!(
                "{exchange} has banned this address for {pause_text} ({}); nothing is sent to it until then",
                failure.reason
            ),
            Throttle::RateLimited => log::warn!(
                "{exchange} asks us to slow down ({}); pausing it for {pause_text}",
                failure.reason
            ),
        }
        // A wake-up for when the pause ends, in case nothing else pumps.
        ctx.run_later(pause, |act, ctx| act.pump(ctx));
    }

    /// Decides, without a request, the tasks that need none: a market that
    /// could not be found fails with its reason; days older than the
    /// exchange serves are rejected as out of reach. `false`: fetch it.
    fn decide_without_request(&mut self, pending: &Pending) -> bool {
        let now = self.clock.now();
        if let Some((round, reason)) = self.unreachable.get(&pending.task.key.exchange) {
            if *round == pending.round {
                let id = self.dispatch.new_id();
                let outcome = Outcome::Failed {
                    reason: reason.clone(),
                    attempts: 0,
                };
                self.deliver_all(id, pending, outcome, now);
                return true;
            }
        }
        let Some(market) = &pending.task.market else {
            return false;
        };
        if let Some(reason) = &market.unresolved {
            let id = self.dispatch.new_id();
            let outcome = Outcome::Failed {
                reason: reason.to_string(),
                attempts: 0,
            };
            self.deliver_all(id, pending, outcome, now);
            return true;
        }
        let earliest =
            exchanges::adapter(market.api).and_then(|a| a.earliest_day(self.clock.today()));
        match earliest {
            Some(e) if pending.task.days().to < e => {
                let id = self.dispatch.new_id();
                let outcome = Outcome::Rejected {
                    reason: out_of_reach_reason(market.api, e),
                    price: None,
                };
                self.deliver_all(id, pending, outcome, now);
                true
            }
            _ => false,
        }
    }

    /// Sends a task round again after a backoff, or records it as failed
    /// once its time budget (`fetch.retry_for`) or attempts are used up.
    /// A throttling answer is the exchange's pacing, not the task's
    /// failure: it does not use up an attempt, only time.
    fn again(&mut self, pending: Pending, failure: FetchFailure, ctx: &mut Context<Self>) {
        let attempts = pending.task.attempt + u32::from(failure.throttle.is_none());
        let spent = pending.first_try.map_or(Duration::ZERO, |t| t.elapsed());
        let paused_past_budget = self
            .dispatch
            .paused_until(&pending.task.key.exchange, Instant::now())
            .is_some_and(|until| {
                pending
                    .first_try
                    .is_some_and(|t| until.saturating_duration_since(t) > self.settings.retry_for)
            });
        if attempts >= self.settings.max_attempts
            || spent >= self.settings.retry_for
            || paused_past_budget
        {
            let id = self.dispatch.new_id();
            let outcome = Outcome::Failed {
                reason: failure.reason,
                attempts: attempts.max(1),
            };
            let now = self.clock.now();
            self.deliver_all(id, &pending, outcome, now);
            return;
        }
        if self.draining {
            // Shutting down: the task stays unsettled; a later run fetches it.
            return;
        }
        self.stats.retries += 1;
        self.metrics.count_retry(reason_kind(&failure.reason));
        let delay = failure
            .retry_after
            .map(|d| d.min(self.settings.backoff_max))
            .unwrap_or_else(|| {
                backoff(
                    self.settings.backoff_base,
                    self.settings.backoff_max,
                    attempts,
                )
            })
            .min(self.settings.retry_for.saturating_sub(spent));
        let pending = Pending {
            task: Task {
                attempt: attempts,
                ..pending.task
            },
            ..pending
        };
        self.dispatch.retry_at(pending, Instant::now() + delay);
        self.arm_retry_timer(ctx);
    }

    /// Arms the one retry timer for the soonest due retry.
    fn arm_retry_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(at) = self.dispatch.next_due() else {
            return;
        };
        if let Some((armed, handle)) = self.retry_timer {
            if armed <= at {
                return;
            }
            ctx.cancel_future(handle);
        }
        let wait = at.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(wait, |act, ctx| {
            act.retry_timer = None;
            act.release_due(ctx);
        });
        self.retry_timer = Some((at, handle));
    }

    /// Puts every retry that is due at the head of its lane.
    fn release_due(&mut self, ctx: &mut Context<Self>) {
        self.dispatch.release_due(Instant::now());
        self.arm_retry_timer(ctx);
        self.pump(ctx);
    }

    /// Gives up on fetches that a fetcher started more than
    /// `fetch.task_deadline` ago: the task goes round again, and whatever
    /// the hung request answers later is stale.
    fn sweep_hung(&mut self, ctx: &mut Context<Self>) {
        let deadline = self.settings.task_deadline;
        for job in self.dispatch.hung(deadline, Instant::now()) {
            self.stats.hung += 1;
            self.metrics.hung.inc();
            let reason = format!(
                "no answer within fetch.task_deadline ({})",
                humantime::format_duration(deadline)
            );
            log::warn!("{}: {reason}; re-queued", job.pending.task.key);
            self.again(job.pending, FetchFailure::retryable(reason), ctx);
        }
        self.pump(ctx);
    }

    fn replace_pool(&mut self, why: &str, ctx: &mut Context<Self>) {
        log::warn!("replacing fetcher pool {}: {why}", self.generation);
        self.start_pool(ctx);
    }
}

/// How often in-flight fetches are checked against `fetch.task_deadline`.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.start_pool(ctx);
        ctx.run_interval(SWEEP_EVERY, |act, ctx| act.sweep_hung(ctx));
    }
}

/// Take these tasks; the reply comes when the queue has room again.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Submit {
    pub round: u64,
    pub tasks: Vec<Task>,
}

impl Handler<Submit> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Submit, ctx: &mut Self::Context) -> Self::Result {
        let round = msg.round;
        if !self.draining {
            for task in msg.tasks {
                let pending = Pending::new(round, task);
                if !self.decide_without_request(&pending) {
                    self.dispatch.queue(pending);
                }
            }
        }
        self.pump(ctx);
        if self.dispatch.has_room(Instant::now()) {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.submit_waiters.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Answered when every task handed over has its final outcome.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct WaitIdle;

impl Handler<WaitIdle> for Supervisor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: WaitIdle, _: &mut Self::Context) -> Self::Result {
        if self.is_idle() {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.idle_waiters.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<FetcherLost> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: FetcherLost, ctx: &mut Self::Context) {
        self.stats.threads_lost += 1;
        self.metrics.fetcher_threads_lost.inc();
        if msg.generation == self.generation {
            self.replace_pool("a worker thread died", ctx);
            self.pump(ctx);
        }
    }
}

/// New settings, at a round boundary: a new pool is started if the pool's
/// shape changed (the old one's threads exit once it is dropped).
impl Handler<Reconfigure> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        let settings = PoolSettings::new(msg.source, &msg.config);
        let reshape = settings.pool_shape() != self.settings.pool_shape();
        self.dispatch.set_limits(settings.dispatch_limits());
        self.settings = settings;
        if reshape {
            self.replace_pool("configuration changed", ctx);
        }
        self.pump(ctx);
    }
}

/// Drops every task not yet handed to the pool (they stay unsettled and are
/// fetched by a later round), then answers when the in-flight ones are done
/// or `timeout` passes. Returns how many were still in flight.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct Drain {
    pub timeout: Duration,
}

impl Handler<Drain> for Supervisor {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let dropped = self.dispatch.clear();
        if dropped > 0 {
            log::info!("draining: {dropped} queued tasks left for a later round");
        }
        self.pump(ctx);
        if self.is_idle() {
            return Box::pin(fut::ready(0));
        }
        let (tx, rx) = oneshot::channel();
        self.idle_waiters.push(tx);
        let wait = actix_rt::time::timeout(msg.timeout, rx);
        Box::pin(
            wait.into_actor(self)
                .map(|_, act, _| act.dispatch.in_flight()),
        )
    }
}

#[derive(Message, Debug)]
#[rtype(result = "SupervisorStats")]
pub struct GetStats;

impl Handler<GetStats> for Supervisor {
    type Result = SupervisorStats;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> SupervisorStats {
        SupervisorStats {
            queued: self.dispatch.queued(),
            in_flight: self.dispatch.in_flight(),
            retrying: self.dispatch.retrying(),
            ..self.stats
        }
    }
}

impl Handler<super::Stop> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: super::Stop, ctx: &mut Self::Context) {
        self.draining = true;
        self.dispatch.clear();
        self.pool = None;
        ctx.stop();
    }
}
