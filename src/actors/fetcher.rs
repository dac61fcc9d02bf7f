//! The `Fetcher`: a `SyncArbiter` worker that carries requests (a classic
//! day, or a page of a real exchange's daily candles) and replies to each
//! with what it produced, one answer per day, and when the source was
//! asked. Nothing more: it does not know how many attempts a task may have,
//! does not talk to the Aggregator, and never retries or waits on its own.
//! The Supervisor alone decides what a reply means.
//!
//! Concurrency is not threads: the pool (`Pool`) is `fetch.workers` threads
//! (a core each by default) that take jobs from one queue, each on its own
//! actix runtime and awc client (awc is not `Send`), taking a job whenever
//! it carries fewer than its share of `fetch.in_flight` and the pool as a
//! whole fewer than `fetch.in_flight` (a semaphore). One queue, not one per
//! fetcher: a job waits for whichever fetcher has room first, so a fetcher
//! that hangs holds only the jobs it has started (whose deadlines run from
//! the moment it took them), never a backlog nobody else may take. What the
//! Supervisor has handed over and not yet had answered stays on its own
//! books: the queue only carries jobs. Every reply goes back on one channel
//! as a `Replied` with the job's dispatch number, those of the requests
//! that ended by one wake-up together (`Replies`): the Supervisor's thread
//! is woken once for them, not once each (at L=0 that halved the wake-ups).
//!
//! A panic in a request is caught and reported in that request's reply;
//! the fetcher then takes no new job, lets the others finish and is rebuilt
//! (fresh runtime and clients) on the same thread. A panic that escapes
//! kills the thread, which is reported through a `Recipient<FetcherLost>`;
//! each job it held is dropped unanswered, which replies `None` (lost), and
//! is sent round again.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::sync::{mpsc, Semaphore, SemaphorePermit};
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
            factory: self.clone(),
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
    /// What rebuilds it after a caught panic.
    factory: FetcherFactory,
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
#[derive(Debug, Clone)]
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
#[derive(Debug, Clone, PartialEq)]
pub enum FetchReply {
    /// The request ran; this is what it produced, and when it was sent.
    Answered {
        result: PageResult,
        asked_at: DateTime<Utc>,
    },
    /// The fetch panicked; the fetcher is rebuilt.
    Panicked(String),
}

/// What became of dispatch `dispatch`: its reply, or `None` when the
/// thread carrying it died (or its pool went away) before it answered.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Replied {
    pub dispatch: u64,
    pub reply: Option<FetchReply>,
}

/// The replies a fetcher had ready at one wake-up, sent as one message:
/// the Supervisor's thread is woken once for them, not once each.
pub type Replies = Vec<Replied>;

/// Where a job's reply goes: answered once (`answer`); dropped unanswered
/// (a dying thread, a queue dropped with jobs in it), it says so.
struct ReplyTo {
    dispatch: u64,
    to: Option<mpsc::UnboundedSender<Replies>>,
}

impl ReplyTo {
    /// The reply to send, which from now on is the caller's to send.
    fn answer(mut self, reply: FetchReply) -> Replied {
        self.to = None;
        Replied {
            dispatch: self.dispatch,
            reply: Some(reply),
        }
    }
}

impl Drop for ReplyTo {
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            // The Supervisor is gone: nobody to tell.
            let _ = to.send(vec![Replied {
                dispatch: self.dispatch,
                reply: None,
            }]);
        }
    }
}

/// A fetch and where its reply goes.
struct Job {
    fetch: Fetch,
    reply: ReplyTo,
}

/// What a pool's fetchers share: the bound on the requests in flight.
struct Shared {
    /// One permit per request in flight, over the whole pool.
    slots: Semaphore,
    /// Most requests one fetcher carries at once.
    per_worker: usize,
}

/// Serve the pool's queue until the pool is dropped (each worker thread
/// takes one such message and keeps it).
#[derive(Message)]
#[rtype(result = "()")]
struct Serve {
    shared: Arc<Shared>,
    jobs: async_channel::Receiver<Job>,
    replies: mpsc::UnboundedSender<Replies>,
}

/// A pool of fetchers: `workers` threads that carry at most `in_flight`
/// requests together, taking jobs from one queue. Dropping it closes the
/// queue; the threads finish the jobs already queued and exit.
pub struct Pool {
    queue: async_channel::Sender<Job>,
    replies: mpsc::UnboundedSender<Replies>,
    _threads: Addr<Fetcher>,
}

impl Pool {
    /// `workers` threads carrying at most `in_flight` requests, at most
    /// `per_worker` each; every reply goes to `replies`.
    pub fn start(
        workers: usize,
        in_flight: usize,
        per_worker: usize,
        factory: FetcherFactory,
        replies: mpsc::UnboundedSender<Replies>,
    ) -> Pool {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            slots: Semaphore::new(in_flight.max(1)),
            per_worker: per_worker.max(1),
        });
        let threads = SyncArbiter::start(workers, move || factory.build());
        let (queue, jobs) = async_channel::unbounded();
        for _ in 0..workers {
            threads.do_send(Serve {
                shared: shared.clone(),
                jobs: jobs.clone(),
                replies: replies.clone(),
            });
        }
        Pool {
            queue,
            replies,
            _threads: threads,
        }
    }

    /// Queues `fetch` as dispatch `dispatch` for the first fetcher with
    /// room; exactly one `Replied` comes back for it.
    pub fn fetch(&self, dispatch: u64, fetch: Fetch) {
        let reply = ReplyTo {
            dispatch,
            to: Some(self.replies.clone()),
        };
        // A send fails only once every thread is gone: the job is dropped,
        // and its `ReplyTo` says it was lost.
        let _ = self.queue.try_send(Job { fetch, reply });
    }
}

/// Why a fetcher stopped serving.
enum Ended {
    /// The pool is gone and its queue empty.
    Closed,
    /// A request panicked: rebuild, then serve again.
    Panicked,
}

impl Handler<Serve> for Fetcher {
    type Result = ();

    fn handle(&mut self, serve: Serve, _: &mut SyncContext<Self>) {
        let Serve {
            shared,
            jobs,
            replies,
        } = serve;
        loop {
            match self.runtime.block_on(self.serve(&shared, &jobs, &replies)) {
                Ended::Closed => return,
                Ended::Panicked => {
                    let fresh = self.factory.build();
                    *self = fresh;
                }
            }
        }
    }
}

impl Fetcher {
    /// Takes jobs while this fetcher and the pool have room, until the
    /// queue closes or a request panics (then it takes no more and lets
    /// the others finish). The replies of the requests that ended by one
    /// wake-up go to `replies` together.
    async fn serve(
        &self,
        shared: &Shared,
        jobs: &async_channel::Receiver<Job>,
        replies: &mpsc::UnboundedSender<Replies>,
    ) -> Ended {
        let mut running = FuturesUnordered::new();
        let mut panicked = false;
        let mut closed = false;
        loop {
            if (closed || panicked) && running.is_empty() {
                return if panicked {
                    Ended::Panicked
                } else {
                    Ended::Closed
                };
            }
            let room = !closed && !panicked && running.len() < shared.per_worker;
            // A slot first, then a job: both waits may be dropped (a
            // request ended first) without losing anything.
            let next = async {
                let slot = shared.slots.acquire().await.ok()?;
                Some((jobs.recv().await.ok()?, slot))
            };
            tokio::select! {
                biased;
                ended = every_ready(&mut running), if !running.is_empty() => {
                    let ended: Vec<(ReplyTo, FetchReply)> = ended;
                    let mut batch = Vec::with_capacity(ended.len());
                    for (reply, answer) in ended {
                        panicked |= matches!(answer, FetchReply::Panicked(_));
                        batch.push(reply.answer(answer));
                    }
                    // The Supervisor is gone: nobody to tell.
                    let _ = replies.send(batch);
                }
                next = next, if room => match next {
                    Some((job, slot)) => {
                        // Its deadline runs from here: taken, it is this
                        // fetcher's alone, even before its first poll.
                        job.fetch.started.mark();
                        running.push(self.run(job, slot));
                    }
                    None => closed = true,
                },
            }
        }
    }

    /// Runs one job; its reply, and where it goes.
    async fn run(&self, job: Job, _slot: SemaphorePermit<'_>) -> (ReplyTo, FetchReply) {
        let Job { fetch, reply } = job;
        #[cfg(feature = "fault-hooks")]
        crate::fault_hooks::before_guard(&fetch.key);
        let asked_at = self.clock.now();
        let started = Instant::now();
        let result = AssertUnwindSafe(async {
            #[cfg(feature = "fault-hooks")]
            crate::fault_hooks::before_fetch(&fetch.key);
            self.request(&fetch).await
        })
        .catch_unwind()
        .await;
        self.metrics
            .fetch_seconds
            .observe(started.elapsed().as_secs_f64());
        let answer = match result {
            Ok(result) => FetchReply::Answered { result, asked_at },
            Err(payload) => FetchReply::Panicked(panic_message(payload.as_ref())),
        };
        (reply, answer)
    }
}

/// Every request of `running` that has ended by now, once at least one
/// has (the next poll would find the rest pending).
async fn every_ready<F: std::future::Future>(running: &mut FuturesUnordered<F>) -> Vec<F::Output> {
    std::future::poll_fn(|cx| {
        let mut ended = Vec::new();
        while let std::task::Poll::Ready(Some(output)) = running.poll_next_unpin(cx) {
            ended.push(output);
        }
        if ended.is_empty() {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(ended)
        }
    })
    .await
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests that ended by one wake-up are taken together; one still
    /// running stays in the set for the next.
    #[actix_rt::test]
    async fn every_request_ended_by_a_wake_up_is_taken_at_once() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let mut running = FuturesUnordered::new();
        for n in 1..=3 {
            running.push(async move { n }.boxed());
        }
        running.push(async move { rx.await.unwrap_or(0) }.boxed());
        let mut first = every_ready(&mut running).await;
        first.sort_unstable();
        assert_eq!(first, vec![1, 2, 3]);
        assert_eq!(running.len(), 1, "the one still running stays");
        tx.send(4).expect("the receiver waits");
        assert_eq!(every_ready(&mut running).await, vec![4]);
        assert!(running.is_empty());
    }

    /// A reply answered is the caller's to send; one dropped unanswered
    /// (its thread died, its queue went away) says it was lost.
    #[test]
    fn a_reply_dropped_unanswered_says_it_was_lost() {
        let (to, mut replies) = mpsc::unbounded_channel();
        let answered = ReplyTo {
            dispatch: 1,
            to: Some(to.clone()),
        }
        .answer(FetchReply::Panicked("boom".into()));
        assert_eq!(answered.dispatch, 1);
        assert!(replies.try_recv().is_err(), "an answer is not sent twice");
        drop(ReplyTo {
            dispatch: 2,
            to: Some(to),
        });
        let lost = replies.try_recv().expect("a dropped reply says so");
        assert_eq!(lost.len(), 1);
        assert_eq!((lost[0].dispatch, lost[0].reply.clone()), (2, None));
    }
}
