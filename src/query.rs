//! Questions asked of collected prices: which rows to keep (`Filter`), how one
//! symbol's day compares across exchanges (`across`), and how rows are shown
//! to a person or handed to another program (`render_rows`, `render_across`).
//!
//! Everything here is pure: rows come in, values or text go out. This module
//! never reads files, talks to actors or prints; the caller decides where the
//! rows come from and where the text goes.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::model::{CellState, Exchange, Flags, Ohlcv, Symbol};

/// One cell and what is known about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub exchange: Exchange,
    pub symbol: Symbol,
    pub day: NaiveDate,
    pub state: CellState,
    /// The price of a final or provisional cell (a rejected price is not
    /// shown as one: its reason says what it was).
    pub price: Option<Ohlcv>,
    pub flags: Flags,
    pub fetched_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why a cell failed or was rejected (or a refetch's last failure).
    pub reason: Option<String>,
}

/// Which rows to keep. An empty vec means no filter on that dimension, so the
/// default filter keeps everything. `from` and `to` are inclusive because
/// people name the first and the last day they want, not the day after.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub exchanges: Vec<Exchange>,
    pub symbols: Vec<Symbol>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Leave out provisional cells (prices or "none" that may still change).
    pub final_only: bool,
    /// Leave out prices with any quality flag.
    pub exclude_flagged: bool,
}

impl Filter {
    /// Whether a cell in `state` with `flags` is kept.
    pub fn keeps(&self, state: CellState, flags: Flags) -> bool {
        !(self.final_only && state == CellState::Provisional
            || self.exclude_flagged && !flags.is_empty())
    }

    /// Whether a row at these coordinates is kept. Takes the coordinates
    /// rather than a `Row` so callers can filter before building rows.
    /// A `from` later than `to` keeps nothing.
    pub fn matches(&self, exchange: &Exchange, symbol: &Symbol, day: NaiveDate) -> bool {
        let exchange_ok = self.exchanges.is_empty() || self.exchanges.contains(exchange);
        let symbol_ok = self.symbols.is_empty() || self.symbols.contains(symbol);
        let from_ok = match self.from {
            Some(from) => from <= day,
            None => true,
        };
        let to_ok = match self.to {
            Some(to) => day <= to,
            None => true,
        };
        exchange_ok && symbol_ok && from_ok && to_ok
    }
}

/// The cells in `store` that `filter` keeps, every state included, by
/// exchange, day, symbol (the snapshot's order).
pub fn rows(store: &crate::store::Store, filter: &Filter) -> Vec<Row> {
    let mut out: Vec<Row> = store
        .iter()
        .filter(|(e, s, d, c)| filter.matches(e, s, *d) && filter.keeps(c.state, c.flags))
        .map(|(e, s, day, c)| Row {
            exchange: e.clone(),
            symbol: s.clone(),
            day,
            state: c.state,
            price: c.usable_price(),
            flags: c.flags,
            fetched_at: c.fetched_at,
            reason: c.note.map(|n| n.reason),
        })
        .collect();
    out.sort_by(|a, b| (&a.exchange, a.day, &a.symbol).cmp(&(&b.exchange, b.day, &b.symbol)));
    out
}

/// One of the five numbers of an `Ohlcv`, chosen by name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Open,
    High,
    Low,
    Close,
    Volume,
}

/// Every field, in the order the columns are shown.
const ALL_FIELDS: [Field; 5] = [
    Field::Open,
    Field::High,
    Field::Low,
    Field::Close,
    Field::Volume,
];

impl Field {
    /// This field's number in `p`.
    pub fn of(self, p: &Ohlcv) -> f64 {
        match self {
            Field::Open => p.open,
            Field::High => p.high,
            Field::Low => p.low,
            Field::Close => p.close,
            Field::Volume => p.volume,
        }
    }

    /// The lowercase name, as used for column headers, JSON keys and parsing.
    pub fn name(self) -> &'static str {
        match self {
            Field::Open => "open",
            Field::High => "high",
            Field::Low => "low",
            Field::Close => "close",
            Field::Volume => "volume",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no `Field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown field {0:?}, expected one of 'open', 'high', 'low', 'close', 'volume'")]
pub struct ParseFieldError(pub String);

impl std::str::FromStr for Field {
    type Err = ParseFieldError;

    /// Exact lowercase names only, the same spelling clap and serde accept,
    /// so one name means one field wherever it is written.
    fn from_str(s: &str) -> Result<Self, ParseFieldError> {
        ALL_FIELDS
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| ParseFieldError(s.to_owned()))
    }
}

/// How rendered output is laid out: aligned columns for people, JSON or CSV
/// for programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Cross-exchange figures for one (symbol, day), over the exchanges that have
/// a price. Only built by `across`, so `exchanges` is never 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Across {
    pub symbol: Symbol,
    pub day: NaiveDate,
    /// How many exchanges have a price.
    pub exchanges: usize,
    pub min_close: f64,
    /// Where `min_close` was seen; on a tie, the alphabetically first exchange.
    pub min_exchange: Exchange,
    pub max_close: f64,
    /// Where `max_close` was seen; on a tie, the alphabetically first exchange.
    pub max_exchange: Exchange,
    /// The mean of the two middle values for an even count.
    pub median_close: f64,
    /// sum(close * volume) / sum(volume); None when the total volume is 0
    /// (no trade to weigh by) or the result is not a finite number.
    pub vwap_close: Option<f64>,
    /// (max / min - 1) * 100; None when `min_close` is 0 (no finite spread)
    /// or the result is not a finite number.
    pub spread_pct: Option<f64>,
}

/// Groups rows by (symbol, day), ignoring rows without a price; the output is
/// sorted by (symbol, day). A (symbol, day) where no exchange has a price
/// yields nothing. If the same (exchange, symbol, day) appears with a price
/// more than once, the first one counts: one exchange is one vote.
pub fn across(rows: &[Row]) -> Vec<Across> {
    let mut groups: BTreeMap<(&Symbol, NaiveDate), BTreeMap<&Exchange, Ohlcv>> = BTreeMap::new();
    for row in rows {
        if let Some(price) = row.price {
            groups
                .entry((&row.symbol, row.day))
                .or_default()
                .entry(&row.exchange)
                .or_insert(price);
        }
    }
    groups
        .into_iter()
        .filter_map(|((symbol, day), prices)| summarize(symbol, day, &prices))
        .collect()
}

/// The figures for one group; `prices` iterates in exchange order, which is
/// what makes ties go to the alphabetically first exchange.
fn summarize(
    symbol: &Symbol,
    day: NaiveDate,
    prices: &BTreeMap<&Exchange, Ohlcv>,
) -> Option<Across> {
    let mut iter = prices.iter();
    let (first_exchange, first) = iter.next()?;
    let (mut min_close, mut min_exchange) = (first.close, *first_exchange);
    let (mut max_close, mut max_exchange) = (first.close, *first_exchange);
    for (exchange, p) in iter {
        // Strict comparisons: an equal close later in the order never wins.
        if p.close < min_close {
            (min_close, min_exchange) = (p.close, *exchange);
        }
        if p.close > max_close {
            (max_close, max_exchange) = (p.close, *exchange);
        }
    }

    let mut closes: Vec<f64> = prices.values().map(|p| p.close).collect();
    closes.sort_by(f64::total_cmp);
    let mid = closes.len() / 2;
    let median_close = if closes.len() % 2 == 1 {
        closes[mid]
    } else {
        mean_of_two(closes[mid - 1], closes[mid])
    };

    let total_volume: f64 = prices.values().map(|p| p.volume).sum();
    let weighted: f64 = prices.values().map(|p| p.close * p.volume).sum();
    let vwap_close = (total_volume != 0.0)
        .then(|| weighted / total_volume)
        .filter(|v| v.is_finite());

    // (max - min) / min is (max / min - 1) without the cancellation that
    // subtracting 1 causes when the two closes are near each other.
    let spread_pct = (min_close != 0.0)
        .then(|| (max_close - min_close) / min_close * 100.0)
        .filter(|s| s.is_finite());

    Some(Across {
        symbol: symbol.clone(),
        day,
        exchanges: prices.len(),
        min_close,
        min_exchange: min_exchange.clone(),
        max_close,
        max_exchange: max_exchange.clone(),
        median_close,
        vwap_close,
        spread_pct,
    })
}

/// (a + b) / 2, falling back to halving first when the sum overflows.
fn mean_of_two(a: f64, b: f64) -> f64 {
    let mean = (a + b) / 2.0;
    if mean.is_finite() {
        mean
    } else {
        a / 2.0 + b / 2.0
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
        None => &ALL_FIELDS,
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
            let cells: Vec<Vec<String>> = rows.iter().map(|row| row_cells(row, fields)).collect();
            if format == Format::Csv {
                csv_text(&header, &cells)
            } else {
                table_text(&header, &numeric, &cells)
            }
        }
    }
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
            let cells: Vec<Vec<String>> = rows.iter().map(across_cells).collect();
            if format == Format::Csv {
                csv_text(&HEADER, &cells)
            } else {
                table_text(&HEADER, &NUMERIC, &cells)
            }
        }
    }
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
        map.end()
    }
}

fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    // Only names, dates and numbers are serialized, with string keys: serde_json
    // has no way to fail on them.
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

fn row_cells(row: &Row, fields: &[Field]) -> Vec<String> {
    let mut cells = vec![
        row.exchange.to_string(),
        row.symbol.to_string(),
        row.day.format("%Y-%m-%d").to_string(),
        row.state.to_string(),
    ];
    cells.extend(
        fields
            .iter()
            .map(|f| optional_number(row.price.map(|p| f.of(&p)))),
    );
    cells.push(row.flags.names().join(" "));
    cells.push(row.reason.clone().unwrap_or_default());
    cells
}

fn across_cells(a: &Across) -> Vec<String> {
    vec![
        a.symbol.to_string(),
        a.day.format("%Y-%m-%d").to_string(),
        a.exchanges.to_string(),
        number(a.min_close),
        a.min_exchange.to_string(),
        number(a.max_close),
        a.max_exchange.to_string(),
        number(a.median_close),
        optional_number(a.vwap_close),
        optional_number(a.spread_pct),
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

/// Columns padded to their widest cell and separated by two spaces; numbers
/// are right-aligned so digits line up. Every line, header included, has the
/// same length, so the text can be cut by column position.
/// An aligned text table: a header line, then one line per row; `numeric`
/// columns are right-aligned.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(name: &str) -> Exchange {
        Exchange::new(name).expect("valid exchange name")
    }

    fn sym(name: &str) -> Symbol {
        Symbol::new(name).expect("valid symbol name")
    }

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    /// A price where only close and volume matter.
    fn cv(close: f64, volume: f64) -> Ohlcv {
        Ohlcv {
            open: close,
            high: close,
            low: close,
            close,
            volume,
        }
    }

    fn row(exchange: &str, symbol: &str, on: NaiveDate, price: Option<Ohlcv>) -> Row {
        Row {
            exchange: ex(exchange),
            symbol: sym(symbol),
            day: on,
            state: if price.is_some() {
                CellState::Final
            } else {
                CellState::NoPrice
            },
            price,
            flags: Flags::NONE,
            fetched_at: None,
            reason: None,
        }
    }

    fn only(rows: &[Row]) -> Across {
        let mut out = across(rows);
        assert_eq!(out.len(), 1, "expected one (symbol, day): {out:?}");
        out.remove(0)
    }

    /// Numbers whose shortest text is long or unusual: the cases where a
    /// fixed precision or a lossy parse would change the value.
    fn awkward_rows() -> Vec<Row> {
        let d = day(2020, 3, 13);
        vec![
            row(
                "kraken",
                "btc",
                d,
                Some(Ohlcv {
                    open: 0.1 + 0.2,
                    high: 1.0 / 3.0,
                    low: 1e-7,
                    close: 5e-324,
                    volume: f64::MAX,
                }),
            ),
            row("binance", "btc", d, None),
            row(
                "coinbase-pro",
                "eth",
                day(2021, 12, 31),
                Some(Ohlcv {
                    open: 123_456.789,
                    high: 9_007_199_254_740_993.0,
                    low: 0.0,
                    close: 2.5,
                    volume: 1e21,
                }),
            ),
        ]
    }

    fn opt_cell(cell: &str) -> Option<f64> {
        (!cell.is_empty()).then(|| cell.parse::<f64>().expect("a number cell"))
    }

    fn same_bits(a: Option<f64>, b: Option<f64>) -> bool {
        a.map(f64::to_bits) == b.map(f64::to_bits)
    }

    // ---- Filter ----

    #[test]
    fn an_empty_filter_keeps_every_row() {
        let f = Filter::default();
        assert!(f.matches(&ex("kraken"), &sym("btc"), day(1999, 1, 1)));
        assert!(f.matches(&ex("binance"), &sym("eth"), day(2030, 12, 31)));
    }

    #[test]
    fn a_filter_keeps_only_the_listed_exchanges() {
        let f = Filter {
            exchanges: vec![ex("kraken"), ex("binance")],
            ..Filter::default()
        };
        let d = day(2020, 3, 13);
        assert!(f.matches(&ex("kraken"), &sym("btc"), d));
        assert!(f.matches(&ex("binance"), &sym("eth"), d));
        assert!(!f.matches(&ex("coinbase"), &sym("btc"), d));
    }

    #[test]
    fn a_filter_keeps_only_the_listed_symbols() {
        let f = Filter {
            symbols: vec![sym("btc")],
            ..Filter::default()
        };
        let d = day(2020, 3, 13);
        assert!(f.matches(&ex("kraken"), &sym("btc"), d));
        assert!(!f.matches(&ex("kraken"), &sym("eth"), d));
    }

    #[test]
    fn filter_dates_include_both_bounds() {
        let f = Filter {
            from: Some(day(2020, 3, 10)),
            to: Some(day(2020, 3, 13)),
            ..Filter::default()
        };
        let (e, s) = (ex("kraken"), sym("btc"));
        assert!(!f.matches(&e, &s, day(2020, 3, 9)));
        assert!(f.matches(&e, &s, day(2020, 3, 10)));
        assert!(f.matches(&e, &s, day(2020, 3, 11)));
        assert!(f.matches(&e, &s, day(2020, 3, 13)));
        assert!(!f.matches(&e, &s, day(2020, 3, 14)));
    }

    #[test]
    fn a_filter_with_one_date_bound_is_open_on_the_other_side() {
        let (e, s) = (ex("kraken"), sym("btc"));
        let from_only = Filter {
            from: Some(day(2020, 3, 10)),
            ..Filter::default()
        };
        assert!(!from_only.matches(&e, &s, day(2020, 3, 9)));
        assert!(from_only.matches(&e, &s, day(2099, 1, 1)));
        let to_only = Filter {
            to: Some(day(2020, 3, 10)),
            ..Filter::default()
        };
        assert!(to_only.matches(&e, &s, day(1970, 1, 1)));
        assert!(!to_only.matches(&e, &s, day(2020, 3, 11)));
    }

    #[test]
    fn filter_dimensions_must_all_match() {
        let f = Filter {
            exchanges: vec![ex("kraken")],
            symbols: vec![sym("btc")],
            from: Some(day(2020, 1, 1)),
            to: Some(day(2020, 12, 31)),
            ..Filter::default()
        };
        assert!(f.matches(&ex("kraken"), &sym("btc"), day(2020, 6, 1)));
        assert!(!f.matches(&ex("binance"), &sym("btc"), day(2020, 6, 1)));
        assert!(!f.matches(&ex("kraken"), &sym("eth"), day(2020, 6, 1)));
        assert!(!f.matches(&ex("kraken"), &sym("btc"), day(2021, 6, 1)));
    }

    #[test]
    fn a_filter_whose_from_is_after_its_to_keeps_nothing() {
        let f = Filter {
            from: Some(day(2020, 3, 14)),
            to: Some(day(2020, 3, 13)),
            ..Filter::default()
        };
        for d in [day(2020, 3, 13), day(2020, 3, 14)] {
            assert!(!f.matches(&ex("kraken"), &sym("btc"), d));
        }
    }

    // ---- Field ----

    #[test]
    fn field_of_picks_its_own_number() {
        let p = Ohlcv {
            open: 1.0,
            high: 2.0,
            low: 3.0,
            close: 4.0,
            volume: 5.0,
        };
        let got: Vec<f64> = ALL_FIELDS.iter().map(|f| f.of(&p)).collect();
        assert_eq!(got, vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn one_field_name_means_the_same_field_everywhere() {
        for f in ALL_FIELDS {
            assert_eq!(f.name().parse::<Field>(), Ok(f));
            assert_eq!(<Field as clap::ValueEnum>::from_str(f.name(), false), Ok(f));
            let json = format!("\"{}\"", f.name());
            assert_eq!(serde_json::from_str::<Field>(&json).expect("serde name"), f);
            assert_eq!(f.to_string(), f.name());
        }
    }

    #[test]
    fn a_bad_field_name_is_named_in_the_error() {
        let err = "closing".parse::<Field>().expect_err("not a field");
        assert_eq!(err, ParseFieldError("closing".to_owned()));
        let msg = err.to_string();
        assert!(msg.contains("\"closing\""), "{msg}");
        for allowed in ["open", "high", "low", "close", "volume"] {
            assert!(msg.contains(allowed), "{msg} lacks {allowed}");
        }
        assert!("Close".parse::<Field>().is_err());
        assert!("".parse::<Field>().is_err());
    }

    // ---- across ----

    #[test]
    fn across_matches_a_hand_computed_day() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("kraken", "btc", d, Some(cv(110.0, 2.0))),
            row("binance", "btc", d, Some(cv(100.0, 1.0))),
            row("coinbase", "btc", d, Some(cv(104.0, 1.0))),
        ]);
        assert_eq!(a.symbol, sym("btc"));
        assert_eq!(a.day, d);
        assert_eq!(a.exchanges, 3);
        assert_eq!((a.min_close, a.min_exchange.as_str()), (100.0, "binance"));
        assert_eq!((a.max_close, a.max_exchange.as_str()), (110.0, "kraken"));
        assert_eq!(a.median_close, 104.0);
        // (100*1 + 110*2 + 104*1) / 4 = 424 / 4
        assert_eq!(a.vwap_close, Some(106.0));
        // (110 / 100 - 1) * 100
        let spread = a.spread_pct.expect("a spread");
        assert!((spread - 10.0).abs() < 1e-12, "{spread}");
    }

    #[test]
    fn across_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("d", "btc", d, Some(cv(120.0, 1.0))),
            row("a", "btc", d, Some(cv(104.0, 1.0))),
            row("c", "btc", d, Some(cv(100.0, 1.0))),
            row("b", "btc", d, Some(cv(110.0, 1.0))),
        ]);
        assert_eq!(a.exchanges, 4);
        assert_eq!(a.median_close, 107.0);
        assert_eq!(a.vwap_close, Some(108.5));
        assert_eq!(
            (a.min_exchange.as_str(), a.max_exchange.as_str()),
            ("c", "d")
        );
    }

    #[test]
    fn across_ignores_an_exchange_without_a_price() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("binance", "btc", d, Some(cv(100.0, 1.0))),
            row("aax", "btc", d, None),
            row("kraken", "btc", d, Some(cv(110.0, 3.0))),
        ]);
        assert_eq!(a.exchanges, 2);
        assert_eq!(a.min_exchange, ex("binance"));
        assert_eq!(a.median_close, 105.0);
        assert_eq!(a.vwap_close, Some(107.5));
    }

    #[test]
    fn across_skips_a_day_no_exchange_has_a_price() {
        let rows = [
            row("binance", "btc", day(2020, 3, 13), None),
            row("kraken", "btc", day(2020, 3, 13), None),
            row("kraken", "btc", day(2020, 3, 14), Some(cv(1.0, 1.0))),
        ];
        let out = across(&rows);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].day, day(2020, 3, 14));
        assert!(across(&[]).is_empty());
    }

    #[test]
    fn across_has_no_vwap_when_nothing_traded() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("binance", "btc", d, Some(cv(100.0, 0.0))),
            row("kraken", "btc", d, Some(cv(110.0, 0.0))),
        ]);
        assert_eq!(a.vwap_close, None);
        assert_eq!(a.median_close, 105.0);
        assert!(a.spread_pct.is_some());
    }

    #[test]
    fn across_ties_go_to_the_alphabetically_first_exchange() {
        let d = day(2020, 3, 13);
        // Listed in reverse order so that input order cannot pass the test.
        let a = only(&[
            row("kraken", "btc", d, Some(cv(100.0, 1.0))),
            row("coinbase", "btc", d, Some(cv(120.0, 1.0))),
            row("bitstamp", "btc", d, Some(cv(120.0, 1.0))),
            row("binance", "btc", d, Some(cv(100.0, 1.0))),
        ]);
        assert_eq!(a.min_exchange, ex("binance"));
        assert_eq!(a.max_exchange, ex("bitstamp"));

        let flat = only(&[
            row("z", "btc", d, Some(cv(7.0, 1.0))),
            row("m", "btc", d, Some(cv(7.0, 1.0))),
        ]);
        assert_eq!(
            (flat.min_exchange.as_str(), flat.max_exchange.as_str()),
            ("m", "m")
        );
        assert_eq!(flat.spread_pct, Some(0.0));
    }

    #[test]
    fn across_has_no_spread_when_the_lowest_close_is_zero() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("binance", "btc", d, Some(cv(5.0, 1.0))),
            row("kraken", "btc", d, Some(cv(0.0, 1.0))),
        ]);
        assert_eq!((a.min_close, a.min_exchange.as_str()), (0.0, "kraken"));
        assert_eq!(a.spread_pct, None);
    }

    #[test]
    fn across_is_sorted_by_symbol_then_day() {
        let p = Some(cv(1.0, 1.0));
        let rows = [
            row("kraken", "eth", day(2020, 1, 2), p),
            row("kraken", "btc", day(2020, 1, 3), p),
            row("kraken", "btc", day(2020, 1, 1), p),
            row("kraken", "eth", day(2020, 1, 1), p),
        ];
        let keys: Vec<(String, NaiveDate)> = across(&rows)
            .into_iter()
            .map(|a| (a.symbol.to_string(), a.day))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("btc".to_owned(), day(2020, 1, 1)),
                ("btc".to_owned(), day(2020, 1, 3)),
                ("eth".to_owned(), day(2020, 1, 1)),
                ("eth".to_owned(), day(2020, 1, 2)),
            ]
        );
    }

    #[test]
    fn across_counts_a_repeated_exchange_once_with_its_first_price() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("kraken", "btc", d, None),
            row("kraken", "btc", d, Some(cv(100.0, 1.0))),
            row("kraken", "btc", d, Some(cv(200.0, 1.0))),
        ]);
        assert_eq!(a.exchanges, 1);
        assert_eq!((a.min_close, a.max_close), (100.0, 100.0));
    }

    // ---- render_rows ----

    #[test]
    fn csv_rows_read_back_to_identical_values() {
        let rows = awkward_rows();
        let text = render_rows(&rows, None, Format::Csv);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .expect("a header")
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            header,
            [
                "exchange", "symbol", "day", "state", "open", "high", "low", "close", "volume",
                "flags", "reason"
            ]
        );
        let records: Vec<csv::StringRecord> = reader
            .records()
            .collect::<Result<_, _>>()
            .expect("valid CSV");
        assert_eq!(records.len(), rows.len());
        for (rec, row) in records.iter().zip(&rows) {
            assert_eq!(&rec[0], row.exchange.as_str());
            assert_eq!(&rec[1], row.symbol.as_str());
            assert_eq!(rec[2].parse::<NaiveDate>(), Ok(row.day));
            assert_eq!(&rec[3], row.state.as_str());
            for (i, f) in ALL_FIELDS.iter().enumerate() {
                let want = row.price.map(|p| f.of(&p));
                let got = opt_cell(&rec[4 + i]);
                assert!(same_bits(got, want), "{f}: {got:?} != {want:?}");
            }
        }
        // The row without a price is there, with five empty cells.
        assert!(
            text.contains("\nbinance,btc,2020-03-13,none,,,,,,,\n"),
            "{text}"
        );
    }

    #[test]
    fn csv_with_one_field_has_just_that_column() {
        let rows = awkward_rows();
        let text = render_rows(&rows, Some(Field::Volume), Format::Csv);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().expect("a header"),
            vec!["exchange", "symbol", "day", "state", "volume", "flags", "reason"]
        );
        let got: Vec<Option<f64>> = reader
            .records()
            .map(|r| opt_cell(&r.expect("valid CSV")[4]))
            .collect();
        let want: Vec<Option<f64>> = rows.iter().map(|r| r.price.map(|p| p.volume)).collect();
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(g, w)| same_bits(*g, *w)));
    }

    #[test]
    fn json_rows_read_back_to_identical_values() {
        let rows = awkward_rows();
        let text = render_rows(&rows, None, Format::Json);
        let back: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back.len(), rows.len());
        for (obj, row) in back.iter().zip(&rows) {
            assert_eq!(obj.len(), 10, "{obj:?}");
            assert_eq!(obj["state"], row.state.as_str());
            assert_eq!(obj["exchange"], row.exchange.as_str());
            assert_eq!(obj["symbol"], row.symbol.as_str());
            assert_eq!(obj["day"], row.day.format("%Y-%m-%d").to_string());
            for f in ALL_FIELDS {
                let want = row.price.map(|p| f.of(&p));
                let got = match &obj[f.name()] {
                    serde_json::Value::Null => None,
                    v => Some(v.as_f64().expect("a number")),
                };
                assert!(same_bits(got, want), "{f}: {got:?} != {want:?}");
            }
        }
        // Keys come in column order, as a person reading the JSON expects.
        let first = text.find("\"exchange\"").expect("exchange key");
        let open = text.find("\"open\"").expect("open key");
        let volume = text.find("\"volume\"").expect("volume key");
        assert!(first < open && open < volume);
    }

    #[test]
    fn json_with_one_field_has_just_that_key_or_null() {
        let rows = awkward_rows();
        let text = render_rows(&rows, Some(Field::Close), Format::Json);
        let back: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_str(&text).expect("valid JSON");
        let keys: Vec<&str> = back[0].keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            ["close", "day", "exchange", "flags", "state", "symbol"]
        );
        assert_eq!(
            back[0]["close"].as_f64().map(f64::to_bits),
            Some(5e-324f64.to_bits())
        );
        assert!(back[1]["close"].is_null());
        assert_eq!(back[2]["close"].as_f64(), Some(2.5));
    }

    #[test]
    fn a_table_has_a_header_and_one_aligned_line_per_row() {
        let rows = awkward_rows();
        let text = render_rows(&rows, None, Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + rows.len());
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header,
            [
                "exchange", "symbol", "day", "state", "open", "high", "low", "close", "volume",
                "flags", "reason"
            ]
        );
        let width = lines[0].len();
        assert!(lines.iter().all(|l| l.len() == width), "{text}");
        for (line, row) in lines[1..].iter().zip(&rows) {
            assert!(line.starts_with(row.exchange.as_str()), "{line}");
            assert!(line.contains(&format!("  {}  ", row.symbol)), "{line}");
            assert!(line.contains(&row.day.format("%Y-%m-%d").to_string()));
            match row.price {
                // Numbers are right-aligned: the volume ends its column.
                Some(p) => {
                    for f in ALL_FIELDS {
                        assert!(line.contains(&format!("{}", f.of(&p))), "{line}");
                    }
                    assert!(
                        line.trim_end().ends_with(&format!(" {}", p.volume)),
                        "{line}"
                    );
                }
                None => assert_eq!(line.split_whitespace().count(), 4, "{line}"),
            }
        }
    }

    #[test]
    fn a_table_with_one_field_shows_that_column() {
        let d = day(2020, 3, 13);
        let rows = [
            row("kraken", "btc", d, Some(cv(6500.25, 10.0))),
            row("binance", "btc", d, Some(cv(7.5, 10.0))),
        ];
        let text = render_rows(&rows, Some(Field::Close), Format::Table);
        assert_eq!(
            text,
            "exchange  symbol  day         state    close  flags  reason\n\
             kraken    btc     2020-03-13  final  6500.25               \n\
             binance   btc     2020-03-13  final      7.5               \n"
        );
    }

    #[test]
    fn nothing_to_show_renders_only_the_header() {
        let table = render_rows(&[], None, Format::Table);
        assert_eq!(table.lines().count(), 1);
        assert!(table.starts_with("exchange  symbol  day"), "{table}");
        assert_eq!(
            render_rows(&[], Some(Field::Open), Format::Csv),
            "exchange,symbol,day,state,open,flags,reason\n"
        );
        assert_eq!(render_rows(&[], None, Format::Json).trim_end(), "[]");
        assert_eq!(render_across(&[], Format::Json).trim_end(), "[]");
        let across_table = render_across(&[], Format::Table);
        assert_eq!(across_table.lines().count(), 1);
        assert!(across_table.starts_with("symbol"), "{across_table}");
    }

    // ---- render_across ----

    fn sample_across() -> Vec<Across> {
        let d = day(2020, 3, 13);
        across(&[
            row("kraken", "btc", d, Some(cv(0.1 + 0.2, 3.0))),
            row("binance", "btc", d, Some(cv(1.0 / 3.0, 7.0))),
            row("coinbase", "btc", d, Some(cv(0.7, 0.0))),
            row("kraken", "eth", d, Some(cv(0.0, 0.0))),
            row("binance", "eth", d, Some(cv(2.0, 0.0))),
        ])
    }

    #[test]
    fn csv_across_reads_back_to_identical_values() {
        let figures = sample_across();
        assert_eq!(figures.len(), 2);
        let text = render_across(&figures, Format::Csv);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().expect("a header"),
            vec![
                "symbol",
                "day",
                "exchanges",
                "min_close",
                "min_exchange",
                "max_close",
                "max_exchange",
                "median_close",
                "vwap_close",
                "spread_pct"
            ]
        );
        let records: Vec<csv::StringRecord> = reader
            .records()
            .collect::<Result<_, _>>()
            .expect("valid CSV");
        assert_eq!(records.len(), figures.len());
        for (rec, a) in records.iter().zip(&figures) {
            let back = Across {
                symbol: sym(&rec[0]),
                day: rec[1].parse().expect("a date"),
                exchanges: rec[2].parse().expect("a count"),
                min_close: rec[3].parse().expect("a number"),
                min_exchange: ex(&rec[4]),
                max_close: rec[5].parse().expect("a number"),
                max_exchange: ex(&rec[6]),
                median_close: rec[7].parse().expect("a number"),
                vwap_close: opt_cell(&rec[8]),
                spread_pct: opt_cell(&rec[9]),
            };
            assert_eq!(&back, a);
        }
        // eth: nothing traded and a zero close, so two empty cells.
        assert!(text.ends_with(",,\n"), "{text}");
    }

    #[test]
    fn json_across_reads_back_to_identical_values() {
        let figures = sample_across();
        let text = render_across(&figures, Format::Json);
        let back: Vec<serde_json::Value> = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(back.len(), figures.len());
        for (v, a) in back.iter().zip(&figures) {
            assert_eq!(v["symbol"], a.symbol.as_str());
            assert_eq!(v["day"], "2020-03-13");
            assert_eq!(v["exchanges"].as_u64(), Some(a.exchanges as u64));
            assert_eq!(v["min_close"].as_f64(), Some(a.min_close));
            assert_eq!(v["min_exchange"], a.min_exchange.as_str());
            assert_eq!(v["max_close"].as_f64(), Some(a.max_close));
            assert_eq!(v["max_exchange"], a.max_exchange.as_str());
            assert_eq!(v["median_close"].as_f64(), Some(a.median_close));
            assert_eq!(v["vwap_close"].as_f64(), a.vwap_close);
            assert_eq!(v["spread_pct"].as_f64(), a.spread_pct);
        }
        assert!(back[1]["vwap_close"].is_null() && back[1]["spread_pct"].is_null());
    }

    #[test]
    fn an_across_table_lines_up_every_figure() {
        let figures = sample_across();
        let text = render_across(&figures, Format::Table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + figures.len());
        assert!(lines[0].starts_with("symbol"));
        assert!(lines[0].ends_with("spread_pct"));
        let width = lines[0].len();
        assert!(lines.iter().all(|l| l.len() == width), "{text}");
        for (line, a) in lines[1..].iter().zip(&figures) {
            for cell in across_cells(a).iter().filter(|c| !c.is_empty()) {
                assert!(line.contains(cell.as_str()), "{line} lacks {cell}");
            }
        }
    }
}
