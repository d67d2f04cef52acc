//! The event queue: the timed events that drive the world and their (time, sequence) order,
//! which makes the world the same however it is advanced.

use std::cmp::{Ordering, Reverse};

use jiff::Timestamp;

use super::World;
use super::vocabulary::{DeploymentType, Status};

/// What happens at a scheduled time.
#[derive(Debug, Clone, Copy)]
pub(super) enum Event {
    /// Create a run and schedule the next one.
    NewRun(usize),
    /// Before the history starts: the run that put the environment in its initial state.
    Seed(usize, DeploymentType, Status),
    /// The next status change of a run.
    Step(usize, u64),
}

/// An event at a time, ordered by (`at`, `seq`): `seq` counts schedulings, so events due at the
/// same time are handled in the order they were scheduled.
#[derive(Debug)]
pub(super) struct Scheduled {
    pub(super) at: Timestamp,
    pub(super) seq: u64,
    pub(super) event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl World {
    /// Queues `event` at `at`, after every event already queued for the same time.
    pub(super) fn schedule(&mut self, at: Timestamp, event: Event) {
        self.seq += 1;
        self.events.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }
}
