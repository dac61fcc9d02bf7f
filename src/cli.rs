//! The command line: clap definitions of the subcommands and what each one
//! prints. The work itself lives in `app` and below; this module only turns
//! arguments into calls and results into output and exit codes.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::app::{self, Source};
use crate::config::{self, Config, Day, SourceUrl};
use crate::model::{Exchange, Symbol};
use crate::query::{self, Field, Filter, Format};
use crate::server::{self, faults, Dataset, Faults, MissingStyle, ServerOptions};
use crate::snapshot::{self, Snapshot};

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
    Serve(ServeArgs),
    /// Fetch one round over the configured universe, write it, and exit.
    Fetch(FetchArgs),
    /// Run the daemon: a round now and every schedule.interval.
    Run(RunArgs),
    /// Validate a config file and print the effective config.
    CheckConfig(CheckConfigArgs),
    /// Read prices from a logged snapshot (no daemon needed).
    Query(QueryArgs),
    /// List the logged snapshots.
    Snapshots(SnapshotsArgs),
}

/// Where the snapshots are: `--dir`, or the config's `snapshot.dir`.
#[derive(Debug, Args)]
pub struct SnapshotDirArgs {
    /// Snapshot directory (default: snapshot.dir of the config).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Config whose snapshot.dir to use.
    #[arg(long, default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
}

impl SnapshotDirArgs {
    fn resolve(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.dir {
            return Ok(dir.clone());
        }
        if !self.config.exists() && self.config.as_os_str() == config::DEFAULT_PATH {
            return Ok(config::SnapshotConfig::default().dir);
        }
        Ok(Config::load(&self.config)?.snapshot.dir)
    }
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub dir: SnapshotDirArgs,
    /// Read this snapshot file (default: the newest in the directory).
    #[arg(long, conflicts_with = "at")]
    pub snapshot: Option<PathBuf>,
    /// The newest snapshot taken at or before this UTC time
    /// (2026-11-24T10:15:00Z, or a snapshot name's 2026-11-24T10-15-00Z).
    #[arg(long, value_parser = parse_time)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Only these exchanges (repeat, or separate with commas).
    #[arg(long, value_delimiter = ',')]
    pub exchange: Vec<Exchange>,
    /// Only these symbols (repeat, or separate with commas).
    #[arg(long, value_delimiter = ',')]
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
    /// Leave out provisional cells (prices or "none" fetched before their
    /// day closed plus source.settle_after; they may still change).
    #[arg(long)]
    pub final_only: bool,
    /// Leave out prices with a quality flag (e.g. ohlc_order, zero).
    #[arg(long)]
    pub exclude_flagged: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub dir: SnapshotDirArgs,
    /// Output format (default: table on a terminal, json otherwise).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
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
    /// Serve the prices of this CSV file (exchange,symbol,day,open,high,low,close,volume).
    #[arg(long)]
    pub data: Option<PathBuf>,
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
    /// its UTC midnight (e.g. 1h). Default: serve the whole dataset at once.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub publish_delay: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[arg(long, default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Price server URL, or "builtin" (overrides source.url).
    #[arg(long)]
    pub source: Option<SourceUrl>,
    /// Fetcher threads (overrides fetch.workers).
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
    #[arg(long, default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The file to check.
    #[arg(default_value = config::DEFAULT_PATH)]
    pub file: PathBuf,
}

fn parse_time(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    crate::snapshot::parse_file_name(&format!("{raw}.json")).ok_or_else(|| {
        format!("{raw:?} is not a UTC time such as 2026-11-24T10:15:00Z or 2026-11-24T10-15-00Z")
    })
}

fn parse_day(raw: &str) -> Result<Day, String> {
    chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map(Day)
        .map_err(|e| format!("{raw:?} is not a date YYYY-MM-DD: {e}"))
}

/// An error and its causes on one line, each cause once: our error types
/// already quote their cause in their message, so a cause whose text is
/// already there is not repeated.
pub fn report(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Fetch(args) => fetch(args),
        Command::Run(args) => crate::daemon::run(&args.config),
        Command::CheckConfig(args) => Ok(check_config(&args)),
        Command::Query(args) => query(args),
        Command::Snapshots(args) => snapshots(args),
    }
}

fn default_format(fallback: Format) -> Format {
    if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        fallback
    }
}

fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    if let (Some(from), Some(to)) = (args.from, args.to) {
        if from > to {
            anyhow::bail!("--to {} is before --from {}", to.0, from.0);
        }
    }
    let path = match &args.snapshot {
        Some(path) => path.clone(),
        None => {
            let dir = args.dir.resolve()?;
            let found = match args.at {
                Some(t) => snapshot::at_or_before(&dir, t),
                None => snapshot::list(&dir).map(|l| l.into_iter().last()),
            }
            .with_context(|| format!("reading the snapshot directory {}", dir.display()))?;
            match (found, args.at) {
                (Some(f), _) => f.path,
                (None, Some(t)) => {
                    anyhow::bail!("no snapshot in {} at or before {t}", dir.display())
                }
                (None, None) => anyhow::bail!(
                    "no snapshot in {} (the daemon writes them to snapshot.dir)",
                    dir.display()
                ),
            }
        }
    };
    let snap = Snapshot::load(&path)?;
    let filter = Filter {
        exchanges: args.exchange,
        symbols: args.symbol,
        from: args.from.map(|d| d.0),
        to: args.to.map(|d| d.0),
        final_only: args.final_only,
        exclude_flagged: args.exclude_flagged,
    };
    let rows = query::rows(&snap.prices, &filter);
    let format = args.format.unwrap_or_else(|| default_format(Format::Csv));
    let text = if args.across {
        query::render_across(&query::across(&rows), format)
    } else {
        query::render_rows(&rows, args.field, format)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn snapshots(args: SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.resolve()?;
    let listed = crate::api::listing(&dir).with_context(|| format!("reading {}", dir.display()))?;
    let text = match args.format.unwrap_or_else(|| default_format(Format::Json)) {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&listed)?),
        format => {
            let header = [
                "time",
                "round",
                "config",
                "tasks",
                "final",
                "provisional",
                "none",
                "failed",
                "rejected",
                "bytes",
                "file",
            ];
            let rows: Vec<Vec<String>> = listed
                .iter()
                .map(|l| {
                    let mut row = vec![l.file.time.format("%Y-%m-%dT%H:%M:%SZ").to_string()];
                    match &l.header {
                        Some(h) => row.extend([
                            h.round.to_string(),
                            h.config_version.to_string(),
                            h.counts.tasks.to_string(),
                            h.counts.finals.to_string(),
                            h.counts.provisional.to_string(),
                            h.counts.none.to_string(),
                            h.counts.failed.to_string(),
                            h.counts.rejected.to_string(),
                        ]),
                        None => row.extend(std::iter::repeat_n("?".to_owned(), 8)),
                    }
                    row.push(l.file.bytes.to_string());
                    row.push(match &l.error {
                        Some(e) => format!("{} (unreadable: {e})", l.file.path.display()),
                        None => l.file.path.display().to_string(),
                    });
                    row
                })
                .collect();
            if format == Format::Csv {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(header)?;
                for r in &rows {
                    w.write_record(r)?;
                }
                String::from_utf8(w.into_inner()?)?
            } else {
                let numeric = [
                    false, true, true, true, true, true, true, true, true, true, false,
                ];
                query::table_text(&header, &numeric, &rows)
            }
        }
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

impl ServeArgs {
    /// The server options these arguments ask for, checked (fault rates
    /// within 0..=1) and with the data file loaded.
    pub fn options(&self) -> anyhow::Result<ServerOptions> {
        let mut opts = ServerOptions::new(self.listen, self.seed);
        opts.latency = match self.sleep {
            Some(secs) => Duration::try_from_secs_f64(secs)
                .map_err(|e| anyhow::anyhow!("--sleep {secs}: {e}"))?,
            None => Duration::from_millis(self.latency_ms),
        };
        if let Some(path) = &self.data {
            opts.dataset = Arc::new(Dataset::from_csv(path)?);
        }
        if self.null_missing {
            opts.missing = MissingStyle::Null;
        }
        opts.workers = self.workers;
        opts.faults = Faults {
            fail_rate: self.fail_rate,
            reset_rate: self.reset_rate,
            stall_rate: self.stall_rate,
            stall: Duration::from_millis(self.stall_ms),
            garbage_rate: self.garbage_rate,
            seed: self.fault_seed,
        };
        opts.faults.check()?;
        opts.publish_delay = self.publish_delay;
        Ok(opts)
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let opts = args.options()?;
    actix_rt::System::new().block_on(server::serve(&opts))?;
    Ok(ExitCode::SUCCESS)
}

fn fetch(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(&args.config)?;
    if let Some(source) = args.source {
        config.source.url = source;
    }
    if let Some(workers) = args.workers {
        config.fetch.workers = workers;
    }
    if args.from.is_some() || args.to.is_some() {
        config.universe.last_days = None;
        config.universe.from = args.from.or(config.universe.from);
        config.universe.to = args.to.or(config.universe.to);
    }
    config.check().map_err(|e| {
        anyhow::anyhow!("{e}").context("the command-line overrides make the config invalid")
    })?;
    let config = Arc::new(config);
    let progress = !args.no_progress && std::io::stderr().is_terminal();
    let report = actix_rt::System::new().block_on(async {
        let source = Source::start(&config)?;
        let report = app::fetch_round(config.clone(), &source, progress).await;
        source.stop().await;
        report
    })?;
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout {
        let stdout = std::io::stdout().lock();
        let mut w = std::io::BufWriter::new(stdout);
        report.snapshot.write_to(&mut w)?;
        writeln!(w)?;
    } else {
        report
            .snapshot
            .write_atomic(&args.output)
            .with_context(|| format!("writing {}", args.output.display()))?;
    }
    let c = report.summary.counts;
    let line = format!(
        "tasks {} final {} provisional {} none {} failed {} rejected {} elapsed {:.2}s{}",
        c.tasks,
        c.finals,
        c.provisional,
        c.none,
        c.failed,
        c.rejected,
        report.summary.elapsed.as_secs_f64(),
        if to_stdout {
            String::new()
        } else {
            format!(" -> {}", args.output.display())
        }
    );
    if to_stdout {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_config(args: &CheckConfigArgs) -> ExitCode {
    match Config::load(&args.file) {
        Ok(config) => {
            println!("# {}: valid; effective config:", args.file.display());
            print!("{}", config.to_toml());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_publish_delay_takes_a_human_duration() {
        let opts = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["pricegrid", "serve"], args].concat())
                .map_err(|e| e.to_string())?;
            match cli.command {
                Command::Serve(serve) => serve.options().map_err(|e| e.to_string()),
                other => Err(format!("parsed as {other:?}")),
            }
        };
        assert_eq!(opts(&[]).unwrap().publish_delay, None);
        assert_eq!(
            opts(&["--publish-delay", "1h 30m"]).unwrap().publish_delay,
            Some(Duration::from_secs(5400))
        );
        let err = opts(&["--publish-delay", "soon"]).unwrap_err();
        assert!(err.contains("--publish-delay"), "{err}");
    }

    #[test]
    fn a_report_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(crate::config::ConfigError::Read {
            path: "c.toml".into(),
            source: io,
        })
        .context("loading the config");
        assert_eq!(
            report(&err),
            "loading the config: c.toml: cannot read the config: no such file"
        );
    }
}
