//! What each subcommand does, one file per subcommand: turn parsed
//! arguments (`crate::cli`) into calls into the library, and results into
//! output and an exit code. `main.rs` calls `run` and, on error, `report`.
//!
//! Owns process-level concerns (which config, what goes to stdout or
//! stderr, exit codes); it never talks to the HTTP API, and the work itself
//! (fetching, querying, serving) lives in the library below.

pub mod check_config;
pub mod fetch;
pub mod query;
pub mod run;
pub mod serve;
pub mod snapshots;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{Cli, Command, SnapshotDirArgs};
use crate::config::{self, Config};
use crate::render::Format;

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve::serve(&args),
        Command::Fetch(args) => fetch::fetch(args),
        Command::Run(args) => run::run(&args),
        Command::CheckConfig(args) => Ok(check_config::check_config(&args)),
        Command::Query(args) => query::query(args),
        Command::Snapshots(args) => snapshots::snapshots(&args),
    }
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

impl SnapshotDirArgs {
    /// The snapshot directory: `--dir`, or the config's `snapshot.dir`
    /// (the config is read only when `--dir` is not given).
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        match &self.dir {
            Some(dir) => Ok(dir.clone()),
            None => Ok(load_config(self.config.as_deref())?.snapshot.dir),
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
