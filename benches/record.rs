//! Record benchmark: the embedded database at 1M stored prices (100
//! exchanges x 10 symbols x 1,000 days of generated prices, 2% "none").
//!
//! 1. The first round writes all 1M cells (informational).
//! 2. A round in which 100 cells changed (the last day of 100 different
//!    (exchange, symbol) series, so no two share a page): bytes committed
//!    to the WAL, bytes the checkpoint then copies into the file, and the
//!    time of the round's three transactions (begin, write, finish; each
//!    fsync'd). Target: <= 1 MB and <= 50 ms.
//! 3. Resume: open the file and `load()` the 1M cells into a store.
//!    Target: <= 2 s.
//! 4. Point in time: one symbol-day across all 100 exchanges at round 1,
//!    after round 2 changed some of them. Target: <= 10 ms.
//!
//! Prints figures, asserts only on correctness; no time is asserted.
//!
//!     cargo bench --bench record

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use pricegrid::model::{CellState, Counts, Flags, Ohlcv, RoundSummary, TaskKey};
use pricegrid::record::Record;
use pricegrid::server::{Dataset, GeneratedSpec};
use pricegrid::store::Cell;

const EXCHANGES: usize = 100;
const SYMBOLS: usize = 10;
const DAYS: u32 = 1000;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The database file plus its WAL.
fn on_disk(path: &Path) -> (u64, u64) {
    let size = |p: PathBuf| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    (size(path.to_owned()), size(PathBuf::from(wal)))
}

/// Bytes this process has caused to be sent to storage (Linux; 0 where
/// the kernel does not account them, e.g. in some containers).
fn io_write_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    let line = text.lines().find(|l| l.starts_with("write_bytes:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn summary(round: u64, cells: usize) -> RoundSummary {
    RoundSummary {
        round,
        config_version: 0,
        aborted: false,
        counts: Counts {
            tasks: cells as u64,
            finals: cells as u64,
            ..Counts::default()
        },
        elapsed: Duration::from_secs(1),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET "
    } else {
        "MISS"
    }
}

fn main() {
    println!("# record bench");
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
    let prices = cells.iter().filter(|(_, c)| c.price.is_some()).count();

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let path = dir.path().join("record.sqlite");
    let mut record = Record::open(&path).expect("the record opens");

    // 1. The first round: every cell.
    let started = Instant::now();
    record
        .begin_round(1, Utc::now(), 0)
        .expect("round 1 begins");
    record.write(1, &cells).expect("round 1 writes");
    record
        .finish_round(&summary(1, cells.len()), Utc::now())
        .expect("round 1 finishes");
    let first = started.elapsed();
    record.checkpoint().expect("checkpoint");
    let (size, _) = on_disk(&path);
    println!(
        "initial write  cells={} prices={prices} time={:.2}s  file={:.1}MiB ({:.0} bytes/cell: cells + history + index)",
        cells.len(),
        first.as_secs_f64(),
        mib(size),
        size as f64 / cells.len() as f64
    );

    // 2. A round in which 100 cells changed.
    let last = *days.last().expect("days");
    let changed: Vec<(TaskKey, Cell)> = (0..100)
        .map(|i| {
            let key = TaskKey {
                exchange: spec.exchanges[i % EXCHANGES].clone(),
                symbol: spec.symbols[i % SYMBOLS].clone(),
                day: last,
            };
            let p = Ohlcv::new(2.0, 3.0, 1.0, 2.5, 100.0 + i as f64).expect("a valid price");
            let cell = Cell {
                state: CellState::Final,
                price: Some(p),
                flags: Flags::NONE,
                fetched_at: Some(fetched + chrono::Duration::days(1)),
                round: 2,
                source: Some(source.clone()),
                note: None,
            };
            (key, cell)
        })
        .collect();
    let io_before = io_write_bytes();
    let (db_before, wal_before) = on_disk(&path);
    let started = Instant::now();
    record
        .begin_round(2, Utc::now(), 0)
        .expect("round 2 begins");
    let stats = record.write(2, &changed).expect("round 2 writes");
    record
        .finish_round(&summary(2, changed.len()), Utc::now())
        .expect("round 2 finishes");
    let round_time = started.elapsed();
    let (_, wal_after) = on_disk(&path);
    let committed = wal_after.saturating_sub(wal_before);
    record.checkpoint().expect("checkpoint");
    let (db_after, _) = on_disk(&path);
    let io = io_before
        .zip(io_write_bytes())
        .map(|(a, b)| b.saturating_sub(a));
    println!(
        "round of 100   write={:.1}ms round (3 txns)={:.1}ms  WAL committed={:.0}KiB  file growth after checkpoint={:.0}KiB  \
         storage writes incl. checkpoint={}",
        stats.elapsed.as_secs_f64() * 1e3,
        round_time.as_secs_f64() * 1e3,
        committed as f64 / 1024.0,
        db_after.saturating_sub(db_before) as f64 / 1024.0,
        io.map_or("n/a".into(), |b| format!("{:.0}KiB", b as f64 / 1024.0)),
    );
    drop(record);

    // 3. Resume.
    let started = Instant::now();
    let record = Record::open(&path).expect("the record opens again");
    let (store, last_round) = record.load().expect("the record loads");
    let resume = started.elapsed();
    assert_eq!((store.len(), last_round), (cells.len(), 2));
    let gained = changed
        .iter()
        .filter(|(k, _)| {
            let i = cells.partition_point(|(c, _)| c < k);
            cells.get(i).is_some_and(|(_, c)| c.price.is_none())
        })
        .count();
    assert_eq!(store.price_count(), prices + gained);
    println!(
        "resume         open+load={:.3}s  cells={} last round={last_round}",
        resume.as_secs_f64(),
        store.len()
    );
    drop(store);

    // 4. One symbol-day across exchanges, at round 1.
    let mut times = Vec::new();
    for i in 0..50 {
        let symbol = spec.symbols[i % SYMBOLS].clone();
        let day = if i % 2 == 0 { last } else { days[i * 17] };
        let started = Instant::now();
        let got = record
            .cells_at(1, &[], &[symbol], Some(day), Some(day))
            .expect("the symbol-day reads");
        times.push(started.elapsed());
        assert_eq!(got.len(), EXCHANGES);
        assert!(got.iter().all(|(_, c)| c.round == 1), "round 1's values");
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "point in time  one symbol-day x {EXCHANGES} exchanges at round 1: median={:.2}ms max={:.2}ms (50 queries)",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    let started = Instant::now();
    let whole = record.store_at(1).expect("round 1 reads");
    println!(
        "point in time  whole store at round 1: {:.3}s ({} cells)",
        started.elapsed().as_secs_f64(),
        whole.len()
    );

    println!("# targets");
    println!(
        "{} <= 1 MB written for a round of 100 changed cells: {:.0} KiB committed to the WAL (the checkpoint copies the same pages once more)",
        verdict(committed <= 1_000_000),
        committed as f64 / 1024.0
    );
    println!(
        "{} <= 50 ms for that round (begin + write + finish, fsync'd): {:.1} ms",
        verdict(round_time <= Duration::from_millis(50)),
        round_time.as_secs_f64() * 1e3
    );
    println!(
        "{} <= 2 s to resume 1M cells (open + load): {:.3} s",
        verdict(resume <= Duration::from_secs(2)),
        resume.as_secs_f64()
    );
    println!(
        "{} <= 10 ms for one symbol-day across exchanges at a past round: median {:.2} ms, max {:.2} ms",
        verdict(worst <= Duration::from_millis(10)),
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
}
