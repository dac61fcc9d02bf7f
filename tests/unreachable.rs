//! `pricegrid fetch` when exchanges cannot be reached, all on loopback: a
//! port that refuses (bound, then freed) and an HTTPS server whose
//! certificate pricegrid does not trust. Each such exchange is said once,
//! naming it, its host and the cause; its cells fail at once instead of
//! being retried for `fetch.retry_for`; and the exit code tells a script
//! what happened: 0 every task answered, 1 nothing reachable, 3 some
//! cells failed. (DNS failures are classified in `source`'s unit tests: no
//! test resolves a real name.)

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use pricegrid::model::ExchangeApi;
use url::Url;

/// Far longer than the round may take, so a retry loop would show.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// What `fetch` must end within when nothing is reachable.
const FAIL_FAST: Duration = Duration::from_secs(10);

/// A loopback HTTPS server with a certificate no one trusts (its CA is
/// made here and given to nobody).
async fn untrusted_https() -> Url {
    let tls = Arc::new(server_tls(&pki()));
    raw_tls_server(tls, |_| {
        Script::send(
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"[..],
            Then::Close,
        )
    })
    .await
}

/// `config` over three years of btc (several pages for each exchange).
fn base() -> TestConfig {
    TestConfig::new()
        .symbols(["btc"])
        .window("2018-01-01", "2020-12-31")
        .retry_for(RETRY_FOR)
        .quick_backoff()
}

/// Runs `pricegrid fetch --config <config>` in `dir`, its log at info, on
/// a blocking thread (the test's servers keep running).
async fn fetch(dir: &Path, config: &TestConfig) -> (i32, String, Duration) {
    let path = config.write(&dir.join("pricegrid.toml"));
    let out = dir.join("fetch.json");
    let started = Instant::now();
    let dir = dir.to_owned();
    let (code, _, stderr) = actix_rt::task::spawn_blocking(move || {
        pricegrid_in(
            Some(&dir),
            &[
                &"fetch",
                &"--config",
                &path,
                &"--output",
                &out,
                &"--no-progress",
            ],
        )
    })
    .await
    .expect("the fetch thread");
    (code, stderr, started.elapsed())
}

fn error_lines<'a>(stderr: &'a str, exchange: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains(exchange))
        .collect()
}

#[actix_rt::test]
async fn nothing_reachable_ends_at_once_with_exit_1_and_one_line_per_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let refused = nothing_listens();
    let untrusted = untrusted_https().await;
    // Kraken's days are all beyond its reach: rejected without a request,
    // they tell nothing of whether it can be reached (as with the live
    // example config, where Kraken's and HTX's older days are so).
    let config = base()
        .exchanges(["binance", "coinbase-pro", "kraken"])
        .exchange_api("binance", ExchangeApi::Binance, &refused, 100.0)
        .market("binance", "btc", "BTCUSDT")
        .exchange_api("coinbase-pro", ExchangeApi::Coinbase, &untrusted, 100.0)
        .market("coinbase-pro", "btc", "BTC-USD")
        .exchange_api("kraken", ExchangeApi::Kraken, &refused, 100.0)
        .market("kraken", "btc", "XBTUSD");
    let (code, stderr, took) = fetch(dir.path(), &config).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(took < FAIL_FAST, "took {took:?}: {stderr}");
    let binance = error_lines(&stderr, "binance");
    assert_eq!(binance.len(), 1, "{stderr}");
    let host = format!(
        "{}:{}",
        refused.host_str().unwrap(),
        refused.port().unwrap()
    );
    assert!(
        binance[0].contains(&host) && binance[0].contains("connection refused"),
        "{}",
        binance[0]
    );
    let coinbase = error_lines(&stderr, "coinbase-pro");
    assert_eq!(coinbase.len(), 1, "{stderr}");
    let host = format!(
        "{}:{}",
        untrusted.host_str().unwrap(),
        untrusted.port().unwrap()
    );
    assert!(
        coinbase[0].contains(&host) && coinbase[0].contains("TLS failure"),
        "{}",
        coinbase[0]
    );
    assert!(
        !stderr.contains("listening on http://"),
        "nothing uses [source]: its built-in server stays off: {stderr}"
    );
}

#[actix_rt::test]
async fn a_round_with_some_cells_failed_exits_3_and_a_whole_one_0() {
    let dir = tempfile::tempdir().unwrap();
    let good = base()
        .window("2020-03-01", "2020-03-31")
        .exchanges(["bitstamp"])
        .exchange_api_builtin("bitstamp", ExchangeApi::Bitstamp);
    let (code, stderr, _) = fetch(dir.path(), &good).await;
    assert_eq!(code, 0, "{stderr}");
    let partly = base()
        .window("2020-03-01", "2020-03-31")
        .exchanges(["bitstamp", "binance"])
        .exchange_api_builtin("bitstamp", ExchangeApi::Bitstamp)
        .exchange_api("binance", ExchangeApi::Binance, &nothing_listens(), 100.0)
        .market("binance", "btc", "BTCUSDT");
    let (code, stderr, took) = fetch(dir.path(), &partly).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(took < FAIL_FAST, "took {took:?}: {stderr}");
    assert!(stderr.contains("cells failed"), "{stderr}");
}

/// The round that found the source refusing fails its cells at once; the
/// next round asks again, and once the server is up it answers them all.
#[actix_rt::test]
async fn the_round_after_an_unreachable_one_tries_again() {
    use pricegrid::actors::producer::RunRound;
    use pricegrid::actors::Pipeline;

    let url = nothing_listens();
    let config = TestConfig::fetching_from(&url)
        .exchanges(["kraken", "bitstamp"])
        .symbols(["btc", "eth"])
        .window("2020-03-01", "2020-03-10")
        .retry_for(RETRY_FOR)
        .quick_backoff()
        .build();
    let pipeline = Pipeline::start(arc(config), url.clone());
    let round = |p: &Pipeline| {
        let send = p.producer.send(RunRound);
        async move {
            actix_rt::time::timeout(FAIL_FAST, send)
                .await
                .expect("the round ends within 10 s")
                .expect("the producer answers")
                .expect("the round runs")
        }
    };
    let first = round(&pipeline).await.counts;
    assert_eq!((first.tasks, first.failed), (40, 40), "{first:?}");
    let port = url.port().expect("a port");
    let server = spawn_price_server(|o| o.listen.set_port(port));
    let second = round(&pipeline).await.counts;
    assert_eq!(second.failed, 0, "{second:?}");
    assert_eq!(second.done(), second.tasks, "{second:?}");
    pipeline.stop().await;
    server.stop().await;
}
