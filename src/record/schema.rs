//! The record's schema and its version: the DDL of every version and the
//! `meta` keys. It runs nothing: `record::migrate` runs the steps that
//! bring an older file up to date, and it never reads or writes cells or
//! rounds (that is `record` and `record::rows`).
//!
//! Version 2 (written since issue 19: ~80 bytes a cell instead of ~326):
//! - `meta(key, value)`: `schema_version`; `imported_from` (the snapshot
//!   directory imported once, with `imported_at`); `retained_from` (the
//!   oldest round whose point-in-time view compaction kept).
//! - `exchanges`, `symbols`, `markets`, `sources`: every name the record
//!   holds, once, under an integer id (`sources.market` is the market a
//!   source identity names, for an exchange with its own API). Names are
//!   only ever added, so an id never changes meaning.
//! - `cells`: the current value of every cell, one row per (symbol, day,
//!   exchange), in that order (day first since version 4): one
//!   symbol-day across exchanges is one range. Resuming reads this table
//!   alone. `round` is
//!   the round that last wrote the cell; `since` the round that first
//!   recorded what it holds (its state, price, flags and reason), which is
//!   where its point-in-time history begins (NULL: the value has no
//!   history, e.g. a migrated cell whose history did not end with it).
//! - `history`: one row per (cell, round) for each value a cell held
//!   before its current one, keyed by the round that first recorded that
//!   value. The current value is not repeated here: `cells` with `since`
//!   is its history row. A round that writes the same state, price, flags
//!   and reason again only updates `cells` (its fetch time, source, round).
//! - `rounds`: one row per round, begun, finished or aborted, with its counts.
//!
//! Integer forms: `day` is days since 1970-01-01; `state` the index in
//! `CellState::ALL` (0 final, 1 provisional, 2 none, 3 failed, 4
//! rejected); `flags` `Flags::bits`; `fetched_at` and `rounds.started`/
//! `finished` unix milliseconds. All tables but the interned names are
//! `WITHOUT ROWID`: their key is their data's order. A new file gets
//! 2 KiB pages (`record::PAGE_SIZE` says why) and WAL mode.
//!
//! Version 3 adds `reference` (`SCHEMA_V3`): the reference close of each
//! symbol-day per round that judged it, read and written by
//! `record::reference`; nothing else changes, so the step from 2 creates
//! the table and nothing more.
//!
//! Version 4 (`SCHEMA_V4`, issue 19's writes) keeps every table and column
//! of version 3 and changes only the order of three keys, day first:
//! `cells` is keyed (day, symbol, exchange), `history` (day, symbol,
//! exchange, round) and `reference` (day, symbol, round). A new day's rows
//! then land at the end of each table, packed into new pages in order,
//! where the (symbol, day, ...) order of versions 2 and 3 put them in one
//! place per symbol (at 20 exchanges x 1,000 symbols, a new day dirtied
//! and split a leaf of `cells` and one of `reference` for each of the
//! 1,000 symbols, each written to the WAL and again at the checkpoint:
//! 25 MB for 20,000 cells). One symbol-day across exchanges is still one
//! range of the key. The step from 3 (`record::migrate::v3_to_v4`) copies
//! the three tables into their new order, row for row, and the file is
//! vacuumed after.
//!
//! Version 1 (`SCHEMA_V1`, kept to migrate from and to test migrating):
//! the same tables with text keys and times (`YYYY-MM-DD`, state names,
//! RFC 3339), no name tables, and `history` holding every value written,
//! the current one included. `record::migrate` brings it to version 2.
//!
//! A migration is one function per version step (`record::migrate`), run
//! in one transaction with the version bump: a crash leaves the old
//! version or the new one.

/// The schema this build writes and reads.
pub const SCHEMA_VERSION: u32 = 4;

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

/// Version 2 of the schema, as `record::migrate::v1_to_v2` creates it.
pub const SCHEMA_V2: &str = "
CREATE TABLE exchanges (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE symbols (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE markets (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE sources (
    id     INTEGER PRIMARY KEY,
    url    TEXT NOT NULL UNIQUE,
    market INTEGER REFERENCES markets (id)
);

CREATE TABLE cells (
    symbol     INTEGER NOT NULL,
    day        INTEGER NOT NULL,
    exchange   INTEGER NOT NULL,
    state      INTEGER NOT NULL,
    flags      INTEGER NOT NULL DEFAULT 0,
    open       REAL,
    high       REAL,
    low        REAL,
    close      REAL,
    volume     REAL,
    fetched_at INTEGER,
    round      INTEGER NOT NULL,
    source     INTEGER,
    reason     TEXT,
    attempts   INTEGER,
    since      INTEGER,
    PRIMARY KEY (symbol, day, exchange)
) WITHOUT ROWID;

CREATE TABLE history (
    symbol     INTEGER NOT NULL,
    day        INTEGER NOT NULL,
    exchange   INTEGER NOT NULL,
    round      INTEGER NOT NULL,
    state      INTEGER NOT NULL,
    flags      INTEGER NOT NULL DEFAULT 0,
    open       REAL,
    high       REAL,
    low        REAL,
    close      REAL,
    volume     REAL,
    fetched_at INTEGER,
    source     INTEGER,
    reason     TEXT,
    attempts   INTEGER,
    PRIMARY KEY (symbol, day, exchange, round)
) WITHOUT ROWID;

CREATE TABLE rounds (
    round          INTEGER PRIMARY KEY,
    started        INTEGER NOT NULL,
    finished       INTEGER,
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

/// What version 3 adds to version 2 (`record::migrate::v2_to_v3`): the
/// reference close of each symbol-day as it stood in each round that
/// judged it again (`record::reference`). `symbol` is the name, not an id
/// of `symbols`, so the table stands on its own; `status` is `final`,
/// `provisional` or `insufficient` (then `close` is NULL); `constituents`
/// the constituents' exchanges by close, space-separated (their closes and
/// volumes are the cells' at the same point of the record: ~300 bytes a
/// symbol-day with 20 exchanges, 15 a cell, where the whole evidence took
/// 53); `excluded` the cells left out, grouped by reason
/// (`peg_unknown:usdt=binance,okx outlier:100.2:2.004=gemini`); a row is
/// written only when a symbol-day's judgement changes;
/// `min`,
/// `max`, `spread`, `mad` the dispersion (NULL without a close).
pub const SCHEMA_V3: &str = "
CREATE TABLE reference (
    symbol       TEXT NOT NULL,
    day          INTEGER NOT NULL,
    round        INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('final', 'provisional', 'insufficient')),
    close        REAL,
    constituents TEXT NOT NULL,
    excluded     TEXT NOT NULL,
    min          REAL,
    max          REAL,
    spread       REAL,
    mad          REAL,
    PRIMARY KEY (symbol, day, round)
) WITHOUT ROWID;
";

/// Version 4 (`record::migrate::v3_to_v4`): the tables of version 3 with
/// their keys day first. Each is created under a new name, filled from the
/// old one in its new key order, and renamed over it.
pub const SCHEMA_V4: &str = "
CREATE TABLE v4_cells (
    symbol     INTEGER NOT NULL,
    day        INTEGER NOT NULL,
    exchange   INTEGER NOT NULL,
    state      INTEGER NOT NULL,
    flags      INTEGER NOT NULL DEFAULT 0,
    open       REAL,
    high       REAL,
    low        REAL,
    close      REAL,
    volume     REAL,
    fetched_at INTEGER,
    round      INTEGER NOT NULL,
    source     INTEGER,
    reason     TEXT,
    attempts   INTEGER,
    since      INTEGER,
    PRIMARY KEY (day, symbol, exchange)
) WITHOUT ROWID;
INSERT INTO v4_cells SELECT * FROM cells ORDER BY day, symbol, exchange;
DROP TABLE cells;
ALTER TABLE v4_cells RENAME TO cells;

CREATE TABLE v4_history (
    symbol     INTEGER NOT NULL,
    day        INTEGER NOT NULL,
    exchange   INTEGER NOT NULL,
    round      INTEGER NOT NULL,
    state      INTEGER NOT NULL,
    flags      INTEGER NOT NULL DEFAULT 0,
    open       REAL,
    high       REAL,
    low        REAL,
    close      REAL,
    volume     REAL,
    fetched_at INTEGER,
    source     INTEGER,
    reason     TEXT,
    attempts   INTEGER,
    PRIMARY KEY (day, symbol, exchange, round)
) WITHOUT ROWID;
INSERT INTO v4_history SELECT * FROM history ORDER BY day, symbol, exchange, round;
DROP TABLE history;
ALTER TABLE v4_history RENAME TO history;

CREATE TABLE v4_reference (
    symbol       TEXT NOT NULL,
    day          INTEGER NOT NULL,
    round        INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('final', 'provisional', 'insufficient')),
    close        REAL,
    constituents TEXT NOT NULL,
    excluded     TEXT NOT NULL,
    min          REAL,
    max          REAL,
    spread       REAL,
    mad          REAL,
    PRIMARY KEY (day, symbol, round)
) WITHOUT ROWID;
INSERT INTO v4_reference SELECT * FROM reference ORDER BY day, symbol, round;
DROP TABLE reference;
ALTER TABLE v4_reference RENAME TO reference;
";

/// `meta` keys.
pub(super) mod key {
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const IMPORTED_FROM: &str = "imported_from";
    pub const IMPORTED_AT: &str = "imported_at";
    pub const RETAINED_FROM: &str = "retained_from";
}
