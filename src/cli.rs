//! The command line as clap sees it: the subcommands, their arguments and
//! the parsers of argument values. Nothing here acts on them: what each
//! subcommand does is in `commands`, one file per subcommand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Day, SourceUrl};
use crate::model::{Exchange, ExchangeApi, Symbol};
use crate::query::{names, Field};
use crate::render::Format;
use crate::server::{self, faults};

#[derive(Debug, Parser)]
#[command(
    name = "pricegrid",
    version,
    about = "Collects daily OHLCV crypto prices into one aggregate"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the crypto price server (the API pricegrid fetches from).
    #[command(after_help = "Examples:
  pricegrid serve --listen 127.0.0.1:0
  pricegrid serve --data prices.csv.gz --null-missing --sleep 0.1
  pricegrid serve --fail-rate 0.2 --reset-rate 0.1 --fault-seed 2020
  pricegrid serve --dialect okx --rate-limit 8/s      # OKX's API, the dataset's okex prices
  pricegrid serve --dialect binance --markets 1000 --days 1000   # 1M synthetic cells
  pricegrid serve --exchanges 20 --markets 1000 --days 1000      # 20M, the classic API")]
    Serve(ServeArgs),
    /// Fetch one round over the configured universe, write it, and exit.
    #[command(after_help = "Examples:
  pricegrid fetch --output prices.json
  pricegrid fetch --from 2020-03-01 --to 2020-03-31 --output - | jq .counts
  pricegrid fetch --config config/examples/exchanges-builtin.toml --output -

Exit codes:
  0  every task got an answer (a price, no price, or a rule's rejection)
  1  an error, or the source (or every exchange) cannot be reached
  3  some cells failed; the snapshot is written and says which and why")]
    Fetch(FetchArgs),
    /// Run the daemon: a round now and every schedule.interval.
    #[command(after_help = "Examples:
  pricegrid run                                   # config/pricegrid.toml, else the built-in defaults
  pricegrid run --config config/examples/exchanges.toml
  pricegrid run --listen 127.0.0.1:0              # the API on a free port")]
    Run(RunArgs),
    /// Validate a config file and print the effective config.
    #[command(after_help = "Examples:
  pricegrid check-config
  pricegrid check-config config/examples/exchanges.toml")]
    CheckConfig(CheckConfigArgs),
    /// Read prices from the record, now or as they stood at the end of a
    /// round (no daemon needed), or from a JSON snapshot file.
    #[command(after_help = "Examples:
  pricegrid query --exchange kraken --symbol btc --from 2020-03-01 --to 2020-03-31
  pricegrid query --symbol eth --across --format table
  pricegrid query --symbol btc --reference --round 3 --format json
  pricegrid query --round 3 --field close --format csv > closes.csv
  pricegrid query --snapshot prices.json --final-only")]
    Query(QueryArgs),
    /// List the rounds in the record, with their times and counts.
    #[command(after_help = "Examples:
  pricegrid snapshots --format table
  pricegrid snapshots --db data/pricegrid.db --format json")]
    Snapshots(SnapshotsArgs),
    /// Write the aggregate (now, or at the end of a round) as a JSON
    /// snapshot, as CSV or as Parquet.
    #[command(after_help = "Examples:
  pricegrid export --output prices.json
  pricegrid export --round 3 --format csv --output round3.csv
  pricegrid export --format parquet --output prices.parquet
  pricegrid export --at 2026-11-24T10:15:00Z --format csv --output - | head")]
    Export(ExportArgs),
    /// Per exchange and symbol: the first and last day, cells by state,
    /// the runs of missing, failed and "none" days (gaps), the share final.
    #[command(after_help = "Examples:
  pricegrid coverage --format table
  pricegrid coverage --exchange kraken --symbol btc --from 2020-01-01 --to 2020-12-31
  pricegrid coverage --format json | jq '.[] | select(.gaps != []) | {exchange, symbol, gaps}'")]
    Coverage(CoverageArgs),
}

/// Which record to read: `--db`, or the config's `store.url` or `store.path`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The record to read: an SQLite file, or a PostgreSQL URL
    /// (postgres://user@host/db) [default: store.url or store.path of the
    /// config].
    #[arg(long, conflicts_with = "config")]
    pub db: Option<String>,
    /// Config whose store.path to read [default: config/pricegrid.toml if
    /// it exists, else the built-in defaults].
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Which moment of the record: the end of `--round N`, or of the newest
/// round finished `--at` a time; neither: the current values.
#[derive(Debug, Args)]
pub struct PointArgs {
    /// As the aggregate stood at the end of this round.
    #[arg(long, conflicts_with = "at")]
    pub round: Option<u64>,
    /// As the aggregate stood at the end of the newest round finished at
    /// or before this UTC time (2026-11-24T10:15:00Z).
    #[arg(long, value_parser = parse_time)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub point: PointArgs,
    /// Read this JSON snapshot or export file instead of the record.
    #[arg(long, conflicts_with_all = ["db", "round", "at"])]
    pub snapshot: Option<PathBuf>,
    /// Only these exchanges (repeat, or separate with commas); a name the
    /// record does not hold is an error that lists the known ones.
    #[arg(long, value_delimiter = ',', value_parser = names::exchange)]
    pub exchange: Vec<Exchange>,
    /// Only these symbols (repeat, or separate with commas; any case: BTC is
    /// btc); a name the record does not hold is an error.
    #[arg(long, value_delimiter = ',', value_parser = names::symbol)]
    pub symbol: Vec<Symbol>,
    /// First day, YYYY-MM-DD, inclusive.
    #[arg(long, value_parser = parse_day)]
    pub from: Option<Day>,
    /// Last day, YYYY-MM-DD, inclusive.
    #[arg(long, value_parser = parse_day)]
    pub to: Option<Day>,
    /// Show only this field.
    #[arg(long, value_enum)]
    pub field: Option<Field>,
    /// Output format (default: table on a terminal, csv otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Per (symbol, day) across exchanges: count, min/max/median close,
    /// volume-weighted close, spread %.
    #[arg(long, conflicts_with = "field")]
    pub across: bool,
    /// Per (symbol, day): the reference close (the volume-weighted median
    /// of the final, unflagged USD-class closes), its status, constituents,
    /// the cells left out and why, and its dispersion, as the record holds
    /// it now or at `--round`/`--at` (README: "Reference close").
    #[arg(
        long,
        conflicts_with_all = ["field", "across", "snapshot", "exchange", "final_only", "exclude_flagged"]
    )]
    pub reference: bool,
    /// Leave out provisional cells (prices or "none" fetched before their
    /// day closed plus source.settle_after; they may still change).
    #[arg(long)]
    pub final_only: bool,
    /// Leave out prices with a quality flag (e.g. ohlc_order, zero).
    #[arg(long)]
    pub exclude_flagged: bool,
}

#[derive(Debug, Args)]
pub struct CoverageArgs {
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub point: PointArgs,
    /// Only these exchanges (repeat, or separate with commas); a name the
    /// record does not hold is an error that lists the known ones.
    #[arg(long, value_delimiter = ',', value_parser = names::exchange)]
    pub exchange: Vec<Exchange>,
    /// Only these symbols (repeat, or separate with commas; any case).
    #[arg(long, value_delimiter = ',', value_parser = names::symbol)]
    pub symbol: Vec<Symbol>,
    /// First day of the window, YYYY-MM-DD, inclusive [default: the first
    /// day the record holds a selected cell for].
    #[arg(long, value_parser = parse_day)]
    pub from: Option<Day>,
    /// Last day of the window, inclusive [default: the last day held].
    #[arg(long, value_parser = parse_day)]
    pub to: Option<Day>,
    /// Output format (default: table on a terminal, csv otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub record: RecordArgs,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub record: RecordArgs,
    #[command(flatten)]
    pub point: PointArgs,
    /// `json`: the snapshot file format (what `query --snapshot` and the
    /// daemon's import read); `csv`: one line per cell, every field;
    /// `parquet`: one row per cell, typed columns (DuckDB, pandas, Polars).
    #[arg(long, value_enum, default_value_t = ExportFormat::Json)]
    pub format: ExportFormat,
    /// With --format parquet: the reference closes (one row per
    /// symbol-day, as they stood) instead of the cells.
    #[arg(long)]
    pub reference: bool,
    /// The file to write (atomically); "-" for standard output.
    #[arg(long)]
    pub output: PathBuf,
}

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Json,
    Csv,
    Parquet,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = config::parse_listen)]
    pub listen: SocketAddr,
    /// Seed of the generated dataset.
    #[arg(long, default_value_t = server::DEFAULT_SEED)]
    pub seed: u64,
    /// Delay before each price answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Delay before each price answer, in seconds (the classic server's option).
    #[arg(long, conflicts_with = "latency_ms")]
    pub sleep: Option<f64>,
    /// Serve the prices of this CSV file (exchange,symbol,day,open,high,low,close,volume)
    /// instead of the generated dataset (which runs from 2020-01-01 to
    /// today); days the file does not have, such as those after its last,
    /// have no price.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Serve a synthetic universe of this many exchanges (ex-0001, ...)
    /// instead of the built-in dataset; with a --dialect the first is
    /// served unless --exchange names another. Each candle is computed
    /// from (--seed, exchange, market, day) when asked: nothing is held
    /// per cell. [default with --markets or --days: one, named like the
    /// dialect (ex-0001 for the classic API)]
    #[arg(long, conflicts_with = "data", value_parser = clap::value_parser!(u32).range(1..))]
    pub exchanges: Option<u32>,
    /// A synthetic universe of this many markets (symbols s0001, ...;
    /// S0001USDT on Binance), every day with a price. [default with
    /// --exchanges or --days: 100]
    #[arg(long, visible_alias = "symbols", conflicts_with = "data", value_parser = clap::value_parser!(u32).range(1..))]
    pub markets: Option<u32>,
    /// A synthetic universe over this many days from 2020-01-01.
    /// [default with --exchanges or --markets: 365]
    #[arg(long, conflicts_with = "data", value_parser = clap::value_parser!(u32).range(1..))]
    pub days: Option<u32>,
    /// Answer "no price" with 200 and `null`, as the classic server does, instead of 404.
    #[arg(long)]
    pub null_missing: bool,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Fault injection (price answers only): share answered 500 or 503.
    #[arg(long, default_value_t = 0.0, value_parser = faults::parse_rate)]
    pub fail_rate: f64,
    /// Fault injection: share whose connection is dropped without an answer.
    #[arg(long, default_value_t = 0.0, value_parser = faults::parse_rate)]
    pub reset_rate: f64,
    /// Fault injection: share answered only after --stall-ms.
    #[arg(long, default_value_t = 0.0, value_parser = faults::parse_rate)]
    pub stall_rate: f64,
    /// How long a stalled answer waits, in milliseconds.
    #[arg(long, default_value_t = faults::DEFAULT_STALL.as_millis() as u64)]
    pub stall_ms: u64,
    /// Fault injection: share answered 200 with a broken body.
    #[arg(long, default_value_t = 0.0, value_parser = faults::parse_rate)]
    pub garbage_rate: f64,
    /// Seed of the fault draws (the same seed injects the same faults).
    #[arg(long, default_value_t = 0)]
    pub fault_seed: u64,
    /// Publish prices as a real exchange does: none for future days, a
    /// partial candle for today, and each closed day only this long after
    /// its UTC midnight (e.g. 1h). Default: 0 for the generated dataset
    /// (published as a live exchange does: no future day, today's candle
    /// open), the whole file at once for --data.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub publish_delay: Option<Duration>,
    /// The API to speak: classic (GET /price/...), or a real exchange's
    /// candle API: binance, kraken, coinbase, bitstamp, okx, bitfinex,
    /// poloniex, hitbtc, htx, cexio.
    #[arg(long, default_value = "classic", value_parser = parse_api)]
    pub dialect: ExchangeApi,
    /// With a --dialect: whose prices to serve, a dataset exchange
    /// [default: the one named like the dialect, else the built-in
    /// dataset's binance: hitbtc, kraken: kraken, coinbase: coinbase-pro,
    /// bitstamp: bitstamp, okx: okex, htx: huobi, cexio: cexio].
    #[arg(long, value_parser = names::exchange)]
    pub exchange: Option<Exchange>,
    /// With a --dialect: answer at most this many candle requests a second
    /// (e.g. 10/s; bursts of as many); over it, the exchange's
    /// "too many requests" answer.
    #[arg(long, value_parser = parse_rate_limit)]
    pub rate_limit: Option<f64>,
    /// With --dialect binance and --rate-limit: after this many 429s in a
    /// row, answer 418 (an IP ban) with a Retry-After for a while.
    #[arg(long, requires = "rate_limit", value_parser = clap::value_parser!(u32).range(1..))]
    pub ban_after: Option<u32>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Config file [default: config/pricegrid.toml if it exists, else the
    /// built-in defaults].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Price server URL, or "builtin" (overrides source.url).
    #[arg(long)]
    pub source: Option<SourceUrl>,
    /// Fetcher threads and requests in flight (overrides fetch.workers and
    /// fetch.in_flight, as `workers = K` alone in the file would).
    #[arg(long)]
    pub workers: Option<usize>,
    /// First day, YYYY-MM-DD (overrides universe.from).
    #[arg(long, value_parser = parse_day)]
    pub from: Option<Day>,
    /// Last day, inclusive (overrides universe.to).
    #[arg(long, value_parser = parse_day)]
    pub to: Option<Day>,
    /// Where to write the JSON snapshot; "-" for standard output.
    #[arg(long, default_value = "data/fetch.json")]
    pub output: PathBuf,
    /// Never show the progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Config file, watched and re-read when it changes [default:
    /// config/pricegrid.toml if it exists, else the built-in defaults].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address of the HTTP API and web page, instead of api.listen (also
    /// after a reload); port 0 picks a free one, logged as "API listening
    /// on http://…".
    #[arg(long, value_parser = config::parse_listen)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The file to check.
    #[arg(default_value = config::DEFAULT_PATH)]
    pub file: PathBuf,
}

/// A time as RFC 3339 (`2026-11-24T10:15:00Z`, or with an offset).
fn parse_time(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("{raw:?} is not a time such as 2026-11-24T10:15:00Z"))
}

/// An API name, by `ExchangeApi`'s own parser (the config's).
fn parse_api(raw: &str) -> Result<ExchangeApi, String> {
    raw.parse::<ExchangeApi>()
}

/// A request rate such as `10/s` (or a bare `10`): a number above 0.
pub fn parse_rate_limit(raw: &str) -> Result<f64, String> {
    let number = raw.strip_suffix("/s").unwrap_or(raw).trim();
    match number.parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!(
            "{raw:?} is not a request rate: give requests a second above 0, such as 10/s or 0.5/s"
        )),
    }
}

/// A day as `YYYY-MM-DD`, by `Day`'s own parser (the config's and the API's).
fn parse_day(raw: &str) -> Result<Day, String> {
    raw.parse::<Day>()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn every_subcommand_has_examples_and_every_option_a_description() {
        let cli = Cli::command();
        let mut seen = 0;
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            let after = sub
                .get_after_help()
                .or(sub.get_after_long_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                after.starts_with("Examples:") && after.contains(&format!("pricegrid {name}")),
                "`pricegrid {name} --help` has no example of itself: {after:?}"
            );
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let help = arg
                    .get_help()
                    .or(arg.get_long_help())
                    .map(ToString::to_string)
                    .unwrap_or_default();
                assert!(
                    !help.trim().is_empty(),
                    "`pricegrid {name}`: {id} has no description"
                );
            }
            seen += 1;
        }
        assert!(seen >= 7, "only {seen} subcommands");
    }
}
