//! `SupervisorStats`: the Supervisor's counters as an operator (the API's
//! status, the tests) reads them. Plain values filled in by the actor;
//! nothing here counts or decides anything.

use actix::prelude::*;
use serde::Serialize;

/// Counters an operator (and the tests) can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, MessageResponse)]
pub struct SupervisorStats {
    pub workers: usize,
    pub queued: usize,
    pub in_flight: usize,
    /// Tasks waiting for a retry.
    pub retrying: usize,
    /// Fetcher actors rebuilt after a panic.
    pub restarts: u64,
    /// Worker threads that died.
    pub threads_lost: u64,
    /// Pools started, the first included.
    pub pools_started: u64,
    /// Attempts sent round again.
    pub retries: u64,
    /// Fetches that outlived the task deadline.
    pub hung: u64,
    /// Replies to dispatches already given up on.
    pub stale_replies: u64,
}
