//! The HTTP API over a large aggregate: 1M stored cells, 20 clients x 5
//! requests of `/v1/prices` and of `/v1/aggregate`, then paging through all
//! of `/v1/prices`. Prints the daemon's RSS growth against the targets (the
//! load raises RSS by at most 100 MB and leaves it within 20% of idle).
//!
//! `cargo bench --bench api` (about a minute). The daemon side runs in a
//! child process (this binary with `--serve`), so its RSS is measured
//! alone; the store is
//! built there (no fetching). The clients are threads of this process with a
//! blocking HTTP client, on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::*;
use pricegrid::actors::{Pipeline, PipelineOptions};
use pricegrid::config::Config;

/// The child's resident memory, from /proc.
fn rss_of(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// 20 clients x 5 requests of `route`; the peak RSS seen while they ran and
/// how many answers were 200 and 503.
fn load(addr: SocketAddr, pid: u32, route: &str) -> (u64, usize, usize) {
    let url = format!("http://{addr}{route}");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(rss_of(pid));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            peak
        })
    };
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new().build();
                let (mut ok, mut busy) = (0, 0);
                for _ in 0..5 {
                    match agent.get(&url).call() {
                        Ok(r) => {
                            let _ = r.into_string();
                            ok += 1;
                        }
                        Err(ureq::Error::Status(503, _)) => busy += 1,
                        Err(e) => panic!("{url}: {e}"),
                    }
                }
                (ok, busy)
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for c in clients {
        let (o, b) = c.join().expect("a client thread");
        ok += o;
        busy += b;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (sampler.join().unwrap_or(0), ok, busy)
}

/// The daemon side: the store and the API; prints the address, then waits.
fn serve() {
    let started = Instant::now();
    let store = generated_store(100, 10, 1000);
    eprintln!(
        "store    cells={} built in {:.1}s",
        store.len(),
        started.elapsed().as_secs_f64()
    );
    actix_rt::System::new().block_on(async move {
        let url: url::Url = "http://127.0.0.1:9/".parse().expect("a URL");
        let pipeline = Pipeline::start_with(
            std::sync::Arc::new(Config::default()),
            url,
            PipelineOptions {
                store,
                ..PipelineOptions::default()
            },
        );
        let api = pricegrid::api::start_for(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &pipeline,
            Config::default().api.max_concurrent_queries,
        )
        .expect("the API starts");
        println!("{}", api.addr);
        std::future::pending::<()>().await;
    })
}

fn main() {
    // The allocator as every pricegrid command sets it up (`heap`).
    pricegrid::heap::configure();
    if std::env::args().any(|a| a == "--serve") {
        return serve();
    }
    println!("# api bench: 1M stored cells (100 exchanges x 10 symbols x 1000 days)");
    let mut child = std::process::Command::new(std::env::current_exe().expect("this binary"))
        .arg("--serve")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the server process starts");
    let pid = child.id();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
        &mut line,
    )
    .expect("the server prints its address");
    let addr: SocketAddr = line.trim().parse().expect("an address");
    run(addr, pid);
    let _ = child.kill();
    let _ = child.wait();
}

fn run(addr: SocketAddr, pid: u32) {
    let rss = || rss_of(pid);
    let idle = rss();
    println!("idle     rss={:.1}MiB", mib(idle));
    let mut worst_growth = 0u64;
    let mut worst_after = 0u64;
    for route in ["/v1/prices", "/v1/aggregate"] {
        let t = Instant::now();
        let (peak, ok, busy) = load(addr, pid, route);
        let after = rss();
        worst_growth = worst_growth.max(peak.saturating_sub(idle));
        worst_after = worst_after.max(after);
        println!(
            "load     {route:<14} 20x5 in {:.2}s: {ok} answered, {busy} x 503; peak rss={:.1}MiB (+{:.1}), after={:.1}MiB",
            t.elapsed().as_secs_f64(),
            mib(peak),
            mib(peak.saturating_sub(idle)),
            mib(after)
        );
    }
    let t = Instant::now();
    let agent = ureq::AgentBuilder::new().build();
    let mut route = "/v1/prices?limit=100000".to_owned();
    let (mut rows, mut pages, mut peak) = (0usize, 0usize, 0u64);
    for _ in 0..100 {
        let body: serde_json::Value = agent
            .get(&format!("http://{addr}{route}"))
            .call()
            .expect("a page")
            .into_json()
            .expect("JSON");
        pages += 1;
        rows += body["rows"].as_array().map_or(0, Vec::len);
        peak = peak.max(rss());
        match body["next"].as_str() {
            Some(next) => route = format!("/v1/prices?limit=100000&after={next}"),
            None => break,
        }
    }
    println!(
        "paging   {rows} rows in {pages} pages of 100000 in {:.2}s; peak rss={:.1}MiB (+{:.1})",
        t.elapsed().as_secs_f64(),
        mib(peak),
        mib(peak.saturating_sub(idle))
    );
    println!("# targets");
    let growth_mib = mib(worst_growth);
    println!(
        "{}  RSS growth under the 20x5 load <= 100 MB: {growth_mib:.1} MiB",
        if growth_mib <= 100.0 { "MET " } else { "MISS" }
    );
    let ratio = worst_after as f64 / idle.max(1) as f64;
    println!(
        "{}  RSS after the load within 20% of idle: {ratio:.2}x",
        if ratio <= 1.2 { "MET " } else { "MISS" }
    );
    println!(
        "{}  paging returns every cell once: {rows} of 1000000",
        if rows == 1_000_000 { "MET " } else { "MISS" }
    );
}
