//! What each command does, as library functions the binary and the tests
//! both call: resolve the price source (starting the built-in server when
//! the config says "builtin"), start the actors, run a round.
//!
//! Owns process-level concerns (which server, progress display, output
//! files); the actors own everything about fetching.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::actors::aggregator::{GetProgress, RoundSummary, TakeSnapshot};
use crate::actors::producer::{RoundError, RunRound};
use crate::actors::{Pipeline, PipelineOptions};
use crate::clock::Clock;
use crate::config::{Config, SourceUrl};
use crate::server::{self, PriceServer, ServerOptions};
use crate::snapshot::Snapshot;
use crate::source::{ClientLimits, PriceClient, SourceError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot start the built-in price server: {0}")]
    BuiltinServer(#[source] std::io::Error),
    #[error("the price source is unreachable: {0}")]
    Unreachable(#[source] SourceError),
    #[error(transparent)]
    Round(#[from] RoundError),
    #[error("an actor stopped unexpectedly: {0}")]
    Mailbox(#[from] actix::MailboxError),
}

/// A price source ready to fetch from; keeps the built-in server (if any)
/// running for as long as it lives.
pub struct Source {
    pub url: Url,
    /// What every cell fetched from here records as its source: the URL, or
    /// for the built-in server its dataset (its URL changes at each start).
    pub identity: Arc<str>,
    pub builtin: Option<PriceServer>,
}

impl Source {
    /// A server that is already running at `url`.
    pub fn remote(url: Url) -> Source {
        Source {
            identity: Arc::from(url.as_str()),
            url,
            builtin: None,
        }
    }

    /// Starts the built-in server on a loopback ephemeral port if the
    /// config asks for it; otherwise uses the configured URL.
    pub fn start(config: &Config) -> Result<Source, AppError> {
        Self::start_with_clock(config, &Clock::system())
    }

    /// As `start`, with the built-in server publishing prices by `clock`.
    pub fn start_with_clock(config: &Config, clock: &Clock) -> Result<Source, AppError> {
        match &config.source.url {
            SourceUrl::Remote(url) => Ok(Source::remote(url.clone())),
            SourceUrl::Builtin => {
                let mut opts = ServerOptions::new(
                    std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    config.source.builtin.seed,
                );
                opts.latency = config.source.builtin.latency;
                opts.publish_delay = config.source.builtin.publish_delay;
                opts.clock = clock.clone();
                opts.workers = 2;
                let server = server::start(&opts).map_err(AppError::BuiltinServer)?;
                Ok(Source {
                    url: server.url(),
                    identity: Arc::from(format!("builtin:seed={}", config.source.builtin.seed)),
                    builtin: Some(server),
                })
            }
        }
    }

    /// Fails with a clear error when the source does not answer `/exchanges`.
    pub async fn check_reachable(&self, config: &Config) -> Result<(), AppError> {
        let client = PriceClient::new(&self.url, &ClientLimits::from_config(&config.source, 1));
        client.exchanges().await.map_err(AppError::Unreachable)?;
        Ok(())
    }

    pub async fn stop(&self) {
        if let Some(server) = &self.builtin {
            server.stop().await;
        }
    }
}

/// What one `fetch` round produced.
pub struct FetchReport {
    pub summary: RoundSummary,
    pub snapshot: Snapshot,
}

/// One round over the configured universe against `source`, then the map.
/// Must run inside an actix system.
pub async fn fetch_round(
    config: Arc<Config>,
    source: &Source,
    progress: bool,
) -> Result<FetchReport, AppError> {
    source.check_reachable(&config).await?;
    let pipeline = Pipeline::start_with(
        config.clone(),
        source.url.clone(),
        PipelineOptions {
            source_id: Some(source.identity.clone()),
            ..PipelineOptions::default()
        },
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
                "{bar:40} {pos}/{len} done, {per_sec}, eta {eta} {msg}",
            )
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
