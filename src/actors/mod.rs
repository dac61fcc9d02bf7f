//! How the actors are wired; the one place that knows all of them.
//!
//! ```text
//!   Producer --Submit(tasks)--> Supervisor --Fetch--> [Fetcher x workers,
//!      |  ^                     (window, ledger, <-Replies--'  in_flight in all]
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
pub mod messages;
pub mod producer;
pub mod recorder;
pub mod supervisor;

pub use messages::{Reconfigure, SourceRef, Stop};

use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::watch;
use url::Url;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::source::Endpoints;
use crate::store::Store;
use aggregator::{Aggregator, RoundSummary};
use producer::Producer;
use supervisor::Supervisor;

/// The running actors of one pricegrid process.
#[derive(Clone)]
pub struct Pipeline {
    pub producer: Addr<Producer>,
    pub supervisor: Addr<Supervisor>,
    pub aggregator: Addr<Aggregator>,
    /// The Aggregator's store as questions read it, without its mailbox.
    pub store: aggregator::StoreReader,
    /// The latest finished round's summary.
    pub rounds: watch::Receiver<Option<RoundSummary>>,
    /// Scheduled ticks (or requested rounds) that found nothing due and so
    /// started no round, counted.
    pub idle_ticks: watch::Receiver<u64>,
    /// In a fleet: the leases and daemons as the last round's lease saw
    /// them (`None` otherwise, or before the first round).
    pub fleet: watch::Receiver<Option<crate::record::Fleet>>,
    /// The record's writer, when there is a record.
    pub recorder: Option<Addr<recorder::Recorder>>,
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
        let source = SourceRef {
            identity: opts.source_id.unwrap_or_else(|| Arc::from(base.as_str())),
            url: base,
            endpoints: opts.endpoints,
        };
        // Start-up is a reconfiguration from nothing: every actor takes its
        // settings from this one message, as it takes a reload's.
        let fleet_settings = config.fleet.clone();
        let initial = Reconfigure::initial(config, source);
        let shared = opts.record.as_ref().is_some_and(|r| r.shared().is_some());
        let (view, fleet) = watch::channel(None);
        let view = Arc::new(view);
        let fleet_view = shared.then(|| recorder::FleetView {
            view: view.clone(),
            ttl: fleet_settings.lease_ttl,
        });
        let recorder = opts
            .record
            .map(|record| recorder::Recorder::start(record, metrics.clone(), fleet_view));
        let aggregator_actor = match &recorder {
            Some(recorder) => Aggregator::recording(
                &initial,
                recorder.clone(),
                opts.clock.clone(),
                metrics.clone(),
            ),
            None => Aggregator::new(&initial, metrics.clone()),
        }
        .with_store(opts.store)
        .numbered_from(opts.last_round);
        let store = aggregator_actor.reader();
        let aggregator = aggregator_actor.start();
        let supervisor = Supervisor::new(
            &initial,
            opts.clock.clone(),
            aggregator.clone(),
            metrics.clone(),
        )
        .start();
        let (finished, rounds) = watch::channel(None);
        let producer = Producer::new(
            initial,
            opts.clock,
            supervisor.clone(),
            aggregator.clone(),
            finished,
        )
        .numbered_from(opts.last_round);
        let producer = match recorder.clone().filter(|_| shared) {
            Some(recorder) => producer.in_fleet(producer::FleetLink {
                recorder,
                scope: fleet_settings.lease,
                ttl: fleet_settings.lease_ttl,
                view,
            }),
            None => producer,
        };
        let idle_ticks = producer.idle_ticks();
        let producer = producer.start();
        Pipeline {
            producer,
            supervisor,
            aggregator,
            store,
            rounds,
            idle_ticks,
            fleet,
            recorder,
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
