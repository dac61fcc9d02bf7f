//! When the built-in server's prices become visible: the dataset knows every
//! day's full candle, but a real exchange only knows a day once it has
//! happened, and publishes its daily candle some time after the day closes.
//!
//! Owns that rule, as a pure function of (the dataset's answer, the day,
//! the time now, the publication delay): a future day has no price; today
//! has a partial candle that grows with the hours; a closed day has none
//! until its close plus the delay has passed, then the full candle. The
//! request handler in `server` asks it what to serve; it does no I/O and
//! keeps no state, so tests drive it with a manual `Clock`.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use crate::clock;
use crate::model::Ohlcv;

use super::Lookup;

/// What the server may answer for `day` at `now`, given what the dataset
/// says (`full`). Without a `delay` the dataset is served as it is.
/// Unknown names stay unknown whatever the date.
pub fn published(
    full: Lookup,
    day: NaiveDate,
    now: DateTime<Utc>,
    delay: Option<Duration>,
) -> Lookup {
    let Some(delay) = delay else {
        return full;
    };
    let Lookup::Price(price) = full else {
        return full;
    };
    let today = now.date_naive();
    if day > today {
        Lookup::NoPrice
    } else if day == today {
        Lookup::Price(partial(&price, day_fraction(day, now)))
    } else if clock::is_final(day, now, delay) {
        Lookup::Price(price)
    } else {
        Lookup::NoPrice
    }
}

/// How much of `day` has passed at `now`, within 0..=1.
fn day_fraction(day: NaiveDate, now: DateTime<Utc>) -> f64 {
    let start = day.and_time(chrono::NaiveTime::MIN).and_utc();
    let elapsed = (now - start).num_milliseconds() as f64;
    (elapsed / 86_400_000.0).clamp(0.0, 1.0)
}

/// The candle of a day a fraction `f` through, on the way to `full`: it
/// opens at the day's open, its close walks from the open toward the
/// day's close, its high and low widen from the open and close toward the
/// day's, and its volume is `f` of the day's.
///
/// Always ordered (low <= open, close <= high) and never negative, even
/// where `full` itself is out of order, as some real data is: the high and
/// low only ever widen what the open and close span.
pub fn partial(full: &Ohlcv, f: f64) -> Ohlcv {
    let f = if f.is_finite() {
        f.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let open = full.open;
    let close = open + (full.close - open) * f;
    let top = open.max(close);
    let bottom = open.min(close);
    let high = top + (full.high - top).max(0.0) * f;
    let low = bottom - (bottom - full.low).max(0.0) * f;
    Ohlcv {
        open,
        high,
        low: low.max(0.0),
        close,
        volume: full.volume * f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("test time")
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
    }

    const FULL: Ohlcv = Ohlcv {
        open: 100.0,
        high: 130.0,
        low: 80.0,
        close: 120.0,
        volume: 1000.0,
    };

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn without_a_delay_the_dataset_is_served_as_it_is() {
        let now = at("2020-03-13T12:00:00Z");
        for d in ["2020-03-12", "2020-03-13", "2030-01-01"] {
            assert_eq!(
                published(Lookup::Price(FULL), day(d), now, None),
                Lookup::Price(FULL)
            );
        }
    }

    #[test]
    fn a_day_goes_from_future_to_partial_to_unpublished_to_full() {
        let d = day("2020-03-13");
        let price = |now: &str| published(Lookup::Price(FULL), d, at(now), Some(HOUR));
        assert_eq!(price("2020-03-12T23:59:59Z"), Lookup::NoPrice);
        let Lookup::Price(morning) = price("2020-03-13T06:00:00Z") else {
            panic!("today has a partial candle");
        };
        let Lookup::Price(evening) = price("2020-03-13T18:00:00Z") else {
            panic!("today has a partial candle");
        };
        assert_ne!(morning, evening);
        assert!(morning.volume < evening.volume && evening.volume < FULL.volume);
        assert_eq!(price("2020-03-14T00:00:00Z"), Lookup::NoPrice);
        assert_eq!(price("2020-03-14T00:59:59Z"), Lookup::NoPrice);
        assert_eq!(price("2020-03-14T01:00:00Z"), Lookup::Price(FULL));
    }

    #[test]
    fn no_price_and_unknown_names_stay_so_at_any_time() {
        let d = day("2020-03-13");
        for now in [
            "2020-03-12T00:00:00Z",
            "2020-03-13T12:00:00Z",
            "2021-01-01T00:00:00Z",
        ] {
            for answer in [
                Lookup::NoPrice,
                Lookup::UnknownExchange,
                Lookup::UnknownSymbol,
            ] {
                assert_eq!(published(answer.clone(), d, at(now), Some(HOUR)), answer);
            }
        }
    }

    #[test]
    fn a_partial_candle_opens_at_the_open_and_ends_as_the_full_one() {
        let start = partial(&FULL, 0.0);
        assert_eq!(
            (start.open, start.high, start.low, start.close),
            (100.0, 100.0, 100.0, 100.0)
        );
        assert_eq!(start.volume, 0.0);
        assert_eq!(partial(&FULL, 1.0), FULL);
        let half = partial(&FULL, 0.5);
        assert_eq!((half.open, half.close, half.volume), (100.0, 110.0, 500.0));
        assert_eq!((half.high, half.low), (120.0, 90.0));
    }

    #[test]
    fn a_partial_candle_is_ordered_even_when_the_full_one_is_not() {
        // Real data has rows whose open or close lies outside low..high.
        let disordered = [
            Ohlcv {
                open: 10.0,
                high: 9.0,
                low: 8.0,
                close: 12.0,
                volume: 5.0,
            },
            Ohlcv {
                open: 10.0,
                high: 20.0,
                low: 11.0,
                close: 0.5,
                volume: 5.0,
            },
            Ohlcv {
                open: 0.0,
                high: 0.0,
                low: 0.0,
                close: 0.0,
                volume: 0.0,
            },
        ];
        for full in disordered {
            for i in 0..=20 {
                let p = partial(&full, f64::from(i) / 20.0);
                p.check_order()
                    .unwrap_or_else(|e| panic!("{full:?} at {i}/20: {e}"));
                for v in [p.open, p.high, p.low, p.close, p.volume] {
                    assert!(v >= 0.0 && v.is_finite(), "{p:?}");
                }
            }
        }
    }
}
