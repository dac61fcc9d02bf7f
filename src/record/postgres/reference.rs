//! The `reference` table in PostgreSQL, with the SQLite record's meaning
//! (`record::reference` says it): the reference close of each symbol-day
//! as it stood in each round that judged it again, a row only where the
//! judgement changed. A round's references go in one statement over arrays,
//! each compared there with its symbol-day's newest row. It decides no
//! reference and touches no other table.

use chrono::NaiveDate;

use super::{pg, PostgresRecord};
use crate::model::Symbol;
use crate::quality::Reference;
use crate::record::reference::{recorded_of, Recorded, Stored};
use crate::record::rows::{day_number, int};
use crate::record::RecordError;

impl PostgresRecord {
    /// Writes the references judged in `round`: a row only where the
    /// symbol-day's newest row says something else (an empty reference of
    /// a day that never had one writes none); the last of a symbol-day
    /// given twice wins.
    pub fn write_references(
        &self,
        round: u64,
        references: &[(Symbol, NaiveDate, Reference)],
    ) -> Result<(), RecordError> {
        let mut latest: std::collections::BTreeMap<(&str, i64), Stored> = Default::default();
        for (symbol, day, r) in references {
            let Ok(row) = Stored::of(r);
            latest.insert((symbol.as_str(), day_number(*day)), row);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let mut symbol = Vec::new();
        let mut day = Vec::new();
        let mut status = Vec::new();
        let mut close = Vec::new();
        let mut constituents = Vec::new();
        let mut excluded = Vec::new();
        let mut dispersion: [Vec<Option<f64>>; 4] = Default::default();
        for ((s, d), row) in &latest {
            symbol.push(*s);
            day.push(*d);
            status.push(row.status);
            close.push(row.close);
            constituents.push(row.constituents.as_str());
            excluded.push(row.excluded.as_str());
            for (column, v) in dispersion.iter_mut().zip(row.dispersion) {
                column.push(v);
            }
        }
        let path = self.path.clone();
        let round = int(round);
        self.with(|c, _| {
            c.execute(
                "INSERT INTO reference (symbol, day, round, status, close, constituents, excluded, \
                 min, max, spread, mad) \
                 SELECT n.symbol, n.day, $1, n.status, n.close, n.constituents, n.excluded, \
                 n.min, n.max, n.spread, n.mad \
                 FROM unnest($2::text[], $3::bigint[], $4::text[], $5::float8[], $6::text[], \
                 $7::text[], $8::float8[], $9::float8[], $10::float8[], $11::float8[]) \
                 AS n (symbol, day, status, close, constituents, excluded, min, max, spread, mad) \
                 LEFT JOIN LATERAL (SELECT * FROM reference r WHERE r.symbol = n.symbol \
                 AND r.day = n.day ORDER BY r.round DESC LIMIT 1) h ON true \
                 WHERE CASE WHEN h.symbol IS NULL \
                 THEN NOT (n.constituents = '' AND n.excluded = '') \
                 ELSE (h.status, h.close, h.constituents, h.excluded, h.min, h.max, h.spread, h.mad) \
                 IS DISTINCT FROM (n.status, n.close, n.constituents, n.excluded, n.min, n.max, \
                 n.spread, n.mad) END \
                 ON CONFLICT (symbol, day, round) DO UPDATE SET status = excluded.status, \
                 close = excluded.close, constituents = excluded.constituents, \
                 excluded = excluded.excluded, min = excluded.min, max = excluded.max, \
                 spread = excluded.spread, mad = excluded.mad",
                &[
                    &round,
                    &symbol,
                    &day,
                    &status,
                    &close,
                    &constituents,
                    &excluded,
                    &dispersion[0],
                    &dispersion[1],
                    &dispersion[2],
                    &dispersion[3],
                ],
            )
            .map_err(pg(&path, "writing reference closes"))?;
            Ok(())
        })
    }

    /// The references as they stood at the end of `round` (now: `None`).
    pub fn references(
        &self,
        symbol: Option<&Symbol>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        round: Option<u64>,
    ) -> Result<Vec<Recorded>, RecordError> {
        let path = self.path.clone();
        self.with(|c, _| {
            let rows = c
                .query(
                    "SELECT r.symbol, r.day, r.round, r.status, r.close, r.constituents, \
                     r.excluded, r.min, r.max, r.spread, r.mad FROM reference r \
                     WHERE ($1::text IS NULL OR r.symbol = $1) AND r.day >= $2 AND r.day <= $3 \
                     AND r.round = (SELECT max(x.round) FROM reference x \
                     WHERE x.symbol = r.symbol AND x.day = r.day AND x.round <= $4) \
                     ORDER BY r.symbol, r.day",
                    &[
                        &symbol.map(Symbol::as_str),
                        &from.map_or(i64::MIN, day_number),
                        &to.map_or(i64::MAX, day_number),
                        &round.map_or(i64::MAX, int),
                    ],
                )
                .map_err(pg(&path, "reading reference closes"))?;
            rows.iter()
                .map(|r| {
                    recorded_of(
                        (
                            r.get(0),
                            r.get(1),
                            r.get(2),
                            r.get(3),
                            r.get(4),
                            r.get(5),
                            r.get(6),
                            [r.get(7), r.get(8), r.get(9), r.get(10)],
                        ),
                        &path,
                    )
                })
                .collect()
        })
    }

    /// Whether any reference was ever written.
    pub fn has_references(&self) -> Result<bool, RecordError> {
        let path = self.path.clone();
        self.with(|c, _| {
            Ok(c.query_one("SELECT EXISTS (SELECT 1 FROM reference)", &[])
                .map_err(pg(&path, "reading reference closes"))?
                .get(0))
        })
    }
}
