//! Reading the `cells` table into a store at start (`Record::load`): 20M
//! rows at 20M cells, so the work is shared. SQLite steps rows on two
//! threads, each over half of the days (the key is day first, so each half
//! is one range of it): the caller's, in its transaction, and for the
//! record's one writer (the daemon, which holds the record's lock, so no
//! other writer can commit between the two reads) a second read-only
//! connection on a scoped thread. They read each row's values as they are
//! (`Decoder::raw`: ids and numbers, nothing shared) and hand them to a
//! third thread, which checks them, names them (`Decoder::cell_of`) and
//! puts the cells in place (`StoreBuilder`, told the record's last day so
//! each series is sized once), a batch at a time. Every name's reference
//! count is taken and dropped on the builder's thread alone: counted from
//! two threads, its cache line went back and forth between the cores
//! three times a row. A reader for `query` beside a running daemon reads
//! on one thread, in one transaction. Reads only; decides nothing about a
//! cell.

use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};

use rusqlite::{Connection, OpenFlags};

use super::names::Names;
use super::rows::{day_of, Decoder, Raw, COLUMNS};
use super::{sql, RecordError, BUSY_TIMEOUT};
use crate::store::{Store, StoreBuilder};

/// Rows handed to the builder at once.
const BATCH: usize = 4096;

/// Every cell of the `cells` table, in a store; `tx` is the caller's read
/// transaction, `writer` whether the caller is the record's one writer.
pub(super) fn store(
    tx: &Connection,
    names: &Names,
    path: &Path,
    writer: bool,
) -> Result<Store, RecordError> {
    let (first, last): (Option<i64>, Option<i64>) = tx
        .query_row("SELECT min(day), max(day) FROM cells", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(sql(path, "reading cells"))?;
    let last_day = last.and_then(day_of);
    // The later half of the days, read on a second connection.
    let split = match (first, last) {
        (Some(first), Some(last)) if writer && last > first => Some(first + (last - first + 1) / 2),
        _ => None,
    };
    std::thread::scope(|scope| {
        let (batches, received) = sync_channel::<Vec<Raw>>(8);
        let building = scope.spawn(move || {
            let decoder = Decoder::new(path, "cells");
            let mut store = StoreBuilder::reaching(last_day);
            for batch in received {
                for raw in batch {
                    let (key, cell) = decoder.cell_of(raw, names)?;
                    store.put(&key, &cell);
                }
            }
            Ok::<_, RecordError>(store.finish())
        });
        let later = split.map(|from| {
            let batches = batches.clone();
            scope.spawn(move || {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sql(path, "opening the record to read its cells"))?;
                conn.busy_timeout(BUSY_TIMEOUT)
                    .map_err(sql(path, "setting the busy timeout"))?;
                read(&conn, path, Some(from), None, &batches)
            })
        });
        let read = read(tx, path, None, split, &batches);
        // The builder ends once it has taken the last batch of both (at
        // once after an error).
        drop(batches);
        let later = later.map_or(Ok(()), |t| {
            t.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        let built = building
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read.and(later).and(built)
    })
}

/// Reads the rows of days `from..until` (unbounded where `None`) and sends
/// them on, a batch at a time; stops early when the builder is gone (a bad
/// row: it says which).
fn read(
    conn: &Connection,
    path: &Path,
    from: Option<i64>,
    until: Option<i64>,
    batches: &SyncSender<Vec<Raw>>,
) -> Result<(), RecordError> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM cells WHERE day >= ?1 AND day < ?2"
        ))
        .map_err(sql(path, "reading cells"))?;
    let mut rows = stmt
        .query([from.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX)])
        .map_err(sql(path, "reading cells"))?;
    let decoder = Decoder::new(path, "cells");
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(row) = rows.next().map_err(sql(path, "reading cells"))? {
        batch.push(decoder.raw(row)?);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if batches.send(full).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.send(batch);
    }
    Ok(())
}
