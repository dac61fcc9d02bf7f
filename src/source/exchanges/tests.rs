//! Unit tests of the adapters' shared parts (`exchanges/mod.rs`).

use super::*;
use crate::model::DEFAULT_QUOTES;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn listing(markets: &[(&str, &str, &str)]) -> Vec<Instrument> {
    markets
        .iter()
        .map(|(market, base, quote)| Instrument {
            market: (*market).into(),
            base: (*base).into(),
            quote: (*quote).into(),
        })
        .collect()
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).unwrap()
}

#[test]
fn a_market_is_chosen_in_the_first_of_the_quotes_the_exchange_lists() {
    let list = listing(&[
        ("BTCUSDT", "BTC", "USDT"),
        ("BTCUSD", "BTC", "USD"),
        ("ETHUSDT", "ETH", "USDT"),
        ("ETHEUR", "ETH", "EUR"),
        ("SOLEUR", "SOL", "EUR"),
    ]);
    let chosen = |s: &str, quotes: &[&str]| {
        choose_market_in(&Binance, &sym(s), &list, quotes).map(|i| i.market.as_str())
    };
    assert_eq!(chosen("btc", &DEFAULT_QUOTES), Some("BTCUSD"), "USD first");
    assert_eq!(chosen("btc", &["USDT", "USD"]), Some("BTCUSDT"));
    assert_eq!(chosen("eth", &DEFAULT_QUOTES), Some("ETHUSDT"));
    assert_eq!(chosen("sol", &DEFAULT_QUOTES), None);
    assert_eq!(chosen("sol", &["USD", "EUR"]), Some("SOLEUR"));

    let all = |quotes: &[&str]| -> Vec<String> {
        listed_symbols(&Binance, &list, quotes)
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    assert_eq!(all(&DEFAULT_QUOTES), ["btc", "eth"], "each base once");
    assert_eq!(all(&["USD"]), ["btc"]);
    assert_eq!(all(&["EUR"]), ["eth", "sol"]);
    assert!(all(&["USDC"]).is_empty());
}

#[test]
fn symbols_all_maps_an_exchanges_own_asset_names_back_to_symbols() {
    let list = listing(&[
        ("XBTUSD", "XBT", "USD"),
        ("ETHUSD", "ETH", "USD"),
        ("1INCHUSD", "1INCH", "USD"),
        ("A.BUSD", "A.B", "USD"),
    ]);
    let all = listed_symbols(&Kraken, &list, &["USD"]);
    assert_eq!(all, [sym("1inch"), sym("btc"), sym("eth")]);
    for s in &all {
        let market = choose_market_in(&Kraken, s, &list, &["USD"]).map(|i| &i.market);
        assert!(market.is_some(), "{s} is asked where it was listed");
    }
}

fn candle(day: &str, close: f64) -> Candle {
    Candle {
        open_ms: day_start_ms(d(day)),
        open: 1.0,
        high: 2.0,
        low: 0.5,
        close,
        volume: 10.0,
        still_open: false,
    }
}

#[test]
fn every_exchange_has_its_adapter_with_the_contracts_limits() {
    assert!(adapter(ExchangeApi::Classic).is_none());
    let table = [
        (
            ExchangeApi::Binance,
            "https://data-api.binance.vision/",
            1000,
            10.0,
        ),
        (ExchangeApi::Kraken, "https://api.kraken.com/", 720, 0.8),
        (
            ExchangeApi::Coinbase,
            "https://api.exchange.coinbase.com/",
            300,
            5.0,
        ),
        (
            ExchangeApi::Bitstamp,
            "https://www.bitstamp.net/",
            1000,
            10.0,
        ),
        (ExchangeApi::Okx, "https://www.okx.com/", 100, 8.0),
        (
            ExchangeApi::Bitfinex,
            "https://api-pub.bitfinex.com/",
            10_000,
            0.4,
        ),
        (
            ExchangeApi::Poloniex,
            "https://api.poloniex.com/",
            500,
            20.0,
        ),
        (ExchangeApi::Hitbtc, "https://api.hitbtc.com/", 1000, 10.0),
        (ExchangeApi::Htx, "https://api.huobi.pro/", 41, 5.0),
        (ExchangeApi::Cexio, "https://trade.cex.io/", 1000, 2.0),
    ];
    assert_eq!(table.map(|t| t.0), ExchangeApi::EXCHANGES);
    for (api, url, page, rate) in table {
        let a = adapter(api).unwrap();
        assert_eq!(a.api(), api);
        assert_eq!((a.default_url(), a.page_days()), (url, page), "{api}");
        assert_eq!(a.default_requests_per_second(), rate, "{api}");
        let today = d("2026-12-01");
        let depth = match api {
            ExchangeApi::Kraken => Some(d("2024-12-12")),
            ExchangeApi::Htx => Some(d("2026-09-10")),
            _ => None,
        };
        assert_eq!(a.earliest_day(today), depth, "{api}");
    }
}

proptest::proptest! {
    /// Whatever an exchange sends, no adapter panics, and any price it
    /// yields is finite and non-negative.
    #[test]
    fn any_answer_is_parsed_without_panic(
        status in 100u16..600,
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        rows in proptest::collection::vec((0i64..4_000_000_000, -1e3f64..1e6), 0..4),
    ) {
        let days = DayRange { from: d("2020-03-01"), to: d("2020-03-03") };
        // Random bytes rarely parse; rows of the right shape exercise the
        // number and time checks past the JSON layer.
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|(t, x)| serde_json::json!([t, x.to_string(), x, x, x, x, x, x, "1"]))
            .collect();
        let shaped = serde_json::to_vec(&rows).unwrap_or_default();
        for api in ExchangeApi::EXCHANGES {
            let a = adapter(api).unwrap();
            for b in [&body, &shaped] {
                if let Ok(page) = a.parse_candles("M", days, status, Some("5"), b, OhlcOrder::Flag) {
                    proptest::prop_assert_eq!(page.len(), 3);
                    for day in page {
                        if let Answer::Price { price: p, .. } = day.answer {
                            let all = [p.open, p.high, p.low, p.close, p.volume];
                            proptest::prop_assert!(all.iter().all(|x| x.is_finite() && *x >= 0.0));
                        }
                    }
                }
                let _ = a.parse_instruments(status, b);
            }
        }
    }
}

#[test]
fn a_page_has_one_answer_per_day_and_missing_days_are_none() {
    let days = DayRange {
        from: d("2020-03-01"),
        to: d("2020-03-03"),
    };
    let got = day_answers(
        days,
        &[candle("2020-03-03", 1.5), candle("2020-02-28", 1.0)],
        OhlcOrder::Flag,
    )
    .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].answer, Answer::NoPrice);
    assert_eq!(got[1].answer, Answer::NoPrice);
    assert!(matches!(got[2].answer, Answer::Price { price, .. } if price.close == 1.5));
}

#[test]
fn a_candle_not_at_utc_midnight_is_rejected_for_its_day() {
    let days = DayRange {
        from: d("2020-03-01"),
        to: d("2020-03-01"),
    };
    let mut c = candle("2020-03-01", 1.5);
    c.open_ms += 16 * 3_600_000;
    let got = day_answers(days, &[c], OhlcOrder::Flag).unwrap();
    match &got[0].answer {
        Answer::Rejected { reason, price } => {
            assert!(reason.starts_with("not anchored at 00:00 UTC"), "{reason}");
            assert!(reason.contains("16:00"), "{reason}");
            assert_eq!(price.map(|p| p.close), Some(1.5));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_candles_for_a_day_or_a_bad_number_fail_the_page() {
    let days = DayRange {
        from: d("2020-03-01"),
        to: d("2020-03-01"),
    };
    let twice = [candle("2020-03-01", 1.5), candle("2020-03-01", 1.6)];
    assert!(
        day_answers(days, &twice, OhlcOrder::Flag)
            .unwrap_err()
            .retryable
    );
    let mut nan = candle("2020-03-01", 1.5);
    nan.volume = f64::NAN;
    assert!(day_answers(days, &[nan], OhlcOrder::Flag).is_err());
}

#[test]
fn numbers_come_as_strings_or_numbers_exactly() {
    let v: serde_json::Value =
        serde_json::from_str(r#"["7901.27262233", 56.322, "x", null]"#).unwrap();
    assert_eq!(number(&v[0], "volume"), Ok(7901.27262233));
    assert_eq!(number(&v[1], "close"), Ok(56.322));
    assert!(number(&v[2], "close").unwrap_err().contains("'close'"));
    assert!(number(&v[3], "close").is_err());
}

#[test]
fn pages_are_runs_no_longer_than_a_page_split_at_the_reach() {
    let days: Vec<NaiveDate> = DayRange {
        from: d("2020-01-01"),
        to: d("2020-01-10"),
    }
    .days()
    .filter(|x| *x != d("2020-01-05"))
    .collect();
    let pages = plan_pages(&days, 3, Some(d("2020-01-08")));
    let spans: Vec<(String, String)> = pages
        .iter()
        .map(|p| (p.from.to_string(), p.to.to_string()))
        .collect();
    let want = [
        ("2020-01-01", "2020-01-03"),
        ("2020-01-04", "2020-01-04"),
        ("2020-01-06", "2020-01-07"),
        ("2020-01-08", "2020-01-10"),
    ];
    assert_eq!(
        spans,
        want.map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec()
    );
}

/// The index chooses what a scan of the listing chooses, case aside and
/// the first listed market of a pair winning.
#[test]
fn the_market_index_chooses_what_the_scan_chooses() {
    let list = listing(&[
        ("BTCUSDT", "BTC", "USDT"),
        ("btcusd", "btc", "usd"),
        ("BTCUSD2", "BTC", "USD"),
        ("ETHUSDC", "ETH", "USDC"),
        ("ETHEUR", "ETH", "EUR"),
    ]);
    let index = MarketIndex::new(&list);
    let api = adapter(ExchangeApi::Binance).unwrap();
    for quotes in [
        vec!["USD", "USDT", "USDC"],
        vec!["usdt"],
        vec!["EUR", "USDC"],
        vec![],
    ] {
        for symbol in ["btc", "eth", "ltc"] {
            let scan = choose_market_in(api, &sym(symbol), &list, &quotes).map(|i| &i.market);
            let looked_up = index.choose(api, &sym(symbol), &quotes).map(|i| &i.market);
            assert_eq!(looked_up, scan, "{symbol} in {quotes:?}");
        }
    }
    assert_eq!(
        index
            .choose(api, &sym("btc"), &["USD"])
            .map(|i| i.market.as_str()),
        Some("btcusd")
    );
}
