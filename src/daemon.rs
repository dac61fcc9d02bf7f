//! The long-lived daemon (`pricegrid run`): rounds on a schedule until a
//! signal, then a drain and a final snapshot.
//!
//! Owns the process lifecycle (start, signals, shutdown); the Producer owns
//! the schedule of rounds and the actors everything else.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::actors::aggregator::TakeSnapshot;
use crate::actors::producer::RunRound;
use crate::actors::supervisor::Drain;
use crate::actors::Pipeline;
use crate::app::Source;
use crate::config::Config;

/// Runs the daemon with the config at `path` until SIGINT/SIGTERM.
pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let config = Arc::new(Config::load(path)?);
    actix_rt::System::new().block_on(async move {
        let source = Source::start(&config)?;
        source.check_reachable(&config).await?;
        let pipeline = Pipeline::start(config.clone(), source.url.clone());
        let rounds = {
            let producer = pipeline.producer.clone();
            let interval = config.schedule.interval;
            async move {
                loop {
                    let started = std::time::Instant::now();
                    match producer.send(RunRound).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => log::error!("round failed: {e}"),
                        Err(e) => {
                            log::error!("the producer stopped: {e}");
                            return;
                        }
                    }
                    let next = interval.saturating_sub(started.elapsed());
                    actix_rt::time::sleep(next).await;
                }
            }
        };
        tokio::select! {
            _ = rounds => {}
            _ = crate::shutdown::signal() => {}
        }
        let left = pipeline
            .supervisor
            .send(Drain {
                timeout: config.fetch.drain_timeout,
            })
            .await?;
        if left > 0 {
            log::warn!("{left} tasks still in flight after the drain timeout");
        }
        let snapshot = pipeline.aggregator.send(TakeSnapshot).await?;
        let path = config.snapshot.dir.join("final.json");
        let bytes = snapshot.write_atomic(&path)?;
        log::info!(
            "final snapshot {} ({} prices, {bytes} bytes)",
            path.display(),
            snapshot.price_count()
        );
        source.stop().await;
        Ok(ExitCode::SUCCESS)
    })
}
