//! The record and its exports against a clock that steps back (NTP, a
//! restored VM): rounds keep their order, exports are named by round, and
//! retention deletes nothing it should not.
mod common;

use std::time::Duration;

use chrono::TimeDelta;
use common::*;
use pricegrid::actors::aggregator::{export_name, Flush};
use pricegrid::clock::Clock;
use pricegrid::daemon::Daemon;
use pricegrid::record::Record;

#[actix_rt::test]
async fn a_clock_stepped_back_an_hour_deletes_nothing_and_keeps_the_order() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("snap");
    let path = TestConfig::daemon(&server.url(), &exports)
        .exchanges(["kraken"])
        .symbols(["btc"])
        // Today stays open (provisional), so every round has a task and
        // exports a snapshot.
        .last_days(2)
        .snapshot_every(Duration::from_nanos(1))
        .keep(10)
        .interval(Duration::from_secs(3600))
        .write(&dir.path().join("pricegrid.toml"));
    let clock = Clock::manual(at("2026-11-24T12:00:00Z"));
    let daemon = Daemon::start_with_clock(&path, clock.clone())
        .await
        .expect("the daemon starts");
    let mut daemon = RunningDaemon::run(daemon);
    // Each round's export is written before the next round starts (an
    // export still being written when the next is due is skipped).
    daemon.first_round().await;
    let flush = |d: &RunningDaemon| d.pipeline.aggregator.send(Flush);
    flush(&daemon).await.unwrap();
    for _ in 0..2 {
        clock.advance(TimeDelta::minutes(10));
        daemon.run_round().await.expect("a round runs");
        flush(&daemon).await.unwrap();
    }
    // The clock steps back an hour; two more rounds.
    clock.advance(TimeDelta::hours(-1));
    for _ in 0..2 {
        let round = daemon.run_round().await;
        round.expect("a round runs after the step");
        flush(&daemon).await.unwrap();
    }
    let report = daemon.shutdown().await;

    let record = Record::open_read_only(&report.record).expect("the record opens");
    let rounds = record.rounds().unwrap();
    let numbers: Vec<u64> = rounds.iter().map(|r| r.round).collect();
    assert_eq!(
        numbers,
        [5, 4, 3, 2, 1],
        "every round, newest first by number"
    );
    assert!(
        rounds[0].started < rounds[2].started,
        "round 5 started by the clock before round 3: the step back is recorded as it was"
    );
    // Every export is still there, named by round, whatever the clock said.
    let mut files: Vec<String> = std::fs::read_dir(&exports)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let want: Vec<String> = (1..=5).map(export_name).collect();
    assert_eq!(files, want);
}
