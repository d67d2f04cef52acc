//! What the store takes in and gives out: an [`Observation`] of a deployment log, the
//! [`DeploymentLabels`] and [`Record`] of a deployment, the [`EnvironmentRecord`] of an
//! environment, and the one-time [`Event`]s that counters and histograms record.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::{
    DriftResult, FINISHED_STATUSES, LatestRun, ResourceChanges, RunRef, UNFINISHED_STATUSES,
};

/// One sighting of a deployment log, from a listing, an environment's embedded latest run or a
/// webhook, with only the fields the exporter uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// env0's deployment log id.
    pub id: String,
    /// The environment it belongs to.
    pub environment_id: String,
    /// env0's `type` (deploy, prPlan, …).
    pub deployment_type: Option<String>,
    /// env0's `status` (QUEUED … `NEVER_DEPLOYED`).
    pub status: Option<String>,
    /// env0's `blueprintType`: the `IaC` tool.
    pub blueprint_type: Option<String>,
    /// env0's `triggerName`.
    pub trigger_name: Option<String>,
    /// env0's `startedBy` user id.
    pub started_by: Option<String>,
    /// When env0 created the run.
    pub created_at: Option<Timestamp>,
    /// When it was queued.
    pub queued_at: Option<Timestamp>,
    /// When it started running (null until then).
    pub started_at: Option<Timestamp>,
    /// When it finished (null until then; null for some finished runs).
    pub finished_at: Option<Timestamp>,
    /// When env0 last changed it.
    pub updated_at: Option<Timestamp>,
    /// env0's `planSummary`: what its plan adds, changes, destroys, imports.
    pub resource_changes: Option<ResourceChanges>,
    /// env0's `driftDetected` (drift detection runs).
    pub drift_detected: Option<bool>,
}

/// Whether a deployment with this status (and finish time) has finished.
///
/// An unknown status counts as finished only when env0 gave it a finish time.
#[must_use]
pub fn is_finished(status: Option<&str>, finished_at: Option<Timestamp>) -> bool {
    match status {
        Some(s) if FINISHED_STATUSES.contains(&s) => true,
        Some(s) if UNFINISHED_STATUSES.contains(&s) => false,
        _ => finished_at.is_some(),
    }
}

/// The label values of one deployment: the one definition of the deployment families' labels.
///
/// Every deployment family (`env0_deployments`, the finished counter, the duration and queue
/// histograms) takes its labels from [`pairs`](Self::pairs), less any a family leaves out, so a
/// new label is a field here, its line in `pairs` and its mapping in [`Store::ingest`](super::Store::ingest).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentLabels {
    /// `deployment_type`: env0's `type`.
    pub deployment_type: Arc<str>,
    /// `status`: env0's `status`.
    pub status: Arc<str>,
    /// `iac_tool`: env0's `blueprintType`.
    pub iac_tool: Arc<str>,
    /// `trigger`: env0's `triggerName`.
    pub trigger: Arc<str>,
    /// `project`: the project's name, with `--project-label` only (`None`: no such label).
    pub project: Option<Arc<str>>,
}

impl DeploymentLabels {
    /// Label names and values, in the order they are exposed; a label that is off is left out.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &Arc<str>)> {
        [
            ("deployment_type", Some(&self.deployment_type)),
            ("status", Some(&self.status)),
            ("iac_tool", Some(&self.iac_tool)),
            ("trigger", Some(&self.trigger)),
            ("project", self.project.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
    }
}

/// What the store knows of one deployment: a view of its compact record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The environment it belongs to (shared with the environment table).
    pub environment: &'a Arc<str>,
    /// Its label values as of the latest sighting.
    pub labels: &'a DeploymentLabels,
    /// When it was created (the lookback window is measured on this).
    pub created_at: Timestamp,
    /// When it was queued (else created).
    pub queued_at: Option<Timestamp>,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it finished: `finishedAt`, else `updatedAt` once finished; `None` while unfinished.
    /// Set once: its finish has then been counted (or known to predate the process).
    pub finish_time: Option<Timestamp>,
    /// When the exporter first saw it `WAITING_FOR_USER`, while it still is.
    pub waiting_since: Option<Timestamp>,
}

impl Record<'_> {
    /// Whether it has finished.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finish_time.is_some()
    }

    /// Whether it is in the window at `cutoff` or still running.
    #[must_use]
    pub fn is_current(&self, cutoff: Timestamp) -> bool {
        !self.is_finished() || self.created_at >= cutoff
    }
}

/// What an environment looks like in env0's listing.
#[derive(Debug, Clone)]
pub struct EnvironmentRecord {
    /// Its project (the `project` label joins through it).
    pub project_id: Option<Arc<str>>,
    /// Its name, for the environment view (kept only with that view on).
    pub name: Option<Arc<str>>,
    /// Its latest run as the listing embeds it, for the environment view.
    pub latest: Option<LatestRun>,
    /// `status` label value.
    pub status: Arc<str>,
    /// `drift_status` label value.
    pub drift_status: Arc<str>,
    /// Archived environments are left out of `env0_environments`.
    pub archived: bool,
}

/// A one-time happening that counters and histograms record.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A deployment was seen reaching a finished status: seen unfinished and then finished, or
    /// first seen finished after its environment's baseline read.
    Finished {
        /// Its labels at the finish.
        labels: DeploymentLabels,
        /// `finishedAt − startedAt`, when both are known.
        duration: Option<Duration>,
        /// The run, at `finishedAt` (else `updatedAt`).
        run: RunRef,
    },
    /// A deployment was seen starting: seen not started and then started, or first seen started
    /// after its environment's baseline read.
    Started {
        /// Its labels when it was seen started.
        labels: DeploymentLabels,
        /// `startedAt − queuedAt`.
        queue_wait: Duration,
        /// The run, at `startedAt`.
        run: RunRef,
    },
    /// A run counted in [`Finished`](Self::Finished) had a plan summary.
    ResourceChanges {
        /// Its labels at the finish.
        labels: DeploymentLabels,
        /// What its plan summary says.
        changes: ResourceChanges,
    },
    /// A run left `WAITING_FOR_USER` (seen in it, then in another status).
    ApprovalWait {
        /// Its labels after the wait.
        labels: DeploymentLabels,
        /// From the first sighting waiting to the first sighting not waiting (exporter time).
        wait: Duration,
    },
    /// A drift detection counted in [`Finished`](Self::Finished).
    DriftDetection {
        /// Its labels at the finish.
        labels: DeploymentLabels,
        /// What it found.
        result: DriftResult,
    },
    /// A successful deploy, counted in [`Finished`](Self::Finished), ended a streak of failed
    /// deploys of its environment.
    Recovered {
        /// The successful deploy's labels.
        labels: DeploymentLabels,
        /// From the streak's first failure to the success (env0's finish times).
        duration: Duration,
    },
}
