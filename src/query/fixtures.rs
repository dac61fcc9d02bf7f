//! Rows for unit tests of selection, statistics and rendering: short
//! constructors so a test names only what it is about. Test builds only.

use chrono::NaiveDate;

use crate::model::{CellState, Exchange, Flags, Ohlcv, Symbol};
use crate::query::Row;

pub fn ex(name: &str) -> Exchange {
    Exchange::new(name).expect("valid exchange name")
}

pub fn sym(name: &str) -> Symbol {
    Symbol::new(name).expect("valid symbol name")
}

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
}

/// A price where only close and volume matter.
pub fn cv(close: f64, volume: f64) -> Ohlcv {
    Ohlcv {
        open: close,
        high: close,
        low: close,
        close,
        volume,
    }
}

/// A final row with `price`, or a "none" row without one.
pub fn row(exchange: &str, symbol: &str, on: NaiveDate, price: Option<Ohlcv>) -> Row {
    Row {
        exchange: ex(exchange),
        symbol: sym(symbol),
        day: on,
        state: if price.is_some() {
            CellState::Final
        } else {
            CellState::NoPrice
        },
        price,
        flags: Flags::NONE,
        fetched_at: None,
        reason: None,
        market: None,
    }
}
