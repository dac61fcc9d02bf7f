//! The built-in server speaking each real exchange's API, as a client sees
//! it over loopback: the exact rows of the dialect's dataset exchange, in
//! the exchange's order, within its bounds and page limits, today's candle
//! open and partial, future days absent, unknown markets and bad
//! parameters answered as the wire contract says, and the exchange's own
//! answer when the server's rate limit is exceeded.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use common::*;
use pricegrid::clock::Clock;
use pricegrid::model::{Exchange, ExchangeApi, Ohlcv, Symbol};
use pricegrid::server::{
    self, publication, Dataset, GeneratedSpec, Lookup, PriceServer, ServerOptions,
};
use serde_json::Value;

/// The servers' time: mid-day, so today's candle is half made.
const NOW: &str = "2020-06-15T12:00:00Z";
const TODAY: &str = "2020-06-15";
const DELAY: Duration = Duration::from_secs(3600);
const DAY_MS: i64 = 86_400_000;

fn now() -> DateTime<Utc> {
    NOW.parse().expect("test time")
}

/// Every dialect's exchange, over three years (so Kraken's 720 days are
/// shorter than what the dataset has) and past today (so future days exist
/// in the dataset but must not be served).
fn dataset() -> Arc<Dataset> {
    let mut spec = GeneratedSpec::classic(server::DEFAULT_SEED);
    spec.exchanges = ExchangeApi::EXCHANGES
        .iter()
        .map(|a| Exchange::new(a.as_str()).expect("a valid name"))
        .collect();
    spec.from = day("2016-01-01");
    spec.to = day("2020-12-31");
    Arc::new(Dataset::generated(spec))
}

fn btc() -> Symbol {
    Symbol::new("btc").expect("a valid name")
}

fn exchange(api: ExchangeApi) -> Exchange {
    Exchange::new(api.as_str()).expect("a valid name")
}

/// A server of `api` over `dataset()` at `NOW`, publishing an hour after
/// each close, with `opts` adjusted by `tweak`.
fn spawn_dialect(api: ExchangeApi, tweak: impl FnOnce(&mut ServerOptions)) -> PriceServer {
    let mut opts = ServerOptions::new(loopback(), server::DEFAULT_SEED);
    opts.dataset = dataset();
    opts.dialect = api;
    opts.clock = Clock::manual(now());
    opts.publish_delay = Some(DELAY);
    tweak(&mut opts);
    server::start(&opts).expect("the dialect server starts")
}

/// What one `GET` answered.
#[derive(Debug)]
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Value,
}

fn get(url: &str) -> Answer {
    let resp = match ureq::get(url).call() {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = resp.status();
    let retry_after = resp.header("Retry-After").map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{url}: Retry-After {v:?}: {e}"))
    });
    let body = resp
        .into_json()
        .unwrap_or_else(|e| panic!("{url}: not JSON: {e}"));
    Answer {
        status,
        retry_after,
        body,
    }
}

/// GETs `paths` under the server one after another, from a blocking client.
async fn get_all(server: &PriceServer, paths: &[String]) -> Vec<Answer> {
    let base = server.url();
    let urls: Vec<String> = paths
        .iter()
        .map(|p| base.join(p).expect("a path under the base").to_string())
        .collect();
    actix_rt::task::spawn_blocking(move || urls.iter().map(|u| get(u)).collect())
        .await
        .expect("the client thread")
}

async fn get_one(server: &PriceServer, path: &str) -> Answer {
    get_all(server, &[path.to_owned()])
        .await
        .pop()
        .expect("one answer")
}

fn ms(d: &str) -> i64 {
    secs(d) * 1000
}

fn secs(d: &str) -> i64 {
    day(d)
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp()
}

fn day_of_secs(t: i64) -> NaiveDate {
    DateTime::from_timestamp(t, 0).expect("a time").date_naive()
}

/// The candles a dialect must serve for `api`'s exchange over
/// `from..=to`, oldest first: the dataset's price for a closed day, the
/// partial candle for today, nothing for a day without a price or a
/// future one.
fn expected(api: ExchangeApi, from: &str, to: &str) -> Vec<(NaiveDate, Ohlcv)> {
    let ds = dataset();
    let (e, s) = (exchange(api), btc());
    day(from)
        .iter_days()
        .take_while(|d| *d <= day(to))
        .filter_map(|d| {
            let full = ds.lookup(e.as_str(), s.as_str(), d);
            match publication::published(full, d, now(), Some(DELAY)) {
                Lookup::Price(p) => {
                    if d < day(TODAY) {
                        assert_eq!(
                            Some(p),
                            ds.price_of(&e, &s, d),
                            "a closed day is the dataset's"
                        );
                    }
                    Some((d, p))
                }
                _ => None,
            }
        })
        .collect()
}

fn string_num(v: &Value) -> f64 {
    v.as_str()
        .unwrap_or_else(|| panic!("a number as a string: {v}"))
        .parse()
        .unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn json_num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a JSON number: {v}"))
}

fn rows(body: &Value) -> &Vec<Value> {
    body.as_array()
        .unwrap_or_else(|| panic!("an array of rows: {body}"))
}

// ---------------------------------------------------------------- binance

fn binance_rows(a: &Answer) -> Vec<(NaiveDate, Ohlcv)> {
    assert_eq!(a.status, 200, "{a:?}");
    rows(&a.body)
        .iter()
        .map(|r| {
            let open_ms = r[0].as_i64().expect("openMs");
            assert_eq!(r[6].as_i64(), Some(open_ms + DAY_MS - 1), "closeMs: {r}");
            assert_eq!(r.as_array().map(Vec::len), Some(12), "{r}");
            let p = Ohlcv {
                open: string_num(&r[1]),
                high: string_num(&r[2]),
                low: string_num(&r[3]),
                close: string_num(&r[4]),
                volume: string_num(&r[5]),
            };
            (day_of_secs(open_ms / 1000), p)
        })
        .collect()
}

#[actix_rt::test]
async fn binance_klines_are_the_datasets_oldest_first_between_inclusive_bounds() {
    let server = spawn_dialect(ExchangeApi::Binance, |_| {});
    let klines = |start: i64, end: i64, extra: &str| {
        format!("api/v3/klines?symbol=BTCUSDT&interval=1d&startTime={start}&endTime={end}{extra}")
    };
    let answers = get_all(
        &server,
        &[
            klines(ms("2020-03-01"), ms("2020-03-31"), "&limit=1000"),
            klines(ms("2020-03-01") + 1, ms("2020-03-31") - 1, ""),
            klines(ms("2020-03-01"), ms("2020-03-31"), "&limit=5"),
            klines(ms("2016-01-01"), ms("2020-12-31"), "&limit=5000"),
            klines(ms("2016-01-01"), ms("2020-12-31"), ""),
            klines(ms("2020-06-10"), ms("2020-06-20"), ""),
        ],
    )
    .await;
    assert_eq!(
        binance_rows(&answers[0]),
        expected(ExchangeApi::Binance, "2020-03-01", "2020-03-31")
    );
    // startTime and endTime are inclusive open times: a millisecond past
    // the 1st leaves it out, one before the 31st's open leaves that out.
    assert_eq!(
        binance_rows(&answers[1]),
        expected(ExchangeApi::Binance, "2020-03-02", "2020-03-30")
    );
    assert_eq!(
        binance_rows(&answers[2]),
        expected(ExchangeApi::Binance, "2020-03-01", "2020-03-31")[..5]
    );
    // At most 1000 (a larger limit is cut), 500 without a limit.
    let all = expected(ExchangeApi::Binance, "2016-01-01", "2020-12-31");
    assert!(all.len() > 1000, "{}", all.len());
    assert_eq!(binance_rows(&answers[3]), all[..1000]);
    assert_eq!(binance_rows(&answers[4]), all[..500]);
    // Today is partial, the future absent.
    let around_today = binance_rows(&answers[5]);
    assert_eq!(
        around_today,
        expected(ExchangeApi::Binance, "2020-06-10", "2020-06-20")
    );
    let (last_day, partial) = around_today.last().expect("today's row");
    assert_eq!(*last_day, day(TODAY));
    let full = dataset().price_of(&exchange(ExchangeApi::Binance), &btc(), day(TODAY));
    assert_ne!(Some(*partial), full, "today's candle is partial");
}

#[actix_rt::test]
async fn binance_answers_unknown_symbols_bad_parameters_and_lists_its_markets() {
    let server = spawn_dialect(ExchangeApi::Binance, |_| {});
    let answers = get_all(
        &server,
        &[
            "api/v3/klines?symbol=DOGEUSDT&interval=1d&startTime=0&endTime=1".to_owned(),
            "api/v3/klines?symbol=BTCUSDT&interval=1d&startTime=soon".to_owned(),
            "api/v3/klines?symbol=BTCUSDT&interval=1d&limit=0".to_owned(),
            "api/v3/klines?interval=1d".to_owned(),
            "api/v3/klines?symbol=BTCUSDT&interval=1h".to_owned(),
            "api/v3/exchangeInfo".to_owned(),
        ],
    )
    .await;
    assert_eq!(answers[0].status, 400);
    assert_eq!(
        answers[0].body,
        serde_json::json!({"code": -1121, "msg": "Invalid symbol."})
    );
    for (a, name) in answers[1..5]
        .iter()
        .zip(["startTime", "limit", "symbol", "interval"])
    {
        assert_eq!(a.status, 400, "{a:?}");
        assert!(
            a.body["msg"].as_str().is_some_and(|m| m.contains(name)),
            "{name}: {a:?}"
        );
    }
    let listed = &answers[5].body["symbols"];
    assert!(
        rows(listed).contains(&serde_json::json!({
            "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT"
        })),
        "{listed}"
    );
    assert_eq!(rows(listed).len(), 3);
}

// ----------------------------------------------------------------- kraken

fn kraken_rows(a: &Answer) -> Vec<(NaiveDate, Ohlcv)> {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["error"], serde_json::json!([]), "{a:?}");
    let rows = rows(&a.body["result"]["XXBTZUSD"]);
    // `last` is the newest committed candle, as the real Kraken's is: the
    // row before the newest when the newest is today's open candle.
    if let Some(newest) = rows.last() {
        let newest = newest[0].as_i64().expect("t in seconds");
        let committed = if day_of_secs(newest) == day(TODAY) {
            newest - 86_400
        } else {
            newest
        };
        assert_eq!(
            a.body["result"]["last"], committed,
            "last is the newest committed row's time"
        );
    }
    rows.iter()
        .map(|r| {
            assert!(r[7].is_u64(), "count is an integer: {r}");
            let p = Ohlcv {
                open: string_num(&r[1]),
                high: string_num(&r[2]),
                low: string_num(&r[3]),
                close: string_num(&r[4]),
                volume: string_num(&r[6]),
            };
            (day_of_secs(r[0].as_i64().expect("t in seconds")), p)
        })
        .collect()
}

#[actix_rt::test]
async fn kraken_serves_rows_after_since_among_its_720_most_recent_days_today_last() {
    let server = spawn_dialect(ExchangeApi::Kraken, |_| {});
    let oldest = day(TODAY) - chrono::Days::new(719);
    let ohlc =
        |pair: &str, since: i64| format!("0/public/OHLC?pair={pair}&interval=1440&since={since}");
    let answers = get_all(
        &server,
        &[
            ohlc("XBTUSD", secs("2020-03-01") - 1),
            ohlc("XBTUSD", secs("2020-03-01")),
            ohlc("XBTUSD", 0),
            ohlc("XXBTZUSD", secs("2020-06-01") - 1),
            "0/public/OHLC?pair=XBTUSD&interval=1440".to_owned(),
        ],
    )
    .await;
    // since is exclusive: S(from) - 1 includes from, S(from) leaves it out.
    assert_eq!(
        kraken_rows(&answers[0]),
        expected(ExchangeApi::Kraken, "2020-03-01", TODAY)
    );
    assert_eq!(
        kraken_rows(&answers[1]),
        expected(ExchangeApi::Kraken, "2020-03-02", TODAY)
    );
    // The depth: nothing before today - 719, though the dataset has it.
    let deep = kraken_rows(&answers[2]);
    assert_eq!(
        deep,
        expected(ExchangeApi::Kraken, &oldest.to_string(), TODAY)
    );
    assert!(deep.len() <= 720 && deep.len() > 690, "{}", deep.len());
    let before_depth = (1..=30).filter_map(|n| {
        dataset().price_of(
            &exchange(ExchangeApi::Kraken),
            &btc(),
            oldest - chrono::Days::new(n),
        )
    });
    assert!(
        before_depth.count() > 0,
        "the dataset has days Kraken no longer serves"
    );
    // Today's open candle is the last row, partial.
    let (last_day, partial) = deep.last().expect("rows");
    assert_eq!(*last_day, day(TODAY));
    assert_ne!(
        Some(*partial),
        dataset().price_of(&exchange(ExchangeApi::Kraken), &btc(), day(TODAY))
    );
    // Kraken's own pair name works as well as the altname.
    assert_eq!(
        kraken_rows(&answers[3]),
        expected(ExchangeApi::Kraken, "2020-06-01", TODAY)
    );
    assert_eq!(kraken_rows(&answers[4]), deep, "no since: the whole depth");
}

/// Kraken's rows in `a`'s `pair` as (day, price), read as a client would.
fn kraken_pair_rows(a: &Answer, pair: &str) -> Vec<(NaiveDate, Ohlcv)> {
    assert_eq!(a.status, 200, "{a:?}");
    rows(&a.body["result"][pair])
        .iter()
        .map(|r| {
            let p = Ohlcv {
                open: string_num(&r[1]),
                high: string_num(&r[2]),
                low: string_num(&r[3]),
                close: string_num(&r[4]),
                volume: string_num(&r[6]),
            };
            (day_of_secs(r[0].as_i64().expect("t in seconds")), p)
        })
        .collect()
}

#[actix_rt::test]
async fn serve_dialect_kraken_on_its_defaults_serves_its_last_720_days_and_an_open_today() {
    // `serve --dialect kraken` with no other option: the seed dataset, no
    // publish delay given. Only the clock is the test's.
    let clock = Clock::manual("2026-11-24T06:00:00Z".parse().expect("a time"));
    let mut opts = ServerOptions::new(loopback(), server::DEFAULT_SEED);
    opts.dialect = ExchangeApi::Kraken;
    opts.clock = clock.clone();
    let server = server::start(&opts).expect("the dialect server starts");
    let seed = Dataset::generated(GeneratedSpec::classic(server::DEFAULT_SEED));
    let ohlc = "0/public/OHLC?pair=XBTUSD&interval=1440".to_owned();

    let morning = kraken_pair_rows(&get_one(&server, &ohlc).await, "XXBTZUSD");
    let today = day("2026-11-24");
    let oldest = today - chrono::Days::new(719);
    assert!(
        morning.len() > 690 && morning.len() <= 720,
        "{} rows",
        morning.len()
    );
    assert!(morning.first().expect("rows").0 >= oldest);
    let (last, open) = *morning.last().expect("rows");
    assert_eq!(last, today, "today's candle is the last row");
    let full = seed
        .price_of(&exchange(ExchangeApi::Kraken), &btc(), today)
        .expect("the seed dataset prices kraken btc on this day");
    assert_ne!(open, full, "today's candle is open: partial at 06:00");
    for (d, p) in &morning[..morning.len() - 1] {
        assert_eq!(
            Some(*p),
            seed.price_of(&exchange(ExchangeApi::Kraken), &btc(), *d),
            "a closed day is the seed's price: {d}"
        );
    }

    clock.set("2026-11-24T18:00:00Z".parse().expect("a time"));
    let evening = kraken_pair_rows(&get_one(&server, &ohlc).await, "XXBTZUSD");
    let (_, later) = *evening.last().expect("rows");
    assert_ne!(later, open, "the open candle changes through the day");
    assert!(
        evening.iter().all(|(d, _)| *d <= today),
        "no day after today"
    );
    server.stop().await;
}

#[actix_rt::test]
async fn kraken_answers_unknown_pairs_bad_parameters_and_lists_its_pairs() {
    let server = spawn_dialect(ExchangeApi::Kraken, |_| {});
    let answers = get_all(
        &server,
        &[
            "0/public/OHLC?pair=DOGEUSD&interval=1440&since=0".to_owned(),
            "0/public/OHLC?pair=XBTUSD&interval=1440&since=yesterday".to_owned(),
            "0/public/OHLC?pair=XBTUSD&interval=60".to_owned(),
            "0/public/OHLC?interval=1440".to_owned(),
            "0/public/AssetPairs".to_owned(),
        ],
    )
    .await;
    assert_eq!(
        (answers[0].status, &answers[0].body),
        (
            200,
            &serde_json::json!({"error": ["EQuery:Unknown asset pair"]})
        )
    );
    for (a, name) in answers[1..4].iter().zip(["since", "interval", "pair"]) {
        assert_eq!(a.status, 400, "{a:?}");
        assert!(
            a.body["error"][0]
                .as_str()
                .is_some_and(|m| m.contains(name)),
            "{name}: {a:?}"
        );
    }
    let pairs = &answers[4].body["result"];
    for (key, altname, base) in [
        ("XXBTZUSD", "XBTUSD", "XXBT"),
        ("XETHZUSD", "ETHUSD", "XETH"),
        ("XLTCZUSD", "LTCUSD", "XLTC"),
    ] {
        assert_eq!(pairs[key]["altname"], altname, "{pairs}");
        assert_eq!(pairs[key]["base"], base, "{pairs}");
        assert_eq!(pairs[key]["quote"], "ZUSD", "{pairs}");
    }
    assert_eq!(pairs["XXBTZUSD"]["wsname"], "XBT/USD");
}

// --------------------------------------------------------------- coinbase

fn coinbase_rows(a: &Answer) -> Vec<(NaiveDate, Ohlcv)> {
    assert_eq!(a.status, 200, "{a:?}");
    rows(&a.body)
        .iter()
        .map(|r| {
            let p = Ohlcv {
                low: json_num(&r[1]),
                high: json_num(&r[2]),
                open: json_num(&r[3]),
                close: json_num(&r[4]),
                volume: json_num(&r[5]),
            };
            (day_of_secs(r[0].as_i64().expect("t in seconds")), p)
        })
        .collect()
}

fn newest_first(mut rows: Vec<(NaiveDate, Ohlcv)>) -> Vec<(NaiveDate, Ohlcv)> {
    rows.reverse();
    rows
}

#[actix_rt::test]
async fn coinbase_candles_are_newest_first_within_start_and_end_at_most_300() {
    let server = spawn_dialect(ExchangeApi::Coinbase, |_| {});
    let candles = |product: &str, start: &str, end: &str| {
        format!("products/{product}/candles?granularity=86400&start={start}T00:00:00Z&end={end}T00:00:00Z")
    };
    let answers = get_all(
        &server,
        &[
            candles("BTC-USD", "2020-03-01", "2020-03-31"),
            candles("BTC-USD", "2019-08-21", "2020-06-15"),
            candles("BTC-USD", "2019-08-20", "2020-06-15"),
            candles("DOGE-USD", "2020-03-01", "2020-03-31"),
            candles("BTC-USD", "2020-06-01", "2020-06-30"),
            "products/BTC-USD/candles?granularity=3600".to_owned(),
            "products/BTC-USD/candles?granularity=86400&start=March&end=2020-03-01T00:00:00Z"
                .to_owned(),
            "products".to_owned(),
        ],
    )
    .await;
    assert_eq!(
        coinbase_rows(&answers[0]),
        newest_first(expected(ExchangeApi::Coinbase, "2020-03-01", "2020-03-31"))
    );
    // 300 days inclusive is one page; 301 is refused.
    assert_eq!(
        coinbase_rows(&answers[1]),
        newest_first(expected(ExchangeApi::Coinbase, "2019-08-21", "2020-06-15"))
    );
    assert_eq!(answers[2].status, 400, "{:?}", answers[2]);
    assert_eq!(
        answers[2].body,
        serde_json::json!({"message": "granularity too small for the requested time range. Count of aggregations requested exceeds 300"})
    );
    assert_eq!(
        (answers[3].status, &answers[3].body),
        (404, &serde_json::json!({"message": "NotFound"}))
    );
    let june = coinbase_rows(&answers[4]);
    assert_eq!(
        june,
        newest_first(expected(ExchangeApi::Coinbase, "2020-06-01", "2020-06-30"))
    );
    assert_eq!(june[0].0, day(TODAY), "today first, the future absent");
    for (a, name) in answers[5..7].iter().zip(["granularity", "start"]) {
        assert_eq!(a.status, 400, "{a:?}");
        assert!(
            a.body["message"].as_str().is_some_and(|m| m.contains(name)),
            "{name}: {a:?}"
        );
    }
    assert!(rows(&answers[7].body).contains(&serde_json::json!({
        "id": "BTC-USD", "base_currency": "BTC", "quote_currency": "USD", "status": "online"
    })));
}

#[actix_rt::test]
async fn coinbase_refuses_a_request_without_user_agent_and_counts_inclusive_points() {
    let server = spawn_dialect(ExchangeApi::Coinbase, |_| {});
    let url = server.url();
    let addr = std::net::SocketAddr::new(
        url.host_str().expect("a host").parse().expect("an IP"),
        url.port().expect("a port"),
    );
    let path = "/products/BTC-USD/candles?granularity=86400&start=2020-03-13T00:00:00Z&end=2020-03-13T00:00:01Z";
    for target in [path, "/products"] {
        let refused = RawRequest::get(addr, target)
            .header("Connection", "close")
            .send(addr)
            .await;
        assert_eq!(refused.status, 400, "{refused:?}");
        assert_eq!(
            refused.json(),
            serde_json::json!({"message": "User-Agent header is required."})
        );
    }
    let asked = RawRequest::get(addr, path)
        .header("Connection", "close")
        .header("User-Agent", "pricegrid-test")
        .send(addr)
        .await;
    assert_eq!(asked.status, 200, "{asked:?}");
    let candles = |start: &str, end: &str| {
        format!("products/BTC-USD/candles?granularity=86400&start={start}&end={end}")
    };
    let answers = get_all(
        &server,
        &[
            candles("2020-03-13T00:00:00Z", "2020-03-13T00:00:01Z"),
            candles("2020-03-13T00:00:00Z", "2020-03-13T00:00:00Z"),
            candles("2020-03-14T00:00:00Z", "2020-03-13T00:00:00Z"),
            candles("2019-08-21T00:00:00Z", "2020-06-15T00:00:00Z"),
        ],
    )
    .await;
    // A one-day page, end = start + 1 s: one candle.
    assert_eq!(
        coinbase_rows(&answers[0]),
        expected(ExchangeApi::Coinbase, "2020-03-13", "2020-03-13")
    );
    for a in &answers[1..3] {
        assert_eq!(
            (a.status, &a.body),
            (
                400,
                &serde_json::json!({"message": "start must be before end"})
            )
        );
    }
    // 300 points, both bounds inclusive, is one page.
    assert_eq!(
        coinbase_rows(&answers[3]),
        newest_first(expected(ExchangeApi::Coinbase, "2019-08-21", "2020-06-15"))
    );
}

// --------------------------------------------------------------- bitstamp

fn bitstamp_rows(a: &Answer) -> Vec<(NaiveDate, Ohlcv)> {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["data"]["pair"], "BTC/USD", "{a:?}");
    rows(&a.body["data"]["ohlc"])
        .iter()
        .map(|r| {
            let p = Ohlcv {
                open: string_num(&r["open"]),
                high: string_num(&r["high"]),
                low: string_num(&r["low"]),
                close: string_num(&r["close"]),
                volume: string_num(&r["volume"]),
            };
            (day_of_secs(string_num(&r["timestamp"]) as i64), p)
        })
        .collect()
}

#[actix_rt::test]
async fn bitstamp_ohlc_is_oldest_first_start_and_end_inclusive_at_most_limit() {
    let server = spawn_dialect(ExchangeApi::Bitstamp, |_| {});
    let ohlc = |pair: &str, start: i64, end: i64, limit: u32| {
        format!("api/v2/ohlc/{pair}/?step=86400&limit={limit}&start={start}&end={end}")
    };
    let answers = get_all(
        &server,
        &[
            ohlc("btcusd", secs("2020-03-01"), secs("2020-03-31"), 1000),
            ohlc(
                "btcusd",
                secs("2020-03-01") + 1,
                secs("2020-03-31") - 1,
                1000,
            ),
            ohlc("btcusd", secs("2020-03-01"), secs("2020-03-31"), 7),
            ohlc("btcusd", secs("2016-01-01"), secs("2020-12-31"), 1000),
            ohlc("dogeusd", secs("2020-03-01"), secs("2020-03-31"), 1000),
            ohlc("btcusd", secs("2020-06-01"), secs("2020-06-30"), 1000),
            "api/v2/ohlc/btcusd/?step=3600&limit=10".to_owned(),
            "api/v2/ohlc/btcusd/?step=86400&limit=10&end=tomorrow".to_owned(),
            "api/v2/trading-pairs-info/".to_owned(),
        ],
    )
    .await;
    assert_eq!(
        bitstamp_rows(&answers[0]),
        expected(ExchangeApi::Bitstamp, "2020-03-01", "2020-03-31")
    );
    assert_eq!(
        bitstamp_rows(&answers[1]),
        expected(ExchangeApi::Bitstamp, "2020-03-02", "2020-03-30")
    );
    assert_eq!(
        bitstamp_rows(&answers[2]),
        expected(ExchangeApi::Bitstamp, "2020-03-01", "2020-03-31")[..7]
    );
    assert_eq!(
        bitstamp_rows(&answers[3]),
        expected(ExchangeApi::Bitstamp, "2016-01-01", "2020-12-31")[..1000]
    );
    assert_eq!(answers[4].status, 404);
    assert_eq!(
        answers[4].body,
        serde_json::json!({"status": "error", "reason": "Invalid currency pair", "code": "API0005"})
    );
    let june = bitstamp_rows(&answers[5]);
    assert_eq!(
        june,
        expected(ExchangeApi::Bitstamp, "2020-06-01", "2020-06-30")
    );
    assert_eq!(june.last().map(|r| r.0), Some(day(TODAY)));
    for (a, name) in answers[6..8].iter().zip(["step", "end"]) {
        assert_eq!(a.status, 400, "{a:?}");
        assert!(
            a.body["reason"].as_str().is_some_and(|m| m.contains(name)),
            "{name}: {a:?}"
        );
    }
    assert!(rows(&answers[8].body).contains(&serde_json::json!({
        "name": "BTC/USD", "url_symbol": "btcusd", "trading": "Enabled"
    })));
}

// -------------------------------------------------------------------- okx

/// OKX rows as (ts, price, confirm).
fn okx_rows(a: &Answer) -> Vec<(i64, Ohlcv, String)> {
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(
        (&a.body["code"], &a.body["msg"]),
        (&Value::from("0"), &Value::from(""))
    );
    rows(&a.body["data"])
        .iter()
        .map(|r| {
            let p = Ohlcv {
                open: string_num(&r[1]),
                high: string_num(&r[2]),
                low: string_num(&r[3]),
                close: string_num(&r[4]),
                volume: string_num(&r[5]),
            };
            let ts = string_num(&r[0]) as i64;
            (ts, p, r[8].as_str().expect("confirm").to_owned())
        })
        .collect()
}

fn utc_days(rows: &[(i64, Ohlcv, String)], offset_ms: i64) -> Vec<(NaiveDate, Ohlcv)> {
    rows.iter()
        .map(|(ts, p, _)| {
            assert_eq!((ts - offset_ms).rem_euclid(DAY_MS), 0, "anchored: {ts}");
            (day_of_secs((ts - offset_ms) / 1000), *p)
        })
        .collect()
}

#[actix_rt::test]
async fn okx_candles_are_newest_first_strictly_between_before_and_after_at_most_100() {
    let server = spawn_dialect(ExchangeApi::Okx, |_| {});
    let candles = |inst: &str, bar: &str, after: i64, before: i64, limit: u32| {
        format!("api/v5/market/history-candles?instId={inst}&bar={bar}&after={after}&before={before}&limit={limit}")
    };
    let answers = get_all(
        &server,
        &[
            candles(
                "BTC-USDT",
                "1Dutc",
                ms("2020-03-31") + DAY_MS,
                ms("2020-03-01") - 1,
                100,
            ),
            candles("BTC-USDT", "1Dutc", ms("2020-03-31"), ms("2020-03-01"), 100),
            candles(
                "BTC-USDT",
                "1Dutc",
                ms("2020-03-31") + DAY_MS,
                ms("2020-03-01") - 1,
                5,
            ),
            candles("BTC-USDT", "1Dutc", ms("2020-12-31"), ms("2016-01-01"), 300),
            candles(
                "BTC-USDT",
                "1Dutc",
                ms("2020-06-30"),
                ms("2020-06-01") - 1,
                100,
            ),
            candles(
                "BTC-USDT",
                "1D",
                ms("2020-03-31") + DAY_MS,
                ms("2020-03-01") - 1,
                100,
            ),
            candles(
                "DOGE-USDT",
                "1Dutc",
                ms("2020-03-31"),
                ms("2020-03-01"),
                100,
            ),
            candles("BTC-USDT", "1H", ms("2020-03-31"), ms("2020-03-01"), 100),
            "api/v5/market/history-candles?instId=BTC-USDT&bar=1Dutc&after=now".to_owned(),
            "api/v5/public/instruments?instType=SPOT".to_owned(),
        ],
    )
    .await;
    let march = newest_first(expected(ExchangeApi::Okx, "2020-03-01", "2020-03-31"));
    assert_eq!(utc_days(&okx_rows(&answers[0]), 0), march);
    // Both bounds exclusive: ts = before and ts = after are left out.
    assert_eq!(
        utc_days(&okx_rows(&answers[1]), 0),
        newest_first(expected(ExchangeApi::Okx, "2020-03-02", "2020-03-30"))
    );
    assert_eq!(utc_days(&okx_rows(&answers[2]), 0), march[..5]);
    // At most 100, the newest before `after` (today, as the future is absent).
    let deep = utc_days(&okx_rows(&answers[3]), 0);
    assert_eq!(
        deep,
        newest_first(expected(ExchangeApi::Okx, "2016-01-01", TODAY))[..100]
    );
    // Today is open ("0"), every closed day confirmed ("1").
    let june = okx_rows(&answers[4]);
    assert_eq!(june[0].0, ms(TODAY));
    assert_eq!(june[0].2, "0");
    assert!(june[1..].iter().all(|r| r.2 == "1"), "{june:?}");
    assert_eq!(
        utc_days(&june, 0),
        newest_first(expected(ExchangeApi::Okx, "2020-06-01", TODAY))
    );
    // bar=1D: the same days' prices, opening at Hong Kong midnight.
    let hk = okx_rows(&answers[5]);
    let hk_days = utc_days(&hk, -8 * 3_600_000);
    assert!(
        hk.iter().all(|r| r.0.rem_euclid(DAY_MS) == 16 * 3_600_000),
        "{hk:?}"
    );
    // The same bounds take in 1 April (its ts is 8 h before `after`) and
    // leave out 1 March (its ts is 8 h before `before`).
    assert_eq!(
        hk_days,
        newest_first(expected(ExchangeApi::Okx, "2020-03-02", "2020-04-01"))
    );
    assert_eq!(
        (answers[6].status, &answers[6].body),
        (
            200,
            &serde_json::json!({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
        )
    );
    for (a, name) in answers[7..9].iter().zip(["bar", "after"]) {
        assert_eq!(a.status, 400, "{a:?}");
        assert!(
            a.body["msg"].as_str().is_some_and(|m| m.contains(name)),
            "{name}: {a:?}"
        );
    }
    assert!(rows(&answers[9].body["data"]).contains(&serde_json::json!({
        "instId": "BTC-USDT", "baseCcy": "BTC", "quoteCcy": "USDT", "state": "live"
    })));
}

// --------------------------------------------------------------- bitfinex

fn bitfinex_rows(a: &Answer) -> Vec<(NaiveDate, Ohlcv)> {
    assert_eq!(a.status, 200, "{a:?}");
    rows(&a.body)
        .iter()
        .map(|r| {
            assert_eq!(r.as_array().map(Vec::len), Some(6), "{r}");
            let p = Ohlcv {
                open: json_num(&r[1]),
                close: json_num(&r[2]),
                high: json_num(&r[3]),
                low: json_num(&r[4]),
                volume: json_num(&r[5]),
            };
            let mts = r[0].as_i64().expect("MTS");
            assert_eq!(mts.rem_euclid(DAY_MS), 0, "anchored: {mts}");
            (day_of_secs(mts / 1000), p)
        })
        .collect()
}

#[actix_rt::test]
async fn bitfinex_candles_are_within_inclusive_start_and_end_sorted_as_asked_at_most_limit() {
    let server = spawn_dialect(ExchangeApi::Bitfinex, |_| {});
    let hist = |key: &str, query: String| format!("v2/candles/{key}/hist?{query}");
    let window =
        |from: &str, to: &str, extra: &str| format!("start={}&end={}{extra}", ms(from), ms(to));
    let answers = get_all(
        &server,
        &[
            hist(
                "trade:1D:tBTCUSD",
                window("2020-03-01", "2020-03-31", "&sort=1"),
            ),
            hist("trade:1D:tBTCUSD", window("2020-03-01", "2020-03-31", "")),
            hist(
                "trade:1D:tBTCUSD",
                window("2020-03-01", "2020-03-31", "&sort=1&limit=5"),
            ),
            hist(
                "trade:1D:tBTCUSD",
                window("2016-01-01", "2020-12-31", "&sort=1"),
            ),
            hist(
                "trade:1D:tBTCUSD",
                window("2016-01-01", "2020-12-31", "&sort=1&limit=20000"),
            ),
            hist(
                "trade:1D:tBTCUSD",
                window("2020-06-01", "2020-06-30", "&sort=1"),
            ),
            hist(
                "trade:1D:tDOGEUSD",
                window("2020-03-01", "2020-03-31", "&sort=1"),
            ),
            hist(
                "trade:1h:tBTCUSD",
                window("2020-03-01", "2020-03-31", "&sort=1"),
            ),
            hist("trade:1D:tBTCUSD", "start=yesterday".to_owned()),
            "v2/conf/pub:list:pair:exchange".to_owned(),
        ],
    )
    .await;
    let march = expected(ExchangeApi::Bitfinex, "2020-03-01", "2020-03-31");
    assert_eq!(bitfinex_rows(&answers[0]), march);
    // Without sort=1, newest first.
    assert_eq!(bitfinex_rows(&answers[1]), newest_first(march.clone()));
    assert_eq!(bitfinex_rows(&answers[2]), march[..5]);
    // 100 by default, at most 10000.
    let all = expected(ExchangeApi::Bitfinex, "2016-01-01", TODAY);
    assert_eq!(bitfinex_rows(&answers[3]), all[..100]);
    assert_eq!(bitfinex_rows(&answers[4]), all);
    let june = bitfinex_rows(&answers[5]);
    assert_eq!(
        june,
        expected(ExchangeApi::Bitfinex, "2020-06-01", "2020-06-30")
    );
    assert_eq!(
        june.last().map(|r| r.0),
        Some(day(TODAY)),
        "today last, partial"
    );
    for (a, name) in answers[6..9].iter().zip(["symbol", "time_frame", "start"]) {
        assert_eq!(a.status, 500, "{a:?}");
        assert_eq!(
            a.body,
            serde_json::json!(["error", 10020, format!("{name}: invalid")])
        );
    }
    assert_eq!(
        answers[9].body,
        serde_json::json!([["BTCUSD", "ETHUSD", "LTCUSD"]])
    );
}

// --------------------------------------------------------------- poloniex

/// Poloniex rows as (day, price, ts, closeTime).
fn poloniex_rows(a: &Answer) -> Vec<(NaiveDate, Ohlcv, i64, i64)> {
    assert_eq!(a.status, 200, "{a:?}");
    rows(&a.body)
        .iter()
        .map(|r| {
            assert_eq!(r.as_array().map(Vec::len), Some(14), "{r}");
            assert_eq!(r[11], "DAY_1", "{r}");
            let p = Ohlcv {
                low: string_num(&r[0]),
                high: string_num(&r[1]),
                open: string_num(&r[2]),
                close: string_num(&r[3]),
                volume: string_num(&r[5]),
            };
            let start = r[12].as_i64().expect("startTime");
            let close_time = r[13].as_i64().expect("closeTime");
            assert_eq!(close_time, start + DAY_MS - 1, "{r}");
            (
                day_of_secs(start / 1000),
                p,
                r[9].as_i64().expect("ts"),
                close_time,
            )
        })
        .collect()
}

fn days_and_prices<T, U>(rows: &[(NaiveDate, Ohlcv, T, U)]) -> Vec<(NaiveDate, Ohlcv)> {
    rows.iter().map(|r| (r.0, r.1)).collect()
}

#[actix_rt::test]
async fn poloniex_candles_are_oldest_first_within_start_and_end_time_at_most_500() {
    let server = spawn_dialect(ExchangeApi::Poloniex, |_| {});
    let candles = |market: &str, from: &str, to: &str, limit: u32| {
        format!(
            "markets/{market}/candles?interval=DAY_1&startTime={}&endTime={}&limit={limit}",
            ms(from),
            ms(to) + DAY_MS - 1
        )
    };
    let answers = get_all(
        &server,
        &[
            candles("BTC_USDT", "2020-03-01", "2020-03-31", 500),
            candles("BTC_USDT", "2020-03-01", "2020-03-31", 5),
            candles("BTC_USDT", "2016-01-01", "2020-12-31", 1000),
            candles("BTC_USDT", "2020-06-01", "2020-06-30", 500),
            candles("DOGE_USDT", "2020-03-01", "2020-03-31", 500),
            "markets/BTC_USDT/candles?interval=HOUR_1".to_owned(),
            "markets/BTC_USDT/candles?interval=DAY_1&limit=0".to_owned(),
            "markets".to_owned(),
        ],
    )
    .await;
    assert_eq!(
        days_and_prices(&poloniex_rows(&answers[0])),
        expected(ExchangeApi::Poloniex, "2020-03-01", "2020-03-31")
    );
    assert_eq!(
        days_and_prices(&poloniex_rows(&answers[1])),
        expected(ExchangeApi::Poloniex, "2020-03-01", "2020-03-31")[..5]
    );
    assert_eq!(
        days_and_prices(&poloniex_rows(&answers[2])),
        expected(ExchangeApi::Poloniex, "2016-01-01", "2020-12-31")[..500]
    );
    // Today's candle closes in the future; its ts is the time of the answer.
    let june = poloniex_rows(&answers[3]);
    assert_eq!(
        days_and_prices(&june),
        expected(ExchangeApi::Poloniex, "2020-06-01", "2020-06-30")
    );
    let open = june.last().expect("today's candle");
    assert_eq!(open.0, day(TODAY));
    assert_eq!(open.2, now().timestamp_millis());
    assert!(open.3 > now().timestamp_millis());
    assert!(june[..june.len() - 1]
        .iter()
        .all(|r| r.3 < now().timestamp_millis()));
    assert_eq!(
        (answers[4].status, &answers[4].body),
        (
            400,
            &serde_json::json!({"code": 24101, "message": "Invalid symbol!"})
        )
    );
    for (a, (name, code)) in answers[5..7]
        .iter()
        .zip([("interval", 24102), ("limit", 24104)])
    {
        assert_eq!(
            (a.status, &a.body["code"]),
            (400, &Value::from(code)),
            "{a:?}"
        );
        assert!(
            a.body["message"].as_str().is_some_and(|m| m.contains(name)),
            "{name}: {a:?}"
        );
    }
    assert!(rows(&answers[7].body).contains(&serde_json::json!({
        "symbol": "BTC_USDT", "baseCurrencyName": "BTC", "quoteCurrencyName": "USDT",
        "displayName": "BTC/USDT", "state": "NORMAL"
    })));
}

// ----------------------------------------------------------------- hitbtc

fn hitbtc_rows(a: &Answer) -> Vec<(NaiveDate, Ohlcv)> {
    assert_eq!(a.status, 200, "{a:?}");
    rows(&a.body)
        .iter()
        .map(|r| {
            let p = Ohlcv {
                open: string_num(&r["open"]),
                high: string_num(&r["max"]),
                low: string_num(&r["min"]),
                close: string_num(&r["close"]),
                volume: string_num(&r["volume"]),
            };
            let at: DateTime<Utc> = r["timestamp"]
                .as_str()
                .expect("an ISO timestamp")
                .parse()
                .expect("an ISO timestamp");
            assert_eq!(at.timestamp_millis().rem_euclid(DAY_MS), 0, "{r}");
            (at.date_naive(), p)
        })
        .collect()
}

#[actix_rt::test]
async fn hitbtc_candles_are_within_from_and_till_sorted_as_asked_at_most_1000() {
    let server = spawn_dialect(ExchangeApi::Hitbtc, |_| {});
    let candles = |symbol: &str, from: &str, till: &str, extra: &str| {
        format!(
            "api/3/public/candles/{symbol}?period=D1&from={from}T00:00:00.000Z&till={till}T23:59:59.999Z{extra}"
        )
    };
    let answers = get_all(
        &server,
        &[
            candles(
                "BTCUSDT",
                "2020-03-01",
                "2020-03-31",
                "&sort=ASC&limit=1000",
            ),
            candles("BTCUSDT", "2020-03-01", "2020-03-31", ""),
            candles("BTCUSDT", "2020-03-01", "2020-03-31", "&sort=ASC&limit=5"),
            candles(
                "BTCUSDT",
                "2016-01-01",
                "2020-12-31",
                "&sort=ASC&limit=5000",
            ),
            candles("BTCUSDT", "2020-06-01", "2020-06-30", "&sort=ASC"),
            candles("DOGEUSDT", "2020-03-01", "2020-03-31", "&sort=ASC"),
            "api/3/public/candles/BTCUSDT?period=M30".to_owned(),
            "api/3/public/candles/BTCUSDT?period=D1&from=March".to_owned(),
            format!(
                "api/3/public/candles/BTCUSDT?period=D1&from={}&till={}&sort=ASC",
                ms("2020-03-01"),
                ms("2020-03-31")
            ),
            "api/3/public/symbol".to_owned(),
        ],
    )
    .await;
    let march = expected(ExchangeApi::Hitbtc, "2020-03-01", "2020-03-31");
    assert_eq!(hitbtc_rows(&answers[0]), march);
    // Without sort=ASC, newest first (as HitBTC answers).
    assert_eq!(hitbtc_rows(&answers[1]), newest_first(march.clone()));
    assert_eq!(hitbtc_rows(&answers[2]), march[..5]);
    assert_eq!(
        hitbtc_rows(&answers[3]),
        expected(ExchangeApi::Hitbtc, "2016-01-01", "2020-12-31")[..1000]
    );
    let june = hitbtc_rows(&answers[4]);
    assert_eq!(
        june,
        expected(ExchangeApi::Hitbtc, "2020-06-01", "2020-06-30")
    );
    assert_eq!(june.last().map(|r| r.0), Some(day(TODAY)));
    assert_eq!(answers[5].status, 400);
    assert_eq!(answers[5].body["error"]["code"], 2001, "{:?}", answers[5]);
    assert_eq!(answers[5].body["error"]["message"], "Symbol not found");
    for (a, name) in answers[6..8].iter().zip(["period", "from"]) {
        assert_eq!(
            (a.status, &a.body["error"]["code"]),
            (400, &Value::from(10001)),
            "{a:?}"
        );
        assert!(
            a.body["error"]["description"]
                .as_str()
                .is_some_and(|m| m.contains(name)),
            "{name}: {a:?}"
        );
    }
    assert_eq!(hitbtc_rows(&answers[8]), march, "milliseconds too");
    assert_eq!(
        answers[9].body["BTCUSDT"],
        serde_json::json!({"type": "spot", "base_currency": "BTC", "quote_currency": "USDT", "status": "working"})
    );
}

// -------------------------------------------------------------------- htx

/// The hourly candles of an HTX answer, oldest first, as (open time in
/// seconds, price).
fn htx_hours(a: &Answer) -> Vec<(i64, Ohlcv)> {
    assert_eq!(
        (a.status, &a.body["status"]),
        (200, &Value::from("ok")),
        "{a:?}"
    );
    let mut hours: Vec<(i64, Ohlcv)> = a.body["data"]
        .as_array()
        .expect("a data list")
        .iter()
        .map(|r| {
            let id = r["id"].as_i64().expect("an id in seconds");
            assert_eq!(id.rem_euclid(3600), 0, "on the hour: {r}");
            let p = Ohlcv {
                open: json_num(&r["open"]),
                high: json_num(&r["high"]),
                low: json_num(&r["low"]),
                close: json_num(&r["close"]),
                volume: json_num(&r["amount"]),
            };
            (id, p)
        })
        .collect();
    assert!(
        hours.windows(2).all(|w| w[0].0 > w[1].0),
        "newest first, each hour once"
    );
    hours.reverse();
    hours
}

/// The UTC days the hours add up to, as HTX's adapter builds them.
fn htx_days(hours: &[(i64, Ohlcv)]) -> Vec<(NaiveDate, Ohlcv, usize)> {
    let mut days: Vec<(NaiveDate, Ohlcv, usize)> = Vec::new();
    for &(id, h) in hours {
        let d = day_of_secs(id);
        match days.last_mut() {
            Some((last, p, n)) if *last == d => {
                p.high = p.high.max(h.high);
                p.low = p.low.min(h.low);
                p.close = h.close;
                p.volume += h.volume;
                *n += 1;
            }
            _ => days.push((d, h, 1)),
        }
    }
    days
}

fn htx_request(from: i64, to: i64, size: usize) -> String {
    format!("market/history/candles?symbol=btcusdt&period=60min&from={from}&to={to}&size={size}")
}

#[actix_rt::test]
async fn htx_serves_hourly_candles_that_add_up_to_each_utc_day() {
    let server = spawn_dialect(ExchangeApi::Htx, |_| {});
    let june = htx_request(secs("2020-06-01"), secs("2020-06-16"), 1000);
    let answers = get_all(
        &server,
        &[
            june,
            // Before the 2000 most recent hours: nothing.
            htx_request(secs("2020-03-01"), secs("2020-03-20"), 1000),
            htx_request(secs("2020-06-01"), secs("2020-06-16"), 30),
            htx_request(secs("2020-06-01"), secs("2020-06-02"), 1001),
            "market/history/candles?symbol=btcusdt&period=1day&size=10".to_owned(),
            "market/history/candles?symbol=xbtusdt&period=60min&size=10".to_owned(),
            "v1/common/symbols".to_owned(),
        ],
    )
    .await;
    let hours = htx_hours(&answers[0]);
    let days = htx_days(&hours);
    let want = expected(ExchangeApi::Htx, "2020-06-01", "2020-06-16");
    assert_eq!(
        days.iter().map(|(d, p, _)| (*d, *p)).collect::<Vec<_>>(),
        want,
        "the hours add up to each published day exactly, today's so far"
    );
    let counts: Vec<usize> = days.iter().map(|(_, _, n)| *n).collect();
    assert!(
        counts[..counts.len() - 1].iter().all(|n| *n == 24),
        "{counts:?}"
    );
    assert_eq!(
        days.last().map(|d| (d.0, d.2)),
        Some((day(TODAY), 13)),
        "hours 0..=12 of today"
    );
    assert_eq!(answers[0].body["ts"], Value::from(now().timestamp_millis()));
    assert_eq!(htx_hours(&answers[1]), [], "out of reach");
    let newest = htx_hours(&answers[2]);
    assert_eq!(
        newest[..],
        hours[hours.len() - 30..],
        "size keeps the newest"
    );
    for (a, msg) in answers[3..6]
        .iter()
        .zip(["invalid size", "invalid period", "invalid symbol"])
    {
        assert_eq!(
            (a.status, &a.body["status"]),
            (200, &Value::from("error")),
            "{a:?}"
        );
        assert!(
            a.body["err-msg"]
                .as_str()
                .is_some_and(|m| m.starts_with(msg)),
            "{a:?}"
        );
    }
    assert!(answers[6].body["data"]
        .as_array()
        .expect("a data list")
        .contains(&serde_json::json!({
            "symbol": "btcusdt", "base-currency": "btc", "quote-currency": "usdt", "state": "online"
        })));
    server.stop().await;
}

/// The status line of a GET sent with no User-Agent header at all.
async fn status_without_user_agent(server: &PriceServer, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = server.addr;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    actix_rt::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).expect("a connection");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        s.write_all(request.as_bytes())
            .expect("the request is sent");
        let mut answer = String::new();
        let _ = s.take(1 << 16).read_to_string(&mut answer);
        answer.lines().next().unwrap_or_default().to_owned()
    })
    .await
    .expect("the client thread")
}

#[actix_rt::test]
async fn htx_refuses_a_request_without_a_user_agent_with_403() {
    let server = spawn_dialect(ExchangeApi::Htx, |_| {});
    let path = htx_request(secs("2020-06-01"), secs("2020-06-02"), 48);
    assert_eq!(
        status_without_user_agent(&server, &path).await,
        "HTTP/1.1 403 Forbidden"
    );
    assert_eq!(
        get_one(&server, &path).await.status,
        200,
        "ureq names itself"
    );
    server.stop().await;
}

// ------------------------------------------------------------------ cexio

/// POSTs `body` to CEX.IO's candles route.
async fn cexio_post(server: &PriceServer, path: &str, body: Value) -> Answer {
    let url = server.url().join(path).expect("a path").to_string();
    actix_rt::task::spawn_blocking(move || {
        let resp = match ureq::post(&url).send_json(body) {
            Ok(resp) => resp,
            Err(ureq::Error::Status(_, resp)) => resp,
            Err(e) => panic!("{url}: {e}"),
        };
        Answer {
            status: resp.status(),
            retry_after: resp.header("Retry-After").and_then(|v| v.parse().ok()),
            body: resp.into_json().expect("JSON"),
        }
    })
    .await
    .expect("the client thread")
}

const CEXIO_CANDLES: &str = "api/spot/rest-public/get_candles";

fn cexio_rows(a: &Answer) -> Vec<(NaiveDate, Ohlcv, bool)> {
    assert_eq!(
        (a.status, &a.body["ok"]),
        (200, &Value::from("ok")),
        "{a:?}"
    );
    rows(&a.body["data"])
        .iter()
        .map(|r| {
            let t: i64 = string_num(&r["timestamp"]) as i64;
            assert_eq!(r["volume"], "0", "quotes have no volume");
            assert_eq!(r["resolution"], "1d");
            let p = Ohlcv {
                open: string_num(&r["open"]),
                high: string_num(&r["high"]),
                low: string_num(&r["low"]),
                close: string_num(&r["close"]),
                volume: 0.0,
            };
            let closed = r["isClosed"].as_bool().expect("isClosed");
            (day_of_secs(t / 1000), p, closed)
        })
        .collect()
}

#[actix_rt::test]
async fn cexio_serves_best_bid_daily_candles_to_a_post() {
    let server = spawn_dialect(ExchangeApi::Cexio, |o| o.rate_limit = Some(0.01));
    let june = cexio_post(
        &server,
        CEXIO_CANDLES,
        serde_json::json!({"pair": "BTC-USD", "resolution": "1d", "dataType": "bestBid",
            "fromISO": "2020-06-01T00:00:00.000Z", "limit": 30}),
    )
    .await;
    let got = cexio_rows(&june);
    let want: Vec<(NaiveDate, Ohlcv, bool)> =
        expected(ExchangeApi::Cexio, "2020-06-01", "2020-06-30")
            .into_iter()
            .map(|(d, p)| (d, Ohlcv { volume: 0.0, ..p }, d != day(TODAY)))
            .collect();
    assert_eq!(
        got, want,
        "bids are the dataset's prices; today is not closed"
    );
    // Over the rate limit: 429, CEX.IO's text, Retry-After.
    let again = cexio_post(
        &server,
        CEXIO_CANDLES,
        serde_json::json!({"pair": "BTC-USD", "resolution": "1d", "dataType": "bestBid",
            "fromISO": "2020-06-01T00:00:00.000Z", "limit": 30}),
    )
    .await;
    assert_eq!(again.status, 429, "{again:?}");
    assert!(
        again.retry_after.is_some_and(|w| (1..=100).contains(&w)),
        "{again:?}"
    );
    assert_eq!(
        again.body,
        serde_json::json!({"ok": "error", "error": "API rate limit reached"})
    );
    let pairs = cexio_post(
        &server,
        "api/spot/rest-public/get_pairs_info",
        serde_json::json!({}),
    )
    .await;
    assert!(rows(&pairs.body["data"])
        .iter()
        .any(|p| p["base"] == "BTC" && p["quote"] == "USD"));
    server.stop().await;
}

#[actix_rt::test]
async fn cexio_refuses_what_its_api_refuses() {
    let server = spawn_dialect(ExchangeApi::Cexio, |_| {});
    let from = "2020-06-01T00:00:00.000Z";
    let cases = [
        (
            serde_json::json!({"pair": "XBT-USD", "resolution": "1d", "dataType": "bestBid", "fromISO": from, "limit": 3}),
            "Unsupported pair",
        ),
        (
            serde_json::json!({"pair": "BTC-USD", "resolution": "1d", "fromISO": from, "limit": 3}),
            "dataType",
        ),
        (
            serde_json::json!({"pair": "BTC-USD", "resolution": "1h", "dataType": "bestBid", "fromISO": from, "limit": 3}),
            "resolution",
        ),
        (
            serde_json::json!({"pair": "BTC-USD", "resolution": "1d", "dataType": "bestBid", "fromISO": from}),
            "limit is required",
        ),
        (
            serde_json::json!({"pair": "BTC-USD", "resolution": "1d", "dataType": "bestBid", "fromISO": from,
                "toISO": "2020-06-05T00:00:00.000Z", "limit": 3}),
            "both",
        ),
        (
            serde_json::json!({"pair": "BTC-USD", "resolution": "1d", "dataType": "bestBid", "fromISO": from, "limit": 1001}),
            "limit",
        ),
    ];
    for (body, needle) in cases {
        let a = cexio_post(&server, CEXIO_CANDLES, body.clone()).await;
        assert_eq!(
            (a.status, &a.body["ok"]),
            (400, &Value::from("error")),
            "{body}: {a:?}"
        );
        assert!(
            a.body["error"].as_str().is_some_and(|m| m.contains(needle)),
            "{body}: {a:?}"
        );
    }
    let ask = cexio_post(
        &server,
        CEXIO_CANDLES,
        serde_json::json!({"pair": "BTC-USD", "resolution": "1d", "dataType": "bestAsk", "fromISO": from, "limit": 3}),
    )
    .await;
    let bid = expected(ExchangeApi::Cexio, "2020-06-01", "2020-06-03");
    for ((d, ask, _), (e, bid)) in cexio_rows(&ask).iter().zip(&bid) {
        assert_eq!(d, e);
        assert!(
            ask.low > bid.low && ask.close > bid.close,
            "{d}: the ask is above the bid"
        );
    }
    server.stop().await;
}

#[actix_rt::test]
async fn htx_and_cexio_serve_huobi_and_cexio_by_default() {
    let seed = Dataset::generated(GeneratedSpec::classic(server::DEFAULT_SEED));
    let want = |name: &str, from: &str, n: usize| -> Vec<(NaiveDate, Ohlcv)> {
        let e = Exchange::new(name).expect("a valid name");
        day(from)
            .iter_days()
            .take(n)
            .filter_map(|d| seed.price_of(&e, &btc(), d).map(|p| (d, p)))
            .collect()
    };
    let start = |api: ExchangeApi| {
        let mut opts = ServerOptions::new(loopback(), server::DEFAULT_SEED);
        opts.dialect = api;
        opts.clock = Clock::manual(now());
        server::start(&opts).expect("the seed dataset has the exchange")
    };
    let htx = start(ExchangeApi::Htx);
    let a = get_one(
        &htx,
        &htx_request(secs("2020-06-01"), secs("2020-06-10") + 23 * 3600, 240),
    )
    .await;
    let days: Vec<(NaiveDate, Ohlcv)> = htx_days(&htx_hours(&a))
        .into_iter()
        .map(|(d, p, _)| (d, p))
        .collect();
    assert_eq!(days, want("huobi", "2020-06-01", 10));
    assert!(days.len() > 5, "{days:?}");
    htx.stop().await;
    let cexio = start(ExchangeApi::Cexio);
    let a = cexio_post(
        &cexio,
        CEXIO_CANDLES,
        serde_json::json!({"pair": "BTC-USD", "resolution": "1d", "dataType": "bestBid",
            "fromISO": "2020-06-01T00:00:00.000Z", "limit": 10}),
    )
    .await;
    let days: Vec<(NaiveDate, Ohlcv)> =
        cexio_rows(&a).into_iter().map(|(d, p, _)| (d, p)).collect();
    let quotes: Vec<(NaiveDate, Ohlcv)> = want("cexio", "2020-06-01", 10)
        .into_iter()
        .map(|(d, p)| (d, Ohlcv { volume: 0.0, ..p }))
        .collect();
    assert_eq!(days, quotes);
    assert!(days.len() > 5, "{days:?}");
    cexio.stop().await;
}

// ------------------------------------------------------------- throttling

/// A candle request of each dialect for March 2020, as its client sends it.
fn march_request(api: ExchangeApi) -> String {
    let (from, to) = ("2020-03-01", "2020-03-31");
    match api {
        ExchangeApi::Binance => format!(
            "api/v3/klines?symbol=BTCUSDT&interval=1d&startTime={}&endTime={}&limit=1000",
            ms(from),
            ms(to)
        ),
        ExchangeApi::Kraken => format!(
            "0/public/OHLC?pair=XBTUSD&interval=1440&since={}",
            secs(from) - 1
        ),
        ExchangeApi::Coinbase => format!(
            "products/BTC-USD/candles?granularity=86400&start={from}T00:00:00Z&end={to}T00:00:00Z"
        ),
        ExchangeApi::Bitstamp => format!(
            "api/v2/ohlc/btcusd/?step=86400&limit=1000&start={}&end={}",
            secs(from),
            secs(to)
        ),
        ExchangeApi::Okx => format!(
            "api/v5/market/history-candles?instId=BTC-USDT&bar=1Dutc&after={}&before={}&limit=100",
            ms(to) + DAY_MS,
            ms(from) - 1
        ),
        ExchangeApi::Bitfinex => format!(
            "v2/candles/trade:1D:tBTCUSD/hist?sort=1&start={}&end={}&limit=10000",
            ms(from),
            ms(to) + DAY_MS - 1
        ),
        ExchangeApi::Poloniex => format!(
            "markets/BTC_USDT/candles?interval=DAY_1&startTime={}&endTime={}&limit=500",
            ms(from),
            ms(to) + DAY_MS - 1
        ),
        ExchangeApi::Hitbtc => format!(
            "api/3/public/candles/BTCUSDT?period=D1&from={from}T00:00:00.000Z&till={to}T23:59:59.999Z&sort=ASC&limit=1000"
        ),
        ExchangeApi::Htx => htx_request(secs(from), secs(to) + 23 * 3600, 744),
        ExchangeApi::Cexio => unreachable!("CEX.IO is asked with POSTs (its own tests)"),
        ExchangeApi::Classic => unreachable!("the classic server has no candles"),
    }
}

#[actix_rt::test]
async fn over_the_rate_limit_each_dialect_answers_as_its_exchange_does() {
    // CEX.IO is asked with POSTs: its throttling is tested with them.
    for api in ExchangeApi::EXCHANGES
        .into_iter()
        .filter(|a| *a != ExchangeApi::Cexio)
    {
        // One token a hundred seconds: the first request of a burst gets
        // it, the rest cannot, however slow the machine.
        let server = spawn_dialect(api, |o| o.rate_limit = Some(0.01));
        let burst: Vec<String> = (0..5).map(|_| march_request(api)).collect();
        let answers = get_all(&server, &burst).await;
        assert_eq!(answers[0].status, 200, "{api}: {:?}", answers[0]);
        for a in &answers[1..] {
            match api {
                ExchangeApi::Kraken => {
                    assert_eq!((a.status, a.retry_after), (200, None), "{a:?}");
                    assert_eq!(
                        a.body,
                        serde_json::json!({"error": ["EGeneral:Too many requests"]})
                    );
                }
                // Bitfinex blocks for about a minute and says nothing of it.
                ExchangeApi::Bitfinex => {
                    assert_eq!((a.status, a.retry_after), (429, None), "{a:?}");
                }
                _ => {
                    assert_eq!(a.status, 429, "{api}: {a:?}");
                    let wait = a
                        .retry_after
                        .unwrap_or_else(|| panic!("{api}: Retry-After: {a:?}"));
                    assert!((1..=100).contains(&wait), "{api}: {wait}");
                }
            }
            let expected_body = match api {
                ExchangeApi::Binance => Value::from(-1003),
                ExchangeApi::Coinbase => serde_json::json!({"message": "Slow down"}),
                ExchangeApi::Bitstamp => {
                    serde_json::json!({"status": "error", "reason": "Rate limit exceeded", "code": "API0001"})
                }
                ExchangeApi::Okx => {
                    serde_json::json!({"code": "50011", "msg": "Too Many Requests", "data": []})
                }
                ExchangeApi::Bitfinex => serde_json::json!(["error", 11010, "ratelimit: error"]),
                ExchangeApi::Poloniex => {
                    serde_json::json!({"code": 429, "message": "Too many requests"})
                }
                ExchangeApi::Hitbtc => serde_json::json!({"error": {
                    "code": 429, "message": "Too many requests", "description": "Too many requests"
                }}),
                ExchangeApi::Htx => {
                    serde_json::json!({"status": "error", "err-code": "too-many-request",
                    "err-msg": "request limit exceeded", "data": null})
                }
                _ => a.body.clone(),
            };
            match api {
                ExchangeApi::Binance => assert_eq!(a.body["code"], expected_body, "{a:?}"),
                _ => assert_eq!(a.body, expected_body, "{api}"),
            }
        }
        assert_eq!(server.stats.candle_requests(), 5, "{api}");
        assert_eq!(server.stats.throttled(), 4, "{api}");
        // Listings are not candle requests: never throttled.
        let listing = match api {
            ExchangeApi::Binance => "api/v3/exchangeInfo",
            ExchangeApi::Kraken => "0/public/AssetPairs",
            ExchangeApi::Coinbase => "products",
            ExchangeApi::Bitstamp => "api/v2/trading-pairs-info/",
            ExchangeApi::Bitfinex => "v2/conf/pub:list:pair:exchange",
            ExchangeApi::Poloniex => "markets",
            ExchangeApi::Hitbtc => "api/3/public/symbol",
            ExchangeApi::Htx => "v1/common/symbols",
            _ => "api/v5/public/instruments?instType=SPOT",
        };
        assert_eq!(get_one(&server, listing).await.status, 200, "{api}");
        server.stop().await;
    }
}

#[actix_rt::test]
async fn a_binance_client_that_keeps_going_after_429s_is_banned_with_418() {
    let server = spawn_dialect(ExchangeApi::Binance, |o| {
        o.rate_limit = Some(0.01);
        o.ban_after = Some(2);
        o.ban_for = Duration::from_secs(600);
    });
    let burst: Vec<String> = (0..5)
        .map(|_| march_request(ExchangeApi::Binance))
        .collect();
    let answers = get_all(&server, &burst).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 429, 429, 418, 418], "{answers:?}");
    for banned in &answers[3..] {
        let wait = banned.retry_after.expect("a ban says how long");
        assert!((500..=600).contains(&wait), "{wait}");
        assert_eq!(banned.body["code"], -1003);
    }
    assert_eq!(server.stats.throttled(), 4);
}

// --------------------------------------------------------- start and parity

#[actix_rt::test]
async fn a_dialect_without_its_exchange_in_the_dataset_refuses_to_start() {
    // The classic dataset has no binance: Binance's dialect serves its
    // seed exchange, hitbtc. A dataset without either refuses, naming both
    // the exchange it looked for and the way out.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let csv = dir.path().join("kraken-only.csv");
    std::fs::write(
        &csv,
        "exchange,symbol,day,open,high,low,close,volume\nkraken,btc,2020-03-01,1,2,0.5,1.5,10\n",
    )
    .expect("the CSV is written");
    let mut opts = ServerOptions::new(loopback(), server::DEFAULT_SEED);
    opts.dialect = ExchangeApi::Binance;
    let seeded = server::start(&opts).expect("binance's dialect over hitbtc's prices");
    seeded.stop().await;
    let classic = opts.dataset.clone();
    opts.dataset = Arc::new(Dataset::from_csv(&csv).expect("a dataset"));
    let err = server::start(&opts)
        .err()
        .expect("no binance nor hitbtc in the dataset");
    assert!(
        err.to_string().contains("hitbtc") && err.to_string().contains("--exchange"),
        "{err}"
    );
    opts.dataset = classic;
    opts.exchange = Some(Exchange::new("nasdaq").expect("a valid name"));
    let err = server::start(&opts)
        .err()
        .expect("no nasdaq in the dataset");
    assert!(err.to_string().contains("nasdaq"), "{err}");
    opts.exchange = Some(Exchange::new("kraken").expect("a valid name"));
    let server = server::start(&opts).expect("binance's dialect over kraken's prices");
    server.stop().await;
}

#[actix_rt::test]
async fn bitfinex_poloniex_and_hitbtc_serve_the_seed_exchange_of_their_name_by_default() {
    let seed = Dataset::generated(GeneratedSpec::classic(server::DEFAULT_SEED));
    for api in [
        ExchangeApi::Bitfinex,
        ExchangeApi::Poloniex,
        ExchangeApi::Hitbtc,
    ] {
        let mut opts = ServerOptions::new(loopback(), server::DEFAULT_SEED);
        opts.dialect = api;
        let server = server::start(&opts).expect("the seed dataset has the exchange");
        let a = get_one(&server, &march_request(api)).await;
        let served = match api {
            ExchangeApi::Bitfinex => bitfinex_rows(&a),
            ExchangeApi::Poloniex => days_and_prices(&poloniex_rows(&a)),
            _ => hitbtc_rows(&a),
        };
        let want: Vec<(NaiveDate, Ohlcv)> = day("2020-03-01")
            .iter_days()
            .take(31)
            .filter_map(|d| seed.price_of(&exchange(api), &btc(), d).map(|p| (d, p)))
            .collect();
        assert!(want.len() > 25, "{api}: {want:?}");
        assert_eq!(served, want, "{api}");
        server.stop().await;
    }
}

#[actix_rt::test]
async fn a_dialect_serves_what_the_classic_server_serves_for_its_exchange() {
    let clock = Clock::manual("2020-03-20T12:00:00Z".parse().expect("a time"));
    let tweak = |api: ExchangeApi, clock: &Clock| {
        let clock = clock.clone();
        move |o: &mut ServerOptions| {
            o.dialect = api;
            o.clock = clock;
            o.publish_delay = Some(DELAY);
        }
    };
    let classic = spawn_price_server(tweak(ExchangeApi::Classic, &clock));
    let kraken = spawn_price_server(tweak(ExchangeApi::Kraken, &clock));
    let days: Vec<String> = day("2020-03-01")
        .iter_days()
        .take(25)
        .map(|d| d.to_string())
        .collect();
    let classic_paths: Vec<String> = days
        .iter()
        .map(|d| format!("price/kraken/eth/{d}"))
        .collect();
    let from_classic = get_all(&classic, &classic_paths).await;
    let rows = get_one(
        &kraken,
        &format!(
            "0/public/OHLC?pair=ETHUSD&interval=1440&since={}",
            secs("2020-03-01") - 1
        ),
    )
    .await;
    let served: Vec<Value> = rows.body["result"]["XETHZUSD"]
        .as_array()
        .expect("rows")
        .clone();
    let mut served = served.iter().peekable();
    for (d, classic) in days.iter().zip(&from_classic) {
        let row = served.next_if(|r| r[0].as_i64() == Some(secs(d)));
        match (classic.status, row) {
            (200, Some(r)) => {
                for (field, i) in [
                    ("open", 1),
                    ("high", 2),
                    ("low", 3),
                    ("close", 4),
                    ("volume", 6),
                ] {
                    assert_eq!(
                        json_num(&classic.body[field]),
                        string_num(&r[i]),
                        "{d} {field}"
                    );
                }
            }
            (404, None) => {}
            (status, row) => panic!("{d}: classic {status} {:?}, kraken {row:?}", classic.body),
        }
    }
    assert!(
        served.next().is_none(),
        "no row for a day the classic server has not"
    );
}
