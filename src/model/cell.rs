//! What became of a task and what is known about a cell: the `Outcome` the
//! Supervisor decides for a task, the quality `Flags` a kept price carries,
//! the `CellState` a cell is in, and the per-state `Counts` of a round with
//! its `RoundSummary`. Plain values with their serde forms; storing cells is
//! `store`'s job, deciding outcomes the Supervisor's, and this file does no
//! I/O.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Ohlcv;

/// Quality marks on a price that is kept exactly as the source sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(u8);

impl Flags {
    pub const NONE: Flags = Flags(0);
    /// Open or close lies outside low..=high.
    pub const OHLC_ORDER: Flags = Flags(1);
    /// A price of zero (open, high, low or close is 0 or -0.0).
    pub const ZERO: Flags = Flags(2);
    /// The UTC day was built from the exchange's hourly candles (its daily
    /// candle is anchored elsewhere, HTX's at 00:00 UTC+8): open of the
    /// first hour, close of the last, max high, min low, summed volume.
    pub const DERIVED_1H: Flags = Flags(4);
    /// The candle was built from best bid/ask quotes, not trades (CEX.IO):
    /// its volume says nothing (the exchange sends 0).
    pub const QUOTES: Flags = Flags(8);
    /// Cross-exchange check (`quality`): the close is further from the
    /// other exchanges' median that day than the threshold.
    pub const OUTLIER: Flags = Flags(16);
    /// Cross-exchange check: the candle repeats the exchange's previous
    /// day's open, high, low and close with zero volume.
    pub const STALE: Flags = Flags(32);
    /// Cross-exchange check: quoted in a USD stablecoin on a day its peg
    /// market closed further from 1 than `quality.peg_tolerance`.
    pub const OFF_PEG: Flags = Flags(64);
    /// The flags the cross-exchange checks set; they are recomputed for a
    /// whole symbol-day at once, the others come with the price. (Bit 0x80
    /// is the store slot's "holds a price".)
    pub const CHECKS: Flags = Flags(16 | 32 | 64);

    const ALL_BITS: u8 = 1 | 2 | 4 | 8 | 16 | 32 | 64;

    const NAMES: [(Flags, &'static str); 7] = [
        (Flags::OHLC_ORDER, "ohlc_order"),
        (Flags::ZERO, "zero"),
        (Flags::DERIVED_1H, "derived:1h"),
        (Flags::QUOTES, "quotes"),
        (Flags::OUTLIER, "outlier"),
        (Flags::STALE, "stale"),
        (Flags::OFF_PEG, "off_peg"),
    ];

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

    /// These flags and `other`'s (usable in constants).
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// Whether any flag of `other` is set.
    pub fn intersects(self, other: Flags) -> bool {
        self.0 & other.0 != 0
    }

    /// These flags with the cross-exchange checks' replaced by `checks`'.
    pub fn with_checks(self, checks: Flags) -> Flags {
        Flags((self.0 & !Flags::CHECKS.0) | (checks.0 & Flags::CHECKS.0))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// Keeps only the bits that name a known flag.
    pub fn from_bits(bits: u8) -> Flags {
        Flags(bits & Flags::ALL_BITS)
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

impl std::ops::BitAnd for Flags {
    type Output = Flags;
    fn bitand(self, rhs: Flags) -> Flags {
        Flags(self.0 & rhs.0)
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

impl fmt::Display for Counts {
    /// `tasks 1023 final 992 provisional 0 none 31 failed 0 rejected 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tasks {} final {} provisional {} none {} failed {} rejected {}",
            self.tasks, self.finals, self.provisional, self.none, self.failed, self.rejected
        )
    }
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

/// The kind of a failure reason, for grouping and metrics: the text before
/// the first ": " (details such as positions vary from one answer to the
/// next).
pub fn reason_kind(reason: &str) -> &str {
    reason.split(": ").next().unwrap_or(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provenance_flags_keep_their_names_through_bits_and_json() {
        let f = Flags::DERIVED_1H | Flags::QUOTES | Flags::ZERO;
        assert_eq!(f.names(), ["zero", "derived:1h", "quotes"]);
        assert_eq!(Flags::from_bits(f.bits()), f);
        assert_eq!(Flags::from_bits(0x80 | f.bits()), f, "unknown bits dropped");
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(json, r#"["zero","derived:1h","quotes"]"#);
        assert_eq!(serde_json::from_str::<Flags>(&json).unwrap(), f);
        assert_eq!(Flags::named("derived:1h"), Some(Flags::DERIVED_1H));
    }
}
