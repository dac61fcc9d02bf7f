//! Unit tests of the generated dataset (`dataset/mod.rs`).

use super::*;

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

#[test]
fn same_seed_same_prices_other_seed_other_prices() {
    let a = Dataset::generated(GeneratedSpec::classic(7));
    let b = Dataset::generated(GeneratedSpec::classic(7));
    let c = Dataset::generated(GeneratedSpec::classic(8));
    let mut differ = 0;
    for d in day("2020-03-01").iter_days().take(31) {
        for e in CLASSIC_EXCHANGES {
            assert_eq!(a.lookup(e, "btc", d), b.lookup(e, "btc", d));
            if a.lookup(e, "btc", d) != c.lookup(e, "btc", d) {
                differ += 1;
            }
        }
    }
    assert!(
        differ > 300,
        "another seed changes nearly every price ({differ})"
    );
}

#[test]
fn generated_prices_keep_ohlcv_invariants_and_miss_about_two_percent() {
    let ds = Dataset::generated(GeneratedSpec::classic(42));
    let (mut prices, mut missing) = (0, 0);
    for d in day("2020-01-01").iter_days().take(366) {
        for e in CLASSIC_EXCHANGES {
            for s in CLASSIC_SYMBOLS {
                match ds.lookup(e, s, d) {
                    Lookup::Price(p) => {
                        prices += 1;
                        p.check_order().expect("low <= open, close <= high");
                        assert!(p.low > 0.0 && p.volume > 0.0, "{p:?}");
                    }
                    Lookup::NoPrice => missing += 1,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    }
    let share = f64::from(missing) / f64::from(prices + missing);
    assert!((0.01..0.03).contains(&share), "missing share {share}");
}

#[test]
fn the_classic_dataset_runs_to_any_day_and_is_published_live_by_default() {
    let ds = Dataset::generated(GeneratedSpec::classic(42));
    assert!(ds.runs_to_today());
    let recent = (0..30)
        .filter(|n| {
            let d = day("2026-11-24") - chrono::Days::new(*n);
            matches!(ds.lookup("kraken", "btc", d), Lookup::Price(_))
        })
        .count();
    assert!(recent > 25, "prices in 2026 too ({recent} of 30 days)");
    assert_eq!(ds.publish_delay(None), Some(Duration::ZERO));
    let hour = Duration::from_secs(3600);
    assert_eq!(ds.publish_delay(Some(hour)), Some(hour));

    let mut spec = GeneratedSpec::classic(42);
    spec.to = day("2020-12-31");
    let bounded = Dataset::generated(spec);
    assert!(!bounded.runs_to_today());
    assert_eq!(bounded.publish_delay(None), None, "served as it is");
    assert_eq!(
        bounded.lookup("kraken", "btc", day("2021-01-01")),
        Lookup::NoPrice
    );
    for d in day("2020-12-01").iter_days().take(31) {
        for s in CLASSIC_SYMBOLS {
            assert_eq!(
                ds.lookup("bitstamp", s, d),
                bounded.lookup("bitstamp", s, d),
                "where the range ends changes no price: {s} {d}"
            );
        }
    }
}

#[test]
fn outside_the_range_and_unknown_names_have_no_price() {
    let ds = Dataset::generated(GeneratedSpec::classic(42));
    assert_eq!(
        ds.lookup("kraken", "btc", day("2019-12-31")),
        Lookup::NoPrice
    );
    assert_eq!(
        ds.lookup("nasdaq", "btc", day("2020-01-05")),
        Lookup::UnknownExchange
    );
    assert_eq!(
        ds.lookup("kraken", "doge", day("2020-01-05")),
        Lookup::UnknownSymbol
    );
}

#[test]
fn csv_data_is_served_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.csv");
    std::fs::write(
        &path,
        "exchange,symbol,day,open,high,low,close,volume\n\
         kraken,eth,2020-03-13,195.24,195.24,102,107.97,7901.27262233\n\
         bitstamp,btc,2020-03-13,1,2,0.5,1.5,3\n",
    )
    .unwrap();
    let ds = Dataset::from_csv(&path).unwrap();
    assert_eq!(ds.exchanges().len(), 2);
    match ds.lookup("kraken", "eth", day("2020-03-13")) {
        Lookup::Price(p) => assert_eq!((p.low, p.close), (102.0, 107.97)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        ds.lookup("kraken", "btc", day("2020-03-13")),
        Lookup::NoPrice
    );
    assert_eq!(ds.lookup("bitstamp", "btc", day("2020-03-13")).clone(), {
        Lookup::Price(Ohlcv::new(1.0, 2.0, 0.5, 1.5, 3.0).unwrap())
    });
}

#[test]
fn a_gzipped_csv_loads_the_same_rows_whatever_its_name() {
    use std::io::Write;
    let text = "exchange,symbol,day,open,high,low,close,volume\n\
                kraken,eth,2020-03-13,195.24,195.24,102,107.97,7901.27262233\n\
                kraken,btc,2020-03-13,5000,5100,4000,4100,12.5\n\
                bitstamp,btc,2020-03-14,1,2,0.5,1.5,3\n";
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.csv");
    std::fs::write(&plain, text).unwrap();
    // Named .csv on purpose: the content says it is gzip, not the name.
    let packed = dir.path().join("packed.csv");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::write(&packed, gz.finish().unwrap()).unwrap();

    let a = Dataset::from_csv(&plain).unwrap();
    let b = Dataset::from_csv(&packed).unwrap();
    assert_eq!(a.exchanges(), b.exchanges());
    assert_eq!(a.symbols(), b.symbols());
    let mut prices = 0;
    for e in ["kraken", "bitstamp"] {
        for s in ["btc", "eth"] {
            for d in ["2020-03-13", "2020-03-14"] {
                let want = a.lookup(e, s, day(d));
                prices += usize::from(matches!(want, Lookup::Price(_)));
                assert_eq!(b.lookup(e, s, day(d)), want, "{e}/{s}/{d}");
            }
        }
    }
    assert_eq!(prices, 3);
}

#[test]
fn a_truncated_gzip_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.csv.gz");
    std::fs::write(&path, [0x1f, 0x8b, 0x08, 0x00, 0x00]).unwrap();
    let err = Dataset::from_csv(&path).unwrap_err().to_string();
    assert!(err.contains("broken.csv.gz"), "{err}");
}

#[test]
fn a_bad_csv_row_names_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.csv");
    std::fs::write(
        &path,
        "exchange,symbol,day,open,high,low,close,volume\n\
         kraken,eth,2020-03-13,1,2,0.5,1.5,3\n\
         kraken,eth,2020-13-13,1,2,0.5,1.5,3\n",
    )
    .unwrap();
    let err = Dataset::from_csv(&path).unwrap_err().to_string();
    assert!(
        err.contains("p.csv:3:") && err.contains("2020-13-13"),
        "{err}"
    );
}

/// `serve --exchanges 20 --markets 1000 --days 1000`'s universe.
fn big(seed: u64) -> Dataset {
    Dataset::generated(GeneratedSpec::universe(
        seed,
        GeneratedSpec::numbered_exchanges(20),
        1000,
        1000,
    ))
}

#[test]
fn a_synthetic_universe_is_the_same_for_a_seed_and_another_for_another_seed() {
    let (a, b, c) = (big(7), big(7), big(8));
    assert_eq!(a.exchanges().len(), 20);
    assert_eq!(a.symbols().len(), 1000);
    assert_eq!(
        a.span(),
        Some((day("2020-01-01"), day("2022-09-26"))),
        "1000 days from 2020-01-01"
    );
    let (mut same, mut differ) = (0, 0);
    for (e, s, d) in [
        ("ex-0001", "s0001", "2020-01-01"),
        ("ex-0020", "s1000", "2022-09-26"),
        ("ex-0007", "s0500", "2021-05-17"),
    ] {
        let price = a.lookup(e, s, day(d));
        assert!(matches!(price, Lookup::Price(_)), "{e}/{s}/{d}: {price:?}");
        assert_eq!(price, b.lookup(e, s, day(d)), "{e}/{s}/{d}");
        if price != c.lookup(e, s, day(d)) {
            differ += 1;
        } else {
            same += 1;
        }
    }
    assert_eq!((same, differ), (0, 3), "another seed, other candles");
    assert_eq!(
        a.lookup("ex-0001", "s0001", day("2022-09-27")),
        Lookup::NoPrice
    );
    assert_eq!(
        a.lookup("ex-0021", "s0001", day("2020-01-01")),
        Lookup::UnknownExchange
    );
    assert_eq!(
        a.lookup("ex-0001", "s1001", day("2020-01-01")),
        Lookup::UnknownSymbol
    );
}

#[test]
fn every_cell_of_a_synthetic_universe_is_a_plausible_candle() {
    let ds = big(crate::model::DEFAULT_SEED);
    let mut n = 0;
    for e in ["ex-0001", "ex-0013"] {
        for s in ["s0001", "s0042", "s0999"] {
            for d in day("2020-01-01").iter_days().take(1000) {
                let Lookup::Price(p) = ds.lookup(e, s, d) else {
                    panic!("{e}/{s}/{d} has no price: every cell has one");
                };
                p.check_order().expect("low <= open, close <= high");
                assert!(p.low > 0.0 && p.volume >= 0.0, "{e}/{s}/{d}: {p:?}");
                n += 1;
            }
        }
    }
    assert_eq!(n, 6000);
}
