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
//! This module reads the file and never parses or applies it: the daemon
//! does, and it skips a content it has already seen.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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

fn look(path: &Path) -> Option<Look> {
    let meta = std::fs::metadata(path).ok()?;
    let bytes = std::fs::read(path).ok()?;
    Some(Look {
        len: meta.len(),
        modified: meta.modified().ok(),
        bytes,
    })
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
            if let Some(done) = settled(&absolute, settle, &mut events).await {
                if contents.send(done).is_err() {
                    return;
                }
            }
        }
    });
    Ok(ConfigWatcher { _watcher: watcher })
}

/// Waits until the file has stopped changing and returns its content;
/// `None` if the watch ended or the file is gone (a later event will come
/// when it is back).
async fn settled(
    path: &Path,
    settle: Duration,
    events: &mut mpsc::UnboundedReceiver<()>,
) -> Option<Vec<u8>> {
    loop {
        // Quiet for `settle`: no event arrived while waiting.
        if !quiet_for(settle, events).await? {
            continue;
        }
        let first = look(path)?;
        if !quiet_for(settle, events).await? {
            continue;
        }
        let second = look(path)?;
        if first == second {
            return Some(second.bytes);
        }
    }
}

/// Waits `settle`; `Some(true)` if no change event came meanwhile,
/// `Some(false)` if one did (events are drained), `None` if the watch ended.
async fn quiet_for(settle: Duration, events: &mut mpsc::UnboundedReceiver<()>) -> Option<bool> {
    actix_rt::time::sleep(settle).await;
    let mut quiet = true;
    loop {
        match events.try_recv() {
            Ok(()) => quiet = false,
            Err(mpsc::error::TryRecvError::Empty) => return Some(quiet),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
        }
    }
}
