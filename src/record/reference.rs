//! The `reference` table (schema version 3): the reference close of each
//! symbol-day as it stood in each round that judged it again, written by
//! the Recorder as the Aggregator hands it over and read back as of the
//! current values or of a round (`--round N`, `--at`): the newest row of
//! each symbol-day whose round is not after it.
//!
//! Works on a rusqlite `Connection` alone (the names stay text, not ids of
//! the interned tables), so another backend can hold the same table; it
//! never decides a reference (that is `crate::quality`'s method, run by the
//! Aggregator) and touches no other table.

use std::path::Path;

use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::day_number;
use super::{sql, Record, RecordError};
use crate::model::Symbol;
use crate::quality::{Dispersion, Reference, ReferenceRow, Status};

/// The day 1970-01-01, day number 0.
const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

/// Writes `references` as judged in `round`, in one transaction (a second
/// write of a symbol-day in the same round replaces the first).
pub fn write(
    conn: &Connection,
    round: u64,
    references: &[(Symbol, NaiveDate, Reference)],
) -> rusqlite::Result<()> {
    let json = |v: &dyn erased_json::Json| {
        v.text()
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    let tx = conn.unchecked_transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO reference (symbol, day, round, status, close, \
             constituents, excluded, min, max, spread, mad) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for (symbol, day, r) in references {
            let d = r.dispersion;
            insert.execute(params![
                symbol.as_str(),
                day_number(*day),
                i64::try_from(round).unwrap_or(i64::MAX),
                r.status.as_str(),
                r.close,
                json(&r.constituents)?,
                json(&r.excluded)?,
                d.map(|d| d.min),
                d.map(|d| d.max),
                d.map(|d| d.spread),
                d.map(|d| d.mad),
            ])?;
        }
    }
    tx.commit()
}

/// The evidence columns' JSON text, from either list.
mod erased_json {
    pub trait Json {
        fn text(&self) -> serde_json::Result<String>;
    }

    impl<T: serde::Serialize> Json for T {
        fn text(&self) -> serde_json::Result<String> {
            serde_json::to_string(self)
        }
    }
}

/// The references of `symbol` (all symbols when `None`) from `from` to
/// `to` (inclusive, open when `None`), as they stood at the end of `round`
/// (now when `None`), by symbol and day. A row no writer of this schema
/// makes is an error naming it.
pub fn read(
    conn: &Connection,
    path: &Path,
    symbol: Option<&Symbol>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    round: Option<u64>,
) -> Result<Vec<ReferenceRow>, RecordError> {
    let failed = sql(path, "reading reference closes");
    let mut stmt = conn
        .prepare_cached(
            "SELECT r.symbol, r.day, r.round, r.status, r.close, r.constituents, r.excluded, \
                    r.min, r.max, r.spread, r.mad \
             FROM reference r \
             WHERE (?1 IS NULL OR r.symbol = ?1) AND r.day >= ?2 AND r.day <= ?3 \
               AND r.round = (SELECT max(x.round) FROM reference x \
                              WHERE x.symbol = r.symbol AND x.day = r.day AND x.round <= ?4) \
             ORDER BY r.symbol, r.day",
        )
        .map_err(&failed)?;
    let rows = stmt
        .query_map(
            params![
                symbol.map(Symbol::as_str),
                from.map_or(i64::MIN, day_number),
                to.map_or(i64::MAX, day_number),
                round.map_or(i64::MAX, |r| i64::try_from(r).unwrap_or(i64::MAX)),
            ],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Option<f64>>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, String>(6)?,
                    [
                        row.get::<_, Option<f64>>(7)?,
                        row.get::<_, Option<f64>>(8)?,
                        row.get::<_, Option<f64>>(9)?,
                        row.get::<_, Option<f64>>(10)?,
                    ],
                ))
            },
        )
        .map_err(&failed)?;
    let mut out = Vec::new();
    for row in rows {
        let (symbol, day, round, status, close, constituents, excluded, d) =
            row.map_err(&failed)?;
        let bad = |what: &str| RecordError::Corrupt {
            path: path.to_owned(),
            at: format!("reference row ({symbol}, day {day}, round {round})"),
            reason: what.to_owned(),
        };
        let dispersion = match d {
            [Some(min), Some(max), Some(spread), Some(mad)] => Some(Dispersion {
                min,
                max,
                spread,
                mad,
            }),
            [None, None, None, None] => None,
            _ => return Err(bad("a dispersion with some of min, max, spread, mad unset")),
        };
        out.push(ReferenceRow {
            symbol: Symbol::new(&symbol).map_err(|e| bad(&format!("symbol: {e}")))?,
            day: EPOCH
                .checked_add_signed(chrono::Duration::days(day))
                .ok_or_else(|| bad("a day out of range"))?,
            round: Some(u64::try_from(round).map_err(|_| bad("a negative round"))?),
            reference: Reference {
                close,
                status: Status::parse(&status)
                    .ok_or_else(|| bad(&format!("unknown status {status:?}")))?,
                constituents: serde_json::from_str(&constituents)
                    .map_err(|e| bad(&format!("constituents: {e}")))?,
                excluded: serde_json::from_str(&excluded)
                    .map_err(|e| bad(&format!("excluded: {e}")))?,
                dispersion,
            },
        });
    }
    Ok(out)
}

impl Record {
    /// Writes the references judged in `round` (`write`).
    pub fn write_references(
        &self,
        round: u64,
        references: &[(Symbol, NaiveDate, Reference)],
    ) -> Result<(), RecordError> {
        write(&self.conn, round, references).map_err(sql(&self.path, "writing reference closes"))
    }

    /// The references as they stood at the end of `round` (now: `None`).
    pub fn references(
        &self,
        symbol: Option<&Symbol>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        round: Option<u64>,
    ) -> Result<Vec<ReferenceRow>, RecordError> {
        read(&self.conn, &self.path, symbol, from, to, round)
    }

    /// Whether any reference was ever written (a record of an older
    /// daemon, or of rounds before any price, has none).
    pub fn has_references(&self) -> Result<bool, RecordError> {
        self.conn
            .query_row("SELECT 1 FROM reference LIMIT 1", [], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(sql(&self.path, "reading reference closes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Exchange;
    use crate::quality::{Constituent, Excluded, Exclusion};

    fn reference(close: Option<f64>, status: Status) -> Reference {
        Reference {
            close,
            status,
            constituents: vec![Constituent {
                exchange: Exchange::new("kraken").unwrap(),
                close: 100.0,
                volume: 2.5,
                provisional: false,
            }],
            excluded: vec![Excluded {
                exchange: Exchange::new("okx").unwrap(),
                why: Exclusion::Outlier {
                    median: 100.0,
                    threshold: 2.0,
                },
            }],
            dispersion: close.map(|c| Dispersion {
                min: c,
                max: c,
                spread: 0.0,
                mad: 0.0,
            }),
        }
    }

    #[test]
    fn a_reference_reads_back_as_it_stood_at_the_end_of_a_round() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let record = Record::open(&path).unwrap();
        assert!(!record.has_references().unwrap());
        let btc = Symbol::new("btc").unwrap();
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let first = reference(None, Status::Insufficient);
        let later = reference(Some(100.0), Status::Final);
        record
            .write_references(1, &[(btc.clone(), d, first.clone())])
            .unwrap();
        record
            .write_references(3, &[(btc.clone(), d, later.clone())])
            .unwrap();
        let at = |round| {
            record
                .references(Some(&btc), None, None, round)
                .unwrap()
                .into_iter()
                .map(|r| (r.round, r.reference))
                .collect::<Vec<_>>()
        };
        assert_eq!(at(Some(0)), []);
        assert_eq!(at(Some(1)), [(Some(1), first.clone())]);
        assert_eq!(at(Some(2)), [(Some(1), first)]);
        assert_eq!(at(None), [(Some(3), later)]);
        let other = Symbol::new("eth").unwrap();
        assert_eq!(
            record.references(Some(&other), None, None, None).unwrap(),
            []
        );
        assert_eq!(
            record
                .references(None, Some(d.succ_opt().unwrap()), None, None)
                .unwrap(),
            []
        );
    }

    #[test]
    fn a_version_2_record_gains_an_empty_reference_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        drop(Record::open(&path).unwrap());
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP TABLE reference; \
                 UPDATE meta SET value = '2' WHERE key = 'schema_version';",
            )
            .unwrap();
        }
        assert!(matches!(
            Record::open_read_only(&path),
            Err(RecordError::OlderFormat { found: 2, .. })
        ));
        let record = Record::open(&path).unwrap();
        assert!(!record.has_references().unwrap());
        let version: String = record
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, "3");
    }
}
