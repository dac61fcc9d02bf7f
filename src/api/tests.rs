//! The API module's unit tests: the parameter parser, the formats answered
//! in, and the failure groups.

use super::*;
use crate::query::{Field, Filter};

const ALL: &[&str] = &[
    "exchange",
    "symbol",
    "from",
    "to",
    "field",
    "format",
    "final_only",
    "exclude_flagged",
];

#[test]
fn lists_dates_and_fields_parse() {
    let p = parse_params(
        "exchange=kraken,bitstamp&symbol=btc&symbol=eth&from=2020-03-01&to=2020-03-31&field=close",
        ALL,
    )
    .unwrap();
    assert_eq!(p.filter.exchanges.len(), 2);
    assert_eq!(p.filter.symbols.len(), 2);
    assert_eq!(p.filter.from, chrono::NaiveDate::from_ymd_opt(2020, 3, 1));
    assert_eq!(p.field, Some(Field::Close));
}

#[test]
fn each_bad_parameter_is_named() {
    for (query, parameter) in [
        ("from=2020-13-01", "from"),
        ("to=yesterday", "to"),
        ("exchange=Kra%20ken", "exchange"),
        ("symbol=b%2Ftc", "symbol"),
        ("field=price", "field"),
        ("format=xml", "format"),
        ("format=table", "format"),
        ("limit=10", "limit"),
        ("from=2020-03-02&to=2020-03-01", "to"),
    ] {
        let err = parse_params(query, ALL).unwrap_err();
        assert_eq!(err.parameter, parameter, "{query}: {err}");
    }
}

#[test]
fn names_are_lower_cased() {
    let p = parse_params("exchange=Kraken&symbol=BTC,eth", ALL).unwrap();
    assert_eq!(
        p.filter
            .exchanges
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>(),
        ["kraken"]
    );
    assert_eq!(
        p.filter
            .symbols
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
        ["btc", "eth"]
    );
}

#[test]
fn the_api_answers_in_json_or_csv_and_says_so() {
    assert_eq!(
        parse_params("format=csv", ALL).unwrap().format,
        Some(Format::Csv)
    );
    assert_eq!(
        parse_params("format=json", ALL).unwrap().format,
        Some(Format::Json)
    );
    for raw in ["table", "xml", "CSV"] {
        let err = parse_params(&format!("format={raw}"), ALL).unwrap_err();
        assert_eq!(err.parameter, "format");
        assert!(err.error.contains(&format!("{raw:?}")), "{err}");
        assert!(
            err.error.ends_with("expected one of 'json', 'csv'"),
            "{err}"
        );
    }
}

#[test]
fn failures_are_grouped_by_exchange_and_reason_most_first() {
    use crate::model::{Outcome, TaskKey};
    use crate::query::fixtures::{cv, day, ex, sym};
    use crate::store::{Observation, Store};
    let mut store = Store::new();
    let mut put = |exchange: &str, symbol: &str, d: u32, outcome: Outcome| {
        let key = TaskKey {
            exchange: ex(exchange),
            symbol: sym(symbol),
            day: day(2020, 3, d),
        };
        store.apply(&key, &Observation::settled(outcome, 1));
    };
    let failed = |reason: &str| Outcome::Failed {
        reason: reason.into(),
        attempts: 3,
    };
    put("kraken", "btc", 1, failed("server error (503)"));
    put("kraken", "eth", 4, failed("server error (503)"));
    put("kraken", "btc", 2, failed("timed out"));
    put("bitstamp", "btc", 3, failed("server error (503)"));
    put("bitstamp", "btc", 5, Outcome::NoPrice);
    put(
        "bitstamp",
        "btc",
        6,
        Outcome::Price {
            price: cv(1.0, 1.0),
            flags: crate::model::Flags::NONE,
        },
    );
    let groups = failure_groups(&store, &Filter::default());
    let view: Vec<(&str, &str, usize)> = groups
        .iter()
        .map(|g| (g.exchange.as_str(), g.reason.as_str(), g.cells))
        .collect();
    assert_eq!(
        view,
        [
            ("kraken", "server error (503)", 2),
            ("bitstamp", "server error (503)", 1),
            ("kraken", "timed out", 1),
        ]
    );
    assert_eq!(groups[0].symbols, [sym("btc"), sym("eth")]);
    assert_eq!(
        (groups[0].first_day, groups[0].last_day),
        (day(2020, 3, 1), day(2020, 3, 4))
    );

    let only_btc = parse_params("symbol=btc&exchange=kraken", &["symbol", "exchange"]).unwrap();
    let groups = failure_groups(&store, &only_btc.filter);
    assert_eq!(groups.len(), 2, "{groups:?}");
    assert!(groups
        .iter()
        .all(|g| g.cells == 1 && g.exchange == ex("kraken")));
}
