//! The `Supervisor`: owns the fetcher pool and sees every task through it.
//!
//! It takes tasks from the Producer (`Submit`, answered only when there is
//! room: that is the Producer's backpressure), keeps at most `fetch.queue`
//! of them handed to the pool (the SyncArbiter's own mailbox is unbounded),
//! and keeps an in-flight ledger so that no task is lost: a transient
//! failure, a fetcher panic, a hung fetch (past `fetch.task_deadline`) or a
//! dead worker thread all send the task round again after a backoff, until
//! `fetch.max_attempts`, after which the Supervisor itself records the
//! failure. It replaces the pool when a thread has died or the worker count
//! changes. It never reads a response: that is the fetchers' job.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;
use serde::Serialize;
use tokio::sync::oneshot;
use url::Url;

use super::aggregator::{Aggregator, PriceResult};
use super::fetcher::{Fetch, FetchReply, Fetcher, FetcherFactory};
use crate::config::{FetchConfig, PerExchangeConfig};
use crate::lanes::{Lane, Lanes};
use crate::metrics::Metrics;
use crate::model::{Exchange, Outcome, Task};
use crate::source::ClientLimits;

/// The part of the config the Supervisor runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    pub base: Url,
    pub limits: ClientLimits,
    pub workers: usize,
    pub window: usize,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub task_deadline: Duration,
    pub per_exchange: PerExchangeConfig,
}

impl PoolSettings {
    pub fn new(base: Url, source: &crate::config::SourceConfig, fetch: &FetchConfig) -> Self {
        Self {
            base,
            limits: ClientLimits::from_config(source, fetch.workers),
            workers: fetch.workers,
            window: fetch.window(),
            max_attempts: fetch.max_attempts,
            backoff_base: fetch.backoff_base,
            backoff_max: fetch.backoff_max,
            task_deadline: fetch.task_deadline,
            per_exchange: source.per_exchange.clone(),
        }
    }

    /// Settings that only a new pool can take.
    fn pool_shape(&self) -> (&Url, usize, Duration, usize, bool) {
        (
            &self.base,
            self.workers,
            self.limits.timeout,
            self.limits.max_body,
            self.limits.check_order,
        )
    }
}

/// Counters an operator (and the tests) can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, MessageResponse)]
pub struct SupervisorStats {
    pub workers: usize,
    pub queued: usize,
    pub in_flight: usize,
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
}

struct Queued {
    round: u64,
    task: Task,
}

struct InFlight {
    round: u64,
    task: Task,
}

pub struct Supervisor {
    settings: PoolSettings,
    metrics: Arc<Metrics>,
    aggregator: Addr<Aggregator>,
    pool: Option<Addr<Fetcher>>,
    generation: u64,
    /// Tasks not yet handed to the pool, one lane per exchange.
    lanes: Lanes<Queued>,
    limiter: Option<RateLimiter>,
    /// A pump due when a rate-limited lane may go again.
    wake: Option<SpawnHandle>,
    in_flight: HashMap<u64, InFlight>,
    next_id: u64,
    backing_off: usize,
    submit_waiters: Vec<oneshot::Sender<()>>,
    idle_waiters: Vec<oneshot::Sender<()>>,
    /// Shutting down: nothing new is dispatched, retries are dropped.
    draining: bool,
    stats: SupervisorStats,
}

impl Supervisor {
    pub fn new(
        settings: PoolSettings,
        aggregator: Addr<Aggregator>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            settings,
            metrics,
            aggregator,
            pool: None,
            generation: 0,
            lanes: Lanes::default(),
            limiter: None,
            wake: None,
            in_flight: HashMap::new(),
            next_id: 0,
            backing_off: 0,
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
            aggregator: self.aggregator.clone(),
            supervisor: ctx.address(),
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
            && (self.draining || self.backing_off == 0)
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
                let Some((_, q)) = picked else {
                    break;
                };
                let id = self.next_id;
                self.next_id += 1;
                let request = pool
                    .send(Fetch {
                        round: q.round,
                        task: q.task.clone(),
                        max_attempts: self.settings.max_attempts,
                    })
                    .timeout(self.settings.task_deadline);
                self.in_flight.insert(
                    id,
                    InFlight {
                        round: q.round,
                        task: q.task,
                    },
                );
                ctx.spawn(
                    request
                        .into_actor(self)
                        .map(move |reply, act, ctx| act.on_reply(id, reply, ctx)),
                );
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

    /// Room for more tasks: few are queued that could go now (tasks of a
    /// lane at its limit do not count, so a blocked exchange cannot stop
    /// the others being fed), and the total stays bounded.
    fn has_room(&self) -> bool {
        let window = self.settings.window;
        let max = self.settings.per_exchange.max_in_flight;
        let now = Instant::now();
        let ready = self.lanes.ready(|lane: &Lane<Queued>| {
            max.is_none_or(|m| lane.in_flight < m) && lane.blocked_until.is_none_or(|t| t <= now)
        });
        ready <= window && self.lanes.queued() <= window.saturating_mul(MAX_QUEUED_WINDOWS)
    }

    fn on_reply(
        &mut self,
        id: u64,
        reply: Result<FetchReply, MailboxError>,
        ctx: &mut Context<Self>,
    ) {
        let Some(job) = self.in_flight.remove(&id) else {
            return;
        };
        self.lanes.done(&job.task.key.exchange);
        match reply {
            Ok(FetchReply::Delivered) => {}
            Ok(FetchReply::Retry(failure)) => {
                log::debug!(
                    "{}: attempt {} failed: {}",
                    job.task.key,
                    job.task.attempt + 1,
                    failure.reason
                );
                self.again(job, failure.reason, failure.retry_after, ctx);
            }
            Ok(FetchReply::Panicked(reason)) => {
                self.stats.restarts += 1;
                self.metrics.fetcher_restarts.inc();
                log::warn!("{}: {reason}; fetcher rebuilt", job.task.key);
                self.again(job, reason, None, ctx);
            }
            Err(MailboxError::Timeout) => {
                self.stats.hung += 1;
                self.metrics.hung.inc();
                let reason = format!(
                    "no answer within fetch.task_deadline ({})",
                    humantime::format_duration(self.settings.task_deadline)
                );
                log::warn!("{}: {reason}; re-queued", job.task.key);
                self.again(job, reason, None, ctx);
            }
            Err(MailboxError::Closed) => {
                log::warn!("{}: its fetcher thread died; re-queued", job.task.key);
                if self.pool.as_ref().is_some_and(|p| !p.connected()) {
                    self.replace_pool("every worker thread died", ctx);
                }
                self.again(job, "fetcher thread died".into(), None, ctx);
            }
        }
        self.pump(ctx);
    }

    /// Sends a task round again after a backoff, or records it as failed
    /// once its attempts are used up.
    fn again(
        &mut self,
        job: InFlight,
        reason: String,
        retry_after: Option<Duration>,
        ctx: &mut Context<Self>,
    ) {
        let attempts = job.task.attempt + 1;
        if attempts >= self.settings.max_attempts {
            self.aggregator.do_send(PriceResult {
                round: job.round,
                key: job.task.key,
                outcome: Outcome::Failed { reason, attempts },
            });
            return;
        }
        self.stats.retries += 1;
        self.metrics.retries.inc();
        let delay = retry_after
            .map(|d| d.min(self.settings.backoff_max))
            .unwrap_or_else(|| {
                backoff(
                    self.settings.backoff_base,
                    self.settings.backoff_max,
                    attempts,
                )
            });
        let queued = Queued {
            round: job.round,
            task: Task {
                key: job.task.key,
                attempt: attempts,
            },
        };
        self.backing_off += 1;
        ctx.run_later(delay, move |act, ctx| {
            act.backing_off -= 1;
            // While draining, a task due for a retry stays unsettled: a
            // later run fetches it.
            if !act.draining {
                let exchange = queued.task.key.exchange.clone();
                act.lanes.push_front(&exchange, queued);
            }
            act.pump(ctx);
        });
    }

    fn replace_pool(&mut self, why: &str, ctx: &mut Context<Self>) {
        log::warn!("replacing fetcher pool {}: {why}", self.generation);
        self.start_pool(ctx);
    }
}

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
                self.lanes.push_back(&exchange, Queued { round, task });
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

/// A worker thread of pool `generation` died.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FetcherLost {
    pub generation: u64,
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
        let dropped = self.lanes.clear();
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
            ..self.stats
        }
    }
}

impl Handler<super::Stop> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: super::Stop, ctx: &mut Self::Context) {
        self.draining = true;
        self.lanes.clear();
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
