//! `Api`: which HTTP dialect an exchange's prices are asked in, the classic
//! teaching API (one request per exchange x symbol x day) or one of the real
//! exchanges' public daily-candle APIs (a page of days per request). Shared by
//! the config (`[exchanges.NAME] api = "kraken"`), the client adapters
//! (`source::exchanges`) and the built-in server's dialects (`server`). A plain
//! value: no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The API an exchange speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// `GET /price/{exchange}/{symbol}/{date}` (`price-api.md`).
    Classic,
    Binance,
    Kraken,
    Coinbase,
    Bitstamp,
    Okx,
    Bitfinex,
    Poloniex,
    Hitbtc,
    /// HTX (formerly Huobi): UTC days built from hourly candles.
    Htx,
    /// CEX.IO: candles built from best bid/ask quotes.
    Cexio,
}

impl Api {
    pub const ALL: [Api; 11] = [
        Api::Classic,
        Api::Binance,
        Api::Kraken,
        Api::Coinbase,
        Api::Bitstamp,
        Api::Okx,
        Api::Bitfinex,
        Api::Poloniex,
        Api::Hitbtc,
        Api::Htx,
        Api::Cexio,
    ];

    /// The real exchanges' APIs (every one but the classic).
    pub const EXCHANGES: [Api; 10] = [
        Api::Binance,
        Api::Kraken,
        Api::Coinbase,
        Api::Bitstamp,
        Api::Okx,
        Api::Bitfinex,
        Api::Poloniex,
        Api::Hitbtc,
        Api::Htx,
        Api::Cexio,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Api::Classic => "classic",
            Api::Binance => "binance",
            Api::Kraken => "kraken",
            Api::Coinbase => "coinbase",
            Api::Bitstamp => "bitstamp",
            Api::Okx => "okx",
            Api::Bitfinex => "bitfinex",
            Api::Poloniex => "poloniex",
            Api::Hitbtc => "hitbtc",
            Api::Htx => "htx",
            Api::Cexio => "cexio",
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Api {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Api::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown api {s:?}: expected one of classic, binance, kraken, coinbase, bitstamp, okx, bitfinex, poloniex, hitbtc, htx, cexio"
                )
            })
    }
}
