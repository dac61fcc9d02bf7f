//! The record in PostgreSQL: the same tables as the SQLite file, with the
//! same meaning (`record::schema` describes them), in a database people's
//! tools read while its daemon writes. This file owns the connection (TLS by
//! rustls unless `sslmode=disable`; a lost connection is dropped and made
//! again at the next call, so the caller's unwritten cells wait for the
//! next flush), the one-writer lock, and the reads a start needs
//! (`load`, `names`, `rounds`); the round writes and compaction are
//! `postgres::write`, the point-in-time reads `postgres::history`, the
//! tables and their versions `postgres::schema`.
//!
//! Like the SQLite record it never decides what a cell holds and talks to
//! no actor. It never drops or alters a table it did not create: a
//! database with another program's tables beside pricegrid's is fine, and
//! one whose `meta` says a newer schema is an error naming it.
//!
//! Over 500 lines: the connection and the start's reads belong together,
//! and the schema, writes and past reads are already files of their own.
//!
//! Every call is blocking network I/O: run it where blocking is allowed
//! (the Recorder's thread, a command, a blocking task of the API).

mod history;
mod lease;
mod reference;
mod schema;
mod write;

pub use lease::{Fleet, Heartbeat, Held, Lease, Member};
pub use schema::PG_SCHEMA_VERSION;

use std::cell::{RefCell, RefMut};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::load::Filler;
use super::names::Names;
use super::rows::{time_of, Decoder, Raw};
use super::{without_password, Imported, RecordError, RoundRow, RoundStatus};
use crate::model::{Counts, Exchange, Symbol};
use crate::store::{Store, StoreBuilder};

/// The advisory lock class a writing daemon holds, with its name's hash,
/// for as long as its connection lives: one writer of each name per
/// record (a connection that dies, with its process, lets it go).
const WRITER_LOCK: i32 = 0x7072_6963; // "pric"

/// How long a connection attempt waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection is made: in the clear (`sslmode=disable`) or with
/// rustls (Mozilla's roots; `sslmode=prefer`, the default, falls back to
/// the clear when the server offers no TLS).
#[derive(Clone)]
enum Tls {
    Plain,
    Rustls(MakeRustlsConnect),
}

/// The durable record in one PostgreSQL database.
pub struct PostgresRecord {
    /// `None` after the connection was lost: the next call connects again.
    client: RefCell<Option<Client>>,
    config: postgres::Config,
    tls: Tls,
    /// The URL without its password, as messages name the record.
    path: PathBuf,
    /// The daemon whose rounds this connection records (`fleet.name`).
    daemon: String,
    /// Whether this connection writes: it then holds `WRITER_LOCK` for its
    /// name, taken again on every new connection.
    writer: bool,
    names: RefCell<Names>,
    /// The lanes held, with their epochs, at the start of each recent
    /// round (`lease`): what a write of that round's cells is checked
    /// against.
    epochs: RefCell<BTreeMap<u64, BTreeMap<String, i64>>>,
    /// What a lane is, once this daemon leases (`None`: it never did, and
    /// writes are not checked against leases).
    scope: std::cell::Cell<Option<crate::model::LeaseScope>>,
}

impl std::fmt::Debug for PostgresRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRecord")
            .field("url", &self.path)
            .field("daemon", &self.daemon)
            .finish()
    }
}

/// A closure mapping a PostgreSQL error to a `RecordError` naming the
/// record and what was being done.
pub(super) fn pg<'a>(
    path: &'a Path,
    doing: &'static str,
) -> impl Fn(postgres::Error) -> RecordError + 'a {
    move |source| RecordError::Postgres {
        path: path.to_owned(),
        doing,
        source,
    }
}

impl PostgresRecord {
    fn connect_to(url: &str, daemon: &str, writer: bool) -> Result<PostgresRecord, RecordError> {
        let path = PathBuf::from(without_password(url));
        let not_url = |reason: String| RecordError::NotARecord {
            path: path.clone(),
            reason: format!("not a PostgreSQL URL pricegrid can use: {reason}"),
        };
        let mut config: postgres::Config = url.parse().map_err(|e| not_url(format!("{e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name(&format!("pricegrid {daemon}"));
        }
        let tls = match config.get_ssl_mode() {
            postgres::config::SslMode::Disable => Tls::Plain,
            _ => {
                let tls = crate::source::tls::client_config(&[])
                    .map_err(|e| not_url(format!("its TLS set-up failed: {e}")))?;
                Tls::Rustls(MakeRustlsConnect::new((*tls).clone()))
            }
        };
        let record = PostgresRecord {
            client: RefCell::new(None),
            config,
            tls,
            path,
            daemon: daemon.to_owned(),
            writer,
            names: RefCell::default(),
            epochs: RefCell::default(),
            scope: std::cell::Cell::new(None),
        };
        record.client()?;
        Ok(record)
    }

    /// Connects to the database at `url`, creating pricegrid's tables if
    /// it has none and migrating an older schema; rounds are recorded
    /// under `daemon`. A newer schema is an error: nothing is changed.
    pub fn open(url: &str, daemon: &str) -> Result<PostgresRecord, RecordError> {
        let record = Self::connect_to(url, daemon, true)?;
        record.migrate()?;
        record.with(|c, _| record.note_writer(c))?;
        Ok(record)
    }

    /// Connects for reading only: the schema must be there and current.
    pub fn open_read_only(url: &str) -> Result<PostgresRecord, RecordError> {
        let record = Self::connect_to(url, "reader", false)?;
        let path = record.path.clone();
        match record.schema_version()? {
            0 => Err(RecordError::NotARecord {
                path,
                reason: "the database holds no pricegrid record yet (a daemon with this \
                         store.url creates it)"
                    .into(),
            }),
            v if v > PG_SCHEMA_VERSION => Err(RecordError::NewerFormat {
                path,
                found: v,
                supported: PG_SCHEMA_VERSION,
            }),
            v if v < PG_SCHEMA_VERSION => Err(RecordError::OlderFormat {
                path,
                found: v,
                supported: PG_SCHEMA_VERSION,
            }),
            _ => Ok(record),
        }
    }

    /// The URL without its password.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The daemon whose rounds this connection records.
    pub fn daemon(&self) -> &str {
        &self.daemon
    }

    /// The connection, made again if it was lost.
    fn client(&self) -> Result<RefMut<'_, Client>, RecordError> {
        let mut slot = self.client.borrow_mut();
        if slot.as_ref().is_some_and(Client::is_closed) {
            *slot = None;
        }
        if slot.is_none() {
            let mut client = self
                .tls
                .connect(&self.config)
                .map_err(pg(&self.path, "connecting to PostgreSQL"))?;
            if self.writer {
                self.take_writer_lock(&mut client)?;
            }
            *slot = Some(client);
            // Ids read on another connection stay true (names are only
            // added), so the names are kept.
        }
        Ok(RefMut::map(slot, |c| c.as_mut().expect("connected above")))
    }

    /// Takes this daemon name's writer lock on a new connection, or names
    /// the daemon of that name that holds it (from `daemons`, which `open`
    /// writes once the schema is known to be pricegrid's). Daemons of
    /// other names share the record as a fleet.
    fn take_writer_lock(&self, client: &mut Client) -> Result<(), RecordError> {
        let doing = "taking the record's writer lock";
        let taken: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2))",
                &[&WRITER_LOCK, &self.daemon],
            )
            .map_err(pg(&self.path, doing))?
            .get(0);
        if taken {
            return Ok(());
        }
        let has_daemons: Option<String> = client
            .query_one("SELECT to_regclass('daemons')::text", &[])
            .map_err(pg(&self.path, doing))?
            .get(0);
        let holder = match has_daemons {
            Some(_) => client
                .query_opt(
                    "SELECT pid, to_char(started AT TIME ZONE 'UTC', \
                     'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM daemons WHERE name = $1",
                    &[&self.daemon],
                )
                .ok()
                .flatten()
                .map(|r| {
                    format!(
                        "daemon {} (pid {}, started {})",
                        self.daemon,
                        r.get::<_, i64>(0),
                        r.get::<_, String>(1)
                    )
                }),
            None => None,
        };
        Err(RecordError::InUse {
            path: self.path.clone(),
            holder: holder.unwrap_or_else(|| format!("another daemon named {}", self.daemon)),
        })
    }

    /// Says in `daemons` who this writer is: what a second daemon of its
    /// name is told, and the fleet's list of daemons.
    fn note_writer(&self, client: &mut Client) -> Result<(), RecordError> {
        client
            .execute(
                "INSERT INTO daemons (name, pid, started, last_seen) VALUES ($1, $2, now(), now()) \
                 ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, started = excluded.started, \
                 last_seen = excluded.last_seen",
                &[&self.daemon, &i64::from(std::process::id())],
            )
            .map_err(pg(&self.path, "noting the record's writer"))?;
        Ok(())
    }

    /// Runs `f` on the connection; if it fails and the connection is gone
    /// with it, the next call connects again, and this connection's names
    /// (which a rolled-back transaction may have added) are read afresh.
    pub(super) fn with<T>(
        &self,
        f: impl FnOnce(&mut Client, &mut Names) -> Result<T, RecordError>,
    ) -> Result<T, RecordError> {
        let mut client = self.client()?;
        let mut names = self.names.borrow_mut();
        let out = f(&mut client, &mut names);
        if out.is_err() {
            *names = Names::default();
            let lost = match &out {
                Err(RecordError::Postgres { source, .. }) => {
                    crate::record::error::connection_lost(source)
                }
                _ => false,
            };
            if lost || client.is_closed() {
                drop(client);
                *self.client.borrow_mut() = None;
            }
        }
        out
    }

    fn meta(&self, key: &str) -> Result<Option<String>, RecordError> {
        let path = self.path.clone();
        self.with(|c, _| {
            Ok(
                c.query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                    .map_err(pg(&path, "reading meta"))?
                    .map(|r| r.get(0)),
            )
        })
    }

    /// A PostgreSQL record imports no snapshot directory (that is the
    /// SQLite record's one-time move); it says so if there is one to
    /// import, rather than starting afresh beside it.
    pub fn imported_from(&self) -> Result<Option<PathBuf>, RecordError> {
        Ok(self
            .meta(super::schema::key::IMPORTED_FROM)?
            .map(PathBuf::from))
    }

    pub fn retained_from(&self) -> Result<Option<u64>, RecordError> {
        let Some(raw) = self.meta(super::schema::key::RETAINED_FROM)? else {
            return Ok(None);
        };
        raw.parse().map(Some).map_err(|_| RecordError::Corrupt {
            path: self.path.clone(),
            at: "table meta, key retained_from".into(),
            reason: format!("{raw:?} is not a round number"),
        })
    }

    /// Reads every name added since this connection last did.
    pub(super) fn refresh(
        c: &mut impl postgres::GenericClient,
        names: &mut Names,
        path: &Path,
    ) -> Result<(), RecordError> {
        for table in ["exchanges", "symbols", "sources"] {
            let column = if table == "sources" { "url" } else { "name" };
            let rows = c
                .query(
                    &format!("SELECT id, {column} FROM {table} WHERE id > $1 ORDER BY id"),
                    &[&names.newest(table)],
                )
                .map_err(pg(path, "reading the record's names"))?;
            for row in rows {
                names.add(table, row.get(0), row.get::<_, &str>(1), path)?;
            }
        }
        Ok(())
    }

    /// Every name, read afresh: ids are given by sequences, and one given
    /// in a transaction that committed late can be lower than one read
    /// already.
    pub(super) fn reread(
        c: &mut impl postgres::GenericClient,
        names: &mut Names,
        path: &Path,
    ) -> Result<(), RecordError> {
        *names = Names::default();
        Self::refresh(c, names, path)
    }

    /// Every cell's current value, and the newest round recorded, read in
    /// one transaction so the two agree.
    pub fn load(&self) -> Result<(Store, u64), RecordError> {
        let path = self.path.clone();
        self.with(|c, names| {
            let doing = "reading cells";
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .map_err(pg(&path, doing))?;
            Self::reread(&mut tx, names, &path)?;
            let mut store = Filler::new(names, StoreBuilder::new());
            let decoder = Decoder::new(&path, "cells");
            let mut rows = tx
                .query_raw(
                    &format!("SELECT {COLUMNS} FROM cells ORDER BY symbol, day, exchange"),
                    std::iter::empty::<i64>(),
                )
                .map_err(pg(&path, doing))?;
            while let Some(row) = rows.next().map_err(pg(&path, doing))? {
                store.add(raw(&row, &path)?, &decoder)?;
            }
            drop(rows);
            let last = last_round(&mut tx, &path)?;
            tx.commit().map_err(pg(&path, doing))?;
            Ok((store.finish(), last))
        })
    }

    /// Every exchange and symbol the record holds a cell of.
    pub fn names(&self) -> Result<(BTreeSet<Exchange>, BTreeSet<Symbol>), RecordError> {
        let path = self.path.clone();
        self.with(|c, names| {
            let doing = "reading the names held";
            Self::reread(c, names, &path)?;
            let (exchanges, symbols) = names.all();
            let held = |c: &mut Client, column: &str, id: i64| -> Result<bool, RecordError> {
                Ok(c.query_one(
                    &format!("SELECT EXISTS (SELECT 1 FROM cells WHERE {column} = $1)"),
                    &[&id],
                )
                .map_err(pg(&path, doing))?
                .get(0))
            };
            let mut out = (BTreeSet::new(), BTreeSet::new());
            for (id, e) in exchanges {
                if held(c, "exchange", id)? {
                    out.0.insert(e);
                }
            }
            for (id, s) in symbols {
                if held(c, "symbol", id)? {
                    out.1.insert(s);
                }
            }
            Ok(out)
        })
    }

    /// Nothing to do: the server checkpoints by itself.
    pub fn checkpoint(&self) -> Result<(), RecordError> {
        Ok(())
    }

    /// Snapshots are imported into an SQLite record only. Nothing to do
    /// when `dir` holds none; an error naming the way when it does and
    /// this record is empty, so they are never silently left behind.
    pub fn import_snapshots(&mut self, dir: &Path) -> Result<Option<Imported>, RecordError> {
        let files = crate::snapshot::list(dir).unwrap_or_default();
        if files.is_empty() || self.imported_from()?.is_some() {
            return Ok(None);
        }
        let (store, last) = self.load()?;
        if last > 0 || !store.is_empty() {
            return Ok(None);
        }
        Err(RecordError::Unsupported {
            path: self.path.clone(),
            what: format!(
                "{} holds {} JSON snapshot(s), and a PostgreSQL record does not import them; \
                 import them into an SQLite record first (store.path), or move them aside to \
                 start afresh",
                dir.display(),
                files.len()
            ),
        })
    }

    /// Every round recorded (since the last compaction), newest first.
    pub fn rounds(&self) -> Result<Vec<RoundRow>, RecordError> {
        let path = self.path.clone();
        self.with(|c, _| {
            let doing = "reading rounds";
            let rows = c
                .query(
                    "SELECT round, started, finished, config_version, status, tasks, \"final\", \
                     provisional, \"none\", failed, rejected FROM rounds ORDER BY round DESC",
                    &[],
                )
                .map_err(pg(&path, doing))?;
            rows.iter().map(|r| round_row(r, &path)).collect()
        })
    }
}

/// The columns of a cell row, as `rows::COLUMNS` (the same order).
pub(super) use super::rows::COLUMNS;

/// One row of `COLUMNS` as read, not yet checked.
pub(super) fn raw(row: &postgres::Row, path: &Path) -> Result<Raw, RecordError> {
    let get = |e: postgres::Error| RecordError::Postgres {
        path: path.to_owned(),
        doing: "reading cells",
        source: e,
    };
    Ok(Raw {
        symbol: row.try_get(0).map_err(get)?,
        day: row.try_get(1).map_err(get)?,
        exchange: row.try_get(2).map_err(get)?,
        state: row.try_get(3).map_err(get)?,
        flags: row.try_get(4).map_err(get)?,
        price: [
            row.try_get(5).map_err(get)?,
            row.try_get(6).map_err(get)?,
            row.try_get(7).map_err(get)?,
            row.try_get(8).map_err(get)?,
            row.try_get(9).map_err(get)?,
        ],
        fetched_at: row.try_get(10).map_err(get)?,
        round: row.try_get(11).map_err(get)?,
        source: row.try_get(12).map_err(get)?,
        reason: row.try_get(13).map_err(get)?,
        attempts: row.try_get(14).map_err(get)?,
    })
}

/// The newest round recorded (0 for a new record).
pub(super) fn last_round(
    c: &mut impl postgres::GenericClient,
    path: &Path,
) -> Result<u64, RecordError> {
    let last: i64 = c
        .query_one(
            "SELECT COALESCE((SELECT MAX(round) FROM rounds), (SELECT MAX(round) FROM cells), 0)",
            &[],
        )
        .map_err(pg(path, "reading the last round"))?
        .get(0);
    u64::try_from(last).map_err(|_| RecordError::Corrupt {
        path: path.to_owned(),
        at: "table rounds".into(),
        reason: format!("round {last} is negative"),
    })
}

/// One row of `rounds`, checked.
fn round_row(r: &postgres::Row, path: &Path) -> Result<RoundRow, RecordError> {
    let round: i64 = r.get(0);
    let bad = |reason: String| RecordError::Corrupt {
        path: path.to_owned(),
        at: format!("table rounds, round {round}"),
        reason,
    };
    let nat = |v: i64| u64::try_from(v).map_err(|_| bad(format!("{v} is negative")));
    let time = |ms: i64| time_of(ms).ok_or_else(|| bad(format!("time {ms} is out of range")));
    let status: String = r.get(4);
    Ok(RoundRow {
        round: nat(round)?,
        started: time(r.get(1))?,
        finished: r.get::<_, Option<i64>>(2).map(time).transpose()?,
        config_version: nat(r.get(3))?,
        status: RoundStatus::parse(&status)
            .ok_or_else(|| bad(format!("unknown status {status:?}")))?,
        counts: Counts {
            tasks: nat(r.get(5))?,
            finals: nat(r.get(6))?,
            provisional: nat(r.get(7))?,
            none: nat(r.get(8))?,
            failed: nat(r.get(9))?,
            rejected: nat(r.get(10))?,
        },
    })
}
