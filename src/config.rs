//! The TOML configuration: parsed into typed structs, validated in one place,
//! and handed around whole (`Arc<Config>`), never half-applied.
//!
//! Every error names the file, line, column and key and says what is expected
//! (`config/pricegrid.toml:12:9: fetch.worker: unknown field ...`). Values that
//! can be checked alone are checked while deserialising (so the TOML parser
//! gives their position); rules that tie fields together, or that depend on
//! what day it is (a window ending after tomorrow), are checked in one place,
//! `Config::check_at`, and their key's position (or an array element's) is
//! looked up in the source text. Keys that older configs used are named with
//! what replaced them. This module reads files but owns no other state.

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

/// The day of the first Bitcoin block: no crypto price exists before it, so
/// a window reaching further back is a typo, not a request.
pub const FIRST_PRICE_DAY: NaiveDate = NaiveDate::from_ymd_opt(2009, 1, 3).expect("valid date");

/// Keys that older configs used, with what replaced them; a config that
/// still has one is told so at the key rather than "unknown field".
const RETIRED: &[(&str, &str)] = &[(
    "source.check_ohlc_order",
    "was replaced by source.ohlc_order = \"flag\" | \"reject\" | \"ignore\"",
)];

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
    /// How long after a day closes (UTC midnight) an answer about it counts
    /// as final. Until then a source may still correct the day, so it is
    /// asked again; zero makes a day final as soon as it closes.
    #[serde(with = "humantime_serde")]
    pub settle_after: Duration,
    /// Options of the in-process server used when `url = "builtin"`.
    pub builtin: BuiltinConfig,
    /// Limits that apply to each exchange on its own.
    pub per_exchange: PerExchangeConfig,
}

/// What to do with a price whose open or close lies outside low..=high.
/// Real exchange data breaks this now and then (3% of the classic dataset),
/// so whether such a row is wrong is the operator's call, not the parser's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OhlcOrder {
    /// Keep the price exactly as sent and mark it with a quality flag.
    #[default]
    Flag,
    /// Record the cell as rejected: settled, and never retried.
    Reject,
    /// Keep the price exactly as sent, unflagged.
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
    /// Most tasks (exchanges x symbols x days) one round may hold: a guard
    /// against a window or list far larger than meant. Checked with the
    /// config for explicit lists, and by the producer once "all" is known.
    #[serde(default = "UniverseConfig::default_max_tasks")]
    pub max_tasks: u64,
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
    /// Most tries per task within one round before it is recorded as failed.
    pub max_attempts: u32,
    /// A task's transient failures are retried until this much time has
    /// passed since its first attempt in the round, or `max_attempts` is
    /// reached, whichever comes first.
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
            settle_after: Duration::from_secs(2 * 60 * 60),
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
            max_tasks: UniverseConfig::default_max_tasks(),
        }
    }
}

impl UniverseConfig {
    fn default_max_tasks() -> u64 {
        5_000_000
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            workers: 32,
            queue: None,
            max_attempts: 10,
            retry_for: Duration::from_secs(2 * 60),
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

    /// What is wrong with a universe of this many exchanges, symbols and
    /// days under `max_tasks`, if anything: for the producer to call once
    /// "all" has been asked of the source.
    pub fn size_problem(&self, exchanges: usize, symbols: usize, days: usize) -> Option<String> {
        universe_size_problem(exchanges, symbols, days, self.max_tasks)
    }
}

/// `Some(message)` naming the product when `exchanges x symbols x days`
/// is more than `max_tasks`, e.g. `11 exchanges x 3 symbols x 2922 days =
/// 96426 tasks, more than universe.max_tasks (5000)`. Never overflows.
pub fn universe_size_problem(
    exchanges: usize,
    symbols: usize,
    days: usize,
    max_tasks: u64,
) -> Option<String> {
    let wide = |n: usize| u128::try_from(n).unwrap_or(u128::MAX);
    let tasks = wide(exchanges)
        .saturating_mul(wide(symbols))
        .saturating_mul(wide(days));
    (tasks > u128::from(max_tasks)).then(|| {
        format!(
            "{} x {} x {} = {} tasks, more than universe.max_tasks ({max_tasks})",
            counted(exchanges, "exchange"),
            counted(symbols, "symbol"),
            counted(days, "day"),
            tasks
        )
    })
}

fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl FetchConfig {
    /// The in-flight window: `queue`, or twice the workers.
    pub fn window(&self) -> usize {
        self.queue.unwrap_or(self.workers * 2)
    }
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
        let problem = |finding: &Finding| {
            let (key, span) = finding.locate(root);
            Problem {
                position: span.map(|s| line_col(text, s.start)),
                key: Some(key.to_owned()),
                message: finding.message.clone(),
            }
        };
        if let Some(root) = root {
            let retired: Vec<Problem> = RETIRED
                .iter()
                .filter(|(key, _)| find(root, key).is_some())
                .map(|&(key, message)| problem(&Finding::at(key, message.to_owned())))
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
        Err(invalid(findings.iter().map(problem).collect()))
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
                .map(|f| Problem {
                    position: None,
                    key: Some(f.keys[0].to_owned()),
                    message: f.message,
                })
                .collect(),
        })
    }

    /// Every rule that ties fields together or depends on `today`.
    fn problems(&self, today: NaiveDate) -> Vec<Finding> {
        let mut out = Findings::default();

        let s = &self.source;
        if s.timeout.is_zero() {
            out.bad("source.timeout", "must be positive, e.g. \"10s\"".into());
        }
        if s.max_body_bytes < 64 {
            out.bad(
                "source.max_body_bytes",
                format!("{} is too small: expected at least 64", s.max_body_bytes),
            );
        }

        if s.per_exchange.max_in_flight == Some(0) {
            out.bad(
                "source.per_exchange.max_in_flight",
                "must be at least 1 (leave it out for no limit)".into(),
            );
        }
        if let Some(rps) = s.per_exchange.requests_per_second {
            if !(rps.is_finite() && rps > 0.0 && rps <= 1e6) {
                out.bad(
                    "source.per_exchange.requests_per_second",
                    format!("{rps} is out of range: expected a number above 0 and at most 1000000"),
                );
            }
        }

        self.universe_problems(today, &mut out);

        let f = &self.fetch;
        if f.workers == 0 || f.workers > MAX_WORKERS {
            out.bad(
                "fetch.workers",
                format!("{} is out of range: expected 1..={MAX_WORKERS}", f.workers),
            );
        }
        if let Some(q) = f.queue {
            if q < f.workers.max(1) {
                out.bad(
                    "fetch.queue",
                    format!("{q} is smaller than fetch.workers ({}): expected at least the worker count", f.workers),
                );
            }
            if q > 100_000 {
                out.bad("fetch.queue", format!("{q} is too large: at most 100000"));
            }
        }
        if f.max_attempts == 0 || f.max_attempts > 100 {
            out.bad(
                "fetch.max_attempts",
                format!("{} is out of range: expected 1..=100", f.max_attempts),
            );
        }
        for (key, d) in [
            ("fetch.retry_for", f.retry_for),
            ("fetch.backoff_base", f.backoff_base),
            ("fetch.backoff_max", f.backoff_max),
            ("fetch.task_deadline", f.task_deadline),
            ("fetch.drain_timeout", f.drain_timeout),
            ("schedule.interval", self.schedule.interval),
            ("snapshot.every", self.snapshot.every),
            ("log.progress_every", self.log.progress_every),
        ] {
            if d.is_zero() {
                out.bad(key, "must be positive, e.g. \"5s\"".into());
            }
        }
        if f.backoff_max < f.backoff_base {
            out.bad(
                "fetch.backoff_max",
                "is smaller than fetch.backoff_base".into(),
            );
        }
        if f.task_deadline <= s.timeout {
            out.bad(
                "fetch.task_deadline",
                format!(
                    "{} must be longer than source.timeout ({}), or every slow answer counts as hung",
                    humantime::format_duration(f.task_deadline),
                    humantime::format_duration(s.timeout)
                ),
            );
        }
        if self.snapshot.keep == 0 {
            out.bad("snapshot.keep", "must be at least 1".into());
        }
        if self.snapshot.dir.as_os_str().is_empty() {
            out.bad("snapshot.dir", "is empty".into());
        }
        out.0
    }

    /// The lists, the window and the universe's size.
    fn universe_problems(&self, today: NaiveDate, out: &mut Findings) {
        let u = &self.universe;
        let mut lists_ok = true;
        let exchanges = match &u.exchanges {
            Selection::List(list) => Some(list.iter().map(Exchange::as_str).collect::<Vec<_>>()),
            Selection::All => None,
        };
        let symbols = match &u.symbols {
            Selection::List(list) => Some(list.iter().map(Symbol::as_str).collect::<Vec<_>>()),
            Selection::All => None,
        };
        for (key, noun, list) in [
            ("universe.exchanges", "exchange", &exchanges),
            ("universe.symbols", "symbol", &symbols),
        ] {
            let Some(list) = list else { continue };
            if list.is_empty() {
                lists_ok = false;
                out.bad(
                    key,
                    format!("is empty: name at least one {noun}, or \"all\""),
                );
            }
            for (index, message) in repeats(list) {
                out.bad_element(key, index, message);
            }
        }

        let errors_before = out.0.len();
        match (u.last_days, u.from, u.to) {
            (Some(0), _, _) => out.bad("universe.last_days", "must be at least 1".into()),
            (Some(n), _, _) if n > 100_000 => out.bad(
                "universe.last_days",
                format!("{n} is too large: at most 100000"),
            ),
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => out.bad(
                "universe.last_days",
                "cannot be combined with from/to: use either a rolling or an absolute window"
                    .into(),
            ),
            (None, None, _) => out.bad(
                "universe.from",
                "is missing: set from = \"YYYY-MM-DD\" (and optionally to), or last_days = N"
                    .into(),
            ),
            (None, Some(from), Some(to)) if from > to => out.bad(
                "universe.to",
                format!("{} is before from = {}", to.0, from.0),
            ),
            _ => {}
        }
        // A day after tomorrow is a typo even where UTC is a day behind.
        let tomorrow = today.succ_opt().unwrap_or(today);
        for (key, day) in [("universe.from", u.from), ("universe.to", u.to)] {
            let Some(Day(day)) = day else { continue };
            if day < FIRST_PRICE_DAY {
                out.bad(
                    key,
                    format!(
                        "{day} is before {FIRST_PRICE_DAY}, the first day any crypto price exists"
                    ),
                );
            } else if day > tomorrow {
                out.bad(key, format!("{day} is after tomorrow ({tomorrow})"));
            }
        }
        let window_ok = out.0.len() == errors_before;

        if u.max_tasks == 0 {
            out.bad(
                "universe.max_tasks",
                "must be at least 1, e.g. 5000000".into(),
            );
            return;
        }
        let (Some(exchanges), Some(symbols)) = (&exchanges, &symbols) else {
            return;
        };
        if !(lists_ok && window_ok) {
            return;
        }
        let days = u.days(today).len();
        if let Some(size) = u.size_problem(exchanges.len(), symbols.len(), days) {
            // Blame max_tasks if the file sets it, else the window: by
            // default the limit is right and the window is the mistake.
            let window = if u.last_days.is_some() {
                "universe.last_days"
            } else {
                "universe.from"
            };
            out.0.push(Finding {
                keys: vec!["universe.max_tasks", window],
                element: None,
                message: format!(
                    "{size}: narrow the window or the lists, or raise universe.max_tasks"
                ),
            });
        }
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

/// A broken rule before it has a position: the key to blame is the first
/// of `keys` the file spells out (else the first), and `element` picks one
/// element of that key's array.
#[derive(Debug)]
struct Finding {
    keys: Vec<&'static str>,
    element: Option<usize>,
    message: String,
}

impl Finding {
    fn at(key: &'static str, message: String) -> Self {
        Finding {
            keys: vec![key],
            element: None,
            message,
        }
    }

    /// The key to name and where it is in the document, if it can be found.
    fn locate(&self, root: Option<&toml_edit::Table>) -> (&'static str, Option<Range<usize>>) {
        let Some(root) = root else {
            return (self.keys[0], None);
        };
        let key = self
            .keys
            .iter()
            .copied()
            .find(|k| find(root, k).is_some())
            .unwrap_or(self.keys[0]);
        let element = self.element.and_then(|i| {
            let (_, item) = find(root, key)?;
            item.as_array()?.get(i)?.span()
        });
        (key, element.or_else(|| span_of(root, key)))
    }
}

#[derive(Debug, Default)]
struct Findings(Vec<Finding>);

impl Findings {
    fn bad(&mut self, key: &'static str, message: String) {
        self.0.push(Finding::at(key, message));
    }

    fn bad_element(&mut self, key: &'static str, index: usize, message: String) {
        self.0.push(Finding {
            keys: vec![key],
            element: Some(index),
            message,
        });
    }
}

/// Each name listed more than once, as (index of its second occurrence,
/// message), in the order the repeats appear.
fn repeats(names: &[&str]) -> Vec<(usize, String)> {
    let mut seen: std::collections::HashMap<&str, (usize, Option<usize>)> =
        std::collections::HashMap::new();
    for (i, name) in names.iter().enumerate() {
        let (count, second) = seen.entry(name).or_insert((0, None));
        *count += 1;
        if *count == 2 {
            *second = Some(i);
        }
    }
    let mut out: Vec<(usize, String)> = seen
        .into_iter()
        .filter_map(|(name, (count, second))| {
            let times = if count == 2 {
                "twice".to_owned()
            } else {
                format!("{count} times")
            };
            second.map(|i| (i, format!("{name:?} is listed {times}")))
        })
        .collect();
    out.sort();
    out
}

/// The key and item at a dotted path, through tables and inline tables.
fn find<'a>(
    root: &'a toml_edit::Table,
    dotted: &str,
) -> Option<(&'a toml_edit::Key, &'a toml_edit::Item)> {
    let mut table: &dyn toml_edit::TableLike = root;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let (key, item) = table.get_key_value(part)?;
        if parts.peek().is_none() {
            return Some((key, item));
        }
        table = item.as_table_like()?;
    }
    None
}

/// The position of a dotted key in the document: the key itself if present,
/// else the deepest enclosing key that is (a table's header).
fn span_of(root: &toml_edit::Table, dotted: &str) -> Option<Range<usize>> {
    let mut table: &dyn toml_edit::TableLike = root;
    let mut best = None;
    for part in dotted.split('.') {
        let Some((key, item)) = table.get_key_value(part) else {
            return best;
        };
        best = key.span().or(best);
        match item.as_table_like() {
            Some(inner) => table = inner,
            None => return best,
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
        assert_eq!(c, Config::default(), "it spells out the defaults");
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

    /// A day well after the default window, so that only the rule under test
    /// can fail.
    fn june_2024() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 15).unwrap()
    }

    fn parse_on(text: &str, today: NaiveDate) -> Result<Config, ConfigError> {
        Config::parse_at(text, Path::new("test.toml"), today)
    }

    /// The only problem of `text` (as of June 2024), as `line:col: key: message`.
    fn only_problem(text: &str) -> String {
        let err = parse_on(text, june_2024()).expect_err("the config is invalid");
        let problems = err.problems();
        assert_eq!(problems.len(), 1, "{err}");
        let p = &problems[0];
        let (line, col) = p.position.expect("the problem has a position");
        format!(
            "{line}:{col}: {}: {}",
            p.key.as_deref().unwrap_or("-"),
            p.message
        )
    }

    #[test]
    fn the_new_settings_have_their_documented_defaults() {
        let c = Config::default();
        assert_eq!(c.source.ohlc_order, OhlcOrder::Flag);
        assert_eq!(c.source.settle_after, Duration::from_secs(2 * 3600));
        assert_eq!(c.fetch.retry_for, Duration::from_secs(120));
        assert_eq!(c.fetch.max_attempts, 10);
        assert_eq!(c.universe.max_tasks, 5_000_000);
        assert!(c.check_at(june_2024()).is_ok());
    }

    #[test]
    fn a_config_still_using_check_ohlc_order_is_told_what_replaced_it() {
        assert_eq!(
            only_problem("[source]\nurl = \"builtin\"\ncheck_ohlc_order = true\n"),
            "3:1: source.check_ohlc_order: was replaced by \
             source.ohlc_order = \"flag\" | \"reject\" | \"ignore\""
        );
        assert!(
            only_problem("source = { check_ohlc_order = false }\n")
                .starts_with("1:12: source.check_ohlc_order: was replaced by"),
            "an inline table is searched too"
        );
    }

    #[test]
    fn ohlc_order_takes_flag_reject_or_ignore() {
        for (raw, want) in [
            ("flag", OhlcOrder::Flag),
            ("reject", OhlcOrder::Reject),
            ("ignore", OhlcOrder::Ignore),
        ] {
            let c = parse_on(&format!("[source]\nohlc_order = \"{raw}\"\n"), june_2024())
                .expect("valid");
            assert_eq!(c.source.ohlc_order, want);
        }
        let problem = only_problem("[source]\nohlc_order = \"drop\"\n");
        assert!(
            problem.starts_with("2:14: source.ohlc_order: unknown variant `drop`"),
            "{problem}"
        );
        assert!(problem.contains("`flag`, `reject`, `ignore`"), "{problem}");
    }

    #[test]
    fn settle_after_may_be_zero() {
        let c = parse_on("[source]\nsettle_after = \"0s\"\n", june_2024()).expect("valid");
        assert_eq!(c.source.settle_after, Duration::ZERO);
        let c = parse_on("[source]\nsettle_after = \"1day\"\n", june_2024()).expect("valid");
        assert_eq!(c.source.settle_after, Duration::from_secs(86_400));
        let problem = only_problem("[source]\nsettle_after = \"later\"\n");
        assert!(
            problem.starts_with("2:16: source.settle_after:"),
            "{problem}"
        );
    }

    #[test]
    fn retry_for_must_be_positive() {
        assert_eq!(
            only_problem("[fetch]\nworkers = 4\nretry_for = \"0s\"\n"),
            "3:1: fetch.retry_for: must be positive, e.g. \"5s\""
        );
        let c = parse_on("[fetch]\nretry_for = \"30s\"\n", june_2024()).expect("valid");
        assert_eq!(c.fetch.retry_for, Duration::from_secs(30));
    }

    #[test]
    fn max_attempts_stays_within_one_to_a_hundred() {
        assert_eq!(
            only_problem("[fetch]\nmax_attempts = 101\n"),
            "2:1: fetch.max_attempts: 101 is out of range: expected 1..=100"
        );
        assert!(parse_on("[fetch]\nmax_attempts = 100\n", june_2024()).is_ok());
    }

    #[test]
    fn the_universe_size_names_the_product_and_never_overflows() {
        assert_eq!(
            universe_size_problem(11, 3, 2922, 5000).as_deref(),
            Some("11 exchanges x 3 symbols x 2922 days = 96426 tasks, more than universe.max_tasks (5000)")
        );
        assert_eq!(
            universe_size_problem(1, 1, 2, 1).as_deref(),
            Some("1 exchange x 1 symbol x 2 days = 2 tasks, more than universe.max_tasks (1)")
        );
        assert_eq!(
            universe_size_problem(10, 10, 50, 5000),
            None,
            "at the limit"
        );
        let huge = universe_size_problem(usize::MAX, usize::MAX, usize::MAX, u64::MAX)
            .expect("far more than u64::MAX");
        assert!(huge.contains(&u128::MAX.to_string()), "saturates: {huge}");
        let c = UniverseConfig {
            max_tasks: 4,
            ..UniverseConfig::default()
        };
        assert!(c.size_problem(2, 2, 1).is_none());
        assert!(c.size_problem(5, 1, 1).is_some());
    }

    #[test]
    fn an_oversized_universe_points_at_max_tasks_when_it_is_set() {
        let lists =
            "[universe]\nexchanges = [\"kraken\", \"bitstamp\"]\nsymbols = [\"btc\", \"eth\"]\n";
        assert_eq!(
            only_problem(&format!(
                "{lists}from = \"2020-01-01\"\nto = \"2020-01-10\"\nmax_tasks = 39\n"
            )),
            "6:1: universe.max_tasks: 2 exchanges x 2 symbols x 10 days = 40 tasks, \
             more than universe.max_tasks (39): narrow the window or the lists, \
             or raise universe.max_tasks"
        );
        assert!(parse_on(
            &format!("{lists}from = \"2020-01-01\"\nto = \"2020-01-10\"\nmax_tasks = 40\n"),
            june_2024()
        )
        .is_ok());
    }

    #[test]
    fn an_oversized_universe_points_at_the_window_under_the_default_limit() {
        let names = |prefix: &str| {
            let names: Vec<String> = (0..40).map(|i| format!("\"{prefix}{i}\"")).collect();
            names.join(", ")
        };
        let lists = format!(
            "[universe]\nexchanges = [{}]\nsymbols = [{}]\n",
            names("x"),
            names("s")
        );
        // 40 x 40 x 3273 days (2015-07-01 to 2024-06-15) is over 5_000_000.
        let problem = only_problem(&format!("{lists}from = \"2015-07-01\"\n"));
        assert!(
            problem.starts_with(
                "4:1: universe.from: 40 exchanges x 40 symbols x 3273 days = 5236800 tasks, \
                 more than universe.max_tasks (5000000)"
            ),
            "{problem}"
        );
        assert!(
            problem.ends_with("or raise universe.max_tasks"),
            "{problem}"
        );
        let problem = only_problem(&format!("{lists}last_days = 3200\n"));
        assert!(
            problem.starts_with("4:1: universe.last_days: 40 exchanges x 40 symbols x 3200 days"),
            "{problem}"
        );
        assert!(
            parse_on(&format!("{lists}last_days = 3000\n"), june_2024()).is_ok(),
            "4_800_000 tasks fit"
        );
    }

    #[test]
    fn max_tasks_must_be_at_least_one() {
        assert_eq!(
            only_problem("[universe]\nfrom = \"2020-01-01\"\nmax_tasks = 0\n"),
            "3:1: universe.max_tasks: must be at least 1, e.g. 5000000"
        );
    }

    #[test]
    fn a_name_listed_twice_is_reported_at_its_second_occurrence() {
        assert_eq!(
            only_problem(
                "[universe]\nexchanges = [\"kraken\", \"bitstamp\", \"kraken\"]\nfrom = \"2020-01-01\"\n"
            ),
            "2:36: universe.exchanges: \"kraken\" is listed twice"
        );
        assert_eq!(
            only_problem(
                "[universe]\nsymbols = [\n  \"btc\",\n  \"eth\",\n  \"btc\",\n  \"btc\",\n]\nfrom = \"2020-01-01\"\n"
            ),
            "5:3: universe.symbols: \"btc\" is listed 3 times"
        );
        assert_eq!(
            only_problem("universe = { from = \"2020-01-01\", symbols = [\"a\", \"a\"] }\n"),
            "1:51: universe.symbols: \"a\" is listed twice"
        );
        let err = parse_on(
            "[universe]\nexchanges = [\"b\", \"a\", \"a\", \"b\"]\nfrom = \"2020-01-01\"\n",
            june_2024(),
        )
        .unwrap_err();
        let positions: Vec<_> = err.problems().iter().map(|p| p.position).collect();
        assert_eq!(
            positions,
            [Some((2, 24)), Some((2, 29))],
            "one problem per repeated name, in file order: {err}"
        );
    }

    #[test]
    fn a_window_before_the_first_bitcoin_block_or_after_tomorrow_is_refused() {
        let err = parse_on(
            "[universe]\nfrom = \"0001-01-01\"\nto = \"9999-12-31\"\n",
            june_2024(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "test.toml:2:1: universe.from: 0001-01-01 is before 2009-01-03, \
             the first day any crypto price exists\n\
             test.toml:3:1: universe.to: 9999-12-31 is after tomorrow (2024-06-16)"
        );
        assert_eq!(
            only_problem("[universe]\nfrom = \"2024-06-17\"\n"),
            "2:1: universe.from: 2024-06-17 is after tomorrow (2024-06-16)"
        );
        assert_eq!(
            only_problem("[universe]\nfrom = \"2008-12-31\"\nto = \"2009-01-10\"\n"),
            "2:1: universe.from: 2008-12-31 is before 2009-01-03, \
             the first day any crypto price exists"
        );
        assert!(
            parse_on(
                "[universe]\nfrom = \"2009-01-03\"\nto = \"2024-06-16\"\n",
                june_2024()
            )
            .is_ok(),
            "the first block's day and tomorrow are both allowed"
        );
    }

    #[test]
    fn check_at_judges_a_window_set_in_code_by_the_given_day() {
        let mut c = Config::default();
        c.universe.to = Some(Day(NaiveDate::from_ymd_opt(2024, 6, 20).unwrap()));
        assert!(c
            .check_at(NaiveDate::from_ymd_opt(2024, 6, 19).unwrap())
            .is_ok());
        let err = c.check_at(june_2024()).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.key.as_deref(), Some("universe.to"));
        assert_eq!(p.position, None, "a config built in code has no positions");
        assert!(
            p.message.contains("after tomorrow (2024-06-16)"),
            "{}",
            p.message
        );
    }

    #[test]
    fn a_missing_key_points_at_its_table() {
        let err = parse_on("[fetch]\n[universe]\nexchanges = \"all\"\n", june_2024()).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!(p.key.as_deref(), Some("universe.from"));
        assert_eq!(p.position, Some((2, 2)), "the [universe] header");
    }
}
