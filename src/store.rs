//! The compact exchange -> date -> symbol store the Aggregator owns, and its
//! JSON form (the `prices` and `failed` parts of a snapshot).
//!
//! Prices are kept per (exchange, symbol) as a series indexed by day, one
//! fixed-size slot a day (no per-key allocation, names stored once per
//! series), so a million prices cost tens of megabytes, not hundreds. Each
//! series sits behind an `Arc`: cloning the store for a snapshot is cheap,
//! and a later write copies only the series it touches. Pure data: no I/O,
//! no actors.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Exchange, Ohlcv, Outcome, OutcomeKind, Symbol, TaskKey};

/// One day of one series.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Empty,
    Missing,
    /// The reason lives in `Series::failures`.
    Failed,
    Price(Ohlcv),
}

/// Which round last delivered a result for a slot and what that round
/// counted for it, packed as `round << 2 | kind` (0 = never).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Stamp(u32);

impl Stamp {
    fn new(round: u32, kind: OutcomeKind) -> Self {
        let k = match kind {
            OutcomeKind::Price => 1,
            OutcomeKind::Missing => 2,
            OutcomeKind::Failed => 3,
        };
        Stamp(round << 2 | k)
    }

    fn round(self) -> u32 {
        self.0 >> 2
    }

    fn kind(self) -> Option<OutcomeKind> {
        match self.0 & 3 {
            1 => Some(OutcomeKind::Price),
            2 => Some(OutcomeKind::Missing),
            3 => Some(OutcomeKind::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Failure {
    reason: String,
    attempts: u32,
}

/// The days of one (exchange, symbol), from `first` on.
#[derive(Debug, Clone, PartialEq, Default)]
struct Series {
    first: Option<NaiveDate>,
    slots: Vec<Slot>,
    stamps: Vec<Stamp>,
    failures: HashMap<u32, Failure>,
}

impl Series {
    fn index(&self, day: NaiveDate) -> Option<usize> {
        let offset = (day - self.first?).num_days();
        usize::try_from(offset)
            .ok()
            .filter(|&i| i < self.slots.len())
    }

    /// The slot index for `day`, growing the series to cover it.
    fn index_mut(&mut self, day: NaiveDate) -> usize {
        let Some(first) = self.first else {
            self.first = Some(day);
            self.slots.push(Slot::Empty);
            self.stamps.push(Stamp::default());
            return 0;
        };
        if day < first {
            let grow = usize::try_from((first - day).num_days()).unwrap_or(0);
            self.slots
                .splice(0..0, std::iter::repeat_n(Slot::Empty, grow));
            self.stamps
                .splice(0..0, std::iter::repeat_n(Stamp::default(), grow));
            let grow = grow as u32;
            self.failures = std::mem::take(&mut self.failures)
                .into_iter()
                .map(|(i, f)| (i + grow, f))
                .collect();
            self.first = Some(day);
            return 0;
        }
        let i = usize::try_from((day - first).num_days()).unwrap_or(0);
        if i >= self.slots.len() {
            self.slots.resize(i + 1, Slot::Empty);
            self.stamps.resize(i + 1, Stamp::default());
        }
        i
    }

    fn day(&self, i: usize) -> NaiveDate {
        self.first
            .map_or(NaiveDate::MIN, |f| f + chrono::Days::new(i as u64))
    }

    fn outcome(&self, i: usize) -> Option<Outcome> {
        match self.slots.get(i)? {
            Slot::Empty => None,
            Slot::Missing => Some(Outcome::Missing),
            Slot::Price(p) => Some(Outcome::Price(*p)),
            Slot::Failed => {
                let f = self.failures.get(&(i as u32));
                Some(Outcome::Failed {
                    reason: f.map_or_else(|| "unknown".into(), |f| f.reason.clone()),
                    attempts: f.map_or(0, |f| f.attempts),
                })
            }
        }
    }
}

/// How an upsert changed the counts of its round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// The key's first result in this round.
    New(OutcomeKind),
    /// A repeat within the round: `before` is replaced by `now` in the counts.
    Again {
        before: OutcomeKind,
        now: OutcomeKind,
    },
}

/// exchange -> date -> symbol -> outcome, compactly.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Store {
    series: BTreeMap<Exchange, BTreeMap<Symbol, Arc<Series>>>,
}

impl Store {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `outcome` for `key` in `round` (1-based). Idempotent: a
    /// repeat changes nothing, and a failure never replaces an answer (a
    /// price or "no price") the store already holds.
    pub fn upsert(&mut self, key: &TaskKey, outcome: Outcome, round: u32) -> Counted {
        let series = Arc::make_mut(
            self.series
                .entry(key.exchange.clone())
                .or_default()
                .entry(key.symbol.clone())
                .or_default(),
        );
        let i = series.index_mut(key.day);
        let kind = outcome.kind();
        let stamp = series.stamps[i];
        let before = (stamp.round() == round).then(|| stamp.kind()).flatten();
        let now = match before {
            Some(prev) if prev != OutcomeKind::Failed && kind == OutcomeKind::Failed => prev,
            _ => kind,
        };
        let held_answer = matches!(series.slots[i], Slot::Missing | Slot::Price(_));
        match outcome {
            Outcome::Price(p) => {
                series.slots[i] = Slot::Price(p);
                series.failures.remove(&(i as u32));
            }
            Outcome::Missing => {
                series.slots[i] = Slot::Missing;
                series.failures.remove(&(i as u32));
            }
            Outcome::Failed { reason, attempts } => {
                if !held_answer {
                    series.slots[i] = Slot::Failed;
                    series
                        .failures
                        .insert(i as u32, Failure { reason, attempts });
                }
            }
        }
        series.stamps[i] = Stamp::new(round, now);
        match before {
            None => Counted::New(kind),
            Some(before) => Counted::Again { before, now },
        }
    }

    /// What the store holds for a key.
    pub fn get(&self, exchange: &Exchange, symbol: &Symbol, day: NaiveDate) -> Option<Outcome> {
        let s = self.series.get(exchange)?.get(symbol)?;
        s.outcome(s.index(day)?)
    }

    /// The answer for a key: `Some(Some(p))` a price, `Some(None)` the source
    /// has none, `None` no answer (never fetched, or failed).
    pub fn answer(
        &self,
        exchange: &Exchange,
        symbol: &Symbol,
        day: NaiveDate,
    ) -> Option<Option<Ohlcv>> {
        match self.get(exchange, symbol, day)? {
            Outcome::Price(p) => Some(Some(p)),
            Outcome::Missing => Some(None),
            Outcome::Failed { .. } => None,
        }
    }

    /// Settled: the day is closed (before `today`) and the source answered.
    pub fn is_settled(&self, key: &TaskKey, today: NaiveDate) -> bool {
        key.day < today && self.answer(&key.exchange, &key.symbol, key.day).is_some()
    }

    /// Every held key with its outcome, by exchange, symbol, then day.
    pub fn iter(&self) -> impl Iterator<Item = (&Exchange, &Symbol, NaiveDate, Outcome)> + '_ {
        self.series.iter().flat_map(|(e, by_symbol)| {
            by_symbol.iter().flat_map(move |(s, series)| {
                (0..series.slots.len())
                    .filter_map(move |i| Some((e, s, series.day(i), series.outcome(i)?)))
            })
        })
    }

    /// Keys with a price.
    pub fn price_count(&self) -> usize {
        self.count(|s| matches!(s, Slot::Price(_)))
    }

    /// Keys the source said it has no price for.
    pub fn missing_count(&self) -> usize {
        self.count(|s| matches!(s, Slot::Missing))
    }

    /// Keys that failed.
    pub fn failed_count(&self) -> usize {
        self.count(|s| matches!(s, Slot::Failed))
    }

    fn count(&self, pred: impl Fn(&Slot) -> bool) -> usize {
        self.series
            .values()
            .flat_map(BTreeMap::values)
            .map(|s| s.slots.iter().filter(|x| pred(x)).count())
            .sum()
    }

    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.series.keys()
    }

    /// The JSON `prices` object: exchange -> day -> symbol -> price or null.
    pub fn prices_json(&self) -> PricesJson<'_> {
        PricesJson(self)
    }

    /// The JSON `failed` list.
    pub fn failed_json(&self) -> FailedJson<'_> {
        FailedJson(self)
    }

    /// The failed keys with their reasons.
    pub fn failed(&self) -> Vec<FailedTask> {
        self.iter()
            .filter_map(|(e, s, day, o)| match o {
                Outcome::Failed { reason, attempts } => Some(FailedTask {
                    exchange: e.clone(),
                    symbol: s.clone(),
                    day,
                    reason,
                    attempts,
                }),
                _ => None,
            })
            .collect()
    }
}

/// A task that ended without an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedTask {
    pub exchange: Exchange,
    pub symbol: Symbol,
    pub day: NaiveDate,
    pub reason: String,
    pub attempts: u32,
}

/// Serialises a store's answers as exchange -> day -> symbol -> price|null.
pub struct PricesJson<'a>(&'a Store);

impl Serialize for PricesJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let exchanges = self.0.series.iter().filter(|(_, by_symbol)| {
            by_symbol.values().any(|s| {
                s.slots
                    .iter()
                    .any(|x| matches!(x, Slot::Missing | Slot::Price(_)))
            })
        });
        let mut map = ser.serialize_map(None)?;
        for (exchange, by_symbol) in exchanges {
            map.serialize_entry(exchange, &ExchangeDays(by_symbol))?;
        }
        map.end()
    }
}

struct ExchangeDays<'a>(&'a BTreeMap<Symbol, Arc<Series>>);

impl Serialize for ExchangeDays<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let series: Vec<(&Symbol, &Series)> = self.0.iter().map(|(s, x)| (s, x.as_ref())).collect();
        let first = series.iter().filter_map(|(_, s)| s.first).min();
        let last = series
            .iter()
            .filter_map(|(_, s)| Some(s.day(s.slots.len().checked_sub(1)?)))
            .max();
        let mut map = ser.serialize_map(None)?;
        if let (Some(first), Some(last)) = (first, last) {
            for day in first.iter_days().take_while(|d| *d <= last) {
                let answered = |(_, s): &&(&Symbol, &Series)| {
                    s.index(day)
                        .is_some_and(|i| matches!(s.slots[i], Slot::Missing | Slot::Price(_)))
                };
                if series.iter().any(|x| answered(&x)) {
                    map.serialize_entry(
                        &day,
                        &DaySymbols {
                            series: &series,
                            day,
                        },
                    )?;
                }
            }
        }
        map.end()
    }
}

struct DaySymbols<'a> {
    series: &'a [(&'a Symbol, &'a Series)],
    day: NaiveDate,
}

impl Serialize for DaySymbols<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(None)?;
        for (symbol, s) in self.series {
            match s.index(self.day).map(|i| s.slots[i]) {
                Some(Slot::Price(p)) => map.serialize_entry(symbol, &Some(p))?,
                Some(Slot::Missing) => map.serialize_entry(symbol, &None::<Ohlcv>)?,
                _ => {}
            }
        }
        map.end()
    }
}

/// Serialises a store's failed keys as a list.
pub struct FailedJson<'a>(&'a Store);

impl Serialize for FailedJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.0.failed())
    }
}

/// A price as written in JSON, checked on the way in.
#[derive(Deserialize)]
struct PriceIn {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: f64,
}

/// Reads a `prices` object straight into a store (no intermediate maps),
/// every answer recorded as of round 0.
pub struct PricesSeed<'a>(pub &'a mut Store);

impl<'de> DeserializeSeed<'de> for PricesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PricesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object exchange -> day -> symbol -> price or null")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(exchange) = map.next_key::<Exchange>()? {
            let days: BTreeMap<NaiveDate, BTreeMap<Symbol, Option<PriceIn>>> = map.next_value()?;
            for (day, symbols) in days {
                for (symbol, price) in symbols {
                    let outcome = match price {
                        None => Outcome::Missing,
                        Some(p) => Outcome::Price(
                            Ohlcv::new(p.open, p.high, p.low, p.close, p.volume).map_err(|e| {
                                de::Error::custom(format!("{exchange}/{symbol}/{day}: {e}"))
                            })?,
                        ),
                    };
                    let key = TaskKey {
                        exchange: exchange.clone(),
                        symbol,
                        day,
                    };
                    self.0.upsert(&key, outcome, 0);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(exchange: &str, symbol: &str, day: u32) -> TaskKey {
        TaskKey {
            exchange: Exchange::new(exchange).unwrap(),
            symbol: Symbol::new(symbol).unwrap(),
            day: NaiveDate::from_ymd_opt(2020, 3, day).unwrap(),
        }
    }

    fn price(close: f64) -> Outcome {
        Outcome::Price(Ohlcv::new(close, close, close, close, 1.0).unwrap())
    }

    fn failed() -> Outcome {
        Outcome::Failed {
            reason: "server error (503)".into(),
            attempts: 3,
        }
    }

    #[test]
    fn a_repeat_in_the_same_round_is_counted_again_not_anew() {
        let mut s = Store::new();
        assert_eq!(
            s.upsert(&key("kraken", "btc", 1), price(5.0), 1),
            Counted::New(OutcomeKind::Price)
        );
        assert_eq!(
            s.upsert(&key("kraken", "btc", 1), price(5.0), 1),
            Counted::Again {
                before: OutcomeKind::Price,
                now: OutcomeKind::Price
            }
        );
        assert_eq!(
            s.upsert(&key("kraken", "btc", 1), price(5.0), 2),
            Counted::New(OutcomeKind::Price)
        );
        assert_eq!(s.price_count(), 1);
    }

    #[test]
    fn a_failure_never_replaces_an_answer() {
        let mut s = Store::new();
        s.upsert(&key("kraken", "btc", 1), price(5.0), 1);
        assert_eq!(
            s.upsert(&key("kraken", "btc", 1), failed(), 1),
            Counted::Again {
                before: OutcomeKind::Price,
                now: OutcomeKind::Price
            }
        );
        // Next round: the refetch failed; the round counts a failure but
        // the price stays.
        assert_eq!(
            s.upsert(&key("kraken", "btc", 1), failed(), 2),
            Counted::New(OutcomeKind::Failed)
        );
        assert_eq!(
            s.get(
                &key("kraken", "btc", 1).exchange,
                &key("kraken", "btc", 1).symbol,
                key("kraken", "btc", 1).day
            ),
            Some(price(5.0))
        );
    }

    #[test]
    fn an_answer_replaces_a_failure_and_its_reason() {
        let mut s = Store::new();
        let k = key("kraken", "btc", 1);
        s.upsert(&k, failed(), 1);
        assert_eq!(s.failed().len(), 1);
        assert_eq!(s.failed()[0].reason, "server error (503)");
        s.upsert(&k, Outcome::Missing, 1);
        assert!(s.failed().is_empty());
        assert_eq!(s.answer(&k.exchange, &k.symbol, k.day), Some(None));
    }

    #[test]
    fn series_grow_both_ways_and_keep_failures_aligned() {
        let mut s = Store::new();
        s.upsert(&key("kraken", "btc", 10), failed(), 1);
        s.upsert(&key("kraken", "btc", 20), price(2.0), 1);
        s.upsert(&key("kraken", "btc", 2), price(1.0), 1);
        let got: Vec<_> = s
            .iter()
            .map(|(_, _, d, o)| (d.format("%d").to_string(), o.kind()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("02".into(), OutcomeKind::Price),
                ("10".into(), OutcomeKind::Failed),
                ("20".into(), OutcomeKind::Price)
            ]
        );
        assert_eq!(s.failed()[0].day, key("kraken", "btc", 10).day);
    }

    #[test]
    fn a_clone_is_a_frozen_copy() {
        let mut s = Store::new();
        s.upsert(&key("kraken", "btc", 1), price(5.0), 1);
        let frozen = s.clone();
        s.upsert(&key("kraken", "btc", 1), price(6.0), 2);
        s.upsert(&key("kraken", "eth", 1), price(7.0), 2);
        assert_eq!(frozen.price_count(), 1);
        let k = key("kraken", "btc", 1);
        assert_eq!(frozen.get(&k.exchange, &k.symbol, k.day), Some(price(5.0)));
    }

    #[test]
    fn json_round_trips_through_the_seed() {
        let mut s = Store::new();
        s.upsert(&key("kraken", "btc", 1), price(5.25), 1);
        s.upsert(&key("kraken", "eth", 1), Outcome::Missing, 1);
        s.upsert(&key("bitstamp", "btc", 3), price(0.1 + 0.2), 1);
        s.upsert(&key("bitstamp", "ltc", 4), failed(), 1);
        let json = serde_json::to_string(&s.prices_json()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["kraken"]["2020-03-01"]["btc"]["close"], 5.25);
        assert!(v["kraken"]["2020-03-01"]["eth"].is_null());
        assert!(
            v["bitstamp"].get("2020-03-04").is_none(),
            "failed keys are not prices"
        );
        let mut back = Store::new();
        PricesSeed(&mut back)
            .deserialize(&mut serde_json::Deserializer::from_str(&json))
            .unwrap();
        for (e, sym, d, o) in s.iter() {
            if o.is_answer() {
                assert_eq!(back.get(e, sym, d), Some(o), "{e}/{sym}/{d}");
            }
        }
        assert_eq!(back.price_count(), 2);
        assert_eq!(back.missing_count(), 1);
    }

    #[test]
    fn a_bad_price_in_json_is_an_error_naming_the_key() {
        let json = r#"{"kraken": {"2020-03-01": {"btc": {"open": 1, "high": 1, "low": 1, "close": 1, "volume": -1}}}}"#;
        let mut back = Store::new();
        let err = PricesSeed(&mut back)
            .deserialize(&mut serde_json::Deserializer::from_str(json))
            .unwrap_err();
        assert!(err.to_string().contains("kraken/btc/2020-03-01"), "{err}");
    }
}
