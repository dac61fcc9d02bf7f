//! The TOML configuration: parsed into typed structs, validated in one place,
//! and handed around whole (`Arc<Config>`), never half-applied.
//!
//! This module owns the way in: `Config::load`/`parse` read the text, refuse
//! an empty file and retired keys, deserialise it (values that can be checked
//! alone are checked there, so the TOML parser gives their position), and
//! run every cross-field rule of `validate`, placing each problem with
//! `diagnostics` (`config/pricegrid.toml:12:9: fetch.worker: unknown field
//! ...`). The sections' shapes are in `schema`, the self-checking values
//! (`SourceUrl`, `Selection`, `HostName`) in `values`; `diff` says what a
//! reload changes. It reads files but owns no other state, and starts
//! nothing. It asks the adapters about a market name through
//! `source::exchanges::check_market`; nothing below it imports `config`
//! back.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

mod diagnostics;
mod diff;
mod fleet;
mod quality;
mod schema;
pub mod size;
#[cfg(test)]
mod tests;
mod validate;
mod values;
pub mod watcher;

use diagnostics::{find, key_at, line_col, Finding};

use crate::model::Exchange;
pub use crate::model::{Day, DayRange, OhlcOrder};
pub use diagnostics::{ConfigError, Problem};
pub use diff::ConfigDiff;
pub use fleet::{host_name, FleetConfig, LeaseScope, MIN_LEASE_TTL};
pub use quality::{PegMarket, QualityConfig};
pub use schema::universe_size_problem;
pub use schema::{default_workers, DEFAULT_IN_FLIGHT, MAX_IN_FLIGHT, MAX_WORKERS};
pub use schema::{
    ApiConfig, BuiltinConfig, ExchangeConfig, FetchConfig, LogConfig, PerExchangeConfig,
    ScheduleConfig, SnapshotConfig, SourceConfig, StoreConfig, UniverseConfig,
};
pub use size::{TooLarge, UniverseSize, MAX_TASKS};
pub use validate::FIRST_PRICE_DAY;
pub use values::{HostName, Selection, SourceUrl};

/// Default location of the config file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/pricegrid.toml";

/// What an empty file is told. A file with no settings is far more often
/// caught mid-write (an editor truncating before it writes, a script's
/// `>` redirect) than meant, and taking it as "all defaults" would make a
/// daemon reload into a universe nobody asked for.
const EMPTY: &str =
    "config file is empty: an editor or script may be writing it; a config needs at least one section";

/// Keys that older configs used, with what replaced them; a config that
/// still has one is told so at the key rather than "unknown field".
const RETIRED: &[(&str, &str)] = &[(
    "source.check_ohlc_order",
    "was replaced by source.ohlc_order = \"flag\" | \"reject\" | \"ignore\"",
)];

/// A whole configuration, one field per `[section]`, in the order the
/// shipped file and `to_toml` write them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    /// Exchanges that speak their own API, by name; every other exchange is
    /// asked through `[source]`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exchanges: BTreeMap<Exchange, ExchangeConfig>,
    pub universe: UniverseConfig,
    pub fetch: FetchConfig,
    pub schedule: ScheduleConfig,
    pub store: StoreConfig,
    pub snapshot: SnapshotConfig,
    /// Only read with a PostgreSQL record (`store.url`).
    pub fleet: FleetConfig,
    pub api: ApiConfig,
    pub log: LogConfig,
    pub quality: QualityConfig,
}

impl Config {
    /// Reads, parses and validates the file at `path`, as of today (UTC).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text` as of today (UTC); `path` is only used
    /// in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Config::parse_at(text, path, chrono::Utc::now().date_naive())
    }

    /// Parses and validates `text` as if today (UTC) were `today`, which
    /// decides how far a window may reach ("after tomorrow").
    pub fn parse_at(text: &str, path: &Path, today: NaiveDate) -> Result<Config, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        };
        let doc = toml_edit::ImDocument::parse(text.to_owned());
        let root = doc.as_ref().ok().map(|d| d.as_table());
        if let Some(root) = root {
            if root.is_empty() {
                return Err(invalid(vec![Problem::of_file(EMPTY)]));
            }
            let retired: Vec<Problem> = RETIRED
                .iter()
                .filter(|(key, _)| find(root, key).is_some())
                .map(|&(key, message)| Finding::at(key, message).in_text(text, Some(root)))
                .collect();
            if !retired.is_empty() {
                return Err(invalid(retired));
            }
        }
        let config: Config = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                let span = e.span();
                let key = match (root, &span) {
                    (Some(root), Some(span)) => key_at(root, span.start),
                    _ => None,
                };
                return Err(invalid(vec![Problem {
                    position: span.map(|s| line_col(text, s.start)),
                    key,
                    message: e.message().trim().to_owned(),
                }]));
            }
        };
        let findings = config.problems(today);
        if findings.is_empty() {
            return Ok(config);
        }
        Err(invalid(
            findings.iter().map(|f| f.in_text(text, root)).collect(),
        ))
    }

    /// Validates a config built or changed in code (e.g. by command-line
    /// overrides) as of today (UTC); problems carry their key but no position.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.check_at(chrono::Utc::now().date_naive())
    }

    /// [`Config::check`] as if today (UTC) were `today`.
    pub fn check_at(&self, today: NaiveDate) -> Result<(), ConfigError> {
        let findings = self.problems(today);
        if findings.is_empty() {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            path: PathBuf::from("<effective config>"),
            problems: findings
                .into_iter()
                .map(Finding::without_position)
                .collect(),
        })
    }

    /// Every rule that ties fields together or depends on `today`, section
    /// by section, all of them: one broken rule never hides another.
    fn problems(&self, today: NaiveDate) -> Vec<Finding> {
        [
            validate::source(&self.source),
            validate::exchanges(&self.exchanges, &self.universe),
            validate::universe(&self.universe, today),
            validate::fetch(&self.fetch),
            validate::durations(self),
            validate::fetch_timing(&self.fetch, &self.source),
            validate::store(&self.store),
            validate::snapshot(&self.snapshot),
            self.fleet.problems(),
            validate::api(&self.api),
            validate::quality(self),
        ]
        .concat()
    }

    /// The effective config as TOML, every default filled in.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

impl Config {
    /// Whether anything asks `[source]`: the universe's exchanges or
    /// symbols are discovered from it ("all"), or an exchange of the
    /// universe has no `[exchanges.NAME]` table, or a classic table without
    /// a URL of its own. When nothing does, its built-in server is not
    /// started and it is not checked.
    pub fn uses_classic_source(&self) -> bool {
        let (Some(exchanges), Some(_)) =
            (self.universe.exchanges.list(), self.universe.symbols.list())
        else {
            return true;
        };
        exchanges.iter().any(|e| match self.exchanges.get(e) {
            None => true,
            Some(x) => x.api == crate::model::ExchangeApi::Classic && x.url.is_none(),
        })
    }

    /// The effective config as TOML (`to_toml`), with each duration the
    /// file `written` spells its own way kept as it was written
    /// (`keep_for = "90days"`, not humantime's `"2months 29days 2h 52m 48s"`),
    /// and a default of whole days written in days: what `check-config`
    /// echoes, so a person recognises their own file in it.
    pub fn to_toml_as_written(&self, written: &str) -> String {
        let effective = self.to_toml();
        let Ok(mut doc) = effective.parse::<toml_edit::DocumentMut>() else {
            return effective;
        };
        let source = toml_edit::ImDocument::parse(written.to_owned()).ok();
        let source = source
            .as_ref()
            .map(|d| d.as_table() as &dyn toml_edit::TableLike);
        respell_durations(doc.as_table_mut(), source);
        doc.to_string()
    }
}

/// Rewrites, in `table` and the tables under it, each duration string that
/// `source` (the same place in the written file) spells differently but
/// with the same meaning, as `source` spells it; else a whole number of
/// days that humantime would write in months or years, in days.
fn respell_durations(
    table: &mut dyn toml_edit::TableLike,
    source: Option<&dyn toml_edit::TableLike>,
) {
    for (key, item) in table.iter_mut() {
        let written = source.and_then(|s| s.get(key.get()));
        if let Some(inner) = item.as_table_like_mut() {
            respell_durations(inner, written.and_then(toml_edit::Item::as_table_like));
            continue;
        }
        let Some(value) = item.as_value_mut() else {
            continue;
        };
        let Some(duration) = value
            .as_str()
            .and_then(|text| humantime::parse_duration(text).ok())
        else {
            continue;
        };
        let as_written = written
            .and_then(toml_edit::Item::as_str)
            .filter(|w| humantime::parse_duration(w).ok() == Some(duration));
        let respelt = match as_written {
            Some(w) => w.to_owned(),
            None if duration.as_secs() % 86_400 == 0
                && duration.subsec_nanos() == 0
                && value
                    .as_str()
                    .is_some_and(|t| t.contains("month") || t.contains("year")) =>
            {
                format!("{}days", duration.as_secs() / 86_400)
            }
            None => continue,
        };
        let decor = value.decor().clone();
        *value = toml_edit::Value::from(respelt);
        *value.decor_mut() = decor;
    }
}

/// Parses an address such as `127.0.0.1:9180` (used by CLI options).
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|e| format!("{raw:?} is not an address such as 127.0.0.1:9180: {e}"))
}
