//! What the adapters' parsers share beyond `day_answers`: the HTTP
//! statuses every exchange means the same way (429, 408, 5xx), reading a
//! body as JSON, picking a row's fields, and the wording of the failures, so
//! that "unknown market", "rate limited" and "server error (NNN)" read the
//! same whichever exchange said them. Pure: no I/O.

use serde_json::Value;

use super::Instrument;
use crate::model::ExchangeApi;
use crate::source::response::parse_retry_after;
use crate::source::{FetchFailure, Throttle};

/// The start of a body, for a failure reason: at most 80 characters.
pub(super) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The failure every exchange means by these statuses, whatever the body:
/// 429 is throttling, 408 and 5xx are worth another attempt. `None` for the
/// statuses an adapter must read the body of.
pub(super) fn common_status(status: u16, retry_after: Option<&str>) -> Option<FetchFailure> {
    let wait = retry_after.and_then(parse_retry_after);
    match status {
        429 => Some(FetchFailure::throttled(
            "rate limited (429)",
            Throttle::RateLimited,
            wait,
        )),
        408 => Some(FetchFailure {
            retry_after: wait,
            ..FetchFailure::retryable("request timed out (408)")
        }),
        500..=599 => Some(FetchFailure {
            retry_after: wait,
            ..FetchFailure::retryable(format!("server error ({status})"))
        }),
        _ => None,
    }
}

/// A status the exchange does not document for this route: permanent (the
/// request itself is wrong, asking again will not help), with the body's
/// start so the operator sees what the exchange said.
pub(super) fn unexpected_status(status: u16, body: &[u8]) -> FetchFailure {
    FetchFailure::permanent(format!(
        "unexpected HTTP status {status}: {}",
        excerpt(body)
    ))
}

/// The exchange does not know `market`: permanent, and the reason starts
/// with "unknown market" (the Supervisor and the operator look for it).
pub(super) fn unknown_market(api: ExchangeApi, market: &str, detail: &str) -> FetchFailure {
    FetchFailure::permanent(format!("unknown market {market:?} on {api}: {detail}"))
}

/// The exchange's own throttling answer (not an HTTP 429).
pub(super) fn rate_limited(detail: &str, retry_after: Option<&str>) -> FetchFailure {
    FetchFailure::throttled(
        format!("rate limited: {detail}"),
        Throttle::RateLimited,
        retry_after.and_then(parse_retry_after),
    )
}

/// The body as JSON; a body that is not JSON is retryable (a cut-off or a
/// proxy's HTML page), naming what it was.
pub(super) fn json(body: &[u8]) -> Result<Value, FetchFailure> {
    serde_json::from_slice(body)
        .map_err(|e| FetchFailure::retryable(format!("malformed JSON ({e}): {}", excerpt(body))))
}

/// How an exchange wraps a page of candles in JSON: its own refusal, read
/// from any body that is JSON whatever the HTTP status (it says more than
/// the status), then the statuses every exchange means alike, then the mark
/// of success (HTX's `"status": "ok"`, CEX.IO's `"ok": "ok"`, OKX's
/// `"code": "0"`) and the list of rows.
pub(super) struct Envelope<'a> {
    /// The field and value that mark success.
    pub success: (&'a str, &'a str),
    /// What is said when that mark is missing.
    pub missing: &'a str,
    /// The field holding the rows.
    pub rows: &'a str,
}

impl Envelope<'_> {
    /// The answer and its rows (taken out of it), or the failure it is:
    /// `refusal` says what the exchange's own error in the body means.
    pub fn open(
        &self,
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
        refusal: impl FnOnce(&Value) -> Option<FetchFailure>,
    ) -> Result<(Value, Vec<Value>), FetchFailure> {
        let v = json(body);
        if let Some(failure) = v.as_ref().ok().and_then(refusal) {
            return Err(failure);
        }
        if let Some(failure) = common_status(status, retry_after) {
            return Err(failure);
        }
        if status != 200 {
            return Err(unexpected_status(status, body));
        }
        let mut v = v?;
        let (field, value) = self.success;
        if v.get(field).and_then(Value::as_str) != Some(value) {
            return Err(shape(self.missing));
        }
        let rows = match v.get_mut(self.rows).map(Value::take) {
            Some(Value::Array(rows)) => rows,
            _ => return Err(shape(format!("no '{}' list", self.rows))),
        };
        Ok((v, rows))
    }
}

/// A page's rows read by `candle`: one row that cannot be read fails the
/// page as an answer not in the documented shape (retryable).
pub(super) fn candles_of(
    rows: &[Value],
    candle: impl Fn(&Value) -> Result<super::Candle, String>,
) -> Result<Vec<super::Candle>, FetchFailure> {
    rows.iter()
        .map(candle)
        .collect::<Result<Vec<_>, String>>()
        .map_err(shape)
}

/// A body that is JSON but not the documented shape: retryable, saying what
/// was expected.
pub(super) fn shape(what: impl Into<String>) -> FetchFailure {
    FetchFailure::retryable(format!(
        "answer not in the documented shape: {}",
        what.into()
    ))
}

/// The `i`th field of a candle row, named for the failure reason.
pub(super) fn field<'a>(row: &'a [Value], i: usize, name: &str) -> Result<&'a Value, String> {
    row.get(i)
        .ok_or_else(|| format!("candle row has {} fields, no '{name}'", row.len()))
}

/// A whole number sent as a JSON number or a string of digits (Kraken's
/// seconds, OKX's milliseconds as strings).
pub(super) fn integer(v: &Value, name: &str) -> Result<i64, String> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("field '{name}' is not a whole number: {v}"))
}

/// Seconds since the epoch to milliseconds, refusing a time no day has.
pub(super) fn seconds_to_ms(s: i64, name: &str) -> Result<i64, String> {
    s.checked_mul(1000)
        .ok_or_else(|| format!("field '{name}' is out of range: {s}"))
}

/// A string field of a listing entry.
pub(super) fn text<'a>(entry: &'a Value, name: &str) -> Result<&'a str, String> {
    entry
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("listing entry without a string '{name}': {entry}"))
}

/// Where an exchange's listing entry keeps what makes an `Instrument`: the
/// field that says whether the market trades and the values that mean it
/// does, and the fields of the market's name, base and quote (upper-cased).
pub(super) struct ListingFields {
    pub trading: (&'static str, &'static [&'static str]),
    pub market: &'static str,
    pub base: &'static str,
    pub quote: &'static str,
}

impl ListingFields {
    /// The trading markets among a listing's entries.
    pub fn read<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a Value>,
    ) -> Result<Vec<Instrument>, String> {
        self.collect(entries.into_iter().map(|e| (None, e)))
    }

    /// The same for a listing keyed by market name (`market` is unused).
    pub fn read_keyed<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a String, &'a Value)>,
    ) -> Result<Vec<Instrument>, String> {
        self.collect(entries.into_iter().map(|(k, e)| (Some(k.as_str()), e)))
    }

    fn collect<'a>(
        &self,
        entries: impl Iterator<Item = (Option<&'a str>, &'a Value)>,
    ) -> Result<Vec<Instrument>, String> {
        let (field, live) = self.trading;
        let mut out = Vec::new();
        for (key, entry) in entries {
            if !live.contains(&text(entry, field)?) {
                continue;
            }
            out.push(Instrument {
                market: match key {
                    Some(key) => key.to_owned(),
                    None => text(entry, self.market)?.to_owned(),
                },
                base: text(entry, self.base)?.to_ascii_uppercase(),
                quote: text(entry, self.quote)?.to_ascii_uppercase(),
            });
        }
        Ok(out)
    }
}

/// The body of a market listing as JSON, or why not.
pub(super) fn listing_json(api: ExchangeApi, status: u16, body: &[u8]) -> Result<Value, String> {
    if status != 200 {
        return Err(format!(
            "{api} market listing answered HTTP {status}: {}",
            excerpt(body)
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| format!("{api} market listing is not JSON ({e}): {}", excerpt(body)))
}

#[cfg(test)]
pub(super) mod testing {
    //! Helpers the adapters' tests share.

    use chrono::NaiveDate;

    use crate::model::{DayRange, Ohlcv};
    use crate::source::exchanges::DayAnswer;
    use crate::source::Answer;

    pub fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    pub fn range(from: &str, to: &str) -> DayRange {
        DayRange {
            from: d(from),
            to: d(to),
        }
    }

    /// The price of a day's answer, or a panic naming what it was.
    pub fn price(a: &DayAnswer) -> Ohlcv {
        match &a.answer {
            Answer::Price { price, .. } => *price,
            other => panic!("{}: {other:?}", a.day),
        }
    }

    pub fn ohlcv(open: f64, high: f64, low: f64, close: f64, volume: f64) -> Ohlcv {
        Ohlcv {
            open,
            high,
            low,
            close,
            volume,
        }
    }
}
