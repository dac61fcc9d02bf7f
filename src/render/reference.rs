//! Reference closes as text (`query --reference`, `GET /v1/reference`):
//! JSON with the whole evidence, or one line per symbol-day with its
//! constituents and exclusions summed up as `exchange` and
//! `exchange:why` lists.

use super::{csv_text, json_text, numbers_for, table_text, Format};
use crate::quality::ReferenceRow;

const HEADER: [&str; 11] = [
    "symbol",
    "day",
    "round",
    "status",
    "close",
    "constituents",
    "excluded",
    "min",
    "max",
    "spread_pct",
    "mad",
];
const NUMERIC: [bool; 11] = [
    false, false, true, false, true, false, false, true, true, true, true,
];

/// Renders `rows` in `format`.
pub fn render_references(rows: &[ReferenceRow], format: Format) -> String {
    if format == Format::Json {
        return json_text(rows);
    }
    let num = numbers_for(format);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let r = &row.reference;
            let d = r.dispersion;
            let opt = |x: Option<f64>| x.map(num).unwrap_or_default();
            vec![
                row.symbol.to_string(),
                row.day.format("%Y-%m-%d").to_string(),
                row.round.map(|r| r.to_string()).unwrap_or_default(),
                r.status.as_str().to_string(),
                opt(r.close),
                r.constituents
                    .iter()
                    .map(|c| c.exchange.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                r.excluded
                    .iter()
                    .map(|x| format!("{}:{}", x.exchange, x.why.word()))
                    .collect::<Vec<_>>()
                    .join(" "),
                opt(d.map(|d| d.min)),
                opt(d.map(|d| d.max)),
                opt(d.map(|d| d.spread * 100.0)),
                opt(d.map(|d| d.mad)),
            ]
        })
        .collect();
    if format == Format::Csv {
        csv_text(&HEADER, &cells)
    } else {
        table_text(&HEADER, &NUMERIC, &cells)
    }
}
