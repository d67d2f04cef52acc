//! What the exporter knows and where it shows it: the [`Store`] of deployments, the exporter's
//! [`Health`], and the two places both are published, the [`Snapshot`](crate::state::Snapshot)
//! handle and the [`Metrics`] (events that happen once: a deployment finishing, a poll error).
//!
//! Everything that reaches the store goes through [`Known::ingest`] (the deployment filter, then
//! exactly-once counting), and everything shown goes through [`Known::publish`] or
//! [`Known::publish_health`]. No client: polls and webhooks hand it what they observed.

use std::sync::Arc;

use jiff::Timestamp;
use tracing::debug;

use super::PollReport;
use crate::filter::{DeploymentFilter, Run};
use crate::metrics::Metrics;
use crate::state::{self, Event, Health, Observation, SnapshotHandle, Store};

/// The state and its publication.
pub(super) struct Known {
    /// The deployments and environments known.
    pub(super) store: Store,
    /// `env0_up` and the rest of the exporter's health, as the next publish shows it.
    pub(super) health: Health,
    /// What the last successful poll did.
    pub(super) last_report: Option<PollReport>,
    /// Where snapshots are published.
    pub(super) snapshot: SnapshotHandle,
    /// Where events are counted.
    pub(super) metrics: Arc<Metrics>,
    /// Events of one ingest, drained into the metrics (kept to reuse its allocation).
    events: Vec<Event>,
}

impl Known {
    /// Nothing known yet.
    pub(super) fn new(store: Store, snapshot: SnapshotHandle, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            health: Health::default(),
            last_report: None,
            snapshot,
            metrics,
            events: Vec::new(),
        }
    }

    /// Nothing known, with metrics of their own (tests).
    #[cfg(test)]
    pub(super) fn for_tests() -> Self {
        let now = super::test_support::ts("2026-07-01T12:00:00Z");
        let clock: crate::clock::SharedClock = Arc::new(crate::clock::ManualClock::new(now));
        let snapshot = SnapshotHandle::default();
        let budget = Arc::new(crate::ratelimit::SlidingWindow::new(
            100,
            crate::client::RATE_WINDOW,
        ));
        let metrics = Arc::new(Metrics::new(
            &crate::metrics::MetricsConfig::default(),
            snapshot.clone(),
            budget,
            clock,
        ));
        Self::new(
            Store::new(now, std::time::Duration::from_secs(86_400)),
            snapshot,
            metrics,
        )
    }

    /// Takes in one observation at env0's `now`: kept when `filter` matches it, else forgotten
    /// (filtered out, or no longer matching: a status filter and a run that moved on).
    pub(super) fn ingest(&mut self, obs: &Observation, now: Timestamp, filter: &DeploymentFilter) {
        let run = Run {
            deployment_type: obs.deployment_type.as_deref(),
            status: obs.status.as_deref(),
            started_by: obs.started_by.as_deref(),
        };
        if !filter.matches(run) {
            self.store.remove(&obs.id);
            return;
        }
        self.store.ingest(obs, now, &mut self.events);
        for event in self.events.drain(..) {
            self.metrics.record(&event);
        }
    }

    /// Publishes a fresh snapshot of the store at env0's `now` (what fell out of the window
    /// evicted first) with the health and `unreadable` environments.
    pub(super) fn publish(&mut self, now: Timestamp, unreadable: usize) {
        self.store.evict(now);
        let admitted = self.store.admit_projects();
        if admitted > 0 {
            debug!(
                projects = admitted,
                "projects given a project label value of their own"
            );
        }
        for labels in self.store.seen_label_sets() {
            self.metrics.ensure_series(labels);
        }
        let mut snap = state::aggregate(&self.store, now);
        snap.health = self.health.clone();
        snap.unreadable_environments = unreadable;
        self.snapshot.publish(snap);
    }

    /// Publishes the health alone: the last good values stay (a failed poll).
    pub(super) fn publish_health(&self) {
        let mut snap = (*self.snapshot.load()).clone();
        snap.health = self.health.clone();
        self.snapshot.publish(snap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poller::test_support::ts;

    fn known() -> Known {
        Known::for_tests()
    }

    fn finished(deployment_type: &str) -> Observation {
        let at = "2026-07-01T12:00:30Z".parse().ok();
        Observation {
            id: "d1".into(),
            environment_id: "e1".into(),
            deployment_type: Some(deployment_type.into()),
            status: Some("SUCCESS".into()),
            created_at: at,
            started_at: at,
            finished_at: at,
            ..Observation::default()
        }
    }

    #[test]
    fn a_run_is_kept_while_the_filter_matches_it_and_forgotten_once_it_does_not() {
        let mut known = known();
        let now = ts("2026-07-01T12:01:00Z");
        let deploys = DeploymentFilter {
            deployment_types: vec!["deploy".into()],
            ..DeploymentFilter::default()
        };
        known.ingest(&finished("destroy"), now, &deploys);
        assert_eq!(known.store.tracked(), 0, "filtered out");
        known.ingest(&finished("deploy"), now, &deploys);
        assert_eq!(known.store.tracked(), 1);
        // The same run seen again as another type (a filter on a field that moved): forgotten.
        known.ingest(&finished("destroy"), now, &deploys);
        assert_eq!(known.store.tracked(), 0);
    }

    #[test]
    fn a_failed_poll_publishes_the_health_and_keeps_the_last_good_values() {
        let mut known = known();
        let now = ts("2026-07-01T12:01:00Z");
        known.ingest(&finished("deploy"), now, &DeploymentFilter::default());
        known.health.up = true;
        known.publish(now, 2);
        known.health.up = false;
        known.publish_health();
        let snap = known.snapshot.load();
        assert!(!snap.health.up);
        assert_eq!(snap.tracked_deployments, 1);
        assert_eq!(snap.unreadable_environments, 2);
    }
}
