//! The PostgreSQL record at 1M cells (100 exchanges x 10 symbols x 1,000
//! days of generated prices), beside the SQLite file in the same run:
//!
//! 1. Backfill: the 1M cells written as a daemon's flushes write them (one
//!    round, 50,000 cells a transaction). Target: >= 50,000 cells/s.
//! 2. Resume: a new connection's `load()` of the 1M cells into a store.
//!    Target: <= 5 s.
//!
//! PostgreSQL is the tests' throwaway cluster (tests/common/postgres.rs:
//! loopback, fsync off), or the server at `PRICEGRID_TEST_DATABASE_URL`.
//! Prints figures, asserts only on correctness.
//!
//!     cargo bench --bench postgres

#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pricegrid::model::{CellState, Counts, Flags, RoundSummary, TaskKey};
use pricegrid::record::{Location, Record};
use pricegrid::server::{Dataset, GeneratedSpec};
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

fn cells() -> Vec<(TaskKey, Cell)> {
    let spec = GeneratedSpec::synthetic(1, EXCHANGES, SYMBOLS, DAYS);
    let ds = Dataset::generated(spec.clone());
    let days: Vec<_> = spec.from.iter_days().take(DAYS as usize).collect();
    let fetched: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().expect("a valid time");
    let source: Arc<str> = Arc::from("http://127.0.0.1:8080/");
    let mut cells = Vec::with_capacity(EXCHANGES * SYMBOLS * DAYS as usize);
    for e in &spec.exchanges {
        for s in &spec.symbols {
            for &day in &days {
                let price = ds.price_of(e, s, day);
                let cell = Cell {
                    state: if price.is_some() {
                        CellState::Final
                    } else {
                        CellState::NoPrice
                    },
                    price,
                    flags: price.map_or(Flags::NONE, |p| Flags::of(&p, true)),
                    fetched_at: Some(fetched),
                    round: 1,
                    source: Some(source.clone()),
                    note: None,
                };
                let key = TaskKey {
                    exchange: e.clone(),
                    symbol: s.clone(),
                    day,
                };
                cells.push((key, cell));
            }
        }
    }
    cells
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

fn main() {
    println!("# postgres bench: {EXCHANGES} x {SYMBOLS} x {DAYS} = 1M cells");
    let cells = cells();
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
    println!("reproduce: cargo bench --bench postgres");
}
