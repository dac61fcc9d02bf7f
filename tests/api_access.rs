//! Who may ask the daemon's API what (issue #17): the real daemon on
//! loopback, asked with raw requests whose `Host`, `Origin`,
//! `Content-Type` and `Authorization` headers are the subject of each
//! test; an oversized query on both sides of the HTTP layer's ceiling; and
//! `pricegrid run` on a port already held.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::*;
use pricegrid::daemon::ReloadOutcome;

const TOKEN: &str = "3f9c2a7e5b1d4c8a9e6f0b2d7c4a1e5f";

/// A daemon's config over kraken's btc in early March (5 tasks), its API
/// on a loopback ephemeral port, its files under `dir`.
fn small_daemon(server_url: &url::Url, dir: &Path) -> TestConfig {
    TestConfig::daemon(server_url, &dir.join("snap"))
        .exchanges(["kraken"])
        .symbols(["btc"])
        .window("2020-03-01", "2020-03-05")
}

/// Writes `TOKEN` (with an editor's final newline) to a file under `dir`.
fn token_file(dir: &Path) -> PathBuf {
    let path = dir.join("api.token");
    std::fs::write(&path, format!("{TOKEN}\n")).expect("the token file is written");
    path
}

fn assert_json_error(r: &RawResponse, status: u16, says: &str) {
    assert_eq!(r.status, status, "{r:?}");
    let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
    assert!(error.contains(says), "{says:?} not in {error:?}");
}

#[actix_rt::test]
async fn a_cross_site_post_is_refused_and_a_same_origin_json_post_is_answered() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = small_daemon(&server.url(), dir.path()).write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    daemon.first_round().await;
    let api = daemon.api.expect("the API is on");

    // What a page on another site can send without asking the browser.
    let r = RawRequest::post(api, "/v1/reload")
        .header("Origin", "http://evil.example")
        .header("Content-Type", "text/plain")
        .send(api)
        .await;
    assert_json_error(&r, 403, "\"http://evil.example\" is not this API");
    let r = RawRequest::post(api, "/v1/reload")
        .header("Origin", "http://evil.example")
        .header("Content-Type", "application/json")
        .send(api)
        .await;
    assert_json_error(&r, 403, "evil.example");
    let r = RawRequest::post(api, "/v1/reload")
        .header("Content-Type", "text/plain")
        .send(api)
        .await;
    assert_json_error(&r, 415, "needs Content-Type: application/json");
    let r = RawRequest::post(api, "/v1/reload").send(api).await;
    assert_json_error(&r, 415, "no Content-Type");
    assert_eq!(
        daemon.reloads().borrow().attempts,
        0,
        "a refused request reached the daemon"
    );

    // The page itself, and a client that is no browser (no Origin).
    for origin in [Some(format!("http://localhost:{}", api.port())), None] {
        let mut req =
            RawRequest::post(api, "/v1/reload").header("Content-Type", "application/json");
        if let Some(origin) = &origin {
            req = req.header("Origin", origin);
        }
        let r = req.send(api).await;
        assert_eq!(r.status, 200, "{origin:?}: {r:?}");
        assert_eq!(r.json()["version"], 0, "{r:?}");
    }
    daemon.shutdown().await;
}

#[actix_rt::test]
async fn a_host_other_than_the_api_s_own_names_is_refused() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = small_daemon(&server.url(), dir.path())
        .api_allowed_hosts(["pricegrid.test"])
        .write(&dir.path().join("pricegrid.toml"));
    let daemon = RunningDaemon::start(&path).await;
    let api = daemon.api.expect("the API is on");
    let port = api.port();

    // A name that resolves to 127.0.0.1 only because an attacker's DNS
    // says so (DNS rebinding): the browser sends that name as Host.
    for host in [
        format!("evil.example:{port}"),
        format!("localhost:{}", port.wrapping_add(1)),
        "pricegrid.test.evil.example".to_owned(),
    ] {
        for route in ["/", "/v1/status", "/metrics"] {
            let r = RawRequest::get(api, route)
                .header("Host", &host)
                .send(api)
                .await;
            assert_json_error(&r, 421, &format!("Host {host:?} is not a name of this API"));
        }
    }
    for host in [
        api.to_string(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        "pricegrid.test".to_owned(),
        "PriceGrid.test:8080".to_owned(),
    ] {
        let r = RawRequest::get(api, "/v1/status")
            .header("Host", &host)
            .send(api)
            .await;
        assert_eq!(r.status, 200, "{host}: {r:?}");
    }
    daemon.shutdown().await;
}

#[actix_rt::test]
async fn with_a_token_file_every_route_but_the_page_needs_the_bearer_token() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = small_daemon(&server.url(), dir.path())
        .api_token_file(&token_file(dir.path()))
        .write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    daemon.first_round().await;
    let api = daemon.api.expect("the API is on");

    // The page's files as the router sees them, percent-encoded or not.
    for page in ["/", "/web/app.js", "/web/app.css", "/%77eb/app.js"] {
        let r = RawRequest::get(api, page).send(api).await;
        assert_eq!(r.status, 200, "{page} needs no token: {r:?}");
    }
    for sneaky in [
        "/web/../v1/status",
        "/web/%2e%2e/v1/status",
        "/web/../metrics",
    ] {
        let r = RawRequest::get(api, sneaky).send(api).await;
        assert_json_error(&r, 404, "no such route");
    }
    let routes = [
        "/v1/status",
        "/v1/prices?symbol=btc",
        "/v1/aggregate",
        "/v1/coverage",
        "/v1/failures",
        "/v1/snapshots",
        "/metrics",
    ];
    for route in routes {
        let r = RawRequest::get(api, route).send(api).await;
        assert_json_error(&r, 401, "needs Authorization: Bearer");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Bearer realm=\"pricegrid\"")
        );
        let r = RawRequest::get(api, route)
            .header("Authorization", &format!("Bearer {TOKEN}x"))
            .send(api)
            .await;
        assert_json_error(&r, 401, "not the one in api.token_file");
        let r = RawRequest::get(api, route)
            .header("Authorization", &format!("Bearer {TOKEN}"))
            .send(api)
            .await;
        assert_eq!(r.status, 200, "{route}: {r:?}");
    }
    let reload = RawRequest::post(api, "/v1/reload").header("Content-Type", "application/json");
    let r = reload.clone().send(api).await;
    assert_json_error(&r, 401, "needs Authorization: Bearer");
    let r = reload
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(api)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    daemon.shutdown().await;
}

/// Past `MAX_QUERY_BYTES` every route answers the JSON error naming the
/// query; past the HTTP layer's own ceilings (a request target over 65,534
/// bytes, a head over 128 KiB) actix-http answers before any route, with
/// an empty 400 or 431, as the README says.
/// A token set by a reload that keeps `api.listen` is in force on the same
/// port: the new rules take over the running server's socket rather than
/// binding the port again (which the running server still holds).
#[actix_rt::test]
async fn a_token_set_by_a_reload_that_keeps_the_address_guards_the_same_port() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let config = small_daemon(&server.url(), dir.path());
    let path = config.write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    daemon.first_round().await;
    let api = daemon.api.expect("the API is on");
    let r = RawRequest::get(api, "/v1/status").send(api).await;
    assert_eq!(r.status, 200, "no token yet: {r:?}");

    config
        .api_token_file(&token_file(dir.path()))
        .write(&dir.path().join("pricegrid.toml"));
    match daemon.reload_and_wait().await {
        ReloadOutcome::Applied { changed, .. } => {
            assert!(changed.iter().any(|c| c.contains("api")), "{changed:?}")
        }
        other => panic!("the reload is refused: {other:?}"),
    }
    let r = RawRequest::get(api, "/v1/status").send(api).await;
    assert_json_error(&r, 401, "needs Authorization: Bearer");
    let r = RawRequest::get(api, "/v1/status")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(api)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    daemon.shutdown().await;
}

#[actix_rt::test]
async fn an_oversized_query_is_a_json_error_naming_it_below_the_http_layer_s_ceiling() {
    let server = spawn_price_server(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = small_daemon(&server.url(), dir.path()).write(&dir.path().join("pricegrid.toml"));
    let daemon = RunningDaemon::start(&path).await;
    let api = daemon.api.expect("the API is on");

    let names = |bytes: usize| "symbol=".to_owned() + &"btc,".repeat(bytes / 4);
    let limit = pricegrid::api::MAX_QUERY_BYTES;
    for route in [
        "/",
        "/v1/status",
        "/v1/prices",
        "/metrics",
        "/no-such-route",
    ] {
        for query in [names(limit + 8), names(60_000)] {
            let r = RawRequest::get(api, &format!("{route}?{query}"))
                .send(api)
                .await;
            assert_eq!(r.status, 400, "{route}: {r:?}");
            assert_eq!(r.json()["parameter"], "query", "{route}");
            let error = r.json()["error"].as_str().unwrap_or_default().to_owned();
            assert!(
                error.contains(&format!("{} bytes, more than {limit}", query.len())),
                "{error}"
            );
        }
    }
    let r = RawRequest::get(api, &format!("/v1/prices?{}", names(limit - 64)))
        .send(api)
        .await;
    assert_eq!(r.status, 200, "a query within the limit is answered");

    let over_uri = RawRequest::get(api, &format!("/v1/prices?{}", names(70_000)))
        .send(api)
        .await;
    assert_eq!((over_uri.status, over_uri.body.as_str()), (400, ""));
    let over_head = RawRequest::get(api, "/v1/prices")
        .header("X-Padding", &"p".repeat(140_000))
        .send(api)
        .await;
    assert_eq!((over_head.status, over_head.body.as_str()), (431, ""));
    daemon.shutdown().await;
}

/// `pricegrid run` on a port another process holds: one error line, exit
/// 1, no panic, and the record never opened.
#[test]
fn a_port_in_use_stops_run_with_one_error_line_before_anything_starts() {
    let held = std::net::TcpListener::bind(loopback()).expect("a free port");
    let addr: SocketAddr = held.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.db");
    let path = TestConfig::fetching_from(&nothing_listens())
        .snapshots(&dir.path().join("snap"))
        .record(&record)
        .api_listen(addr)
        .write(&dir.path().join("pricegrid.toml"));

    let (code, stdout, stderr) = pricegrid_in(Some(dir.path()), &[&"run", &"--config", &path]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    let want = format!("error: cannot start the API on {addr}: Address already in use");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.iter().filter(|l| l.starts_with(&want)).count(),
        1,
        "{stderr}"
    );
    assert_eq!(lines.last(), Some(&want.as_str()), "{stderr}");
    for absent in ["panicked", "backtrace", "daemon started", "record"] {
        assert!(!stderr.contains(absent), "{absent:?} in {stderr}");
    }
    assert!(!record.exists(), "the record was created");
    drop(held);
}

/// A token file that cannot be used stops `run` the same way, naming it.
#[test]
fn an_unusable_token_file_stops_run_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("record.db");
    let short = dir.path().join("short.token");
    std::fs::write(&short, "secret\n").unwrap();
    for (file, says) in [
        (short, "fewer than 16"),
        (dir.path().join("absent.token"), "cannot read it"),
    ] {
        let path = TestConfig::fetching_from(&nothing_listens())
            .snapshots(&dir.path().join("snap"))
            .record(&record)
            .api_on_loopback()
            .api_token_file(&file)
            .write(&dir.path().join("pricegrid.toml"));
        let (code, _, stderr) = pricegrid_in(Some(dir.path()), &[&"run", &"--config", &path]);
        assert_eq!(code, 1, "{stderr}");
        let want = format!("error: api.token_file {}: ", file.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&want) && l.contains(says)),
            "{want}...{says} not in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!record.exists(), "the record was created");
    }
}

/// On every interface, the daemon warns that other hosts can reach it and
/// answers only with the token (asked here over loopback only).
#[test]
fn an_api_on_every_interface_warns_and_needs_the_token() {
    let server = ServerThread::start(|_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = small_daemon(&server.url, dir.path())
        .api_listen(SocketAddr::from(([0, 0, 0, 0], 0)))
        .api_token_file(&token_file(dir.path()))
        .write(&dir.path().join("pricegrid.toml"));
    let (mut child, mut lines) = spawn_daemon(&path);
    let log = read_until(&mut lines, "reachable from other hosts", 1);
    let port: u16 = log
        .split("API listening on http://0.0.0.0:")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no listen line in {log}"));
    let api = SocketAddr::from(([127, 0, 0, 1], port));
    let r = RawRequest::get(api, "/v1/status").send_blocking(api);
    assert_eq!(r.status, 401, "{r:?}");
    let r = RawRequest::get(api, "/v1/status")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send_blocking(api);
    assert_eq!(r.status, 200, "{r:?}");
    signal(&child, "-TERM");
    let status = child.wait().expect("the daemon exits");
    assert!(status.success(), "{status:?}");
}
