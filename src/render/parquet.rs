//! The aggregate as a Parquet file (`export --format parquet`): one row per
//! cell, in the store's (exchange, symbol, day) order, with typed columns
//! that DuckDB, pandas (pyarrow) and Polars read as they are: `day` a DATE,
//! the five prices float64 (null without a price), `fetched_at` a UTC
//! timestamp in milliseconds, names, state, flags and notes strings,
//! dictionary-encoded (a column of few distinct values, such as `state`
//! and `flags`, costs a few bits a row). Written with the parquet crate's
//! column writers, without arrow: the schema below is the whole contract.
//!
//! Writes only to the writer it is handed (the caller opens, syncs and
//! renames the file); it never reads the record or talks to actors.

use std::io::Write;
use std::sync::Arc;

use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

use crate::model::{Market, Ohlcv};
use crate::record::Recorded;
use crate::store::Store;

/// The file's schema: one column per field of `export --format csv`, in
/// its order (`render::CELL_COLUMNS`), `day` named the same.
pub const SCHEMA: &str = "
message cell {
  required binary exchange (STRING);
  required binary symbol (STRING);
  required int32 day (DATE);
  required binary state (STRING);
  optional double open;
  optional double high;
  optional double low;
  optional double close;
  optional double volume;
  required binary flags (STRING);
  optional binary reason (STRING);
  optional int32 attempts;
  optional int64 fetched_at (TIMESTAMP(MILLIS,true));
  required int64 round;
  optional binary source (STRING);
  optional binary market (STRING);
}";

/// Rows in a row group: the rows held in memory at once while writing,
/// and the unit a reader skips by.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Writing the Parquet file failed (the writer's I/O, or the encoder).
#[derive(Debug, thiserror::Error)]
#[error("writing Parquet: {0}")]
pub struct ParquetError(#[from] parquet::errors::ParquetError);

/// One row group's columns, filled a cell at a time. Optional columns hold
/// their values and, beside them, a definition level per row (1: a value,
/// 0: null), as Parquet stores them.
#[derive(Default)]
struct Columns {
    rows: usize,
    exchange: Vec<ByteArray>,
    symbol: Vec<ByteArray>,
    day: Vec<i32>,
    state: Vec<ByteArray>,
    prices: [Optional<f64>; 5],
    flags: Vec<ByteArray>,
    reason: Optional<ByteArray>,
    attempts: Optional<i32>,
    fetched_at: Optional<i64>,
    round: Vec<i64>,
    source: Optional<ByteArray>,
    market: Optional<ByteArray>,
}

/// An optional column's values and definition levels.
struct Optional<T> {
    values: Vec<T>,
    defined: Vec<i16>,
}

impl<T> Default for Optional<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            defined: Vec::new(),
        }
    }
}

impl<T> Optional<T> {
    fn push(&mut self, value: Option<T>) {
        self.defined.push(i16::from(value.is_some()));
        self.values.extend(value);
    }
}

fn text(s: &str) -> ByteArray {
    ByteArray::from(s.as_bytes().to_vec())
}

/// Days since 1970-01-01, Parquet's DATE.
fn epoch_day(day: chrono::NaiveDate) -> i32 {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    // A NaiveDate spans about ±262,000 years: its days fit an i32.
    i32::try_from((day - epoch).num_days()).unwrap_or(i32::MAX)
}

/// Writes every cell of `store` to `out` as a Parquet file; returns the
/// rows written.
pub fn write_cells<W: Write + Send>(store: &Store, out: W) -> Result<u64, ParquetError> {
    let schema = Arc::new(parse_message_type(SCHEMA)?);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("pricegrid {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer = SerializedFileWriter::new(out, schema, Arc::new(props))?;
    let mut columns = Columns::default();
    let mut rows = 0u64;
    for (exchange, symbol, day, cell) in store.iter() {
        let c = &mut columns;
        c.exchange.push(text(exchange.as_str()));
        c.symbol.push(text(symbol.as_str()));
        c.day.push(epoch_day(day));
        c.state.push(text(cell.state.as_str()));
        let price: Option<Ohlcv> = cell.price;
        let numbers = price.map(|p| [p.open, p.high, p.low, p.close, p.volume]);
        for (i, column) in c.prices.iter_mut().enumerate() {
            column.push(numbers.map(|n| n[i]));
        }
        c.flags.push(text(&cell.flags.names().join(" ")));
        c.reason.push(cell.note.as_ref().map(|n| text(&n.reason)));
        c.attempts.push(
            cell.note
                .as_ref()
                .map(|n| i32::try_from(n.attempts).unwrap_or(i32::MAX)),
        );
        c.fetched_at
            .push(cell.fetched_at.map(|t| t.timestamp_millis()));
        c.round.push(i64::try_from(cell.round).unwrap_or(i64::MAX));
        c.source.push(cell.source.as_deref().map(text));
        c.market
            .push(cell.source.as_deref().and_then(Market::of_source).map(text));
        c.rows += 1;
        rows += 1;
        if c.rows == ROW_GROUP_ROWS {
            write_group(&mut writer, std::mem::take(&mut columns))?;
        }
    }
    if columns.rows > 0 || rows == 0 {
        write_group(&mut writer, columns)?;
    }
    writer.close()?;
    Ok(rows)
}

/// Writes one row group, its columns in the schema's order.
fn write_group<W: Write + Send>(
    writer: &mut SerializedFileWriter<W>,
    c: Columns,
) -> Result<(), ParquetError> {
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        match index {
            0 => column
                .typed::<ByteArrayType>()
                .write_batch(&c.exchange, None, None)?,
            1 => column
                .typed::<ByteArrayType>()
                .write_batch(&c.symbol, None, None)?,
            2 => column
                .typed::<Int32Type>()
                .write_batch(&c.day, None, None)?,
            3 => column
                .typed::<ByteArrayType>()
                .write_batch(&c.state, None, None)?,
            4..=8 => {
                let p = &c.prices[index - 4];
                column
                    .typed::<DoubleType>()
                    .write_batch(&p.values, Some(&p.defined), None)?
            }
            9 => column
                .typed::<ByteArrayType>()
                .write_batch(&c.flags, None, None)?,
            10 => optional::<ByteArrayType>(&mut column, &c.reason)?,
            11 => optional::<Int32Type>(&mut column, &c.attempts)?,
            12 => optional::<Int64Type>(&mut column, &c.fetched_at)?,
            13 => column
                .typed::<Int64Type>()
                .write_batch(&c.round, None, None)?,
            14 => optional::<ByteArrayType>(&mut column, &c.source)?,
            15 => optional::<ByteArrayType>(&mut column, &c.market)?,
            _ => {
                return Err(ParquetError(parquet::errors::ParquetError::General(
                    format!("the schema has a column past the 16 written: {index}"),
                )))
            }
        };
        column.close()?;
        index += 1;
    }
    group.close()?;
    Ok(())
}

fn optional<T: parquet::data_type::DataType>(
    column: &mut parquet::file::writer::SerializedColumnWriter<'_>,
    values: &Optional<T::T>,
) -> Result<usize, parquet::errors::ParquetError> {
    column
        .typed::<T>()
        .write_batch(&values.values, Some(&values.defined), None)
}

/// The reference closes' schema (`export --format parquet --reference`):
/// one row per symbol-day as it stood, `excluded` the cells left out as
/// JSON (`[{"exchange": …, "why": …}]`, as `/v1/reference` gives them).
pub const REFERENCE_SCHEMA: &str = "
message reference {
  required binary symbol (STRING);
  required int32 day (DATE);
  optional double close;
  required binary status (STRING);
  required binary constituents (STRING);
  required binary excluded (STRING);
  optional double min;
  optional double max;
  optional double spread;
  optional double mad;
  required int64 round;
}";

/// Writes the reference closes `rows` to `out` as a Parquet file (one row
/// group); returns the rows written.
pub fn write_references<W: Write + Send>(rows: &[Recorded], out: W) -> Result<u64, ParquetError> {
    let schema = Arc::new(parse_message_type(REFERENCE_SCHEMA)?);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(format!("pricegrid {}", env!("CARGO_PKG_VERSION")))
        .build();
    let mut writer = SerializedFileWriter::new(out, schema, Arc::new(props))?;
    let mut symbol = Vec::new();
    let mut day = Vec::new();
    let mut close = Optional::default();
    let mut status = Vec::new();
    let mut constituents = Vec::new();
    let mut excluded = Vec::new();
    let mut dispersion: [Optional<f64>; 4] = Default::default();
    let mut round = Vec::new();
    for r in rows {
        symbol.push(text(r.symbol.as_str()));
        day.push(epoch_day(r.day));
        close.push(r.close);
        status.push(text(r.status.as_str()));
        let names: Vec<&str> = r.constituents.iter().map(|e| e.as_str()).collect();
        constituents.push(text(&names.join(" ")));
        let json = serde_json::to_string(&r.excluded).map_err(|e| {
            ParquetError(parquet::errors::ParquetError::General(format!(
                "the excluded cells of {}/{}: {e}",
                r.symbol, r.day
            )))
        })?;
        excluded.push(text(&json));
        let d = r.dispersion;
        for (column, v) in dispersion.iter_mut().zip([
            d.map(|d| d.min),
            d.map(|d| d.max),
            d.map(|d| d.spread),
            d.map(|d| d.mad),
        ]) {
            column.push(v);
        }
        round.push(i64::try_from(r.round).unwrap_or(i64::MAX));
    }
    let mut group = writer.next_row_group()?;
    let mut index = 0;
    while let Some(mut column) = group.next_column()? {
        match index {
            0 => column
                .typed::<ByteArrayType>()
                .write_batch(&symbol, None, None)?,
            1 => column.typed::<Int32Type>().write_batch(&day, None, None)?,
            2 => optional::<DoubleType>(&mut column, &close)?,
            3 => column
                .typed::<ByteArrayType>()
                .write_batch(&status, None, None)?,
            4 => column
                .typed::<ByteArrayType>()
                .write_batch(&constituents, None, None)?,
            5 => column
                .typed::<ByteArrayType>()
                .write_batch(&excluded, None, None)?,
            6..=9 => optional::<DoubleType>(&mut column, &dispersion[index - 6])?,
            10 => column
                .typed::<Int64Type>()
                .write_batch(&round, None, None)?,
            _ => {
                return Err(ParquetError(parquet::errors::ParquetError::General(
                    format!("the reference schema has a column past the 11 written: {index}"),
                )))
            }
        };
        column.close()?;
        index += 1;
    }
    group.close()?;
    writer.close()?;
    Ok(rows.len() as u64)
}
