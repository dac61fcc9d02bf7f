//! The point-in-time reads of the PostgreSQL record, with the SQLite
//! record's meaning (`record::history` says it): the store as it was at the
//! end of a round, filtered or whole, and the round that had finished by a
//! given time. A cell's `cells` row answers from `since` on; before that,
//! its newest `history` row at or before the round, which PostgreSQL picks
//! itself (`DISTINCT ON`). Read-only.

use chrono::{DateTime, NaiveDate, Utc};

use super::{pg, raw, PostgresRecord, COLUMNS};
use crate::model::{Exchange, Symbol, TaskKey};
use crate::record::rows::{day_number, int, millis, Decoder};
use crate::record::RecordError;
use crate::store::{Cell, Store};

impl PostgresRecord {
    /// Checks that `round` can be answered for: recorded, and not folded
    /// by compaction.
    fn check_round(&self, round: u64) -> Result<(), RecordError> {
        let path = self.path.clone();
        let (known, newest) = self.with(|c, _| {
            let doing = "looking up a round";
            let known = c
                .query_opt("SELECT 1 FROM rounds WHERE round = $1", &[&int(round)])
                .map_err(pg(&path, doing))?
                .is_some();
            let newest: Option<i64> = c
                .query_one("SELECT MAX(round) FROM rounds", &[])
                .map_err(pg(&path, doing))?
                .get(0);
            Ok((known, newest))
        })?;
        if known {
            return Ok(());
        }
        if let Some(retained_from) = self.retained_from()?.filter(|r| round < *r) {
            return Err(RecordError::Compacted {
                path,
                round,
                retained_from,
            });
        }
        Err(RecordError::NoSuchRound {
            path,
            round,
            newest: newest.and_then(|n| u64::try_from(n).ok()),
        })
    }

    /// The store as it was at the end of `round`.
    pub fn store_at(&self, round: u64) -> Result<Store, RecordError> {
        let mut store = Store::new();
        for (key, cell) in self.cells_at(round, &[], &[], None, None)? {
            store.put(&key, &cell);
        }
        Ok(store)
    }

    /// The newest round that finished (or was aborted) at or before `t`.
    pub fn round_at(&self, t: DateTime<Utc>) -> Result<Option<u64>, RecordError> {
        let path = self.path.clone();
        self.with(|c, _| {
            let round: Option<i64> = c
                .query_opt(
                    "SELECT round FROM rounds WHERE finished IS NOT NULL AND finished <= $1 \
                     ORDER BY finished DESC, round DESC LIMIT 1",
                    &[&millis(t)],
                )
                .map_err(pg(&path, "finding the round at a time"))?
                .map(|r| r.get(0));
            Ok(round.and_then(|r| u64::try_from(r).ok()))
        })
    }

    /// Like `store_at(round)`, filtered (an empty slice means every one)
    /// and in key order.
    pub fn cells_at(
        &self,
        round: u64,
        exchanges: &[Exchange],
        symbols: &[Symbol],
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        self.check_round(round)?;
        self.read(Some(round), exchanges, symbols, from, to)
    }

    /// The current value of each cell the filter keeps (the `cells` table
    /// alone), in key order.
    pub fn cells_now(
        &self,
        exchanges: &[Exchange],
        symbols: &[Symbol],
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        self.read(None, exchanges, symbols, from, to)
    }

    /// The cells the filter keeps at the end of `round`, or now (`None`).
    fn read(
        &self,
        round: Option<u64>,
        exchanges: &[Exchange],
        symbols: &[Symbol],
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        let path = self.path.clone();
        let mut out = self.with(|c, names| {
            let doing = "reading history";
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(pg(&path, doing))?;
            Self::reread(&mut tx, names, &path)?;
            let mut conditions = String::new();
            let lists: [(&str, Vec<Option<i64>>); 2] = [
                (
                    "exchange",
                    exchanges
                        .iter()
                        .map(|e| names.exchange_id(e.as_str()))
                        .collect(),
                ),
                (
                    "symbol",
                    symbols
                        .iter()
                        .map(|s| names.symbol_id(s.as_str()))
                        .collect(),
                ),
            ];
            for (column, ids) in lists.iter().filter(|(_, ids)| !ids.is_empty()) {
                let ids: Vec<String> = ids.iter().flatten().map(i64::to_string).collect();
                if ids.is_empty() {
                    // Only names the record has no cell of.
                    return Ok(Vec::new());
                }
                conditions.push_str(&format!(" AND {column} IN ({})", ids.join(", ")));
            }
            for (bound, op) in [(from, ">="), (to, "<=")] {
                if let Some(day) = bound {
                    conditions.push_str(&format!(" AND day {op} {}", day_number(day)));
                }
            }
            // Now: the `cells` table alone. At a round: a cell read at a
            // round before its own carries `since` as its round (the round
            // that recorded what it holds), and a cell not recorded by then
            // answers from its newest history row at or before it.
            let (query, round, table) = match round {
                None => (
                    format!("SELECT {COLUMNS} FROM cells WHERE TRUE{conditions}"),
                    None,
                    "cells",
                ),
                Some(round) => {
                    let current = COLUMNS.replace(
                        " round,",
                        " CASE WHEN round > $1 THEN since ELSE round END,",
                    );
                    let query = format!(
                        "SELECT {current} FROM cells WHERE since <= $1{conditions} \
                         UNION ALL \
                         SELECT {COLUMNS} FROM (SELECT DISTINCT ON (symbol, day, exchange) {COLUMNS} \
                         FROM history WHERE round <= $1{conditions} \
                         ORDER BY symbol, day, exchange, round DESC) AS h \
                         WHERE NOT EXISTS (SELECT 1 FROM cells c WHERE c.symbol = h.symbol \
                         AND c.day = h.day AND c.exchange = h.exchange AND c.since <= $1)"
                    );
                    (query, Some(int(round)), "history")
                }
            };
            let params: Vec<&(dyn postgres::types::ToSql + Sync)> = match &round {
                Some(round) => vec![round],
                None => Vec::new(),
            };
            let rows = tx.query(&query, &params).map_err(pg(&path, doing))?;
            let decoder = Decoder::new(&path, table);
            let cells = rows
                .iter()
                .map(|row| decoder.cell_of(raw(row, &path)?, names))
                .collect::<Result<Vec<_>, _>>()?;
            tx.commit().map_err(pg(&path, doing))?;
            Ok(cells)
        })?;
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
