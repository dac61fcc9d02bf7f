//! One full round through the real actors against the real built-in server
//! on loopback (issue: foundation).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use pricegrid::commands::fetch::{fetch_round, FetchError};
use pricegrid::model::Exchange;
use pricegrid::origin::{OriginError, Source};
use pricegrid::server::{Dataset, MissingStyle};

fn source_of(server: &pricegrid::server::PriceServer) -> Source {
    Source::remote(server.url())
}

#[actix_rt::test]
async fn a_march_round_returns_exactly_the_servers_data() {
    let server = spawn_price_server(|_| {});
    let config = march_config(&server, 32);
    let report = fetch_round(arc(config), &source_of(&server), false)
        .await
        .expect("round runs");
    let c = report.summary.counts;
    assert_eq!(c.tasks, 1023);
    assert_eq!(c.done(), 1023);
    assert_eq!(c.failed, 0);
    assert!(c.none > 0, "the dataset leaves some prices out on purpose");
    assert_eq!(c.finals as usize, report.snapshot.price_count());
    assert_matches_server(&report.snapshot, &server, "2020-03-01", "2020-03-31");
    assert_eq!(server.stats.price_requests(), 1023, "one request per task");
}

#[actix_rt::test]
async fn the_result_is_the_same_for_1_4_32_and_200_workers() {
    let server = spawn_price_server(|_| {});
    let mut maps = Vec::new();
    for workers in [1, 4, 32, 200] {
        let report = fetch_round(
            arc(march_config(&server, workers)),
            &source_of(&server),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{workers} workers: {e}"));
        assert_eq!(report.summary.counts.done(), 1023, "{workers} workers");
        maps.push((workers, answers(&report.snapshot.prices)));
    }
    for (workers, answers) in &maps[1..] {
        assert!(
            *answers == maps[0].1,
            "{workers} workers differ from 1 worker"
        );
    }
}

#[actix_rt::test]
async fn a_classic_null_answer_is_missing_too() {
    let server = spawn_price_server(|o| o.missing = MissingStyle::Null);
    let report = fetch_round(arc(march_config(&server, 8)), &source_of(&server), false)
        .await
        .expect("round runs");
    assert!(report.summary.counts.none > 0);
    assert_matches_server(&report.snapshot, &server, "2020-03-01", "2020-03-31");
}

#[actix_rt::test]
async fn the_classic_servers_real_prices_come_through_unchanged() {
    let data = Dataset::from_csv(&reference_csv()).expect("reference CSV loads");
    let server = spawn_price_server(|o| {
        o.dataset = std::sync::Arc::new(data);
        o.missing = MissingStyle::Null;
    });
    let report = fetch_round(arc(march_config(&server, 32)), &source_of(&server), false)
        .await
        .expect("round runs");
    let c = report.summary.counts;
    // price-api.md: March 2020 is 1,023 tasks of which 930 have a price.
    assert_eq!((c.tasks, c.finals, c.none, c.failed), (1023, 930, 93, 0));
    let kraken = Exchange::new("kraken").unwrap();
    let eth = "eth".parse().unwrap();
    let p = report
        .snapshot
        .prices
        .answer(&kraken, &eth, day("2020-03-13"))
        .flatten()
        .expect("a price");
    assert_eq!(
        (p.open, p.high, p.low, p.close),
        (195.24, 195.24, 102.0, 107.97)
    );
    assert_matches_server(&report.snapshot, &server, "2020-03-01", "2020-03-31");
}

#[actix_rt::test]
async fn a_source_down_at_start_is_a_clear_error() {
    let url = nothing_listens();
    let config = TestConfig::fetching_from(&url)
        .march()
        .workers(4)
        .quick_backoff()
        .build();
    let port = url.port().expect("a port").to_string();
    match fetch_round(arc(config), &Source::remote(url), false).await {
        Err(e @ FetchError::Source(OriginError::Unreachable(_))) => {
            let text = e.to_string();
            assert!(
                text.contains("unreachable") && text.contains(&port),
                "{text}"
            );
        }
        Err(other) => panic!("expected Unreachable, got {other}"),
        Ok(_) => panic!("a round against a dead port succeeded"),
    }
}

#[test]
fn the_fetch_command_exits_non_zero_when_the_source_is_down() {
    let url = nothing_listens();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .args(["fetch", "--no-progress", "--source", url.as_str()])
        .arg("--config")
        .arg(shipped_config())
        .arg("--output")
        .arg(dir.path().join("out.json"))
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(
        !dir.path().join("out.json").exists(),
        "no output on failure"
    );
}

/// The universe of issue #17 (100 exchanges x 9,999 symbols x 18 years
/// under `max_tasks = 9000000000000000000`): `fetch` refuses it, exit 1
/// naming the sizes, where it used to abort allocating every key up front.
#[test]
fn the_fetch_command_refuses_an_absurd_universe_naming_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("absurd.toml");
    std::fs::write(
        &config,
        TestConfig::new().absurd_universe().unchecked_toml(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .args(["fetch", "--no-progress", "--config"])
        .arg(&config)
        .arg("--output")
        .arg(dir.path().join("out.json"))
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for said in [
        "universe.max_tasks: 9000000000000000000 is more than this process can hold",
        "100 exchanges x 9999 symbols x ",
    ] {
        assert!(stderr.contains(said), "{said:?} not in {stderr}");
    }
    assert!(!dir.path().join("out.json").exists(), "no output");
}

/// The binary end to end, against a server in this process: the file it
/// writes equals the server's data, and it prints one summary line.
#[test]
fn the_fetch_command_writes_the_servers_map() {
    let server = ServerThread::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("march.json");
    let out = Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .args([
            "fetch",
            "--no-progress",
            "--workers",
            "16",
            "--from",
            "2020-03-01",
            "--to",
            "2020-03-31",
        ])
        .args(["--source", server.url.as_str()])
        .arg("--config")
        .arg(shipped_config())
        .arg("--output")
        .arg(&output)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("tasks 1023 final "), "{stdout}");
    let snap = pricegrid::snapshot::Snapshot::load(&output).expect("a valid snapshot");
    assert_eq!(answers(&snap.prices).len(), 1023);
    assert_answers_match(&snap.prices, &server.dataset);
    assert_eq!(snap.counts.done(), 1023);
}

/// A client written independently (blocking ureq, untyped JSON) against the
/// same server gets the same map as the actors.
#[actix_rt::test]
async fn an_independent_client_gets_the_same_map() {
    let server = spawn_price_server(|_| {});
    let config = march(&server, 32).exchanges(["kraken", "bitstamp"]).build();
    let report = fetch_round(arc(config), &source_of(&server), false)
        .await
        .expect("round runs");
    let base = server.url();
    let independent = actix_rt::task::spawn_blocking(move || {
        let mut map: BTreeMap<String, Option<serde_json::Value>> = BTreeMap::new();
        let symbols: Vec<String> = ureq::get(base.join("symbols").unwrap().as_str())
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        for exchange in ["kraken", "bitstamp"] {
            for d in day("2020-03-01").iter_days().take(31) {
                for symbol in &symbols {
                    let url = base
                        .join(&format!("price/{exchange}/{symbol}/{d}"))
                        .unwrap();
                    let value = match ureq::get(url.as_str()).call() {
                        Ok(resp) => Some(resp.into_json::<serde_json::Value>().unwrap()),
                        Err(ureq::Error::Status(404, _)) => None,
                        Err(e) => panic!("{url}: {e}"),
                    };
                    map.insert(format!("{exchange}/{symbol}/{d}"), value);
                }
            }
        }
        map
    })
    .await
    .unwrap();
    let ours: BTreeMap<String, _> = answers(&report.snapshot.prices).into_iter().collect();
    assert_eq!(ours.len(), independent.len());
    for (key, theirs) in &independent {
        let mine = ours[key];
        match (mine, theirs) {
            (None, None) => {}
            (Some(p), Some(v)) => {
                for (field, value) in [
                    ("open", p.open),
                    ("high", p.high),
                    ("low", p.low),
                    ("close", p.close),
                    ("volume", p.volume),
                ] {
                    assert_eq!(v[field].as_f64(), Some(value), "{key} {field}");
                }
            }
            _ => panic!("{key}: pricegrid {mine:?} vs independent {theirs:?}"),
        }
    }
}

/// Unknown names and unknown routes are 404, bad dates 400, each with a
/// JSON error body that says what is wrong, and never a 500.
#[actix_rt::test]
async fn the_server_answers_bad_requests_with_a_json_error() {
    let server = spawn_price_server(|_| {});
    let base = server.url();
    let errors = actix_rt::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for path in [
            "price/nasdaq/btc/2020-03-01",
            "price/kraken/doge/2020-03-01",
            "price/kraken/btc/2020-13-01",
            "price/kraken/btc/yesterday",
            "price/kraken/btc",
            "nothing/here",
        ] {
            let url = base.join(path).unwrap();
            match ureq::get(url.as_str()).call() {
                Err(ureq::Error::Status(code, resp)) => {
                    let body: serde_json::Value = resp.into_json().expect("a JSON body");
                    out.push((path, code, body));
                }
                other => panic!("{path}: expected an error status, got {other:?}"),
            }
        }
        out
    })
    .await
    .unwrap();
    let codes: Vec<u16> = errors.iter().map(|(_, code, _)| *code).collect();
    assert_eq!(codes, [404, 404, 400, 400, 404, 404], "{errors:?}");
    for (path, _, body) in &errors {
        let error = body["error"].as_str().unwrap_or("");
        assert!(!error.is_empty(), "{path}: the error says what is wrong");
    }
    assert_eq!(errors[0].2["error"], pricegrid::wire::UNKNOWN_EXCHANGE);
    assert_eq!(errors[0].2["exchange"], "nasdaq");
    assert_eq!(errors[1].2["error"], pricegrid::wire::UNKNOWN_SYMBOL);
    assert_eq!(errors[1].2["symbol"], "doge");
    let bad_date = errors[2].2["error"].as_str().unwrap_or("");
    assert!(bad_date.contains("2020-13-01"), "{bad_date}");
    let no_route = errors[5].2["error"].as_str().unwrap_or("");
    assert!(no_route.contains("/exchanges"), "{no_route}");
}

/// The server lists the dataset's exchanges, each once, sorted.
#[actix_rt::test]
async fn the_server_lists_the_datasets_exchanges_sorted() {
    let server = spawn_price_server(|_| {});
    let url = server.url().join("exchanges").unwrap();
    let exchanges: Vec<String> = actix_rt::task::spawn_blocking(move || {
        ureq::get(url.as_str()).call().unwrap().into_json().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(exchanges.len(), 11);
    assert!(
        exchanges.windows(2).all(|w| w[0] < w[1]),
        "sorted: {exchanges:?}"
    );
}

/// Config reaches the actors as one `Reconfigure`, whatever base its diff
/// was taken from: the fetcher pool is replaced when its shape changes
/// against the config in force, and only then; rounds run on after it.
#[actix_rt::test]
async fn a_reconfigure_replaces_the_pool_only_when_the_config_in_force_needs_it() {
    use pricegrid::actors::producer::RunRound;
    use pricegrid::actors::supervisor::GetStats;
    use pricegrid::actors::{Pipeline, Reconfigure, SourceRef};
    use pricegrid::config::Config;

    let server = spawn_price_server(|_| {});
    let config = arc(march_config(&server, 2));
    let pipeline = Pipeline::start(config.clone(), server.url());
    let source = || SourceRef::remote(server.url());
    let pools = |s: pricegrid::actors::supervisor::SupervisorStats| (s.workers, s.pools_started);
    assert_eq!(
        pools(pipeline.supervisor.send(GetStats).await.unwrap()),
        (2, 1)
    );

    // The config in force again, its diff taken from the default config
    // (which would say "new pool"): nothing to replace.
    let same = Reconfigure::new(&Config::default(), config.clone(), 1, source());
    assert!(same.diff.pool);
    pipeline.producer.send(same).await.unwrap();
    assert_eq!(
        pools(pipeline.supervisor.send(GetStats).await.unwrap()),
        (2, 1)
    );

    // More workers: a new pool, and a whole round on it.
    let mut more = (*config).clone();
    more.fetch.workers = 4;
    let more = Reconfigure::new(&config, arc(more), 2, source());
    pipeline.producer.send(more).await.unwrap();
    assert_eq!(
        pools(pipeline.supervisor.send(GetStats).await.unwrap()),
        (4, 2)
    );
    let summary = pipeline.producer.send(RunRound).await.unwrap().unwrap();
    assert_eq!(summary.counts.done(), 1023);
    assert_eq!(summary.counts.failed, 0);
    pipeline.stop().await;
    server.stop().await;
}

/// Runs one round of `config` on fresh actors against `server`, within 20
/// s; returns what it counted and the supervisor's counters.
async fn round_with_stats(
    config: pricegrid::config::Config,
    server: &pricegrid::server::PriceServer,
) -> (
    pricegrid::model::Counts,
    pricegrid::actors::supervisor::SupervisorStats,
) {
    use pricegrid::actors::producer::RunRound;
    use pricegrid::actors::supervisor::GetStats;
    use pricegrid::actors::Pipeline;

    let pipeline = Pipeline::start(arc(config), server.url());
    let summary = within(
        std::time::Duration::from_secs(20),
        pipeline.producer.send(RunRound),
    )
    .await
    .expect("the producer answers")
    .expect("the round runs");
    let stats = pipeline.supervisor.send(GetStats).await.unwrap();
    pipeline.stop().await;
    (summary.counts, stats)
}

/// Issue 19, concurrency is not threads: two fetcher threads carry 16
/// requests at once against a server that takes 50 ms to answer each, and
/// the pool never has more than `in_flight` at the server.
#[actix_rt::test]
async fn two_workers_carry_sixteen_requests_at_once_and_never_more() {
    let server = spawn_price_server(|o| o.latency = std::time::Duration::from_millis(50));
    let config = TestConfig::fetching_from(&server.url())
        .window("2020-03-01", "2020-03-10")
        .symbols(["btc", "eth"])
        .workers(2)
        .in_flight(16)
        .build();
    let (counts, stats) = round_with_stats(config, &server).await;
    assert_eq!((counts.tasks, counts.done(), counts.failed), (220, 220, 0));
    assert_eq!(stats.workers, 2, "two fetcher threads");
    assert_eq!(
        server.stats.max_concurrent_total(),
        16,
        "16 requests at the server at once, never more"
    );
    server.stop().await;
}

/// A config written before `fetch.in_flight` existed, with `workers` alone:
/// that many fetchers, that many requests at once, as before.
#[actix_rt::test]
async fn a_config_with_only_workers_has_that_many_requests_in_flight() {
    let server = spawn_price_server(|o| o.latency = std::time::Duration::from_millis(50));
    let text = format!(
        "[source]\nurl = \"{}\"\n[universe]\nfrom = \"2020-03-01\"\nto = \"2020-03-10\"\nsymbols = [\"btc\", \"eth\"]\n[fetch]\nworkers = 6\n",
        server.url()
    );
    let config = pricegrid::config::Config::parse(&text, std::path::Path::new("old.toml"))
        .expect("the old config is valid");
    assert_eq!((config.fetch.workers, config.fetch.in_flight), (6, 6));
    let (counts, stats) = round_with_stats(config, &server).await;
    assert_eq!((counts.tasks, counts.done(), counts.failed), (220, 220, 0));
    assert_eq!(stats.workers, 6);
    assert_eq!(server.stats.max_concurrent_total(), 6);
    server.stop().await;
}
