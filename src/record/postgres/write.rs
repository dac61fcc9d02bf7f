//! The round writes of the PostgreSQL record, with the SQLite record's
//! meaning (`record::rounds` says it): a round begun, its changed cells
//! written in one transaction, its end; and compaction (`record::compact`).
//! A round's cells go in batches of `BATCH` rows, each two statements over
//! arrays (`unnest`): the values they replace moved into `history`, then
//! the cells upserted. It writes what it is handed and decides nothing
//! about cells.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use postgres::Transaction;

use super::{pg, PostgresRecord};
use crate::model::{Market, RoundSummary, TaskKey};
use crate::record::names::Names;
use crate::record::rows::{day_number, int, millis, state_code};
use crate::record::schema::key;
use crate::record::{Compacted, RecordError, RoundStatus, WriteStats};
use crate::store::Cell;

/// Rows per statement: large enough that a round's writes are a few
/// statements, small enough that one's arrays stay a few MB.
const BATCH: usize = 5_000;

/// The new rows as one array per column, the form `unnest` reads.
#[derive(Default)]
struct Columns {
    symbol: Vec<i64>,
    day: Vec<i64>,
    exchange: Vec<i64>,
    state: Vec<i64>,
    flags: Vec<i64>,
    open: Vec<Option<f64>>,
    high: Vec<Option<f64>>,
    low: Vec<Option<f64>>,
    close: Vec<Option<f64>>,
    volume: Vec<Option<f64>>,
    fetched_at: Vec<Option<i64>>,
    round: Vec<i64>,
    source: Vec<Option<i64>>,
    reason: Vec<Option<String>>,
    attempts: Vec<Option<i64>>,
}

/// The arrays as a row source named `n` with the cell columns.
const UNNEST: &str = "unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
    $5::bigint[], $6::float8[], $7::float8[], $8::float8[], $9::float8[], $10::float8[], \
    $11::bigint[], $12::bigint[], $13::bigint[], $14::text[], $15::bigint[]) AS n (symbol, day, \
    exchange, state, flags, open, high, low, close, volume, fetched_at, round, source, reason, \
    attempts)";

impl Columns {
    fn push(&mut self, symbol: i64, exchange: i64, day: i64, source: Option<i64>, cell: &Cell) {
        let p = cell.price;
        self.symbol.push(symbol);
        self.day.push(day);
        self.exchange.push(exchange);
        self.state.push(state_code(cell.state));
        self.flags.push(i64::from(cell.flags.bits()));
        self.open.push(p.map(|p| p.open));
        self.high.push(p.map(|p| p.high));
        self.low.push(p.map(|p| p.low));
        self.close.push(p.map(|p| p.close));
        self.volume.push(p.map(|p| p.volume));
        self.fetched_at.push(cell.fetched_at.map(millis));
        self.round.push(int(cell.round));
        self.source.push(source);
        self.reason
            .push(cell.note.as_ref().map(|n| n.reason.clone()));
        self.attempts
            .push(cell.note.as_ref().map(|n| i64::from(n.attempts)));
    }

    fn params<'a>(&'a self, round: &'a i64) -> [&'a (dyn postgres::types::ToSql + Sync); 16] {
        [
            &self.symbol,
            &self.day,
            &self.exchange,
            &self.state,
            &self.flags,
            &self.open,
            &self.high,
            &self.low,
            &self.close,
            &self.volume,
            &self.fetched_at,
            &self.round,
            &self.source,
            &self.reason,
            &self.attempts,
            round,
        ]
    }
}

/// The id of `name` in `table`, added if it is new (in the caller's
/// transaction; concurrent writers of the same name agree on one id).
fn intern(
    tx: &mut Transaction<'_>,
    names: &mut Names,
    table: &'static str,
    name: &str,
    path: &std::path::Path,
) -> Result<i64, RecordError> {
    let known = match table {
        "exchanges" => names.exchange_id(name),
        "symbols" => names.symbol_id(name),
        _ => names.source_id(name),
    };
    if let Some(id) = known {
        return Ok(id);
    }
    let doing = "adding a name to the record";
    let id: i64 = if table == "sources" {
        let market: Option<i64> = match Market::of_source(name) {
            None => None,
            Some(m) => Some(
                tx.query_one(
                    "INSERT INTO markets (name) VALUES ($1) ON CONFLICT (name) \
                     DO UPDATE SET name = excluded.name RETURNING id",
                    &[&m],
                )
                .map_err(pg(path, doing))?
                .get(0),
            ),
        };
        tx.query_one(
            "INSERT INTO sources (url, market) VALUES ($1, $2) ON CONFLICT (url) \
             DO UPDATE SET url = excluded.url RETURNING id",
            &[&name, &market],
        )
        .map_err(pg(path, doing))?
        .get(0)
    } else {
        tx.query_one(
            &format!(
                "INSERT INTO {table} (name) VALUES ($1) ON CONFLICT (name) \
                 DO UPDATE SET name = excluded.name RETURNING id"
            ),
            &[&name],
        )
        .map_err(pg(path, doing))?
        .get(0)
    };
    names.add(table, id, name, path)?;
    Ok(id)
}

impl PostgresRecord {
    /// Records that `round` began (`SqliteRecord::begin_round`'s rules,
    /// among this daemon's rounds: others number theirs from the same
    /// sequence): a round older than its newest is refused, and its rounds
    /// left `running` are marked `aborted`.
    pub fn begin_round(
        &mut self,
        round: u64,
        started: DateTime<Utc>,
        config_version: u64,
    ) -> Result<(), RecordError> {
        let path = self.path.clone();
        let daemon = self.daemon.clone();
        self.with(|c, _| {
            let doing = "recording the start of a round";
            let mut tx = c.transaction().map_err(pg(&path, doing))?;
            let newest = tx
                .query_opt(
                    "SELECT round, status FROM rounds WHERE daemon = $1 ORDER BY round DESC LIMIT 1",
                    &[&daemon],
                )
                .map_err(pg(&path, doing))?
                .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)));
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
                "UPDATE rounds SET status = 'aborted' \
                 WHERE status = 'running' AND round <> $1 AND daemon = $2",
                &[&int(round), &daemon],
            )
            .map_err(pg(&path, doing))?;
            tx.execute(
                "INSERT INTO rounds (round, daemon, started, config_version, status) \
                 VALUES ($1, $2, $3, $4, 'running') \
                 ON CONFLICT (round) DO UPDATE SET started = excluded.started, \
                 config_version = excluded.config_version",
                &[&int(round), &daemon, &millis(started), &int(config_version)],
            )
            .map_err(pg(&path, doing))?;
            tx.commit().map_err(pg(&path, doing))
        })
    }

    /// Writes the cells `round` changed, in one transaction, with
    /// `SqliteRecord::write`'s meaning: each cell's current value in
    /// `cells`; a value it replaces moved into `history` (under the round
    /// that first recorded it) when it differs and was recorded before
    /// this round; a repeated value only updates the fetch time, source
    /// and round. If the connection is lost, nothing of it is written and
    /// the error says so: the caller keeps the cells for its next flush.
    pub fn write(
        &mut self,
        round: u64,
        cells: &[(TaskKey, Cell)],
    ) -> Result<WriteStats, RecordError> {
        let started = Instant::now();
        let path = self.path.clone();
        self.with(|c, names| {
            let doing = "writing a round's cells";
            Self::refresh(c, names, &path)?;
            let mut tx = c.transaction().map_err(pg(&path, doing))?;
            let begun = tx
                .query_opt("SELECT 1 FROM rounds WHERE round = $1", &[&int(round)])
                .map_err(pg(&path, doing))?;
            if begun.is_none() {
                return Err(RecordError::RoundNotBegun {
                    path: path.clone(),
                    round,
                });
            }
            let this_round = int(round);
            let mut history = 0u64;
            let kept = self.still_held(&mut tx, round, cells)?;
            let refused = cells.len() - kept.len();
            for chunk in kept.chunks(BATCH) {
                let mut rows = Columns::default();
                for (key, cell) in chunk {
                    let symbol = intern(&mut tx, names, "symbols", key.symbol.as_str(), &path)?;
                    let exchange =
                        intern(&mut tx, names, "exchanges", key.exchange.as_str(), &path)?;
                    let source = match cell.source.as_deref() {
                        Some(s) => Some(intern(&mut tx, names, "sources", s, &path)?),
                        None => None,
                    };
                    rows.push(symbol, exchange, day_number(key.day), source, cell);
                }
                let params = rows.params(&this_round);
                history += tx
                    .execute(
                        &format!(
                            "INSERT INTO history (symbol, day, exchange, round, state, flags, \
                             open, high, low, close, volume, fetched_at, source, reason, \
                             attempts) \
                             SELECT c.symbol, c.day, c.exchange, c.since, c.state, c.flags, \
                             c.open, c.high, c.low, c.close, c.volume, c.fetched_at, c.source, \
                             c.reason, c.attempts \
                             FROM cells c JOIN {UNNEST} USING (symbol, day, exchange) \
                             WHERE c.since < $16 AND {TRUTH_C} IS DISTINCT FROM {TRUTH_N} \
                             ON CONFLICT (symbol, day, exchange, round) DO UPDATE SET \
                             state = excluded.state, flags = excluded.flags, \
                             open = excluded.open, high = excluded.high, low = excluded.low, \
                             close = excluded.close, volume = excluded.volume, \
                             fetched_at = excluded.fetched_at, source = excluded.source, \
                             reason = excluded.reason, attempts = excluded.attempts",
                            TRUTH_C = truth("c"),
                            TRUTH_N = truth("n")
                        ),
                        &params,
                    )
                    .map_err(pg(&path, doing))?;
                tx.execute(
                    &format!(
                        "INSERT INTO cells (symbol, day, exchange, state, flags, open, high, \
                         low, close, volume, fetched_at, round, source, reason, attempts, since) \
                         SELECT n.*, $16 FROM {UNNEST} \
                         ON CONFLICT (symbol, day, exchange) DO UPDATE SET \
                         state = excluded.state, flags = excluded.flags, open = excluded.open, \
                         high = excluded.high, low = excluded.low, close = excluded.close, \
                         volume = excluded.volume, fetched_at = excluded.fetched_at, \
                         round = excluded.round, source = excluded.source, \
                         reason = excluded.reason, attempts = excluded.attempts, \
                         since = CASE WHEN {OLD} IS NOT DISTINCT FROM {NEW} \
                         THEN COALESCE(cells.since, excluded.since) ELSE excluded.since END",
                        OLD = truth("cells"),
                        NEW = truth("excluded"),
                    ),
                    &params,
                )
                .map_err(pg(&path, doing))?;
            }
            tx.commit().map_err(pg(&path, doing))?;
            Ok(WriteStats {
                cells: kept.len(),
                refused,
                history: usize::try_from(history).unwrap_or(usize::MAX),
                elapsed: started.elapsed(),
            })
        })
    }

    /// Records how a round ended, with its counts (a round never begun is
    /// recorded with `started` = `finished` - elapsed).
    pub fn finish_round(
        &mut self,
        summary: &RoundSummary,
        finished: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        let (status, started) = crate::record::rounds::round_end(summary, finished);
        let path = self.path.clone();
        let daemon = self.daemon.clone();
        let c = &summary.counts;
        self.with(|client, _| {
            client
                .execute(
                    "INSERT INTO rounds (round, daemon, started, finished, config_version, \
                     status, tasks, \"final\", provisional, \"none\", failed, rejected) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (round) DO UPDATE SET finished = excluded.finished, \
                     config_version = excluded.config_version, status = excluded.status, \
                     tasks = excluded.tasks, \"final\" = excluded.\"final\", \
                     provisional = excluded.provisional, \"none\" = excluded.\"none\", \
                     failed = excluded.failed, rejected = excluded.rejected",
                    &[
                        &int(summary.round),
                        &daemon,
                        &millis(started),
                        &millis(finished),
                        &int(summary.config_version),
                        &status.as_str(),
                        &int(c.tasks),
                        &int(c.finals),
                        &int(c.provisional),
                        &int(c.none),
                        &int(c.failed),
                        &int(c.rejected),
                    ],
                )
                .map_err(pg(&path, "recording the end of a round"))?;
            client
                .execute(
                    "UPDATE daemons SET last_round = GREATEST(last_round, $2) WHERE name = $1",
                    &[&daemon, &int(summary.round)],
                )
                .map_err(pg(&path, "recording the end of a round"))?;
            Ok(())
        })
    }

    /// Folds history older than `keep_for` (`SqliteRecord::compact`'s
    /// meaning); `cells` is never touched.
    pub fn compact(
        &mut self,
        keep_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Compacted, RecordError> {
        let Some(cutoff) = chrono::Duration::from_std(keep_for)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        else {
            return Ok(Compacted::default());
        };
        let path = self.path.clone();
        self.with(|c, _| {
            let doing = "compacting history";
            let mut tx = c.transaction().map_err(pg(&path, doing))?;
            let round: Option<i64> = tx
                .query_opt(
                    "SELECT round FROM rounds WHERE finished IS NOT NULL AND finished <= $1 \
                     ORDER BY round DESC LIMIT 1",
                    &[&millis(cutoff)],
                )
                .map_err(pg(&path, doing))?
                .map(|r| r.get(0));
            let Some(round) = round else {
                return Ok(Compacted::default());
            };
            let history_rows = tx
                .execute(
                    "DELETE FROM history h WHERE h.round < $1 AND (EXISTS (\
                     SELECT 1 FROM history newer WHERE newer.symbol = h.symbol \
                     AND newer.day = h.day AND newer.exchange = h.exchange \
                     AND newer.round > h.round AND newer.round <= $1) \
                     OR EXISTS (SELECT 1 FROM cells WHERE cells.symbol = h.symbol \
                     AND cells.day = h.day AND cells.exchange = h.exchange \
                     AND cells.since <= $1))",
                    &[&round],
                )
                .map_err(pg(&path, doing))?;
            let rounds = tx
                .execute("DELETE FROM rounds WHERE round < $1", &[&round])
                .map_err(pg(&path, doing))?;
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE \
                 SET value = GREATEST(meta.value::bigint, excluded.value::bigint)::text",
                &[&key::RETAINED_FROM, &round.to_string()],
            )
            .map_err(pg(&path, doing))?;
            tx.commit().map_err(pg(&path, doing))?;
            Ok(Compacted {
                cutoff_round: u64::try_from(round).ok(),
                history_rows,
                rounds,
            })
        })
    }
}

/// The columns of what a cell is as far as history goes, of table or
/// alias `of`: a value that repeats them writes no history row
/// (`record::rows::Truth`).
fn truth(of: &str) -> String {
    let columns: Vec<String> = [
        "state", "flags", "open", "high", "low", "close", "volume", "reason",
    ]
    .iter()
    .map(|c| format!("{of}.{c}"))
    .collect();
    format!("({})", columns.join(", "))
}
