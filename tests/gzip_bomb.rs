//! A gzip bomb against pricegrid's client, under a counting allocator (its
//! own test binary, so that no other test's memory is counted): a small
//! answer that inflates to 64 MiB fails naming the limit, and the client
//! never holds more than a few MiB while finding out.

mod common;

use std::alloc::System;
use std::io::Write;
use std::time::Duration;

use cap::Cap;
use common::*;
use pricegrid::config::OhlcOrder;
use pricegrid::model::{Exchange, Symbol, TaskKey};
use pricegrid::source::{ClientLimits, PriceClient};

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// What the bomb inflates to.
const DECODED: usize = 64 << 20;
/// The body limit: larger than the bomb as sent, far smaller than decoded.
const LIMIT: usize = 1 << 20;

/// `HTTP/1.1 200` whose gzipped body is `DECODED` bytes of spaces after
/// `{"open": 1`, made a chunk at a time (never held decoded here either).
fn bomb() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b"{\"open\": 1").unwrap();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..DECODED / chunk.len() {
        gz.write_all(&chunk).unwrap();
    }
    let body = gz.finish().unwrap();
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

#[actix_rt::test]
async fn a_gzip_bomb_fails_naming_the_limit_without_inflating() {
    let answer = bomb();
    assert!(answer.len() < LIMIT, "{} bytes on the wire", answer.len());
    let url = raw_server(move |_| Script::send(answer.clone(), Then::Close)).await;
    let limits = ClientLimits {
        timeout: Duration::from_secs(20),
        max_body: LIMIT,
        connections: 1,
        ohlc_order: OhlcOrder::Flag,
        user_agent: None,
    };
    let client = PriceClient::new(&url, &limits);
    let key = TaskKey {
        exchange: Exchange::new("kraken").unwrap(),
        symbol: Symbol::new("btc").unwrap(),
        day: day("2020-03-13"),
    };
    let baseline = ALLOCATOR.allocated();
    let failure = actix_rt::time::timeout(Duration::from_secs(30), client.price(&key))
        .await
        .expect("the request ends")
        .unwrap_err();
    let peak = ALLOCATOR.max_allocated().saturating_sub(baseline);
    assert!(
        failure
            .reason
            .contains("larger than 1048576 bytes once decoded"),
        "{failure:?}"
    );
    assert!(
        peak < 16 << 20,
        "held {} MiB above the baseline while reading a bomb of {} MiB",
        peak >> 20,
        DECODED >> 20
    );
    println!(
        "gzip bomb: {} KiB sent, {} MiB decoded, peak {} KiB held above the baseline",
        bomb().len() >> 10,
        DECODED >> 20,
        peak >> 10
    );
}
