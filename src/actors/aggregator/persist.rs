//! What the Aggregator keeps beyond memory: the cells that changed since
//! the last flush (written to the record by the `Recorder`), and JSON
//! exports of the whole aggregate every `snapshot.every`.
//!
//! Exports are named by round (`round-000042.json`), so their order never
//! depends on the wall clock, and retention removes only files this process
//! exported, never the newest. The writes themselves happen off the
//! Aggregator's thread: the record on the Recorder's, an export on a
//! blocking task.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::model::TaskKey;
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
