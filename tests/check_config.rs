//! `pricegrid check-config` on a table of malformed configs: each exits 1
//! with a message naming the problem, and none panics. The rules added with
//! `ohlc_order`, `settle_after`, `retry_for` and `max_tasks` are checked for
//! the exact `file:line:col: key:` they print.

mod common;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pricegrid.toml");
    std::fs::write(&path, text).unwrap();
    common::pricegrid_in(None, &[&"check-config", &path])
}

#[test]
fn the_shipped_config_checks_and_prints_the_effective_config() {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pricegrid.toml");
    let text = std::fs::read_to_string(shipped).unwrap();
    let (code, stdout, stderr) = check(&text);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
    let workers = format!("workers = {}\n", pricegrid::config::default_workers());
    assert!(stdout.contains(&workers), "a fetcher per core: {stdout}");
    assert!(stdout.contains("in_flight = 64\n"), "{stdout}");
    assert!(stdout.contains("[snapshot]"), "{stdout}");
    for line in [
        "ohlc_order = \"flag\"",
        "settle_after = \"2h\"",
        "retry_for = \"2m\"",
        "max_attempts = 10",
        "max_tasks = 5000000",
        "keep_for = \"90days\"",
    ] {
        assert!(stdout.contains(line), "{line:?} not in {stdout}");
    }
}

#[test]
fn durations_are_echoed_as_written_and_default_days_in_days() {
    let (code, stdout, stderr) = check(
        r#"[source]
url = "builtin"
timeout = "10000ms"

[store]
flush_every = "1m 30s"
"#,
    );
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "timeout = \"10000ms\"",
        "flush_every = \"1m 30s\"",
        // Not written: the default, 90 days, in days.
        "keep_for = \"90days\"",
        "retry_for = \"2m\"",
    ] {
        assert!(stdout.contains(line), "{line:?} not in {stdout}");
    }
    assert!(!stdout.contains("month"), "{stdout}");
}

/// Asserts that `text` fails `check-config` and that each of `lines` starts
/// a line of its stderr once the temporary directory is cut off, so that
/// `"2:1: universe.from: ..."` pins the line, column, key and message.
fn fails_with(text: &str, lines: &[&str]) {
    let (code, _, stderr) = check(text);
    assert_eq!(code, 1, "config {text:?} should fail, stderr: {stderr}");
    let printed: Vec<&str> = stderr
        .lines()
        .map(|l| l.split_once("pricegrid.toml:").map_or(l, |(_, rest)| rest))
        .collect();
    for want in lines {
        assert!(
            printed.iter().any(|l| l.starts_with(want)),
            "config {text:?}: no line starts with {want:?} in {stderr}"
        );
    }
}

#[test]
fn a_config_still_using_check_ohlc_order_is_told_what_replaced_it() {
    let (code, _, stderr) = check(
        r#"[source]
url = "builtin"
check_ohlc_order = true
"#,
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.trim_end().ends_with(
            r#"pricegrid.toml:3:1: source.check_ohlc_order: was replaced by source.ohlc_order = "flag" | "reject" | "ignore""#
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("unknown field"), "{stderr}");
}

#[test]
fn a_window_from_year_one_to_9999_now_fails() {
    let tomorrow = || chrono::Utc::now().date_naive() + chrono::Days::new(1);
    let text = r#"[universe]
from = "0001-01-01"
to = "9999-12-31"
"#;
    // Tomorrow as the check saw it: the day before or after it ran (a run
    // may cross UTC midnight).
    let (before, (_, _, stderr), after) = (tomorrow(), check(text), tomorrow());
    fails_with(
        text,
        &["2:1: universe.from: 0001-01-01 is before 2009-01-03, the first day any crypto price exists"],
    );
    assert!(
        [before, after].iter().any(|t| stderr.contains(&format!(
            "3:1: universe.to: 9999-12-31 is after tomorrow ({t})"
        ))),
        "{stderr}"
    );
    fails_with(
        r#"[universe]
from = "2008-12-31"
to = "2009-02-01"
"#,
        &["2:1: universe.from: 2008-12-31 is before 2009-01-03"],
    );
}

#[test]
fn the_new_rules_name_file_line_column_and_key() {
    let forty = |prefix: &str| {
        let names: Vec<String> = (0..40).map(|i| format!(r#""{prefix}{i}""#)).collect();
        names.join(", ")
    };
    // 40 x 40 x more than 3125 days is over the default 5_000_000.
    let forty_by_forty = format!(
        r#"[universe]
exchanges = [{}]
symbols = [{}]
from = "2012-01-01"
"#,
        forty("x"),
        forty("s")
    );
    let cases: Vec<(&str, &[&str])> = vec![
        (
            r#"[source]
ohlc_order = "drop"
"#,
            &["2:14: source.ohlc_order: unknown variant `drop`, expected one of `flag`, `reject`, `ignore`"],
        ),
        (
            r#"[source]
settle_after = "later"
"#,
            &["2:16: source.settle_after:"],
        ),
        (
            r#"[fetch]
workers = 4
retry_for = "0s"
"#,
            &["3:1: fetch.retry_for: must be positive"],
        ),
        (
            r#"[fetch]
max_attempts = 101
"#,
            &["2:1: fetch.max_attempts: 101 is out of range: expected 1..=100"],
        ),
        (
            r#"[universe]
from = "2020-01-01"
max_tasks = 0
"#,
            &["3:1: universe.max_tasks: must be at least 1"],
        ),
        (
            r#"[universe]
exchanges = ["kraken", "bitstamp"]
symbols = ["btc", "eth"]
from = "2020-01-01"
to = "2020-01-10"
max_tasks = 39
"#,
            &["6:1: universe.max_tasks: 2 exchanges x 2 symbols x 10 days = 40 tasks, more than universe.max_tasks (39)"],
        ),
        (
            &forty_by_forty,
            &["4:1: universe.from: 40 exchanges x 40 symbols x "],
        ),
        (
            r#"[universe]
exchanges = ["kraken", "bitstamp", "kraken"]
from = "2020-01-01"
"#,
            &[r#"2:36: universe.exchanges: "kraken" is listed twice"#],
        ),
        (
            r#"[universe]
symbols = [
  "btc",
  "eth",
  "btc",
]
from = "2020-01-01"
"#,
            &[r#"5:3: universe.symbols: "btc" is listed twice"#],
        ),
    ];
    for (text, lines) in &cases {
        fails_with(text, lines);
    }
}

#[test]
fn the_new_settings_check_and_show_in_the_effective_config() {
    // Still within the window if the check runs after UTC midnight.
    let tomorrow = chrono::Utc::now().date_naive() + chrono::Days::new(1);
    let text = format!(
        r#"[source]
ohlc_order = "reject"
settle_after = "0s"

[universe]
exchanges = ["kraken"]
symbols = ["btc"]
from = "2009-01-03"
to = "{tomorrow}"
max_tasks = 100000

[fetch]
retry_for = "30s"
max_attempts = 5
"#
    );
    let (code, stdout, stderr) = check(&text);
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "ohlc_order = \"reject\"",
        "settle_after = \"0s\"",
        "max_tasks = 100000",
        "retry_for = \"30s\"",
        "max_attempts = 5",
    ] {
        assert!(stdout.contains(line), "{line:?} not in {stdout}");
    }
}

#[test]
fn malformed_configs_fail_naming_the_problem() {
    // (config text, what the message must name)
    let cases: &[(&str, &[&str])] = &[
        (
            "[fetch]\nworker = 3\n",
            &[":2:1:", "fetch.worker", "unknown field", "workers"],
        ),
        ("[fetch]\nworkers = 0\n", &["fetch.workers", "1..=1024"]),
        ("[fetch]\nworkers = 5000\n", &["fetch.workers", "5000"]),
        ("[fetch]\nworkers = -3\n", &["fetch.workers"]),
        (
            "[fetch]\nworkers = \"many\"\n",
            &[":2:11:", "fetch.workers"],
        ),
        (
            "[fetch]\nqueue = 2\nworkers = 8\n",
            &["fetch.queue", "smaller"],
        ),
        ("[fetch]\nmax_attempts = 0\n", &["fetch.max_attempts"]),
        (
            "[fetch]\nbackoff_base = \"soon\"\n",
            &["fetch.backoff_base"],
        ),
        (
            "[fetch]\nbackoff_base = \"2s\"\nbackoff_max = \"1s\"\n",
            &["fetch.backoff_max"],
        ),
        (
            "[fetch]\ntask_deadline = \"0s\"\n",
            &["fetch.task_deadline", "positive"],
        ),
        (
            "[fetch]\ntask_deadline = \"5s\"\n",
            &["fetch.task_deadline", "source.timeout"],
        ),
        (
            "[source]\nurl = \"ftp://example\"\n",
            &["source.url", "http"],
        ),
        ("[source]\nurl = \"not a url\"\n", &["source.url"]),
        (
            "[source]\nurl = \"ftp://example.org\"\n",
            &["source.url", "expected an http:// or https:// URL"],
        ),
        ("[source]\ntimeout = \"0ms\"\n", &["source.timeout"]),
        (
            "[source]\nmax_body_bytes = 10\n",
            &["source.max_body_bytes"],
        ),
        ("[source.builtin]\nseed = \"x\"\n", &["source.builtin.seed"]),
        (
            "[universe]\nexchanges = [\"Kraken\"]\nfrom = \"2020-01-01\"\n",
            &["universe.exchanges", "[a-z0-9-]"],
        ),
        (
            "[universe]\nsymbols = []\nfrom = \"2020-01-01\"\n",
            &["universe.symbols", "empty"],
        ),
        (
            "[universe]\nexchanges = \"some\"\nfrom = \"2020-01-01\"\n",
            &["universe.exchanges", "all"],
        ),
        (
            "[universe]\nfrom = \"2020-02-30\"\n",
            &["universe.from", "YYYY-MM-DD"],
        ),
        (
            "[universe]\nfrom = \"2020-03-01\"\nto = \"2020-02-01\"\n",
            &[":3:1:", "universe.to", "before"],
        ),
        ("[universe]\nlast_days = 0\n", &["universe.last_days"]),
        (
            "[universe]\nlast_days = 3\nfrom = \"2020-01-01\"\n",
            &["universe.last_days", "either"],
        ),
        (
            "[universe]\nexchanges = \"all\"\n",
            &["universe.from", "missing"],
        ),
        (
            "[schedule]\ninterval = \"0s\"\n",
            &["schedule.interval", "positive"],
        ),
        ("[schedule]\ninterval = 60\n", &["schedule.interval"]),
        ("[snapshot]\nkeep = 0\n", &["snapshot.keep"]),
        (
            "[log]\nprogress_every = \"never\"\n",
            &["log.progress_every"],
        ),
        ("[metrics]\nenabled = true\n", &["metrics", "unknown field"]),
        ("[fetch\nworkers = 3\n", &[":1:"]),
        ("workers = 3\n", &["workers", "unknown field"]),
    ];
    assert!(cases.len() >= 20);
    for (text, needles) in cases {
        let (code, _, stderr) = check(text);
        assert_eq!(
            code, 1,
            "config {text:?} should fail with exit 1, stderr: {stderr}"
        );
        assert!(
            !stderr.contains("panicked"),
            "config {text:?} panicked: {stderr}"
        );
        assert!(
            stderr.contains("pricegrid.toml"),
            "config {text:?}: the file is not named: {stderr}"
        );
        for needle in *needles {
            assert!(
                stderr.contains(needle),
                "config {text:?}: {needle:?} not in {stderr:?}"
            );
        }
    }
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let (code, _, stderr) =
        common::pricegrid_in(None, &[&"check-config", &"/nonexistent/pricegrid.toml"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("/nonexistent/pricegrid.toml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn the_example_exchange_configs_check() {
    for name in ["exchanges.toml", "exchanges-builtin.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config/examples")
            .join(name);
        let (code, stdout, stderr) = common::pricegrid_in(None, &[&"check-config", &path]);
        assert_eq!(code, 0, "{name}: {stderr}");
        assert!(
            stdout.contains("[exchanges.okx]") || stdout.contains("[exchanges.okex]"),
            "{stdout}"
        );
    }
}

#[test]
fn bitfinex_poloniex_hitbtc_htx_and_cexio_markets_are_checked_in_their_own_forms() {
    for (api, bad, form) in [
        (
            "bitfinex",
            "tBTCUSD",
            "the pair as listed, in upper case without the 't'",
        ),
        ("poloniex", "BTCUSDT", "BASE_QUOTE in upper case"),
        (
            "hitbtc",
            "BTC_USDT",
            "BASEQUOTE in upper case, no separator",
        ),
        ("htx", "BTCUSDT", "basequote in lower case, no separator"),
        ("cexio", "BTCUSD", "BASE-QUOTE in upper case"),
    ] {
        let universe = format!(
            "\n[universe]\nexchanges = [\"{api}\"]\nsymbols = [\"btc\"]\nfrom = \"2020-01-01\"\nto = \"2020-01-31\"\n"
        );
        fails_with(
            &format!(
                "[exchanges.{api}]\napi = \"{api}\"\nmarkets = {{ btc = \"{bad}\" }}\n{universe}"
            ),
            &[&format!(
                "3:13: exchanges.{api}.markets.btc: market \"{bad}\" is not of the form {form}"
            )],
        );
    }
}

/// The universe an `[exchanges.NAME]` table needs, after the table.
const UNIVERSE: &str = "\n[universe]\nexchanges = [\"kraken\"]\nsymbols = [\"btc\", \"eth\"]\nfrom = \"2020-01-01\"\nto = \"2020-01-31\"\n";

#[test]
fn an_exchange_table_names_its_problems_where_they_are() {
    fails_with(
        &format!("[exchanges.kraken]\napi = \"krakn\"\n{UNIVERSE}"),
        &["2:7: exchanges.kraken.api: unknown variant `krakn`, expected one of `classic`, `binance`, `kraken`"],
    );
    fails_with(
        &format!("[exchanges.kraken]\napi = \"kraken\"\nmarkets = {{ btc = \"xbt-usd\", eth = \"ETHUSD\" }}\n{UNIVERSE}"),
        &["3:13: exchanges.kraken.markets.btc: market \"xbt-usd\" is not of the form BASEQUOTE in upper case"],
    );
    fails_with(
        &format!(
            "[exchanges.kraken]\napi = \"kraken\"\nmarkets = {{ btc = \"XBTUSD\" }}\n{UNIVERSE}"
        ),
        &["3:1: exchanges.kraken.markets: has no market for eth (universe.symbols lists it)"],
    );
    fails_with(
        &format!("[exchanges.krakn]\napi = \"kraken\"\n{UNIVERSE}"),
        &["2:1: exchanges.krakn.api: exchange \"krakn\" is configured but universe.exchanges does not list it"],
    );
    fails_with(
        &format!("[exchanges.kraken]\napi = \"kraken\"\nrequests_per_second = 0\nmax_in_flight = 0\nurl = \"ftp://x\"\n{UNIVERSE}"),
        &["5:7: exchanges.kraken.url: \"ftp://x\": expected an http:// or https:// URL"],
    );
    fails_with(
        &format!("[exchanges.kraken]\napi = \"kraken\"\nrequests_per_second = 0\nmax_in_flight = 0\n{UNIVERSE}"),
        &[
            "3:1: exchanges.kraken.requests_per_second: 0 is out of range",
            "4:1: exchanges.kraken.max_in_flight: must be at least 1",
        ],
    );
    fails_with(
        &format!(
            "[exchanges.kraken]\napi = \"classic\"\nmarkets = {{ btc = \"XBTUSD\" }}\n{UNIVERSE}"
        ),
        &["3:1: exchanges.kraken.markets: the classic API has no markets"],
    );
}

#[test]
fn a_user_agent_must_be_visible_ascii_and_not_empty() {
    fails_with(
        &format!("[source]\nuser_agent = \"\"\n\n[exchanges.kraken]\napi = \"kraken\"\nuser_agent = \"prix/1\\tacme\"\n{UNIVERSE}"),
        &[
            "2:1: source.user_agent: is empty",
            "6:1: exchanges.kraken.user_agent: \"prix/1\\tacme\" has '\\t'",
        ],
    );
    let (code, stdout, stderr) = check(&format!(
        "[source]\nuser_agent = \"acme/1 (+mailto:ops@acme.test)\"\n\n[exchanges.kraken]\napi = \"kraken\"\nuser_agent = \"acme-kraken/1\"\n{UNIVERSE}"
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("user_agent = \"acme/1 (+mailto:ops@acme.test)\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("user_agent = \"acme-kraken/1\""),
        "{stdout}"
    );
}

#[test]
fn an_api_reachable_from_other_hosts_needs_a_token_file() {
    fails_with(
        "[api]\nlisten = \"0.0.0.0:9180\"\n",
        &["2:1: api.listen: 0.0.0.0:9180 is reachable from other hosts: set api.token_file to a file holding a bearer token, or listen on 127.0.0.1"],
    );
    fails_with(
        "[api]\nlisten = \"[::]:9180\"\nallowed_hosts = [\"pricegrid.lan\"]\n",
        &["2:1: api.listen: [::]:9180 is reachable from other hosts: set api.token_file"],
    );
    fails_with(
        "[api]\nlisten = \"192.168.1.5:9180\"\ntoken_file = \"\"\n",
        &["3:1: api.token_file: is empty"],
    );
    // Off, or on loopback, it needs none.
    for text in [
        "[api]\nenabled = false\nlisten = \"0.0.0.0:9180\"\n",
        "[api]\nlisten = \"127.0.0.2:9180\"\n",
    ] {
        let (code, _, stderr) = check(text);
        assert_eq!(code, 0, "{text}: {stderr}");
    }
}

#[test]
fn the_api_s_token_file_and_allowed_hosts_check_and_show_in_the_effective_config() {
    let (code, stdout, stderr) = check(
        r#"[api]
listen = "0.0.0.0:9180"
token_file = "/etc/pricegrid/api.token"
allowed_hosts = ["PriceGrid.lan", "192.168.1.5:9180", "[fd00::5]:9180"]
"#,
    );
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "token_file = \"/etc/pricegrid/api.token\"",
        "allowed_hosts = [\n    \"pricegrid.lan\",\n    \"192.168.1.5:9180\",\n    \"[fd00::5]:9180\",\n]",
    ] {
        assert!(stdout.contains(line), "{line:?} not in {stdout}");
    }
}

#[test]
fn a_malformed_allowed_host_is_named_where_it_is() {
    for (entry, says) in [
        ("http://pricegrid.lan", "'/' is not allowed"),
        ("pricegrid.lan/", "'/' is not allowed"),
        ("user@pricegrid.lan", "'@' is not allowed"),
        ("pricegrid.lan:99999", "invalid port number"),
        ("", "it is empty"),
        ("a b", "' ' is not allowed"),
    ] {
        let text = format!("[api]\nallowed_hosts = [\"ok.lan\", {entry:?}]\n");
        let (code, _, stderr) = check(&text);
        assert_eq!(code, 1, "{entry:?} passed: {stderr}");
        let want = format!(
            "api.allowed_hosts: {entry:?} is not a host name or address with an optional port: {says}"
        );
        assert!(stderr.contains(&want), "{want:?} not in {stderr}");
        assert!(stderr.contains("pricegrid.toml:2:"), "{stderr}");
    }
}

/// The universe of issue #17 (100 exchanges x 9,999 symbols x 18 years
/// under `max_tasks = 9000000000000000000`), which used to pass: refused at
/// `universe.max_tasks`'s line, naming the ceiling and the universe's size.
#[test]
fn an_absurd_universe_is_refused_at_max_tasks_naming_its_size() {
    let text = common::TestConfig::new().absurd_universe().unchecked_toml();
    let line = text
        .lines()
        .position(|l| l == "max_tasks = 9000000000000000000")
        .expect("max_tasks is in the file")
        + 1;
    let (code, _, stderr) = check(&text);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "pricegrid.toml:{line}:1: universe.max_tasks: 9000000000000000000 is more than \
             this process can hold: at most 67108864"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("universe.max_tasks: 100 exchanges x 9999 symbols x ")
            && stderr.contains("tasks, more than the 67108864 this process can hold"),
        "{stderr}"
    );
}

/// `[quality]` (issue 21): each bad number at its line with the range it
/// must be in, a peg market of the wrong form, and one the universe does
/// not fetch, with what to add.
#[test]
fn bad_quality_settings_and_an_unfetched_peg_are_named_where_they_are() {
    fails_with(
        r#"[universe]
exchanges = ["okx"]
symbols = ["btc"]
last_days = 3

[quality]
k = -1
floor = 2
min_exchanges = 0
peg = { usdt = "kraken:USDTUSD" }
"#,
        &[
            "7:1: quality.k: -1 is out of range: expected a number of MADs above 0",
            "8:1: quality.floor: 2 is out of range: expected a share from 0 up to 1",
            "9:1: quality.min_exchanges: must be at least 1",
            "10:9: quality.peg.usdt: kraken:USDTUSD is not fetched: add kraken to universe.exchanges",
            "10:9: quality.peg.usdt: kraken:USDTUSD is not fetched: add usdt to universe.symbols",
        ],
    );
    let (code, _, stderr) = check("[quality]\npeg = { usdc = \"kraken\" }\n");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("\"kraken\" is no peg market: expected \"exchange:MARKET\""),
        "{stderr}"
    );
}
