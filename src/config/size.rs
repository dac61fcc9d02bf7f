//! How large a universe is, and how large a one this process agrees to hold.
//!
//! Owns the one count of a universe (exchanges x symbols x days, in `u128`
//! with checked multiplication, so no list or window can make it wrap) and
//! the ceiling on `universe.max_tasks` ([`MAX_TASKS`]), derived from what a
//! task costs this process in memory. Config validation, the Producer (once
//! "all" is discovered) and the daemon's reload all judge a universe here,
//! before anything the universe's size is allocated. Pure arithmetic: no I/O,
//! no allocation proportional to the universe.

use std::fmt;

/// Bytes one task costs this process at the peak of a round that fetches
/// it, rounded up. Measured with a counting allocator over a round's data
/// for a million keys (10 exchanges x 100 symbols x 1,000 days): 164 bytes
/// a task at the peak (its key in the round's list of unsettled keys, 42;
/// the task planned from it; its cell in the map), 66 bytes a cell held
/// after the round. 256 leaves room for the dispatcher's and the record's
/// books and for allocator overhead.
pub const BYTES_PER_TASK: u64 = 256;

/// The memory the tasks of one universe may take: 16 GiB.
pub const TASK_MEMORY: u64 = 16 << 30;

/// The most `universe.max_tasks` may be: as many tasks as [`TASK_MEMORY`]
/// holds at [`BYTES_PER_TASK`] each (67,108,864). A larger setting is a
/// config error, so that no setting can make the process try to allocate a
/// universe it cannot hold.
pub const MAX_TASKS: u64 = TASK_MEMORY / BYTES_PER_TASK;

/// The three counts whose product is a universe's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UniverseSize {
    pub exchanges: usize,
    pub symbols: usize,
    pub days: usize,
    /// The (exchange, symbol) pairs when each exchange has symbols of its
    /// own (`symbols = "all"` read from listings); `None`: every exchange
    /// has every symbol.
    pub markets: Option<usize>,
}

impl UniverseSize {
    pub fn new(exchanges: usize, symbols: usize, days: usize) -> Self {
        Self {
            exchanges,
            symbols,
            days,
            markets: None,
        }
    }

    /// The same universe, its exchanges having `markets` (exchange, symbol)
    /// pairs in all rather than every one of its symbols.
    pub fn with_markets(self, markets: usize) -> Self {
        Self {
            markets: Some(markets),
            ..self
        }
    }

    /// exchanges x symbols x days (or markets x days); `None` if that is
    /// more than `u128` holds.
    pub fn tasks(&self) -> Option<u128> {
        let wide = |n: usize| u128::try_from(n).unwrap_or(u128::MAX);
        match self.markets {
            Some(markets) => wide(markets).checked_mul(wide(self.days)),
            None => wide(self.exchanges)
                .checked_mul(wide(self.symbols))?
                .checked_mul(wide(self.days)),
        }
    }

    /// The number of tasks if it is at most `max_tasks` (and at most
    /// [`MAX_TASKS`], whatever `max_tasks` says), else why not.
    pub fn within(self, max_tasks: u64) -> Result<u64, TooLarge> {
        let limit = max_tasks.min(MAX_TASKS);
        match self.tasks() {
            Some(tasks) if tasks <= u128::from(limit) => {
                Ok(u64::try_from(tasks).unwrap_or(u64::MAX))
            }
            tasks => Err(TooLarge {
                size: self,
                tasks,
                max_tasks,
            }),
        }
    }
}

impl fmt::Display for UniverseSize {
    /// `11 exchanges x 3 symbols x 2922 days`, or with symbols of each
    /// exchange's own `612 markets (2 exchanges, 500 symbols) x 731 days`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(markets) = self.markets {
            return write!(
                f,
                "{} ({}, {}) x {}",
                counted(markets, "market"),
                counted(self.exchanges, "exchange"),
                counted(self.symbols, "symbol"),
                counted(self.days, "day")
            );
        }
        write!(
            f,
            "{} x {} x {}",
            counted(self.exchanges, "exchange"),
            counted(self.symbols, "symbol"),
            counted(self.days, "day")
        )
    }
}

fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A universe larger than its limit, with the sizes that make it so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TooLarge {
    pub size: UniverseSize,
    /// The product; `None`: more than `u128` holds.
    pub tasks: Option<u128>,
    /// `universe.max_tasks` as set (it may be above [`MAX_TASKS`]).
    pub max_tasks: u64,
}

impl fmt::Display for TooLarge {
    /// `11 exchanges x 3 symbols x 2922 days = 96426 tasks, more than
    /// universe.max_tasks (5000)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tasks {
            Some(tasks) => write!(f, "{} = {tasks} tasks", self.size)?,
            None => write!(f, "{} = more than {} tasks", self.size, u128::MAX)?,
        }
        if self.max_tasks <= MAX_TASKS {
            write!(f, ", more than universe.max_tasks ({})", self.max_tasks)
        } else {
            write!(
                f,
                ", more than the {MAX_TASKS} this process can hold (universe.max_tasks = {} is above that ceiling)",
                self.max_tasks
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_is_the_task_memory_over_the_cost_of_a_task() {
        assert_eq!(MAX_TASKS, 67_108_864);
        let default = crate::config::UniverseConfig::default().max_tasks;
        assert!(default < MAX_TASKS, "the default max_tasks is under it");
    }

    #[test]
    fn a_size_is_the_product_of_its_counts() {
        assert_eq!(UniverseSize::new(11, 3, 2922).tasks(), Some(96_426));
        assert_eq!(UniverseSize::new(0, 3, 2922).tasks(), Some(0));
        assert_eq!(UniverseSize::new(11, 3, 2922).within(96_426), Ok(96_426));
    }

    #[test]
    fn a_product_past_u64_is_counted_and_past_u128_is_none_never_wrapped() {
        let big = UniverseSize::new(usize::MAX, usize::MAX, 1);
        let expected = u128::from(u64::MAX) * u128::from(u64::MAX);
        assert_eq!(big.tasks(), Some(expected));
        assert_eq!(UniverseSize::new(usize::MAX, usize::MAX, 2).tasks(), None);
        let err = UniverseSize::new(usize::MAX, usize::MAX, usize::MAX)
            .within(u64::MAX)
            .unwrap_err();
        assert_eq!(err.tasks, None);
        assert!(
            err.to_string()
                .contains(&format!("= more than {} tasks", u128::MAX)),
            "{err}"
        );
    }

    #[test]
    fn symbols_of_each_exchanges_own_count_its_markets() {
        let size = UniverseSize::new(2, 500, 731).with_markets(612);
        assert_eq!(size.tasks(), Some(612 * 731));
        assert_eq!(
            size.within(10_000).unwrap_err().to_string(),
            "612 markets (2 exchanges, 500 symbols) x 731 days = 447372 tasks, more than universe.max_tasks (10000)"
        );
    }

    #[test]
    fn the_ceiling_caps_any_max_tasks() {
        // The universe of issue #17: 100 x 9999 x 18 years.
        let absurd = UniverseSize::new(100, 9_999, 6_546);
        let err = absurd.within(9_000_000_000_000_000_000).unwrap_err();
        assert_eq!(err.tasks, Some(6_545_345_400));
        assert_eq!(
            err.to_string(),
            "100 exchanges x 9999 symbols x 6546 days = 6545345400 tasks, more than the \
             67108864 this process can hold (universe.max_tasks = 9000000000000000000 \
             is above that ceiling)"
        );
        let at_ceiling = UniverseSize::new(1, 1, usize::try_from(MAX_TASKS).unwrap());
        assert_eq!(at_ceiling.within(u64::MAX), Ok(MAX_TASKS));
        let past = UniverseSize::new(1, 1, usize::try_from(MAX_TASKS + 1).unwrap());
        assert!(past.within(u64::MAX).is_err());
        assert!(past.within(MAX_TASKS + 1).is_err(), "the ceiling wins");
    }

    #[test]
    fn within_the_setting_names_the_setting() {
        let err = UniverseSize::new(1, 1, 2).within(1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 exchange x 1 symbol x 2 days = 2 tasks, more than universe.max_tasks (1)"
        );
    }
}
