//! Where a round's cells are asked, and in how many requests: the market
//! of each (exchange, symbol) of an exchange with its own API (configured,
//! or chosen from the exchange's market listing in its `quotes`, which is
//! read once and kept until the config changes), that exchange's symbols
//! under `symbols = "all"` (the listing's base assets in its `quotes`),
//! and the round's unsettled keys cut into tasks (a day each for the
//! classic API, pages of consecutive days no longer than the exchange's
//! page, split at the oldest day it serves, for the others). What a tick
//! resolved (`Resolved`: the names, each pair's market and source) is kept
//! for the next while nothing it came from can change, a new config that
//! moves only the days included (`same_resolution`). The Producer's own
//! part: it asks listings, never prices, and decides no outcome (a market
//! that cannot be found travels with the task, for the Supervisor to fail).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use chrono::NaiveDate;

use super::Universe;
use crate::actors::messages::{Reconfigure, SourceRef};
use crate::config::{Config, Selection, UniverseSize};
use crate::model::{market_quote, Exchange, ExchangeApi, Market, Symbol, Task, TaskKey};
use crate::source::exchanges::{self, plan_pages, Instrument};
use crate::source::{ClientLimits, Endpoints, PriceClient};

/// (exchange, symbol) -> where it is asked, for the exchanges that have
/// their own endpoint.
pub type Markets = HashMap<(Exchange, Symbol), Arc<Market>>;

/// Each exchange's market listing, as last read (kept until the config
/// changes, so a listing is asked once, not every round).
pub type Listings = Rc<RefCell<HashMap<Exchange, Arc<Vec<Instrument>>>>>;

/// What resolving a universe gave, apart from its days: its names, where
/// each (exchange, symbol) is asked, and the pairs and their sources as the
/// Aggregator's index is asked about them. At 20,000 pairs, making this
/// each tick was most of a tick with nothing due, so the Producer keeps it
/// while it cannot change (`reusable`): until a config is put in force.
#[derive(Debug)]
pub(super) struct Resolved {
    /// The universe as resolved; a tick takes its days from the config.
    pub universe: Universe,
    /// Its size, over the days it was resolved with.
    pub size: UniverseSize,
    pub markets: Markets,
    pub pairs: Vec<(Exchange, Arc<[Symbol]>)>,
    /// The source each pair of an exchange with its own API is asked at.
    pub sources: Arc<HashMap<(Exchange, Symbol), Arc<str>>>,
    /// The quote currency of each market (by source identity) it asks in.
    pub quotes: HashMap<Arc<str>, Arc<str>>,
}

impl Resolved {
    pub(super) fn new(universe: Universe, markets: Markets) -> Self {
        let sources = markets
            .iter()
            .map(|(k, m)| (k.clone(), m.source.clone()))
            .collect();
        let quotes = markets
            .values()
            .filter_map(|m| Some((m.source.clone(), m.quote.clone()?)))
            .collect();
        Self {
            size: universe.size(),
            pairs: universe.pairs(),
            sources: Arc::new(sources),
            quotes,
            universe,
            markets,
        }
    }

    /// Whether the next tick may use this instead of resolving again: no
    /// name came from asking the `[source]` server (whose exchanges and
    /// symbols may change between ticks), and every listing it needed was
    /// read (a listing that could not be read is asked again next tick).
    /// Listings themselves are kept until the config changes, as this is.
    pub(super) fn reusable(
        &self,
        config: &Config,
        endpoints: &Endpoints,
        listings: &Listings,
    ) -> bool {
        if !matches!(config.universe.exchanges, Selection::List(_)) {
            return false;
        }
        let listings = listings.borrow();
        self.universe.exchanges.iter().all(|exchange| {
            let own = endpoints
                .get(exchange)
                .and_then(|e| exchanges::adapter(e.api));
            let table = config.exchanges.get(exchange);
            match (own, table) {
                (Some(_), Some(table)) => {
                    !table.markets.is_empty() || listings.contains_key(exchange)
                }
                // Asked through `[source]`: its symbols came from the
                // config, or from the source when "all".
                _ => matches!(config.universe.symbols, Selection::List(_)),
            }
        })
    }
}

/// `exchange`'s symbols under `universe.symbols = "all"` when it has an API
/// of its own (`None`: it is asked through `[source]`, whose `/symbols`
/// says): its `markets`' symbols when it names them, else every base asset
/// its listing has a market for in one of its `quotes`. A listing that
/// cannot be read gives no symbols this round (logged; the next round asks
/// again).
pub(super) async fn listed_universe(
    config: &Config,
    endpoints: &Endpoints,
    exchange: &Exchange,
    listings: &Listings,
) -> Option<Vec<Symbol>> {
    let endpoint = endpoints.get(exchange)?;
    let table = config.exchanges.get(exchange)?;
    let api = exchanges::adapter(endpoint.api)?;
    if !table.markets.is_empty() {
        return Some(table.markets.keys().cloned().collect());
    }
    match listing(exchange, endpoint, api, config, listings).await {
        Ok(list) => {
            let symbols = exchanges::listed_symbols(api, &list, &table.quotes);
            log::info!(
                "{exchange}: symbols = \"all\" is {} base assets quoted in {}",
                symbols.len(),
                table.quotes.join(", ")
            );
            Some(symbols)
        }
        Err(_) => {
            // `listing` has logged why, as an error.
            log::warn!("{exchange}: symbols = \"all\" covers nothing this round");
            Some(Vec::new())
        }
    }
}

/// Where each (exchange, symbol) of `universe` with an endpoint of its own
/// is asked: the configured market, else the one the exchange's listing
/// gives (in the first of its `quotes` it is listed in); a market that
/// cannot be found carries the reason, and its cells fail with it.
pub(super) async fn resolve_markets(
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
        let market = |name: &str, quote: Option<Arc<str>>, unresolved: Option<String>| {
            Arc::new(Market {
                api: endpoint.api,
                name: Arc::from(name),
                source: Market::identity(&endpoint.identity, name),
                quote,
                unresolved: unresolved.map(Arc::from),
            })
        };
        let Some(api) = exchanges::adapter(endpoint.api) else {
            for symbol in universe.symbols_of(exchange) {
                out.insert(
                    (exchange.clone(), symbol.clone()),
                    market("", Some(Arc::from("USD")), None),
                );
            }
            continue;
        };
        let listing = if table.markets.is_empty() {
            Some(listing(exchange, endpoint, api, config, listings).await)
        } else {
            None
        };
        let index = match &listing {
            Some(Ok(list)) => Some(exchanges::MarketIndex::new(list)),
            _ => None,
        };
        for symbol in universe.symbols_of(exchange) {
            let m = match (&listing, table.markets.get(symbol)) {
                (None, Some(name)) => market(name, market_quote(name, &table.quotes), None),
                (None, None) => market(
                    "",
                    None,
                    Some(format!(
                        "no market for {symbol} in exchanges.{exchange}.markets"
                    )),
                ),
                (Some(Err(e)), _) => market("", None, Some(e.clone())),
                (Some(Ok(_)), _) => match index
                    .as_ref()
                    .and_then(|index| index.choose(api, symbol, &table.quotes))
                {
                    Some(i) => {
                        log::debug!(
                            "{exchange}: {symbol} is asked as market {} ({}/{})",
                            i.market,
                            i.base,
                            i.quote
                        );
                        market(
                            &i.market,
                            Some(Arc::from(i.quote.to_ascii_uppercase())),
                            None,
                        )
                    }
                    None => market(
                        "",
                        None,
                        Some(format!(
                            "{exchange} lists no market for {symbol} in {}",
                            table
                                .quotes
                                .iter()
                                .map(|q| format!("{}/{q}", api.asset_name(symbol)))
                                .collect::<Vec<_>>()
                                .join(", ")
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
    let limits =
        ClientLimits::from_config(&config.source, 1).with_user_agent(endpoint.user_agent.as_ref());
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
/// page, cut at the oldest day it serves) for a real exchange. Pages go
/// symbol by symbol, each symbol's exchanges together: a flush of a
/// backfill then holds whole symbol-days, which the record (keyed (day,
/// symbol, exchange) since schema 4) writes as one run within each day,
/// and every exchange still has work from the start of a round.
pub fn plan(todo: Vec<TaskKey>, markets: &Markets, today: NaiveDate) -> Vec<Task> {
    if markets.is_empty() {
        return todo.into_iter().map(Task::new).collect();
    }
    let mut tasks = Vec::with_capacity(todo.len());
    let mut series: std::collections::BTreeMap<(Symbol, Exchange), Vec<NaiveDate>> =
        std::collections::BTreeMap::new();
    for key in todo {
        let id = (key.exchange.clone(), key.symbol.clone());
        match markets.get(&id) {
            None => tasks.push(Task::new(key)),
            Some(m) if m.api == ExchangeApi::Classic => tasks.push(Task {
                market: Some(m.clone()),
                ..Task::new(key)
            }),
            Some(_) => series
                .entry((key.symbol, key.exchange))
                .or_default()
                .push(key.day),
        }
    }
    for ((symbol, exchange), mut days) in series {
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

/// Whether what `config` and `source` resolved (names, markets, sources)
/// holds under `next` too: the same source and exchange tables, and the
/// same selection of exchanges and symbols. The days are not part of it.
pub(super) fn same_resolution(config: &Config, source: &SourceRef, next: &Reconfigure) -> bool {
    !next.diff.changed("source")
        && !next.diff.changed("exchanges")
        && next.source == *source
        && next.config.universe.exchanges == config.universe.exchanges
        && next.config.universe.symbols == config.universe.symbols
}
