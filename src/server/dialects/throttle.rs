//! What stands in front of a dialect's candle requests: a token bucket
//! (`--rate-limit`) answered with the exchange's "too many requests", and
//! Binance's ban (`--ban-after`), a 418 for a while after a run of 429s.
//! It only admits or refuses; the answers' bodies are each dialect's.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::Clock as _;

use super::Admission;

/// The token bucket over candle requests, and Binance's ban.
pub(super) struct Throttle {
    limiter: governor::DefaultDirectRateLimiter,
    ban: Option<Ban>,
}

/// After `after` 429s in a row, every candle request is answered 418 until
/// `length` has passed; an admitted request ends the run of 429s.
struct Ban {
    after: u32,
    length: Duration,
    state: Mutex<BanState>,
}

#[derive(Default)]
struct BanState {
    in_a_row: u32,
    until: Option<Instant>,
}

impl Throttle {
    pub(super) fn new(
        rate: f64,
        ban_after: Option<u32>,
        ban_for: Duration,
    ) -> Result<Self, String> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "rate limit {rate}: give a number of requests a second above 0"
            ));
        }
        let quota = crate::rate::quota(rate)
            .ok_or_else(|| format!("rate limit {rate}: too high or too low for a token bucket"))?;
        Ok(Self {
            limiter: governor::RateLimiter::direct(quota),
            ban: ban_after.map(|after| Ban {
                after: after.max(1),
                length: ban_for,
                state: Mutex::new(BanState::default()),
            }),
        })
    }

    pub(super) fn admit(&self) -> Admission {
        let Some(ban) = &self.ban else {
            return self.take_token();
        };
        // One lock over the check and the count, so that concurrent
        // requests count their 429s in a row exactly.
        let mut state = ban.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if let Some(until) = state.until {
            if now < until {
                return Admission::Banned {
                    retry_after: whole_seconds(until - now),
                };
            }
            *state = BanState::default();
        }
        let admission = self.take_token();
        if admission == Admission::Admitted {
            state.in_a_row = 0;
        } else {
            state.in_a_row += 1;
            if state.in_a_row >= ban.after {
                state.until = Some(now + ban.length);
            }
        }
        admission
    }

    fn take_token(&self) -> Admission {
        match self.limiter.check() {
            Ok(()) => Admission::Admitted,
            Err(not_until) => Admission::Throttled {
                retry_after: whole_seconds(not_until.wait_time_from(self.limiter.clock().now())),
            },
        }
    }
}

/// A wait as `Retry-After` seconds: rounded up, at least 1.
pub(super) fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}
