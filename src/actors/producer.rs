//! The `Producer`: decides what to fetch and when.
//!
//! It runs rounds on request (`fetch`) or on `schedule.interval` (the
//! daemon), never two at once. For each round it turns the configured universe (discovering exchanges and symbols from
//! the source where the config says "all") into a round's tasks, leaves out
//! the keys the Aggregator holds as settled, and feeds the rest to the
//! Supervisor in window-sized chunks, waiting for room before each (the
//! backpressure). It never fetches a price and never touches the map.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::NaiveDate;
use tokio::sync::{oneshot, watch};

use super::aggregator::{
    Aggregator, NextRound, RoundFinished, RoundStarted, RoundSummary, Unsettled,
};
use super::supervisor::{Submit, Supervisor, WaitIdle};
use super::{Reconfigure, SourceRef};
use crate::clock::Clock;
use crate::config::{Config, DayRange, Selection};
use crate::model::{Api, Exchange, Market, Symbol, Task, TaskKey};
use crate::source::exchanges::{self, choose_market, plan_pages, Instrument};
use crate::source::{ClientLimits, Endpoints, PriceClient, SourceError};

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
    TooLarge(String),
}

/// The exchanges, symbols and days one round covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Universe {
    pub exchanges: Vec<Exchange>,
    pub symbols: Vec<Symbol>,
    pub days: DayRange,
}

impl Universe {
    /// Resolves "all" against the source: the `[source]` server's
    /// exchanges, and every exchange with an `[exchanges.NAME]` table.
    pub async fn resolve(
        config: &Config,
        client: &PriceClient,
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
        let symbols = match &config.universe.symbols {
            Selection::All => client.symbols().await?,
            Selection::List(list) => list.clone(),
        };
        Ok(Universe {
            exchanges,
            symbols,
            days: config.universe.days(today),
        })
    }

    pub fn len(&self) -> usize {
        self.exchanges.len() * self.symbols.len() * self.days.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every key, day-major then exchange then symbol, so that every
    /// exchange progresses from the start of a round.
    pub fn keys(&self) -> Vec<TaskKey> {
        let mut out = Vec::with_capacity(self.len());
        for day in self.days.days() {
            for exchange in &self.exchanges {
                for symbol in &self.symbols {
                    out.push(TaskKey {
                        exchange: exchange.clone(),
                        symbol: symbol.clone(),
                        day,
                    });
                }
            }
        }
        out
    }
}

/// (exchange, symbol) -> where it is asked, for the exchanges that have
/// their own endpoint.
pub type Markets = HashMap<(Exchange, Symbol), Arc<Market>>;

/// Each exchange's market listing, as last read (kept until the config
/// changes, so a listing is asked once, not every round).
type Listings = Rc<RefCell<HashMap<Exchange, Arc<Vec<Instrument>>>>>;

/// Where each (exchange, symbol) of `universe` with an endpoint of its own
/// is asked: the configured market, else the one the exchange's listing
/// gives (USD, else USDT, else USDC); a market that cannot be found carries
/// the reason, and its cells fail with it.
async fn resolve_markets(
    config: &Config,
    endpoints: &Endpoints,
    universe: &Universe,
    listings: &Listings,
) -> Markets {
    let mut out = Markets::new();
    for exchange in &universe.exchanges {
        let (Some(endpoint), Some(table)) =
            (endpoints.get(exchange), config.exchanges.get(exchange))
        else {
            continue;
        };
        let market = |name: &str, unresolved: Option<String>| {
            Arc::new(Market {
                api: endpoint.api,
                name: Arc::from(name),
                source: Market::identity(&endpoint.identity, name),
                unresolved: unresolved.map(Arc::from),
            })
        };
        let Some(api) = exchanges::adapter(endpoint.api) else {
            for symbol in &universe.symbols {
                out.insert((exchange.clone(), symbol.clone()), market("", None));
            }
            continue;
        };
        let listing = if table.markets.is_empty() {
            Some(listing(exchange, endpoint, api, config, listings).await)
        } else {
            None
        };
        for symbol in &universe.symbols {
            let m = match (&listing, table.markets.get(symbol)) {
                (None, Some(name)) => market(name, None),
                (None, None) => market(
                    "",
                    Some(format!(
                        "no market for {symbol} in exchanges.{exchange}.markets"
                    )),
                ),
                (Some(Err(e)), _) => market("", Some(e.clone())),
                (Some(Ok(list)), _) => match choose_market(api, symbol, list) {
                    Some(i) => {
                        log::debug!(
                            "{exchange}: {symbol} is asked as market {} ({}/{})",
                            i.market,
                            i.base,
                            i.quote
                        );
                        market(&i.market, None)
                    }
                    None => market(
                        "",
                        Some(format!(
                            "{exchange} lists no {base}/USD, {base}/USDT or {base}/USDC market for {symbol}",
                            base = api.asset_name(symbol)
                        )),
                    ),
                },
            };
            out.insert((exchange.clone(), symbol.clone()), m);
        }
    }
    out
}

/// `exchange`'s market listing, from the cache or asked now (and logged:
/// which market each symbol maps to is worth knowing).
async fn listing(
    exchange: &Exchange,
    endpoint: &crate::source::Endpoint,
    api: &dyn exchanges::CandleApi,
    config: &Config,
    listings: &Listings,
) -> Result<Arc<Vec<Instrument>>, String> {
    if let Some(l) = listings.borrow().get(exchange) {
        return Ok(l.clone());
    }
    let limits = ClientLimits::from_config(&config.source, 1);
    let client = PriceClient::with_ca_files(&endpoint.url, &limits, &endpoint.ca_files)
        .map_err(|e| format!("cannot list {exchange}'s markets: {e}"))?;
    match client.instruments(api).await {
        Ok(list) => {
            log::info!("{exchange}: {} markets listed", list.len());
            let list = Arc::new(list);
            listings.borrow_mut().insert(exchange.clone(), list.clone());
            Ok(list)
        }
        Err(e) => {
            log::error!("cannot list {exchange}'s markets: {e}");
            Err(format!("cannot list {exchange}'s markets: {e}"))
        }
    }
}

/// A round's unsettled keys as tasks: a day each for `[source]` and the
/// classic API, pages of consecutive days (no longer than the exchange's
/// page, cut at the oldest day it serves) for a real exchange.
pub fn plan(todo: Vec<TaskKey>, markets: &Markets, today: NaiveDate) -> Vec<Task> {
    if markets.is_empty() {
        return todo.into_iter().map(Task::new).collect();
    }
    let mut tasks = Vec::with_capacity(todo.len());
    let mut series: std::collections::BTreeMap<(Exchange, Symbol), Vec<NaiveDate>> =
        std::collections::BTreeMap::new();
    for key in todo {
        let id = (key.exchange.clone(), key.symbol.clone());
        match markets.get(&id) {
            None => tasks.push(Task::new(key)),
            Some(m) if m.api == Api::Classic => tasks.push(Task {
                market: Some(m.clone()),
                ..Task::new(key)
            }),
            Some(_) => series.entry(id).or_default().push(key.day),
        }
    }
    for ((exchange, symbol), mut days) in series {
        let Some(market) = markets.get(&(exchange.clone(), symbol.clone())) else {
            continue;
        };
        let Some(api) = exchanges::adapter(market.api) else {
            continue;
        };
        days.sort_unstable();
        days.dedup();
        for page in plan_pages(&days, api.page_days(), api.earliest_day(today)) {
            tasks.push(Task::page(
                exchange.clone(),
                symbol.clone(),
                page,
                market.clone(),
            ));
        }
    }
    tasks
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
    /// A config waiting for the round boundary, and who waits for it.
    pending: Option<(Reconfigure, Vec<oneshot::Sender<()>>)>,
}

impl Producer {
    pub fn new(
        config: Arc<Config>,
        client: PriceClient,
        source: SourceRef,
        clock: Clock,
        supervisor: Addr<Supervisor>,
        aggregator: Addr<Aggregator>,
        finished: watch::Sender<Option<RoundSummary>>,
    ) -> Self {
        Self {
            config,
            version: 0,
            client: Rc::new(client),
            source,
            listings: Listings::default(),
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
            pending: None,
        }
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
        let today = self.clock.today();
        let work = async move {
            let universe = Universe::resolve(&config, &client, today).await?;
            if let Some(problem) = config.universe.size_problem(
                universe.exchanges.len(),
                universe.symbols.len(),
                universe.days.len(),
            ) {
                return Err(RoundError::TooLarge(problem));
            }
            let markets = resolve_markets(&config, &endpoints, &universe, &listings).await;
            let sources = markets
                .iter()
                .map(|(k, m)| (k.clone(), m.source.clone()))
                .collect();
            let todo = aggregator
                .send(Unsettled {
                    keys: universe.keys(),
                    source,
                    sources,
                })
                .await?;
            log::debug!(
                "round {round}: {} of {} keys unsettled (config version {version})",
                todo.len(),
                universe.len()
            );
            aggregator
                .send(RoundStarted {
                    round,
                    tasks: todo.len() as u64,
                })
                .await?;
            let chunk = config.fetch.window().max(1);
            let mut todo = plan(todo, &markets, today).into_iter().peekable();
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
            act.apply_pending(ctx);
            match &result {
                Ok(summary) => {
                    act.finished.send_replace(Some(*summary));
                }
                Err(e) => log::error!("round {}: {e}", act.round),
            }
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
        let interval_changed = msg.config.schedule.interval != self.config.schedule.interval;
        if msg.source.url != *self.client.base() || msg.config.source != self.config.source {
            self.client = Rc::new(PriceClient::new(
                &msg.source.url,
                &ClientLimits::from_config(&msg.config.source, 2),
            ));
        }
        self.config = msg.config.clone();
        self.version = msg.version;
        if msg.source.endpoints != self.source.endpoints
            || msg.config.exchanges != self.config.exchanges
        {
            self.listings.borrow_mut().clear();
        }
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

impl Handler<super::Stop> for Producer {
    type Result = ();

    fn handle(&mut self, _: super::Stop, ctx: &mut Self::Context) {
        self.stopping.set(true);
        ctx.stop();
    }
}
