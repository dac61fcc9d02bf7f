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

use rand::Rng;

use crate::lanes::{Lane, Lanes};
use crate::model::{Exchange, Task};

/// How many windows of tasks may wait in the lanes at most, blocked or not.
const MAX_QUEUED_WINDOWS: usize = 64;

/// When a fetcher started on a dispatch; set once by the fetcher, read by
/// the deadline sweep (a deadline counts from here, not from when the
/// dispatch was queued for a worker).
#[derive(Debug, Clone, Default)]
pub struct Started(std::sync::Arc<std::sync::OnceLock<Instant>>);

impl Started {
    pub fn mark(&self) {
        let _ = self.0.set(Instant::now());
    }

    pub fn at(&self) -> Option<Instant> {
        self.0.get().copied()
    }
}

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
mod tests {
    use super::*;
    use crate::model::{Symbol, TaskKey};
    use chrono::NaiveDate;

    fn pending(exchange: &str, day: u32) -> Pending {
        Pending::new(
            1,
            Task::new(TaskKey {
                exchange: Exchange::new(exchange).unwrap(),
                symbol: Symbol::new("btc").unwrap(),
                day: NaiveDate::from_ymd_opt(2020, 3, day).unwrap(),
            }),
        )
    }

    fn limits(window: usize) -> Limits {
        Limits {
            window,
            ..Limits::default()
        }
    }

    fn go(d: &mut Dispatch, now: Instant) -> Option<(u64, TaskToFetch)> {
        match d.next(now) {
            Next::Go(id, t) => Some((id, t)),
            Next::Wait(_) => None,
        }
    }

    #[test]
    fn exchanges_take_turns_and_the_window_caps_what_is_in_flight() {
        let mut d = Dispatch::new(limits(3));
        let now = Instant::now();
        for day in 1..=3 {
            d.queue(pending("a", day));
            d.queue(pending("b", day));
        }
        let picked: Vec<String> = std::iter::from_fn(|| go(&mut d, now))
            .map(|(_, t)| t.task.key.exchange.to_string())
            .collect();
        assert_eq!(picked, ["a", "b", "a"]);
        assert_eq!((d.in_flight(), d.queued()), (3, 3));
        assert!(
            matches!(d.next(now), Next::Wait(None)),
            "the window is full"
        );
    }

    #[test]
    fn dispatch_numbers_only_grow_and_a_finished_one_is_gone() {
        let mut d = Dispatch::new(limits(4));
        let now = Instant::now();
        d.queue(pending("a", 1));
        d.queue(pending("a", 2));
        let (first, _) = go(&mut d, now).unwrap();
        let (second, _) = go(&mut d, now).unwrap();
        assert!(second > first);
        assert!(d.finish(first).is_some());
        assert!(
            d.finish(first).is_none(),
            "a reply after it was given up on"
        );
        assert!(d.new_id() > second);
    }

    #[test]
    fn a_per_exchange_limit_holds_one_exchange_not_the_others() {
        let mut d = Dispatch::new(Limits {
            max_in_flight: Some(1),
            ..limits(10)
        });
        let now = Instant::now();
        for day in 1..=3 {
            d.queue(pending("slow", day));
        }
        d.queue(pending("fast", 1));
        let picked: Vec<String> = std::iter::from_fn(|| go(&mut d, now))
            .map(|(_, t)| t.task.key.exchange.to_string())
            .collect();
        assert_eq!(picked, ["fast", "slow"]);
        assert!(
            d.has_room(now),
            "slow's blocked tasks do not count as ready"
        );
    }

    #[test]
    fn a_rate_limited_exchange_says_how_long_to_wait() {
        let mut d = Dispatch::new(Limits {
            requests_per_second: Some(1.0),
            ..limits(10)
        });
        let now = Instant::now();
        d.queue(pending("a", 1));
        d.queue(pending("a", 2));
        assert!(go(&mut d, now).is_some());
        match d.next(now) {
            Next::Wait(Some(w)) => assert!(w > Duration::ZERO && w <= Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_paused_exchange_waits_and_the_others_go_on() {
        let mut d = Dispatch::new(limits(10));
        let now = Instant::now();
        d.queue(pending("a", 1));
        d.queue(pending("b", 1));
        d.pause(&Exchange::new("a").unwrap(), now + Duration::from_secs(3));
        let (_, t) = go(&mut d, now).unwrap();
        assert_eq!(t.task.key.exchange.as_str(), "b");
        match d.next(now) {
            Next::Wait(Some(w)) => assert_eq!(w, Duration::from_secs(3)),
            other => panic!("{other:?}"),
        }
        assert!(
            go(&mut d, now + Duration::from_secs(3)).is_some(),
            "the pause ends"
        );
    }

    #[test]
    fn an_exchange_with_its_own_rate_is_not_held_by_the_default() {
        let mut own = BTreeMap::new();
        own.insert(
            Exchange::new("fast").unwrap(),
            ExchangeLimits {
                max_in_flight: None,
                requests_per_second: Some(1000.0),
            },
        );
        let mut d = Dispatch::new(Limits {
            requests_per_second: Some(1.0),
            exchanges: own,
            ..limits(10)
        });
        let now = Instant::now();
        for day in 1..=3 {
            d.queue(pending("fast", day));
            d.queue(pending("slow", day));
        }
        let picked: Vec<String> = std::iter::from_fn(|| go(&mut d, now))
            .map(|(_, t)| t.task.key.exchange.to_string())
            .collect();
        assert_eq!(picked, ["fast", "slow", "fast", "fast"]);
    }

    #[test]
    fn only_fetches_started_longer_ago_than_the_deadline_are_hung() {
        let mut d = Dispatch::new(limits(4));
        let now = Instant::now();
        d.queue(pending("a", 1));
        d.queue(pending("a", 2));
        let (_, started) = go(&mut d, now).unwrap();
        let _queued_for_a_worker = go(&mut d, now).unwrap();
        started.started.mark();
        let later = Instant::now() + Duration::from_secs(5);
        let hung = d.hung(Duration::from_secs(1), later);
        assert_eq!(hung.len(), 1, "the one never started is not hung");
        assert_eq!(d.in_flight(), 1);
    }

    #[test]
    fn retries_come_due_in_order_and_count_against_the_window() {
        let mut d = Dispatch::new(limits(2));
        let now = Instant::now();
        d.retry_at(pending("a", 2), now + Duration::from_secs(2));
        d.retry_at(pending("a", 1), now + Duration::from_secs(1));
        assert_eq!(d.next_due(), Some(now + Duration::from_secs(1)));
        assert!(d.has_room(now), "2 retrying fill a window of 2 exactly");
        d.retry_at(pending("a", 3), now + Duration::from_secs(3));
        assert!(!d.has_room(now), "3 retrying are more than a window");
        assert_eq!(d.release_due(now + Duration::from_secs(1)), 1);
        let (_, t) = go(&mut d, now).unwrap();
        assert_eq!(t.task.key.day.to_string(), "2020-03-01");
        assert!(!d.is_idle(false));
        assert!(d.is_idle(true) || d.in_flight() > 0);
        assert_eq!(d.clear(), 2);
    }

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
