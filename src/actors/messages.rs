//! The messages more than one actor handles, and what they carry:
//! `Reconfigure` (the one way config reaches the actors, at start-up as on
//! a reload), `SourceRef` (where prices come from under a config) and
//! `Stop`. Messages that only one actor handles stay beside their handler.
//! Plain types: nothing here starts, sends or decides.

use std::sync::Arc;

use actix::prelude::*;
use url::Url;

use crate::config::{Config, ConfigDiff};
use crate::source::Endpoints;

/// Where prices come from under a config: the URL the fetchers ask and the
/// identity cells record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub url: Url,
    pub identity: Arc<str>,
    /// The exchanges with an endpoint of their own (`[exchanges.NAME]`).
    pub endpoints: Arc<Endpoints>,
}

/// A new config, validated, with what changed: the one message by which
/// config reaches the actors, at start-up (`initial`) as on a reload. The
/// daemon sends a reload to the Producer, which
/// applies it at the next round boundary (at once if no round runs): it
/// forwards it to the Supervisor and the Aggregator, waits until both have
/// applied it, and only then starts another round. A running round
/// finishes under the config it started with. The reply comes once the
/// config is in force (or a newer one has replaced it before that).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub config: Arc<Config>,
    /// What changes from the config in force: what each actor reads to
    /// know what concerns it (a new pool, new listings). The Producer
    /// re-bases it on the config it has in force when it applies it.
    pub diff: Arc<ConfigDiff>,
    /// Counted by the daemon; 0 is the config the process started with.
    pub version: u64,
    pub source: SourceRef,
}

impl SourceRef {
    /// A server at `url`, known by its URL.
    pub fn remote(url: Url) -> Self {
        Self {
            identity: Arc::from(url.as_str()),
            url,
            endpoints: Arc::default(),
        }
    }

    /// Where `source` sends the fetchers.
    pub fn of(source: &crate::origin::Source) -> Self {
        Self {
            url: source.url.clone(),
            identity: source.identity.clone(),
            endpoints: source.endpoints.clone(),
        }
    }
}

impl Reconfigure {
    /// `new` as config `version`, with what changed since `old`.
    pub fn new(old: &Config, new: Arc<Config>, version: u64, source: SourceRef) -> Self {
        Self {
            diff: Arc::new(ConfigDiff::between(old, &new)),
            config: new,
            version,
            source,
        }
    }

    /// The config the process starts with (version 0), as a change from
    /// nothing: every actor starts by applying it, the way it applies a
    /// reload, so start-up and reload take one path.
    pub fn initial(config: Arc<Config>, source: SourceRef) -> Self {
        Self {
            diff: Arc::new(ConfigDiff::initial(&config)),
            config,
            version: 0,
            source,
        }
    }
}

/// Stop the actor now (the Supervisor lets its pool go first, so the
/// worker threads exit once they finish what they hold).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Stop;
