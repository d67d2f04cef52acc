//! The pure step from records to the numbers the gauges show: `(store, now) → Snapshot`.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::{Snapshot, Store, UNFINISHED_STATUSES};

/// Summarises the store at `now` (health is left at its default for the caller to fill).
#[must_use]
pub fn aggregate(store: &Store, now: Timestamp) -> Snapshot {
    let cutoff = store.cutoff(now);
    let mut deployments: BTreeMap<_, u64> = store
        .seen_label_sets()
        .map(|labels| (labels.clone(), 0))
        .collect();
    let mut oldest: BTreeMap<Arc<str>, Timestamp> = BTreeMap::new();
    let mut last_finished: BTreeMap<(Arc<str>, Arc<str>), Timestamp> = BTreeMap::new();

    for (_, record) in store.deployments() {
        if record.is_current(cutoff) {
            *deployments.entry(record.labels.clone()).or_default() += 1;
        }
        if !record.is_finished() && UNFINISHED_STATUSES.contains(&&*record.labels.status) {
            let since = record.queued_at.unwrap_or(record.created_at);
            oldest
                .entry(record.labels.status.clone())
                .and_modify(|t| *t = (*t).min(since))
                .or_insert(since);
        }
        if let Some(finish) = record.finish_time {
            let key = (
                record.labels.deployment_type.clone(),
                record.labels.status.clone(),
            );
            last_finished
                .entry(key)
                .and_modify(|t| *t = (*t).max(finish))
                .or_insert(finish);
        }
    }

    let mut environments: BTreeMap<(Arc<str>, Arc<str>), u64> = BTreeMap::new();
    for (_, env) in store.environments() {
        if !env.archived {
            *environments
                .entry((env.status.clone(), env.drift_status.clone()))
                .or_default() += 1;
        }
    }

    Snapshot {
        deployments: deployments.into_iter().collect(),
        oldest_unfinished: oldest.into_iter().collect(),
        last_finished: last_finished.into_iter().collect(),
        environments: environments.into_iter().collect(),
        environment_rows: store.environment_rows(),
        tracked_deployments: store.tracked(),
        health: super::Health::default(),
        // Set by the poller from its listing.
        watched_environments: Arc::default(),
        unreadable_environments: 0,
    }
}
