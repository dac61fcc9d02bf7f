//! The round bench's Rust peer: a tokio + reqwest client written the plain
//! way, as a Rust programmer would write the classic exercise. One
//! `reqwest::Client` (its own connection pool), tokio's multi-threaded
//! runtime (a thread per core), every `/price/{exchange}/{symbol}/{day}`
//! URL through `buffer_unordered(k)`, each answer parsed into a struct.
//! No retries, no checks beyond what serde does: the point is what plain
//! code costs, not what it guarantees.
//!
//! Run in the bench's process, beside the server and pricegrid, in the
//! same run: the wall time runs from the first request to the last answer
//! read (the client and runtime are built before the clock starts, and a
//! first, untimed pass opens the connections, as pricegrid's warm round
//! does).

use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use serde::Deserialize;

/// A classic price, as the peer reads it.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // read to be parsed, not used
struct Price {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// What one pass fetched, how long it took, and the process's CPU time
/// meanwhile (the bench's server too).
#[derive(Debug, Clone, Copy)]
pub struct PeerRun {
    pub wall: Duration,
    pub cpu: Duration,
    pub prices: u64,
    pub missing: u64,
    pub failed: u64,
}

async fn get(client: &reqwest::Client, url: String) -> Result<Option<Price>, reqwest::Error> {
    let answer = client.get(url).send().await?;
    if answer.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    answer.error_for_status()?.json::<Option<Price>>().await
}

async fn pass(client: &reqwest::Client, urls: &[String], k: usize) -> PeerRun {
    let cpu = crate::common::process_cpu();
    let started = Instant::now();
    let answers: Vec<_> = stream::iter(urls.iter().cloned())
        .map(|url| get(client, url))
        .buffer_unordered(k)
        .collect()
        .await;
    let wall = started.elapsed();
    let mut run = PeerRun {
        wall,
        cpu: crate::common::process_cpu() - cpu,
        prices: 0,
        missing: 0,
        failed: 0,
    };
    for a in answers {
        match a {
            Ok(Some(_)) => run.prices += 1,
            Ok(None) => run.missing += 1,
            Err(_) => run.failed += 1,
        }
    }
    run
}

/// Fetches every URL of `urls` with `k` requests at once, twice: once to
/// open the connections, then timed.
pub fn run(urls: &[String], warm_up: &[String], k: usize) -> PeerRun {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        pass(&client, warm_up, k).await;
        pass(&client, urls, k).await
    })
}
