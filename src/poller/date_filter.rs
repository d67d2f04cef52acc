//! What the poller has learnt of env0's date filter: whether dated listings leave out runs that
//! have not started (see [`super::unstarted`] for why and what it costs), how many probes were
//! made, and which environments are owed one undated read of their queued runs. Pure
//! bookkeeping: the probe and the reads it asks for are the poller's.

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;

use crate::client::DeploymentLog;
use crate::probe::DateFilterField;

/// The statuses of runs that have not started, and of runs that ended without starting (from
/// the queue): neither carries a `startedAt`.
const NOT_STARTED: [&str; 4] = ["QUEUED", "SKIPPED", "CANCELLED", "NEVER_DEPLOYED"];

/// Probes of env0's deployment listing before giving up on learning from one (the evidence of
/// the data still counts).
pub(super) const MAX_PROBES: u32 = 3;

/// What the poller has learnt of env0's date filter.
#[derive(Debug, Default)]
pub(super) struct DateFilterLearning {
    /// Whether dated listings were seen to leave out runs that have not started.
    hidden: bool,
    /// Environments read before that was learnt: each gets one undated read of its queued runs.
    pending: HashSet<Arc<str>>,
    /// Probes made (those the request budget cut short aside).
    probes: u32,
}

impl DateFilterLearning {
    /// Whether to probe env0's listing, the field being `known` so far: not once it is known,
    /// nor after [`MAX_PROBES`] probes.
    #[must_use]
    pub(super) fn wants_probe(&self, known: DateFilterField) -> bool {
        known == DateFilterField::Unknown && self.probes < MAX_PROBES
    }

    /// A probe was made (whatever it learnt).
    pub(super) fn probed(&mut self) {
        self.probes += 1;
    }

    /// Whether a dated listing (`from` its `fromDate`) shows the date filter is on a timestamp
    /// later than `queuedAt`: it returned a run created and queued before its `fromDate`.
    #[must_use]
    pub(super) fn filters_after_queueing(from: Timestamp, logs: &[DeploymentLog]) -> bool {
        logs.iter().any(|l| {
            l.created_at.is_some_and(|c| c < from) && l.queued_at.is_some_and(|q| q < from)
        })
    }

    /// Whether dated listings are known to hide runs that have not started.
    #[must_use]
    pub(super) fn is_hidden(&self) -> bool {
        self.hidden
    }

    /// From now on, runs that have not started are read without dates; the environments
    /// already `read` are owed that read once.
    pub(super) fn hide(&mut self, read: HashSet<Arc<str>>) {
        self.hidden = true;
        self.pending = read;
    }

    /// The statuses of the undated listing of queued runs, within the status `filter` (empty:
    /// all); `None` when it is not needed (dated listings show queued runs, or the filter leaves
    /// them out).
    #[must_use]
    pub(super) fn statuses(&self, filter: &[String]) -> Option<Vec<String>> {
        if !self.hidden {
            return None;
        }
        let statuses: Vec<String> = NOT_STARTED
            .iter()
            .filter(|s| filter.is_empty() || filter.iter().any(|f| f == *s))
            .map(|s| (*s).to_owned())
            .collect();
        (!statuses.is_empty()).then_some(statuses)
    }

    /// The environments owed an undated read, in order.
    #[must_use]
    pub(super) fn owed(&self) -> Vec<Arc<str>> {
        let mut owed: Vec<Arc<str>> = self.pending.iter().cloned().collect();
        owed.sort();
        owed
    }

    /// `environment` had its undated read (or is gone): nothing more is owed to it.
    pub(super) fn settle(&mut self, environment: &str) {
        self.pending.remove(environment);
    }

    /// `environment`'s owed read did not happen (the budget): it is still owed.
    pub(super) fn owe(&mut self, environment: Arc<str>) {
        self.pending.insert(environment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(created: &str, queued: &str) -> DeploymentLog {
        serde_json::from_value(serde_json::json!({
            "id": "d1",
            "createdAt": created,
            "queuedAt": queued,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_run_queued_before_a_listings_from_date_shows_a_later_filter() {
        let from = ts("2026-07-01T12:00:00Z");
        let before = log("2026-07-01T11:00:00Z", "2026-07-01T11:00:01Z");
        let queued_after = log("2026-07-01T11:00:00Z", "2026-07-01T12:00:01Z");
        assert!(DateFilterLearning::filters_after_queueing(
            from,
            &[queued_after.clone(), before]
        ));
        assert!(!DateFilterLearning::filters_after_queueing(
            from,
            &[queued_after]
        ));
    }

    #[test]
    fn queued_runs_are_read_undated_only_once_hidden_and_within_the_status_filter() {
        let mut learnt = DateFilterLearning::default();
        assert_eq!(learnt.statuses(&[]), None);
        learnt.hide(HashSet::new());
        assert_eq!(
            learnt.statuses(&[]),
            Some(NOT_STARTED.map(str::to_owned).to_vec())
        );
        let filter = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            learnt.statuses(&filter(&["SUCCESS", "QUEUED"])),
            Some(filter(&["QUEUED"]))
        );
        assert_eq!(learnt.statuses(&filter(&["SUCCESS"])), None);
    }

    #[test]
    fn environments_read_before_it_was_learnt_are_owed_one_undated_read() {
        let mut learnt = DateFilterLearning::default();
        learnt.hide(HashSet::from([Arc::from("b"), Arc::from("a")]));
        assert!(learnt.is_hidden());
        assert_eq!(learnt.owed(), [Arc::from("a"), Arc::from("b")]);
        learnt.settle("a");
        learnt.settle("b");
        learnt.owe(Arc::from("b"));
        assert_eq!(learnt.owed(), [Arc::from("b")]);
    }

    #[test]
    fn probing_stops_once_the_field_is_known_or_after_the_last_probe() {
        let mut learnt = DateFilterLearning::default();
        assert!(!learnt.wants_probe(DateFilterField::StartedAt));
        for _ in 0..MAX_PROBES {
            assert!(learnt.wants_probe(DateFilterField::Unknown));
            learnt.probed();
        }
        assert!(!learnt.wants_probe(DateFilterField::Unknown));
    }
}
