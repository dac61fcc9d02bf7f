//! Why the record could not do what was asked. Every message names the
//! database file and says what to do about it; none of them is raised after
//! deleting or overwriting anything.

use std::path::PathBuf;

use crate::snapshot::SnapshotError;

/// What went wrong with the record at `path`.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The recorder thread is gone (the process is stopping).
    #[error("the record's writer stopped: {0}")]
    Stopped(String),
    /// The file (or its directory) could not be created or read.
    #[error("{}: cannot open the record: {source}; check the path and its permissions", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Written by a newer pricegrid: this build will not guess at it.
    #[error(
        "{}: the record is at schema version {found}, newer than the {supported} this build knows; \
         run a newer pricegrid or point store.path at another file (nothing was changed)",
        path.display()
    )]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// An older schema opened read-only, so it cannot be migrated.
    #[error(
        "{}: the record is at schema version {found}, older than the {supported} this build reads, \
         and it was opened read-only; start the daemon once to upgrade it (nothing was changed)",
        path.display()
    )]
    OlderFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// The file exists but is not a pricegrid record (not SQLite, damaged,
    /// a directory, or another program's database).
    #[error(
        "{}: not a pricegrid record: {reason}; point store.path (or `--db`) at a record or at a new file \
         (nothing was changed)",
        path.display()
    )]
    NotARecord { path: PathBuf, reason: String },
    /// SQLite refused a statement.
    #[error("{}: {doing}: {source}{}", path.display(), hint(source))]
    Sql {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// A row holds a value no writer of this schema puts there.
    #[error(
        "{}: {at}: {reason}; the record is damaged: restore it from a backup or move it aside",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        at: String,
        reason: String,
    },
    /// The snapshot directory to import could not be listed.
    #[error("{}: cannot list the snapshot directory {} to import: {source}", path.display(), dir.display())]
    ImportDir {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The snapshot directory holds snapshots but none of them loads: the
    /// record will not start afresh beside them.
    #[error(
        "{}: none of the {files} snapshot(s) in {} loads (the newest: {source}); \
         fix or move them aside, then start again",
        path.display(), dir.display()
    )]
    Import {
        path: PathBuf,
        dir: PathBuf,
        files: usize,
        #[source]
        source: SnapshotError,
    },
    /// A round that was never recorded.
    #[error("{}: round {round} is not in the record ({})", path.display(), known(*newest))]
    NoSuchRound {
        path: PathBuf,
        round: u64,
        newest: Option<u64>,
    },
    /// A round whose history was folded by compaction.
    #[error(
        "{}: round {round} is older than the history kept (compaction kept rounds {retained_from} \
         and later); ask for round {retained_from} or later",
        path.display()
    )]
    Compacted {
        path: PathBuf,
        round: u64,
        retained_from: u64,
    },
    /// Rounds are begun in increasing order.
    #[error(
        "{}: cannot begin round {round}: round {newest} is already recorded; \
         resume from the last round `load` returns, plus one",
        path.display()
    )]
    RoundOrder {
        path: PathBuf,
        round: u64,
        newest: u64,
    },
    /// Cells were written for a round that was not begun.
    #[error("{}: cannot write cells of round {round}: call begin_round({round}, …) first", path.display())]
    RoundNotBegun { path: PathBuf, round: u64 },
    /// PostgreSQL refused a statement, or the connection to it failed.
    /// `path` is the record's URL without its password.
    #[error("{}: {doing}: {}{}", path.display(), pg_message(source), pg_hint(source))]
    Postgres {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: postgres::Error,
    },
    /// Another daemon writes this PostgreSQL record.
    #[error(
        "record {} is in use by {holder}: one daemon writes a record at a time (give this one \
         another store.url; read-only commands work beside it)",
        path.display()
    )]
    InUse { path: PathBuf, holder: String },
    /// What this kind of record does not do.
    #[error("{}: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
}

/// A PostgreSQL error with the server's own message and detail, when it
/// sent one (the driver's `Display` says only "db error").
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({detail})", db.message()),
            None => db.message().to_owned(),
        },
        None => match std::error::Error::source(e) {
            Some(inner) => format!("{e}: {inner}"),
            None => e.to_string(),
        },
    }
}

/// Whether `e` says the connection is gone or going: closed, an I/O error
/// (no answer from the server at all), a connection exception (class 08),
/// or the server shutting the session down. The next call must connect
/// again.
pub(super) fn connection_lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    let lost = |c: &SqlState| {
        c.code().starts_with("08")
            || *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW
    };
    e.is_closed() || e.as_db_error().is_none() && e.code().is_none() || e.code().is_some_and(lost)
}

/// What to do about the PostgreSQL errors an operator can act on.
fn pg_hint(e: &postgres::Error) -> &'static str {
    use postgres::error::SqlState;
    if connection_lost(e) {
        return "; the connection to PostgreSQL failed or was lost: the daemon keeps what it has \
                not written and tries again at its next write";
    }
    match e.code() {
        Some(c) if *c == SqlState::INVALID_PASSWORD || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
            "; check the user and password in store.url"
        }
        Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
            "; the database does not exist: create it (createdb) or fix store.url"
        }
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
            "; the user may not do this: grant it the database's tables (README: Running several daemons)"
        }
        Some(c) if *c == SqlState::DISK_FULL => "; the server's disk is full",
        _ => "",
    }
}

fn known(newest: Option<u64>) -> String {
    match newest {
        Some(n) => format!("the newest is {n}; `pricegrid snapshots` lists them"),
        None => "no round is recorded yet".into(),
    }
}

/// What to do about the SQLite errors an operator can act on.
fn hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            "; another process holds the record for writing: stop it, or read with a read-only command"
        }
        Some(C::DiskFull) => "; the disk is full: free space, then start again",
        Some(C::ReadOnly) => "; the file or its directory is read-only: check its permissions",
        Some(C::CannotOpen | C::PermissionDenied) => {
            "; check the path and the permissions of the file and its directory"
        }
        Some(C::DatabaseCorrupt | C::NotADatabase) => {
            "; the file is damaged: restore it from a backup or move it aside"
        }
        Some(C::SystemIoFailure) => "; an I/O error: check the disk",
        _ => "",
    }
}

impl RecordError {
    /// The database file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            RecordError::Open { path, .. }
            | RecordError::NewerFormat { path, .. }
            | RecordError::OlderFormat { path, .. }
            | RecordError::NotARecord { path, .. }
            | RecordError::Sql { path, .. }
            | RecordError::Corrupt { path, .. }
            | RecordError::ImportDir { path, .. }
            | RecordError::Import { path, .. }
            | RecordError::NoSuchRound { path, .. }
            | RecordError::Compacted { path, .. }
            | RecordError::RoundOrder { path, .. }
            | RecordError::RoundNotBegun { path, .. }
            | RecordError::Postgres { path, .. }
            | RecordError::Unsupported { path, .. }
            | RecordError::InUse { path, .. } => path,
            RecordError::Stopped(_) => std::path::Path::new(""),
        }
    }
}
