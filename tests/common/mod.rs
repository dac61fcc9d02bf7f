//! Helpers shared by the integration tests: a real price server on a
//! loopback ephemeral port, and configs pointed at it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use pricegrid::config::{Config, Day, SourceUrl};
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

/// A daemon config for tests: `url` as source, snapshots in `snapshots`,
/// the API on an ephemeral port, then `extra` TOML.
pub fn daemon_config(url: &url::Url, snapshots: &std::path::Path, extra: &str) -> String {
    format!(
        "[source]\nurl = \"{url}\"\n\n[snapshot]\ndir = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:0\"\n\n[log]\nprogress_every = \"1s\"\n\n{extra}",
        snapshots.display()
    )
}

/// The `pricegrid` binary's log lines (stderr).
pub type LogLines = std::io::Lines<std::io::BufReader<std::process::ChildStderr>>;

/// Starts `pricegrid run --config CONFIG` with its log piped. A watchdog
/// kills it after a minute, so that a test waiting on its log fails
/// instead of hanging.
pub fn spawn_daemon(config: &std::path::Path) -> (std::process::Child, LogLines) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let pid = child.id().to_string();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        // Only if that pid is still a pricegrid (not a reused pid).
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("pricegrid") {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    });
    let lines = std::io::BufReader::new(child.stderr.take().expect("piped")).lines();
    (child, lines)
}

/// Reads log lines until `count` of them contain `needle`; returns what it
/// read.
pub fn read_until(lines: &mut LogLines, needle: &str, count: usize) -> String {
    let mut seen = 0;
    let mut log = String::new();
    for line in lines.by_ref() {
        let line = line.expect("utf-8 log");
        log.push_str(&line);
        log.push('\n');
        if line.contains(needle) {
            seen += 1;
            if seen == count {
                return log;
            }
        }
    }
    panic!("the log ended before {count} x {needle:?}:\n{log}");
}

/// Sends `signal` (e.g. "-TERM") to a child process.
pub fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} failed");
}
