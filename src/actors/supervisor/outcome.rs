//! What a fetch's reply means for its task, decided without a runtime:
//! `decide` turns a reply (or a fetch given up on) into a `Decision` —
//! settle the task's cells, try again after a delay, give the exchange up
//! for the round as unreachable, or leave the task unsettled while
//! draining — and `decide_before` settles the tasks that need no request
//! (an unresolved market, days out of the exchange's reach, an exchange
//! already given up this round); `per_day` and `every_day` turn the verdict
//! into each cell's outcome and finality. Pacing lives here too, side by side: the
//! retry `backoff` and the `throttle_pause` of an exchange that asks us to
//! slow down.
//!
//! It keeps the `Ledger` (what each exchange did in the round: throttled in
//! a row, answered, unreachable) and reads the `PoolSettings`' budget. It
//! sends nothing, arms no timer and touches neither the pool nor
//! `Dispatch`: the Supervisor acts on the decision.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use rand::Rng;

use super::dispatch::Pending;
use super::settings::PoolSettings;
use crate::clock;
use crate::model::{Exchange, Outcome, TaskKey};
use crate::source::exchanges::{self, out_of_reach_reason, DayAnswer, PageResult};
use crate::source::{Answer, FetchFailure, Throttle};

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

/// How long an exchange that said "too many requests" without saying for
/// how long is left alone: doubling from 1 s with each throttle in a row,
/// at most a minute.
pub fn throttle_pause(in_a_row: u32) -> Duration {
    Duration::from_secs(1u64 << in_a_row.saturating_sub(1).min(6)).min(Duration::from_secs(60))
}

/// What came back for a dispatched task.
#[derive(Debug)]
pub enum Reply {
    /// The request ran: what it produced, and when the source was asked.
    Answered {
        result: PageResult,
        asked_at: DateTime<Utc>,
    },
    /// No answer to read (a fetcher panic, a dead worker thread, a fetch
    /// past its deadline): worth another attempt, for this reason.
    Lost(String),
}

/// What each exchange did in the rounds so far: the memory `decide` reads
/// and keeps.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Throttling answers in a row, per exchange (reset by an answer).
    throttled: HashMap<Exchange, u32>,
    /// Exchanges whose server has answered (spoken HTTP), with the round.
    answered: HashSet<(Exchange, u64)>,
    /// Exchanges given up for a round because their host cannot be
    /// reached: the round and the reason their cells fail with.
    unreachable: HashMap<Exchange, (u64, String)>,
}

impl Ledger {
    /// `exchange` has answered in `round`: from now on a failure to connect
    /// there is worth retrying.
    fn note_answered(&mut self, exchange: &Exchange, round: u64) {
        let key = (exchange.clone(), round);
        if !self.answered.contains(&key) {
            // Only the newest round matters: older entries go.
            self.answered.retain(|(_, r)| *r >= round);
            self.answered.insert(key);
        }
    }

    /// Why `exchange`'s cells of `round` fail without a request, if it was
    /// given up as unreachable in that round.
    fn unreachable_in(&self, exchange: &Exchange, round: u64) -> Option<&str> {
        self.unreachable
            .get(exchange)
            .filter(|(r, _)| *r == round)
            .map(|(_, reason)| reason.as_str())
    }
}

/// Where the decision is taken: the instant (for budgets and pauses), the
/// wall-clock time (for what a settled cell records), the exchange's pause
/// in force, and whether the Supervisor is shutting down.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub instant: Instant,
    pub wall: DateTime<Utc>,
    pub paused_until: Option<Instant>,
    pub draining: bool,
}

/// The exchange asked us to slow down: nothing more goes to it for `pause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    pub kind: Throttle,
    pub pause: Duration,
    pub reason: String,
}

/// What becomes of the task.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// One outcome per day the source answered.
    Days {
        days: Vec<DayAnswer>,
        asked_at: DateTime<Utc>,
    },
    /// The same outcome for every day the task covers (the dispatch's
    /// answer settles it).
    Settle { outcome: Outcome, at: DateTime<Utc> },
    /// Its budget is used up: it fails, every day it covers, as a decision
    /// of its own (a new dispatch number), at `at`.
    GiveUp { outcome: Outcome, at: DateTime<Utc> },
    /// The exchange's host cannot be reached and has not answered this
    /// round: this task and every other of its exchange in the round fail
    /// with `reason`, without a retry. `announce`: the first time this
    /// round (say it once).
    Unreachable {
        reason: String,
        asked_at: DateTime<Utc>,
        announce: bool,
    },
    /// Send it round again after `delay`, as attempt `attempt`.
    Retry {
        attempt: u32,
        delay: Duration,
        reason: String,
    },
    /// Shutting down: the task stays unsettled; a later run fetches it.
    Unsettled,
}

/// A pause for the exchange (if it throttled us), and the task's fate.
#[derive(Debug, PartialEq)]
pub struct Decision {
    pub pause: Option<Pause>,
    pub action: Action,
}

/// What `reply` means for `pending`, under `settings`' budget.
pub fn decide(
    reply: Reply,
    pending: &Pending,
    ledger: &mut Ledger,
    settings: &PoolSettings,
    now: Now,
) -> Decision {
    let exchange = &pending.task.key.exchange;
    let (failure, pause) = match reply {
        Reply::Answered {
            result: Ok(days),
            asked_at,
        } => {
            ledger.throttled.remove(exchange);
            ledger.note_answered(exchange, pending.round);
            return Decision {
                pause: None,
                action: Action::Days { days, asked_at },
            };
        }
        Reply::Answered {
            result: Err(failure),
            asked_at,
        } if failure.unreachable.is_some()
            && !ledger.answered.contains(&(exchange.clone(), pending.round)) =>
        {
            let announce = ledger.unreachable_in(exchange, pending.round).is_none();
            if announce {
                ledger
                    .unreachable
                    .insert(exchange.clone(), (pending.round, failure.reason.clone()));
            }
            return Decision {
                pause: None,
                action: Action::Unreachable {
                    reason: failure.reason,
                    asked_at,
                    announce,
                },
            };
        }
        Reply::Answered {
            result: Err(failure),
            asked_at,
        } => {
            if failure.unreachable.is_none() {
                ledger.note_answered(exchange, pending.round);
            }
            let pause = pause_for(ledger, exchange, &failure);
            if !failure.retryable {
                let outcome = Outcome::Failed {
                    reason: failure.reason,
                    attempts: pending.task.attempt + 1,
                };
                return Decision {
                    pause,
                    action: Action::Settle {
                        outcome,
                        at: asked_at,
                    },
                };
            }
            log::debug!(
                "{}: attempt {} failed: {}",
                pending.task.key,
                pending.task.attempt + 1,
                failure.reason
            );
            (failure, pause)
        }
        Reply::Lost(reason) => (FetchFailure::retryable(reason), None),
    };
    let paused_until = match (&pause, now.paused_until) {
        (Some(p), until) => {
            Some(until.map_or(now.instant + p.pause, |u| u.max(now.instant + p.pause)))
        }
        (None, until) => until,
    };
    let action = again(pending, failure, paused_until, settings, now);
    Decision { pause, action }
}

/// The pause a throttling answer asks for: its `Retry-After`, else one that
/// doubles with each throttle in a row.
fn pause_for(ledger: &mut Ledger, exchange: &Exchange, failure: &FetchFailure) -> Option<Pause> {
    let kind = failure.throttle?;
    let in_a_row = ledger.throttled.entry(exchange.clone()).or_default();
    *in_a_row += 1;
    Some(Pause {
        kind,
        pause: failure
            .retry_after
            .unwrap_or_else(|| throttle_pause(*in_a_row)),
        reason: failure.reason.clone(),
    })
}

/// Another attempt after a backoff, or a failure once the time budget
/// (`fetch.retry_for`) or the attempts are used up. A throttling answer is
/// the exchange's pacing, not the task's failure: it does not use up an
/// attempt, only time.
fn again(
    pending: &Pending,
    failure: FetchFailure,
    paused_until: Option<Instant>,
    settings: &PoolSettings,
    now: Now,
) -> Action {
    let attempts = pending.task.attempt + u32::from(failure.throttle.is_none());
    let spent = pending
        .first_try
        .map_or(Duration::ZERO, |t| now.instant.saturating_duration_since(t));
    let paused_past_budget = paused_until.is_some_and(|until| {
        pending
            .first_try
            .is_some_and(|t| until.saturating_duration_since(t) > settings.retry_for)
    });
    if attempts >= settings.max_attempts || spent >= settings.retry_for || paused_past_budget {
        return Action::GiveUp {
            outcome: Outcome::Failed {
                reason: failure.reason,
                attempts: attempts.max(1),
            },
            at: now.wall,
        };
    }
    if now.draining {
        return Action::Unsettled;
    }
    let delay = failure
        .retry_after
        .map(|d| d.min(settings.backoff_max))
        .unwrap_or_else(|| backoff(settings.backoff_base, settings.backoff_max, attempts))
        .min(settings.retry_for.saturating_sub(spent));
    Action::Retry {
        attempt: attempts,
        delay,
        reason: failure.reason,
    }
}

/// One cell's decided outcome: its key, what it is, whether it is final.
#[derive(Debug, Clone, PartialEq)]
pub struct CellOutcome {
    pub key: TaskKey,
    pub outcome: Outcome,
    pub is_final: bool,
}

/// One outcome per day of a page the source answered (final once the day
/// has closed plus `settle_after`, unless the exchange marked it open).
pub fn per_day(
    pending: &Pending,
    days: Vec<DayAnswer>,
    asked_at: DateTime<Utc>,
    settle_after: Duration,
) -> Vec<CellOutcome> {
    days.into_iter()
        .map(|d| {
            let outcome = match d.answer {
                Answer::Price { price, flags } => Outcome::Price { price, flags },
                Answer::NoPrice => Outcome::NoPrice,
                Answer::Rejected { reason, price } => Outcome::Rejected { reason, price },
                Answer::Failed { reason } => Outcome::Failed {
                    reason,
                    attempts: pending.task.attempt + 1,
                },
            };
            CellOutcome {
                key: TaskKey {
                    day: d.day,
                    ..pending.task.key.clone()
                },
                outcome,
                is_final: !d.open && clock::is_final(d.day, asked_at, settle_after),
            }
        })
        .collect()
}

/// The same outcome for every day a task covers (a failure, a rule).
pub fn every_day(
    pending: &Pending,
    outcome: Outcome,
    at: DateTime<Utc>,
    settle_after: Duration,
) -> Vec<CellOutcome> {
    pending
        .task
        .keys()
        .map(|key| CellOutcome {
            is_final: clock::is_final(key.day, at, settle_after),
            key,
            outcome: outcome.clone(),
        })
        .collect()
}

/// The outcome of a task that needs no request, if it is one: its
/// exchange was given up as unreachable this round, its market could not
/// be found, or its days are older than the exchange serves. `None`:
/// fetch it.
pub fn decide_before(pending: &Pending, ledger: &Ledger, today: NaiveDate) -> Option<Outcome> {
    if let Some(reason) = ledger.unreachable_in(&pending.task.key.exchange, pending.round) {
        return Some(Outcome::Failed {
            reason: reason.to_owned(),
            attempts: 0,
        });
    }
    let market = pending.task.market.as_ref()?;
    if let Some(reason) = &market.unresolved {
        return Some(Outcome::Failed {
            reason: reason.to_string(),
            attempts: 0,
        });
    }
    let earliest = exchanges::adapter(market.api).and_then(|a| a.earliest_day(today))?;
    (pending.task.days().to < earliest).then(|| Outcome::Rejected {
        reason: out_of_reach_reason(market.api, earliest),
        price: None,
    })
}

#[cfg(test)]
mod tests;
