//! What one lease of a fleet covers (`fleet.lease`): a lane of the
//! universe, and its name in the record's `leases` table. A word of the
//! vocabulary both the config and the record use; nothing else.

use serde::{Deserialize, Serialize};

/// What one lease covers: a lane of the universe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseScope {
    /// One exchange, all its symbols: one daemon asks an exchange at a
    /// time, so the exchange's rate limit is one daemon's.
    #[default]
    Exchange,
    /// One exchange × symbol: work spread finer, for daemons with their
    /// own addresses (an exchange's limit is per IP).
    Market,
}

impl LeaseScope {
    /// The lane of `exchange`'s `symbol`: `kraken`, or `kraken/btc`.
    pub fn lane(self, exchange: &str, symbol: &str) -> String {
        match self {
            LeaseScope::Exchange => exchange.to_owned(),
            LeaseScope::Market => format!("{exchange}/{symbol}"),
        }
    }
}
