//! What the Aggregator keeps beyond memory: the cells that changed since
//! the last flush (written to the record by the `Recorder`), and JSON
//! exports of the whole aggregate every `snapshot.every`.
//!
//! The Aggregator's side of it is here too: `flush` (the changed cells to
//! the Recorder, kept for the next flush if the write fails), the daily
//! history compaction, the export when `snapshot.every` says so, and the
//! `Flush` message the daemon sends last.
//!
//! Exports are named by round (`round-000042.json`), so their order never
//! depends on the wall clock, and retention removes only files this process
//! exported, never the newest. The writes themselves happen off the
//! Aggregator's thread: the record on the Recorder's, an export on a
//! blocking task.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;

use super::Aggregator;
use crate::actors::recorder::{Barrier, Compact, Persist, Recorder, LARGE_WRITE};
use crate::config::Config;
use crate::model::TaskKey;
use crate::record::RecordError;
use crate::snapshot::{Snapshot, SnapshotError};

/// Cells changed since the last flush, and how often to flush.
#[derive(Debug, Default)]
pub(super) struct Dirty {
    pub keys: HashSet<TaskKey>,
    pub flush_every: Duration,
    pub keep_for: Duration,
    /// When the record's history was last compacted.
    pub compacted: Option<Instant>,
}

impl Dirty {
    /// The changed keys, leaving none, and no room for them either: a
    /// backfill's flush holds ~600,000 keys at 20M cells, and a set
    /// drained in place would keep their 40 MB (2 B a cell) for as long as
    /// the daemon runs.
    pub fn take(&mut self) -> Vec<TaskKey> {
        std::mem::take(&mut self.keys).into_iter().collect()
    }

    /// Whether a compaction is due (once a day at most).
    pub fn compaction_due(&self) -> bool {
        self.compacted
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(24 * 3600))
    }
}

/// A snapshot file exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Written {
    pub path: PathBuf,
    pub prices: usize,
    pub bytes: u64,
    pub millis: u128,
}

/// Where and how often the aggregate is exported as JSON.
#[derive(Debug, Clone, Default)]
pub(super) struct Exports {
    pub dir: PathBuf,
    pub every: Option<Duration>,
    pub keep: usize,
    pub last: Option<Instant>,
    /// Files this process exported, oldest first.
    pub written: Vec<PathBuf>,
}

impl Exports {
    pub fn configure(&mut self, config: &Config) {
        self.dir = config.snapshot.dir.clone();
        self.every = config.snapshot.every;
        self.keep = config.snapshot.keep.max(1);
    }

    /// Whether an export is due at a round's end.
    pub fn due(&self) -> bool {
        self.every
            .is_some_and(|every| self.last.is_none_or(|t| t.elapsed() >= every))
    }

    /// The file round `round` is exported to.
    pub fn path(&self, round: u64) -> PathBuf {
        self.dir.join(export_name(round))
    }
}

/// `round-000042.json`.
pub fn export_name(round: u64) -> String {
    format!("round-{round:06}.json")
}

/// Writes `snap` to `path` atomically, then removes the oldest of
/// `written` (files this process exported) beyond `keep`, never `path`.
/// Returns the write and what it removed.
pub(super) fn export(
    snap: &Snapshot,
    path: &Path,
    written: &[PathBuf],
    keep: usize,
) -> Result<(Written, Vec<PathBuf>), SnapshotError> {
    let started = Instant::now();
    let bytes = snap.write_atomic(path)?;
    let millis = started.elapsed().as_millis();
    let mut kept: Vec<&PathBuf> = written.iter().filter(|p| p.as_path() != path).collect();
    let excess = (kept.len() + 1).saturating_sub(keep);
    let mut removed = Vec::new();
    for old in kept.drain(..excess) {
        match std::fs::remove_file(old) {
            Ok(()) => removed.push(old.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed.push(old.clone()),
            Err(e) => log::warn!("snapshot retention: cannot remove {}: {e}", old.display()),
        }
    }
    Ok((
        Written {
            path: path.to_owned(),
            prices: snap.price_count(),
            bytes,
            millis,
        },
        removed,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Counts;
    use crate::store::Store;

    /// A flush takes the changed keys and the room they took: after a
    /// backfill's flush the set holds no memory of its size.
    #[test]
    fn a_flush_of_many_changed_keys_keeps_no_room_for_them() {
        let mut dirty = Dirty::default();
        let day = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        let exchange = crate::model::Exchange::new("kraken").unwrap();
        for n in 0..10_000u64 {
            dirty.keys.insert(TaskKey {
                exchange: exchange.clone(),
                symbol: crate::model::Symbol::new(&format!("s{}", n % 100)).unwrap(),
                day: day + chrono::Days::new(n / 100),
            });
        }
        assert_eq!(dirty.take().len(), 10_000);
        assert!(dirty.keys.is_empty());
        assert_eq!(
            dirty.keys.capacity(),
            0,
            "the room of 10,000 keys is given back"
        );
    }

    #[test]
    fn retention_removes_only_what_this_process_exported_never_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("round-999999.json");
        std::fs::write(&foreign, "not ours").unwrap();
        let snap = Snapshot::new(0, 1, Counts::default(), Store::new());
        let mut written = Vec::new();
        for round in 1..=4 {
            let path = dir.path().join(export_name(round));
            let (w, removed) = export(&snap, &path, &written, 2).unwrap();
            written.retain(|p| !removed.contains(p));
            written.push(w.path);
        }
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "round-000003.json",
                "round-000004.json",
                "round-999999.json"
            ],
            "the two newest exports and the file it did not write"
        );
        // keep = 1 still keeps the one just written.
        let path = dir.path().join(export_name(5));
        let (_, removed) = export(&snap, &path, &written, 1).unwrap();
        assert_eq!(removed.len(), 2);
        assert!(path.exists() && foreign.exists());
    }
}

impl Aggregator {
    /// Sends the cells changed since the last flush to the record (as
    /// changed in the running round, or the last one); if the write fails
    /// they stay marked, for the next flush.
    pub(super) fn flush(&mut self, ctx: &mut Context<Self>) {
        self.judge_pending(ctx);
        let Some(recorder) = self.recorder.clone() else {
            return;
        };
        if self.dirty.keys.is_empty() {
            return;
        }
        let round = self
            .round
            .as_ref()
            .map(|t| t.round)
            .or(self.last.map(|s| s.round))
            .unwrap_or(0);
        let keys = self.dirty.take();
        let live = self.live.read();
        let cells: Vec<(TaskKey, crate::store::Cell)> = keys
            .iter()
            .filter_map(|k| Some((k.clone(), live.store.get(&k.exchange, &k.symbol, k.day)?)))
            .collect();
        drop(live);
        let write = recorder.send(Persist { round, cells });
        ctx.spawn(write.into_actor(self).map(move |reply, act, _| {
            let error = match reply {
                Ok(Ok(stats)) => {
                    log::debug!("record: {} cells of round {round} written", stats.cells);
                    if act.round.is_none() && stats.cells >= LARGE_WRITE {
                        // A large round's writes are done: what they held
                        // goes back to the system.
                        crate::heap::give_back();
                    }
                    return;
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("the recorder is not running: {e}"),
            };
            log::error!(
                "{error}; the {} changed cells stay in memory and are written at the next flush",
                keys.len()
            );
            act.metrics.record_errors.inc();
            act.dirty.keys.extend(keys);
        }));
    }

    /// Tells the record; `written` runs once it is written, and what went
    /// wrong is logged if it did not.
    pub(super) fn tell<M>(&self, ctx: &mut Context<Self>, msg: M, written: impl FnOnce() + 'static)
    where
        M: Message<Result = Result<(), crate::record::RecordError>> + Send + 'static,
        Recorder: Handler<M>,
    {
        let Some(recorder) = &self.recorder else {
            return;
        };
        let metrics = self.metrics.clone();
        ctx.spawn(
            recorder
                .send(msg)
                .into_actor(self)
                .map(move |reply, _, _| match reply {
                    Ok(Ok(())) => written(),
                    Ok(Err(e)) => {
                        metrics.record_errors.inc();
                        log::error!("{e}");
                    }
                    Err(e) => log::error!("the recorder is not running: {e}"),
                }),
        );
    }

    /// Compacts the record's history older than `store.keep_for`, at most
    /// once a day.
    pub(super) fn compact_if_due(&mut self, ctx: &mut Context<Self>) {
        let Some(recorder) = &self.recorder else {
            return;
        };
        if !self.dirty.compaction_due() {
            return;
        }
        self.dirty.compacted = Some(Instant::now());
        let compact = recorder.send(Compact {
            keep_for: self.dirty.keep_for,
            now: self.clock.now(),
        });
        ctx.spawn(compact.into_actor(self).map(|reply, _, _| match reply {
            Ok(Ok(c)) if c.history_rows > 0 => log::info!(
                "record: history before round {} compacted ({} rows, {} rounds)",
                c.cutoff_round.unwrap_or(0),
                c.history_rows,
                c.rounds
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => log::error!("{e}"),
            Err(e) => log::error!("the recorder is not running: {e}"),
        }));
    }

    /// Exports the aggregate as JSON if `snapshot.every` says it is time.
    pub(super) fn export_if_due(&mut self, ctx: &mut Context<Self>) {
        if !self.exports.due() {
            return;
        }
        // Taken here, not in the task, so a `Flush` that comes next waits
        // for this export; a previous export still running skips this one.
        let Ok(guard) = self.export_lock.clone().try_lock_owned() else {
            log::debug!("an export is still being written; this round's is skipped");
            return;
        };
        self.exports.last = Some(Instant::now());
        let snap = self.snapshot();
        let path = self.exports.path(snap.round);
        let written = self.exports.written.clone();
        let keep = self.exports.keep;
        let work = actix_rt::task::spawn_blocking(move || {
            let result = export(&snap, &path, &written, keep);
            drop(guard);
            result
        });
        ctx.spawn(work.into_actor(self).map(|result, act, _| match result {
            Ok(Ok((w, removed))) => {
                act.metrics.snapshot_writes.inc();
                log::info!(
                    "snapshot {}: {} prices, {} bytes, {} ms",
                    w.path.display(),
                    w.prices,
                    w.bytes,
                    w.millis
                );
                act.exports
                    .written
                    .retain(|p| !removed.contains(p) && *p != w.path);
                act.exports.written.push(w.path);
            }
            Ok(Err(e)) => log::error!("{e}"),
            Err(e) => log::error!("the snapshot export stopped: {e}"),
        }));
    }
}

/// Writes what is not in the record yet; answered once the Recorder has
/// written everything sent before (the daemon's last step). `None` when
/// there is no record (`fetch`).
#[derive(Message, Debug)]
#[rtype(result = "Option<Result<(), RecordError>>")]
pub struct Flush;

impl Handler<Flush> for Aggregator {
    type Result = ResponseFuture<Option<Result<(), RecordError>>>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        self.flush(ctx);
        let Some(recorder) = self.recorder.clone() else {
            return Box::pin(async { None });
        };
        // The Recorder handles its mailbox in order: when this is answered,
        // every write sent before it is done; an export under way is waited
        // for too.
        let exporting = self.export_lock.clone();
        Box::pin(async move {
            let written = match recorder.send(Barrier).await {
                Ok(r) => r,
                Err(e) => Err(RecordError::Stopped(e.to_string())),
            };
            let _ = exporting.lock().await;
            Some(written)
        })
    }
}
