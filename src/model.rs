//! The vocabulary every other module speaks: exchange and symbol names,
//! days and ranges of days, the OHLCV record, a fetch task and its outcome,
//! the states a cell can be in, and a round's counts.
//!
//! Values from config files or from the network become these types once, at
//! the edge (see `NameError`, `Day`'s `FromStr`), so code past the edge never
//! re-checks a name, a date or a number. This module does no I/O.

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// A calendar day (UTC), written `YYYY-MM-DD` wherever a person types one:
/// the config's window, command-line options, API queries. It has one
/// parser, `FromStr`, which serde uses too, so every edge accepts and
/// refuses the same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Day(pub NaiveDate);

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for Day {
    type Err = String;

    /// Exactly four digits, two and two: chrono alone would also take
    /// `2020-1-5`, ` 2020-01-05` or `+2020-01-05`, each a likely typo.
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = |e: &dyn fmt::Display| format!("{raw:?} is not a date YYYY-MM-DD: {e}");
        let shaped = raw.len() == 10
            && raw.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !shaped {
            return Err(bad(
                &"expected a four-digit year and two-digit month and day",
            ));
        }
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map(Day)
            .map_err(|e| bad(&e))
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// An inclusive range of days, e.g. the window a universe covers today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DayRange {
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + Clone {
        self.from.iter_days().take_while({
            let to = self.to;
            move |d| *d <= to
        })
    }

    pub fn len(&self) -> usize {
        usize::try_from((self.to - self.from).num_days() + 1).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.to < self.from
    }
}

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

/// A key to fetch in one round and what became of its earlier attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub key: TaskKey,
    /// Attempts made before this one (0 for a fresh task).
    pub attempt: u32,
}

impl Task {
    pub fn new(key: TaskKey) -> Self {
        Self { key, attempt: 0 }
    }
}

/// Quality marks on a price that is kept exactly as the source sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// Open or close lies outside low..=high.
    pub const OHLC_ORDER: Flags = Flags(1);
    /// A price of zero (open, high, low or close is 0 or -0.0).
    pub const ZERO: Flags = Flags(2);

    const NAMES: [(Flags, &'static str); 2] =
        [(Flags::OHLC_ORDER, "ohlc_order"), (Flags::ZERO, "zero")];

    /// The flags a price earns on its own (ohlc order only when `check_order`).
    pub fn of(price: &Ohlcv, check_order: bool) -> Flags {
        let mut f = Flags::NONE;
        if check_order && price.check_order().is_err() {
            f |= Flags::OHLC_ORDER;
        }
        if [price.open, price.high, price.low, price.close].contains(&0.0) {
            f |= Flags::ZERO;
        }
        f
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// Keeps only the bits that name a known flag.
    pub fn from_bits(bits: u8) -> Flags {
        Flags(bits & (Flags::OHLC_ORDER.0 | Flags::ZERO.0))
    }

    /// The names of the set flags, e.g. `["ohlc_order"]`.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect()
    }

    /// The flag called `name`.
    pub fn named(name: &str) -> Option<Flags> {
        Self::NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(f, _)| *f)
    }
}

impl std::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Flags {
    fn bitor_assign(&mut self, rhs: Flags) {
        self.0 |= rhs.0;
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for Flags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut f = Flags::NONE;
        for n in names {
            f |= Flags::named(&n)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown flag {n:?}")))?;
        }
        Ok(f)
    }
}

/// What one task produced, as the Supervisor decided it: the source's
/// answer (a price, or its word that it has none), a failure with its
/// reason, or a price refused on purpose. Never two of these at once.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Price {
        price: Ohlcv,
        flags: Flags,
    },
    /// The source said, unambiguously, that it has no price there.
    NoPrice,
    /// No answer: every attempt failed (or a permanent failure ended them).
    Failed {
        reason: String,
        attempts: u32,
    },
    /// An answer refused by a rule (`source.ohlc_order = "reject"`); it
    /// settles and is never fetched again. The price is kept as sent.
    Rejected {
        reason: String,
        price: Option<Ohlcv>,
    },
}

impl Outcome {
    /// A plain price with no flags.
    pub fn price(price: Ohlcv) -> Self {
        Outcome::Price {
            price,
            flags: Flags::NONE,
        }
    }

    /// The source has spoken (a price or "none"); a failure has not.
    pub fn is_answer(&self) -> bool {
        matches!(self, Outcome::Price { .. } | Outcome::NoPrice)
    }

    /// What this outcome counts as in its round, given whether the answer
    /// was given late enough to be final.
    pub fn state(&self, is_final: bool) -> CellState {
        match self {
            Outcome::Price { .. } if is_final => CellState::Final,
            Outcome::NoPrice if is_final => CellState::NoPrice,
            Outcome::Price { .. } | Outcome::NoPrice => CellState::Provisional,
            Outcome::Failed { .. } => CellState::Failed,
            Outcome::Rejected { .. } => CellState::Rejected,
        }
    }
}

/// What is known about one (exchange, symbol, day) cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellState {
    /// A price fetched after the day closed plus `source.settle_after`.
    Final,
    /// A price (or "none") fetched while the day was open or within the
    /// grace period: fetched again every round until it is final.
    Provisional,
    /// The source said it has no price, after the day closed plus grace.
    #[serde(rename = "none")]
    NoPrice,
    /// No answer; the reason is kept, and the next round tries again.
    Failed,
    /// Refused by a rule, with its reason; never fetched again.
    Rejected,
}

impl CellState {
    pub const ALL: [CellState; 5] = [
        CellState::Final,
        CellState::Provisional,
        CellState::NoPrice,
        CellState::Failed,
        CellState::Rejected,
    ];

    /// Settled cells are not fetched again (while their source stays the same).
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            CellState::Final | CellState::NoPrice | CellState::Rejected
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Final => "final",
            CellState::Provisional => "provisional",
            CellState::NoPrice => "none",
            CellState::Failed => "failed",
            CellState::Rejected => "rejected",
        }
    }
}

impl fmt::Display for CellState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CellState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        CellState::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?}: expected final, provisional, none, failed or rejected"
                )
            })
    }
}

/// Tasks of a round and what became of them, one count per cell state:
/// `tasks = final + provisional + none + failed + rejected` once every task
/// is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub tasks: u64,
    #[serde(rename = "final")]
    pub finals: u64,
    pub provisional: u64,
    pub none: u64,
    pub failed: u64,
    pub rejected: u64,
}

impl Counts {
    /// Tasks with an outcome.
    pub fn done(&self) -> u64 {
        self.finals + self.provisional + self.none + self.failed + self.rejected
    }

    /// Tasks that ended in `state`.
    pub fn of(&self, state: CellState) -> u64 {
        match state {
            CellState::Final => self.finals,
            CellState::Provisional => self.provisional,
            CellState::NoPrice => self.none,
            CellState::Failed => self.failed,
            CellState::Rejected => self.rejected,
        }
    }

    pub fn add(&mut self, state: CellState, by: i64) {
        let slot = match state {
            CellState::Final => &mut self.finals,
            CellState::Provisional => &mut self.provisional,
            CellState::NoPrice => &mut self.none,
            CellState::Failed => &mut self.failed,
            CellState::Rejected => &mut self.rejected,
        };
        *slot = slot.saturating_add_signed(by);
    }
}

/// What a finished round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RoundSummary {
    pub round: u64,
    /// The config version the round ran under, start to end.
    pub config_version: u64,
    /// Cut short by a shutdown: not every task was done.
    pub aborted: bool,
    pub counts: Counts,
    #[serde(rename = "elapsed_s", serialize_with = "seconds")]
    pub elapsed: std::time::Duration,
}

fn seconds<S: Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
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

    fn day(raw: &str) -> Result<Day, String> {
        raw.parse()
    }

    #[test]
    fn a_day_is_exactly_yyyy_mm_dd() {
        assert_eq!(
            day("2020-01-05"),
            Ok(Day(NaiveDate::from_ymd_opt(2020, 1, 5).unwrap()))
        );
        assert_eq!(
            day("0001-01-01").map(|d| d.to_string()).as_deref(),
            Ok("0001-01-01")
        );
        for typo in [
            "2020-1-5",
            "2020-01-5",
            " 2020-01-05",
            "+2020-01-05",
            "2020-01-05 ",
            "20200-01-05",
            "2020/01/05",
            "",
        ] {
            let err = day(typo).unwrap_err();
            assert!(
                err.starts_with(&format!("{typo:?} is not a date YYYY-MM-DD: ")),
                "{err}"
            );
        }
        let err = day("2020-02-30").unwrap_err();
        assert!(
            err.starts_with("\"2020-02-30\" is not a date YYYY-MM-DD: "),
            "{err}"
        );
    }

    #[test]
    fn serde_reads_a_day_with_the_same_parser() {
        let d: Day = serde_json::from_str("\"2024-02-29\"").unwrap();
        assert_eq!(d.to_string(), "2024-02-29");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2024-02-29\"");
        let err = serde_json::from_str::<Day>("\"2024-2-29\"").unwrap_err();
        assert!(
            err.to_string().contains("is not a date YYYY-MM-DD"),
            "{err}"
        );
    }

    #[test]
    fn a_day_range_is_inclusive() {
        let d = |s: &str| s.parse::<Day>().unwrap().0;
        let r = DayRange {
            from: d("2020-02-28"),
            to: d("2020-03-01"),
        };
        assert_eq!(r.len(), 3);
        assert_eq!(r.days().last(), Some(d("2020-03-01")));
        let backwards = DayRange {
            from: r.to,
            to: r.from,
        };
        assert!(backwards.is_empty());
        assert_eq!(backwards.len(), 0);
        assert_eq!(backwards.days().count(), 0);
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
