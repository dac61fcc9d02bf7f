//! The method of `quality`, checked against figures worked out by hand.

use super::*;

fn ex(name: &str) -> Exchange {
    Exchange::new(name).unwrap()
}

fn candle(close: f64, volume: f64) -> Ohlcv {
    Ohlcv::new(close, close, close, close, volume).unwrap()
}

fn usd(name: &str, close: f64, volume: f64) -> Input {
    Input {
        exchange: ex(name),
        price: candle(close, volume),
        provisional: false,
        flags: Flags::NONE,
        quote: Quote::Usd,
        previous: None,
    }
}

#[test]
fn medians_and_deviations() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(median(&[]), None);
    // |x − 2|: 1, 0, 1, 3 → sorted 0, 1, 1, 3 → 1.
    assert_eq!(mad(&[1.0, 2.0, 3.0, 5.0], 2.0), Some(1.0));
}

#[test]
fn the_volume_weighted_median_takes_the_close_where_half_the_volume_is_reached() {
    assert_eq!(
        weighted_median(&[(10.0, 5.0), (20.0, 1.0), (30.0, 1.0)]),
        Some(10.0)
    );
    // Total 4, half 2: reached exactly at 20, so the mean of 20 and 30.
    assert_eq!(
        weighted_median(&[(30.0, 2.0), (10.0, 1.0), (20.0, 1.0)]),
        Some(25.0)
    );
    assert_eq!(
        weighted_median(&[(30.0, 0.0), (10.0, 0.0), (20.0, 0.0)]),
        Some(20.0),
        "no volume at all: the plain median"
    );
    assert_eq!(weighted_median(&[]), None);
}

#[test]
fn an_outlier_is_further_from_the_others_median_than_k_mads_or_the_floor() {
    let s = Settings::default();
    // Others 100, 101, 99, 100.5: median 100.25; deviations 0.25, 0.75,
    // 1.25, 0.25 → MAD 0.5; threshold max(5 × 0.5, 2 % × 100.25) = 2.5.
    let verdict = outlier(110.0, &[100.0, 101.0, 99.0, 100.5], &s);
    assert_eq!(
        verdict,
        Some(Exclusion::Outlier {
            median: 100.25,
            threshold: 2.5
        })
    );
    assert_eq!(
        outlier(102.7, &[100.0, 101.0, 99.0, 100.5], &s),
        None,
        "within 2.5"
    );
    // Identical others (MAD 0): the 2 % floor keeps a 1 % difference in.
    assert_eq!(outlier(101.0, &[100.0, 100.0, 100.0], &s), None);
    assert!(outlier(103.0, &[100.0, 100.0, 100.0], &s).is_some());
    assert_eq!(outlier(200.0, &[100.0, 100.0], &s), None, "needs 3 others");
}

/// Five exchanges, one 10 % off: it is left out as an outlier, and the
/// reference is the volume-weighted median of the other four.
#[test]
fn a_close_ten_percent_off_is_left_out_and_the_rest_give_the_reference() {
    let inputs = [
        usd("a", 100.0, 10.0),
        usd("b", 101.0, 30.0),
        usd("c", 99.0, 20.0),
        usd("d", 100.5, 40.0),
        usd("e", 110.0, 100.0),
    ];
    let j = judge(&inputs, &Settings::default());
    assert_eq!(j.flags[4], Flags::OUTLIER);
    assert!(j.flags[..4].iter().all(|f| f.is_empty()));
    let r = j.reference;
    assert_eq!(r.excluded.len(), 1);
    assert_eq!(r.excluded[0].exchange, ex("e"));
    assert_eq!(r.excluded[0].why.flag(), Some("outlier"));
    // By close: 99 (20), 100 (10), 100.5 (40), 101 (30); total 100, half
    // 50, first reached at 100.5 (20 + 10 + 40 = 70).
    assert_eq!(r.close, Some(100.5));
    assert_eq!(r.status, Status::Final);
    assert_eq!(
        r.constituents
            .iter()
            .map(|c| c.exchange.as_str())
            .collect::<Vec<_>>(),
        ["c", "a", "d", "b"]
    );
    let d = r.dispersion.unwrap();
    assert_eq!((d.min, d.max), (99.0, 101.0));
    assert!((d.spread - 2.0 / 100.5).abs() < 1e-12);
}

#[test]
fn a_stablecoin_close_counts_only_on_a_day_its_peg_holds() {
    let mut tether = usd("t", 100.2, 50.0);
    tether.quote = Quote::Stable {
        coin: "usdt".into(),
        peg: Some(0.95),
    };
    let inputs = [
        usd("a", 100.0, 10.0),
        usd("b", 100.4, 10.0),
        usd("c", 99.8, 10.0),
        tether.clone(),
    ];
    let j = judge(&inputs, &Settings::default());
    assert_eq!(j.flags[3], Flags::OFF_PEG);
    let r = j.reference;
    assert_eq!(
        r.excluded,
        [Excluded {
            exchange: ex("t"),
            why: Exclusion::OffPeg {
                coin: "usdt".into(),
                peg: 0.95
            }
        }]
    );
    assert_eq!(r.excluded[0].why.flag(), Some("off_peg"));
    assert_eq!(r.close, Some(100.0));
    tether.quote = Quote::Stable {
        coin: "usdt".into(),
        peg: Some(0.998),
    };
    let inputs = [
        usd("a", 100.0, 10.0),
        usd("b", 100.4, 10.0),
        usd("c", 99.8, 10.0),
        tether,
    ];
    let r = judge(&inputs, &Settings::default()).reference;
    assert!(r.excluded.is_empty(), "{:?}", r.excluded);
    assert_eq!(
        r.close,
        Some(100.2),
        "the USDT close, with most volume, counts"
    );
}

#[test]
fn a_repeated_zero_volume_candle_is_stale_and_another_unit_is_not_usd() {
    let mut repeat = usd("s", 100.0, 0.0);
    repeat.previous = Some(candle(100.0, 12.0));
    let mut euro = usd("x", 90.0, 5.0);
    euro.quote = Quote::Other("EUR".into());
    let mut moved = usd("m", 100.0, 0.0);
    moved.previous = Some(candle(99.0, 3.0));
    let j = judge(
        &[
            repeat,
            euro,
            moved,
            usd("a", 100.0, 1.0),
            usd("b", 100.0, 1.0),
        ],
        &Settings::default(),
    );
    assert_eq!(j.flags[..3], [Flags::STALE, Flags::NONE, Flags::NONE]);
    let r = j.reference;
    assert_eq!(r.excluded[0].exchange, ex("s"));
    assert_eq!(r.excluded[0].why, Exclusion::Stale);
    assert_eq!(r.excluded[0].why.flag(), Some("stale"));
    assert_eq!(
        r.excluded[1].why,
        Exclusion::NotUsd {
            quote: "EUR".into()
        }
    );
    assert_eq!(r.excluded[1].why.flag(), None, "kept as sent, no flag");
    assert_eq!(r.constituents.len(), 3, "zero volume but moved: not stale");
}

#[test]
fn two_exchanges_are_insufficient_and_a_provisional_one_makes_it_provisional() {
    let r = judge(
        &[usd("a", 100.0, 1.0), usd("b", 101.0, 1.0)],
        &Settings::default(),
    )
    .reference;
    assert_eq!((r.close, r.status), (None, Status::Insufficient));
    assert_eq!(r.constituents.len(), 2, "the evidence is kept all the same");
    let mut today = usd("c", 100.5, 1.0);
    today.provisional = true;
    let r = judge(
        &[usd("a", 100.0, 1.0), usd("b", 101.0, 1.0), today],
        &Settings::default(),
    )
    .reference;
    assert_eq!((r.close, r.status), (Some(100.5), Status::Provisional));
}

/// Volumes a reader sums to exactly half (0.1 + 0.2 of 0.6) reach it,
/// although the floating-point sum is a hair above.
#[test]
fn half_the_volume_reached_by_a_rounding_error_still_takes_the_mean() {
    assert_eq!(
        weighted_median(&[(10.0, 0.1), (20.0, 0.2), (30.0, 0.3)]),
        Some(25.0)
    );
}

/// Found against issue 21: a stablecoin close whose peg has no close that
/// day was flagged `off_peg` (nothing said it was off), a stale repeat in
/// a stablecoin off its peg lost its `stale` flag, and a close flagged
/// `zero` when it came counted in the reference ("unflagged closes").
#[test]
fn each_check_flags_on_its_own_evidence_and_a_faulty_close_stays_out() {
    let mut unknown = usd("u", 100.0, 5.0);
    unknown.quote = Quote::Stable {
        coin: "usdc".into(),
        peg: None,
    };
    let mut repeat_off_peg = usd("r", 100.0, 0.0);
    repeat_off_peg.previous = Some(candle(100.0, 0.0));
    repeat_off_peg.quote = Quote::Stable {
        coin: "usdt".into(),
        peg: Some(0.9),
    };
    let mut zero = usd("z", 0.0, 50.0);
    zero.flags = Flags::ZERO;
    let j = judge(
        &[
            unknown,
            repeat_off_peg,
            zero,
            usd("a", 100.0, 1.0),
            usd("b", 100.0, 1.0),
            usd("c", 100.0, 1.0),
        ],
        &Settings::default(),
    );
    assert_eq!(
        j.flags[..3],
        [Flags::NONE, Flags::STALE | Flags::OFF_PEG, Flags::NONE]
    );
    let r = j.reference;
    assert_eq!(
        r.excluded[0].why,
        Exclusion::PegUnknown {
            coin: "usdc".into()
        }
    );
    assert_eq!(
        r.excluded[2].why,
        Exclusion::Flagged {
            flags: vec!["zero".to_string()]
        }
    );
    assert_eq!((r.close, r.constituents.len()), (Some(100.0), 3));
}
