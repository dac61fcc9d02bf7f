//! Reading the `cells` table into a store at start (`Record::load`): 20M
//! rows at 20M cells, so two threads share the work. The caller's thread
//! steps SQLite and decodes each row (`rows::Decoder`); a scoped thread puts
//! the decoded cells in place (`StoreBuilder`), a batch at a time. Reads
//! only, inside the caller's transaction; decides nothing about a cell.

use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};

use rusqlite::Transaction;

use super::names::Names;
use super::rows::{Decoder, COLUMNS};
use super::{sql, RecordError};
use crate::model::TaskKey;
use crate::store::{Cell, Store, StoreBuilder};

/// Rows handed to the builder at once.
const BATCH: usize = 4096;

/// Every cell of the `cells` table, in a store.
pub(super) fn store(
    tx: &Transaction<'_>,
    names: &Names,
    path: &Path,
) -> Result<Store, RecordError> {
    std::thread::scope(|scope| {
        let (batches, received) = sync_channel::<Vec<(TaskKey, Cell)>>(4);
        let building = scope.spawn(move || {
            let mut store = StoreBuilder::new();
            for batch in received {
                for (key, cell) in &batch {
                    store.put(key, cell);
                }
            }
            store.finish()
        });
        let read = read(tx, names, path, &batches);
        // The builder ends once it has taken the last batch (at once after
        // an error).
        drop(batches);
        let store = building
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read.map(|()| store)
    })
}

/// Decodes every row and sends the cells on, a batch at a time.
fn read(
    tx: &Transaction<'_>,
    names: &Names,
    path: &Path,
    batches: &SyncSender<Vec<(TaskKey, Cell)>>,
) -> Result<(), RecordError> {
    let mut stmt = tx
        .prepare(&format!("SELECT {COLUMNS} FROM cells"))
        .map_err(sql(path, "reading cells"))?;
    let mut rows = stmt.query([]).map_err(sql(path, "reading cells"))?;
    let decoder = Decoder::new(path, "cells");
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(row) = rows.next().map_err(sql(path, "reading cells"))? {
        batch.push(decoder.decode(row, names)?);
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            if batches.send(full).is_err() {
                // The builder is gone (it panicked); joining it says so.
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = batches.send(batch);
    }
    Ok(())
}
