//! The Supervisor's bookkeeping, as a plain struct: which task may go to
//! the fetcher pool next, which are in flight under which dispatch number,
//! which wait for a retry and when, and whether the Producer may hand over
//! more. No timers, no actors, no I/O: the Supervisor asks it questions and
//! arms its own timers from the answers, so every rule here is unit-tested
//! without a runtime.
//!
//! Rules it keeps: per-exchange lanes served round-robin within each
//! exchange's `max_in_flight` and token bucket (`lanes`); at most `window`
//! tasks in flight; dispatch numbers that only grow; due retries in one heap
//! ordered by due time; and room for more only while the ready, in-flight
//! and retrying tasks add up to at most a window.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use super::lanes::{Lane, Lanes};
use crate::actors::fetcher::Started;
use crate::model::{Exchange, Task};

/// How many windows of tasks may wait in the lanes at most, blocked or not.
const MAX_QUEUED_WINDOWS: usize = 64;

/// A task of a round, with when its first attempt was made.
#[derive(Debug)]
pub struct Pending {
    pub round: u64,
    pub task: Task,
    pub first_try: Option<Instant>,
}

impl Pending {
    pub fn new(round: u64, task: Task) -> Self {
        Self {
            round,
            task,
            first_try: None,
        }
    }
}

/// A task handed to the pool.
#[derive(Debug)]
pub struct InFlight {
    pub pending: Pending,
    pub started: Started,
}

/// A task waiting for its retry, ordered by when it is due.
#[derive(Debug)]
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

/// The limits dispatch runs within.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Limits {
    /// Most tasks in flight at once.
    pub window: usize,
    /// Most tasks of one exchange in flight at once.
    pub max_in_flight: Option<usize>,
    /// Most requests a second to one exchange (token bucket).
    pub requests_per_second: Option<f64>,
    /// Exchanges whose limits are their own (a real exchange's documented
    /// rate, or its `[exchanges.NAME]` table), instead of the two above.
    pub exchanges: BTreeMap<Exchange, ExchangeLimits>,
}

/// One exchange's own limits.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ExchangeLimits {
    pub max_in_flight: Option<usize>,
    pub requests_per_second: Option<f64>,
}

impl Limits {
    fn max_in_flight(&self, exchange: &Exchange) -> Option<usize> {
        match self.exchanges.get(exchange) {
            Some(own) => own.max_in_flight,
            None => self.max_in_flight,
        }
    }
}

/// What may go to the pool now.
#[derive(Debug)]
pub enum Next {
    /// This task, under this dispatch number; it is in flight from now on.
    Go(u64, TaskToFetch),
    /// Nothing may go before this (a rate-limited lane); `None` if nothing
    /// waits at all or the window is full.
    Wait(Option<Duration>),
}

/// What a fetcher is to fetch for a dispatch.
#[derive(Debug, Clone)]
pub struct TaskToFetch {
    pub task: Task,
    pub started: Started,
}

type RateLimiter = governor::DefaultKeyedRateLimiter<Exchange>;

/// A token bucket per exchange: `rps` requests a second, bursts of one
/// second's worth.
fn rate_limiter(rps: Option<f64>) -> Option<RateLimiter> {
    Some(governor::RateLimiter::keyed(crate::rate::quota(rps?)?))
}

type OwnLimiter = governor::DefaultDirectRateLimiter;

/// A token bucket of its own for one exchange.
fn own_limiter(rps: Option<f64>) -> Option<OwnLimiter> {
    Some(governor::RateLimiter::direct(crate::rate::quota(rps?)?))
}

fn own_limiters(limits: &Limits) -> HashMap<Exchange, OwnLimiter> {
    limits
        .exchanges
        .iter()
        .filter_map(|(e, l)| Some((e.clone(), own_limiter(l.requests_per_second)?)))
        .collect()
}

/// Queued, in-flight and retrying tasks, and the rules between them.
pub struct Dispatch {
    limits: Limits,
    limiter: Option<RateLimiter>,
    /// Exchanges with a rate of their own.
    own: HashMap<Exchange, OwnLimiter>,
    /// Tasks not yet handed to the pool, one lane per exchange.
    lanes: Lanes<Pending>,
    /// Dispatch number -> the task it carries.
    in_flight: HashMap<u64, InFlight>,
    last_id: u64,
    /// Tasks waiting for a retry, soonest first.
    retries: BinaryHeap<Reverse<Due>>,
    retry_seq: u64,
}

impl Dispatch {
    pub fn new(limits: Limits) -> Self {
        Self {
            limiter: rate_limiter(limits.requests_per_second),
            own: own_limiters(&limits),
            limits,
            lanes: Lanes::default(),
            in_flight: HashMap::new(),
            last_id: 0,
            retries: BinaryHeap::new(),
            retry_seq: 0,
        }
    }

    /// New limits; a new token bucket only if the rate changed.
    pub fn set_limits(&mut self, limits: Limits) {
        if limits.requests_per_second != self.limits.requests_per_second {
            self.limiter = rate_limiter(limits.requests_per_second);
        }
        if limits.exchanges != self.limits.exchanges {
            self.own = own_limiters(&limits);
        }
        self.limits = limits;
    }

    /// Nothing of `exchange` goes to the pool before `until` (it asked us
    /// to slow down); a pause already longer stays.
    pub fn pause(&mut self, exchange: &Exchange, until: Instant) {
        let lane = self.lanes.lane_mut(exchange);
        if lane.paused_until.is_none_or(|t| t < until) {
            lane.paused_until = Some(until);
        }
    }

    /// Until when `exchange` is paused, if it is.
    pub fn paused_until(&self, exchange: &Exchange, now: Instant) -> Option<Instant> {
        self.lanes
            .lane(exchange)
            .and_then(|l| l.paused_until)
            .filter(|t| *t > now)
    }

    /// Queues a task at the back of its exchange's lane.
    pub fn queue(&mut self, pending: Pending) {
        let exchange = pending.task.key.exchange.clone();
        self.lanes.push_back(&exchange, pending);
    }

    /// A fresh dispatch number (numbers only grow).
    pub fn new_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// The next task that may go to the pool now, if any: round-robin over
    /// the lanes, within the window and each exchange's limits.
    pub fn next(&mut self, now: Instant) -> Next {
        if self.in_flight.len() >= self.limits.window {
            return Next::Wait(None);
        }
        let limits = &self.limits;
        let limiter = self.limiter.as_ref();
        let own = &self.own;
        let mut wait: Option<Duration> = None;
        let picked = self.lanes.pop_next(|exchange, lane| {
            if let Some(until) = lane.paused_until.filter(|t| *t > now) {
                let w = until - now;
                wait = Some(wait.map_or(w, |x| x.min(w)));
                return false;
            }
            if limits
                .max_in_flight(exchange)
                .is_some_and(|m| lane.in_flight >= m)
            {
                return false;
            }
            // Each limiter's own clock: building a clock calibrates it, far
            // too slow to do on every pick.
            let checked = match (own.get(exchange), limits.exchanges.contains_key(exchange)) {
                (Some(l), _) => l
                    .check()
                    .map_err(|n| n.wait_time_from(governor::clock::Clock::now(l.clock()))),
                (None, true) => Ok(()),
                (None, false) => match limiter {
                    Some(l) => l
                        .check_key(exchange)
                        .map_err(|n| n.wait_time_from(governor::clock::Clock::now(l.clock()))),
                    None => Ok(()),
                },
            };
            match checked {
                Ok(()) => {
                    lane.blocked_until = None;
                    true
                }
                Err(w) => {
                    lane.blocked_until = Some(now + w);
                    wait = Some(wait.map_or(w, |x| x.min(w)));
                    false
                }
            }
        });
        let Some((_, mut pending)) = picked else {
            return Next::Wait(wait);
        };
        pending.first_try.get_or_insert(now);
        let id = self.new_id();
        let started = Started::default();
        let fetch = TaskToFetch {
            task: pending.task.clone(),
            started: started.clone(),
        };
        self.in_flight.insert(id, InFlight { pending, started });
        Next::Go(id, fetch)
    }

    /// Takes dispatch `id` out of flight; `None` if it was given up on.
    pub fn finish(&mut self, id: u64) -> Option<InFlight> {
        let job = self.in_flight.remove(&id)?;
        self.lanes.done(&job.pending.task.key.exchange);
        Some(job)
    }

    /// Takes out of flight every dispatch a fetcher started more than
    /// `deadline` before `now`.
    pub fn hung(&mut self, deadline: Duration, now: Instant) -> Vec<InFlight> {
        let ids: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| {
                f.started
                    .at()
                    .is_some_and(|t| now.saturating_duration_since(t) > deadline)
            })
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter().filter_map(|id| self.finish(id)).collect()
    }

    /// Holds a task until `at`.
    pub fn retry_at(&mut self, pending: Pending, at: Instant) {
        self.retry_seq += 1;
        self.retries.push(Reverse(Due {
            at,
            seq: self.retry_seq,
            pending,
        }));
    }

    /// When the soonest retry is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.retries.peek().map(|Reverse(d)| d.at)
    }

    /// Puts every retry due by `now` at the head of its lane; how many.
    pub fn release_due(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while self.next_due().is_some_and(|at| at <= now) {
            let Some(Reverse(due)) = self.retries.pop() else {
                break;
            };
            let exchange = due.pending.task.key.exchange.clone();
            self.lanes.push_front(&exchange, due.pending);
            n += 1;
        }
        n
    }

    /// Room for more tasks: those that could go now (tasks of a lane at its
    /// limit do not count, so a blocked exchange cannot stop the others
    /// being fed), those in flight and those waiting for a retry add up to
    /// at most a window, and the total queued stays bounded. With the
    /// Producer's window-sized chunks, at most two windows of ready,
    /// in-flight and retrying tasks are held.
    pub fn has_room(&self, now: Instant) -> bool {
        let window = self.limits.window;
        let limits = &self.limits;
        let ready = self.lanes.ready(|exchange, lane: &Lane<Pending>| {
            limits
                .max_in_flight(exchange)
                .is_none_or(|m| lane.in_flight < m)
                && lane.blocked_until.is_none_or(|t| t <= now)
                && lane.paused_until.is_none_or(|t| t <= now)
        });
        ready + self.retries.len() + self.in_flight.len() <= window
            && self.lanes.queued() <= window.saturating_mul(MAX_QUEUED_WINDOWS)
    }

    /// Nothing queued or in flight, and (unless retries are being dropped)
    /// nothing waiting for a retry.
    pub fn is_idle(&self, ignore_retries: bool) -> bool {
        self.lanes.queued() == 0
            && self.in_flight.is_empty()
            && (ignore_retries || self.retries.is_empty())
    }

    /// Drops every queued and retrying task; how many.
    /// Takes out every queued or retrying task of `exchange` in `round`
    /// (its host cannot be reached: they fail without a request).
    pub fn take_exchange(&mut self, exchange: &Exchange, round: u64) -> Vec<Pending> {
        let mut taken = self.lanes.take_where(exchange, |p| p.round == round);
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|Reverse(d)| {
                d.pending.round == round && d.pending.task.key.exchange == *exchange
            });
        self.retries = others.into_iter().collect();
        taken.extend(mine.into_iter().map(|Reverse(d)| d.pending));
        taken
    }

    pub fn clear(&mut self) -> usize {
        let n = self.lanes.clear() + self.retries.len();
        self.retries.clear();
        n
    }

    pub fn queued(&self) -> usize {
        self.lanes.queued()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn retrying(&self) -> usize {
        self.retries.len()
    }
}

#[cfg(test)]
mod tests;
