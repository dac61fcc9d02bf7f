//! The daemon's Prometheus metrics: one registry, shared (`Arc<Metrics>`)
//! by the actors that count things. Metric handles are atomics, so any
//! thread may update them; only `GET /metrics` reads them all.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::model::CellState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThrottleLabel {
    pub exchange: String,
    /// `rate_limited` or `banned`.
    pub kind: String,
}

pub struct Metrics {
    registry: Registry,
    /// Answers by which an exchange asked us to slow down, by exchange.
    pub throttled: Family<ThrottleLabel, Counter>,
    /// Rounds finished.
    pub rounds: Counter,
    /// Tasks by final outcome (a task's first result in a round).
    pub tasks: Family<OutcomeLabel, Counter>,
    /// Duration of each price request, by the fetcher that made it.
    pub fetch_seconds: Histogram,
    /// Tasks handed to the fetcher pool and not answered yet.
    pub in_flight: Gauge,
    /// Fetcher actors rebuilt after a panic.
    pub fetcher_restarts: Counter,
    /// Fetcher threads that died.
    pub fetcher_threads_lost: Counter,
    /// Attempts sent round again, by the kind of failure that caused them.
    pub retries: Family<ReasonLabel, Counter>,
    /// Results that arrived after a newer one for the same cell.
    pub stale_results: Counter,
    /// Fetches that outlived fetch.task_deadline.
    pub hung: Counter,
    /// Snapshot files written.
    pub snapshot_writes: Counter,
    /// Writes to the record that failed (the cells stay in memory).
    pub record_errors: Counter,
    /// Duration of each write of changed cells to the record.
    pub record_write_seconds: Histogram,
    /// Config reloads, applied or rejected.
    pub config_reloads: Family<ResultLabel, Counter>,
    /// When the config was last reloaded successfully (Unix seconds).
    pub config_last_reload: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Prices held by the aggregator.
    pub prices_stored: Gauge,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("pricegrid");
        let rounds = Counter::default();
        let tasks = Family::<OutcomeLabel, Counter>::default();
        let fetch_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 18));
        let in_flight = Gauge::default();
        let fetcher_restarts = Counter::default();
        let fetcher_threads_lost = Counter::default();
        let retries = Family::<ReasonLabel, Counter>::default();
        let stale_results = Counter::default();
        let hung = Counter::default();
        let snapshot_writes = Counter::default();
        let record_errors = Counter::default();
        let record_write_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let config_reloads = Family::<ResultLabel, Counter>::default();
        let config_last_reload = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let prices_stored = Gauge::default();
        let throttled = Family::<ThrottleLabel, Counter>::default();
        registry.register(
            "throttled",
            "Answers by which an exchange asked us to slow down (429, 418, its own throttling answer), by exchange",
            throttled.clone(),
        );
        registry.register("rounds", "Rounds finished", rounds.clone());
        registry.register("tasks", "Tasks by final outcome", tasks.clone());
        registry.register(
            "fetch_duration_seconds",
            "Duration of each price request",
            fetch_seconds.clone(),
        );
        registry.register(
            "in_flight",
            "Tasks handed to the fetcher pool, not answered yet",
            in_flight.clone(),
        );
        registry.register(
            "fetcher_restarts",
            "Fetcher actors rebuilt after a panic",
            fetcher_restarts.clone(),
        );
        registry.register(
            "fetcher_threads_lost",
            "Fetcher threads that died",
            fetcher_threads_lost.clone(),
        );
        registry.register(
            "fetch_retries",
            "Attempts sent round again, by kind of failure",
            retries.clone(),
        );
        registry.register(
            "stale_results",
            "Results dropped because a newer one for the same cell was recorded",
            stale_results.clone(),
        );
        registry.register(
            "fetch_hung",
            "Fetches that outlived fetch.task_deadline",
            hung.clone(),
        );
        registry.register(
            "snapshot_writes",
            "Snapshot files written",
            snapshot_writes.clone(),
        );
        registry.register(
            "record_errors",
            "Writes to the record that failed",
            record_errors.clone(),
        );
        registry.register(
            "record_write_duration_seconds",
            "Duration of each write of changed cells to the record",
            record_write_seconds.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads by result (applied or rejected)",
            config_reloads.clone(),
        );
        registry.register(
            "config_last_reload_timestamp_seconds",
            "When the config was last reloaded successfully",
            config_last_reload.clone(),
        );
        registry.register(
            "prices_stored",
            "Prices held by the aggregator",
            prices_stored.clone(),
        );
        Arc::new(Self {
            registry,
            throttled,
            rounds,
            tasks,
            fetch_seconds,
            in_flight,
            fetcher_restarts,
            fetcher_threads_lost,
            retries,
            stale_results,
            hung,
            snapshot_writes,
            record_errors,
            record_write_seconds,
            config_reloads,
            config_last_reload,
            prices_stored,
        })
    }

    pub fn count_task(&self, state: CellState) {
        self.tasks
            .get_or_create(&OutcomeLabel {
                outcome: state.as_str().into(),
            })
            .inc();
    }

    /// One reload, applied or rejected.
    pub fn count_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "rejected" };
        self.config_reloads
            .get_or_create(&ResultLabel {
                result: result.into(),
            })
            .inc();
        if applied {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.config_last_reload.set(now);
        }
    }

    /// One retry caused by a failure of kind `reason` (e.g. "server error (503)").
    pub fn count_retry(&self, reason: &str) {
        self.retries
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// One throttling answer from `exchange`.
    pub fn count_throttle(&self, exchange: &str, banned: bool) {
        let kind = if banned { "banned" } else { "rate_limited" };
        self.throttled
            .get_or_create(&ThrottleLabel {
                exchange: exchange.into(),
                kind: kind.into(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            log::error!("cannot encode metrics: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_names_every_metric_with_its_value() {
        let m = Metrics::new();
        m.rounds.inc();
        m.count_task(CellState::Final);
        m.count_task(CellState::Final);
        m.count_task(CellState::Failed);
        m.count_retry("server error (503)");
        m.count_reload(true);
        m.count_reload(false);
        m.fetch_seconds.observe(0.004);
        m.in_flight.set(7);
        let text = m.encode();
        assert!(text.contains("pricegrid_rounds_total 1"), "{text}");
        assert!(
            text.contains("pricegrid_tasks_total{outcome=\"final\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("pricegrid_tasks_total{outcome=\"failed\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pricegrid_fetch_duration_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("pricegrid_in_flight 7"), "{text}");
        assert!(
            text.contains("pricegrid_fetch_retries_total{reason=\"server error (503)\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pricegrid_config_reloads_total{result=\"applied\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pricegrid_config_reloads_total{result=\"rejected\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("pricegrid_config_last_reload_timestamp_seconds "),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
