//! Whole rounds against the built-in server speaking each real exchange's
//! API, on loopback: the cells equal those the classic server with the same
//! dataset gives for that exchange (today's candle provisional, tomorrow a
//! provisional "none", days an exchange cannot serve rejected as out of
//! reach), in a page of days per request; an exchange's throttling answers
//! pause it and the round still completes with no cell failed; a market the
//! exchange does not know fails its cells with a reason saying so.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use common::*;
use pricegrid::actors::aggregator::GetStore;
use pricegrid::actors::producer::RunRound;
use pricegrid::actors::{Pipeline, PipelineOptions};
use pricegrid::clock::Clock;
use pricegrid::config::Config;
use pricegrid::model::{
    CellState, Counts, Exchange, ExchangeApi, Flags, Ohlcv, Symbol, DEFAULT_QUOTES,
};
use pricegrid::origin::Source;
use pricegrid::server::{self, Dataset, GeneratedSpec, PriceServer, ServerOptions};
use pricegrid::store::Store;

/// Mid-day: today's candle is half made, tomorrow has none yet.
const NOW: &str = "2020-06-15T12:00:00Z";
const FROM: &str = "2018-01-01";
const TO: &str = "2020-06-16";
const HOUR: Duration = Duration::from_secs(3600);

fn now() -> DateTime<Utc> {
    NOW.parse().expect("test time")
}

fn kraken() -> Exchange {
    Exchange::new("kraken").expect("a valid name")
}

fn symbols() -> Vec<Symbol> {
    ["btc", "eth", "ltc"]
        .iter()
        .map(|s| Symbol::new(s).expect("a valid name"))
        .collect()
}

/// The classic dataset over 2017..2020, so that Kraken's 720 days are
/// shorter than the window.
fn dataset() -> Arc<Dataset> {
    let mut spec = GeneratedSpec::classic(server::DEFAULT_SEED);
    spec.from = day("2017-01-01");
    spec.to = day("2020-12-31");
    Arc::new(Dataset::generated(spec))
}

/// A server over `dataset` at `clock`'s time, publishing an hour after each
/// close, speaking `dialect` with kraken's prices.
fn server(
    dialect: ExchangeApi,
    dataset: &Arc<Dataset>,
    clock: &Clock,
    tweak: impl FnOnce(&mut ServerOptions),
) -> PriceServer {
    let mut opts = ServerOptions::new(loopback(), server::DEFAULT_SEED);
    opts.dataset = dataset.clone();
    opts.clock = clock.clone();
    opts.publish_delay = Some(HOUR);
    opts.dialect = dialect;
    if dialect != ExchangeApi::Classic {
        opts.exchange = Some(kraken());
    }
    tweak(&mut opts);
    server::start(&opts).expect("the test server starts")
}

/// The universe every test here fetches: kraken's three symbols over the
/// window, from `classic` (for exchanges without a table of their own).
fn config(classic: &PriceServer) -> Config {
    TestConfig::fetching_from(&classic.url())
        .exchanges([kraken()])
        .symbols(symbols())
        .window(FROM, TO)
        .settle_after(2 * HOUR)
        .quick_backoff()
        .build()
}

/// `config` with kraken asked through `api` at `server`.
fn through(config: Config, api: ExchangeApi, server: &PriceServer, rps: f64) -> Config {
    let config = TestConfig::from(config)
        .exchange_api("kraken", api, &server.url(), rps)
        .build();
    config.check_at(day("2020-06-15")).expect("a valid config");
    config
}

/// Starts `config`'s source as the daemon does, and the actors on it.
fn start(config: Config, clock: &Clock) -> (Source, Pipeline) {
    let source = Source::start_with_clock(&config, clock).expect("the source starts");
    let pipeline = Pipeline::start_with(
        arc(config),
        source.url.clone(),
        PipelineOptions {
            clock: clock.clone(),
            ..PipelineOptions::from_source(&source)
        },
    );
    (source, pipeline)
}

async fn run_round(pipeline: &Pipeline) -> Counts {
    let summary =
        actix_rt::time::timeout(Duration::from_secs(60), pipeline.producer.send(RunRound))
            .await
            .expect("the round ends in time")
            .expect("the producer answers")
            .expect("the round runs");
    summary.counts
}

/// Runs one round of `config` on fresh actors and returns its counts and
/// the store.
async fn round(config: Config, clock: &Clock) -> (Counts, Store) {
    let (source, pipeline) = start(config, clock);
    let counts = run_round(&pipeline).await;
    let store = pipeline
        .aggregator
        .send(GetStore)
        .await
        .expect("the aggregator answers");
    pipeline.stop().await;
    source.stop().await;
    (counts, store)
}

/// The oldest day Kraken serves on `NOW`: its 720 most recent candles.
fn kraken_reach() -> NaiveDate {
    day("2020-06-15") - TimeDelta::days(719)
}

/// The oldest day an exchange serves on `NOW`, if it has a limit: Kraken's
/// 720 days, HTX's 2000 hours (less a day).
fn reach(api: ExchangeApi) -> Option<NaiveDate> {
    match api {
        ExchangeApi::Kraken => Some(kraken_reach()),
        ExchangeApi::Htx => Some(day("2020-06-15") - TimeDelta::days(82)),
        _ => None,
    }
}

/// What every price of an exchange is flagged with beyond the classic
/// server's flags: HTX's days are built from hours, CEX.IO's from quotes.
fn provenance(api: ExchangeApi) -> Flags {
    match api {
        ExchangeApi::Htx => Flags::DERIVED_1H,
        ExchangeApi::Cexio => Flags::QUOTES,
        _ => Flags::NONE,
    }
}

/// Compares every cell of the window: the dialect's equal the classic's,
/// but for the days out of reach (Kraken's, HTX's), the provenance flags
/// of a price (HTX's `derived:1h`, CEX.IO's `quotes`) and CEX.IO's volume
/// (quotes have none: 0).
fn assert_same_cells(api: ExchangeApi, classic: &Store, dialect: &Store) {
    let mut compared = 0;
    for symbol in symbols() {
        let mut d = day(FROM);
        while d <= day(TO) {
            let c = classic.get(&kraken(), &symbol, d).expect("a classic cell");
            let x = dialect
                .get(&kraken(), &symbol, d)
                .unwrap_or_else(|| panic!("{api}: no cell for kraken/{symbol}/{d}"));
            if reach(api).is_some_and(|r| d < r) {
                assert_eq!(
                    x.state,
                    CellState::Rejected,
                    "{api} kraken/{symbol}/{d}: {x:?}"
                );
                let reason = x.note.as_ref().map(|n| n.reason.as_str()).unwrap_or("");
                assert!(reason.starts_with("out of reach"), "{reason}");
                assert_eq!(x.price, None);
            } else {
                let flags = match c.price {
                    Some(_) => c.flags | provenance(api),
                    None => c.flags,
                };
                let price = match api {
                    ExchangeApi::Cexio => c.price.map(|p| Ohlcv { volume: 0.0, ..p }),
                    _ => c.price,
                };
                assert_eq!(
                    (x.state, x.price, x.flags),
                    (c.state, price, flags),
                    "{api}: kraken/{symbol}/{d}"
                );
                compared += 1;
            }
            d = d.succ_opt().expect("a next day");
        }
    }
    let reachable = (day(TO) - reach(api).unwrap_or(day(FROM))).num_days() + 1;
    assert_eq!(
        compared,
        3 * reachable,
        "{api}: every reachable cell compared"
    );
    assert!(compared > 200, "{api}: only {compared} cells compared");
}

#[actix_rt::test]
async fn a_round_through_each_dialect_gives_the_classic_servers_cells() {
    let clock = Clock::manual(now());
    let data = dataset();
    let classic = server(ExchangeApi::Classic, &data, &clock, |_| {});
    let (counts, reference) = round(config(&classic), &clock).await;
    assert_eq!(counts.failed, 0, "{counts:?}");
    let today = reference
        .get(&kraken(), &symbols()[0], day("2020-06-15"))
        .unwrap();
    assert_eq!(
        today.state,
        CellState::Provisional,
        "today's candle is open"
    );
    let tomorrow = reference.get(&kraken(), &symbols()[0], day(TO)).unwrap();
    assert_eq!(
        (tomorrow.state, tomorrow.price),
        (CellState::Provisional, None),
        "no candle yet for tomorrow"
    );
    for api in ExchangeApi::EXCHANGES {
        let dialect = server(api, &data, &clock, |_| {});
        let (counts, store) = round(through(config(&classic), api, &dialect, 200.0), &clock).await;
        let requests = dialect.stats.candle_requests();
        let cells = counts.tasks;
        println!(
            "{api}: {counts}; {requests} requests for {cells} cells ({:.4} per cell)",
            requests as f64 / cells as f64
        );
        assert_eq!(counts.failed, 0, "{api}: {counts:?}");
        assert_same_cells(api, &reference, &store);
        let open = store
            .get(&kraken(), &symbols()[0], day("2020-06-15"))
            .expect("today's cell");
        let partial = match api {
            ExchangeApi::Cexio => today.price.map(|p| Ohlcv { volume: 0.0, ..p }),
            _ => today.price,
        };
        assert_eq!(
            (open.state, open.price),
            (CellState::Provisional, partial),
            "{api}: today's candle is provisional and partial"
        );
        assert!(open.price.is_some(), "{api}: today has a partial candle");
        // A request per page: the days reachable, cut into the exchange's pages.
        let reachable = (day(TO) - reach(api).unwrap_or(day(FROM))).num_days() as u64 + 1;
        let page = pricegrid::source::exchanges::adapter(api)
            .expect("an adapter")
            .page_days() as u64;
        assert_eq!(
            requests,
            3 * reachable.div_ceil(page),
            "{api}: one request per page of {page} days"
        );
        dialect.stop().await;
    }
    classic.stop().await;
}

#[actix_rt::test]
async fn a_second_round_asks_only_for_the_days_not_yet_final() {
    let clock = Clock::manual(now());
    let data = dataset();
    let classic = server(ExchangeApi::Classic, &data, &clock, |_| {});
    let dialect = server(ExchangeApi::Coinbase, &data, &clock, |_| {});
    let config = through(config(&classic), ExchangeApi::Coinbase, &dialect, 200.0);
    let (source, pipeline) = start(config, &clock);
    let first = run_round(&pipeline).await;
    let before = dialect.stats.candle_requests();
    let second = run_round(&pipeline).await;
    let asked = dialect.stats.candle_requests() - before;
    println!("first {first}, second {second} in {asked} requests");
    // Only today's open candle and tomorrow's "none" are provisional; every
    // day closed 12 h ago or more is final and not asked again.
    assert_eq!(second.tasks, 6, "{second}");
    assert_eq!(second.provisional, 6, "{second}");
    assert_eq!(asked, 3, "one page per symbol for the open days");
    pipeline.stop().await;
    source.stop().await;
}

#[actix_rt::test]
async fn throttling_pauses_the_exchange_and_no_cell_fails() {
    let clock = Clock::manual(now());
    let data = dataset();
    let classic = server(ExchangeApi::Classic, &data, &clock, |_| {});
    let (_, reference) = round(config(&classic), &clock).await;
    // OKX, Poloniex and HitBTC answer 429 with Retry-After; Kraken its own
    // 200 "EGeneral:Too many requests", without one. Poloniex and HitBTC
    // need only 6 and 3 requests: a bucket of one token throttles them.
    // Kraken's listing and 3 pages against a bucket of 4 were sometimes
    // never throttled; a bucket of 2 always is, and one pause (doubling
    // from 1 s, without Retry-After) refills it for the rest, where a bucket
    // of 1 throttles again after each pause.
    for (api, rate) in [
        (ExchangeApi::Okx, 4.0),
        (ExchangeApi::Kraken, 2.0),
        (ExchangeApi::Poloniex, 1.0),
        (ExchangeApi::Hitbtc, 1.0),
        (ExchangeApi::Htx, 1.0),
        (ExchangeApi::Cexio, 1.0),
    ] {
        let dialect = server(api, &data, &clock, |o| o.rate_limit = Some(rate));
        let (counts, store) = round(through(config(&classic), api, &dialect, 100.0), &clock).await;
        let throttled = dialect.stats.throttled();
        println!("{api}: {counts}; throttled {throttled} times");
        assert!(throttled > 0, "{api}: the server's limit was never hit");
        assert_eq!(counts.failed, 0, "{api}: {counts:?}");
        assert_same_cells(api, &reference, &store);
        dialect.stop().await;
    }
}

#[actix_rt::test]
async fn a_binance_ban_pauses_binance_until_it_ends() {
    let clock = Clock::manual(now());
    let data = dataset();
    let classic = server(ExchangeApi::Classic, &data, &clock, |_| {});
    let (_, reference) = round(config(&classic), &clock).await;
    let dialect = server(ExchangeApi::Binance, &data, &clock, |o| {
        o.rate_limit = Some(1.0);
        o.ban_after = Some(1);
        o.ban_for = Duration::from_secs(2);
    });
    let (counts, store) = round(
        through(config(&classic), ExchangeApi::Binance, &dialect, 100.0),
        &clock,
    )
    .await;
    println!("binance: {counts}; throttled {}", dialect.stats.throttled());
    assert!(dialect.stats.throttled() > 0);
    assert_eq!(counts.failed, 0, "{counts:?}");
    assert_same_cells(ExchangeApi::Binance, &reference, &store);
}

#[actix_rt::test]
async fn a_market_the_exchange_does_not_know_fails_its_cells_saying_so() {
    let clock = Clock::manual(now());
    let data = dataset();
    let classic = server(ExchangeApi::Classic, &data, &clock, |_| {});
    // Each exchange's own form, btc's market a typo.
    for (api, markets) in [
        (ExchangeApi::Kraken, ["XBTUSDX", "ETHUSD", "LTCUSD"]),
        (ExchangeApi::Bitfinex, ["XBTUSD", "ETHUSD", "LTCUSD"]),
        (ExchangeApi::Poloniex, ["XBT_USDT", "ETH_USDT", "LTC_USDT"]),
        (ExchangeApi::Hitbtc, ["XBTUSDT", "ETHUSDT", "LTCUSDT"]),
        (ExchangeApi::Htx, ["xbtusdt", "ethusdt", "ltcusdt"]),
        (ExchangeApi::Cexio, ["XBT-USD", "ETH-USD", "LTC-USD"]),
    ] {
        let dialect = server(api, &data, &clock, |_| {});
        let mut config = through(config(&classic), api, &dialect, 200.0);
        let table = config.exchanges.get_mut(&kraken()).unwrap();
        table.markets = symbols()
            .into_iter()
            .zip(markets.map(str::to_owned))
            .collect();
        let (counts, store) = round(config, &clock).await;
        println!("{api}: {counts}");
        let btc = store
            .get(&kraken(), &symbols()[0], day("2020-06-10"))
            .unwrap();
        assert_eq!(btc.state, CellState::Failed, "{api}");
        let reason = btc.note.map(|n| n.reason).unwrap_or_default();
        assert!(reason.starts_with("unknown market"), "{api}: {reason}");
        assert!(reason.contains(markets[0]), "{api}: {reason}");
        let eth = store
            .get(&kraken(), &symbols()[1], day("2020-06-10"))
            .unwrap();
        assert_eq!(eth.state, CellState::Final, "{api}");
        let want = format!("market={}", markets[1]);
        assert!(
            eth.source.as_deref().is_some_and(|s| s.ends_with(&want)),
            "{api}: {:?}",
            eth.source
        );
        dialect.stop().await;
    }
}

// ------------------------------------------- symbols = "all": the listings

/// Binance and Kraken over June 2020 with btc, eth, ltc and 200 more
/// symbols (`c001`…`c200`): each dialect lists all 203 (Binance in USDT,
/// Kraken in USD).
fn wide_dataset() -> Arc<Dataset> {
    let mut spec = GeneratedSpec::classic(server::DEFAULT_SEED);
    spec.exchanges = ["binance", "kraken"]
        .iter()
        .map(|e| Exchange::new(e).expect("a valid name"))
        .collect();
    spec.symbols = symbols();
    spec.symbols
        .extend((1..=200).map(|i| Symbol::new(&format!("c{i:03}")).expect("a valid name")));
    spec.from = day("2020-06-01");
    spec.to = day("2020-06-30");
    Arc::new(Dataset::generated(spec))
}

/// Binance's and Kraken's dialects over `wide_dataset`, each serving the
/// exchange of its name, and a classic server for `[source]`.
fn wide_servers(clock: &Clock) -> [PriceServer; 3] {
    let data = wide_dataset();
    let own = |name: &str| {
        let name = Exchange::new(name).expect("a valid name");
        move |o: &mut ServerOptions| o.exchange = Some(name)
    };
    [
        server(ExchangeApi::Classic, &data, clock, |_| {}),
        server(ExchangeApi::Binance, &data, clock, own("binance")),
        server(ExchangeApi::Kraken, &data, clock, own("kraken")),
    ]
}

/// Every symbol of binance and kraken (asked through their dialects) in
/// `quotes` each, over 2020-06-10..=12.
fn every_symbol_of(
    servers: &[PriceServer; 3],
    binance_quotes: &[&str],
    kraken_quotes: &[&str],
) -> TestConfig {
    let [classic, binance, kraken] = servers;
    TestConfig::fetching_from(&classic.url())
        .exchanges(["binance", "kraken"])
        .every_symbol()
        .window("2020-06-10", "2020-06-12")
        .settle_after(2 * HOUR)
        .quick_backoff()
        .exchange_api("binance", ExchangeApi::Binance, &binance.url(), 1000.0)
        .exchange_api("kraken", ExchangeApi::Kraken, &kraken.url(), 1000.0)
        .quotes("binance", binance_quotes)
        .quotes("kraken", kraken_quotes)
}

#[actix_rt::test]
async fn symbols_all_asks_exactly_the_markets_listed_in_the_exchanges_quotes() {
    let clock = Clock::manual(now());
    let servers = wide_servers(&clock);
    // Binance lists every symbol in USDT, Kraken none: Kraken has nothing
    // to ask, and is not asked for prices.
    let config = every_symbol_of(&servers, &["USDT"], &["USDT"]).build();
    config.check_at(day("2020-06-15")).expect("a valid config");
    let (counts, store) = round(config, &clock).await;
    assert_eq!(counts.failed, 0, "{counts}");
    let binance = Exchange::new("binance").expect("a valid name");
    let mut cells = 0;
    for (exchange, symbol, d, cell) in store.iter() {
        assert_eq!(exchange, &binance, "{exchange}/{symbol}/{d}");
        let want = format!("market={}USDT", symbol.as_str().to_ascii_uppercase());
        assert!(
            cell.source.as_deref().is_some_and(|s| s.ends_with(&want)),
            "{symbol}/{d}: asked in {:?}",
            cell.source
        );
        cells += 1;
    }
    assert_eq!(cells, 203 * 3, "every listed USDT market, every day");
    assert_eq!(
        store.symbols().len(),
        203,
        "the page's picker lists them all"
    );
    assert_eq!(
        servers[2].stats.price_requests(),
        0,
        "kraken: no candle asked"
    );
    assert_eq!(
        servers[0].stats.price_requests(),
        0,
        "[source]: no price asked"
    );

    // In Kraken's own quote, its 203 symbols are asked too, btc as XBTUSD.
    let config = every_symbol_of(&servers, &["USDT"], &["USDT", "USD"]).build();
    let (counts, store) = round(config, &clock).await;
    assert_eq!(counts.failed, 0, "{counts}");
    assert_eq!(store.len(), 2 * 203 * 3);
    let btc = store
        .get(&kraken(), &symbols()[0], day("2020-06-11"))
        .expect("a kraken btc cell");
    assert!(
        btc.source
            .as_deref()
            .is_some_and(|s| s.ends_with("market=XBTUSD")),
        "{:?}",
        btc.source
    );
    for s in servers {
        s.stop().await;
    }
}

#[actix_rt::test]
async fn a_listing_too_large_for_max_tasks_is_refused_naming_its_sizes() {
    let clock = Clock::manual(now());
    let servers = wide_servers(&clock);
    let config = every_symbol_of(&servers, &DEFAULT_QUOTES, &DEFAULT_QUOTES)
        .max_tasks(1000)
        .build();
    let (source, pipeline) = start(config, &clock);
    let refused =
        actix_rt::time::timeout(Duration::from_secs(60), pipeline.producer.send(RunRound))
            .await
            .expect("the round ends in time")
            .expect("the producer answers")
            .expect_err("406 markets x 3 days is over 1000 tasks");
    assert_eq!(
        refused.to_string(),
        "the universe is too large: 406 markets (2 exchanges, 203 symbols) x 3 days = 1218 tasks, \
         more than universe.max_tasks (1000)"
    );
    let store = pipeline
        .aggregator
        .send(GetStore)
        .await
        .expect("the aggregator answers");
    assert!(store.is_empty(), "nothing asked");
    let asked: u64 = servers.iter().map(|s| s.stats.price_requests()).sum();
    assert_eq!(asked, 0, "no price asked");
    pipeline.stop().await;
    source.stop().await;
    for s in servers {
        s.stop().await;
    }
}
