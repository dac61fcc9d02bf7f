//! `pricegrid serve`: run the built-in price server in the foreground until
//! SIGINT or SIGTERM. Turns the flags into checked `ServerOptions` (fault
//! rates within 0..=1, the data file loaded); the server itself is
//! `crate::server`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::ServeArgs;
use crate::server::{self, Dataset, Faults, MissingStyle, ServerOptions};

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

pub fn serve(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let opts = args.options()?;
    actix_rt::System::new().block_on(server::serve(&opts))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

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
}
