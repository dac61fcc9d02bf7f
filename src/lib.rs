//! pricegrid collects daily OHLCV crypto prices for a universe of
//! exchanges x symbols x dates, concurrently, into one aggregate.
//!
//! Data flow: the `Producer` expands the configured universe into tasks and
//! feeds them, with backpressure, through the `Supervisor` to a
//! `SyncArbiter` pool of `Fetcher`s; each fetcher makes one HTTP request to
//! the price source (awc) and sends a `PriceResult` to the `Aggregator`,
//! which alone owns the exchange -> date -> symbol map and writes snapshots.
//! The crate also ships the price server it fetches from (`server`), so all
//! of it runs on a machine with no outside service.

pub mod actors;
pub mod api;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dispatch;
#[cfg(feature = "fault-hooks")]
pub mod fault_hooks;
pub mod lanes;
pub mod metrics;
pub mod model;
pub mod query;
pub mod server;
pub mod shutdown;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod wire;
