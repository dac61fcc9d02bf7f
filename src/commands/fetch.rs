//! `pricegrid fetch`: one round over the configured universe, written as a
//! snapshot file (or to stdout), with a one-line summary. `fetch_round` is
//! the round itself, as a library call the tests drive too; the progress
//! bar shown on a terminal is drawn here.
//!
//! Owns the one-shot process around a round (config overrides, which price
//! source, the output file, the exit code: 0 when every task got an
//! answer, 1 when the source or every exchange cannot be reached, 3 when
//! some cells failed); the actors own everything about fetching.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::actors::aggregator::{GetProgress, RoundSummary, TakeSnapshot};
use crate::actors::producer::{RoundError, RunRound};
use crate::actors::{Pipeline, PipelineOptions};
use crate::cli::FetchArgs;
use crate::config::Config;
use crate::model::CellState;
use crate::origin::{OriginError, Source};
use crate::snapshot::Snapshot;
use crate::store::Store;

/// Why a round did not produce a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The built-in server did not start, or the source did not answer.
    #[error(transparent)]
    Source(#[from] OriginError),
    #[error(transparent)]
    Round(#[from] RoundError),
    #[error("an actor stopped unexpectedly: {0}")]
    Mailbox(#[from] actix::MailboxError),
}

/// What a finished round means to a script: `fetch`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every task got an answer (exit 0).
    Answered,
    /// Every exchange of the round failed because its host cannot be
    /// reached (exit 1).
    Unreachable,
    /// Some cells failed (exit 3).
    SomeFailed,
}

/// A failure reason that says no connection could be made (the client's
/// "cannot reach HOST: ...", within a market listing's reason too).
fn is_unreachable(reason: &str) -> bool {
    reason.contains("cannot reach ")
}

impl Verdict {
    /// The verdict on the cells of a round. An exchange counts as
    /// unreachable when it answered nothing and each of its failed cells
    /// failed for want of a connection; cells rejected without a request
    /// (days out of its reach) say nothing either way.
    pub fn of(store: &Store) -> Verdict {
        // Per exchange: (cells answered, failed cells, failed as unreachable).
        let mut by_exchange: std::collections::BTreeMap<&str, (u64, u64, u64)> = Default::default();
        for (exchange, _, _, cell) in store.iter() {
            let e = by_exchange.entry(exchange.as_str()).or_default();
            match cell.state {
                CellState::Failed => {
                    e.1 += 1;
                    if cell
                        .note
                        .as_ref()
                        .is_some_and(|n| is_unreachable(&n.reason))
                    {
                        e.2 += 1;
                    }
                }
                CellState::Rejected
                    if cell
                        .note
                        .as_ref()
                        .is_some_and(|n| crate::source::exchanges::is_out_of_reach(&n.reason)) => {}
                _ => e.0 += 1,
            }
        }
        if by_exchange.values().all(|(_, failed, _)| *failed == 0) {
            Verdict::Answered
        } else if by_exchange
            .values()
            .all(|(answered, failed, unreachable)| *answered == 0 && unreachable == failed)
        {
            Verdict::Unreachable
        } else {
            Verdict::SomeFailed
        }
    }

    pub fn exit_code(self) -> ExitCode {
        match self {
            Verdict::Answered => ExitCode::SUCCESS,
            Verdict::Unreachable => ExitCode::from(1),
            Verdict::SomeFailed => ExitCode::from(3),
        }
    }
}

/// What one `fetch` round produced.
pub struct FetchReport {
    pub summary: RoundSummary,
    pub snapshot: Snapshot,
}

pub fn fetch(args: FetchArgs) -> anyhow::Result<ExitCode> {
    let mut config = super::load_config(args.config.as_deref())?;
    if let Some(source) = args.source {
        config.source.url = source;
    }
    if let Some(workers) = args.workers {
        // As `workers = K` alone in the file: K fetchers, K in flight.
        config.fetch.workers = workers;
        config.fetch.in_flight = workers;
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
        let report = fetch_round(config.clone(), &source, progress).await;
        source.stop().await;
        report
    });
    let report = match report {
        Err(FetchError::Round(e @ RoundError::NothingDue { .. })) => {
            // Said plainly, and not an error: no round ran, no file written.
            println!("{e}; no round ran and nothing was written");
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
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
        "{c} elapsed {:.2}s{}",
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
    let verdict = Verdict::of(&report.snapshot.prices);
    match verdict {
        Verdict::Answered => {}
        Verdict::Unreachable => {
            eprintln!("error: no exchange could be reached (see the log for each one's cause)")
        }
        Verdict::SomeFailed => eprintln!(
            "{} cells failed; the snapshot holds each one's reason",
            c.failed
        ),
    }
    Ok(verdict.exit_code())
}

/// One round over the configured universe against `source`, then the map.
/// Must run inside an actix system.
pub async fn fetch_round(
    config: Arc<Config>,
    source: &Source,
    progress: bool,
) -> Result<FetchReport, FetchError> {
    source.check_reachable(&config).await?;
    let pipeline = Pipeline::start_with(
        config.clone(),
        source.url.clone(),
        PipelineOptions::from_source(source),
    );
    let bar = progress.then(|| spawn_progress_bar(&pipeline));
    let summary = pipeline.producer.send(RunRound).await?;
    if let Some((done, task)) = bar {
        let _ = done.send(());
        let _ = task.await;
    }
    let summary = summary?;
    let snapshot = pipeline.aggregator.send(TakeSnapshot).await?;
    Ok(FetchReport { summary, snapshot })
}

/// A progress bar like the classic TODO/DONE monitor, fed by polling the
/// Aggregator's counts; cleared when `done` is sent.
fn spawn_progress_bar(
    pipeline: &Pipeline,
) -> (
    tokio::sync::oneshot::Sender<()>,
    actix_rt::task::JoinHandle<()>,
) {
    let aggregator = pipeline.aggregator.clone();
    let (done_tx, mut done) = tokio::sync::oneshot::channel::<()>();
    let task = actix_rt::spawn(async move {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} done, {rate}, eta {eta} {msg}",
            )
            .map(|style| {
                style.with_key(
                    "rate",
                    |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = w.write_str(&rate(state.per_sec()));
                    },
                )
            })
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut tick = actix_rt::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = &mut done => break,
                _ = tick.tick() => {}
            }
            match aggregator.send(GetProgress).await {
                Ok(Some((_, c))) => {
                    bar.set_length(c.tasks);
                    bar.set_position(c.done());
                    bar.set_message(format!(
                        "(provisional {}, none {}, failed {})",
                        c.provisional, c.none, c.failed
                    ));
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
        bar.finish_and_clear();
    });
    (done_tx, task)
}

/// Tasks a second as the progress bar shows it: one decimal (`316.6/s`),
/// not indicatif's four.
fn rate(per_sec: f64) -> String {
    format!("{per_sec:.1}/s")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_progress_rate_has_one_decimal() {
        assert_eq!(super::rate(316.5621), "316.6/s");
        assert_eq!(super::rate(0.0), "0.0/s");
    }
}
