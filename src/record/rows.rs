//! How a cell becomes a row of `cells` or `history` and back. This file owns
//! the text forms of the columns (see `schema`) and checks every value read
//! from the file before it becomes a `Cell`: a bad row is an error naming
//! it, never a panic. Statements are the caller's; this file only binds
//! values to them and reads values from their rows.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use rusqlite::types::ValueRef;
use rusqlite::Row;

use super::RecordError;
use crate::model::{CellState, Exchange, Flags, Ohlcv, Symbol, TaskKey};

use crate::store::{Cell, Note};

/// The columns of a cell row, in the order `Encoded::insert` binds them
/// and `Decoder` reads them, with `round` as the expression for the round
/// (`round`, or `MAX(round)` to pick the latest row of a group).
pub(super) fn columns(round: &str) -> String {
    format!(
        "exchange, symbol, day, state, flags, open, high, low, close, volume, fetched_at, \
         {round}, source, reason, attempts, market"
    )
}

/// Index of the round in `columns`.
const ROUND_COLUMN: usize = 11;

/// `YYYY-MM-DD`.
pub(super) fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// A time as `rounds` stores it: fixed width, so text order is time order.
pub(super) fn round_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A number for an INTEGER column; past `i64::MAX` (never, in practice:
/// rounds and counts are far smaller) it saturates.
pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One cell in its column forms, computed once and bound to the `cells`
/// and the `history` statement alike.
pub(super) struct Encoded<'a> {
    exchange: &'a str,
    symbol: &'a str,
    day: String,
    cell: &'a Cell,
    flags: String,
    fetched_at: Option<String>,
}

impl<'a> Encoded<'a> {
    pub(super) fn new(
        exchange: &'a Exchange,
        symbol: &'a Symbol,
        day: NaiveDate,
        cell: &'a Cell,
    ) -> Self {
        Self {
            exchange: exchange.as_str(),
            symbol: symbol.as_str(),
            day: day_text(day),
            cell,
            flags: cell.flags.names().join(" "),
            fetched_at: cell
                .fetched_at
                .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }

    /// Binds `columns` in order, with `round` as the row's round, and runs
    /// `stmt` (an INSERT OR REPLACE into `cells` or `history`).
    pub(super) fn insert(
        &self,
        stmt: &mut rusqlite::CachedStatement<'_>,
        round: u64,
    ) -> rusqlite::Result<()> {
        let c = self.cell;
        let p = c.price;
        stmt.execute(rusqlite::params![
            self.exchange,
            self.symbol,
            self.day,
            c.state.as_str(),
            self.flags,
            p.map(|p| p.open),
            p.map(|p| p.high),
            p.map(|p| p.low),
            p.map(|p| p.close),
            p.map(|p| p.volume),
            self.fetched_at,
            int(round),
            c.source.as_deref(),
            c.note.as_ref().map(|n| n.reason.as_str()),
            c.note.as_ref().map(|n| i64::from(n.attempts)),
            c.source
                .as_deref()
                .and_then(crate::model::Market::of_source),
        ])?;
        Ok(())
    }
}

/// Reads rows of `columns` into cells, sharing the names and sources that
/// repeat from one row to the next (rows come in key order) instead of
/// allocating them again.
pub(super) struct Decoder<'p> {
    path: &'p Path,
    table: &'static str,
    exchange: Option<Exchange>,
    symbol: Option<Symbol>,
    sources: Vec<Arc<str>>,
}

impl<'p> Decoder<'p> {
    pub(super) fn new(path: &'p Path, table: &'static str) -> Self {
        Self {
            path,
            table,
            exchange: None,
            symbol: None,
            sources: Vec::new(),
        }
    }

    fn sql(&self, source: rusqlite::Error) -> RecordError {
        RecordError::Sql {
            path: self.path.to_owned(),
            doing: "reading cells",
            source,
        }
    }

    fn bad(&self, at: impl std::fmt::Display, reason: impl Into<String>) -> RecordError {
        RecordError::Corrupt {
            path: self.path.to_owned(),
            at: format!("table {}, {at}", self.table),
            reason: reason.into(),
        }
    }

    fn text<'r>(&self, row: &'r Row<'_>, i: usize, name: &str) -> Result<&'r str, RecordError> {
        match row.get_ref(i).map_err(|e| self.sql(e))? {
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map_err(|_| self.bad(format!("column {name}"), "text that is not UTF-8")),
            other => Err(self.bad(
                format!("column {name}"),
                format!("expected text, found {:?}", other.data_type()),
            )),
        }
    }

    fn opt_text<'r>(
        &self,
        row: &'r Row<'_>,
        i: usize,
        name: &str,
    ) -> Result<Option<&'r str>, RecordError> {
        match row.get_ref(i).map_err(|e| self.sql(e))? {
            ValueRef::Null => Ok(None),
            _ => self.text(row, i, name).map(Some),
        }
    }

    fn opt_f64(
        &self,
        row: &Row<'_>,
        i: usize,
        name: &str,
        key: &TaskKey,
    ) -> Result<Option<f64>, RecordError> {
        match row.get_ref(i).map_err(|e| self.sql(e))? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(v) => Ok(Some(v)),
            ValueRef::Integer(v) => Ok(Some(v as f64)),
            other => Err(self.bad(
                key,
                format!(
                    "column {name}: expected a number, found {:?}",
                    other.data_type()
                ),
            )),
        }
    }

    fn opt_i64(
        &self,
        row: &Row<'_>,
        i: usize,
        name: &str,
        key: &TaskKey,
    ) -> Result<Option<i64>, RecordError> {
        match row.get_ref(i).map_err(|e| self.sql(e))? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            other => Err(self.bad(
                key,
                format!(
                    "column {name}: expected an integer, found {:?}",
                    other.data_type()
                ),
            )),
        }
    }

    /// One row of `columns` as a key and its cell.
    pub(super) fn decode(&mut self, row: &Row<'_>) -> Result<(TaskKey, Cell), RecordError> {
        let exchange = self.text(row, 0, "exchange")?;
        let exchange = match &self.exchange {
            Some(e) if e.as_str() == exchange => e.clone(),
            _ => {
                let e = Exchange::new(exchange)
                    .map_err(|e| self.bad("column exchange", e.to_string()))?;
                self.exchange = Some(e.clone());
                e
            }
        };
        let symbol = self.text(row, 1, "symbol")?;
        let symbol = match &self.symbol {
            Some(s) if s.as_str() == symbol => s.clone(),
            _ => {
                let s =
                    Symbol::new(symbol).map_err(|e| self.bad("column symbol", e.to_string()))?;
                self.symbol = Some(s.clone());
                s
            }
        };
        let day_raw = self.text(row, 2, "day")?;
        let day = parse_day(day_raw).ok_or_else(|| {
            self.bad(
                format!("{exchange}/{symbol}"),
                format!("day {day_raw:?} is not YYYY-MM-DD"),
            )
        })?;
        let key = TaskKey {
            exchange,
            symbol,
            day,
        };
        let state: CellState = self
            .text(row, 3, "state")?
            .parse()
            .map_err(|e: String| self.bad(&key, e))?;
        let mut flags = Flags::NONE;
        for name in self.text(row, 4, "flags")?.split_whitespace() {
            flags |= Flags::named(name)
                .ok_or_else(|| self.bad(&key, format!("unknown flag {name:?}")))?;
        }
        let numbers = [
            (5, "open"),
            (6, "high"),
            (7, "low"),
            (8, "close"),
            (9, "volume"),
        ]
        .map(|(i, name)| self.opt_f64(row, i, name, &key));
        let [open, high, low, close, volume] = numbers;
        let price = match (open?, high?, low?, close?, volume?) {
            (None, None, None, None, None) => None,
            (Some(o), Some(h), Some(l), Some(c), Some(v)) => {
                Some(Ohlcv::new(o, h, l, c, v).map_err(|e| self.bad(&key, e.to_string()))?)
            }
            _ => {
                return Err(self.bad(
                    &key,
                    "a price needs all of open, high, low, close and volume",
                ))
            }
        };
        if state == CellState::Final && price.is_none() {
            return Err(self.bad(&key, "a final cell needs a price"));
        }
        let fetched_at = match self.opt_text(row, 10, "fetched_at")? {
            None => None,
            Some(t) => Some(
                DateTime::parse_from_rfc3339(t)
                    .map_err(|e| self.bad(&key, format!("fetched_at {t:?}: {e}")))?
                    .with_timezone(&Utc),
            ),
        };
        let round = self.opt_i64(row, ROUND_COLUMN, "round", &key)?.unwrap_or(0);
        let round = u64::try_from(round)
            .map_err(|_| self.bad(&key, format!("round {round} is negative")))?;
        let source = match self.opt_text(row, 12, "source")? {
            None => None,
            Some(name) => Some(match self.sources.iter().find(|s| &***s == name) {
                Some(s) => s.clone(),
                None => {
                    let s: Arc<str> = Arc::from(name);
                    self.sources.push(s.clone());
                    s
                }
            }),
        };
        let note = match self.opt_text(row, 13, "reason")? {
            None => None,
            Some(reason) => {
                let attempts = self.opt_i64(row, 14, "attempts", &key)?.unwrap_or(0);
                let attempts = u32::try_from(attempts)
                    .map_err(|_| self.bad(&key, format!("attempts {attempts} out of range")))?;
                Some(Note {
                    reason: reason.to_owned(),
                    attempts,
                })
            }
        };
        Ok((
            key,
            Cell {
                state,
                price,
                flags,
                fetched_at,
                round,
                source,
                note,
            },
        ))
    }
}

/// `YYYY-MM-DD`, without the cost of a general date parser (a million of
/// these are read on every resume).
fn parse_day(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5..7)?, num(8..10)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_only_in_their_one_form() {
        let d = NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
        let s = day_text(d);
        assert_eq!(s, "2020-03-01");
        assert_eq!(parse_day(&s), Some(d));
        for bad in ["2020-3-01", "2020-02-30", "2020-03-0x", "", "2020/03/01"] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_times_sort_as_text() {
        let a: DateTime<Utc> = "2020-03-01T10:00:00Z".parse().unwrap();
        let b: DateTime<Utc> = "2020-03-01T10:00:00.5Z".parse().unwrap();
        assert!(round_time(a) < round_time(b));
    }
}
