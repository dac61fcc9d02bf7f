//! Real-exchange benchmark: a backfill of every exchange api (`ExchangeApi::EXCHANGES`) x 3 symbols x 5 years
//! of daily candles, each exchange served by the built-in server in its own
//! dialect on loopback with the exchange's published rate limit, and asked
//! by pricegrid at its default (documented, safe) rate. Prints, per
//! exchange, the candle requests, requests per cell against the fewest
//! possible (one per page) and against 1/300, throttling answers; then the
//! round's wall time against the rate-limit ideal, the slowest exchange's
//! (requests beyond its first burst) / (its allowed rate), as MET/MISS
//! against 1.10.
//!
//!     cargo bench --bench exchanges
//!
//! Every exchange is asked in parallel, so the ideal is the slowest one's.
//! Market listings (one request per exchange per process) are not counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use pricegrid::actors::producer::RunRound;
use pricegrid::actors::{Pipeline, PipelineOptions};
use pricegrid::clock::Clock;
use pricegrid::config::{Config, Day, ExchangeConfig, Selection, SourceUrl};
use pricegrid::model::{Exchange, ExchangeApi, Symbol};
use pricegrid::origin::Source;
use pricegrid::server::{self, Dataset, GeneratedSpec, PriceServer, ServerOptions};
use pricegrid::source::exchanges::adapter;

const REPEATS: usize = 3;
const FROM: &str = "2016-01-01";
const TO: &str = "2020-12-31";
/// The day after the window, at noon: every day of the window is closed.
const NOW: &str = "2021-01-01T12:00:00Z";

/// The exchange's own published limit, which its dialect server enforces.
fn published_limit(api: ExchangeApi) -> f64 {
    match api {
        // 6,000 request weight a minute, 2 a klines call.
        ExchangeApi::Binance => 50.0,
        ExchangeApi::Kraken => 1.0,
        ExchangeApi::Coinbase => 10.0,
        // 8,000 requests per 10 minutes.
        ExchangeApi::Bitstamp => 13.3,
        // history-candles: 20 requests per 2 seconds.
        ExchangeApi::Okx => 10.0,
        // 30 requests a minute on the candles route.
        ExchangeApi::Bitfinex => 0.5,
        // ccxt's numbers (not the exchanges' own).
        ExchangeApi::Poloniex => 200.0,
        ExchangeApi::Hitbtc => 30.0,
        ExchangeApi::Htx => 10.0,
        // ccxt's 300 ms between requests.
        ExchangeApi::Cexio => 3.3,
        ExchangeApi::Classic => f64::INFINITY,
    }
}

fn day(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

fn name(api: ExchangeApi) -> Exchange {
    Exchange::new(api.as_str()).expect("a valid name")
}

fn config(classic: &PriceServer, servers: &BTreeMap<ExchangeApi, PriceServer>) -> Config {
    let mut c = Config::default();
    c.source.url = SourceUrl::Remote(classic.url());
    c.universe.exchanges =
        Selection::List(ExchangeApi::EXCHANGES.iter().map(|a| name(*a)).collect());
    c.universe.symbols = Selection::List(
        ["btc", "eth", "ltc"]
            .iter()
            .map(|s| Symbol::new(s).expect("a valid name"))
            .collect(),
    );
    c.universe.from = Some(Day(day(FROM)));
    c.universe.to = Some(Day(day(TO)));
    c.log.progress_every = Duration::from_secs(3600);
    for (api, server) in servers {
        c.exchanges.insert(
            name(*api),
            ExchangeConfig {
                api: *api,
                url: Some(SourceUrl::Remote(server.url())),
                markets: BTreeMap::new(),
                quotes: ExchangeConfig::default_quotes(),
                requests_per_second: None,
                max_in_flight: None,
                ca_file: None,
                user_agent: None,
            },
        );
    }
    c.check_at(day("2021-01-01")).expect("a valid bench config");
    c
}

/// One round of `config` on fresh actors: its wall time (market listings
/// included) and its cell count.
async fn timed_round(config: &Config, clock: &Clock) -> (Duration, u64) {
    let source = Source::start_with_clock(config, clock).expect("the source starts");
    let opts = PipelineOptions {
        clock: clock.clone(),
        ..PipelineOptions::from_source(&source)
    };
    let pipeline = Pipeline::start_with(Arc::new(config.clone()), source.url.clone(), opts);
    let started = Instant::now();
    let summary = pipeline
        .producer
        .send(RunRound)
        .await
        .expect("the producer answers")
        .expect("the round runs");
    let wall = started.elapsed();
    assert_eq!(
        summary.counts.failed, 0,
        "no cell failed: {}",
        summary.counts
    );
    pipeline.stop().await;
    source.stop().await;
    (wall, summary.counts.tasks)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let now: DateTime<Utc> = NOW.parse().expect("a time");
    let clock = Clock::manual(now);
    actix_rt::System::new().block_on(async move {
        let mut spec = GeneratedSpec::classic(server::DEFAULT_SEED);
        spec.exchanges = ExchangeApi::EXCHANGES.iter().map(|a| name(*a)).collect();
        spec.from = day(FROM);
        spec.to = day(TO);
        let dataset = Arc::new(Dataset::generated(spec));
        let start = |api: ExchangeApi| {
            let mut o = ServerOptions::new(([127, 0, 0, 1], 0).into(), server::DEFAULT_SEED);
            o.dataset = dataset.clone();
            o.clock = clock.clone();
            o.dialect = api;
            if api != ExchangeApi::Classic {
                o.rate_limit = Some(published_limit(api));
            }
            server::start(&o).expect("a server starts")
        };
        let classic = start(ExchangeApi::Classic);
        let mut walls = Vec::new();
        let mut per_exchange: BTreeMap<ExchangeApi, (u64, u64)> = BTreeMap::new();
        let mut cells = 0;
        for _ in 0..REPEATS {
            let servers: BTreeMap<ExchangeApi, PriceServer> =
                ExchangeApi::EXCHANGES.iter().map(|a| (*a, start(*a))).collect();
            let (wall, n) = timed_round(&config(&classic, &servers), &clock).await;
            walls.push(wall.as_secs_f64());
            cells = n;
            for (api, s) in &servers {
                per_exchange.insert(*api, (s.stats.candle_requests(), s.stats.throttled()));
                s.stop().await;
            }
        }
        let days = (day(TO) - day(FROM)).num_days() as u64 + 1;
        let today = day("2021-01-01");
        println!(
            "backfill: {} exchanges x 3 symbols x {days} days ({FROM}..{TO}) = {cells} cells, today {today}",
            ExchangeApi::EXCHANGES.len()
        );
        println!(
            "{:<9} {:>9} {:>8} {:>10} {:>12} {:>9} {:>10} {:>9}",
            "exchange", "rate/s", "limit/s", "requests", "req/cell", "fewest", "<=1/300", "throttled"
        );
        let mut ideal: f64 = 0.0;
        for api in ExchangeApi::EXCHANGES {
            let a = adapter(api).expect("an adapter");
            let rate = a.default_requests_per_second();
            let (requests, throttled) = per_exchange[&api];
            let reachable = match a.earliest_day(today) {
                Some(e) if e > day(FROM) => (day(TO) - e).num_days() as u64 + 1,
                _ => days,
            };
            let fewest = 3 * reachable.div_ceil(u64::from(a.page_days()));
            let per_cell = requests as f64 / (3 * days) as f64;
            let burst = rate.floor().max(1.0);
            ideal = ideal.max((requests as f64 - burst).max(0.0) / rate);
            println!(
                "{:<9} {:>9.1} {:>8.1} {:>10} {:>12} {:>9} {:>10} {:>9}",
                api.as_str(),
                rate,
                published_limit(api),
                requests,
                format!("1/{:.0}", 1.0 / per_cell),
                // A throttled request is sent again: not a page more.
                if requests - throttled == fewest { "yes" } else { "NO" },
                if per_cell <= 1.0 / 300.0 { "MET" } else { "MISS" },
                throttled
            );
        }
        let wall = median(walls);
        let ratio = wall / ideal;
        println!(
            "round: wall {wall:.2} s (median of {REPEATS}), rate-limit ideal {ideal:.2} s, wall/ideal {ratio:.3} (target <= 1.10: {})",
            if ratio <= 1.10 { "MET" } else { "MISS" }
        );
        classic.stop().await;
    });
}
