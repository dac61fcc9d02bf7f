//! What each subcommand does, one file per subcommand: turn parsed
//! arguments (`crate::cli`) into calls into the library, and results into
//! output and an exit code. `main.rs` calls `run` and, on error, `report`.
//!
//! Owns process-level concerns (which config, what goes to stdout or
//! stderr, exit codes); it never talks to the HTTP API, and the work itself
//! (fetching, querying, serving) lives in the library below.

pub mod check_config;
pub mod coverage;
pub mod export;
pub mod fetch;
pub mod query;
pub mod run;
pub mod serve;
pub mod snapshots;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use crate::cli::{Cli, Command, PointArgs, RecordArgs};
use crate::config::{self, Config};
use crate::query::UnknownName;
use crate::record::{Location, Record};
use crate::render::Format;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Before any thread and any store: how large blocks are allocated.
    crate::heap::configure();
    match cli.command {
        Command::Serve(args) => serve::serve(&args),
        Command::Fetch(args) => fetch::fetch(args),
        Command::Run(args) => run::run(&args),
        Command::CheckConfig(args) => check_config::check_config(&args),
        Command::Query(args) => query::query(args),
        Command::Snapshots(args) => snapshots::snapshots(&args),
        Command::Export(args) => export::export(&args),
        Command::Coverage(args) => coverage::coverage(args),
    }
}

/// What a command that failed with `error` says, and its exit code: a
/// usage error (an unknown name in a filter) is 2, like clap's own; a
/// reader that went away (`query | head`) is no error at all, said nothing
/// and exit 0, as `cat` and `grep` do; anything else is said on one line
/// and exits 1.
pub fn fail(error: &anyhow::Error) -> ExitCode {
    if is_broken_pipe(error) {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {}", report(error));
    if error.downcast_ref::<UnknownName>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// Whether `error` comes from writing to a pipe whose reader has closed it.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        let kind = cause
            .downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                cause
                    .downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            });
        kind == Some(std::io::ErrorKind::BrokenPipe)
    })
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

/// The config a one-shot command works with: the `--config` file if one is
/// given (which must then exist), else `config/pricegrid.toml`, else, when
/// that file does not exist, the built-in defaults, said so in the log.
pub fn load_config(explicit: Option<&Path>) -> anyhow::Result<Config> {
    if let Some(path) = explicit {
        return Ok(Config::load(path)?);
    }
    let path = Path::new(config::DEFAULT_PATH);
    if path.exists() {
        return Ok(Config::load(path)?);
    }
    log::info!(
        "no {} here and no --config given: using the built-in defaults",
        config::DEFAULT_PATH
    );
    Ok(Config::default())
}

impl RecordArgs {
    /// Where the record is: `--db`, or the config's `store.url` or
    /// `store.path` (the config is read only when `--db` is not given).
    pub fn resolve(&self) -> anyhow::Result<Location> {
        match &self.db {
            Some(db) => Ok(Location::parse(db)),
            None => Ok(load_config(self.config.as_deref())?.store.location()),
        }
    }

    /// Opens the record read-only: a daemon may be writing it. A missing
    /// file is said plainly, with what to do.
    pub fn open(&self) -> anyhow::Result<Record> {
        let at = self.resolve()?;
        if let Location::File(path) = &at {
            if !path.exists() {
                anyhow::bail!(
                    "no record at {}: run the daemon first, or pass --db",
                    path.display()
                );
            }
        }
        Ok(Record::open_read_only_at(&at)?)
    }
}

impl PointArgs {
    /// The round asked for: `--round N` (checked by the record when read),
    /// the newest round finished `--at` a time, or `None` for the current
    /// values.
    pub fn round(&self, record: &Record) -> anyhow::Result<Option<u64>> {
        if let Some(round) = self.round {
            return Ok(Some(round));
        }
        let Some(at) = self.at else {
            return Ok(None);
        };
        match record.round_at(at)? {
            Some(round) => Ok(Some(round)),
            None => {
                let first = record
                    .rounds()?
                    .into_iter()
                    .rev()
                    .find_map(|r| r.finished.map(|t| (r.round, t)));
                match first {
                    Some((round, t)) => anyhow::bail!(
                        "{}: no round had finished at {}: the first, round {round}, finished at {}",
                        record.path().display(),
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    ),
                    None => anyhow::bail!(
                        "{}: no round has finished yet, so there is nothing as of {}",
                        record.path().display(),
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                }
            }
        }
    }
}

/// `table` for a person at a terminal, `fallback` for a pipe or a file.
fn default_format(fallback: Format) -> Format {
    if std::io::stdout().is_terminal() {
        Format::Table
    } else {
        fallback
    }
}

/// The cells a command's `--exchange`, `--symbol`, `--from` and `--to`
/// select; `--to` before `--from` is an error naming both.
fn selection(
    exchanges: Vec<crate::model::Exchange>,
    symbols: Vec<crate::model::Symbol>,
    from: Option<crate::config::Day>,
    to: Option<crate::config::Day>,
) -> anyhow::Result<crate::query::Filter> {
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            anyhow::bail!("--to {} is before --from {}", to.0, from.0);
        }
    }
    Ok(crate::query::Filter {
        exchanges: exchanges.into_iter().collect(),
        symbols: symbols.into_iter().collect(),
        from: from.map(|d| d.0),
        to: to.map(|d| d.0),
        ..crate::query::Filter::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
