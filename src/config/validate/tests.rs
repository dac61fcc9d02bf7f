//! Unit tests of the cross-field rules (`validate/mod.rs`).

use std::time::Duration;

use super::*;
use crate::config::PerExchangeConfig;

fn names<T: std::str::FromStr>(n: usize) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    (0..n).map(|i| format!("n{i}").parse().unwrap()).collect()
}

fn keys(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.keys[0].as_ref()).collect()
}

#[test]
fn the_defaults_break_no_rule() {
    let c = Config::default();
    let today = NaiveDate::from_ymd_opt(2024, 6, 15).unwrap();
    assert_eq!(c.problems(today), []);
}

#[test]
fn each_section_reports_all_its_problems() {
    let s = SourceConfig {
        timeout: Duration::ZERO,
        max_body_bytes: 1,
        per_exchange: PerExchangeConfig {
            max_in_flight: Some(0),
            requests_per_second: Some(f64::NAN),
        },
        ..SourceConfig::default()
    };
    assert_eq!(
        keys(&source(&s)),
        [
            "source.timeout",
            "source.max_body_bytes",
            "source.per_exchange.max_in_flight",
            "source.per_exchange.requests_per_second"
        ]
    );
    let f = FetchConfig {
        workers: 2000,
        queue: Some(200_000),
        max_attempts: 0,
        ..FetchConfig::default()
    };
    assert_eq!(
        keys(&fetch(&f)),
        ["fetch.workers", "fetch.queue", "fetch.max_attempts"]
    );
    let snap = SnapshotConfig {
        keep: 0,
        dir: "".into(),
        ..SnapshotConfig::default()
    };
    assert_eq!(keys(&snapshot(&snap)), ["snapshot.keep", "snapshot.dir"]);
}

#[test]
fn a_deadline_no_longer_than_the_request_timeout_is_refused() {
    let s = SourceConfig::default();
    let f = FetchConfig {
        task_deadline: s.timeout,
        backoff_base: Duration::from_secs(2),
        backoff_max: Duration::from_secs(1),
        ..FetchConfig::default()
    };
    let found = fetch_timing(&f, &s);
    assert_eq!(keys(&found), ["fetch.backoff_max", "fetch.task_deadline"]);
    assert_eq!(
        found[1].message,
        "10s must be longer than source.timeout (10s), or every slow answer counts as hung"
    );
}

#[test]
fn the_size_is_judged_only_when_lists_and_window_are_sound() {
    let today = NaiveDate::from_ymd_opt(2024, 6, 15).unwrap();
    let u = UniverseConfig {
        exchanges: crate::config::Selection::List(names(3)),
        symbols: crate::config::Selection::List(names(3)),
        max_tasks: 8,
        ..UniverseConfig::default()
    };
    let found = universe(&u, today);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].keys, ["universe.max_tasks", "universe.from"]);
    let backwards = UniverseConfig {
        from: u.to,
        to: u.from,
        ..u
    };
    assert_eq!(
        keys(&universe(&backwards, today)),
        ["universe.to"],
        "a broken window is reported alone, not also as a size"
    );
}
