//! How a cell becomes a row of `cells` or `history` and back. This file owns
//! the integer forms of the columns (see `schema`) and checks every value
//! read from the file before it becomes a `Cell`: a bad row is an error
//! naming it, never a panic. Statements are the caller's; this file only
//! binds values to them and reads values from their rows. Names become ids
//! and back through `record::names`.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::types::ValueRef;
use rusqlite::Row;

use super::names::Names;
use super::RecordError;
use crate::model::{CellState, Exchange, Flags, Ohlcv, Symbol, TaskKey};

use crate::store::{Cell, Note};

/// The columns of a cell row, in the order `Encoded` binds them and
/// `Decoder` reads them; `cells` and `history` both have them (a history
/// row's `round` is the round that first recorded its value).
pub(super) const COLUMNS: &str = "symbol, day, exchange, state, flags, open, high, low, close, \
     volume, fetched_at, round, source, reason, attempts";

/// Index of the round in `COLUMNS`.
pub(super) const ROUND_COLUMN: usize = 11;

/// The day 1970-01-01, day number 0.
const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

/// A day as the record keys it: days since 1970-01-01.
pub(super) fn day_number(day: NaiveDate) -> i64 {
    (day - EPOCH).num_days()
}

pub(super) fn day_of(n: i64) -> Option<NaiveDate> {
    EPOCH.checked_add_signed(chrono::Duration::try_days(n)?)
}

/// A time as the record stores it: unix milliseconds.
pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn time_of(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

/// A state as the record stores it: its index in `CellState::ALL`.
pub(super) fn state_code(state: CellState) -> i64 {
    CellState::ALL
        .iter()
        .position(|s| *s == state)
        .unwrap_or_default() as i64
}

/// A number for an INTEGER column; past `i64::MAX` (never, in practice:
/// rounds and counts are far smaller) it saturates.
pub(super) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What the record keeps as the truth of a cell: a value that repeats it
/// (a re-fetch with the same answer, from whatever source, at whatever
/// time) writes no history row. Its fetch time, source, round and count
/// of attempts are when and how it was last confirmed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Truth {
    state: i64,
    flags: i64,
    price: [Option<f64>; 5],
    reason: Option<String>,
}

impl Truth {
    pub(super) fn of(cell: &Cell) -> Truth {
        Truth {
            state: state_code(cell.state),
            flags: i64::from(cell.flags.bits()),
            price: match cell.price {
                Some(p) => [p.open, p.high, p.low, p.close, p.volume].map(Some),
                None => [None; 5],
            },
            reason: cell.note.as_ref().map(|n| n.reason.clone()),
        }
    }

    /// The truth of a `cells` row whose `TRUTH_COLUMNS` begin at column
    /// `at`.
    pub(super) fn read(row: &Row<'_>, at: usize) -> rusqlite::Result<Truth> {
        Ok(Truth {
            state: row.get(at)?,
            flags: row.get(at + 1)?,
            price: [
                row.get(at + 2)?,
                row.get(at + 3)?,
                row.get(at + 4)?,
                row.get(at + 5)?,
                row.get(at + 6)?,
            ],
            reason: row.get(at + 7)?,
        })
    }
}

/// The columns `Truth::read` reads.
pub(super) const TRUTH_COLUMNS: &str = "state, flags, open, high, low, close, volume, reason";

/// One cell in its column forms, its names already ids.
pub(super) struct Encoded<'a> {
    pub(super) symbol: i64,
    pub(super) day: i64,
    pub(super) exchange: i64,
    cell: &'a Cell,
    source: Option<i64>,
}

impl<'a> Encoded<'a> {
    /// Encodes `cell` of `key`, interning its names (in the caller's
    /// transaction).
    pub(super) fn new(
        conn: &rusqlite::Connection,
        names: &mut Names,
        key: &TaskKey,
        cell: &'a Cell,
    ) -> rusqlite::Result<Self> {
        Ok(Self {
            symbol: names.intern_symbol(conn, &key.symbol)?,
            day: day_number(key.day),
            exchange: names.intern_exchange(conn, &key.exchange)?,
            cell,
            source: match &cell.source {
                Some(s) => Some(names.intern_source(conn, s)?),
                None => None,
            },
        })
    }

    pub(super) fn cell(&self) -> &'a Cell {
        self.cell
    }

    /// Binds `COLUMNS` in order, with `round` as the row's round, then
    /// `extra` (a `cells` row's `since`, when the statement has it), and
    /// runs `stmt` (an INSERT OR REPLACE into `cells` or `history`).
    pub(super) fn insert(
        &self,
        stmt: &mut rusqlite::CachedStatement<'_>,
        round: u64,
        extra: Option<Option<i64>>,
    ) -> rusqlite::Result<()> {
        let c = self.cell;
        let p = c.price;
        let values: [&dyn rusqlite::ToSql; 15] = [
            &self.symbol,
            &self.day,
            &self.exchange,
            &state_code(c.state),
            &c.flags.bits(),
            &p.map(|p| p.open),
            &p.map(|p| p.high),
            &p.map(|p| p.low),
            &p.map(|p| p.close),
            &p.map(|p| p.volume),
            &c.fetched_at.map(millis),
            &int(round),
            &self.source,
            &c.note.as_ref().map(|n| n.reason.as_str()),
            &c.note.as_ref().map(|n| i64::from(n.attempts)),
        ];
        match extra {
            None => stmt.execute(&values[..])?,
            Some(since) => {
                let mut all: Vec<&dyn rusqlite::ToSql> = values.to_vec();
                all.push(&since);
                stmt.execute(&all[..])?
            }
        };
        Ok(())
    }
}

/// Reads rows of `COLUMNS` into cells, naming names through `Names`.
pub(super) struct Decoder<'p> {
    pub(super) path: &'p Path,
    table: &'static str,
}

impl<'p> Decoder<'p> {
    pub(super) fn new(path: &'p Path, table: &'static str) -> Self {
        Self { path, table }
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

    fn value<'r>(&self, row: &'r Row<'_>, i: usize) -> Result<ValueRef<'r>, RecordError> {
        row.get_ref(i).map_err(|e| self.sql(e))
    }

    fn int(&self, row: &Row<'_>, i: usize, name: &str) -> Result<i64, RecordError> {
        self.opt_int(row, i, name)?
            .ok_or_else(|| self.bad(format!("column {name}"), "expected an integer, found NULL"))
    }

    fn opt_int(&self, row: &Row<'_>, i: usize, name: &str) -> Result<Option<i64>, RecordError> {
        match self.value(row, i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(v) => Ok(Some(v)),
            other => Err(self.bad(
                format!("column {name}"),
                format!("expected an integer, found {:?}", other.data_type()),
            )),
        }
    }

    fn opt_f64(&self, row: &Row<'_>, i: usize, name: &str) -> Result<Option<f64>, RecordError> {
        match self.value(row, i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Real(v) => Ok(Some(v)),
            ValueRef::Integer(v) => Ok(Some(v as f64)),
            other => Err(self.bad(
                format!("column {name}"),
                format!("expected a number, found {:?}", other.data_type()),
            )),
        }
    }

    /// One row of `COLUMNS` as a key and its cell.
    pub(super) fn decode(
        &self,
        row: &Row<'_>,
        names: &Names,
    ) -> Result<(TaskKey, Cell), RecordError> {
        self.cell_of(self.raw(row)?, names)
    }

    /// One row of `COLUMNS` as read, its names still ids and its values
    /// not yet checked (`cell_of` does that): what `record::load` reads on
    /// one thread and checks on another.
    pub(super) fn raw(&self, row: &Row<'_>) -> Result<Raw, RecordError> {
        let numbers = [
            (5, "open"),
            (6, "high"),
            (7, "low"),
            (8, "close"),
            (9, "volume"),
        ];
        let mut price = [None; 5];
        for (slot, (i, name)) in price.iter_mut().zip(numbers) {
            *slot = self.opt_f64(row, i, name)?;
        }
        let reason = match self.value(row, 13)? {
            ValueRef::Null => None,
            ValueRef::Text(t) => Some(
                std::str::from_utf8(t)
                    .map_err(|_| self.bad("column reason", "text that is not UTF-8"))?
                    .to_owned(),
            ),
            other => {
                return Err(self.bad(
                    "column reason",
                    format!("expected text, found {:?}", other.data_type()),
                ))
            }
        };
        let raw = Raw {
            symbol: self.int(row, 0, "symbol")?,
            day: self.int(row, 1, "day")?,
            exchange: self.int(row, 2, "exchange")?,
            state: self.int(row, 3, "state")?,
            flags: self.int(row, 4, "flags")?,
            price,
            fetched_at: self.opt_int(row, 10, "fetched_at")?,
            round: self.opt_int(row, ROUND_COLUMN, "round")?,
            source: self.opt_int(row, 12, "source")?,
            reason,
            attempts: self.opt_int(row, 14, "attempts")?,
        };
        Ok(raw)
    }

    /// A row's values, already read from whichever database, as a key and
    /// its cell: every value checked, a bad one an error naming the row.
    pub(super) fn cell_of(&self, raw: Raw, names: &Names) -> Result<(TaskKey, Cell), RecordError> {
        let checked = self.check(raw, names)?;
        let mut cell = checked.cell;
        cell.source = checked.source.map(|(_, s)| s.clone());
        Ok((
            TaskKey {
                exchange: checked.exchange.1.clone(),
                symbol: checked.symbol.1.clone(),
                day: checked.day,
            },
            cell,
        ))
    }

    /// A row's values checked as `cell_of` checks them, its names found
    /// but not taken: what a loader placing 20M cells needs, without a
    /// name's reference count taken and dropped for each.
    pub(super) fn check<'n>(&self, raw: Raw, names: &'n Names) -> Result<Checked<'n>, RecordError> {
        let id = raw.exchange;
        let exchange = names
            .exchange(id)
            .ok_or_else(|| self.bad("column exchange", format!("no exchange has id {id}")))?;
        let exchange = (id, exchange);
        let id = raw.symbol;
        let symbol = names
            .symbol(id)
            .ok_or_else(|| self.bad("column symbol", format!("no symbol has id {id}")))?;
        let symbol = (id, symbol);
        let n = raw.day;
        let day = day_of(n).ok_or_else(|| {
            self.bad(
                format!("{}/{}", exchange.1, symbol.1),
                format!("day {n} is out of range"),
            )
        })?;
        // The row, as an error names it.
        let at = || format!("{}/{}/{day}", exchange.1, symbol.1);
        let code = raw.state;
        let state = usize::try_from(code)
            .ok()
            .and_then(|i| CellState::ALL.get(i).copied())
            .ok_or_else(|| self.bad(at(), format!("unknown state {code}")))?;
        let bits = raw.flags;
        let flags = u8::try_from(bits)
            .ok()
            .map(Flags::from_bits)
            .filter(|f| i64::from(f.bits()) == bits)
            .ok_or_else(|| self.bad(at(), format!("unknown flags {bits}")))?;
        let price = match raw.price {
            [None, None, None, None, None] => None,
            [Some(o), Some(h), Some(l), Some(c), Some(v)] => {
                Some(Ohlcv::new(o, h, l, c, v).map_err(|e| self.bad(at(), e.to_string()))?)
            }
            _ => {
                return Err(self.bad(
                    at(),
                    "a price needs all of open, high, low, close and volume",
                ))
            }
        };
        if state == CellState::Final && price.is_none() {
            return Err(self.bad(at(), "a final cell needs a price"));
        }
        let fetched_at = match raw.fetched_at {
            None => None,
            Some(ms) => Some(
                time_of(ms)
                    .ok_or_else(|| self.bad(at(), format!("fetched_at {ms} is out of range")))?,
            ),
        };
        let round = raw.round.unwrap_or(0);
        let round = u64::try_from(round)
            .map_err(|_| self.bad(at(), format!("round {round} is negative")))?;
        let source = match raw.source {
            None => None,
            Some(id) => Some((
                id,
                names
                    .source(id)
                    .ok_or_else(|| self.bad(at(), format!("no source has id {id}")))?,
            )),
        };
        let note = match raw.reason {
            None => None,
            Some(reason) => {
                let attempts = raw.attempts.unwrap_or(0);
                let attempts = u32::try_from(attempts)
                    .map_err(|_| self.bad(at(), format!("attempts {attempts} out of range")))?;
                Some(Note { reason, attempts })
            }
        };
        Ok(Checked {
            exchange,
            symbol,
            day,
            cell: Cell {
                state,
                price,
                flags,
                fetched_at,
                round,
                source: None,
                note,
            },
            source,
        })
    }
}

/// A row checked (`Decoder::check`): its names as ids and as the names
/// `Names` holds, and its cell with no source (`source` says which).
pub(super) struct Checked<'n> {
    pub(super) exchange: (i64, &'n Exchange),
    pub(super) symbol: (i64, &'n Symbol),
    pub(super) day: NaiveDate,
    pub(super) cell: Cell,
    pub(super) source: Option<(i64, &'n Arc<str>)>,
}

/// The values of one row of `COLUMNS`, as read from the database and not
/// yet checked (`Decoder::cell_of` checks them).
#[derive(Debug, Clone)]
pub(super) struct Raw {
    pub(super) symbol: i64,
    pub(super) day: i64,
    pub(super) exchange: i64,
    pub(super) state: i64,
    pub(super) flags: i64,
    pub(super) price: [Option<f64>; 5],
    pub(super) fetched_at: Option<i64>,
    pub(super) round: Option<i64>,
    pub(super) source: Option<i64>,
    pub(super) reason: Option<String>,
    pub(super) attempts: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_times_go_to_integers_and_back() {
        let d = NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
        assert_eq!(day_number(d), 18322);
        assert_eq!(day_of(day_number(d)), Some(d));
        assert_eq!(day_of(i64::MAX), None);
        let t: DateTime<Utc> = "2020-03-01T10:00:00.250Z".parse().unwrap();
        assert_eq!(time_of(millis(t)), Some(t));
    }

    #[test]
    fn states_are_numbered_in_their_listed_order() {
        let codes: Vec<i64> = CellState::ALL.iter().map(|s| state_code(*s)).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4]);
    }
}
