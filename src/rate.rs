//! A request rate as a token bucket's quota: `rps` requests a second, in
//! bursts of one second's worth (at least one). One rule for the client's
//! per-exchange limits (`dispatch`) and the built-in server's
//! `--rate-limit` (`server::dialects`), so both sides mean the same by
//! "N a second". Pure: builds values, limits nothing itself.

use std::num::NonZeroU32;
use std::time::Duration;

/// The quota of `rps` requests a second; `None` for a rate that is not a
/// finite number above 0, or too high or too low to have a period.
pub fn quota(rps: f64) -> Option<governor::Quota> {
    if !(rps.is_finite() && rps > 0.0) {
        return None;
    }
    let period = Duration::try_from_secs_f64(1.0 / rps).ok()?;
    let burst = NonZeroU32::new(rps.floor().clamp(1.0, f64::from(u32::MAX)) as u32)
        .unwrap_or(NonZeroU32::MIN);
    Some(governor::Quota::with_period(period)?.allow_burst(burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_bursts_one_seconds_worth_and_nonsense_has_no_quota() {
        let q = quota(8.0).unwrap();
        assert_eq!(q.burst_size().get(), 8);
        assert_eq!(q.replenish_interval(), Duration::from_millis(125));
        assert_eq!(quota(0.8).unwrap().burst_size().get(), 1);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-300] {
            assert!(quota(bad).is_none(), "{bad}");
        }
    }
}
