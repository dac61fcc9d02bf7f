//! `pricegrid check-config`: validate a config file and print the effective
//! config (every default filled in), or every problem found, and exit 1.

use std::process::ExitCode;

use crate::cli::CheckConfigArgs;
use crate::config::Config;

pub fn check_config(args: &CheckConfigArgs) -> ExitCode {
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
