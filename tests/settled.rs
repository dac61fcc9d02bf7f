//! Once every cell of the universe is settled, the daemon's ticks find
//! nothing due: no round starts and none is recorded (the next tick is
//! scheduled as usual), while `/v1/status` and an export's header still
//! show what the record holds, by state, beside the last round's counts.

mod common;

use std::time::Duration;

use common::*;
use pricegrid::model::CellState;
use pricegrid::record::Record;
use pricegrid::snapshot::Snapshot;

#[actix_rt::test]
async fn a_tick_with_nothing_due_records_no_round_and_status_and_export_show_the_record_totals() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = TestConfig::daemon(&server.url(), &dir.path().join("snap"))
        .exchanges(["kraken", "okex"])
        .symbols(["btc", "eth"])
        .window("2020-03-09", "2020-03-13")
        .interval(Duration::from_millis(50))
        .write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    let first = daemon.first_round().await;
    assert_eq!(first.counts.tasks, 20);
    let asked = server.stats.price_requests();

    // Three ticks a round's interval apart, each with nothing due.
    daemon.idle_ticks(3).await;
    assert_eq!(
        daemon.last_round().map(|r| r.round),
        Some(1),
        "no round after 1"
    );
    assert_eq!(server.stats.price_requests(), asked, "nothing asked");
    let store = daemon.store().await;
    let db = dir.path().join("snap.db");
    let rounds = Record::open_read_only(&db).unwrap().rounds().unwrap();
    assert_eq!(
        rounds.iter().map(|r| r.round).collect::<Vec<_>>(),
        [1],
        "only the round that ran is recorded"
    );

    // /v1/status: the last round's counts, and the record's totals.
    let api = daemon.api.expect("the API is on");
    let status = RawRequest::get(api, "/v1/status").send(api).await.json();
    assert_eq!(status["last_round"]["round"], 1, "{status}");
    assert_eq!(status["counts"]["tasks"], 20, "{status}");
    let held = &status["stored"]["cells"];
    for state in CellState::ALL {
        assert_eq!(
            held[state.as_str()].as_u64(),
            Some(store.count(state) as u64),
            "{state:?} in {status}"
        );
    }
    assert_eq!(
        held["final"].as_u64().unwrap() + held["none"].as_u64().unwrap(),
        20,
        "{status}"
    );
    daemon.shutdown().await;

    // An export's header: round 1's counts, and beside them the totals.
    let out = dir.path().join("export.json");
    let (code, said, err) = pricegrid_in(None, &[&"export", &"--db", &db, &"--output", &out]);
    assert_eq!(code, 0, "{err}");
    let header: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        (header["round"].as_u64(), header["counts"]["tasks"].as_u64()),
        (Some(1), Some(20))
    );
    let finals = store.count(CellState::Final);
    let none = store.count(CellState::NoPrice);
    assert_eq!(
        header["stored"]["final"].as_u64(),
        Some(finals as u64),
        "{}",
        header["stored"]
    );
    assert_eq!(header["stored"]["none"].as_u64(), Some(none as u64));
    assert_eq!(header["stored"]["failed"].as_u64(), Some(0));
    assert!(
        said.contains(&format!(
            "20 cells: final {finals}, provisional 0, none {none}, failed 0, rejected 0"
        )),
        "{said}"
    );
    // The header does not stop the file from loading back.
    assert_eq!(
        answers(&Snapshot::load(&out).unwrap().prices),
        answers(&store)
    );
}
