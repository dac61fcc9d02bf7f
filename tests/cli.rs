//! The first hour of a new user, through the `pricegrid` binary: a typo in
//! a filter is told with the known names, `BTC` means `btc`, a JSON file
//! given as the record is told how to read it, `export --format csv` has
//! every field of a cell, `query | head` ends quietly, and `run` works in a
//! folder with no config, on the built-in defaults.

mod common;

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use pricegrid::model::{Exchange, Symbol};

fn pricegrid(args: &[&str]) -> (i32, String, String) {
    let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as _).collect();
    pricegrid_in(None, &args)
}

/// Kraken and okex, every symbol, 2020-03-09..=13 (30 cells).
fn kraken_and_okex(config: TestConfig) -> TestConfig {
    config
        .exchanges(["kraken", "okex"])
        .every_symbol()
        .window("2020-03-09", "2020-03-13")
}

#[actix_rt::test]
async fn an_unknown_name_in_a_query_is_a_usage_error_that_suggests_the_known_one() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let (db, _) = recorded(&server, dir.path(), kraken_and_okex).await;
    let db = db.to_str().unwrap();

    let (code, out, err) = pricegrid(&["query", "--db", db, "--exchange", "krakn"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err,
        "error: unknown exchange \"krakn\": did you mean kraken? known: kraken, okex\n"
    );
    assert!(out.is_empty(), "{out}");

    // A point in time and the symbols are checked the same way.
    let (code, _, err) = pricegrid(&["query", "--db", db, "--round", "1", "--symbol", "doge"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown symbol \"doge\": known: btc, eth, ltc"),
        "{err}"
    );

    // Names are lower-cased: BTC is btc.
    let (code, out, err) = pricegrid(&["query", "--db", db, "--symbol", "BTC", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.len(), 10, "{out}");
    assert!(rows.iter().all(|r| r["symbol"] == "btc"), "{out}");

    // A snapshot file knows its own names.
    let snapshot = dir.path().join("export.json");
    let (code, _, err) = pricegrid(&["export", "--db", db, "--output", snapshot.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = pricegrid(&[
        "query",
        "--snapshot",
        snapshot.to_str().unwrap(),
        "--exchange",
        "okx",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("did you mean okex?"), "{err}");

    // Days the wrong way round, in both commands that select cells.
    for command in ["query", "coverage"] {
        let (code, out, err) = pricegrid(&[
            command,
            "--db",
            db,
            "--from",
            "2020-03-10",
            "--to",
            "2020-03-01",
        ]);
        assert_ne!(code, 0, "{command}: {err}");
        assert!(
            err.contains("--to 2020-03-01 is before --from 2020-03-10"),
            "{command}: {err}"
        );
        assert!(out.is_empty(), "{command}: {out}");
    }
}

#[test]
fn a_json_file_given_as_the_record_is_told_how_json_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("prices.json");
    std::fs::write(&json, r#"{"format": 2, "prices": {}}"#).unwrap();
    let (code, _, err) = pricegrid(&["query", "--db", json.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    for needle in ["query --snapshot", "snapshot.dir", "store.path"] {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    // Only keys the config has: there is no [record] section.
    assert!(!err.contains("record."), "{err}");
}

#[actix_rt::test]
async fn export_as_csv_writes_every_field_of_a_cell() {
    // Half the answers are 503s and one attempt is allowed: failed cells,
    // with their reason and attempts, beside final ones.
    let server = spawn_price_server(|o| {
        o.faults.fail_rate = 0.5;
        o.faults.seed = 7;
    });
    let dir = tempfile::tempdir().unwrap();
    let (db, store) = recorded(&server, dir.path(), |c| kraken_and_okex(c).max_attempts(1)).await;
    let (code, out, err) = pricegrid(&[
        "export",
        "--db",
        db.to_str().unwrap(),
        "--format",
        "csv",
        "--output",
        "-",
    ]);
    assert_eq!(code, 0, "{err}");
    let mut reader = csv::Reader::from_reader(out.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "exchange",
            "symbol",
            "day",
            "state",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "flags",
            "reason",
            "attempts",
            "fetched_at",
            "round",
            "source",
            "market"
        ]
    );
    let mut states = std::collections::BTreeSet::new();
    let mut lines = 0;
    for record in reader.deserialize::<std::collections::BTreeMap<String, String>>() {
        let r = record.unwrap();
        let cell = store
            .get(
                &Exchange::new(&r["exchange"]).unwrap(),
                &Symbol::new(&r["symbol"]).unwrap(),
                day(&r["day"]),
            )
            .unwrap_or_else(|| panic!("{r:?} is not in the record"));
        assert_eq!(r["state"], cell.state.to_string(), "{r:?}");
        let close = cell.price.map(|p| p.close.to_string()).unwrap_or_default();
        assert_eq!(r["close"], close, "{r:?}");
        let note = cell.note.clone();
        assert_eq!(
            r["reason"],
            note.as_ref().map(|n| n.reason.clone()).unwrap_or_default()
        );
        assert_eq!(
            r["attempts"],
            note.map(|n| n.attempts.to_string()).unwrap_or_default()
        );
        let fetched_at = chrono::DateTime::parse_from_rfc3339(&r["fetched_at"]).unwrap();
        assert_eq!(
            Some(fetched_at.timestamp_millis()),
            cell.fetched_at.map(|t| t.timestamp_millis()),
            "{r:?}"
        );
        assert_eq!(r["round"], "1");
        assert_eq!(Some(r["source"].as_str()), cell.source.as_deref());
        assert_eq!(r["market"], "", "the classic API has no markets");
        states.insert(r["state"].clone());
        lines += 1;
    }
    assert_eq!(lines, store.len());
    assert!(
        states.contains("final") && states.contains("failed"),
        "{states:?}"
    );
}

#[actix_rt::test]
async fn query_into_a_pipe_closed_early_exits_quietly() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    // 1,023 cells: a few hundred KiB of JSON, far more than a pipe holds,
    // so the query is still writing when the reader goes.
    let (db, _) = recorded(&server, dir.path(), |c| {
        c.every_exchange().every_symbol().march()
    })
    .await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .args(["query", "--db", db.to_str().unwrap(), "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "[\n");
    // The reader is dropped: the pipe is closed, as `head -1` does.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn run_in_a_folder_without_a_config_starts_on_the_built_in_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines) =
        spawn_pricegrid(Some(dir.path()), &[&"run", &"--listen", &"127.0.0.1:0"]);
    let log = read_until(&mut lines, "daemon started", 1);
    assert!(
        log.contains("using the built-in defaults")
            && log.contains("config the built-in defaults (no config/pricegrid.toml)"),
        "{log}"
    );
    let api = log
        .lines()
        .find_map(|l| l.split_once("API listening on http://"))
        .map(|(_, rest)| rest.split_whitespace().next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no API address in {log}"));
    assert!(!api.ends_with(":0") && !api.ends_with(":9180"), "{api}");
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(10))
        .build();
    let status: serde_json::Value = agent
        .get(&format!("http://{api}/v1/status"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(status["config_version"], 0, "{status}");
    signal(&child, "-TERM");
    let mut rest = String::new();
    read_to_end(lines, &mut rest);
    assert_eq!(child.wait().unwrap().code(), Some(0), "{rest}");
    assert!(
        Path::new(&dir.path().join("data/pricegrid.db")).exists(),
        "the default record is in the folder"
    );
}
