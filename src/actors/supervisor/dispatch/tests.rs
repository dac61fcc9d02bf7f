//! Unit tests of `Dispatch`'s rules, without a runtime.

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
