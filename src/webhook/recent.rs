//! The event ids seen lately, to answer a repeated delivery once: bounded in number and in age.
//!
//! A hash set for the lookup and a queue in arrival order for the forgetting: ids older than the
//! time to live go first, and past the capacity the oldest id makes room for the new one. Both
//! bounds hold whatever senders do; an id forgotten early only costs a delivery handled twice,
//! which the state's exactly-once counting absorbs.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::clock;

/// Event ids kept at most.
pub(crate) const CAPACITY: usize = 100_000;
/// How long an event id is kept: twice [`MAX_EVENT_SKEW`](super::MAX_EVENT_SKEW), so a replay
/// that comes after its id is forgotten is refused as stale instead (with room for env0's clock
/// as the exporter knows it to move meanwhile).
pub(crate) const TIME_TO_LIVE: Duration = Duration::from_secs(2 * 3600);

/// Recently seen event ids.
#[derive(Debug)]
pub(crate) struct RecentIds {
    capacity: usize,
    ttl: Duration,
    ids: HashSet<Arc<str>>,
    order: VecDeque<(Timestamp, Arc<str>)>,
}

impl Default for RecentIds {
    fn default() -> Self {
        Self::new(CAPACITY, TIME_TO_LIVE)
    }
}

impl RecentIds {
    /// An empty set keeping at most `capacity` ids, each for `ttl`.
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            ttl,
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Records `id` seen at `now`; false when it was already seen within the time to live.
    pub(crate) fn insert(&mut self, id: &str, now: Timestamp) -> bool {
        let cutoff = clock::sub(now, self.ttl);
        while let Some((at, old)) = self.order.front() {
            if *at >= cutoff {
                break;
            }
            self.ids.remove(old);
            self.order.pop_front();
        }
        if self.ids.contains(id) {
            return false;
        }
        while self.order.len() >= self.capacity {
            if let Some((_, old)) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        let id: Arc<str> = Arc::from(id);
        self.ids.insert(id.clone());
        self.order.push_back((now, id));
        true
    }

    /// How many ids are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Timestamp {
        clock::add(
            Timestamp::UNIX_EPOCH,
            Duration::from_secs(1_800_000_000 + secs),
        )
    }

    #[test]
    fn an_id_is_new_once_then_a_duplicate_until_it_expires() {
        let mut ids = RecentIds::new(10, Duration::from_secs(3600));
        assert!(ids.insert("a", at(0)));
        assert!(!ids.insert("a", at(1)));
        assert!(!ids.insert("a", at(3600)), "kept for the whole hour");
        assert!(ids.insert("a", at(3601)), "forgotten after an hour");
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn the_oldest_id_makes_room_past_the_capacity() {
        let mut ids = RecentIds::new(3, Duration::from_secs(3600));
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            assert!(ids.insert(id, at(i as u64)));
        }
        assert_eq!(ids.len(), 3);
        assert!(!ids.insert("d", at(5)));
        assert!(!ids.insert("b", at(5)));
        assert!(ids.insert("a", at(5)), "a was pushed out by d");
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_new_ids() {
        let mut ids = RecentIds::new(1000, Duration::from_secs(3600));
        for i in 0..10_000u64 {
            ids.insert(&i.to_string(), at(i / 100));
        }
        assert_eq!(ids.len(), 1000);
        assert_eq!(ids.ids.len(), 1000);
        // Expiry alone empties it once everything is older than the time to live.
        assert!(ids.insert("late", at(10_000)));
        assert_eq!(ids.len(), 1);
    }
}
