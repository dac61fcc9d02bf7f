//! Unit tests of the API's guard (`access/mod.rs`): Host, Origin, token, Content-Type and query size.

use super::*;
use crate::api::MAX_QUERY_BYTES;
use actix_web::http::header::{HeaderName, HeaderValue};

const TOKEN: &str = "0123456789abcdef0123";

fn access(listen: &str, allowed: &[&str], token: bool) -> Access {
    Access::new(
        listen.parse().unwrap(),
        allowed.iter().map(|h| h.parse().unwrap()).collect(),
        token.then(|| Token::new(TOKEN).unwrap()),
    )
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn get(a: &Access, path: &str, h: &[(&'static str, &str)]) -> Result<(), Refusal> {
    a.check(&Method::GET, path, "", &headers(h))
}

#[test]
fn a_host_is_the_listen_address_a_loopback_name_on_its_port_or_an_allowed_one() {
    let a = access(
        "192.168.1.5:9180",
        &["pricegrid.lan", "proxy.example:8443"],
        false,
    );
    for ok in [
        "192.168.1.5:9180",
        "localhost:9180",
        "LOCALHOST:9180",
        "127.0.0.1:9180",
        "[::1]:9180",
        "pricegrid.lan",
        "pricegrid.lan:9180",
        "Pricegrid.LAN:80",
        "proxy.example:8443",
    ] {
        assert_eq!(get(&a, "/v1/status", &[("host", ok)]), Ok(()), "{ok}");
    }
    for bad in [
        "evil.example:9180",
        "localhost:9181",
        "localhost",
        "192.168.1.5:80",
        "proxy.example",
        "proxy.example:443",
        "pricegrid.lan.evil.example",
        "",
        "a b",
    ] {
        let err = get(&a, "/v1/status", &[("host", bad)]).unwrap_err();
        assert_eq!(err.status(), StatusCode::MISDIRECTED_REQUEST, "{bad}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    let none = get(&a, "/", &[]).unwrap_err();
    assert!(none.to_string().contains("no Host header"), "{none}");
}

#[test]
fn an_unspecified_listen_address_is_no_host_name() {
    let a = access("0.0.0.0:9180", &[], true);
    let err = get(&a, "/", &[("host", "0.0.0.0:9180")]).unwrap_err();
    assert_eq!(err.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(get(&a, "/", &[("host", "localhost:9180")]), Ok(()));
}

#[test]
fn with_a_token_every_route_but_the_page_needs_it() {
    let a = access("127.0.0.1:9180", &[], true);
    let host = ("host", "127.0.0.1:9180");
    for page in ["/", "/web/app.js", "/web/vendor/uPlot.min.css"] {
        assert_eq!(get(&a, page, &[host]), Ok(()), "{page}");
    }
    let bearer = format!("Bearer {TOKEN}");
    let lower = format!("bearer {TOKEN}");
    for route in ["/v1/status", "/v1/events", "/metrics", "/nothing"] {
        let err = get(&a, route, &[host]).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{route}");
        for wrong in [
            "Bearer 0123456789abcdef012",
            "Bearer 0123456789abcdef01234",
            "Basic MDEyMzQ1Njc4OWFiY2RlZjAxMjM=",
            TOKEN,
            "Bearer",
        ] {
            let err = get(&a, route, &[host, ("authorization", wrong)]).unwrap_err();
            assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{wrong}");
        }
        assert_eq!(get(&a, route, &[host, ("authorization", &bearer)]), Ok(()));
        assert_eq!(get(&a, route, &[host, ("authorization", &lower)]), Ok(()));
    }
    let post = a.check(
        &Method::POST,
        "/",
        "",
        &headers(&[host, ("content-type", "application/json")]),
    );
    assert_eq!(
        post.unwrap_err().status(),
        StatusCode::UNAUTHORIZED,
        "only reading the page's files is free"
    );
}

#[test]
fn a_post_carries_json_from_no_origin_or_this_one() {
    let a = access("127.0.0.1:9180", &["pricegrid.lan"], false);
    let post = |h: &[(&'static str, &str)]| {
        let mut all = vec![("host", "127.0.0.1:9180")];
        all.extend_from_slice(h);
        a.check(&Method::POST, "/v1/reload", "", &headers(&all))
    };
    let json = ("content-type", "application/json");
    assert_eq!(post(&[json]), Ok(()));
    assert_eq!(
        post(&[("content-type", "application/json; charset=utf-8")]),
        Ok(())
    );
    for own in [
        "http://127.0.0.1:9180",
        "http://localhost:9180",
        "http://[::1]:9180",
        "https://pricegrid.lan",
    ] {
        assert_eq!(post(&[json, ("origin", own)]), Ok(()), "{own}");
    }
    for other in [
        "http://evil.example",
        "http://localhost:9181",
        "http://localhost",
        "null",
        "file://",
    ] {
        let err = post(&[json, ("origin", other)]).unwrap_err();
        assert_eq!(err.status(), StatusCode::FORBIDDEN, "{other}");
        assert!(err.to_string().contains(other), "{err}");
    }
    for (ct, shown) in [
        (Some("text/plain"), "\"text/plain\""),
        (Some("application/x-www-form-urlencoded"), "form"),
        (Some("application/jsonx"), "jsonx"),
        (None, "no Content-Type"),
    ] {
        let h: Vec<_> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let err = post(&h).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert!(err.to_string().contains(shown), "{err}");
    }
}

#[test]
fn a_long_query_is_refused_naming_it_on_every_route() {
    let a = access("127.0.0.1:9180", &[], false);
    let host = headers(&[("host", "127.0.0.1:9180")]);
    let long = "a".repeat(MAX_QUERY_BYTES + 1);
    for path in ["/", "/metrics", "/v1/prices"] {
        let Err(Refusal::Query(e)) = a.check(&Method::GET, path, &long, &host) else {
            panic!("{path}: a long query passed");
        };
        assert_eq!(e.parameter, "query");
    }
    let limit = "a".repeat(MAX_QUERY_BYTES);
    assert_eq!(a.check(&Method::GET, "/", &limit, &host), Ok(()));
}

#[test]
fn a_token_file_is_trimmed_and_must_be_a_long_visible_token() {
    assert!(Token::new(&format!("  {TOKEN}\n"))
        .unwrap()
        .matches(TOKEN.as_bytes()));
    for (raw, says) in [
        ("", "is empty"),
        ("\n", "is empty"),
        ("short", "fewer than 16"),
        ("0123456789 abcdef0123", "visible ASCII"),
        ("0123456789abcdéf0123", "visible ASCII"),
    ] {
        let err = Token::new(raw).unwrap_err();
        assert!(err.contains(says), "{raw:?}: {err}");
    }
    assert_eq!(format!("{:?}", Token::new(TOKEN).unwrap()), "Token(..)");
}
