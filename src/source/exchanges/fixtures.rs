//! The recorded answers in `tests/fixtures/<exchange>/` and what each must
//! give, read by one table-driven test for every adapter. Each adapter lists
//! its own fixtures (its tests' `fixtures()`): the file, how it is asked (a
//! page of which market and days, with which status and `Retry-After`, or
//! the market listing), and the cells, the failure or the market choices it
//! must give. A second test checks that every file in `tests/fixtures/` is
//! listed by its adapter, so no recorded answer sits there unread.
//!
//! Test-only; it reads the adapters through `CandleApi` and touches nothing
//! else.

pub use std::time::Duration;

use super::{adapter, choose_market, CandleApi, DayAnswer};
use crate::model::{DayRange, ExchangeApi, OhlcOrder, Ohlcv, Symbol};
pub use crate::source::Throttle;
use crate::source::{Answer, FetchFailure};

/// A file under `tests/fixtures/` and its text, read at compile time.
pub struct Recorded {
    pub file: &'static str,
    pub text: &'static str,
}

/// `recorded!("binance/full_page.json")`: the file and its text.
macro_rules! recorded {
    ($file:literal) => {
        $crate::source::exchanges::fixtures::Recorded {
            file: $file,
            text: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/",
                $file
            )),
        }
    };
}
pub(super) use recorded;

/// How a fixture is put to its adapter.
enum Ask {
    /// `parse_candles` for a page of `market` over `from..=to`.
    Page {
        market: &'static str,
        from: &'static str,
        to: &'static str,
        status: u16,
        retry_after: Option<&'static str>,
    },
    /// `parse_instruments` with status 200.
    Listing,
    /// Read by the named test of the adapter, for what a table cannot say
    /// (an hourly answer read row by row, a range's bounds counted).
    ReadBy(&'static str),
}

/// What a fixture must give.
enum Gives {
    Days(Vec<Day>),
    Failure(Failure),
    /// `choose_market` over the listing: symbol → market (or none).
    Picks(Vec<(&'static str, Option<&'static str>)>),
    Unchecked,
}

/// One day of a page, in day order.
#[derive(Debug, PartialEq)]
pub struct Day {
    answer: Answer,
    open: bool,
}

/// A failed page.
#[derive(Debug, PartialEq)]
pub struct Failure {
    reason: &'static str,
    retryable: bool,
    throttle: Option<Throttle>,
    retry_after: Option<Duration>,
}

/// One row of an adapter's table.
pub struct Fixture {
    recorded: Recorded,
    ask: Ask,
    gives: Gives,
}

/// A page of `market` over `days` (`"2020-03-01..2020-03-03"`, both
/// included), answered 200.
pub fn page(recorded: Recorded, market: &'static str, days: &'static str) -> Fixture {
    let (from, to) = days.split_once("..").expect("a fixture's days as FROM..TO");
    Fixture {
        recorded,
        ask: Ask::Page {
            market,
            from,
            to,
            status: 200,
            retry_after: None,
        },
        gives: Gives::Unchecked,
    }
}

/// The exchange's market listing.
pub fn listing(recorded: Recorded) -> Fixture {
    Fixture {
        recorded,
        ask: Ask::Listing,
        gives: Gives::Unchecked,
    }
}

/// A recorded answer read by the adapter's test `test`.
pub fn read_by(recorded: Recorded, test: &'static str) -> Fixture {
    Fixture {
        recorded,
        ask: Ask::ReadBy(test),
        gives: Gives::Unchecked,
    }
}

impl Fixture {
    /// The page's answer came with this status (and `Retry-After`).
    pub fn status(mut self, code: u16, after: Option<&'static str>) -> Fixture {
        if let Ask::Page {
            status,
            retry_after,
            ..
        } = &mut self.ask
        {
            *status = code;
            *retry_after = after;
        }
        self
    }

    pub fn gives(mut self, days: Vec<Day>) -> Fixture {
        self.gives = Gives::Days(days);
        self
    }

    pub fn fails(mut self, failure: Failure) -> Fixture {
        self.gives = Gives::Failure(failure);
        self
    }

    pub fn picks(mut self, picks: &[(&'static str, Option<&'static str>)]) -> Fixture {
        self.gives = Gives::Picks(picks.to_vec());
        self
    }
}

/// A closed day's price, unflagged.
pub fn priced(open: f64, high: f64, low: f64, close: f64, volume: f64) -> Day {
    Day {
        answer: Answer::Price {
            price: Ohlcv {
                open,
                high,
                low,
                close,
                volume,
            },
            flags: crate::model::Flags::NONE,
        },
        open: false,
    }
}

pub fn none() -> Day {
    Day {
        answer: Answer::NoPrice,
        open: false,
    }
}

/// Rejected with `reason`, keeping the price as sent.
pub fn rejected(reason: &str, kept: Option<[f64; 5]>) -> Day {
    Day {
        answer: Answer::Rejected {
            reason: reason.to_owned(),
            price: kept.map(|[open, high, low, close, volume]| Ohlcv {
                open,
                high,
                low,
                close,
                volume,
            }),
        },
        open: false,
    }
}

impl Day {
    /// The exchange marked the candle as still open.
    pub fn still_open(mut self) -> Day {
        self.open = true;
        self
    }

    /// The price carries these flags (by their names).
    pub fn flagged(mut self, names: &[&str]) -> Day {
        if let Answer::Price { flags, .. } = &mut self.answer {
            for name in names {
                *flags |= crate::model::Flags::named(name).expect("a flag's name");
            }
        }
        self
    }
}

/// What the `full_page` fixtures written for Bitfinex, Poloniex and HitBTC
/// (each in its own format) hold for 2020-03-01..03: a price, a day without
/// trades, a price.
pub fn a_price_a_gap_a_price() -> Vec<Day> {
    vec![
        priced(8523.2, 8590.8, 8401.1, 8530.9, 2411.52386113),
        none(),
        priced(8530.9, 8800.0, 8500.0, 8760.0, 3100.5),
    ]
}

/// What the `open_day` fixtures of the exchanges that do not mark an open
/// candle hold for 2026-11-30..12-01: yesterday's candle and today's, both
/// plain prices (the clock, not the exchange, says today is provisional).
pub fn yesterday_and_today() -> Vec<Day> {
    vec![
        priced(91877.0, 92500.0, 91000.0, 92010.1, 1100.0),
        priced(92010.1, 92300.0, 91900.0, 92100.0, 120.5),
    ]
}

/// A failure that will be asked again this round.
pub fn retryable(reason: &'static str) -> Failure {
    Failure {
        reason,
        retryable: true,
        throttle: None,
        retry_after: None,
    }
}

/// A failure that waits for the next round.
pub fn permanent(reason: &'static str) -> Failure {
    Failure {
        retryable: false,
        ..retryable(reason)
    }
}

impl Failure {
    pub fn throttled(mut self, throttle: Throttle, after: Option<Duration>) -> Failure {
        self.throttle = Some(throttle);
        self.retry_after = after;
        self
    }
}

fn failure_of(e: FetchFailure) -> (String, bool, Option<Throttle>, Option<Duration>) {
    (e.reason, e.retryable, e.throttle, e.retry_after)
}

/// Every adapter's table.
fn tables() -> Vec<(ExchangeApi, Vec<Fixture>)> {
    ExchangeApi::ALL
        .into_iter()
        .filter_map(|api| {
            let table = match api {
                ExchangeApi::Classic => return None,
                ExchangeApi::Binance => super::binance::tests::fixtures(),
                ExchangeApi::Kraken => super::kraken::tests::fixtures(),
                ExchangeApi::Coinbase => super::coinbase::tests::fixtures(),
                ExchangeApi::Bitstamp => super::bitstamp::tests::fixtures(),
                ExchangeApi::Okx => super::okx::tests::fixtures(),
                ExchangeApi::Bitfinex => super::bitfinex::tests::fixtures(),
                ExchangeApi::Poloniex => super::poloniex::tests::fixtures(),
                ExchangeApi::Hitbtc => super::hitbtc::tests::fixtures(),
                ExchangeApi::Htx => super::htx::tests::fixtures(),
                ExchangeApi::Cexio => super::cexio::tests::fixtures(),
            };
            Some((api, table))
        })
        .collect()
}

fn range(from: &str, to: &str) -> DayRange {
    DayRange {
        from: from.parse().expect("a fixture's first day"),
        to: to.parse().expect("a fixture's last day"),
    }
}

/// What `fixture` gives through `api`'s adapter, checked against its row;
/// the mismatch as text, if any.
fn mismatch(api: ExchangeApi, adapter: &dyn CandleApi, f: &Fixture) -> Option<String> {
    let body = f.recorded.text.as_bytes();
    match (&f.ask, &f.gives) {
        (Ask::ReadBy(test), _) => {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/source/exchanges");
            let name = api.to_string();
            let source = std::fs::read_to_string(format!("{dir}/{name}.rs"))
                .or_else(|_| std::fs::read_to_string(format!("{dir}/{name}/tests.rs")))
                .unwrap_or_default();
            let reads =
                source.contains(&format!("fn {test}()")) && source.contains(f.recorded.file);
            (!reads).then(|| format!("no test {test} reading it"))
        }
        (_, Gives::Unchecked) => Some("the table says nothing it must give".into()),
        (
            Ask::Page {
                market,
                from,
                to,
                status,
                retry_after,
            },
            gives,
        ) => {
            let days = range(from, to);
            let got =
                adapter.parse_candles(market, days, *status, *retry_after, body, OhlcOrder::Flag);
            match (got, gives) {
                (Ok(answers), Gives::Days(want)) => {
                    let dates: Vec<_> = answers.iter().map(|a| a.day).collect();
                    let wanted: Vec<_> = days.days().collect();
                    if dates != wanted {
                        return Some(format!("days {dates:?}, not {wanted:?}"));
                    }
                    let got: Vec<Day> = answers
                        .into_iter()
                        .map(|DayAnswer { answer, open, .. }| Day { answer, open })
                        .collect();
                    (got != *want).then(|| format!("gave {got:#?}\nnot {want:#?}"))
                }
                (Err(e), Gives::Failure(want)) => {
                    let got = failure_of(e);
                    let want_tuple = (
                        want.reason.to_owned(),
                        want.retryable,
                        want.throttle,
                        want.retry_after,
                    );
                    (got != want_tuple).then(|| format!("failed {got:?}, not {want_tuple:?}"))
                }
                (got, _) => Some(format!("gave {got:?}")),
            }
        }
        (Ask::Listing, Gives::Picks(picks)) => {
            let list = match adapter.parse_instruments(200, body) {
                Ok(list) => list,
                Err(e) => return Some(format!("listing failed: {e}")),
            };
            picks.iter().find_map(|(symbol, market)| {
                let symbol_ = Symbol::new(symbol).expect("a fixture's symbol");
                let got = choose_market(adapter, &symbol_, &list).map(|i| i.market.as_str());
                (got != *market).then(|| format!("{api}: {symbol} picks {got:?}, not {market:?}"))
            })
        }
        (_, _) => Some("its ask and what it gives do not match".into()),
    }
}

#[test]
fn every_recorded_answer_gives_what_its_adapters_table_says() {
    let mut wrong = Vec::new();
    let mut count = 0;
    for (api, table) in tables() {
        let adapter = adapter(api).expect("every exchange but the classic one has an adapter");
        for fixture in &table {
            count += 1;
            if let Some(why) = mismatch(api, adapter, fixture) {
                wrong.push(format!("{}: {why}", fixture.recorded.file));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert!(count >= 60, "only {count} fixtures read");
}

#[test]
fn every_file_in_tests_fixtures_is_listed_by_its_adapter() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let listed: std::collections::BTreeSet<&str> = tables()
        .iter()
        .flat_map(|(_, table)| table.iter().map(|f| f.recorded.file))
        .collect();
    let mut unlisted = Vec::new();
    for (api, table) in tables() {
        let dir = format!("{root}/{api}");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for entry in entries {
            let name = entry.expect("a directory entry").file_name();
            let file = format!("{api}/{}", name.to_string_lossy());
            if !listed.contains(file.as_str()) {
                unlisted.push(file);
            }
        }
        assert!(
            table
                .iter()
                .all(|f| f.recorded.file.starts_with(&format!("{api}/"))),
            "{api} lists another exchange's file"
        );
    }
    assert!(
        unlisted.is_empty(),
        "recorded but read by no table: {unlisted:?}"
    );
}
