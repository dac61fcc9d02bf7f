//! PostgreSQL restarted while a daemon's round runs (a test binary of its
//! own, so its cluster restarts under no other test): every connection is
//! cut, the writes in between fail and are kept, and the daemon, without a
//! restart of its own, reconnects and records every cell.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn postgres_restarted_mid_round_loses_no_cell_and_the_daemon_recovers() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(100));
    let db = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let config = TestConfig::daemon(&server.url, &dir.path().join("snap"))
        .exchanges(["kraken"])
        .symbols(["btc", "eth"])
        .march()
        .workers(2)
        .record_url(&db.url, "survivor")
        .lease_ttl(Duration::from_secs(3))
        .interval(Duration::from_secs(1))
        .flush_every(Duration::from_millis(200))
        .write(&dir.path().join("survivor.toml"));
    let total = 2 * 31;
    let (mut child, mut lines) = spawn_daemon(&config);
    read_until(&mut lines, "holding 1 lane(s)", 1);
    let settled = || -> u64 {
        psql(&db.url, "SELECT count(*) FROM cells WHERE state IN (0, 2)")
            .parse()
            .unwrap()
    };
    // Mid-round: a few answers given (100 ms each, two at a time).
    assert!(
        server
            .stats
            .wait_for_price_requests(4, Duration::from_secs(30)),
        "no requests"
    );
    restart_cluster();
    let before_all = settled();
    assert!(
        before_all < total,
        "the round was still running at the restart"
    );
    let lost = read_until(&mut lines, "PostgreSQL failed or was lost", 1);
    assert!(lost.contains("keeps what it has not written"), "{lost}");
    let started = Instant::now();
    while settled() < total {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {total} cells recorded a minute after the restart",
            settled()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon is still running"
    );
    signal(&child, "-TERM");
    let mut log = String::new();
    read_to_end(lines, &mut log);
    assert!(child.wait().unwrap().success(), "{log}");
}
