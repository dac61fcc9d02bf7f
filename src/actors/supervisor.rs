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
//! `fetch.max_attempts` is reached. Due retries come from one timer over a
//! heap, hung fetches from one periodic sweep. Every dispatch has its own
//! number; a reply to a dispatch that was given up on (hung) is stale and
//! dropped. It replaces the pool when a thread has died or the worker count
//! changes. It never reads a response body: that is the fetchers' job.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;
use serde::Serialize;
use tokio::sync::oneshot;
use url::Url;

use super::aggregator::{Aggregator, PriceResult};
use super::fetcher::{Fetch, FetchReply, Fetcher, FetcherFactory, FetcherLost, Started};
use crate::clock::{self, Clock};
use crate::config::{FetchConfig, PerExchangeConfig};
use crate::lanes::{Lane, Lanes};
use crate::metrics::Metrics;
use crate::model::{Exchange, Outcome, Task};
use crate::source::{Answer, ClientLimits, FetchFailure};

/// The part of the config the Supervisor runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    pub base: Url,
    /// The identity of the source the pool fetches from, recorded with
    /// every cell.
    pub source_id: Arc<str>,
    pub limits: ClientLimits,
    pub workers: usize,
    pub window: usize,
    pub max_attempts: u32,
    pub retry_for: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub task_deadline: Duration,
    pub settle_after: Duration,
    pub per_exchange: PerExchangeConfig,
}

impl PoolSettings {
    pub fn new(
        base: Url,
        source_id: Arc<str>,
        source: &crate::config::SourceConfig,
        fetch: &FetchConfig,
    ) -> Self {
        Self {
            base,
            source_id,
            limits: ClientLimits::from_config(source, fetch.workers),
            workers: fetch.workers,
            window: fetch.window(),
            max_attempts: fetch.max_attempts,
            retry_for: fetch.retry_for,
            backoff_base: fetch.backoff_base,
            backoff_max: fetch.backoff_max,
            task_deadline: fetch.task_deadline,
            settle_after: source.settle_after,
            per_exchange: source.per_exchange.clone(),
        }
    }

    /// Settings that only a new pool can take.
    fn pool_shape(&self) -> (&Url, usize, ClientLimits) {
        let mut limits = self.limits;
        limits.connections = 0;
        (&self.base, self.workers, limits)
    }
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

/// A task of a round, with when its first attempt was made.
struct Pending {
    round: u64,
    task: Task,
    first_try: Option<Instant>,
}

struct InFlight {
    pending: Pending,
    started: Started,
}

/// A task waiting for its retry, ordered by when it is due.
struct Due {
    at: Instant,
    seq: u64,
    pending: Pending,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

pub struct Supervisor {
    settings: PoolSettings,
    clock: Clock,
    metrics: Arc<Metrics>,
    aggregator: Addr<Aggregator>,
    pool: Option<Addr<Fetcher>>,
    generation: u64,
    /// Tasks not yet handed to the pool, one lane per exchange.
    lanes: Lanes<Pending>,
    limiter: Option<RateLimiter>,
    /// A pump due when a rate-limited lane may go again.
    wake: Option<SpawnHandle>,
    /// Dispatch number -> the task it carries.
    in_flight: HashMap<u64, InFlight>,
    next_dispatch: u64,
    /// Tasks waiting for a retry, soonest first, and the one timer for them.
    retries: BinaryHeap<Reverse<Due>>,
    retry_timer: Option<(Instant, SpawnHandle)>,
    submit_waiters: Vec<oneshot::Sender<()>>,
    idle_waiters: Vec<oneshot::Sender<()>>,
    /// Shutting down: nothing new is dispatched, retries are dropped.
    draining: bool,
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
            settings,
            clock,
            metrics,
            aggregator,
            pool: None,
            generation: 0,
            lanes: Lanes::default(),
            limiter: None,
            wake: None,
            in_flight: HashMap::new(),
            next_dispatch: 0,
            retries: BinaryHeap::new(),
            retry_timer: None,
            submit_waiters: Vec::new(),
            idle_waiters: Vec::new(),
            draining: false,
            stats: SupervisorStats::default(),
        }
    }

    /// Starts a new pool; the old one (if any) finishes what it holds and
    /// its threads exit once its address is dropped.
    fn start_pool(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let factory = FetcherFactory {
            base: self.settings.base.clone(),
            limits: self.settings.limits,
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
        self.lanes.queued() == 0
            && self.in_flight.is_empty()
            && (self.draining || self.retries.is_empty())
    }

    /// Hands queued tasks to the pool up to the window, lanes round-robin
    /// within the per-exchange limits, then wakes whoever waits for room or
    /// for idleness.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let mut wake_in: Option<Duration> = None;
        if let Some(pool) = self.pool.clone() {
            while self.in_flight.len() < self.settings.window {
                let max = self.settings.per_exchange.max_in_flight;
                let limiter = self.limiter.as_ref();
                let now = Instant::now();
                let picked = self.lanes.pop_next(|exchange, lane| {
                    if max.is_some_and(|m| lane.in_flight >= m) {
                        return false;
                    }
                    match limiter.map(|l| l.check_key(exchange)) {
                        None | Some(Ok(())) => {
                            lane.blocked_until = None;
                            true
                        }
                        Some(Err(not_until)) => {
                            // The limiter's own clock: building a clock calibrates
                            // it, far too slow to do on every pump.
                            let wait = limiter.map_or(Duration::ZERO, |l| {
                                not_until.wait_time_from(governor::clock::Clock::now(l.clock()))
                            });
                            lane.blocked_until = Some(now + wait);
                            wake_in = Some(wake_in.map_or(wait, |w| w.min(wait)));
                            false
                        }
                    }
                });
                let Some((_, mut pending)) = picked else {
                    break;
                };
                pending.first_try.get_or_insert(now);
                self.dispatch(&pool, pending, ctx);
            }
        }
        if let (Some(wait), None) = (wake_in, &self.wake) {
            self.wake = Some(ctx.run_later(wait, |act, ctx| {
                act.wake = None;
                act.pump(ctx);
            }));
        }
        self.metrics.in_flight.set(self.in_flight.len() as i64);
        if self.has_room() {
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

    fn dispatch(&mut self, pool: &Addr<Fetcher>, pending: Pending, ctx: &mut Context<Self>) {
        self.next_dispatch += 1;
        let id = self.next_dispatch;
        let started = Started::default();
        let request = pool.send(Fetch {
            key: pending.task.key.clone(),
            started: started.clone(),
        });
        self.in_flight.insert(id, InFlight { pending, started });
        ctx.spawn(
            request
                .into_actor(self)
                .map(move |reply, act, ctx| act.on_reply(id, reply, ctx)),
        );
    }

    /// Room for more tasks: those that could go now (tasks of a lane at its
    /// limit do not count, so a blocked exchange cannot stop the others
    /// being fed), those in flight and those waiting for a retry add up to
    /// at most a window, and the total queued stays bounded. With the
    /// Producer's window-sized chunks, the Supervisor holds at most two
    /// windows of ready, in-flight and retrying tasks.
    fn has_room(&self) -> bool {
        let window = self.settings.window;
        let max = self.settings.per_exchange.max_in_flight;
        let now = Instant::now();
        let ready = self.lanes.ready(|lane: &Lane<Pending>| {
            max.is_none_or(|m| lane.in_flight < m) && lane.blocked_until.is_none_or(|t| t <= now)
        });
        ready + self.retries.len() + self.in_flight.len() <= window
            && self.lanes.queued() <= window.saturating_mul(MAX_QUEUED_WINDOWS)
    }

    fn on_reply(
        &mut self,
        id: u64,
        reply: Result<FetchReply, MailboxError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(job) = self.in_flight.remove(&id) else {
            // Given up on as hung and sent again: this answer is stale.
            self.stats.stale_replies += 1;
            self.metrics.stale_results.inc();
            log::debug!("dispatch {id}: a reply after its deadline, dropped");
            return;
        };
        let pending = job.pending;
        self.lanes.done(&pending.task.key.exchange);
        match reply {
            Ok(FetchReply::Answered { result, asked_at }) => {
                let outcome = match result {
                    Ok(Answer::Price { price, flags }) => Outcome::Price { price, flags },
                    Ok(Answer::NoPrice) => Outcome::NoPrice,
                    Ok(Answer::Rejected { reason, price }) => Outcome::Rejected {
                        reason,
                        price: Some(price),
                    },
                    Err(failure) if failure.retryable => {
                        log::debug!(
                            "{}: attempt {} failed: {}",
                            pending.task.key,
                            pending.task.attempt + 1,
                            failure.reason
                        );
                        self.again(pending, failure, ctx);
                        self.pump(ctx);
                        return;
                    }
                    Err(failure) => Outcome::Failed {
                        reason: failure.reason,
                        attempts: pending.task.attempt + 1,
                    },
                };
                self.deliver(id, pending, outcome, asked_at);
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

    /// The task's outcome is decided: one `PriceResult` to the Aggregator.
    fn deliver(
        &self,
        dispatch: u64,
        pending: Pending,
        outcome: Outcome,
        asked_at: chrono::DateTime<chrono::Utc>,
    ) {
        let is_final = clock::is_final(pending.task.key.day, asked_at, self.settings.settle_after);
        self.aggregator.do_send(PriceResult {
            round: pending.round,
            dispatch,
            key: pending.task.key,
            outcome,
            is_final,
            asked_at,
            source: self.settings.source_id.clone(),
        });
    }

    /// Sends a task round again after a backoff, or records it as failed
    /// once its time budget (`fetch.retry_for`) or attempts are used up.
    fn again(&mut self, pending: Pending, failure: FetchFailure, ctx: &mut Context<Self>) {
        let attempts = pending.task.attempt + 1;
        let spent = pending.first_try.map_or(Duration::ZERO, |t| t.elapsed());
        if attempts >= self.settings.max_attempts || spent >= self.settings.retry_for {
            self.next_dispatch += 1;
            let id = self.next_dispatch;
            let outcome = Outcome::Failed {
                reason: failure.reason,
                attempts,
            };
            let now = self.clock.now();
            self.deliver(id, pending, outcome, now);
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
                key: pending.task.key,
                attempt: attempts,
            },
            ..pending
        };
        let seq = self.stats.retries;
        self.retries.push(Reverse(Due {
            at: Instant::now() + delay,
            seq,
            pending,
        }));
        self.arm_retry_timer(ctx);
    }

    /// Arms the one retry timer for the soonest due retry.
    fn arm_retry_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(Reverse(next)) = self.retries.peek() else {
            return;
        };
        let at = next.at;
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
        let now = Instant::now();
        while self.retries.peek().is_some_and(|Reverse(d)| d.at <= now) {
            let Some(Reverse(due)) = self.retries.pop() else {
                break;
            };
            let exchange = due.pending.task.key.exchange.clone();
            self.lanes.push_front(&exchange, due.pending);
        }
        self.arm_retry_timer(ctx);
        self.pump(ctx);
    }

    /// Gives up on fetches that a fetcher started more than
    /// `fetch.task_deadline` ago: the task goes round again, and whatever
    /// the hung request answers later is stale.
    fn sweep_hung(&mut self, ctx: &mut Context<Self>) {
        let deadline = self.settings.task_deadline;
        let hung: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.started.at().is_some_and(|t| t.elapsed() > deadline))
            .map(|(id, _)| *id)
            .collect();
        for id in hung {
            let Some(job) = self.in_flight.remove(&id) else {
                continue;
            };
            self.lanes.done(&job.pending.task.key.exchange);
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

/// The kind of a failure reason, for grouping and metrics: the text before
/// the first ": " (details such as positions vary from one answer to the
/// next).
pub fn reason_kind(reason: &str) -> &str {
    reason.split(": ").next().unwrap_or(reason)
}

/// How often in-flight fetches are checked against `fetch.task_deadline`.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

/// How many windows of tasks may wait in the lanes at most, blocked or not.
const MAX_QUEUED_WINDOWS: usize = 64;

type RateLimiter = governor::DefaultKeyedRateLimiter<Exchange>;

/// A token bucket per exchange: `rps` requests a second, bursts of one
/// second's worth.
fn rate_limiter(rps: Option<f64>) -> Option<RateLimiter> {
    let rps = rps.filter(|r| r.is_finite() && *r > 0.0)?;
    let period = Duration::from_secs_f64(1.0 / rps);
    let burst = NonZeroU32::new(rps.floor().clamp(1.0, f64::from(u32::MAX)) as u32)
        .unwrap_or(NonZeroU32::MIN);
    let quota = governor::Quota::with_period(period)?.allow_burst(burst);
    Some(governor::RateLimiter::keyed(quota))
}

/// Exponential backoff with full jitter: uniform in `0..=min(max, base * 2^(attempt-1))`.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(max);
    rand::thread_rng().gen_range(Duration::ZERO..=ceiling)
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.limiter = rate_limiter(self.settings.per_exchange.requests_per_second);
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
                let exchange = task.key.exchange.clone();
                self.lanes.push_back(
                    &exchange,
                    Pending {
                        round,
                        task,
                        first_try: None,
                    },
                );
            }
        }
        self.pump(ctx);
        if self.has_room() {
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

/// Apply new settings; a new pool is started if the pool's shape changed,
/// while tasks already handed to the old one finish there.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Reconfigure(pub PoolSettings);

impl Handler<Reconfigure> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        let reshape = msg.0.pool_shape() != self.settings.pool_shape();
        if msg.0.per_exchange.requests_per_second != self.settings.per_exchange.requests_per_second
        {
            self.limiter = rate_limiter(msg.0.per_exchange.requests_per_second);
        }
        self.settings = msg.0;
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
        let dropped = self.lanes.clear() + self.retries.len();
        self.retries.clear();
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
        Box::pin(wait.into_actor(self).map(|_, act, _| act.in_flight.len()))
    }
}

#[derive(Message, Debug)]
#[rtype(result = "SupervisorStats")]
pub struct GetStats;

impl Handler<GetStats> for Supervisor {
    type Result = SupervisorStats;

    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> SupervisorStats {
        SupervisorStats {
            queued: self.lanes.queued(),
            in_flight: self.in_flight.len(),
            retrying: self.retries.len(),
            ..self.stats
        }
    }
}

impl Handler<super::Stop> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: super::Stop, ctx: &mut Self::Context) {
        self.draining = true;
        self.lanes.clear();
        self.retries.clear();
        self.pool = None;
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_the_doubling_ceiling_and_the_cap() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        for attempt in 1..=40 {
            let d = backoff(base, max, attempt);
            let ceiling = (base * 2u32.saturating_pow(attempt - 1)).min(max);
            assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
        }
    }
}
