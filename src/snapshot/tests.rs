//! The file format round-trips, a directory is listed and pruned by name,
//! and a broken or foreign file is an error naming it.

use std::fs;

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
fn listing_and_pruning_leave_other_files_alone() {
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
