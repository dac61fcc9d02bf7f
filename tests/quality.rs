//! The cross-exchange checks and the reference close (issue 21) through
//! the real daemon, on the built-in server over loopback, with faults
//! planted in its dataset: a close 10 % off the others is flagged
//! `outlier` and left out of the reference, which equals the volume-weighted
//! median worked out by hand; a USDT market on a day its peg market closed
//! at 0.95 is `off_peg`; a repeated zero-volume candle is `stale`; a day
//! with two exchanges is "insufficient". Each price is kept as sent. The
//! same references are served by `GET /v1/reference` and read back from
//! the record by `pricegrid query --reference --round 1`.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use pricegrid::model::{CellState, Exchange, ExchangeApi, Flags, Symbol};
use pricegrid::server::{self, Dataset, PriceServer, ServerOptions};
use serde_json::Value;

/// Planted, per (exchange, day): btc's close and volume (open = high = low
/// = close), and kraken's USDT/USD close, the USDT peg. Binance's btc is
/// quoted in USDT (its dialect lists `BTCUSDT` only); the rest are asked
/// through the classic API, in USD.
///
/// - 2024-03-01: okx closes at 110, 10 % above the rest: an outlier. The
///   peg closes at 1.000, so binance's USDT close counts. By close:
///   coinbase 99 (volume 20), kraken 100 (10), binance 100.2 (50), gemini
///   100.5 (40), bitstamp 101 (30): total 150, half 75, reached at binance
///   (20 + 10 + 50 = 80): the reference is 100.2.
/// - 2024-03-02: the peg closes at 0.95: binance is `off_peg`. Gemini
///   repeats its candle of the day before with zero volume: `stale`. By
///   close: coinbase 99 (20), kraken 100 (10), okx 100.4 (5), bitstamp 101
///   (30): total 65, half 32.5, reached at okx (35): the reference is 100.4.
/// - 2024-03-03: only kraken and bitstamp have btc: "insufficient".
const PLANTED: &str = "exchange,symbol,day,open,high,low,close,volume
kraken,btc,2024-03-01,100,100,100,100,10
bitstamp,btc,2024-03-01,101,101,101,101,30
coinbase,btc,2024-03-01,99,99,99,99,20
gemini,btc,2024-03-01,100.5,100.5,100.5,100.5,40
okx,btc,2024-03-01,110,110,110,110,100
binance,btc,2024-03-01,100.2,100.2,100.2,100.2,50
kraken,usdt,2024-03-01,1,1,1,1,1000
kraken,btc,2024-03-02,100,100,100,100,10
bitstamp,btc,2024-03-02,101,101,101,101,30
coinbase,btc,2024-03-02,99,99,99,99,20
gemini,btc,2024-03-02,100.5,100.5,100.5,100.5,0
okx,btc,2024-03-02,100.4,100.4,100.4,100.4,5
binance,btc,2024-03-02,100.3,100.3,100.3,100.3,50
kraken,usdt,2024-03-02,0.95,0.95,0.95,0.95,1000
kraken,btc,2024-03-03,100,100,100,100,1
bitstamp,btc,2024-03-03,101,101,101,101,1
";

const EXCHANGES: [&str; 6] = ["binance", "bitstamp", "coinbase", "gemini", "kraken", "okx"];

fn planted(dir: &Path) -> Arc<Dataset> {
    let path = dir.join("planted.csv");
    std::fs::write(&path, PLANTED).expect("the dataset is written");
    Arc::new(Dataset::from_csv(&path).expect("the planted dataset loads"))
}

/// The built-in server over `data`, speaking `dialect` (with binance's
/// prices when it is not the classic API).
fn server(data: &Arc<Dataset>, dialect: ExchangeApi) -> PriceServer {
    let mut opts = ServerOptions::new(loopback(), server::DEFAULT_SEED);
    opts.dataset = data.clone();
    opts.dialect = dialect;
    if dialect != ExchangeApi::Classic {
        opts.exchange = Some(Exchange::new("binance").expect("a valid name"));
    }
    server::start(&opts).expect("the test server starts")
}

fn flags_of(store: &pricegrid::store::Store, exchange: &str, when: &str) -> Flags {
    let cell = store
        .get(
            &Exchange::new(exchange).expect("a valid name"),
            &Symbol::new("btc").expect("a valid name"),
            day(when),
        )
        .unwrap_or_else(|| panic!("{exchange}/btc/{when} is held"));
    assert_eq!(cell.state, CellState::Final, "{exchange}/btc/{when}");
    cell.flags
}

/// A reference row in short: its close, status and exclusions
/// ("exchange:why").
type Summary = (Option<f64>, String, Vec<String>);

fn summary(row: &Value) -> Summary {
    let excluded = row["excluded"]
        .as_array()
        .expect("excluded is a list")
        .iter()
        .map(|x| {
            format!(
                "{}:{}",
                x["exchange"].as_str().unwrap_or("?"),
                x["why"].as_str().unwrap_or("?")
            )
        })
        .collect();
    (
        row["close"].as_f64(),
        row["status"].as_str().unwrap_or("?").to_owned(),
        excluded,
    )
}

fn expected() -> Vec<(&'static str, Summary)> {
    vec![
        (
            "2024-03-01",
            (Some(100.2), "final".into(), vec!["okx:outlier".into()]),
        ),
        (
            "2024-03-02",
            (
                Some(100.4),
                "final".into(),
                vec!["binance:off_peg".into(), "gemini:stale".into()],
            ),
        ),
        ("2024-03-03", (None, "insufficient".into(), vec![])),
    ]
}

fn check_rows(rows: &[Value], source: &str) {
    let got: Vec<(String, Summary)> = rows
        .iter()
        .map(|r| (r["day"].as_str().unwrap_or("?").to_owned(), summary(r)))
        .collect();
    let want: Vec<(String, Summary)> = expected()
        .into_iter()
        .map(|(d, s)| (d.to_owned(), s))
        .collect();
    assert_eq!(got, want, "{source}");
}

#[actix_rt::test]
async fn planted_faults_are_flagged_and_left_out_of_the_reference() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let data = planted(dir.path());
    let classic = server(&data, ExchangeApi::Classic);
    let binance = server(&data, ExchangeApi::Binance);
    let write_config = |min_exchanges: usize| {
        TestConfig::daemon(&classic.url(), &dir.path().join("snap"))
            .quick_backoff()
            .exchanges(EXCHANGES)
            .symbols(["btc", "usdt"])
            .window("2024-03-01", "2024-03-03")
            .exchange_api("binance", ExchangeApi::Binance, &binance.url(), 1000.0)
            .peg("usdt", "kraken:USDTUSD")
            .min_exchanges(min_exchanges)
            .write(&dir.path().join("pricegrid.toml"))
    };
    let mut daemon = RunningDaemon::start(&write_config(3)).await;
    daemon.first_round().await;

    let store = daemon.store().await;
    assert_eq!(flags_of(&store, "okx", "2024-03-01"), Flags::OUTLIER);
    assert_eq!(flags_of(&store, "binance", "2024-03-02"), Flags::OFF_PEG);
    assert_eq!(flags_of(&store, "gemini", "2024-03-02"), Flags::STALE);
    for (exchange, when) in [
        ("binance", "2024-03-01"),
        ("gemini", "2024-03-01"),
        ("kraken", "2024-03-02"),
    ] {
        assert_eq!(
            flags_of(&store, exchange, when),
            Flags::NONE,
            "{exchange} {when}"
        );
    }
    let okx = store
        .get(
            &Exchange::new("okx").unwrap(),
            &Symbol::new("btc").unwrap(),
            day("2024-03-01"),
        )
        .and_then(|c| c.price)
        .expect("okx's price is held");
    assert_eq!(okx.close, 110.0, "the price is kept as sent");

    let api = daemon.api_url();
    let addr = api
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let answer = RawRequest::get(
        addr,
        "/v1/reference?symbol=btc&from=2024-03-01&to=2024-03-03",
    )
    .send(addr)
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    let rows = body["rows"].as_array().expect("rows");
    check_rows(rows, "GET /v1/reference");
    assert_eq!(body["next"], Value::Null);
    let first = &rows[0];
    let constituents: Vec<&str> = first["constituents"]
        .as_array()
        .expect("constituents")
        .iter()
        .map(|c| c["exchange"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        constituents,
        ["coinbase", "kraken", "binance", "gemini", "bitstamp"]
    );
    let live_constituents = first["constituents"].clone();
    assert_eq!(first["dispersion"]["min"], 99.0);
    assert_eq!(first["dispersion"]["max"], 101.0);

    // Paged like /v1/prices: one row, then the rest after its cursor.
    let page = RawRequest::get(addr, "/v1/reference?symbol=btc&limit=1")
        .send(addr)
        .await
        .json();
    assert_eq!(page["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["next"], "btc/2024-03-01");
    let unknown = RawRequest::get(addr, "/v1/reference?symbol=xyz")
        .send(addr)
        .await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);

    // The flags are shown wherever flags are: /v1/prices.
    let prices = RawRequest::get(
        addr,
        "/v1/prices?exchange=okx&symbol=btc&from=2024-03-01&to=2024-03-01",
    )
    .send(addr)
    .await;
    assert!(prices.body.contains("outlier"), "{}", prices.body);

    // `[quality]` reloads: with two exchanges enough, 2024-03-03 has a
    // reference (kraken 100 and bitstamp 101, one unit each: half the
    // volume is reached exactly at 100, so the mean of 100 and 101).
    write_config(2);
    let outcome = daemon.reload_and_wait().await;
    assert!(format!("{outcome:?}").contains("quality"), "{outcome:?}");
    let rows = RawRequest::get(addr, "/v1/reference?symbol=btc&from=2024-03-03")
        .send(addr)
        .await
        .json();
    assert_eq!(
        summary(&rows["rows"][0]),
        (Some(100.5), "final".to_owned(), vec![]),
        "{rows}"
    );
    daemon.shutdown().await;

    let record = dir.path().join("snap.db");
    let (code, out, err) = pricegrid_in(
        None,
        &[
            &"query",
            &"--db",
            &record,
            &"--reference",
            &"--symbol",
            &"btc",
            &"--round",
            &"1",
            &"--format",
            &"json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    check_rows(&rows, "query --reference --round 1");
    assert_eq!(
        rows[0]["constituents"], live_constituents,
        "the record's constituents, with their cells' closes and volumes, are the live ones"
    );
    assert!(rows.iter().all(|r| r["round"] == 1), "{out}");
    // Now: the day judged again after the reload, recorded for the next
    // round; round 1 keeps what stood at its end.
    let (code, out, err) = pricegrid_in(
        None,
        &[
            &"query",
            &"--db",
            &record,
            &"--reference",
            &"--symbol",
            &"btc",
            &"--from",
            &"2024-03-03",
            &"--format",
            &"json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let now: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(now.len(), 1, "{out}");
    assert_eq!(
        (now[0]["close"].as_f64(), now[0]["round"].as_u64()),
        (Some(100.5), Some(2)),
        "{out}"
    );
    let (code, out, err) = pricegrid_in(
        None,
        &[
            &"query",
            &"--db",
            &record,
            &"--exchange",
            &"gemini",
            &"--symbol",
            &"btc",
            &"--format",
            &"csv",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.contains("2024-03-02") && l.contains("stale")),
        "{out}"
    );
}
