//! A snapshot directory: which files in it are snapshots (by name), the
//! newest one or the one in force at a time, pruning old ones, and the list
//! with each file's header that `pricegrid snapshots` and `/v1/snapshots`
//! show. Reads directory entries and headers; writes nothing but removals.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};

use super::{read_header, Header, Snapshot, SnapshotError};

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
    let own = format!(".tmp-{}", std::process::id());
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".json.tmp-") && !name.ends_with(&own) {
            fs::remove_file(entry.path())?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// What `load_newest` found.
#[derive(Debug)]
pub struct Newest {
    /// The newest snapshot that loads, if any.
    pub found: Option<(SnapshotFile, Snapshot)>,
    /// The newer ones that did not, newest first, with why.
    pub skipped: Vec<SnapshotError>,
}

/// The newest snapshot in `dir` that loads.
pub fn load_newest(dir: &Path) -> std::io::Result<Newest> {
    let mut skipped = Vec::new();
    for file in list(dir)?.into_iter().rev() {
        match Snapshot::load(&file.path) {
            Ok(snap) => {
                return Ok(Newest {
                    found: Some((file, snap)),
                    skipped,
                })
            }
            Err(e) => skipped.push(e),
        }
    }
    Ok(Newest {
        found: None,
        skipped,
    })
}

/// The newest snapshot file taken at or before `t`.
pub fn at_or_before(dir: &Path, t: DateTime<Utc>) -> std::io::Result<Option<SnapshotFile>> {
    Ok(list(dir)?.into_iter().rev().find(|f| f.time <= t))
}

/// Why `find` has no snapshot to offer.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error("cannot read the snapshot directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no snapshot in {} at or before {at}", dir.display())]
    NoneBefore { dir: PathBuf, at: DateTime<Utc> },
    #[error("no snapshot in {} (the daemon writes them to snapshot.dir)", dir.display())]
    Empty { dir: PathBuf },
}

/// The snapshot to read from `dir`: the newest one, or with `at` the
/// newest taken at or before it.
pub fn find(dir: &Path, at: Option<DateTime<Utc>>) -> Result<SnapshotFile, FindError> {
    let found = match at {
        Some(t) => at_or_before(dir, t),
        None => list(dir).map(|files| files.into_iter().last()),
    }
    .map_err(|source| FindError::Dir {
        dir: dir.to_owned(),
        source,
    })?;
    found.ok_or_else(|| match at {
        Some(at) => FindError::NoneBefore {
            dir: dir.to_owned(),
            at,
        },
        None => FindError::Empty {
            dir: dir.to_owned(),
        },
    })
}

/// One line of the snapshot list: the file and, if it reads, its header.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub file: SnapshotFile,
    pub header: Option<Header>,
    pub error: Option<String>,
}

/// The snapshots in `dir`, newest first, with their headers.
pub fn listing(dir: &Path) -> std::io::Result<Vec<Listed>> {
    Ok(list(dir)?
        .into_iter()
        .rev()
        .map(|file| match read_header(&file.path) {
            Ok(h) => Listed {
                file,
                header: Some(h),
                error: None,
            },
            Err(e) => Listed {
                file,
                header: None,
                error: Some(e.to_string()),
            },
        })
        .collect())
}

/// A path as JSON text, with any bytes that are not UTF-8 replaced: a list
/// of files should show an oddly named directory, not fail on it.
fn lossy_path<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}
