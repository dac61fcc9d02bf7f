//! Fault injection in the built-in price server: each fault, at rate 1,
//! reaches every price request and no listing; at rate 0.3 it reaches about
//! that share; at rate 0 nothing is injected. Real server on loopback, real
//! clients (awc, and ureq for a second opinion on resets).

mod common;

use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use clap::Parser as _;
use common::*;
use pricegrid::cli::{Cli, Command};
use pricegrid::config::OhlcOrder;
use pricegrid::model::{Exchange, Symbol, TaskKey};
use pricegrid::server::{FaultKind, Faults, PriceServer};
use pricegrid::source::response::{classify, Answer};
use pricegrid::source::{ClientLimits, PriceClient};

/// Every test ends within this, whatever the server does.
const TEST_DEADLINE: Duration = Duration::from_secs(90);

/// A server injecting `faults` (seeded, so every run draws the same faults).
fn faulty(tweak: impl FnOnce(&mut Faults)) -> PriceServer {
    spawn_price_server(|o| {
        o.faults.seed = 7;
        tweak(&mut o.faults);
    })
}

fn only(kind: FaultKind, rate: f64) -> impl FnOnce(&mut Faults) {
    move |f| match kind {
        FaultKind::Reset => f.reset_rate = rate,
        FaultKind::Stall => f.stall_rate = rate,
        FaultKind::Fail => f.fail_rate = rate,
        FaultKind::Garbage => f.garbage_rate = rate,
    }
}

/// The `i`th key of a walk over March 2020 on four exchanges and three symbols.
fn key(i: usize) -> TaskKey {
    const EXCHANGES: [&str; 4] = ["kraken", "bitstamp", "coinbase-pro", "mexbt"];
    const SYMBOLS: [&str; 3] = ["btc", "eth", "ltc"];
    TaskKey {
        exchange: Exchange::new(EXCHANGES[(i / 93) % 4]).unwrap(),
        symbol: Symbol::new(SYMBOLS[(i / 31) % 3]).unwrap(),
        day: day("2020-03-01") + chrono::Days::new((i % 31) as u64),
    }
}

fn price_url(server: &PriceServer, key: &TaskKey) -> String {
    format!(
        "{}price/{}/{}/{}",
        server.url(),
        key.exchange,
        key.symbol,
        key.day.format("%Y-%m-%d")
    )
}

fn client(timeout: Duration) -> awc::Client {
    awc::Client::builder().timeout(timeout).finish()
}

/// What a client got for one request.
#[derive(Debug)]
enum Got {
    Answer {
        status: u16,
        retry_after: Option<String>,
        body: Bytes,
    },
    /// The request got no complete answer: connection closed before or
    /// during the answer.
    Transport(String),
    TimedOut,
}

async fn get(client: &awc::Client, url: &str) -> Got {
    let mut resp = match client.get(url).send().await {
        Ok(resp) => resp,
        Err(awc::error::SendRequestError::Timeout) => return Got::TimedOut,
        Err(e) => return Got::Transport(format!("sending: {e}")),
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match resp.body().await {
        Ok(body) => Got::Answer {
            status,
            retry_after,
            body,
        },
        Err(e) => Got::Transport(format!("reading the body: {e}")),
    }
}

/// Classifies an answer the way the daemon does.
fn check(key: &TaskKey, status: u16, retry_after: Option<&str>, body: &Bytes) -> ClassifyResult {
    classify(key, status, retry_after, Ok(&body[..]), OhlcOrder::Flag)
}

type ClassifyResult = pricegrid::source::FetchResult;

/// `/exchanges` and `/symbols` answer as usual, and neither counts as a
/// price request nor gets a fault.
async fn assert_listings_clean(client: &awc::Client, server: &PriceServer) {
    let (requests, injected) = (server.stats.price_requests(), server.stats.injected_total());
    for _ in 0..10 {
        for (path, want) in [
            ("exchanges", server.dataset.exchanges().len()),
            ("symbols", server.dataset.symbols().len()),
        ] {
            let url = format!("{}{path}", server.url());
            match get(client, &url).await {
                Got::Answer {
                    status: 200, body, ..
                } => {
                    let names: Vec<String> = serde_json::from_slice(&body)
                        .unwrap_or_else(|e| panic!("{url}: {e}: {body:?}"));
                    assert_eq!(names.len(), want, "{url}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
    assert_eq!(server.stats.price_requests(), requests);
    assert_eq!(server.stats.injected_total(), injected);
}

fn assert_only(server: &PriceServer, kind: FaultKind, count: u64) {
    for k in FaultKind::ALL {
        let want = if k == kind { count } else { 0 };
        assert_eq!(server.stats.injected(k), want, "{k} faults counted");
    }
}

#[actix_rt::test]
async fn with_every_rate_zero_nothing_is_injected() {
    within(TEST_DEADLINE, async {
        let server = faulty(|_| {});
        let client = client(Duration::from_secs(10));
        let (mut prices, mut missing) = (0, 0);
        for i in 0..100 {
            let key = key(i);
            match get(&client, &price_url(&server, &key)).await {
                Got::Answer {
                    status,
                    retry_after,
                    body,
                } => match check(&key, status, retry_after.as_deref(), &body) {
                    Ok(Answer::Price { .. }) => prices += 1,
                    Ok(Answer::NoPrice) => missing += 1,
                    Ok(Answer::Rejected { reason, .. } | Answer::Failed { reason }) => {
                        panic!("{key}: {reason}")
                    }
                    Err(e) => panic!("{key}: {}", e.reason),
                },
                other => panic!("{key}: {other:?}"),
            }
        }
        assert!(prices > 50, "{prices} prices, {missing} missing");
        assert_eq!(server.stats.price_requests(), 100);
        assert_eq!(server.stats.injected_total(), 0);
        assert_listings_clean(&client, &server).await;
    })
    .await;
}

#[actix_rt::test]
async fn a_fail_rate_of_one_answers_every_price_with_a_5xx() {
    within(TEST_DEADLINE, async {
        let server = faulty(only(FaultKind::Fail, 1.0));
        let client = client(Duration::from_secs(10));
        let mut statuses = std::collections::BTreeSet::new();
        for i in 0..40 {
            let key = key(i);
            let Got::Answer {
                status,
                retry_after,
                body,
            } = get(&client, &price_url(&server, &key)).await
            else {
                panic!("{key}: no answer");
            };
            assert!(status == 500 || status == 503, "{key}: {status}");
            if status == 503 {
                assert_eq!(retry_after.as_deref(), Some("1"), "{key}");
            }
            let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error body");
            assert!(json["error"].is_string(), "{key}: {json}");
            let failure = check(&key, status, retry_after.as_deref(), &body).unwrap_err();
            assert!(failure.retryable && failure.reason.contains(&status.to_string()));
            statuses.insert(status);
        }
        assert_eq!(statuses.into_iter().collect::<Vec<_>>(), [500, 503]);
        assert_only(&server, FaultKind::Fail, 40);
        assert_listings_clean(&client, &server).await;
    })
    .await;
}

#[actix_rt::test]
async fn a_reset_rate_of_one_drops_every_connection_unanswered() {
    within(TEST_DEADLINE, async {
        let server = faulty(only(FaultKind::Reset, 1.0));
        let client = client(Duration::from_secs(10));
        for i in 0..20 {
            let key = key(i);
            match get(&client, &price_url(&server, &key)).await {
                Got::Transport(_) => {}
                other => panic!("{key}: expected a transport error, got {other:?}"),
            }
        }

        // The daemon's own client records it as a retryable failure, after
        // sending the GET once more (a connection dropped before any answer
        // may be a pooled one the server had closed).
        let limits = ClientLimits {
            timeout: Duration::from_secs(10),
            max_body: 64 * 1024,
            connections: 4,
            ohlc_order: OhlcOrder::Flag,
            user_agent: None,
        };
        let daemon_client = PriceClient::new(&server.url(), &limits);
        for i in 20..25 {
            let failure = daemon_client.price(&key(i)).await.unwrap_err();
            assert!(failure.retryable, "{failure:?}");
            assert!(
                failure
                    .reason
                    .contains("connection dropped before any answer"),
                "{failure:?}"
            );
        }

        // A client from another stack agrees: no valid answer, an I/O error.
        let urls: Vec<String> = (25..30).map(|i| price_url(&server, &key(i))).collect();
        let errors = actix_rt::task::spawn_blocking(move || {
            let agent = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build();
            urls.iter()
                .map(|url| match agent.get(url).call() {
                    Ok(resp) => match resp.into_string() {
                        Ok(body) => panic!("{url}: a whole answer {body:?}"),
                        Err(e) => e.to_string(),
                    },
                    Err(ureq::Error::Transport(t)) => t.to_string(),
                    Err(e) => panic!("{url}: {e}"),
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        assert_eq!(errors.len(), 5, "{errors:?}");

        assert_only(&server, FaultKind::Reset, 20 + 5 * 2 + 5);
        assert_listings_clean(&client, &server).await;
    })
    .await;
}

#[actix_rt::test]
async fn a_garbage_rate_of_one_breaks_every_body_in_all_four_ways() {
    within(TEST_DEADLINE, async {
        let server = faulty(only(FaultKind::Garbage, 1.0));
        let client = client(Duration::from_secs(10));
        let mut seen = std::collections::BTreeMap::<&str, usize>::new();
        for i in 0..80 {
            let key = key(i);
            let Got::Answer {
                status: 200,
                retry_after,
                body,
            } = get(&client, &price_url(&server, &key)).await
            else {
                panic!("{key}: expected a 200");
            };
            let failure = check(&key, 200, retry_after.as_deref(), &body)
                .expect_err("a garbage body is rejected");
            assert!(failure.retryable, "{failure:?}");
            let (kind, needle) = if body.starts_with(b"<html") {
                ("not JSON", "malformed")
            } else {
                match serde_json::from_slice::<serde_json::Value>(&body) {
                    Err(_) => ("truncated", "malformed"),
                    Ok(v) if v["day"] != key.day.format("%Y-%m-%d").to_string() => {
                        ("wrong day", "'day'")
                    }
                    Ok(v) if v["volume"].as_f64().is_some_and(|x| x < 0.0) => {
                        ("negative volume", "'volume'")
                    }
                    Ok(v) => panic!("{key}: a valid price served as garbage: {v}"),
                }
            };
            assert!(
                failure.reason.contains(needle),
                "{key} ({kind}): reason {:?} should name {needle:?}",
                failure.reason
            );
            *seen.entry(kind).or_default() += 1;
        }
        assert_eq!(seen.len(), 4, "every kind of garbage occurs: {seen:?}");
        assert_only(&server, FaultKind::Garbage, 80);
        assert_listings_clean(&client, &server).await;
    })
    .await;
}

#[actix_rt::test]
async fn a_stall_outlives_a_short_client_timeout() {
    within(TEST_DEADLINE, async {
        let stall = Duration::from_millis(1500);
        let server = faulty(|f| {
            f.stall_rate = 1.0;
            f.stall = stall;
        });
        let impatient = client(Duration::from_millis(200));
        for i in 0..5 {
            let key = key(i);
            match get(&impatient, &price_url(&server, &key)).await {
                Got::TimedOut => {}
                other => panic!("{key}: expected a time-out, got {other:?}"),
            }
        }

        // Listings are not stalled: they answer well within the stall.
        let patient = client(Duration::from_secs(20));
        let started = Instant::now();
        assert_listings_clean(&patient, &server).await;
        assert!(started.elapsed() < stall, "{:?}", started.elapsed());

        // A patient client gets the normal answer, after the stall.
        let key = key(5);
        let started = Instant::now();
        let Got::Answer {
            status,
            retry_after,
            body,
        } = get(&patient, &price_url(&server, &key)).await
        else {
            panic!("{key}: no answer");
        };
        assert!(started.elapsed() >= stall, "{:?}", started.elapsed());
        check(&key, status, retry_after.as_deref(), &body).expect("a valid answer");

        assert_only(&server, FaultKind::Stall, 6);
        server.stop().await;
    })
    .await;
}

/// Each fault alone at 0.3 over 300 requests: its share is within a loose
/// band, and what the client saw agrees with what the server counted.
#[actix_rt::test]
async fn at_rate_0_3_about_that_share_of_requests_gets_the_fault() {
    within(TEST_DEADLINE, async {
        const N: usize = 300;
        for kind in FaultKind::ALL {
            let server = faulty(|f| {
                only(kind, 0.3)(f);
                f.stall = Duration::from_millis(1);
            });
            let client = client(Duration::from_secs(10));
            let mut seen = 0u64;
            for i in 0..N {
                let key = key(i);
                let faulty_answer = match get(&client, &price_url(&server, &key)).await {
                    Got::Answer {
                        status,
                        retry_after,
                        body,
                    } => match check(&key, status, retry_after.as_deref(), &body) {
                        Ok(_) => false,
                        Err(e) if status >= 500 => {
                            assert_eq!(kind, FaultKind::Fail, "{key}: {}", e.reason);
                            true
                        }
                        Err(e) => {
                            assert_eq!(kind, FaultKind::Garbage, "{key}: {}", e.reason);
                            true
                        }
                    },
                    Got::Transport(e) => {
                        assert_eq!(kind, FaultKind::Reset, "{key}: {e}");
                        true
                    }
                    Got::TimedOut => panic!("{key}: timed out"),
                };
                seen += u64::from(faulty_answer);
            }
            let counted = server.stats.injected(kind);
            assert_eq!(server.stats.injected_total(), counted);
            if kind != FaultKind::Stall {
                assert_eq!(seen, counted, "{kind}: client saw {seen}, server counted");
            }
            let share = counted as f64 / N as f64;
            assert!((0.15..=0.45).contains(&share), "{kind}: share {share}");
            server.stop().await;
        }
    })
    .await;
}

#[actix_rt::test]
async fn the_same_seed_injects_the_same_faults() {
    within(TEST_DEADLINE, async {
        let client = client(Duration::from_secs(10));
        let mut runs = Vec::new();
        for seed in [1, 1, 2] {
            let server = spawn_price_server(|o| {
                o.faults.fail_rate = 0.5;
                o.faults.seed = seed;
            });
            let mut statuses = Vec::new();
            for i in 0..60 {
                match get(&client, &price_url(&server, &key(i))).await {
                    Got::Answer { status, .. } => statuses.push(status),
                    other => panic!("{other:?}"),
                }
            }
            server.stop().await;
            runs.push(statuses);
        }
        assert_eq!(runs[0], runs[1], "same seed, same faults");
        assert_ne!(runs[0], runs[2], "another seed, other faults");
    })
    .await;
}

#[test]
fn serve_flags_build_the_fault_options() {
    let cli = Cli::try_parse_from([
        "pricegrid",
        "serve",
        "--fail-rate",
        "0.1",
        "--reset-rate",
        "0.2",
        "--stall-rate",
        "0.3",
        "--stall-ms",
        "250",
        "--garbage-rate",
        "1",
        "--fault-seed",
        "99",
    ])
    .expect("valid flags parse");
    let Command::Serve(args) = cli.command else {
        panic!("not serve");
    };
    let faults = args.options().expect("valid options").faults;
    assert_eq!(
        faults,
        Faults {
            fail_rate: 0.1,
            reset_rate: 0.2,
            stall_rate: 0.3,
            stall: Duration::from_millis(250),
            garbage_rate: 1.0,
            seed: 99,
        }
    );

    let Command::Serve(args) = Cli::try_parse_from(["pricegrid", "serve"]).unwrap().command else {
        panic!("not serve");
    };
    assert!(
        !args.options().unwrap().faults.any(),
        "no faults by default"
    );
}

#[test]
fn an_out_of_range_rate_is_refused_naming_the_flag() {
    for (flag, value) in [
        ("--fail-rate", "1.5"),
        ("--reset-rate", "-0.1"),
        ("--stall-rate", "NaN"),
        ("--garbage-rate", "often"),
    ] {
        let err = Cli::try_parse_from(["pricegrid", "serve", &format!("{flag}={value}")])
            .expect_err("refused")
            .to_string();
        assert!(
            err.contains(flag) && err.contains(value),
            "{flag}={value}: {err}"
        );
    }
}

#[actix_rt::test]
async fn the_library_refuses_an_out_of_range_rate_too() {
    let mut opts = pricegrid::server::ServerOptions::new(loopback(), 1);
    opts.faults.garbage_rate = 1.2;
    let err = pricegrid::server::start(&opts)
        .err()
        .expect("refused before binding");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("--garbage-rate"), "{err}");
}
