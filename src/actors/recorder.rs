//! The `Recorder`: the one thread that writes the daemon's durable record
//! (`crate::record`: an SQLite file, or a PostgreSQL database, where it
//! also takes the fleet's leases, so they and the writes checked against
//! them go through one connection in order).
//!
//! A `SyncArbiter` of one: it owns the database connection, and the
//! Aggregator sends it what to write (a round's start, the cells that
//! changed since the last flush, the reference closes judged, a round's
//! end, a compaction) in order, so
//! the Aggregator's own thread never waits on a disk. It decides nothing
//! about cells: it writes what it is given and says how that went.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, NaiveDate, Utc};

use crate::metrics::Metrics;
use crate::model::LeaseScope;
use crate::model::{RoundSummary, Symbol, TaskKey};
use crate::quality::Reference;
use crate::record::{Compacted, Held, Record, RecordError, WriteStats};
use crate::store::Cell;

/// Cells in a write large enough (a backfill's flush) that the memory it
/// took is handed back once it is written: the record's cached pages here,
/// the heap by the Aggregator.
pub const LARGE_WRITE: usize = 100_000;

pub struct Recorder {
    record: Record,
    metrics: Arc<Metrics>,
    /// In a fleet: where the fleet as the record has it is told after each
    /// round's end (its last round), and the lease TTL that says who is
    /// live.
    fleet: Option<FleetView>,
}

/// Where a fleet daemon's view of the fleet goes (`/v1/status`).
#[derive(Clone)]
pub struct FleetView {
    pub view: Arc<tokio::sync::watch::Sender<Option<crate::record::Fleet>>>,
    pub ttl: Duration,
}

impl Actor for Recorder {
    type Context = SyncContext<Self>;
}

impl Recorder {
    /// Starts the recorder thread over `record`.
    pub fn start(
        record: Record,
        metrics: Arc<Metrics>,
        fleet: Option<FleetView>,
    ) -> Addr<Recorder> {
        // A SyncArbiter builds its actor from a factory; this one is called
        // once, on the recorder's thread.
        let slot = Mutex::new(Some(record));
        SyncArbiter::start(1, move || {
            let record = slot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .expect("the recorder thread builds its actor once");
            Recorder {
                record,
                metrics: metrics.clone(),
                fleet: fleet.clone(),
            }
        })
    }
}

/// A round begins.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), RecordError>")]
pub struct BeginRound {
    pub round: u64,
    pub started: DateTime<Utc>,
    pub config_version: u64,
}

impl Handler<BeginRound> for Recorder {
    type Result = Result<(), RecordError>;

    fn handle(&mut self, msg: BeginRound, _: &mut SyncContext<Self>) -> Self::Result {
        self.record
            .begin_round(msg.round, msg.started, msg.config_version)
    }
}

/// These cells changed in `round`: their current values, in one transaction.
#[derive(Message, Debug)]
#[rtype(result = "Result<WriteStats, RecordError>")]
pub struct Persist {
    pub round: u64,
    pub cells: Vec<(TaskKey, Cell)>,
}

impl Handler<Persist> for Recorder {
    type Result = Result<WriteStats, RecordError>;

    fn handle(&mut self, msg: Persist, _: &mut SyncContext<Self>) -> Self::Result {
        let started = Instant::now();
        let stats = self.record.write(msg.round, &msg.cells)?;
        self.metrics
            .record_write_seconds
            .observe(started.elapsed().as_secs_f64());
        if msg.cells.len() >= LARGE_WRITE {
            // The pages such a write cached are not read again soon; the
            // Aggregator hands the freed memory back to the system.
            if let Err(e) = self.record.release_memory() {
                log::warn!("{e}");
            }
        }
        Ok(stats)
    }
}

/// The reference closes of the symbol-days judged in `round`, as they
/// stood then (`record::reference`).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), RecordError>")]
pub struct PersistReferences {
    pub round: u64,
    pub references: Vec<(Symbol, NaiveDate, Reference)>,
}

impl Handler<PersistReferences> for Recorder {
    type Result = Result<(), RecordError>;

    fn handle(&mut self, msg: PersistReferences, _: &mut SyncContext<Self>) -> Self::Result {
        self.record.write_references(msg.round, &msg.references)
    }
}

/// A round ended (finished, or aborted by a shutdown).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), RecordError>")]
pub struct FinishRound {
    pub summary: RoundSummary,
    pub finished: DateTime<Utc>,
}

impl Handler<FinishRound> for Recorder {
    type Result = Result<(), RecordError>;

    fn handle(&mut self, msg: FinishRound, _: &mut SyncContext<Self>) -> Self::Result {
        self.record.finish_round(&msg.summary, msg.finished)?;
        if let (Some(fleet), Some(shared)) = (&self.fleet, self.record.shared()) {
            match shared.fleet(fleet.ttl) {
                Ok(now) => {
                    fleet.view.send_replace(Some(now));
                }
                Err(e) => log::warn!("reading the fleet after round {}: {e}", msg.summary.round),
            }
        }
        Ok(())
    }
}

/// Answered once everything sent before it is written (the mailbox is
/// handled in order), and the record's WAL folded into its file: the
/// daemon sends it last, and a stopped daemon then leaves the record at its
/// size, not beside a WAL of up to 64 MiB (3 B a cell at 20M cells).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), RecordError>")]
pub struct Barrier;

impl Handler<Barrier> for Recorder {
    type Result = Result<(), RecordError>;

    fn handle(&mut self, _: Barrier, _: &mut SyncContext<Self>) -> Self::Result {
        // Everything is written; a checkpoint that fails leaves the WAL,
        // which the next start reads as usual.
        if let Err(e) = self.record.checkpoint() {
            log::warn!("the record's WAL stays beside it: {e}");
        }
        Ok(())
    }
}

/// Folds history older than `keep_for`; current values are kept.
#[derive(Message, Debug)]
#[rtype(result = "Result<Compacted, RecordError>")]
pub struct Compact {
    pub keep_for: Duration,
    pub now: DateTime<Utc>,
}

impl Handler<Compact> for Recorder {
    type Result = Result<Compacted, RecordError>;

    fn handle(&mut self, msg: Compact, _: &mut SyncContext<Self>) -> Self::Result {
        self.record.compact(msg.keep_for, msg.now)
    }
}

/// In a fleet: renew this daemon's leases, take its share of the free
/// ones, number the round about to run; with the current cells of the
/// lanes taken (the record's).
#[derive(Message, Debug)]
#[rtype(result = "Result<(Held, Vec<(TaskKey, Cell)>), RecordError>")]
pub struct TakeLeases {
    pub lanes: Vec<String>,
    pub scope: LeaseScope,
    pub ttl: Duration,
}

impl Handler<TakeLeases> for Recorder {
    type Result = Result<(Held, Vec<(TaskKey, Cell)>), RecordError>;

    fn handle(&mut self, msg: TakeLeases, _: &mut SyncContext<Self>) -> Self::Result {
        let path = self.record.path().to_owned();
        let Some(shared) = self.record.shared_mut() else {
            return Err(RecordError::Unsupported {
                path,
                what: "an SQLite record has one daemon: there are no leases to take".into(),
            });
        };
        let held = shared.lease(&msg.lanes, msg.scope, msg.ttl)?;
        let cells = if held.taken.is_empty() {
            Vec::new()
        } else {
            shared.cells_of_lanes(&held.taken, msg.scope)?
        };
        Ok((held, cells))
    }
}

/// A daemon stopping gives its leases back (a shared record only; 0 for a
/// file): answered with how many.
#[derive(Message, Debug)]
#[rtype(result = "Result<u64, RecordError>")]
pub struct ReleaseLeases;

impl Handler<ReleaseLeases> for Recorder {
    type Result = Result<u64, RecordError>;

    fn handle(&mut self, _: ReleaseLeases, _: &mut SyncContext<Self>) -> Self::Result {
        match self.record.shared() {
            Some(shared) => shared.release_leases(),
            None => Ok(0),
        }
    }
}
