//! The store's rules told as stories: what each kind of result does to a
//! cell that already holds something, how series grow, and that a clone is
//! a frozen copy. Helpers build keys and observations in one line each.

use super::*;

fn key(exchange: &str, symbol: &str, day: u32) -> TaskKey {
    TaskKey {
        exchange: Exchange::new(exchange).unwrap(),
        symbol: Symbol::new(symbol).unwrap(),
        day: NaiveDate::from_ymd_opt(2020, 3, day).unwrap(),
    }
}

fn price(close: f64) -> Outcome {
    Outcome::price(Ohlcv::new(close, close, close, close, 1.0).unwrap())
}

fn failed() -> Outcome {
    Outcome::Failed {
        reason: "server error (503)".into(),
        attempts: 3,
    }
}

fn obs(outcome: Outcome, round: u64, dispatch: u64, is_final: bool) -> Observation {
    Observation {
        outcome,
        is_final,
        asked_at: "2020-03-20T00:00:00Z".parse().unwrap(),
        source: Arc::from("http://a/"),
        stamp: Stamp { round, dispatch },
    }
}

fn get(s: &Store, k: &TaskKey) -> Cell {
    s.get(&k.exchange, &k.symbol, k.day).expect("held")
}

#[test]
fn a_repeat_in_the_same_round_is_counted_again_not_anew() {
    let mut s = Store::new();
    let k = key("kraken", "btc", 1);
    assert_eq!(
        s.apply(&k, &obs(price(5.0), 1, 1, true)),
        Applied::New(CellState::Final)
    );
    assert_eq!(
        s.apply(&k, &obs(price(5.0), 1, 2, true)),
        Applied::Again {
            before: CellState::Final,
            now: CellState::Final
        }
    );
    assert_eq!(
        s.apply(&k, &obs(price(5.0), 2, 3, true)),
        Applied::New(CellState::Final)
    );
    assert_eq!(s.price_count(), 1);
}

#[test]
fn a_stale_answer_never_overwrites_a_newer_one() {
    let mut s = Store::new();
    let k = key("kraken", "btc", 1);
    s.apply(&k, &obs(price(6.0), 2, 10, false));
    // A hung attempt of round 1 answers late, and a superseded attempt
    // of round 2 too.
    assert_eq!(s.apply(&k, &obs(price(5.0), 1, 99, true)), Applied::Stale);
    assert_eq!(s.apply(&k, &obs(price(5.0), 2, 9, true)), Applied::Stale);
    assert_eq!(s.apply(&k, &obs(price(6.0), 2, 10, false)), Applied::Stale);
    let c = get(&s, &k);
    assert_eq!(c.price.unwrap().close, 6.0);
    assert_eq!((c.state, c.round), (CellState::Provisional, 2));
}

#[test]
fn a_failure_never_replaces_an_answer_but_is_noted_and_counted() {
    let mut s = Store::new();
    let k = key("kraken", "btc", 1);
    s.apply(&k, &obs(price(5.0), 1, 1, false));
    assert_eq!(
        s.apply(&k, &obs(failed(), 2, 2, false)),
        Applied::New(CellState::Failed)
    );
    let c = get(&s, &k);
    assert_eq!(c.state, CellState::Provisional);
    assert_eq!(c.price.unwrap().close, 5.0);
    assert_eq!(c.note.unwrap().reason, "server error (503)");
    assert!(
        s.failed().is_empty(),
        "the cell holds a price, not a failure"
    );
}

#[test]
fn a_provisional_none_keeps_a_held_price_and_a_final_none_replaces_it() {
    let mut s = Store::new();
    let k = key("kraken", "btc", 1);
    s.apply(&k, &obs(price(5.0), 1, 1, false));
    assert_eq!(
        s.apply(&k, &obs(Outcome::NoPrice, 2, 2, false)),
        Applied::New(CellState::Provisional)
    );
    assert_eq!(get(&s, &k).price.unwrap().close, 5.0);
    s.apply(&k, &obs(Outcome::NoPrice, 3, 3, true));
    let c = get(&s, &k);
    assert_eq!((c.state, c.price), (CellState::NoPrice, None));
}

#[test]
fn an_answer_replaces_a_failure_and_its_reason() {
    let mut s = Store::new();
    let k = key("kraken", "btc", 1);
    s.apply(&k, &obs(failed(), 1, 1, true));
    assert_eq!(s.failed().len(), 1);
    assert_eq!(s.failed()[0].reason, "server error (503)");
    s.apply(&k, &obs(Outcome::NoPrice, 1, 2, true));
    assert!(s.failed().is_empty());
    let c = get(&s, &k);
    assert_eq!((c.state, c.note), (CellState::NoPrice, None));
}

#[test]
fn only_final_answers_and_rejections_from_the_same_source_settle() {
    let mut s = Store::new();
    let settled = |s: &Store, d| s.is_settled(&key("kraken", "btc", d), "http://a/");
    s.apply(&key("kraken", "btc", 1), &obs(price(1.0), 1, 1, true));
    s.apply(&key("kraken", "btc", 2), &obs(price(1.0), 1, 2, false));
    s.apply(&key("kraken", "btc", 3), &obs(Outcome::NoPrice, 1, 3, true));
    s.apply(
        &key("kraken", "btc", 4),
        &obs(Outcome::NoPrice, 1, 4, false),
    );
    s.apply(&key("kraken", "btc", 5), &obs(failed(), 1, 5, true));
    let rejected = Outcome::Rejected {
        reason: "ohlc order".into(),
        price: None,
    };
    s.apply(&key("kraken", "btc", 6), &obs(rejected, 1, 6, true));
    let got: Vec<bool> = (1..=7).map(|d| settled(&s, d)).collect();
    assert_eq!(got, [true, false, true, false, false, true, false]);
    assert!(
        !s.is_settled(&key("kraken", "btc", 1), "http://b/"),
        "another source makes the cell due again"
    );
}

#[test]
fn series_grow_both_ways_and_keep_notes_aligned() {
    let mut s = Store::new();
    s.apply(&key("kraken", "btc", 10), &obs(failed(), 1, 1, true));
    s.apply(&key("kraken", "btc", 20), &obs(price(2.0), 1, 2, true));
    s.apply(&key("kraken", "btc", 2), &obs(price(1.0), 1, 3, true));
    let got: Vec<_> = s
        .iter()
        .map(|(_, _, d, c)| (d.format("%d").to_string(), c.state))
        .collect();
    assert_eq!(
        got,
        vec![
            ("02".into(), CellState::Final),
            ("10".into(), CellState::Failed),
            ("20".into(), CellState::Final)
        ]
    );
    assert_eq!(s.failed()[0].day, key("kraken", "btc", 10).day);
}

#[test]
fn a_clone_is_a_frozen_copy() {
    let mut s = Store::new();
    let k = key("kraken", "btc", 1);
    s.apply(&k, &obs(price(5.0), 1, 1, true));
    let frozen = s.clone();
    s.apply(&k, &obs(price(6.0), 2, 2, true));
    s.apply(&key("kraken", "eth", 1), &obs(price(7.0), 2, 3, true));
    assert_eq!(frozen.price_count(), 1);
    assert_eq!(get(&frozen, &k).price.unwrap().close, 5.0);
}

/// The slot keeps the low 32 bits of a dispatch number: results of one
/// round stay ordered across a wrap of those bits, and an earlier round
/// never replaces a later one whatever its dispatch number.
#[test]
fn dispatch_numbers_stay_ordered_across_32_bits() {
    let mut s = Store::new();
    let k = key("kraken", "btc", 1);
    let before_wrap = u64::from(u32::MAX) - 1;
    let after_wrap = (1 << 32) + 2;
    assert_eq!(
        s.apply(&k, &obs(price(5.0), 7, before_wrap, true)),
        Applied::New(CellState::Final)
    );
    assert!(matches!(
        s.apply(&k, &obs(price(6.0), 7, after_wrap, true)),
        Applied::Again { .. }
    ));
    assert_eq!(
        s.apply(&k, &obs(price(4.0), 7, before_wrap + 1, true)),
        Applied::Stale,
        "dispatched before the one held"
    );
    assert_eq!(
        s.apply(&k, &obs(price(3.0), 6, after_wrap + 5, true)),
        Applied::Stale,
        "an earlier round"
    );
    assert_eq!(get(&s, &k).price.map(|p| p.close), Some(6.0));
}

/// `iter_where` gives exactly what filtering every cell gives, for names
/// asked or not, day bounds inside, outside and across the series, and
/// from any cursor.
#[test]
fn iter_where_is_a_filter_of_every_cell_that_skips_what_it_cannot_keep() {
    use std::collections::BTreeSet;
    let mut s = Store::new();
    for e in ["kraken", "okex", "bitstamp"] {
        for sym in ["btc", "eth", "ltc"] {
            for day in 3..=9 {
                s.apply(&key(e, sym, day), &obs(price(f64::from(day)), 1, 1, true));
            }
        }
    }
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|n| n.to_string()).collect() };
    let d = |day: u32| NaiveDate::from_ymd_opt(2020, 3, day).unwrap();
    let cursors = [
        None,
        Some(key("kraken", "eth", 5)),
        Some(key("okex", "ltc", 9)),
    ];
    let bounds = [
        (None, None),
        (Some(d(5)), Some(d(5))),
        (Some(d(1)), Some(d(4))),
        (Some(d(8)), Some(d(20))),
        (Some(d(7)), Some(d(6))),
    ];
    for exchanges in [
        set(&[]),
        set(&["okex"]),
        set(&["bitstamp", "okex", "nowhere"]),
    ] {
        for symbols in [set(&[]), set(&["eth"]), set(&["btc", "ltc", "doge"])] {
            let exchanges: BTreeSet<Exchange> = exchanges
                .iter()
                .map(|n| Exchange::new(n).unwrap())
                .collect();
            let symbols: BTreeSet<Symbol> =
                symbols.iter().map(|n| Symbol::new(n).unwrap()).collect();
            for cursor in &cursors {
                for (from, to) in bounds {
                    let want: Vec<_> = s
                        .iter_after(cursor.as_ref())
                        .filter(|(e, sym, day, _)| {
                            (exchanges.is_empty() || exchanges.contains(*e))
                                && (symbols.is_empty() || symbols.contains(*sym))
                                && from.is_none_or(|f| *day >= f)
                                && to.is_none_or(|t| *day <= t)
                        })
                        .map(|(e, sym, day, _)| (e.clone(), sym.clone(), day))
                        .collect();
                    let got: Vec<_> = s
                        .iter_where(cursor.as_ref(), &exchanges, &symbols, from, to)
                        .map(|(e, sym, day, _)| (e.clone(), sym.clone(), day))
                        .collect();
                    assert_eq!(
                        got, want,
                        "{exchanges:?} {symbols:?} {cursor:?} {from:?}..{to:?}"
                    );
                }
            }
        }
    }
}

/// What the census says, counted the slow way: a walk of every cell.
fn walked(s: &Store) -> (BTreeMap<CellState, usize>, usize) {
    let mut by: BTreeMap<CellState, usize> = CellState::ALL.map(|c| (c, 0)).into();
    let mut prices = 0;
    for (_, _, _, cell) in s.iter() {
        *by.entry(cell.state).or_default() += 1;
        prices += usize::from(cell.usable_price().is_some());
    }
    (by, prices)
}

#[test]
fn the_counts_kept_as_cells_change_are_what_a_walk_of_every_cell_finds() {
    let mut s = Store::new();
    let check = |s: &Store| {
        let (by, prices) = walked(s);
        assert_eq!(s.counts_by_state(), by);
        assert_eq!(s.price_count(), prices);
        assert_eq!(s.len(), by.values().sum::<usize>());
    };
    let none = Outcome::NoPrice;
    let rejected = Outcome::Rejected {
        reason: "open above high".into(),
        price: None,
    };
    let steps: [(TaskKey, Outcome, u64, u64, bool); 9] = [
        (key("kraken", "btc", 1), price(1.0), 1, 1, true),
        (key("kraken", "btc", 2), price(2.0), 1, 2, false),
        (key("kraken", "btc", 3), none.clone(), 1, 3, true),
        (key("kraken", "eth", 1), failed(), 1, 4, true),
        // A failure keeps the price it meets; a provisional "none" too.
        (key("kraken", "btc", 1), failed(), 2, 1, true),
        (key("kraken", "btc", 2), none.clone(), 2, 2, false),
        // A stale answer changes nothing.
        (key("kraken", "btc", 3), price(9.0), 1, 1, true),
        (key("bitstamp", "btc", 5), rejected, 2, 3, true),
        (key("kraken", "eth", 1), price(3.0), 2, 4, true),
    ];
    for (k, outcome, round, dispatch, is_final) in steps {
        s.apply(&k, &obs(outcome, round, dispatch, is_final));
        check(&s);
    }
    assert_eq!(s.price_count(), 3);
    // Put back as loaded, over a held cell and a new one.
    let mut loaded = get(&s, &key("kraken", "btc", 3));
    s.put(&key("kraken", "btc", 1), &loaded);
    check(&s);
    loaded.state = CellState::Final;
    loaded.price = Some(Ohlcv::new(1.0, 1.0, 1.0, 1.0, 1.0).unwrap());
    s.put(&key("kraken", "ltc", 9), &loaded);
    check(&s);
    // Built from a record, and demoted as an old snapshot is.
    let mut b = StoreBuilder::new();
    for (e, sym, day, cell) in s.iter() {
        let k = TaskKey {
            exchange: e.clone(),
            symbol: sym.clone(),
            day,
        };
        b.put(&k, &cell);
    }
    let mut built = b.finish();
    check(&built);
    assert_eq!(built.counts_by_state(), s.counts_by_state());
    built.demote_from(NaiveDate::from_ymd_opt(2020, 3, 2).unwrap());
    check(&built);
}
