//! `[quality]`: numbers in their ranges, and each peg market one the
//! universe fetches, in the market its exchange's table names.

use super::super::quality::QualityConfig;
use super::super::Config;
use super::Finding;
use crate::source::exchanges::check_market;

pub(in crate::config) fn quality(c: &Config) -> Vec<Finding> {
    let q: &QualityConfig = &c.quality;
    let mut out = Vec::new();
    if !(q.k.is_finite() && q.k > 0.0) {
        out.push(Finding::at(
            "quality.k",
            format!(
                "{} is out of range: expected a number of MADs above 0, e.g. 5",
                q.k
            ),
        ));
    }
    for (key, value, example) in [
        ("quality.floor", q.floor, "0.02 for 2 %"),
        ("quality.peg_tolerance", q.peg_tolerance, "0.005 for 0.5 %"),
    ] {
        if !(value.is_finite() && (0.0..1.0).contains(&value)) {
            out.push(Finding::at(
                key,
                format!("{value} is out of range: expected a share from 0 up to 1, e.g. {example}"),
            ));
        }
    }
    if q.min_exchanges == 0 {
        out.push(Finding::at(
            "quality.min_exchanges",
            "must be at least 1 (a reference needs a close)",
        ));
    }
    for (coin, peg) in &q.peg {
        let key = format!("quality.peg.{coin}");
        if let Some(list) = c.universe.exchanges.list() {
            if !list.contains(&peg.exchange) {
                out.push(Finding::at(
                    key.clone(),
                    format!(
                        "{peg} is not fetched: add {} to universe.exchanges (a peg is fetched like any cell)",
                        peg.exchange
                    ),
                ));
            }
        }
        if let Some(list) = c.universe.symbols.list() {
            if !list.contains(coin) {
                out.push(Finding::at(
                    key.clone(),
                    format!("{peg} is not fetched: add {coin} to universe.symbols (a peg is fetched like any cell)"),
                ));
            }
        }
        let Some(table) = c.exchanges.get(&peg.exchange) else {
            continue;
        };
        if let Some(Err(e)) = check_market(table.api, &peg.market) {
            out.push(Finding::at(key.clone(), format!("{peg}: {e}")));
        }
        match table.markets.get(coin) {
            Some(m) if *m != peg.market => out.push(Finding::at(
                key,
                format!(
                    "{peg}: exchanges.{}.markets.{coin} asks {coin} in {m:?}, not {:?}: name the same market in both",
                    peg.exchange, peg.market
                ),
            )),
            _ => {}
        }
    }
    out
}
