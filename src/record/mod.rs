//! The durable record of the aggregate: an embedded SQLite database that
//! holds the current value of every cell (`cells`, what a restart resumes
//! from), every value a cell had, round by round (`history`, for point-in-
//! time questions), and what each round did (`rounds`). It replaces
//! rewriting a whole JSON snapshot every round: a round writes only the
//! cells it changed, so the bytes written follow the changes, not the size
//! of the store. The schema and its migrations are `record::schema`; how a
//! cell maps to a row, `record::rows`; the one-time import of a JSON
//! snapshot directory, `record::import`.
//!
//! This module owns the database file and nothing else: it never decides
//! what a cell holds (that is `Store::apply`'s job, in the Aggregator), it
//! talks to no actor, and it never deletes a file, nor starts afresh over a
//! file it does not understand (a newer schema, a file that is not SQLite,
//! another program's database): those are errors naming the file.
//!
//! Durability: WAL mode, so `query` and `snapshots` read (`open_read_only`)
//! while the daemon writes; and `synchronous = FULL`, so every committed
//! transaction is fsync'd before `write` or `finish_round` returns. The
//! daemon commits a handful of transactions a round, so FULL costs a few
//! fsyncs a round; NORMAL would save them at the price of losing the last
//! rounds on a power cut, which is what the fsync'd JSON snapshot this
//! replaces never did.
//!
//! Every call is blocking file I/O (milliseconds for a round's changes;
//! seconds for `load` and `import_snapshots` at a million cells): run it
//! where blocking is allowed.

mod error;
mod import;
mod rows;
mod schema;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::model::{Counts, Exchange, RoundSummary, Symbol, TaskKey};
use crate::store::{Cell, Store};
pub use error::RecordError;
pub use import::Imported;
use rows::{columns, int, round_time, Decoder, Encoded};
pub use schema::{SCHEMA_V1, SCHEMA_VERSION};

/// The first 16 bytes of every SQLite database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// How long a statement waits for another connection's lock before
/// failing with "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The page size of a new record. A round's write costs the pages it
/// touches (about one leaf of `cells`, one or two of `history` and a share
/// of the index per changed cell) times their size, so pages half SQLite's
/// default of 4 KiB halve it (measured at 1M cells: ~490 KiB for 100
/// changed cells, against ~970 KiB at 4 KiB), while loading and scanning
/// stay as fast; at 1 KiB the trees grow deep enough to cost more again.
const PAGE_SIZE: u32 = 2048;

/// SQLite's page cache per connection (KiB, as `cache_size` takes it
/// negative): enough for the upper levels of every tree at a million cells.
const CACHE_KIB: i64 = 32 * 1024;

/// After a large transaction (the first round, an import) the WAL file is
/// cut back to this size at the next checkpoint instead of staying at its
/// peak.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

const INSERT_CELL: &str = "INSERT OR REPLACE INTO cells (exchange, symbol, day, state, flags, \
    open, high, low, close, volume, fetched_at, round, source, reason, attempts, market) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

const INSERT_HISTORY: &str = "INSERT OR REPLACE INTO history (exchange, symbol, day, state, \
    flags, open, high, low, close, volume, fetched_at, round, source, reason, attempts, market) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// The durable record: one SQLite connection to one file.
pub struct Record {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record").field("path", &self.path).finish()
    }
}

/// What one `write` put in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WriteStats {
    /// Rows of `cells` inserted or replaced.
    pub cells: usize,
    /// Rows of `history` inserted or replaced.
    pub history: usize,
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

    fn parse(s: &str) -> Option<Self> {
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

/// A closure mapping a SQLite error to a `RecordError` naming `path` and
/// what was being done.
/// Writes a round's row as it ended: inserted, or its end filled in if
/// `begin_round` wrote it (its start is kept).
fn put_round(
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
            round_time(started),
            round_time(finished),
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

fn sql<'a>(path: &'a Path, doing: &'static str) -> impl Fn(rusqlite::Error) -> RecordError + 'a {
    move |source| RecordError::Sql {
        path: path.to_owned(),
        doing,
        source,
    }
}

/// Checks what is at `path` before SQLite sees it, so a directory, a
/// truncated file or a file of another kind is reported as such (SQLite
/// would say only "unable to open" or "not a database"). Returns whether a
/// file is there at all.
fn inspect(path: &Path) -> Result<bool, RecordError> {
    let open_err = |source| RecordError::Open {
        path: path.to_owned(),
        source,
    };
    let not_record = |reason: &str| RecordError::NotARecord {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(open_err(e)),
    };
    if meta.is_dir() {
        return Err(not_record("it is a directory"));
    }
    if meta.len() == 0 {
        return Ok(true);
    }
    let mut head = Vec::with_capacity(SQLITE_HEADER.len());
    fs::File::open(path)
        .and_then(|f| f.take(SQLITE_HEADER.len() as u64).read_to_end(&mut head))
        .map_err(open_err)?;
    if head.len() < SQLITE_HEADER.len() {
        return Err(not_record(&format!(
            "it is {} bytes long, too short for an SQLite header (truncated?)",
            head.len()
        )));
    }
    if head != SQLITE_HEADER {
        let json = head.first() == Some(&b'{');
        return Err(not_record(if json {
            "it is not an SQLite database but JSON, a snapshot or export? Read one with \
             `pricegrid query --snapshot FILE`; to bring snapshots into a record, put them in \
             the config's snapshot.dir and start the daemon with store.path naming a new file: \
             it imports them once, on its first start"
        } else {
            "it is not an SQLite database (its first bytes are not SQLite's header)"
        }));
    }
    Ok(true)
}

/// The schema version of an open database: 0 when it has no tables at all.
fn schema_version(conn: &Connection, path: &Path) -> Result<u32, RecordError> {
    let not_record = |reason: String| RecordError::NotARecord {
        path: path.to_owned(),
        reason,
    };
    let tables = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        });
    let tables = match tables {
        Ok(t) => t,
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            ) =>
        {
            return Err(not_record(format!(
                "damaged or not a database (SQLite: {e})"
            )))
        }
        Err(e) => return Err(sql(path, "reading the schema")(e)),
    };
    if tables.is_empty() {
        return Ok(0);
    }
    if !tables.iter().any(|t| t == "meta") {
        return Err(not_record(format!(
            "an SQLite database without pricegrid's meta table (its tables: {})",
            tables.join(", ")
        )));
    }
    let raw: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [schema::key::SCHEMA_VERSION],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| not_record(format!("its meta table cannot be read ({e})")))?;
    let raw = raw.ok_or_else(|| not_record("its meta table has no schema_version".into()))?;
    raw.trim()
        .parse()
        .map_err(|_| not_record(format!("its schema_version {raw:?} is not a number")))
}

impl Record {
    /// Opens the record at `path` for reading and writing, creating the
    /// file (and its directories) if there is none, and migrating an older
    /// schema. A file with a newer schema, a file that is not SQLite, and
    /// an SQLite file without pricegrid's `meta` are errors: nothing is
    /// changed or deleted. An empty file (0 bytes, or a database with no
    /// table) becomes a new record.
    pub fn open(path: &Path) -> Result<Record, RecordError> {
        let exists = inspect(path)?;
        if !exists {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir).map_err(|source| RecordError::Open {
                    path: path.to_owned(),
                    source,
                })?;
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(sql(path, "opening the database"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql(path, "setting the busy timeout"))?;
        let found = schema_version(&conn, path)?;
        if found > SCHEMA_VERSION {
            return Err(RecordError::NewerFormat {
                path: path.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == 0 {
            // Only a database with no table yet takes a page size.
            conn.execute_batch(&format!("PRAGMA page_size = {PAGE_SIZE};"))
                .map_err(sql(path, "setting the page size"))?;
        }
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(sql(path, "switching to WAL mode"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(RecordError::NotARecord {
                path: path.to_owned(),
                reason: format!(
                    "SQLite keeps it in journal mode {mode:?}, not WAL (a file system without \
                     shared memory?)"
                ),
            });
        }
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL; PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}; \
             PRAGMA cache_size = -{CACHE_KIB};"
        ))
        .map_err(sql(path, "setting up the connection"))?;
        if found < SCHEMA_VERSION {
            let tx = conn
                .transaction()
                .map_err(sql(path, "starting the schema migration"))?;
            schema::migrate(&tx, found).map_err(sql(path, "migrating the schema"))?;
            tx.commit().map_err(sql(path, "migrating the schema"))?;
            if found > 0 {
                log::info!(
                    "{}: record migrated from schema version {found} to {SCHEMA_VERSION}",
                    path.display()
                );
            }
        }
        Ok(Record {
            conn,
            path: path.to_owned(),
        })
    }

    /// Opens an existing record for reading only (`query`, `snapshots`),
    /// alongside a daemon that writes it: WAL lets readers see the last
    /// committed state without blocking the writer. Never creates,
    /// migrates or changes the file.
    pub fn open_read_only(path: &Path) -> Result<Record, RecordError> {
        if !inspect(path)? {
            return Err(RecordError::Open {
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no record here (the daemon creates it on its first round)",
                ),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(sql(path, "opening the database read-only"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql(path, "setting the busy timeout"))?;
        match schema_version(&conn, path)? {
            0 => Err(RecordError::NotARecord {
                path: path.to_owned(),
                reason: "it is empty: no record has been written to it yet".into(),
            }),
            v if v > SCHEMA_VERSION => Err(RecordError::NewerFormat {
                path: path.to_owned(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            v if v < SCHEMA_VERSION => Err(RecordError::OlderFormat {
                path: path.to_owned(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            _ => {
                conn.execute_batch(&format!("PRAGMA cache_size = -{CACHE_KIB};"))
                    .map_err(sql(path, "setting up the connection"))?;
                Ok(Record {
                    conn,
                    path: path.to_owned(),
                })
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn meta(&self, key: &str) -> Result<Option<String>, RecordError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(sql(&self.path, "reading meta"))
    }

    /// The snapshot directory imported into this record, if one was.
    pub fn imported_from(&self) -> Result<Option<PathBuf>, RecordError> {
        Ok(self.meta(schema::key::IMPORTED_FROM)?.map(PathBuf::from))
    }

    /// The oldest round `store_at` answers for since a compaction (`None`:
    /// never compacted, every recorded round answers).
    pub fn retained_from(&self) -> Result<Option<u64>, RecordError> {
        let Some(raw) = self.meta(schema::key::RETAINED_FROM)? else {
            return Ok(None);
        };
        raw.parse().map(Some).map_err(|_| RecordError::Corrupt {
            path: self.path.clone(),
            at: "table meta, key retained_from".into(),
            reason: format!("{raw:?} is not a round number"),
        })
    }

    /// The newest round recorded (0 for a new record).
    fn last_round(&self) -> Result<u64, RecordError> {
        let last: i64 = self
            .conn
            .query_row(
                "SELECT COALESCE((SELECT MAX(round) FROM rounds), \
                                 (SELECT MAX(round) FROM cells), 0)",
                [],
                |r| r.get(0),
            )
            .map_err(sql(&self.path, "reading the last round"))?;
        u64::try_from(last).map_err(|_| RecordError::Corrupt {
            path: self.path.clone(),
            at: "table rounds".into(),
            reason: format!("round {last} is negative"),
        })
    }

    /// What the daemon resumes from: the current value of every cell (the
    /// `cells` table) and the newest round recorded, read in one
    /// transaction so the two agree.
    pub fn load(&self) -> Result<(Store, u64), RecordError> {
        let path = &self.path;
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql(path, "starting to read cells"))?;
        let mut store = Store::new();
        {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {} FROM cells ORDER BY exchange, symbol, day",
                    columns("round")
                ))
                .map_err(sql(path, "reading cells"))?;
            let mut rows = stmt.query([]).map_err(sql(path, "reading cells"))?;
            let mut decoder = Decoder::new(path, "cells");
            while let Some(row) = rows.next().map_err(sql(path, "reading cells"))? {
                let (key, cell) = decoder.decode(row)?;
                store.put(&key, &cell);
            }
        }
        let last = self.last_round()?;
        tx.finish().map_err(sql(path, "reading cells"))?;
        Ok((store, last))
    }

    /// Every exchange and every symbol the record holds a cell of: the
    /// names a question may ask about (`query --exchange`). Reads the
    /// primary key's index, never a price.
    pub fn names(&self) -> Result<(BTreeSet<Exchange>, BTreeSet<Symbol>), RecordError> {
        let path = &self.path;
        let doing = "reading the names held";
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT exchange, symbol FROM cells")
            .map_err(sql(path, doing))?;
        let mut rows = stmt.query([]).map_err(sql(path, doing))?;
        let (mut exchanges, mut symbols) = (BTreeSet::new(), BTreeSet::new());
        let corrupt = |column: &str, e: crate::model::NameError| RecordError::Corrupt {
            path: path.to_owned(),
            at: format!("table cells, column {column}"),
            reason: e.to_string(),
        };
        while let Some(row) = rows.next().map_err(sql(path, doing))? {
            let e: String = row.get(0).map_err(sql(path, doing))?;
            let s: String = row.get(1).map_err(sql(path, doing))?;
            exchanges.insert(Exchange::new(&e).map_err(|err| corrupt("exchange", err))?);
            symbols.insert(Symbol::new(&s).map_err(|err| corrupt("symbol", err))?);
        }
        Ok((exchanges, symbols))
    }

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
            rusqlite::params![int(round), round_time(started), int(config_version)],
        )
        .map_err(sql(path, doing))?;
        tx.commit().map_err(sql(path, doing))
    }

    /// Writes the cells `round` changed, in one transaction: each cell's
    /// current value in `cells` (with the cell's own round) and its row of
    /// `round` in `history` (replacing an earlier write of the same round).
    /// The bytes written follow `cells.len()`, not the size of the record.
    /// The round must have been begun.
    pub fn write(
        &mut self,
        round: u64,
        cells: &[(TaskKey, Cell)],
    ) -> Result<WriteStats, RecordError> {
        let started = Instant::now();
        let path = &self.path;
        let doing = "writing a round's cells";
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
        {
            let mut current = tx.prepare_cached(INSERT_CELL).map_err(sql(path, doing))?;
            let mut history = tx
                .prepare_cached(INSERT_HISTORY)
                .map_err(sql(path, doing))?;
            for (key, cell) in cells {
                let row = Encoded::new(&key.exchange, &key.symbol, key.day, cell);
                row.insert(&mut current, cell.round)
                    .map_err(sql(path, doing))?;
                row.insert(&mut history, round).map_err(sql(path, doing))?;
            }
        }
        tx.commit().map_err(sql(path, doing))?;
        Ok(WriteStats {
            cells: cells.len(),
            history: cells.len(),
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
        let status = if summary.aborted {
            RoundStatus::Aborted
        } else {
            RoundStatus::Finished
        };
        let started = chrono::Duration::from_std(summary.elapsed)
            .ok()
            .and_then(|d| finished.checked_sub_signed(d))
            .unwrap_or(finished);
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
            let time = |raw: String| {
                DateTime::parse_from_rfc3339(&raw)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| bad(format!("time {raw:?}: {e}")))
            };
            let started: String = r.get(1).map_err(sql(path, doing))?;
            let finished: Option<String> = r.get(2).map_err(sql(path, doing))?;
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

    /// Checks that `round` can be answered for: it is recorded and its
    /// history was not folded by compaction.
    fn check_round(&self, round: u64) -> Result<(), RecordError> {
        let known = self
            .conn
            .query_row(
                "SELECT 1 FROM rounds WHERE round = ?1",
                [int(round)],
                |_| Ok(()),
            )
            .optional()
            .map_err(sql(&self.path, "looking up a round"))?;
        if known.is_some() {
            return Ok(());
        }
        if let Some(retained_from) = self.retained_from()?.filter(|r| round < *r) {
            return Err(RecordError::Compacted {
                path: self.path.clone(),
                round,
                retained_from,
            });
        }
        let newest = self
            .conn
            .query_row("SELECT MAX(round) FROM rounds", [], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map_err(sql(&self.path, "looking up a round"))?;
        Err(RecordError::NoSuchRound {
            path: self.path.clone(),
            round,
            newest: newest.and_then(|n| u64::try_from(n).ok()),
        })
    }

    /// The store as it was at the end of `round` (or as far as it got, for
    /// a round still running): each cell's latest history row of a round
    /// at or before it. A cell read from history carries the round that
    /// recorded that value. An error names the round if it is not recorded
    /// or older than what compaction kept.
    pub fn store_at(&self, round: u64) -> Result<Store, RecordError> {
        let mut store = Store::new();
        for (key, cell) in self.history_at(round, &Filter::default())? {
            store.put(&key, &cell);
        }
        Ok(store)
    }

    /// The newest round that finished (or was aborted) at or before `t`.
    pub fn round_at(&self, t: DateTime<Utc>) -> Result<Option<u64>, RecordError> {
        let round: Option<i64> = self
            .conn
            .query_row(
                "SELECT round FROM rounds WHERE finished IS NOT NULL AND finished <= ?1 \
                 ORDER BY finished DESC, round DESC LIMIT 1",
                [round_time(t)],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(&self.path, "finding the round at a time"))?;
        Ok(round.and_then(|r| u64::try_from(r).ok()))
    }

    /// Like `store_at(round)`, filtered in SQL and returned in key order:
    /// only `exchanges` and `symbols` (an empty slice means every one), and
    /// days in `from..=to`. One symbol-day across every exchange
    /// (`&[]`, `&[symbol]`, `Some(day)`, `Some(day)`) reads only that
    /// symbol-day's rows, through `history_by_symbol_day`.
    pub fn cells_at(
        &self,
        round: u64,
        exchanges: &[Exchange],
        symbols: &[Symbol],
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        let mut cells = self.history_at(
            round,
            &Filter {
                exchanges,
                symbols,
                from,
                to,
            },
        )?;
        cells.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(cells)
    }

    fn history_at(
        &self,
        round: u64,
        filter: &Filter<'_>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        use rusqlite::types::Value;
        let path = &self.path;
        let doing = "reading history";
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql(path, doing))?;
        self.check_round(round)?;
        let mut params = vec![Value::Integer(int(round))];
        // SQLite takes the other columns from the row holding the MAX.
        let mut query = format!(
            "SELECT {} FROM history WHERE round <= ?1",
            columns("MAX(round)")
        );
        let lists: [(&str, Vec<&str>); 2] = [
            (
                "exchange",
                filter.exchanges.iter().map(Exchange::as_str).collect(),
            ),
            (
                "symbol",
                filter.symbols.iter().map(Symbol::as_str).collect(),
            ),
        ];
        for (column, names) in lists.iter().filter(|(_, names)| !names.is_empty()) {
            let marks: Vec<String> = names
                .iter()
                .map(|name| {
                    params.push(Value::Text((*name).to_owned()));
                    format!("?{}", params.len())
                })
                .collect();
            query.push_str(&format!(" AND {column} IN ({})", marks.join(", ")));
        }
        for (bound, op) in [(filter.from, ">="), (filter.to, "<=")] {
            if let Some(day) = bound {
                params.push(Value::Text(rows::day_text(day)));
                query.push_str(&format!(" AND day {op} ?{}", params.len()));
            }
        }
        // Grouped in the order of the index the filter can use, so SQLite
        // walks it instead of sorting.
        query.push_str(if filter.symbols.is_empty() {
            " GROUP BY exchange, symbol, day"
        } else {
            " GROUP BY symbol, day, exchange"
        });
        let mut out = Vec::new();
        {
            let mut stmt = tx.prepare(&query).map_err(sql(path, doing))?;
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params))
                .map_err(sql(path, doing))?;
            let mut decoder = Decoder::new(path, "history");
            while let Some(row) = rows.next().map_err(sql(path, doing))? {
                out.push(decoder.decode(row)?);
            }
        }
        tx.finish().map_err(sql(path, doing))?;
        Ok(out)
    }

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
                [round_time(cutoff)],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(path, doing))?;
        let Some(round) = round else {
            return Ok(Compacted::default());
        };
        let history_rows = tx
            .execute(
                "DELETE FROM history WHERE round < ?1 AND EXISTS (\
                 SELECT 1 FROM history AS newer WHERE newer.exchange = history.exchange \
                 AND newer.symbol = history.symbol AND newer.day = history.day \
                 AND newer.round > history.round AND newer.round <= ?1)",
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

    /// Copies the WAL into the database file and truncates the WAL (what
    /// SQLite also does by itself every ~4 MiB of changes). Waits for
    /// readers no longer than the busy timeout; a checkpoint they block is
    /// not an error, it finishes later.
    pub fn checkpoint(&self) -> Result<(), RecordError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(sql(&self.path, "checkpointing the WAL"))
    }

    /// Whether the record holds no cell and no round yet.
    fn is_empty(&self) -> Result<bool, RecordError> {
        let any: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM cells) OR EXISTS (SELECT 1 FROM rounds)",
                [],
                |r| r.get(0),
            )
            .map_err(sql(&self.path, "checking whether the record is empty"))?;
        Ok(!any)
    }
}

/// Which cells `history_at` reads.
#[derive(Default)]
struct Filter<'a> {
    exchanges: &'a [Exchange],
    symbols: &'a [Symbol],
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}
