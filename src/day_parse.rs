//! Stand-in until branch `layout-config` lands: there `model::Day` (which
//! `config::Day` re-exports) gets this same `FromStr`, with the same checks
//! and message. When merging that branch, delete this file and its `mod`
//! line in `lib.rs`; every `raw.parse::<Day>()` then uses the real one.

use std::fmt;

use chrono::NaiveDate;

use crate::config::Day;

impl std::str::FromStr for Day {
    type Err = String;

    /// Exactly four digits, two and two: chrono alone would also take
    /// `2020-1-5`, ` 2020-01-05` or `+2020-01-05`, each a likely typo.
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = |e: &dyn fmt::Display| format!("{raw:?} is not a date YYYY-MM-DD: {e}");
        let shaped = raw.len() == 10
            && raw.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !shaped {
            return Err(bad(
                &"expected a four-digit year and two-digit month and day",
            ));
        }
        NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map(Day)
            .map_err(|e| bad(&e))
    }
}
