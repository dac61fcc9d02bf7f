//! Handing freed heap memory back to the system: glibc keeps it in
//! per-thread arenas otherwise, and the daemon's RSS would stay at its peak
//! (a large answer, a backfill's queued writes) for as long as it runs.
//! Called after such peaks, never per small request: on a heap of
//! gigabytes a trim takes milliseconds. After a trim, what the allocator
//! holds is logged at debug (`RUST_LOG=pricegrid::heap=debug`): the bytes
//! in use and the free bytes it still keeps, the two parts of the RSS the
//! program owns.
//!
//! `configure` sets the allocator up for the store before anything is
//! allocated: a block of `MAPPED_FROM` or more (a series of more than about
//! 580 days) is a mapping of its own, not a piece of an arena. A series
//! then grows in place (`mremap`, no copy), the room it keeps for its next
//! days is not resident until written, and a freed one goes back to the
//! system at once, where in an arena the pages around it stay resident
//! with every hole. Past glibc's limit of mappings (`M_MMAP_MAX`, 65,536)
//! blocks come from the arenas again.

/// Blocks this large or larger are mappings of their own.
const MAPPED_FROM: usize = 32 * 1024;

/// Sets the allocator up (see above); a no-op off glibc. Called first.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets one of the allocator's parameters;
        // called before any other thread exists.
        let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MAPPED_FROM as libc::c_int) };
        if set != 1 {
            log::warn!("the allocator refused a mapping threshold of {MAPPED_FROM} bytes");
        }
    }
}

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
