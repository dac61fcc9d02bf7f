//! Every cell tells the truth about the answer it got: a cut-off or stalled
//! answer is a retryable failure, never "no price"; servers that speak
//! HTTP/1.0 or close their connections serve a whole round; a typo'd
//! exchange or an HTML 404 fails loudly and is asked again; a sloppy
//! listing is cleaned; and stalled bodies cost at most `source.timeout`
//! each, never a fetcher.
//!
//! Servers here are either small raw TCP servers on 127.0.0.1 that write
//! exact bytes (`raw_server`, one script per request), an actix-web App
//! defined in the test, or the built-in server.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use chrono::NaiveDate;
use common::*;
use pricegrid::actors::aggregator::GetStore;
use pricegrid::actors::producer::RunRound;
use pricegrid::actors::supervisor::GetStats;
use pricegrid::actors::Pipeline;
use pricegrid::actors::{Reconfigure, SourceRef};
use pricegrid::commands::fetch::fetch_round;
use pricegrid::config::{Config, OhlcOrder};
use pricegrid::model::{CellState, Exchange, Symbol, TaskKey};
use pricegrid::origin::Source;
use pricegrid::server::{Dataset, GeneratedSpec, Lookup, DEFAULT_SEED};
use pricegrid::source::{Answer, ClientLimits, PriceClient};
use pricegrid::store::Store;
use pricegrid::wire::{ErrorBody, PriceBody, NO_PRICE, UNKNOWN_EXCHANGE, UNKNOWN_SYMBOL};
use url::Url;

/// Every test ends within this, whatever a server does.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Answers written byte for byte by a raw server (`common::raw_server`).

/// How a raw server frames a complete answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    /// `HTTP/1.0` with a Content-Length, connection closed 50 ms after the
    /// answer (as Python's `http.server` does).
    Http10Closing,
    /// `HTTP/1.1` with `Connection: close`, closed 50 ms after the answer.
    Http11Closing,
    /// Plain `HTTP/1.1`, the connection kept for the next request.
    Http11KeepAlive,
}

/// How long a closing server keeps the connection after answering.
const CLOSE_AFTER: Duration = Duration::from_millis(50);

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Whatever",
    }
}

/// A complete answer in `dialect`.
fn framed(dialect: Dialect, status: u16, content_type: &str, body: &[u8]) -> Script {
    let (version, connection) = match dialect {
        Dialect::Http10Closing => ("HTTP/1.0", ""),
        Dialect::Http11Closing => ("HTTP/1.1", "Connection: close\r\n"),
        Dialect::Http11KeepAlive => ("HTTP/1.1", ""),
    };
    let mut bytes = format!(
        "{version} {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{connection}\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    match dialect {
        Dialect::Http11KeepAlive => Script::send(bytes, Then::ReadNext),
        _ => Script {
            steps: vec![Step::Send(bytes), Step::Wait(CLOSE_AFTER)],
            then: Then::Close,
        },
    }
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

/// What the classic API answers for `path` from `ds`: (status, JSON body).
fn dataset_answer(ds: &Dataset, path: &str) -> (u16, Vec<u8>) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["exchanges"] => (200, json(ds.exchanges())),
        ["symbols"] => (200, json(ds.symbols())),
        ["price", exchange, symbol, date] => {
            let Ok(d) = NaiveDate::parse_from_str(date, "%Y-%m-%d") else {
                return (400, json(&ErrorBody::new("bad date")));
            };
            match ds.lookup(exchange, symbol, d) {
                Lookup::Price(p) => (
                    200,
                    json(&PriceBody::new(exchange, symbol, &p, d.to_string())),
                ),
                Lookup::NoPrice => (404, json(&ErrorBody::new(NO_PRICE))),
                Lookup::UnknownExchange => (404, json(&ErrorBody::new(UNKNOWN_EXCHANGE))),
                Lookup::UnknownSymbol => (404, json(&ErrorBody::new(UNKNOWN_SYMBOL))),
            }
        }
        _ => (404, json(&ErrorBody::new("no such route"))),
    }
}

/// A raw server answering the classic API from `ds` in `dialect`.
async fn dataset_server(ds: Arc<Dataset>, dialect: Dialect) -> Url {
    raw_server(move |path| {
        let (status, body) = dataset_answer(&ds, path);
        framed(dialect, status, "application/json", &body)
    })
    .await
}

// ---------------------------------------------------------------------------
// Shared fixtures.

fn names<T: std::str::FromStr>(raw: &[&str]) -> Vec<T>
where
    T::Err: std::fmt::Debug,
{
    raw.iter().map(|n| n.parse().unwrap()).collect()
}

/// The classic generated prices, on `exchanges` and `symbols` only.
fn dataset(exchanges: &[&str], symbols: &[&str]) -> Arc<Dataset> {
    Arc::new(Dataset::generated(GeneratedSpec {
        exchanges: names(exchanges),
        symbols: names(symbols),
        ..GeneratedSpec::classic(DEFAULT_SEED)
    }))
}

/// A config fetching `from..=to` from `url` with 4 workers and small
/// backoffs; the universe is whatever the source lists.
fn config_for(url: &Url, from: &str, to: &str) -> TestConfig {
    TestConfig::fetching_from(url)
        .window(from, to)
        .workers(4)
        .quick_backoff()
}

fn checked(c: TestConfig) -> Arc<Config> {
    arc(c.build())
}

/// Every key of `exchanges` x `symbols` x `from..=to`.
fn keys(exchanges: &[Exchange], symbols: &[Symbol], from: &str, to: &str) -> Vec<TaskKey> {
    let mut out = Vec::new();
    for d in day(from).iter_days().take_while(|d| *d <= day(to)) {
        for exchange in exchanges {
            for symbol in symbols {
                out.push(TaskKey {
                    exchange: exchange.clone(),
                    symbol: symbol.clone(),
                    day: d,
                });
            }
        }
    }
    out
}

/// Asserts that `store` holds exactly `ds`'s answer for every key of
/// `keys`, and nothing else.
fn assert_holds_exactly(store: &Store, ds: &Dataset, keys: &[TaskKey]) {
    for k in keys {
        let got = store
            .answer(&k.exchange, &k.symbol, k.day)
            .unwrap_or_else(|| {
                panic!(
                    "{k}: no answer, cell {:?}",
                    store.get(&k.exchange, &k.symbol, k.day)
                )
            });
        assert_eq!(got, ds.price_of(&k.exchange, &k.symbol, k.day), "{k}");
    }
    assert_eq!(store.len(), keys.len(), "cells outside the universe");
}

// ---------------------------------------------------------------------------
// 1. Cut-off and stalled answers.

fn eth_on_kraken() -> TaskKey {
    TaskKey {
        exchange: Exchange::new("kraken").unwrap(),
        symbol: Symbol::new("eth").unwrap(),
        day: day("2020-03-13"),
    }
}

fn limits(timeout: Duration) -> ClientLimits {
    ClientLimits {
        timeout,
        max_body: 64 * 1024,
        connections: 1,
        ohlc_order: OhlcOrder::Flag,
        user_agent: None,
    }
}

#[actix_rt::test]
async fn a_cut_off_answer_is_a_retryable_failure_never_no_price() {
    within(TEST_DEADLINE, async {
        let head = |status: &str, framing: &str| {
            format!("HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n")
                .into_bytes()
        };
        let length = "Content-Length: 134";
        let with_part = |mut bytes: Vec<u8>, part: &[u8]| {
            bytes.extend_from_slice(part);
            bytes
        };
        // The first 20 of a price body's 134 bytes.
        let start_of_price = br#"{"exchange": "kraken"#;
        assert_eq!(start_of_price.len(), 20);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("200, no body at all", head("200 OK", length)),
            (
                "200, 20 bytes of the body",
                with_part(head("200 OK", length), start_of_price),
            ),
            (
                "200 chunked, closed before its first chunk",
                head("200 OK", "Transfer-Encoding: chunked"),
            ),
            (
                "404, 10 of 50 bytes",
                with_part(
                    head("404 Not Found", "Content-Length: 50"),
                    br#"{"error": "#,
                ),
            ),
        ];
        for (what, bytes) in cases {
            let url = raw_server(move |_| Script::send(bytes.clone(), Then::Close)).await;
            let client = PriceClient::new(&url, &limits(Duration::from_secs(2)));
            let got = client.price(&eth_on_kraken()).await;
            println!("{what}: {got:?}");
            match got {
                Err(failure) => {
                    assert!(failure.retryable, "{what}: {failure:?} is not retryable");
                    assert!(
                        failure.reason.contains("cut off"),
                        "{what}: the reason {:?} does not say the body was cut off",
                        failure.reason
                    );
                }
                Ok(Answer::NoPrice) => panic!("{what}: recorded as \"no price\""),
                Ok(other) => panic!("{what}: taken as an answer: {other:?}"),
            }
        }
    })
    .await;
}

/// The price the classic API serves for kraken/eth/2020-03-13, as bytes.
const ETH_PRICE: &[u8] = br#"{"exchange":"kraken","symbol":"eth","open":195.24,"high":195.24,"low":102,"close":107.97,"volume":7901.27262233,"day":"2020-03-13"}"#;

#[actix_rt::test]
async fn a_body_that_runs_to_the_close_is_read_whole() {
    within(TEST_DEADLINE, async {
        // RFC 9112 §6.3 rule 8: neither Content-Length nor chunked.
        let cases = [
            (
                "HTTP/1.1 with Connection: close",
                "HTTP/1.1",
                "Connection: close\r\n",
            ),
            ("HTTP/1.1 without Connection: close", "HTTP/1.1", ""),
            ("HTTP/1.0", "HTTP/1.0", ""),
        ];
        for (what, version, connection) in cases {
            let mut bytes =
                format!("{version} 200 OK\r\nContent-Type: application/json\r\n{connection}\r\n")
                    .into_bytes();
            bytes.extend_from_slice(ETH_PRICE);
            let url = raw_server(move |_| Script::send(bytes.clone(), Then::Close)).await;
            let client = PriceClient::new(&url, &limits(Duration::from_secs(2)));
            // Twice: a connection read to its close is never reused.
            for attempt in 1..=2 {
                match client.price(&eth_on_kraken()).await {
                    Ok(Answer::Price { price, .. }) => {
                        assert_eq!(price.close, 107.97, "{what}, request {attempt}")
                    }
                    other => panic!("{what}, request {attempt}: {other:?}"),
                }
            }
        }
    })
    .await;
}

#[actix_rt::test]
async fn a_chunked_body_cut_after_some_data_is_a_retryable_failure_never_no_price() {
    within(TEST_DEADLINE, async {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let cases: [(&str, &str); 4] = [
            ("a chunk of 10 bytes that sends 4", "a\r\nnull"),
            ("no final 0 chunk", "4\r\nnull\r\n"),
            ("a final 0 chunk without the CRLF that ends the body", "4\r\nnull\r\n0\r\n"),
            ("a trailer section that never ends", "4\r\nnull\r\n0\r\nX-Checksum: 1\r\n"),
        ];
        for (what, body) in cases {
            let bytes = format!("{head}{body}").into_bytes();
            let url = raw_server(move |_| Script::send(bytes.clone(), Then::Close)).await;
            let client = PriceClient::new(&url, &limits(Duration::from_secs(2)));
            assert_cut_off(what, client.price(&eth_on_kraken()).await);
        }
    })
    .await;
}

#[actix_rt::test]
async fn an_exchange_adapter_reads_a_body_to_the_close_and_fails_a_cut_chunked_one() {
    use pricegrid::model::{DayRange, ExchangeApi};
    within(TEST_DEADLINE, async {
        let api = pricegrid::source::exchanges::adapter(ExchangeApi::Coinbase).expect("an adapter");
        let days = DayRange {
            from: day("2020-03-12"),
            to: day("2020-03-12"),
        };
        // Coinbase's candle: [time, low, high, open, close, volume].
        let candles = "[[1583971200,90,110,100.5,105.25,1000]]";
        let url = raw_server(move |path| {
            let bytes = if path.contains("/cut/") {
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n[[1583971200,90"
                    .to_owned()
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{candles}")
            };
            Script::send(bytes.into_bytes(), Then::Close)
        })
        .await;
        let client = PriceClient::new(&url, &limits(Duration::from_secs(2)));
        let page = client
            .candles(api, "ETH-USD", days)
            .await
            .expect("a page read to the close");
        match page.as_slice() {
            [one] => match &one.answer {
                Answer::Price { price, .. } => assert_eq!(price.close, 105.25),
                other => panic!("{other:?}"),
            },
            other => panic!("one day's answer, got {other:?}"),
        }
        let cut = client.candles(api, "cut/ETH-USD", days).await;
        let failure = cut.expect_err("a cut page is not an answer");
        assert!(failure.retryable, "{failure:?}");
        assert!(failure.reason.contains("cut off"), "{failure:?}");
    })
    .await;
}

/// Asserts that `got` is a retryable failure saying the body was cut off.
fn assert_cut_off(what: &str, got: pricegrid::source::FetchResult) {
    match got {
        Err(failure) => {
            assert!(failure.retryable, "{what}: {failure:?} is not retryable");
            assert!(
                failure.reason.contains("cut off"),
                "{what}: the reason {:?} does not say the body was cut off",
                failure.reason
            );
        }
        Ok(Answer::NoPrice) => panic!("{what}: recorded as \"no price\""),
        Ok(other) => panic!("{what}: taken as an answer: {other:?}"),
    }
}

#[actix_rt::test]
async fn whole_chunked_bodies_with_extensions_and_trailers_are_read_on_a_kept_connection() {
    within(TEST_DEADLINE, async {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (first, rest) = ETH_PRICE.split_at(10);
        let mut bytes = format!("{head}{:x};part=1\r\n", first.len()).into_bytes();
        bytes.extend_from_slice(first);
        bytes.extend_from_slice(format!("\r\n{:x}\r\n", rest.len()).as_bytes());
        bytes.extend_from_slice(rest);
        bytes.extend_from_slice(b"\r\n0\r\nX-Checksum: 1\r\n\r\n");
        let (url, connections) =
            raw_server_counted(move |_| Script::send(bytes.clone(), Then::ReadNext)).await;
        let client = PriceClient::new(&url, &limits(Duration::from_secs(2)));
        for _ in 0..3 {
            match client.price(&eth_on_kraken()).await {
                Ok(Answer::Price { price, .. }) => assert_eq!(price.close, 107.97),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(connections.get(), 1, "the connection is kept for the next request");
    })
    .await;
}

/// awc keeps no timer of its own: a server that never answers is given
/// up on by `source.timeout`, which names itself.
#[actix_rt::test]
async fn a_server_that_never_answers_times_out_within_source_timeout() {
    within(TEST_DEADLINE, async {
        let url = raw_server(|_| Script::send(Vec::new(), Then::Hold)).await;
        let timeout = Duration::from_millis(300);
        let client = PriceClient::new(&url, &limits(timeout));
        let started = Instant::now();
        let failure = client
            .price(&eth_on_kraken())
            .await
            .expect_err("no answer is not an answer");
        let took = started.elapsed();
        assert!(failure.retryable, "{failure:?}");
        assert!(
            failure
                .reason
                .contains("timed out after 300ms (source.timeout)"),
            "{failure:?}"
        );
        assert!(
            took >= timeout,
            "gave up after {took:?}, before the timeout"
        );
        assert!(took < Duration::from_secs(5), "took {took:?}");
    })
    .await;
}

#[actix_rt::test]
async fn a_body_that_stalls_after_its_headers_times_out_within_source_timeout() {
    within(TEST_DEADLINE, async {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 134\r\n\r\n{\"exchange\": ";
        let url = raw_server(|_| Script::send(head.to_vec(), Then::Hold)).await;
        let timeout = Duration::from_millis(300);
        let client = PriceClient::new(&url, &limits(timeout));
        let started = Instant::now();
        let got = client.price(&eth_on_kraken()).await;
        let took = started.elapsed();
        println!("stalled body: {got:?} after {took:?}");
        let failure = got.expect_err("a stalled body is not an answer");
        assert!(failure.retryable, "{failure:?}");
        assert!(failure.reason.contains("timed out"), "{failure:?}");
        assert!(took >= timeout, "gave up after {took:?}, before the timeout");
        assert!(took < Duration::from_secs(5), "took {took:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// 2. Servers that close their connections, or speak HTTP/1.0.

/// A whole round (discovery included) against a raw server speaking
/// `dialect`: 2 exchanges x 3 symbols x 5 days, each cell the dataset's
/// answer, no failure (a single attempt per task, so that no dropped
/// connection can hide behind a retry).
async fn a_round_completes_against(dialect: Dialect) {
    let ds = dataset(&["bitstamp", "kraken"], &["btc", "eth", "ltc"]);
    let url = dataset_server(ds.clone(), dialect).await;
    let config = config_for(&url, "2020-03-01", "2020-03-05").max_attempts(1);
    let report = fetch_round(checked(config), &Source::remote(url), false)
        .await
        .unwrap_or_else(|e| panic!("{dialect:?}: {e}"));
    let c = report.summary.counts;
    assert_eq!(
        report.snapshot.failed(),
        vec![],
        "{dialect:?}: failed tasks"
    );
    assert_eq!(
        (c.tasks, c.done(), c.failed),
        (30, 30, 0),
        "{dialect:?}: {c:?}"
    );
    let all = keys(ds.exchanges(), ds.symbols(), "2020-03-01", "2020-03-05");
    assert_holds_exactly(&report.snapshot.prices, &ds, &all);
}

#[actix_rt::test]
async fn an_http_1_0_server_that_closes_after_answering_serves_a_whole_round() {
    within(
        TEST_DEADLINE,
        a_round_completes_against(Dialect::Http10Closing),
    )
    .await;
}

#[actix_rt::test]
async fn an_http_1_1_server_that_says_connection_close_serves_a_whole_round() {
    within(
        TEST_DEADLINE,
        a_round_completes_against(Dialect::Http11Closing),
    )
    .await;
}

#[actix_rt::test]
async fn a_keep_alive_http_1_1_server_serves_a_whole_round() {
    within(
        TEST_DEADLINE,
        a_round_completes_against(Dialect::Http11KeepAlive),
    )
    .await;
}

// ---------------------------------------------------------------------------
// 3. A typo'd exchange.

#[actix_rt::test]
async fn a_typo_in_an_exchange_name_fails_loudly_and_is_fetched_again_once_fixed() {
    within(TEST_DEADLINE, async {
        let server = spawn_price_server(|_| {});
        let (from, to) = ("2020-03-01", "2020-03-05");
        let config = config_for(&server.url(), from, to).exchanges(["krakn"]);
        let pipeline = Pipeline::start(checked(config.clone()), server.url());

        for round in 1..=2u64 {
            let summary = pipeline.producer.send(RunRound).await.unwrap().unwrap();
            let c = summary.counts;
            assert_eq!(
                (c.tasks, c.done(), c.failed, c.none),
                (15, 15, 15, 0),
                "round {round}: every task fails, none is \"no price\": {c:?}"
            );
            assert_eq!(
                server.stats.price_requests(),
                15 * round,
                "round {round}: failed cells are asked again"
            );
            let store = pipeline.aggregator.send(GetStore).await.unwrap();
            assert_eq!(store.len(), 15);
            assert_eq!(store.count(CellState::NoPrice), 0);
            for (e, s, d, cell) in store.iter() {
                assert_eq!(cell.state, CellState::Failed, "{e}/{s}/{d}");
                let note = cell.note.expect("a failed cell says why");
                assert_eq!(note.reason, UNKNOWN_EXCHANGE, "{e}/{s}/{d}");
            }
        }

        pipeline
            .producer
            .send(Reconfigure::new(
                &Config::default(),
                checked(config.exchanges(["kraken"])),
                1,
                SourceRef::remote(server.url()),
            ))
            .await
            .unwrap();
        let fixed = pipeline.producer.send(RunRound).await.unwrap().unwrap();
        let c = fixed.counts;
        assert_eq!((c.tasks, c.done(), c.failed), (15, 15, 0), "{c:?}");
        assert!(c.finals > 0, "real prices: {c:?}");
        assert_eq!(server.stats.price_requests(), 45);
        let store = pipeline.aggregator.send(GetStore).await.unwrap();
        let kraken = keys(&names(&["kraken"]), server.dataset.symbols(), from, to);
        for k in &kraken {
            assert_eq!(
                store.answer(&k.exchange, &k.symbol, k.day),
                Some(server.dataset.price_of(&k.exchange, &k.symbol, k.day)),
                "{k}"
            );
        }
        pipeline.stop().await;
        server.stop().await;
    })
    .await;
}

// ---------------------------------------------------------------------------
// 4. A 404 that is not the source's "no price".

#[actix_rt::test]
async fn a_404_with_an_html_body_fails_naming_the_404_never_none() {
    within(TEST_DEADLINE, async {
        let ds = dataset(&["kraken"], &["btc", "eth"]);
        let listing = ds.clone();
        let url = raw_server(move |path| {
            if path.starts_with("/price/") {
                framed(
                    Dialect::Http11KeepAlive,
                    404,
                    "text/html",
                    b"<html>Not Found</html>",
                )
            } else {
                let (status, body) = dataset_answer(&listing, path);
                framed(Dialect::Http11KeepAlive, status, "application/json", &body)
            }
        })
        .await;
        let config = config_for(&url, "2020-03-01", "2020-03-03");
        let report = fetch_round(checked(config), &Source::remote(url), false)
            .await
            .unwrap();
        let c = report.summary.counts;
        assert_eq!((c.tasks, c.done(), c.failed, c.none), (6, 6, 6, 0), "{c:?}");
        let store = &report.snapshot.prices;
        assert_eq!(store.count(CellState::NoPrice), 0);
        let failed = report.snapshot.failed();
        assert_eq!(failed.len(), 6);
        for f in &failed {
            assert!(
                f.reason.contains("404") && f.reason.contains("Not Found"),
                "{}/{}/{}: {:?}",
                f.exchange,
                f.symbol,
                f.day,
                f.reason
            );
            assert_eq!(store.answer(&f.exchange, &f.symbol, f.day), None);
        }
    })
    .await;
}

// ---------------------------------------------------------------------------
// 5. A sloppy listing.

#[actix_rt::test]
async fn a_listing_with_a_duplicate_and_an_invalid_symbol_fetches_each_valid_symbol_once() {
    within(TEST_DEADLINE, async {
        let ds = dataset(&["bitstamp", "kraken"], &["btc", "eth"]);
        let asked: Rc<RefCell<HashMap<String, u32>>> = Rc::default();
        let url = {
            let ds = ds.clone();
            let asked = asked.clone();
            raw_server(move |path| {
                if path == "/symbols" {
                    let listing = br#"["btc","btc","B@D","eth"]"#;
                    return framed(Dialect::Http11KeepAlive, 200, "application/json", listing);
                }
                if path.starts_with("/price/") {
                    *asked.borrow_mut().entry(path.to_owned()).or_default() += 1;
                }
                let (status, body) = dataset_answer(&ds, path);
                framed(Dialect::Http11KeepAlive, status, "application/json", &body)
            })
            .await
        };
        let (from, to) = ("2020-03-01", "2020-03-03");
        let report = fetch_round(
            checked(config_for(&url, from, to)),
            &Source::remote(url),
            false,
        )
        .await
        .expect("one bad name does not stop the round");
        let c = report.summary.counts;
        // 2 exchanges x {btc, eth} x 3 days.
        assert_eq!((c.tasks, c.done(), c.failed), (12, 12, 0), "{c:?}");
        let symbols: BTreeSet<String> = report
            .snapshot
            .prices
            .iter()
            .map(|(_, s, _, _)| s.to_string())
            .collect();
        assert_eq!(symbols, BTreeSet::from(["btc".into(), "eth".into()]));
        let all = keys(ds.exchanges(), ds.symbols(), from, to);
        assert_holds_exactly(&report.snapshot.prices, &ds, &all);
        let asked = asked.borrow();
        assert_eq!(asked.len(), 12, "{asked:?}");
        assert!(asked.values().all(|n| *n == 1), "{asked:?}");
    })
    .await;
}

// ---------------------------------------------------------------------------
// 6. Stalled bodies cost a timeout each, not a fetcher.

struct Stalling {
    dataset: Arc<Dataset>,
    stalled: Vec<NaiveDate>,
    stalls: AtomicU64,
}

/// The classic API from the dataset, except that a price on a stalled day
/// sends its headers and the start of a body, then nothing, ever.
async fn price_or_stall(
    state: actix_web::web::Data<Stalling>,
    req: actix_web::HttpRequest,
) -> actix_web::HttpResponse {
    use futures_util::StreamExt;
    let stalls = req.match_info().get("date").is_some_and(|date| {
        NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok_and(|d| state.stalled.contains(&d))
    });
    if stalls {
        state.stalls.fetch_add(1, Ordering::Relaxed);
        let start = futures_util::stream::once(async {
            Ok::<_, actix_web::Error>(Bytes::from_static(b"{\"exchange\": "))
        });
        return actix_web::HttpResponse::Ok()
            .content_type("application/json")
            .streaming(start.chain(futures_util::stream::pending()));
    }
    let (status, body) = dataset_answer(&state.dataset, req.path());
    actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(body)
}

#[actix_rt::test]
async fn stalled_bodies_do_not_hold_fetchers_hostage() {
    within(TEST_DEADLINE, async {
        use actix_web::{web, App, HttpServer};
        let ds = dataset(&["bitstamp", "kraken"], &["btc"]);
        let (from, to) = ("2020-01-01", "2020-04-13"); // 104 days
        let stalled: Vec<NaiveDate> = ["2020-01-10", "2020-02-02", "2020-03-03", "2020-04-04"]
            .iter()
            .map(|d| day(d))
            .collect();
        let state = web::Data::new(Stalling {
            dataset: ds.clone(),
            stalled: stalled.clone(),
            stalls: AtomicU64::new(0),
        });
        let stalling = state.clone();
        let http = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route(
                    "/price/{exchange}/{symbol}/{date}",
                    web::get().to(price_or_stall),
                )
                .default_service(web::to(price_or_stall))
        })
        .workers(2)
        .disable_signals()
        .bind(loopback())
        .unwrap();
        let addr = http.addrs()[0];
        let http = http.run();
        let handle = http.handle();
        actix_rt::spawn(http);
        let url: Url = format!("http://{addr}/").parse().unwrap();

        let config = config_for(&url, from, to)
            .timeout(Duration::from_millis(300))
            .workers(4)
            .retry_for(Duration::from_secs(2))
            // Longer than source.timeout: only a fetch the timeout failed
            // to bound would ever reach it.
            .task_deadline(Duration::from_secs(1));
        let pipeline = Pipeline::start(checked(config), url);
        let started = Instant::now();
        let summary = pipeline.producer.send(RunRound).await.unwrap().unwrap();
        let took = started.elapsed();
        let c = summary.counts;
        let stats = pipeline.supervisor.send(GetStats).await.unwrap();
        let store = pipeline.aggregator.send(GetStore).await.unwrap();
        let stalls = stalling.stalls.load(Ordering::Relaxed);
        println!(
            "stalled bodies: a round of {} tasks took {took:.2?} (summary {:.2?}); {c:?}; \
             {stalls} stalled answers; {} retries, {} hung",
            c.tasks, summary.elapsed, stats.retries, stats.hung
        );

        let all = keys(ds.exchanges(), ds.symbols(), from, to);
        assert_eq!(c.tasks, 208);
        assert_eq!(c.done(), 208);
        assert_eq!(c.failed, 8, "exactly the stalled tasks fail: {c:?}");
        let mut healthy = 0;
        for k in &all {
            let cell = store
                .get(&k.exchange, &k.symbol, k.day)
                .unwrap_or_else(|| panic!("{k}: no cell"));
            let reason = cell
                .note
                .as_ref()
                .map(|n| n.reason.clone())
                .unwrap_or_default();
            assert!(!reason.contains("task_deadline"), "{k}: {reason}");
            if stalled.contains(&k.day) {
                assert_eq!(cell.state, CellState::Failed, "{k}");
                assert!(reason.contains("timed out"), "{k}: {reason}");
            } else {
                healthy += 1;
                assert_ne!(cell.state, CellState::Failed, "{k}: {reason}");
                assert_eq!(
                    store.answer(&k.exchange, &k.symbol, k.day),
                    Some(ds.price_of(&k.exchange, &k.symbol, k.day)),
                    "{k}"
                );
            }
        }
        assert_eq!(healthy, 200);
        assert!(
            stalls > 8,
            "each stalled task is tried again within fetch.retry_for: {stalls} stalled answers"
        );
        assert_eq!(stats.hung, 0, "no fetch outlived its deadline: {stats:?}");
        assert!(took < Duration::from_secs(20), "the round took {took:?}");
        pipeline.stop().await;
        handle.stop(false).await;
    })
    .await;
}
