//! What a reload changes: `ConfigDiff` compares two whole configs once, so
//! the daemon decides from one value what to restart (a new source) and
//! what to log, and each actor reads what concerns it (the Supervisor a new
//! fetcher pool, the Producer its listings), instead of comparing fields
//! here and there. Start-up is `ConfigDiff::initial`: a change from nothing.
//!
//! A diff only describes; it starts, stops and sends nothing, and it judges
//! no config (both are taken as valid).

use std::collections::HashSet;
use std::hash::Hash;

use super::{Config, Selection};
use crate::model::{Exchange, Symbol};

/// The top-level sections, in schema order.
const SECTIONS: [&str; 10] = [
    "source",
    "exchanges",
    "universe",
    "fetch",
    "schedule",
    "store",
    "snapshot",
    "api",
    "log",
    "quality",
];

/// The difference between the config in force and a new one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// Top-level sections whose values differ, in schema order: "source",
    /// "exchanges", "universe", "fetch", "schedule", "store", "snapshot", "api", "log", "quality".
    pub sections: Vec<&'static str>,
    /// Where prices come from changed (source.url, source.builtin,
    /// source.ca_file, or an exchange's api, url or ca_file, or which
    /// exchanges have a table): a new source must be started.
    pub source_location: bool,
    /// A new fetcher pool is needed (workers, or a client setting:
    /// source.url/builtin, timeout, max_body_bytes, ohlc_order).
    pub pool: bool,
    /// Exchanges in the new list and not the old, in the new list's order;
    /// only when both lists are explicit.
    pub exchanges_added: Vec<Exchange>,
    /// Exchanges in the old list and not the new, in the old list's order.
    pub exchanges_removed: Vec<Exchange>,
    /// Symbols in the new list and not the old; only when both are explicit
    /// ("all" <-> a list shows in `sections` only).
    pub symbols_added: Vec<Symbol>,
    /// Symbols in the old list and not the new.
    pub symbols_removed: Vec<Symbol>,
}

impl ConfigDiff {
    /// What changes when `new` replaces `old`.
    pub fn between(old: &Config, new: &Config) -> ConfigDiff {
        let changed = [
            old.source != new.source,
            old.exchanges != new.exchanges,
            old.universe != new.universe,
            old.fetch != new.fetch,
            old.schedule != new.schedule,
            old.store != new.store,
            old.snapshot != new.snapshot,
            old.api != new.api,
            old.log != new.log,
            old.quality != new.quality,
        ];
        let sections = SECTIONS
            .into_iter()
            .zip(changed)
            .filter_map(|(name, changed)| changed.then_some(name))
            .collect();
        let (o, n) = (&old.source, &new.source);
        let endpoints = |c: &Config| {
            c.exchanges
                .iter()
                .map(|(name, x)| {
                    (
                        name.clone(),
                        x.api,
                        x.url.clone(),
                        x.ca_file.clone(),
                        x.user_agent.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        let source_location = o.url != n.url
            || o.builtin != n.builtin
            || o.ca_file != n.ca_file
            || endpoints(old) != endpoints(new)
            || old.uses_classic_source() != new.uses_classic_source();
        let pool = source_location
            || old.fetch.workers != new.fetch.workers
            || old.fetch.in_flight != new.fetch.in_flight
            || o.timeout != n.timeout
            || o.max_body_bytes != n.max_body_bytes
            || o.ohlc_order != n.ohlc_order
            || o.user_agent != n.user_agent;
        let (exchanges_added, exchanges_removed) =
            list_changes(&old.universe.exchanges, &new.universe.exchanges);
        let (symbols_added, symbols_removed) =
            list_changes(&old.universe.symbols, &new.universe.symbols);
        ConfigDiff {
            sections,
            source_location,
            pool,
            exchanges_added,
            exchanges_removed,
            symbols_added,
            symbols_removed,
        }
    }

    /// What the first config changes from nothing, as Vector's
    /// `ConfigDiff::initial`: every section, a source to start, a pool to
    /// build, and every exchange and symbol an explicit list names added.
    /// The actors start by applying it, so start-up is a reconfiguration
    /// like any other.
    pub fn initial(config: &Config) -> ConfigDiff {
        ConfigDiff {
            sections: SECTIONS.to_vec(),
            source_location: true,
            pool: true,
            exchanges_added: listed(&config.universe.exchanges),
            exchanges_removed: Vec::new(),
            symbols_added: listed(&config.universe.symbols),
            symbols_removed: Vec::new(),
        }
    }

    /// Nothing that the config says differs.
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    /// Whether the top-level `section` (e.g. `"fetch"`) differs.
    pub fn changed(&self, section: &str) -> bool {
        self.sections.contains(&section)
    }

    /// Human-readable list for logs and the reload endpoint, e.g.
    /// `["universe (exchanges +kraken -okex)", "fetch"]`: each changed
    /// section, with what it means for the running daemon.
    pub fn describe(&self) -> Vec<String> {
        self.sections
            .iter()
            .map(|&section| {
                let mut notes = Vec::new();
                match section {
                    "source" if self.source_location => notes.push("new location".to_owned()),
                    // When fetch changed too, the pool is noted there, once.
                    "source" if self.pool && !self.changed("fetch") => {
                        notes.push("new pool".to_owned())
                    }
                    "universe" => {
                        notes.extend(delta(
                            "exchanges",
                            &self.exchanges_added,
                            &self.exchanges_removed,
                        ));
                        notes.extend(delta("symbols", &self.symbols_added, &self.symbols_removed));
                    }
                    "fetch" if self.pool => notes.push("new pool".to_owned()),
                    "exchanges" if self.source_location => notes.push("new endpoints".to_owned()),
                    _ => {}
                }
                if notes.is_empty() {
                    section.to_owned()
                } else {
                    format!("{section} ({})", notes.join(", "))
                }
            })
            .collect()
    }
}

/// (added, removed) between two explicit lists, each once; nothing when
/// either side is "all".
fn list_changes<T: Clone + Eq + Hash>(old: &Selection<T>, new: &Selection<T>) -> (Vec<T>, Vec<T>) {
    match (old.list(), new.list()) {
        (Some(old), Some(new)) => (missing_from(new, old), missing_from(old, new)),
        _ => (Vec::new(), Vec::new()),
    }
}

/// An explicit list's items, each once; nothing for "all".
fn listed<T: Clone + Eq + Hash>(selection: &Selection<T>) -> Vec<T> {
    selection
        .list()
        .map(|items| missing_from(items, &[]))
        .unwrap_or_default()
}

/// The items of `items` that `other` lacks, in order, each once.
fn missing_from<T: Clone + Eq + Hash>(items: &[T], other: &[T]) -> Vec<T> {
    let mut skip: HashSet<&T> = other.iter().collect();
    items
        .iter()
        .filter(|item| skip.insert(item))
        .cloned()
        .collect()
}

/// `exchanges +kraken -okex`, or nothing when neither list has a name.
fn delta<T: std::fmt::Display>(what: &str, added: &[T], removed: &[T]) -> Option<String> {
    if added.is_empty() && removed.is_empty() {
        return None;
    }
    let names = added
        .iter()
        .map(|n| format!("+{n}"))
        .chain(removed.iter().map(|n| format!("-{n}")));
    Some(
        std::iter::once(what.to_owned())
            .chain(names)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{OhlcOrder, SourceUrl};

    fn names<T: std::str::FromStr>(list: &[&str]) -> Selection<T>
    where
        T::Err: std::fmt::Debug,
    {
        Selection::List(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn with(change: impl FnOnce(&mut Config)) -> Config {
        let mut c = Config::default();
        change(&mut c);
        c
    }

    #[test]
    fn the_first_config_is_a_change_from_nothing_that_starts_everything() {
        let config = with(|c| {
            c.universe.exchanges = names(&["kraken", "okx", "kraken"]);
            c.universe.symbols = Selection::All;
        });
        let diff = ConfigDiff::initial(&config);
        assert_eq!(diff.sections, SECTIONS.to_vec());
        assert!(diff.source_location && diff.pool);
        let added: Vec<String> = diff.exchanges_added.iter().map(|e| e.to_string()).collect();
        assert_eq!(added, ["kraken", "okx"]);
        assert!(diff.symbols_added.is_empty(), "\"all\" names no symbol");
        assert!(diff.exchanges_removed.is_empty() && diff.symbols_removed.is_empty());
        assert!(!diff.is_empty());
    }

    #[test]
    fn the_same_config_changes_nothing() {
        let diff = ConfigDiff::between(&Config::default(), &Config::default());
        assert!(diff.is_empty());
        assert_eq!(diff, ConfigDiff::default());
        assert!(diff.describe().is_empty());
        assert!(!diff.changed("source"));
    }

    #[test]
    fn one_section_changed_is_named_alone() {
        let new = with(|c| c.schedule.interval = Duration::from_secs(300));
        let diff = ConfigDiff::between(&Config::default(), &new);
        assert_eq!(diff.sections, ["schedule"]);
        assert!(diff.changed("schedule"));
        assert!(!diff.changed("fetch"));
        assert!(!diff.pool && !diff.source_location);
        assert_eq!(diff.describe(), ["schedule"]);
    }

    #[test]
    fn exchanges_added_and_removed_are_listed_in_order() {
        let old = with(|c| {
            c.universe.exchanges = names(&["okex", "bitstamp", "binance"]);
            c.universe.symbols = names(&["btc"]);
        });
        let new = with(|c| {
            c.universe.exchanges = names(&["bitstamp", "kraken", "coinbase"]);
            c.universe.symbols = names(&["btc"]);
            c.fetch.backoff_max = Duration::from_secs(20);
        });
        let diff = ConfigDiff::between(&old, &new);
        assert_eq!(diff.sections, ["universe", "fetch"]);
        let strings = |v: &[Exchange]| v.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(strings(&diff.exchanges_added), ["kraken", "coinbase"]);
        assert_eq!(strings(&diff.exchanges_removed), ["okex", "binance"]);
        assert!(diff.symbols_added.is_empty() && diff.symbols_removed.is_empty());
        assert_eq!(
            diff.describe(),
            [
                "universe (exchanges +kraken +coinbase -okex -binance)",
                "fetch"
            ]
        );
        let back = ConfigDiff::between(&new, &old);
        assert_eq!(back.exchanges_added, diff.exchanges_removed);
        assert_eq!(back.exchanges_removed, diff.exchanges_added);
    }

    #[test]
    fn all_to_a_list_shows_as_a_changed_section_only() {
        let new = with(|c| c.universe.symbols = names(&["btc", "eth"]));
        let diff = ConfigDiff::between(&Config::default(), &new);
        assert_eq!(diff.sections, ["universe"]);
        assert!(diff.symbols_added.is_empty() && diff.symbols_removed.is_empty());
        assert_eq!(diff.describe(), ["universe"]);
        let more = with(|c| c.universe.symbols = names(&["btc", "eth", "xrp"]));
        let diff = ConfigDiff::between(&new, &more);
        assert_eq!(diff.describe(), ["universe (symbols +xrp)"]);
    }

    #[test]
    fn a_pool_shaping_change_needs_a_new_pool_and_backoff_does_not() {
        let backoff = with(|c| c.fetch.backoff_base = Duration::from_millis(500));
        let diff = ConfigDiff::between(&Config::default(), &backoff);
        assert_eq!(diff.sections, ["fetch"]);
        assert!(
            !diff.pool,
            "retry timing is the supervisor's, not the pool's"
        );
        assert_eq!(diff.describe(), ["fetch"]);

        let workers = with(|c| c.fetch.workers += 1);
        let diff = ConfigDiff::between(&Config::default(), &workers);
        assert!(diff.pool && !diff.source_location);
        assert_eq!(diff.describe(), ["fetch (new pool)"]);

        let in_flight = with(|c| c.fetch.in_flight += 1);
        let diff = ConfigDiff::between(&Config::default(), &in_flight);
        assert!(diff.pool, "each fetcher's share of the requests changed");

        for client in [
            with(|c| c.source.timeout = Duration::from_secs(3)),
            with(|c| c.source.max_body_bytes = 1024),
            with(|c| c.source.ohlc_order = OhlcOrder::Reject),
        ] {
            let diff = ConfigDiff::between(&Config::default(), &client);
            assert!(diff.pool && !diff.source_location, "{client:?}");
            assert_eq!(diff.describe(), ["source (new pool)"]);
        }
        let settle = with(|c| c.source.settle_after = Duration::ZERO);
        assert!(!ConfigDiff::between(&Config::default(), &settle).pool);
    }

    #[test]
    fn an_exchanges_endpoint_needs_a_new_source_and_its_rate_does_not() {
        let kraken = |url: &str, rps: Option<f64>| {
            with(|c| {
                c.exchanges.insert(
                    Exchange::new("kraken").unwrap(),
                    crate::config::ExchangeConfig {
                        api: crate::model::ExchangeApi::Kraken,
                        url: Some(SourceUrl::Remote(url.parse().unwrap())),
                        markets: Default::default(),
                        quotes: crate::config::ExchangeConfig::default_quotes(),
                        requests_per_second: rps,
                        max_in_flight: None,
                        ca_file: None,
                        user_agent: None,
                    },
                );
            })
        };
        let a = kraken("http://127.0.0.1:1/", None);
        let diff = ConfigDiff::between(&a, &kraken("http://127.0.0.1:2/", None));
        assert!(diff.source_location && diff.pool);
        assert_eq!(diff.describe(), ["exchanges (new endpoints)"]);
        let diff = ConfigDiff::between(&a, &kraken("http://127.0.0.1:1/", Some(0.5)));
        assert_eq!(diff.sections, ["exchanges"]);
        assert!(!diff.source_location);
        assert!(ConfigDiff::between(&Config::default(), &a).source_location);
    }

    #[test]
    fn a_new_location_needs_a_new_source_and_pool() {
        let remote =
            with(|c| c.source.url = SourceUrl::Remote("http://127.0.0.1:8080".parse().unwrap()));
        let diff = ConfigDiff::between(&Config::default(), &remote);
        assert!(diff.source_location && diff.pool);
        assert_eq!(diff.describe(), ["source (new location)"]);
        let seed = with(|c| c.source.builtin.seed += 1);
        let diff = ConfigDiff::between(&Config::default(), &seed);
        assert!(diff.source_location && diff.pool);
    }
}
