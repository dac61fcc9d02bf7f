//! `pricegrid fetch` and `pricegrid query` run where there is no
//! `config/pricegrid.toml` (a fresh directory) work on the built-in
//! defaults and say so in one log line; a `--config` naming a file that
//! does not exist is still an error that names it.

mod common;

use std::path::Path;

use pricegrid::model::{Exchange, Ohlcv, Outcome, Symbol, TaskKey};
use pricegrid::snapshot::{self, Snapshot};
use pricegrid::store::{Observation, Store};

/// What the binary logs when it falls back to the defaults.
const DEFAULTS: &str = "using the built-in defaults";

/// Runs the binary in `dir`, logging at info whatever the runner's RUST_LOG.
fn pricegrid_at(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as _).collect();
    common::pricegrid_in(Some(dir), &args)
}

#[test]
fn fetch_without_a_config_file_uses_the_built_in_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = pricegrid_at(
        dir.path(),
        &[
            "fetch",
            "--no-progress",
            "--from",
            "2020-03-01",
            "--to",
            "2020-03-02",
            "--output",
            "out.json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches(DEFAULTS).count(), 1, "{stderr}");
    assert!(stdout.starts_with("tasks "), "{stdout}");
    let snap = Snapshot::load(&dir.path().join("out.json")).expect("a valid snapshot");
    assert!(snap.counts.tasks > 0, "{:?}", snap.counts);
    assert_eq!(snap.counts.done(), snap.counts.tasks);
    // The default source is the built-in server with the default seed.
    let raw: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out.json")).unwrap()).unwrap();
    assert_eq!(raw["sources"], serde_json::json!(["builtin:seed=20200101"]));
}

#[test]
fn query_without_a_config_file_reads_the_default_record() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("data/snapshots");
    let mut store = Store::new();
    let key = TaskKey {
        exchange: Exchange::new("kraken").unwrap(),
        symbol: Symbol::new("btc").unwrap(),
        day: "2020-03-13".parse().unwrap(),
    };
    let price = Ohlcv::new(100.0, 110.0, 90.0, 105.0, 7.0).unwrap();
    store.apply(&key, &Observation::settled(Outcome::price(price), 1));
    let snap = Snapshot::new(0, 1, Default::default(), store);
    snap.write_atomic(&snapshots.join(snapshot::file_name(snap.created)))
        .unwrap();
    // The record at the default store.path, as the daemon would leave it.
    pricegrid::record::Record::open(&dir.path().join("data/pricegrid.db"))
        .unwrap()
        .import_snapshots(&snapshots)
        .unwrap()
        .expect("one snapshot imported");

    let (code, stdout, stderr) = pricegrid_at(dir.path(), &["query", "--format", "csv"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.matches(DEFAULTS).count(), 1, "{stderr}");
    assert_eq!(
        stdout,
        "exchange,symbol,day,state,open,high,low,close,volume,flags,reason\n\
         kraken,btc,2020-03-13,final,100,110,90,105,7,,\n"
    );
}

#[test]
fn a_config_named_but_missing_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    for command in [
        &["fetch", "--no-progress", "--config", "nowhere.toml"][..],
        &["query", "--config", "nowhere.toml"][..],
    ] {
        let (code, _, stderr) = pricegrid_at(dir.path(), command);
        assert_eq!(code, 1, "{command:?}: {stderr}");
        assert!(
            stderr.contains("nowhere.toml: cannot read the config"),
            "{command:?}: {stderr}"
        );
        assert!(!stderr.contains(DEFAULTS), "{command:?}: {stderr}");
    }
    assert!(
        !dir.path().join("data").exists(),
        "nothing written on failure"
    );
}
