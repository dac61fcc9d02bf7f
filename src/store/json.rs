//! The JSON form of a store: the `prices` object of a snapshot, written
//! straight from the compact series and read straight back into them (no
//! intermediate maps, so a million cells load in well under a second).
//!
//! Version 2 (written): exchange -> `YYYY-MM-DD` -> symbol -> a cell object
//! `{"state": "final", "open": …, "high": …, "low": …, "close": …,
//! "volume": …, "flags": ["ohlc_order"], "fetched_at": "…Z", "round": 3,
//! "source": 0, "reason": "…", "attempts": 3}`, where the price fields are
//! there when the cell holds a price, `flags`, `fetched_at`, `source`,
//! `reason` and `attempts` only when known, and `source` indexes the
//! snapshot's `sources` list. Version 1 (read only): the value is the bare
//! price object, or `null` for "no price".

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::series::Series;
use super::{Cell, Note, Store};
use crate::model::{CellState, Exchange, Flags, Ohlcv, Symbol, TaskKey};

impl Store {
    /// The JSON `prices` object: exchange -> day -> symbol -> cell.
    pub fn prices_json(&self) -> PricesJson<'_> {
        PricesJson(self)
    }

    /// The source identities that cells' `source` numbers index.
    pub fn sources_json(&self) -> Vec<&str> {
        self.sources.iter().skip(1).map(|s| &**s).collect()
    }

    /// Names the sources that a loaded `prices` object's numbers index.
    pub fn set_loaded_sources(&mut self, sources: Vec<String>) {
        self.sources = Arc::new(super::Sources::from_names(
            sources.into_iter().map(Arc::from),
        ));
    }

    /// Makes every final answer about a day on or after `from` provisional
    /// (a version-1 snapshot did not say whether its answers were final;
    /// those about days still open when it was taken cannot be).
    pub fn demote_from(&mut self, from: NaiveDate) {
        for by_symbol in self.series.values_mut() {
            for series in Arc::make_mut(by_symbol).values_mut() {
                let Some(first) = series.first else { continue };
                let start = usize::try_from((from - first).num_days()).unwrap_or(0);
                if start >= series.slots.len() {
                    continue;
                }
                let series = Arc::make_mut(series);
                for slot in &mut series.slots[start..] {
                    if matches!(
                        slot.cell_state(),
                        Some(CellState::Final | CellState::NoPrice)
                    ) {
                        let was = *slot;
                        slot.set_state(CellState::Provisional, CellState::Provisional);
                        self.census.replace(&was, slot);
                    }
                }
            }
        }
    }
}

/// Serialises a store's cells as exchange -> day -> symbol -> cell.
pub struct PricesJson<'a>(&'a Store);

impl Serialize for PricesJson<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(None)?;
        for (exchange, by_symbol) in &self.0.series {
            map.serialize_entry(
                exchange,
                &ExchangeDays {
                    series: by_symbol,
                    sources: &self.0.sources,
                },
            )?;
        }
        map.end()
    }
}

struct ExchangeDays<'a> {
    series: &'a BTreeMap<Symbol, Arc<Series>>,
    sources: &'a [Arc<str>],
}

impl Serialize for ExchangeDays<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let series: Vec<(&Symbol, &Series)> =
            self.series.iter().map(|(s, x)| (s, x.as_ref())).collect();
        let first = series.iter().filter_map(|(_, s)| s.first).min();
        let last = series
            .iter()
            .filter_map(|(_, s)| Some(s.day(s.slots.len().checked_sub(1)?)))
            .max();
        let mut map = ser.serialize_map(None)?;
        if let (Some(first), Some(last)) = (first, last) {
            for day in first.iter_days().take_while(|d| *d <= last) {
                let held = |(_, s): &&(&Symbol, &Series)| {
                    s.index(day)
                        .is_some_and(|i| s.slots[i].cell_state().is_some())
                };
                if series.iter().any(|x| held(&x)) {
                    map.serialize_entry(
                        &day,
                        &DaySymbols {
                            series: &series,
                            sources: self.sources,
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
    sources: &'a [Arc<str>],
    day: NaiveDate,
}

impl Serialize for DaySymbols<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(None)?;
        for (symbol, s) in self.series {
            let Some(i) = s.index(self.day) else { continue };
            let slot = &s.slots[i];
            let Some(cell) = s.cell(i, self.sources) else {
                continue;
            };
            let source = slot.source.checked_sub(1);
            map.serialize_entry(symbol, &CellOut::new(&cell, source))?;
        }
        map.end()
    }
}

/// A cell as written. Field order is the reading order for a person.
#[derive(Serialize)]
struct CellOut<'a> {
    state: CellState,
    #[serde(skip_serializing_if = "Option::is_none")]
    open: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    low: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    close: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    volume: Option<f64>,
    #[serde(skip_serializing_if = "Flags::is_empty")]
    flags: Flags,
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched_at: Option<DateTime<Utc>>,
    round: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
}

impl<'a> CellOut<'a> {
    fn new(cell: &'a Cell, source: Option<u16>) -> Self {
        let p = cell.price;
        Self {
            state: cell.state,
            open: p.map(|p| p.open),
            high: p.map(|p| p.high),
            low: p.map(|p| p.low),
            close: p.map(|p| p.close),
            volume: p.map(|p| p.volume),
            flags: cell.flags,
            fetched_at: cell.fetched_at,
            round: cell.round,
            source,
            reason: cell.note.as_ref().map(|n| n.reason.as_str()),
            attempts: cell.note.as_ref().map(|n| n.attempts),
        }
    }
}

/// A cell as read: version 2's cell object, or version 1's bare price.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CellIn {
    /// Absent in version 1.
    state: Option<CellState>,
    open: Option<f64>,
    high: Option<f64>,
    low: Option<f64>,
    close: Option<f64>,
    volume: Option<f64>,
    #[serde(default)]
    flags: Flags,
    fetched_at: Option<DateTime<Utc>>,
    #[serde(default)]
    round: u64,
    source: Option<u16>,
    reason: Option<String>,
    attempts: Option<u32>,
}

impl CellIn {
    fn price(&self) -> Result<Option<Ohlcv>, String> {
        match (self.open, self.high, self.low, self.close, self.volume) {
            (None, None, None, None, None) => Ok(None),
            (Some(o), Some(h), Some(l), Some(c), Some(v)) => Ohlcv::new(o, h, l, c, v)
                .map(Some)
                .map_err(|e| e.to_string()),
            _ => Err("a price needs all of open, high, low, close and volume".into()),
        }
    }
}

/// Reads a `prices` object (version 1 or 2) straight into a store. Sources
/// are numbered as in the file; name them with `set_loaded_sources`.
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
        f.write_str("an object exchange -> day -> symbol -> cell")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(exchange) = map.next_key::<Exchange>()? {
            let days: BTreeMap<NaiveDate, BTreeMap<Symbol, Option<CellIn>>> = map.next_value()?;
            for (day, symbols) in days {
                for (symbol, raw) in symbols {
                    let key = TaskKey {
                        exchange: exchange.clone(),
                        symbol,
                        day,
                    };
                    let bad = |e: String| de::Error::custom(format!("{key}: {e}"));
                    let (cell, source) = match raw {
                        None => (
                            Cell {
                                state: CellState::NoPrice,
                                price: None,
                                flags: Flags::NONE,
                                fetched_at: None,
                                round: 0,
                                source: None,
                                note: None,
                            },
                            0,
                        ),
                        Some(raw) => {
                            let price = raw.price().map_err(bad)?;
                            let state = match raw.state {
                                Some(s) => s,
                                None if price.is_some() => CellState::Final,
                                None => {
                                    return Err(bad("a version-1 price needs its fields".into()))
                                }
                            };
                            if matches!(state, CellState::Final) && price.is_none() {
                                return Err(bad("a final cell needs a price".into()));
                            }
                            let note = raw.reason.map(|reason| Note {
                                reason,
                                attempts: raw.attempts.unwrap_or(0),
                            });
                            let source = raw.source.map_or(0, |s| s.saturating_add(1));
                            (
                                Cell {
                                    state,
                                    price,
                                    flags: raw.flags,
                                    fetched_at: raw.fetched_at,
                                    round: raw.round,
                                    source: None,
                                    note,
                                },
                                source,
                            )
                        }
                    };
                    self.0.restore(&key, &cell, source);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;
    use crate::store::{Observation, Stamp};

    fn key(exchange: &str, symbol: &str, day: u32) -> TaskKey {
        TaskKey {
            exchange: Exchange::new(exchange).unwrap(),
            symbol: Symbol::new(symbol).unwrap(),
            day: NaiveDate::from_ymd_opt(2020, 3, day).unwrap(),
        }
    }

    fn record(s: &mut Store, k: &TaskKey, outcome: Outcome, is_final: bool) {
        let n = s.len() as u64 + 1;
        s.apply(
            k,
            &Observation {
                outcome,
                is_final,
                asked_at: "2020-03-20T10:00:00Z".parse().unwrap(),
                source: Arc::from("http://127.0.0.1:1/"),
                stamp: Stamp {
                    round: 1,
                    dispatch: n,
                },
            },
        );
    }

    fn load(json: &str) -> Result<Store, serde_json::Error> {
        let mut back = Store::new();
        PricesSeed(&mut back).deserialize(&mut serde_json::Deserializer::from_str(json))?;
        Ok(back)
    }

    #[test]
    fn every_state_round_trips_through_json() {
        let mut s = Store::new();
        let p = |c: f64| Ohlcv::new(c, c, c, c, 1.0).unwrap();
        record(
            &mut s,
            &key("kraken", "btc", 1),
            Outcome::price(p(5.25)),
            true,
        );
        record(&mut s, &key("kraken", "eth", 1), Outcome::NoPrice, true);
        record(
            &mut s,
            &key("bitstamp", "btc", 3),
            Outcome::Price {
                price: Ohlcv::new(2.0, 3.0, 1.0, 3.5, 1.0).unwrap(),
                flags: Flags::OHLC_ORDER,
            },
            false,
        );
        record(
            &mut s,
            &key("bitstamp", "ltc", 4),
            Outcome::Failed {
                reason: "server error (503)".into(),
                attempts: 3,
            },
            true,
        );
        record(
            &mut s,
            &key("bitstamp", "ltc", 5),
            Outcome::Rejected {
                reason: "open outside low..=high".into(),
                price: Some(p(0.1 + 0.2)),
            },
            true,
        );
        let json = serde_json::to_string(&s.prices_json()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let cell = &v["kraken"]["2020-03-01"]["btc"];
        assert_eq!(cell["close"], 5.25);
        assert_eq!(cell["state"], "final");
        assert_eq!(cell["fetched_at"], "2020-03-20T10:00:00Z");
        assert_eq!(cell["source"], 0);
        assert_eq!(v["kraken"]["2020-03-01"]["eth"]["state"], "none");
        assert_eq!(v["bitstamp"]["2020-03-03"]["btc"]["flags"][0], "ohlc_order");
        assert_eq!(
            v["bitstamp"]["2020-03-04"]["ltc"]["reason"],
            "server error (503)"
        );
        let mut back = load(&json).unwrap();
        back.set_loaded_sources(s.sources_json().iter().map(|s| s.to_string()).collect());
        let a: Vec<_> = s.iter().collect();
        let b: Vec<_> = back.iter().collect();
        assert_eq!(a, b);
    }

    #[test]
    fn version_1_prices_load_as_final_answers() {
        let json = r#"{"kraken": {"2020-03-01": {"btc": {"open": 1, "high": 2, "low": 1, "close": 2, "volume": 3}, "eth": null}}}"#;
        let s = load(json).unwrap();
        let btc = s
            .get(
                &key("kraken", "btc", 1).exchange,
                &key("kraken", "btc", 1).symbol,
                key("kraken", "btc", 1).day,
            )
            .unwrap();
        assert_eq!(
            (btc.state, btc.price.unwrap().close),
            (CellState::Final, 2.0)
        );
        let k = key("kraken", "eth", 1);
        assert_eq!(
            s.get(&k.exchange, &k.symbol, k.day).unwrap().state,
            CellState::NoPrice
        );
        assert!(
            s.is_settled(&k, "any source"),
            "a version-1 answer has no source to differ from"
        );
    }

    #[test]
    fn a_bad_cell_in_json_is_an_error_naming_the_key() {
        for json in [
            r#"{"kraken": {"2020-03-01": {"btc": {"open": 1, "high": 1, "low": 1, "close": 1, "volume": -1}}}}"#,
            r#"{"kraken": {"2020-03-01": {"btc": {"state": "final", "round": 1}}}}"#,
            r#"{"kraken": {"2020-03-01": {"btc": {"state": "final", "open": 1}}}}"#,
        ] {
            let err = load(json).unwrap_err();
            assert!(err.to_string().contains("kraken/btc/2020-03-01"), "{err}");
        }
        assert!(load(r#"{"kraken": {"2020-03-01": {"btc": {"state": "bogus"}}}}"#).is_err());
    }
}
