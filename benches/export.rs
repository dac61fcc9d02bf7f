//! Export benchmark: `export --format parquet` of 1M cells (100 exchanges
//! x 10 symbols x 1,000 days of generated prices, 2% "none"), beside the
//! CSV export of the same store (the peer: what people loaded before).
//!
//! Prints, each beside its target:
//! - the file's size in bytes a cell, and its ratio to the CSV's
//!   (target: at most a third of the CSV);
//! - the write time (median of 3), and its ratio to the CSV's render and
//!   write (target: no slower than the CSV);
//! - the read-back: the row count and the non-null closes and their sum, by
//!   the parquet crate's reader and, where python3 has pyarrow, by pyarrow
//!   (target: both equal to the store's).
//!
//! Prints figures, asserts only on correctness; no time is asserted.
//!
//!     cargo bench --bench export

mod common;

use std::io::Write;
use std::time::Instant;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

const EXCHANGES: usize = 100;
const SYMBOLS: usize = 10;
const DAYS: u32 = 1000;
const ROUNDS: usize = 3;

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let t0 = Instant::now();
    let store = common::generated_store(EXCHANGES, SYMBOLS, DAYS);
    let cells = store.len();
    println!(
        "store: {cells} cells ({EXCHANGES} exchanges x {SYMBOLS} symbols x {DAYS} days) built in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let closes: Vec<f64> = store
        .iter()
        .filter_map(|(_, _, _, c)| c.price.map(|p| p.close))
        .collect();
    let close_sum: f64 = closes.iter().sum();

    let parquet_file = dir.path().join("cells.parquet");
    let mut parquet_times = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let file = std::fs::File::create(&parquet_file).expect("the file");
        let mut out = std::io::BufWriter::new(file);
        let rows = pricegrid::parquet::write_cells(&store, &mut out).expect("written");
        out.flush().expect("flushed");
        parquet_times.push(t.elapsed().as_secs_f64());
        assert_eq!(rows, cells as u64);
    }
    let csv_file = dir.path().join("cells.csv");
    let mut csv_times = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        std::fs::write(&csv_file, pricegrid::render_cells(&store)).expect("written");
        csv_times.push(t.elapsed().as_secs_f64());
    }
    let size = |p: &std::path::Path| std::fs::metadata(p).expect("a file").len();
    let (parquet_bytes, csv_bytes) = (size(&parquet_file), size(&csv_file));
    let (parquet_s, csv_s) = (common::median(parquet_times), common::median(csv_times));

    // Read back with the parquet crate: every row's close.
    let t = Instant::now();
    let reader = SerializedFileReader::new(std::fs::File::open(&parquet_file).expect("the file"))
        .expect("a Parquet file");
    let rows = reader.metadata().file_metadata().num_rows();
    let close = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .find(|f| f.name() == "close")
        .expect("a close column")
        .clone();
    let projection = parquet::schema::types::Type::group_type_builder("cell")
        .with_fields(vec![close])
        .build()
        .expect("a projection");
    let (mut read_rows, mut read_closes, mut read_sum) = (0u64, 0u64, 0.0);
    for row in reader.get_row_iter(Some(projection)).expect("rows") {
        read_rows += 1;
        for (_, field) in row.expect("a row").get_column_iter() {
            if let Field::Double(x) = field {
                read_closes += 1;
                read_sum += x;
            }
        }
    }
    let read_s = t.elapsed().as_secs_f64();
    assert_eq!((rows, read_rows), (cells as i64, cells as u64));
    assert_eq!(read_closes, closes.len() as u64);
    assert!((read_sum - close_sum).abs() <= 1e-9 * close_sum.abs());

    println!();
    println!("| case | result | target |");
    println!("| --- | --- | --- |");
    println!(
        "| Parquet size | {:.1} MiB, {:.1} B/cell; {:.2}x the CSV's {:.1} MiB | <= 0.33x the CSV |",
        common::mib(parquet_bytes),
        parquet_bytes as f64 / cells as f64,
        parquet_bytes as f64 / csv_bytes as f64,
        common::mib(csv_bytes)
    );
    println!(
        "| Parquet write | {:.2} s ({:.2} us/cell); {:.2}x the CSV's {:.2} s | <= 1x the CSV |",
        parquet_s,
        parquet_s * 1e6 / cells as f64,
        parquet_s / csv_s,
        csv_s
    );
    println!(
        "| read back (parquet crate) | {read_rows} rows, {read_closes} closes, sum equal, in {read_s:.2} s | = the store's {cells} rows, {} closes |",
        closes.len()
    );
    match pyarrow_read(&parquet_file) {
        Some((rows, closes_read, sum, secs)) => {
            assert_eq!(rows, cells as u64, "pyarrow's row count");
            assert_eq!(closes_read, closes.len() as u64, "pyarrow's closes");
            assert!(
                (sum - close_sum).abs() <= 1e-9 * close_sum.abs(),
                "pyarrow's sum"
            );
            println!(
                "| read back (pyarrow) | {rows} rows, {closes_read} closes, sum equal, in {secs:.2} s | = the store's |"
            );
        }
        None => {
            println!("| read back (pyarrow) | not run: no python3 with pyarrow | = the store's |")
        }
    }
    println!();
    println!("reproduce: cargo bench --bench export");
}

/// Reads the file with pyarrow: (rows, non-null closes, their sum, seconds
/// to read the table), or `None` where python3 or pyarrow is missing.
fn pyarrow_read(file: &std::path::Path) -> Option<(u64, u64, f64, f64)> {
    const SCRIPT: &str = "
import sys, time
import pyarrow.parquet as pq, pyarrow.compute as pc
t = time.perf_counter()
table = pq.read_table(sys.argv[1])
secs = time.perf_counter() - t
close = table.column('close')
print(table.num_rows, len(close) - close.null_count, repr(pc.sum(close).as_py()), secs)
";
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(file)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("pyarrow: {}", String::from_utf8_lossy(&out.stderr).trim());
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    Some((
        words.next()?.parse().ok()?,
        words.next()?.parse().ok()?,
        words.next()?.parse().ok()?,
        words.next()?.parse().ok()?,
    ))
}
