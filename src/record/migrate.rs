//! Brings a record's file to the schema this build writes (`migrate`, the
//! ladder of steps, each from one version to the next): the steps from
//! schema version 3 to 4 (the same tables, keyed day
//! first), from version 2 to 3 (a `reference` table, nothing
//! else) and from version 1 (text keys and times, every value in
//! `history`) to version 2 (integer keys and times, interned names, the
//! current value only in `cells`), and the fold that makes a value written
//! to both `history` and `cells` live in `cells` alone (used by this step
//! and by `record::import`). Runs inside the caller's transaction; it never
//! decides what a cell holds, it only changes how it is written down, so
//! every cell, history row and round reads back as before.

use rusqlite::Transaction;

use super::schema::{SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_VERSION};

/// `MIGRATIONS[v]` brings a file at version `v` to `v + 1`; version 0 is a
/// file with no tables at all.
const MIGRATIONS: [fn(&Transaction<'_>) -> rusqlite::Result<()>; SCHEMA_VERSION as usize] =
    [create_v1, v1_to_v2, v2_to_v3, v3_to_v4];

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

/// `YYYY-MM-DD` text to days since 1970-01-01 (NULL for text that is not
/// a date, which the NOT NULL column then refuses).
const DAY: &str = "unixepoch({c}) / 86400";

/// RFC 3339 text to unix milliseconds.
const MILLIS: &str = "CAST(round(unixepoch({c}, 'subsec') * 1000) AS INTEGER)";

/// A state's name to its index in `CellState::ALL`; an unknown name to -1,
/// which reading the cell reports as a damaged row naming it.
const STATE: &str = "CASE {c} WHEN 'final' THEN 0 WHEN 'provisional' THEN 1 WHEN 'none' THEN 2 \
     WHEN 'failed' THEN 3 WHEN 'rejected' THEN 4 ELSE -1 END";

/// Space-separated flag names to `Flags` bits; a name that is not a flag
/// sets bit 128, which reading the cell reports as a damaged row.
const FLAGS: &str = "((instr(' ' || {c} || ' ', ' ohlc_order ') > 0) * 1 \
     + (instr(' ' || {c} || ' ', ' zero ') > 0) * 2 \
     + (instr(' ' || {c} || ' ', ' derived:1h ') > 0) * 4 \
     + (instr(' ' || {c} || ' ', ' quotes ') > 0) * 8 \
     + (trim(replace(replace(replace(replace(' ' || {c} || ' ', ' ohlc_order ', ' '), \
        ' zero ', ' '), ' derived:1h ', ' '), ' quotes ', ' ')) <> '') * 128)";

fn with(form: &str, column: &str) -> String {
    form.replace("{c}", column)
}

/// Version 1 to version 2: the old tables are renamed, copied into the new
/// ones with their names interned and their text turned into integers,
/// each cell's last history row folded into the cell, and dropped.
pub(super) fn v1_to_v2(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "DROP INDEX history_by_symbol_day;
         ALTER TABLE cells RENAME TO v1_cells;
         ALTER TABLE history RENAME TO v1_history;
         ALTER TABLE rounds RENAME TO v1_rounds;",
    )?;
    tx.execute_batch(SCHEMA_V2)?;
    tx.execute_batch(
        "INSERT INTO exchanges (name) SELECT exchange FROM v1_cells \
             UNION SELECT exchange FROM v1_history ORDER BY 1;
         INSERT INTO symbols (name) SELECT symbol FROM v1_cells \
             UNION SELECT symbol FROM v1_history ORDER BY 1;
         CREATE TEMP TABLE v1_sources AS \
             SELECT source, MAX(market) AS market FROM (\
                 SELECT source, market FROM v1_cells UNION ALL \
                 SELECT source, market FROM v1_history) \
             WHERE source IS NOT NULL GROUP BY source;
         INSERT INTO markets (name) SELECT DISTINCT market FROM v1_sources \
             WHERE market IS NOT NULL ORDER BY 1;
         INSERT INTO sources (url, market) SELECT source, \
             (SELECT id FROM markets WHERE name = v1_sources.market) \
             FROM v1_sources ORDER BY source;
         DROP TABLE v1_sources;",
    )?;
    let values = format!(
        "s.id, {day}, e.id, {state}, {flags}, open, high, low, close, volume, {fetched}",
        day = with(DAY, "day"),
        state = with(STATE, "state"),
        flags = with(FLAGS, "flags"),
        fetched = with(MILLIS, "fetched_at"),
    );
    let joins = "JOIN symbols AS s ON s.name = t.symbol \
                 JOIN exchanges AS e ON e.name = t.exchange \
                 LEFT JOIN sources AS src ON src.url = t.source";
    tx.execute(
        &format!(
            "INSERT INTO cells (symbol, day, exchange, state, flags, open, high, low, close, \
             volume, fetched_at, round, source, reason, attempts, since) \
             SELECT {values}, round, src.id, reason, attempts, NULL FROM v1_cells AS t {joins}"
        ),
        [],
    )?;
    tx.execute(
        &format!(
            "INSERT INTO history (symbol, day, exchange, state, flags, open, high, low, close, \
             volume, fetched_at, round, source, reason, attempts) \
             SELECT {values}, round, src.id, reason, attempts FROM v1_history AS t {joins}"
        ),
        [],
    )?;
    tx.execute(
        &format!(
            "INSERT INTO rounds (round, started, finished, config_version, status, tasks, \
             \"final\", provisional, \"none\", failed, rejected) \
             SELECT round, {started}, {finished}, config_version, status, tasks, \"final\", \
             provisional, \"none\", failed, rejected FROM v1_rounds",
            started = with(MILLIS, "started"),
            finished = with(MILLIS, "finished"),
        ),
        [],
    )?;
    tx.execute_batch("DROP TABLE v1_cells; DROP TABLE v1_history; DROP TABLE v1_rounds;")?;
    fold_current(tx)
}

/// For each cell whose newest history row is exactly its `cells` row
/// (every column, the round included), the history row is removed and the
/// cell's `since` set to that round: the value is then recorded once, and
/// reads back at every round as before. A cell whose history ends with
/// another value keeps `since` NULL and its history whole.
pub(super) fn fold_current(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let same = "h.symbol = cells.symbol AND h.day = cells.day AND h.exchange = cells.exchange";
    tx.execute(
        &format!(
            "UPDATE cells SET since = round WHERE since IS NULL AND EXISTS (\
             SELECT 1 FROM history AS h WHERE {same} AND h.round = cells.round \
             AND h.state = cells.state AND h.flags = cells.flags AND h.open IS cells.open \
             AND h.high IS cells.high AND h.low IS cells.low AND h.close IS cells.close \
             AND h.volume IS cells.volume AND h.fetched_at IS cells.fetched_at \
             AND h.source IS cells.source AND h.reason IS cells.reason \
             AND h.attempts IS cells.attempts \
             AND NOT EXISTS (SELECT 1 FROM history AS later WHERE later.symbol = h.symbol \
                 AND later.day = h.day AND later.exchange = h.exchange \
                 AND later.round > h.round))"
        ),
        [],
    )?;
    tx.execute(
        "DELETE FROM history WHERE EXISTS (SELECT 1 FROM cells WHERE \
         cells.symbol = history.symbol AND cells.day = history.day \
         AND cells.exchange = history.exchange AND cells.since = history.round)",
        [],
    )?;
    Ok(())
}

/// Version 2 to version 3: the `reference` table, empty (the daemon fills
/// it as it judges symbol-days again).
pub(super) fn v2_to_v3(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA_V3)
}

/// Version 3 to version 4: `cells`, `history` and `reference` copied into
/// tables keyed day first, row for row (`schema::SCHEMA_V4`).
pub(super) fn v3_to_v4(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(SCHEMA_V4)
}
