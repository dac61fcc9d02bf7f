//! The PostgreSQL the tests run against (tests/common/postgres.rs): a real
//! server, a throwaway cluster on loopback unless
//! `PRICEGRID_TEST_DATABASE_URL` names one, and a database of its own for
//! each test.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn each_test_gets_an_empty_database_of_its_own_on_a_real_server() {
    let a = TestDatabase::new();
    let b = TestDatabase::new();
    assert_ne!(a.url, b.url);
    assert!(
        a.url.starts_with("postgres://") && a.url.contains("127.0.0.1"),
        "{}",
        a.url
    );
    psql(
        &a.url,
        "CREATE TABLE t (x integer); INSERT INTO t VALUES (42)",
    );
    assert_eq!(psql(&a.url, "SELECT x FROM t"), "42");
    assert_eq!(
        psql(
            &b.url,
            "SELECT count(*) FROM pg_tables WHERE tablename = 't'"
        ),
        "0",
        "another test's tables are not here"
    );
    let version: u32 = psql(&a.url, "SHOW server_version_num").parse().unwrap();
    assert!(version >= 120000, "PostgreSQL {version}");
    assert_eq!(psql(&a.url, "SHOW fsync"), "off", "a throwaway cluster");
}

/// A daemon on a PostgreSQL record (`store.url`): its round lands there
/// under its name; a second daemon of the same name on the same database
/// exits 1 naming the first (one writer of each name; other names join the
/// fleet, tests/fleet.rs); `query` and `snapshots` read
/// it with `--db postgres://…` beside the running daemon; a daemon started
/// again resumes from it and asks nothing already final.
#[test]
fn a_daemon_keeps_its_record_in_postgres_alone_and_resumes_from_it() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(5));
    let db = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snap");
    let config = |name: &str, file: &str| {
        TestConfig::daemon(&server.url, &snapshots)
            .exchanges(["kraken"])
            .symbols(["btc", "eth"])
            .march()
            .record_url(&db.url, name)
            .write(&dir.path().join(file))
    };
    let (mut alpha, mut lines) = spawn_daemon(&config("alpha", "first.toml"));
    // Recorded, not only finished: the record is read below.
    let mut log = read_until(&mut lines, "round 1 recorded", 1);
    assert!(
        !snapshots.with_extension("db").exists(),
        "no SQLite file beside a PostgreSQL record"
    );

    let (mut beta, beta_lines) = spawn_daemon(&config("alpha", "second.toml"));
    let mut beta_log = String::new();
    read_to_end(beta_lines, &mut beta_log);
    assert_eq!(beta.wait().unwrap().code(), Some(1), "{beta_log}");
    assert!(
        beta_log.contains(&format!("is in use by daemon alpha (pid {}", alpha.id())),
        "{beta_log}"
    );

    let pricegrid = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pricegrid"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let json = pricegrid(&["query", "--db", &db.url, "--format", "json"]);
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(listed.to_string().contains("\"kraken\""), "{json}");
    let rounds = pricegrid(&["snapshots", "--db", &db.url, "--format", "json"]);
    assert!(rounds.contains("\"finished\""), "{rounds}");

    signal(&alpha, "-TERM");
    read_to_end(lines, &mut log);
    assert!(alpha.wait().unwrap().success(), "{log}");
    let finals: u64 = psql(&db.url, "SELECT count(*) FROM cells WHERE state IN (0, 1)")
        .parse()
        .unwrap();
    assert!(finals > 0, "{log}");
    assert_eq!(
        psql(
            &db.url,
            "SELECT daemon, status FROM rounds ORDER BY round LIMIT 1"
        ),
        "alpha|finished"
    );

    let (mut again, mut again_lines) = spawn_daemon(&config("alpha", "first.toml"));
    let again_log = read_until(&mut again_lines, "resuming from postgres://", 1);
    assert!(
        again_log.contains(&format!("({finals} prices")),
        "{finals} prices in the database: {again_log}"
    );
    // Its signal handlers are in place once it says it started.
    let mut rest = again_log + &read_until(&mut again_lines, "daemon started", 1);
    signal(&again, "-TERM");
    read_to_end(again_lines, &mut rest);
    assert!(again.wait().unwrap().success(), "{rest}");
}
