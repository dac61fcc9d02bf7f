//! One writer per SQLite record: the daemon holds an exclusive OS lock on
//! `<record>.lock` beside the database for as long as it runs, taken before
//! any actor starts. A second daemon on the same record is refused with who
//! holds it ("in use by pid N (started …)"), read from the lock file, where
//! the holder writes its pid and start time. The lock is the OS's (`flock`
//! through `std::fs::File::try_lock`): it goes with the process however it
//! ends (kill -9 included), so a lock file left behind never blocks anyone.
//! Readers (`query`, `export`, `snapshots`, the API) never take it.
//!
//! Owns only the lock file; it never opens the database.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

/// The daemon's hold on its record; released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct RecordLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("record {record} is in use by {holder}: one daemon writes a record at a time (give this one another store.path)")]
    InUse { record: PathBuf, holder: String },
    #[error("cannot lock record {record} ({lock}): {error}")]
    Io {
        record: PathBuf,
        lock: PathBuf,
        error: std::io::Error,
    },
}

/// Where the lock of the record at `record` lives.
pub fn lock_path(record: &Path) -> PathBuf {
    let mut name = record.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl RecordLock {
    /// Takes the record's lock, or says who holds it. The record's directory
    /// is created if missing (as opening the record would).
    pub fn take(record: &Path, started: DateTime<Utc>) -> Result<RecordLock, LockError> {
        let path = lock_path(record);
        let io = |error| LockError::Io {
            record: record.to_owned(),
            lock: path.clone(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                // Best effort: a holder that has not written yet is "another process".
                let _ = file.read_to_string(&mut text);
                return Err(LockError::InUse {
                    record: record.to_owned(),
                    holder: holder_of(&text),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let line = format!(
            "pid {} started {}\n",
            std::process::id(),
            started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(line.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(io)?;
        log::debug!("holding {}", path.display());
        Ok(RecordLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// "pid N (started …)" from what the holder wrote, or a plain "another
/// process" when it wrote nothing readable.
fn holder_of(text: &str) -> String {
    let mut words = text.split_whitespace();
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("pid"), Some(pid), Some("started"), Some(at)) if pid.parse::<u32>().is_ok() => {
            format!("pid {pid} (started {at})")
        }
        _ => "another process".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_hold_is_refused_naming_the_first_and_a_dropped_one_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("data/pricegrid.db");
        let started: DateTime<Utc> = "2026-12-06T10:00:00Z".parse().unwrap();
        let first = RecordLock::take(&record, started).unwrap();
        assert_eq!(first.path(), dir.path().join("data/pricegrid.db.lock"));
        let e = RecordLock::take(&record, started).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "record {} is in use by pid {} (started 2026-12-06T10:00:00Z): one daemon writes a record at a time (give this one another store.path)",
                record.display(),
                std::process::id()
            )
        );
        drop(first);
        RecordLock::take(&record, started).expect("free once the holder is gone");
    }

    #[test]
    fn an_unreadable_lock_file_names_another_process() {
        assert_eq!(holder_of(""), "another process");
        assert_eq!(holder_of("pid x started y"), "another process");
        assert_eq!(
            holder_of("pid 12 started 2026-12-06T10:00:00Z\n"),
            "pid 12 (started 2026-12-06T10:00:00Z)"
        );
    }
}
