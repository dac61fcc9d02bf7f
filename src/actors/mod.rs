//! How the actors are wired; the one place that knows all of them.
//!
//! ```text
//!   Producer --Submit(tasks)--> Supervisor --Fetch--> [Fetcher x workers]
//!      |  ^                     (window, ledger, <-FetchReply-'
//!      |  '---- room / idle ---  retries, pool)
//!      |                               | PriceResult (one per task)
//!      '--RoundStarted/Finished, Unsettled-->  Aggregator
//! ```
//!
//! The Producer decides what to fetch, the Supervisor gets each task
//! through the SyncArbiter pool of Fetchers without losing one, and the
//! Aggregator alone owns the exchange -> date -> symbol map.

pub mod aggregator;
pub mod fetcher;
pub mod producer;
pub mod recorder;
pub mod supervisor;

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::watch;
use url::Url;

use crate::clock::Clock;
use crate::config::{Config, ConfigDiff};
use crate::metrics::Metrics;
use crate::source::{ClientLimits, Endpoints, PriceClient};
use crate::store::Store;
use aggregator::{Aggregator, RoundSummary};
use producer::Producer;
use supervisor::{PoolSettings, Supervisor};

/// Where prices come from under a config: the URL the fetchers ask and the
/// identity cells record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRef {
    pub url: Url,
    pub identity: Arc<str>,
    /// The exchanges with an endpoint of their own (`[exchanges.NAME]`).
    pub endpoints: Arc<Endpoints>,
}

/// A new config, validated, with what changed: the one message by which
/// config reaches the actors. The daemon sends it to the Producer, which
/// applies it at the next round boundary (at once if no round runs): it
/// forwards it to the Supervisor and the Aggregator, waits until both have
/// applied it, and only then starts another round. A running round
/// finishes under the config it started with. The reply comes once the
/// config is in force (or a newer one has replaced it before that).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Reconfigure {
    pub config: Arc<Config>,
    pub diff: Arc<ConfigDiff>,
    /// Counted by the daemon; 0 is the config the process started with.
    pub version: u64,
    pub source: SourceRef,
}

impl SourceRef {
    /// A server at `url`, known by its URL.
    pub fn remote(url: Url) -> Self {
        Self {
            identity: Arc::from(url.as_str()),
            url,
            endpoints: Arc::default(),
        }
    }

    /// Where `source` sends the fetchers.
    pub fn of(source: &crate::origin::Source) -> Self {
        Self {
            url: source.url.clone(),
            identity: source.identity.clone(),
            endpoints: source.endpoints.clone(),
        }
    }
}

impl Reconfigure {
    /// `new` as config `version`, with what changed since `old`.
    pub fn new(old: &Config, new: Arc<Config>, version: u64, source: SourceRef) -> Self {
        Self {
            diff: Arc::new(ConfigDiff::between(old, &new)),
            config: new,
            version,
            source,
        }
    }
}

/// Stop the actor now (the Supervisor lets its pool go first, so the
/// worker threads exit once they finish what they hold).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Stop;

/// The running actors of one pricegrid process.
#[derive(Clone)]
pub struct Pipeline {
    pub producer: Addr<Producer>,
    pub supervisor: Addr<Supervisor>,
    pub aggregator: Addr<Aggregator>,
    /// The latest finished round's summary.
    pub rounds: watch::Receiver<Option<RoundSummary>>,
    pub metrics: Arc<Metrics>,
}

/// How a pipeline starts, beyond its config and source URL.
#[derive(Debug, Default)]
pub struct PipelineOptions {
    /// The source's identity, recorded with every cell (default: its URL).
    pub source_id: Option<Arc<str>>,
    /// The exchanges with an endpoint of their own (`[exchanges.NAME]`).
    pub endpoints: Arc<Endpoints>,
    /// Where "now" comes from (default: the system clock).
    pub clock: Clock,
    /// The map to start from (a snapshot's), and the last round it holds.
    pub store: Store,
    pub last_round: u64,
    /// The durable record to keep (the daemon); none for `fetch`.
    pub record: Option<crate::record::Record>,
}

impl PipelineOptions {
    /// Fetching from `source`: its identity and its exchanges' endpoints.
    pub fn from_source(source: &crate::origin::Source) -> Self {
        Self {
            source_id: Some(source.identity.clone()),
            endpoints: source.endpoints.clone(),
            ..Self::default()
        }
    }
}

impl Pipeline {
    /// Starts the actors on the current actix system, fetching from `base`,
    /// with an empty map and the system clock.
    pub fn start(config: Arc<Config>, base: Url) -> Pipeline {
        Self::start_with(config, base, PipelineOptions::default())
    }

    /// Starts the actors with the given options.
    pub fn start_with(config: Arc<Config>, base: Url, opts: PipelineOptions) -> Pipeline {
        let metrics = Metrics::new();
        let source_id = opts.source_id.unwrap_or_else(|| Arc::from(base.as_str()));
        let mut aggregator =
            Aggregator::new(config.log.progress_every, metrics.clone()).with_store(opts.store);
        if let Some(record) = opts.record {
            let recorder = recorder::Recorder::start(record, metrics.clone());
            aggregator = aggregator.recording(recorder, opts.clock.clone(), &config, 0);
        }
        let aggregator = aggregator.start();
        let supervisor = Supervisor::new(
            PoolSettings::new(
                SourceRef {
                    url: base.clone(),
                    identity: source_id.clone(),
                    endpoints: opts.endpoints.clone(),
                },
                &config,
            ),
            opts.clock.clone(),
            aggregator.clone(),
            metrics.clone(),
        )
        .start();
        let discovery = PriceClient::new(&base, &ClientLimits::from_config(&config.source, 2));
        let (finished, rounds) = watch::channel(None);
        let producer = Producer::new(
            config,
            discovery,
            SourceRef {
                url: base.clone(),
                identity: source_id,
                endpoints: opts.endpoints,
            },
            opts.clock,
            supervisor.clone(),
            aggregator.clone(),
            finished,
        )
        .numbered_from(opts.last_round)
        .start();
        Pipeline {
            producer,
            supervisor,
            aggregator,
            rounds,
            metrics,
        }
    }

    /// Stops the actors and lets the fetcher threads go.
    pub async fn stop(&self) {
        let _ = self.producer.send(Stop).await;
        let _ = self.supervisor.send(Stop).await;
        let _ = self.aggregator.send(Stop).await;
    }
}
