//! Handing freed heap memory back to the system: glibc keeps it in
//! per-thread arenas otherwise, and the daemon's RSS would stay at its peak
//! (a large answer, a backfill's queued writes) for as long as it runs.
//! Called after such peaks, never per small request: on a heap of
//! gigabytes a trim takes milliseconds. After a trim, what the allocator
//! holds is logged at debug (`RUST_LOG=pricegrid::heap=debug`): the bytes
//! in use and the free bytes it still keeps, the two parts of the RSS the
//! program owns.

/// Releases the free memory glibc holds (a no-op elsewhere).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free memory; it has no
        // preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
        if log::log_enabled!(log::Level::Debug) {
            // SAFETY: mallinfo2 only reads the allocator's counters.
            let info = unsafe { libc::mallinfo2() };
            log::debug!(
                "heap after a trim: {} MB in use ({} MB of it in mapped chunks), {} MB free kept by the allocator",
                (info.uordblks + info.hblkhd) / 1_000_000,
                info.hblkhd / 1_000_000,
                info.fordblks / 1_000_000,
            );
        }
    }
}
