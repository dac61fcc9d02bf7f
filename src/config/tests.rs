//! The config's behaviour seen from its text: what parses, what each
//! problem says and where it points. Rules are unit-tested beside their
//! code in `validate`; these tests go through `Config::parse_at`.

use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

#[test]
fn empty_file_is_refused_and_the_defaults_come_from_default() {
    for text in ["", " \n\t\n", "# pricegrid\n\n   # nothing else yet\n"] {
        let err = parse(text).expect_err("an empty file is not a config");
        assert_eq!(
            err.problems(),
            [Problem {
                position: None,
                key: None,
                message: "config file is empty: an editor or script may be writing it; \
                          a config needs at least one section"
                    .into(),
            }],
            "{text:?}"
        );
        assert!(
            err.to_string()
                .starts_with("test.toml: config file is empty"),
            "{err}"
        );
    }
    let c = parse("[fetch]\n").expect("one section, even an empty one, is a config");
    assert_eq!(c, Config::default());
    assert_eq!(Config::default().fetch.window(), 2 * DEFAULT_IN_FLIGHT);
}

#[test]
fn an_empty_file_on_disk_is_refused_by_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pricegrid.toml");
    std::fs::write(&path, "").unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
    assert!(
        err.to_string()
            .ends_with("a config needs at least one section"),
        "{err}"
    );
}

#[test]
fn the_shipped_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_PATH);
    let c = Config::load(&path).expect("config/pricegrid.toml is valid");
    assert_eq!(c.source.url, SourceUrl::Builtin);
    assert_eq!(c, Config::default(), "it spells out the defaults");
}

#[test]
fn unknown_key_names_file_line_column_and_key() {
    let err = parse("[fetch]\nworkers = 4\nworker = 3\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("test.toml:3:1: fetch.worker: unknown field `worker`"),
        "{text}"
    );
    assert!(text.contains("workers"), "lists the expected keys: {text}");
}

#[test]
fn a_bad_value_type_names_the_key() {
    let err = parse("[fetch]\nworkers = \"many\"\n").unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key.as_deref(), Some("fetch.workers"));
    assert_eq!(p.position, Some((2, 11)));
}

#[test]
fn cross_field_rules_point_at_the_key() {
    let err = parse("[universe]\nfrom = \"2020-02-01\"\nto = \"2020-01-01\"\n").unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key.as_deref(), Some("universe.to"));
    assert_eq!(p.position, Some((3, 1)));
    assert!(p.message.contains("before"), "{}", p.message);
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = parse("[fetch]\nworkers = 0\nmax_attempts = 0\n").unwrap_err();
    let keys: Vec<_> = err
        .problems()
        .iter()
        .filter_map(|p| p.key.clone())
        .collect();
    assert!(keys.contains(&"fetch.workers".to_owned()), "{keys:?}");
    assert!(keys.contains(&"fetch.max_attempts".to_owned()), "{keys:?}");
}

#[test]
fn names_and_urls_are_checked_while_parsing() {
    let err = parse("[universe]\nexchanges = [\"Kraken\"]\n").unwrap_err();
    assert_eq!(err.problems()[0].key.as_deref(), Some("universe.exchanges"));
    assert!(err.to_string().contains("[a-z0-9-]"), "{err}");
    let err = parse("[source]\nurl = \"ftp://x\"\n").unwrap_err();
    assert!(err.to_string().contains("http"), "{err}");
}

#[test]
fn rolling_window_ends_today() {
    let today = NaiveDate::from_ymd_opt(2020, 1, 10).unwrap();
    let c = parse("[universe]\nfrom = \"2020-01-01\"\n").expect("valid");
    assert_eq!(c.universe.days(today).to, today, "an open `to` is today");
    let c = parse("[universe]\nlast_days = 3\n").expect("valid");
    let r = c.universe.days(today);
    assert_eq!(r.from, NaiveDate::from_ymd_opt(2020, 1, 8).unwrap());
    assert_eq!(r.len(), 3);
}

#[test]
fn effective_config_round_trips() {
    let c = Config::default();
    let back = parse(&c.to_toml()).expect("rendered config parses");
    assert_eq!(back, c);
}

/// A day well after the default window, so that only the rule under test
/// can fail.
fn june_2024() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 6, 15).unwrap()
}

fn parse_on(text: &str, today: NaiveDate) -> Result<Config, ConfigError> {
    Config::parse_at(text, Path::new("test.toml"), today)
}

/// The only problem of `text` (as of June 2024), as `line:col: key: message`.
fn only_problem(text: &str) -> String {
    let err = parse_on(text, june_2024()).expect_err("the config is invalid");
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{err}");
    let p = &problems[0];
    let (line, col) = p.position.expect("the problem has a position");
    format!(
        "{line}:{col}: {}: {}",
        p.key.as_deref().unwrap_or("-"),
        p.message
    )
}

#[test]
fn the_new_settings_have_their_documented_defaults() {
    let c = Config::default();
    assert_eq!(c.source.ohlc_order, OhlcOrder::Flag);
    assert_eq!(c.source.settle_after, Duration::from_secs(2 * 3600));
    assert_eq!(c.fetch.retry_for, Duration::from_secs(120));
    assert_eq!(c.fetch.max_attempts, 10);
    assert_eq!(c.universe.max_tasks, 5_000_000);
    assert!(c.check_at(june_2024()).is_ok());
}

#[test]
fn a_config_still_using_check_ohlc_order_is_told_what_replaced_it() {
    assert_eq!(
        only_problem("[source]\nurl = \"builtin\"\ncheck_ohlc_order = true\n"),
        "3:1: source.check_ohlc_order: was replaced by \
         source.ohlc_order = \"flag\" | \"reject\" | \"ignore\""
    );
    assert!(
        only_problem("source = { check_ohlc_order = false }\n")
            .starts_with("1:12: source.check_ohlc_order: was replaced by"),
        "an inline table is searched too"
    );
}

#[test]
fn ohlc_order_takes_flag_reject_or_ignore() {
    for (raw, want) in [
        ("flag", OhlcOrder::Flag),
        ("reject", OhlcOrder::Reject),
        ("ignore", OhlcOrder::Ignore),
    ] {
        let c =
            parse_on(&format!("[source]\nohlc_order = \"{raw}\"\n"), june_2024()).expect("valid");
        assert_eq!(c.source.ohlc_order, want);
    }
    let problem = only_problem("[source]\nohlc_order = \"drop\"\n");
    assert!(
        problem.starts_with("2:14: source.ohlc_order: unknown variant `drop`"),
        "{problem}"
    );
    assert!(problem.contains("`flag`, `reject`, `ignore`"), "{problem}");
}

#[test]
fn settle_after_may_be_zero() {
    let c = parse_on("[source]\nsettle_after = \"0s\"\n", june_2024()).expect("valid");
    assert_eq!(c.source.settle_after, Duration::ZERO);
    let c = parse_on("[source]\nsettle_after = \"1day\"\n", june_2024()).expect("valid");
    assert_eq!(c.source.settle_after, Duration::from_secs(86_400));
    let problem = only_problem("[source]\nsettle_after = \"later\"\n");
    assert!(
        problem.starts_with("2:16: source.settle_after:"),
        "{problem}"
    );
}

#[test]
fn retry_for_must_be_positive() {
    assert_eq!(
        only_problem("[fetch]\nworkers = 4\nretry_for = \"0s\"\n"),
        "3:1: fetch.retry_for: must be positive, e.g. \"5s\""
    );
    let c = parse_on("[fetch]\nretry_for = \"30s\"\n", june_2024()).expect("valid");
    assert_eq!(c.fetch.retry_for, Duration::from_secs(30));
}

#[test]
fn max_attempts_stays_within_one_to_a_hundred() {
    assert_eq!(
        only_problem("[fetch]\nmax_attempts = 101\n"),
        "2:1: fetch.max_attempts: 101 is out of range: expected 1..=100"
    );
    assert!(parse_on("[fetch]\nmax_attempts = 100\n", june_2024()).is_ok());
}

#[test]
fn the_universe_size_names_the_product_and_never_overflows() {
    assert_eq!(
        universe_size_problem(11, 3, 2922, 5000).as_deref(),
        Some("11 exchanges x 3 symbols x 2922 days = 96426 tasks, more than universe.max_tasks (5000)")
    );
    assert_eq!(
        universe_size_problem(1, 1, 2, 1).as_deref(),
        Some("1 exchange x 1 symbol x 2 days = 2 tasks, more than universe.max_tasks (1)")
    );
    assert_eq!(
        universe_size_problem(10, 10, 50, 5000),
        None,
        "at the limit"
    );
    let huge = universe_size_problem(usize::MAX, usize::MAX, usize::MAX, u64::MAX)
        .expect("far more than u64::MAX");
    assert!(huge.contains(&u128::MAX.to_string()), "saturates: {huge}");
    let c = UniverseConfig {
        max_tasks: 4,
        ..UniverseConfig::default()
    };
    assert!(c.size_problem(2, 2, 1).is_none());
    assert!(c.size_problem(5, 1, 1).is_some());
}

#[test]
fn an_oversized_universe_points_at_max_tasks_when_it_is_set() {
    let lists =
        "[universe]\nexchanges = [\"kraken\", \"bitstamp\"]\nsymbols = [\"btc\", \"eth\"]\n";
    assert_eq!(
        only_problem(&format!(
            "{lists}from = \"2020-01-01\"\nto = \"2020-01-10\"\nmax_tasks = 39\n"
        )),
        "6:1: universe.max_tasks: 2 exchanges x 2 symbols x 10 days = 40 tasks, \
         more than universe.max_tasks (39): narrow the window or the lists, \
         or raise universe.max_tasks"
    );
    assert!(parse_on(
        &format!("{lists}from = \"2020-01-01\"\nto = \"2020-01-10\"\nmax_tasks = 40\n"),
        june_2024()
    )
    .is_ok());
}

#[test]
fn an_oversized_universe_points_at_the_window_under_the_default_limit() {
    let names = |prefix: &str| {
        let names: Vec<String> = (0..40).map(|i| format!("\"{prefix}{i}\"")).collect();
        names.join(", ")
    };
    let lists = format!(
        "[universe]\nexchanges = [{}]\nsymbols = [{}]\n",
        names("x"),
        names("s")
    );
    // 40 x 40 x 3273 days (2015-07-01 to 2024-06-15) is over 5_000_000.
    let problem = only_problem(&format!("{lists}from = \"2015-07-01\"\n"));
    assert!(
        problem.starts_with(
            "4:1: universe.from: 40 exchanges x 40 symbols x 3273 days = 5236800 tasks, \
             more than universe.max_tasks (5000000)"
        ),
        "{problem}"
    );
    assert!(
        problem.ends_with("or raise universe.max_tasks"),
        "{problem}"
    );
    let problem = only_problem(&format!("{lists}last_days = 3200\n"));
    assert!(
        problem.starts_with("4:1: universe.last_days: 40 exchanges x 40 symbols x 3200 days"),
        "{problem}"
    );
    assert!(
        parse_on(&format!("{lists}last_days = 3000\n"), june_2024()).is_ok(),
        "4_800_000 tasks fit"
    );
}

#[test]
fn a_max_tasks_above_what_the_process_can_hold_is_refused_where_it_is_set() {
    assert_eq!(
        only_problem("[universe]\nfrom = \"2020-01-01\"\nmax_tasks = 9000000000000000000\n"),
        "3:1: universe.max_tasks: 9000000000000000000 is more than this process can hold: \
         at most 67108864 (16 GiB at about 256 bytes a task)"
    );
    let at_ceiling = format!("[universe]\nfrom = \"2020-01-01\"\nmax_tasks = {MAX_TASKS}\n");
    assert!(parse_on(&at_ceiling, june_2024()).is_ok());

    // Explicit lists too large for the ceiling: both problems, with sizes.
    let names = |prefix: &str, n: usize| {
        let names: Vec<String> = (0..n).map(|i| format!("\"{prefix}{i}\"")).collect();
        names.join(", ")
    };
    let text = format!(
        "[universe]\nexchanges = [{}]\nsymbols = [{}]\nfrom = \"2009-01-03\"\nmax_tasks = 9000000000000000000\n",
        names("x", 100),
        names("s", 9_999)
    );
    let err = parse_on(&text, june_2024()).expect_err("far too large");
    let problems: Vec<String> = err.problems().iter().map(|p| p.message.clone()).collect();
    assert_eq!(problems.len(), 2, "{err}");
    assert!(
        problems[0].contains("is more than this process can hold"),
        "{err}"
    );
    assert_eq!(
        problems[1],
        "100 exchanges x 9999 symbols x 5643 days = 5642435700 tasks, more than the 67108864 \
         this process can hold (universe.max_tasks = 9000000000000000000 is above that \
         ceiling): narrow the window or the lists"
    );
}

#[test]
fn max_tasks_must_be_at_least_one() {
    assert_eq!(
        only_problem("[universe]\nfrom = \"2020-01-01\"\nmax_tasks = 0\n"),
        "3:1: universe.max_tasks: must be at least 1, e.g. 5000000"
    );
}

#[test]
fn a_name_listed_twice_is_reported_at_its_second_occurrence() {
    assert_eq!(
        only_problem(
            "[universe]\nexchanges = [\"kraken\", \"bitstamp\", \"kraken\"]\nfrom = \"2020-01-01\"\n"
        ),
        "2:36: universe.exchanges: \"kraken\" is listed twice"
    );
    assert_eq!(
        only_problem(
            "[universe]\nsymbols = [\n  \"btc\",\n  \"eth\",\n  \"btc\",\n  \"btc\",\n]\nfrom = \"2020-01-01\"\n"
        ),
        "5:3: universe.symbols: \"btc\" is listed 3 times"
    );
    assert_eq!(
        only_problem("universe = { from = \"2020-01-01\", symbols = [\"a\", \"a\"] }\n"),
        "1:51: universe.symbols: \"a\" is listed twice"
    );
    let err = parse_on(
        "[universe]\nexchanges = [\"b\", \"a\", \"a\", \"b\"]\nfrom = \"2020-01-01\"\n",
        june_2024(),
    )
    .unwrap_err();
    let positions: Vec<_> = err.problems().iter().map(|p| p.position).collect();
    assert_eq!(
        positions,
        [Some((2, 24)), Some((2, 29))],
        "one problem per repeated name, in file order: {err}"
    );
}

#[test]
fn a_window_before_the_first_bitcoin_block_or_after_tomorrow_is_refused() {
    let err = parse_on(
        "[universe]\nfrom = \"0001-01-01\"\nto = \"9999-12-31\"\n",
        june_2024(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "test.toml:2:1: universe.from: 0001-01-01 is before 2009-01-03, \
         the first day any crypto price exists\n\
         test.toml:3:1: universe.to: 9999-12-31 is after tomorrow (2024-06-16)"
    );
    assert_eq!(
        only_problem("[universe]\nfrom = \"2024-06-17\"\n"),
        "2:1: universe.from: 2024-06-17 is after tomorrow (2024-06-16)"
    );
    assert_eq!(
        only_problem("[universe]\nfrom = \"2008-12-31\"\nto = \"2009-01-10\"\n"),
        "2:1: universe.from: 2008-12-31 is before 2009-01-03, \
         the first day any crypto price exists"
    );
    assert!(
        parse_on(
            "[universe]\nfrom = \"2009-01-03\"\nto = \"2024-06-16\"\n",
            june_2024()
        )
        .is_ok(),
        "the first block's day and tomorrow are both allowed"
    );
}

#[test]
fn check_at_judges_a_window_set_in_code_by_the_given_day() {
    let mut c = Config::default();
    c.universe.to = Some(Day(NaiveDate::from_ymd_opt(2024, 6, 20).unwrap()));
    assert!(c
        .check_at(NaiveDate::from_ymd_opt(2024, 6, 19).unwrap())
        .is_ok());
    let err = c.check_at(june_2024()).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key.as_deref(), Some("universe.to"));
    assert_eq!(p.position, None, "a config built in code has no positions");
    assert!(
        p.message.contains("after tomorrow (2024-06-16)"),
        "{}",
        p.message
    );
}

#[test]
fn a_missing_key_points_at_its_table() {
    let err = parse_on("[fetch]\n[universe]\nexchanges = \"all\"\n", june_2024()).unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key.as_deref(), Some("universe.from"));
    assert_eq!(p.position, Some((2, 2)), "the [universe] header");
}

#[test]
fn every_rule_is_reported_at_once_in_schema_order() {
    // Each section's rules in turn, except that every duration's "must be
    // positive" comes before the timings compared with each other.
    let text = "[source]\ntimeout = \"0s\"\nmax_body_bytes = 1\n\
                [universe]\nsymbols = []\nlast_days = 0\nmax_tasks = 0\n\
                [fetch]\nworkers = 0\nmax_attempts = 0\nbackoff_base = \"2s\"\nbackoff_max = \"1s\"\n\
                task_deadline = \"0s\"\n\
                [schedule]\ninterval = \"0s\"\n\
                [snapshot]\nkeep = 0\nevery = \"0s\"\n\
                [log]\nprogress_every = \"0s\"\n";
    let err = parse_on(text, june_2024()).unwrap_err();
    let keys: Vec<_> = err
        .problems()
        .iter()
        .map(|p| p.key.as_deref().unwrap_or("-"))
        .collect();
    assert_eq!(
        keys,
        [
            "source.timeout",
            "source.max_body_bytes",
            "universe.symbols",
            "universe.last_days",
            "universe.max_tasks",
            "fetch.workers",
            "fetch.max_attempts",
            "fetch.task_deadline",
            "schedule.interval",
            "snapshot.every",
            "log.progress_every",
            "fetch.backoff_max",
            "fetch.task_deadline",
            "snapshot.keep",
        ],
        "{err}"
    );
}

#[test]
fn an_exchanges_quotes_are_known_upper_case_codes_each_once() {
    let with = |quotes: &str| {
        format!(
            "[exchanges.binance]\napi = \"binance\"\nquotes = {quotes}\n\n\
             [universe]\nexchanges = [\"binance\"]\nsymbols = \"all\"\nfrom = \"2024-01-01\"\n"
        )
    };
    let c = parse_on(&with("[\"USDT\", \"USDC\"]"), june_2024()).expect("valid quotes");
    let binance = Exchange::new("binance").unwrap();
    assert_eq!(c.exchanges[&binance].quotes, ["USDT", "USDC"]);
    let printed = c.to_toml();
    assert!(
        printed.contains("quotes") && printed.contains("\"USDC\""),
        "{printed}"
    );
    let unset = parse_on(
        "[exchanges.binance]\napi = \"binance\"\n[universe]\nexchanges = [\"binance\"]\nfrom = \"2024-01-01\"\n",
        june_2024(),
    )
    .expect("quotes may be left out");
    assert_eq!(unset.exchanges[&binance].quotes, ["USD", "USDT", "USDC"]);
    assert!(
        !unset.to_toml().contains("quotes"),
        "the default is not printed"
    );

    assert_eq!(
        only_problem(&with("[]")),
        "3:1: exchanges.binance.quotes: is empty: name at least one quote, \
         e.g. [\"USD\", \"USDT\", \"USDC\"] (the default)"
    );
    assert_eq!(
        only_problem(&with("[\"USD\", \"usdt\"]")),
        "3:18: exchanges.binance.quotes: quote \"usdt\" must be upper case: \"USDT\""
    );
    let unknown = only_problem(&with("[\"UDST\"]"));
    assert!(
        unknown.starts_with(
            "3:11: exchanges.binance.quotes: unknown quote \"UDST\": expected one of USD, USDT, USDC"
        ),
        "{unknown}"
    );
    assert_eq!(
        only_problem(&with("[\"USDT\", \"USD\", \"USDT\"]")),
        "3:26: exchanges.binance.quotes: \"USDT\" is listed twice"
    );
}

#[test]
fn workers_alone_keep_their_old_meaning_one_request_each() {
    let c = parse("[fetch]\nworkers = 256\n").unwrap();
    assert_eq!((c.fetch.workers, c.fetch.in_flight), (256, 256));
    assert_eq!(c.fetch.window(), 512, "the window is still twice that");
    assert_eq!(c.fetch.per_worker(), 1);
}

#[test]
fn in_flight_is_its_own_and_workers_follow_the_cores() {
    let c = parse("[fetch]\nmax_attempts = 3\n").unwrap();
    assert_eq!(c.fetch.workers, default_workers());
    assert_eq!(c.fetch.in_flight, DEFAULT_IN_FLIGHT);
    let c = parse("[fetch]\nworkers = 2\nin_flight = 16\n").unwrap();
    assert_eq!((c.fetch.workers, c.fetch.in_flight), (2, 16));
    assert_eq!((c.fetch.per_worker(), c.fetch.window()), (8, 32));
    let c = parse("[fetch]\nqueue = 40\n").unwrap();
    assert_eq!(c.fetch.in_flight, 40, "the default never exceeds the queue");
}

#[test]
fn in_flight_out_of_range_or_above_the_queue_is_refused_at_its_line() {
    let err = parse("[fetch]\nin_flight = 0\n").unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key.as_deref(), Some("fetch.in_flight"));
    assert_eq!(p.position, Some((2, 1)));
    assert!(p.message.contains("1..=16384"), "{}", p.message);
    let err = parse("[fetch]\nin_flight = 64\nqueue = 32\n").unwrap_err();
    let p = &err.problems()[0];
    assert_eq!(p.key.as_deref(), Some("fetch.queue"));
    assert!(
        p.message.contains("smaller than fetch.in_flight (64)"),
        "{}",
        p.message
    );
}

#[test]
fn the_effective_config_echoes_workers_and_in_flight_and_reads_back_the_same() {
    let c = parse("[fetch]\nworkers = 3\nin_flight = 48\n").unwrap();
    let echoed = c.to_toml();
    assert!(echoed.contains("workers = 3\n"), "{echoed}");
    assert!(echoed.contains("in_flight = 48\n"), "{echoed}");
    assert_eq!(parse(&echoed).unwrap(), c);
}
