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
//! 5. The same 1M answers again from a new source URL (a reconfigured
//!    source re-asks every cell): the growth of the file. Target: ~0 (only
//!    the interned source; no history row for an answer that repeats).
//! 6. Steady state on a record shaped like the 20M universe (20 exchanges
//!    x 1,000 symbols, 50 days: 1M cells, 20,000 series): a round that
//!    adds today's 20,000 cells, and one that changes all of them (each a
//!    history row). Target: <= 20 MB written each, the WAL and the
//!    checkpoint's copy into the file together, as the kernel counts what
//!    reached storage (twice the WAL where it does not count).
//!
//! Bytes a cell (1. and 6.) is the file after a checkpoint over the cells,
//! each with its first history row. Target: <= 100 bytes.
//!
//! Prints figures, asserts only on correctness; no time is asserted.
//!
//!     cargo bench --bench record

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use pricegrid::model::{CellState, Counts, Flags, Ohlcv, RoundSummary, Symbol, TaskKey};
use pricegrid::record::Record;
use pricegrid::server::GeneratedSpec;
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
    let days: Vec<_> = spec.from.iter_days().take(DAYS as usize).collect();
    let fetched: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().expect("a valid time");
    let source: Arc<str> = Arc::from("http://127.0.0.1:8080/");
    let cells = common::generated_cells(EXCHANGES, SYMBOLS, DAYS);
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
    let per_cell = size as f64 / cells.len() as f64;
    println!(
        "initial write  cells={} prices={prices} time={:.2}s  file={:.1}MiB ({:.0} bytes/cell, each with its first history row)",
        cells.len(),
        first.as_secs_f64(),
        mib(size),
        per_cell
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
    let mut record = Record::open(&path).expect("the record opens again");
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
    let symbol_days = |read: &dyn Fn(Symbol, NaiveDate) -> Vec<(TaskKey, Cell)>| {
        let mut times = Vec::new();
        for i in 0..50 {
            let symbol = spec.symbols[i % SYMBOLS].clone();
            let day = if i % 2 == 0 { last } else { days[i * 17] };
            let started = Instant::now();
            let got = read(symbol, day);
            times.push(started.elapsed());
            assert_eq!(got.len(), EXCHANGES);
        }
        times.sort();
        (times[times.len() / 2], times[times.len() - 1])
    };
    let (median, worst) = symbol_days(&|symbol, day| {
        let got = record
            .cells_at(1, &[], &[symbol], Some(day), Some(day))
            .expect("the symbol-day reads");
        assert!(got.iter().all(|(_, c)| c.round == 1), "round 1's values");
        got
    });
    println!(
        "point in time  one symbol-day x {EXCHANGES} exchanges at round 1: median={:.2}ms max={:.2}ms (50 queries)",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    // 4b. The same questions of the current values (`query` without
    // `--round`): before, `query` loaded the whole record for them.
    let (now_median, now_worst) = symbol_days(&|symbol, day| {
        record
            .cells_now(&[], &[symbol], Some(day), Some(day))
            .expect("the symbol-day reads")
    });
    let symbol = spec.symbols[SYMBOLS / 2].clone();
    let started = Instant::now();
    let series = record
        .cells_now(&[], &[symbol], None, None)
        .expect("a symbol's every day reads");
    let one_symbol = started.elapsed();
    assert_eq!(series.len(), EXCHANGES * DAYS as usize);
    println!(
        "current        one symbol-day x {EXCHANGES} exchanges: median={:.2}ms max={:.2}ms (50 queries); \
         one symbol, every day: {:.1}ms ({} cells); the whole record loaded as the daemon resumes (query loaded it so, on one thread): {:.0}ms",
        now_median.as_secs_f64() * 1e3,
        now_worst.as_secs_f64() * 1e3,
        one_symbol.as_secs_f64() * 1e3,
        series.len(),
        resume.as_secs_f64() * 1e3
    );
    drop(series);
    let started = Instant::now();
    let whole = record.store_at(1).expect("round 1 reads");
    println!(
        "point in time  whole store at round 1: {:.3}s ({} cells)",
        started.elapsed().as_secs_f64(),
        whole.len()
    );

    drop(whole);

    // 5. The same answers again, from another source.
    let (before_same, _) = on_disk(&path);
    let other: Arc<str> = Arc::from("http://127.0.0.2:8080/");
    let again: Vec<(TaskKey, Cell)> = cells
        .iter()
        .map(|(k, c)| {
            let mut c = c.clone();
            c.source = Some(other.clone());
            c.fetched_at = Some(fetched + chrono::Duration::days(2));
            c.round = 3;
            (k.clone(), c)
        })
        .filter(|(k, _)| !changed.iter().any(|(c, _)| c == k))
        .collect();
    record
        .begin_round(3, Utc::now(), 0)
        .expect("round 3 begins");
    let stats = record.write(3, &again).expect("round 3 writes");
    record
        .finish_round(&summary(3, again.len()), Utc::now())
        .expect("round 3 finishes");
    record.checkpoint().expect("checkpoint");
    let (after_same, _) = on_disk(&path);
    let same_growth = after_same.saturating_sub(before_same);
    println!(
        "same answers   {} cells again from a new source: {} history rows, file {:.1}MiB -> {:.1}MiB (+{:.1}KiB)",
        again.len(),
        stats.history,
        mib(before_same),
        mib(after_same),
        same_growth as f64 / 1024.0
    );
    drop(record);
    drop(cells);
    drop(dir);

    // 6. Steady state on the 20M universe's shape.
    let steady = steady_state();

    println!("# targets");
    println!(
        "{} <= 100 bytes/cell on disk, with its first history row: {:.0} (100 x 10 x 1,000), {:.0} (20 x 1,000 x 50)",
        verdict(per_cell <= 100.0 && steady.per_cell <= 100.0),
        per_cell,
        steady.per_cell
    );
    println!(
        "{} ~0 growth when the same 1M answers arrive from a new source: +{:.1} KiB ({:.4} bytes/cell)",
        verdict(same_growth <= size / 100),
        same_growth as f64 / 1024.0,
        same_growth as f64 / again.len() as f64
    );
    for (what, bytes) in [
        ("adds today's 20,000 cells", steady.insert),
        ("changes today's 20,000 cells", steady.change),
    ] {
        println!(
            "{} <= 20 MB written by a round that {what}: {:.1} MB (storage writes, WAL and checkpoint)",
            verdict(bytes <= 20_000_000),
            bytes as f64 / 1e6
        );
    }
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
    println!(
        "{} <= 10 ms for one symbol-day across exchanges now (query without --round): median {:.2} ms, max {:.2} ms; {:.0}x faster than the whole load it replaced",
        verdict(now_worst <= Duration::from_millis(10)),
        now_median.as_secs_f64() * 1e3,
        now_worst.as_secs_f64() * 1e3,
        resume.as_secs_f64() / now_median.as_secs_f64()
    );
}

/// What the steady-state case measured.
struct Steady {
    per_cell: f64,
    /// Bytes written (WAL + checkpoint) by the round adding today's cells.
    insert: u64,
    /// And by the round changing them.
    change: u64,
}

/// A cell of the steady-state record: a price of `close` from `round`.
fn steady_cell(close: f64, round: u64, fetched: DateTime<Utc>, source: &Arc<str>) -> Cell {
    let p = Ohlcv::new(
        close,
        close * 1.02,
        close * 0.97,
        close * 1.001,
        1234.5678 + close,
    )
    .expect("a valid price");
    Cell {
        state: if round == 1 {
            CellState::Final
        } else {
            CellState::Provisional
        },
        price: Some(p),
        flags: Flags::NONE,
        fetched_at: Some(fetched),
        round,
        source: Some(source.clone()),
        note: None,
    }
}

/// 20 exchanges x 1,000 symbols x 50 days, then a round adding the 51st
/// day (today: 20,000 cells) and one changing each of today's prices.
fn steady_state() -> Steady {
    const EXCHANGES: usize = 20;
    const SYMBOLS: usize = 1000;
    const DAYS: u32 = 50;
    let spec = GeneratedSpec::synthetic(2, EXCHANGES, SYMBOLS, DAYS + 1);
    let days: Vec<_> = spec.from.iter_days().take(DAYS as usize + 1).collect();
    let fetched: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().expect("a valid time");
    let source: Arc<str> = Arc::from("http://127.0.0.1:8080/");
    let key = |e: usize, s: usize, d: usize| TaskKey {
        exchange: spec.exchanges[e].clone(),
        symbol: spec.symbols[s].clone(),
        day: days[d],
    };
    let close = |e: usize, s: usize, d: usize| 100.0 + (e * 7 + s * 13 + d * 3) as f64 * 0.01;
    let mut cells = Vec::with_capacity(EXCHANGES * SYMBOLS * DAYS as usize);
    for e in 0..EXCHANGES {
        for s in 0..SYMBOLS {
            for d in 0..DAYS as usize {
                cells.push((
                    key(e, s, d),
                    steady_cell(close(e, s, d), 1, fetched, &source),
                ));
            }
        }
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temp dir");
    let path = dir.path().join("steady.sqlite");
    let mut record = Record::open(&path).expect("the record opens");
    record
        .begin_round(1, Utc::now(), 0)
        .expect("round 1 begins");
    record.write(1, &cells).expect("round 1 writes");
    record
        .finish_round(&summary(1, cells.len()), Utc::now())
        .expect("round 1 finishes");
    record.checkpoint().expect("checkpoint");
    let (size, _) = on_disk(&path);
    let per_cell = size as f64 / cells.len() as f64;
    println!(
        "steady state   {EXCHANGES} x {SYMBOLS} x {DAYS} days = {} cells: file={:.1}MiB ({per_cell:.0} bytes/cell)",
        cells.len(),
        mib(size)
    );
    drop(cells);
    let today = DAYS as usize;
    let mut round = |n: u64, bump: f64| -> u64 {
        let due: Vec<(TaskKey, Cell)> = (0..EXCHANGES)
            .flat_map(|e| (0..SYMBOLS).map(move |s| (e, s)))
            .map(|(e, s)| {
                let c = steady_cell(close(e, s, today) + bump, n, fetched, &source);
                (key(e, s, today), c)
            })
            .collect();
        let (db_before, wal_before) = on_disk(&path);
        let io_before = io_write_bytes();
        let started = Instant::now();
        record.begin_round(n, Utc::now(), 0).expect("round begins");
        let stats = record.write(n, &due).expect("round writes");
        record
            .finish_round(&summary(n, due.len()), Utc::now())
            .expect("round finishes");
        let took = started.elapsed();
        let (_, wal_after) = on_disk(&path);
        let committed = wal_after.saturating_sub(wal_before);
        record.checkpoint().expect("checkpoint");
        let (db_after, _) = on_disk(&path);
        let io = io_before
            .zip(io_write_bytes())
            .map(|(a, b)| b.saturating_sub(a));
        // The checkpoint copies each page the WAL holds into the file once;
        // what reaches storage is more where the kernel counts it (whole
        // file system blocks, the WAL's frame headers, the fsyncs).
        let written = match io {
            Some(b) if b > 0 => b.max(committed * 2),
            _ => committed * 2,
        };
        println!(
            "steady round {n} {} of today's cells, {} history rows: {:.1}ms, WAL committed={:.1}MB, \
             file growth={:.1}MB, storage writes={}",
            due.len(),
            stats.history,
            took.as_secs_f64() * 1e3,
            committed as f64 / 1e6,
            db_after.saturating_sub(db_before) as f64 / 1e6,
            io.map_or("n/a".into(), |b| format!("{:.1}MB", b as f64 / 1e6)),
        );
        written
    };
    let insert = round(2, 0.0);
    let change = round(3, 0.5);
    Steady {
        per_cell,
        insert,
        change,
    }
}
