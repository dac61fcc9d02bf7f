//! `ExchangeApi`: which HTTP dialect an exchange's prices are asked in, the classic
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
pub enum ExchangeApi {
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

impl ExchangeApi {
    pub const ALL: [ExchangeApi; 11] = [
        ExchangeApi::Classic,
        ExchangeApi::Binance,
        ExchangeApi::Kraken,
        ExchangeApi::Coinbase,
        ExchangeApi::Bitstamp,
        ExchangeApi::Okx,
        ExchangeApi::Bitfinex,
        ExchangeApi::Poloniex,
        ExchangeApi::Hitbtc,
        ExchangeApi::Htx,
        ExchangeApi::Cexio,
    ];

    /// The real exchanges' APIs (every one but the classic).
    pub const EXCHANGES: [ExchangeApi; 10] = [
        ExchangeApi::Binance,
        ExchangeApi::Kraken,
        ExchangeApi::Coinbase,
        ExchangeApi::Bitstamp,
        ExchangeApi::Okx,
        ExchangeApi::Bitfinex,
        ExchangeApi::Poloniex,
        ExchangeApi::Hitbtc,
        ExchangeApi::Htx,
        ExchangeApi::Cexio,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeApi::Classic => "classic",
            ExchangeApi::Binance => "binance",
            ExchangeApi::Kraken => "kraken",
            ExchangeApi::Coinbase => "coinbase",
            ExchangeApi::Bitstamp => "bitstamp",
            ExchangeApi::Okx => "okx",
            ExchangeApi::Bitfinex => "bitfinex",
            ExchangeApi::Poloniex => "poloniex",
            ExchangeApi::Hitbtc => "hitbtc",
            ExchangeApi::Htx => "htx",
            ExchangeApi::Cexio => "cexio",
        }
    }
}

impl fmt::Display for ExchangeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ExchangeApi {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ExchangeApi::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown api {s:?}: expected one of classic, binance, kraken, coinbase, bitstamp, okx, bitfinex, poloniex, hitbtc, htx, cexio"
                )
            })
    }
}
