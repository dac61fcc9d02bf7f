//! Several daemons on one PostgreSQL record (a real server: the tests'
//! throwaway cluster), each a process of its own against the built-in
//! server: they share the universe's lanes by lease, every cell is asked
//! once; a daemon killed with SIGKILL loses its lanes at expiry and another
//! completes them; a daemon paused past its lease has its late writes
//! refused and logged. Waiting on another process's progress is a bounded
//! poll of the record or a line of its log.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const SYMBOLS: [&str; 2] = ["btc", "eth"];
/// March 2020.
const DAYS: u64 = 31;

/// A fleet member's config: `exchanges` × btc, eth × March 2020 on the
/// record at `db`, rounds every second, leases of `ttl`.
fn member(
    server: &ServerThread,
    db: &TestDatabase,
    dir: &Path,
    name: &str,
    exchanges: &[&str],
    ttl: Duration,
    tweak: impl FnOnce(TestConfig) -> TestConfig,
) -> PathBuf {
    let config = TestConfig::daemon(&server.url, &dir.join(name))
        .exchanges(exchanges.iter().copied())
        .symbols(SYMBOLS)
        .march()
        .record_url(&db.url, name)
        .lease_ttl(ttl)
        .interval(Duration::from_secs(1))
        .flush_every(Duration::from_millis(200));
    tweak(config).write(&dir.join(format!("{name}.toml")))
}

/// Cells of the record that are settled (final or none), of `exchange`
/// or of all.
fn settled(db: &TestDatabase, exchange: Option<&str>) -> u64 {
    if psql(&db.url, "SELECT to_regclass('cells') IS NOT NULL") != "t" {
        return 0; // no daemon has made the schema yet
    }
    let filter = exchange.map_or(String::new(), |e| {
        format!(" AND exchange = (SELECT id FROM exchanges WHERE name = '{e}')")
    });
    psql(
        &db.url,
        &format!("SELECT count(*) FROM cells WHERE state IN (0, 2){filter}"),
    )
    .parse()
    .unwrap()
}

/// Polls `done` every 50 ms until it holds or `limit` passes; whether it
/// held.
fn until_or(_what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !done() {
        if started.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Polls `done` every 50 ms until it holds, for at most `limit`.
fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}

/// A daemon process, killed if the test ends without stopping it.
struct Running {
    child: std::process::Child,
    lines: Option<LogLines>,
}

impl Running {
    fn spawn(config: &Path) -> Running {
        let (child, lines) = spawn_daemon(config);
        Running {
            child,
            lines: Some(lines),
        }
    }

    fn read_until(&mut self, needle: &str) -> String {
        read_until(self.lines.as_mut().expect("the log is open"), needle, 1)
    }

    /// SIGTERM, and its log to the end; it must exit 0.
    fn stop(mut self) -> String {
        signal(&self.child, "-TERM");
        let mut log = String::new();
        if let Some(lines) = self.lines.take() {
            read_to_end(lines, &mut log);
        }
        assert!(self.child.wait().unwrap().success(), "{log}");
        log
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three daemons, three exchanges: every cell settled, each asked once
/// (the server counts one request a cell and no more), and once all three
/// are seen the lanes are spread one each.
#[test]
fn three_daemons_share_the_universe_and_ask_each_cell_once() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(2));
    let db = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let exchanges = ["kraken", "bitstamp", "okex"];
    let total = exchanges.len() as u64 * SYMBOLS.len() as u64 * DAYS;
    let mut members: Vec<Running> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let config = member(
                &server,
                &db,
                dir.path(),
                name,
                &exchanges,
                Duration::from_secs(3),
                |c| c,
            );
            Running::spawn(&config)
        })
        .collect();
    until("every cell settled", Duration::from_secs(60), || {
        settled(&db, None) == total
    });
    let spread = until_or("one lane each", Duration::from_secs(30), || {
        psql(
            &db.url,
            "SELECT count(DISTINCT holder) FROM leases WHERE expires_at > now()",
        ) == "3"
    });
    if !spread {
        let leases = psql(
            &db.url,
            "SELECT lane, holder, epoch, expires_at > now() FROM leases",
        );
        let daemons = psql(
            &db.url,
            "SELECT name, pid, last_seen > now() - interval '3 s', last_round FROM daemons",
        );
        let logs: Vec<String> = members.into_iter().map(Running::stop).collect();
        panic!("lanes not spread: {leases}\n{daemons}\n{}", logs.join("\n"));
    }
    assert_eq!(
        server.stats.price_requests(),
        total,
        "each cell asked once, by one daemon"
    );
    // Daemon a's /v1/status shows the fleet: three daemons, a lane each.
    let started = members[0].read_until("daemon started");
    let api: std::net::SocketAddr = started
        .split("API listening on http://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ' ']).next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("no API address in {started}"));
    until(
        "the status shows the fleet spread",
        Duration::from_secs(30),
        || {
            let status = RawRequest::get(api, "/v1/status").send_blocking(api).json();
            let fleet = &status["fleet"];
            let daemons = fleet["daemons"].as_array().map_or(0, Vec::len);
            let mut holders: Vec<&str> = fleet["leases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| l["live"] == true)
                .filter_map(|l| l["holder"].as_str())
                .collect();
            holders.sort();
            holders.dedup();
            daemons == 3 && holders == ["a", "b", "c"]
        },
    );
    let rounds = psql(
        &db.url,
        "SELECT count(DISTINCT round) = count(*) FROM rounds",
    );
    assert_eq!(rounds, "t", "round numbers are unique across daemons");
    for m in members {
        let log = m.stop();
        assert!(log.contains("lease(s) given back to the fleet"), "{log}");
    }
    assert_eq!(
        psql(
            &db.url,
            "SELECT count(*) FROM leases WHERE holder IS NOT NULL"
        ),
        "0",
        "a daemon stopping gives its leases back at once"
    );
}

/// The daemon holding both lanes is killed mid-round (SIGKILL): the other
/// takes them over once the lease expires and completes every cell.
#[test]
fn a_killed_daemons_lanes_are_completed_by_another_after_its_lease() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(40));
    let db = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let exchanges = ["kraken", "bitstamp"];
    let total = exchanges.len() as u64 * SYMBOLS.len() as u64 * DAYS;
    let ttl = Duration::from_secs(3);
    let slow = |c: TestConfig| c.workers(1);
    let first = member(&server, &db, dir.path(), "first", &exchanges, ttl, slow);
    let mut first = Running::spawn(&first);
    first.read_until("holding 2 lane(s)");
    let second = member(&server, &db, dir.path(), "second", &exchanges, ttl, |c| c);
    let mut second = Running::spawn(&second);
    second.read_until("daemon started");
    // Mid-round: the server has answered a few of its requests.
    assert!(
        server
            .stats
            .wait_for_price_requests(5, Duration::from_secs(30)),
        "no requests"
    );
    signal(&first.child, "-KILL");
    let _ = first.child.wait();
    let killed = Instant::now();
    second.read_until("took");
    until("every cell settled", ttl + Duration::from_secs(30), || {
        settled(&db, None) == total
    });
    eprintln!("completed {:?} after the kill", killed.elapsed());
    assert_eq!(
        psql(
            &db.url,
            "SELECT DISTINCT holder FROM leases WHERE expires_at > now()"
        ),
        "second"
    );
    drop(first);
    second.stop();
}

/// A daemon paused (SIGSTOP) past its lease while requests are in flight:
/// another takes its lanes; resumed (SIGCONT), its late answers are
/// refused by the record and logged, and every cell is the new holder's.
#[test]
fn a_daemon_paused_past_its_lease_has_its_late_writes_refused() {
    let server = ServerThread::start(|o| o.latency = Duration::from_millis(300));
    let db = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let exchanges = ["kraken"];
    let total = SYMBOLS.len() as u64 * DAYS;
    let ttl = Duration::from_secs(3);
    let paused = member(&server, &db, dir.path(), "paused", &exchanges, ttl, |c| {
        c.workers(2)
    });
    let mut paused = Running::spawn(&paused);
    paused.read_until("holding 1 lane(s)");
    let other = member(&server, &db, dir.path(), "other", &exchanges, ttl, |c| c);
    let mut other = Running::spawn(&other);
    other.read_until("daemon started");
    // Its first requests are in flight (300 ms each).
    assert!(
        server
            .stats
            .wait_for_price_requests(1, Duration::from_secs(30)),
        "no requests"
    );
    signal(&paused.child, "-STOP");
    other.read_until("took kraken");
    until(
        "every cell settled by the other",
        Duration::from_secs(60),
        || settled(&db, None) == total,
    );
    signal(&paused.child, "-CONT");
    let refused = paused.read_until("late cell(s) of lane kraken refused");
    assert!(refused.contains("held by other"), "{refused}");
    let by_paused_after = psql(
        &db.url,
        "SELECT count(*) FROM cells c JOIN rounds r ON r.round = c.round \
         WHERE r.daemon = 'paused' AND c.since > (SELECT min(round) FROM rounds WHERE daemon = 'other')",
    );
    assert_eq!(
        by_paused_after, "0",
        "no cell of the new holder's was overwritten"
    );
    other.stop();
    paused.stop();
}
