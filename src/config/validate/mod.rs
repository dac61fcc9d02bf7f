//! The rules a value cannot be checked against alone: ranges that depend
//! on another field, a window judged by what day it is, the universe's size.
//! One free function per part of the config, each returning every problem
//! it finds; `Config::problems` runs them all, so a config's problems are
//! reported together, in schema order.
//!
//! These functions see typed values only: where a problem is in the file
//! is `diagnostics`' business, and nothing here does I/O.

use std::time::Duration;

use chrono::NaiveDate;

use super::diagnostics::Finding;
use std::collections::BTreeMap;

use super::schema::{
    ExchangeConfig, FetchConfig, SnapshotConfig, SourceConfig, UniverseConfig, MAX_IN_FLIGHT,
    MAX_WORKERS,
};
use super::size::{BYTES_PER_TASK, MAX_TASKS, TASK_MEMORY};
use super::Config;
use crate::model::{quote_problem, Day, Exchange, ExchangeApi};
use crate::source::exchanges::check_market;

/// The day of the first Bitcoin block: no crypto price exists before it, so
/// a window reaching further back is a typo, not a request.
pub const FIRST_PRICE_DAY: NaiveDate = NaiveDate::from_ymd_opt(2009, 1, 3).expect("valid date");

/// `[source]`: the client's limits and the per-exchange limits.
pub(super) fn source(s: &SourceConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if s.timeout.is_zero() {
        out.push(Finding::at(
            "source.timeout",
            "must be positive, e.g. \"10s\"",
        ));
    }
    if s.max_body_bytes < 64 {
        out.push(Finding::at(
            "source.max_body_bytes",
            format!("{} is too small: expected at least 64", s.max_body_bytes),
        ));
    }
    if s.per_exchange.max_in_flight == Some(0) {
        out.push(Finding::at(
            "source.per_exchange.max_in_flight",
            "must be at least 1 (leave it out for no limit)",
        ));
    }
    if let Some(rps) = s.per_exchange.requests_per_second {
        if !(rps.is_finite() && rps > 0.0 && rps <= 1e6) {
            out.push(Finding::at(
                "source.per_exchange.requests_per_second",
                format!("{rps} is out of range: expected a number above 0 and at most 1000000"),
            ));
        }
    }
    if let Some(Err(e)) = s.user_agent.as_deref().map(user_agent) {
        out.push(Finding::at("source.user_agent", e));
    }
    out
}

/// Why a `user_agent` cannot be sent: empty, or not visible ASCII (spaces
/// allowed between words).
fn user_agent(ua: &str) -> Result<(), String> {
    if ua.trim().is_empty() {
        return Err("is empty: name pricegrid and a contact, e.g. \"pricegrid/0.1 (+mailto:ops@example.org)\"".into());
    }
    if ua.trim() != ua {
        return Err(format!("{ua:?} starts or ends with white space"));
    }
    if let Some(c) = ua.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(format!(
            "{ua:?} has {c:?}: a User-Agent is visible ASCII (and spaces)"
        ));
    }
    Ok(())
}

/// `[exchanges.NAME]`: each table's markets in the form its API names them,
/// a market for every listed symbol, its limits in range, and (when the
/// universe lists its exchanges) an exchange the universe fetches: a table
/// for an exchange nobody asks for is more likely a typo than a wish.
pub(super) fn exchanges(
    tables: &BTreeMap<Exchange, ExchangeConfig>,
    u: &UniverseConfig,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, x) in tables {
        let key = |field: &str| format!("exchanges.{name}.{field}");
        if let Some(list) = u.exchanges.list() {
            if !list.contains(name) {
                out.push(Finding::at(
                    key("api"),
                    format!(
                        "exchange {name:?} is configured but universe.exchanges does not list it"
                    ),
                ));
            }
        }
        match x.api {
            ExchangeApi::Classic if !x.markets.is_empty() => out.push(Finding::at(
                key("markets"),
                "the classic API has no markets: leave markets out",
            )),
            ExchangeApi::Classic => {}
            api => {
                for (symbol, market) in &x.markets {
                    if let Some(Err(e)) = check_market(api, market) {
                        out.push(Finding::at(format!("exchanges.{name}.markets.{symbol}"), e));
                    }
                }
                if let (false, Some(symbols)) = (x.markets.is_empty(), u.symbols.list()) {
                    let missing: Vec<&str> = symbols
                        .iter()
                        .filter(|s| !x.markets.contains_key(*s))
                        .map(|s| s.as_str())
                        .collect();
                    if !missing.is_empty() {
                        out.push(Finding::at(
                            key("markets"),
                            format!(
                                "has no market for {} (universe.symbols lists it): add it, or leave markets out to discover them",
                                missing.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        out.extend(quotes(name, &x.quotes));
        if let Some(rps) = x.requests_per_second {
            if !(rps.is_finite() && rps > 0.0 && rps <= 1e6) {
                out.push(Finding::at(
                    key("requests_per_second"),
                    format!("{rps} is out of range: expected a number above 0 and at most 1000000"),
                ));
            }
        }
        if x.max_in_flight == Some(0) {
            out.push(Finding::at(
                key("max_in_flight"),
                "must be at least 1 (leave it out for no limit)",
            ));
        }
        if x.ca_file.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            out.push(Finding::at(key("ca_file"), "is empty"));
        }
        if let Some(Err(e)) = x.user_agent.as_deref().map(user_agent) {
            out.push(Finding::at(key("user_agent"), e));
        }
    }
    out
}

/// `exchanges.NAME.quotes`: at least one, each a known upper-case code,
/// each once (a second mention would be a preference that never applies).
fn quotes(name: &Exchange, quotes: &[String]) -> Vec<Finding> {
    let key = format!("exchanges.{name}.quotes");
    if quotes.is_empty() {
        return vec![Finding::at(
            key,
            "is empty: name at least one quote, e.g. [\"USD\", \"USDT\", \"USDC\"] (the default)",
        )];
    }
    let mut out: Vec<Finding> = quotes
        .iter()
        .enumerate()
        .filter_map(|(i, q)| Some(Finding::at_element(key.clone(), i, quote_problem(q)?)))
        .collect();
    let codes: Vec<&str> = quotes.iter().map(String::as_str).collect();
    for (index, message) in repeats(&codes) {
        out.push(Finding::at_element(key.clone(), index, message));
    }
    out
}

/// `[universe]`: the lists, the window (as of `today`) and, when both
/// lists are explicit and sound, the universe's size.
pub(super) fn universe(u: &UniverseConfig, today: NaiveDate) -> Vec<Finding> {
    let mut out = Vec::new();
    let exchanges = u
        .exchanges
        .list()
        .map(|l| l.iter().map(|e| e.as_str()).collect::<Vec<_>>());
    let symbols = u
        .symbols
        .list()
        .map(|l| l.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let mut lists_ok = true;
    for (key, noun, list) in [
        ("universe.exchanges", "exchange", &exchanges),
        ("universe.symbols", "symbol", &symbols),
    ] {
        let Some(list) = list else { continue };
        if list.is_empty() {
            lists_ok = false;
            out.push(Finding::at(
                key,
                format!("is empty: name at least one {noun}, or \"all\""),
            ));
        }
        for (index, message) in repeats(list) {
            out.push(Finding::at_element(key, index, message));
        }
    }

    let window = window(u, today);
    let window_ok = window.is_empty();
    out.extend(window);

    if u.max_tasks == 0 {
        out.push(Finding::at(
            "universe.max_tasks",
            "must be at least 1, e.g. 5000000",
        ));
        return out;
    }
    if u.max_tasks > MAX_TASKS {
        out.push(Finding::at(
            "universe.max_tasks",
            format!(
                "{} is more than this process can hold: at most {MAX_TASKS} \
                 ({} GiB at about {BYTES_PER_TASK} bytes a task)",
                u.max_tasks,
                TASK_MEMORY >> 30
            ),
        ));
    }
    let (Some(exchanges), Some(symbols)) = (&exchanges, &symbols) else {
        return out;
    };
    if !(lists_ok && window_ok) {
        return out;
    }
    let days = u.days(today).len();
    if let Some(size) = u.size_problem(exchanges.len(), symbols.len(), days) {
        // Blame max_tasks if the file sets it, else the window: by
        // default the limit is right and the window is the mistake.
        let window = if u.last_days.is_some() {
            "universe.last_days"
        } else {
            "universe.from"
        };
        out.push(Finding::at_first_set(
            vec!["universe.max_tasks", window],
            if u.max_tasks < MAX_TASKS {
                format!("{size}: narrow the window or the lists, or raise universe.max_tasks")
            } else {
                format!("{size}: narrow the window or the lists")
            },
        ));
    }
    out
}

/// The universe's window: rolling or absolute (not both), in order, and
/// between the first Bitcoin block and tomorrow.
fn window(u: &UniverseConfig, today: NaiveDate) -> Vec<Finding> {
    let mut out = Vec::new();
    match (u.last_days, u.from, u.to) {
        (Some(0), _, _) => out.push(Finding::at("universe.last_days", "must be at least 1")),
        (Some(n), _, _) if n > 100_000 => out.push(Finding::at(
            "universe.last_days",
            format!("{n} is too large: at most 100000"),
        )),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => out.push(Finding::at(
            "universe.last_days",
            "cannot be combined with from/to: use either a rolling or an absolute window",
        )),
        (None, None, _) => out.push(Finding::at(
            "universe.from",
            "is missing: set from = \"YYYY-MM-DD\" (and optionally to), or last_days = N",
        )),
        (None, Some(from), Some(to)) if from > to => out.push(Finding::at(
            "universe.to",
            format!("{to} is before from = {from}"),
        )),
        _ => {}
    }
    // A day after tomorrow is a typo even where UTC is a day behind.
    let tomorrow = today.succ_opt().unwrap_or(today);
    for (key, day) in [("universe.from", u.from), ("universe.to", u.to)] {
        let Some(Day(day)) = day else { continue };
        if day < FIRST_PRICE_DAY {
            out.push(Finding::at(
                key,
                format!("{day} is before {FIRST_PRICE_DAY}, the first day any crypto price exists"),
            ));
        } else if day > tomorrow {
            out.push(Finding::at(
                key,
                format!("{day} is after tomorrow ({tomorrow})"),
            ));
        }
    }
    out
}

/// `[fetch]`'s counts: the pool's size, the requests in flight, the window
/// and the attempts per task.
pub(super) fn fetch(f: &FetchConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if f.workers == 0 || f.workers > MAX_WORKERS {
        out.push(Finding::at(
            "fetch.workers",
            format!("{} is out of range: expected 1..={MAX_WORKERS}", f.workers),
        ));
    }
    let workers_bad = f.workers == 0 || f.workers > MAX_WORKERS;
    // `workers` alone gives `in_flight` its value: one problem, said once.
    let derived = f.in_flight == f.workers && workers_bad;
    if (f.in_flight == 0 || f.in_flight > MAX_IN_FLIGHT) && !derived {
        out.push(Finding::at(
            "fetch.in_flight",
            format!(
                "{} is out of range: expected 1..={MAX_IN_FLIGHT}",
                f.in_flight
            ),
        ));
    }
    if let Some(q) = f.queue {
        if q < f.in_flight.max(1) {
            out.push(Finding::at(
                "fetch.queue",
                format!(
                    "{q} is smaller than fetch.in_flight ({}): expected at least the requests in flight",
                    f.in_flight
                ),
            ));
        }
        if q > 100_000 {
            out.push(Finding::at(
                "fetch.queue",
                format!("{q} is too large: at most 100000"),
            ));
        }
    }
    if f.max_attempts == 0 || f.max_attempts > 100 {
        out.push(Finding::at(
            "fetch.max_attempts",
            format!("{} is out of range: expected 1..=100", f.max_attempts),
        ));
    }
    out
}

/// Every period and limit that zero would make meaningless (a retry that
/// never waits, a round that never ends), across `[fetch]`, `[schedule]`,
/// `[snapshot]` and `[log]`. `source.timeout` has its own rule in `source`.
pub(super) fn durations(c: &Config) -> Vec<Finding> {
    let f = &c.fetch;
    [
        ("fetch.retry_for", f.retry_for),
        ("fetch.backoff_base", f.backoff_base),
        ("fetch.backoff_max", f.backoff_max),
        ("fetch.task_deadline", f.task_deadline),
        ("fetch.drain_timeout", f.drain_timeout),
        ("schedule.interval", c.schedule.interval),
        ("snapshot.every", c.snapshot.every.unwrap_or(Duration::MAX)),
        ("store.flush_every", c.store.flush_every),
        ("store.keep_for", c.store.keep_for),
        ("log.progress_every", c.log.progress_every),
    ]
    .into_iter()
    .filter(|(_, d)| d.is_zero())
    .map(|(key, _)| Finding::at(key, "must be positive, e.g. \"5s\""))
    .collect()
}

/// `[fetch]`'s timings against each other and against `source.timeout`.
pub(super) fn fetch_timing(f: &FetchConfig, s: &SourceConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if f.backoff_max < f.backoff_base {
        out.push(Finding::at(
            "fetch.backoff_max",
            "is smaller than fetch.backoff_base",
        ));
    }
    if f.task_deadline <= s.timeout {
        out.push(Finding::at(
            "fetch.task_deadline",
            format!(
                "{} must be longer than source.timeout ({}), or every slow answer counts as hung",
                humantime::format_duration(f.task_deadline),
                humantime::format_duration(s.timeout)
            ),
        ));
    }
    out
}

/// `[api]`: at least one query at a time, and a token wherever other
/// hosts can reach the API.
pub(super) fn api(a: &super::schema::ApiConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if a.enabled && !a.listen.ip().is_loopback() && a.token_file.is_none() {
        out.push(Finding::at_first_set(
            vec!["api.token_file", "api.listen"],
            format!(
                "{} is reachable from other hosts: set api.token_file to a file holding a bearer token, or listen on 127.0.0.1",
                a.listen
            ),
        ));
    }
    if a.token_file
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        out.push(Finding::at("api.token_file", "is empty"));
    }
    if !(1..=1024).contains(&a.max_concurrent_queries) {
        out.push(Finding::at(
            "api.max_concurrent_queries",
            format!(
                "{} is out of range: expected 1..=1024",
                a.max_concurrent_queries
            ),
        ));
    }
    out
}

/// `[store]`: a file to keep the record in.
pub(super) fn store(s: &super::schema::StoreConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if s.path.as_os_str().is_empty() {
        out.push(Finding::at("store.path", "is empty"));
    }
    if let Some(url) = &s.url {
        match crate::record::Location::parse(url) {
            crate::record::Location::File(_) => out.push(Finding::at(
                "store.url",
                "expected a PostgreSQL URL, postgres://user@host:5432/database (for a file, \
                 set store.path instead)",
            )),
            crate::record::Location::Postgres(_) => {
                if let Err(e) = url.parse::<postgres::Config>() {
                    out.push(Finding::at(
                        "store.url",
                        format!("is not a PostgreSQL URL pricegrid can use: {e}"),
                    ));
                }
            }
        }
    }
    out
}

/// `[snapshot]`: somewhere to write, and at least one file kept.
pub(super) fn snapshot(s: &SnapshotConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    if s.keep == 0 {
        out.push(Finding::at("snapshot.keep", "must be at least 1"));
    }
    if s.dir.as_os_str().is_empty() {
        out.push(Finding::at("snapshot.dir", "is empty"));
    }
    out
}

/// Each name listed more than once, as (index of its second occurrence,
/// message), in the order the repeats appear.
fn repeats(names: &[&str]) -> Vec<(usize, String)> {
    let mut seen: std::collections::HashMap<&str, (usize, Option<usize>)> =
        std::collections::HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let (count, second) = seen.entry(name).or_insert((0, None));
        *count += 1;
        if *count == 2 {
            *second = Some(i);
        }
    }
    let mut out: Vec<(usize, String)> = seen
        .into_iter()
        .filter_map(|(name, (count, second))| {
            let times = if count == 2 {
                "twice".to_owned()
            } else {
                format!("{count} times")
            };
            second.map(|i| (i, format!("{name:?} is listed {times}")))
        })
        .collect();
    out.sort();
    out
}

mod quality;
#[cfg(test)]
mod tests;

pub(super) use quality::quality;
