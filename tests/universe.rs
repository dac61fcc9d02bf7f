//! The built-in server's synthetic universe (`serve --exchanges N --markets N
//! --days N`, `ServerOptions::synthetic`): its listings list every market,
//! it serves a candle for every cell without holding any, and a real round
//! through the actors ends with every cell final at the generated prices,
//! after which nothing is due and no round runs.

mod common;

use std::time::Duration;

use common::*;
use pricegrid::actors::aggregator::GetStore;
use pricegrid::actors::producer::{RoundError, RunRound};
use pricegrid::actors::{Pipeline, PipelineOptions};
use pricegrid::config::Config;
use pricegrid::model::{CellState, ExchangeApi};
use pricegrid::origin::Source;
use pricegrid::server::{self, PriceServer, ServerOptions, Synthetic};

const LIMIT: Duration = Duration::from_secs(60);

fn synthetic(
    dialect: ExchangeApi,
    exchanges: Option<usize>,
    markets: usize,
    days: u32,
) -> PriceServer {
    let opts = ServerOptions::synthetic(
        loopback(),
        server::DEFAULT_SEED,
        dialect,
        Synthetic {
            exchanges,
            markets,
            days,
        },
    );
    server::start(&opts).expect("the synthetic server starts")
}

async fn get(server: &PriceServer, target: &str) -> RawResponse {
    RawRequest::get(server.addr, target).send(server.addr).await
}

#[actix_rt::test]
async fn the_classic_listings_name_every_exchange_and_market_of_20m_cells() {
    let server = synthetic(ExchangeApi::Classic, Some(20), 1000, 1000);
    let exchanges = get(&server, "/exchanges").await.json();
    let symbols = get(&server, "/symbols").await.json();
    assert_eq!(exchanges.as_array().map(Vec::len), Some(20), "{exchanges}");
    assert_eq!(symbols.as_array().map(Vec::len), Some(1000));
    assert_eq!(
        (exchanges[0].as_str(), exchanges[19].as_str()),
        (Some("ex-0001"), Some("ex-0020"))
    );
    assert_eq!(
        (symbols[0].as_str(), symbols[999].as_str()),
        (Some("s0001"), Some("s1000"))
    );
    // The far corner of the universe has a candle; the day after it none.
    let last = get(&server, "/price/ex-0020/s1000/2022-09-26").await;
    assert_eq!(last.status, 200, "{}", last.body);
    let expected = server
        .dataset
        .price_of(
            &"ex-0020".parse().unwrap(),
            &"s1000".parse().unwrap(),
            day("2022-09-26"),
        )
        .expect("a price");
    assert_eq!(last.json()["close"].as_f64(), Some(expected.close));
    assert_eq!(
        get(&server, "/price/ex-0020/s1000/2022-09-27").await.status,
        404
    );
    server.stop().await;
}

#[actix_rt::test]
async fn binance_s_exchange_info_lists_a_thousand_synthetic_markets_and_serves_their_klines() {
    let server = synthetic(ExchangeApi::Binance, None, 1000, 1000);
    let info = get(&server, "/api/v3/exchangeInfo").await.json();
    let markets = info["symbols"].as_array().expect("a list of markets");
    assert_eq!(markets.len(), 1000);
    assert_eq!(markets[999]["symbol"], "S1000USDT");
    // 2020-01-01 00:00 UTC, a page of Binance's maximum: the universe's
    // 1000 days.
    let page = get(
        &server,
        "/api/v3/klines?symbol=S1000USDT&interval=1d&startTime=1577836800000&limit=1000",
    )
    .await
    .json();
    let rows = page.as_array().expect("klines");
    assert_eq!(rows.len(), 1000);
    for row in rows {
        let n = |i: usize| row[i].as_str().unwrap().parse::<f64>().unwrap();
        let (open, high, low, close, volume) = (n(1), n(2), n(3), n(4), n(5));
        assert!(
            low <= open.min(close) && open.max(close) <= high && volume >= 0.0,
            "{row}"
        );
    }
    server.stop().await;
}

/// Runs a round; its summary, or why none ran.
async fn run_round(pipeline: &Pipeline) -> Result<pricegrid::model::RoundSummary, RoundError> {
    within(LIMIT, pipeline.producer.send(RunRound))
        .await
        .expect("the producer answers")
}

/// A round of `config` fetches every cell of 3 x 20 x 30 final at the
/// generated prices; a second finds nothing due and asks for nothing.
async fn every_cell_final(config: Config, server: &PriceServer, cells: u64) {
    let pipeline = Pipeline::start(arc(config), server.url());
    let summary = run_round(&pipeline).await.expect("the round runs");
    let c = summary.counts;
    assert_eq!((c.tasks, c.finals), (cells, cells), "{c:?}");
    let store = within(LIMIT, pipeline.aggregator.send(GetStore))
        .await
        .unwrap();
    assert_eq!(store.count(CellState::Final) as u64, cells);
    assert_answers_match(&store, &server.dataset);

    let asked = server.stats.price_requests();
    let again = run_round(&pipeline).await;
    assert!(
        matches!(again, Err(RoundError::NothingDue { keys, .. }) if keys == u128::from(cells)),
        "{again:?}"
    );
    assert_eq!(server.stats.price_requests(), asked, "nothing asked again");
    within(LIMIT, pipeline.stop()).await;
}

#[actix_rt::test]
async fn a_round_over_a_synthetic_classic_universe_ends_with_every_cell_final() {
    let server = synthetic(ExchangeApi::Classic, Some(3), 20, 30);
    let config = TestConfig::fetching_from(&server.url())
        .every_exchange()
        .every_symbol()
        .window("2020-01-01", "2020-01-30")
        .workers(8)
        .build();
    every_cell_final(config, &server, 3 * 20 * 30).await;
    server.stop().await;
}

#[actix_rt::test]
async fn a_round_over_a_synthetic_binance_listing_ends_with_every_cell_final() {
    let classic = spawn_price_server(|_| {});
    let binance = synthetic(ExchangeApi::Binance, None, 20, 30);
    let config = TestConfig::fetching_from(&classic.url())
        .exchanges(["binance"])
        .every_symbol()
        .window("2020-01-01", "2020-01-30")
        .exchange_api("binance", ExchangeApi::Binance, &binance.url(), 1000.0)
        .build();
    let source = Source::start(&config).expect("the source starts");
    let pipeline = Pipeline::start_with(
        arc(config),
        source.url.clone(),
        PipelineOptions::from_source(&source),
    );
    let summary = run_round(&pipeline).await.expect("the round runs");
    assert_eq!(
        (summary.counts.tasks, summary.counts.finals),
        (600, 600),
        "{summary:?}"
    );
    let store = within(LIMIT, pipeline.aggregator.send(GetStore))
        .await
        .unwrap();
    assert_answers_match(&store, &binance.dataset);
    assert!(matches!(
        run_round(&pipeline).await,
        Err(RoundError::NothingDue { keys: 600, .. })
    ));
    within(LIMIT, pipeline.stop()).await;
    source.stop().await;
    binance.stop().await;
    classic.stop().await;
}

/// What a tick resolves (each pair's market) is kept between ticks, but not
/// when a listing could not be read: the next tick reads it again, and its
/// markets are asked.
#[actix_rt::test]
async fn a_listing_that_could_not_be_read_is_read_again_at_the_next_tick() {
    let classic = spawn_price_server(|_| {});
    // A port nothing listens on yet; the exchange's server starts there later.
    let addr = std::net::TcpListener::bind(loopback())
        .and_then(|l| l.local_addr())
        .expect("a free loopback port");
    let url: url::Url = format!("http://{addr}/").parse().expect("a URL");
    let config = TestConfig::fetching_from(&classic.url())
        .exchanges(["binance"])
        .every_symbol()
        .window("2020-01-01", "2020-01-30")
        .exchange_api("binance", ExchangeApi::Binance, &url, 1000.0)
        .build();
    let source = Source::start(&config).expect("the source starts");
    let pipeline = Pipeline::start_with(
        arc(config),
        source.url.clone(),
        PipelineOptions::from_source(&source),
    );
    assert!(
        matches!(
            run_round(&pipeline).await,
            Err(RoundError::NothingDue { keys: 0, .. })
        ),
        "no listing, no symbol"
    );
    let opts = ServerOptions::synthetic(
        addr,
        server::DEFAULT_SEED,
        ExchangeApi::Binance,
        Synthetic {
            exchanges: None,
            markets: 20,
            days: 30,
        },
    );
    let binance = server::start(&opts).expect("the exchange's server starts on its port");
    let summary = run_round(&pipeline).await.expect("the round runs");
    assert_eq!(
        (summary.counts.tasks, summary.counts.finals),
        (600, 600),
        "{summary:?}"
    );
    // Now kept: the next tick judges the same 600 keys, all settled.
    let asked = binance.stats.price_requests();
    assert!(matches!(
        run_round(&pipeline).await,
        Err(RoundError::NothingDue { keys: 600, .. })
    ));
    assert_eq!(binance.stats.price_requests(), asked);
    within(LIMIT, pipeline.stop()).await;
    source.stop().await;
    binance.stop().await;
    classic.stop().await;
}
