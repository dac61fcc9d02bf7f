//! Universe bench: what a schedule tick costs once a large universe is
//! settled, over a store built directly (1M cells: 10 exchanges x 100
//! markets x 1,000 days, every cell final), served by the built-in
//! server's synthetic universe of the same names (`ServerOptions::synthetic`).
//!
//! 1. An empty tick: the Producer resolves the universe from the server,
//!    the Aggregator says nothing is due, no round starts. Process CPU (all
//!    threads, the in-process server's included), median of rounds.
//!    Target: <= 50 ms at 20M cells; printed as measured and extrapolated
//!    to 20M as if it grew with the cells held (it grows with the
//!    (exchange, market) pairs, 20x more at 20M as well).
//! 2. The Aggregator's answer alone (`Unsettled`, from its index of
//!    settled days) beside the walk it replaces (every key of the universe
//!    judged against the store, as before).
//! 3. A tick where only the last day is due (1,000 cells): the round's CPU
//!    from the tick to its end, fetching those cells, and the Aggregator's
//!    answer alone: both follow the 1,000 cells, not the 1M held.
//!
//! Prints figures, asserts only on correctness; no time is asserted.
//!
//!     cargo bench --bench universe

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, NaiveDate};
use common::*;
use pricegrid::actors::aggregator::Unsettled;
use pricegrid::actors::producer::{RoundError, RunRound};
use pricegrid::actors::{Pipeline, PipelineOptions};
use pricegrid::config::{Config, Day, DayRange, Selection, SourceUrl};
use pricegrid::model::{Exchange, ExchangeApi, Ohlcv, Outcome, Symbol, TaskKey};
use pricegrid::server::{self, GeneratedSpec, ServerOptions, Synthetic};
use pricegrid::store::{Observation, Store};

const EXCHANGES: usize = 10;
const MARKETS: usize = 100;
const DAYS: u32 = 1000;
const CELLS: usize = EXCHANGES * MARKETS * DAYS as usize;
const AT_20M: f64 = 20_000_000.0 / CELLS as f64;
const TICKS: usize = 15;
const TARGET_MS: f64 = 50.0;

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, 1).expect("a valid date")
}

/// Every cell of the universe final (an unknown source's, which settles
/// for any), but for days after `settled_to`.
fn settled_store(spec: &GeneratedSpec, settled_to: NaiveDate) -> Store {
    let price = Ohlcv::new(1.0, 1.0, 1.0, 1.0, 1.0).expect("a valid price");
    let mut store = Store::new();
    for e in &spec.exchanges {
        for s in &spec.symbols {
            for day in spec.from.iter_days().take_while(|d| *d <= settled_to) {
                let key = TaskKey {
                    exchange: e.clone(),
                    symbol: s.clone(),
                    day,
                };
                store.apply(&key, &Observation::settled(Outcome::price(price), 1));
            }
        }
    }
    store
}

fn config(url: &url::Url) -> Arc<Config> {
    let mut c = Config::default();
    c.source.url = SourceUrl::Remote(url.clone());
    c.universe.exchanges = Selection::All;
    c.universe.symbols = Selection::All;
    c.universe.from = Some(Day(first_day()));
    c.universe.to = Some(Day(first_day() + Days::new(u64::from(DAYS) - 1)));
    c.fetch.workers = 8;
    c.log.progress_every = Duration::from_secs(3600);
    c.check().expect("bench config is valid");
    Arc::new(c)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET "
    } else {
        "MISS"
    }
}

/// CPU of `f`, median of `n` runs, and its last result.
async fn cpu_of<T, F: std::future::Future<Output = T>>(
    n: usize,
    mut f: impl FnMut() -> F,
) -> (Duration, T) {
    let mut times = Vec::with_capacity(n);
    let mut last = None;
    for _ in 0..n {
        let before = process_cpu();
        last = Some(f().await);
        times.push((process_cpu() - before).as_secs_f64());
    }
    (
        Duration::from_secs_f64(median(times)),
        last.expect("at least one run"),
    )
}

fn unsettled(spec: &GeneratedSpec) -> Unsettled {
    let symbols: Arc<[Symbol]> = spec.symbols.clone().into();
    Unsettled {
        pairs: spec
            .exchanges
            .iter()
            .map(|e: &Exchange| (e.clone(), symbols.clone()))
            .collect(),
        days: DayRange {
            from: spec.from,
            to: spec.to,
        },
        source: Arc::from(""),
        sources: Default::default(),
        quotes: Default::default(),
    }
}

/// What the Aggregator did before its index: every key of the universe
/// judged against the store. Its CPU, and the keys found due.
fn walk_every_key(spec: &GeneratedSpec, store: &Store) -> (Duration, usize) {
    let (exchanges, symbols) = (&spec.exchanges, &spec.symbols);
    let days = DayRange {
        from: spec.from,
        to: spec.to,
    };
    let before = process_cpu();
    let due = days
        .days()
        .flat_map(|d| {
            exchanges.iter().flat_map(move |e| {
                symbols.iter().map(move |s| TaskKey {
                    exchange: e.clone(),
                    symbol: s.clone(),
                    day: d,
                })
            })
        })
        .filter(|k| !store.is_settled(k, ""))
        .count();
    (process_cpu() - before, due)
}

fn main() {
    // The allocator as every pricegrid command sets it up (`heap`).
    pricegrid::heap::configure();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    println!("# universe bench: {EXCHANGES} exchanges x {MARKETS} markets x {DAYS} days = {CELLS} cells, settled");
    actix_rt::System::new().block_on(async {
        let mut opts = ServerOptions::synthetic(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            server::DEFAULT_SEED,
            ExchangeApi::Classic,
            Synthetic {
                exchanges: Some(EXCHANGES),
                markets: MARKETS,
                days: DAYS,
            },
        );
        opts.workers = 2;
        let srv = server::start(&opts).expect("the bench server starts");
        let spec = GeneratedSpec::universe(
            server::DEFAULT_SEED,
            GeneratedSpec::numbered_exchanges(EXCHANGES),
            MARKETS,
            DAYS,
        );
        let last = spec.to;

        // 1 and 2: everything settled.
        let store = settled_store(&spec, last);
        assert_eq!(store.len(), CELLS);
        let walk_store = store.clone();
        let pipeline = Pipeline::start_with(
            config(&srv.url()),
            srv.url(),
            PipelineOptions {
                store,
                last_round: 1,
                ..PipelineOptions::default()
            },
        );
        let (tick, result) = cpu_of(TICKS, || pipeline.producer.send(RunRound)).await;
        assert!(
            matches!(result, Ok(Err(RoundError::NothingDue { .. }))),
            "an empty tick: {result:?}"
        );
        let tick_20m = ms(tick) * AT_20M;
        println!(
            "empty tick (universe resolved, nothing due, no round): {:.2} ms CPU at 1M; x{AT_20M:.0} = {tick_20m:.1} ms at 20M; target <= {TARGET_MS} ms at 20M [{}]",
            ms(tick),
            verdict(tick_20m <= TARGET_MS)
        );
        let (answer, due) = cpu_of(TICKS, || pipeline.aggregator.send(unsettled(&spec))).await;
        assert_eq!(due.expect("the aggregator answers").len(), 0);
        let (walk, walked) = walk_every_key(&spec, &walk_store);
        assert_eq!(walked, 0);
        println!(
            "  the Aggregator's answer alone (index of settled days): {:.3} ms CPU; the walk of every key it replaces: {:.1} ms ({:.0}x)",
            ms(answer),
            ms(walk),
            walk.as_secs_f64() / answer.as_secs_f64().max(1e-9)
        );
        pipeline.stop().await;

        // 3: only the last day due.
        let store = settled_store(&spec, last - Days::new(1));
        let pipeline = Pipeline::start_with(
            config(&srv.url()),
            srv.url(),
            PipelineOptions {
                store,
                last_round: 1,
                ..PipelineOptions::default()
            },
        );
        let (answer, due) = cpu_of(TICKS, || pipeline.aggregator.send(unsettled(&spec))).await;
        let due = due.expect("the aggregator answers");
        assert_eq!(due.len(), EXCHANGES * MARKETS);
        assert!(due.iter().all(|k| k.day == last));
        let before = process_cpu();
        let summary = pipeline
            .producer
            .send(RunRound)
            .await
            .expect("the producer answers")
            .expect("the round runs");
        let round = process_cpu() - before;
        assert_eq!(summary.counts.finals as usize, EXCHANGES * MARKETS, "{summary:?}");
        println!(
            "last day due ({} cells): the round {:.1} ms CPU ({:.1} us a due cell, fetched from the in-process server); the Aggregator's answer alone {:.3} ms",
            due.len(),
            ms(round),
            round.as_secs_f64() * 1e6 / due.len() as f64,
            ms(answer),
        );
        pipeline.stop().await;
        srv.stop().await;
    });
    println!("reproduce: cargo bench --bench universe");
}
