//! The classic price API's bodies, as one set of types that the built-in
//! server writes and the client reads, so the two can never drift apart.
//!
//! Owns the shapes only: the price object, the JSON error body, and the
//! error texts that carry meaning (`"no price"`, `"unknown exchange"`,
//! `"unknown symbol"`). Checking the numbers and names is the client's job
//! (`source::response`); choosing what to answer is the server's.

use serde::{Deserialize, Serialize};

use crate::model::Ohlcv;

/// The error text of a `404` that means "the source has no price here".
pub const NO_PRICE: &str = "no price";
/// The error text of a `404` for an exchange the source does not know.
pub const UNKNOWN_EXCHANGE: &str = "unknown exchange";
/// The error text of a `404` for a symbol the source does not know.
pub const UNKNOWN_SYMBOL: &str = "unknown symbol";

/// The price object: `{"exchange", "symbol", "open", "high", "low", "close",
/// "volume", "day"}`. Numbers may be integers or floats on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceBody {
    pub exchange: String,
    pub symbol: String,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    /// `YYYY-MM-DD`.
    pub day: String,
}

impl PriceBody {
    pub fn new(exchange: &str, symbol: &str, p: &Ohlcv, day: String) -> Self {
        Self {
            exchange: exchange.to_owned(),
            symbol: symbol.to_owned(),
            open: p.open,
            high: p.high,
            low: p.low,
            close: p.close,
            volume: p.volume,
            day,
        }
    }
}

/// `{"error": "..."}`, the body of every error answer. Other fields may
/// follow (a server may add detail) and are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

impl ErrorBody {
    pub fn new(error: impl Into<String>) -> Self {
        Self {
            error: error.into(),
        }
    }
}
