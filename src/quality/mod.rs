//! Cross-exchange judgement of one (symbol, day): which exchanges' closes
//! are outliers, which candles are stale repeats, which stablecoin-quoted
//! closes are off their peg, and the reference close built from the rest
//! (a volume-weighted median, with its constituents, what was left out and
//! why, and its dispersion). The method, step by step, so that a reader can
//! check it by hand:
//!
//! 1. A cell takes part only with a final or provisional close (`Input`).
//!    One already flagged as a fault when it came (`zero`, `ohlc_order`)
//!    is left out ("flagged"); `derived:1h` and `quotes` say how a candle
//!    was built, not that it is wrong, and stay in.
//! 2. **Quote class.** USD, USDT and USDC make one class, "USD". A USDT or
//!    USDC close counts in it only on a day its peg market's close is within
//!    `peg_tolerance` of 1: further off, it is left out and flagged
//!    `off_peg`; with the peg's close unknown that day it is left out
//!    unflagged ("peg unknown": nothing says it was off). Any other quote
//!    is left out ("not USD"), unflagged: it is a price in another unit.
//! 3. **Stale.** A candle equal to its exchange's previous day (open, high,
//!    low, close) with zero volume is `stale` and left out, whatever its
//!    quote (a cell may be both `off_peg` and `stale`).
//! 4. **Outlier.** Among the remaining final closes, one further from the
//!    median of the *other* exchanges' closes than `max(k × MAD, floor ×
//!    that median)` is an `outlier` and left out (MAD: the median absolute
//!    deviation of those other closes from their median). It needs at least
//!    three other closes; with fewer nobody is called an outlier.
//! 5. **Reference.** The volume-weighted median of what is left: closes
//!    sorted, the first whose cumulative volume reaches half the total (the
//!    mean of it and the next when it lands exactly on half); the plain
//!    median when every volume is zero. Fewer than `min_exchanges`
//!    constituents: "insufficient", no number. Provisional while any
//!    constituent is provisional.
//! 6. **Dispersion.** The constituents' min, max, their spread as a share
//!    of the reference, and their MAD (about their plain median).
//!
//! "Reaches half" is judged with a relative tolerance of 1e-9 of the total,
//! so that volumes such as 0.1 + 0.2 that a reader sums to exactly half do
//! not miss it by a rounding error.
//!
//! Pure: numbers in, verdicts out; no store, no clock, no I/O.

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::model::{Exchange, Flags, Ohlcv};

/// The `[quality]` settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Outlier threshold in MADs (default 5).
    pub k: f64,
    /// Least outlier threshold, as a share of the others' median (2 %).
    pub floor: f64,
    /// Constituents a reference needs (3).
    pub min_exchanges: usize,
    /// How far from 1 a stablecoin's peg close may be (0.5 %).
    pub peg_tolerance: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            k: 5.0,
            floor: 0.02,
            min_exchanges: 3,
            peg_tolerance: 0.005,
        }
    }
}

/// What a cell's price is quoted in.
#[derive(Debug, Clone, PartialEq)]
pub enum Quote {
    Usd,
    /// A USD stablecoin (`usdt`, `usdc`) and its peg market's close that
    /// day, in USD, if known.
    Stable {
        coin: String,
        peg: Option<f64>,
    },
    /// Anything else (`EUR`, `BTC`, …).
    Other(String),
}

/// One exchange's cell of the symbol-day.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub exchange: Exchange,
    pub price: Ohlcv,
    pub provisional: bool,
    /// The flags the price came with (the checks' own are ignored).
    pub flags: Flags,
    pub quote: Quote,
    /// The same exchange's previous day, when it holds a price.
    pub previous: Option<Ohlcv>,
}

/// Why a close is not in the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Exclusion {
    /// Flagged as a fault when it came (`zero`, `ohlc_order`).
    Flagged {
        flags: Vec<String>,
    },
    /// Quoted in something that is not USD or a USD stablecoin.
    NotUsd {
        quote: String,
    },
    /// Its stablecoin's peg market closed further from 1 than the tolerance.
    OffPeg {
        coin: String,
        peg: f64,
    },
    /// Its stablecoin's peg market has no close that day (yet).
    PegUnknown {
        coin: String,
    },
    Stale,
    /// Further from the others' median than the threshold.
    Outlier {
        median: f64,
        threshold: f64,
    },
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Final => "final",
            Status::Provisional => "provisional",
            Status::Insufficient => "insufficient",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Final, Status::Provisional, Status::Insufficient]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

impl Exclusion {
    /// A word for the reason, as tables show it (`outlier`, `not_usd`).
    pub fn word(&self) -> &'static str {
        match self {
            Exclusion::Flagged { .. } => "flagged",
            Exclusion::NotUsd { .. } => "not_usd",
            Exclusion::OffPeg { .. } => "off_peg",
            Exclusion::PegUnknown { .. } => "peg_unknown",
            Exclusion::Stale => "stale",
            Exclusion::Outlier { .. } => "outlier",
        }
    }

    /// The flag the cell earns (`None` for a close merely in another unit).
    pub fn flag(&self) -> Option<&'static str> {
        match self {
            Exclusion::Flagged { .. } | Exclusion::NotUsd { .. } | Exclusion::PegUnknown { .. } => {
                None
            }
            Exclusion::OffPeg { .. } => Some("off_peg"),
            Exclusion::Stale => Some("stale"),
            Exclusion::Outlier { .. } => Some("outlier"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Final,
    /// A constituent is provisional: the reference may still move.
    Provisional,
    /// Fewer constituents than `min_exchanges`.
    Insufficient,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dispersion {
    pub min: f64,
    pub max: f64,
    /// (max − min) / reference.
    pub spread: f64,
    /// The median absolute deviation of the constituents' closes from
    /// their plain median.
    pub mad: f64,
}

/// One close that makes a reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Constituent {
    pub exchange: Exchange,
    pub close: f64,
    pub volume: f64,
    pub provisional: bool,
}

/// A cell left out of a reference, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Excluded {
    pub exchange: Exchange,
    #[serde(flatten)]
    pub why: Exclusion,
}

/// The reference close of one symbol-day and the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub close: Option<f64>,
    pub status: Status,
    /// Each constituent, by close (then exchange).
    pub constituents: Vec<Constituent>,
    /// Each cell left out, with the first reason found (in the order of the
    /// method's steps).
    pub excluded: Vec<Excluded>,
    pub dispersion: Option<Dispersion>,
}

/// One symbol-day's reference, as served and recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReferenceRow {
    pub symbol: crate::model::Symbol,
    pub day: chrono::NaiveDate,
    /// The round that judged it so (the record's rows; none for a live
    /// answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub round: Option<u64>,
    #[serde(flatten)]
    pub reference: Reference,
}

/// A judged symbol-day: its reference, and the check flags each input
/// earned (in the order of the inputs; only `Flags::CHECKS` bits).
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub reference: Reference,
    pub flags: Vec<Flags>,
}

/// The median of `xs` (the mean of the middle two for an even count).
pub fn median(xs: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The median absolute deviation of `xs` from `center`.
pub fn mad(xs: &[f64], center: f64) -> Option<f64> {
    let deviations: Vec<f64> = xs.iter().map(|x| (x - center).abs()).collect();
    median(&deviations)
}

/// The volume-weighted median of (close, volume) points: sorted by close,
/// the first whose cumulative volume reaches half the total, or the mean of
/// it and the next when it lands exactly on half. The plain median when the
/// volumes sum to zero.
pub fn weighted_median(points: &[(f64, f64)]) -> Option<f64> {
    let mut v: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(c, w)| c.is_finite() && w.is_finite() && *w >= 0.0)
        .collect();
    if v.is_empty() {
        return None;
    }
    let total: f64 = v.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        let closes: Vec<f64> = v.iter().map(|(c, _)| *c).collect();
        return median(&closes);
    }
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = total / 2.0;
    let tolerance = total * 1e-9;
    let mut cumulative = 0.0;
    for (i, (close, w)) in v.iter().enumerate() {
        cumulative += w;
        if *w == 0.0 {
            continue;
        }
        if cumulative > half + tolerance {
            return Some(*close);
        }
        if cumulative >= half - tolerance {
            let next = v[i + 1..]
                .iter()
                .find(|(_, w)| *w > 0.0)
                .map_or(*close, |p| p.0);
            return Some((close + next) / 2.0);
        }
    }
    v.last().map(|(c, _)| *c)
}

/// The outlier verdict for `close` against the other exchanges' closes:
/// `None` with fewer than three others, else the median and threshold when
/// it lies further than the threshold.
pub fn outlier(close: f64, others: &[f64], s: &Settings) -> Option<Exclusion> {
    if others.len() < 3 {
        return None;
    }
    let center = median(others)?;
    let threshold = (s.k * mad(others, center)?).max(s.floor * center.abs());
    ((close - center).abs() > threshold).then_some(Exclusion::Outlier {
        median: center,
        threshold,
    })
}

/// A candle that repeats its previous day's open, high, low and close with
/// zero volume.
pub fn is_stale(previous: &Ohlcv, today: &Ohlcv) -> bool {
    today.volume == 0.0
        && today.open == previous.open
        && today.high == previous.high
        && today.low == previous.low
        && today.close == previous.close
}

/// The faults a price may have come flagged with that keep it out.
const FAULTS: Flags = Flags::ZERO.union(Flags::OHLC_ORDER);

/// Judges one symbol-day's cells: the method of this module's opening.
pub fn judge(inputs: &[Input], s: &Settings) -> Judgement {
    let mut flags = vec![Flags::NONE; inputs.len()];
    let mut why: Vec<Option<Exclusion>> = vec![None; inputs.len()];
    for (i, input) in inputs.iter().enumerate() {
        let stale = input.previous.is_some_and(|p| is_stale(&p, &input.price));
        if stale {
            flags[i] |= Flags::STALE;
        }
        let faults = input.flags & FAULTS;
        let class = match &input.quote {
            Quote::Usd => None,
            Quote::Stable { coin, peg: Some(p) } if (p - 1.0).abs() > s.peg_tolerance => {
                flags[i] |= Flags::OFF_PEG;
                Some(Exclusion::OffPeg {
                    coin: coin.clone(),
                    peg: *p,
                })
            }
            Quote::Stable { peg: Some(_), .. } => None,
            Quote::Stable { coin, peg: None } => Some(Exclusion::PegUnknown { coin: coin.clone() }),
            Quote::Other(q) => Some(Exclusion::NotUsd { quote: q.clone() }),
        };
        why[i] = (!faults.is_empty())
            .then(|| Exclusion::Flagged {
                flags: faults.names().into_iter().map(String::from).collect(),
            })
            .or(class)
            .or(stale.then_some(Exclusion::Stale));
    }
    let finals: Vec<(usize, f64)> = inputs
        .iter()
        .enumerate()
        .filter(|(i, c)| why[*i].is_none() && !c.provisional)
        .map(|(i, c)| (i, c.price.close))
        .collect();
    let mut outliers = Vec::new();
    for &(i, close) in &finals {
        let others: Vec<f64> = finals
            .iter()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect();
        if let Some(verdict) = outlier(close, &others, s) {
            outliers.push((i, verdict));
        }
    }
    for (i, verdict) in outliers {
        flags[i] |= Flags::OUTLIER;
        why[i] = Some(verdict);
    }
    let mut constituents = Vec::new();
    let mut excluded = Vec::new();
    for (input, why) in inputs.iter().zip(why) {
        match why {
            Some(why) => excluded.push(Excluded {
                exchange: input.exchange.clone(),
                why,
            }),
            None => constituents.push(Constituent {
                exchange: input.exchange.clone(),
                close: input.price.close,
                volume: input.price.volume,
                provisional: input.provisional,
            }),
        }
    }
    constituents.sort_by(|a, b| {
        a.close
            .total_cmp(&b.close)
            .then_with(|| a.exchange.cmp(&b.exchange))
    });
    let reference = reference_of(constituents, excluded, s);
    Judgement { reference, flags }
}

/// The reference close of `constituents` (sorted by close), steps 5 and 6.
fn reference_of(
    constituents: Vec<Constituent>,
    excluded: Vec<Excluded>,
    s: &Settings,
) -> Reference {
    let points: Vec<(f64, f64)> = constituents.iter().map(|c| (c.close, c.volume)).collect();
    let close = weighted_median(&points).filter(|_| constituents.len() >= s.min_exchanges.max(1));
    let Some(r) = close else {
        return Reference {
            close: None,
            status: Status::Insufficient,
            constituents,
            excluded,
            dispersion: None,
        };
    };
    let closes: Vec<f64> = points.iter().map(|(c, _)| *c).collect();
    let min = closes.iter().copied().fold(f64::INFINITY, f64::min);
    let max = closes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mad = median(&closes).and_then(|m| mad(&closes, m)).unwrap_or(0.0);
    let dispersion = Dispersion {
        min,
        max,
        spread: if r != 0.0 { (max - min) / r } else { 0.0 },
        mad,
    };
    let status = if constituents.iter().any(|c| c.provisional) {
        Status::Provisional
    } else {
        Status::Final
    };
    Reference {
        close: Some(r),
        status,
        constituents,
        excluded,
        dispersion: Some(dispersion),
    }
}
