//! Reading the `cells` table into a store at start (`Record::load`): 20M
//! rows at 20M cells, so two threads share the work. The caller's thread
//! steps SQLite and reads each row's values as they are (`Decoder::raw`:
//! ids and numbers, nothing shared); a scoped thread checks them, names
//! them (`Decoder::cell_of`) and puts the cells in place (`StoreBuilder`,
//! told the record's last day so each series is sized once), a batch at a
//! time. Every name's reference count is taken and dropped on the builder's
//! thread alone: counted from both, its cache line went back and forth
//! between the cores three times a row. Reads only, inside the caller's
//! transaction; decides nothing about a cell.

use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};

use rusqlite::Transaction;

use super::names::Names;
use super::rows::{day_of, Decoder, Raw, COLUMNS};
use super::{sql, RecordError};
use crate::store::{Store, StoreBuilder};

/// Rows handed to the builder at once.
const BATCH: usize = 4096;

/// Every cell of the `cells` table, in a store.
pub(super) fn store(
    tx: &Transaction<'_>,
    names: &Names,
    path: &Path,
) -> Result<Store, RecordError> {
    let last: Option<i64> = tx
        .query_row("SELECT max(day) FROM cells", [], |r| r.get(0))
        .map_err(sql(path, "reading cells"))?;
    let last_day = last.and_then(day_of);
    std::thread::scope(|scope| {
        let (batches, received) = sync_channel::<Vec<Raw>>(4);
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
        let read = read(tx, path, &batches);
        // The builder ends once it has taken the last batch (at once after
        // an error).
        drop(batches);
        let built = building
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read.and(built)
    })
}

/// Reads every row and sends it on, a batch at a time; stops early when
/// the builder is gone (a bad row: it says which).
fn read(
    tx: &Transaction<'_>,
    path: &Path,
    batches: &SyncSender<Vec<Raw>>,
) -> Result<(), RecordError> {
    let mut stmt = tx
        .prepare(&format!("SELECT {COLUMNS} FROM cells"))
        .map_err(sql(path, "reading cells"))?;
    let mut rows = stmt.query([]).map_err(sql(path, "reading cells"))?;
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
