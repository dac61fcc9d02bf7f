//! The one-time move from a directory of JSON snapshots (formats 1 and 2)
//! to the record: the newest snapshot that loads becomes the `cells` table,
//! and every snapshot that loads becomes a round (its own round number) in
//! `rounds`, with the cells it changed since the one before in `history`.
//! It reads the snapshot files and never changes or deletes them; a file
//! that does not load is skipped with a warning.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::rows::Encoded;
use super::schema::key;
use super::{put_round, sql, RecordError, RoundStatus, SqliteRecord, INSERT_CELL, INSERT_HISTORY};
use crate::model::TaskKey;
use crate::snapshot::{self, Snapshot, SnapshotError};
use crate::store::Store;

/// What `import_snapshots` brought in.
#[derive(Debug)]
pub struct Imported {
    /// The snapshot directory.
    pub dir: PathBuf,
    /// Each snapshot imported and the round it became, oldest first; the
    /// last one's cells are the `cells` table.
    pub snapshots: Vec<(PathBuf, u64)>,
    /// Rows of `cells` written.
    pub cells: usize,
    /// Rows of `history` written.
    pub history_rows: usize,
    /// Snapshots that did not load, oldest first (each also logged).
    pub skipped: Vec<SnapshotError>,
}

impl SqliteRecord {
    /// Imports the JSON snapshots of `dir`, once: only into a record with
    /// no cell and no round, and only if no import was recorded before
    /// (`meta.imported_from`). Returns `None` when there was nothing to do
    /// (already imported, the record is in use, or `dir` holds no
    /// snapshot). Each snapshot that loads, oldest first, becomes a round
    /// with the snapshot's round number, time (as started and finished),
    /// config version and counts (`aborted` if its counts are short of its
    /// tasks), and each cell it changed since the one before goes into
    /// `history` at the round that recorded it (the cell's own round when
    /// that lies after the previous snapshot's, else the snapshot's). The
    /// newest that loads becomes `cells`. All of it is one transaction: a
    /// crash leaves the record empty, to import again. If `dir` holds
    /// snapshots and none loads, that is an error rather than a fresh start.
    pub fn import_snapshots(&mut self, dir: &Path) -> Result<Option<Imported>, RecordError> {
        let imported = self.import(dir);
        if imported.is_err() {
            self.forget_names();
        }
        imported
    }

    fn import(&mut self, dir: &Path) -> Result<Option<Imported>, RecordError> {
        if self.meta(key::IMPORTED_FROM)?.is_some() || !self.is_empty()? {
            return Ok(None);
        }
        let path = &self.path;
        let files = snapshot::list(dir).map_err(|source| RecordError::ImportDir {
            path: path.clone(),
            dir: dir.to_owned(),
            source,
        })?;
        if files.is_empty() {
            return Ok(None);
        }
        let doing = "importing snapshots";
        let mut names = self.names.borrow_mut();
        names.refresh(&self.conn, path)?;
        let tx = self.conn.transaction().map_err(sql(path, doing))?;
        let mut previous: Option<(u64, Store)> = None;
        let mut imported = Imported {
            dir: dir.to_owned(),
            snapshots: Vec::new(),
            cells: 0,
            history_rows: 0,
            skipped: Vec::new(),
        };
        for file in &files {
            let snap = match Snapshot::load(&file.path) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!(
                        "{}: skipped while importing into the record: {e}",
                        path.display()
                    );
                    imported.skipped.push(e);
                    continue;
                }
            };
            let c = snap.counts;
            let status = if c.done() < c.tasks {
                RoundStatus::Aborted
            } else {
                RoundStatus::Finished
            };
            put_round(
                &tx,
                snap.round,
                snap.created,
                snap.created,
                snap.config_version,
                status,
                &c,
            )
            .map_err(sql(path, doing))?;
            let after = previous.as_ref().map_or(0, |(round, _)| *round);
            {
                let mut history = tx
                    .prepare_cached(INSERT_HISTORY)
                    .map_err(sql(path, doing))?;
                for (exchange, symbol, day, cell) in snap.prices.iter() {
                    let before = previous
                        .as_ref()
                        .and_then(|(_, store)| store.get(exchange, symbol, day));
                    if before.as_ref() == Some(&cell) {
                        continue;
                    }
                    let round = if cell.round > after && cell.round <= snap.round {
                        cell.round
                    } else {
                        snap.round
                    };
                    let key = TaskKey {
                        exchange: exchange.clone(),
                        symbol: symbol.clone(),
                        day,
                    };
                    Encoded::new(&tx, &mut names, &key, &cell)
                        .and_then(|row| row.insert(&mut history, round, None))
                        .map_err(sql(path, doing))?;
                    imported.history_rows += 1;
                }
            }
            imported.snapshots.push((file.path.clone(), snap.round));
            previous = Some((snap.round, snap.prices));
        }
        let Some((_, newest)) = previous else {
            let files = files.len();
            return match imported.skipped.pop() {
                Some(source) => Err(RecordError::Import {
                    path: path.clone(),
                    dir: dir.to_owned(),
                    files,
                    source,
                }),
                None => Ok(None),
            };
        };
        {
            let mut cells = tx.prepare_cached(INSERT_CELL).map_err(sql(path, doing))?;
            for (exchange, symbol, day, cell) in newest.iter() {
                let key = TaskKey {
                    exchange: exchange.clone(),
                    symbol: symbol.clone(),
                    day,
                };
                Encoded::new(&tx, &mut names, &key, &cell)
                    .and_then(|row| row.insert(&mut cells, cell.round, Some(None)))
                    .map_err(sql(path, doing))?;
                imported.cells += 1;
            }
        }
        // Each cell's value is now in `cells` and, as its last change, in
        // `history`: kept once, in `cells`.
        super::migrate::fold_current(&tx).map_err(sql(path, doing))?;
        for (k, v) in [
            (key::IMPORTED_FROM, dir.to_string_lossy().into_owned()),
            (
                key::IMPORTED_AT,
                Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ),
        ] {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [k, v.as_str()],
            )
            .map_err(sql(path, doing))?;
        }
        tx.commit().map_err(sql(path, doing))?;
        log::info!(
            "{}: imported {} snapshot(s) from {} ({} cells, {} history rows, {} skipped)",
            path.display(),
            imported.snapshots.len(),
            dir.display(),
            imported.cells,
            imported.history_rows,
            imported.skipped.len()
        );
        Ok(Some(imported))
    }
}
