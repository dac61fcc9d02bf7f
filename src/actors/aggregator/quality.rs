//! The Aggregator's cross-exchange checks: which symbol-days must be judged
//! again (a cell of the symbol-day changed, or the day before it, whose
//! candle a stale one repeats, or a peg market's close that day), judging
//! them by `crate::quality`'s method when the Aggregator next flushes or is
//! asked, and setting each cell's `outlier`, `stale` and `off_peg` flags
//! (the price is kept as sent). The cost follows the symbol-days that
//! changed, never the cells held; only a new `[quality]` section judges
//! every symbol-day again, once.
//!
//! `Judge` is the context the method needs beyond the cells (the settings,
//! each market's quote, the peg markets): shared with the API's blocking
//! threads (`ReferenceView`), so a reference is worked out there from a
//! frozen store, off the Aggregator's mailbox. No I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;

use crate::actors::recorder::PersistReferences;
use crate::config::{Config, PegMarket};
use crate::model::{CellState, Exchange, Market, Symbol, TaskKey};
use crate::quality::{judge, Input, Judgement, Quote, Reference, Settings};
use crate::store::Store;

/// The USD stablecoins the method knows without a `[quality.peg]` entry:
/// their closes are in the USD class only on days a peg says so.
const STABLECOINS: [&str; 2] = ["USDT", "USDC"];

/// What judging a symbol-day needs besides its cells.
#[derive(Debug, Clone, Default)]
pub struct Judge {
    settings: Settings,
    /// Coin (upper-case) -> its peg market.
    pegs: BTreeMap<String, (Symbol, PegMarket)>,
    /// A market's source identity -> its quote (upper-case), as the
    /// Producer chose the markets. A source without a market (the classic
    /// API) is USD.
    quotes: HashMap<Arc<str>, Arc<str>>,
}

impl Judge {
    /// The settings and peg markets of `config`'s `[quality]`.
    pub fn configure(&mut self, config: &Config) {
        self.settings = config.quality.settings();
        self.pegs = config
            .quality
            .peg
            .iter()
            .map(|(coin, peg)| {
                (
                    coin.as_str().to_ascii_uppercase(),
                    (coin.clone(), peg.clone()),
                )
            })
            .collect();
    }

    /// Learns the quotes of the markets a round asks in.
    pub fn learn_quotes(&mut self, quotes: HashMap<Arc<str>, Arc<str>>) {
        self.quotes.extend(quotes);
    }

    /// The coin whose peg is the cell (`exchange`, `symbol`), if any.
    fn peg_of(&self, exchange: &Exchange, symbol: &Symbol) -> bool {
        self.pegs
            .values()
            .any(|(coin, peg)| coin == symbol && peg.exchange == *exchange)
    }

    /// The peg market's close of `coin` (upper-case) on `day`: the cell of
    /// (peg exchange, coin) holding a final or provisional price, asked in
    /// the peg's market (any market for the classic API, which names none).
    fn peg_close(&self, store: &Store, coin: &str, day: NaiveDate) -> Option<f64> {
        let (symbol, peg) = self.pegs.get(coin)?;
        let cell = store.get(&peg.exchange, symbol, day)?;
        let market = cell.source.as_deref().and_then(Market::of_source);
        if market.is_some_and(|m| m != peg.market) {
            return None;
        }
        cell.usable_price().map(|p| p.close)
    }

    /// The quote class of a cell from `source` on `day`.
    fn quote(&self, store: &Store, source: Option<&Arc<str>>, day: NaiveDate) -> Quote {
        let Some(source) = source.filter(|s| Market::of_source(s).is_some()) else {
            return Quote::Usd;
        };
        let Some(quote) = self.quotes.get(source) else {
            // A market not chosen since the start (a resumed daemon before
            // its first tick): its quote is not known yet.
            return Quote::Other("unknown".to_owned());
        };
        let quote = quote.to_ascii_uppercase();
        if quote == "USD" {
            Quote::Usd
        } else if self.pegs.contains_key(&quote) || STABLECOINS.contains(&quote.as_str()) {
            Quote::Stable {
                peg: self.peg_close(store, &quote, day),
                coin: quote.to_ascii_lowercase(),
            }
        } else {
            Quote::Other(quote)
        }
    }

    /// Judges `symbol` on `day` from `store`'s cells: the reference, and
    /// each exchange's check flags.
    pub fn judge(
        &self,
        store: &Store,
        symbol: &Symbol,
        day: NaiveDate,
    ) -> (Judgement, Vec<Exchange>) {
        let mut inputs = Vec::new();
        let mut exchanges = Vec::new();
        for exchange in store.exchanges_of(symbol) {
            let Some(cell) = store.get(exchange, symbol, day) else {
                continue;
            };
            let Some(price) = cell.usable_price() else {
                continue;
            };
            let previous = day
                .pred_opt()
                .and_then(|d| store.get(exchange, symbol, d))
                .and_then(|c| c.usable_price());
            inputs.push(Input {
                exchange: exchange.clone(),
                price,
                provisional: cell.state == CellState::Provisional,
                flags: cell.flags,
                quote: self.quote(store, cell.source.as_ref(), day),
                previous,
            });
            exchanges.push(exchange.clone());
        }
        (judge(&inputs, &self.settings), exchanges)
    }

    /// Judges `symbol` on `day` and sets its cells' check flags in
    /// `store`: the keys whose flags moved, and the day's reference.
    pub(super) fn set_checks(
        &self,
        store: &mut Store,
        symbol: &Symbol,
        day: NaiveDate,
    ) -> (Vec<TaskKey>, Reference) {
        let (judgement, exchanges) = self.judge(store, symbol, day);
        let mut moved = Vec::new();
        for (exchange, checks) in exchanges.into_iter().zip(&judgement.flags) {
            let key = TaskKey {
                exchange,
                symbol: symbol.clone(),
                day,
            };
            if store.set_checks(&key, *checks) {
                moved.push(key);
            }
        }
        (moved, judgement.reference)
    }
}

/// Symbol-days judged in one hold of the store's lock (about half a
/// millisecond of 20 exchanges' cells).
const JUDGED_AT_ONCE: usize = 64;

/// The symbol-days waiting to be judged again.
#[derive(Debug, Default)]
pub(super) struct Pending {
    days: BTreeSet<(Symbol, NaiveDate)>,
    /// Days a peg market's close changed: every symbol of the day.
    peg_days: BTreeSet<NaiveDate>,
    /// Judge every symbol-day (a new `[quality]`).
    all: bool,
}

/// What a judging pass changed: the cells whose flags moved (for the
/// record) and each judged symbol-day's reference (empty for a day with
/// no price).
#[derive(Debug, Default)]
pub struct Judged {
    pub cells: Vec<TaskKey>,
    pub references: Vec<(Symbol, NaiveDate, Reference)>,
}

impl Pending {
    /// A cell of `key` changed.
    pub fn touched(&mut self, judge: &Judge, key: &TaskKey) {
        self.days.insert((key.symbol.clone(), key.day));
        if let Some(next) = key.day.succ_opt() {
            self.days.insert((key.symbol.clone(), next));
        }
        if judge.peg_of(&key.exchange, &key.symbol) {
            self.peg_days.insert(key.day);
        }
    }

    /// Judge every symbol-day at the next pass.
    pub fn everything(&mut self) {
        self.all = true;
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.days.is_empty() && self.peg_days.is_empty()
    }

    /// Judges what waits, sets the cells' check flags in `store`, and says
    /// what changed.
    #[cfg(test)]
    pub fn judge(&mut self, judge: &Judge, store: &mut Store) -> Judged {
        self.judge_some(judge, store, usize::MAX)
    }

    /// As `judge`, for at most `most` symbol-days (in order); the rest
    /// stay waiting. A whole pass is first spelt out as its symbol-days.
    pub fn judge_some(&mut self, judge: &Judge, store: &mut Store, most: usize) -> Judged {
        let peg_days = std::mem::take(&mut self.peg_days);
        if std::mem::take(&mut self.all) {
            self.days
                .extend(store.iter().map(|(_, s, d, _)| (s.clone(), d)));
        } else if !peg_days.is_empty() {
            for symbol in store.symbols() {
                for day in &peg_days {
                    self.days.insert((symbol.clone(), *day));
                }
            }
        }
        let mut out = Judged::default();
        while out.references.len() < most {
            let Some((symbol, day)) = self.days.pop_first() else {
                break;
            };
            let (moved, reference) = judge.set_checks(store, &symbol, day);
            out.cells.extend(moved);
            // Even an empty one: it replaces a reference the record holds
            // for a day whose prices have gone (the record writes no row
            // for a day that never had one).
            out.references.push((symbol, day, reference));
        }
        out
    }

    /// The waiting symbol-days of `symbols` (every symbol when empty)
    /// from `from` to `to`; `None` when a whole pass waits (every
    /// symbol-day, or every symbol of a peg's changed day), which is the
    /// Aggregator's to make.
    pub fn covering(
        &self,
        symbols: &BTreeSet<Symbol>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Option<Vec<(Symbol, NaiveDate)>> {
        if self.all || !self.peg_days.is_empty() {
            return None;
        }
        let (from, to) = (from.unwrap_or(NaiveDate::MIN), to.unwrap_or(NaiveDate::MAX));
        if from > to {
            return Some(Vec::new());
        }
        let within = |d: &NaiveDate| (from..=to).contains(d);
        Some(if symbols.is_empty() {
            self.days
                .iter()
                .filter(|(_, d)| within(d))
                .cloned()
                .collect()
        } else {
            symbols
                .iter()
                .flat_map(|s| self.days.range((s.clone(), from)..=(s.clone(), to)))
                .cloned()
                .collect()
        })
    }
}

/// A frozen store with what judging it needs: the references of any
/// symbol-day, worked out where the caller runs (an API's blocking
/// thread), not on the Aggregator's.
#[derive(Debug, Clone)]
pub struct ReferenceView {
    pub store: Store,
    pub judge: Arc<Judge>,
}

impl ReferenceView {
    /// The reference of `symbol` on `day`; `None` when no exchange holds a
    /// price for it that day.
    pub fn reference(&self, symbol: &Symbol, day: NaiveDate) -> Option<Reference> {
        let (j, _) = self.judge.judge(&self.store, symbol, day);
        let r = j.reference;
        (!r.constituents.is_empty() || !r.excluded.is_empty()).then_some(r)
    }
}

impl super::Aggregator {
    /// Judges the symbol-days that wait: the cells whose check flags moved
    /// are marked for the record, and the references go to it with the
    /// round they belong to.
    pub(super) fn judge_pending(&mut self, ctx: &mut actix::Context<Self>) {
        // A batch at a time, each taken from the waiting set in the same
        // hold of the lock that judges it: a question never waits long on
        // the lock, and finds each symbol-day either waiting or judged.
        let mut judged = Judged::default();
        loop {
            let mut live = self.live.write();
            let super::Live {
                store,
                checks,
                judge,
            } = &mut *live;
            if checks.is_empty() {
                break;
            }
            let part = checks.judge_some(judge, store, JUDGED_AT_ONCE);
            judged.cells.extend(part.cells);
            judged.references.extend(part.references);
        }
        if !judged.cells.is_empty() {
            log::debug!(
                "quality: the checks of {} cells changed",
                judged.cells.len()
            );
        }
        if self.recorder.is_none() {
            return;
        }
        self.dirty.keys.extend(judged.cells);
        if judged.references.is_empty() {
            return;
        }
        // Judged while a round runs: that round's. Between rounds (a late
        // answer, a new `[quality]`): the next round's, so that a round's
        // point in time keeps what stood at its end.
        let round = match (&self.round, self.last) {
            (Some(t), _) => t.round,
            (None, Some(last)) => last.round + 1,
            (None, None) => self.resumed_from + 1,
        };
        self.tell(
            ctx,
            PersistReferences {
                round,
                references: judged.references,
            },
            || {},
        );
    }
}

/// A frozen store with what judging it needs (the flags of every
/// symbol-day that waited are worked out first).
#[derive(actix::Message, Debug)]
#[rtype(result = "ReferenceView")]
pub struct GetReferenceView;

impl actix::Handler<GetReferenceView> for super::Aggregator {
    type Result = actix::MessageResult<GetReferenceView>;

    fn handle(&mut self, _: GetReferenceView, ctx: &mut actix::Context<Self>) -> Self::Result {
        self.judge_pending(ctx);
        let live = self.live.read();
        actix::MessageResult(ReferenceView {
            store: live.store.clone(),
            judge: live.judge.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Flags, Ohlcv, Outcome};
    use crate::store::Observation;

    fn key(exchange: &str, day: u32) -> TaskKey {
        TaskKey {
            exchange: Exchange::new(exchange).unwrap(),
            symbol: Symbol::new("btc").unwrap(),
            day: NaiveDate::from_ymd_opt(2024, 3, day).unwrap(),
        }
    }

    fn put(
        store: &mut Store,
        pending: &mut Pending,
        judge: &Judge,
        k: &TaskKey,
        close: f64,
        round: u64,
    ) {
        let price = Ohlcv::new(close, close, close, close, 1.0).unwrap();
        store.apply(k, &Observation::settled(Outcome::price(price), round));
        pending.touched(judge, k);
    }

    /// Judged a batch at a time, the symbol-days go in order, each once,
    /// and those not yet judged are still waiting for a question to see.
    #[test]
    fn a_pass_in_batches_judges_each_waiting_day_once_and_leaves_the_rest_waiting() {
        let judge = Judge::default();
        let mut store = Store::new();
        let mut pending = Pending::default();
        for day in 1..=3 {
            put(&mut store, &mut pending, &judge, &key("a", day), 100.0, 1);
        }
        // Days 1 to 3, and 4 (whose stale check reads day 3).
        let day_of = |j: &Judged| -> Vec<u32> {
            j.references
                .iter()
                .map(|(_, d, _)| chrono::Datelike::day(d))
                .collect()
        };
        let first = pending.judge_some(&judge, &mut store, 3);
        assert_eq!(day_of(&first), [1, 2, 3]);
        let btc: BTreeSet<Symbol> = [Symbol::new("btc").unwrap()].into();
        let waiting = pending.covering(&btc, None, None).unwrap();
        assert_eq!(waiting, [(Symbol::new("btc").unwrap(), key("a", 4).day)]);
        let rest = pending.judge_some(&judge, &mut store, usize::MAX);
        assert_eq!(day_of(&rest), [4]);
        assert!(pending.is_empty());
    }

    /// A close that was an outlier is no longer one once it is corrected,
    /// and a pass judges only the symbol-days touched (the day and the
    /// next, whose stale check reads it).
    #[test]
    fn a_corrected_close_loses_its_flag_and_only_touched_days_are_judged() {
        let judge = Judge::default();
        let mut store = Store::new();
        let mut pending = Pending::default();
        for day in 1..=5 {
            for (i, e) in ["a", "b", "c", "d"].iter().enumerate() {
                put(
                    &mut store,
                    &mut pending,
                    &judge,
                    &key(e, day),
                    100.0 + i as f64 * 0.1,
                    1,
                );
            }
        }
        put(&mut store, &mut pending, &judge, &key("e", 3), 110.0, 1);
        let judged = pending.judge(&judge, &mut store);
        assert_eq!(judged.cells, [key("e", 3)]);
        assert!(pending.is_empty());
        let flags = |s: &Store| {
            s.get(&key("e", 3).exchange, &key("e", 3).symbol, key("e", 3).day)
                .unwrap()
                .flags
        };
        assert_eq!(flags(&store), Flags::OUTLIER);

        put(&mut store, &mut pending, &judge, &key("e", 3), 100.05, 2);
        let judged = pending.judge(&judge, &mut store);
        assert_eq!(
            judged.cells,
            [],
            "the new price came unflagged and stays so"
        );
        assert_eq!(flags(&store), Flags::NONE);
        let days: Vec<u32> = judged
            .references
            .iter()
            .map(|(_, d, _)| chrono::Datelike::day(d))
            .collect();
        assert_eq!(days, [3, 4], "the day and the next, nothing else");
        assert_eq!(judged.references[0].2.close, Some(100.0 + 0.1));
    }
}
