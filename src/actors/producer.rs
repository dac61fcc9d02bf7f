//! The `Producer`: decides what to fetch and when.
//!
//! It turns the configured universe (discovering exchanges and symbols from
//! the source where the config says "all") into a round's tasks, leaves out
//! the keys the Aggregator holds as settled, and feeds the rest to the
//! Supervisor in window-sized chunks, waiting for room before each (the
//! backpressure). It never fetches a price and never touches the map.

use std::rc::Rc;
use std::sync::Arc;

use actix::prelude::*;
use chrono::{NaiveDate, Utc};

use super::aggregator::{Aggregator, RoundFinished, RoundStarted, RoundSummary, Unsettled};
use super::supervisor::{Submit, Supervisor, WaitIdle};
use crate::config::{Config, DayRange, Selection};
use crate::model::{Exchange, Symbol, Task, TaskKey};
use crate::source::{PriceClient, SourceError};

/// Why a round could not run.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error("universe discovery failed: {0}")]
    Discovery(#[from] SourceError),
    #[error("an actor stopped during the round: {0}")]
    Mailbox(#[from] MailboxError),
    #[error("round {0} is still running")]
    Busy(u64),
}

/// The exchanges, symbols and days one round covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Universe {
    pub exchanges: Vec<Exchange>,
    pub symbols: Vec<Symbol>,
    pub days: DayRange,
}

impl Universe {
    /// Resolves "all" against the source.
    pub async fn resolve(
        config: &Config,
        client: &PriceClient,
        today: NaiveDate,
    ) -> Result<Universe, SourceError> {
        let exchanges = match &config.universe.exchanges {
            Selection::All => client.exchanges().await?,
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

    /// Every key, exchange-major then day then symbol.
    pub fn keys(&self) -> Vec<TaskKey> {
        let mut out = Vec::with_capacity(self.len());
        for exchange in &self.exchanges {
            for day in self.days.days() {
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

pub struct Producer {
    config: Arc<Config>,
    client: Rc<PriceClient>,
    supervisor: Addr<Supervisor>,
    aggregator: Addr<Aggregator>,
    round: u64,
    running: Option<u64>,
}

impl Producer {
    pub fn new(
        config: Arc<Config>,
        client: PriceClient,
        supervisor: Addr<Supervisor>,
        aggregator: Addr<Aggregator>,
    ) -> Self {
        Self {
            config,
            client: Rc::new(client),
            supervisor,
            aggregator,
            round: 0,
            running: None,
        }
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
        if let Some(r) = self.running {
            return Box::pin(fut::ready(Err(RoundError::Busy(r))));
        }
        self.round += 1;
        let round = self.round;
        self.running = Some(round);
        let config = self.config.clone();
        let client = self.client.clone();
        let supervisor = self.supervisor.clone();
        let aggregator = self.aggregator.clone();
        let work = async move {
            let today = Utc::now().date_naive();
            let universe = Universe::resolve(&config, &client, today).await?;
            let todo = aggregator
                .send(Unsettled {
                    keys: universe.keys(),
                    today,
                })
                .await?;
            log::debug!(
                "round {round}: {} of {} keys unsettled",
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
            let mut todo = todo.into_iter().map(Task::new).peekable();
            while todo.peek().is_some() {
                let tasks: Vec<Task> = todo.by_ref().take(chunk).collect();
                supervisor.send(Submit { round, tasks }).await?;
            }
            supervisor.send(WaitIdle).await?;
            // Every fetcher reply is in, so every PriceResult is already in
            // the Aggregator's mailbox ahead of this message.
            let summary = aggregator.send(RoundFinished { round }).await?;
            summary.ok_or(RoundError::Busy(round))
        };
        Box::pin(work.into_actor(self).map(|result, act, _| {
            act.running = None;
            result
        }))
    }
}
