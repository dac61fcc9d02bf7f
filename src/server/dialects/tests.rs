//! Unit tests of the dialects' shared parts (`dialects/mod.rs`).

use super::*;

#[test]
fn days_and_milliseconds_agree() {
    let d = NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
    assert_eq!(day_secs(d), 1_583_020_800);
    assert_eq!(day_ms(d), 1_583_020_800_000);
    assert_eq!(day_at(epoch_day(d)), Some(d));
    assert_eq!(day_at(i64::MAX), None);
    let ms = day_ms(d);
    assert_eq!(
        days_opening_within_ms(Some(ms), Some(ms + DAY_MS - 1)),
        epoch_day(d)..=epoch_day(d)
    );
    assert_eq!(
        days_opening_within_ms(Some(ms + 1), Some(ms + DAY_MS)),
        epoch_day(d) + 1..=epoch_day(d) + 1
    );
}

#[test]
fn retry_after_rounds_up_to_at_least_a_second() {
    assert_eq!(whole_seconds(Duration::ZERO), 1);
    assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
    assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
    assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
}

#[test]
fn a_ban_follows_n_throttled_requests_in_a_row() {
    let t = Throttle::new(0.001, Some(2), Duration::from_secs(60)).unwrap();
    assert_eq!(t.admit(), Admission::Admitted);
    assert!(matches!(t.admit(), Admission::Throttled { retry_after } if retry_after > 900));
    assert!(matches!(t.admit(), Admission::Throttled { .. }));
    assert!(matches!(t.admit(), Admission::Banned { retry_after } if retry_after <= 60));
}
