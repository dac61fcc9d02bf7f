//! How pricegrid asks, as a server on loopback sees it: every request names
//! pricegrid (`User-Agent`, the operator's own per source and per
//! exchange), asks for gzip, and reads a gzipped answer (a gzip bomb is
//! `tests/gzip_bomb.rs`'s, under a counting allocator).

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use pricegrid::commands::fetch::fetch_round;
use pricegrid::config::OhlcOrder;
use pricegrid::model::{Exchange, ExchangeApi, Ohlcv, Symbol, TaskKey};
use pricegrid::origin::Source;
use pricegrid::source::{default_user_agent, Answer, ClientLimits, PriceClient};
use pricegrid::wire::PriceBody;

/// Every test ends within this, whatever a server does.
const TEST_DEADLINE: Duration = Duration::from_secs(60);

fn limits(user_agent: Option<&str>) -> ClientLimits {
    ClientLimits {
        timeout: Duration::from_secs(5),
        max_body: 64 * 1024,
        connections: 1,
        ohlc_order: OhlcOrder::Flag,
        user_agent: user_agent.map(Arc::from),
    }
}

fn btc_on_kraken() -> TaskKey {
    TaskKey {
        exchange: Exchange::new("kraken").unwrap(),
        symbol: Symbol::new("btc").unwrap(),
        day: day("2020-03-13"),
    }
}

/// A header's value in a recorded request head (case-insensitive name).
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// An HTTP/1.1 200 with `body` gzipped, connection closed.
fn gzipped_answer(body: &[u8]) -> Vec<u8> {
    let body = gzip(body);
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

fn price_body() -> Vec<u8> {
    let p = Ohlcv::new(5000.0, 5100.0, 4900.0, 5050.0, 12.5).unwrap();
    serde_json::to_vec(&PriceBody::new(
        "kraken",
        "btc",
        &p,
        "2020-03-13".to_owned(),
    ))
    .unwrap()
}

#[actix_rt::test]
async fn every_request_names_pricegrid_or_the_operators_agent_and_asks_for_gzip_where_it_pays() {
    within(TEST_DEADLINE, async {
        let body = price_body();
        let (url, heads) =
            raw_server_recording(move |_| Script::send(gzipped_answer(&body), Then::Close)).await;
        let default = PriceClient::new(&url, &limits(None));
        assert!(matches!(
            default.price(&btc_on_kraken()).await,
            Ok(Answer::Price { .. })
        ));
        let own = PriceClient::new(&url, &limits(Some("acme-prices/2 (+mailto:ops@acme.test)")));
        assert!(own.price(&btc_on_kraken()).await.is_ok());
        // A listing can be large: asked gzipped (this server's answer to it
        // is not a list; only the asking matters here).
        let _ = default.exchanges().await;
        let heads = heads.borrow();
        assert_eq!(heads.len(), 3, "{heads:?}");
        assert_eq!(
            header(&heads[0], "user-agent"),
            Some(format!("pricegrid/{}", env!("CARGO_PKG_VERSION")).as_str()),
            "no repository in Cargo.toml: the version alone"
        );
        assert_eq!(
            header(&heads[1], "user-agent"),
            Some("acme-prices/2 (+mailto:ops@acme.test)")
        );
        // A one-day answer is a few hundred bytes: gzip cannot pay for
        // itself there, so it is not asked for (and still read when sent).
        for head in &heads[..2] {
            assert_eq!(header(head, "accept-encoding"), Some("identity"), "{head}");
        }
        assert_eq!(
            header(&heads[2], "accept-encoding"),
            Some("gzip"),
            "{}",
            heads[2]
        );
    })
    .await;
}

#[actix_rt::test]
async fn an_exchanges_own_user_agent_goes_to_its_api_and_its_listing() {
    within(TEST_DEADLINE, async {
        let (url, heads) = raw_server_recording(|path| {
            let body: &[u8] = if path.starts_with("/products/") {
                b"[]"
            } else {
                br#"[{"id":"BTC-USD","base_currency":"BTC","quote_currency":"USD","status":"online"}]"#
            };
            let mut out = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            out.extend_from_slice(body);
            Script::send(out, Then::Close)
        })
        .await;
        let mut config = TestConfig::new()
            .exchanges(["coinbase-pro"])
            .symbols(["btc"])
            .window("2020-03-01", "2020-03-03")
            .exchange_api("coinbase-pro", ExchangeApi::Coinbase, &url, 100.0)
            .quick_backoff()
            .build();
        config.source.user_agent = Some("source-agent/1".to_owned());
        config
            .exchanges
            .values_mut()
            .for_each(|x| x.user_agent = Some("exchange-agent/1 (+mailto:ops@acme.test)".into()));
        let config = arc(config);
        let source = Source::start(&config).expect("the source starts");
        let report = fetch_round(config, &source, false).await.expect("a round");
        source.stop().await;
        assert_eq!(report.summary.counts.failed, 0, "{:?}", report.summary);
        let heads = heads.borrow();
        assert!(heads.len() >= 2, "the listing and a page: {heads:?}");
        for head in heads.iter() {
            assert_eq!(
                header(head, "user-agent"),
                Some("exchange-agent/1 (+mailto:ops@acme.test)"),
                "{head}"
            );
        }
    })
    .await;
}

/// The built-in server gzips what is worth it when asked (its listings, the
/// dialects' pages) and the client reads it end to end; a classic price
/// answer, a few hundred bytes, is sent as it is.
#[actix_rt::test]
async fn a_gzipped_answer_from_the_built_in_server_is_read_end_to_end() {
    within(TEST_DEADLINE, async {
        let server = spawn_price_server(|_| {});
        let key = btc_on_kraken();
        let expected = server
            .dataset
            .price_of(&key.exchange, &key.symbol, key.day)
            .expect("the dataset has the day");
        let url = server.url();
        let addr = std::net::SocketAddr::new(
            url.host_str().unwrap().parse().unwrap(),
            url.port().unwrap(),
        );
        let raw = RawRequest::get(addr, "/exchanges")
            .header("Accept-Encoding", "gzip")
            .header("Connection", "close")
            .send(addr)
            .await;
        assert_eq!(raw.header("content-encoding"), Some("gzip"), "{raw:?}");
        let client = PriceClient::new(&url, &limits(None));
        let listed = client.exchanges().await.expect("the listing");
        assert_eq!(listed, server.dataset.exchanges());

        let raw = RawRequest::get(addr, "/price/kraken/btc/2020-03-13")
            .header("Accept-Encoding", "gzip")
            .header("Connection", "close")
            .send(addr)
            .await;
        assert_eq!(raw.header("content-encoding"), Some("identity"), "{raw:?}");
        let got = client.price(&key).await.expect("an answer");
        assert!(
            matches!(got, Answer::Price { price, .. } if price == expected),
            "expected {expected:?}, got {got:?}"
        );
        server.stop().await;
    })
    .await;
}

#[test]
fn the_default_user_agent_is_pricegrid_and_its_version() {
    assert_eq!(
        default_user_agent(),
        format!("pricegrid/{}", env!("CARGO_PKG_VERSION"))
    );
}
