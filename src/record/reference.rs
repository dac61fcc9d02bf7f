//! The `reference` table (schema version 3, keyed day first since 4): the
//! reference close of each
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
use super::{sql, RecordError, SqliteRecord};
use crate::model::Symbol;
use crate::model::{CellState, Exchange};
use crate::quality::{
    Constituent, Dispersion, Excluded, Exclusion, Reference, ReferenceRow, Status,
};
use crate::store::Store;

/// The day 1970-01-01, day number 0.
const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");

/// Writes `references` as judged in `round`, in one transaction: a row
/// only where the symbol-day's newest row says something else (a day
/// judged again to the same answer writes nothing, nor does an empty
/// reference of a day that never had one), and a second write of a
/// symbol-day in the same round replaces the first.
pub fn write(
    conn: &Connection,
    round: u64,
    references: &[(Symbol, NaiveDate, Reference)],
) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut newest = tx.prepare_cached(
            "SELECT status, close, constituents, excluded, min, max, spread, mad \
             FROM reference WHERE symbol = ?1 AND day = ?2 ORDER BY round DESC LIMIT 1",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO reference (symbol, day, round, status, close, \
             constituents, excluded, min, max, spread, mad) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        // In the table's order (day, symbol): a new day's rows are
        // appended, not spread over the file. Stable, so a symbol-day's
        // later write still replaces its earlier one.
        let mut ordered: Vec<&(Symbol, NaiveDate, Reference)> = references.iter().collect();
        ordered.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        for (symbol, day, r) in ordered {
            let row =
                Stored::of(r).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            let held = newest
                .query_row(params![symbol.as_str(), day_number(*day)], Stored::read)
                .optional()?;
            let empty = r.constituents.is_empty() && r.excluded.is_empty();
            if held.as_ref() == Some(&row) || (held.is_none() && empty) {
                continue;
            }
            insert.execute(params![
                symbol.as_str(),
                day_number(*day),
                i64::try_from(round).unwrap_or(i64::MAX),
                row.status,
                row.close,
                row.constituents,
                row.excluded,
                row.dispersion[0],
                row.dispersion[1],
                row.dispersion[2],
                row.dispersion[3],
            ])?;
        }
    }
    tx.commit()
}

/// A reference as its row's columns hold it. The constituents are their
/// exchanges' names, by close: their closes and volumes are the cells'
/// at the same point of the record (`Recorded::with_cells`), so a row is
/// about 200 bytes with 20 exchanges instead of a kilobyte.
#[derive(Debug, PartialEq)]
pub(super) struct Stored {
    pub(super) status: &'static str,
    pub(super) close: Option<f64>,
    pub(super) constituents: String,
    pub(super) excluded: String,
    pub(super) dispersion: [Option<f64>; 4],
}

impl Stored {
    pub(super) fn of(r: &Reference) -> Result<Stored, std::convert::Infallible> {
        let d = r.dispersion;
        Ok(Stored {
            status: r.status.as_str(),
            close: r.close,
            constituents: r
                .constituents
                .iter()
                .map(|c| c.exchange.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            excluded: encode_excluded(&r.excluded),
            dispersion: [
                d.map(|d| d.min),
                d.map(|d| d.max),
                d.map(|d| d.spread),
                d.map(|d| d.mad),
            ],
        })
    }

    /// The columns of `newest`'s row (a status no writer makes never
    /// equals a written one).
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
        let status: String = row.get(0)?;
        Ok(Stored {
            status: Status::parse(&status).map_or("?", Status::as_str),
            close: row.get(1)?,
            constituents: row.get(2)?,
            excluded: row.get(3)?,
            dispersion: [row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?],
        })
    }
}

/// A reference as the record holds it: its constituents by exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    pub symbol: Symbol,
    pub day: NaiveDate,
    /// The round that judged it so.
    pub round: u64,
    pub close: Option<f64>,
    pub status: Status,
    /// The constituents' exchanges, by close.
    pub constituents: Vec<Exchange>,
    pub excluded: Vec<Excluded>,
    pub dispersion: Option<Dispersion>,
}

impl Recorded {
    /// The whole reference, each constituent's close and volume (and
    /// whether it was provisional) read from `cells`: the record's cells at
    /// the same point (a reference row is written whenever its judgement
    /// changes, so the cells it was judged from are those of that point).
    /// A constituent `cells` holds no price for is an error naming it.
    pub fn with_cells(self, cells: &Store) -> Result<ReferenceRow, String> {
        let constituents = self
            .constituents
            .iter()
            .map(|exchange| {
                let cell = cells
                    .get(exchange, &self.symbol, self.day)
                    .filter(|c| c.usable_price().is_some())
                    .ok_or_else(|| {
                        format!(
                            "the reference of {}/{} names {exchange}, whose cell holds no price there",
                            self.symbol, self.day
                        )
                    })?;
                let price = cell.usable_price().ok_or("no price")?;
                Ok(Constituent {
                    exchange: exchange.clone(),
                    close: price.close,
                    volume: price.volume,
                    provisional: cell.state == CellState::Provisional,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(ReferenceRow {
            symbol: self.symbol,
            day: self.day,
            round: Some(self.round),
            reference: Reference {
                close: self.close,
                status: self.status,
                constituents,
                excluded: self.excluded,
                dispersion: self.dispersion,
            },
        })
    }
}

/// The cells left out, grouped by reason: `reason[:detail]*=exchange,…`
/// separated by spaces, e.g. `peg_unknown:usdt=binance,okx
/// outlier:100.2:2.004=gemini` (a market quoted in USDT with no peg is the
/// common case, and twenty exchanges named once each keep the row in its
/// page). Numbers are written so they read back exactly.
fn encode_excluded(excluded: &[Excluded]) -> String {
    // Free text (a quote, a flag's name) never holds a separator.
    let word = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_whitespace() || ":=,".contains(c) {
                    '_'
                } else {
                    c
                }
            })
            .collect()
    };
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for x in excluded {
        let reason = match &x.why {
            Exclusion::Flagged { flags } => format!(
                "flagged:{}",
                flags.iter().map(|f| word(f)).collect::<Vec<_>>().join(",")
            ),
            Exclusion::NotUsd { quote } => format!("not_usd:{}", word(quote)),
            Exclusion::OffPeg { coin, peg } => format!("off_peg:{}:{peg}", word(coin)),
            Exclusion::PegUnknown { coin } => format!("peg_unknown:{}", word(coin)),
            Exclusion::Stale => "stale".to_owned(),
            Exclusion::Outlier { median, threshold } => format!("outlier:{median}:{threshold}"),
        };
        match groups.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, exchanges)) => exchanges.push(x.exchange.as_str()),
            None => groups.push((reason, vec![x.exchange.as_str()])),
        }
    }
    groups
        .iter()
        .map(|(reason, exchanges)| format!("{reason}={}", exchanges.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `encode_excluded` read back, by exchange.
fn decode_excluded(text: &str) -> Result<Vec<Excluded>, String> {
    let mut out = Vec::new();
    for group in text.split_whitespace() {
        let (reason, exchanges) = group
            .split_once('=')
            .ok_or_else(|| format!("{group:?} has no '='"))?;
        let parts: Vec<&str> = reason.split(':').collect();
        let number = |s: &str| {
            s.parse::<f64>()
                .map_err(|e| format!("{reason:?}: {s:?}: {e}"))
        };
        let why = match parts.as_slice() {
            ["flagged", flags] => Exclusion::Flagged {
                flags: flags.split(',').map(str::to_owned).collect(),
            },
            ["not_usd", quote] => Exclusion::NotUsd {
                quote: (*quote).to_owned(),
            },
            ["off_peg", coin, peg] => Exclusion::OffPeg {
                coin: (*coin).to_owned(),
                peg: number(peg)?,
            },
            ["peg_unknown", coin] => Exclusion::PegUnknown {
                coin: (*coin).to_owned(),
            },
            ["stale"] => Exclusion::Stale,
            ["outlier", median, threshold] => Exclusion::Outlier {
                median: number(median)?,
                threshold: number(threshold)?,
            },
            _ => return Err(format!("unknown reason {reason:?}")),
        };
        for exchange in exchanges.split(',') {
            out.push(Excluded {
                exchange: Exchange::new(exchange).map_err(|e| format!("{group:?}: {e}"))?,
                why: why.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.exchange.cmp(&b.exchange));
    Ok(out)
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
) -> Result<Vec<Recorded>, RecordError> {
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
        out.push(recorded_of(row.map_err(&failed)?, path)?);
    }
    Ok(out)
}

/// The columns of one `reference` row, as read from either database.
pub(super) type ReferenceColumns = (
    String,
    i64,
    i64,
    String,
    Option<f64>,
    String,
    String,
    [Option<f64>; 4],
);

/// One `reference` row's columns as a `Recorded`, every value checked: a
/// row no writer of this schema makes is an error naming it.
pub(super) fn recorded_of(columns: ReferenceColumns, path: &Path) -> Result<Recorded, RecordError> {
    let (symbol, day, round, status, close, constituents, excluded, d) = columns;
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
    let constituents = constituents
        .split_whitespace()
        .map(Exchange::new)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&format!("constituents: {e}")))?;
    Ok(Recorded {
        symbol: Symbol::new(&symbol).map_err(|e| bad(&format!("symbol: {e}")))?,
        day: EPOCH
            .checked_add_signed(chrono::Duration::days(day))
            .ok_or_else(|| bad("a day out of range"))?,
        round: u64::try_from(round).map_err(|_| bad("a negative round"))?,
        close,
        status: Status::parse(&status).ok_or_else(|| bad(&format!("unknown status {status:?}")))?,
        constituents,
        excluded: decode_excluded(&excluded).map_err(|e| bad(&format!("excluded: {e}")))?,
        dispersion,
    })
}

impl SqliteRecord {
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
    ) -> Result<Vec<Recorded>, RecordError> {
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
mod tests;
