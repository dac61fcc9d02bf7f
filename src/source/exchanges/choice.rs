//! Which market of an exchange's listing a symbol is asked in: quoted in
//! the first of `quotes` it is listed in (`choose_market_in`, or
//! `MarketIndex` for a large listing), and which symbols a listing gives
//! under `symbols = "all"` (`listed_symbols`). Pure: a listing in, choices
//! out; fetching the listing is the Producer's.

use super::{CandleApi, Instrument};
use crate::model::{Symbol, DEFAULT_QUOTES};

/// The market for `symbol` among an exchange's listed markets: quoted in
/// USD, else USDT, else USDC (a price in USDT is not a price in USD, so the
/// choice is logged and recorded with each cell).
pub fn choose_market<'a>(
    api: &dyn CandleApi,
    symbol: &Symbol,
    instruments: &'a [Instrument],
) -> Option<&'a Instrument> {
    choose_market_in(api, symbol, instruments, &DEFAULT_QUOTES)
}

/// The market for `symbol` among an exchange's listed markets, quoted in
/// the first of `quotes` (in order of preference) it has a market in.
pub fn choose_market_in<'a, Q: AsRef<str>>(
    api: &dyn CandleApi,
    symbol: &Symbol,
    instruments: &'a [Instrument],
    quotes: &[Q],
) -> Option<&'a Instrument> {
    let base = api.asset_name(symbol);
    quotes.iter().find_map(|quote| {
        instruments.iter().find(|i| {
            i.base.eq_ignore_ascii_case(&base) && i.quote.eq_ignore_ascii_case(quote.as_ref())
        })
    })
}

/// A listing indexed by (base, quote), upper-cased, each pair's first
/// market in the listing's order: `choose_market_in` for every symbol of a
/// large listing (Binance's ~2,000 markets, 20 exchanges a tick) without a
/// scan of the listing for each.
pub struct MarketIndex<'a> {
    by_pair: std::collections::HashMap<(String, String), &'a Instrument>,
}

impl<'a> MarketIndex<'a> {
    pub fn new(instruments: &'a [Instrument]) -> Self {
        let mut by_pair = std::collections::HashMap::with_capacity(instruments.len());
        for i in instruments {
            by_pair
                .entry((i.base.to_ascii_uppercase(), i.quote.to_ascii_uppercase()))
                .or_insert(i);
        }
        MarketIndex { by_pair }
    }

    /// What `choose_market_in` chooses, by lookups.
    pub fn choose<Q: AsRef<str>>(
        &self,
        api: &dyn CandleApi,
        symbol: &Symbol,
        quotes: &[Q],
    ) -> Option<&'a Instrument> {
        let base = api.asset_name(symbol).to_ascii_uppercase();
        quotes.iter().find_map(|quote| {
            self.by_pair
                .get(&(base.clone(), quote.as_ref().to_ascii_uppercase()))
                .copied()
        })
    }
}

/// An exchange's universe under `symbols = "all"`: the symbol of every
/// base asset it lists with a market quoted in one of `quotes`, sorted,
/// each once (the market each is asked in is `choose_market_in`'s). A base
/// that is no valid symbol name is left out, and logged.
pub fn listed_symbols<Q: AsRef<str>>(
    api: &dyn CandleApi,
    instruments: &[Instrument],
    quotes: &[Q],
) -> Vec<Symbol> {
    let mut out: Vec<Symbol> = instruments
        .iter()
        .filter(|i| {
            quotes
                .iter()
                .any(|q| i.quote.eq_ignore_ascii_case(q.as_ref()))
        })
        .filter_map(|i| {
            let symbol = api.symbol_of(&i.base);
            if symbol.is_none() {
                log::debug!(
                    "market {} left out: its base {:?} is no symbol name",
                    i.market,
                    i.base
                );
            }
            symbol.filter(|s| api.asset_name(s).eq_ignore_ascii_case(&i.base))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}
