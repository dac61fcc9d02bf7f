//! Where an exchange with a table of its own is asked (`Endpoint`: its
//! API, URL, the identity its cells record, extra CA files, its own
//! `user_agent`), and how pricegrid introduces itself when nobody said
//! (`default_user_agent`). Plain values: no request is made here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use url::Url;

use crate::model::{Exchange, ExchangeApi};

/// The `User-Agent` pricegrid sends unless told otherwise:
/// `pricegrid/<version> (+<repository>)`, or `pricegrid/<version>` while
/// Cargo.toml names no repository (exchanges ask for a contact: operators
/// set `user_agent` with theirs).
pub fn default_user_agent() -> String {
    let version = env!("CARGO_PKG_VERSION");
    match env!("CARGO_PKG_REPOSITORY") {
        "" => format!("pricegrid/{version}"),
        repository => format!("pricegrid/{version} (+{repository})"),
    }
}

/// Where one exchange with an `[exchanges.NAME]` table is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub api: ExchangeApi,
    pub url: Url,
    /// What its cells record as their source (with the market added).
    pub identity: Arc<str>,
    /// Extra CA certificates its https connections trust.
    pub ca_files: Vec<PathBuf>,
    /// Its own `user_agent`, over `source.user_agent`.
    pub user_agent: Option<Arc<str>>,
}

/// The exchanges that have their own endpoint, by name.
pub type Endpoints = BTreeMap<Exchange, Endpoint>;
