//! The snapshot file format: what `pricegrid fetch` writes and what the
//! daemon logs, and how a file is written (atomically) and read back.
//!
//! A snapshot is plain JSON. Version 2 (written): `prices` maps exchange ->
//! `YYYY-MM-DD` -> symbol -> a cell `{state, open, high, low, close, volume,
//! flags, fetched_at, round, source, reason, attempts}` (see `store::json`),
//! and `sources` names the sources that cells' `source` numbers index;
//! beside the round's `counts`, `stored` counts the whole aggregate's cells
//! by state (written for people and scripts; loading reads `prices`).
//! Version 1 (still read): `prices` values are bare prices or `null`, failed
//! tasks are listed under `failed`, and answers count as final except those
//! about days not yet closed when the file was written.
//!
//! This module owns the format of one file; finding files in a snapshot
//! directory is `dir`, reading a header without the prices is `header`.
//! It owns files only; it never talks to actors.

mod dir;
mod header;
#[cfg(test)]
mod tests;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{CellState, Counts, Outcome};
use crate::store::json::{PricesJson, PricesSeed};
pub use crate::store::FailedTask;
use crate::store::{Observation, Stamp, Store};

pub use dir::{file_name, list, parse_file_name, prune, SnapshotFile};
pub use header::{read_header, Header};

/// Version of the file format written, bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 2;

/// Formats that load.
fn readable(format: u32) -> bool {
    (1..=FORMAT_VERSION).contains(&format)
}

/// A round's counts as a snapshot of either version holds them.
#[derive(Deserialize)]
#[serde(untagged)]
enum CountsIn {
    V2(Counts),
    V1 {
        tasks: u64,
        prices: u64,
        missing: u64,
        failed: u64,
    },
}

impl From<CountsIn> for Counts {
    fn from(c: CountsIn) -> Counts {
        match c {
            CountsIn::V2(c) => c,
            CountsIn::V1 {
                tasks,
                prices,
                missing,
                failed,
            } => Counts {
                tasks,
                finals: prices,
                none: missing,
                failed,
                ..Counts::default()
            },
        }
    }
}

/// The aggregate at one moment, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub format: u32,
    pub created: DateTime<Utc>,
    /// Version of the config in force when it was taken (0: the first).
    pub config_version: u64,
    /// The round running or last finished when it was taken.
    pub round: u64,
    /// That round's counts.
    pub counts: Counts,
    /// Every answer and failure held.
    pub prices: Store,
}

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: u32,
    created: DateTime<Utc>,
    config_version: u64,
    round: u64,
    counts: Counts,
    /// The whole aggregate's cells by state, beside the round's `counts`
    /// (written, never read back: `prices` holds them).
    stored: std::collections::BTreeMap<CellState, usize>,
    sources: Vec<&'a str>,
    prices: PricesJson<'a>,
}

struct StoreIn(Store);

impl<'de> Deserialize<'de> for StoreIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::DeserializeSeed;
        let mut store = Store::new();
        PricesSeed(&mut store).deserialize(d)?;
        Ok(StoreIn(store))
    }
}

#[derive(Deserialize)]
struct SnapshotIn {
    format: u32,
    created: DateTime<Utc>,
    #[serde(default)]
    config_version: u64,
    round: u64,
    counts: CountsIn,
    #[serde(default)]
    sources: Vec<String>,
    prices: StoreIn,
    /// Version 1 only.
    #[serde(default)]
    failed: Vec<FailedTask>,
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        SnapshotOut {
            format: self.format,
            created: self.created,
            config_version: self.config_version,
            round: self.round,
            counts: self.counts,
            stored: self.prices.counts_by_state(),
            sources: self.prices.sources_json(),
            prices: self.prices.prices_json(),
        }
        .serialize(ser)
    }
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
    #[error(
        "{path}: snapshot format {found} is not supported (this build reads 1 to {FORMAT_VERSION})"
    )]
    Version { path: PathBuf, found: u32 },
}

impl SnapshotError {
    fn at(self, path: &Path) -> Self {
        let path = path.to_owned();
        match self {
            SnapshotError::Parse { source, .. } => SnapshotError::Parse { path, source },
            SnapshotError::Version { found, .. } => SnapshotError::Version { path, found },
            other => other,
        }
    }
}

impl Snapshot {
    pub fn new(config_version: u64, round: u64, counts: Counts, prices: Store) -> Self {
        Self {
            format: FORMAT_VERSION,
            created: Utc::now(),
            config_version,
            round,
            counts,
            prices,
        }
    }

    /// Number of keys with a price.
    pub fn price_count(&self) -> usize {
        self.prices.price_count()
    }

    /// The failed keys with their reasons.
    pub fn failed(&self) -> Vec<FailedTask> {
        self.prices.failed()
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
        crate::atomic::write_file(path, |out| {
            self.write_to(out).map_err(std::io::Error::other)
        })
        .map_err(|source| SnapshotError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads and checks a snapshot file.
    pub fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
        let bytes = fs::read(path).map_err(|source| SnapshotError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_slice(&bytes).map_err(|e| e.at(path))
    }

    /// Parses a snapshot from JSON bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let parsed: Result<SnapshotIn, _> = serde_json::from_slice(bytes);
        let raw = match parsed {
            Ok(raw) => raw,
            Err(source) => {
                // A file of another format version may not parse as this
                // one: say so rather than report its first odd field.
                #[derive(Deserialize)]
                struct Head {
                    format: u32,
                }
                if let Ok(head) = serde_json::from_slice::<Head>(bytes) {
                    if !readable(head.format) {
                        return Err(SnapshotError::Version {
                            path: PathBuf::new(),
                            found: head.format,
                        });
                    }
                }
                return Err(SnapshotError::Parse {
                    path: PathBuf::new(),
                    source,
                });
            }
        };
        if !readable(raw.format) {
            return Err(SnapshotError::Version {
                path: PathBuf::new(),
                found: raw.format,
            });
        }
        let mut prices = raw.prices.0;
        prices.set_loaded_sources(raw.sources);
        if raw.format == 1 {
            prices.demote_from(raw.created.date_naive());
            for (i, f) in raw.failed.into_iter().enumerate() {
                let key = crate::model::TaskKey {
                    exchange: f.exchange,
                    symbol: f.symbol,
                    day: f.day,
                };
                let failed = Observation {
                    outcome: Outcome::Failed {
                        reason: f.reason,
                        attempts: f.attempts,
                    },
                    is_final: false,
                    asked_at: raw.created,
                    source: std::sync::Arc::from(""),
                    stamp: Stamp {
                        round: 0,
                        dispatch: i as u64 + 1,
                    },
                };
                prices.apply(&key, &failed);
            }
        }
        Ok(Snapshot {
            format: FORMAT_VERSION,
            created: raw.created,
            config_version: raw.config_version,
            round: raw.round,
            counts: raw.counts.into(),
            prices,
        })
    }
}
