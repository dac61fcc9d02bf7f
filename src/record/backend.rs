//! One `Record` over either kind of database: an SQLite file (the default,
//! one daemon's own) or a PostgreSQL database (shared by a fleet), chosen by
//! where the record is (`Location`: `store.path` or `store.url`, `--db PATH`
//! or `--db postgres://…`). Both hold the same tables with the same meaning
//! and answer every method alike; this file only dispatches to them and owns
//! no SQL of either.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use super::postgres::PostgresRecord;
use super::reference::Recorded;
use super::{Compacted, Imported, RecordError, RoundRow, SqliteRecord, WriteStats};
use crate::model::{Exchange, RoundSummary, Symbol, TaskKey};
use crate::quality::Reference;
use crate::store::{Cell, Store};

/// Where a record is.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite file.
    File(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user@host:5432/db`, with
    /// libpq's parameters such as `sslmode=require`).
    Postgres(String),
}

impl Location {
    /// A `--db` argument or a `store.url`: a `postgres://` or
    /// `postgresql://` URL names a PostgreSQL database, anything else a file.
    pub fn parse(s: &str) -> Location {
        let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Location::Postgres(s.to_owned())
        } else {
            Location::File(PathBuf::from(s))
        }
    }

    /// How messages name it: the path, or the URL without its password.
    pub fn shown(&self) -> String {
        match self {
            Location::File(p) => p.display().to_string(),
            Location::Postgres(url) => without_password(url),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({})", self.shown())
    }
}

/// A connection URL with its password (in the authority, or as a
/// `password=` parameter) replaced by `***`.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            let pairs: Vec<(String, String)> = u
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "a PostgreSQL URL that does not parse".into(),
    }
}

/// The durable record, in SQLite or in PostgreSQL. One is made per
/// process (or per API request for rounds), so the variants' sizes do not
/// matter.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Record {
    Sqlite(SqliteRecord),
    Postgres(PostgresRecord),
}

macro_rules! each {
    ($self:ident, $r:ident => $e:expr) => {
        match $self {
            Record::Sqlite($r) => $e,
            Record::Postgres($r) => $e,
        }
    };
}

impl Record {
    /// Opens (creating or migrating) the SQLite record at `path`.
    pub fn open(path: &Path) -> Result<Record, RecordError> {
        SqliteRecord::open(path).map(Record::Sqlite)
    }

    /// Opens the SQLite record at `path` for reading only.
    pub fn open_read_only(path: &Path) -> Result<Record, RecordError> {
        SqliteRecord::open_read_only(path).map(Record::Sqlite)
    }

    /// Opens (creating or migrating) the record at `at`; a PostgreSQL
    /// record's rounds are recorded under the daemon's name `daemon`.
    pub fn open_at(at: &Location, daemon: &str) -> Result<Record, RecordError> {
        match at {
            Location::File(p) => Record::open(p),
            Location::Postgres(url) => PostgresRecord::open(url, daemon).map(Record::Postgres),
        }
    }

    /// Opens the record at `at` for reading only: never creates, migrates
    /// or writes anything.
    pub fn open_read_only_at(at: &Location) -> Result<Record, RecordError> {
        match at {
            Location::File(p) => Record::open_read_only(p),
            Location::Postgres(url) => PostgresRecord::open_read_only(url).map(Record::Postgres),
        }
    }

    /// The PostgreSQL record, shared by a fleet (`None` for a file, which
    /// one daemon owns).
    pub fn shared(&self) -> Option<&PostgresRecord> {
        match self {
            Record::Sqlite(_) => None,
            Record::Postgres(r) => Some(r),
        }
    }

    pub fn shared_mut(&mut self) -> Option<&mut PostgresRecord> {
        match self {
            Record::Sqlite(_) => None,
            Record::Postgres(r) => Some(r),
        }
    }

    /// The file, or the URL without its password, as messages name it.
    pub fn path(&self) -> &Path {
        each!(self, r => r.path())
    }

    pub fn imported_from(&self) -> Result<Option<PathBuf>, RecordError> {
        each!(self, r => r.imported_from())
    }

    pub fn retained_from(&self) -> Result<Option<u64>, RecordError> {
        each!(self, r => r.retained_from())
    }

    /// Every cell's current value and the newest round recorded.
    pub fn load(&self) -> Result<(Store, u64), RecordError> {
        each!(self, r => r.load())
    }

    pub fn names(&self) -> Result<(BTreeSet<Exchange>, BTreeSet<Symbol>), RecordError> {
        each!(self, r => r.names())
    }

    /// Hands written pages back (SQLite's WAL checkpoint; nothing to do on
    /// PostgreSQL, whose server does it).
    pub fn checkpoint(&self) -> Result<(), RecordError> {
        each!(self, r => r.checkpoint())
    }

    /// Frees what the connection caches after a large write (SQLite's
    /// page cache; nothing on PostgreSQL, whose server caches).
    pub fn release_memory(&self) -> Result<(), RecordError> {
        match self {
            Record::Sqlite(r) => r.release_memory(),
            Record::Postgres(_) => Ok(()),
        }
    }

    pub fn compact(
        &mut self,
        keep_for: Duration,
        now: DateTime<Utc>,
    ) -> Result<Compacted, RecordError> {
        each!(self, r => r.compact(keep_for, now))
    }

    pub fn store_at(&self, round: u64) -> Result<Store, RecordError> {
        each!(self, r => r.store_at(round))
    }

    pub fn round_at(&self, t: DateTime<Utc>) -> Result<Option<u64>, RecordError> {
        each!(self, r => r.round_at(t))
    }

    pub fn cells_at(
        &self,
        round: u64,
        exchanges: &[Exchange],
        symbols: &[Symbol],
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        each!(self, r => r.cells_at(round, exchanges, symbols, from, to))
    }

    pub fn cells_now(
        &self,
        exchanges: &[Exchange],
        symbols: &[Symbol],
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        each!(self, r => r.cells_now(exchanges, symbols, from, to))
    }

    pub fn import_snapshots(&mut self, dir: &Path) -> Result<Option<Imported>, RecordError> {
        each!(self, r => r.import_snapshots(dir))
    }

    pub fn begin_round(
        &mut self,
        round: u64,
        started: DateTime<Utc>,
        config_version: u64,
    ) -> Result<(), RecordError> {
        each!(self, r => r.begin_round(round, started, config_version))
    }

    pub fn write(
        &mut self,
        round: u64,
        cells: &[(TaskKey, Cell)],
    ) -> Result<WriteStats, RecordError> {
        each!(self, r => r.write(round, cells))
    }

    pub fn finish_round(
        &mut self,
        summary: &RoundSummary,
        finished: DateTime<Utc>,
    ) -> Result<(), RecordError> {
        each!(self, r => r.finish_round(summary, finished))
    }

    pub fn rounds(&self) -> Result<Vec<RoundRow>, RecordError> {
        each!(self, r => r.rounds())
    }

    /// Writes the reference closes judged in `round`.
    pub fn write_references(
        &self,
        round: u64,
        references: &[(Symbol, NaiveDate, Reference)],
    ) -> Result<(), RecordError> {
        each!(self, r => r.write_references(round, references))
    }

    /// The reference closes as they stood at the end of `round` (now:
    /// `None`).
    pub fn references(
        &self,
        symbol: Option<&Symbol>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        round: Option<u64>,
    ) -> Result<Vec<Recorded>, RecordError> {
        each!(self, r => r.references(symbol, from, to, round))
    }

    /// Whether any reference close was ever written.
    pub fn has_references(&self) -> Result<bool, RecordError> {
        each!(self, r => r.has_references())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_postgres_url_names_postgres_and_anything_else_a_file() {
        assert!(matches!(
            Location::parse("postgres://u@127.0.0.1:5432/db"),
            Location::Postgres(_)
        ));
        assert!(matches!(
            Location::parse("POSTGRESQL://u@h/db"),
            Location::Postgres(_)
        ));
        assert_eq!(
            Location::parse("data/pricegrid.db"),
            Location::File(PathBuf::from("data/pricegrid.db"))
        );
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        let shown =
            Location::parse("postgres://ann:s3cret@db:5432/pg?password=s3cret&sslmode=require")
                .shown();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("ann:***@db:5432/pg"), "{shown}");
        assert!(shown.contains("sslmode=require"), "{shown}");
    }
}
