//! Helpers shared by the integration tests: a real price server on a
//! loopback ephemeral port, and configs pointed at it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use pricegrid::config::{Config, Day, SourceUrl};
use pricegrid::server::{self, PriceServer, ServerOptions};
use pricegrid::snapshot::Snapshot;

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

/// Starts the built-in server (classic generated dataset) with `opts`
/// adjusted by `tweak`. Must run inside an actix system.
pub fn spawn_price_server(tweak: impl FnOnce(&mut ServerOptions)) -> PriceServer {
    let mut opts = ServerOptions::new(loopback(), server::DEFAULT_SEED);
    tweak(&mut opts);
    server::start(&opts).expect("the test price server starts")
}

/// A config fetching March 2020 (1,023 tasks on the classic universe) from
/// `server` with `workers` fetchers.
pub fn march_config(server: &PriceServer, workers: usize) -> Config {
    let mut c = Config::default();
    c.source.url = SourceUrl::Remote(server.url());
    c.universe.from = Some(Day(day("2020-03-01")));
    c.universe.to = Some(Day(day("2020-03-31")));
    c.fetch.workers = workers;
    c.fetch.backoff_base = Duration::from_millis(10);
    c.fetch.backoff_max = Duration::from_millis(100);
    c.check().expect("test config is valid");
    c
}

/// The classic server's own prices, which CI keeps beside the repo.
pub fn reference_csv() -> PathBuf {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference-data/prices.csv");
    assert!(
        path.exists(),
        "reference data expected at {} (see ../shared/price-api.md)",
        path.display()
    );
    path
}

/// Asserts that `snap` holds exactly what `server` serves for every key of
/// the classic universe in `from..=to`: each price equal, each missing one
/// null, nothing failed.
pub fn assert_matches_server(snap: &Snapshot, server: &PriceServer, from: &str, to: &str) {
    assert!(snap.failed.is_empty(), "failed tasks: {:?}", snap.failed);
    let ds = &server.dataset;
    let mut checked = 0;
    for exchange in ds.exchanges() {
        for d in day(from).iter_days().take_while(|d| *d <= day(to)) {
            for symbol in ds.symbols() {
                let got = snap
                    .prices
                    .get(exchange)
                    .and_then(|m| m.get(&d))
                    .and_then(|m| m.get(symbol))
                    .unwrap_or_else(|| panic!("{exchange}/{symbol}/{d} absent from the snapshot"));
                assert_eq!(
                    *got,
                    ds.price_of(exchange, symbol, d),
                    "{exchange}/{symbol}/{d}"
                );
                checked += 1;
            }
        }
    }
    let in_snapshot: usize = snap
        .prices
        .values()
        .flat_map(|m| m.values())
        .map(|m| m.len())
        .sum();
    assert_eq!(
        in_snapshot, checked,
        "the snapshot holds keys outside the universe"
    );
}

pub fn arc(c: Config) -> Arc<Config> {
    Arc::new(c)
}
