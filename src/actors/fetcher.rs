//! The `Fetcher`: a `SyncArbiter` worker that turns one task into one HTTP
//! request and, when the outcome is final, one `PriceResult` to the
//! Aggregator.
//!
//! Each worker thread owns an actix runtime and an awc client (awc is not
//! `Send`), built by `FetcherFactory` on that thread. A fetcher never retries
//! or waits on its own: it tells the Supervisor, in its reply, whether the
//! task needs another attempt. A panic in a fetch is caught, reported, and
//! the actor rebuilt on the same thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;
use url::Url;

use super::aggregator::{Aggregator, PriceResult};
use super::supervisor::{FetcherLost, Supervisor};
use crate::metrics::Metrics;
use crate::model::{Outcome, Task};
use crate::source::{Answer, ClientLimits, FetchFailure, PriceClient};

/// Everything a worker thread needs to build its fetcher.
#[derive(Clone)]
pub struct FetcherFactory {
    pub base: Url,
    pub limits: ClientLimits,
    pub aggregator: Addr<Aggregator>,
    pub supervisor: Addr<Supervisor>,
    /// The pool this factory builds for; thread losses are reported with it.
    pub generation: u64,
    pub metrics: Arc<Metrics>,
}

impl FetcherFactory {
    /// Builds a fetcher; runs on the worker thread.
    pub fn build(&self) -> Fetcher {
        let runtime = actix_rt::Runtime::new()
            .unwrap_or_else(|e| panic!("cannot build a runtime for a fetcher thread: {e}"));
        Fetcher {
            runtime,
            client: PriceClient::new(&self.base, &self.limits),
            aggregator: self.aggregator.clone(),
            supervisor: self.supervisor.clone(),
            generation: self.generation,
            metrics: self.metrics.clone(),
        }
    }
}

pub struct Fetcher {
    runtime: actix_rt::Runtime,
    client: PriceClient,
    aggregator: Addr<Aggregator>,
    supervisor: Addr<Supervisor>,
    generation: u64,
    metrics: Arc<Metrics>,
}

impl Actor for Fetcher {
    type Context = SyncContext<Self>;
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        // A panic that escaped the handler is taking this thread down: the
        // pool is one worker short from now on.
        if std::thread::panicking() {
            self.supervisor.do_send(FetcherLost {
                generation: self.generation,
            });
        }
    }
}

/// Fetch one task (attempt `task.attempt + 1` of `max_attempts`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "FetchReply")]
pub struct Fetch {
    pub round: u64,
    pub task: Task,
    pub max_attempts: u32,
}

/// How a fetch ended, as far as the Supervisor is concerned.
#[derive(MessageResponse, Debug, Clone, PartialEq)]
pub enum FetchReply {
    /// The final outcome went to the Aggregator.
    Delivered,
    /// A transient failure; another attempt is due.
    Retry(FetchFailure),
    /// The fetch panicked; the actor has been rebuilt.
    Panicked(String),
}

impl Handler<Fetch> for Fetcher {
    type Result = FetchReply;

    fn handle(&mut self, msg: Fetch, ctx: &mut SyncContext<Self>) -> FetchReply {
        let key = &msg.task.key;
        #[cfg(feature = "fault-hooks")]
        crate::fault_hooks::before_guard(key);
        let result = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(feature = "fault-hooks")]
            crate::fault_hooks::before_fetch(key);
            let started = std::time::Instant::now();
            let result = self.runtime.block_on(self.client.price(key));
            self.metrics
                .fetch_seconds
                .observe(started.elapsed().as_secs_f64());
            result
        }));
        let attempts = msg.task.attempt + 1;
        let outcome = match result {
            Err(payload) => {
                // Rebuild the actor (fresh runtime and client) on this thread.
                ctx.stop();
                return FetchReply::Panicked(panic_message(payload.as_ref()));
            }
            Ok(Ok(Answer::Price(p))) => Outcome::Price(p),
            Ok(Ok(Answer::Missing)) => Outcome::Missing,
            Ok(Err(failure)) if failure.retryable && attempts < msg.max_attempts => {
                return FetchReply::Retry(failure);
            }
            Ok(Err(failure)) => Outcome::Failed {
                reason: failure.reason,
                attempts,
            },
        };
        self.aggregator.do_send(PriceResult {
            round: msg.round,
            key: msg.task.key,
            outcome,
        });
        FetchReply::Delivered
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown payload".into());
    format!("fetcher panicked: {text}")
}
