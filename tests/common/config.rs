//! `TestConfig`: a test's config built from typed values and written with
//! `Config::to_toml`, so that no test formats TOML by hand.
//!
//! Every setter names one setting; `build` and `write` validate with
//! `Config::check` first, and `write` reads the file back, so a test can
//! never run on a config other than the one it describes. Tests whose
//! subject is the text of a file (positions in messages, a broken or
//! half-written file) keep that text as a literal instead.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use pricegrid::config::{Config, Day, ExchangeConfig, OhlcOrder, Selection, SourceUrl};
use pricegrid::model::{Exchange, ExchangeApi};
use pricegrid::server::PriceServer;
use url::Url;

use super::{day, loopback};

/// A day given as `"2020-03-01"` or as a `NaiveDate`.
pub trait IntoDay {
    fn into_day(self) -> NaiveDate;
}

impl IntoDay for &str {
    fn into_day(self) -> NaiveDate {
        day(self)
    }
}

impl IntoDay for NaiveDate {
    fn into_day(self) -> NaiveDate {
        self
    }
}

/// A config under construction; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct TestConfig {
    config: Config,
}

impl From<Config> for TestConfig {
    fn from(config: Config) -> Self {
        TestConfig { config }
    }
}

impl TestConfig {
    /// The defaults of `Config::default()`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The defaults, fetching from the server at `url`.
    pub fn fetching_from(url: &Url) -> Self {
        Self::new().source(url)
    }

    /// A daemon's config: fetching from `url`, snapshots in `snapshots`, the
    /// API on an ephemeral loopback port, a progress line every second.
    pub fn daemon(url: &Url, snapshots: &Path) -> Self {
        Self::fetching_from(url)
            .snapshots(snapshots)
            .api_on_loopback()
            .progress_every(Duration::from_secs(1))
    }

    /// Fetches from the server at `url`.
    pub fn source(mut self, url: &Url) -> Self {
        self.config.source.url = SourceUrl::Remote(url.clone());
        self
    }

    /// Limit for one HTTP request (`source.timeout`).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.source.timeout = timeout;
        self
    }

    pub fn ohlc_order(mut self, order: OhlcOrder) -> Self {
        self.config.source.ohlc_order = order;
        self
    }

    pub fn settle_after(mut self, after: Duration) -> Self {
        self.config.source.settle_after = after;
        self
    }

    /// Delay before each answer of the built-in server (`url = "builtin"`,
    /// the default source).
    pub fn builtin_latency(mut self, latency: Duration) -> Self {
        self.config.source.builtin.latency = latency;
        self
    }

    /// Seed of the built-in server's generated dataset.
    pub fn builtin_seed(mut self, seed: u64) -> Self {
        self.config.source.builtin.seed = seed;
        self
    }

    /// Most requests to one exchange at once.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.source.per_exchange.max_in_flight = Some(n);
        self
    }

    /// Most requests per second to one exchange.
    pub fn requests_per_second(mut self, rate: f64) -> Self {
        self.config.source.per_exchange.requests_per_second = Some(rate);
        self
    }

    /// Exactly these exchanges, e.g. `["kraken", "bitstamp"]` or a slice
    /// of `Exchange`.
    pub fn exchanges<N: Display>(mut self, names: impl IntoIterator<Item = N>) -> Self {
        self.config.universe.exchanges = Selection::List(
            names
                .into_iter()
                .map(|n| n.to_string().parse().expect("an exchange name"))
                .collect(),
        );
        self
    }

    /// Exactly these symbols, e.g. `["btc", "eth"]` or a slice of `Symbol`.
    pub fn symbols<N: Display>(mut self, names: impl IntoIterator<Item = N>) -> Self {
        self.config.universe.symbols = Selection::List(
            names
                .into_iter()
                .map(|n| n.to_string().parse().expect("a symbol name"))
                .collect(),
        );
        self
    }

    /// Whatever exchanges the source lists.
    pub fn every_exchange(mut self) -> Self {
        self.config.universe.exchanges = Selection::All;
        self
    }

    /// Whatever symbols the source lists.
    pub fn every_symbol(mut self) -> Self {
        self.config.universe.symbols = Selection::All;
        self
    }

    /// The fixed window `from..=to` (no rolling window).
    pub fn window(mut self, from: impl IntoDay, to: impl IntoDay) -> Self {
        let u = &mut self.config.universe;
        u.from = Some(Day(from.into_day()));
        u.to = Some(Day(to.into_day()));
        u.last_days = None;
        self
    }

    /// March 2020: 1,023 tasks on the classic universe.
    pub fn march(self) -> Self {
        self.window("2020-03-01", "2020-03-31")
    }

    /// A rolling window of the last `n` days up to today (no `from`/`to`).
    pub fn last_days(mut self, n: u32) -> Self {
        let u = &mut self.config.universe;
        u.from = None;
        u.to = None;
        u.last_days = Some(n);
        self
    }

    /// Most tasks one round may hold (`universe.max_tasks`).
    pub fn max_tasks(mut self, n: u64) -> Self {
        self.config.universe.max_tasks = n;
        self
    }

    /// The universe of issue #17: 100 exchanges x 9,999 symbols from
    /// 2009-01-03 to today (18 years), under `max_tasks =
    /// 9000000000000000000`: far more than any process can hold. Write it
    /// with `unchecked_toml`.
    pub fn absurd_universe(self) -> Self {
        self.exchanges((0..100).map(|i| format!("x{i}")))
            .symbols((0..9_999).map(|i| format!("s{i}")))
            .window("2009-01-03", chrono::Utc::now().date_naive())
            .max_tasks(9_000_000_000_000_000_000)
    }

    /// `workers = n` alone, as a config written before `in_flight`: n
    /// fetchers, n requests in flight.
    pub fn workers(mut self, n: usize) -> Self {
        self.config.fetch.workers = n;
        self.config.fetch.in_flight = n;
        self
    }

    /// Most requests in flight (`fetch.in_flight`), the workers unchanged.
    pub fn in_flight(mut self, n: usize) -> Self {
        self.config.fetch.in_flight = n;
        self
    }

    /// The in-flight window (`fetch.queue`).
    pub fn queue(mut self, n: usize) -> Self {
        self.config.fetch.queue = Some(n);
        self
    }

    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.fetch.max_attempts = n;
        self
    }

    pub fn retry_for(mut self, d: Duration) -> Self {
        self.config.fetch.retry_for = d;
        self
    }

    /// First retry delay and its cap.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.config.fetch.backoff_base = base;
        self.config.fetch.backoff_max = max;
        self
    }

    /// Retries after 10 ms, at most 100 ms apart: a test never waits long
    /// for a retry.
    pub fn quick_backoff(self) -> Self {
        self.backoff(Duration::from_millis(10), Duration::from_millis(100))
    }

    pub fn task_deadline(mut self, d: Duration) -> Self {
        self.config.fetch.task_deadline = d;
        self
    }

    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.config.fetch.drain_timeout = d;
        self
    }

    /// Time from one round's start to the next's (`schedule.interval`).
    pub fn interval(mut self, d: Duration) -> Self {
        self.config.schedule.interval = d;
        self
    }

    /// Where snapshots are written.
    /// Keeps the daemon's files under `dir`: JSON exports in it, and the
    /// record beside it (`<dir>.db`), so no test writes into the repo.
    pub fn snapshots(mut self, dir: &Path) -> Self {
        self.config.snapshot.dir = dir.to_owned();
        self.config.store.path = dir.with_extension("db");
        self
    }

    /// The record at `path`.
    pub fn record(mut self, path: &Path) -> Self {
        self.config.store.path = path.to_owned();
        self
    }

    /// The record in the PostgreSQL database at `url`, written under the
    /// daemon name `name`.
    pub fn record_url(mut self, url: &str, name: &str) -> Self {
        self.config.store.url = Some(url.to_owned());
        self.config.fleet.name = name.to_owned();
        self
    }

    /// How long a fleet lease lasts unless renewed (`fleet.lease_ttl`).
    pub fn lease_ttl(mut self, d: Duration) -> Self {
        self.config.fleet.lease_ttl = d;
        self
    }

    /// How often the record is written while a round runs.
    pub fn flush_every(mut self, d: Duration) -> Self {
        self.config.store.flush_every = d;
        self
    }

    /// Export a JSON snapshot at a round's end this often.
    pub fn snapshot_every(mut self, d: Duration) -> Self {
        self.config.snapshot.every = Some(d);
        self
    }

    /// How many snapshot files are kept.
    pub fn keep(mut self, n: usize) -> Self {
        self.config.snapshot.keep = n;
        self
    }

    /// The API on, on an ephemeral port of 127.0.0.1.
    pub fn api_on_loopback(mut self) -> Self {
        self.config.api.enabled = true;
        self.config.api.listen = loopback();
        self
    }

    /// The API on `listen` (on, whatever it was).
    pub fn api_listen(mut self, listen: std::net::SocketAddr) -> Self {
        self.config.api.enabled = true;
        self.config.api.listen = listen;
        self
    }

    /// Every API route but the page needs the token in `file`.
    pub fn api_token_file(mut self, file: &Path) -> Self {
        self.config.api.token_file = Some(file.to_owned());
        self
    }

    /// Names the API may be reached by besides its own address.
    pub fn api_allowed_hosts<'a>(mut self, hosts: impl IntoIterator<Item = &'a str>) -> Self {
        self.config.api.allowed_hosts = hosts
            .into_iter()
            .map(|h| h.parse().expect("a valid host name"))
            .collect();
        self
    }

    pub fn progress_every(mut self, d: Duration) -> Self {
        self.config.log.progress_every = d;
        self
    }

    /// Exchange `name` asked through `api` at `url` (an `[exchanges.NAME]`
    /// table), its markets discovered, at `rps` requests a second.
    pub fn exchange_api(mut self, name: &str, api: ExchangeApi, url: &Url, rps: f64) -> Self {
        self.config.exchanges.insert(
            name.parse().expect("a valid exchange name"),
            ExchangeConfig {
                api,
                url: Some(SourceUrl::Remote(url.clone())),
                markets: Default::default(),
                quotes: ExchangeConfig::default_quotes(),
                requests_per_second: Some(rps),
                max_in_flight: None,
                ca_file: None,
                user_agent: None,
            },
        );
        self
    }

    /// Exchange `name` (already given a table by `exchange_api`) chooses
    /// its markets, and under `symbols = "all"` its universe, in `quotes`.
    pub fn quotes(mut self, name: &str, quotes: &[&str]) -> Self {
        let name: Exchange = name.parse().expect("a valid exchange name");
        let table = self
            .config
            .exchanges
            .get_mut(&name)
            .expect("exchange_api gave the exchange a table first");
        table.quotes = quotes.iter().map(|q| q.to_string()).collect();
        self
    }

    /// Exchange `name` asked through `api` on the built-in server speaking
    /// it (`url = "builtin"`), its markets discovered.
    pub fn exchange_api_builtin(mut self, name: &str, api: ExchangeApi) -> Self {
        self.config.exchanges.insert(
            name.parse().expect("a valid exchange name"),
            ExchangeConfig {
                api,
                url: Some(SourceUrl::Builtin),
                markets: Default::default(),
                quotes: ExchangeConfig::default_quotes(),
                requests_per_second: None,
                max_in_flight: None,
                ca_file: None,
                user_agent: None,
            },
        );
        self
    }

    /// `exchanges.NAME.markets.SYMBOL = market` (the table must exist):
    /// asked without a market listing.
    pub fn market(mut self, name: &str, symbol: &str, market: &str) -> Self {
        self.config
            .exchanges
            .get_mut(&name.parse().expect("a valid exchange name"))
            .expect("an [exchanges.NAME] table (exchange_api first)")
            .markets
            .insert(symbol.parse().expect("a valid symbol"), market.to_owned());
        self
    }

    /// `quality.peg.COIN = "EXCHANGE:MARKET"`: the market whose daily close
    /// says whether `coin` is worth a dollar that day.
    pub fn peg(mut self, coin: &str, market: &str) -> Self {
        self.config.quality.peg.insert(
            coin.parse().expect("a valid symbol"),
            market.parse().expect("a valid peg market"),
        );
        self
    }

    /// `quality.min_exchanges = n`: constituents a reference close needs.
    pub fn min_exchanges(mut self, n: usize) -> Self {
        self.config.quality.min_exchanges = n;
        self
    }

    /// The config, validated.
    pub fn build(self) -> Config {
        self.checked();
        self.config
    }

    /// Validates the config and writes it to `path` as TOML; returns
    /// `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        let text = self.toml(path);
        std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path.to_owned()
    }

    /// As `write`, the way many editors save: to a new file, renamed over
    /// the old one.
    pub fn save_by_rename(&self, path: &Path) -> PathBuf {
        save_by_rename(path, &self.toml(path));
        path.to_owned()
    }

    fn checked(&self) {
        if let Err(e) = self.config.check() {
            panic!("the test config is invalid: {e}\n{}", self.config.to_toml());
        }
    }

    /// The TOML to write to `path`, once it is known to parse back into
    /// this very config (the file itself is not read back: a daemon may be
    /// watching it). For a test that edits the text or writes it its own
    /// way.
    pub fn toml(&self, path: &Path) -> String {
        self.checked();
        let text = self.config.to_toml();
        let read = Config::parse(&text, path)
            .unwrap_or_else(|e| panic!("the written config does not parse: {e}\n{text}"));
        assert_eq!(
            read, self.config,
            "the config reads back as written:\n{text}"
        );
        text
    }
}

impl TestConfig {
    /// The TOML of a config the test expects pricegrid to refuse: not
    /// validated, not read back.
    pub fn unchecked_toml(&self) -> String {
        self.config.to_toml()
    }
}

/// Writes `text` to `path` the way many editors save: to a new file, then
/// renamed over the old one, so a reader never sees a half-written file.
pub fn save_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("writing {}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("renaming onto {}: {e}", path.display()));
}

/// A config fetching March 2020 (1,023 tasks on the classic universe) from
/// `server` with `workers` fetchers and quick retries.
pub fn march(server: &PriceServer, workers: usize) -> TestConfig {
    TestConfig::fetching_from(&server.url())
        .march()
        .workers(workers)
        .quick_backoff()
}
