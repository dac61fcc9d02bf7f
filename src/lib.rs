//! pricegrid collects daily OHLCV crypto prices for a universe of
//! exchanges x symbols x dates, concurrently, into one aggregate.
//!
//! Data flow: the `Producer` expands the configured universe into tasks and
//! feeds them, with backpressure, through the `Supervisor` to a
//! `SyncArbiter` pool of `Fetcher`s; each fetcher makes one HTTP request to
//! the price source (awc) and sends a `PriceResult` to the `Aggregator`,
//! which alone owns the exchange -> date -> symbol map and writes snapshots;
//! `record` keeps that map durably (an embedded SQLite database: current
//! values, their history round by round, and the rounds themselves).
//! Questions about the prices (`query`) are answered from a snapshot or
//! the live store alike and written out by `render`, for the command line
//! (`cli` parses it, `commands` acts on it) and the HTTP API (`api`). The
//! crate also ships the price server it fetches from (`server`), so all of
//! it runs on a machine with no outside service.

pub mod actors;
pub mod api;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod dispatch;
#[cfg(feature = "fault-hooks")]
pub mod fault_hooks;
pub(crate) mod http;
pub mod lanes;
pub mod metrics;
pub mod model;
pub mod query;
pub mod record;
pub mod render;
pub mod server;
pub mod shutdown;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod wire;
