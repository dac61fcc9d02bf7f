//! HTTPS sources: the client trusts the built-in roots plus a configured CA
//! file. Against a loopback HTTPS server whose certificate is made in the
//! test (rcgen), a certificate signed by the configured CA works, one the
//! client does not trust is a clear failure (a retryable one: nothing is
//! recorded as "no price"), and a CA file that cannot be read stops the
//! source from starting, naming the file.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use chrono::NaiveDate;
use common::{pki, server_tls, Pki};
use pricegrid::config::{Config, OhlcOrder};
use pricegrid::model::{Exchange, Symbol, TaskKey};
use pricegrid::origin::{OriginError, Source};
use pricegrid::source::{Answer, ClientLimits, PriceClient};
use url::Url;

const TEST_DEADLINE: Duration = Duration::from_secs(30);

/// A classic price server over TLS on 127.0.0.1 with `pki`'s certificate.
fn https_server(pki: &Pki) -> (Url, actix_web::dev::ServerHandle) {
    let tls = server_tls(pki);
    let server = HttpServer::new(|| {
        App::new().route(
            "/price/kraken/eth/2020-03-13",
            web::get().to(|| async {
                HttpResponse::Ok().body(
                    r#"{"exchange":"kraken","symbol":"eth","open":195.24,"high":195.24,"low":102,"close":107.97,"volume":7901.27262233,"day":"2020-03-13"}"#,
                )
            }),
        )
    })
    .workers(1)
    .bind_rustls_0_23(SocketAddr::from(([127, 0, 0, 1], 0)), tls)
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (Url::parse(&format!("https://{addr}/")).unwrap(), handle)
}

fn key() -> TaskKey {
    TaskKey {
        exchange: Exchange::new("kraken").unwrap(),
        symbol: Symbol::new("eth").unwrap(),
        day: NaiveDate::from_ymd_opt(2020, 3, 13).unwrap(),
    }
}

fn limits() -> ClientLimits {
    ClientLimits {
        timeout: Duration::from_secs(5),
        max_body: 64 * 1024,
        connections: 1,
        ohlc_order: OhlcOrder::Flag,
        user_agent: None,
    }
}

#[actix_rt::test]
async fn a_certificate_signed_by_the_configured_ca_is_trusted() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let (url, server) = https_server(&pki);
    let client = PriceClient::with_ca_files(&url, &limits(), &[ca_file]).unwrap();
    let got = actix_rt::time::timeout(TEST_DEADLINE, client.price(&key()))
        .await
        .expect("answered in time");
    match got {
        Ok(Answer::Price { price, .. }) => assert_eq!(price.close, 107.97),
        other => panic!("expected the price over https, got {other:?}"),
    }
    server.stop(false).await;
}

#[actix_rt::test]
async fn an_untrusted_certificate_is_a_clear_failure_never_no_price() {
    let pki = pki();
    let (url, server) = https_server(&pki);
    let client = PriceClient::new(&url, &limits());
    let got = actix_rt::time::timeout(TEST_DEADLINE, client.price(&key()))
        .await
        .expect("answered in time");
    let failure = got.expect_err("a certificate nobody trusts is not an answer");
    println!("untrusted: {}", failure.reason);
    assert!(failure.retryable, "{failure:?}");
    assert!(
        failure.reason.contains("cannot connect"),
        "the reason says the connection failed: {}",
        failure.reason
    );
    server.stop(false).await;
}

#[actix_rt::test]
async fn over_https_a_body_to_the_close_is_read_whole_and_a_cut_chunked_body_fails() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let price = r#"{"exchange":"kraken","symbol":"eth","open":195.24,"high":195.24,"low":102,"close":107.97,"volume":7901.27262233,"day":"2020-03-13"}"#;
    let to_the_close = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{price}");
    let cut = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nnull\r\n";
    let url = common::raw_tls_server(Arc::new(server_tls(&pki)), move |path| {
        let bytes = if path.ends_with("2020-03-13") {
            &to_the_close
        } else {
            cut
        };
        common::Script::send(bytes.as_bytes().to_vec(), common::Then::Close)
    })
    .await;
    let client = PriceClient::with_ca_files(&url, &limits(), &[ca_file]).unwrap();
    let got = actix_rt::time::timeout(TEST_DEADLINE, client.price(&key()))
        .await
        .expect("answered in time");
    match got {
        Ok(Answer::Price { price, .. }) => assert_eq!(price.close, 107.97),
        other => panic!("expected the price read to the close, got {other:?}"),
    }
    let next_day = TaskKey {
        day: NaiveDate::from_ymd_opt(2020, 3, 14).unwrap(),
        ..key()
    };
    let got = actix_rt::time::timeout(TEST_DEADLINE, client.price(&next_day))
        .await
        .expect("answered in time");
    let failure = got.expect_err("a chunked body without its last chunk is not an answer");
    assert!(failure.retryable, "{failure:?}");
    assert!(failure.reason.contains("cut off"), "{failure:?}");
}

#[test]
fn a_ca_file_that_cannot_be_read_stops_the_source_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    let text = format!(
        "[exchanges.kraken]\napi = \"kraken\"\nurl = \"https://127.0.0.1:1/\"\nca_file = {:?}\n\n[universe]\nexchanges = [\"kraken\"]\nsymbols = [\"btc\"]\nfrom = \"2020-01-01\"\nto = \"2020-01-02\"\n",
        missing.display().to_string()
    );
    let config = Config::parse(&text, "t.toml".as_ref()).unwrap();
    let err = actix_rt::System::new()
        .block_on(async { Source::start(&config).map(|_| ()) })
        .unwrap_err();
    assert!(matches!(err, OriginError::Tls { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("exchanges.kraken") && text.contains("no-such-ca.pem"),
        "{text}"
    );
}
