//! Round benchmark: full rounds through the real actors against the built-in
//! server on loopback with latency L, for N tasks and K requests in flight
//! (`fetch.in_flight`, on the default fetchers: a thread per core). Prints
//! one line per case (median of the repeats): wall, the ideal ceil(N/K)·L,
//! their ratio, prices/s, the process's CPU µs per price (the server's
//! included) and peak RSS; then the Python peer (a Queue
//! consumed by 32 threads with `requests`, benches/peers/classic_client.py)
//! against the same server, and pricegrid's speed-up over it. At L=0 it
//! also runs, in the same run, the Rust peer (tokio + reqwest written the
//! plain way, benches/peers/reqwest_client.rs) over the same 10,230 prices
//! at K=32 and K=256, and `wrk` (if installed) on the same server: the
//! ratios to both are the L=0 targets.
//!
//!     cargo bench --bench round                        # every case
//!     cargo bench --bench round -- --quick             # N = 1,023, and the L=0 peers at 10,230
//!     cargo bench --bench round -- --case 10230,32,0   # one case
//!     cargo bench --bench round -- --peer-only         # the Rust peer alone, L=0
//!     BENCH_WORKERS=1 cargo bench --bench round -- --case 10230,256,0   # other fetcher threads
//!
//! Each case runs warm (the daemon's steady state: worker threads started
//! and connections open from an earlier, untimed round), and at N = 1,023
//! also cold (the first round of a fresh process). The targets are checked
//! on the warm figures.

mod common;
#[path = "peers/reqwest_client.rs"]
mod reqwest_client;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;
use pricegrid::server::{self, ServerOptions};

const REPEATS: usize = 3;

struct Case {
    n: u64,
    k: usize,
    warm: bool,
}

struct Figures {
    wall: f64,
    /// CPU time of the whole process (the server too) per price, µs.
    cpu_per_price: f64,
    prices_per_s: f64,
    peak_rss: u64,
}

async fn run_case(url: &url::Url, case: &Case) -> Figures {
    let days = (case.n / 33) as u32;
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut rates = Vec::new();
    let mut peaks = Vec::new();
    for _ in 0..REPEATS {
        reset_peak_rss();
        let (summary, wall, cpu, pipeline) =
            timed_round(config(url, days, case.k), url, case.warm).await;
        assert_eq!(summary.counts.tasks, case.n, "the universe has N tasks");
        assert_eq!(summary.counts.failed, 0, "no task failed");
        peaks.push(proc_status_bytes("VmHWM").unwrap_or(0) as f64);
        walls.push(wall.as_secs_f64());
        cpus.push(cpu.as_secs_f64() * 1e6 / case.n as f64);
        rates.push(summary.counts.done() as f64 / wall.as_secs_f64());
        pipeline.stop().await;
    }
    Figures {
        wall: median(walls),
        cpu_per_price: median(cpus),
        prices_per_s: median(rates),
        peak_rss: median(peaks) as u64,
    }
}

/// The Python peer's wall time (median of the repeats), or why it was skipped.
async fn run_peer(url: &url::Url, days: u32, threads: usize) -> Result<f64, String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/peers/classic_client.py"
    );
    let to = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date")
        + chrono::Days::new(u64::from(days) - 1);
    let mut walls = Vec::new();
    for _ in 0..REPEATS {
        let args = vec![
            script.to_owned(),
            "--url".into(),
            url.as_str().trim_end_matches('/').to_owned(),
            "--from".into(),
            "2020-01-01".into(),
            "--to".into(),
            to.to_string(),
            "--threads".into(),
            threads.to_string(),
        ];
        let out =
            actix_rt::task::spawn_blocking(move || Command::new("python3").args(&args).output())
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("python3 not runnable: {e}"))?;
        match out.status.code() {
            Some(0) => {}
            Some(3) => return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
            _ => {
                return Err(format!(
                    "the peer failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
        let line: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("the peer printed no JSON line: {e}"))?;
        if line["failed"].as_u64() != Some(0) {
            return Err(format!("the peer had failures: {line}"));
        }
        walls.push(line["wall_s"].as_f64().ok_or("no wall_s")?);
    }
    Ok(median(walls))
}

/// The classic URLs of `days` days from `from`, every exchange and symbol.
fn classic_urls(url: &url::Url, from: chrono::NaiveDate, days: u32) -> Vec<String> {
    use pricegrid::server::dataset::{CLASSIC_EXCHANGES, CLASSIC_SYMBOLS};
    let base = url.as_str().trim_end_matches('/');
    let mut urls = Vec::new();
    for d in 0..days {
        let day = from + chrono::Days::new(u64::from(d));
        for e in CLASSIC_EXCHANGES {
            for s in CLASSIC_SYMBOLS {
                urls.push(format!("{base}/price/{e}/{s}/{day}"));
            }
        }
    }
    urls
}

/// The Rust peer's wall time over the same `n` prices as pricegrid's
/// round, K at once, and the process's CPU µs per price meanwhile
/// (medians of the repeats).
async fn run_rust_peer(url: &url::Url, n: u64, k: usize) -> Result<(f64, f64), String> {
    let from = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).expect("valid date");
    let urls = classic_urls(url, from, (n / 33) as u32);
    let warm_from = chrono::NaiveDate::from_ymd_opt(2010, 1, 1).expect("valid date");
    let warm = classic_urls(url, warm_from, (2 * k).div_ceil(33) as u32);
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for _ in 0..REPEATS {
        let (urls, warm) = (urls.clone(), warm.clone());
        let run = actix_rt::task::spawn_blocking(move || reqwest_client::run(&urls, &warm, k))
            .await
            .map_err(|e| format!("the peer panicked: {e}"))?;
        if run.failed > 0 || run.prices + run.missing != n {
            return Err(format!("the peer did not fetch all {n}: {run:?}"));
        }
        walls.push(run.wall.as_secs_f64());
        cpus.push(run.cpu.as_secs_f64() * 1e6 / n as f64);
    }
    Ok((median(walls), median(cpus)))
}

/// `wrk`'s requests/s on one price URL of the server, `connections` at
/// once for 3 s on two threads; why not, if it cannot run.
async fn run_wrk(url: &url::Url, connections: usize) -> Result<f64, String> {
    let target = format!(
        "{}/price/kraken/btc/2020-03-01",
        url.as_str().trim_end_matches('/')
    );
    let args = vec![
        "-t2".to_owned(),
        format!("-c{connections}"),
        "-d3s".to_owned(),
        target,
    ];
    let out = actix_rt::task::spawn_blocking(move || Command::new("wrk").args(&args).output())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("wrk is not installed ({e}); apt-get install -y wrk"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk failed: {text}"));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output: {text}"))
}

fn main() {
    // The allocator as every pricegrid command sets it up (`heap`).
    pricegrid::heap::configure();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--case N,K,L_MS`: run that one case (for profiling).
    let only: Option<(u64, usize, u64)> = args.iter().position(|a| a == "--case").and_then(|i| {
        let parts: Vec<&str> = args.get(i + 1)?.split(',').collect();
        Some((
            parts.first()?.parse().ok()?,
            parts.get(1)?.parse().ok()?,
            parts.get(2)?.parse().ok()?,
        ))
    });
    let ns: &[u64] = match (&only, quick) {
        (Some((n, _, _)), _) => std::slice::from_ref(n),
        (None, true) => &[1_023],
        (None, false) => &[1_023, 10_230],
    };
    println!(
        "# round bench: median of {REPEATS}; ideal = ceil(N/K)*L; machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // `--peer-only`: the Rust peer alone at L=0 (to profile it as `--case`
    // profiles pricegrid).
    if args.iter().any(|a| a == "--peer-only") {
        actix_rt::System::new().block_on(async {
            let mut opts =
                ServerOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)), server::DEFAULT_SEED);
            opts.workers = 2;
            let srv = server::start(&opts).expect("the bench server starts");
            for k in [32, 256] {
                match run_rust_peer(&srv.url(), 10_230, k).await {
                    Ok((wall, cpu)) => println!(
                        "peer   tokio-reqwest N=10230 K={k:<4} L=  0ms  wall={wall:>8.3}s  cpu/price={cpu:.1}us (server included)"
                    ),
                    Err(why) => println!("peer   tokio-reqwest K={k} failed: {why}"),
                }
            }
            srv.stop().await;
        });
        return;
    }
    actix_rt::System::new().block_on(async {
        let mut verdicts = Vec::new();
        for l_ms in [0u64, 20, 100] {
            if only.is_some_and(|(_, _, ol)| ol != l_ms) {
                continue;
            }
            let l = Duration::from_millis(l_ms);
            let mut opts = ServerOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)), server::DEFAULT_SEED);
            opts.latency = l;
            opts.workers = 2;
            let srv = server::start(&opts).expect("the bench server starts");
            let url = srv.url();
            let mut ours_at_1023_k32 = None;
            // At L=0 the peers are compared at 10,230 prices, --quick too.
            let peers_here = l_ms == 0 && only.is_none();
            let mut case_ns = ns.to_vec();
            if peers_here && !case_ns.contains(&10_230) {
                case_ns.push(10_230);
            }
            // (K, wall, prices/s, CPU µs/price) of pricegrid at L=0, N=10,230.
            let mut at_10230: Vec<(usize, f64, f64, f64)> = Vec::new();
            for &n in &case_ns {
                for k in [8usize, 32, 256] {
                    if only.as_ref().is_some_and(|(on, ok, ol)| (*on, *ok, *ol) != (n, k, l_ms)) {
                        continue;
                    }
                    if !ns.contains(&n) && k == 8 {
                        continue;
                    }
                    let ideal = (n as f64 / k as f64).ceil() * l.as_secs_f64();
                    // Start-up cost does not grow with N: cold runs only at the smaller N.
                    let modes: &[bool] = if n == 1_023 { &[true, false] } else { &[true] };
                    for &warm in modes {
                        let f = run_case(&url, &Case { n, k, warm }).await;
                        let ratio = if ideal > 0.0 { f.wall / ideal } else { f64::NAN };
                        println!(
                            "round {} N={n:<6} K={k:<4} L={l_ms:>3}ms  wall={:>8.3}s  ideal={ideal:>7.3}s  ratio={}  prices/s={:>8.0}  cpu/price={:>5.1}us  peak_rss={:>6.1}MiB",
                            if warm { "warm" } else { "cold" },
                            f.wall,
                            if ratio.is_nan() { "   -  ".to_owned() } else { format!("{ratio:6.3}") },
                            f.prices_per_s,
                            f.cpu_per_price,
                            mib(f.peak_rss)
                        );
                        if !warm {
                            continue;
                        }
                        if n == 1_023 && k == 32 {
                            ours_at_1023_k32 = Some(f.wall);
                        }
                        if l_ms == 0 && n == 10_230 {
                            at_10230.push((k, f.wall, f.prices_per_s, f.cpu_per_price));
                        }
                        if n == 1_023 && l_ms == 100 && k == 32 {
                            verdicts.push(("wall/ideal <= 1.05 at N=1023 L=100ms K=32 (warm)", ratio <= 1.05, format!("{ratio:.3}")));
                        }
                        if n == 1_023 && l_ms == 100 && k == 256 {
                            verdicts.push(("wall/ideal <= 1.10 at N=1023 L=100ms K=256 (warm)", ratio <= 1.10, format!("{ratio:.3}")));
                        }
                        if l_ms == 0 && k == 32 && n == *ns.last().unwrap_or(&1_023) {
                            verdicts.push((
                                ">= 20000 prices/s at L=0 (K=32, largest N, warm)",
                                f.prices_per_s >= 20_000.0,
                                format!("{:.0}", f.prices_per_s),
                            ));
                        }
                    }
                }
            }
            if only.is_some() {
                srv.stop().await;
                continue;
            }
            if peers_here {
                for &(k, ours, _, our_cpu) in at_10230.iter().filter(|(k, ..)| [32, 256].contains(k)) {
                    match run_rust_peer(&url, 10_230, k).await {
                        Ok((peer, peer_cpu)) => {
                            let ratio = peer / ours;
                            println!(
                                "peer   tokio-reqwest N=10230 K={k:<4} L=  0ms  wall={peer:>8.3}s  pricegrid wall={ours:.3}s  pricegrid/peer speed x{ratio:.2}  (target >= 1.0; cargo bench --bench round -- --quick)  cpu/price (server included): pricegrid {our_cpu:.1}us, peer {peer_cpu:.1}us"
                            );
                            verdicts.push((
                                if k == 32 { ">= 1.0x the tokio+reqwest peer at L=0 N=10230 K=32" } else { ">= 1.0x the tokio+reqwest peer at L=0 N=10230 K=256" },
                                ratio >= 1.0,
                                format!("{ratio:.2}x"),
                            ));
                        }
                        Err(why) => println!("peer   tokio-reqwest K={k} skipped: {why}"),
                    }
                }
                match run_wrk(&url, 64).await {
                    Ok(rate) => {
                        let (k, best) = at_10230
                            .iter()
                            .map(|&(k, _, r, _)| (k, r))
                            .max_by(|a, b| a.1.total_cmp(&b.1))
                            .unwrap_or((0, f64::NAN));
                        let ratio = best / rate;
                        println!(
                            "wrk    -t2 -c64 -d3s one price URL  requests/s={rate:>8.0}  pricegrid best L=0 N=10230 (K={k}) prices/s={best:.0}  ratio {ratio:.2}  (target >= 0.6; cargo bench --bench round -- --quick)"
                        );
                        verdicts.push((">= 0.6x wrk's request rate at L=0 (best K)", ratio >= 0.6, format!("{ratio:.2}x")));
                    }
                    Err(why) => println!("wrk    skipped: {why}"),
                }
            }
            match run_peer(&url, 31, 32).await {
                Ok(peer) => {
                    let ours = ours_at_1023_k32.unwrap_or(f64::NAN);
                    println!(
                        "peer   python-requests-queue N=1023 threads=32 L={l_ms:>3}ms  wall={peer:>8.3}s  pricegrid K=32 wall={ours:.3}s  speed-up x{:.1}",
                        peer / ours
                    );
                }
                Err(why) => println!("peer   skipped: {why}"),
            }
            srv.stop().await;
        }
        println!("# targets");
        for (what, ok, value) in verdicts {
            println!("{} {what}: {value}", if ok { "MET " } else { "MISS" });
        }
    });
}
