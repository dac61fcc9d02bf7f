//! `pricegrid check-config`: validate a config file and print the effective
//! config (every default filled in, each duration as the file wrote it), or
//! every problem found, and exit 1.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::CheckConfigArgs;
use crate::config::Config;

pub fn check_config(args: &CheckConfigArgs) -> anyhow::Result<ExitCode> {
    match Config::load(&args.file) {
        Ok(config) => {
            // Read again for its spelling; `load` has just read it whole.
            let written = std::fs::read_to_string(&args.file).unwrap_or_default();
            let mut out = std::io::stdout().lock();
            writeln!(out, "# {}: valid; effective config:", args.file.display())?;
            write!(out, "{}", config.to_toml_as_written(&written))?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
