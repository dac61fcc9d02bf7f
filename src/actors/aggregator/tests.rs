//! The Aggregator's rules, without a running actor.
use super::*;
use crate::actors::messages::SourceRef;
use crate::model::reason_kind;
use crate::model::{Exchange, Ohlcv, Symbol};
use chrono::NaiveDate;

fn key(day: u32) -> TaskKey {
    TaskKey {
        exchange: Exchange::new("kraken").unwrap(),
        symbol: Symbol::new("btc").unwrap(),
        day: NaiveDate::from_ymd_opt(2020, 3, day).unwrap(),
    }
}

fn price(close: f64) -> Outcome {
    Outcome::price(Ohlcv::new(close, close, close, close, 1.0).unwrap())
}

fn failed() -> Outcome {
    Outcome::Failed {
        reason: "x".into(),
        attempts: 1,
    }
}

fn result(round: u64, dispatch: u64, outcome: Outcome) -> PriceResult {
    PriceResult {
        round,
        dispatch,
        key: key(1),
        outcome,
        is_final: true,
        asked_at: "2020-03-10T00:00:00Z".parse().unwrap(),
        source: Arc::from("http://a/"),
    }
}

fn with_round(a: &mut Aggregator, round: u64, tasks: u64) {
    a.round = Some(Tally::new(round, tasks));
}

fn counts(a: &Aggregator) -> Counts {
    a.round.as_ref().unwrap().counts
}

fn aggregator() -> Aggregator {
    let mut config = crate::config::Config::default();
    config.log.progress_every = Duration::from_secs(60);
    let source = SourceRef::remote(url::Url::parse("http://127.0.0.1:1/").unwrap());
    let initial = Reconfigure::initial(Arc::new(config), source);
    Aggregator::new(&initial, Metrics::new())
}

#[test]
fn failures_are_grouped_per_exchange_by_kind_of_reason() {
    assert_eq!(
        reason_kind("malformed price JSON: EOF at line 1"),
        "malformed price JSON"
    );
    assert_eq!(reason_kind("server error (503)"), "server error (503)");
    let mut t = Tally::new(1, 3);
    t.note_failure(&key(1), "server error (503)");
    t.note_failure(&key(2), "server error (503)");
    let mut okex = key(3);
    okex.exchange = Exchange::new("okex").unwrap();
    t.note_failure(&okex, "timed out");
    assert_eq!(
        t.failures[&Exchange::new("kraken").unwrap()]["server error (503)"].0,
        2
    );
    assert_eq!(t.failures.len(), 2);
}

#[test]
fn an_exchange_with_prices_answering_mostly_none_is_named() {
    let mut a = aggregator();
    with_round(&mut a, 1, 3);
    a.record(result(1, 1, price(5.0)));
    for day in [2, 3] {
        let mut r = result(1, day, Outcome::NoPrice);
        r.key = key(day as u32);
        a.record(r);
    }
    let t = a.round.as_ref().unwrap();
    let store = a.store();
    let named = t.suspicious_none(&store);
    assert_eq!(named.len(), 1);
    assert_eq!(
        (named[0].0.as_str(), named[0].1, named[0].2),
        ("kraken", 2, 3)
    );
    // An exchange that never had a price is not suspicious, just empty.
    let empty = Store::new();
    assert!(t.suspicious_none(&empty).is_empty());
}

#[test]
fn duplicate_delivery_changes_nothing() {
    let mut a = aggregator();
    with_round(&mut a, 1, 1);
    a.record(result(1, 7, price(5.0)));
    a.record(result(1, 7, price(5.0)));
    assert_eq!((counts(&a).finals, counts(&a).done()), (1, 1));
}

#[test]
fn an_older_rounds_late_answer_is_dropped_and_not_counted() {
    let mut a = aggregator();
    with_round(&mut a, 2, 1);
    a.record(result(2, 9, price(6.0)));
    a.record(result(1, 3, price(5.0)));
    assert_eq!(counts(&a).done(), 1, "done never exceeds tasks");
    let cell = a
        .store()
        .get(&key(1).exchange, &key(1).symbol, key(1).day)
        .unwrap();
    assert_eq!((cell.price.unwrap().close, cell.round), (6.0, 2));
}

#[test]
fn a_late_failure_never_replaces_an_answer() {
    let mut a = aggregator();
    with_round(&mut a, 1, 1);
    a.record(result(1, 1, price(5.0)));
    a.record(result(1, 2, failed()));
    assert_eq!((counts(&a).finals, counts(&a).failed), (0, 1));
    assert_eq!(counts(&a).done(), 1);
    let snap = a.snapshot();
    assert_eq!(snap.price_count(), 1);
    assert!(snap.failed().is_empty());
}

#[test]
fn an_answer_replaces_an_earlier_failure() {
    let mut a = aggregator();
    with_round(&mut a, 1, 1);
    a.record(result(1, 1, failed()));
    a.record(result(1, 2, Outcome::NoPrice));
    assert_eq!(
        (counts(&a).none, counts(&a).failed, counts(&a).done()),
        (1, 0, 1)
    );
}

#[test]
fn results_of_another_round_do_not_touch_this_rounds_counts() {
    let mut a = aggregator();
    with_round(&mut a, 2, 1);
    a.record(result(1, 1, price(5.0)));
    assert_eq!(counts(&a).done(), 0);
    assert_eq!(
        a.snapshot().price_count(),
        1,
        "the price is kept all the same"
    );
}

/// A reload reaches the Aggregator whole, but it applies only its part of
/// the diff: a change to the fetcher pool leaves its timers alone, a change
/// to `store` or `log` is applied and re-arms them.
#[test]
fn a_reload_applies_only_the_sections_that_concern_the_aggregator() {
    let mut a = aggregator();
    let source = SourceRef::remote(url::Url::parse("http://127.0.0.1:1/").unwrap());
    let mut old = crate::config::Config::default();
    old.log.progress_every = Duration::from_secs(60);
    let mut pool = old.clone();
    pool.fetch.workers += 1;
    let reload = Reconfigure::new(&old, Arc::new(pool.clone()), 1, source.clone());
    assert!(!a.configure(&reload), "a new pool is not the Aggregator's");
    assert_eq!(a.config_version, 1, "the version is followed all the same");
    let mut store = pool.clone();
    store.store.flush_every = Duration::from_secs(7);
    store.log.progress_every = Duration::from_secs(9);
    let reload = Reconfigure::new(&pool, Arc::new(store), 2, source);
    assert!(a.configure(&reload));
    assert_eq!(a.dirty.flush_every, Duration::from_secs(7));
    assert_eq!(a.progress_every, Duration::from_secs(9));
}
