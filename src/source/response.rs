//! Turns one HTTP answer to `GET /price/{exchange}/{symbol}/{date}` into a
//! checked `Answer` or a `FetchFailure` that says what was wrong.
//!
//! "No price" is recorded only when the source says so unambiguously: a
//! `200` with `null` or an empty body, or a `404` with an empty body or the
//! `{"error": "no price"}` body. Everything else that is not a good price is
//! a failure with its reason, transient (worth another attempt in this
//! round) or permanent (tried again next round). Pure: no I/O, so every
//! answer a server can give is testable here; never a panic and never a
//! silently wrong price.

use std::time::Duration;

use crate::model::OhlcOrder;
use crate::model::{Flags, Ohlcv, TaskKey};
use crate::wire::{ErrorBody, PriceBody, NO_PRICE, UNKNOWN_EXCHANGE, UNKNOWN_SYMBOL};

/// What the source said about one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A price as sent, with the quality flags it earned.
    Price { price: Ohlcv, flags: Flags },
    /// The source has no price there.
    NoPrice,
    /// Refused by a rule, with its reason: a price out of order under
    /// `source.ohlc_order = "reject"` or a candle not anchored at 00:00 UTC
    /// (kept as sent), or a day older than the exchange serves (no price).
    Rejected {
        reason: String,
        price: Option<Ohlcv>,
    },
    /// The page was answered, but not well enough for this one day (a UTC
    /// day built from hourly candles with an hour missing): the cell fails
    /// with the reason and the next round asks again.
    Failed { reason: String },
}

/// A request that did not produce an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchFailure {
    pub reason: String,
    /// Worth trying again in this round (a network error, a 5xx, a cut-off
    /// or malformed body). A permanent failure waits for the next round.
    pub retryable: bool,
    /// What the server asked for with `Retry-After`, if anything.
    pub retry_after: Option<Duration>,
    /// The exchange said it is being asked too often: the whole exchange
    /// pauses (until `retry_after`, or a backoff), not just this task.
    pub throttle: Option<Throttle>,
    /// No connection could be made at all (the host has no address, the
    /// port refuses, TLS fails): the Supervisor decides whether that stops
    /// the exchange for this round.
    pub unreachable: Option<Unreachable>,
}

/// Why a host could not be reached, before any HTTP was spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreachable {
    /// Its name does not resolve (no network, a typo, no DNS).
    Dns,
    /// Nothing listens on the port (connection refused).
    Refused,
    /// No route to it (network or host unreachable).
    NoRoute,
    /// The TLS handshake failed (an untrusted certificate, say).
    Tls,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unreachable::Dns => "DNS failure",
            Unreachable::Refused => "connection refused",
            Unreachable::NoRoute => "no route to host",
            Unreachable::Tls => "TLS failure",
        })
    }
}

/// How an exchange told a client to slow down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Too many requests (HTTP 429, or an exchange's own throttling answer).
    RateLimited,
    /// The client is banned for a while (Binance's HTTP 418).
    Banned,
}

impl FetchFailure {
    pub fn retryable(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: true,
            retry_after: None,
            throttle: None,
            unreachable: None,
        }
    }

    /// No connection could be made: retryable as far as the request goes,
    /// and marked so the Supervisor can stop asking the host this round.
    pub fn unreachable(kind: Unreachable, reason: impl Into<String>) -> Self {
        Self {
            unreachable: Some(kind),
            ..Self::retryable(reason)
        }
    }

    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            retryable: false,
            retry_after: None,
            throttle: None,
            unreachable: None,
        }
    }

    /// The exchange asked us to slow down: retryable, and it pauses the
    /// whole exchange.
    pub fn throttled(
        reason: impl Into<String>,
        throttle: Throttle,
        retry_after: Option<Duration>,
    ) -> Self {
        Self {
            reason: reason.into(),
            retryable: true,
            retry_after,
            throttle: Some(throttle),
            unreachable: None,
        }
    }
}

pub type FetchResult = Result<Answer, FetchFailure>;

/// The start of a body, for a failure reason: at most 80 characters.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

fn is_blank(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// Classifies one answer. `body` is the complete (size-capped) body, or why
/// it could not be read whole. `ohlc_order` says what to do with a price
/// whose open or close lies outside low..=high.
pub fn classify(
    key: &TaskKey,
    status: u16,
    retry_after: Option<&str>,
    body: Result<&[u8], String>,
    ohlc_order: OhlcOrder,
) -> FetchResult {
    let transient = |reason: String| FetchFailure {
        reason,
        retryable: true,
        retry_after: retry_after.and_then(parse_retry_after),
        throttle: None,
        unreachable: None,
    };
    match status {
        408 => return Err(transient("request timed out (408)".into())),
        429 => {
            return Err(FetchFailure::throttled(
                "rate limited (429)",
                Throttle::RateLimited,
                retry_after.and_then(parse_retry_after),
            ))
        }
        500..=599 => return Err(transient(format!("server error ({status})"))),
        200 | 404 => {}
        _ => {
            return Err(FetchFailure::permanent(format!(
                "unexpected HTTP status {status}"
            )))
        }
    }
    let body = body.map_err(|e| FetchFailure::retryable(format!("cannot read the body: {e}")))?;
    if status == 404 {
        return not_found(body);
    }
    if is_blank(body) {
        return Ok(Answer::NoPrice);
    }
    let parsed: Option<PriceBody> = serde_json::from_slice(body)
        .map_err(|e| FetchFailure::retryable(format!("malformed price JSON: {e}")))?;
    let Some(p) = parsed else {
        return Ok(Answer::NoPrice);
    };
    check_body(key, p, ohlc_order)
}

/// A `404`: "no price" only when the body says exactly that (or is empty).
fn not_found(body: &[u8]) -> FetchResult {
    if is_blank(body) {
        return Ok(Answer::NoPrice);
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if e.error == NO_PRICE => Ok(Answer::NoPrice),
        Ok(e) if e.error == UNKNOWN_EXCHANGE || e.error == UNKNOWN_SYMBOL => {
            Err(FetchFailure::permanent(e.error))
        }
        _ => Err(FetchFailure::permanent(format!(
            "404 with a body that is not the source's \"no price\" answer: {}",
            excerpt(body)
        ))),
    }
}

fn check_body(key: &TaskKey, p: PriceBody, ohlc_order: OhlcOrder) -> FetchResult {
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
    match (ohlc_order, price.check_order()) {
        (OhlcOrder::Reject, Err(e)) => Ok(Answer::Rejected {
            reason: format!("ohlc order: {e}"),
            price: Some(price),
        }),
        (order, _) => Ok(Answer::Price {
            price,
            flags: Flags::of(&price, order == OhlcOrder::Flag),
        }),
    }
}

/// `Retry-After` in seconds (the HTTP-date form is treated as absent).
pub fn parse_retry_after(raw: &str) -> Option<Duration> {
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
        classify(&key(), 200, None, Ok(body.as_bytes()), OhlcOrder::Flag)
    }

    fn answer(status: u16, body: Result<&[u8], String>) -> FetchResult {
        classify(&key(), status, None, body, OhlcOrder::Flag)
    }

    #[test]
    fn a_good_price_parses_with_integer_numbers() {
        assert_eq!(
            ok(GOOD),
            Ok(Answer::Price {
                price: Ohlcv {
                    open: 195.24,
                    high: 195.24,
                    low: 102.0,
                    close: 107.97,
                    volume: 7901.27262233
                },
                flags: Flags::NONE
            })
        );
    }

    #[test]
    fn only_the_sources_own_words_mean_no_price() {
        assert_eq!(ok(""), Ok(Answer::NoPrice));
        assert_eq!(ok("  \n"), Ok(Answer::NoPrice));
        assert_eq!(ok("null"), Ok(Answer::NoPrice));
        assert_eq!(answer(404, Ok(b"")), Ok(Answer::NoPrice));
        assert_eq!(
            answer(404, Ok(br#"{"error": "no price", "day": "2020-03-13"}"#)),
            Ok(Answer::NoPrice)
        );
    }

    #[test]
    fn a_404_that_is_not_a_no_price_answer_is_a_failure() {
        let html = answer(404, Ok(b"<html><body>Not Found</body></html>")).unwrap_err();
        assert!(!html.retryable, "{html:?}");
        assert!(html.reason.contains("<html>"), "{}", html.reason);
        let other = answer(404, Ok(br#"{"error": "no such route"}"#)).unwrap_err();
        assert!(other.reason.contains("no such route"), "{}", other.reason);
        let unknown = answer(404, Ok(br#"{"error": "unknown exchange"}"#)).unwrap_err();
        assert_eq!(unknown.reason, "unknown exchange");
        assert!(!unknown.retryable);
        let cut = answer(404, Err("body cut off: 10 of 50 bytes".into())).unwrap_err();
        assert!(cut.retryable && cut.reason.contains("cut off"), "{cut:?}");
    }

    #[test]
    fn status_codes_are_classified() {
        let e = answer(503, Ok(b"")).unwrap_err();
        assert!(e.retryable && e.reason.contains("503"));
        let e = classify(&key(), 429, Some("7"), Ok(b""), OhlcOrder::Flag).unwrap_err();
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        let e = answer(408, Ok(b"")).unwrap_err();
        assert!(e.retryable, "408 is transient");
        for status in [204, 301, 302, 304, 400, 401, 403, 410] {
            let e = answer(status, Ok(b"")).unwrap_err();
            assert!(
                !e.retryable && e.reason.contains(&status.to_string()),
                "{status}: {e:?}"
            );
        }
    }

    #[test]
    fn a_cut_off_body_is_a_transient_failure_never_no_price() {
        for status in [200, 404] {
            let e = answer(status, Err("body cut off: 0 of 134 bytes".into())).unwrap_err();
            assert!(e.retryable, "{status}: {e:?}");
        }
    }

    #[test]
    fn a_zero_price_is_kept_with_a_flag() {
        let zero = GOOD
            .replace("195.24", "0")
            .replace("\"low\": 102", "\"low\": -0.0")
            .replace("107.97", "0");
        match ok(&zero) {
            Ok(Answer::Price { price, flags }) => {
                assert!(flags.contains(Flags::ZERO), "{flags:?}");
                assert_eq!(price.close, 0.0);
            }
            other => panic!("{other:?}"),
        }
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
            (with("day", "\"2020-3-13\""), "'day'"),
            (with("day", "20200313"), "malformed"),
            (with("exchange", "\"KRAKEN\""), "'exchange'"),
            (with("symbol", "\"\""), "'symbol'"),
            (with("exchange", "null"), "malformed"),
        ];
        assert!(cases.len() >= 28, "{} cases", cases.len());
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
    fn a_price_out_of_order_is_flagged_rejected_or_kept_as_configured() {
        let body = GOOD.replace("\"low\": 102", "\"low\": 110");
        let with = |order| classify(&key(), 200, None, Ok(body.as_bytes()), order);
        match with(OhlcOrder::Flag) {
            Ok(Answer::Price { price, flags }) => {
                assert_eq!(price.low, 110.0, "kept exactly as sent");
                assert!(flags.contains(Flags::OHLC_ORDER));
            }
            other => panic!("{other:?}"),
        }
        match with(OhlcOrder::Reject) {
            Ok(Answer::Rejected { reason, price }) => {
                assert!(reason.contains("close"), "{reason}");
                assert_eq!(price.map(|p| p.low), Some(110.0));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            with(OhlcOrder::Ignore),
            Ok(Answer::Price { flags, .. }) if flags.is_empty()
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
            if let Ok(Answer::Price { price: p, flags }) = classify(&key(), status, None, Ok(&body), OhlcOrder::Flag) {
                proptest::prop_assert!(p.check_order().is_ok() || flags.contains(Flags::OHLC_ORDER));
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
            let got = classify(&key(), 200, None, Ok(body.as_bytes()), OhlcOrder::Flag);
            let price = Ohlcv { open, high, low, close, volume };
            proptest::prop_assert_eq!(got, Ok(Answer::Price { price, flags: Flags::of(&price, true) }));
        }
    }

    #[test]
    fn an_unreadable_body_is_a_retryable_failure() {
        let e = answer(200, Err("payload larger than 64 bytes".into())).unwrap_err();
        assert!(e.retryable && e.reason.contains("larger"));
    }
}
