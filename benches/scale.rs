//! Scale bench: the real universe on one machine (issue 19). The daemon
//! (`pricegrid run`, the release binary, as a child process) collects 20
//! exchanges × 1,000 markets × 1,000 days = 20M cells from 20 built-in
//! Binance-dialect servers (synthetic universes, in this process, on
//! loopback, unthrottled), then:
//!
//! 1. **backfill**: the first round, all 20M cells; wall, the daemon's CPU,
//!    its RSS per cell and the record's bytes per cell on disk;
//! 2. **empty ticks**: `schedule.interval` reloaded to 1 s; 10 ticks with
//!    nothing due: no round recorded, the daemon's CPU per tick;
//! 3. **steady state**: the universe widened by one day (reload): a round
//!    of 20,000 due cells; its CPU and the bytes it wrote (`/proc/PID/io`);
//!    while it runs, and after, the API's point query (one symbol-day
//!    across every exchange), `/v1/aggregate` (one symbol × 1 year) and the
//!    page's map (its requests for one symbol × every exchange × 3 years);
//!    then one day more, a round with nothing asked during it: the round's
//!    own CPU (the first one's includes the API answering those questions,
//!    in the same process);
//! 4. **resume**: SIGTERM, one more day, a new daemon on the record: time
//!    to its first round's start, and its API's three questions while that
//!    round runs; the record's bytes a cell at rest.
//!
//! Prints each figure beside its target; asserts only on correctness.
//!
//!     cargo bench --bench scale                          # 20 × 1,000 × 1,000
//!     cargo bench --bench scale -- --markets 100         # 2M cells (~1 min)

mod common;

use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use common::median;
use pricegrid::model::{Exchange, ExchangeApi};
use pricegrid::server::{self, ServerOptions, Synthetic};

const SEED: u64 = 19;
/// Days the servers hold beyond the first window: the steady-state rounds'
/// days (one with questions asked during it, one without) and the resume's.
const SPARE_DAYS: u32 = 3;

struct Size {
    exchanges: usize,
    markets: usize,
    days: u32,
}

impl Size {
    fn from_args() -> Size {
        let mut size = Size {
            exchanges: 20,
            markets: 1000,
            days: 1000,
        };
        let args: Vec<String> = std::env::args().collect();
        for pair in args.windows(2) {
            let n = || pair[1].parse().expect("a number after the option");
            match pair[0].as_str() {
                "--exchanges" => size.exchanges = n(),
                "--markets" => size.markets = n(),
                "--days" => size.days = n() as u32,
                _ => {}
            }
        }
        // The questions ask about market s0042.
        assert!(
            size.markets > 42,
            "--markets {}: the bench's questions ask about s0042, so at least 43 markets",
            size.markets
        );
        size
    }

    fn cells(&self) -> u64 {
        (self.exchanges * self.markets) as u64 * u64::from(self.days)
    }
}

fn first_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, 1).expect("a valid date")
}

/// The 20 servers, each speaking Binance for one exchange of the synthetic
/// universe, on one actix system thread of this process.
struct Servers {
    urls: Vec<(Exchange, url::Url)>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Servers {
    fn start(size: &Size) -> Servers {
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (exchanges, markets, days) = (size.exchanges, size.markets, size.days + SPARE_DAYS);
        let thread = std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let mut running = Vec::new();
                let mut urls = Vec::new();
                for i in 0..exchanges {
                    let listen = "127.0.0.1:0".parse().expect("a loopback address");
                    let mut opts = ServerOptions::synthetic(
                        listen,
                        SEED,
                        ExchangeApi::Binance,
                        Synthetic {
                            exchanges: Some(exchanges),
                            markets,
                            days,
                        },
                    );
                    let name = opts.dataset.exchanges()[i].clone();
                    opts.exchange = Some(name.clone());
                    opts.workers = 1;
                    let s = server::start(&opts).expect("a server starts");
                    let url = format!("http://{}/", s.addr).parse().expect("a URL");
                    urls.push((name, url));
                    running.push(s);
                }
                tx.send(urls).expect("the bench waits for the servers");
                let _ = actix_rt::task::spawn_blocking(move || stop_rx.recv()).await;
                for s in running {
                    s.stop().await;
                }
            })
        });
        let urls = rx.recv().expect("the servers start");
        Servers {
            urls,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_config(path: &Path, record: &Path, servers: &Servers, to: NaiveDate, interval: &str) {
    let mut toml = String::new();
    for (name, url) in &servers.urls {
        toml.push_str(&format!(
            "[exchanges.{name}]\napi = \"binance\"\nurl = \"{url}\"\nrequests_per_second = 1000000\n\n"
        ));
    }
    let names: Vec<String> = servers
        .urls
        .iter()
        .map(|(n, _)| format!("\"{n}\""))
        .collect();
    toml.push_str(&format!(
        "[source]\nmax_body_bytes = 4194304\n\n\
         [universe]\nexchanges = [{}]\nsymbols = \"all\"\nfrom = \"{}\"\nto = \"{to}\"\nmax_tasks = 67108864\n\n\
         [schedule]\ninterval = \"{interval}\"\n\n\
         [store]\npath = \"{}\"\n\n\
         [api]\nlisten = \"127.0.0.1:0\"\n\n\
         [log]\nprogress_every = \"10s\"\n",
        names.join(", "),
        first_day(),
        record.display()
    ));
    // Written whole and renamed in, as an editor saves: the daemon's watcher
    // never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, toml).expect("the config is written");
    std::fs::rename(&tmp, path).expect("the config is renamed in");
}

/// The daemon as a child process, its log read line by line.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    api: String,
}

impl Daemon {
    fn spawn(config: &Path, log: &mut Vec<String>) -> Daemon {
        // The Producer's "no round" line is at debug; its market choices
        // (a line a market a tick) are not wanted.
        let (child, lines) = common::spawn_daemon(
            config,
            "info,pricegrid::actors::producer=debug,pricegrid::actors::producer::markets=info,pricegrid::heap=debug",
        );
        let mut d = Daemon {
            child,
            lines,
            api: String::new(),
        };
        let line = d.wait_for("API listening on http://", Duration::from_secs(120), log);
        let at = line.find("http://").expect("the address");
        d.api = line[at..]
            .split_whitespace()
            .next()
            .expect("the URL")
            .to_owned();
        d
    }

    /// The next log line containing `needle`, within `limit`.
    fn wait_for(&self, needle: &str, limit: Duration, log: &mut Vec<String>) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    log.push(line.clone());
                    if found {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no \"{needle}\" within {limit:?}; the log ends:\n{}",
                    log[log.len().saturating_sub(20)..].join("\n")
                ),
            }
        }
    }

    /// The daemon's CPU time so far (user + system), from /proc.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("/proc/PID/stat");
        let after = &stat[stat.rfind(')').expect("the command's end") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        // SAFETY: sysconf only reads a system constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Duration::from_secs_f64(ticks as f64 / hz)
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc/PID/status");
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Bytes the daemon caused to be written to storage so far.
    fn written(&self) -> u64 {
        let io =
            std::fs::read_to_string(format!("/proc/{}/io", self.child.id())).expect("/proc/PID/io");
        io.lines()
            .find(|l| l.starts_with("write_bytes:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn get(&self, path: &str) -> (Duration, serde_json::Value) {
        let started = Instant::now();
        let body: serde_json::Value = ureq::get(&format!("{}{path}", self.api))
            .timeout(Duration::from_secs(60))
            .call()
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .into_json()
            .expect("a JSON answer");
        (started.elapsed(), body)
    }

    fn stop(mut self, log: &mut Vec<String>) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(120);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            log.push(line);
        }
        let exit = self.child.wait().expect("the daemon exits");
        assert!(exit.success(), "the daemon exited {exit:?}");
    }
}

/// Waits until the record says `round` is finished: its last cells were
/// written before (the Recorder takes the round's last flush, then its
/// end). Read-only, as any reader beside the daemon; at most `limit`.
fn wait_recorded(record: &Path, round: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let done = pricegrid::record::Record::open_read_only(record)
            .and_then(|r| r.rounds())
            .map(|rows| {
                rows.iter().any(|r| {
                    r.round == round && r.status == pricegrid::record::RoundStatus::Finished
                })
            })
            .unwrap_or(false);
        if done {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("round {round} not recorded as finished within {limit:?}");
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn record_bytes(record: &Path) -> u64 {
    let mut wal = record.as_os_str().to_owned();
    wal.push("-wal");
    file_size(record) + file_size(&PathBuf::from(wal))
}

/// What the record's bytes hold: its free pages, and its rows of history
/// and reference closes.
fn record_parts(record: &Path) -> String {
    let conn =
        rusqlite::Connection::open_with_flags(record, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("the record opens read-only");
    let one = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
    format!(
        "{} pages of {} bytes, {} free; {} history rows, {} reference rows",
        one("PRAGMA page_count"),
        one("PRAGMA page_size"),
        one("PRAGMA freelist_count"),
        one("SELECT count(*) FROM history"),
        one("SELECT count(*) FROM reference"),
    )
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "MET"
    } else {
        "MISS"
    }
}

/// The API's three questions of one symbol: a point query, a year's
/// aggregate, the page's map over three years; their latencies.
/// What one steady round cost the daemon, and what was asked meanwhile.
struct Steady<R> {
    cpu: Duration,
    written: u64,
    asked: R,
}

impl<R> Steady<R> {
    /// Prints the round's figures beside their targets; gives what was
    /// asked during it.
    fn print(self, due: usize, how: &str, note: &str) -> R {
        println!(
            "steady     a round of {due} due cells, {how}: cpu={:.2}s{note}  target ≤ 1 {}  written={:.1} MB  target ≤ 20 {}",
            self.cpu.as_secs_f64(),
            verdict(self.cpu <= Duration::from_secs(1)),
            self.written as f64 / 1e6,
            verdict(self.written <= 20_000_000),
        );
        self.asked
    }
}

/// Round `round` of `d`, started by a config (`paths`: the config and the
/// record) whose days end at `to`, run to its end and recorded: the
/// daemon's CPU and bytes written meanwhile, and what `ask` got once the
/// round had started.
fn steady_round<R>(
    d: &Daemon,
    paths: (&Path, &Path),
    servers: &Servers,
    to: NaiveDate,
    round: u64,
    log: &mut Vec<String>,
    ask: impl FnOnce(&Daemon) -> R,
) -> Steady<R> {
    let (config, record) = paths;
    let (cpu0, written0) = (d.cpu(), d.written());
    write_config(config, record, servers, to, "1s");
    d.wait_for(
        &format!("round {round} started"),
        Duration::from_secs(60),
        log,
    );
    let asked = ask(d);
    d.wait_for(
        &format!("round {round} finished"),
        Duration::from_secs(600),
        log,
    );
    wait_recorded(record, round, Duration::from_secs(600));
    Steady {
        cpu: d.cpu() - cpu0,
        written: d.written() - written0,
        asked,
    }
}

fn queries(d: &Daemon, to: NaiveDate) -> [Duration; 3] {
    // Day 500, or the middle of a shorter universe (`--days`).
    let point_day = (first_day() + Days::new(500)).min(first_day() + (to - first_day()) / 2);
    let (point, body) = d.get(&format!(
        "/v1/prices?symbol=s0042&from={point_day}&to={point_day}"
    ));
    assert!(body.to_string().contains("close"), "{body}");
    let year_from = to - Days::new(364);
    let (aggregate, _) = d.get(&format!(
        "/v1/aggregate?symbol=s0042&from={year_from}&to={to}&limit=10000"
    ));
    let map_from = to - Days::new(3 * 365 - 1);
    let started = Instant::now();
    let range = format!("&from={map_from}&to={to}");
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let after = cursor
            .as_deref()
            .map_or(String::new(), |c| format!("&after={c}"));
        let (_, page) = d.get(&format!(
            "/v1/prices?symbol=s0042&field=close&limit=10000{range}{after}"
        ));
        cursor = page["next"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    d.get(&format!("/v1/aggregate?symbol=s0042&limit=10000{range}"));
    d.get(&format!("/v1/failures?{}", &range[1..]));
    [point, aggregate, started.elapsed()]
}

fn main() {
    let size = Size::from_args();
    let cells = size.cells();
    println!(
        "scale bench: {} exchanges × {} markets × {} days = {} cells, Binance dialect, unthrottled, loopback",
        size.exchanges, size.markets, size.days, cells
    );
    let servers = Servers::start(&size);
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("pricegrid.toml");
    // In its own directory, as `data/` beside `config/` by default: the
    // config's watcher wakes for every write in the config's directory.
    let record = dir.path().join("data").join("pricegrid.db");
    let mut to = first_day() + Days::new(u64::from(size.days) - 1);
    let mut log = Vec::new();

    // 1. Backfill.
    write_config(&config, &record, &servers, to, "1h");
    let started = Instant::now();
    let d = Daemon::spawn(&config, &mut log);
    d.wait_for("round 1 finished", Duration::from_secs(3600), &mut log);
    let round_wall = started.elapsed();
    wait_recorded(&record, 1, Duration::from_secs(3600));
    let wall = started.elapsed();
    let cpu = d.cpu();
    let rss = d.status_bytes("VmRSS:");
    let hwm = d.status_bytes("VmHWM:");
    let (_, status) = d.get("/v1/status");
    let stored = status["stored"]["prices"].as_u64().unwrap_or(0);
    assert_eq!(stored, cells, "every cell holds a price: {status}");
    let disk = record_bytes(&record);
    println!(
        "backfill   wall={:.1}s to the record (the round {:.1}s)  cpu={:.1}s  ({:.0} cells/s)  RSS={:.0} B/cell (peak {:.0})  target ≤ 70 {}  record live, with its WAL: {:.0} B/cell",
        wall.as_secs_f64(),
        round_wall.as_secs_f64(),
        cpu.as_secs_f64(),
        cells as f64 / wall.as_secs_f64(),
        rss as f64 / cells as f64,
        hwm as f64 / cells as f64,
        verdict(rss as f64 / cells as f64 <= 70.0),
        disk as f64 / cells as f64,
    );

    // What the allocator held at its last trim, where the daemon logged it.
    while let Ok(line) = d.lines.try_recv() {
        log.push(line);
    }
    if let Some(heap) = log.iter().rev().find(|l| l.contains("heap after a trim")) {
        let at = heap.find("heap after").unwrap_or(0);
        println!("           {}", &heap[at..]);
    }

    // 2. Empty ticks.
    write_config(&config, &record, &servers, to, "1s");
    d.wait_for(
        "config version 1 accepted",
        Duration::from_secs(60),
        &mut log,
    );
    d.wait_for("no round", Duration::from_secs(60), &mut log);
    let before = d.cpu();
    const TICKS: u32 = 10;
    for _ in 0..TICKS {
        d.wait_for("no round", Duration::from_secs(60), &mut log);
    }
    let per_tick = (d.cpu() - before) / TICKS;
    let (_, status) = d.get("/v1/status");
    assert_eq!(
        status["last_round"]["round"].as_u64(),
        Some(1),
        "no round recorded for an empty tick: {status}"
    );
    println!(
        "empty tick {TICKS} ticks with nothing due: no round recorded; cpu={:.1} ms a tick  target ≤ 50 {}",
        per_tick.as_secs_f64() * 1e3,
        verdict(per_tick <= Duration::from_millis(50)),
    );

    // 3. Steady state: one more day, queries while it runs.
    to = to + Days::new(1);
    let due = size.exchanges * size.markets;
    let paths = (config.as_path(), record.as_path());
    let during = steady_round(&d, paths, &servers, to, 2, &mut log, |d| {
        queries(d, to - Days::new(1))
    })
    .print(
        due,
        "the API asked during it",
        " (the API's answers included)",
    );
    let mut runs: [Vec<f64>; 3] = Default::default();
    for _ in 0..10 {
        for (i, t) in queries(&d, to).iter().enumerate() {
            runs[i].push(t.as_secs_f64() * 1e3);
        }
    }
    let maxes: Vec<f64> = runs
        .iter()
        .map(|r| r.iter().cloned().fold(0.0, f64::max))
        .collect();
    let [point, aggregate, map] = runs.map(median);
    println!(
        "queries    point (one symbol-day, every exchange) {point:.1} ms (max {:.1}; during the round {:.1})  target ≤ 10 {}",
        maxes[0],
        during[0].as_secs_f64() * 1e3,
        verdict(point <= 10.0)
    );
    println!(
        "           /v1/aggregate one symbol × 1 year {aggregate:.1} ms (max {:.1}; during the round {:.1})  target ≤ 100 {}",
        maxes[1],
        during[1].as_secs_f64() * 1e3,
        verdict(aggregate <= 100.0)
    );
    println!(
        "           the page's map, one symbol × {} exchanges × 3 years {map:.1} ms (max {:.1}; during the round {:.1})  target ≤ 500 {}",
        size.exchanges,
        maxes[2],
        during[2].as_secs_f64() * 1e3,
        verdict(map <= 500.0)
    );

    // 3b. The same round a day later with no question asked: the round's
    // own CPU, without the API's work for the questions above.
    to = to + Days::new(1);
    steady_round(&d, paths, &servers, to, 3, &mut log, |_| ()).print(
        due,
        "nothing asked during it",
        "",
    );

    // 4. Resume.
    d.stop(&mut log);
    let at_rest = record_bytes(&record);
    let parts = record_parts(&record);
    to = to + Days::new(1);
    write_config(&config, &record, &servers, to, "1h");
    let started = Instant::now();
    let d = Daemon::spawn(&config, &mut log);
    // Its API listens once the record is read.
    let loaded = started.elapsed();
    d.wait_for("round 4 started", Duration::from_secs(600), &mut log);
    let resume = started.elapsed();
    let per_cell = at_rest as f64 / (cells + 2 * due as u64) as f64;
    println!(
        "resume     {cells} cells: {:.1}s to the first round (the record read and the API up by {:.1}s)  target ≤ 10 {}",
        resume.as_secs_f64(),
        loaded.as_secs_f64(),
        verdict(resume <= Duration::from_secs(10)),
    );
    println!(
        "record     at rest (the daemon stopped, its WAL checkpointed): {per_cell:.0} B/cell  target ≤ 100 {}  ({parts})",
        verdict(per_cell <= 100.0),
    );
    let resumed = queries(&d, to - Days::new(1));
    d.wait_for("round 4 finished", Duration::from_secs(600), &mut log);
    println!(
        "resumed    the API of a daemon started on the record, during its first round: point {:.1} ms, aggregate {:.1} ms, map {:.1} ms  targets ≤ 10 / 100 / 500 {}",
        resumed[0].as_secs_f64() * 1e3,
        resumed[1].as_secs_f64() * 1e3,
        resumed[2].as_secs_f64() * 1e3,
        verdict(
            resumed[0] <= Duration::from_millis(10)
                && resumed[1] <= Duration::from_millis(100)
                && resumed[2] <= Duration::from_millis(500)
        ),
    );
    d.stop(&mut log);
    drop(servers);
}
