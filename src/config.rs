//! The TOML configuration: parsed into typed structs, validated in one place,
//! and handed around whole (`Arc<Config>`), never half-applied.
//!
//! Every error names the file, line, column and key and says what is expected
//! (`config/pricegrid.toml:12:9: fetch.worker: unknown field ...`). Values that
//! can be checked alone are checked while deserialising (so the TOML parser
//! gives their position); rules that tie fields together are checked in
//! `Config::validate`, which looks the key's position up in the source text.
//! This module reads files but owns no other state.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::model::{Exchange, Symbol};

/// Default location of the config file, relative to the working directory.
pub const DEFAULT_PATH: &str = "config/pricegrid.toml";

/// Most fetcher threads one pool may have.
pub const MAX_WORKERS: usize = 1024;

/// Where prices come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum SourceUrl {
    /// Start the built-in price server in-process on a loopback port.
    Builtin,
    /// Any server that speaks the crypto price API.
    Remote(Url),
}

impl From<SourceUrl> for String {
    fn from(s: SourceUrl) -> String {
        s.to_string()
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceUrl::Builtin => f.write_str("builtin"),
            SourceUrl::Remote(url) => f.write_str(url.as_str()),
        }
    }
}

impl std::str::FromStr for SourceUrl {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        if raw == "builtin" {
            return Ok(SourceUrl::Builtin);
        }
        let url =
            Url::parse(raw).map_err(|e| format!("{raw:?} is not \"builtin\" or a URL: {e}"))?;
        match url.scheme() {
            "http" => {}
            "https" => {
                return Err(format!(
                    "{raw:?}: https is not supported by this build (no TLS stack); use http://"
                ))
            }
            _ => return Err(format!("{raw:?}: expected an http:// URL or \"builtin\"")),
        }
        if url.host().is_none() {
            return Err(format!("{raw:?}: the URL has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{raw:?}: the URL must not have a query or fragment"
            ));
        }
        Ok(SourceUrl::Remote(url))
    }
}

impl<'de> Deserialize<'de> for SourceUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// `"all"` (ask the source) or an explicit list of names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Selection<T> {
    #[serde(serialize_with = "serialize_all")]
    All,
    List(Vec<T>),
}

fn serialize_all<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("all")
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Selection<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Selection<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of names such as [\"kraken\", \"bitstamp\"]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "all" {
                    Ok(Selection::All)
                } else {
                    Err(E::custom(format!(
                        "expected \"all\" or a list of names, found the string {v:?}"
                    )))
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Selection::List(items))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A day written `YYYY-MM-DD` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Day(pub NaiveDate);

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
            .map(Day)
            .map_err(|e| serde::de::Error::custom(format!("{raw:?} is not a date YYYY-MM-DD: {e}")))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceConfig,
    pub universe: UniverseConfig,
    pub fetch: FetchConfig,
    pub schedule: ScheduleConfig,
    pub snapshot: SnapshotConfig,
    pub api: ApiConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// `"builtin"` or the base URL of a price server.
    pub url: SourceUrl,
    /// Limit for one HTTP request, connect included.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Largest response body accepted; a larger one is a failure.
    pub max_body_bytes: usize,
    /// What to do with a price whose open or close lies outside low..=high.
    pub ohlc_order: OhlcOrder,
    /// How long after a day closes an answer about it counts as final.
    #[serde(with = "humantime_serde")]
    pub settle_after: Duration,
    /// Options of the in-process server used when `url = "builtin"`.
    pub builtin: BuiltinConfig,
    /// Limits that apply to each exchange on its own.
    pub per_exchange: PerExchangeConfig,
}

/// TEMPORARY (replaced on merge).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OhlcOrder {
    #[default]
    Flag,
    Reject,
    Ignore,
}

/// Per-exchange limits, enforced by the dispatcher, so that a slow or
/// rate-limiting exchange does not hold the whole pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PerExchangeConfig {
    /// Most requests to one exchange at once (default: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// Most requests per second to one exchange (token bucket; default: no limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuiltinConfig {
    /// Seed of the generated dataset.
    pub seed: u64,
    /// Delay before each price answer.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// Publish prices as a real exchange does: none for future days, a
    /// partial candle for today, and each closed day only this long after
    /// its close at UTC midnight (e.g. "1h"). Unset: the whole dataset is
    /// served at once.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub publish_delay: Option<Duration>,
}

/// What to fetch. Without a `[universe]` section the default is every
/// exchange and symbol over 2020 (the built-in dataset's year); with one,
/// a window must be given (`from`, optionally `to`, or `last_days`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniverseConfig {
    #[serde(default = "Selection::all")]
    pub exchanges: Selection<Exchange>,
    #[serde(default = "Selection::all")]
    pub symbols: Selection<Symbol>,
    /// First day, inclusive. With `last_days`, leave `from`/`to` out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Day>,
    /// Last day, inclusive (default: today, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Day>,
    /// A rolling window: the last N days up to today (UTC), inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_days: Option<u32>,
    /// TEMPORARY
    #[serde(default = "max_tasks")]
    pub max_tasks: u64,
}

fn max_tasks() -> u64 {
    5_000_000
}

/// TEMPORARY
pub fn universe_size_problem(e: usize, s: usize, d: usize, max: u64) -> Option<String> {
    let n = e as u128 * s as u128 * d as u128;
    (n > u128::from(max)).then(|| format!("{e} exchanges x {s} symbols x {d} days = {n} tasks, more than universe.max_tasks ({max})"))
}

impl<T> Selection<T> {
    fn all() -> Self {
        Selection::All
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FetchConfig {
    /// Fetcher threads in the pool.
    pub workers: usize,
    /// Most tasks handed to the pool and not yet answered (default 2 x workers).
    pub queue: Option<usize>,
    /// Tries per task within one round before it is recorded as failed.
    pub max_attempts: u32,
    /// Transient failures are retried until this has passed since the first attempt.
    #[serde(with = "humantime_serde")]
    pub retry_for: Duration,
    /// First retry delay; doubles per attempt, with full jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Cap of the retry delay.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// A task not answered within this is considered hung and re-queued.
    #[serde(with = "humantime_serde")]
    pub task_deadline: Duration,
    /// On shutdown, how long in-flight tasks may take to finish.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Time from one round's start to the next's.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    pub dir: PathBuf,
    /// While a round runs, write a snapshot this often.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
    /// How many snapshot files to keep.
    pub keep: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the query API and metrics while the daemon runs.
    pub enabled: bool,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9180)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// How often a running round logs a progress line.
    #[serde(with = "humantime_serde")]
    pub progress_every: Duration,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            url: SourceUrl::Builtin,
            timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            ohlc_order: OhlcOrder::Flag,
            settle_after: Duration::from_secs(7200),
            builtin: BuiltinConfig::default(),
            per_exchange: PerExchangeConfig::default(),
        }
    }
}

impl Default for BuiltinConfig {
    fn default() -> Self {
        Self {
            seed: crate::server::DEFAULT_SEED,
            latency: Duration::ZERO,
            publish_delay: None,
        }
    }
}

impl Default for UniverseConfig {
    fn default() -> Self {
        Self {
            exchanges: Selection::All,
            symbols: Selection::All,
            from: Some(Day(NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date"))),
            to: Some(Day(
                NaiveDate::from_ymd_opt(2020, 12, 31).expect("valid date")
            )),
            last_days: None,
            max_tasks: 5_000_000,
        }
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            workers: 32,
            queue: None,
            max_attempts: 10,
            retry_for: Duration::from_secs(120),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            task_deadline: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
        }
    }
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/snapshots"),
            every: Duration::from_secs(30),
            keep: 48,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            progress_every: Duration::from_secs(5),
        }
    }
}

/// One thing wrong with a config, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line and column, when the position is known.
    pub position: Option<(usize, usize)>,
    /// Dotted key path, e.g. `fetch.workers`, when known.
    pub key: Option<String>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_problems(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &Path, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems
        .iter()
        .map(|p| {
            let at = match p.position {
                Some((line, col)) => format!("{}:{line}:{col}", path.display()),
                None => path.display().to_string(),
            };
            match &p.key {
                Some(key) => format!("{at}: {key}: {}", p.message),
                None => format!("{at}: {}", p.message),
            }
        })
        .collect();
    lines.join("\n")
}

impl ConfigError {
    /// The problems found, empty for a read error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

/// The inclusive range of days a universe covers on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DayRange {
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + Clone {
        self.from.iter_days().take_while({
            let to = self.to;
            move |d| *d <= to
        })
    }

    pub fn len(&self) -> usize {
        usize::try_from((self.to - self.from).num_days() + 1).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.to < self.from
    }
}

impl UniverseConfig {
    /// The days covered when today (UTC) is `today`.
    pub fn days(&self, today: NaiveDate) -> DayRange {
        match self.last_days {
            Some(n) => DayRange {
                from: today - chrono::Days::new(u64::from(n.saturating_sub(1))),
                to: today,
            },
            None => DayRange {
                from: self.from.map_or(today, |d| d.0),
                to: self.to.map_or(today, |d| d.0),
            },
        }
    }
}

impl FetchConfig {
    /// The in-flight window: `queue`, or twice the workers.
    pub fn window(&self) -> usize {
        self.queue.unwrap_or(self.workers * 2)
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        };
        let doc = toml_edit::ImDocument::parse(text.to_owned());
        let config: Config = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                let span = e.span();
                let key = match (&doc, &span) {
                    (Ok(doc), Some(span)) => key_at(doc.as_table(), span.start),
                    _ => None,
                };
                return Err(invalid(vec![Problem {
                    position: span.map(|s| line_col(text, s.start)),
                    key,
                    message: e.message().trim().to_owned(),
                }]));
            }
        };
        let problems = config.problems();
        if problems.is_empty() {
            return Ok(config);
        }
        let problems = problems
            .into_iter()
            .map(|(key, message)| Problem {
                position: doc
                    .as_ref()
                    .ok()
                    .and_then(|d| span_of(d.as_table(), &key))
                    .map(|s| line_col(text, s.start)),
                key: Some(key),
                message,
            })
            .collect();
        Err(invalid(problems))
    }

    /// Validates a config built or changed in code (e.g. by command-line
    /// overrides); problems carry their key but no position.
    pub fn check(&self) -> Result<(), ConfigError> {
        let problems = self.problems();
        if problems.is_empty() {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            path: PathBuf::from("<effective config>"),
            problems: problems
                .into_iter()
                .map(|(key, message)| Problem {
                    position: None,
                    key: Some(key),
                    message,
                })
                .collect(),
        })
    }

    /// Rules that tie fields together, as (key, message) pairs.
    fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |key: &str, msg: String| out.push((key.to_owned(), msg));

        let s = &self.source;
        if s.timeout.is_zero() {
            bad("source.timeout", "must be positive, e.g. \"10s\"".into());
        }
        if s.max_body_bytes < 64 {
            bad(
                "source.max_body_bytes",
                format!("{} is too small: expected at least 64", s.max_body_bytes),
            );
        }

        if s.per_exchange.max_in_flight == Some(0) {
            bad(
                "source.per_exchange.max_in_flight",
                "must be at least 1 (leave it out for no limit)".into(),
            );
        }
        if let Some(rps) = s.per_exchange.requests_per_second {
            if !(rps.is_finite() && rps > 0.0 && rps <= 1e6) {
                bad(
                    "source.per_exchange.requests_per_second",
                    format!("{rps} is out of range: expected a number above 0 and at most 1000000"),
                );
            }
        }

        let u = &self.universe;
        if let Selection::List(list) = &u.exchanges {
            if list.is_empty() {
                bad(
                    "universe.exchanges",
                    "is empty: name at least one exchange, or \"all\"".into(),
                );
            }
        }
        if let Selection::List(list) = &u.symbols {
            if list.is_empty() {
                bad(
                    "universe.symbols",
                    "is empty: name at least one symbol, or \"all\"".into(),
                );
            }
        }
        match (u.last_days, u.from, u.to) {
            (Some(0), _, _) => bad("universe.last_days", "must be at least 1".into()),
            (Some(n), _, _) if n > 100_000 => bad(
                "universe.last_days",
                format!("{n} is too large: at most 100000"),
            ),
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => bad(
                "universe.last_days",
                "cannot be combined with from/to: use either a rolling or an absolute window"
                    .into(),
            ),
            (None, None, _) => bad(
                "universe.from",
                "is missing: set from = \"YYYY-MM-DD\" (and optionally to), or last_days = N"
                    .into(),
            ),
            (None, Some(from), Some(to)) if from > to => bad(
                "universe.to",
                format!("{} is before from = {}", to.0, from.0),
            ),
            _ => {}
        }

        let f = &self.fetch;
        if f.workers == 0 || f.workers > MAX_WORKERS {
            bad(
                "fetch.workers",
                format!("{} is out of range: expected 1..={MAX_WORKERS}", f.workers),
            );
        }
        if let Some(q) = f.queue {
            if q < f.workers.max(1) {
                bad(
                    "fetch.queue",
                    format!("{q} is smaller than fetch.workers ({}): expected at least the worker count", f.workers),
                );
            }
            if q > 100_000 {
                bad("fetch.queue", format!("{q} is too large: at most 100000"));
            }
        }
        if f.max_attempts == 0 || f.max_attempts > 100 {
            bad(
                "fetch.max_attempts",
                format!("{} is out of range: expected 1..=100", f.max_attempts),
            );
        }
        for (key, d) in [
            ("fetch.backoff_base", f.backoff_base),
            ("fetch.backoff_max", f.backoff_max),
            ("fetch.task_deadline", f.task_deadline),
            ("fetch.drain_timeout", f.drain_timeout),
            ("schedule.interval", self.schedule.interval),
            ("snapshot.every", self.snapshot.every),
            ("log.progress_every", self.log.progress_every),
        ] {
            if d.is_zero() {
                bad(key, "must be positive, e.g. \"5s\"".into());
            }
        }
        if f.backoff_max < f.backoff_base {
            bad(
                "fetch.backoff_max",
                "is smaller than fetch.backoff_base".into(),
            );
        }
        if f.task_deadline <= s.timeout {
            bad(
                "fetch.task_deadline",
                format!(
                    "{} must be longer than source.timeout ({}), or every slow answer counts as hung",
                    humantime::format_duration(f.task_deadline),
                    humantime::format_duration(s.timeout)
                ),
            );
        }
        if self.snapshot.keep == 0 {
            bad("snapshot.keep", "must be at least 1".into());
        }
        if self.snapshot.dir.as_os_str().is_empty() {
            bad("snapshot.dir", "is empty".into());
        }
        out
    }

    /// The effective config as TOML, every default filled in.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

/// Parses an address such as `127.0.0.1:9180` (used by CLI options).
pub fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|e| format!("{raw:?} is not an address such as 127.0.0.1:9180: {e}"))
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The position of a dotted key in the document: the key itself if present,
/// else its table's header.
fn span_of(root: &toml_edit::Table, dotted: &str) -> Option<Range<usize>> {
    let mut table = root;
    let mut best = None;
    let parts: Vec<&str> = dotted.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let (key, item) = table.get_key_value(part)?;
        best = key.span().or(best);
        if i + 1 < parts.len() {
            match item.as_table_like() {
                Some(_) => {
                    table = item.as_table()?;
                }
                None => return best,
            }
        }
    }
    best
}

/// The dotted path of the deepest key whose value covers `offset`.
fn key_at(table: &toml_edit::Table, offset: usize) -> Option<String> {
    for (key, item) in table.iter() {
        let covers =
            |r: Option<Range<usize>>| r.is_some_and(|r| r.start <= offset && offset <= r.end);
        let key_span = table.key(key).and_then(|k| k.span());
        if let Some(sub) = item.as_table() {
            if let Some(inner) = key_at(sub, offset) {
                return Some(format!("{key}.{inner}"));
            }
            if covers(key_span) {
                return Some(key.to_owned());
            }
        } else if covers(item.span()) || covers(key_span) {
            return Some(key.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = parse("").expect("valid");
        assert_eq!(c, Config::default());
        assert_eq!(c.fetch.window(), 64);
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_PATH);
        let c = Config::load(&path).expect("config/pricegrid.toml is valid");
        assert_eq!(c.source.url, SourceUrl::Builtin);
    }

    #[test]
    fn unknown_key_names_file_line_column_and_key() {
        let err = parse("[fetch]\nworkers = 4\nworker = 3\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("test.toml:3:1: fetch.worker: unknown field `worker`"),
            "{text}"
        );
        assert!(text.contains("workers"), "lists the expected keys: {text}");
    }

    #[test]
    fn a_bad_value_type_names_the_key() {
        let err = parse("[fetch]\nworkers = \"many\"\n").unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.key.as_deref(), Some("fetch.workers"));
        assert_eq!(p.position, Some((2, 11)));
    }

    #[test]
    fn cross_field_rules_point_at_the_key() {
        let err = parse("[universe]\nfrom = \"2020-02-01\"\nto = \"2020-01-01\"\n").unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.key.as_deref(), Some("universe.to"));
        assert_eq!(p.position, Some((3, 1)));
        assert!(p.message.contains("before"), "{}", p.message);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = parse("[fetch]\nworkers = 0\nmax_attempts = 0\n").unwrap_err();
        let keys: Vec<_> = err
            .problems()
            .iter()
            .filter_map(|p| p.key.clone())
            .collect();
        assert!(keys.contains(&"fetch.workers".to_owned()), "{keys:?}");
        assert!(keys.contains(&"fetch.max_attempts".to_owned()), "{keys:?}");
    }

    #[test]
    fn names_and_urls_are_checked_while_parsing() {
        let err = parse("[universe]\nexchanges = [\"Kraken\"]\n").unwrap_err();
        assert_eq!(err.problems()[0].key.as_deref(), Some("universe.exchanges"));
        assert!(err.to_string().contains("[a-z0-9-]"), "{err}");
        let err = parse("[source]\nurl = \"ftp://x\"\n").unwrap_err();
        assert!(err.to_string().contains("http"), "{err}");
    }

    #[test]
    fn rolling_window_ends_today() {
        let today = NaiveDate::from_ymd_opt(2020, 1, 10).unwrap();
        let c = parse("[universe]\nfrom = \"2020-01-01\"\n").expect("valid");
        assert_eq!(c.universe.days(today).to, today, "an open `to` is today");
        let c = parse("[universe]\nlast_days = 3\n").expect("valid");
        let r = c.universe.days(today);
        assert_eq!(r.from, NaiveDate::from_ymd_opt(2020, 1, 8).unwrap());
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn effective_config_round_trips() {
        let c = Config::default();
        let back = parse(&c.to_toml()).expect("rendered config parses");
        assert_eq!(back, c);
    }
}
