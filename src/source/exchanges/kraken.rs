//! Kraken's public OHLC API (`GET /0/public/OHLC`), as the wire contract
//! fixes it.
//!
//! Kraken's quirks, which this adapter exists to absorb:
//! - Every answer is HTTP 200 with `{"error": [...], "result": {...}}`;
//!   failures are strings in `error`: `EQuery:Unknown asset pair` (unknown
//!   market), `EGeneral:Too many requests` (throttled; Kraken's docs also
//!   name `EAPI:Rate limit exceeded`, treated the same), `EService:*`
//!   (unavailable or busy, worth another attempt).
//! - The result is keyed by Kraken's *own* pair name, not the one asked for
//!   (`pair=XBTUSD` answers under `XXBTZUSD`), beside a `last` field: the
//!   adapter takes the one key that is not `last`.
//! - A row is `[time, open, high, low, close, vwap, volume, count]`: time in
//!   whole seconds, prices and volumes as strings, count a number; rows are
//!   oldest first. Volume is field 6 (field 5 is the VWAP).
//! - `since` is exclusive (rows with `time > since`), so a page from day `d`
//!   asks `since = S(d) - 1`; there is no end bound, so rows past the page
//!   come too and are ignored.
//! - Only the 720 most recent candles exist (today - 719 ..= today); an
//!   older day is answered "out of reach" without asking.
//! - The last row is the current, not yet closed frame ("will always be
//!   present, regardless of the value of since", Kraken's docs), and
//!   `result.last` is the open time of the newest *committed* row: in real
//!   answers it is the row before the newest (`"last":1716544800` beside a
//!   newest row 1716548400). So every row after `last` is still open
//!   (provisional whatever our clock says). `last` comes as a number or as
//!   a string of digits; without it, the clock alone decides.
//! - Kraken calls bitcoin `XBT`, and its asset listing prefixes old assets
//!   with `X` (crypto) or `Z` (fiat): `XXBT`, `ZUSD`. Per the contract, a
//!   4-character name starting with X or Z loses that letter. Dark-pool
//!   pairs (`XBTUSD.d`) are not markets for prices and are skipped.

use chrono::{NaiveDate, TimeDelta};
use serde_json::Value;

use super::common::{self, field, integer, seconds_to_ms, shape, text};
use super::{
    day_answers, day_start_ms, number, Candle, CandleApi, Instrument, MarketForm, PageResult,
    Profile,
};
use crate::model::OhlcOrder;
use crate::model::{DayRange, ExchangeApi, Symbol};
use crate::source::FetchFailure;

/// Kraken's REST API.
pub struct Kraken;

/// Kraken serves this many daily candles, today's included.
const DEPTH_DAYS: i64 = 720;

/// Kraken's plain facts (see `Profile`).
const PROFILE: Profile = Profile {
    api: ExchangeApi::Kraken,
    default_url: "https://api.kraken.com/",
    page_days: 720,
    // Kraken allows about one public call a second per address; asking
    // at exactly that rate gets throttled whenever two requests arrive
    // closer than they were sent (measured: benches/exchanges.rs), so
    // keep a margin under it.
    requests_per_second: 0.8,
    market_form: MarketForm {
        char_ok: |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
        dashed: false,
        described: "BASEQUOTE in upper case, as Kraken spells it (\"XBTUSD\")",
    },
};

impl CandleApi for Kraken {
    fn profile(&self) -> &'static Profile {
        &PROFILE
    }

    fn earliest_day(&self, today: NaiveDate) -> Option<NaiveDate> {
        Some(today - TimeDelta::days(DEPTH_DAYS - 1))
    }

    fn asset_name(&self, symbol: &Symbol) -> String {
        match symbol.as_str() {
            "btc" => "XBT".to_owned(),
            other => other.to_ascii_uppercase(),
        }
    }

    fn symbol_of(&self, base: &str) -> Option<Symbol> {
        match base {
            "XBT" => Symbol::new("btc").ok(),
            other => Symbol::new(&other.to_ascii_lowercase()).ok(),
        }
    }

    fn candles_request(&self, market: &str, days: DayRange) -> String {
        let since = day_start_ms(days.from) / 1000 - 1;
        format!("0/public/OHLC?pair={market}&interval=1440&since={since}")
    }

    fn parse_candles(
        &self,
        market: &str,
        days: DayRange,
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
        ohlc_order: OhlcOrder,
    ) -> PageResult {
        if let Some(failure) = common::common_status(status, retry_after) {
            return Err(failure);
        }
        if status != 200 {
            return Err(common::unexpected_status(status, body));
        }
        let v = common::json(body)?;
        check_errors(market, &v, retry_after)?;
        let result = v
            .get("result")
            .and_then(Value::as_object)
            .ok_or_else(|| shape("no 'result' object"))?;
        let mut pairs = result.iter().filter(|(k, _)| k.as_str() != "last");
        let rows = match (pairs.next(), pairs.next()) {
            (Some((_, rows)), None) => rows
                .as_array()
                .ok_or_else(|| shape("the pair's rows are not a list"))?,
            (None, _) => return Err(shape("'result' holds no pair")),
            (Some(_), Some(_)) => return Err(shape("'result' holds more than one pair")),
        };
        let candles = committed_or_open(rows, result.get("last"))?;
        let mut answers = day_answers(days, &candles, ohlc_order)?;
        // A full-depth answer is cut by Kraken's depth, not by a lack of
        // trades: a day of the page before its oldest row was not served
        // (our "today" and Kraken's may differ by a day near midnight), so
        // it is out of reach, never "no price".
        let oldest = candles.iter().map(|c| c.open_ms).min();
        if let (true, Some(oldest)) = (
            candles.len() as i64 >= DEPTH_DAYS,
            oldest.and_then(super::day_of_ms),
        ) {
            for a in answers.iter_mut().filter(|a| a.day < oldest) {
                a.answer = crate::source::Answer::Rejected {
                    reason: super::out_of_reach_reason(ExchangeApi::Kraken, oldest),
                    price: None,
                };
            }
        }
        Ok(answers)
    }

    fn instruments_request(&self) -> String {
        "0/public/AssetPairs".to_owned()
    }

    fn parse_instruments(&self, status: u16, body: &[u8]) -> Result<Vec<Instrument>, String> {
        let v = common::listing_json(ExchangeApi::Kraken, status, body)?;
        if let Some(e) = errors(&v).filter(|e| !e.is_empty()) {
            return Err(format!("kraken market listing: {}", e.join(", ")));
        }
        let pairs = v
            .get("result")
            .and_then(Value::as_object)
            .ok_or("kraken market listing without a 'result' object")?;
        let mut out = Vec::new();
        for entry in pairs.values() {
            let market = text(entry, "altname")?;
            if market.contains('.') {
                continue;
            }
            out.push(Instrument {
                market: market.to_owned(),
                base: plain_asset(text(entry, "base")?),
                quote: plain_asset(text(entry, "quote")?),
            });
        }
        Ok(out)
    }
}

/// The rows of an answer, each row after `last` (the newest committed
/// candle, seconds, a number or a string) marked still open.
fn committed_or_open(rows: &[Value], last: Option<&Value>) -> Result<Vec<Candle>, FetchFailure> {
    let last_ms = match last {
        None => None,
        Some(l) => Some(
            integer(l, "last")
                .and_then(|s| seconds_to_ms(s, "last"))
                .map_err(shape)?,
        ),
    };
    let mut candles = rows
        .iter()
        .map(candle)
        .collect::<Result<Vec<Candle>, String>>()
        .map_err(shape)?;
    for c in &mut candles {
        c.still_open = last_ms.is_some_and(|l| c.open_ms > l);
    }
    Ok(candles)
}

/// The strings of an answer's `error` list, if it has one.
fn errors(v: &Value) -> Option<Vec<&str>> {
    v.get("error")?
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect())
}

/// Kraken's failures, which come with HTTP 200.
fn check_errors(market: &str, v: &Value, retry_after: Option<&str>) -> Result<(), FetchFailure> {
    let Some(errors) = errors(v) else {
        return Err(shape("no 'error' list"));
    };
    if errors.is_empty() {
        return Ok(());
    }
    let all = errors.join(", ");
    if errors
        .iter()
        .any(|e| e.contains("Too many requests") || e.starts_with("EAPI:Rate limit"))
    {
        return Err(common::rate_limited(&all, retry_after));
    }
    if errors
        .iter()
        .any(|e| e.starts_with("EQuery:Unknown asset pair"))
    {
        return Err(common::unknown_market(ExchangeApi::Kraken, market, &all));
    }
    if errors.iter().all(|e| e.starts_with("EService:")) {
        return Err(FetchFailure::retryable(format!("kraken: {all}")));
    }
    Err(FetchFailure::permanent(format!(
        "kraken refused the request: {all}"
    )))
}

/// One row: `[time, open, high, low, close, vwap, volume, count]`.
fn candle(row: &Value) -> Result<Candle, String> {
    let row = row
        .as_array()
        .ok_or_else(|| format!("a candle row is not a list: {row}"))?;
    if row.len() < 8 {
        return Err(format!("a candle row has {} fields, not 8", row.len()));
    }
    let t = integer(field(row, 0, "time")?, "time")?;
    Ok(Candle {
        open_ms: seconds_to_ms(t, "time")?,
        open: number(field(row, 1, "open")?, "open")?,
        high: number(field(row, 2, "high")?, "high")?,
        low: number(field(row, 3, "low")?, "low")?,
        close: number(field(row, 4, "close")?, "close")?,
        volume: number(field(row, 6, "volume")?, "volume")?,
        still_open: false,
    })
}

/// `XXBT` -> `XBT`, `ZUSD` -> `USD`; other names as they are.
fn plain_asset(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if upper.len() == 4 && (upper.starts_with('X') || upper.starts_with('Z')) {
        upper[1..].to_owned()
    } else {
        upper
    }
}

#[cfg(test)]
pub(super) mod tests {

    use super::super::common::testing::{d, price, range};
    use super::*;
    use crate::source::exchanges::fixtures::*;
    use crate::source::{Answer, Throttle};

    fn parse(days: DayRange, body: &str) -> PageResult {
        Kraken.parse_candles("XBTUSD", days, 200, None, body.as_bytes(), OhlcOrder::Flag)
    }

    #[test]
    fn the_request_asks_since_one_second_before_the_first_day() {
        assert_eq!(
            Kraken.candles_request("XBTUSD", range("2026-11-27", "2026-11-29")),
            "0/public/OHLC?pair=XBTUSD&interval=1440&since=1795737599"
        );
    }

    #[test]
    fn rows_after_last_the_newest_committed_candle_are_open() {
        let body = include_str!("../../../tests/fixtures/kraken/open_day.json");
        let got = parse(range("2026-11-29", "2026-12-01"), body).unwrap();
        assert_eq!(
            got.iter().map(|a| a.open).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(price(&got[2]).close, 92100.0);
        let all_committed = body.replace("\"last\":1795996800", "\"last\":1796083200");
        let got = parse(range("2026-11-29", "2026-12-01"), &all_committed).unwrap();
        assert!(got.iter().all(|a| !a.open), "last is the newest row");
        let as_string = body.replace("\"last\":1795996800", "\"last\":\"1795996800\"");
        let got = parse(range("2026-11-29", "2026-12-01"), &as_string).unwrap();
        assert!(got[2].open && !got[1].open, "last as a string");
        let bad = body.replace("\"last\":1795996800", "\"last\":\"soon\"");
        let e = parse(range("2026-11-29", "2026-12-01"), &bad).unwrap_err();
        assert!(e.retryable && e.reason.contains("'last'"), "{e:?}");
    }

    /// Two answers recorded from the real Kraken (hourly, so read row by
    /// row, not as days): `last` is the row before the newest, once a
    /// number, once a string; only the newest row is open.
    #[test]
    fn recorded_answers_mark_only_the_newest_row_open() {
        for body in [
            include_str!(
                "../../../tests/fixtures/kraken/ccxt_pr22607_ohlc_60_XBTUSDT_since_unaligned.json"
            ),
            include_str!("../../../tests/fixtures/kraken/ccxt_ohlc_1h_XBTUSDT.json"),
        ] {
            let v: Value = serde_json::from_str(body).unwrap();
            let rows = v["result"]["XBTUSDT"].as_array().unwrap();
            let candles = committed_or_open(rows, v["result"].get("last")).unwrap();
            let open: Vec<bool> = candles.iter().map(|c| c.still_open).collect();
            assert_eq!(open.iter().filter(|o| **o).count(), 1, "{open:?}");
            assert_eq!(open.last(), Some(&true));
        }
    }

    #[test]
    fn a_row_not_at_utc_midnight_is_rejected() {
        let body = r#"{"error":[],"result":{"XXBTZUSD":[
            [1795752000,"1","2","0.5","1.5","1.2","10",3]],"last":1795752000}}"#;
        let got = parse(range("2026-11-27", "2026-11-27"), body).unwrap();
        assert!(
            matches!(&got[0].answer, Answer::Rejected { reason, .. } if reason.contains("04:00")),
            "{got:?}"
        );
    }

    #[test]
    fn a_server_error_is_retryable() {
        let e = Kraken
            .parse_candles(
                "XBTUSD",
                range("2026-11-27", "2026-11-27"),
                502,
                None,
                b"",
                OhlcOrder::Flag,
            )
            .unwrap_err();
        assert!(e.retryable && e.reason == "server error (502)");
    }

    #[test]
    fn bodies_not_in_the_documented_shape_are_retryable_and_say_why() {
        let days = range("2026-11-27", "2026-11-27");
        for (body, needle) in [
            ("<html>", "malformed JSON"),
            (r#"{"result":{}}"#, "'error'"),
            (r#"{"error":[],"result":{"last":1}}"#, "no pair"),
            (
                r#"{"error":[],"result":{"A":[],"B":[],"last":1}}"#,
                "more than one",
            ),
            (
                r#"{"error":[],"result":{"A":[[1795737600,"1","2","0.5","1.5","1.2"]]}}"#,
                "6 fields",
            ),
            (
                r#"{"error":[],"result":{"A":[[1795737600,"x","2","0.5","1.5","1.2","1",3]]}}"#,
                "'open'",
            ),
            (
                r#"{"error":[],"result":{"A":[["t","1","2","0.5","1.5","1.2","1",3]]}}"#,
                "'time'",
            ),
        ] {
            let e = parse(days, body).unwrap_err();
            assert!(e.retryable && e.reason.contains(needle), "{body}: {e:?}");
        }
    }

    #[test]
    fn the_listing_maps_kraken_names_and_chooses_usd_then_usdt_then_usdc() {
        let body = include_str!("../../../tests/fixtures/kraken/asset_pairs.json");
        let list = Kraken.parse_instruments(200, body.as_bytes()).unwrap();
        assert!(list.iter().all(|i| !i.market.contains('.')));
    }

    #[test]
    fn depth_form_and_names() {
        assert_eq!(Kraken.earliest_day(d("2026-12-01")), Some(d("2024-12-12")));
        assert_eq!(Kraken.asset_name(&Symbol::new("btc").unwrap()), "XBT");
        assert!(Kraken.check_market("XBTUSD").is_ok());
        assert!(Kraken.check_market("xbtusd").is_err());
        assert!(Kraken.check_market("XBT/USD").is_err());
    }

    #[test]
    fn days_before_a_full_depth_answer_are_out_of_reach_not_none() {
        // 720 rows from 2018-06-27; the page asks from 2018-06-25, a day
        // our clock thought still served.
        let first = NaiveDate::from_ymd_opt(2018, 6, 27).unwrap();
        let rows: Vec<String> = (0..720)
            .map(|i| {
                let t = day_start_ms(first + TimeDelta::days(i)) / 1000;
                format!(r#"[{t},"1","2","0.5","1.5","1.4","10",3]"#)
            })
            .collect();
        let body = format!(
            r#"{{"error":[],"result":{{"XXBTZUSD":[{}],"last":0}}}}"#,
            rows.join(",")
        );
        let days = DayRange {
            from: NaiveDate::from_ymd_opt(2018, 6, 25).unwrap(),
            to: NaiveDate::from_ymd_opt(2018, 6, 28).unwrap(),
        };
        let got = Kraken
            .parse_candles("XBTUSD", days, 200, None, body.as_bytes(), OhlcOrder::Flag)
            .unwrap();
        for a in &got[..2] {
            assert!(
                matches!(&a.answer, crate::source::Answer::Rejected { reason, price: None } if reason.starts_with("out of reach")),
                "{a:?}"
            );
        }
        assert!(matches!(got[2].answer, crate::source::Answer::Price { .. }));
        // Fewer rows than the depth: the exchange had no trades, "no price".
        let short = format!(
            r#"{{"error":[],"result":{{"XXBTZUSD":[{}],"last":0}}}}"#,
            rows[..10].join(",")
        );
        let got = Kraken
            .parse_candles("XBTUSD", days, 200, None, short.as_bytes(), OhlcOrder::Flag)
            .unwrap();
        assert_eq!(got[0].answer, crate::source::Answer::NoPrice);
    }

    /// The recorded answers in `tests/fixtures/kraken/` and what each gives
    /// (read by `exchanges::fixtures`).
    pub fn fixtures() -> Vec<Fixture> {
        vec![
            page(
                recorded!("kraken/full_page.json"),
                "XBTUSD",
                "2026-11-27..2026-11-29",
            )
            .gives(vec![
                priced(91250.1, 93011.0, 90102.4, 92874.9, 1523.40011874),
                priced(92874.9, 92874.9, 89000.0, 90412.5, 2011.5),
                priced(90412.5, 91900.3, 90011.7, 91877.0, 987.12345678),
            ]),
            page(
                recorded!("kraken/empty_page.json"),
                "XBTUSD",
                "2026-11-27..2026-11-28",
            )
            .gives(vec![none(), none()]),
            page(
                recorded!("kraken/open_day.json"),
                "XBTUSD",
                "2026-11-29..2026-12-01",
            )
            .gives(vec![
                priced(90412.5, 91900.3, 90011.7, 91877.0, 987.12345678),
                priced(91877.0, 92500.0, 91000.0, 92010.1, 1100.0),
                priced(92010.1, 92300.0, 91900.0, 92100.0, 120.5).still_open(),
            ]),
            page(
                recorded!("kraken/unknown_market.json"),
                "XBTUSDD",
                "2026-11-27..2026-11-27",
            )
            .fails(permanent(
                "unknown market \"XBTUSDD\" on kraken: EQuery:Unknown asset pair",
            )),
            page(
                recorded!("kraken/throttled.json"),
                "XBTUSD",
                "2026-11-27..2026-11-27",
            )
            .fails(
                retryable("rate limited: EGeneral:Too many requests")
                    .throttled(Throttle::RateLimited, None),
            ),
            read_by(
                recorded!("kraken/ccxt_pr22607_ohlc_60_XBTUSDT_since_unaligned.json"),
                "recorded_answers_mark_only_the_newest_row_open",
            ),
            read_by(
                recorded!("kraken/ccxt_ohlc_1h_XBTUSDT.json"),
                "recorded_answers_mark_only_the_newest_row_open",
            ),
            listing(recorded!("kraken/asset_pairs.json")).picks(&[
                ("btc", Some("XBTUSD")),
                ("eth", Some("ETHUSD")),
                ("sol", Some("SOLUSDT")),
                ("dot", Some("DOTUSDC")),
                ("ada", None),
            ]),
        ]
    }
}
