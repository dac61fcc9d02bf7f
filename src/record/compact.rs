//! Compaction of the record's history: rows older than the kept span folded
//! into the latest value of each cell at the cutoff round (a history row,
//! or the `cells` row when its value was recorded by then), and the older
//! rounds removed (`compact`, what it removed in `Compacted`). It never
//! touches the `cells` table, so no current value is ever lost.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::OptionalExtension;
use serde::Serialize;

use super::rows::millis;
use super::{schema, sql, RecordError, SqliteRecord};

/// What `compact` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Compacted {
    /// The newest round finished at or before the cutoff time: history is
    /// kept whole from it on, and `store_at` still answers for it. `None`
    /// when no round is that old (nothing was removed).
    pub cutoff_round: Option<u64>,
    /// `history` rows removed (values superseded at or before the cutoff).
    pub history_rows: u64,
    /// `rounds` rows removed (rounds older than the cutoff round).
    pub rounds: u64,
}

impl SqliteRecord {
    /// Folds history older than `keep_for` (by when rounds finished, from
    /// `now`): the cutoff round is the newest round finished at or before
    /// `now - keep_for`; for each cell, of its history rows at or before the
    /// cutoff only the latest is kept, so `store_at(cutoff)` and every later
    /// round still answer exactly; the rounds before the cutoff are removed
    /// and `store_at` of them becomes an error naming the cutoff. The
    /// `cells` table is never touched: no current value is ever lost. The
    /// freed pages are reused by later writes (the file does not shrink).
    pub fn compact(
        &mut self,
        keep_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Compacted, RecordError> {
        let path = &self.path;
        let doing = "compacting history";
        let Some(cutoff) = chrono::Duration::from_std(keep_for)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        else {
            return Ok(Compacted::default());
        };
        let tx = self.conn.transaction().map_err(sql(path, doing))?;
        let round: Option<i64> = tx
            .query_row(
                "SELECT round FROM rounds WHERE finished IS NOT NULL AND finished <= ?1 \
                 ORDER BY round DESC LIMIT 1",
                [millis(cutoff)],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(path, doing))?;
        let Some(round) = round else {
            return Ok(Compacted::default());
        };
        let history_rows = tx
            .execute(
                "DELETE FROM history WHERE round < ?1 AND (EXISTS (\
                 SELECT 1 FROM history AS newer WHERE newer.symbol = history.symbol \
                 AND newer.day = history.day AND newer.exchange = history.exchange \
                 AND newer.round > history.round AND newer.round <= ?1) \
                 OR EXISTS (SELECT 1 FROM cells WHERE cells.symbol = history.symbol \
                 AND cells.day = history.day AND cells.exchange = history.exchange \
                 AND cells.since <= ?1))",
                [round],
            )
            .map_err(sql(path, doing))?;
        let rounds = tx
            .execute("DELETE FROM rounds WHERE round < ?1", [round])
            .map_err(sql(path, doing))?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE \
             SET value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
            rusqlite::params![schema::key::RETAINED_FROM, round.to_string()],
        )
        .map_err(sql(path, doing))?;
        tx.commit().map_err(sql(path, doing))?;
        Ok(Compacted {
            cutoff_round: u64::try_from(round).ok(),
            history_rows: history_rows as u64,
            rounds: rounds as u64,
        })
    }
}
