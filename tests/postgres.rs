//! The PostgreSQL the tests run against (tests/common/postgres.rs): a real
//! server, a throwaway cluster on loopback unless
//! `PRICEGRID_TEST_DATABASE_URL` names one, and a database of its own for
//! each test.

mod common;

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
