//! `pricegrid serve`: run the built-in price server in the foreground until
//! SIGINT or SIGTERM. Turns the flags into checked `ServerOptions` (fault
//! rates within 0..=1, the data file loaded); the server itself is
//! `crate::server`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::ServeArgs;
use crate::model::ExchangeApi;
use crate::server::{self, Dataset, Faults, MissingStyle, ServerOptions, Synthetic};

impl ServeArgs {
    /// The server options these arguments ask for, checked (fault rates
    /// within 0..=1) and with the data file loaded.
    pub fn options(&self) -> anyhow::Result<ServerOptions> {
        let mut opts = match self.synthetic() {
            Some(size) => ServerOptions::synthetic(self.listen, self.seed, self.dialect, size),
            None => ServerOptions::new(self.listen, self.seed),
        };
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
        opts.dialect = self.dialect;
        opts.exchange = self.exchange.clone().or(opts.exchange);
        opts.rate_limit = self.rate_limit;
        opts.ban_after = self.ban_after;
        self.check_dialect(&opts)?;
        Ok(opts)
    }

    /// The synthetic universe asked for, if any of its flags is given.
    fn synthetic(&self) -> Option<Synthetic> {
        if self.exchanges.is_none() && self.markets.is_none() && self.days.is_none() {
            return None;
        }
        Some(Synthetic {
            exchanges: self.exchanges.map(|n| n as usize),
            markets: self.markets.map_or(100, |n| n as usize),
            days: self.days.unwrap_or(365),
        })
    }

    /// The dialect options make sense together: the exchange flags need a
    /// dialect, a ban needs Binance, and the dataset has the exchange to
    /// serve. (The server checks the same at start; here the error names
    /// the flags.)
    fn check_dialect(&self, opts: &ServerOptions) -> anyhow::Result<()> {
        if self.dialect == ExchangeApi::Classic {
            for (flag, given) in [
                ("--exchange", self.exchange.is_some()),
                ("--rate-limit", self.rate_limit.is_some()),
            ] {
                if given {
                    anyhow::bail!("{flag} needs --dialect (binance, kraken, coinbase, bitstamp, okx, bitfinex, poloniex, hitbtc, htx or cexio): the classic server serves every exchange, unlimited");
                }
            }
            return Ok(());
        }
        if self.ban_after.is_some() && self.dialect != ExchangeApi::Binance {
            anyhow::bail!(
                "--ban-after is Binance's (418 after 429s); --dialect {} has no ban",
                self.dialect
            );
        }
        if opts.faults.any() {
            anyhow::bail!(
                "fault injection (--fail-rate, --reset-rate, --stall-rate, --garbage-rate) is the classic server's; --dialect {} has none",
                self.dialect
            );
        }
        server::dialects::served_exchange(self.dialect, self.exchange.as_ref(), &opts.dataset)
            .map_err(|e| anyhow::anyhow!("--dialect {}: {e}", self.dialect))?;
        Ok(())
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

    fn serve_opts(args: &[&str]) -> Result<ServerOptions, String> {
        let cli = Cli::try_parse_from([&["pricegrid", "serve"], args].concat())
            .map_err(|e| e.to_string())?;
        match cli.command {
            Command::Serve(serve) => serve.options().map_err(|e| e.to_string()),
            other => Err(format!("parsed as {other:?}")),
        }
    }

    #[test]
    fn serve_takes_a_dialect_an_exchange_and_a_rate_limit() {
        let classic = serve_opts(&[]).unwrap();
        assert_eq!(
            (classic.dialect, classic.rate_limit),
            (ExchangeApi::Classic, None)
        );
        let kraken = serve_opts(&["--dialect", "kraken", "--rate-limit", "10/s"]).unwrap();
        assert_eq!(
            (kraken.dialect, kraken.rate_limit),
            (ExchangeApi::Kraken, Some(10.0))
        );
        let binance = serve_opts(&[
            "--dialect",
            "binance",
            "--exchange",
            "bitstamp",
            "--rate-limit",
            "0.5/s",
            "--ban-after",
            "3",
        ])
        .unwrap();
        assert_eq!(
            binance.exchange.as_ref().map(|e| e.as_str()),
            Some("bitstamp")
        );
        assert_eq!(
            (binance.rate_limit, binance.ban_after),
            (Some(0.5), Some(3))
        );
    }

    #[test]
    fn every_dialect_serves_its_seed_exchange_without_exchange_and_help_says_which() {
        let help = <Cli as clap::CommandFactory>::command()
            .find_subcommand_mut("serve")
            .expect("serve")
            .render_long_help()
            .to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for (dialect, seed) in server::dialects::SEED_EXCHANGES {
            let opts = serve_opts(&["--dialect", dialect.as_str()])
                .unwrap_or_else(|e| panic!("--dialect {dialect}: {e}"));
            let served = server::dialects::served_exchange(dialect, None, &opts.dataset).unwrap();
            assert_eq!(served.as_str(), seed, "--dialect {dialect}");
            assert!(
                help.contains(&format!("{dialect}: {seed}")),
                "serve --help does not say {dialect} serves {seed}: {help}"
            );
        }
        // A dataset that has an exchange named like the dialect serves it.
        let kraken = serve_opts(&["--dialect", "kraken", "--exchange", "KRAKEN"]).unwrap();
        assert_eq!(kraken.exchange.as_ref().map(|e| e.as_str()), Some("kraken"));
    }

    #[test]
    fn serve_sizes_a_synthetic_universe_from_its_flags() {
        let binance = serve_opts(&[
            "--dialect",
            "binance",
            "--markets",
            "1000",
            "--days",
            "1000",
        ])
        .unwrap();
        let ds = &binance.dataset;
        assert_eq!(
            (ds.exchanges().len(), ds.symbols().len()),
            (1, 1000),
            "one exchange, named like the dialect"
        );
        assert_eq!(
            binance.exchange.as_ref().map(|e| e.as_str()),
            Some("binance")
        );
        let (from, to) = ds.span().unwrap();
        assert_eq!((to - from).num_days() + 1, 1000);
        let classic =
            serve_opts(&["--exchanges", "20", "--symbols", "1000", "--days", "1000"]).unwrap();
        assert_eq!(classic.dialect, ExchangeApi::Classic);
        assert_eq!(
            (
                classic.dataset.exchanges().len(),
                classic.dataset.symbols().len()
            ),
            (20, 1000)
        );
        assert!(
            !classic.dataset.runs_to_today(),
            "a synthetic universe ends"
        );
        for (args, needle) in [
            (&["--markets", "0"][..], "--markets"),
            (&["--exchanges", "3", "--data", "x.csv"], "--data"),
        ] {
            let err = serve_opts(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn bad_dialect_flags_are_errors_naming_the_problem() {
        for (args, needle) in [
            (&["--dialect", "kraken2"][..], "kraken2"),
            (
                &["--dialect", "kraken", "--rate-limit", "fast"],
                "--rate-limit",
            ),
            (&["--dialect", "kraken", "--rate-limit", "0/s"], "0/s"),
            (
                &["--dialect", "binance", "--ban-after", "2"],
                "--rate-limit",
            ),
            (
                &[
                    "--dialect",
                    "kraken",
                    "--rate-limit",
                    "1/s",
                    "--ban-after",
                    "2",
                ],
                "--ban-after",
            ),
            (
                &["--dialect", "kraken", "--exchange", "krakn"],
                "did you mean kraken?",
            ),
            (&["--exchange", "kraken"], "--dialect"),
        ] {
            let err = serve_opts(args).unwrap_err();
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
}
