//! The `Fetcher`: a `SyncArbiter` worker that turns one dispatch into one
//! HTTP request (a classic day, or a page of a real exchange's daily
//! candles) and replies with what that request produced, one answer per
//! day, and when the source was asked. Nothing more: it does not know how many attempts a task
//! may have, does not talk to the Aggregator, and never retries or waits on
//! its own. The Supervisor alone decides what the reply means.
//!
//! Each worker thread owns an actix runtime and an awc client (awc is not
//! `Send`), built by `FetcherFactory` on that thread. A panic in a fetch is
//! caught, reported in the reply, and the actor rebuilt on the same thread;
//! a panic that escapes kills the thread, which is reported through a
//! `Recipient<FetcherLost>`.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use url::Url;

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::model::{Exchange, Market, TaskKey};
use crate::source::exchanges::{self, PageResult};
use crate::source::{ClientLimits, Endpoints, FetchFailure, PriceClient};

/// When a fetcher started on a dispatch; set once by the fetcher, read by
/// the deadline sweep (a deadline counts from here, not from when the
/// dispatch was queued for a worker).
#[derive(Debug, Clone, Default)]
pub struct Started(std::sync::Arc<std::sync::OnceLock<Instant>>);

impl Started {
    pub fn mark(&self) {
        let _ = self.0.set(Instant::now());
    }

    pub fn at(&self) -> Option<Instant> {
        self.0.get().copied()
    }
}

/// A worker thread of pool `generation` died.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FetcherLost {
    pub generation: u64,
}

/// Everything a worker thread needs to build its fetcher.
#[derive(Clone)]
pub struct FetcherFactory {
    pub base: Url,
    pub limits: ClientLimits,
    /// Exchanges asked at an endpoint of their own.
    pub endpoints: Arc<Endpoints>,
    pub clock: Clock,
    /// Told when a worker thread dies.
    pub lost: Recipient<FetcherLost>,
    /// The pool this factory builds for; thread losses are reported with it.
    pub generation: u64,
    pub metrics: Arc<Metrics>,
}

impl FetcherFactory {
    /// Builds a fetcher; runs on the worker thread.
    pub fn build(&self) -> Fetcher {
        let runtime = actix_rt::Runtime::new()
            .unwrap_or_else(|e| panic!("cannot build a runtime for a fetcher thread: {e}"));
        let clients = self
            .endpoints
            .iter()
            .map(|(exchange, e)| {
                let limits = self.limits.clone().with_user_agent(e.user_agent.as_ref());
                let client = PriceClient::with_ca_files(&e.url, &limits, &e.ca_files)
                    .unwrap_or_else(|err| {
                        // Checked when the source started; a CA file changed since.
                        log::error!(
                            "exchanges.{exchange}: {err}; trusting the built-in roots only"
                        );
                        PriceClient::new(&e.url, &limits)
                    });
                (exchange.clone(), client)
            })
            .collect();
        Fetcher {
            runtime,
            client: PriceClient::new(&self.base, &self.limits),
            clients,
            clock: self.clock.clone(),
            lost: self.lost.clone(),
            generation: self.generation,
            metrics: self.metrics.clone(),
        }
    }
}

pub struct Fetcher {
    runtime: actix_rt::Runtime,
    /// The `[source]` server.
    client: PriceClient,
    /// Exchanges with an endpoint of their own.
    clients: HashMap<Exchange, PriceClient>,
    clock: Clock,
    lost: Recipient<FetcherLost>,
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
            self.lost.do_send(FetcherLost {
                generation: self.generation,
            });
        }
    }
}

/// Fetch one key (`span` 1), or a page of `span` days from `key.day`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "FetchReply")]
pub struct Fetch {
    pub key: TaskKey,
    pub span: u32,
    /// The exchange's own API and market; `None`: ask `[source]`.
    pub market: Option<Arc<Market>>,
    pub started: Started,
}

impl Fetch {
    fn days(&self) -> crate::model::DayRange {
        crate::model::Task {
            key: self.key.clone(),
            span: self.span,
            attempt: 0,
            market: None,
        }
        .days()
    }
}

/// What one fetch produced.
#[derive(MessageResponse, Debug, Clone, PartialEq)]
pub enum FetchReply {
    /// The request ran; this is what it produced, and when it was sent.
    Answered {
        result: PageResult,
        asked_at: DateTime<Utc>,
    },
    /// The fetch panicked; the actor has been rebuilt.
    Panicked(String),
}

impl Handler<Fetch> for Fetcher {
    type Result = FetchReply;

    fn handle(&mut self, msg: Fetch, ctx: &mut SyncContext<Self>) -> FetchReply {
        msg.started.mark();
        #[cfg(feature = "fault-hooks")]
        crate::fault_hooks::before_guard(&msg.key);
        let asked_at = self.clock.now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            #[cfg(feature = "fault-hooks")]
            crate::fault_hooks::before_fetch(&msg.key);
            let started = Instant::now();
            let result = self.runtime.block_on(self.request(&msg));
            self.metrics
                .fetch_seconds
                .observe(started.elapsed().as_secs_f64());
            result
        }));
        match result {
            Ok(result) => FetchReply::Answered { result, asked_at },
            Err(payload) => {
                // Rebuild the actor (fresh runtime and client) on this thread.
                ctx.stop();
                FetchReply::Panicked(panic_message(payload.as_ref()))
            }
        }
    }
}

impl Fetcher {
    /// The one request `msg` asks for.
    async fn request(&self, msg: &Fetch) -> PageResult {
        let Some(market) = &msg.market else {
            return self.client.price_page(&msg.key).await;
        };
        let Some(client) = self.clients.get(&msg.key.exchange) else {
            return Err(FetchFailure::permanent(format!(
                "no endpoint for exchange {} in this fetcher pool",
                msg.key.exchange
            )));
        };
        match exchanges::adapter(market.api) {
            None => client.price_page(&msg.key).await,
            Some(api) => client.candles(api, &market.name, msg.days()).await,
        }
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
