//! The pure step from records to the numbers the gauges show: `(store, now) → Snapshot`.
//!
//! One pass over the compact records with integer work only: counts, oldest unfinished and
//! newest finish are gathered per label-set index in flat vectors, then folded into the
//! snapshot's families per label set (a few hundred to a few thousand), not per record.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::compact::{self, LabelSetId, NO_TIME};
use super::{DeploymentLabels, Snapshot, Store, UNFINISHED_STATUSES};

/// Summarises the store at `now` (health is left at its default for the caller to fill).
#[must_use]
pub fn aggregate(store: &Store, now: Timestamp) -> Snapshot {
    let cutoff = compact::ceil_millis(store.cutoff(now));
    let sets = store.label_sets.len();
    let mut counts = vec![0_u64; sets];
    let mut oldest = vec![i64::MAX; sets];
    let mut newest_finish = vec![NO_TIME; sets];
    for record in store.deployments.values() {
        let i = record.labels as usize;
        if record.is_current(cutoff) {
            counts[i] += 1;
        }
        if record.is_finished() {
            newest_finish[i] = newest_finish[i].max(record.finish_time);
        } else {
            let since = if record.queued_at == NO_TIME {
                record.created_at
            } else {
                record.queued_at
            };
            oldest[i] = oldest[i].min(since);
        }
    }

    let mut deployments: Vec<(&DeploymentLabels, u64)> = Vec::new();
    let mut oldest_unfinished: BTreeMap<Arc<str>, i64> = BTreeMap::new();
    let mut last_finished: BTreeMap<(Arc<str>, Arc<str>), i64> = BTreeMap::new();
    for i in 0..sets {
        let id = LabelSetId::try_from(i).unwrap_or(LabelSetId::MAX);
        let labels = store.label_sets.get(id);
        if counts[i] > 0 || store.seen_label_sets.contains(id) {
            deployments.push((labels, counts[i]));
        }
        if oldest[i] != i64::MAX && UNFINISHED_STATUSES.contains(&&*labels.status) {
            oldest_unfinished
                .entry(labels.status.clone())
                .and_modify(|t| *t = (*t).min(oldest[i]))
                .or_insert(oldest[i]);
        }
        if newest_finish[i] != NO_TIME {
            last_finished
                .entry((labels.deployment_type.clone(), labels.status.clone()))
                .and_modify(|t| *t = (*t).max(newest_finish[i]))
                .or_insert(newest_finish[i]);
        }
    }
    deployments.sort_unstable_by(|a, b| a.0.cmp(b.0));

    let mut environments: BTreeMap<(Arc<str>, Arc<str>), u64> = BTreeMap::new();
    for (_, env) in store.environments() {
        if !env.archived {
            *environments
                .entry((env.status.clone(), env.drift_status.clone()))
                .or_default() += 1;
        }
    }

    Snapshot {
        deployments: deployments
            .into_iter()
            .map(|(labels, n)| (labels.clone(), n))
            .collect(),
        oldest_unfinished: oldest_unfinished
            .into_iter()
            .map(|(status, ms)| (status, compact::timestamp(ms)))
            .collect(),
        last_finished: last_finished
            .into_iter()
            .map(|(key, ms)| (key, compact::timestamp(ms)))
            .collect(),
        environments: environments.into_iter().collect(),
        environment_rows: store.environment_rows(),
        tracked_deployments: store.tracked(),
        health: super::Health::default(),
        unreadable_environments: 0,
    }
}
