//! The durable record of the aggregate: an embedded SQLite database that
//! holds the current value of every cell (`cells`, what a restart resumes
//! from, with the round that first recorded it), every value a cell held
//! before (`history`, for point-in-time questions; an answer that repeats
//! writes none), and what each round did (`rounds`). It replaces
//! rewriting a whole JSON snapshot every round: a round writes only the
//! cells it changed, so the bytes written follow the changes, not the size
//! of the store. This file opens the database (checking what the file is,
//! migrating its schema) and loads what a restart resumes from; the round
//! writes are `record::rounds`, the point-in-time reads `record::history`,
//! the reference closes per round `record::reference`,
//! compaction `record::compact`. The schema and its migrations are
//! `record::schema`, the step from version 1 `record::migrate`; how a cell
//! maps to a row, `record::rows`, its names to ids `record::names`; reading
//! every cell at start on two threads, `record::load`; the one-time import
//! of a JSON snapshot directory, `record::import`.
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

mod backend;
mod compact;
mod error;
mod history;
mod import;
mod load;
mod migrate;
mod names;
mod postgres;
mod reference;
mod rounds;
mod rows;
mod schema;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::model::{Exchange, Symbol};
pub use backend::{without_password, Location, Record};
pub use compact::Compacted;
pub use error::RecordError;
pub use import::Imported;
use names::Names;
pub use postgres::{Fleet, Heartbeat, Held, Lease, Member, PostgresRecord};
pub use reference::Recorded;
use rounds::put_round;
pub use rounds::{RoundRow, RoundStatus, WriteStats};
pub use schema::{SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_VERSION};

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

/// A row of `cells`: `rows::COLUMNS` then `since`.
const INSERT_CELL: &str = "INSERT OR REPLACE INTO cells (symbol, day, exchange, state, flags, \
    open, high, low, close, volume, fetched_at, round, source, reason, attempts, since) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// A row of `history`: `rows::COLUMNS`.
const INSERT_HISTORY: &str = "INSERT OR REPLACE INTO history (symbol, day, exchange, state, \
    flags, open, high, low, close, volume, fetched_at, round, source, reason, attempts) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

/// The durable record: one SQLite connection to one file.
pub struct SqliteRecord {
    conn: Connection,
    path: PathBuf,
    /// The interned names as far as this connection has read or written
    /// them (`record::names`).
    names: RefCell<Names>,
    /// Opened to write (`open`): the record's one writer, so `load` may
    /// read it on a second connection too and see the same rows.
    writer: bool,
}

impl std::fmt::Debug for SqliteRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRecord")
            .field("path", &self.path)
            .finish()
    }
}

/// A closure mapping a SQLite error to a `RecordError` naming `path` and
/// what was being done.
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

impl SqliteRecord {
    /// Opens the record at `path` for reading and writing, creating the
    /// file (and its directories) if there is none, and migrating an older
    /// schema. A file with a newer schema, a file that is not SQLite, and
    /// an SQLite file without pricegrid's `meta` are errors: nothing is
    /// changed or deleted. An empty file (0 bytes, or a database with no
    /// table) becomes a new record.
    pub fn open(path: &Path) -> Result<SqliteRecord, RecordError> {
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
            migrate::migrate(&tx, found).map_err(sql(path, "migrating the schema"))?;
            tx.commit().map_err(sql(path, "migrating the schema"))?;
            if found > 0 {
                log::info!(
                    "{}: record migrated from schema version {found} to {SCHEMA_VERSION}",
                    path.display()
                );
            }
        }
        if found > 0 && found < SCHEMA_VERSION {
            // The steps from 1 and from 3 (which every older file takes)
            // rewrite tables. The old tables' pages are free now; give them back to the
            // file system (outside the migration's transaction, as VACUUM
            // must be; a crash during it leaves the migrated file).
            conn.execute_batch("VACUUM")
                .map_err(sql(path, "vacuuming after the schema migration"))?;
        }
        Ok(SqliteRecord {
            conn,
            path: path.to_owned(),
            names: RefCell::default(),
            writer: true,
        })
    }

    /// Opens an existing record for reading only (`query`, `snapshots`),
    /// alongside a daemon that writes it: WAL lets readers see the last
    /// committed state without blocking the writer. Never creates,
    /// migrates or changes the file.
    pub fn open_read_only(path: &Path) -> Result<SqliteRecord, RecordError> {
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
                Ok(SqliteRecord {
                    conn,
                    path: path.to_owned(),
                    names: RefCell::default(),
                    writer: false,
                })
            }
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The interned names, brought up to date with the file.
    fn interned(&self) -> Result<std::cell::RefMut<'_, Names>, RecordError> {
        let mut names = self.names.borrow_mut();
        names.refresh(&self.conn, &self.path)?;
        Ok(names)
    }

    /// Drops this connection's copy of the names, after a transaction that
    /// may have interned some rolled back: the next use reads them afresh.
    fn forget_names(&self) {
        *self.names.borrow_mut() = Names::default();
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

    /// Every exchange and every symbol the record holds a cell of: the
    /// names a question may ask about (`query --exchange`). Reads the name
    /// tables, and for each name whether a cell of it exists (a cell is
    /// never deleted, so every name has one but in a damaged file).
    pub fn names(&self) -> Result<(BTreeSet<Exchange>, BTreeSet<Symbol>), RecordError> {
        let path = &self.path;
        let doing = "reading the names held";
        let (exchanges, symbols) = self.interned()?.all();
        let held = |column: &str, id: i64| -> Result<bool, RecordError> {
            self.conn
                .prepare_cached(&format!(
                    "SELECT EXISTS (SELECT 1 FROM cells WHERE {column} = ?1)"
                ))
                .and_then(|mut s| s.query_row([id], |r| r.get(0)))
                .map_err(sql(path, doing))
        };
        let mut out = (BTreeSet::new(), BTreeSet::new());
        for (id, e) in exchanges {
            if held("exchange", id)? {
                out.0.insert(e);
            }
        }
        for (id, s) in symbols {
            if held("symbol", id)? {
                out.1.insert(s);
            }
        }
        Ok(out)
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

    /// Frees the connection's page cache (SQLite's `shrink_memory`): after
    /// a write of a backfill's size it holds `CACHE_KIB` of pages the
    /// daemon will not read again soon.
    pub fn release_memory(&self) -> Result<(), RecordError> {
        self.conn
            .execute_batch("PRAGMA shrink_memory")
            .map_err(sql(&self.path, "freeing the page cache"))
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
