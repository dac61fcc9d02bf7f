//! Every cell tells the truth, as a manual clock moves: a day is provisional
//! while it is open or within the settle grace, fetched again every round
//! until then, final only after it, and never fetched again once settled
//! (unless the source changes). Counts of a round always add up to its
//! tasks, each key counted once, even when the round crosses midnight.
//!
//! The real actors against the real built-in server on loopback, both on
//! the same `Clock::manual`.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use common::*;
use pricegrid::actors::aggregator::GetStore;
use pricegrid::actors::producer::{RoundError, RunRound};
use pricegrid::actors::{Pipeline, PipelineOptions};
use pricegrid::clock::Clock;
use pricegrid::config::Config;
use pricegrid::model::{CellState, Counts, Exchange, Symbol, TaskKey};
use pricegrid::server::publication::partial;
use pricegrid::server::{Dataset, PriceServer};
use pricegrid::store::{Cell, Store};

const HOUR: Duration = Duration::from_secs(3600);

fn at_hour(d: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    d.and_hms_opt(hour, minute, 0)
        .expect("a time of day")
        .and_utc()
}

fn counts(tasks: u64, finals: u64, provisional: u64, none: u64) -> Counts {
    Counts {
        tasks,
        finals,
        provisional,
        none,
        failed: 0,
        rejected: 0,
    }
}

/// Runs one round; checks that every task has an outcome.
async fn run_round(p: &Pipeline) -> Counts {
    let summary = actix_rt::time::timeout(Duration::from_secs(8), p.producer.send(RunRound))
        .await
        .expect("the round ends in time")
        .expect("the producer answers")
        .expect("the round runs");
    let c = summary.counts;
    assert_eq!(c.tasks, c.done(), "round {}: {c:?}", summary.round);
    c
}

/// Asks for a round that must find nothing due: none runs, and the
/// server is asked for nothing.
async fn nothing_due(p: &Pipeline, server: &PriceServer) {
    let before = server.stats.price_requests();
    let answer = within(Duration::from_secs(8), p.producer.send(RunRound))
        .await
        .expect("the producer answers");
    assert!(
        matches!(answer, Err(RoundError::NothingDue { .. })),
        "{answer:?}"
    );
    assert_eq!(server.stats.price_requests(), before, "nothing asked");
}

/// Runs one round and says how many price requests the server got for it.
async fn run_counted(p: &Pipeline, server: &PriceServer) -> (Counts, u64) {
    let before = server.stats.price_requests();
    let c = run_round(p).await;
    (c, server.stats.price_requests() - before)
}

async fn store_of(p: &Pipeline) -> Store {
    p.aggregator
        .send(GetStore)
        .await
        .expect("the aggregator answers")
}

fn cell_of(store: &Store, e: &Exchange, s: &Symbol, d: NaiveDate) -> Cell {
    store
        .get(e, s, d)
        .unwrap_or_else(|| panic!("{e}/{s}/{d} is not in the store"))
}

/// A config over the last `days` days (UTC, by the pipeline's clock) for
/// these lists, with small backoffs.
fn rolling_config(
    server: &PriceServer,
    exchanges: &[Exchange],
    symbols: &[Symbol],
    days: u32,
    workers: usize,
) -> Config {
    TestConfig::fetching_from(&server.url())
        .settle_after(2 * HOUR)
        .exchanges(exchanges)
        .symbols(symbols)
        .last_days(days)
        .workers(workers)
        .quick_backoff()
        .build()
}

fn start_pipeline(config: Config, server: &PriceServer, clock: &Clock, source: &str) -> Pipeline {
    Pipeline::start_with(
        arc(config),
        server.url(),
        PipelineOptions {
            source_id: Some(Arc::from(source)),
            clock: clock.clone(),
            ..PipelineOptions::default()
        },
    )
}

/// A server on `clock` that publishes like an exchange: today partly, a
/// closed day one hour after its close.
fn publishing_server(clock: &Clock) -> PriceServer {
    let clock = clock.clone();
    spawn_price_server(move |o| {
        o.clock = clock;
        o.publish_delay = Some(HOUR);
    })
}

/// A day `day` of 2020, a symbol, an exchange with a price that day and one
/// without, both priced the two days before and the day after.
struct Setting {
    day: NaiveDate,
    symbol: Symbol,
    priced: Exchange,
    missing: Exchange,
}

fn find_setting(ds: &Dataset) -> Setting {
    for d in day("2020-03-01").iter_days().take(270) {
        let around = [
            d - TimeDelta::days(2),
            d - TimeDelta::days(1),
            d + TimeDelta::days(1),
        ];
        for symbol in ds.symbols() {
            let priced_around =
                |e: &&Exchange| around.iter().all(|a| ds.price_of(e, symbol, *a).is_some());
            let has_price = |e: &&Exchange| ds.price_of(e, symbol, d).is_some();
            let priced = ds
                .exchanges()
                .iter()
                .find(|e| priced_around(e) && has_price(e));
            let missing = ds
                .exchanges()
                .iter()
                .find(|e| priced_around(e) && !has_price(e));
            if let (Some(priced), Some(missing)) = (priced, missing) {
                return Setting {
                    day: d,
                    symbol: symbol.clone(),
                    priced: priced.clone(),
                    missing: missing.clone(),
                };
            }
        }
    }
    panic!("the generated dataset misses some prices on purpose");
}

#[actix_rt::test]
async fn a_day_is_provisional_while_open_refetched_after_close_and_final_only_after_grace() {
    within(Duration::from_secs(30), async {
        let clock = Clock::manual(at("2020-01-01T00:00:00Z"));
        let server = publishing_server(&clock);
        let ds = server.dataset.clone();
        let Setting {
            day: d,
            symbol: s,
            priced,
            missing,
        } = find_setting(&ds);
        let full = ds.price_of(&priced, &s, d).expect("a price");
        let next = d + TimeDelta::days(1);
        let config = rolling_config(
            &server,
            &[priced.clone(), missing.clone()],
            std::slice::from_ref(&s),
            3,
            2,
        );
        let p = start_pipeline(config, &server, &clock, "publishing");

        // Day D, 06:00: D-2 and D-1 are published and past the grace: final.
        // D is open: a partial candle for one exchange, "none" for the other,
        // both provisional.
        clock.set(at_hour(d, 6, 0));
        let (c, asked) = run_counted(&p, &server).await;
        assert_eq!((c, asked), (counts(6, 4, 2, 0), 6));
        let store = store_of(&p).await;
        for back in [1, 2] {
            let past = d - TimeDelta::days(back);
            for e in [&priced, &missing] {
                let cell = cell_of(&store, e, &s, past);
                assert_eq!(cell.state, CellState::Final, "{e}/{s}/{past}");
                assert_eq!(cell.price, ds.price_of(e, &s, past), "{e}/{s}/{past}");
            }
        }
        let morning = cell_of(&store, &priced, &s, d);
        assert_eq!(morning.state, CellState::Provisional);
        assert_eq!(
            morning.price,
            Some(partial(&full, 0.25)),
            "a quarter of the day"
        );
        let nothing_yet = cell_of(&store, &missing, &s, d);
        assert_eq!(
            (nothing_yet.state, nothing_yet.price),
            (CellState::Provisional, None)
        );

        // 18:00 the same day: only D is due; its candle has moved.
        clock.set(at_hour(d, 18, 0));
        let (c, asked) = run_counted(&p, &server).await;
        assert_eq!((c, asked), (counts(2, 0, 2, 0), 2), "only the open day");
        let store = store_of(&p).await;
        let evening = cell_of(&store, &priced, &s, d);
        assert_eq!(evening.state, CellState::Provisional);
        assert_eq!(evening.price, Some(partial(&full, 0.75)));
        assert_ne!(evening.price, morning.price, "an open day's price changes");
        assert_eq!(evening.fetched_at, Some(at_hour(d, 18, 0)));

        // D+1, 00:30: D has closed but is not published yet. It is fetched
        // again; the source's provisional "none" does not drop the held
        // price, which stays provisional, as fetched at 18:00.
        clock.set(at_hour(next, 0, 30));
        let (c, asked) = run_counted(&p, &server).await;
        assert_eq!((c, asked), (counts(4, 0, 4, 0), 4), "D again, and D+1");
        let store = store_of(&p).await;
        let held = cell_of(&store, &priced, &s, d);
        assert_eq!(held.state, CellState::Provisional);
        assert_eq!(held.price, evening.price, "the held price is kept");
        assert_eq!(held.fetched_at, Some(at_hour(d, 18, 0)));
        assert_eq!(held.round, 3, "but it was asked again");
        let note = held.note.expect("a note says the source answered none");
        assert!(note.reason.contains("none"), "{note:?}");
        let still_nothing = cell_of(&store, &missing, &s, d);
        assert_eq!(
            (
                still_nothing.state,
                still_nothing.price,
                still_nothing.round
            ),
            (CellState::Provisional, None, 3)
        );
        for e in [&priced, &missing] {
            let today = cell_of(&store, e, &s, next);
            assert_eq!(today.state, CellState::Provisional, "{e}/{s}/{next}");
            let expect = ds.price_of(e, &s, next).map(|f| partial(&f, 0.5 / 24.0));
            assert_eq!(today.price, expect, "{e}/{s}/{next}");
        }

        // 01:30: published, but within the grace: the full price, provisional.
        clock.set(at_hour(next, 1, 30));
        let (c, asked) = run_counted(&p, &server).await;
        assert_eq!((c, asked), (counts(4, 0, 4, 0), 4));
        let store = store_of(&p).await;
        let published = cell_of(&store, &priced, &s, d);
        assert_eq!(
            (published.state, published.price, published.fetched_at),
            (
                CellState::Provisional,
                Some(full),
                Some(at_hour(next, 1, 30))
            )
        );
        assert_eq!(published.note, None, "the answer replaced the note");
        let not_none_yet = cell_of(&store, &missing, &s, d);
        assert_eq!(
            (not_none_yet.state, not_none_yet.price),
            (CellState::Provisional, None),
            "no price, but not \"none\" before the grace ends"
        );

        // 02:30: past the close plus the 2 h grace: D settles, as a final
        // price and as a final "none".
        clock.set(at_hour(next, 2, 30));
        let (c, asked) = run_counted(&p, &server).await;
        assert_eq!((c, asked), (counts(4, 1, 2, 1), 4));
        let store = store_of(&p).await;
        let settled = cell_of(&store, &priced, &s, d);
        assert_eq!(
            (settled.state, settled.price, settled.round),
            (CellState::Final, Some(full), 5)
        );
        let none = cell_of(&store, &missing, &s, d);
        assert_eq!(
            (none.state, none.price, none.round),
            (CellState::NoPrice, None, 5)
        );

        // 03:00: D is not asked for again; only D+1, still open.
        clock.set(at_hour(next, 3, 0));
        let (c, asked) = run_counted(&p, &server).await;
        assert_eq!((c, asked), (counts(2, 0, 2, 0), 2), "D is settled");
        let store = store_of(&p).await;
        assert_eq!(cell_of(&store, &priced, &s, d), settled);
        assert_eq!(cell_of(&store, &missing, &s, d), none);
        for e in [&priced, &missing] {
            assert_eq!(cell_of(&store, e, &s, next).round, 6, "{e}/{s}/{next}");
        }
        p.stop().await;
    })
    .await;
}

/// Every key of `exchanges` x `symbols` over `days`.
fn keys(exchanges: &[Exchange], symbols: &[Symbol], days: &[NaiveDate]) -> Vec<TaskKey> {
    let mut out = Vec::new();
    for d in days {
        for e in exchanges {
            for s in symbols {
                out.push(TaskKey {
                    exchange: e.clone(),
                    symbol: s.clone(),
                    day: *d,
                });
            }
        }
    }
    out
}

fn is_settled_by_state(store: &Store, k: &TaskKey, source: &str) -> bool {
    store.get(&k.exchange, &k.symbol, k.day).is_some_and(|c| {
        matches!(
            c.state,
            CellState::Final | CellState::NoPrice | CellState::Rejected
        ) && c.source.as_deref() == Some(source)
    })
}

#[actix_rt::test]
async fn a_round_that_crosses_midnight_counts_every_task_once() {
    within(Duration::from_secs(30), async {
        let d = day("2020-06-10");
        let next = d + TimeDelta::days(1);
        let clock = Clock::manual(at_hour(d, 23, 59));
        let server = {
            let clock = clock.clone();
            spawn_price_server(move |o| {
                o.clock = clock;
                o.publish_delay = Some(HOUR);
                o.latency = Duration::from_millis(20);
            })
        };
        let ds = server.dataset.clone();
        let exchanges = ds.exchanges().to_vec();
        let symbols = ds.symbols().to_vec();
        let per_day = (exchanges.len() * symbols.len()) as u64;
        let config = rolling_config(&server, &exchanges, &symbols, 3, 2);
        let p = start_pipeline(config, &server, &clock, "midnight");

        // The round covers D-2..D, decided at 23:59 on D; most of D is asked
        // for after midnight.
        let run = actix_rt::spawn({
            let p = p.clone();
            async move { run_round(&p).await }
        });
        let stats = server.stats.clone();
        let moved = actix_rt::task::spawn_blocking({
            let clock = clock.clone();
            move || {
                let reached =
                    stats.wait_for_price_requests(2 * per_day + 10, Duration::from_secs(8));
                clock.set(at_hour(next, 0, 30));
                (reached, stats.price_requests())
            }
        })
        .await
        .expect("the waiting thread");
        let (reached, asked_before) = moved;
        assert!(reached, "the round got into day D");
        assert!(
            asked_before < 3 * per_day,
            "midnight came mid-round: {asked_before}"
        );
        let c = run.await.expect("the round task");

        assert_eq!(c.tasks, 3 * per_day);
        assert_eq!(
            server.stats.price_requests(),
            3 * per_day,
            "one request per key"
        );
        let store = store_of(&p).await;
        assert_eq!(store.len() as u64, c.tasks, "one cell per task");
        let mut by_state = Counts {
            tasks: c.tasks,
            ..Counts::default()
        };
        for (e, s, day, cell) in store.iter() {
            assert_eq!(cell.round, 1, "{e}/{s}/{day}");
            by_state.add(cell.state, 1);
        }
        assert_eq!(c, by_state, "the counts are the cells' states, each once");
        assert_eq!(
            (c.finals + c.none, c.provisional),
            (2 * per_day, per_day),
            "D-2 and D-1 settled, D provisional: {c:?}"
        );
        let d_cells: Vec<Cell> = keys(&exchanges, &symbols, &[d])
            .iter()
            .map(|k| cell_of(&store, &k.exchange, &k.symbol, k.day))
            .collect();
        let before_midnight = d_cells.iter().filter(|c| c.price.is_some()).count();
        assert!(
            before_midnight > 0,
            "some of D was asked for while it was open"
        );
        assert!(
            d_cells
                .iter()
                .any(|c| c.fetched_at == Some(at_hour(next, 0, 30))),
            "some of D was asked for after midnight"
        );

        // The next round, at 00:30 on D+1, covers D-1..D+1: it fetches
        // exactly the keys not settled, D's and D+1's.
        let window = keys(&exchanges, &symbols, &[d - TimeDelta::days(1), d, next]);
        let due: BTreeSet<TaskKey> = window
            .into_iter()
            .filter(|k| !is_settled_by_state(&store, k, "midnight"))
            .collect();
        let expected: BTreeSet<TaskKey> =
            keys(&exchanges, &symbols, &[d, next]).into_iter().collect();
        assert_eq!(due, expected);
        let (c, asked) = run_counted(&p, &server).await;
        assert_eq!((c.tasks, asked), (due.len() as u64, due.len() as u64));
        let store = store_of(&p).await;
        let fetched: BTreeSet<TaskKey> = store
            .iter()
            .filter(|(_, _, _, cell)| cell.round == 2)
            .map(|(e, s, day, _)| TaskKey {
                exchange: e.clone(),
                symbol: s.clone(),
                day,
            })
            .collect();
        assert_eq!(fetched, due, "round 2 touched exactly the unsettled keys");
        p.stop().await;
    })
    .await;
}

#[actix_rt::test]
async fn a_source_change_makes_settled_cells_due_again() {
    within(Duration::from_secs(30), async {
        let server = spawn_price_server(|_| {});
        let config = march(&server, 4)
            .exchanges(["kraken", "bitstamp"])
            .window("2020-03-01", "2020-03-10")
            .build();
        let tasks: u64 = 2 * 3 * 10;
        let clock = Clock::system();

        let a = start_pipeline(config.clone(), &server, &clock, "source-a");
        let (c, asked) = run_counted(&a, &server).await;
        assert_eq!((c.tasks, c.finals + c.none, asked), (tasks, tasks, tasks));
        // Settled cells are not asked again.
        nothing_due(&a, &server).await;
        let store = store_of(&a).await;
        assert!(store
            .iter()
            .all(|(_, _, _, cell)| cell.source.as_deref() == Some("source-a")));
        a.stop().await;

        let b = Pipeline::start_with(
            arc(config),
            server.url(),
            PipelineOptions {
                source_id: Some(Arc::from("source-b")),
                clock,
                store,
                last_round: 2,
                ..PipelineOptions::default()
            },
        );
        let (c, asked) = run_counted(&b, &server).await;
        assert_eq!(
            (c.tasks, c.finals + c.none, asked),
            (tasks, tasks, tasks),
            "another source: every settled cell is due again"
        );
        let store = store_of(&b).await;
        assert_eq!(store.len() as u64, tasks);
        for (e, s, d, cell) in store.iter() {
            assert_eq!(
                (cell.source.as_deref(), cell.round),
                (Some("source-b"), 3),
                "{e}/{s}/{d}"
            );
        }
        assert_answers_match(&store, &server.dataset);
        // Settled again, from source B.
        nothing_due(&b, &server).await;
        b.stop().await;
    })
    .await;
}
