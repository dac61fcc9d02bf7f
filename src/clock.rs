//! The one source of wall-clock time: what day "today" is, when a day has
//! closed long enough to settle, and when an answer was fetched.
//!
//! Everything that asks "what time is it" (the Producer for today's date, the
//! Fetchers for when they asked, the built-in server for which candles are
//! published) takes a `Clock` instead of calling `Utc::now()`, so tests can
//! cross UTC midnight and a settle grace period without waiting. Retry
//! delays and deadlines are durations, not dates, and stay on the monotonic
//! timer. This module does no I/O.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

/// Tells the current UTC time. Cheap to clone; shared across threads.
#[derive(Clone)]
pub struct Clock(Arc<Inner>);

enum Inner {
    System,
    /// Set by hand (tests, demos); moves only when told to.
    Manual(Mutex<DateTime<Utc>>),
}

impl Clock {
    /// The machine's clock.
    pub fn system() -> Self {
        Clock(Arc::new(Inner::System))
    }

    /// A clock that stands at `at` until `set` or `advance` moves it.
    pub fn manual(at: DateTime<Utc>) -> Self {
        Clock(Arc::new(Inner::Manual(Mutex::new(at))))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &*self.0 {
            Inner::System => Utc::now(),
            Inner::Manual(t) => *t.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Today's date in UTC.
    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// Moves a manual clock to `at` (a system clock ignores it).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Inner::Manual(t) = &*self.0 {
            *t.lock().unwrap_or_else(|e| e.into_inner()) = at;
        }
    }

    /// Moves a manual clock forward by `by` (a system clock ignores it).
    pub fn advance(&self, by: TimeDelta) {
        if let Inner::Manual(t) = &*self.0 {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            *t += by;
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Inner::System => f.write_str("Clock::system"),
            Inner::Manual(_) => write!(f, "Clock::manual({})", self.now()),
        }
    }
}

/// The instant day `day` closes: the next midnight, UTC.
pub fn day_close(day: NaiveDate) -> DateTime<Utc> {
    day.succ_opt()
        .unwrap_or(NaiveDate::MAX)
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
}

/// Whether an answer about `day` given at `asked_at` is final: the day had
/// closed, and `grace` had passed since, when the source was asked.
pub fn is_final(day: NaiveDate, asked_at: DateTime<Utc>, grace: std::time::Duration) -> bool {
    let grace = TimeDelta::from_std(grace).unwrap_or(TimeDelta::MAX);
    day_close(day)
        .checked_add_signed(grace)
        .is_some_and(|settles| asked_at >= settles)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = Clock::manual(at("2020-03-13T23:59:00Z"));
        assert_eq!(c.today(), NaiveDate::from_ymd_opt(2020, 3, 13).unwrap());
        c.advance(TimeDelta::minutes(2));
        assert_eq!(c.today(), NaiveDate::from_ymd_opt(2020, 3, 14).unwrap());
        c.set(at("2021-01-01T00:00:00Z"));
        assert_eq!(c.now(), at("2021-01-01T00:00:00Z"));
    }

    #[test]
    fn an_answer_is_final_only_after_the_close_and_the_grace() {
        let day = NaiveDate::from_ymd_opt(2020, 3, 13).unwrap();
        let grace = Duration::from_secs(2 * 3600);
        assert!(!is_final(day, at("2020-03-13T23:59:00Z"), grace));
        assert!(!is_final(day, at("2020-03-14T01:59:59Z"), grace));
        assert!(is_final(day, at("2020-03-14T02:00:00Z"), grace));
        assert!(is_final(day, at("2020-03-14T00:00:00Z"), Duration::ZERO));
    }
}
