//! Files written whole or not at all: the bytes go to a temporary file
//! beside the target (`tempfile`), which is synced, renamed over it, and
//! its directory synced, so a reader or a crash sees the old file or the
//! new one, never half; a failed write leaves no temporary file behind.
//! Owns nothing but that; what is written is the caller's.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// What this process's temporary files have in their names
/// (`.NAME.tmp-PID-RANDOM`): a sweep of files a crashed writer left
/// behind spares those still being written.
pub fn own_marker() -> String {
    format!(".tmp-{}-", std::process::id())
}

/// What a writer writes into: the temporary file, buffered.
pub type Out = BufWriter<tempfile::NamedTempFile>;

/// Writes `path` with `write`, creating its directory if missing; returns
/// the file's size.
pub fn write_file(path: &Path, write: impl FnOnce(&mut Out) -> io::Result<()>) -> io::Result<u64> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{}{}",
            path.file_name().unwrap_or_default().to_string_lossy(),
            own_marker()
        ))
        .tempfile_in(dir)?;
    let mut out = BufWriter::with_capacity(1 << 20, tmp);
    write(&mut out)?;
    out.flush()?;
    let tmp = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    tmp.as_file().sync_all()?;
    let bytes = tmp.as_file().metadata()?.len();
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv");
        assert_eq!(write_file(&path, |out| out.write_all(b"old")).unwrap(), 3);
        let failed = write_file(&path, |out| {
            out.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert_eq!(failed.unwrap_err().to_string(), "disk full");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["out.csv"], "no temporary file left");
    }

    #[test]
    fn a_missing_directory_is_made_and_the_temporary_file_names_its_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/snap.json");
        write_file(&path, |out| {
            let tmp = std::fs::read_dir(dir.path().join("a/b")).unwrap();
            let name = tmp.map(|e| e.unwrap().file_name()).next().unwrap();
            let name = name.to_string_lossy();
            assert!(name.starts_with(".snap.json.tmp-"), "{name}");
            assert!(name.contains(&own_marker()), "{name}");
            out.write_all(b"{}")
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}");
    }
}
