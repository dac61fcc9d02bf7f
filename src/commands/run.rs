//! `pricegrid run`: the long-lived daemon. Everything it does is in
//! `crate::daemon`; this only picks its config (the `--config` file, else
//! `config/pricegrid.toml`, else the built-in defaults, as `fetch` and
//! `query` do) and the command line's overrides.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::RunArgs;
use crate::config;
use crate::daemon::Overrides;

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(args.config.as_deref())?;
    let path = args
        .config
        .as_deref()
        .unwrap_or(Path::new(config::DEFAULT_PATH));
    let overrides = Overrides {
        api_listen: args.listen,
    };
    crate::daemon::run(path, config, overrides)
}
