//! A directory of timestamped JSON snapshots, as older versions of the
//! daemon wrote them: which files in it are snapshots (by name) and pruning
//! old ones. The record's one-time import (`record::import`) reads it.
//! Reads directory entries; writes nothing but removals.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

/// The file name of a snapshot taken at `t`: `2026-11-24T10-15-00Z.json`
/// (sorts by time; no `:` so it is a valid name everywhere).
pub fn file_name(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H-%M-%SZ.json").to_string()
}

/// A snapshot file in a snapshot directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotFile {
    #[serde(serialize_with = "lossy_path")]
    pub path: PathBuf,
    /// When it was taken, from its name.
    pub time: DateTime<Utc>,
    pub bytes: u64,
}

/// The time a snapshot file name stands for, if it is one.
pub fn parse_file_name(name: &str) -> Option<DateTime<Utc>> {
    let stem = name.strip_suffix(".json")?;
    chrono::NaiveDateTime::parse_from_str(stem, "%Y-%m-%dT%H-%M-%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// The snapshot files in `dir`, oldest first. A missing directory has none.
pub fn list(dir: &Path) -> std::io::Result<Vec<SnapshotFile>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(time) = name.to_str().and_then(parse_file_name) else {
            continue;
        };
        let meta = entry.metadata()?;
        if meta.is_file() {
            out.push(SnapshotFile {
                path: entry.path(),
                time,
                bytes: meta.len(),
            });
        }
    }
    out.sort_by_key(|f| f.time);
    Ok(out)
}

/// Keeps the newest `keep` snapshots in `dir` and removes the rest, and any
/// temporary file a crashed writer left behind. Returns what it removed.
pub fn prune(dir: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let files = list(dir)?;
    let excess = files.len().saturating_sub(keep);
    for f in files.into_iter().take(excess) {
        fs::remove_file(&f.path)?;
        removed.push(f.path);
    }
    let own = crate::atomic::own_marker();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".json.tmp-") && !name.contains(&own) {
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// A path as JSON text, with any bytes that are not UTF-8 replaced: a list
/// of files should show an oddly named directory, not fail on it.
fn lossy_path<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}
