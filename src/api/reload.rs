//! The reload vocabulary the daemon and the API share: what a reload ended
//! with (`ReloadOutcome`, the answer to `POST /v1/reload`), the latest
//! attempt as `/v1/status` reports it (`LastReload`), and what the daemon
//! tells the API about itself (`DaemonView`). Plain values only: reading
//! the file and applying a config is `crate::daemon`'s, never this file's.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::UniverseConfig;

/// What a reload ended with, as `POST /v1/reload` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ReloadOutcome {
    /// Accepted as `version`; in force from the next round boundary.
    /// `changed` is empty when the file's settings were those in force.
    Applied { version: u64, changed: Vec<String> },
    /// Refused; the daemon keeps running on the config it has.
    Rejected { error: String },
    /// Not read: the file kept changing for as long as the reload waited
    /// for it to settle. Nothing changed; ask again once it is saved.
    StillBeingWritten { error: String },
}

/// Whether the latest reload was applied or rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadResult {
    Applied,
    Rejected,
}

/// The latest reload attempt, as `/v1/status` reports it under
/// `last_reload`, so a person watching the page sees a rejected edit
/// without reading the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastReload {
    pub at: DateTime<Utc>,
    pub result: ReloadResult,
    /// The accepted version (applied), or the version still in force
    /// (rejected).
    pub version: u64,
    pub changed: Vec<String>,
    pub error: Option<String>,
}

impl LastReload {
    /// The report of `outcome`; `in_force` is the version kept when it was
    /// rejected.
    pub fn new(at: DateTime<Utc>, outcome: &ReloadOutcome, in_force: u64) -> Self {
        match outcome {
            ReloadOutcome::Applied { version, changed } => Self {
                at,
                result: ReloadResult::Applied,
                version: *version,
                changed: changed.clone(),
                error: None,
            },
            ReloadOutcome::Rejected { error } => Self {
                at,
                result: ReloadResult::Rejected,
                version: in_force,
                changed: Vec::new(),
                error: Some(error.clone()),
            },
            // Not a reload the daemon made: kept as a refusal with its reason.
            ReloadOutcome::StillBeingWritten { error } => Self {
                at,
                result: ReloadResult::Rejected,
                version: in_force,
                changed: Vec::new(),
                error: Some(error.clone()),
            },
        }
    }
}

/// What the daemon tells the API about itself, beyond the actors' figures:
/// whether it is draining, the latest reload, and the universe of the
/// latest accepted config (for the window the page draws).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonView {
    /// A shutdown is under way: no new tasks, in-flight ones finishing.
    pub draining: bool,
    pub last_reload: Option<LastReload>,
    /// None when the API runs over a bare pipeline (no daemon).
    pub universe: Option<UniverseConfig>,
}

/// Asks the daemon to re-read its config file; each request is answered
/// with the outcome.
pub type ReloadRequests =
    tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<ReloadOutcome>>;
