//! Supervision and fault tolerance against the real server on loopback:
//! whatever the server or a fetcher does, no task is lost.
//!
//! The invariant checked after every round: tasks = prices + missing +
//! failed, each key exactly once, every price equal to the server's.
//! Needs the `fault-hooks` feature (fetcher panics and hangs on chosen keys).

mod common;

use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use common::*;
use pricegrid::actors::aggregator::TakeSnapshot;
use pricegrid::actors::producer::RunRound;
use pricegrid::actors::supervisor::{GetStats, SupervisorStats};
use pricegrid::actors::Pipeline;
use pricegrid::config::Config;
use pricegrid::fault_hooks::{self, PanicKind};
use pricegrid::model::{Exchange, Symbol, TaskKey};
use pricegrid::server::{Faults, PriceServer};
use pricegrid::snapshot::Snapshot;

/// The fault hooks are process-wide and any round may trip a planned key:
/// the tests of this file run one at a time.
static HOOKS: Mutex<()> = Mutex::const_new(());

async fn hooks() -> tokio::sync::MutexGuard<'static, ()> {
    let guard = HOOKS.lock().await;
    fault_hooks::clear();
    guard
}

/// Runs one round through the real actors; returns the snapshot and the
/// supervisor's counters.
async fn round(config: Config, url: url::Url) -> (Snapshot, SupervisorStats) {
    let pipeline = Pipeline::start(arc(config), url);
    let summary =
        actix_rt::time::timeout(Duration::from_secs(120), pipeline.producer.send(RunRound))
            .await
            .expect("the round ends in time")
            .expect("the producer answers")
            .expect("the round runs");
    let snap = pipeline.aggregator.send(TakeSnapshot).await.unwrap();
    let stats = pipeline.supervisor.send(GetStats).await.unwrap();
    let c = summary.counts;
    assert_eq!(c.tasks, c.done(), "{c:?}");
    assert_eq!(snap.counts, c);
    (snap, stats)
}

/// Every key of March once, every answer equal to the server's.
fn assert_complete(snap: &Snapshot, server: &PriceServer) {
    assert_matches_server(snap, server, "2020-03-01", "2020-03-31");
}

fn key(exchange: &str, symbol: &str, d: &str) -> TaskKey {
    TaskKey {
        exchange: Exchange::new(exchange).unwrap(),
        symbol: Symbol::new(symbol).unwrap(),
        day: day(d),
    }
}

#[actix_rt::test]
async fn a_faulty_server_loses_no_price() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|o| {
        o.faults = Faults {
            fail_rate: 0.20,
            reset_rate: 0.10,
            stall_rate: 0.05,
            stall: Duration::from_secs(5),
            garbage_rate: 0.05,
            seed: 7,
        };
    });
    let config = march(&server, 32)
        .timeout(Duration::from_millis(400))
        .task_deadline(Duration::from_secs(2))
        .max_attempts(12)
        .build();
    let (snap, stats) = round(config, server.url()).await;
    assert_complete(&snap, &server);
    assert!(
        server.stats.injected_total() > 300,
        "faults were injected: {}",
        server.stats.injected_total()
    );
    assert!(
        stats.retries >= server.stats.injected_total() / 2,
        "{stats:?}"
    );
}

#[actix_rt::test]
async fn without_enough_attempts_failures_are_recorded_with_their_reason() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|o| {
        o.faults = Faults {
            fail_rate: 0.5,
            seed: 3,
            ..Faults::default()
        }
    });
    let config = march(&server, 16).max_attempts(1).build();
    let (snap, _) = round(config, server.url()).await;
    let failed = snap.failed();
    assert!(failed.len() > 300, "{}", failed.len());
    assert!(
        failed
            .iter()
            .all(|f| f.reason.starts_with("server error (50") && f.attempts == 1),
        "{failed:?}"
    );
    assert_answers_match(&snap.prices, &server.dataset);
}

#[actix_rt::test]
async fn a_server_killed_mid_round_and_restarted_loses_no_price() {
    let _hooks = hooks().await;
    let first = actix_rt::task::spawn_blocking(|| {
        ServerThread::start(|o| o.latency = Duration::from_millis(5))
    })
    .await
    .unwrap();
    let url = first.url.clone();
    let addr: std::net::SocketAddr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
        .parse()
        .unwrap();
    let config = TestConfig::fetching_from(&url)
        .march()
        .exchanges(pricegrid::server::dataset::CLASSIC_EXCHANGES)
        .symbols(["btc", "eth", "ltc"])
        .workers(8)
        .max_attempts(40)
        .backoff(Duration::from_millis(50), Duration::from_millis(500))
        .build();
    let pipeline = Pipeline::start(arc(config), url);
    let run = pipeline.producer.send(RunRound);
    let run = actix_rt::spawn(run);

    // Kill it a few hundred requests in, keep it down for a second, then
    // bring it back on the same port.
    let stats = first.stats.clone();
    let restarted = actix_rt::task::spawn_blocking(move || {
        stats.wait_for_price_requests(300, Duration::from_secs(30));
        let seen = stats.price_requests();
        drop(first);
        // The outage itself: the server stays away this long.
        std::thread::sleep(Duration::from_secs(1));
        (seen, ServerThread::start(move |o| o.listen = addr))
    })
    .await
    .unwrap();
    let (seen_before, second) = restarted;
    assert!(
        (300..1023).contains(&seen_before),
        "killed mid-round: {seen_before}"
    );
    let summary = actix_rt::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the round ends in time")
        .unwrap()
        .unwrap()
        .expect("the round completes");
    assert_eq!((summary.counts.done(), summary.counts.failed), (1023, 0));
    assert!(
        second.stats.price_requests() > 0,
        "the rest came from the restarted server"
    );
    let snap = pipeline.aggregator.send(TakeSnapshot).await.unwrap();
    assert_answers_match(&snap.prices, &second.dataset);
    assert_eq!(answers(&snap.prices).len(), 1023);
}

#[actix_rt::test]
async fn a_fetcher_panic_on_one_task_in_100_loses_nothing() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|_| {});
    let config = march_config(&server, 8);
    let keys: Vec<(TaskKey, PanicKind)> = (1..=10)
        .map(|d| {
            (
                key("kraken", "btc", &format!("2020-03-{d:02}")),
                PanicKind::Caught,
            )
        })
        .collect();
    fault_hooks::panic_on(keys);
    let (snap, stats) = round(config, server.url()).await;
    assert_complete(&snap, &server);
    assert_eq!(stats.restarts, 10, "{stats:?}");
    assert_eq!(
        (stats.workers, stats.pools_started, stats.threads_lost),
        (8, 1, 0),
        "{stats:?}"
    );
}

#[actix_rt::test]
async fn all_workers_dying_at_once_replaces_the_pool() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|_| {});
    let config = march_config(&server, 4);
    let keys: Vec<(TaskKey, PanicKind)> = ["bitfinex", "bitstamp", "bittrex", "cexio"]
        .iter()
        .map(|e| (key(e, "btc", "2020-03-01"), PanicKind::KillThread))
        .collect();
    fault_hooks::panic_on(keys);
    let (snap, stats) = round(config, server.url()).await;
    assert_complete(&snap, &server);
    assert_eq!(stats.threads_lost, 4, "{stats:?}");
    assert!(stats.pools_started >= 2, "{stats:?}");
    assert_eq!(stats.workers, 4);
}

/// Fetchers that carry several requests each: a panic in one request is
/// that request's alone (retried), the fetcher is rebuilt once the others
/// it carries have answered, and nothing is lost.
#[actix_rt::test]
async fn a_panic_among_several_requests_of_one_fetcher_loses_nothing() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|o| o.latency = Duration::from_millis(5));
    let config = march(&server, 2).in_flight(16).build();
    fault_hooks::panic_on((1..=6).map(|d| {
        (
            key("okex", "btc", &format!("2020-03-{d:02}")),
            PanicKind::Caught,
        )
    }));
    let (snap, stats) = round(config, server.url()).await;
    assert_complete(&snap, &server);
    assert_eq!(stats.restarts, 6, "{stats:?}");
    assert_eq!(
        (stats.workers, stats.pools_started, stats.threads_lost),
        (2, 1, 0),
        "{stats:?}"
    );
    assert_eq!(server.stats.max_concurrent_total(), 16);
}

/// A thread that dies while carrying several requests: each of them is
/// sent round again on the new pool, none lost.
#[actix_rt::test]
async fn a_thread_dying_with_several_requests_in_flight_loses_none() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|o| o.latency = Duration::from_millis(20));
    let config = march(&server, 2).in_flight(16).build();
    fault_hooks::panic_on([(key("kraken", "eth", "2020-03-05"), PanicKind::KillThread)]);
    let (snap, stats) = round(config, server.url()).await;
    assert_complete(&snap, &server);
    assert_eq!(stats.threads_lost, 1, "{stats:?}");
    assert_eq!((stats.workers, stats.pools_started), (2, 2), "{stats:?}");
    assert!(
        stats.retries >= 1,
        "what it carried went round again: {stats:?}"
    );
}

#[actix_rt::test]
async fn a_hung_fetch_is_requeued_and_its_late_answer_changes_nothing() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|_| {});
    let config = march(&server, 8)
        .timeout(Duration::from_millis(300))
        .task_deadline(Duration::from_millis(600))
        .build();
    let hang = PanicKind::Hang(Duration::from_millis(1500));
    fault_hooks::panic_on((1..=3).map(|d| (key("okex", "eth", &format!("2020-03-{d:02}")), hang)));
    let (snap, stats) = round(config, server.url()).await;
    assert_complete(&snap, &server);
    assert_eq!(stats.hung, 3, "{stats:?}");
}

/// The CI run of 2026-12-06 saw a round wait out a hung fetch: the jobs
/// queued to that fetcher behind it had not started, so no deadline ran
/// for them, and nobody else could take them.
#[actix_rt::test]
async fn jobs_behind_a_hung_fetcher_are_carried_by_the_others() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|_| {});
    let config = march(&server, 2)
        .timeout(Duration::from_millis(300))
        .task_deadline(Duration::from_millis(600))
        .build();
    // Hung far longer than the round needs: a round that ends before the
    // hung attempt answers took nothing from it.
    let hang = PanicKind::Hang(Duration::from_secs(10));
    fault_hooks::panic_on([(key("kraken", "btc", "2020-03-10"), hang)]);
    let (snap, stats) = round(config, server.url()).await;
    assert_complete(&snap, &server);
    assert_eq!(
        (stats.hung, stats.stale_replies),
        (1, 0),
        "the round ended on the retry, not on the hung attempt: {stats:?}"
    );
}

#[actix_rt::test]
async fn max_in_flight_per_exchange_holds_and_a_slow_exchange_does_not_stall_the_rest() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|o| o.latency = Duration::from_millis(20));
    let config = march(&server, 32).max_in_flight(2).build();
    let started = Instant::now();
    let (snap, _) = round(config, server.url()).await;
    assert_complete(&snap, &server);
    for e in pricegrid::server::dataset::CLASSIC_EXCHANGES {
        let most = server.stats.max_concurrent(e);
        assert!((1..=2).contains(&most), "{e}: {most} at once");
    }
    // 11 exchanges x 2 in flight x 20 ms: about 1023 / 22 * 20 ms ~ 0.9 s;
    // a pool held by one exchange would take 11 times as long.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[actix_rt::test]
async fn requests_per_second_per_exchange_paces_an_exchange() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|_| {});
    let config = march(&server, 32)
        .exchanges(["kraken"])
        .requests_per_second(25.0)
        .build();
    let started = Instant::now();
    let (snap, _) = round(config, server.url()).await;
    assert_eq!(answers(&snap.prices).len(), 93);
    // 93 requests, a burst of 25 then 25/s: at least (93 - 25) / 25 s.
    let limited = started.elapsed();
    assert!(limited >= Duration::from_millis(2600), "{limited:?}");
}

/// Polls the supervisor's counters every 20 ms until `done` holds of them
/// or `limit` passes; returns the last ones read. (No message tells when a
/// hung fetcher thread finally answers: its reply is dropped.)
async fn stats_when(
    pipeline: &Pipeline,
    limit: Duration,
    done: impl Fn(&SupervisorStats) -> bool,
) -> SupervisorStats {
    let deadline = Instant::now() + limit;
    loop {
        let stats = pipeline.supervisor.send(GetStats).await.unwrap();
        if done(&stats) || Instant::now() >= deadline {
            return stats;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_hung_attempt_that_answers_late_changes_nothing() {
    use pricegrid::actors::aggregator::GetStore;
    use pricegrid::actors::PipelineOptions;
    use pricegrid::clock::Clock;
    use pricegrid::model::CellState;
    use pricegrid::server::publication::partial;

    let _hooks = hooks().await;
    // Today is D, 06:00: D's candle is partial and moves with the clock, so
    // an answer given later differs from one given now.
    let d = day("2020-06-10");
    let morning = d.and_hms_opt(6, 0, 0).unwrap().and_utc();
    let clock = Clock::manual(morning);
    let server = spawn_price_server({
        let clock = clock.clone();
        move |o| {
            o.clock = clock;
            o.publish_delay = Some(Duration::from_secs(3600));
        }
    });
    let hung = key("kraken", "btc", "2020-06-10");
    let full = server
        .dataset
        .price_of(&hung.exchange, &hung.symbol, d)
        .expect("a price");
    let config = TestConfig::fetching_from(&server.url())
        .exchanges(["kraken", "bitstamp"])
        .symbols(["btc", "eth"])
        .last_days(3)
        .workers(4)
        .quick_backoff()
        .timeout(Duration::from_millis(300))
        .task_deadline(Duration::from_millis(600))
        .build();
    // Hung long enough that the round (its retry at 600 ms, and 11 other
    // tasks) ends well before the late answer, even on a loaded machine:
    // at 2 s a cold CI run once saw the round end after it.
    fault_hooks::panic_on([(hung.clone(), PanicKind::Hang(Duration::from_millis(6000)))]);
    let pipeline = Pipeline::start_with(
        arc(config),
        server.url(),
        PipelineOptions {
            clock: clock.clone(),
            ..PipelineOptions::default()
        },
    );

    let summary =
        actix_rt::time::timeout(Duration::from_secs(10), pipeline.producer.send(RunRound))
            .await
            .expect("the round ends in time")
            .unwrap()
            .expect("the round runs");
    let c = summary.counts;
    assert_eq!((c.tasks, c.done(), c.failed), (12, 12, 0), "{c:?}");
    let stats = pipeline.supervisor.send(GetStats).await.unwrap();
    assert_eq!(
        (stats.hung, stats.stale_replies),
        (1, 0),
        "the round ended on the retry, before the hung attempt answered: {stats:?}"
    );
    let retried = pipeline
        .aggregator
        .send(GetStore)
        .await
        .unwrap()
        .get(&hung.exchange, &hung.symbol, d)
        .expect("the hung key has a cell");
    assert_eq!(
        (retried.state, retried.price, retried.fetched_at),
        (
            CellState::Provisional,
            Some(partial(&full, 0.25)),
            Some(morning)
        ),
        "the retry's answer"
    );

    // By the time the hung attempt asks the source, the day's candle has
    // moved: its answer would change the cell, were it taken.
    clock.set(d.and_hms_opt(18, 0, 0).unwrap().and_utc());
    let stats = stats_when(&pipeline, Duration::from_secs(15), |s| s.stale_replies >= 1).await;
    assert_eq!((stats.hung, stats.stale_replies), (1, 1), "{stats:?}");
    assert_eq!(
        server.stats.price_requests(),
        13,
        "the hung attempt did ask the source, late"
    );
    let store = pipeline.aggregator.send(GetStore).await.unwrap();
    assert_eq!(
        store.get(&hung.exchange, &hung.symbol, d),
        Some(retried),
        "the late answer changed nothing"
    );
    let snap = pipeline.aggregator.send(TakeSnapshot).await.unwrap();
    assert_eq!(snap.counts, c, "nor the round's counts");
    let mut cells = pricegrid::model::Counts {
        tasks: c.tasks,
        ..Default::default()
    };
    for (_, _, _, cell) in store.iter() {
        cells.add(cell.state, 1);
    }
    assert_eq!(cells, c, "nor any cell's state");
    pipeline.stop().await;
}

#[actix_rt::test]
async fn healthy_tasks_never_fail_for_time_spent_queued() {
    let _hooks = hooks().await;
    let server = spawn_price_server(|_| {});
    let config = march(&server, 2)
        .exchanges(["kraken", "bitstamp"])
        .symbols(["btc"])
        .timeout(Duration::from_millis(500))
        .task_deadline(Duration::from_secs(1))
        .build();
    // Both workers hang on the first key of each exchange for longer than
    // the deadline; every other task waits in the pool's queue all that time.
    let hang = PanicKind::Hang(Duration::from_millis(1500));
    fault_hooks::panic_on([
        (key("kraken", "btc", "2020-03-01"), hang),
        (key("bitstamp", "btc", "2020-03-01"), hang),
    ]);
    let pipeline = Pipeline::start(arc(config), server.url());
    let summary =
        actix_rt::time::timeout(Duration::from_secs(10), pipeline.producer.send(RunRound))
            .await
            .expect("the round ends in time")
            .unwrap()
            .expect("the round runs");
    let c = summary.counts;
    assert_eq!((c.tasks, c.done(), c.failed), (62, 62, 0), "{c:?}");
    let stats = pipeline.supervisor.send(GetStats).await.unwrap();
    assert_eq!(
        (stats.hung, stats.retries),
        (2, 2),
        "only the two hung fetches were given up on: {stats:?}"
    );
    let snap = pipeline.aggregator.send(TakeSnapshot).await.unwrap();
    assert!(snap.failed().is_empty(), "{:?}", snap.failed());
    assert!(
        snap.prices.iter().all(|(_, _, _, cell)| cell
            .note
            .is_none_or(|n| !n.reason.contains("task_deadline"))),
        "no cell mentions the deadline"
    );
    assert_eq!(answers(&snap.prices).len(), 62);
    assert_answers_match(&snap.prices, &server.dataset);
    let stats = stats_when(&pipeline, Duration::from_secs(5), |s| s.stale_replies >= 2).await;
    assert_eq!(stats.stale_replies, 2, "{stats:?}");
    pipeline.stop().await;
}
