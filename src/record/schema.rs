//! The record's schema, its version, and the steps that bring an older file
//! up to date. This file owns the DDL and the `meta` keys; it never reads or
//! writes cells or rounds (that is `record` and `record::rows`).
//!
//! Version 1:
//! - `meta(key, value)`: `schema_version`; `imported_from` (the snapshot
//!   directory imported once, with `imported_at`); `retained_from` (the
//!   oldest round whose point-in-time view compaction kept).
//! - `cells`: the current value of every cell, one row per (exchange,
//!   symbol, day). Resuming reads this table alone.
//! - `history`: one row per (cell, round) in which the cell changed, with
//!   the same columns as `cells`; its `round` is the round that recorded the
//!   value. `history_by_symbol_day` serves "one symbol-day across exchanges
//!   at round N".
//! - `rounds`: one row per round, begun, finished or aborted, with its counts.
//!
//! Text forms: `day` is `YYYY-MM-DD`; `state` is `final`, `provisional`,
//! `none`, `failed` or `rejected`; `flags` the space-separated flag names
//! (`''` when none); `fetched_at` RFC 3339 UTC (`…Z`, seconds, fractions
//! only when there are any); `rounds.started`/`finished` RFC 3339 UTC with
//! exactly three decimals, so that comparing the text compares the times.
//! `market` is the exchange's market name a cell was asked in (e.g.
//! `XBTUSD`, for an exchange with its own API; NULL for the classic API);
//! the same name ends the cell's `source`. A new file gets
//! 2 KiB pages (`record::PAGE_SIZE` says why) and WAL mode.
//!
//! A migration is one function per version step, run in one transaction
//! with the version bump: a crash leaves the old version or the new one.

use rusqlite::Transaction;

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Version 1 of the schema, as created.
pub const SCHEMA_V1: &str = "
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE cells (
    exchange   TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    day        TEXT NOT NULL,
    state      TEXT NOT NULL,
    flags      TEXT NOT NULL DEFAULT '',
    open       REAL,
    high       REAL,
    low        REAL,
    close      REAL,
    volume     REAL,
    market     TEXT,
    fetched_at TEXT,
    round      INTEGER NOT NULL,
    source     TEXT,
    reason     TEXT,
    attempts   INTEGER,
    PRIMARY KEY (exchange, symbol, day)
) WITHOUT ROWID;

CREATE TABLE history (
    exchange   TEXT NOT NULL,
    symbol     TEXT NOT NULL,
    day        TEXT NOT NULL,
    state      TEXT NOT NULL,
    flags      TEXT NOT NULL DEFAULT '',
    open       REAL,
    high       REAL,
    low        REAL,
    close      REAL,
    volume     REAL,
    market     TEXT,
    fetched_at TEXT,
    round      INTEGER NOT NULL,
    source     TEXT,
    reason     TEXT,
    attempts   INTEGER,
    PRIMARY KEY (exchange, symbol, day, round)
) WITHOUT ROWID;

CREATE INDEX history_by_symbol_day ON history (symbol, day, exchange, round);

CREATE TABLE rounds (
    round          INTEGER PRIMARY KEY,
    started        TEXT NOT NULL,
    finished       TEXT,
    config_version INTEGER NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('running', 'finished', 'aborted')),
    tasks          INTEGER NOT NULL DEFAULT 0,
    \"final\"      INTEGER NOT NULL DEFAULT 0,
    provisional    INTEGER NOT NULL DEFAULT 0,
    \"none\"       INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    rejected       INTEGER NOT NULL DEFAULT 0
);
";

/// `MIGRATIONS[v]` brings a file at version `v` to `v + 1`; version 0 is a
/// file with no tables at all.
const MIGRATIONS: [fn(&Transaction<'_>) -> rusqlite::Result<()>; SCHEMA_VERSION as usize] =
    [create_v1];

fn create_v1(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA_V1)
}

/// Runs every step from `from` to `SCHEMA_VERSION` and records the new
/// version, in one transaction.
pub(super) fn migrate(tx: &Transaction<'_>, from: u32) -> rusqlite::Result<()> {
    for step in MIGRATIONS.iter().skip(from as usize) {
        step(tx)?;
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
        [SCHEMA_VERSION.to_string()],
    )?;
    Ok(())
}

/// `meta` keys.
pub(super) mod key {
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const IMPORTED_FROM: &str = "imported_from";
    pub const IMPORTED_AT: &str = "imported_at";
    pub const RETAINED_FROM: &str = "retained_from";
}
