//! The `Producer`: decides what to fetch and when.
//!
//! It runs rounds on request (`fetch`) or on `schedule.interval` (the
//! daemon), never two at once. For each round it turns the configured
//! universe (discovering exchanges and symbols from the source, and an
//! exchange's symbols from its own market listing, where the config says
//! "all") into a round's exchanges, symbols and days, asks the Aggregator
//! which of those keys are not settled (its index answers at the cost of
//! the pairs and the keys due, not of the cells held), and when none is
//! due starts no round: the tick ends there, unrecorded, and the next is
//! scheduled as usual (`RoundError::NothingDue`). It turns the due keys
//! into tasks (a day each, or pages of days for an exchange with its own
//! API: where each is asked and how it is cut is `markets.rs`), and feeds
//! them to the
//! Supervisor in window-sized chunks, waiting for room before each (the
//! backpressure). It never fetches a price and never touches the map.
//! Config reaches it, and through it the Supervisor and the Aggregator, as
//! one `Reconfigure` (version 0 at start). (A little over 500 lines: the
//! actor and the messages of its mailbox stay together.)

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::NaiveDate;
use tokio::sync::{oneshot, watch};

use super::aggregator::{
    Aggregator, NextRound, RoundFinished, RoundStarted, RoundSummary, Unsettled,
};
use super::messages::{Reconfigure, SourceRef, Stop};
use super::supervisor::{Submit, Supervisor, WaitIdle};
use crate::clock::Clock;
use crate::config::{Config, ConfigDiff, DayRange, Selection, TooLarge, UniverseSize};
use crate::model::{Exchange, Symbol, Task, TaskKey};
use crate::source::{ClientLimits, Endpoints, PriceClient, SourceError};
pub use markets::Listings;
use markets::{listed_universe, resolve_markets, same_resolution, Resolved};
pub use markets::{plan, Markets};

mod fleet;
mod markets;

pub use fleet::FleetLink;

/// Why a round could not run.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("universe discovery failed: {0}")]
    Discovery(#[from] SourceError),
    #[error("an actor stopped during the round: {0}")]
    Mailbox(#[from] MailboxError),
    #[error("round {0} is still running")]
    Busy(u64),
    #[error("the producer is stopping")]
    Stopping,
    #[error("the aggregator has no record of round {0}")]
    Untracked(u64),
    #[error("the universe is too large: {0}")]
    TooLarge(#[from] TooLarge),
    #[error("cannot lease the round's lanes: {0}")]
    Lease(#[from] crate::record::RecordError),
    /// Not a failure: every cell of the universe is settled, so no round
    /// was started (none is recorded, and its number is not used).
    #[error("nothing is due: {}", nothing_due(*keys))]
    NothingDue {
        keys: u128,
        /// The config the tick judged the universe under.
        config_version: u64,
    },
}

/// Why a universe of `keys` cells has nothing due, for people.
fn nothing_due(keys: u128) -> String {
    if keys == 0 {
        "the universe has no cell (no exchange, symbol or day in it)".to_owned()
    } else {
        format!("all {keys} cells of the universe are settled")
    }
}

/// The exchanges, symbols and days one round covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Universe {
    pub exchanges: Vec<Exchange>,
    /// The symbols of every exchange not in `listed`.
    pub symbols: Vec<Symbol>,
    /// Under `universe.symbols = "all"`, the symbols of each exchange with
    /// an API of its own: every base asset its market listing has in one of
    /// its `quotes` (or the symbols of its `markets`, when it names them).
    pub listed: BTreeMap<Exchange, Vec<Symbol>>,
    pub days: DayRange,
}

impl Universe {
    /// Resolves "all" against the sources: the `[source]` server's
    /// exchanges and every exchange with an `[exchanges.NAME]` table; the
    /// `[source]` server's symbols for the exchanges asked there, and each
    /// other exchange's own listing (`listings` keeps what was read).
    pub async fn resolve(
        config: &Config,
        client: &PriceClient,
        endpoints: &Endpoints,
        listings: &Listings,
        today: NaiveDate,
    ) -> Result<Universe, SourceError> {
        let exchanges = match &config.universe.exchanges {
            Selection::All => {
                let mut all = client.exchanges().await?;
                for name in config.exchanges.keys() {
                    if !all.contains(name) {
                        all.push(name.clone());
                    }
                }
                all
            }
            Selection::List(list) => list.clone(),
        };
        let mut listed = BTreeMap::new();
        let symbols = match &config.universe.symbols {
            Selection::List(list) => list.clone(),
            Selection::All => {
                let mut via_source = false;
                for exchange in &exchanges {
                    match listed_universe(config, endpoints, exchange, listings).await {
                        Some(symbols) => {
                            listed.insert(exchange.clone(), symbols);
                        }
                        None => via_source = true,
                    }
                }
                if via_source {
                    client.symbols().await?
                } else {
                    Vec::new()
                }
            }
        };
        Ok(Universe {
            exchanges,
            symbols,
            listed,
            days: config.universe.days(today),
        })
    }

    /// Resolves the universe as `resolve` does and judges its size against
    /// `universe.max_tasks`: what a round and a reload both ask before
    /// anything the universe's size is allocated.
    pub async fn resolve_within(
        config: &Config,
        client: &PriceClient,
        endpoints: &Endpoints,
        listings: &Listings,
        today: NaiveDate,
    ) -> Result<Universe, RoundError> {
        let universe = Universe::resolve(config, client, endpoints, listings, today).await?;
        config.universe.check_size(universe.size())?;
        Ok(universe)
    }

    /// The symbols of `exchange`.
    pub fn symbols_of(&self, exchange: &Exchange) -> &[Symbol] {
        self.listed.get(exchange).unwrap_or(&self.symbols)
    }

    /// Its counts, whose product is its number of keys (with per-exchange
    /// symbols, the number of (exchange, symbol) pairs instead).
    pub fn size(&self) -> UniverseSize {
        if self.listed.is_empty() {
            return UniverseSize::new(self.exchanges.len(), self.symbols.len(), self.days.len());
        }
        let mut symbols: Vec<&Symbol> = Vec::new();
        let mut markets = 0usize;
        for e in &self.exchanges {
            let own = self.symbols_of(e);
            markets = markets.saturating_add(own.len());
            symbols.extend(own);
        }
        symbols.sort_unstable();
        symbols.dedup();
        UniverseSize::new(self.exchanges.len(), symbols.len(), self.days.len())
            .with_markets(markets)
    }

    /// Its number of keys, counted without overflow.
    pub fn tasks(&self) -> u128 {
        self.size().tasks().unwrap_or(u128::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.days.is_empty() || self.exchanges.iter().all(|e| self.symbols_of(e).is_empty())
    }

    /// Every key, day-major then exchange then symbol, so that every
    /// exchange progresses from the start of a round; made one at a time
    /// as they are asked for, never all at once.
    pub fn keys(&self) -> impl Iterator<Item = TaskKey> + '_ {
        self.days.days().flat_map(move |day| {
            self.exchanges.iter().flat_map(move |exchange| {
                self.symbols_of(exchange).iter().map(move |symbol| TaskKey {
                    exchange: exchange.clone(),
                    symbol: symbol.clone(),
                    day,
                })
            })
        })
    }

    /// Each exchange with its symbols, in order: what the Aggregator
    /// needs, with `days`, to say which keys are due (`Unsettled`).
    pub fn pairs(&self) -> Vec<(Exchange, Arc<[Symbol]>)> {
        self.exchanges
            .iter()
            .map(|e| (e.clone(), Arc::from(self.symbols_of(e))))
            .collect()
    }
}

pub struct Producer {
    config: Arc<Config>,
    /// Version of `config`, counted by whoever applies configs (0 at start).
    version: u64,
    client: Rc<PriceClient>,
    /// Where the fetchers ask: its identity is what cells from `[source]`
    /// record (cells from another source are due again), its endpoints the
    /// exchanges asked elsewhere.
    source: SourceRef,
    listings: Listings,
    /// What the last tick resolved, while it may be reused (until a config
    /// is put in force; `Resolved::reusable` says when it may not be kept).
    resolved: Rc<RefCell<Option<Rc<Resolved>>>>,
    clock: Clock,
    supervisor: Addr<Supervisor>,
    aggregator: Addr<Aggregator>,
    round: u64,
    running: Option<u64>,
    /// Rounds repeat on `schedule.interval` (the daemon), or run on request.
    scheduled: bool,
    stopping: Rc<Cell<bool>>,
    last_start: Option<Instant>,
    next_round: Option<SpawnHandle>,
    finished: watch::Sender<Option<RoundSummary>>,
    /// Ticks that found nothing due (and so started no round), counted.
    idle_ticks: watch::Sender<u64>,
    /// A config waiting for the round boundary, and who waits for it.
    pending: Option<(Reconfigure, Vec<oneshot::Sender<()>>)>,
    /// In a fleet: the leases a round keeps to, and where its number
    /// comes from.
    fleet: Option<Rc<FleetLink>>,
}

impl Producer {
    /// A producer under the config `initial` brings (start-up is a
    /// reconfiguration like any other: the same `Reconfigure`, version 0).
    pub fn new(
        initial: Reconfigure,
        clock: Clock,
        supervisor: Addr<Supervisor>,
        aggregator: Addr<Aggregator>,
        finished: watch::Sender<Option<RoundSummary>>,
    ) -> Self {
        Self {
            client: Rc::new(discovery_client(&initial)),
            config: initial.config,
            version: initial.version,
            source: initial.source,
            listings: Listings::default(),
            resolved: Rc::default(),
            clock,
            supervisor,
            aggregator,
            round: 0,
            running: None,
            scheduled: false,
            stopping: Rc::new(Cell::new(false)),
            last_start: None,
            next_round: None,
            finished,
            idle_ticks: watch::Sender::new(0),
            pending: None,
            fleet: None,
        }
    }

    /// Rounds keep to the lanes this daemon leases, numbered by the record.
    pub fn in_fleet(mut self, fleet: FleetLink) -> Self {
        self.fleet = Some(Rc::new(fleet));
        self
    }

    /// Ticks that found nothing due, counted as they pass (a round that
    /// runs is told on `finished` instead).
    pub fn idle_ticks(&self) -> watch::Receiver<u64> {
        self.idle_ticks.subscribe()
    }

    /// Numbers rounds on from `last` (after a resume).
    pub fn numbered_from(mut self, last: u64) -> Self {
        self.round = last;
        self
    }

    /// The work of one round, as a future on this actor.
    fn round(&mut self) -> ResponseActFuture<Self, Result<RoundSummary, RoundError>> {
        if let Some(r) = self.running {
            return Box::pin(fut::ready(Err(RoundError::Busy(r))));
        }
        if self.stopping.get() {
            return Box::pin(fut::ready(Err(RoundError::Stopping)));
        }
        self.round += 1;
        let round = self.round;
        self.running = Some(round);
        self.last_start = Some(Instant::now());
        let config = self.config.clone();
        let version = self.version;
        let client = self.client.clone();
        let supervisor = self.supervisor.clone();
        let aggregator = self.aggregator.clone();
        let stopping = self.stopping.clone();
        let source = self.source.identity.clone();
        let endpoints = self.source.endpoints.clone();
        let listings = self.listings.clone();
        let kept = self.resolved.clone();
        let today = self.clock.today();
        let fleet = self.fleet.clone();
        let work = async move {
            let reused = kept.borrow().clone();
            // The quotes of the markets, told the Aggregator when they are
            // resolved (it keeps them), not again at every tick.
            let mut quotes = HashMap::new();
            let resolved = match reused {
                Some(r) => r,
                None => {
                    let universe =
                        Universe::resolve_within(&config, &client, &endpoints, &listings, today)
                            .await?;
                    let markets = resolve_markets(&config, &endpoints, &universe, &listings).await;
                    let r = Rc::new(Resolved::new(universe, markets));
                    quotes = r.quotes.clone();
                    if r.reusable(&config, &endpoints, &listings) {
                        *kept.borrow_mut() = Some(r.clone());
                    }
                    r
                }
            };
            // Days follow the clock, so they are judged every tick.
            let days = config.universe.days(today);
            let size = UniverseSize {
                days: days.len(),
                ..resolved.size
            };
            config.universe.check_size(size)?;
            let tasks = size.tasks().unwrap_or(u128::MAX);
            let (round, pairs) = match &fleet {
                Some(fleet) => fleet.lease(resolved.pairs.clone(), &aggregator).await?,
                None => (round, resolved.pairs.clone()),
            };
            let todo = aggregator
                .send(Unsettled {
                    pairs,
                    days,
                    source,
                    sources: resolved.sources.clone(),
                    quotes,
                })
                .await?;
            if todo.is_empty() {
                return Err(RoundError::NothingDue {
                    keys: tasks,
                    config_version: version,
                });
            }
            log::debug!(
                "round {round}: {} of {tasks} keys unsettled (config version {version})",
                todo.len(),
            );
            aggregator
                .send(RoundStarted {
                    round,
                    tasks: todo.len() as u64,
                })
                .await?;
            let chunk = config.fetch.window().max(1);
            let mut todo = plan(todo, &resolved.markets, today).into_iter().peekable();
            while todo.peek().is_some() && !stopping.get() {
                let tasks: Vec<Task> = todo.by_ref().take(chunk).collect();
                supervisor.send(Submit { round, tasks }).await?;
            }
            supervisor.send(WaitIdle).await?;
            // Every fetcher reply is in, so every PriceResult is already in
            // the Aggregator's mailbox ahead of this message.
            let aborted = stopping.get();
            let summary = aggregator.send(RoundFinished { round, aborted }).await?;
            summary.ok_or(RoundError::Untracked(round))
        };
        Box::pin(work.into_actor(self).map(|result, act, ctx| {
            act.running = None;
            match &result {
                Ok(summary) => {
                    act.round = act.round.max(summary.round);
                    act.finished.send_replace(Some(*summary));
                }
                Err(e @ RoundError::NothingDue { .. }) => {
                    // A tick, not a round: the next one takes this number
                    // (in a fleet, the record's sequence gave it; unused).
                    if act.fleet.is_none() {
                        act.round -= 1;
                    }
                    log::debug!("no round: {e}");
                    act.idle_ticks.send_modify(|n| *n += 1);
                }
                Err(e) => log::error!("round {}: {e}", act.round),
            }
            act.apply_pending(ctx);
            act.schedule_next(ctx);
            result
        }))
    }

    /// Puts a waiting config in force (between rounds only): the Producer
    /// switches first, then the Supervisor and the Aggregator, and no message
    /// (no round) is handled until both have it.
    fn apply_pending(&mut self, ctx: &mut Context<Self>) {
        let Some((msg, waiting)) = self.pending.take() else {
            return;
        };
        // What changes is told from the config in force here: a config that
        // replaced a pending one, or a diff taken from another base, still
        // tells each actor what changes for it.
        let msg = Reconfigure {
            diff: Arc::new(ConfigDiff::between(&self.config, &msg.config)),
            ..msg
        };
        let interval_changed = msg.config.schedule.interval != self.config.schedule.interval;
        if msg.diff.changed("source") || msg.source.url != *self.client.base() {
            self.client = Rc::new(discovery_client(&msg));
        }
        // A listing is kept until the exchanges it was read for change:
        // their tables, or where they are asked.
        if msg.diff.changed("exchanges") || msg.source.endpoints != self.source.endpoints {
            self.listings.borrow_mut().clear();
        }
        // What a tick resolved holds while what it came from stays.
        if !same_resolution(&self.config, &self.source, &msg) {
            self.resolved.borrow_mut().take();
        }
        self.config = msg.config.clone();
        self.version = msg.version;
        self.source = msg.source.clone();
        log::info!(
            "config version {} in force from round {}",
            msg.version,
            self.round + 1
        );
        let supervisor = self.supervisor.send(msg.clone());
        let aggregator = self.aggregator.send(msg);
        ctx.wait(
            async move {
                let _ = supervisor.await;
                let _ = aggregator.await;
                for w in waiting {
                    let _ = w.send(());
                }
            }
            .into_actor(self),
        );
        if interval_changed {
            self.schedule_next(ctx);
        }
    }

    /// In schedule mode, arms the timer for the next round: one interval
    /// after the last round's start, or now if that has passed already.
    fn schedule_next(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.next_round.take() {
            ctx.cancel_future(h);
        }
        if !self.scheduled || self.stopping.get() || self.running.is_some() {
            return;
        }
        let interval = self.config.schedule.interval;
        let wait = match self.last_start {
            Some(start) => {
                let since = start.elapsed();
                if since > interval {
                    log::warn!(
                        "round {} took {:.1}s, longer than schedule.interval ({}); the next round starts now",
                        self.round,
                        since.as_secs_f64(),
                        humantime::format_duration(interval)
                    );
                }
                interval.saturating_sub(since)
            }
            None => Duration::ZERO,
        };
        let at = chrono::TimeDelta::from_std(wait)
            .ok()
            .and_then(|w| self.clock.now().checked_add_signed(w));
        self.aggregator.do_send(NextRound { at });
        self.next_round = Some(ctx.run_later(wait, |act, ctx| {
            act.next_round = None;
            let round = act.round();
            ctx.spawn(round.map(|_, _, _| ()));
        }));
    }
}

/// The client that asks the source which exchanges and symbols there are.
fn discovery_client(msg: &Reconfigure) -> PriceClient {
    PriceClient::new(
        &msg.source.url,
        &ClientLimits::from_config(&msg.config.source, 2),
    )
}

impl Actor for Producer {
    type Context = Context<Self>;
}

/// Run one round now; answers with its summary when every task is done.
#[derive(Message, Debug)]
#[rtype(result = "Result<RoundSummary, RoundError>")]
pub struct RunRound;

impl Handler<RunRound> for Producer {
    type Result = ResponseActFuture<Self, Result<RoundSummary, RoundError>>;

    fn handle(&mut self, _: RunRound, _: &mut Self::Context) -> Self::Result {
        self.round()
    }
}

/// Run a round now and then one every `schedule.interval`, never two at once.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StartSchedule;

impl Handler<StartSchedule> for Producer {
    type Result = ();

    fn handle(&mut self, _: StartSchedule, ctx: &mut Self::Context) {
        self.scheduled = true;
        self.schedule_next(ctx);
    }
}

impl Handler<Reconfigure> for Producer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Reconfigure, ctx: &mut Self::Context) -> Self::Result {
        let (applied, rx) = oneshot::channel();
        match &mut self.pending {
            Some((newer, waiting)) => {
                // Not applied yet: the newer config replaces it whole.
                *newer = msg;
                waiting.push(applied);
            }
            None => self.pending = Some((msg, vec![applied])),
        }
        if self.running.is_none() {
            self.apply_pending(ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Stop starting rounds and stop feeding the running one.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct StopRounds;

impl Handler<StopRounds> for Producer {
    type Result = ();

    fn handle(&mut self, _: StopRounds, ctx: &mut Self::Context) {
        self.stopping.set(true);
        if let Some(h) = self.next_round.take() {
            ctx.cancel_future(h);
        }
    }
}

impl Handler<Stop> for Producer {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        self.stopping.set(true);
        ctx.stop();
    }
}
