//! Per-exchange queues served round-robin: the Supervisor's dispatch
//! order, so that one slow or rate-limited exchange cannot hold back the
//! others, and the place where per-exchange limits are checked.
//!
//! Pure data: no timers, no actors. The caller says, per lane, whether it
//! may dispatch now (limits); `Lanes` only keeps order and counts.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::time::Instant;

use crate::model::Exchange;

/// One exchange's queued items and how many of its items are in flight.
#[derive(Debug)]
pub struct Lane<T> {
    queue: VecDeque<T>,
    pub in_flight: usize,
    /// Rate-limited until then (set by the caller when a check fails).
    pub blocked_until: Option<Instant>,
    /// The exchange asked us to slow down: nothing goes before then.
    pub paused_until: Option<Instant>,
}

impl<T> Default for Lane<T> {
    fn default() -> Self {
        Self {
            queue: VecDeque::new(),
            in_flight: 0,
            blocked_until: None,
            paused_until: None,
        }
    }
}

#[derive(Debug)]
pub struct Lanes<T> {
    lanes: BTreeMap<Exchange, Lane<T>>,
    /// The exchange served last; the next pick starts after it.
    cursor: Option<Exchange>,
    queued: usize,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Self {
            lanes: BTreeMap::new(),
            cursor: None,
            queued: 0,
        }
    }
}

impl<T> Lanes<T> {
    /// Items queued in all lanes.
    pub fn queued(&self) -> usize {
        self.queued
    }

    pub fn push_back(&mut self, exchange: &Exchange, item: T) {
        self.lane_mut(exchange).queue.push_back(item);
        self.queued += 1;
    }

    /// Puts an item at the head of its lane (a retry goes first).
    pub fn push_front(&mut self, exchange: &Exchange, item: T) {
        self.lane_mut(exchange).queue.push_front(item);
        self.queued += 1;
    }

    pub fn lane_mut(&mut self, exchange: &Exchange) -> &mut Lane<T> {
        if !self.lanes.contains_key(exchange) {
            self.lanes.insert(exchange.clone(), Lane::default());
        }
        self.lanes.get_mut(exchange).expect("inserted above")
    }

    /// Takes out of `exchange`'s lane the items `pick` chooses, in order.
    pub fn take_where(&mut self, exchange: &Exchange, pick: impl Fn(&T) -> bool) -> Vec<T> {
        let Some(lane) = self.lanes.get_mut(exchange) else {
            return Vec::new();
        };
        let (taken, kept) = std::mem::take(&mut lane.queue)
            .into_iter()
            .partition::<Vec<T>, _>(|item| pick(item));
        lane.queue = kept.into();
        self.queued -= taken.len();
        taken
    }

    /// Empties every queue; returns how many items it dropped.
    pub fn clear(&mut self) -> usize {
        for lane in self.lanes.values_mut() {
            lane.queue.clear();
        }
        std::mem::replace(&mut self.queued, 0)
    }

    /// Takes the head of the next lane, round-robin after the last one
    /// served, for which `may` says yes. `may` is asked only about lanes
    /// with queued items, in order, and not again after a yes.
    pub fn pop_next(
        &mut self,
        mut may: impl FnMut(&Exchange, &mut Lane<T>) -> bool,
    ) -> Option<(Exchange, T)> {
        // Walked in place, not listed first: this runs once a dispatch.
        let mut take = |(exchange, lane): (&Exchange, &mut Lane<T>)| {
            if lane.queue.is_empty() || !may(exchange, lane) {
                return None;
            }
            let item = lane.queue.pop_front()?;
            lane.in_flight += 1;
            Some((exchange.clone(), item))
        };
        let taken = match self.cursor.take() {
            Some(c) => {
                let after = (Bound::Excluded(&c), Bound::Unbounded);
                let found = self
                    .lanes
                    .range_mut::<Exchange, _>(after)
                    .find_map(&mut take)
                    .or_else(|| self.lanes.range_mut(..=&c).find_map(&mut take));
                self.cursor = Some(c);
                found
            }
            None => self.lanes.iter_mut().find_map(&mut take),
        };
        if let Some((exchange, _)) = &taken {
            self.queued -= 1;
            self.cursor = Some(exchange.clone());
        }
        taken
    }

    /// One of `exchange`'s items is no longer in flight.
    pub fn done(&mut self, exchange: &Exchange) {
        if let Some(lane) = self.lanes.get_mut(exchange) {
            lane.in_flight = lane.in_flight.saturating_sub(1);
        }
    }

    /// Queued items in lanes that `ready` says could dispatch now.
    pub fn ready(&self, ready: impl Fn(&Exchange, &Lane<T>) -> bool) -> usize {
        self.lanes
            .iter()
            .filter(|(e, l)| ready(e, l))
            .map(|(_, l)| l.queue.len())
            .sum()
    }

    pub fn lane(&self, exchange: &Exchange) -> Option<&Lane<T>> {
        self.lanes.get(exchange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(n: &str) -> Exchange {
        Exchange::new(n).unwrap()
    }

    #[test]
    fn lanes_are_served_round_robin() {
        let mut l = Lanes::default();
        for i in 0..3 {
            l.push_back(&ex("a"), format!("a{i}"));
            l.push_back(&ex("b"), format!("b{i}"));
        }
        l.push_back(&ex("c"), "c0".to_owned());
        let order: Vec<String> =
            std::iter::from_fn(|| l.pop_next(|_, _| true).map(|(_, x)| x)).collect();
        assert_eq!(order, ["a0", "b0", "c0", "a1", "b1", "a2", "b2"]);
        assert_eq!(l.queued(), 0);
    }

    #[test]
    fn a_blocked_lane_does_not_hold_the_others() {
        let mut l = Lanes::default();
        for i in 0..3 {
            l.push_back(&ex("slow"), i);
            l.push_back(&ex("fast"), 10 + i);
        }
        let order: Vec<i32> =
            std::iter::from_fn(|| l.pop_next(|e, _| e.as_str() != "slow").map(|(_, x)| x))
                .collect();
        assert_eq!(order, [10, 11, 12]);
        assert_eq!(l.queued(), 3);
        assert_eq!(
            l.ready(|_, lane| lane.in_flight < 3),
            3,
            "slow's 3 are queued and slow has nothing in flight"
        );
    }

    #[test]
    fn in_flight_counts_follow_pops_and_dones() {
        let mut l = Lanes::default();
        l.push_back(&ex("a"), 1);
        l.push_back(&ex("a"), 2);
        let max_one = |_: &Exchange, lane: &mut Lane<i32>| lane.in_flight < 1;
        assert_eq!(l.pop_next(max_one).map(|(_, x)| x), Some(1));
        assert_eq!(l.pop_next(max_one), None, "a is at its limit");
        l.done(&ex("a"));
        assert_eq!(l.pop_next(max_one).map(|(_, x)| x), Some(2));
        l.push_front(&ex("a"), 0);
        assert_eq!(l.clear(), 1);
        assert_eq!(l.queued(), 0);
    }
}
