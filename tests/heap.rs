//! The allocator as `pricegrid` sets it up (`heap::configure`, called
//! first by every command): a block of a long series' size is a mapping of
//! its own, so it grows in place and goes back to the system when freed.
//! Alone in its binary: the allocator's counters are the process's.

/// Blocks of 40 KiB (a series of about 730 days of 56-byte slots) are
/// mapped, where glibc's default would put them in an arena (below its
/// 128 KiB threshold), and freeing them unmaps them.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_long_series_block_is_a_mapping_of_its_own() {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let mapped = || unsafe { libc::mallinfo2() }.hblkhd;
    pricegrid::heap::configure();
    let before = mapped();
    let blocks: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 40 * 1024]).collect();
    let during = mapped();
    assert!(
        during >= before + 64 * 40 * 1024,
        "{} bytes mapped for 64 blocks of 40 KiB",
        during - before
    );
    drop(blocks);
    assert!(
        mapped() + 64 * 40 * 1024 <= during,
        "the blocks were not unmapped when freed"
    );
}
