//! The shape of a config: one struct per `[section]`, each with its
//! `Default` right beside it, and the serde types that check a value alone
//! while it is read (`SourceUrl`, `Selection`), so the TOML parser gives
//! their position.
//!
//! Rules that tie fields together are not here but in `validate`; this
//! module does no I/O and knows nothing of files or positions. (A little
//! over 500 lines: every section's struct stays beside its default, and
//! `[fetch]` as written, `FetchFile`, beside `[fetch]` as used.)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::size::{TooLarge, UniverseSize};
use super::values::{HostName, Selection, SourceUrl};
use crate::model::{Day, DayRange, Exchange, ExchangeApi, OhlcOrder, Symbol};
use crate::source::ClientLimits;

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
    /// A PEM file of extra CA certificates to trust for https sources,
    /// beside the built-in (webpki) roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The `User-Agent` of every request (default `pricegrid/<version>`):
    /// exchanges ask for one that names a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
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
            ca_file: None,
            user_agent: None,
        }
    }
}

/// The client's limits as `[source]` sets them, for a pool of
/// `connections`. Written here, beside `SourceConfig`, so that the client
/// (`source`) reads no config: `config` asks `source`, never the reverse.
impl ClientLimits {
    pub fn from_config(source: &SourceConfig, connections: usize) -> Self {
        Self {
            timeout: source.timeout,
            max_body: source.max_body_bytes,
            connections,
            ohlc_order: source.ohlc_order,
            user_agent: source.user_agent.as_deref().map(Arc::from),
        }
    }
}

/// `[exchanges.NAME]`: an exchange whose prices come from its own API (or
/// from a classic server of its own) rather than from `[source]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeConfig {
    /// The API the exchange speaks.
    pub api: ExchangeApi,
    /// Where: each API has its real public endpoint as default (`classic`
    /// falls back to `source.url`); `"builtin"` starts the built-in server
    /// speaking this API in-process, on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SourceUrl>,
    /// Symbol -> the exchange's market name (`btc = "XBTUSD"`). Left out,
    /// the exchange's market list is asked and a symbol maps to
    /// `<SYMBOL>/USD`, else `/USDT`, else `/USDC`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub markets: BTreeMap<Symbol, String>,
    /// The quotes a market is chosen in when `markets` is left out, in
    /// order of preference (`["USD", "USDT", "USDC"]`); with
    /// `universe.symbols = "all"`, every base asset listed with a market in
    /// one of them.
    #[serde(
        default = "ExchangeConfig::default_quotes",
        skip_serializing_if = "ExchangeConfig::has_default_quotes"
    )]
    pub quotes: Vec<String>,
    /// Most requests a second to this exchange, from this process (default:
    /// the API's documented safe rate; classic: `source.per_exchange`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Most requests to this exchange at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// A PEM file of extra CA certificates to trust for this exchange's
    /// https URL, beside the built-in roots and `source.ca_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The `User-Agent` of requests to this exchange (default:
    /// `source.user_agent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl ExchangeConfig {
    pub fn default_quotes() -> Vec<String> {
        crate::model::DEFAULT_QUOTES.map(String::from).to_vec()
    }

    fn has_default_quotes(quotes: &[String]) -> bool {
        quotes
            .iter()
            .map(String::as_str)
            .eq(crate::model::DEFAULT_QUOTES)
    }
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
    /// its close at UTC midnight (e.g. "1h"). Unset: the generated dataset,
    /// which runs to today, is published with no delay (no future day,
    /// today's candle open).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub publish_delay: Option<Duration>,
}

impl Default for BuiltinConfig {
    fn default() -> Self {
        Self {
            seed: crate::model::DEFAULT_SEED,
            latency: Duration::ZERO,
            publish_delay: None,
        }
    }
}

/// Per-exchange limits, enforced by the dispatcher, so that a slow or
/// rate-limiting exchange does not hold the whole pool. The default is no
/// limit at all.
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

/// What to fetch. Without a `[universe]` section the default is every
/// exchange and symbol over 2020 (the built-in dataset's first year; it
/// runs to today); with one,
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
    /// config for explicit lists, and once "all" is discovered by a reload
    /// (before it is answered) and by the producer (before a round). At
    /// most [`MAX_TASKS`](super::size::MAX_TASKS) (67,108,864: 16 GiB at 256 bytes a task), the
    /// most this process agrees to hold.
    #[serde(default = "UniverseConfig::default_max_tasks")]
    pub max_tasks: u64,
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
    /// days under `max_tasks` (capped at [`MAX_TASKS`](super::size::MAX_TASKS)), if anything: for the
    /// producer and a reload to call once "all" has been asked of the source.
    pub fn size_problem(&self, exchanges: usize, symbols: usize, days: usize) -> Option<String> {
        universe_size_problem(exchanges, symbols, days, self.max_tasks)
    }

    /// The universe's size against `max_tasks`: its task count, or why it is
    /// too large.
    pub fn check_size(&self, size: UniverseSize) -> Result<u64, TooLarge> {
        size.within(self.max_tasks)
    }
}

/// `Some(message)` naming the product when `exchanges x symbols x days`
/// is more than `max_tasks` (or than [`MAX_TASKS`](super::size::MAX_TASKS)), e.g. `11 exchanges x 3
/// symbols x 2922 days = 96426 tasks, more than universe.max_tasks (5000)`.
/// Never overflows.
pub fn universe_size_problem(
    exchanges: usize,
    symbols: usize,
    days: usize,
    max_tasks: u64,
) -> Option<String> {
    UniverseSize::new(exchanges, symbols, days)
        .within(max_tasks)
        .err()
        .map(|e| e.to_string())
}

/// Most fetcher threads one pool may have.
pub const MAX_WORKERS: usize = 1024;

/// Most requests in flight at once.
pub const MAX_IN_FLIGHT: usize = 16_384;

/// Requests in flight when neither `fetch.in_flight` nor `fetch.workers`
/// is written.
pub const DEFAULT_IN_FLIGHT: usize = 64;

/// Fetcher threads when `fetch.workers` is not written: one per core (a
/// fetcher carries many requests at once, so more threads than cores only
/// adds switching).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .min(MAX_WORKERS)
}

/// `[fetch]` as it is used: `workers` and `in_flight` always resolved (see
/// `FetchFile` for how an unwritten one is filled in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "FetchFile")]
pub struct FetchConfig {
    /// Fetcher threads in the pool (the `SyncArbiter`'s size).
    pub workers: usize,
    /// Most requests in flight at once, over every fetcher.
    pub in_flight: usize,
    /// Most tasks handed to the pool and not yet answered (default 2 x
    /// in_flight): those in flight and those ready for the next free slot.
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

impl Default for FetchConfig {
    fn default() -> Self {
        FetchFile::default().into()
    }
}

impl FetchConfig {
    /// The in-flight window: `queue`, or twice the requests in flight.
    pub fn window(&self) -> usize {
        self.queue.unwrap_or(self.in_flight.saturating_mul(2))
    }

    /// Most requests one fetcher carries at once: its share of `in_flight`.
    pub fn per_worker(&self) -> usize {
        self.in_flight.div_ceil(self.workers.max(1)).max(1)
    }
}

/// `[fetch]` as written. A config written before `in_flight` existed keeps
/// its meaning: `workers = 256` alone is 256 requests in flight (each of
/// its fetchers carried one). Neither written: a fetcher per core and
/// `DEFAULT_IN_FLIGHT`, never more than a written `queue`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FetchFile {
    workers: Option<usize>,
    in_flight: Option<usize>,
    queue: Option<usize>,
    max_attempts: u32,
    #[serde(with = "humantime_serde")]
    retry_for: Duration,
    #[serde(with = "humantime_serde")]
    backoff_base: Duration,
    #[serde(with = "humantime_serde")]
    backoff_max: Duration,
    #[serde(with = "humantime_serde")]
    task_deadline: Duration,
    #[serde(with = "humantime_serde")]
    drain_timeout: Duration,
}

impl Default for FetchFile {
    fn default() -> Self {
        Self {
            workers: None,
            in_flight: None,
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

impl From<FetchFile> for FetchConfig {
    fn from(f: FetchFile) -> Self {
        let default_in_flight = DEFAULT_IN_FLIGHT.min(f.queue.unwrap_or(usize::MAX).max(1));
        Self {
            workers: f.workers.unwrap_or_else(default_workers),
            in_flight: f.in_flight.or(f.workers).unwrap_or(default_in_flight),
            queue: f.queue,
            max_attempts: f.max_attempts,
            retry_for: f.retry_for,
            backoff_base: f.backoff_base,
            backoff_max: f.backoff_max,
            task_deadline: f.task_deadline,
            drain_timeout: f.drain_timeout,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// Time from one round's start to the next's.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
        }
    }
}

/// `[store]`: the daemon's durable record, an embedded SQLite database of
/// every cell's current value, its history round by round, and the rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The database file; created, with its directory, if missing.
    pub path: PathBuf,
    /// A PostgreSQL database instead of the file
    /// (`postgres://user@host:5432/pricegrid`, libpq's parameters such as
    /// `sslmode=require` allowed): a record several daemons share. Unset:
    /// the SQLite file at `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// While a round runs, its answers are written at least this often (a
    /// crash loses at most this much); every round's end is written too.
    #[serde(with = "humantime_serde")]
    pub flush_every: Duration,
    /// History older than this is compacted; every cell's current value is
    /// kept whatever its age.
    #[serde(with = "humantime_serde")]
    pub keep_for: Duration,
}

impl StoreConfig {
    /// Where the record is: `url` if set, else the file at `path`.
    pub fn location(&self) -> crate::record::Location {
        match &self.url {
            Some(url) => crate::record::Location::parse(url),
            None => crate::record::Location::File(self.path.clone()),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/pricegrid.db"),
            url: None,
            flush_every: Duration::from_secs(5),
            keep_for: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// `[snapshot]`: JSON exports of the aggregate, for people and other tools
/// (the record is the daemon's own store). Off unless `every` is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotConfig {
    pub dir: PathBuf,
    /// Export a snapshot at the end of a round when this long has passed
    /// since the last one (unset: no exports).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub every: Option<Duration>,
    /// How many exported files to keep (the newest is never removed, nor any
    /// file the daemon did not write).
    pub keep: usize,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("data/snapshots"),
            every: None,
            keep: 48,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the query API and metrics while the daemon runs.
    pub enabled: bool,
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// `/v1/prices` and `/v1/aggregate` queries that may run at once; the
    /// rest get a `503` with `Retry-After`.
    pub max_concurrent_queries: usize,
    /// A file holding the bearer token every route but the page itself
    /// requires (`Authorization: Bearer <token>`). Required when `listen`
    /// is not a loopback address: the API then answers other hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Names (or addresses) the API may be reached by besides its listen
    /// address and `localhost`/`127.0.0.1`/`[::1]` on its port, such as the
    /// name a reverse proxy or a LAN uses. A request whose `Host` is none
    /// of them is refused, which defeats DNS rebinding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<HostName>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_concurrent_queries: 4,
            listen: SocketAddr::from(([127, 0, 0, 1], 9180)),
            token_file: None,
            allowed_hosts: Vec::new(),
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

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            progress_every: Duration::from_secs(5),
        }
    }
}
