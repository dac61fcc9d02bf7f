//! `[fleet]`: how a daemon shares a PostgreSQL record with others (its
//! name, what it leases, for how long). Owns these settings and their
//! checks; it does not take or renew a lease (that is
//! `record::postgres::lease`), and it means nothing for an SQLite record,
//! which one daemon owns alone.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::diagnostics::Finding;
pub use crate::model::LeaseScope;

/// `[fleet]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// This daemon's name in the fleet: its rounds and leases are recorded
    /// under it, and two daemons of one name on one record are refused.
    /// Default: the host name.
    pub name: String,
    /// What a lease covers: "exchange" (default) or "market".
    pub lease: LeaseScope,
    /// How long a lease lasts unless renewed; the holder renews it every
    /// third of this. A daemon that dies loses its leases this long after
    /// its last renewal, and another takes them over at its next round.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

/// The host name, or "pricegrid" when it is not valid UTF-8.
pub fn host_name() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pricegrid".into())
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            name: host_name(),
            lease: LeaseScope::Exchange,
            lease_ttl: Duration::from_secs(30),
        }
    }
}

/// The shortest lease: renewed every third of it, a shorter one would be
/// lost to one slow statement.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(3);

impl FleetConfig {
    pub(super) fn problems(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            out.push(Finding::at("fleet.name", "is empty"));
        } else if name.len() > 63 || name.chars().any(|c| c.is_control()) {
            out.push(Finding::at(
                "fleet.name",
                format!("{:?}: expected at most 63 printable characters", self.name),
            ));
        }
        if self.lease_ttl < MIN_LEASE_TTL {
            out.push(Finding::at(
                "fleet.lease_ttl",
                format!(
                    "{} is too short: at least {} (the lease is renewed every third of it)",
                    humantime::format_duration(self.lease_ttl),
                    humantime::format_duration(MIN_LEASE_TTL)
                ),
            ));
        }
        out
    }
}
