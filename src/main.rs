//! The `pricegrid` binary: parse the command line, set up logging, and hand
//! over to the library (`pricegrid::commands::run`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pricegrid::cli::Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,actix_server=warn"),
    )
    .init();
    match pricegrid::commands::run(cli) {
        Ok(code) => code,
        Err(e) => pricegrid::commands::fail(&e),
    }
}
