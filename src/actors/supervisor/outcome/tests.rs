//! `decide` and `decide_before` without a runtime: every rule of what a
//! reply means for its task, read from plain values.

use std::sync::Arc;

use chrono::TimeZone;
use url::Url;

use super::*;
use crate::actors::messages::SourceRef;
use crate::config::Config;
use crate::model::{ExchangeApi, Market, Symbol, Task, TaskKey};
use crate::source::Unreachable;

fn exchange() -> Exchange {
    Exchange::new("kraken").unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// A fresh one-day task of `round`, first tried at `first_try`.
fn pending(round: u64, attempt: u32, first_try: Option<Instant>) -> Pending {
    let task = Task::new(TaskKey {
        exchange: exchange(),
        symbol: Symbol::new("btc").unwrap(),
        day: day(1),
    });
    Pending {
        round,
        task: Task { attempt, ..task },
        first_try,
    }
}

/// A page task on Kraken's own API with `market`.
fn on_kraken(days: crate::config::DayRange, unresolved: Option<&str>) -> Pending {
    let market = Market {
        api: ExchangeApi::Kraken,
        name: Arc::from("XBTUSD"),
        source: Arc::from("kraken"),
        quote: Some(Arc::from("USD")),
        unresolved: unresolved.map(Arc::from),
    };
    Pending::new(
        1,
        Task::page(
            exchange(),
            Symbol::new("btc").unwrap(),
            days,
            Arc::new(market),
        ),
    )
}

/// Three attempts within a minute, backoff from 100 ms to 1 s.
fn settings() -> PoolSettings {
    let source = SourceRef::remote(Url::parse("http://127.0.0.1:1/").unwrap());
    PoolSettings {
        max_attempts: 3,
        retry_for: Duration::from_secs(60),
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        ..PoolSettings::new(source, &Config::default())
    }
}

fn wall() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 5, 12, 0, 0).unwrap()
}

fn asked() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 5, 11, 59, 0).unwrap()
}

fn now(at: Instant) -> Now {
    Now {
        instant: at,
        wall: wall(),
        paused_until: None,
        draining: false,
    }
}

fn failed(failure: FetchFailure) -> Reply {
    Reply::Answered {
        result: Err(failure),
        asked_at: asked(),
    }
}

fn answered(days: Vec<DayAnswer>) -> Reply {
    Reply::Answered {
        result: Ok(days),
        asked_at: asked(),
    }
}

fn refused() -> FetchFailure {
    FetchFailure::unreachable(Unreachable::Refused, "connection refused")
}

#[test]
fn an_answered_page_gives_its_days_as_they_came() {
    let days = vec![DayAnswer {
        day: day(1),
        answer: crate::source::Answer::NoPrice,
        open: false,
    }];
    let mut ledger = Ledger::default();
    let t0 = Instant::now();
    let d = decide(
        answered(days.clone()),
        &pending(1, 0, Some(t0)),
        &mut ledger,
        &settings(),
        now(t0),
    );
    assert_eq!(
        d,
        Decision {
            pause: None,
            action: Action::Days {
                days,
                asked_at: asked()
            }
        }
    );
}

#[test]
fn a_permanent_failure_settles_the_task_at_once_counting_this_attempt() {
    let t0 = Instant::now();
    let d = decide(
        failed(FetchFailure::permanent("unknown symbol")),
        &pending(1, 1, Some(t0)),
        &mut Ledger::default(),
        &settings(),
        now(t0),
    );
    let outcome = Outcome::Failed {
        reason: "unknown symbol".into(),
        attempts: 2,
    };
    assert_eq!(
        d.action,
        Action::Settle {
            outcome,
            at: asked()
        }
    );
}

#[test]
fn a_transient_failure_is_tried_again_after_a_backoff_within_the_budget() {
    let t0 = Instant::now();
    let s = settings();
    let d = decide(
        failed(FetchFailure::retryable("server error (503)")),
        &pending(1, 1, Some(t0)),
        &mut Ledger::default(),
        &s,
        now(t0 + Duration::from_secs(1)),
    );
    let Action::Retry {
        attempt,
        delay,
        reason,
    } = d.action
    else {
        panic!("not a retry: {:?}", d.action);
    };
    assert_eq!((attempt, reason.as_str()), (2, "server error (503)"));
    // The second attempt's ceiling: base * 2.
    assert!(delay <= s.backoff_base * 2, "{delay:?}");
    assert_eq!(d.pause, None);
}

#[test]
fn a_task_whose_attempts_or_time_are_used_up_fails_as_a_decision_of_its_own() {
    let t0 = Instant::now();
    let s = settings();
    let last_attempt = decide(
        Reply::Lost("fetcher thread died".into()),
        &pending(1, 2, Some(t0)),
        &mut Ledger::default(),
        &s,
        now(t0),
    );
    let gave_up = |attempts| Action::GiveUp {
        outcome: Outcome::Failed {
            reason: "fetcher thread died".into(),
            attempts,
        },
        at: wall(),
    };
    assert_eq!(last_attempt.action, gave_up(3));
    let out_of_time = decide(
        Reply::Lost("fetcher thread died".into()),
        &pending(1, 0, Some(t0)),
        &mut Ledger::default(),
        &s,
        now(t0 + s.retry_for),
    );
    assert_eq!(out_of_time.action, gave_up(1));
}

#[test]
fn a_throttle_pauses_the_exchange_doubling_and_uses_up_no_attempt() {
    let t0 = Instant::now();
    let s = settings();
    let mut ledger = Ledger::default();
    let throttled = || failed(FetchFailure::throttled("429", Throttle::RateLimited, None));
    let pauses: Vec<Duration> = (0..3)
        .map(|_| {
            let d = decide(
                throttled(),
                &pending(1, 2, Some(t0)),
                &mut ledger,
                &s,
                now(t0),
            );
            assert!(
                matches!(d.action, Action::Retry { attempt: 2, .. }),
                "{:?}",
                d.action
            );
            d.pause.expect("a pause").pause
        })
        .collect();
    assert_eq!(pauses, [1, 2, 4].map(Duration::from_secs));
    // An answer resets the count; a Retry-After is taken as said.
    decide(
        answered(vec![]),
        &pending(1, 0, None),
        &mut ledger,
        &s,
        now(t0),
    );
    let said = FetchFailure::throttled("429", Throttle::Banned, Some(Duration::from_secs(7)));
    let d = decide(
        failed(said),
        &pending(1, 0, Some(t0)),
        &mut ledger,
        &s,
        now(t0),
    );
    assert_eq!(
        d.pause,
        Some(Pause {
            kind: Throttle::Banned,
            pause: Duration::from_secs(7),
            reason: "429".into()
        })
    );
    assert_eq!(throttle_pause(1), Duration::from_secs(1));
    assert_eq!(throttle_pause(30), Duration::from_secs(60));
}

#[test]
fn a_pause_that_outlasts_the_time_budget_fails_the_task_now() {
    let t0 = Instant::now();
    let s = settings();
    let ban = FetchFailure::throttled("banned", Throttle::Banned, Some(s.retry_for * 2));
    let d = decide(
        failed(ban),
        &pending(1, 0, Some(t0)),
        &mut Ledger::default(),
        &s,
        now(t0),
    );
    assert!(matches!(d.action, Action::GiveUp { .. }), "{:?}", d.action);
    assert!(d.pause.is_some(), "the exchange is paused all the same");
}

#[test]
fn while_draining_a_task_that_would_be_retried_stays_unsettled() {
    let t0 = Instant::now();
    let d = decide(
        Reply::Lost("no reply".into()),
        &pending(1, 0, Some(t0)),
        &mut Ledger::default(),
        &settings(),
        Now {
            draining: true,
            ..now(t0)
        },
    );
    assert_eq!(d.action, Action::Unsettled);
}

#[test]
fn an_unreachable_exchange_is_given_up_for_its_round_once_unless_it_answered() {
    let t0 = Instant::now();
    let s = settings();
    let mut ledger = Ledger::default();
    let first = decide(
        failed(refused()),
        &pending(1, 0, Some(t0)),
        &mut ledger,
        &s,
        now(t0),
    );
    assert_eq!(
        first.action,
        Action::Unreachable {
            reason: "connection refused".into(),
            asked_at: asked(),
            announce: true
        }
    );
    let again = decide(
        failed(refused()),
        &pending(1, 0, Some(t0)),
        &mut ledger,
        &s,
        now(t0),
    );
    assert!(matches!(
        again.action,
        Action::Unreachable {
            announce: false,
            ..
        }
    ));
    // Its other tasks of the round fail without a request; the next round
    // asks again.
    let without = decide_before(&pending(1, 0, None), &ledger, day(5));
    assert_eq!(
        without,
        Some(Outcome::Failed {
            reason: "connection refused".into(),
            attempts: 0
        })
    );
    assert_eq!(decide_before(&pending(2, 0, None), &ledger, day(5)), None);
    // Once the exchange has answered in a round, a refused connection is
    // only a transient failure there.
    decide(
        answered(vec![]),
        &pending(2, 0, None),
        &mut ledger,
        &s,
        now(t0),
    );
    let after = decide(
        failed(refused()),
        &pending(2, 0, Some(t0)),
        &mut ledger,
        &s,
        now(t0),
    );
    assert!(
        matches!(after.action, Action::Retry { attempt: 1, .. }),
        "{:?}",
        after.action
    );
}

#[test]
fn tasks_that_need_no_request_are_settled_before_one() {
    let ledger = Ledger::default();
    let today = day(5);
    let recent = crate::config::DayRange {
        from: day(1),
        to: day(4),
    };
    assert_eq!(
        decide_before(&on_kraken(recent, None), &ledger, today),
        None
    );
    assert_eq!(
        decide_before(
            &on_kraken(recent, Some("no market for btc")),
            &ledger,
            today
        ),
        Some(Outcome::Failed {
            reason: "no market for btc".into(),
            attempts: 0
        })
    );
    let long_ago = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let old = crate::config::DayRange {
        from: long_ago,
        to: long_ago,
    };
    let Some(Outcome::Rejected { reason, price }) =
        decide_before(&on_kraken(old, None), &ledger, today)
    else {
        panic!("days out of reach are rejected");
    };
    assert!(price.is_none());
    assert!(exchanges::is_out_of_reach(&reason), "{reason}");
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
