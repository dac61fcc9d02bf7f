//! The round writes of the record: a round begun (`begin_round`), the cells
//! it changed written in one transaction (`write`), and how it ended
//! (`finish_round`), with the vocabulary of rounds (`RoundStatus`,
//! `RoundRow`, `WriteStats`) and the listing `rounds`. It writes what the
//! Recorder hands it and never decides what a cell holds; reading the past
//! is `history.rs`'s, folding it `compact.rs`'s.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use super::rows::{int, millis, time_of, Encoded, Truth, TRUTH_COLUMNS};
use super::{sql, RecordError, SqliteRecord, INSERT_CELL};
use crate::model::{Counts, RoundSummary, TaskKey};
use crate::store::Cell;

/// What one `write` put in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteStats {
    /// Rows of `cells` inserted or replaced.
    pub cells: usize,
    /// Rows of `history` inserted or replaced.
    pub history: usize,
    /// Cells not written: their lane's lease is no longer this daemon's
    /// under the epoch they were asked under (a shared record only).
    pub refused: usize,
    /// How long the transaction took, fsync included.
    #[serde(rename = "elapsed_s", serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Where a round is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoundStatus {
    /// Begun and not finished (or the process stopped during it).
    Running,
    /// Every task done.
    Finished,
    /// Cut short by a shutdown.
    Aborted,
}

impl RoundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoundStatus::Running => "running",
            RoundStatus::Finished => "finished",
            RoundStatus::Aborted => "aborted",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        [
            RoundStatus::Running,
            RoundStatus::Finished,
            RoundStatus::Aborted,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// One row of `rounds`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoundRow {
    pub round: u64,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub config_version: u64,
    pub status: RoundStatus,
    pub counts: Counts,
}

/// How a round ended, as its row says it: `finished`, or `aborted` when
/// the summary says so; and when it started (`finished` - elapsed, for a
/// round that was never begun).
pub(super) fn round_end(
    summary: &RoundSummary,
    finished: DateTime<Utc>,
) -> (RoundStatus, DateTime<Utc>) {
    let status = if summary.aborted {
        RoundStatus::Aborted
    } else {
        RoundStatus::Finished
    };
    let started = chrono::Duration::from_std(summary.elapsed)
        .ok()
        .and_then(|d| finished.checked_sub_signed(d))
        .unwrap_or(finished);
    (status, started)
}

/// Writes a round's row as it ended: inserted, or its end filled in if
/// `begin_round` wrote it (its start is kept).
pub(super) fn put_round(
    conn: &Connection,
    round: u64,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    config_version: u64,
    status: RoundStatus,
    c: &Counts,
) -> rusqlite::Result<usize> {
    conn.execute(
        "INSERT INTO rounds (round, started, finished, config_version, status, tasks, \
         \"final\", provisional, \"none\", failed, rejected) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (round) DO UPDATE SET finished = excluded.finished, \
         config_version = excluded.config_version, status = excluded.status, \
         tasks = excluded.tasks, \"final\" = excluded.\"final\", \
         provisional = excluded.provisional, \"none\" = excluded.\"none\", \
         failed = excluded.failed, rejected = excluded.rejected",
        rusqlite::params![
            int(round),
            millis(started),
            millis(finished),
            int(config_version),
            status.as_str(),
            int(c.tasks),
            int(c.finals),
            int(c.provisional),
            int(c.none),
            int(c.failed),
            int(c.rejected),
        ],
    )
}

impl SqliteRecord {
    /// Records that `round` began. Rounds begin in increasing order: a
    /// round older than (or equal to, once finished) the newest recorded
    /// is refused. A round left `running` by a process that stopped is
    /// marked `aborted`, since a newer one begins.
    pub fn begin_round(
        &mut self,
        round: u64,
        started: DateTime<Utc>,
        config_version: u64,
    ) -> Result<(), RecordError> {
        let path = &self.path;
        let doing = "recording the start of a round";
        let tx = self.conn.transaction().map_err(sql(path, doing))?;
        let newest: Option<(i64, String)> = tx
            .query_row(
                "SELECT round, status FROM rounds ORDER BY round DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(sql(path, doing))?;
        if let Some((newest, status)) = newest {
            let newest = u64::try_from(newest).unwrap_or(0);
            if newest > round || (newest == round && status != RoundStatus::Running.as_str()) {
                return Err(RecordError::RoundOrder {
                    path: path.clone(),
                    round,
                    newest,
                });
            }
        }
        tx.execute(
            "UPDATE rounds SET status = 'aborted' WHERE status = 'running' AND round <> ?1",
            [int(round)],
        )
        .map_err(sql(path, doing))?;
        tx.execute(
            "INSERT INTO rounds (round, started, config_version, status) \
             VALUES (?1, ?2, ?3, 'running') \
             ON CONFLICT (round) DO UPDATE SET started = excluded.started, \
             config_version = excluded.config_version",
            rusqlite::params![int(round), millis(started), int(config_version)],
        )
        .map_err(sql(path, doing))?;
        tx.commit().map_err(sql(path, doing))
    }

    /// Writes the cells `round` changed, in one transaction: each cell's
    /// current value in `cells` (with the cell's own round). A cell whose
    /// state, price, flags or reason differ from what `cells` held moves
    /// the value it held into `history` (under the round that first
    /// recorded it) unless that was this same round; one that repeats
    /// what `cells` held writes no history row, only its new fetch time,
    /// source and round. The bytes written follow `cells.len()`, not the
    /// size of the record. The round must have been begun.
    pub fn write(
        &mut self,
        round: u64,
        cells: &[(TaskKey, Cell)],
    ) -> Result<WriteStats, RecordError> {
        let written = self.write_cells(round, cells);
        if written.is_err() {
            self.forget_names();
        }
        written
    }

    fn write_cells(
        &mut self,
        round: u64,
        cells: &[(TaskKey, Cell)],
    ) -> Result<WriteStats, RecordError> {
        let started = Instant::now();
        let path = &self.path;
        let doing = "writing a round's cells";
        let mut names = self.names.borrow_mut();
        names.refresh(&self.conn, path)?;
        let tx = self.conn.transaction().map_err(sql(path, doing))?;
        let begun = tx
            .query_row(
                "SELECT 1 FROM rounds WHERE round = ?1",
                [int(round)],
                |_| Ok(()),
            )
            .optional()
            .map_err(sql(path, doing))?;
        if begun.is_none() {
            return Err(RecordError::RoundNotBegun {
                path: path.clone(),
                round,
            });
        }
        let this_round = int(round);
        let mut history = 0;
        {
            let mut rows = cells
                .iter()
                .map(|(key, cell)| Encoded::new(&tx, &mut names, key, cell))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql(path, doing))?;
            // In the table's order: neighbours share pages.
            rows.sort_by_key(|r| (r.day, r.symbol, r.exchange));
            let mut current = tx.prepare_cached(INSERT_CELL).map_err(sql(path, doing))?;
            let mut held = tx
                .prepare_cached(&format!(
                    "SELECT since, {TRUTH_COLUMNS} FROM cells \
                     WHERE symbol = ?1 AND day = ?2 AND exchange = ?3"
                ))
                .map_err(sql(path, doing))?;
            let mut keep = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO history (symbol, day, exchange, state, flags, open, \
                     high, low, close, volume, fetched_at, round, source, reason, attempts) \
                     SELECT symbol, day, exchange, state, flags, open, high, low, close, volume, \
                     fetched_at, since, source, reason, attempts FROM cells \
                     WHERE symbol = ?1 AND day = ?2 AND exchange = ?3",
                )
                .map_err(sql(path, doing))?;
            for row in &rows {
                let key = [row.symbol, row.day, row.exchange];
                let before: Option<(Option<i64>, Truth)> = held
                    .query_row(key, |r| Ok((r.get(0)?, Truth::read(r, 1)?)))
                    .optional()
                    .map_err(sql(path, doing))?;
                let since = match before {
                    Some((since, truth)) if truth == Truth::of(row.cell()) => {
                        since.unwrap_or(this_round)
                    }
                    Some((Some(since), _)) if since < this_round => {
                        keep.execute(key).map_err(sql(path, doing))?;
                        history += 1;
                        this_round
                    }
                    _ => this_round,
                };
                row.insert(&mut current, row.cell().round, Some(Some(since)))
                    .map_err(sql(path, doing))?;
            }
        }
        tx.commit().map_err(sql(path, doing))?;
        Ok(WriteStats {
            cells: cells.len(),
            history,
            refused: 0,
            elapsed: started.elapsed(),
        })
    }

    /// Records how a round ended: `finished`, or `aborted` when the summary
    /// says so, with its counts. A round that was never begun is recorded
    /// with `started` = `finished` - elapsed.
    pub fn finish_round(
        &mut self,
        summary: &RoundSummary,
        finished: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        let (status, started) = round_end(summary, finished);
        put_round(
            &self.conn,
            summary.round,
            started,
            finished,
            summary.config_version,
            status,
            &summary.counts,
        )
        .map_err(sql(&self.path, "recording the end of a round"))?;
        Ok(())
    }

    /// Every round recorded (since the last compaction), newest first.
    pub fn rounds(&self) -> Result<Vec<RoundRow>, RecordError> {
        let path = &self.path;
        let doing = "reading rounds";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT round, started, finished, config_version, status, tasks, \"final\", \
                 provisional, \"none\", failed, rejected FROM rounds ORDER BY round DESC",
            )
            .map_err(sql(path, doing))?;
        let mut rows = stmt.query([]).map_err(sql(path, doing))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(sql(path, doing))? {
            let ints: [i64; 8] = {
                let mut v = [0i64; 8];
                for (slot, col) in v.iter_mut().zip([0, 3, 5, 6, 7, 8, 9, 10]) {
                    *slot = r.get(col).map_err(sql(path, doing))?;
                }
                v
            };
            let round = ints[0];
            let bad = |reason: String| RecordError::Corrupt {
                path: path.clone(),
                at: format!("table rounds, round {round}"),
                reason,
            };
            let nat = |v: i64| u64::try_from(v).map_err(|_| bad(format!("{v} is negative")));
            let time =
                |ms: i64| time_of(ms).ok_or_else(|| bad(format!("time {ms} is out of range")));
            let started: i64 = r.get(1).map_err(sql(path, doing))?;
            let finished: Option<i64> = r.get(2).map_err(sql(path, doing))?;
            let status: String = r.get(4).map_err(sql(path, doing))?;
            out.push(RoundRow {
                round: nat(round)?,
                started: time(started)?,
                finished: finished.map(time).transpose()?,
                config_version: nat(ints[1])?,
                status: RoundStatus::parse(&status)
                    .ok_or_else(|| bad(format!("unknown status {status:?}")))?,
                counts: Counts {
                    tasks: nat(ints[2])?,
                    finals: nat(ints[3])?,
                    provisional: nat(ints[4])?,
                    none: nat(ints[5])?,
                    failed: nat(ints[6])?,
                    rejected: nat(ints[7])?,
                },
            });
        }
        Ok(out)
    }
}
