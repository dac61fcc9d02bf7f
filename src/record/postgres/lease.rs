//! The fleet's leases, kept in the PostgreSQL record beside the cells: who
//! asks which lane of the universe (an exchange, or an exchange × symbol),
//! with an epoch that grows at every change of holder, and until when.
//!
//! At each round a daemon renews what it holds, gives back what is beyond
//! its share (the lanes over the daemons seen alive within a lease), and
//! takes free or expired lanes up to it (`FOR UPDATE SKIP LOCKED`: two
//! daemons never take one lane); its round number comes from one sequence,
//! so rounds of different daemons never share a number. The epochs each
//! round was asked under are kept, and `write` refuses a cell whose lane is
//! no longer held under the epoch it was asked under (a daemon paused past
//! its lease, then resumed). `Heartbeat` renews the leases on a connection
//! and thread of its own, every third of the lease, so a long write never
//! lets them lapse, and a stopped or dead daemon stops renewing them.
//! Times are the server's (`now()`), so the daemons' clocks never matter.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::Client;
use serde::Serialize;

use super::{pg, raw, PostgresRecord, Tls, COLUMNS};
use crate::model::LeaseScope;
use crate::model::TaskKey;
use crate::record::rows::{time_of, Decoder};
use crate::record::RecordError;
use crate::store::Cell;

/// A time column as unix ms, NULL for none or `-infinity`.
fn ms(column: &str) -> String {
    format!("(extract(epoch FROM NULLIF({column}, '-infinity')) * 1000)::bigint")
}

/// What a daemon holds after `lease`.
#[derive(Debug, Clone, Default)]
pub struct Held {
    /// The number of the round about to run.
    pub round: u64,
    /// Every lane this daemon holds, with its epoch.
    pub lanes: BTreeMap<String, i64>,
    /// Lanes taken at this call: their cells are read from the record
    /// before they are asked (another daemon may have settled them).
    pub taken: Vec<String>,
    /// Lanes given back at this call, beyond this daemon's share.
    pub released: Vec<String>,
    /// The fleet as the record had it.
    pub fleet: Fleet,
}

/// The fleet: every lease and every daemon, as the record has them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Fleet {
    pub leases: Vec<Lease>,
    pub daemons: Vec<Member>,
}

/// One lane's lease.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lease {
    pub lane: String,
    /// `None`: free (never taken, or given back).
    pub holder: Option<String>,
    pub epoch: i64,
    /// Held by this holder since.
    pub since: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Held and not expired.
    pub live: bool,
}

/// One daemon of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub name: String,
    pub pid: i64,
    pub started: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_round: Option<i64>,
    /// Seen within a lease.
    pub live: bool,
}

/// How many rounds' epochs are kept for checking late writes.
const EPOCHS_KEPT: usize = 16;

impl PostgresRecord {
    /// Renews this daemon's leases on `lanes`, gives back what is beyond
    /// its share and takes free or expired lanes up to it, and numbers the
    /// round about to run; all in one transaction.
    pub fn lease(
        &mut self,
        lanes: &[String],
        scope: LeaseScope,
        ttl: Duration,
    ) -> Result<Held, RecordError> {
        let path = self.path.clone();
        let me = self.daemon.clone();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let held = self.with(|c, _| {
            let doing = "leasing the round's lanes";
            let mut tx = c.transaction().map_err(pg(&path, doing))?;
            tx.execute(
                "UPDATE daemons SET last_seen = now() WHERE name = $1",
                &[&me],
            )
            .map_err(pg(&path, doing))?;
            tx.execute(
                "INSERT INTO leases (lane) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                &[&lanes],
            )
            .map_err(pg(&path, doing))?;
            // Lanes no longer in this daemon's universe go back.
            tx.execute(
                "UPDATE leases SET holder = NULL, expires_at = '-infinity' \
                 WHERE holder = $1 AND NOT (lane = ANY($2))",
                &[&me, &lanes],
            )
            .map_err(pg(&path, doing))?;
            let live: i64 = tx
                .query_one(
                    "SELECT count(*) FROM daemons \
                     WHERE last_seen > now() - $1 * interval '1 millisecond' OR name = $2",
                    &[&(ttl_ms as f64), &me],
                )
                .map_err(pg(&path, doing))?
                .get(0);
            let live = usize::try_from(live).unwrap_or(1).max(1);
            let share = lanes.len().div_ceil(live);
            let renew = "expires_at = now() + $2 * interval '1 millisecond'";
            let mut mine: BTreeMap<String, i64> = tx
                .query(
                    &format!(
                        "UPDATE leases SET {renew} WHERE holder = $1 AND lane = ANY($3) \
                         RETURNING lane, epoch"
                    ),
                    &[&me, &(ttl_ms as f64), &lanes],
                )
                .map_err(pg(&path, doing))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let mut released = Vec::new();
            if mine.len() > share {
                released = mine.keys().skip(share).cloned().collect();
                tx.execute(
                    "UPDATE leases SET holder = NULL, expires_at = '-infinity' \
                     WHERE holder = $1 AND lane = ANY($2)",
                    &[&me, &released],
                )
                .map_err(pg(&path, doing))?;
                for lane in &released {
                    mine.remove(lane);
                }
            }
            let mut taken = Vec::new();
            if mine.len() < share {
                let wanted = i64::try_from(share - mine.len()).unwrap_or(i64::MAX);
                for row in tx
                    .query(
                        &format!(
                            "UPDATE leases SET holder = $1, epoch = epoch + 1, since = now(), \
                             {renew} WHERE lane IN (SELECT lane FROM leases \
                             WHERE lane = ANY($3) AND (holder IS NULL OR expires_at < now()) \
                             ORDER BY lane LIMIT $4 FOR UPDATE SKIP LOCKED) \
                             RETURNING lane, epoch"
                        ),
                        &[&me, &(ttl_ms as f64), &lanes, &wanted],
                    )
                    .map_err(pg(&path, doing))?
                {
                    let lane: String = row.get(0);
                    taken.push(lane.clone());
                    mine.insert(lane, row.get(1));
                }
            }
            let round: i64 = tx
                .query_one("SELECT nextval('round_numbers')", &[])
                .map_err(pg(&path, doing))?
                .get(0);
            let fleet = read_fleet(&mut tx, &path, ttl_ms)?;
            tx.commit().map_err(pg(&path, doing))?;
            Ok(Held {
                round: u64::try_from(round).unwrap_or(0),
                lanes: mine,
                taken,
                released,
                fleet,
            })
        })?;
        let mut epochs = self.epochs.borrow_mut();
        epochs.insert(held.round, held.lanes.clone());
        while epochs.len() > EPOCHS_KEPT {
            epochs.pop_first();
        }
        self.scope.set(Some(scope));
        Ok(held)
    }

    /// The current value of every cell of `lanes` (the record's: what
    /// another daemon may have settled while it held them).
    pub fn cells_of_lanes(
        &self,
        lanes: &[String],
        scope: LeaseScope,
    ) -> Result<Vec<(TaskKey, Cell)>, RecordError> {
        let path = self.path.clone();
        self.with(|c, names| {
            let doing = "reading the cells of lanes taken over";
            Self::reread(c, names, &path)?;
            let lane = match scope {
                LeaseScope::Exchange => "e.name",
                LeaseScope::Market => "e.name || '/' || s.name",
            };
            let columns: Vec<String> = COLUMNS
                .split(',')
                .map(|col| format!("c.{}", col.trim()))
                .collect();
            let rows = c
                .query(
                    &format!(
                        "SELECT {} FROM cells c JOIN exchanges e ON e.id = c.exchange \
                         JOIN symbols s ON s.id = c.symbol WHERE {lane} = ANY($1)",
                        columns.join(", ")
                    ),
                    &[&lanes],
                )
                .map_err(pg(&path, doing))?;
            let decoder = Decoder::new(&path, "cells");
            rows.iter()
                .map(|row| decoder.cell_of(raw(row, &path)?, names))
                .collect()
        })
    }

    /// Gives back every lease this daemon holds (it is stopping, its cells
    /// written): another daemon takes them at its next round rather than
    /// after they expire. Returns how many.
    pub fn release_leases(&self) -> Result<u64, RecordError> {
        let path = self.path.clone();
        let me = self.daemon.clone();
        self.with(|c, _| {
            c.execute(
                "UPDATE leases SET holder = NULL, expires_at = '-infinity' WHERE holder = $1",
                &[&me],
            )
            .map_err(pg(&path, "giving the leases back"))
        })
    }

    /// The fleet as the record has it now.
    pub fn fleet(&self, ttl: Duration) -> Result<Fleet, RecordError> {
        let path = self.path.clone();
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        self.with(|c, _| read_fleet(c, &path, ttl_ms))
    }

    /// Of `cells` written in `round`, those whose lane this daemon still
    /// holds under the epoch it was asked under (the epoch of the cell's
    /// own round, else of `round`), checked against the leases in the
    /// write's transaction `tx` and locked until it commits, so no lane
    /// changes hands during the write. The others are refused, and logged.
    pub(super) fn still_held<'c>(
        &self,
        tx: &mut postgres::Transaction<'_>,
        round: u64,
        cells: &'c [(TaskKey, Cell)],
    ) -> Result<Vec<&'c (TaskKey, Cell)>, RecordError> {
        let Some(scope) = self.scope.get() else {
            return Ok(cells.iter().collect());
        };
        let epochs = self.epochs.borrow();
        let lane_of = |k: &TaskKey| scope.lane(k.exchange.as_str(), k.symbol.as_str());
        let mut lanes: Vec<String> = cells.iter().map(|(k, _)| lane_of(k)).collect();
        lanes.sort();
        lanes.dedup();
        let now: BTreeMap<String, (Option<String>, i64)> = tx
            .query(
                "SELECT lane, holder, epoch FROM leases WHERE lane = ANY($1) FOR SHARE",
                &[&lanes],
            )
            .map_err(pg(&self.path, "checking the leases of a write"))?
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
        let mut kept = Vec::with_capacity(cells.len());
        let mut refused: BTreeMap<String, usize> = BTreeMap::new();
        for cell in cells {
            let lane = lane_of(&cell.0);
            let asked_under = epochs
                .get(&cell.1.round)
                .or_else(|| epochs.get(&round))
                .and_then(|m| m.get(&lane));
            match (now.get(&lane), asked_under) {
                (Some((Some(holder), epoch)), Some(asked))
                    if *holder == self.daemon && epoch == asked =>
                {
                    kept.push(cell)
                }
                _ => *refused.entry(lane).or_default() += 1,
            }
        }
        for (lane, n) in refused {
            let (holder, epoch) = match now.get(&lane) {
                Some((Some(h), e)) => (h.as_str(), *e),
                Some((None, e)) => ("no one", *e),
                None => ("no one", 0),
            };
            log::warn!(
                "{}: {n} late cell(s) of lane {lane} refused: the lease is held by {holder} at \
                 epoch {epoch}, not by {} under the epoch they were asked under (paused past \
                 the lease?); the holder asks them",
                self.path.display(),
                self.daemon
            );
        }
        Ok(kept)
    }

    /// Starts renewing this daemon's leases every third of `ttl`, on a
    /// connection and thread of its own, until the `Heartbeat` is dropped.
    pub fn heartbeat(&self, ttl: Duration) -> Heartbeat {
        let (stop, stopped) = mpsc::channel::<()>();
        let config = self.config.clone();
        let tls = self.tls.clone();
        let me = self.daemon.clone();
        let path = self.path.clone();
        let every = ttl / 3;
        let ttl_ms = ttl.as_millis() as f64;
        let thread = std::thread::Builder::new()
            .name("pricegrid-heartbeat".into())
            .spawn(move || {
                let mut client: Option<Client> = None;
                loop {
                    if client.as_ref().is_none_or(Client::is_closed) {
                        client = tls.connect(&config).map_err(|e| {
                            log::warn!("{}: heartbeat: cannot connect: {e}", path.display())
                        }).ok();
                    }
                    if let Some(c) = client.as_mut() {
                        let renewed = c
                            .execute(
                                "UPDATE leases SET expires_at = now() + $2 * interval '1 millisecond' \
                                 WHERE holder = $1",
                                &[&me, &ttl_ms],
                            )
                            .and_then(|_| {
                                c.execute("UPDATE daemons SET last_seen = now() WHERE name = $1", &[&me])
                            });
                        if let Err(e) = renewed {
                            log::warn!("{}: heartbeat: leases not renewed: {e}", path.display());
                        }
                    }
                    match stopped.recv_timeout(every) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
                }
            })
            .map_err(|e| log::error!("cannot start the lease heartbeat: {e}"))
            .ok();
        Heartbeat {
            _stop: stop,
            _thread: thread,
        }
    }
}

/// Renews a daemon's leases until dropped.
pub struct Heartbeat {
    _stop: mpsc::Sender<()>,
    _thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Heartbeat")
    }
}

impl Tls {
    /// A new connection with these settings.
    pub(super) fn connect(&self, config: &postgres::Config) -> Result<Client, postgres::Error> {
        match self {
            Tls::Plain => config.connect(postgres::NoTls),
            Tls::Rustls(tls) => config.connect(tls.clone()),
        }
    }
}

/// Every lease and daemon, with whether each is live.
fn read_fleet(
    c: &mut impl postgres::GenericClient,
    path: &std::path::Path,
    ttl_ms: i64,
) -> Result<Fleet, RecordError> {
    let doing = "reading the fleet";
    let time = |ms: Option<i64>| ms.and_then(time_of);
    let leases = c
        .query(
            &format!(
                "SELECT lane, holder, epoch, {}, {}, holder IS NOT NULL AND expires_at > now() \
                 FROM leases ORDER BY lane",
                ms("since"),
                ms("expires_at")
            ),
            &[],
        )
        .map_err(pg(path, doing))?
        .iter()
        .map(|r| Lease {
            lane: r.get(0),
            holder: r.get(1),
            epoch: r.get(2),
            since: time(r.get(3)),
            expires_at: time(r.get(4)),
            live: r.get(5),
        })
        .collect();
    let daemons = c
        .query(
            &format!(
                "SELECT name, pid, {}, {}, last_round, \
                 last_seen > now() - $1 * interval '1 millisecond' FROM daemons ORDER BY name",
                ms("started"),
                ms("last_seen")
            ),
            &[&(ttl_ms as f64)],
        )
        .map_err(pg(path, doing))?
        .iter()
        .map(|r| Member {
            name: r.get(0),
            pid: r.get(1),
            started: time(r.get(2)),
            last_seen: time(r.get(3)),
            last_round: r.get(4),
            live: r.get(5),
        })
        .collect();
    Ok(Fleet { leases, daemons })
}
