//! The shared vocabulary of market names and price rows that both the
//! config and the adapters speak: what to do with a price whose OHLC order
//! is broken (`OhlcOrder`, a config value the response classifier obeys),
//! and the offline form of an exchange's market names (`MarketForm`, each
//! adapter's fact that config validation checks names against). Plain
//! values and pure checks only: nothing here knows an exchange or does I/O.

use serde::{Deserialize, Serialize};

/// What to do with a price whose open or close lies outside low..=high.
/// Real exchange data breaks this now and then (3% of the classic dataset),
/// so whether such a row is wrong is the operator's call, not the parser's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OhlcOrder {
    /// Keep the price exactly as sent and mark it with a quality flag.
    #[default]
    Flag,
    /// Record the cell as rejected: settled, and never retried.
    Reject,
    /// Keep the price exactly as sent, unflagged.
    Ignore,
}

/// The form of an exchange's market names, checked offline.
#[derive(Debug)]
pub struct MarketForm {
    /// The characters a base or a quote may have.
    pub char_ok: fn(char) -> bool,
    /// Base and quote are separated by one `-` (`BTC-USD`), else joined.
    pub dashed: bool,
    /// The form in words, for the error: `"BASE-QUOTE in upper case (\"BTC-USD\")"`.
    pub described: &'static str,
}

impl MarketForm {
    /// Checks `market` against this form, offline: the error names the
    /// market and says what the form is.
    pub fn check(&self, market: &str) -> Result<(), String> {
        check_form(market, self.char_ok, self.dashed, self.described)
    }
}

/// Checks `market` against a form: its characters and, if `dash`, exactly
/// one `-` between two non-empty parts.
pub fn check_form(
    market: &str,
    ok_char: fn(char) -> bool,
    dash: bool,
    form: &str,
) -> Result<(), String> {
    let parts: Vec<&str> = market.split('-').collect();
    let good_parts = if dash {
        parts.len() == 2
    } else {
        parts.len() == 1
    };
    let good = !market.is_empty()
        && market.len() <= 32
        && good_parts
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(ok_char));
    if good {
        Ok(())
    } else {
        Err(format!("market {market:?} is not of the form {form}"))
    }
}
