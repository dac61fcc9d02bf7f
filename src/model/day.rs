//! Days as people write them: `Day`, one calendar day with the crate's one
//! `YYYY-MM-DD` parser (config, command line and API queries all go through
//! it, serde included), and `DayRange`, an inclusive run of days such as a
//! universe's window. Pure values: no clock (today is `clock`'s business)
//! and no I/O.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};

/// A calendar day (UTC), written `YYYY-MM-DD` wherever a person types one:
/// the config's window, command-line options, API queries. It has one
/// parser, `FromStr`, which serde uses too, so every edge accepts and
/// refuses the same text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Day(pub NaiveDate);

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

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

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// An inclusive range of days, e.g. the window a universe covers today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl DayRange {
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + Clone {
        self.from.iter_days().take_while({
            let to = self.to;
            move |d| *d <= to
        })
    }

    pub fn len(&self) -> usize {
        usize::try_from((self.to - self.from).num_days() + 1).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.to < self.from
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(raw: &str) -> Result<Day, String> {
        raw.parse()
    }

    #[test]
    fn a_day_is_exactly_yyyy_mm_dd() {
        assert_eq!(
            day("2020-01-05"),
            Ok(Day(NaiveDate::from_ymd_opt(2020, 1, 5).unwrap()))
        );
        assert_eq!(
            day("0001-01-01").map(|d| d.to_string()).as_deref(),
            Ok("0001-01-01")
        );
        for typo in [
            "2020-1-5",
            "2020-01-5",
            " 2020-01-05",
            "+2020-01-05",
            "2020-01-05 ",
            "20200-01-05",
            "2020/01/05",
            "",
        ] {
            let err = day(typo).unwrap_err();
            assert!(
                err.starts_with(&format!("{typo:?} is not a date YYYY-MM-DD: ")),
                "{err}"
            );
        }
        let err = day("2020-02-30").unwrap_err();
        assert!(
            err.starts_with("\"2020-02-30\" is not a date YYYY-MM-DD: "),
            "{err}"
        );
    }

    #[test]
    fn serde_reads_a_day_with_the_same_parser() {
        let d: Day = serde_json::from_str("\"2024-02-29\"").unwrap();
        assert_eq!(d.to_string(), "2024-02-29");
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2024-02-29\"");
        let err = serde_json::from_str::<Day>("\"2024-2-29\"").unwrap_err();
        assert!(
            err.to_string().contains("is not a date YYYY-MM-DD"),
            "{err}"
        );
    }

    #[test]
    fn a_day_range_is_inclusive() {
        let d = |s: &str| s.parse::<Day>().unwrap().0;
        let r = DayRange {
            from: d("2020-02-28"),
            to: d("2020-03-01"),
        };
        assert_eq!(r.len(), 3);
        assert_eq!(r.days().last(), Some(d("2020-03-01")));
        let backwards = DayRange {
            from: r.to,
            to: r.from,
        };
        assert!(backwards.is_empty());
        assert_eq!(backwards.len(), 0);
        assert_eq!(backwards.days().count(), 0);
    }
}
