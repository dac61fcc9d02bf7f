//! Coverage of the default universe (the built-in server's default
//! dataset: 11 exchanges x 3 symbols over 2020, as config/pricegrid.toml
//! asks it), after one round on loopback: `pricegrid coverage` on the
//! record and `GET /v1/coverage` on the live store both list exactly the
//! dataset's "none" cells as gaps, each run of them as one gap (one day
//! each where they stand alone), and nothing missing or failed.

mod common;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use common::*;
use pricegrid::server::PriceServer;

type Pair = (String, String);
/// Per (exchange, symbol), the gaps as (kind, from, to, days).
type Gaps = BTreeMap<Pair, Vec<(String, NaiveDate, NaiveDate, u64)>>;

const FROM: &str = "2020-01-01";
const TO: &str = "2020-12-31";

/// The runs of days without a price in the dataset, per pair: computed
/// from the dataset itself, not written down.
fn expected_gaps(server: &PriceServer) -> (Gaps, usize) {
    let ds = &server.dataset;
    let mut gaps = Gaps::new();
    let mut none_cells = 0;
    for e in ds.exchanges() {
        for s in ds.symbols() {
            let runs = gaps.entry((e.to_string(), s.to_string())).or_default();
            for d in day(FROM).iter_days().take_while(|d| *d <= day(TO)) {
                if ds.price_of(e, s, d).is_some() {
                    continue;
                }
                none_cells += 1;
                match runs.last_mut() {
                    Some(run) if run.2.succ_opt() == Some(d) => {
                        run.2 = d;
                        run.3 += 1;
                    }
                    _ => runs.push(("none".into(), d, d, 1)),
                }
            }
        }
    }
    (gaps, none_cells)
}

/// The gaps of a coverage answer in JSON, per pair; checks on the way
/// that each pair's counts add up to the window and that nothing is
/// missing or failed.
fn gaps_of(rows: &[serde_json::Value]) -> Gaps {
    let window = day(FROM).iter_days().take_while(|d| *d <= day(TO)).count() as u64;
    let mut out = Gaps::new();
    for r in rows {
        let pair = (
            r["exchange"].as_str().unwrap().to_owned(),
            r["symbol"].as_str().unwrap().to_owned(),
        );
        assert_eq!(
            (r["from"].as_str(), r["to"].as_str()),
            (Some(FROM), Some(TO)),
            "{r}"
        );
        let counts = &r["counts"];
        let total: u64 = [
            "final",
            "provisional",
            "none",
            "failed",
            "rejected",
            "missing",
        ]
        .iter()
        .map(|k| counts[k].as_u64().unwrap())
        .sum();
        assert_eq!(total, window, "{r}");
        assert_eq!(
            (counts["missing"].as_u64(), counts["failed"].as_u64()),
            (Some(0), Some(0)),
            "{r}"
        );
        let final_ = counts["final"].as_u64().unwrap() as f64;
        assert!((r["share_final"].as_f64().unwrap() - final_ / window as f64).abs() < 1e-12);
        let gaps = r["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["kind"].as_str().unwrap().to_owned(),
                    day(g["from"].as_str().unwrap()),
                    day(g["to"].as_str().unwrap()),
                    g["days"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(out.insert(pair, gaps).is_none(), "a pair listed twice: {r}");
    }
    out
}

#[actix_rt::test]
async fn coverage_of_the_default_universe_lists_exactly_its_none_cells_as_gaps() {
    let server = spawn_price_server(|_| {});
    let (want, none_cells) = expected_gaps(&server);
    assert_eq!(want.len(), 33, "11 exchanges x 3 symbols");
    assert!(
        none_cells > 100,
        "the dataset leaves ~2% without a price: {none_cells}"
    );
    let alone = want.values().flatten().filter(|g| g.3 == 1).count();
    assert!(
        alone * 10 > none_cells * 9,
        "most stand alone: {alone} of {none_cells}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = TestConfig::daemon(&server.url(), &dir.path().join("snap"))
        .quick_backoff()
        .every_exchange()
        .every_symbol()
        .window(FROM, TO)
        .write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    let round = daemon.first_round().await;
    assert_eq!(round.counts.failed, 0, "{round:?}");
    let api = daemon.api.expect("the API is on");

    // The live store, a page at a time: 33 pairs in pages of 10.
    let mut rows = Vec::new();
    let mut after = String::new();
    for _ in 0..10 {
        let r = RawRequest::get(api, &format!("/v1/coverage?limit=10{after}"))
            .send(api)
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let body = r.json();
        rows.extend(body["rows"].as_array().unwrap().iter().cloned());
        match body["next"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => break,
        }
    }
    assert_eq!(gaps_of(&rows), want, "GET /v1/coverage");
    // A filter names the pairs; a bad cursor is a 400 naming `after`.
    let r = RawRequest::get(api, "/v1/coverage?exchange=kraken&symbol=btc&format=csv")
        .send(api)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body.lines().count(),
        2,
        "a header and kraken/btc: {}",
        r.body
    );
    assert!(
        r.body
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("kraken,btc,2020-01-01,2020-12-31,"),
        "{}",
        r.body
    );
    let r = RawRequest::get(api, "/v1/coverage?after=kraken")
        .send(api)
        .await;
    assert_eq!(
        (r.status, r.json()["parameter"].as_str()),
        (400, Some("after")),
        "{r:?}"
    );
    daemon.shutdown().await;

    // The record, through the binary.
    let db = dir.path().join("snap.db");
    let args: [&dyn AsRef<std::ffi::OsStr>; 5] = [&"coverage", &"--db", &db, &"--format", &"json"];
    let (code, out, err) = pricegrid_in(None, &args);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let got = gaps_of(&rows);
    assert_eq!(got, want, "pricegrid coverage");
    let listed: u64 = got.values().flatten().map(|g| g.3).sum();
    assert_eq!(
        listed, none_cells as u64,
        "every none cell is in a gap, once"
    );
}
