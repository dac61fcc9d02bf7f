//! Turns one HTTP answer to `GET /price/{exchange}/{symbol}/{date}` into a
//! checked `Answer` or a `FetchFailure` that says what was wrong.
//!
//! Pure: no I/O, so every malformed answer a server can give is testable
//! here. A violation is always a failure naming the field, never a panic and
//! never a silently wrong price.

use std::time::Duration;

use serde::Deserialize;

use crate::model::{Ohlcv, TaskKey};

/// What the source said about one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Price(Ohlcv),
    /// `404`, an empty body or `null`: the source has no price there.
    Missing,
}

/// A request that did not produce an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchFailure {
    pub reason: String,
    /// Worth trying again (a network error, a 5xx, a broken body).
    pub retryable: bool,
    /// What the server asked for with `Retry-After`, if anything.
    pub retry_after: Option<Duration>,
}

impl FetchFailure {
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: true,
            retry_after: None,
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: false,
            retry_after: None,
        }
    }
}

pub type FetchResult = Result<Answer, FetchFailure>;

/// The price object as the API sends it. Numbers may be integers or floats.
#[derive(Debug, Deserialize)]
struct PriceBody {
    exchange: String,
    symbol: String,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
    day: String,
}

/// Classifies one answer. `body` is the (size-capped) body, or why it could
/// not be read.
/// With `check_order`, a price whose open or close lies outside low..=high
/// is a failure; without, it is accepted as the source sent it.
pub fn classify(
    key: &TaskKey,
    status: u16,
    retry_after: Option<&str>,
    body: Result<&[u8], String>,
    check_order: bool,
) -> FetchResult {
    match status {
        404 => return Ok(Answer::Missing),
        429 => {
            return Err(FetchFailure {
                reason: "rate limited (429)".into(),
                retryable: true,
                retry_after: retry_after.and_then(parse_retry_after),
            })
        }
        500..=599 => {
            return Err(FetchFailure {
                reason: format!("server error ({status})"),
                retryable: true,
                retry_after: retry_after.and_then(parse_retry_after),
            })
        }
        200 => {}
        _ => {
            return Err(FetchFailure::permanent(format!(
                "unexpected HTTP status {status}"
            )))
        }
    }
    let body = body.map_err(|e| FetchFailure::retryable(format!("cannot read the body: {e}")))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Answer::Missing);
    }
    let parsed: Option<PriceBody> = serde_json::from_slice(body)
        .map_err(|e| FetchFailure::retryable(format!("malformed price JSON: {e}")))?;
    let Some(p) = parsed else {
        return Ok(Answer::Missing);
    };
    if p.exchange != key.exchange.as_str() {
        return Err(FetchFailure::retryable(format!(
            "field 'exchange' is {:?}, expected {:?}",
            p.exchange,
            key.exchange.as_str()
        )));
    }
    if p.symbol != key.symbol.as_str() {
        return Err(FetchFailure::retryable(format!(
            "field 'symbol' is {:?}, expected {:?}",
            p.symbol,
            key.symbol.as_str()
        )));
    }
    // NaiveDate's Display is YYYY-MM-DD, without a format string to parse.
    let expected_day = key.day.to_string();
    if p.day != expected_day {
        return Err(FetchFailure::retryable(format!(
            "field 'day' is {:?}, expected {expected_day:?}",
            p.day
        )));
    }
    let price = Ohlcv::new(p.open, p.high, p.low, p.close, p.volume)
        .map_err(|e| FetchFailure::retryable(format!("invalid price: {e}")))?;
    if check_order {
        price
            .check_order()
            .map_err(|e| FetchFailure::retryable(format!("invalid price: {e}")))?;
    }
    Ok(Answer::Price(price))
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
fn parse_retry_after(raw: &str) -> Option<Duration> {
    raw.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Exchange, Symbol};
    use chrono::NaiveDate;

    fn key() -> TaskKey {
        TaskKey {
            exchange: Exchange::new("kraken").unwrap(),
            symbol: Symbol::new("eth").unwrap(),
            day: NaiveDate::from_ymd_opt(2020, 3, 13).unwrap(),
        }
    }

    const GOOD: &str = r#"{"exchange": "kraken", "symbol": "eth", "open": 195.24, "high": 195.24,
        "low": 102, "close": 107.97, "volume": 7901.27262233, "day": "2020-03-13"}"#;

    fn ok(body: &str) -> FetchResult {
        classify(&key(), 200, None, Ok(body.as_bytes()), true)
    }

    #[test]
    fn a_good_price_parses_with_integer_numbers() {
        assert_eq!(
            ok(GOOD),
            Ok(Answer::Price(Ohlcv {
                open: 195.24,
                high: 195.24,
                low: 102.0,
                close: 107.97,
                volume: 7901.27262233
            }))
        );
    }

    #[test]
    fn no_price_forms_are_missing() {
        assert_eq!(ok(""), Ok(Answer::Missing));
        assert_eq!(ok("  \n"), Ok(Answer::Missing));
        assert_eq!(ok("null"), Ok(Answer::Missing));
        assert_eq!(
            classify(&key(), 404, None, Ok(b"{\"error\":\"x\"}"), true),
            Ok(Answer::Missing)
        );
        assert_eq!(
            classify(&key(), 404, None, Err("reset".into()), true),
            Ok(Answer::Missing)
        );
    }

    #[test]
    fn status_codes_are_classified() {
        let e = classify(&key(), 503, None, Ok(b""), true).unwrap_err();
        assert!(e.retryable && e.reason.contains("503"));
        let e = classify(&key(), 429, Some("7"), Ok(b""), true).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        let e = classify(&key(), 400, None, Ok(b""), true).unwrap_err();
        assert!(!e.retryable && e.reason.contains("400"));
    }

    /// A table of broken answers; each must fail and name what is wrong.
    #[test]
    fn malformed_answers_fail_naming_the_problem() {
        let with = |field: &str, value: &str| {
            let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
            v[field] = serde_json::from_str(value).unwrap();
            v.to_string()
        };
        let without = |field: &str| {
            let mut v: serde_json::Value = serde_json::from_str(GOOD).unwrap();
            v.as_object_mut().unwrap().remove(field);
            v.to_string()
        };
        let cases: Vec<(String, &str)> = vec![
            (GOOD[..40].to_owned(), "malformed"),
            ("<html>oops</html>".into(), "malformed"),
            ("[1,2,3]".into(), "malformed"),
            ("\"a string\"".into(), "malformed"),
            ("{}".into(), "missing field"),
            (without("close"), "`close`"),
            (without("day"), "`day`"),
            (without("exchange"), "`exchange`"),
            (with("open", "\"195\""), "malformed"),
            (with("volume", "null"), "malformed"),
            (with("high", "-1"), "'high'"),
            (with("volume", "-5"), "'volume'"),
            (with("low", "500"), "'open'"),
            (with("close", "1000"), "'close'"),
            (with("day", "\"2020-03-14\""), "'day'"),
            (with("day", "\"13/03/2020\""), "'day'"),
            (with("exchange", "\"bitstamp\""), "'exchange'"),
            (with("symbol", "\"btc\""), "'symbol'"),
            (GOOD.replacen("195.24", "1e400", 1), "malformed"),
            (format!("{GOOD} trailing"), "malformed"),
            (format!("[{GOOD}]"), "malformed"),
            ("{".into(), "malformed"),
            ("nul".into(), "malformed"),
            ("true".into(), "malformed"),
            ("{\"price\": 1}".into(), "missing field"),
            (with("close", "\"107.97\""), "malformed"),
            (with("open", "{\"value\": 1}"), "malformed"),
            (GOOD.replacen("7901.27262233", "1e309", 1), "malformed"),
            (with("open", "-195.24"), "'open'"),
            (with("low", "300"), "'open'"),
            (with("high", "100"), "'open'"),
            (with("day", "\"2020-3-13\""), "'day'"),
            (with("day", "20200313"), "malformed"),
            (with("exchange", "\"KRAKEN\""), "'exchange'"),
            (with("symbol", "\"\""), "'symbol'"),
            (with("exchange", "null"), "malformed"),
        ];
        assert!(cases.len() >= 30, "{} cases", cases.len());
        for (body, needle) in cases {
            let err = ok(&body).expect_err(&body);
            assert!(
                err.reason.contains(needle),
                "body {body:?}: reason {:?} should mention {needle:?}",
                err.reason
            );
        }
    }

    #[test]
    fn order_check_can_be_relaxed_for_real_world_data() {
        let body = GOOD.replace("\"low\": 102", "\"low\": 110");
        assert!(ok(&body).is_err());
        assert!(matches!(
            classify(&key(), 200, None, Ok(body.as_bytes()), false),
            Ok(Answer::Price(p)) if p.low == 110.0
        ));
    }

    proptest::proptest! {
        /// Whatever a server sends, classifying it neither panics nor
        /// yields a price that breaks the invariants.
        #[test]
        fn any_answer_is_classified_without_panic(
            status in 100u16..600,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            if let Ok(Answer::Price(p)) = classify(&key(), status, None, Ok(&body), true) {
                proptest::prop_assert!(p.check_order().is_ok());
                proptest::prop_assert!([p.open, p.high, p.low, p.close, p.volume].iter().all(|x| x.is_finite() && *x >= 0.0));
            }
        }

        /// A well-formed price of any finite values comes back exactly.
        #[test]
        fn a_valid_price_round_trips_exactly(
            low in 0.0f64..1e9, spread in 0.0f64..1e6, a in 0.0f64..=1.0, b in 0.0f64..=1.0, volume in 0.0f64..1e12,
        ) {
            let high = low + spread;
            let (open, close) = (low + spread * a, low + spread * b);
            proptest::prop_assume!(open <= high && close <= high);
            let body = serde_json::json!({
                "exchange": "kraken", "symbol": "eth", "day": "2020-03-13",
                "open": open, "high": high, "low": low, "close": close, "volume": volume,
            })
            .to_string();
            let got = classify(&key(), 200, None, Ok(body.as_bytes()), true);
            proptest::prop_assert_eq!(got, Ok(Answer::Price(Ohlcv { open, high, low, close, volume })));
        }
    }

    #[test]
    fn an_unreadable_body_is_a_retryable_failure() {
        let e = classify(
            &key(),
            200,
            None,
            Err("payload larger than 64 bytes".into()),
            true,
        )
        .unwrap_err();
        assert!(e.retryable && e.reason.contains("larger"));
    }
}
