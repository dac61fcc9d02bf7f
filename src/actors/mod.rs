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
use crate::source::{ClientLimits, PriceClient};
use aggregator::{Aggregator, RoundSummary};
use producer::Producer;
use supervisor::{PoolSettings, Supervisor};

/// The running actors of one pricegrid process.
#[derive(Clone)]
pub struct Pipeline {
    pub producer: Addr<Producer>,
    pub supervisor: Addr<Supervisor>,
    pub aggregator: Addr<Aggregator>,
    /// The latest finished round's summary.
    pub rounds: watch::Receiver<Option<RoundSummary>>,
}

impl Pipeline {
    /// Starts the actors on the current actix system, fetching from `base`.
    pub fn start(config: Arc<Config>, base: Url) -> Pipeline {
        let aggregator = Aggregator::new(config.log.progress_every).start();
        let supervisor = Supervisor::new(
            PoolSettings::new(base.clone(), &config.source, &config.fetch),
            aggregator.clone(),
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
        .start();
        Pipeline {
            producer,
            supervisor,
            aggregator,
            rounds,
        }
    }
}
