//! `pricegrid run`: the long-lived daemon. Everything it does is in
//! `crate::daemon`; this only hands it the config path, which it watches.

use std::process::ExitCode;

use crate::cli::RunArgs;

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    crate::daemon::run(&args.config)
}
