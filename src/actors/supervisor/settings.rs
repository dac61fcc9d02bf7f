//! `PoolSettings`: the part of the config the Supervisor runs on, taken
//! whole from a `Config` and a `SourceRef`, with each exchange's limits (its
//! own table's, else its API's documented rate, else `[source]`'s). Whether
//! a new fetcher pool is needed is the config diff's to say
//! (`ConfigDiff::pool`), not worked out here. Plain values; no actor, no I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use super::dispatch::{ExchangeLimits, Limits};
use crate::actors::messages::SourceRef;
use crate::config::{Config, PerExchangeConfig};
use crate::model::Exchange;
use crate::source::exchanges;
use crate::source::{ClientLimits, Endpoints};

/// The part of the config the Supervisor runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    pub base: Url,
    /// The identity of the source the pool fetches from, recorded with
    /// every cell.
    pub source_id: Arc<str>,
    /// Exchanges asked at an endpoint of their own.
    pub endpoints: Arc<Endpoints>,
    pub limits: ClientLimits,
    /// Fetcher threads.
    pub workers: usize,
    /// Most requests in flight over the whole pool.
    pub in_flight: usize,
    /// Most requests one fetcher carries at once.
    pub per_worker: usize,
    /// Most tasks handed to the pool and not yet answered.
    pub window: usize,
    pub max_attempts: u32,
    pub retry_for: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub task_deadline: Duration,
    pub settle_after: Duration,
    pub per_exchange: PerExchangeConfig,
    /// The limits of exchanges with an `[exchanges.NAME]` table: its own,
    /// else its API's documented rate.
    pub own_limits: BTreeMap<Exchange, ExchangeLimits>,
}

impl PoolSettings {
    pub fn new(source: SourceRef, config: &Config) -> Self {
        let fetch = &config.fetch;
        let own_limits = config
            .exchanges
            .iter()
            .map(|(name, x)| {
                let documented = exchanges::adapter(x.api).map(|a| a.default_requests_per_second());
                let limits = ExchangeLimits {
                    max_in_flight: x.max_in_flight.or(config.source.per_exchange.max_in_flight),
                    requests_per_second: x
                        .requests_per_second
                        .or(documented)
                        .or(config.source.per_exchange.requests_per_second),
                };
                (name.clone(), limits)
            })
            .collect();
        Self {
            base: source.url,
            source_id: source.identity,
            endpoints: source.endpoints,
            // A fetcher's connections: as many as the requests it carries.
            limits: ClientLimits::from_config(&config.source, fetch.per_worker()),
            workers: fetch.workers,
            in_flight: fetch.in_flight,
            per_worker: fetch.per_worker(),
            window: fetch.window(),
            max_attempts: fetch.max_attempts,
            retry_for: fetch.retry_for,
            backoff_base: fetch.backoff_base,
            backoff_max: fetch.backoff_max,
            task_deadline: fetch.task_deadline,
            settle_after: config.source.settle_after,
            per_exchange: config.source.per_exchange.clone(),
            own_limits,
        }
    }

    /// The dispatch limits these settings give.
    pub(super) fn dispatch_limits(&self) -> Limits {
        Limits {
            window: self.window,
            max_in_flight: self.per_exchange.max_in_flight,
            requests_per_second: self.per_exchange.requests_per_second,
            exchanges: self.own_limits.clone(),
        }
    }
}
