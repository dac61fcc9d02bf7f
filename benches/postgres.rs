//! The PostgreSQL record at 1M cells (100 exchanges x 10 symbols x 1,000
//! days of generated prices), beside the SQLite file in the same run:
//!
//! 1. Backfill: the 1M cells written as a daemon's flushes write them (one
//!    round, 50,000 cells a transaction). Target: >= 50,000 cells/s.
//! 2. Resume: a new connection's `load()` of the 1M cells into a store.
//!    Target: <= 5 s.
//! 3. Failover: two daemons (`pricegrid run`, child processes) on one
//!    record against the built-in server in this process; the one holding
//!    every lane is killed (SIGKILL) mid-round, and the time to the next
//!    request the server receives (the other daemon's, once the lease has
//!    expired) is measured. Target: <= lease TTL + 2 s.
//!
//! PostgreSQL is the tests' throwaway cluster (tests/common/postgres.rs:
//! loopback, fsync off), or the server at `PRICEGRID_TEST_DATABASE_URL`.
//! Prints figures, asserts only on correctness.
//!
//!     cargo bench --bench postgres

mod common;

#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::path::Path;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::Utc;
use pricegrid::model::{Counts, RoundSummary, TaskKey};
use pricegrid::record::{Location, Record};
use pricegrid::store::Cell;

const EXCHANGES: usize = 100;
const SYMBOLS: usize = 10;
const DAYS: u32 = 1000;
const FLUSH: usize = 50_000;

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET "
    } else {
        "MISS"
    }
}

/// Writes `cells` as one round in flushes of `FLUSH`; returns cells/s.
fn backfill(record: &mut Record, cells: &[(TaskKey, Cell)]) -> f64 {
    let started = Instant::now();
    record
        .begin_round(1, Utc::now(), 0)
        .expect("round 1 begins");
    for flush in cells.chunks(FLUSH) {
        record.write(1, flush).expect("a flush writes");
    }
    let summary = RoundSummary {
        round: 1,
        config_version: 0,
        aborted: false,
        counts: Counts {
            tasks: cells.len() as u64,
            finals: cells.len() as u64,
            ..Counts::default()
        },
        elapsed: Duration::from_secs(1),
    };
    record
        .finish_round(&summary, Utc::now())
        .expect("round 1 finishes");
    cells.len() as f64 / started.elapsed().as_secs_f64()
}

/// A new connection's load; returns seconds, checking the count.
fn resume(at: &Location, expected: usize) -> f64 {
    let started = Instant::now();
    let record = Record::open_read_only_at(at).expect("the record opens");
    let (store, last) = record.load().expect("the record loads");
    let took = started.elapsed().as_secs_f64();
    assert_eq!(store.len(), expected);
    assert_eq!(last, 1);
    took
}

/// The lease TTL of the failover case.
const TTL: Duration = Duration::from_secs(10);

/// A daemon child process and its log lines.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn spawn(config: &Path) -> Daemon {
        let (child, lines) = common::spawn_daemon(config, "info");
        Daemon { child, lines }
    }

    fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(e) => panic!("no {needle:?} from the daemon: {e}"),
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds from killing the daemon holding every lane to the next request
/// the server receives.
fn failover(db: &postgres::TestDatabase, dir: &Path) -> f64 {
    let (tx, rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let mut opts = pricegrid::server::ServerOptions::new(
                "127.0.0.1:0".parse().expect("a loopback address"),
                pricegrid::server::DEFAULT_SEED,
            );
            opts.latency = Duration::from_millis(20);
            let s = pricegrid::server::start(&opts).expect("the server starts");
            tx.send((s.url(), s.stats.clone()))
                .expect("the bench waits");
            let _ = actix_rt::task::spawn_blocking(move || stop_rx.recv()).await;
            s.stop().await;
        })
    });
    let (url, stats) = rx.recv().expect("the server starts");
    let config = |name: &str| {
        let path = dir.join(format!("{name}.toml"));
        let text = format!(
            "[source]\nurl = \"{url}\"\n[universe]\nexchanges = [\"kraken\", \"bitstamp\"]\n\
             symbols = [\"btc\", \"eth\"]\nfrom = \"2016-01-01\"\nto = \"2019-12-31\"\n\
             [fetch]\nin_flight = 1\n[schedule]\ninterval = \"1s\"\n\
             [store]\nurl = \"{}\"\nflush_every = \"200ms\"\n\
             [snapshot]\ndir = \"{}\"\n[api]\nenabled = false\n\
             [fleet]\nname = \"{name}\"\nlease_ttl = \"{}s\"\n",
            db.url,
            dir.join(name).display(),
            TTL.as_secs()
        );
        std::fs::write(&path, text).expect("the config is written");
        path
    };
    let mut first = Daemon::spawn(&config("first"));
    first.wait_for("holding 2 lane(s)");
    let second = Daemon::spawn(&config("second"));
    second.wait_for("daemon started");
    // Mid-round: some answers in, most to come.
    assert!(
        stats.wait_for_price_requests(50, Duration::from_secs(60)),
        "no requests"
    );
    let _ = first.child.kill();
    let _ = first.child.wait();
    let killed = Instant::now();
    let before = stats.price_requests();
    // Woken by the request's arrival, not by polling.
    assert!(
        stats.wait_for_price_requests(before + 1, TTL + Duration::from_secs(60)),
        "no other daemon asked"
    );
    let took = killed.elapsed().as_secs_f64();
    drop(second);
    drop(first);
    drop(stop_tx);
    let _ = server.join();
    took
}

fn main() {
    println!("# postgres bench: {EXCHANGES} x {SYMBOLS} x {DAYS} = 1M cells");
    let cells = common::generated_cells(EXCHANGES, SYMBOLS, DAYS);
    let db = postgres::TestDatabase::new();
    let pg = Location::parse(&db.url);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let file = Location::File(dir.path().join("record.sqlite"));

    let mut record = Record::open_at(&pg, "bench").expect("the PostgreSQL record opens");
    let pg_rate = backfill(&mut record, &cells);
    drop(record);
    let pg_resume = resume(&pg, cells.len());
    let mut record = Record::open_at(&file, "bench").expect("the SQLite record opens");
    let file_rate = backfill(&mut record, &cells);
    drop(record);
    let file_resume = resume(&file, cells.len());
    let size = postgres::psql(&db.url, "SELECT pg_database_size(current_database())");
    let size: f64 = size.parse().unwrap_or(0.0);

    println!("| case | PostgreSQL | SQLite (same run) | target |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| backfill, 1M cells in flushes of {FLUSH} | {:.0} cells/s {} | {:.0} cells/s | >= 50,000 cells/s |",
        pg_rate,
        verdict(pg_rate >= 50_000.0),
        file_rate
    );
    println!(
        "| resume: load 1M cells | {:.2} s {} | {:.2} s | <= 5 s |",
        pg_resume,
        verdict(pg_resume <= 5.0),
        file_resume
    );
    println!(
        "| database size | {:.0} B/cell | — | — |",
        size / cells.len() as f64
    );
    let failover_db = postgres::TestDatabase::new();
    let failover = failover(&failover_db, dir.path());
    let target = TTL.as_secs_f64() + 2.0;
    println!(
        "| failover: SIGKILL of the daemon holding every lane to the next request by another (lease TTL {} s) | {:.2} s {} | — | <= {:.0} s |",
        TTL.as_secs(),
        failover,
        verdict(failover <= target),
        target
    );
    println!("reproduce: cargo bench --bench postgres");
}
