//! `[fleet]`: how a daemon is known beside others on a shared PostgreSQL
//! record (its name, under which its rounds are recorded). Owns these
//! settings and their checks, nothing else.

use serde::{Deserialize, Serialize};

use super::diagnostics::Finding;

/// `[fleet]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    /// This daemon's name: its rounds are recorded under it in a
    /// PostgreSQL record. Default: the host name.
    pub name: String,
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
        Self { name: host_name() }
    }
}

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
        out
    }
}
