//! How the actors are wired; the one place that knows all of them.
//!
//! ```text
//!   Producer --Submit(tasks)--> Supervisor --Fetch--> [Fetcher x workers]
//!      |  ^                        (window, ledger,          |
//!      |  '---- room / idle ------  retries, pool)           | PriceResult
//!      '--RoundStarted/Finished, Unsettled-->  Aggregator <--'
//! ```
//!
//! The Producer decides what to fetch, the Supervisor gets each task
//! through the SyncArbiter pool of Fetchers without losing one, and the
//! Aggregator alone owns the exchange -> date -> symbol map.

pub mod aggregator;
pub mod fetcher;
pub mod producer;
pub mod supervisor;

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::watch;
use url::Url;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::source::{ClientLimits, PriceClient};
use crate::store::Store;
use aggregator::{Aggregator, RoundSummary};
use producer::Producer;
use supervisor::{PoolSettings, Supervisor};

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

impl Pipeline {
    /// Starts the actors on the current actix system, fetching from `base`,
    /// with an empty map.
    pub fn start(config: Arc<Config>, base: Url) -> Pipeline {
        Self::resume(config, base, Store::new(), 0)
    }

    /// Starts the actors with the map of a snapshot; rounds are numbered on
    /// from `last_round`.
    pub fn resume(config: Arc<Config>, base: Url, store: Store, last_round: u64) -> Pipeline {
        let metrics = Metrics::new();
        let aggregator = Aggregator::new(config.log.progress_every, metrics.clone())
            .with_store(store)
            .start();
        let supervisor = Supervisor::new(
            PoolSettings::new(base.clone(), &config.source, &config.fetch),
            aggregator.clone(),
            metrics.clone(),
        )
        .start();
        let discovery = PriceClient::new(&base, &ClientLimits::from_config(&config.source, 2));
        let (finished, rounds) = watch::channel(None);
        let producer = Producer::new(
            config,
            discovery,
            supervisor.clone(),
            aggregator.clone(),
            finished,
        )
        .numbered_from(last_round)
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
