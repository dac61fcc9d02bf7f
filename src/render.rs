//! Turning results into text: aligned tables for people, CSV and JSON for
//! programs. The one place that decides how a number, a day or an empty
//! cell is written, for `pricegrid query`, `pricegrid snapshots` and the
//! HTTP API alike.
//!
//! Pure: values come in, a `String` ending in a newline goes out. It never
//! reads files, talks to actors or prints. The one binary form, Parquet,
//! is `render::parquet`, written to a writer the caller hands it.

use std::fmt;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

mod reference;

pub use reference::render_references;

use crate::query::coverage::PairCoverage;
use crate::query::{Across, Field, Row};
use crate::record::RoundRow;

/// How rendered output is laid out: aligned columns for people, JSON or CSV
/// for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

impl Format {
    /// Every format, in the order they are offered.
    pub const ALL: [Format; 3] = [Format::Table, Format::Json, Format::Csv];

    /// The lowercase name, as typed on the command line or in a query.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }

    /// The HTTP `Content-Type` of text in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Table => "text/plain; charset=utf-8",
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no `Format`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown format {0:?}, expected one of 'table', 'json', 'csv'")]
pub struct ParseFormatError(pub String);

impl std::str::FromStr for Format {
    type Err = ParseFormatError;

    /// Exact lowercase names only, the spelling clap accepts too, so a
    /// format is written the same on the command line and in a URL.
    fn from_str(s: &str) -> Result<Self, ParseFormatError> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| ParseFormatError(s.to_owned()))
    }
}

/// Renders rows. Columns: exchange, symbol, day, state, then `field = Some(f)`:
/// only that field; `None`: all five; then flags and reason. A row without a
/// price renders empty cells (table, csv) or null (json).
///
/// Numbers are written in Rust's shortest round-trip form, so reading the CSV
/// or JSON back gives the identical `f64`. Every format ends with a newline,
/// so the caller writes the text as it is.
pub fn render_rows(rows: &[Row], field: Option<Field>, format: Format) -> String {
    let fields: &[Field] = match &field {
        Some(f) => std::slice::from_ref(f),
        None => &Field::ALL,
    };
    match format {
        Format::Json => {
            let views: Vec<RowView<'_>> = rows.iter().map(|row| RowView { row, fields }).collect();
            json_text(&views)
        }
        Format::Csv | Format::Table => {
            let mut header = vec!["exchange", "symbol", "day", "state"];
            header.extend(fields.iter().map(|f| f.name()));
            header.extend(["flags", "reason"]);
            let mut numeric = vec![false; 4];
            numeric.extend(fields.iter().map(|_| true));
            numeric.extend([false, false]);
            let num = numbers_for(format);
            let cells: Vec<Vec<String>> =
                rows.iter().map(|row| row_cells(row, fields, num)).collect();
            if format == Format::Csv {
                csv_text(&header, &cells)
            } else {
                table_text(&header, &numeric, &cells)
            }
        }
    }
}

/// The columns of `render_cells`: every field a cell holds.
pub const CELL_COLUMNS: [&str; 16] = [
    "exchange",
    "symbol",
    "day",
    "state",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "flags",
    "reason",
    "attempts",
    "fetched_at",
    "round",
    "source",
    "market",
];

/// Renders every cell of `store` as CSV, a line per cell in the store's
/// (exchange, symbol, day) order with every field it holds
/// (`CELL_COLUMNS`): what `export --format csv` writes. Unlike
/// `render_rows`, a rejected cell shows the price it was sent (its reason
/// says why it was refused), and times are RFC 3339 UTC to the millisecond.
pub fn render_cells(store: &crate::store::Store) -> String {
    let cells: Vec<Vec<String>> = store
        .iter()
        .map(|(exchange, symbol, day, cell)| {
            let price = |f: Field| optional_number(cell.price.map(|p| f.of(&p)));
            vec![
                exchange.to_string(),
                symbol.to_string(),
                day.format("%Y-%m-%d").to_string(),
                cell.state.to_string(),
                price(Field::Open),
                price(Field::High),
                price(Field::Low),
                price(Field::Close),
                price(Field::Volume),
                cell.flags.names().join(" "),
                cell.note
                    .as_ref()
                    .map(|n| n.reason.clone())
                    .unwrap_or_default(),
                cell.note
                    .as_ref()
                    .map(|n| n.attempts.to_string())
                    .unwrap_or_default(),
                cell.fetched_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default(),
                cell.round.to_string(),
                cell.source.as_deref().unwrap_or_default().to_owned(),
                cell.source
                    .as_deref()
                    .and_then(crate::model::Market::of_source)
                    .unwrap_or_default()
                    .to_owned(),
            ]
        })
        .collect();
    csv_text(&CELL_COLUMNS, &cells)
}

/// Renders cross-exchange figures, one line or object per (symbol, day), with
/// the same number, date and newline conventions as `render_rows`.
pub fn render_across(rows: &[Across], format: Format) -> String {
    const HEADER: [&str; 10] = [
        "symbol",
        "day",
        "exchanges",
        "min_close",
        "min_exchange",
        "max_close",
        "max_exchange",
        "median_close",
        "vwap_close",
        "spread_pct",
    ];
    const NUMERIC: [bool; 10] = [
        false, false, true, true, false, true, false, true, true, true,
    ];
    match format {
        Format::Json => json_text(rows),
        Format::Csv | Format::Table => {
            let num = numbers_for(format);
            let cells: Vec<Vec<String>> = rows.iter().map(|a| across_cells(a, num)).collect();
            if format == Format::Csv {
                csv_text(&HEADER, &cells)
            } else {
                table_text(&HEADER, &NUMERIC, &cells)
            }
        }
    }
}

/// Renders coverage (`pricegrid coverage`, `/v1/coverage`): one line or
/// object per (exchange, symbol). JSON keeps the gaps as objects; a table
/// or CSV line lists them in one column, `kind from[..to]` separated by
/// `; ` (`none 2020-03-05; failed 2020-04-01..2020-04-03`).
pub fn render_coverage(rows: &[PairCoverage], format: Format) -> String {
    const HEADER: [&str; 14] = [
        "exchange",
        "symbol",
        "from",
        "to",
        "first",
        "last",
        "final",
        "provisional",
        "none",
        "failed",
        "rejected",
        "missing",
        "share_final",
        "gaps",
    ];
    const NUMERIC: [bool; 14] = [
        false, false, false, false, false, false, true, true, true, true, true, true, true, false,
    ];
    if format == Format::Json {
        return json_text(rows);
    }
    let num = numbers_for(format);
    let day = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let c = &r.coverage;
            let gaps = c
                .gaps
                .iter()
                .map(|g| {
                    let kind = g.kind.as_str();
                    if g.days == 1 {
                        format!("{kind} {}", g.from)
                    } else {
                        format!("{kind} {}..{}", g.from, g.to)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            vec![
                r.exchange.to_string(),
                r.symbol.to_string(),
                r.from.to_string(),
                r.to.to_string(),
                day(c.first),
                day(c.last),
                c.counts.final_.to_string(),
                c.counts.provisional.to_string(),
                c.counts.none.to_string(),
                c.counts.failed.to_string(),
                c.counts.rejected.to_string(),
                c.counts.missing.to_string(),
                num(c.share_final),
                gaps,
            ]
        })
        .collect();
    if format == Format::Csv {
        csv_text(&HEADER, &cells)
    } else {
        table_text(&HEADER, &NUMERIC, &cells)
    }
}

/// Renders the record's rounds (`pricegrid snapshots`): one line or
/// object per round, newest first as given. Times are RFC 3339 UTC; a round
/// not finished has an empty `finished`.
pub fn render_rounds(rounds: &[RoundRow], format: Format) -> String {
    const HEADER: [&str; 11] = [
        "round",
        "started",
        "finished",
        "status",
        "config",
        "tasks",
        "final",
        "provisional",
        "none",
        "failed",
        "rejected",
    ];
    const NUMERIC: [bool; 11] = [
        true, false, false, false, true, true, true, true, true, true, true,
    ];
    match format {
        Format::Json => json_text(rounds),
        Format::Csv | Format::Table => {
            let cells: Vec<Vec<String>> = rounds.iter().map(round_cells).collect();
            if format == Format::Csv {
                csv_text(&HEADER, &cells)
            } else {
                table_text(&HEADER, &NUMERIC, &cells)
            }
        }
    }
}

fn round_cells(r: &RoundRow) -> Vec<String> {
    let time =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let c = r.counts;
    vec![
        r.round.to_string(),
        time(r.started),
        r.finished.map(time).unwrap_or_default(),
        r.status.as_str().to_owned(),
        r.config_version.to_string(),
        c.tasks.to_string(),
        c.finals.to_string(),
        c.provisional.to_string(),
        c.none.to_string(),
        c.failed.to_string(),
        c.rejected.to_string(),
    ]
}

/// A row as a JSON object with keys in column order (a `serde_json::Value`
/// map would sort them) and a key per shown field.
struct RowView<'a> {
    row: &'a Row,
    fields: &'a [Field],
}

impl Serialize for RowView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("exchange", &self.row.exchange)?;
        map.serialize_entry("symbol", &self.row.symbol)?;
        map.serialize_entry("day", &self.row.day)?;
        map.serialize_entry("state", &self.row.state)?;
        for field in self.fields {
            map.serialize_entry(field.name(), &self.row.price.map(|p| field.of(&p)))?;
        }
        map.serialize_entry("flags", &self.row.flags)?;
        if let Some(t) = &self.row.fetched_at {
            map.serialize_entry("fetched_at", t)?;
        }
        if let Some(r) = &self.row.reason {
            map.serialize_entry("reason", r)?;
        }
        if let Some(m) = &self.row.market {
            map.serialize_entry("market", m)?;
        }
        map.end()
    }
}

fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    // Only names, dates, paths and numbers are serialized, with string keys:
    // serde_json has no way to fail on them.
    let mut text = serde_json::to_string_pretty(value).expect("rows serialize to JSON");
    text.push('\n');
    text
}

/// The shortest text that parses back to the identical `f64`.
fn number(x: f64) -> String {
    format!("{x}")
}

fn optional_number(x: Option<f64>) -> String {
    x.map(number).unwrap_or_default()
}

/// How numbers are written in `format`: exactly for programs (CSV, JSON),
/// rounded for a person reading a table.
fn numbers_for(format: Format) -> fn(f64) -> String {
    match format {
        Format::Table => table_number,
        Format::Csv | Format::Json => number,
    }
}

/// A number as a table shows it: a price as an exchange quotes it, not a
/// computed figure's float noise. From 1 up, at most two decimals
/// (`4779.9050388583655` is `4779.91`, `7.5` stays `7.5`); below 1, four
/// significant digits (`0.00001234`); beyond what rounding can help
/// (under 1e-8, from 1e15 up), the exact form.
pub fn table_number(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() || a == 0.0 || !(1e-8..1e15).contains(&a) {
        return number(x);
    }
    if a >= 1.0 {
        return number((x * 100.0).round() / 100.0);
    }
    // 4 significant digits: a is in [1e-8, 1), so this is 4..=11 decimals.
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 12) as usize;
    let text = format!("{x:.decimals$}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn row_cells(row: &Row, fields: &[Field], num: fn(f64) -> String) -> Vec<String> {
    let mut cells = vec![
        row.exchange.to_string(),
        row.symbol.to_string(),
        row.day.format("%Y-%m-%d").to_string(),
        row.state.to_string(),
    ];
    cells.extend(
        fields
            .iter()
            .map(|f| row.price.map(|p| num(f.of(&p))).unwrap_or_default()),
    );
    cells.push(row.flags.names().join(" "));
    cells.push(row.reason.clone().unwrap_or_default());
    cells
}

fn across_cells(a: &Across, num: fn(f64) -> String) -> Vec<String> {
    vec![
        a.symbol.to_string(),
        a.day.format("%Y-%m-%d").to_string(),
        a.exchanges.to_string(),
        num(a.min_close),
        a.min_exchange.to_string(),
        num(a.max_close),
        a.max_exchange.to_string(),
        num(a.median_close),
        a.vwap_close.map(num).unwrap_or_default(),
        a.spread_pct.map(num).unwrap_or_default(),
    ]
}

fn csv_text(header: &[&str], rows: &[Vec<String>]) -> String {
    // Writing to memory has no I/O to fail, every record has the header's
    // length and every cell is UTF-8, so none of the `expect`s below can fire.
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(header)
        .expect("CSV header writes to memory");
    for row in rows {
        writer.write_record(row).expect("CSV row writes to memory");
    }
    let bytes = writer.into_inner().expect("CSV flushes to memory");
    String::from_utf8(bytes).expect("CSV of UTF-8 cells is UTF-8")
}

/// An aligned text table: a header line, then one line per row. Columns are
/// padded to their widest cell and separated by two spaces; `numeric`
/// columns are right-aligned so digits line up. Every line, header included,
/// has the same length, so the text can be cut by column position.
pub fn table_text(header: &[&str], numeric: &[bool], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let lines = std::iter::once(header.to_vec()).chain(
        rows.iter()
            .map(|row| row.iter().map(String::as_str).collect()),
    );
    let mut text = String::new();
    for line in lines {
        for (col, cell) in line.into_iter().enumerate() {
            if col > 0 {
                text.push_str("  ");
            }
            let width = widths[col];
            if numeric[col] {
                text.push_str(&format!("{cell:>width$}"));
            } else {
                text.push_str(&format!("{cell:<width$}"));
            }
        }
        text.push('\n');
    }
    text
}

pub mod parquet;

#[cfg(test)]
mod tests;
