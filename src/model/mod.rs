//! The vocabulary every other module speaks: exchange and symbol names, the
//! OHLCV record, and a fetch task with its key, here; days and ranges of
//! days in `day`; a task's outcome, the states a cell can be in and a
//! round's counts in `cell`; quote currencies in `quote`; what to do with a
//! broken OHLC order and the form of market names in `market`; the default
//! dataset seed here. Every type is re-exported here, so the rest of the
//! crate names them `crate::model::X` whichever file holds them.
//!
//! Values from config files or from the network become these types once, at
//! the edge (see `NameError`, `Day`'s `FromStr`), so code past the edge never
//! re-checks a name, a date or a number. This module does no I/O and knows
//! no other module of the crate.

mod cell;
mod day;
mod exchange_api;
mod lane;
mod market;
mod quote;

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use cell::{reason_kind, CellState, Counts, Flags, Outcome, RoundSummary};
pub use day::{Day, DayRange};
pub use exchange_api::ExchangeApi;
pub use lane::LeaseScope;
pub use market::{check_form, MarketForm, OhlcOrder};
pub use quote::{quote_problem, DEFAULT_QUOTES, KNOWN_QUOTES};

/// The seed of the default generated dataset: the built-in server's
/// default, and so the config's and the CLI's.
pub const DEFAULT_SEED: u64 = 20_200_101;

/// Longest name accepted for an exchange or a symbol.
pub const MAX_NAME_LEN: usize = 64;

/// Why a string is not a valid exchange or symbol name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name is empty")]
    Empty,
    #[error("name {0:?} is longer than {MAX_NAME_LEN} characters")]
    TooLong(String),
    #[error("name {0:?} has a character outside [a-z0-9-]")]
    BadChar(String),
}

fn check_name(raw: &str) -> Result<(), NameError> {
    if raw.is_empty() {
        return Err(NameError::Empty);
    }
    if raw.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(raw.to_owned()));
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(NameError::BadChar(raw.to_owned()));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Always matches `[a-z0-9-]{1,64}`, so it is safe to put in a URL path.
        /// Cloning is cheap (a shared string).
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Checks `raw` and wraps it.
            pub fn new(raw: &str) -> Result<Self, NameError> {
                check_name(raw)?;
                Ok(Self(Arc::from(raw)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::new(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// The name of an exchange, e.g. `kraken`.
    Exchange
);
name_type!(
    /// The name of a traded symbol, e.g. `btc`.
    Symbol
);

/// One day's open, high, low, close and volume. Every number is finite and
/// non-negative (checked by `Ohlcv::new`). `low <= open, close <= high` is
/// checked apart (`check_order`): real exchange data breaks it now and then
/// (3% of the classic dataset), so whether to reject that is the caller's call.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ohlcv {
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

/// Why five numbers do not make a valid `Ohlcv`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OhlcvError {
    #[error("field '{field}' is not a finite number ({value})")]
    NotFinite { field: &'static str, value: f64 },
    #[error("field '{field}' is negative ({value})")]
    Negative { field: &'static str, value: f64 },
    #[error("field '{field}' ({value}) lies outside low..=high ({low}..={high})")]
    OutOfRange {
        field: &'static str,
        value: f64,
        low: f64,
        high: f64,
    },
}

impl Ohlcv {
    /// Checks that every number is finite and non-negative.
    pub fn new(
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
    ) -> Result<Self, OhlcvError> {
        let fields = [
            ("open", open),
            ("high", high),
            ("low", low),
            ("close", close),
            ("volume", volume),
        ];
        for (field, value) in fields {
            if !value.is_finite() {
                return Err(OhlcvError::NotFinite { field, value });
            }
            if value < 0.0 {
                return Err(OhlcvError::Negative { field, value });
            }
        }
        Ok(Self {
            open,
            high,
            low,
            close,
            volume,
        })
    }

    /// Checks `low <= open, close <= high`.
    pub fn check_order(&self) -> Result<(), OhlcvError> {
        let (low, high) = (self.low, self.high);
        for (field, value) in [("open", self.open), ("close", self.close)] {
            if value < low || value > high {
                return Err(OhlcvError::OutOfRange {
                    field,
                    value,
                    low,
                    high,
                });
            }
        }
        Ok(())
    }
}

/// The coordinates of one price: which exchange, which symbol, which day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskKey {
    pub exchange: Exchange,
    pub symbol: Symbol,
    pub day: NaiveDate,
}

impl fmt::Display for TaskKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.exchange, self.symbol, self.day)
    }
}

/// Where one (exchange, symbol) is asked when the exchange has an
/// `[exchanges.NAME]` table: its API, the exchange's market name for the
/// symbol, and the source identity its cells record (which includes the
/// market: a price in USDT is not a price in USD, so another market makes
/// settled cells due again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    pub api: ExchangeApi,
    /// The exchange's name for the market, e.g. `XBTUSD`; empty for the
    /// classic API, which has none.
    pub name: Arc<str>,
    pub source: Arc<str>,
    /// What the market is quoted in, upper-case (`USD`, `USDT`), when
    /// known: from the listing it was chosen in, or guessed from a
    /// configured market's name (`market_quote`). The cross-exchange
    /// checks put a close in its quote's class.
    pub quote: Option<Arc<str>>,
    /// Why no market could be found for the symbol (none configured, none
    /// listed, the listing failed): the task fails with this reason
    /// without a request.
    pub unresolved: Option<Arc<str>>,
}

impl Market {
    /// The source identity of `name` at the endpoint known as `endpoint`:
    /// `"kraken:https://api.kraken.com/ market=XBTUSD"`.
    pub fn identity(endpoint: &str, name: &str) -> Arc<str> {
        if name.is_empty() {
            Arc::from(endpoint)
        } else {
            Arc::from(format!("{endpoint}{MARKET_TAG}{name}"))
        }
    }

    /// The market named in a source identity made by `identity`, if any.
    pub fn of_source(source: &str) -> Option<&str> {
        source.rsplit_once(MARKET_TAG).map(|(_, m)| m)
    }
}

const MARKET_TAG: &str = " market=";

/// The quote of a configured market named `market`: the longest of
/// `quotes` its name ends with, separators (`-`, `_`, `/`, `:`) aside and
/// in any case (`XBTUSD`, `BTC-USDT`, `tBTCUSD`); `None` when none does.
pub fn market_quote<Q: AsRef<str>>(market: &str, quotes: &[Q]) -> Option<Arc<str>> {
    let name: String = market
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '/' | ':'))
        .collect::<String>()
        .to_ascii_uppercase();
    quotes
        .iter()
        .map(|q| q.as_ref().to_ascii_uppercase())
        .filter(|q| !q.is_empty() && name.len() > q.len() && name.ends_with(q.as_str()))
        .max_by_key(|q| q.len())
        .map(Arc::from)
}

/// What to fetch in one round and what became of its earlier attempts:
/// one day (the classic API) or a page of `span` consecutive days from
/// `key.day` (a real exchange's candles), one request either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// The first (for the classic API, the only) day's cell.
    pub key: TaskKey,
    /// Days covered, from `key.day` on; at least 1.
    pub span: u32,
    /// Attempts made before this one (0 for a fresh task).
    pub attempt: u32,
    /// The exchange's own API and market, if it has an `[exchanges.NAME]`
    /// table; `None`: asked through `[source]`.
    pub market: Option<Arc<Market>>,
}

impl Task {
    /// One day, asked through `[source]`.
    pub fn new(key: TaskKey) -> Self {
        Self {
            key,
            span: 1,
            attempt: 0,
            market: None,
        }
    }

    /// The days `days` of one (exchange, symbol) in `market`, in one request.
    pub fn page(exchange: Exchange, symbol: Symbol, days: DayRange, market: Arc<Market>) -> Self {
        Self {
            key: TaskKey {
                exchange,
                symbol,
                day: days.from,
            },
            span: u32::try_from(days.len()).unwrap_or(u32::MAX).max(1),
            attempt: 0,
            market: Some(market),
        }
    }

    /// The days this task covers.
    pub fn days(&self) -> DayRange {
        DayRange {
            from: self.key.day,
            to: self.key.day + chrono::Days::new(u64::from(self.span.max(1) - 1)),
        }
    }

    /// The cell of each day this task covers.
    pub fn keys(&self) -> impl Iterator<Item = TaskKey> + '_ {
        self.days().days().map(|day| TaskKey {
            exchange: self.key.exchange.clone(),
            symbol: self.key.symbol.clone(),
            day,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_the_api_alphabet_only() {
        assert!(Exchange::new("coinbase-pro").is_ok());
        assert!(Symbol::new("btc").is_ok());
        assert_eq!(Exchange::new(""), Err(NameError::Empty));
        assert!(matches!(
            Exchange::new("Kraken"),
            Err(NameError::BadChar(_))
        ));
        assert!(matches!(Symbol::new("b/tc"), Err(NameError::BadChar(_))));
        assert!(matches!(Symbol::new("../x"), Err(NameError::BadChar(_))));
        assert!(matches!(
            Symbol::new(&"a".repeat(65)),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn ohlcv_rejects_broken_invariants() {
        assert!(Ohlcv::new(2.0, 3.0, 1.0, 2.5, 10.0).is_ok());
        assert!(matches!(
            Ohlcv::new(f64::NAN, 3.0, 1.0, 2.5, 10.0),
            Err(OhlcvError::NotFinite { field: "open", .. })
        ));
        assert!(matches!(
            Ohlcv::new(2.0, 3.0, 1.0, 2.5, -1.0),
            Err(OhlcvError::Negative {
                field: "volume",
                ..
            })
        ));
        let close_high = Ohlcv::new(2.0, 3.0, 1.0, 3.5, 1.0).unwrap();
        assert!(matches!(
            close_high.check_order(),
            Err(OhlcvError::OutOfRange { field: "close", .. })
        ));
        let open_low = Ohlcv::new(0.5, 3.0, 1.0, 2.0, 1.0).unwrap();
        assert!(matches!(
            open_low.check_order(),
            Err(OhlcvError::OutOfRange { field: "open", .. })
        ));
        assert!(Ohlcv::new(2.0, 3.0, 1.0, 2.5, 1.0)
            .unwrap()
            .check_order()
            .is_ok());
    }
}
