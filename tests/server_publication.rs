//! The built-in server's answers as a client sees them over loopback: the
//! exact error bodies of the wire module, and a day's price going from
//! future to open to closed to published as a manual clock moves.

mod common;

use std::time::Duration;

use chrono::TimeDelta;
use common::*;
use pricegrid::clock::Clock;
use pricegrid::model::{Exchange, Ohlcv, Symbol};
use pricegrid::server::{Dataset, MissingStyle};
use pricegrid::wire::{self, ErrorBody, PriceBody};

/// What one `GET` answered: its status and JSON body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: serde_json::Value,
}

impl Answer {
    fn price(&self) -> Ohlcv {
        assert_eq!(self.status, 200, "{self:?}");
        let p: PriceBody = serde_json::from_value(self.body.clone())
            .unwrap_or_else(|e| panic!("a price body: {e}: {self:?}"));
        Ohlcv::new(p.open, p.high, p.low, p.close, p.volume).expect("finite, non-negative")
    }

    fn error(&self) -> ErrorBody {
        serde_json::from_value(self.body.clone())
            .unwrap_or_else(|e| panic!("an error body: {e}: {self:?}"))
    }

    fn is_no_price(&self) -> bool {
        self.status == 404 && self.error().error == wire::NO_PRICE
    }
}

/// GETs `paths` under `base` from a blocking client, one after another.
async fn get_all(base: &url::Url, paths: &[String]) -> Vec<Answer> {
    let urls: Vec<String> = paths
        .iter()
        .map(|p| base.join(p).expect("a path under the base").to_string())
        .collect();
    actix_rt::task::spawn_blocking(move || urls.iter().map(|u| get(u)).collect())
        .await
        .expect("the client thread")
}

async fn get_one(base: &url::Url, path: &str) -> Answer {
    let mut answers = get_all(base, &[path.to_owned()]).await;
    answers.pop().expect("one answer")
}

fn get(url: &str) -> Answer {
    let (status, resp) = match ureq::get(url).call() {
        Ok(resp) => (resp.status(), resp),
        Err(ureq::Error::Status(code, resp)) => (code, resp),
        Err(e) => panic!("{url}: {e}"),
    };
    let body = resp
        .into_json()
        .unwrap_or_else(|e| panic!("{url}: not JSON: {e}"));
    Answer { status, body }
}

/// A generated-dataset key with a price on each of `days`.
fn priced_key(ds: &Dataset, days: &[&str]) -> (Exchange, Symbol) {
    for e in ds.exchanges() {
        for s in ds.symbols() {
            if days.iter().all(|d| ds.price_of(e, s, day(d)).is_some()) {
                return (e.clone(), s.clone());
            }
        }
    }
    panic!("no key has a price on all of {days:?}");
}

#[actix_rt::test]
async fn unknown_names_missing_prices_bad_dates_and_routes_have_exact_error_bodies() {
    let server = spawn_price_server(|_| {});
    let ds = server.dataset.clone();
    let (exchange, symbol, missing_day) = ds
        .exchanges()
        .iter()
        .flat_map(|e| ds.symbols().iter().map(move |s| (e, s)))
        .find_map(|(e, s)| {
            day("2020-01-01")
                .iter_days()
                .take(366)
                .find(|d| ds.price_of(e, s, *d).is_none())
                .map(|d| (e.clone(), s.clone(), d))
        })
        .expect("the generated dataset misses some prices on purpose");
    let answers = get_all(
        &server.url(),
        &[
            "price/krakn/btc/2020-03-13".to_owned(),
            "price/kraken/doge/2020-03-13".to_owned(),
            format!("price/{exchange}/{symbol}/{missing_day}"),
            "price/kraken/btc/2020-02-30".to_owned(),
            "prices/kraken".to_owned(),
        ],
    )
    .await;

    let [krakn, doge, none, bad_date, no_route] = &answers[..] else {
        panic!("five answers: {answers:?}");
    };
    assert_eq!(
        (krakn.status, krakn.error().error.as_str()),
        (404, wire::UNKNOWN_EXCHANGE)
    );
    assert_eq!(krakn.body["exchange"], "krakn", "detail for people");
    assert_eq!(
        (doge.status, doge.error().error.as_str()),
        (404, wire::UNKNOWN_SYMBOL)
    );
    assert_eq!(doge.body["symbol"], "doge");
    assert!(none.is_no_price(), "{none:?}");
    assert_eq!(bad_date.status, 400);
    assert!(
        bad_date.error().error.contains("2020-02-30"),
        "{bad_date:?}"
    );
    assert_eq!(no_route.status, 404);
    let routes = no_route.error().error;
    for route in [
        "/exchanges",
        "/symbols",
        "/price/{exchange}/{symbol}/{date}",
    ] {
        assert!(routes.contains(route), "{routes}");
    }
}

#[actix_rt::test]
async fn the_classic_style_answers_no_price_with_200_null_and_still_404s_unknown_names() {
    let server = spawn_price_server(|o| o.missing = MissingStyle::Null);
    let answers = get_all(
        &server.url(),
        &[
            "price/kraken/btc/2001-01-01".to_owned(),
            "price/krakn/btc/2020-03-13".to_owned(),
        ],
    )
    .await;
    assert_eq!(
        (answers[0].status, &answers[0].body),
        (200, &serde_json::Value::Null)
    );
    assert_eq!(answers[1].status, 404);
    assert_eq!(answers[1].error().error, wire::UNKNOWN_EXCHANGE);
}

#[actix_rt::test]
async fn a_day_is_future_then_open_then_closed_then_published() {
    let clock = Clock::manual(at("2020-03-13T06:00:00Z"));
    let server = spawn_price_server({
        let clock = clock.clone();
        move |o| {
            o.clock = clock;
            o.publish_delay = Some(Duration::from_secs(3600));
        }
    });
    let ds = server.dataset.clone();
    let (e, s) = priced_key(&ds, &["2020-03-12", "2020-03-13", "2020-03-14"]);
    let full = ds.price_of(&e, &s, day("2020-03-13")).expect("a price");
    let path = |d: &str| format!("price/{e}/{s}/{d}");
    let base = server.url();

    // 06:00 on the 13th: the 14th has not begun, the 12th closed 6 h ago.
    let tomorrow = get_one(&base, &path("2020-03-14")).await;
    assert!(tomorrow.is_no_price(), "a future day: {tomorrow:?}");
    let yesterday = get_one(&base, &path("2020-03-12")).await;
    assert_eq!(
        yesterday.price(),
        ds.price_of(&e, &s, day("2020-03-12")).expect("a price")
    );

    let morning = get_one(&base, &path("2020-03-13")).await.price();
    clock.set(at("2020-03-13T18:00:00Z"));
    let evening = get_one(&base, &path("2020-03-13")).await.price();
    for partial in [morning, evening] {
        partial.check_order().expect("low <= open, close <= high");
        assert_eq!(partial.open, full.open, "today opens at the day's open");
        assert!(partial.volume < full.volume, "{partial:?} vs {full:?}");
    }
    assert_ne!(morning, evening, "today's candle moves with the clock");
    assert!(morning.volume < evening.volume);

    // Closed at midnight, but not yet published.
    clock.set(at("2020-03-14T00:30:00Z"));
    let closed = get_one(&base, &path("2020-03-13")).await;
    assert!(closed.is_no_price(), "closed, within the delay: {closed:?}");

    clock.advance(TimeDelta::minutes(30));
    let published = get_one(&base, &path("2020-03-13")).await;
    assert_eq!(
        published.price(),
        full,
        "after the delay: the dataset's price"
    );
    assert_eq!(published.body["day"], "2020-03-13");
}

#[actix_rt::test]
async fn publication_never_invents_a_price_the_dataset_lacks() {
    let clock = Clock::manual(at("2020-06-01T12:00:00Z"));
    let server = spawn_price_server({
        let clock = clock.clone();
        move |o| {
            o.clock = clock;
            o.publish_delay = Some(Duration::from_secs(600));
        }
    });
    let ds = server.dataset.clone();
    let (e, s, d) = ds
        .exchanges()
        .iter()
        .flat_map(|e| ds.symbols().iter().map(move |s| (e, s)))
        .find_map(|(e, s)| {
            day("2020-05-01")
                .iter_days()
                .take(31)
                .find(|d| ds.price_of(e, s, *d).is_none())
                .map(|d| (e.clone(), s.clone(), d))
        })
        .expect("the generated dataset misses some prices on purpose");
    let path = format!("price/{e}/{s}/{d}");
    let base = server.url();
    assert!(get_one(&base, &path).await.is_no_price());
    clock.set(d.and_hms_opt(12, 0, 0).expect("noon").and_utc());
    assert!(get_one(&base, &path).await.is_no_price(), "not even partly");
}

#[actix_rt::test]
async fn the_reference_prices_load_from_the_repos_gzip_file() {
    let data = Dataset::from_csv(&reference_csv()).expect("the reference data loads");
    assert_eq!(data.exchanges().len(), 11);
    let kraken = Exchange::new("kraken").expect("a name");
    let eth = Symbol::new("eth").expect("a name");
    let p = data
        .price_of(&kraken, &eth, day("2020-03-13"))
        .expect("a price");
    assert_eq!(
        (p.open, p.high, p.low, p.close),
        (195.24, 195.24, 102.0, 107.97)
    );
    let server = spawn_price_server(|o| o.dataset = std::sync::Arc::new(data));
    let answer = get_one(&server.url(), "price/kraken/eth/2020-03-13").await;
    assert_eq!(answer.price(), p);
}

#[test]
fn a_config_can_ask_the_builtin_server_to_publish_with_a_delay() {
    let path = std::path::Path::new("publish.toml");
    let config = pricegrid::config::Config::parse(
        r#"[source]
url = "builtin"

[source.builtin]
publish_delay = "1h 30m"
"#,
        path,
    )
    .expect("a valid config");
    assert_eq!(
        config.source.builtin.publish_delay,
        Some(Duration::from_secs(5400))
    );
    let unset = pricegrid::config::Config::parse(
        r#"[source]
url = "builtin"
"#,
        path,
    )
    .expect("a valid config");
    assert_eq!(unset.source.builtin.publish_delay, None);
    assert!(
        !unset.to_toml().contains("publish_delay"),
        "{}",
        unset.to_toml()
    );
}
