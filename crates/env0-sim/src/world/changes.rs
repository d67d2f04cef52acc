//! Lifecycle changes of runs, noted for the simulator's webhook deliveries when they are on: a
//! run created (queued), started, waiting for approval, resumed, aborting, finished.
//!
//! Noting draws no random number and changes nothing the world reads, so the world is the same
//! for one seed with webhooks on or off. The run is copied as it is at the change (a later
//! change in the same advance does not alter what an earlier delivery says).
//!
//! Event types follow env0's published literals (`com.env0.deploy.succeeded`,
//! `com.env0.drift.detected`, `com.env0.destroy.resumed`); for the ones env0 does not publish the
//! same pattern is kept: `com.env0.<deploy|destroy|drift|pr-plan|remote-plan|task|dry-run|
//! module-test>.<queued|started|waiting-for-approval|resumed|aborting|succeeded|failed|cancelled|
//! aborted|skipped>`, and a drift detection ends `detected`, `undetected` or `failed`.

use jiff::Timestamp;

use super::World;
use super::entities::Deployment;
use super::vocabulary::{DeploymentType, Status};

/// One lifecycle change of a run.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// When it happened.
    pub(crate) at: Timestamp,
    /// Index of the run's environment.
    pub(crate) environment: usize,
    /// The run just after the change.
    pub(crate) deployment: Deployment,
    /// env0's event type, e.g. `com.env0.deploy.succeeded`.
    pub(crate) event_type: String,
    /// The environment's status just after the change.
    pub(crate) environment_status: &'static str,
    /// The environment's drift status just after the change.
    pub(crate) drift_status: &'static str,
}

impl World {
    /// Starts (or stops) noting changes; off while the history is generated.
    pub(crate) fn set_noting(&mut self, on: bool) {
        self.noting = on;
        if !on {
            self.changes.clear();
        }
    }

    /// The changes noted since the last call, oldest first.
    pub(crate) fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// Notes the change of run `key` of environment `e` at `at` (from status `was`; `None` for
    /// a new run), when noting.
    pub(super) fn note_change(&mut self, e: usize, key: u64, at: Timestamp, was: Option<Status>) {
        if !self.noting {
            return;
        }
        let Some(i) = self.find(e, key) else { return };
        let env = &self.environments[e];
        let d = &env.deployments[i];
        let change = Change {
            at,
            environment: e,
            event_type: event_type(
                d.kind,
                d.status,
                was,
                d.results.drift_detected == Some(true),
            ),
            deployment: d.clone(),
            environment_status: env.status.as_str(),
            drift_status: env.drift.as_str(),
        };
        self.changes.push(change);
    }
}

/// The event type of a run of `kind` reaching `status` from `was`.
fn event_type(
    kind: DeploymentType,
    status: Status,
    was: Option<Status>,
    drift_found: bool,
) -> String {
    let family = match kind {
        DeploymentType::Deploy => "deploy",
        DeploymentType::Destroy => "destroy",
        DeploymentType::DriftDetection => "drift",
        DeploymentType::PrPlan => "pr-plan",
        DeploymentType::RemotePlan => "remote-plan",
        DeploymentType::Task => "task",
        DeploymentType::DryRun => "dry-run",
        DeploymentType::ModuleTest => "module-test",
    };
    let drift = kind == DeploymentType::DriftDetection;
    let action = match status {
        Status::Queued => "queued",
        Status::InProgress if was == Some(Status::WaitingForUser) => "resumed",
        Status::InProgress => "started",
        Status::WaitingForUser => "waiting-for-approval",
        Status::Aborting => "aborting",
        Status::Success if drift && drift_found => "detected",
        Status::Success if drift => "undetected",
        Status::Success => "succeeded",
        Status::Failure | Status::Timeout | Status::InternalFailure | Status::NeverDeployed => {
            "failed"
        }
        Status::Cancelled => "cancelled",
        Status::Aborted => "aborted",
        Status::Skipped => "skipped",
    };
    format!("com.env0.{family}.{action}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_follow_env0s_published_literals() {
        let t = event_type;
        assert_eq!(
            t(
                DeploymentType::Deploy,
                Status::Success,
                Some(Status::InProgress),
                false
            ),
            "com.env0.deploy.succeeded"
        );
        assert_eq!(
            t(DeploymentType::DriftDetection, Status::Success, None, true),
            "com.env0.drift.detected"
        );
        assert_eq!(
            t(DeploymentType::DriftDetection, Status::Success, None, false),
            "com.env0.drift.undetected"
        );
        assert_eq!(
            t(
                DeploymentType::Destroy,
                Status::InProgress,
                Some(Status::WaitingForUser),
                false
            ),
            "com.env0.destroy.resumed"
        );
        assert_eq!(
            t(
                DeploymentType::Deploy,
                Status::InProgress,
                Some(Status::Queued),
                false
            ),
            "com.env0.deploy.started"
        );
        assert_eq!(
            t(DeploymentType::PrPlan, Status::Queued, None, false),
            "com.env0.pr-plan.queued"
        );
        assert_eq!(
            t(DeploymentType::Deploy, Status::WaitingForUser, None, false),
            "com.env0.deploy.waiting-for-approval"
        );
    }
}
