//! The classic server's real prices, and a faulty or dead source, through
//! the real actors (issue: every cell tells the truth).
//!
//! Real exchange data breaks the OHLC order now and then (492 of the 1,902
//! prices of 2015 in the reference data): such a price is an answer, kept
//! as sent and flagged, or rejected on purpose, never a failure fetched
//! again and again. A faulty source costs retries, never a price; against a
//! dead one, tasks waiting to retry hold the Producer back (at most three
//! windows held), and the round ends with each failure and its reason.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::*;
use pricegrid::actors::aggregator::{GetProgress, GetStore};
use pricegrid::actors::producer::{RoundError, RunRound};
use pricegrid::actors::supervisor::GetStats;
use pricegrid::actors::Pipeline;
use pricegrid::commands::fetch::fetch_round;
use pricegrid::config::{Config, OhlcOrder};
use pricegrid::model::{CellState, Flags, RoundSummary};
use pricegrid::origin::Source;
use pricegrid::server::{Dataset, FaultKind, Faults, PriceServer};
use pricegrid::store::Store;

/// Every async test gives up after this, instead of hanging.
const LIMIT: Duration = Duration::from_secs(60);

/// The built-in server serving the repo's reference data.
fn reference_server() -> PriceServer {
    let data = Dataset::from_csv(&reference_csv()).expect("the reference data loads");
    spawn_price_server(|o| o.dataset = Arc::new(data))
}

/// Every exchange and symbol the source has, `from..=to`, fetched from
/// `server` with small backoffs.
fn window_config(server: &PriceServer, from: NaiveDate, to: NaiveDate) -> Config {
    whole_universe(server, from, to).build()
}

/// As `window_config`, to be changed further.
fn whole_universe(server: &PriceServer, from: NaiveDate, to: NaiveDate) -> TestConfig {
    TestConfig::fetching_from(&server.url())
        .every_exchange()
        .every_symbol()
        .window(from, to)
        .quick_backoff()
}

async fn run_round(pipeline: &Pipeline) -> RoundSummary {
    within(LIMIT, pipeline.producer.send(RunRound))
        .await
        .expect("the producer answers")
        .expect("the round runs")
}

fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

/// Checks every key of `from..=to` against the dataset: each price the
/// source holds is in the store, final and equal to the source's, flagged
/// `ohlc_order` exactly when its open or close lies outside low..high (or,
/// with `reject`, rejected with its reason and kept as sent); each missing
/// one is a final "none". Returns (prices, out of order).
fn assert_store_tells_the_truth(
    store: &Store,
    ds: &Dataset,
    from: NaiveDate,
    to: NaiveDate,
    reject: bool,
) -> (usize, usize) {
    let (mut prices, mut disordered) = (0, 0);
    for e in ds.exchanges() {
        for s in ds.symbols() {
            for d in days(from, to) {
                let key = format!("{e}/{s}/{d}");
                let cell = store
                    .get(e, s, d)
                    .unwrap_or_else(|| panic!("{key} absent from the store"));
                let Some(want) = ds.price_of(e, s, d) else {
                    assert_eq!(cell.state, CellState::NoPrice, "{key}: {cell:?}");
                    continue;
                };
                prices += 1;
                let out_of_order = want.check_order().is_err();
                disordered += usize::from(out_of_order);
                assert_eq!(cell.price, Some(want), "{key}: the price as sent");
                if reject && out_of_order {
                    assert_eq!(cell.state, CellState::Rejected, "{key}: {cell:?}");
                    let note = cell.note.as_ref().expect("a rejected cell says why");
                    assert!(note.reason.starts_with("ohlc order"), "{key}: {note:?}");
                    assert_eq!(store.answer(e, s, d), None, "{key}: not an answer");
                } else {
                    assert_eq!(cell.state, CellState::Final, "{key}: {cell:?}");
                    assert_eq!(
                        cell.flags.contains(Flags::OHLC_ORDER),
                        out_of_order,
                        "{key}: {want:?} flagged {:?}",
                        cell.flags.names()
                    );
                    assert_eq!(store.answer(e, s, d), Some(Some(want)), "{key}");
                }
            }
        }
    }
    (prices, disordered)
}

#[actix_rt::test]
async fn every_price_of_2015_in_the_reference_data_is_kept_flagged_not_dropped() {
    let server = reference_server();
    let (from, to) = (day("2015-01-01"), day("2015-12-31"));
    let config = window_config(&server, from, to);
    assert_eq!(config.source.ohlc_order, OhlcOrder::Flag, "the default");
    let pipeline = Pipeline::start(arc(config), server.url());

    let first = run_round(&pipeline).await;
    let c = first.counts;
    let ds = &server.dataset;
    let keys = (ds.exchanges().len() * ds.symbols().len() * 365) as u64;
    assert_eq!(c.tasks, keys, "{c:?}");
    assert_eq!(c.done(), c.tasks, "{c:?}");
    assert_eq!((c.failed, c.provisional, c.rejected), (0, 0, 0), "{c:?}");

    let store = within(LIMIT, pipeline.aggregator.send(GetStore))
        .await
        .unwrap();
    let (prices, disordered) = assert_store_tells_the_truth(&store, ds, from, to, false);
    // tests/data/NOTICE.md: 1,902 prices in 2015, 492 of them out of order.
    assert_eq!((prices, disordered), (1902, 492));
    assert_eq!(c.finals as usize, prices, "{c:?}");
    assert_eq!(c.none, keys - prices as u64, "{c:?}");
    let flagged = store
        .iter()
        .filter(|(.., cell)| cell.flags.contains(Flags::OHLC_ORDER))
        .count();
    assert_eq!(flagged, disordered);
    println!("2015: {prices} prices in {keys} tasks, {flagged} flagged ohlc_order, 0 failed");

    // Every day of 2015 closed long ago: everything is final, nothing is
    // asked again.
    let asked = server.stats.price_requests();
    let second = within(LIMIT, pipeline.producer.send(RunRound)).await;
    assert!(
        matches!(second, Ok(Err(RoundError::NothingDue { .. }))),
        "{second:?}"
    );
    assert_eq!(
        server.stats.price_requests(),
        asked,
        "the second round asked for prices"
    );
    within(LIMIT, pipeline.stop()).await;
}

#[actix_rt::test]
async fn ohlc_reject_records_rejected_cells_that_are_never_retried() {
    let server = reference_server();
    let ds = server.dataset.clone();
    // The first day of 2014-2015 with a price out of order, and the week
    // from it.
    let from = days(day("2014-01-01"), day("2015-12-31"))
        .find(|d| {
            ds.exchanges().iter().any(|e| {
                ds.symbols().iter().any(|s| {
                    ds.price_of(e, s, *d)
                        .is_some_and(|p| p.check_order().is_err())
                })
            })
        })
        .expect("the reference data has out-of-order prices in 2014-2015");
    let to = from + chrono::Days::new(6);
    let config = whole_universe(&server, from, to)
        .ohlc_order(OhlcOrder::Reject)
        .build();
    let pipeline = Pipeline::start(arc(config), server.url());

    let first = run_round(&pipeline).await;
    let c = first.counts;
    assert_eq!(c.done(), c.tasks, "{c:?}");
    assert_eq!((c.failed, c.provisional), (0, 0), "{c:?}");
    let store = within(LIMIT, pipeline.aggregator.send(GetStore))
        .await
        .unwrap();
    let (prices, disordered) = assert_store_tells_the_truth(&store, &ds, from, to, true);
    assert!(disordered > 0, "{from}..{to} holds an out-of-order price");
    assert_eq!(c.rejected as usize, disordered, "{c:?}");
    assert_eq!(store.count(CellState::Rejected), disordered);
    assert_eq!(c.finals as usize, prices - disordered, "{c:?}");
    assert!(
        store
            .iter()
            .all(|(.., cell)| !cell.flags.contains(Flags::OHLC_ORDER)
                || cell.state == CellState::Rejected),
        "no accepted price is out of order"
    );

    let asked = server.stats.price_requests();
    let second = within(LIMIT, pipeline.producer.send(RunRound)).await;
    assert!(
        matches!(second, Ok(Err(RoundError::NothingDue { .. }))),
        "{second:?}"
    );
    assert_eq!(
        server.stats.price_requests(),
        asked,
        "rejected cells were fetched again"
    );
    let after = within(LIMIT, pipeline.aggregator.send(GetStore))
        .await
        .unwrap();
    assert_eq!(after.count(CellState::Rejected), disordered);
    within(LIMIT, pipeline.stop()).await;
}

/// 20% of price answers a 500/503, 10% a dropped connection.
fn faulty() -> Faults {
    Faults {
        fail_rate: 0.2,
        reset_rate: 0.1,
        seed: 2020,
        ..Faults::default()
    }
}

#[actix_rt::test]
async fn a_faulty_server_still_gives_every_price_of_march_2020() {
    let server = spawn_price_server(|o| o.faults = faulty());
    let config = march(&server, Config::default().fetch.workers)
        .backoff(Duration::from_millis(20), Duration::from_millis(500))
        .build();
    assert_eq!(config.fetch.max_attempts, 10, "the default");
    assert_eq!(
        config.fetch.retry_for,
        Duration::from_secs(120),
        "the default"
    );

    let started = Instant::now();
    let report = within(
        LIMIT,
        fetch_round(arc(config), &Source::remote(server.url()), false),
    )
    .await
    .expect("the round runs");
    let wall = started.elapsed();
    let c = report.summary.counts;
    assert_eq!((c.tasks, c.done(), c.failed), (1023, 1023, 0), "{c:?}");
    assert_matches_server(&report.snapshot, &server, "2020-03-01", "2020-03-31");

    let requests = server.stats.price_requests();
    let (fails, resets) = (
        server.stats.injected(FaultKind::Fail),
        server.stats.injected(FaultKind::Reset),
    );
    assert!(
        fails + resets > 200,
        "faults were injected: {fails} + {resets}"
    );
    assert_eq!(
        requests,
        1023 + fails + resets,
        "one answered request per task, one more per fault"
    );
    println!(
        "faulty March 2020 in-process: {:.2}s wall, {requests} price requests for 1023 tasks \
         ({} beyond one each), injected {fails} x 5xx + {resets} x reset",
        wall.as_secs_f64(),
        requests - 1023
    );
}

/// The same through the binary, with the shipped config (backoff 200ms..10s).
#[test]
fn the_fetch_command_gets_every_price_of_march_2020_from_a_faulty_server() {
    let server = ServerThread::start(|o| o.faults = faulty());
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("march.json");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .args(["fetch", "--source", server.url.as_str()])
        .args(["--from", "2020-03-01", "--to", "2020-03-31"])
        .arg("--config")
        .arg(shipped_config())
        .arg("--output")
        .arg(&output)
        .output()
        .expect("the binary runs");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("tasks 1023 final ") && stdout.contains(" failed 0 "),
        "{stdout}"
    );
    let snap = pricegrid::snapshot::Snapshot::load(&output).expect("a valid snapshot");
    assert_eq!(answers(&snap.prices).len(), 1023);
    assert_answers_match(&snap.prices, &server.dataset);
    println!(
        "faulty March 2020 via `pricegrid fetch`: {:.2}s elapsed, {} price requests, \
         injected {} x 5xx + {} x reset; stdout: {}",
        elapsed.as_secs_f64(),
        server.stats.price_requests(),
        server.stats.injected(FaultKind::Fail),
        server.stats.injected(FaultKind::Reset),
        stdout.trim()
    );
}

fn dead_source_config(url: &url::Url, to: &str) -> Config {
    TestConfig::fetching_from(url)
        .timeout(Duration::from_secs(1))
        .exchanges(["bitstamp", "kraken", "poloniex"])
        .symbols(["btc", "eth", "ltc"])
        .window("2020-01-01", to)
        .workers(4)
        .queue(8)
        .backoff(Duration::from_millis(200), Duration::from_secs(1))
        .retry_for(Duration::from_secs(1))
        .max_attempts(3)
        .build()
}

/// Against a source that fails every request (503), so every task the
/// Supervisor holds ends up waiting for a retry. (A source that cannot be
/// reached at all fails its cells at once instead: see the next test.) Those count against the
/// window: the Producer hands over another window of tasks only while the
/// ready and retrying ones fit in one window, so at most three windows are
/// held (one in flight, one ready or retrying at the room check, one just
/// handed over), never the round's 3,294 tasks.
#[actix_rt::test]
async fn tasks_waiting_to_retry_count_against_the_window() {
    let url = raw_server(|_| {
        Script::send(
            &b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                [..],
            Then::Close,
        )
    })
    .await;
    let config = dead_source_config(&url, "2020-12-31");
    let window = config.fetch.window();
    assert_eq!(window, 8);
    let pipeline = Pipeline::start(arc(config), url);
    let round = actix_rt::spawn(pipeline.producer.send(RunRound));

    let mut polls = Vec::new();
    for _ in 0..20 {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
        polls.push(
            within(LIMIT, pipeline.supervisor.send(GetStats))
                .await
                .unwrap(),
        );
    }
    for (poll, s) in polls.iter().enumerate() {
        assert!(s.in_flight <= window, "poll {poll}: {s:?}");
        assert!(s.queued < window * 64, "poll {poll}: {s:?}");
        assert!(
            s.retrying + s.queued + s.in_flight <= 2 * window,
            "poll {poll}: {s:?}"
        );
    }
    let retrying = polls.iter().map(|s| s.retrying).max().unwrap_or(0);
    let retries = polls.last().map_or(0, |s| s.retries);
    assert!(retries > 0 && retrying > 0, "tasks were retried: {polls:?}");

    // What the round recorded so far: failures that say why.
    let (_, c) = within(LIMIT, pipeline.aggregator.send(GetProgress))
        .await
        .unwrap()
        .expect("the round runs");
    assert_eq!(c.tasks, 3 * 3 * 366);
    assert!(c.done() < c.tasks, "{c:?}");
    assert_eq!(c.done(), c.failed, "{c:?}");
    let store = within(LIMIT, pipeline.aggregator.send(GetStore))
        .await
        .unwrap();
    for f in store.failed() {
        assert!(f.reason.contains("503"), "{f:?}");
        assert!((1..=3).contains(&f.attempts), "{f:?}");
    }

    within(LIMIT, pipeline.stop()).await;
    let ended = within(LIMIT, round).await.unwrap();
    assert!(
        matches!(ended, Err(_) | Ok(Err(_))),
        "a stopped round reports no summary: {ended:?}"
    );
}

#[actix_rt::test]
async fn a_round_against_a_dead_source_ends_with_every_task_failed_and_why() {
    let url = nothing_listens();
    let pipeline = Pipeline::start(arc(dead_source_config(&url, "2020-01-04")), url);
    let started = Instant::now();
    let c = run_round(&pipeline).await.counts;
    assert_eq!(c.tasks, 3 * 3 * 4);
    assert_eq!((c.done(), c.failed), (c.tasks, c.tasks), "{c:?}");
    let store = within(LIMIT, pipeline.aggregator.send(GetStore))
        .await
        .unwrap();
    let failed = store.failed();
    assert_eq!(failed.len() as u64, c.tasks);
    // Each exchange is given up at its first refused connection: the
    // cells asked say so after one attempt, the others without a request.
    for f in &failed {
        assert!(
            f.reason.contains("cannot reach") && f.reason.contains("connection refused"),
            "{f:?}"
        );
        assert!(f.attempts <= 1, "{f:?}");
    }
    let stats = within(LIMIT, pipeline.supervisor.send(GetStats))
        .await
        .unwrap();
    assert_eq!(
        stats.retries, 0,
        "no retry against a refusing port: {stats:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no retries: the round ends at once: {:?}",
        started.elapsed()
    );
    within(LIMIT, pipeline.stop()).await;
}
