//! How one symbol's day compares across exchanges: count, lowest and highest
//! close (and where), median, volume-weighted close and spread.
//!
//! Pure arithmetic on `Row`s; rendering the figures is `crate::render`'s.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::model::{Exchange, Ohlcv, Symbol};
use crate::query::{Filter, Row};
use crate::store::Store;

/// Cross-exchange figures for one (symbol, day), over the exchanges that have
/// a price. Only built by `across`, so `exchanges` is never 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Across {
    pub symbol: Symbol,
    pub day: NaiveDate,
    /// How many exchanges have a price.
    pub exchanges: usize,
    pub min_close: f64,
    /// Where `min_close` was seen; on a tie, the alphabetically first exchange.
    pub min_exchange: Exchange,
    pub max_close: f64,
    /// Where `max_close` was seen; on a tie, the alphabetically first exchange.
    pub max_exchange: Exchange,
    /// The mean of the two middle values for an even count.
    pub median_close: f64,
    /// sum(close * volume) / sum(volume); None when the total volume is 0
    /// (no trade to weigh by) or the result is not a finite number.
    pub vwap_close: Option<f64>,
    /// (max / min - 1) * 100; None when `min_close` is 0 (no finite spread)
    /// or the result is not a finite number.
    pub spread_pct: Option<f64>,
}

/// Groups rows by (symbol, day), ignoring rows without a price; the output is
/// sorted by (symbol, day). A (symbol, day) where no exchange has a price
/// yields nothing. If the same (exchange, symbol, day) appears with a price
/// more than once, the first one counts: one exchange is one vote.
pub fn across(rows: &[Row]) -> Vec<Across> {
    let mut groups: BTreeMap<(&Symbol, NaiveDate), BTreeMap<&Exchange, Ohlcv>> = BTreeMap::new();
    for row in rows {
        if let Some(price) = row.price {
            groups
                .entry((&row.symbol, row.day))
                .or_default()
                .entry(&row.exchange)
                .or_insert(price);
        }
    }
    groups
        .into_iter()
        .filter_map(|((symbol, day), prices)| summarize(symbol, day, &prices))
        .collect()
}

/// A page of cross-exchange figures over the cells `filter` keeps, in
/// (symbol, day) order, starting after `after`: at most `limit` of them, and
/// where the next page starts if there is more. Works one symbol at a time,
/// so its memory is one symbol's days x exchanges, not the store's.
pub fn across_page(
    store: &Store,
    filter: &Filter,
    after: Option<&(Symbol, NaiveDate)>,
    limit: usize,
) -> (Vec<Across>, Option<(Symbol, NaiveDate)>) {
    let mut out = Vec::new();
    let exchanges: Vec<&Exchange> = store
        .exchanges()
        .filter(|e| filter.exchanges.is_empty() || filter.exchanges.contains(*e))
        .collect();
    let symbols = store.symbols();
    let symbols = symbols
        .into_iter()
        .filter(|s| filter.symbols.is_empty() || filter.symbols.contains(*s))
        .filter(|s| after.is_none_or(|(a, _)| *s >= a));
    for symbol in symbols {
        let mut groups: BTreeMap<NaiveDate, BTreeMap<&Exchange, Ohlcv>> = BTreeMap::new();
        for exchange in &exchanges {
            for (day, cell) in store.cells_of(exchange, symbol) {
                let past_cursor = after.is_none_or(|(s, d)| symbol > s || day > *d);
                if !past_cursor
                    || !filter.matches(exchange, symbol, day)
                    || !filter.keeps(cell.state, cell.flags)
                {
                    continue;
                }
                if let Some(price) = cell.usable_price() {
                    groups.entry(day).or_default().insert(exchange, price);
                }
            }
        }
        for (day, prices) in groups {
            if out.len() == limit {
                let next = out.last().map(|a: &Across| (a.symbol.clone(), a.day));
                return (out, next);
            }
            if let Some(a) = summarize(symbol, day, &prices) {
                out.push(a);
            }
        }
    }
    (out, None)
}

/// The figures for one group; `prices` iterates in exchange order, which is
/// what makes ties go to the alphabetically first exchange.
fn summarize(
    symbol: &Symbol,
    day: NaiveDate,
    prices: &BTreeMap<&Exchange, Ohlcv>,
) -> Option<Across> {
    let mut iter = prices.iter();
    let (first_exchange, first) = iter.next()?;
    let (mut min_close, mut min_exchange) = (first.close, *first_exchange);
    let (mut max_close, mut max_exchange) = (first.close, *first_exchange);
    for (exchange, p) in iter {
        // Strict comparisons: an equal close later in the order never wins.
        if p.close < min_close {
            (min_close, min_exchange) = (p.close, *exchange);
        }
        if p.close > max_close {
            (max_close, max_exchange) = (p.close, *exchange);
        }
    }

    let mut closes: Vec<f64> = prices.values().map(|p| p.close).collect();
    closes.sort_by(f64::total_cmp);
    let mid = closes.len() / 2;
    let median_close = if closes.len() % 2 == 1 {
        closes[mid]
    } else {
        mean_of_two(closes[mid - 1], closes[mid])
    };

    let total_volume: f64 = prices.values().map(|p| p.volume).sum();
    let weighted: f64 = prices.values().map(|p| p.close * p.volume).sum();
    let vwap_close = (total_volume != 0.0)
        .then(|| weighted / total_volume)
        .filter(|v| v.is_finite());

    // (max - min) / min is (max / min - 1) without the cancellation that
    // subtracting 1 causes when the two closes are near each other.
    let spread_pct = (min_close != 0.0)
        .then(|| (max_close - min_close) / min_close * 100.0)
        .filter(|s| s.is_finite());

    Some(Across {
        symbol: symbol.clone(),
        day,
        exchanges: prices.len(),
        min_close,
        min_exchange: min_exchange.clone(),
        max_close,
        max_exchange: max_exchange.clone(),
        median_close,
        vwap_close,
        spread_pct,
    })
}

/// (a + b) / 2, falling back to halving first when the sum overflows.
fn mean_of_two(a: f64, b: f64) -> f64 {
    let mean = (a + b) / 2.0;
    if mean.is_finite() {
        mean
    } else {
        a / 2.0 + b / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::fixtures::{cv, day, ex, row, sym};

    fn only(rows: &[Row]) -> Across {
        let mut out = across(rows);
        assert_eq!(out.len(), 1, "expected one (symbol, day): {out:?}");
        out.remove(0)
    }

    #[test]
    fn across_matches_a_hand_computed_day() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("kraken", "btc", d, Some(cv(110.0, 2.0))),
            row("binance", "btc", d, Some(cv(100.0, 1.0))),
            row("coinbase", "btc", d, Some(cv(104.0, 1.0))),
        ]);
        assert_eq!(a.symbol, sym("btc"));
        assert_eq!(a.day, d);
        assert_eq!(a.exchanges, 3);
        assert_eq!((a.min_close, a.min_exchange.as_str()), (100.0, "binance"));
        assert_eq!((a.max_close, a.max_exchange.as_str()), (110.0, "kraken"));
        assert_eq!(a.median_close, 104.0);
        // (100*1 + 110*2 + 104*1) / 4 = 424 / 4
        assert_eq!(a.vwap_close, Some(106.0));
        // (110 / 100 - 1) * 100
        let spread = a.spread_pct.expect("a spread");
        assert!((spread - 10.0).abs() < 1e-12, "{spread}");
    }

    #[test]
    fn across_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("d", "btc", d, Some(cv(120.0, 1.0))),
            row("a", "btc", d, Some(cv(104.0, 1.0))),
            row("c", "btc", d, Some(cv(100.0, 1.0))),
            row("b", "btc", d, Some(cv(110.0, 1.0))),
        ]);
        assert_eq!(a.exchanges, 4);
        assert_eq!(a.median_close, 107.0);
        assert_eq!(a.vwap_close, Some(108.5));
        assert_eq!(
            (a.min_exchange.as_str(), a.max_exchange.as_str()),
            ("c", "d")
        );
    }

    #[test]
    fn across_ignores_an_exchange_without_a_price() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("binance", "btc", d, Some(cv(100.0, 1.0))),
            row("aax", "btc", d, None),
            row("kraken", "btc", d, Some(cv(110.0, 3.0))),
        ]);
        assert_eq!(a.exchanges, 2);
        assert_eq!(a.min_exchange, ex("binance"));
        assert_eq!(a.median_close, 105.0);
        assert_eq!(a.vwap_close, Some(107.5));
    }

    #[test]
    fn across_skips_a_day_no_exchange_has_a_price() {
        let rows = [
            row("binance", "btc", day(2020, 3, 13), None),
            row("kraken", "btc", day(2020, 3, 13), None),
            row("kraken", "btc", day(2020, 3, 14), Some(cv(1.0, 1.0))),
        ];
        let out = across(&rows);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].day, day(2020, 3, 14));
        assert!(across(&[]).is_empty());
    }

    #[test]
    fn across_has_no_vwap_when_nothing_traded() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("binance", "btc", d, Some(cv(100.0, 0.0))),
            row("kraken", "btc", d, Some(cv(110.0, 0.0))),
        ]);
        assert_eq!(a.vwap_close, None);
        assert_eq!(a.median_close, 105.0);
        assert!(a.spread_pct.is_some());
    }

    #[test]
    fn across_ties_go_to_the_alphabetically_first_exchange() {
        let d = day(2020, 3, 13);
        // Listed in reverse order so that input order cannot pass the test.
        let a = only(&[
            row("kraken", "btc", d, Some(cv(100.0, 1.0))),
            row("coinbase", "btc", d, Some(cv(120.0, 1.0))),
            row("bitstamp", "btc", d, Some(cv(120.0, 1.0))),
            row("binance", "btc", d, Some(cv(100.0, 1.0))),
        ]);
        assert_eq!(a.min_exchange, ex("binance"));
        assert_eq!(a.max_exchange, ex("bitstamp"));

        let flat = only(&[
            row("z", "btc", d, Some(cv(7.0, 1.0))),
            row("m", "btc", d, Some(cv(7.0, 1.0))),
        ]);
        assert_eq!(
            (flat.min_exchange.as_str(), flat.max_exchange.as_str()),
            ("m", "m")
        );
        assert_eq!(flat.spread_pct, Some(0.0));
    }

    #[test]
    fn across_has_no_spread_when_the_lowest_close_is_zero() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("binance", "btc", d, Some(cv(5.0, 1.0))),
            row("kraken", "btc", d, Some(cv(0.0, 1.0))),
        ]);
        assert_eq!((a.min_close, a.min_exchange.as_str()), (0.0, "kraken"));
        assert_eq!(a.spread_pct, None);
    }

    #[test]
    fn across_is_sorted_by_symbol_then_day() {
        let p = Some(cv(1.0, 1.0));
        let rows = [
            row("kraken", "eth", day(2020, 1, 2), p),
            row("kraken", "btc", day(2020, 1, 3), p),
            row("kraken", "btc", day(2020, 1, 1), p),
            row("kraken", "eth", day(2020, 1, 1), p),
        ];
        let keys: Vec<(String, NaiveDate)> = across(&rows)
            .into_iter()
            .map(|a| (a.symbol.to_string(), a.day))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("btc".to_owned(), day(2020, 1, 1)),
                ("btc".to_owned(), day(2020, 1, 3)),
                ("eth".to_owned(), day(2020, 1, 1)),
                ("eth".to_owned(), day(2020, 1, 2)),
            ]
        );
    }

    #[test]
    fn across_counts_a_repeated_exchange_once_with_its_first_price() {
        let d = day(2020, 3, 13);
        let a = only(&[
            row("kraken", "btc", d, None),
            row("kraken", "btc", d, Some(cv(100.0, 1.0))),
            row("kraken", "btc", d, Some(cv(200.0, 1.0))),
        ]);
        assert_eq!(a.exchanges, 1);
        assert_eq!((a.min_close, a.max_close), (100.0, 100.0));
    }
}
