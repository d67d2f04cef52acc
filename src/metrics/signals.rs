//! The families of the infrastructure-as-code signals: resource changes of plans, approval
//! waits, drift detection results and environment recovery times. Their label sets are
//! [`Shape`]s of the deployment labels (plus `action` or `result`), so a label added to
//! [`DeploymentLabels`] reaches them too.

use std::sync::Arc;

use super::labels::label_value_as_str;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::Buckets;
use super::labels::{DeploymentLabelSet, Shape};
use super::series::SeriesCounts;
use crate::state::{
    Action, DEPLOY, DRIFT_DETECTION, DeploymentLabels, DriftResult, Event, FAILED_STATUSES,
    FINISHED_STATUSES, WAITING_FOR_USER,
};

/// Buckets of `env0_deployment_approval_wait_seconds`: 1 min (about one poll) to 3 days.
pub const APPROVAL_BUCKETS: [f64; 10] = [
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 259_200.0,
];
/// Buckets of `env0_environment_recovery_duration_seconds`: 1 min to 1 week.
pub const RECOVERY_BUCKETS: [f64; 11] = [
    60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172_800.0, 604_800.0,
];

/// `env0_deployment_resource_changes_total`: the deployment labels and the action.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct ActionLabels {
    action: Action,
}

/// `env0_drift_detections_total`: the deployment labels and the result.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
struct ResultLabels {
    result: DriftResult,
}

label_value_as_str!(Action, DriftResult);

/// The signal families.
#[derive(Debug)]
pub(crate) struct SignalMetrics {
    series: Arc<SeriesCounts>,
    resource_changes: Family<(DeploymentLabelSet, ActionLabels), Counter>,
    approval_wait: Family<DeploymentLabelSet, Histogram, Buckets>,
    drift: Family<(DeploymentLabelSet, ResultLabels), Counter>,
    recovery: Family<DeploymentLabelSet, Histogram, Buckets>,
}

impl SignalMetrics {
    /// Creates and registers the families.
    pub(crate) fn register(registry: &mut Registry, series: Arc<SeriesCounts>) -> Self {
        let this = Self {
            series,
            resource_changes: Family::default(),
            approval_wait: Family::new_with_constructor(Buckets(Arc::from(APPROVAL_BUCKETS))),
            drift: Family::default(),
            recovery: Family::new_with_constructor(Buckets(Arc::from(RECOVERY_BUCKETS))),
        };
        registry.register(
            "env0_deployment_resource_changes",
            "Resources the plans of env0 deployments counted in env0_deployments_finished_total add, change, destroy or import (env0's planSummary)",
            this.resource_changes.clone(),
        );
        registry.register_with_unit(
            "env0_deployment_approval_wait",
            "Time env0 deployments spent WAITING_FOR_USER: from the exporter's first sighting of that status to its first sighting of another, so precise to one poll interval",
            Unit::Seconds,
            this.approval_wait.clone(),
        );
        registry.register(
            "env0_drift_detections",
            "env0 drift detections counted in env0_deployments_finished_total, by result: drifted, clean, or failed (did not succeed)",
            this.drift.clone(),
        );
        registry.register_with_unit(
            "env0_environment_recovery_duration",
            "Time from the first failed deploy of an env0 environment to its next successful deploy (env0's finish times), observed when that deploy is counted in env0_deployments_finished_total",
            Unit::Seconds,
            this.recovery.clone(),
        );
        this
    }

    /// `labels`, noted as a series of `family` for `env0_exporter_series`.
    fn noted<'l, L: std::hash::Hash>(&self, family: &'static str, labels: &'l L) -> &'l L {
        self.series.note(family, labels);
        labels
    }

    /// Records a signal event; other events are not for these families.
    pub(crate) fn record(&self, event: &Event) {
        match event {
            Event::ResourceChanges { labels, changes } => {
                let set = DeploymentLabelSet::new(labels, Shape::RESOURCES);
                for (action, n) in changes.by_action() {
                    self.resource_changes
                        .get_or_create(self.noted(
                            "env0_deployment_resource_changes_total",
                            &(set.clone(), ActionLabels { action }),
                        ))
                        .inc_by(n);
                }
            }
            Event::ApprovalWait { labels, wait } => {
                self.approval_wait
                    .get_or_create(self.noted(
                        "env0_deployment_approval_wait_seconds",
                        &DeploymentLabelSet::new(labels, Shape::APPROVAL),
                    ))
                    .observe(wait.as_secs_f64());
            }
            Event::DriftDetection { labels, result } => {
                let set = DeploymentLabelSet::new(labels, Shape::TOOL);
                self.drift
                    .get_or_create(self.noted(
                        "env0_drift_detections_total",
                        &(set, ResultLabels { result: *result }),
                    ))
                    .inc();
            }
            Event::Recovered { labels, duration } => {
                self.recovery
                    .get_or_create(self.noted(
                        "env0_environment_recovery_duration_seconds",
                        &DeploymentLabelSet::new(labels, Shape::TOOL),
                    ))
                    .observe(duration.as_secs_f64());
            }
            Event::Finished { .. } | Event::Started { .. } => {}
        }
    }

    /// Creates at 0 the series users alert on that a deployment with these labels may feed, so
    /// `increase()` sees their first event: every action of finished applies (`deploy`; the
    /// plan-only types are left to appear with their first summary, which keeps the zeros to
    /// one type), every result of finished drift detections, the approval histogram of what was
    /// seen waiting, the recovery histogram of tools with a failed deploy.
    pub(crate) fn ensure_series(&self, labels: &DeploymentLabels) {
        let kind = &*labels.deployment_type;
        let status = &*labels.status;
        let finished = FINISHED_STATUSES.contains(&status);
        if finished && kind == DEPLOY {
            let set = DeploymentLabelSet::new(labels, Shape::RESOURCES);
            for action in Action::ALL {
                let _ = self.resource_changes.get_or_create(self.noted(
                    "env0_deployment_resource_changes_total",
                    &(set.clone(), ActionLabels { action }),
                ));
            }
        }
        if finished && kind == DRIFT_DETECTION {
            let set = DeploymentLabelSet::new(labels, Shape::TOOL);
            for result in DriftResult::ALL {
                let _ = self.drift.get_or_create(self.noted(
                    "env0_drift_detections_total",
                    &(set.clone(), ResultLabels { result }),
                ));
            }
        }
        if status == WAITING_FOR_USER {
            let _ = self.approval_wait.get_or_create(self.noted(
                "env0_deployment_approval_wait_seconds",
                &DeploymentLabelSet::new(labels, Shape::APPROVAL),
            ));
        }
        if kind == DEPLOY && FAILED_STATUSES.contains(&status) {
            let _ = self.recovery.get_or_create(self.noted(
                "env0_environment_recovery_duration_seconds",
                &DeploymentLabelSet::new(labels, Shape::TOOL),
            ));
        }
    }
}
