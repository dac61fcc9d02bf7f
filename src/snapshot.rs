//! The snapshot file format: what `pricegrid fetch` writes and what the
//! daemon logs, and how a file is written (atomically) and read back.
//!
//! A snapshot is plain JSON: `prices` maps exchange -> `YYYY-MM-DD` -> symbol
//! -> `{open, high, low, close, volume}` or `null` where the source has no
//! price; tasks that failed are listed under `failed` with their reason.
//! This module owns files only; it never talks to actors.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::actors::aggregator::Counts;
use crate::model::{Exchange, Ohlcv, Symbol};

/// Version of the file format, bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// exchange -> day -> symbol -> price (`None`: the source has none).
pub type Prices = BTreeMap<Exchange, BTreeMap<NaiveDate, BTreeMap<Symbol, Option<Ohlcv>>>>;

/// A task that ended without an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedTask {
    pub exchange: Exchange,
    pub symbol: Symbol,
    pub day: NaiveDate,
    pub reason: String,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format: u32,
    pub created: DateTime<Utc>,
    pub round: u64,
    pub counts: Counts,
    pub prices: Prices,
    pub failed: Vec<FailedTask>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: cannot write the snapshot: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot read the snapshot: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid snapshot: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: snapshot format {found} is not supported (expected {FORMAT_VERSION})")]
    Version { path: PathBuf, found: u32 },
}

/// The file name of a snapshot taken at `t`: `2026-11-24T10-15-00Z.json`
/// (sorts by time; no `:` so it is a valid name everywhere).
pub fn file_name(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H-%M-%SZ.json").to_string()
}

impl Snapshot {
    pub fn new(round: u64, counts: Counts, prices: Prices, failed: Vec<FailedTask>) -> Self {
        Self {
            format: FORMAT_VERSION,
            created: Utc::now(),
            round,
            counts,
            prices,
            failed,
        }
    }

    /// Number of keys with a price.
    pub fn price_count(&self) -> usize {
        self.prices
            .values()
            .flat_map(BTreeMap::values)
            .flat_map(BTreeMap::values)
            .filter(|p| p.is_some())
            .count()
    }

    /// Writes JSON to `out`.
    pub fn write_to(&self, out: impl Write) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }

    /// Writes the snapshot to `path` atomically and durably: a temporary file
    /// in the same directory, fsync, rename over `path`, fsync the directory.
    /// A reader (or a crash) sees the old file or the new one, never half.
    /// Returns the file's size in bytes.
    pub fn write_atomic(&self, path: &Path) -> Result<u64, SnapshotError> {
        let err = |source| SnapshotError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(err)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "snapshot.json".into());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let result = (|| {
            let file = File::create(&tmp)?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            self.write_to(&mut w).map_err(std::io::Error::other)?;
            w.flush()?;
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            let bytes = file.metadata()?.len();
            fs::rename(&tmp, path)?;
            File::open(&dir)?.sync_all()?;
            Ok(bytes)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map_err(err)
    }

    /// Reads and checks a snapshot file.
    pub fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
        let bytes = fs::read(path).map_err(|source| SnapshotError::Read {
            path: path.to_owned(),
            source,
        })?;
        #[derive(Deserialize)]
        struct Head {
            format: u32,
        }
        let head: Head = serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Parse {
            path: path.to_owned(),
            source,
        })?;
        if head.format != FORMAT_VERSION {
            return Err(SnapshotError::Version {
                path: path.to_owned(),
                found: head.format,
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| SnapshotError::Parse {
            path: path.to_owned(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut prices = Prices::new();
        let day = NaiveDate::from_ymd_opt(2020, 3, 13).unwrap();
        let kraken = prices.entry(Exchange::new("kraken").unwrap()).or_default();
        let d = kraken.entry(day).or_default();
        d.insert(
            Symbol::new("eth").unwrap(),
            Some(Ohlcv::new(195.24, 195.24, 102.0, 107.97, 7901.27262233).unwrap()),
        );
        d.insert(Symbol::new("btc").unwrap(), None);
        let failed = vec![FailedTask {
            exchange: Exchange::new("kraken").unwrap(),
            symbol: Symbol::new("ltc").unwrap(),
            day,
            reason: "server error (503)".into(),
            attempts: 3,
        }];
        Snapshot::new(1, Counts::default(), prices, failed)
    }

    #[test]
    fn the_json_shape_is_exchange_day_symbol() {
        let mut out = Vec::new();
        sample().write_to(&mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["prices"]["kraken"]["2020-03-13"]["eth"]["close"], 107.97);
        assert!(v["prices"]["kraken"]["2020-03-13"]["btc"].is_null());
        assert_eq!(v["failed"][0]["reason"], "server error (503)");
        assert_eq!(v["format"], FORMAT_VERSION);
    }

    #[test]
    fn atomic_write_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("s.json");
        let snap = sample();
        let bytes = snap.write_atomic(&path).unwrap();
        assert_eq!(bytes, fs::metadata(&path).unwrap().len());
        assert_eq!(Snapshot::load(&path).unwrap(), snap);
        assert_eq!(snap.price_count(), 1);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the snapshot remains");
    }

    #[test]
    fn a_truncated_or_foreign_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let mut out = Vec::new();
        sample().write_to(&mut out).unwrap();
        fs::write(&path, &out[..out.len() / 2]).unwrap();
        let err = Snapshot::load(&path).unwrap_err();
        assert!(matches!(err, SnapshotError::Parse { .. }), "{err}");
        assert!(err.to_string().contains("s.json"));
        fs::write(&path, br#"{"format": 99}"#).unwrap();
        assert!(matches!(
            Snapshot::load(&path),
            Err(SnapshotError::Version { found: 99, .. })
        ));
    }
}
