//! Watches the config file and hands over its content once it is finished.
//!
//! An editor or a script writing the file passes through states that are
//! not the config anyone means: a truncated or empty file while it writes in
//! place, a missing one between a delete and a rename. So a content is
//! handed over only once the file has stopped changing: the same size,
//! modification time and bytes, read `settle` apart, with no change event in
//! between. Only events that change the file count (create, write, rename,
//! remove); reads of it, the daemon's own included, are not changes. The
//! directory is watched rather than the file, so a save by rename is seen.
//! The rule is written once (`settle_with`) and followed by every reader:
//! the watch here, and `read_settled`, which a reload asked by SIGHUP or
//! `POST /v1/reload` reads through (bounded: a file still being written
//! after a while is said to be). This module reads the file and never
//! parses or applies it: the daemon does, and it skips a content it has
//! already seen.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Why the file cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch the config file {path}: {reason}")]
pub struct WatchError {
    pub path: PathBuf,
    pub reason: String,
}

/// A running watch; dropping it stops the watch.
pub struct ConfigWatcher {
    _watcher: RecommendedWatcher,
}

/// One look at the file.
#[derive(Debug, PartialEq, Eq)]
struct Look {
    len: u64,
    modified: Option<SystemTime>,
    bytes: Vec<u8>,
}

fn look(path: &Path) -> std::io::Result<Look> {
    let meta = std::fs::metadata(path)?;
    let bytes = std::fs::read(path)?;
    Ok(Look {
        len: meta.len(),
        modified: meta.modified().ok(),
        bytes,
    })
}

/// What a wait between two looks at the file saw.
enum Pause {
    /// Nothing said the file changed.
    Quiet,
    /// A change event came: the looks before it do not count.
    Changed,
    /// The watch ended.
    Ended,
}

/// Why a settled content could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    /// It kept changing for the whole wait.
    #[error("{path}: the file is still being written (it kept changing for {waited:?}); try again once it is saved")]
    StillBeingWritten { path: PathBuf, waited: Duration },
    #[error("{path}: cannot read the config: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The watch ended (the daemon is stopping).
    #[error("the config watch ended")]
    Ended,
}

/// The rule every reader of the config file follows, written once: a
/// content counts only once two looks `settle` apart agree (same size,
/// modification time and bytes) with no change seen in between. `pause`
/// waits `settle` and says what it saw. With `give_up`, the looks stop
/// then, with `StillBeingWritten` (or the read error); without, at the
/// first read error.
async fn settle_with(
    path: &Path,
    settle: Duration,
    give_up: Option<Instant>,
    mut pause: impl AsyncFnMut(Duration) -> Pause,
) -> Result<Vec<u8>, SettleError> {
    let started = Instant::now();
    let mut before: Option<Look> = None;
    loop {
        let now = look(path);
        match (&before, now) {
            (Some(first), Ok(second)) if *first == second => return Ok(second.bytes),
            (_, now) => {
                // A watch gives up on a file that is gone (an event will
                // come when it is back); a reader at its time limit.
                let give_up = match give_up {
                    Some(at) => Instant::now() >= at,
                    None => now.is_err(),
                };
                if give_up {
                    return Err(match now {
                        Ok(_) => SettleError::StillBeingWritten {
                            path: path.to_owned(),
                            waited: started.elapsed(),
                        },
                        Err(source) => SettleError::Read {
                            path: path.to_owned(),
                            source,
                        },
                    });
                }
                before = now.ok();
            }
        }
        match pause(settle).await {
            Pause::Quiet => {}
            Pause::Changed => before = None,
            Pause::Ended => return Err(SettleError::Ended),
        }
    }
}

/// Reads the file once it has settled (see `settle_with`), as a reload
/// asked by SIGHUP or `POST /v1/reload` does: waits at most `wait` for a
/// file being written to settle, then says it is still being written; a
/// file that cannot be read is retried as long (a save may delete it
/// before it writes it).
pub async fn read_settled(
    path: &Path,
    settle: Duration,
    wait: Duration,
) -> Result<Vec<u8>, SettleError> {
    let give_up = Instant::now() + wait;
    settle_with(path, settle, Some(give_up), async |settle| {
        actix_rt::time::sleep(settle).await;
        Pause::Quiet
    })
    .await
}

/// Watches `path`; each finished content is sent on `contents`. Must be
/// called inside an actix (tokio) runtime: the settling runs as a task on it.
pub fn watch(
    path: &Path,
    settle: Duration,
    contents: mpsc::UnboundedSender<Vec<u8>>,
) -> Result<ConfigWatcher, WatchError> {
    let err = |reason: String| WatchError {
        path: path.to_owned(),
        reason,
    };
    let absolute = std::path::absolute(path).map_err(|e| err(e.to_string()))?;
    let dir = absolute
        .parent()
        .ok_or_else(|| err("it has no parent directory".into()))?
        .to_owned();
    let name = absolute
        .file_name()
        .ok_or_else(|| err("it names no file".into()))?
        .to_owned();
    let (events_tx, mut events) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                let changes = matches!(
                    event.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                );
                let ours = event
                    .paths
                    .iter()
                    .any(|p| p.file_name() == Some(name.as_os_str()));
                if changes && ours {
                    let _ = events_tx.send(());
                }
            }
            Err(e) => log::warn!("config watcher: {e}"),
        })
        .map_err(|e| err(e.to_string()))?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|e| err(e.to_string()))?;
    actix_rt::spawn(async move {
        while events.recv().await.is_some() {
            // No time limit: a later event restarts the wait anyway.
            let settled = settle_with(&absolute, settle, None, async |settle| {
                quiet_for(settle, &mut events).await
            })
            .await;
            match settled {
                Ok(done) => {
                    if contents.send(done).is_err() {
                        return;
                    }
                }
                Err(SettleError::Ended) => return,
                // Gone (a later event will come when it is back).
                Err(e) => log::debug!("config watcher: {e}"),
            }
        }
    });
    Ok(ConfigWatcher { _watcher: watcher })
}

/// Waits `settle`; `Quiet` if no change event came meanwhile, `Changed` if
/// one did (events are drained), `Ended` if the watch ended.
async fn quiet_for(settle: Duration, events: &mut mpsc::UnboundedReceiver<()>) -> Pause {
    actix_rt::time::sleep(settle).await;
    let mut quiet = true;
    loop {
        match events.try_recv() {
            Ok(()) => quiet = false,
            Err(mpsc::error::TryRecvError::Empty) if quiet => return Pause::Quiet,
            Err(mpsc::error::TryRecvError::Empty) => return Pause::Changed,
            Err(mpsc::error::TryRecvError::Disconnected) => return Pause::Ended,
        }
    }
}
