//! The records the world holds: users, organizations, projects, environments and their
//! deployments (runs), with what a run produces (results, cost) and the status changes it is
//! planned to go through.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::Timestamp;

use super::vocabulary::{DeploymentType, DriftStatus, EnvStatus, Status};

/// A user who starts runs.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: String,
    pub email: String,
    pub name: String,
}

/// An organization.
#[derive(Debug, Clone)]
pub(crate) struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// A project (of the first organization).
#[derive(Debug, Clone)]
pub(crate) struct Project {
    pub id: String,
    pub name: String,
    /// Index into [`World::projects`](super::World::projects) of the parent project.
    pub parent: Option<usize>,
    pub created_at: Timestamp,
}

/// Monthly cost estimate; `as_string` says how the amounts go on the wire (env0 sends both).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cost {
    pub total: f64,
    pub diff: f64,
    pub as_string: bool,
}

/// What a run produces, drawn when it is created and shown once it has finished.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Results {
    /// added, changed, destroyed.
    pub plan_summary: Option<[u32; 3]>,
    /// The plan summary's `imported`, which only deploys send (env0 added it later).
    pub imported: Option<u32>,
    pub resource_count: Option<u32>,
    pub cost: Option<Cost>,
    pub drift_detected: Option<bool>,
}

/// One status change a run is planned to go through.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step {
    /// Wait before this step, from the previous one (for the first: from when the run may start).
    pub(super) after: Duration,
    /// The status the run takes.
    pub(super) to: Status,
}

/// One deployment (run).
#[derive(Debug, Clone)]
pub(crate) struct Deployment {
    /// Creation sequence number (internal handle for events).
    pub(super) key: u64,
    pub id: String,
    pub kind: DeploymentType,
    pub status: Status,
    pub trigger: Option<&'static str>,
    /// Index into [`World::users`](super::World::users).
    pub user: usize,
    pub reviewed_by: Option<usize>,
    pub aborted_by: Option<usize>,
    pub pr_number: Option<u32>,
    pub created_at: Timestamp,
    pub queued_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// Drawn at creation, shown once finished successfully.
    pub(super) results: Results,
    /// Whether the end sets `finishedAt` (some runs end with it null).
    pub(super) records_finish: bool,
    /// For a destroy: whether success archives the environment.
    pub(super) archives: bool,
    /// For a drift detection: whether found drift also sets the environment status `DRIFTED`.
    pub(super) marks_drifted: bool,
    /// The status changes still to come, in order (emptied, without its allocation, at the end).
    pub(super) plan: VecDeque<Step>,
    /// Whether it waits its turn in its environment's queue.
    pub(super) lane: Lane,
}

/// Where a run executes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// In its environment's queue, one run at a time, moving the environment's status.
    Queue,
    /// Beside the queue ([`SimConfig::stuck_share`]): takes no turn, holds no other run up and
    /// leaves the environment's status alone.
    ///
    /// [`SimConfig::stuck_share`]: crate::SimConfig::stuck_share
    Beside,
}

impl Deployment {
    /// Results as visible now: only after a successful end.
    #[must_use]
    pub(crate) fn results(&self) -> Option<&Results> {
        (self.status == Status::Success).then_some(&self.results)
    }

    /// The error message of a failed run.
    #[must_use]
    pub(crate) fn error_message(&self) -> Option<&'static str> {
        match self.status {
            Status::Failure => Some("terraform apply failed: exit status 1"),
            Status::Timeout => Some("Deployment timed out"),
            Status::InternalFailure => Some("Internal error, please contact support"),
            _ => None,
        }
    }
}

/// One environment.
#[derive(Debug, Clone)]
pub(crate) struct Environment {
    pub id: String,
    pub name: String,
    /// Index into [`World::projects`](super::World::projects).
    pub project: usize,
    pub tool: Option<&'static str>,
    pub blueprint_id: String,
    /// The template's name, e.g. `api-terraform`.
    pub blueprint_name: String,
    pub status: EnvStatus,
    /// The status outside of runs, restored when a run does not change it.
    pub(super) resting: EnvStatus,
    pub drift: DriftStatus,
    pub archived: bool,
    /// Index into [`World::users`](super::World::users) of the creator.
    pub creator: usize,
    pub latest: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Ordered by (`created_at`, `id`), oldest first.
    pub deployments: Vec<Deployment>,
    /// The key of the run executing now, if any.
    pub(super) active: Option<u64>,
    /// Keys of the runs queued behind it, oldest first.
    pub(super) waiting: VecDeque<u64>,
    /// A workflow's sub-environment: listed only with `includeSubEnvironments=true` unless
    /// [`SimConfig::sub_environments_listed_by_default`](crate::SimConfig::sub_environments_listed_by_default).
    pub workflow_sub: bool,
}

impl Environment {
    /// The embedded `latestDeploymentLog`.
    #[must_use]
    pub(crate) fn latest_deployment(&self) -> Option<&Deployment> {
        let id = self.latest.as_deref()?;
        self.deployments.iter().rev().find(|d| d.id == id)
    }
}
