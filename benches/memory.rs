//! Memory and snapshot benchmark.
//!
//! 1. An aggregate of 1M prices (100 exchanges x 10 symbols x 1,000 days)
//!    fetched end to end through the real actors from the built-in server
//!    at L = 0: prices/s, bytes per stored price (live heap held after the
//!    round, and RSS growth: first, while the process is fresh), and the
//!    snapshot of it written and loaded.
//! 2. Snapshot write (atomic, fsync'd) and load time and file size for
//!    stores of 10k, 100k and 1M prices.
//!
//!     cargo bench --bench memory

mod common;

use std::alloc::System;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use cap::Cap;
use common::*;
use pricegrid::actors::aggregator::TakeSnapshot;
use pricegrid::server::{self, Dataset, GeneratedSpec, ServerOptions};
use pricegrid::snapshot::Snapshot;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

fn write_and_load(label: &str, snap: &Snapshot) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("snapshot.json");
    let started = Instant::now();
    let bytes = snap.write_atomic(&path).expect("the snapshot writes");
    let write = started.elapsed();
    let started = Instant::now();
    let loaded = Snapshot::load(&path).expect("the snapshot loads");
    let load = started.elapsed();
    assert_eq!(loaded.price_count(), snap.price_count());
    println!(
        "snapshot {label:<10} prices={:<8} write={:>7.3}s  load={:>7.3}s  size={:>7.1}MiB  bytes/price={:.0}",
        snap.price_count(),
        write.as_secs_f64(),
        load.as_secs_f64(),
        mib(bytes),
        bytes as f64 / snap.price_count().max(1) as f64
    );
}

fn main() {
    // The allocator as every pricegrid command sets it up (`heap`).
    pricegrid::heap::configure();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    println!("# memory bench");
    actix_rt::System::new().block_on(async {
        let spec = GeneratedSpec::synthetic(1, 100, 10, 1000);
        let mut opts = ServerOptions::new(SocketAddr::from(([127, 0, 0, 1], 0)), 1);
        opts.dataset = Arc::new(Dataset::generated(spec));
        opts.workers = 2;
        let srv = server::start(&opts).expect("the bench server starts");
        let url = srv.url();
        let heap_before = ALLOCATOR.allocated();
        let rss_before = proc_status_bytes("VmRSS").unwrap_or(0);
        let (summary, wall, _, pipeline) = timed_round(config(&url, 1000, 32), &url, false).await;
        let c = summary.counts;
        assert_eq!((c.tasks, c.failed), (1_000_000, 0));
        let stored = c.done() as f64;
        let heap_after = ALLOCATOR.allocated();
        let rss_after = proc_status_bytes("VmRSS").unwrap_or(0);
        println!(
            "fetch    1M         tasks={} final={} none={} wall={:.2}s prices/s={:.0}",
            c.tasks,
            c.finals,
            c.none,
            wall.as_secs_f64(),
            stored / wall.as_secs_f64()
        );
        let heap_per = heap_after.saturating_sub(heap_before) as f64 / stored;
        let rss_per = rss_after.saturating_sub(rss_before) as f64 / stored;
        println!(
            "memory   1M         heap held={:.1}MiB ({heap_per:.1} bytes/price)  RSS growth={:.1}MiB ({rss_per:.1} bytes/price)",
            mib(heap_after.saturating_sub(heap_before) as u64),
            mib(rss_after.saturating_sub(rss_before))
        );
        let snap = pipeline.aggregator.send(TakeSnapshot).await.expect("the aggregator answers");
        write_and_load("1M-fetched", &snap);
        pipeline.stop().await;
        srv.stop().await;
        println!("# targets");
        let verdict = |ok: bool| if ok { "MET " } else { "MISS" };
        println!("{} <= 120 bytes per stored price at 1M (heap held): {heap_per:.1}", verdict(heap_per <= 120.0));
        println!("{} <= 120 bytes per stored price at 1M (RSS growth): {rss_per:.1}", verdict(rss_per <= 120.0));
    });
    for (label, e, s, d) in [
        ("10k", 10, 10, 100),
        ("100k", 100, 10, 100),
        ("1M", 100, 10, 1000),
    ] {
        let before = ALLOCATOR.allocated();
        let store = generated_store(e, s, d);
        let held = ALLOCATOR.allocated().saturating_sub(before);
        let keys = store.len();
        println!(
            "store    {label:<10} keys={keys:<8} heap={:>7.1}MiB  bytes/key={:.1}",
            mib(held as u64),
            held as f64 / keys as f64
        );
        write_and_load(label, &Snapshot::new(0, 1, Default::default(), store));
    }
}
