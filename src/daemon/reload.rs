//! One reload of the daemon's config: read the file once it has settled,
//! validate it, check the universe it discovers against
//! `universe.max_tasks`, start what the new config needs, and hand it whole
//! to the actors. The watcher, SIGHUP and `POST /v1/reload` all come
//! through here (`Daemon::reload`): a file still being written is never
//! read half-way, and a universe too large is refused before it is answered.
//!
//! Owns the order of a reload, so that it is never half-applied: nothing is
//! swapped until everything the new config needs is up (a new built-in
//! source, a new API listener), and the actors take the config as one
//! `Reconfigure` at the next round boundary. What the old config used (its
//! source, its API server) is stopped in the background, the source only
//! after the round using it is over. A content already seen is not read
//! again, and a rejected content is logged once, however many events the
//! file gives.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::listen::{start_api, ApiLinks};
use super::{Daemon, ReloadStatus, SETTLE, SETTLE_WAIT};
use crate::actors::messages::{Reconfigure, SourceRef};
use crate::actors::producer::{Listings, RoundError, Universe};
use crate::api::ReloadOutcome;
use crate::config::watcher::{self, SettleError};
use crate::config::{Config, ConfigDiff};
use crate::origin::Source;
use crate::source::{ClientLimits, PriceClient};

/// A hash of a file's bytes, to know a content seen before.
pub(super) fn content_hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Where a reload comes from.
pub(super) enum Asked {
    /// The watcher, with the content it saw settle.
    Watcher(Vec<u8>),
    /// SIGHUP, `POST /v1/reload` or the `Controller`: the file is read
    /// here, through the same settling as the watcher's.
    Request,
}

impl Daemon {
    /// Reads the config once it has settled (or takes the content the
    /// watcher saw settle), checks it and the universe it discovers, and
    /// applies it whole if all is well; keeps the old one (and says why) if
    /// not. One gate for the watcher, SIGHUP and `POST /v1/reload`.
    pub(super) async fn reload(&mut self, asked: Asked) -> ReloadOutcome {
        let from_watcher = matches!(asked, Asked::Watcher(_));
        let bytes = match asked {
            Asked::Watcher(b) => b,
            Asked::Request => match watcher::read_settled(&self.path, SETTLE, SETTLE_WAIT).await {
                Ok(b) => b,
                Err(e @ SettleError::StillBeingWritten { .. }) => {
                    let error = e.to_string();
                    log::warn!(
                        "config reload not done, still running version {}: {error}",
                        self.status.borrow().version
                    );
                    return ReloadOutcome::StillBeingWritten { error };
                }
                Err(e) => return self.reject(e.to_string(), None),
            },
        };
        if from_watcher && std::fs::read(&self.path).is_ok_and(|now| now != bytes) {
            // Written again since the watcher read it: that newer content
            // will come (a SIGHUP or the endpoint may have applied it already).
            log::debug!(
                "config file changed again since it settled; waiting for the newer content"
            );
            return self.current();
        }
        let hash = content_hash(&bytes);
        if from_watcher && self.last_seen == Some(hash) {
            log::debug!("config file event, content unchanged");
            return self.current();
        }
        self.last_seen = Some(hash);
        let parsed = String::from_utf8(bytes)
            .map_err(|e| format!("{}: not UTF-8 text: {e}", self.path.display()))
            .and_then(|text| Config::parse(&text, &self.path).map_err(|e| e.to_string()));
        let new = match parsed {
            Ok(mut c) => {
                self.overrides.apply(&mut c);
                c
            }
            Err(error) => return self.reject(error, Some(hash)),
        };
        if new.store.path != self.config.store.path {
            let error = format!(
                "{}: store.path: cannot change from {} to {} while the daemon runs (the record is open); restart pricegrid to use the new record",
                self.path.display(),
                self.config.store.path.display(),
                new.store.path.display()
            );
            return self.reject(error, Some(hash));
        }
        if new.store.url != self.config.store.url {
            let shown = |u: &Option<String>| match u {
                Some(u) => crate::record::without_password(u),
                None => "(unset)".into(),
            };
            let error = format!(
                "{}: store.url: cannot change from {} to {} while the daemon runs (the record is open); restart pricegrid to use the new record",
                self.path.display(),
                shown(&self.config.store.url),
                shown(&new.store.url)
            );
            return self.reject(error, Some(hash));
        }
        if new.fleet != self.config.fleet && self.config.store.url.is_some() {
            let error = format!(
                "{}: fleet: cannot change while the daemon runs (its leases are held under these settings); restart pricegrid to use them",
                self.path.display()
            );
            return self.reject(error, Some(hash));
        }
        self.last_rejected = None;
        if new == *self.config {
            log::debug!("config file changed but its settings did not");
            self.status.send_modify(|s| {
                s.attempts += 1;
                s.last_error = None;
            });
            let outcome = self.current();
            self.report_reload(&outcome);
            return outcome;
        }
        let diff = ConfigDiff::between(&self.config, &new);
        // Start what the new config needs first; only when all of it is up
        // is anything swapped, so a failure leaves the old config whole.
        let new_source = if diff.source_location {
            match Source::start_with_clock(&new, &self.clock) {
                Ok(source) => Some(source),
                Err(e) => return self.reject(e.to_string(), Some(hash)),
            }
        } else {
            None
        };
        // The universe as the first round under this config will see it
        // ("all" asked of the source it will ask, and of each exchange's
        // listing), judged before answering.
        let asked = new_source.as_ref().unwrap_or(&self.source);
        let client = PriceClient::new(&asked.url, &ClientLimits::from_config(&new.source, 1));
        // A listing read here is not kept: the Producer reads its own once
        // the config is in force.
        let listings = Listings::default();
        let today = self.clock.today();
        match Universe::resolve_within(&new, &client, &asked.endpoints, &listings, today).await {
            Ok(_) => {}
            Err(RoundError::Discovery(e)) => log::warn!(
                "cannot check the new universe's size now ({e}); each round checks it before it starts"
            ),
            Err(e) => {
                if let Some(source) = new_source {
                    actix_rt::spawn(async move { source.stop().await });
                }
                let error = format!("{}: {e}", self.path.display());
                return self.reject(error, Some(hash));
            }
        }
        let api_changed = diff.changed("api");
        let new_api = if api_changed && new.api.enabled {
            match start_api(
                &new,
                self.api.as_ref(),
                &self.pipeline,
                &ApiLinks {
                    files: &self.snapshot_dir,
                    view: &self.view,
                    clock: &self.clock,
                },
                self.started,
                &self.control_tx,
            ) {
                Ok(api) => Some(api),
                Err(e) => {
                    if let Some(source) = new_source {
                        actix_rt::spawn(async move { source.stop().await });
                    }
                    return self.reject(e.to_string(), Some(hash));
                }
            }
        } else {
            None
        };
        let old_source = new_source.map(|s| std::mem::replace(&mut self.source, s));
        if api_changed {
            if let Some(old) = std::mem::replace(&mut self.api, new_api) {
                // Before the answer: a connection made after it reaches the
                // new rules, also when both servers share the port.
                old.stop_accepting().await;
                actix_rt::spawn(async move { old.stop().await });
            }
        }
        let new = Arc::new(new);
        let mut status = self.status.borrow().clone();
        status.attempts += 1;
        status.version += 1;
        status.last_error = None;
        let version = status.version;
        let in_force = self.pipeline.producer.send(Reconfigure {
            config: new.clone(),
            diff: Arc::new(diff.clone()),
            version,
            source: SourceRef::of(&self.source),
        });
        actix_rt::spawn(async move {
            // The round under the old config is over once the new one is in
            // force: nothing asks the old source any more.
            let _ = in_force.await;
            if let Some(old) = old_source {
                old.stop().await;
            }
        });
        self.snapshot_dir.send_replace(new.snapshot.dir.clone());
        self.config = new;
        let changed = diff.describe();
        log::info!(
            "config version {version} accepted from {} (changed: {}); in force from the next round",
            self.path.display(),
            changed.join(", ")
        );
        self.status.send_replace(status);
        self.pipeline.metrics.count_reload(true);
        let outcome = ReloadOutcome::Applied { version, changed };
        self.report_reload(&outcome);
        outcome
    }

    /// Records and logs a rejected reload; the config in force stays. A
    /// content rejected just before is logged at debug level only.
    fn reject(&mut self, error: String, hash: Option<u64>) -> ReloadOutcome {
        let mut status: ReloadStatus = self.status.borrow().clone();
        status.attempts += 1;
        if hash.is_some() && hash == self.last_rejected {
            log::debug!("config reload rejected again (same content): {error}");
        } else {
            log::error!(
                "config reload rejected, still running version {}:\n{error}",
                status.version
            );
        }
        self.last_rejected = hash;
        status.last_error = Some(error.clone());
        self.status.send_replace(status);
        self.pipeline.metrics.count_reload(false);
        let outcome = ReloadOutcome::Rejected { error };
        self.report_reload(&outcome);
        outcome
    }

    /// The config in force, as a reload that changed nothing answers.
    fn current(&self) -> ReloadOutcome {
        ReloadOutcome::Applied {
            version: self.status.borrow().version,
            changed: Vec::new(),
        }
    }
}
