//! Helpers shared by the integration tests: a real price server on a
//! loopback ephemeral port, configs pointed at it (`config`), the daemon
//! under test (`daemon`), raw requests (`http`) and raw servers that
//! write exact bytes (`raw`), certificates made in the test (`tls`), a
//! real PostgreSQL with a database per test (`postgres`),
//! and assertions on what a round stored.
#![allow(dead_code)]

mod config;
mod daemon;
mod http;
mod postgres;
mod raw;
mod tls;

// Each test file uses some of these, none uses all.
#[allow(unused_imports)]
pub use config::*;
#[allow(unused_imports)]
pub use daemon::*;
#[allow(unused_imports)]
pub use http::*;
#[allow(unused_imports)]
pub use postgres::*;
#[allow(unused_imports)]
pub use raw::*;
#[allow(unused_imports)]
pub use tls::*;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use pricegrid::config::Config;
use pricegrid::model::Ohlcv;
use pricegrid::server::{self, Dataset, PriceServer, ServerOptions};
use pricegrid::snapshot::Snapshot;
use pricegrid::store::Store;

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
/// `server` with `workers` fetchers, validated; `march` to change it first.
pub fn march_config(server: &PriceServer, workers: usize) -> Config {
    march(server, workers).build()
}

/// The config file shipped in the repository (`config/pricegrid.toml`).
pub fn shipped_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/pricegrid.toml")
}

/// The classic server's own prices, kept in the repo (see
/// `tests/data/NOTICE.md`), gzip-compressed.
pub fn reference_csv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/classic-prices.csv.gz")
}

/// Every answer a store holds, as ("exchange/symbol/day", price or None).
pub fn answers(store: &Store) -> Vec<(String, Option<Ohlcv>)> {
    store
        .iter()
        .filter_map(|(e, s, d, _)| Some((format!("{e}/{s}/{d}"), store.answer(e, s, d)?)))
        .collect()
}

/// Asserts that every answer in `store` is what `dataset` serves.
pub fn assert_answers_match(store: &Store, dataset: &Dataset) {
    for (e, s, d, _) in store.iter() {
        if let Some(got) = store.answer(e, s, d) {
            assert_eq!(got, dataset.price_of(e, s, d), "{e}/{s}/{d}");
        }
    }
}

/// Asserts that `snap` holds exactly what `server` serves for every key of
/// its universe in `from..=to`: each price equal, each missing one null,
/// nothing failed, nothing else.
pub fn assert_matches_server(snap: &Snapshot, server: &PriceServer, from: &str, to: &str) {
    assert!(
        snap.failed().is_empty(),
        "failed tasks: {:?}",
        snap.failed()
    );
    let ds = &server.dataset;
    let mut checked = 0;
    for exchange in ds.exchanges() {
        for d in day(from).iter_days().take_while(|d| *d <= day(to)) {
            for symbol in ds.symbols() {
                let got = snap
                    .prices
                    .answer(exchange, symbol, d)
                    .unwrap_or_else(|| panic!("{exchange}/{symbol}/{d} absent from the snapshot"));
                assert_eq!(
                    got,
                    ds.price_of(exchange, symbol, d),
                    "{exchange}/{symbol}/{d}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(
        answers(&snap.prices).len(),
        checked,
        "the snapshot holds keys outside the universe"
    );
}

pub fn arc(c: Config) -> Arc<Config> {
    Arc::new(c)
}

/// A price server on its own thread and actix system, for tests that run
/// the `pricegrid` binary against it. Stops when dropped.
pub struct ServerThread {
    pub url: url::Url,
    pub dataset: Arc<Dataset>,
    pub stats: Arc<pricegrid::server::ServerStats>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    pub fn start(tweak: impl FnOnce(&mut ServerOptions) + Send + 'static) -> ServerThread {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = spawn_price_server(tweak);
                tx.send((server.url(), server.dataset.clone(), server.stats.clone()))
                    .expect("the test waits for the server");
                let _ = actix_rt::task::spawn_blocking(move || stop_rx.recv()).await;
                server.stop().await;
            })
        });
        let (url, dataset, stats) = rx.recv().expect("the server thread starts");
        ServerThread {
            url,
            dataset,
            stats,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The URL of a loopback port nothing listens on (bound, then freed).
pub fn nothing_listens() -> url::Url {
    let port = std::net::TcpListener::bind(loopback())
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    format!("http://127.0.0.1:{port}/").parse().expect("a URL")
}

/// Awaits `body`, failing the test if it takes longer than `limit`: every
/// wait in a test is bounded.
pub async fn within<T>(
    limit: std::time::Duration,
    body: impl std::future::Future<Output = T>,
) -> T {
    actix_rt::time::timeout(limit, body)
        .await
        .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"))
}

/// An instant written as RFC 3339 (`2020-03-01T12:00:00Z`).
pub fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().expect("a test time in RFC 3339")
}

/// A final reference close of `close` from `exchanges`, each at that close
/// with volume 1, no cell left out and no dispersion.
pub fn judged(close: f64, exchanges: &[&str]) -> pricegrid::quality::Reference {
    use pricegrid::quality::{Constituent, Reference, Status};
    Reference {
        close: Some(close),
        status: Status::Final,
        constituents: exchanges
            .iter()
            .map(|e| Constituent {
                exchange: pricegrid::model::Exchange::new(e).expect("an exchange name"),
                close,
                volume: 1.0,
                provisional: false,
            })
            .collect(),
        excluded: Vec::new(),
        dispersion: None,
    }
}
