//! The snapshot file format: what `pricegrid fetch` writes and what the
//! daemon logs, and how a file is written (atomically) and read back.
//!
//! A snapshot is plain JSON. Version 2 (written): `prices` maps exchange ->
//! `YYYY-MM-DD` -> symbol -> a cell `{state, open, high, low, close, volume,
//! flags, fetched_at, round, source, reason, attempts}` (see `store::json`),
//! and `sources` names the sources that cells' `source` numbers index.
//! Version 1 (still read): `prices` values are bare prices or `null`, failed
//! tasks are listed under `failed`, and answers count as final except those
//! about days not yet closed when the file was written. This module owns
//! files only; it never talks to actors.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::Counts;
use crate::model::Outcome;
use crate::store::json::{PricesJson, PricesSeed};
pub use crate::store::FailedTask;
use crate::store::{Observation, Stamp, Store};

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

/// The file name of a snapshot taken at `t`: `2026-11-24T10-15-00Z.json`
/// (sorts by time; no `:` so it is a valid name everywhere).
pub fn file_name(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H-%M-%SZ.json").to_string()
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

/// A snapshot file in a snapshot directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotFile {
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

/// A snapshot's header: everything but the prices.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    pub format: u32,
    pub created: DateTime<Utc>,
    pub config_version: u64,
    pub round: u64,
    pub counts: Counts,
}

/// Reads only the header of a snapshot file (the fields written before
/// `prices`), without reading the prices.
pub fn read_header(path: &Path) -> Result<Header, SnapshotError> {
    use serde::de::{Error as _, IgnoredAny, MapAccess, Visitor};
    use std::cell::RefCell;

    const DONE: &str = "pricegrid: header complete";
    #[derive(Default)]
    struct Partial {
        format: Option<u32>,
        created: Option<DateTime<Utc>>,
        config_version: Option<u64>,
        round: Option<u64>,
        counts: Option<CountsIn>,
    }
    struct V<'a>(&'a RefCell<Partial>);
    impl<'de> Visitor<'de> for V<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a snapshot object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<String>()? {
                let mut h = self.0.borrow_mut();
                match key.as_str() {
                    "format" => h.format = Some(map.next_value()?),
                    "created" => h.created = Some(map.next_value()?),
                    "config_version" => h.config_version = Some(map.next_value()?),
                    "round" => h.round = Some(map.next_value()?),
                    "counts" => h.counts = Some(map.next_value()?),
                    "prices" | "failed" | "sources" => return Err(A::Error::custom(DONE)),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }
    let file = File::open(path).map_err(|source| SnapshotError::Read {
        path: path.to_owned(),
        source,
    })?;
    let partial = RefCell::new(Partial::default());
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(file));
    if let Err(e) = serde::Deserializer::deserialize_map(&mut de, V(&partial)) {
        if !e.to_string().starts_with(DONE) {
            return Err(SnapshotError::Parse {
                path: path.to_owned(),
                source: e,
            });
        }
    }
    let p = partial.into_inner();
    let missing = |field: &str| SnapshotError::Parse {
        path: path.to_owned(),
        source: serde_json::Error::custom(format!("missing field `{field}` before `prices`")),
    };
    let format = p.format.ok_or_else(|| missing("format"))?;
    if !readable(format) {
        return Err(SnapshotError::Version {
            path: path.to_owned(),
            found: format,
        });
    }
    Ok(Header {
        format,
        created: p.created.ok_or_else(|| missing("created"))?,
        config_version: p.config_version.unwrap_or(0),
        round: p.round.ok_or_else(|| missing("round"))?,
        counts: p.counts.ok_or_else(|| missing("counts"))?.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Exchange, Ohlcv, Symbol, TaskKey};
    use chrono::NaiveDate;

    fn sample() -> Snapshot {
        let mut prices = Store::new();
        let day = NaiveDate::from_ymd_opt(2020, 3, 13).unwrap();
        let key = |s: &str| TaskKey {
            exchange: Exchange::new("kraken").unwrap(),
            symbol: Symbol::new(s).unwrap(),
            day,
        };
        let eth = Ohlcv::new(195.24, 195.24, 102.0, 107.97, 7901.27262233).unwrap();
        let failed = Outcome::Failed {
            reason: "server error (503)".into(),
            attempts: 3,
        };
        for (i, (s, outcome)) in [
            ("eth", Outcome::price(eth)),
            ("btc", Outcome::NoPrice),
            ("ltc", failed),
        ]
        .into_iter()
        .enumerate()
        {
            let obs = Observation {
                outcome,
                is_final: true,
                asked_at: "2020-03-14T03:00:00Z".parse().unwrap(),
                source: std::sync::Arc::from("http://127.0.0.1:9/"),
                stamp: Stamp {
                    round: 1,
                    dispatch: i as u64 + 1,
                },
            };
            prices.apply(&key(s), &obs);
        }
        let counts = Counts {
            tasks: 3,
            finals: 1,
            none: 1,
            failed: 1,
            ..Counts::default()
        };
        Snapshot::new(2, 1, counts, prices)
    }

    /// The same content, whatever rounds stamped it.
    fn same(a: &Snapshot, b: &Snapshot) -> bool {
        let entries = |s: &Snapshot| -> Vec<_> {
            s.prices
                .iter()
                .map(|(e, sym, d, o)| (e.clone(), sym.clone(), d, o))
                .collect()
        };
        (a.format, a.created, a.config_version, a.round, a.counts)
            == (b.format, b.created, b.config_version, b.round, b.counts)
            && entries(a) == entries(b)
    }

    #[test]
    fn the_json_shape_is_exchange_day_symbol() {
        let mut out = Vec::new();
        sample().write_to(&mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let day = &v["prices"]["kraken"]["2020-03-13"];
        assert_eq!(day["eth"]["close"], 107.97);
        assert_eq!(day["eth"]["state"], "final");
        assert_eq!(day["eth"]["fetched_at"], "2020-03-14T03:00:00Z");
        assert_eq!(
            v["sources"][day["eth"]["source"].as_u64().unwrap() as usize],
            "http://127.0.0.1:9/"
        );
        assert_eq!(day["btc"]["state"], "none");
        assert!(day["btc"].get("close").is_none());
        assert_eq!(day["ltc"]["state"], "failed");
        assert_eq!(day["ltc"]["reason"], "server error (503)");
        assert_eq!(v["counts"]["final"], 1);
        assert_eq!(v["format"], FORMAT_VERSION);
        assert_eq!(v["config_version"], 2);
    }

    #[test]
    fn atomic_write_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("s.json");
        let snap = sample();
        let bytes = snap.write_atomic(&path).unwrap();
        assert_eq!(bytes, fs::metadata(&path).unwrap().len());
        let back = Snapshot::load(&path).unwrap();
        assert!(same(&back, &snap), "{back:?}");
        assert_eq!(back.failed()[0].reason, "server error (503)");
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the snapshot remains");
    }

    #[test]
    fn listing_pruning_and_finding_the_newest_loadable() {
        let dir = tempfile::tempdir().unwrap();
        let snap = sample();
        for minute in 0..5 {
            let name = format!("2026-11-24T10-{minute:02}-00Z.json");
            snap.write_atomic(&dir.path().join(name)).unwrap();
        }
        fs::write(dir.path().join("notes.txt"), "not a snapshot").unwrap();
        fs::write(dir.path().join(".2026-11-24T09-00-00Z.json.tmp-1"), "{").unwrap();
        let files = list(dir.path()).unwrap();
        assert_eq!(files.len(), 5);
        assert!(files.windows(2).all(|w| w[0].time < w[1].time));

        // The newest is truncated: it is skipped, the one before loads.
        let newest = &files[4].path;
        let text = fs::read(newest).unwrap();
        fs::write(newest, &text[..text.len() / 3]).unwrap();
        let Newest { found, skipped } = load_newest(dir.path()).unwrap();
        let (file, loaded) = found.expect("an older snapshot loads");
        assert_eq!(file.path, files[3].path);
        assert!(same(&loaded, &snap));
        assert_eq!(skipped.len(), 1);
        assert!(
            skipped[0].to_string().contains("10-04-00Z.json"),
            "{}",
            skipped[0]
        );

        let t = parse_file_name("2026-11-24T10-02-30Z.json").unwrap();
        assert_eq!(
            at_or_before(dir.path(), t).unwrap().unwrap().path,
            files[2].path
        );

        let removed = prune(dir.path(), 2).unwrap();
        assert_eq!(
            removed.len(),
            4,
            "3 old snapshots and the stale temp file: {removed:?}"
        );
        assert_eq!(list(dir.path()).unwrap().len(), 2);
        assert!(
            dir.path().join("notes.txt").exists(),
            "other files are left alone"
        );
    }

    #[test]
    fn the_header_is_read_without_the_prices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let snap = sample();
        snap.write_atomic(&path).unwrap();
        // Cut the file inside `prices`: the header still reads.
        let text = fs::read_to_string(&path).unwrap();
        let cut = text.find("\"prices\":{").unwrap() + 20;
        fs::write(&path, &text[..cut]).unwrap();
        let h = read_header(&path).unwrap_or_else(|e| panic!("{e}: {}", &text[..cut]));
        assert_eq!((h.round, h.config_version, h.counts), (1, 2, snap.counts));
        fs::write(&path, "{\"format\": 1, \"round\": 1").unwrap();
        assert!(read_header(&path).is_err());
    }

    #[test]
    fn a_version_1_file_loads_with_closed_days_final_and_open_days_provisional() {
        let v1 = br#"{"format": 1, "created": "2020-03-14T12:00:00Z", "config_version": 0, "round": 4,
            "counts": {"tasks": 4, "prices": 2, "missing": 1, "failed": 1},
            "prices": {"kraken": {
                "2020-03-13": {"btc": {"open": 1, "high": 2, "low": 1, "close": 2, "volume": 5}, "eth": null},
                "2020-03-14": {"btc": {"open": 1, "high": 2, "low": 1, "close": 1.5, "volume": 2}}}},
            "failed": [{"exchange": "kraken", "symbol": "ltc", "day": "2020-03-13", "reason": "timed out", "attempts": 3}]}"#;
        let snap = Snapshot::from_slice(v1).unwrap();
        let state = |s: &str, d: u32| {
            let day = NaiveDate::from_ymd_opt(2020, 3, d).unwrap();
            let cell = snap.prices.get(
                &Exchange::new("kraken").unwrap(),
                &Symbol::new(s).unwrap(),
                day,
            );
            cell.map(|c| c.state)
        };
        use crate::model::CellState;
        assert_eq!(state("btc", 13), Some(CellState::Final));
        assert_eq!(state("eth", 13), Some(CellState::NoPrice));
        assert_eq!(state("btc", 14), Some(CellState::Provisional));
        assert_eq!(state("ltc", 13), Some(CellState::Failed));
        assert_eq!(snap.counts.finals, 2);
        assert_eq!(snap.counts.none, 1);
        assert_eq!(snap.failed()[0].reason, "timed out");
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
        let err = Snapshot::load(&path).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Version { found: 99, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("s.json"));
    }
}
