//! `pricegrid check-config` on a table of malformed configs: each exits 1
//! with a message naming the problem, and none panics.

use std::process::Command;

fn check(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pricegrid.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_config_checks_and_prints_the_effective_config() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/pricegrid.toml"
    ))
    .unwrap();
    let (code, stdout, stderr) = check(&text);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
    assert!(stdout.contains("workers = 32"), "{stdout}");
    assert!(stdout.contains("[snapshot]"), "{stdout}");
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
            "[source]\nurl = \"https://example.org\"\n",
            &["source.url", "https"],
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
    let out = Command::new(env!("CARGO_BIN_EXE_pricegrid"))
        .args(["check-config", "/nonexistent/pricegrid.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/pricegrid.toml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}
