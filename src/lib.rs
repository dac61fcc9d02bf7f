//! pricegrid collects daily OHLCV crypto prices for a universe of
//! exchanges x symbols x dates, concurrently, into one aggregate.
//!
//! Data flow: the `Producer` expands the configured universe into tasks and
//! feeds them, with backpressure, through the `Supervisor` (bookkeeping in
//! `dispatch`) to a `SyncArbiter` pool of `Fetcher`s; each fetcher makes one
//! HTTP request to the price source (awc) and replies with what it
//! produced; the Supervisor decides each task's outcome and sends one
//! `PriceResult` to the `Aggregator`, which alone owns the exchange -> date
//! -> symbol map of cells (`store`) and writes snapshots;
//! `record` keeps that map durably (an embedded SQLite database: current
//! values, their history round by round, and the rounds themselves). The daemon
//! (`daemon`) reloads its config (`config`) whole, at a round boundary.
//! Questions about the prices (`query`) are answered from a snapshot or
//! the live store alike and written out by `render`, for the command line
//! (`cli` parses it, `commands` acts on it) and the HTTP API (`api`), which
//! also serves a web page over its own routes (`web`). The
//! crate also ships the price server it fetches from (`server`), so all of
//! it runs on a machine with no outside service.
//!
//! The public modules are what the binary, the tests and the benchmarks
//! use; the rest is the crate's own.

pub mod actors;
pub mod api;
pub(crate) mod atomic;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
#[cfg(feature = "fault-hooks")]
pub mod fault_hooks;
pub mod heap;
pub(crate) mod http;
pub mod metrics;
pub mod model;
pub mod origin;
pub mod quality;
pub(crate) mod query;
pub(crate) mod rate;
pub mod record;
pub(crate) mod render;
pub mod server;
pub(crate) mod shutdown;
pub mod snapshot;
pub mod source;
pub mod store;
pub(crate) mod web;
pub mod wire;

/// The export files of a store (`export --format parquet` and `--format
/// csv`), for the export bench.
pub use render::{parquet, render_cells};
