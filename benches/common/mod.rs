//! What the benchmarks share: process memory figures and a round runner.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pricegrid::actors::aggregator::RoundSummary;
use pricegrid::actors::producer::RunRound;
use pricegrid::actors::Pipeline;
use pricegrid::config::{Config, Day, Selection, SourceUrl};

/// A field of /proc/self/status in bytes (Linux), e.g. "VmRSS", "VmHWM".
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak RSS (VmHWM) so the next reading is this case's peak.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A config over every exchange and symbol and `days` days from
/// 2020-01-01, with `in_flight` requests in flight (K) on the default
/// fetchers (a core each).
pub fn config(url: &url::Url, days: u32, in_flight: usize) -> Config {
    let mut c = Config::default();
    c.source.url = SourceUrl::Remote(url.clone());
    c.universe.exchanges = Selection::All;
    c.universe.symbols = Selection::All;
    let from = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date");
    c.universe.from = Some(Day(from));
    c.universe.to = Some(Day(from + chrono::Days::new(u64::from(days) - 1)));
    c.fetch.in_flight = in_flight;
    // BENCH_WORKERS=W: W fetcher threads instead of one per core.
    if let Some(w) = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
    {
        c.fetch.workers = w;
    }
    c.log.progress_every = Duration::from_secs(3600);
    c.check().expect("bench config is valid");
    c
}

/// Runs one round on fresh actors; returns the summary, the wall time and
/// the process's CPU time (every thread, the bench's server too) of the
/// round. Cold: the round starts as soon as the actors do, so it
/// pays for starting the worker threads and opening their connections.
/// Warm: a first, untimed round over other keys (days the server has no
/// price for) starts the threads and opens the connections, as earlier
/// rounds have in a daemon that has run for a while.
pub async fn timed_round(
    config: Config,
    url: &url::Url,
    warm: bool,
) -> (RoundSummary, Duration, Duration, Pipeline) {
    let config = Arc::new(config);
    let pipeline = if warm {
        // Twice as many tasks as requests in flight, on days the server
        // has no price for, so every fetcher runs and opens its connections.
        let mut c = (*config).clone();
        let from = chrono::NaiveDate::from_ymd_opt(2010, 1, 1).expect("valid date");
        let days = (2 * c.fetch.in_flight).div_ceil(33) as u64;
        c.universe.from = Some(Day(from));
        c.universe.to = Some(Day(from + chrono::Days::new(days)));
        let pipeline = Pipeline::start(Arc::new(c), url.clone());
        pipeline
            .producer
            .send(RunRound)
            .await
            .expect("the producer answers")
            .expect("the warm-up round runs");
        pipeline
            .producer
            .do_send(pricegrid::actors::Reconfigure::new(
                &pricegrid::config::Config::default(),
                config.clone(),
                1,
                pricegrid::actors::SourceRef::remote(url.clone()),
            ));
        pipeline
    } else {
        Pipeline::start(config.clone(), url.clone())
    };
    let cpu = process_cpu();
    let started = Instant::now();
    let summary = pipeline
        .producer
        .send(RunRound)
        .await
        .expect("the producer answers")
        .expect("the round runs");
    let wall = started.elapsed();
    (summary, wall, process_cpu() - cpu, pipeline)
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// A store of exchanges x symbols x days generated prices (2% missing).
#[allow(dead_code)] // not every bench uses it
pub fn generated_store(exchanges: usize, symbols: usize, days: u32) -> pricegrid::store::Store {
    use pricegrid::model::{Outcome, TaskKey};
    use pricegrid::server::{Dataset, GeneratedSpec};
    use pricegrid::store::{Observation, Store};
    let spec = GeneratedSpec::synthetic(1, exchanges, symbols, days);
    let ds = Dataset::generated(spec.clone());
    let mut store = Store::new();
    for day in spec.from.iter_days().take(days as usize) {
        for e in &spec.exchanges {
            for s in &spec.symbols {
                let key = TaskKey {
                    exchange: e.clone(),
                    symbol: s.clone(),
                    day,
                };
                let outcome = ds
                    .price_of(e, s, day)
                    .map_or(Outcome::NoPrice, Outcome::price);
                store.apply(&key, &Observation::settled(outcome, 1));
            }
        }
    }
    store
}

/// The cells of exchanges x symbols x days of generated prices (2% "none"),
/// final, fetched at one time from one source, in round 1: what a first
/// round writes to a record, exchange by exchange.
pub fn generated_cells(
    exchanges: usize,
    symbols: usize,
    days: u32,
) -> Vec<(pricegrid::model::TaskKey, pricegrid::store::Cell)> {
    use pricegrid::model::{CellState, Flags, TaskKey};
    use pricegrid::server::{Dataset, GeneratedSpec};
    use pricegrid::store::Cell;
    let spec = GeneratedSpec::synthetic(1, exchanges, symbols, days);
    let ds = Dataset::generated(spec.clone());
    let all: Vec<_> = spec.from.iter_days().take(days as usize).collect();
    let fetched: chrono::DateTime<chrono::Utc> =
        "2026-11-24T10:00:00Z".parse().expect("a valid time");
    let source: Arc<str> = Arc::from("http://127.0.0.1:8080/");
    let mut cells = Vec::with_capacity(exchanges * symbols * days as usize);
    for e in &spec.exchanges {
        for s in &spec.symbols {
            for &day in &all {
                let price = ds.price_of(e, s, day);
                let cell = Cell {
                    state: if price.is_some() {
                        CellState::Final
                    } else {
                        CellState::NoPrice
                    },
                    price,
                    flags: price.map_or(Flags::NONE, |p| Flags::of(&p, true)),
                    fetched_at: Some(fetched),
                    round: 1,
                    source: Some(source.clone()),
                    note: None,
                };
                let key = TaskKey {
                    exchange: e.clone(),
                    symbol: s.clone(),
                    day,
                };
                cells.push((key, cell));
            }
        }
    }
    cells
}

/// CPU time this process has used so far, all threads (Linux:
/// `CLOCK_PROCESS_CPUTIME_ID`, nanosecond resolution).
pub fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// `pricegrid run --config config` as a child process, logging at
/// `rust_log`, and its stderr lines as they come (read on a thread of
/// their own, so the pipe never fills).
pub fn spawn_daemon(
    config: &std::path::Path,
    rust_log: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader};
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pricegrid"));
    command
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", rust_log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // A bench killed (a time-out, ^C) takes its daemon with it: an orphaned
    // daemon would go on using the machine, and holding whatever the bench's
    // parent held (a `flock` on the bench lock, inherited).
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    let mut child = command.spawn().expect("the daemon starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines)
}
