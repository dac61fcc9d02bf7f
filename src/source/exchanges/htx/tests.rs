//! Unit tests of the HTX adapter (`htx/mod.rs`) against its fixtures.

use super::super::common::testing::{d, ohlcv, price, range};
use super::*;
use crate::source::exchanges::fixtures::*;
use crate::source::Throttle;

/// An answer of hourly candles `(day, hour, open, high, low, close,
/// amount)` at server time `ts`.
fn body(ts: &str, rows: &[(&str, i64, f64, f64, f64, f64, f64)]) -> String {
    let ts = ts
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .timestamp_millis();
    let data: Vec<Value> = rows
        .iter()
        .rev()
        .map(|&(day, hour, o, h, l, c, a)| {
            serde_json::json!({
                "id": day_start_ms(d(day)) / 1000 + hour * 3600,
                "open": o, "close": c, "low": l, "high": h,
                "amount": a, "vol": a * c, "count": 3,
            })
        })
        .collect();
    serde_json::json!({"ch": "market.btcusdt.kline.60min", "status": "ok", "ts": ts, "data": data})
        .to_string()
}

/// 24 hours of a day: open 100 at hour 0, high 120 at 5, low 90 at 17,
/// close 110 at 23, 1.5 traded in each hour.
fn full_day(day: &'static str) -> Vec<(&'static str, i64, f64, f64, f64, f64, f64)> {
    (0..24)
        .map(|h| {
            let (o, c): (f64, f64) = match h {
                ..17 => (100.0, 100.0),
                17 => (100.0, 110.0),
                _ => (110.0, 110.0),
            };
            let high = if h == 5 { 120.0 } else { c.max(o) };
            let low = if h == 17 { 90.0 } else { c.min(o) };
            (day, h, o, high, low, c, 1.5)
        })
        .collect()
}

fn parse(days: DayRange, body: &str) -> PageResult {
    Htx.parse_candles("btcusdt", days, 200, None, body.as_bytes(), OhlcOrder::Flag)
}

#[test]
fn the_request_asks_the_pages_hours_within_a_thousand() {
    assert_eq!(
        Htx.candles_request("btcusdt", range("2020-03-01", "2020-03-02")),
        "market/history/candles?symbol=btcusdt&period=60min&from=1583020800&to=1583190000&size=48"
    );
    assert_eq!(Htx.page_days(), 41);
    let page = range("2020-03-01", "2020-04-10");
    assert!(Htx.candles_request("btcusdt", page).ends_with("size=984"));
}

#[test]
fn a_utc_day_is_built_from_its_24_hourly_candles_and_flagged_derived() {
    let got = parse(
        range("2020-03-01", "2020-03-01"),
        &body("2020-03-05T10:00:00Z", &full_day("2020-03-01")),
    )
    .unwrap();
    match &got[0].answer {
        Answer::Price { price, flags } => {
            assert_eq!(*price, ohlcv(100.0, 120.0, 90.0, 110.0, 36.0));
            assert_eq!(flags.names(), ["derived:1h"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(!got[0].open);
}

#[test]
fn a_past_day_with_an_hour_missing_fails_saying_how_many_it_has() {
    let mut rows = full_day("2020-03-01");
    rows.remove(12);
    let got = parse(
        range("2020-03-01", "2020-03-02"),
        &body("2020-03-05T10:00:00Z", &rows),
    )
    .unwrap();
    match &got[0].answer {
        Answer::Failed { reason } => {
            assert!(reason.starts_with("23 of 24 hourly candles"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(got[1].answer, Answer::NoPrice, "a day with no hours");
}

#[test]
fn the_open_day_is_built_from_the_hours_so_far_and_marked_open() {
    let mut rows = full_day("2020-03-01");
    rows.extend(full_day("2020-03-02").into_iter().take(11));
    let got = parse(
        range("2020-03-01", "2020-03-03"),
        &body("2020-03-02T10:30:00Z", &rows),
    )
    .unwrap();
    assert!(!got[0].open);
    assert_eq!(
        price(&got[1]),
        ohlcv(100.0, 120.0, 100.0, 100.0, 16.5),
        "hours 0..=10"
    );
    assert!(got[1].open);
    assert_eq!(got[2].answer, Answer::NoPrice);
    assert!(got[2].open, "tomorrow is not over either");
}

#[test]
fn hours_out_of_order_or_twice_or_off_the_hour() {
    let mut rows = full_day("2020-03-01");
    rows.reverse();
    let got = parse(
        range("2020-03-01", "2020-03-01"),
        &body("2020-03-05T00:00:00Z", &rows),
    )
    .unwrap();
    assert_eq!(price(&got[0]).open, 100.0);
    assert_eq!(price(&got[0]).close, 110.0);
    let mut twice = full_day("2020-03-01");
    twice.push(twice[3]);
    let e = parse(
        range("2020-03-01", "2020-03-01"),
        &body("2020-03-05T00:00:00Z", &twice),
    )
    .unwrap_err();
    assert!(
        e.retryable && e.reason.contains("two hourly candles"),
        "{e:?}"
    );
    let off = r#"{"status":"ok","ts":1583020800000,"data":[{"id":1583020860,"open":1,"close":1,"low":1,"high":1,"amount":1}]}"#;
    let e = parse(range("2020-03-01", "2020-03-01"), off).unwrap_err();
    assert!(e.reason.contains("not on the hour"), "{e:?}");
}

#[test]
fn a_refusal_without_a_body_names_its_status() {
    let days = range("2020-03-01", "2020-03-01");
    let e = Htx
        .parse_candles("btcusdt", days, 403, None, b"<html>", OhlcOrder::Flag)
        .unwrap_err();
    assert!(e.reason.contains("403"), "{e:?}");
}

#[test]
fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
    let days = range("2020-03-01", "2020-03-01");
    for (body, needle) in [
        ("<html>", "malformed JSON"),
        (r#"{"data":[]}"#, "status"),
        (r#"{"status":"ok"}"#, "'data'"),
        (
            r#"{"status":"ok","data":[{"id":1583020800,"open":1,"close":1,"low":1,"high":1}]}"#,
            "'amount'",
        ),
    ] {
        let e = parse(days, body).unwrap_err();
        assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
    }
}

#[test]
fn the_market_form_is_lower_case_and_the_reach_is_the_hourly_one() {
    assert!(Htx.check_market("btcusdt").is_ok());
    assert!(Htx.check_market("BTCUSDT").is_err());
    assert_eq!(Htx.earliest_day(d("2020-06-15")), Some(d("2020-03-25")));
}

/// The recorded answers in `tests/fixtures/htx/` and what each gives
/// (read by `exchanges::fixtures`).
pub fn fixtures() -> Vec<Fixture> {
    vec![
        page(
            recorded!("htx/docs_error_invalid_symbol.json"),
            "btcusdt",
            "2020-03-01..2020-03-01",
        )
        .fails(permanent(
            "unknown market \"btcusdt\" on htx: invalid-parameter invalid symbol",
        )),
        page(
            recorded!("htx/docs_error_invalid_period.json"),
            "btcusdt",
            "2020-03-01..2020-03-01",
        )
        .fails(permanent(
            "htx refused the request: invalid-parameter invalid period",
        )),
        page(
            recorded!("htx/docs_error_invalid_size.json"),
            "btcusdt",
            "2020-03-01..2020-03-01",
        )
        .fails(permanent(
            "htx refused the request: bad-request invalid size, valid range: [1,2000]",
        )),
        page(
            recorded!("htx/throttled.json"),
            "btcusdt",
            "2020-03-01..2020-03-01",
        )
        .status(429, Some("1"))
        .fails(
            retryable("rate limited: too-many-request request limit exceeded")
                .throttled(Throttle::RateLimited, Some(Duration::from_secs(1))),
        ),
        listing(recorded!("htx/symbols.json")).picks(&[
            ("btc", Some("btcusdt")),
            ("eth", Some("ethusdc")),
            ("ltc", None),
        ]),
    ]
}
