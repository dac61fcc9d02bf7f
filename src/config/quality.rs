//! `[quality]`: the settings of the cross-exchange checks and the reference
//! close (`crate::quality`), and the peg markets whose daily closes say
//! whether a USD stablecoin was worth a dollar that day. Shapes and their
//! one-value checks only (a peg market's form is checked as it is read);
//! the rules across fields are `validate::quality`'s, and what the settings
//! mean is `crate::quality`'s.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{Exchange, Symbol};
use crate::quality::Settings;

/// `[quality]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// Outlier threshold in MADs of the other exchanges' closes.
    pub k: f64,
    /// Least outlier threshold, as a share of the others' median (0.02 = 2 %).
    pub floor: f64,
    /// Constituents a reference close needs.
    pub min_exchanges: usize,
    /// How far from 1 a peg market's close may be (0.005 = 0.5 %).
    pub peg_tolerance: f64,
    /// Stablecoin -> the market whose daily close is its price in USD,
    /// e.g. `usdt = "kraken:USDTUSD"`. A coin without one has no known peg:
    /// its closes stay out of the USD reference (unflagged).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub peg: BTreeMap<Symbol, PegMarket>,
}

impl Default for QualityConfig {
    fn default() -> Self {
        let s = Settings::default();
        QualityConfig {
            k: s.k,
            floor: s.floor,
            min_exchanges: s.min_exchanges,
            peg_tolerance: s.peg_tolerance,
            peg: BTreeMap::new(),
        }
    }
}

impl QualityConfig {
    /// The settings of the method.
    pub fn settings(&self) -> Settings {
        Settings {
            k: self.k,
            floor: self.floor,
            min_exchanges: self.min_exchanges,
            peg_tolerance: self.peg_tolerance,
        }
    }
}

/// `exchange:market`: the cell of (`exchange`, the coin) asked in `market`
/// (for an exchange asked through the classic API, which has no market
/// names, the market is a label only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PegMarket {
    pub exchange: Exchange,
    pub market: String,
}

impl std::str::FromStr for PegMarket {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let (exchange, market) = raw.split_once(':').ok_or_else(|| {
            format!(
                "{raw:?} is no peg market: expected \"exchange:MARKET\", e.g. \"kraken:USDTUSD\""
            )
        })?;
        let exchange = Exchange::new(exchange)
            .map_err(|e| format!("{raw:?}: the exchange {exchange:?} is no exchange name: {e}"))?;
        if market.is_empty() || !market.chars().all(|c| c.is_ascii_graphic()) {
            return Err(format!(
                "{raw:?}: the market {market:?} must be a non-empty name without spaces"
            ));
        }
        Ok(PegMarket {
            exchange,
            market: market.to_owned(),
        })
    }
}

impl fmt::Display for PegMarket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.exchange, self.market)
    }
}

impl Serialize for PegMarket {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PegMarket {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    fn problems(text: &str) -> Vec<String> {
        match Config::parse_at(
            text,
            Path::new("q.toml"),
            chrono::NaiveDate::from_ymd_opt(2024, 6, 15).unwrap(),
        ) {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn the_quality_section_reads_its_settings_and_peg_markets() {
        let c = Config::parse_at(
            "[universe]\nexchanges = [\"kraken\", \"okx\"]\nsymbols = [\"btc\", \"usdt\"]\nlast_days = 3\n\
             [quality]\nk = 4\nmin_exchanges = 2\npeg = { usdt = \"kraken:USDTUSD\" }\n",
            Path::new("q.toml"),
            chrono::NaiveDate::from_ymd_opt(2024, 6, 15).unwrap(),
        )
        .expect("a valid [quality]");
        let s = c.quality.settings();
        assert_eq!((s.k, s.min_exchanges, s.floor), (4.0, 2, 0.02));
        let peg = &c.quality.peg[&"usdt".parse().unwrap()];
        assert_eq!(
            (peg.exchange.as_str(), peg.market.as_str()),
            ("kraken", "USDTUSD")
        );
        assert_eq!(
            Config::parse_at(
                &c.to_toml(),
                Path::new("q.toml"),
                chrono::NaiveDate::from_ymd_opt(2024, 6, 15).unwrap()
            )
            .unwrap(),
            c
        );
    }

    #[test]
    fn bad_quality_settings_are_named_with_their_place_and_a_fix() {
        let p =
            problems("[quality]\nk = 0\nfloor = 1.5\nmin_exchanges = 0\npeg_tolerance = -0.1\n");
        let all = p.join("\n");
        for needle in [
            "q.toml:2:1: quality.k: 0 is out of range",
            "q.toml:3:1: quality.floor: 1.5 is out of range: expected a share from 0 up to 1",
            "q.toml:4:1: quality.min_exchanges: must be at least 1",
            "q.toml:5:1: quality.peg_tolerance: -0.1 is out of range",
        ] {
            assert!(all.contains(needle), "{needle:?} in:\n{all}");
        }
        let p = problems("[quality]\npeg = { usdt = \"USDTUSD\" }\n").join("\n");
        assert!(
            p.contains("\"USDTUSD\" is no peg market: expected \"exchange:MARKET\""),
            "{p}"
        );
        let p = problems(
            "[universe]\nexchanges = [\"okx\"]\nsymbols = [\"btc\"]\n[quality]\npeg = { usdt = \"kraken:USDTUSD\" }\n",
        )
        .join("\n");
        assert!(
            p.contains(
                "quality.peg.usdt: kraken:USDTUSD is not fetched: add kraken to universe.exchanges"
            ),
            "{p}"
        );
        assert!(p.contains("add usdt to universe.symbols"), "{p}");
    }
}
