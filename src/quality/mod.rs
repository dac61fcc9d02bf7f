//! Cross-exchange judgement of one (symbol, day): which exchanges' closes
//! are outliers, which candles are stale repeats, which stablecoin-quoted
//! closes are off their peg, and the reference close built from the rest
//! (a volume-weighted median, with its constituents, what was left out and
//! why, and its dispersion). The method, step by step, so that a reader can
//! check it by hand:
//!
//! 1. A cell takes part only with a final or provisional close (`Input`).
//! 2. **Quote class.** USD, USDT and USDC make one class, "USD". A USDT or
//!    USDC close counts in it only on a day its peg market's close is within
//!    `peg_tolerance` of 1 (`off_peg` otherwise, or when the peg's close is
//!    unknown); any other quote is left out ("not USD").
//! 3. **Stale.** A candle equal to its exchange's previous day (open, high,
//!    low, close) with zero volume is `stale` and left out.
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
//!    of the reference, and the MAD.
//!
//! Pure: numbers in, verdicts out; no store, no clock, no I/O.

#[cfg(test)]
mod tests;

use crate::model::{Exchange, Ohlcv};

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
    pub quote: Quote,
    /// The same exchange's previous day, when it holds a price.
    pub previous: Option<Ohlcv>,
}

/// Why a close is not in the reference.
#[derive(Debug, Clone, PartialEq)]
pub enum Exclusion {
    /// Quoted in something that is not USD or a USD stablecoin.
    NotUsd(String),
    /// Its stablecoin's peg close was off by more than the tolerance, or
    /// unknown (`peg` None).
    OffPeg {
        coin: String,
        peg: Option<f64>,
    },
    Stale,
    /// Further from the others' median than the threshold.
    Outlier {
        median: f64,
        threshold: f64,
    },
}

impl Exclusion {
    /// The flag the cell earns (`None` for a close merely in another unit).
    pub fn flag(&self) -> Option<&'static str> {
        match self {
            Exclusion::NotUsd(_) => None,
            Exclusion::OffPeg { .. } => Some("off_peg"),
            Exclusion::Stale => Some("stale"),
            Exclusion::Outlier { .. } => Some("outlier"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Final,
    /// A constituent is provisional: the reference may still move.
    Provisional,
    /// Fewer constituents than `min_exchanges`.
    Insufficient,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dispersion {
    pub min: f64,
    pub max: f64,
    /// (max − min) / reference.
    pub spread: f64,
    pub mad: f64,
}

/// The reference close of one symbol-day and the evidence behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub close: Option<f64>,
    pub status: Status,
    /// Exchange, close and volume of each constituent, by close.
    pub constituents: Vec<(Exchange, f64, f64)>,
    pub excluded: Vec<(Exchange, Exclusion)>,
    pub dispersion: Option<Dispersion>,
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
    let mut cumulative = 0.0;
    for (i, (close, w)) in v.iter().enumerate() {
        cumulative += w;
        if cumulative > half {
            return Some(*close);
        }
        if cumulative == half {
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

/// Judges one symbol-day's cells: the method of this module's opening.
pub fn judge(inputs: &[Input], s: &Settings) -> Reference {
    let mut excluded = Vec::new();
    let mut candidates: Vec<&Input> = Vec::new();
    for input in inputs {
        let why = match &input.quote {
            Quote::Usd => None,
            Quote::Stable { coin, peg } => match peg {
                Some(p) if (p - 1.0).abs() <= s.peg_tolerance => None,
                _ => Some(Exclusion::OffPeg {
                    coin: coin.clone(),
                    peg: *peg,
                }),
            },
            Quote::Other(q) => Some(Exclusion::NotUsd(q.clone())),
        }
        .or_else(|| {
            input
                .previous
                .filter(|p| is_stale(p, &input.price))
                .map(|_| Exclusion::Stale)
        });
        match why {
            Some(why) => excluded.push((input.exchange.clone(), why)),
            None => candidates.push(input),
        }
    }
    let finals: Vec<(usize, f64)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.provisional)
        .map(|(i, c)| (i, c.price.close))
        .collect();
    let mut outliers = vec![false; candidates.len()];
    for &(i, close) in &finals {
        let others: Vec<f64> = finals
            .iter()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect();
        if let Some(why) = outlier(close, &others, s) {
            outliers[i] = true;
            excluded.push((candidates[i].exchange.clone(), why));
        }
    }
    let mut constituents: Vec<(Exchange, f64, f64)> = candidates
        .iter()
        .zip(&outliers)
        .filter(|(_, out)| !**out)
        .map(|(c, _)| (c.exchange.clone(), c.price.close, c.price.volume))
        .collect();
    constituents.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let provisional = candidates
        .iter()
        .zip(&outliers)
        .any(|(c, out)| !*out && c.provisional);
    if constituents.len() < s.min_exchanges.max(1) {
        return Reference {
            close: None,
            status: Status::Insufficient,
            constituents,
            excluded,
            dispersion: None,
        };
    }
    let points: Vec<(f64, f64)> = constituents.iter().map(|(_, c, v)| (*c, *v)).collect();
    let close = weighted_median(&points);
    let closes: Vec<f64> = points.iter().map(|(c, _)| *c).collect();
    let dispersion = close.map(|r| {
        let min = closes.iter().copied().fold(f64::INFINITY, f64::min);
        let max = closes.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Dispersion {
            min,
            max,
            spread: if r != 0.0 { (max - min) / r } else { 0.0 },
            mad: mad(&closes, r).unwrap_or(0.0),
        }
    });
    Reference {
        close,
        status: if provisional {
            Status::Provisional
        } else {
            Status::Final
        },
        constituents,
        excluded,
        dispersion,
    }
}
