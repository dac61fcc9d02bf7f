//! The `Supervisor`: the one owner of a task's outcome. It takes tasks from
//! the Producer (`Submit`, answered only when there is room: the Producer's
//! backpressure), keeps at most `fetch.queue` of them handed to the fetcher
//! pool, loses none (a failure, a panic, a hung fetch or a dead worker
//! thread sends the task round again, within `fetch.retry_for` and
//! `fetch.max_attempts`), and forwards each cell's outcome to the
//! Aggregator as one `PriceResult`.
//!
//! Its pure parts are rooms of their own: the bookkeeping (lanes, limits,
//! in-flight ledger, retry heap, room) is `dispatch.rs` over `lanes.rs`;
//! what a reply means (retry, fail, settle, give an unreachable exchange up
//! for the round, settle without a request) and the pacing (backoff,
//! throttle pause) is `outcome.rs`; what it runs on is `settings.rs`. This
//! file keeps the actor: its mailbox, the pool's lifecycle (replaced when a
//! thread dies or the config diff says so), the timers (due retries, the
//! hung-fetch sweep, pauses) and the wiring of the pure parts. A reply to a
//! dispatch given up on (hung) is stale and dropped. It never reads a
//! response body. (A little under 600 lines: the actor and the messages of
//! its mailbox stay together.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

mod dispatch;
mod lanes;
mod outcome;
mod settings;
mod stats;

use super::aggregator::{Aggregator, PriceResult};
use super::fetcher::{Fetch, FetchReply, FetcherFactory, FetcherLost, Pool, Replies};
use super::messages::{Reconfigure, Stop};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::model::{reason_kind, Exchange, Outcome, Task};
use crate::source::Throttle;
use dispatch::{Dispatch, Next, Pending};
use outcome::{
    decide, decide_before, every_day, per_day, Action, CellOutcome, Ledger, Now, Pause, Reply,
};
pub use settings::PoolSettings;
pub use stats::SupervisorStats;

pub struct Supervisor {
    settings: PoolSettings,
    clock: Clock,
    metrics: Arc<Metrics>,
    aggregator: Addr<Aggregator>,
    pool: Option<Pool>,
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
    /// What each exchange did in the round (throttled, answered,
    /// unreachable): what `outcome::decide` reads.
    ledger: Ledger,
    stats: SupervisorStats,
    /// Where the pools send their replies, and (until started) the stream.
    replies: (UnboundedSender<Replies>, Option<UnboundedReceiver<Replies>>),
}

impl Supervisor {
    /// A supervisor under the config `initial` brings (start-up is a
    /// reconfiguration like any other); its first pool starts with it.
    pub fn new(
        initial: &Reconfigure,
        clock: Clock,
        aggregator: Addr<Aggregator>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let settings = PoolSettings::new(initial.source.clone(), &initial.config);
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
            replies: {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                (tx, Some(rx))
            },
            submit_waiters: Vec::new(),
            idle_waiters: Vec::new(),
            draining: false,
            ledger: Ledger::default(),
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
        let s = &self.settings;
        let workers = s.workers;
        let replies = self.replies.0.clone();
        self.pool = Some(Pool::start(
            workers,
            s.in_flight,
            s.per_worker,
            factory,
            replies,
        ));
        self.stats.pools_started += 1;
        self.stats.workers = workers;
        log::info!(
            "fetcher pool {} started: {workers} workers, {} requests in flight ({} each), window {}",
            self.generation,
            s.in_flight,
            s.per_worker,
            s.window
        );
    }

    fn is_idle(&self) -> bool {
        self.dispatch.is_idle(self.draining)
    }

    /// Hands queued tasks to the pool up to the window, lanes round-robin
    /// within the per-exchange limits, then wakes whoever waits for room or
    /// for idleness.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.pool.is_some() {
            loop {
                match self.dispatch.next(Instant::now()) {
                    Next::Go(id, job) => {
                        let Some(pool) = &self.pool else { break };
                        let (task, started) = (job.task, job.started);
                        let (key, span, market) = (task.key, task.span, task.market);
                        pool.fetch(
                            id,
                            Fetch {
                                key,
                                span,
                                market,
                                started,
                            },
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

    /// Acts on dispatch `id`'s reply; the caller fills the room (`pump`).
    fn on_reply(&mut self, id: u64, reply: Option<FetchReply>, ctx: &mut Context<Self>) {
        let Some(job) = self.dispatch.finish(id) else {
            // Given up on as hung and sent again: this answer is stale.
            self.stats.stale_replies += 1;
            self.metrics.stale_results.inc();
            log::debug!("dispatch {id}: a reply after its deadline, dropped");
            return;
        };
        let pending = job.pending;
        let reply = match reply {
            Some(FetchReply::Answered { result, asked_at }) => Reply::Answered { result, asked_at },
            Some(FetchReply::Panicked(reason)) => {
                self.stats.restarts += 1;
                self.metrics.fetcher_restarts.inc();
                log::warn!("{}: {reason}; fetcher rebuilt", pending.task.key);
                Reply::Lost(reason)
            }
            // The thread carrying it died (`FetcherLost` replaces the pool).
            None => {
                log::warn!("{}: its fetcher thread died; re-queued", pending.task.key);
                Reply::Lost("fetcher thread died".into())
            }
        };
        self.act(Some(id), pending, reply, ctx);
    }

    /// Decides what `reply` means for `pending` (`outcome::decide`) and
    /// carries it out. `id`: the dispatch that answered, if one did (else
    /// what it settles is a decision with a number of its own).
    fn act(&mut self, id: Option<u64>, pending: Pending, reply: Reply, ctx: &mut Context<Self>) {
        let exchange = &pending.task.key.exchange;
        let now = Now {
            instant: Instant::now(),
            wall: self.clock.now(),
            paused_until: self.dispatch.paused_until(exchange, Instant::now()),
            draining: self.draining,
        };
        let decision = decide(reply, &pending, &mut self.ledger, &self.settings, now);
        if let Some(pause) = decision.pause {
            self.pause_exchange(exchange, pause, ctx);
        }
        // What a lost fetch settles has a number of its own.
        let answered = |dispatch: &mut Dispatch| id.unwrap_or_else(|| dispatch.new_id());
        match decision.action {
            Action::Days { days, asked_at } => {
                let id = answered(&mut self.dispatch);
                let cells = per_day(&pending, days, asked_at, self.settings.settle_after);
                self.deliver(id, &pending, cells, asked_at);
            }
            Action::Settle { outcome, at } => {
                let id = answered(&mut self.dispatch);
                self.deliver_all(id, &pending, outcome, at);
            }
            Action::GiveUp { outcome, at } => {
                let id = self.dispatch.new_id();
                self.deliver_all(id, &pending, outcome, at);
            }
            Action::Unreachable {
                reason,
                asked_at,
                announce,
            } => {
                let id = answered(&mut self.dispatch);
                self.give_up_unreachable(id, &pending, &reason, asked_at, announce);
            }
            Action::Retry {
                attempt,
                delay,
                reason,
            } => {
                self.stats.retries += 1;
                self.metrics.count_retry(reason_kind(&reason));
                let pending = Pending {
                    task: Task {
                        attempt,
                        ..pending.task
                    },
                    ..pending
                };
                self.dispatch.retry_at(pending, now.instant + delay);
                self.arm_retry_timer(ctx);
            }
            Action::Unsettled => {}
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
        announce: bool,
    ) {
        let exchange = &pending.task.key.exchange;
        if announce {
            log::error!(
                "{exchange}: {reason}; its cells fail this round without retrying (the next round tries again)"
            );
        }
        let failed = |attempts: u32| Outcome::Failed {
            reason: reason.to_owned(),
            attempts,
        };
        let outcome = failed(pending.task.attempt + 1);
        self.deliver_all(dispatch, pending, outcome, asked_at);
        for other in self.dispatch.take_exchange(exchange, pending.round) {
            let id = self.dispatch.new_id();
            self.deliver_all(id, &other, failed(other.task.attempt), asked_at);
        }
    }

    /// Each cell's outcome is decided: one `PriceResult` per cell to the
    /// Aggregator.
    fn deliver(
        &self,
        dispatch: u64,
        pending: &Pending,
        cells: Vec<CellOutcome>,
        asked_at: chrono::DateTime<chrono::Utc>,
    ) {
        let source = pending
            .task
            .market
            .as_ref()
            .map_or_else(|| self.settings.source_id.clone(), |m| m.source.clone());
        for cell in cells {
            self.aggregator.do_send(PriceResult {
                round: pending.round,
                dispatch,
                key: cell.key,
                outcome: cell.outcome,
                is_final: cell.is_final,
                asked_at,
                source: source.clone(),
            });
        }
    }

    /// The same outcome for every day `pending` covers.
    fn deliver_all(
        &self,
        dispatch: u64,
        pending: &Pending,
        outcome: Outcome,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        let cells = every_day(pending, outcome, at, self.settings.settle_after);
        self.deliver(dispatch, pending, cells, at);
    }

    /// The exchange asked us to slow down: nothing more goes to it until
    /// its `Retry-After` (or a pause that doubles while it keeps saying so).
    fn pause_exchange(&mut self, exchange: &Exchange, pause: Pause, ctx: &mut Context<Self>) {
        let Pause {
            kind,
            pause,
            reason,
        } = pause;
        self.dispatch.pause(exchange, Instant::now() + pause);
        self.metrics
            .count_throttle(exchange.as_str(), kind == Throttle::Banned);
        let pause_text = humantime::format_duration(pause);
        match kind {
            Throttle::Banned => log::error!(
                "{exchange} has banned this address for {pause_text} ({reason}); nothing is sent to it until then"
            ),
            Throttle::RateLimited => {
                log::warn!("{exchange} asks us to slow down ({reason}); pausing it for {pause_text}")
            }
        }
        // A wake-up for when the pause ends, in case nothing else pumps.
        ctx.run_later(pause, |act, ctx| act.pump(ctx));
    }

    /// Settles, without a request, a task that needs none
    /// (`outcome::decide_before`). `false`: fetch it.
    fn decide_without_request(&mut self, pending: &Pending) -> bool {
        let Some(outcome) = decide_before(pending, &self.ledger, self.clock.today()) else {
            return false;
        };
        let id = self.dispatch.new_id();
        let now = self.clock.now();
        self.deliver_all(id, pending, outcome, now);
        true
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
            self.act(None, job.pending, Reply::Lost(reason), ctx);
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
        if let Some(mut replies) = self.replies.1.take() {
            ctx.add_stream(futures_util::stream::poll_fn(move |cx| {
                replies.poll_recv(cx)
            }));
        }
        self.start_pool(ctx);
        ctx.run_interval(SWEEP_EVERY, |act, ctx| act.sweep_hung(ctx));
    }
}

/// Every reply of every pool, one stream (the sender stays here: it never
/// ends), in the fetchers' batches: each acted on, then the room filled once.
impl StreamHandler<Replies> for Supervisor {
    fn handle(&mut self, replies: Replies, ctx: &mut Self::Context) {
        for r in replies {
            self.on_reply(r.dispatch, r.reply, ctx);
        }
        self.pump(ctx);
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

/// New settings, at a round boundary: a new pool is started if the diff
/// says the pool's shape changed (the old one's threads exit once it is
/// dropped).
impl Handler<Reconfigure> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) {
        self.settings = PoolSettings::new(msg.source, &msg.config);
        self.dispatch.set_limits(self.settings.dispatch_limits());
        if msg.diff.pool {
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

impl Handler<Stop> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        self.draining = true;
        self.dispatch.clear();
        self.pool = None;
        ctx.stop();
    }
}
