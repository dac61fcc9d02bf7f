//! Handing freed heap memory back to the system: glibc keeps it in
//! per-thread arenas otherwise, and the daemon's RSS would stay at its peak
//! (a large answer, a backfill's queued writes) for as long as it runs.
//! Called after such peaks, never per small request: on a heap of
//! gigabytes a trim takes milliseconds.

/// Releases the free memory glibc holds (a no-op elsewhere).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
