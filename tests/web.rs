//! The web page in a real browser: the daemon on a loopback port, fetching
//! from the built-in price server, its page opened in headless Chromium
//! (chromedriver, through fantoccini). Each test reads the page's DOM, compares
//! it with what the daemon holds, and saves a screenshot under
//! `target/web-screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`; `.ci/run` installs them). The tests
//! take one browser at a time, so two cores are not shared by several.

#[path = "web/browser.rs"]
mod browser;
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use browser::Browser;
use common::TestDatabase;
use common::{spawn_price_server, RawRequest, RunningDaemon, TestConfig};
use fantoccini::actions::InputSource;
use pricegrid::store::Store;

/// One browser at a time (see the module docs).
static ONE_BROWSER: Mutex<()> = Mutex::new(());

/// Runs a test's body on its own actix system, holding `ONE_BROWSER`.
fn one_at_a_time(body: impl std::future::Future<Output = ()>) {
    let _one = ONE_BROWSER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    actix_rt::System::new().block_on(body);
}

/// A daemon config for the page: the API on a loopback port, files under
/// `dir`, rounds an hour apart (after the first, a test runs them).
fn page_config(dir: &Path) -> TestConfig {
    TestConfig::new()
        .snapshots(&dir.join("snap"))
        .api_on_loopback()
        .interval(Duration::from_secs(3600))
        .drain_timeout(Duration::from_secs(2))
        .quick_backoff()
}

/// Every cell element of the map: (exchange, day) -> (state, title, flags).
async fn map_cells(b: &Browser) -> BTreeMap<(String, String), (String, String, String)> {
    let cells = b
        .js("return Array.from(document.querySelectorAll('#map .c[data-day]'), c => \
             [c.dataset.exchange, c.dataset.day, c.dataset.state, c.title, c.dataset.flags || '']);")
        .await;
    let cells = cells.as_array().expect("an array of cells").clone();
    let mut out = BTreeMap::new();
    for c in cells {
        let f = |i: usize| c[i].as_str().unwrap_or_default().to_owned();
        let previous = out.insert((f(0), f(1)), (f(2), f(3), f(4)));
        assert!(previous.is_none(), "two cells for {} {}", f(0), f(1));
    }
    out
}

/// What the page should show for `symbol`'s cell of (exchange, day):
/// its state, or "missing" when the store holds none.
fn expected_state(store: &Store, exchange: &str, symbol: &str, day: &str) -> (String, String) {
    let (e, s, d) = (
        exchange.parse().expect("an exchange"),
        symbol.parse().expect("a symbol"),
        common::day(day),
    );
    match store.get(&e, &s, d) {
        Some(cell) => (cell.state.to_string(), cell.flags.names().join(" ")),
        None => ("missing".into(), String::new()),
    }
}

#[test]
fn the_map_shows_a_cell_per_exchange_and_day_and_failed_cells_name_their_reason() {
    one_at_a_time(async {
        let server = spawn_price_server(|o| {
            o.faults.fail_rate = 0.15;
            o.faults.seed = 7;
        });
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = page_config(dir.path())
            .source(&server.url())
            .every_exchange()
            .symbols(["btc", "eth"])
            .march()
            .max_attempts(1)
            .write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&path).await;
        let round = daemon.first_round().await;
        assert!(
            round.counts.failed > 0,
            "the faults fail some cells: {round:?}"
        );
        let store = daemon.store().await;

        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        b.wait_for(
            "the map after round 1",
            "#map[data-symbol='btc'][data-round='1']",
        )
        .await;
        let cells = map_cells(&b).await;

        let exchanges: Vec<String> = store.exchanges().map(|e| e.to_string()).collect();
        assert_eq!(exchanges.len(), 11, "the classic server's exchanges");
        let days: Vec<String> = (1..=31).map(|d| format!("2020-03-{d:02}")).collect();
        assert_eq!(
            cells.len(),
            exchanges.len() * days.len(),
            "one cell per (exchange, day)"
        );
        let mut failed_seen = 0;
        for e in &exchanges {
            for d in &days {
                let (state, title, flags) = cells
                    .get(&(e.clone(), d.clone()))
                    .unwrap_or_else(|| panic!("no cell for {e} {d}"));
                let (want, want_flags) = expected_state(&store, e, "btc", d);
                assert_eq!((state, flags), (&want, &want_flags), "{e} {d}: {title}");
                assert!(title.starts_with(&format!("{e} {d}: {want}")), "{title}");
                if want == "failed" {
                    let cell = store
                        .get(&e.parse().unwrap(), &"btc".parse().unwrap(), common::day(d))
                        .expect("a failed cell");
                    let reason = cell.note.expect("a failed cell has its reason").reason;
                    assert!(title.contains(&reason), "{title} names {reason:?}");
                    failed_seen += 1;
                }
            }
        }
        assert!(failed_seen > 0, "some of btc's cells failed");

        // Hovering a failed cell shows its reason under the map.
        let failed = b
            .client
            .find(fantoccini::Locator::Css("#map .c[data-state='failed']"))
            .await
            .expect("a failed cell");
        let title = failed.attr("title").await.unwrap().unwrap_or_default();
        b.client
            .perform_actions(fantoccini::actions::MouseActions::new("mouse".into()).then(
                fantoccini::actions::PointerAction::MoveToElement {
                    element: failed,
                    duration: None,
                    x: 0,
                    y: 0,
                },
            ))
            .await
            .expect("the mouse moves");
        let hover = b.text("#hover").await;
        assert_eq!(hover, title, "the hover line shows the cell's details");
        assert!(hover.contains("reason: server error"), "{hover}");

        // The failures table: every symbol's failed cells by exchange and reason.
        let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
        for f in store.failed() {
            *want.entry((f.exchange.to_string(), f.reason)).or_default() += 1;
        }
        let rows = b
        .js("return Array.from(document.querySelectorAll('#failures tbody tr[data-exchange]'), r => \
             [r.dataset.exchange, r.querySelector('.reason').textContent, Number(r.dataset.cells)]);")
        .await;
        let got: BTreeMap<(String, String), u64> = rows
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                (
                    (
                        r[0].as_str().unwrap().to_owned(),
                        r[1].as_str().unwrap().to_owned(),
                    ),
                    r[2].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got, want,
            "the failures table groups the store's failed cells"
        );
        assert_eq!(
            want.values().sum::<u64>(),
            round.counts.failed,
            "every failed cell of the round is in the table"
        );

        let shot = b.screenshot("map-with-failures").await;
        println!("screenshot: {}", shot.display());
        b.close().await;
        daemon.shutdown().await;
    });
}

#[test]
fn the_progress_bar_moves_during_a_round_and_shows_its_completion() {
    one_at_a_time(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("pricegrid.toml");
        // Round 1 is small and quick; the page opens on it, idle.
        let small = page_config(dir.path())
            .exchanges(["kraken", "bitstamp"])
            .symbols(["btc"])
            .window("2020-03-01", "2020-03-02")
            .workers(4);
        small.write(&path);
        let mut daemon = RunningDaemon::start(&path).await;
        daemon.first_round().await;
        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        b.wait_for(
            "round 1 complete",
            "#progress[data-running='false'][data-done='4'][data-tasks='4']",
        )
        .await;

        // Round 2: 2 exchanges x 3 symbols x 31 days less the 4 cells settled,
        // each answer 80 ms late, 4 at a time: about four seconds, so the page
        // (a status each second) sees it under way.
        small
            .clone()
            .symbols(["btc", "eth", "ltc"])
            .march()
            .builtin_latency(Duration::from_millis(80))
            .write(&path);
        let reloaded = daemon.reload_and_wait().await;
        assert!(
            matches!(reloaded, pricegrid::daemon::ReloadOutcome::Applied { .. }),
            "{reloaded:?}"
        );
        let producer = daemon.pipeline.producer.clone();
        let round2 =
            actix_rt::spawn(
                async move { producer.send(pricegrid::actors::producer::RunRound).await },
            );

        let mid = b
            .wait_for_xpath(
                "round 2 under way",
                "//*[@id='progress'][@data-running='true' and number(@data-done) > 0 \
             and number(@data-done) < number(@data-tasks)]",
            )
            .await;
        let first: u64 = mid
            .attr("data-done")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        let tasks: u64 = mid
            .attr("data-tasks")
            .await
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(b.text("#round").await, "2");
        assert_eq!(b.text("#state").await, "running");
        b.screenshot("progress-running").await;
        b.wait_for_xpath(
            "round 2 further along",
            &format!("//*[@id='progress'][number(@data-done) > {first}]"),
        )
        .await;

        let summary = round2
            .await
            .expect("the round task")
            .expect("the producer")
            .expect("round 2 runs");
        assert_eq!(summary.round, 2);
        assert_eq!(
            summary.counts.tasks, tasks,
            "the bar counts the round's tasks"
        );
        assert_eq!(
            tasks,
            2 * 3 * 31 - 4,
            "the settled cells are not asked again"
        );
        b.wait_for(
            "round 2 complete",
            &format!("#progress[data-running='false'][data-done='{tasks}'][data-tasks='{tasks}']"),
        )
        .await;
        assert_eq!(b.text("#state").await, "idle");
        let c = summary.counts;
        let text = b.text("#progress-text").await;
        assert_eq!(
            text,
            format!(
                "{tasks} / {tasks} tasks · {} final · {} provisional · {} none · {} failed",
                c.finals, c.provisional, c.none, c.failed
            )
        );
        // The segments fill the whole bar (their widths as set: the bar
        // eases into them).
        let filled = b
            .js(
                "return Array.from(document.querySelectorAll('#progress .seg'), \
                 s => parseFloat(s.style.width)).reduce((a, b) => a + b, 0);",
            )
            .await
            .as_f64()
            .expect("a percentage");
        assert!(
            (filled - 100.0).abs() < 0.01,
            "the bar is {filled:.3}% full"
        );
        println!("round 2: {tasks} tasks, first seen at {first} done");
        b.screenshot("progress-complete").await;
        b.close().await;
        daemon.shutdown().await;
    });
}

#[test]
fn a_rejected_reload_shows_its_error_in_the_status_bar() {
    one_at_a_time(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("pricegrid.toml");
        let config = page_config(dir.path())
            .exchanges(["kraken"])
            .symbols(["btc"])
            .window("2020-03-01", "2020-03-05");
        config.write(&path);
        let mut daemon = RunningDaemon::start(&path).await;
        daemon.first_round().await;
        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        assert_eq!(b.text("#reload").await, "no reload yet");

        let text = config
            .toml(&path)
            .replace("[fetch]\n", "[fetch]\nworker = 3\n");
        std::fs::write(&path, text).expect("the broken config is written");
        let resp = awc::Client::new()
            .post(format!("{}/v1/reload", daemon.api_url()))
            .insert_header(("Content-Type", "application/json"))
            .send()
            .await;
        let mut resp = resp.expect("POST /v1/reload answers");
        assert_eq!(resp.status().as_u16(), 422);
        let body: serde_json::Value = resp.json().await.expect("a JSON error");
        let error = body["error"].as_str().expect("an error").to_owned();
        assert!(
            error.contains("fetch.worker: unknown field `worker`"),
            "{error}"
        );

        let shown = b
            .wait_for("the rejected reload", "#reload[data-result='rejected']")
            .await
            .text()
            .await
            .expect("its text");
        assert!(shown.contains("still version 0"), "{shown}");
        // The whole error, with its file:line:col.
        let first_line = error.lines().next().unwrap_or_default();
        assert!(shown.contains(first_line), "{shown:?} shows {first_line:?}");
        b.screenshot("reload-rejected").await;

        // A good file again: the bar says it was applied.
        config.clone().workers(3).write(&path);
        daemon.reloaded_to(1).await;
        let shown = b
            .wait_for("the applied reload", "#reload[data-result='applied']")
            .await
            .text()
            .await
            .expect("its text");
        assert!(shown.contains("version 1"), "{shown}");
        b.close().await;
        daemon.shutdown().await;
    });
}

/// Once everything is settled a tick runs no round, and the status bar
/// still shows what the record holds, by state, beside round 1's counts.
#[test]
fn the_status_bar_shows_the_record_totals_beside_the_last_round() {
    one_at_a_time(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("pricegrid.toml");
        page_config(dir.path())
            .exchanges(["kraken", "okex"])
            .symbols(["btc", "eth"])
            .window("2020-03-01", "2020-03-05")
            .write(&path);
        let mut daemon = RunningDaemon::start(&path).await;
        daemon.first_round().await;
        assert_eq!(daemon.tick().await, 0, "nothing is due");
        let store = daemon.store().await;
        let count = |state| store.count(state);
        use pricegrid::model::CellState::*;
        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        b.wait_for("the record's totals", "#stored[data-cells='20']")
            .await;
        assert_eq!(
            b.text("#stored").await,
            format!(
                "record 20 cells · {} final · {} provisional · {} none · {} failed",
                count(Final),
                count(Provisional),
                count(NoPrice),
                count(Failed)
            )
        );
        assert_eq!(b.text("#round").await, "1", "no round after the first");
        b.screenshot("status-record-totals").await;
        b.close().await;
        daemon.shutdown().await;
    });
}

/// With `api.token_file`, the page asks for the token once, keeps it for
/// the tab and shows the daemon's data through the bearer header.
#[test]
fn with_a_token_the_page_asks_for_it_once_and_shows_the_data() {
    one_at_a_time(async {
        const TOKEN: &str = "9d1f0c3b7a2e4f6a8c5b0e1d3f7a9c2b";
        let dir = tempfile::tempdir().expect("a temp dir");
        let token = dir.path().join("api.token");
        std::fs::write(&token, TOKEN).expect("the token file is written");
        let path = page_config(dir.path())
            .api_token_file(&token)
            .exchanges(["kraken"])
            .symbols(["btc"])
            .window("2020-03-01", "2020-03-05")
            .write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&path).await;
        daemon.first_round().await;
        let b = Browser::start().await;
        b.client
            .goto(&daemon.api_url())
            .await
            .expect("the page opens without a token");
        let asked = b.answer_prompt(TOKEN).await;
        assert!(asked.contains("api.token_file"), "{asked}");
        b.wait_for("the first status", "#state[data-state='idle']")
            .await;
        b.wait_for("the map", "#map .c[data-day]").await;
        assert_eq!(map_cells(&b).await.len(), 5);
        let kept = b
            .js("return sessionStorage.getItem('pricegrid.token');")
            .await;
        assert_eq!(kept, TOKEN);
        b.screenshot("token").await;
        b.close().await;
        daemon.shutdown().await;
    });
}

#[test]
fn the_default_config_page_shows_its_data_and_one_series_per_exchange() {
    one_at_a_time(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        // The shipped defaults (the built-in server, every exchange and
        // symbol over 2020), only with its files and API where a test keeps them.
        let path = page_config(dir.path())
            .window("2020-01-01", "2020-12-31")
            .write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&path).await;
        let round = daemon.first_round().await;
        assert_eq!(round.counts.failed, 0);
        let store = daemon.store().await;

        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        b.wait_for(
            "the map after round 1",
            "#map[data-symbol='btc'][data-round='1']",
        )
        .await;
        let exchanges: Vec<String> = store.exchanges().map(|e| e.to_string()).collect();
        assert_eq!(
            b.js("return document.querySelectorAll('#map .c[data-day]').length;")
                .await,
            serde_json::json!(exchanges.len() * 366)
        );
        // uPlot's legend: one series per exchange, then the band, the
        // median and the reference close.
        let labels = b
        .js("return Array.from(document.querySelectorAll('#chart .u-legend .u-series .u-label'), l => l.textContent);")
        .await;
        let labels: Vec<String> = labels
            .as_array()
            .expect("labels")
            .iter()
            .map(|l| l.as_str().unwrap_or_default().to_owned())
            .collect();
        let mut want: Vec<String> = exchanges.clone();
        want.extend(["max", "min", "median", "reference"].map(String::from));
        assert_eq!(
            &labels[1..],
            &want[..],
            "series after the time axis: {labels:?}"
        );
        // The reference line has a point wherever /v1/reference has a close.
        let api: std::net::SocketAddr = daemon
            .api_url()
            .trim_start_matches("http://")
            .parse()
            .expect("an address");
        let references = RawRequest::get(
            api,
            "/v1/reference?symbol=btc&from=2020-01-01&to=2020-12-31&limit=1000",
        )
        .send(api)
        .await
        .json();
        let closes = references["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter(|r| r["close"].is_number())
            .count();
        assert!(closes > 300, "references of 2020: {closes}");
        assert_eq!(
            b.js("return document.querySelector('#chart').dataset.references;")
                .await,
            serde_json::json!(closes.to_string())
        );
        assert_eq!(
            b.js("return document.querySelectorAll('#spread .u-legend .u-series').length;")
                .await,
            serde_json::json!(2),
            "the spread chart: time and spread %"
        );
        let canvases = b
        .js("return Array.from(document.querySelectorAll('#chart canvas, #spread canvas'), c => c.width > 0 && c.height > 0);")
        .await;
        assert_eq!(
            canvases,
            serde_json::json!([true, true]),
            "both charts are drawn"
        );
        assert_eq!(
            b.text("#failures tbody").await,
            "no failed cells",
            "nothing failed on the clean server"
        );
        let shot = b.screenshot("default-config").await;
        println!("screenshot: {}", shot.display());
        b.close().await;
        daemon.shutdown().await;
    });
}

#[test]
fn the_map_of_ten_exchanges_three_symbols_and_three_years_renders_in_one_pass() {
    one_at_a_time(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let exchanges = [
            "bitfinex",
            "bitstamp",
            "bittrex",
            "cexio",
            "coinbase-pro",
            "hitbtc",
            "huobi",
            "kraken",
            "okex",
            "poloniex",
        ];
        let path = page_config(dir.path())
            .exchanges(exchanges)
            .symbols(["btc", "eth", "ltc"])
            .window("2018-01-01", "2020-12-31")
            .write(&dir.path().join("pricegrid.toml"));
        let started = Instant::now();
        let mut daemon = RunningDaemon::start(&path).await;
        let round = daemon.first_round().await;
        assert_eq!(round.counts.tasks, 10 * 3 * 1096);
        println!(
            "round 1: {} tasks in {:.1}s",
            round.counts.tasks,
            started.elapsed().as_secs_f64()
        );

        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        let mut timings = Vec::new();
        for symbol in ["btc", "eth", "ltc"] {
            let before = b
                .js("return Number(document.getElementById('map').dataset.loads || 0);")
                .await;
            let before = before.as_u64().unwrap_or(0);
            if symbol != "btc" {
                b.client
                    .find(fantoccini::Locator::Css("#symbol"))
                    .await
                    .expect("the symbol select")
                    .select_by_value(symbol)
                    .await
                    .expect("a symbol is chosen");
            }
            let map = b
                .wait_for_xpath(
                    &format!("{symbol}'s map"),
                    &format!(
                        "//*[@id='map'][@data-symbol='{symbol}' and @data-round='1' \
                     and number(@data-loads) > {}]",
                        if symbol == "btc" { 0 } else { before }
                    ),
                )
                .await;
            let cells: usize = map
                .attr("data-cells")
                .await
                .unwrap()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(cells, 10 * 1096, "{symbol}: one cell per (exchange, day)");
            let counted = b
                .js("return document.querySelectorAll('#map .c[data-day]').length;")
                .await;
            assert_eq!(counted, serde_json::json!(cells));
            let render: f64 = map
                .attr("data-render-ms")
                .await
                .unwrap()
                .unwrap()
                .parse()
                .unwrap();
            let fetch: f64 = map
                .attr("data-fetch-ms")
                .await
                .unwrap()
                .unwrap()
                .parse()
                .unwrap();
            println!("{symbol}: {cells} cells, data fetched in {fetch:.0} ms, map rendered in {render:.0} ms");
            timings.push(render);
            // Three years fit the 1400 px window too, a day a pixel or so.
            let cell = assert_fits(&b.js(WIDTHS).await);
            assert!(cell > 0.5, "{symbol}: {cell:.2} px a day");
        }
        // One pass over 10,960 cells: well under the second a person notices.
        for t in &timings {
            assert!(*t < 1500.0, "rendering took {t:.0} ms: {timings:?}");
        }
        // The page still answers at once.
        let responsive = Instant::now();
        b.js("return 1;").await;
        assert!(responsive.elapsed() < Duration::from_secs(2));
        b.screenshot("three-years").await;
        b.close().await;
        daemon.shutdown().await;
    });
}

/// Reads server-sent events from `body` until `count` have come or the
/// stream ends, within `LIMIT`; returns each event's data, parsed.
async fn read_events(
    body: &mut (impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
              + Unpin),
    count: usize,
) -> Vec<serde_json::Value> {
    use futures_util::StreamExt;
    const LIMIT: Duration = Duration::from_secs(10);
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while events.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = actix_rt::time::timeout(left, body.next())
            .await
            .unwrap_or_else(|_| panic!("{count} events did not come within {LIMIT:?}: {text}"));
        let Some(chunk) = chunk else { break };
        text.push_str(std::str::from_utf8(&chunk.expect("a chunk")).expect("UTF-8 events"));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                assert!(event.starts_with("event: status\n"), "{event}");
                events.push(serde_json::from_str(data).expect("a JSON status"));
            }
        }
    }
    events
}

#[actix_rt::test]
async fn the_event_stream_sends_the_status_and_ends_when_the_daemon_stops() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = page_config(dir.path())
        .exchanges(["kraken"])
        .symbols(["btc"])
        .window("2020-03-01", "2020-03-03")
        .write(&dir.path().join("pricegrid.toml"));
    let mut daemon = RunningDaemon::start(&path).await;
    daemon.first_round().await;
    let url = format!("{}/v1/events", daemon.api_url());
    let client = awc::Client::builder().disable_timeout().finish();
    let mut streams = Vec::new();
    // Before the first stream opens: its second status comes a second after
    // that, however long the other streams take to open.
    let opened = Instant::now();
    for _ in 0..pricegrid::api::MAX_EVENT_STREAMS {
        let resp = client.get(&url).send().await.expect("a stream opens");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            resp.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"text/event-stream"[..])
        );
        streams.push(resp);
    }
    let refused = client.get(&url).send().await.expect("an answer");
    assert_eq!(refused.status().as_u16(), 503, "streams are bounded");

    let events = read_events(&mut streams[0], 2).await;
    assert_eq!(events.len(), 2);
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "one status at once, the next a second later"
    );
    for e in &events {
        assert_eq!(e["state"], "idle");
        assert_eq!(e["round"], 1);
        assert_eq!(e["done"], 3);
        assert_eq!(
            e["window"],
            serde_json::json!({"from": "2020-03-01", "to": "2020-03-03"})
        );
        assert_eq!(e["exchanges"], serde_json::json!(["kraken"]));
        assert_eq!(e["last_reload"], serde_json::Value::Null);
    }

    // Open streams do not hold the shutdown (a graceful stop would wait
    // 30 s for them), and each ends.
    let stopping = Instant::now();
    daemon.shutdown().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "the shutdown took {:?}",
        stopping.elapsed()
    );
    for s in &mut streams {
        read_events(s, usize::MAX).await;
    }
}

/// A config whose first round is slow (one worker, answers `LATE` behind:
/// minutes for its 62 cells, and its shutdown waits one answer at most)
/// in a window the source has no price for (the built-in dataset is
/// 2020's), so the page sees the round under way, its cells not fetched
/// yet, and no price whatever the round has done.
fn slow_first_round(dir: &Path) -> TestConfig {
    const LATE: Duration = Duration::from_secs(5);
    page_config(dir)
        .exchanges(["kraken", "bitstamp"])
        .symbols(["btc"])
        .window("2019-03-01", "2019-03-31")
        .workers(1)
        .builtin_latency(LATE)
}

/// The page's facts about its width, as JSON: the document's and the map's
/// scroll and client widths, and where the map's last cell ends.
const WIDTHS: &str = "const d = document.documentElement, m = document.getElementById('map'); \
     const cells = m.querySelectorAll('.c[data-day]'); \
     const box = m.getBoundingClientRect(), last = cells[cells.length - 1].getBoundingClientRect(); \
     return { page: [d.scrollWidth, d.clientWidth], map: [m.scrollWidth, m.clientWidth], \
              cell: cells[0].getBoundingClientRect().width, gap: box.right - last.right };";

/// Asserts the page and its map have no horizontal scrollbar and that the
/// days fill the map's width; returns one cell's width in px.
fn assert_fits(widths: &serde_json::Value) -> f64 {
    let pair = |k: &str| {
        (
            widths[k][0].as_f64().unwrap(),
            widths[k][1].as_f64().unwrap(),
        )
    };
    let (scroll, client) = pair("page");
    assert!(scroll <= client, "the page scrolls sideways: {widths}");
    let (scroll, client) = pair("map");
    assert!(scroll <= client, "the map scrolls sideways: {widths}");
    let gap = widths["gap"].as_f64().expect("a gap");
    assert!(
        gap < 30.0,
        "the days leave the map's right side empty: {widths}"
    );
    widths["cell"].as_f64().expect("a cell width")
}

#[test]
fn a_ninety_two_day_map_fits_a_1400_px_window_without_a_scrollbar() {
    one_at_a_time(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = page_config(dir.path())
            .every_exchange()
            .symbols(["btc"])
            .window("2020-03-01", "2020-05-31")
            .write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&path).await;
        daemon.first_round().await;
        let b = Browser::start().await;
        b.client
            .set_window_size(1400, 1300)
            .await
            .expect("the window is 1400 px wide");
        b.open(&daemon.api_url()).await;
        b.wait_for(
            "the map after round 1",
            "#map[data-symbol='btc'][data-round='1']",
        )
        .await;
        assert_eq!(
            b.js("return document.querySelectorAll('#map .c[data-day]').length;")
                .await,
            serde_json::json!(11 * 92),
            "a cell per exchange and day"
        );
        let widths = b.js(WIDTHS).await;
        let cell = assert_fits(&widths);
        assert!(cell >= 8.0, "92 days in 1400 px: {cell:.1} px a day");
        println!("92 days at 1400 px: {cell:.1} px a day, {widths}");
        b.screenshot("ninety-two-days").await;
        b.close().await;
        daemon.shutdown().await;
    });
}

/// The empty chart's message, once the page has drawn its first load.
async fn empty_chart_message(b: &Browser) -> String {
    b.wait_for("the first load", "#map[data-loads]").await;
    let shown = b
        .wait_for("the empty chart's message", "#chart-empty:not([hidden])")
        .await;
    assert_eq!(
        b.js("return document.querySelectorAll('#chart canvas').length;")
            .await,
        serde_json::json!(0),
        "no empty grid is drawn"
    );
    shown.text().await.expect("its text")
}

#[test]
fn an_empty_chart_says_why_it_is_empty() {
    one_at_a_time(async {
        // While the first round runs, nothing is stored yet.
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = slow_first_round(dir.path()).write(&dir.path().join("pricegrid.toml"));
        let daemon = RunningDaemon::start(&path).await;
        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        assert_eq!(
            empty_chart_message(&b).await,
            "No prices yet for btc: the first round has not finished."
        );
        b.screenshot("empty-chart-first-round").await;
        b.close().await;
        daemon.shutdown().await;

        // A finished round in a window where the source has no price (the
        // built-in dataset is 2020's): every cell "none".
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = page_config(dir.path())
            .exchanges(["kraken"])
            .symbols(["btc"])
            .window("2019-03-01", "2019-03-05")
            .write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&path).await;
        let round = daemon.first_round().await;
        assert_eq!(round.counts.none, 5, "{round:?}");
        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        b.wait_for("the map after round 1", "#map[data-round='1']")
            .await;
        assert_eq!(
            empty_chart_message(&b).await,
            "No prices for btc: no final or provisional price in 2019-03-01 … 2019-03-05."
        );
        b.screenshot("empty-chart-no-price").await;
        b.close().await;
        daemon.shutdown().await;
    });
}

/// Each `[data-state]` element under `selector`: state -> its word (its
/// text without a leading count).
async fn words(b: &Browser, selector: &str) -> BTreeMap<String, String> {
    let pairs = b
        .js(&format!(
            "return Array.from(document.querySelectorAll(\"{selector} [data-state]\"), \
             e => [e.dataset.state, e.textContent.replace(/^[0-9]+ /, '')]);"
        ))
        .await;
    pairs
        .as_array()
        .expect("pairs")
        .iter()
        .map(|p| {
            let s = |i: usize| p[i].as_str().unwrap_or_default().to_owned();
            (s(0), s(1))
        })
        .collect()
}

/// `rgb(r, g, b)` or `rgba(r, g, b, a)` as its relative luminance (WCAG).
fn luminance(css: &str) -> f64 {
    let inner = css
        .trim_start_matches("rgba(")
        .trim_start_matches("rgb(")
        .trim_end_matches(')');
    let c: Vec<f64> = inner
        .split(',')
        .take(3)
        .map(|v| {
            v.trim()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("a colour: {css}"))
        })
        .map(|v| {
            let v = v / 255.0;
            if v <= 0.03928 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        })
        .collect();
    0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
}

#[test]
fn the_legend_status_bar_map_header_and_hover_name_each_state_alike_in_distinct_colours() {
    one_at_a_time(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = slow_first_round(dir.path()).write(&dir.path().join("pricegrid.toml"));
        let daemon = RunningDaemon::start(&path).await;
        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        b.wait_for("the first load", "#map[data-loads]").await;
        b.wait_for(
            "cells not fetched yet in the status bar",
            "#progress-text [data-state='missing']",
        )
        .await;

        let legend = words(&b, "#legend").await;
        let status = words(&b, "#progress-text").await;
        let header = words(&b, "#map-summary").await;
        let states = [
            "final",
            "provisional",
            "none",
            "failed",
            "rejected",
            "missing",
        ];
        for s in states {
            assert!(legend.contains_key(s), "the legend names {s}: {legend:?}");
        }
        for (place, found) in [("status bar", &status), ("map header", &header)] {
            for (state, word) in found {
                assert_eq!(
                    Some(word),
                    legend.get(state),
                    "the {place} and the legend name {state} alike"
                );
            }
        }
        let not_fetched = &legend["missing"];
        assert_eq!(status.get("missing"), Some(not_fetched), "{status:?}");
        assert_eq!(header.get("missing"), Some(not_fetched), "{header:?}");
        let title = b
            .wait_for("a cell not fetched yet", "#map .c[data-state='missing']")
            .await
            .attr("title")
            .await
            .expect("a title")
            .unwrap_or_default();
        assert!(
            title.ends_with(&format!(": {not_fetched}")),
            "the hover says {title:?}"
        );

        // Each legend swatch (the states, then a flagged price): its colour
        // and pattern, as the browser draws it.
        let swatches = b
            .js("return Array.from(document.querySelectorAll('#legend li'), li => { \
                 const s = getComputedStyle(li.querySelector('.c')); \
                 return [li.dataset.state || li.dataset.flag, s.backgroundColor, s.backgroundImage]; });")
            .await;
        let swatches: Vec<(String, String, String)> = swatches
            .as_array()
            .expect("swatches")
            .iter()
            .map(|s| {
                let f = |i: usize| s[i].as_str().unwrap_or_default().to_owned();
                (f(0), f(1), f(2))
            })
            .collect();
        assert_eq!(swatches.len(), states.len() + 1, "{swatches:?}");
        for (i, (a, colour_a, pattern_a)) in swatches.iter().enumerate() {
            for (b, colour_b, pattern_b) in &swatches[i + 1..] {
                assert_ne!(
                    (colour_a, pattern_a),
                    (colour_b, pattern_b),
                    "{a} and {b} look alike"
                );
                // Told apart without colour: a pattern, or a lightness
                // contrast of at least 1.5:1.
                let (la, lb) = (luminance(colour_a), luminance(colour_b));
                let contrast = (la.max(lb) + 0.05) / (la.min(lb) + 0.05);
                assert!(
                    pattern_a != pattern_b || contrast >= 1.5,
                    "{a} ({colour_a}) and {b} ({colour_b}) differ only in hue: {contrast:.2}:1"
                );
            }
        }
        // A cell is drawn as its legend swatch.
        let cell = b
            .js("const s = getComputedStyle(document.querySelector(\"#map .c[data-state='missing']\")); \
                 return [s.backgroundColor, s.backgroundImage];")
            .await;
        let swatch = swatches
            .iter()
            .find(|s| s.0 == "missing")
            .expect("the legend's missing");
        assert_eq!(
            cell,
            serde_json::json!([swatch.1, swatch.2]),
            "a cell not fetched yet"
        );
        b.screenshot("legend").await;
        b.close().await;
        daemon.shutdown().await;
    });
}

#[test]
fn times_are_shown_in_utc_whatever_the_browser_zone() {
    one_at_a_time(async {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("pricegrid.toml");
        let config = page_config(dir.path())
            .exchanges(["kraken"])
            .symbols(["btc"])
            .window("2020-03-01", "2020-03-05");
        config.write(&path);
        let mut daemon = RunningDaemon::start(&path).await;
        daemon.first_round().await;
        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        let offset = b.js("return new Date(0).getTimezoneOffset();").await;
        assert_ne!(
            offset,
            serde_json::json!(0),
            "the browser runs away from UTC ({})",
            browser::TIME_ZONE
        );

        config.clone().workers(3).write(&path);
        daemon.reloaded_to(1).await;
        let shown = b
            .wait_for("the applied reload", "#reload[data-result='applied']")
            .await
            .text()
            .await
            .expect("its text");
        let mut resp = awc::Client::new()
            .get(format!("{}/v1/status", daemon.api_url()))
            .send()
            .await
            .expect("GET /v1/status answers");
        let status: serde_json::Value = resp.json().await.expect("a JSON status");
        let at: chrono::DateTime<chrono::Utc> = status["last_reload"]["at"]
            .as_str()
            .expect("the reload's time")
            .parse()
            .expect("an RFC 3339 time");
        let want = format!("reload applied at {} UTC", at.format("%Y-%m-%d %H:%M:%S"));
        assert!(shown.starts_with(&want), "{shown:?} starts with {want:?}");

        // A cell's fetch time, in its hover text.
        b.wait_for("the map after round 1", "#map[data-round='1']")
            .await;
        let store = daemon.store().await;
        let cell = store
            .get(
                &"kraken".parse().unwrap(),
                &"btc".parse().unwrap(),
                common::day("2020-03-02"),
            )
            .expect("a stored cell");
        let fetched = cell.fetched_at.expect("a fetch time");
        let title = b
            .wait_for(
                "kraken's 2020-03-02",
                "#map .c[data-exchange='kraken'][data-day='2020-03-02']",
            )
            .await
            .attr("title")
            .await
            .expect("a title")
            .unwrap_or_default();
        let want = format!("fetched {} UTC", fetched.format("%Y-%m-%d %H:%M:%S"));
        assert!(title.contains(&want), "{title:?} has {want:?}");
        b.screenshot("utc").await;
        b.close().await;
        daemon.shutdown().await;
    });
}

#[test]
fn the_symbol_picker_lists_hundreds_of_symbols_in_order_and_each_loads_its_map() {
    one_at_a_time(async {
        // A source with 300 symbols, as symbols = "all" gives for a real
        // exchange's listing.
        let names: Vec<String> = (1..=300).map(|i| format!("c{i:03}")).collect();
        let mut spec = pricegrid::server::GeneratedSpec::classic(pricegrid::server::DEFAULT_SEED);
        spec.exchanges = vec!["kraken".parse().expect("a valid name")];
        spec.symbols = names
            .iter()
            .map(|s| s.parse().expect("a valid name"))
            .collect();
        let dataset = std::sync::Arc::new(pricegrid::server::Dataset::generated(spec));
        let server = spawn_price_server(|o| o.dataset = dataset);
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = page_config(dir.path())
            .source(&server.url())
            .exchanges(["kraken"])
            .every_symbol()
            .window("2020-03-01", "2020-03-02")
            .write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&path).await;
        let round = daemon.first_round().await;
        assert_eq!(round.counts.tasks, 300 * 2);

        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        b.wait_for_xpath(
            "300 symbols to pick from",
            "//select[@id='symbol'][count(option) = 300]",
        )
        .await;
        let offered = b
            .js("return Array.from(document.getElementById('symbol').options, o => o.value);")
            .await;
        assert_eq!(offered, serde_json::json!(names), "every symbol, in order");
        b.client
            .find(fantoccini::Locator::Css("#symbol"))
            .await
            .expect("the symbol select")
            .select_by_value("c300")
            .await
            .expect("the last symbol is chosen");
        let map = b
            .wait_for_xpath(
                "c300's map",
                "//*[@id='map'][@data-symbol='c300' and @data-round='1']",
            )
            .await;
        let cells = map.attr("data-cells").await.unwrap();
        assert_eq!(cells.as_deref(), Some("2"), "one cell per day of kraken");
        b.close().await;
        daemon.shutdown().await;
    });
}

/// The runs of days of `symbol` on `exchange` over `days` that hold no
/// price the page draws as one (failed, "none", or no cell: missing), each
/// as (kind, from, to), as the store says.
fn store_gaps(
    store: &Store,
    exchange: &str,
    symbol: &str,
    days: &[String],
) -> Vec<(String, String, String)> {
    let mut gaps: Vec<(String, String, String)> = Vec::new();
    let mut previous: Option<&String> = None;
    for d in days {
        let (state, _) = expected_state(store, exchange, symbol, d);
        if matches!(state.as_str(), "failed" | "none" | "missing") {
            match gaps.last_mut() {
                Some(g) if g.0 == state && previous == Some(&g.2) => g.2 = d.clone(),
                _ => gaps.push((state, d.clone(), d.clone())),
            }
        }
        previous = Some(d);
    }
    gaps
}

#[test]
fn a_gap_listed_under_the_map_marks_its_cells_when_clicked() {
    one_at_a_time(async {
        let server = spawn_price_server(|o| {
            o.faults.fail_rate = 0.15;
            o.faults.seed = 5;
        });
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = page_config(dir.path())
            .source(&server.url())
            .every_exchange()
            .symbols(["btc"])
            .march()
            .max_attempts(1)
            .write(&dir.path().join("pricegrid.toml"));
        let mut daemon = RunningDaemon::start(&path).await;
        daemon.first_round().await;
        let store = daemon.store().await;

        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        b.wait_for(
            "the map after round 1",
            "#map[data-symbol='btc'][data-round='1']",
        )
        .await;
        // The list under the map is every run of failed or "none" days, per exchange.
        let listed = b
            .js(
                "return Array.from(document.querySelectorAll('#gaps button'), g => \
                 [g.dataset.exchange, g.dataset.kind, g.dataset.from, g.dataset.to]);",
            )
            .await;
        let listed: Vec<(String, String, String, String)> =
            serde_json::from_value(listed).expect("gap buttons");
        let days: Vec<String> = (1..=31).map(|d| format!("2020-03-{d:02}")).collect();
        let mut want = Vec::new();
        for e in store.exchanges() {
            for (kind, from, to) in store_gaps(&store, e.as_str(), "btc", &days) {
                want.push((e.to_string(), kind, from, to));
            }
        }
        assert_eq!(listed, want, "the gaps the store holds");
        assert!(
            want.iter().any(|g| g.1 == "failed"),
            "the faults leave failed cells: {want:?}"
        );

        // A click on the longest gap marks exactly its cells, and the hover
        // line shows the first of them.
        let longest = want
            .iter()
            .max_by_key(|g| (common::day(&g.3) - common::day(&g.2)).num_days())
            .expect("a gap");
        let selector = format!(
            "#gaps button[data-exchange='{}'][data-from='{}']",
            longest.0, longest.2
        );
        b.client
            .find(fantoccini::Locator::Css(&selector))
            .await
            .expect("the gap's button")
            .click()
            .await
            .expect("a click");
        b.wait_for("the gap marked", "#map[data-picked]").await;
        let picked = b
            .js(
                "return Array.from(document.querySelectorAll('#map .c.picked'), c => \
                 [c.dataset.exchange, c.dataset.day, c.title]);",
            )
            .await;
        let picked: Vec<(String, String, String)> = serde_json::from_value(picked).expect("cells");
        let want_days: Vec<&String> = days
            .iter()
            .filter(|d| **d >= longest.2 && **d <= longest.3)
            .collect();
        assert_eq!(
            picked.iter().map(|p| (&p.0, &p.1)).collect::<Vec<_>>(),
            want_days
                .iter()
                .map(|d| (&longest.0, *d))
                .collect::<Vec<_>>(),
            "{longest:?}"
        );
        assert_eq!(
            b.text("#hover").await,
            picked[0].2,
            "the first cell's details"
        );
        let shot = b.screenshot("gap-picked").await;
        println!("screenshot: {}", shot.display());
        b.close().await;
        daemon.shutdown().await;
    });
}

/// On a PostgreSQL record the status bar shows the fleet: each daemon, the
/// lanes it holds with their epoch and since when, and its last round.
#[test]
fn the_status_bar_shows_the_fleet_on_a_shared_record() {
    one_at_a_time(async {
        let db = TestDatabase::new();
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("pricegrid.toml");
        page_config(dir.path())
            .exchanges(["kraken", "okex"])
            .symbols(["btc"])
            .window("2020-03-01", "2020-03-05")
            .record_url(&db.url, "solo")
            .write(&path);
        let mut daemon = RunningDaemon::start(&path).await;
        let first = daemon.first_round().await;
        let b = Browser::start().await;
        b.open(&daemon.api_url()).await;
        b.wait_for(
            "the fleet in the status bar",
            &format!(
                "#fleet .fleet-member[data-name='solo'][data-lanes='2'][data-last-round='{}']",
                first.round
            ),
        )
        .await;
        let text = b.text("#fleet").await;
        assert!(
            text.starts_with("fleet solo: kraken (epoch 1, since 20"),
            "{text}"
        );
        assert!(text.contains("okex (epoch 1, since "), "{text}");
        assert!(
            text.ends_with(&format!("; last round {}", first.round)),
            "{text}"
        );
        b.screenshot("status-fleet").await;
        b.close().await;
        daemon.shutdown().await;
    });
}
