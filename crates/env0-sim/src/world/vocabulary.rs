//! env0's vocabulary as the world uses it: deployment types, deployment, environment and drift
//! statuses with their wire names, the `IaC` tools and trigger names, and the weights and name
//! tables generation draws from.

/// A deployment type, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DeploymentType {
    Deploy,
    Destroy,
    PrPlan,
    DriftDetection,
    Task,
    RemotePlan,
    DryRun,
    ModuleTest,
}

impl DeploymentType {
    /// Every type.
    pub(crate) const ALL: [Self; 8] = [
        Self::Deploy,
        Self::Destroy,
        Self::PrPlan,
        Self::DriftDetection,
        Self::Task,
        Self::RemotePlan,
        Self::DryRun,
        Self::ModuleTest,
    ];

    /// The camelCase wire name.
    #[must_use]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Destroy => "destroy",
            Self::PrPlan => "prPlan",
            Self::DriftDetection => "driftDetection",
            Self::Task => "task",
            Self::RemotePlan => "remotePlan",
            Self::DryRun => "dryRun",
            Self::ModuleTest => "moduleTest",
        }
    }

    /// Whether creating a run of this type makes it the environment's `latestDeploymentLog`.
    #[must_use]
    pub(crate) fn moves_latest(self) -> bool {
        matches!(self, Self::Deploy | Self::Destroy | Self::Task)
    }

    /// The environment status while a run of this type is in progress (`None`: left as is).
    pub(super) fn in_progress_status(self) -> Option<EnvStatus> {
        match self {
            Self::Deploy => Some(EnvStatus::DeployInProgress),
            Self::Destroy => Some(EnvStatus::DestroyInProgress),
            Self::PrPlan => Some(EnvStatus::PrPlanInProgress),
            Self::DriftDetection => Some(EnvStatus::DriftDetectionInProgress),
            Self::Task => Some(EnvStatus::TaskInProgress),
            Self::RemotePlan => Some(EnvStatus::RemotePlanInProgress),
            Self::DryRun | Self::ModuleTest => None,
        }
    }
}

/// A deployment status, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Status {
    Queued,
    InProgress,
    WaitingForUser,
    Aborting,
    Success,
    Failure,
    Timeout,
    Cancelled,
    InternalFailure,
    Aborted,
    Skipped,
    NeverDeployed,
}

impl Status {
    /// The wire name.
    #[must_use]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::InProgress => "IN_PROGRESS",
            Self::WaitingForUser => "WAITING_FOR_USER",
            Self::Aborting => "ABORTING",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Timeout => "TIMEOUT",
            Self::Cancelled => "CANCELLED",
            Self::InternalFailure => "INTERNAL_FAILURE",
            Self::Aborted => "ABORTED",
            Self::Skipped => "SKIPPED",
            Self::NeverDeployed => "NEVER_DEPLOYED",
        }
    }

    /// Whether the run has ended.
    #[must_use]
    pub(crate) fn is_finished(self) -> bool {
        !matches!(
            self,
            Self::Queued | Self::InProgress | Self::WaitingForUser | Self::Aborting
        )
    }
}

/// An environment status, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnvStatus {
    Inactive,
    Active,
    Failed,
    Timeout,
    WaitingForUser,
    DeployInProgress,
    DestroyInProgress,
    PrPlanInProgress,
    RemotePlanInProgress,
    DriftDetectionInProgress,
    TaskInProgress,
    Aborting,
    Aborted,
    NeverDeployed,
    Drifted,
}

impl EnvStatus {
    /// The wire name.
    #[must_use]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Inactive => "INACTIVE",
            Self::Active => "ACTIVE",
            Self::Failed => "FAILED",
            Self::Timeout => "TIMEOUT",
            Self::WaitingForUser => "WAITING_FOR_USER",
            Self::DeployInProgress => "DEPLOY_IN_PROGRESS",
            Self::DestroyInProgress => "DESTROY_IN_PROGRESS",
            Self::PrPlanInProgress => "PR_PLAN_IN_PROGRESS",
            Self::RemotePlanInProgress => "REMOTE_PLAN_IN_PROGRESS",
            Self::DriftDetectionInProgress => "DRIFT_DETECTION_IN_PROGRESS",
            Self::TaskInProgress => "TASK_IN_PROGRESS",
            Self::Aborting => "ABORTING",
            Self::Aborted => "ABORTED",
            Self::NeverDeployed => "NEVER_DEPLOYED",
            Self::Drifted => "DRIFTED",
        }
    }
}

/// An environment drift status, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DriftStatus {
    Ok,
    Drifted,
    Error,
    NeverRun,
    Disabled,
}

impl DriftStatus {
    /// The wire name.
    #[must_use]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Drifted => "DRIFTED",
            Self::Error => "ERROR",
            Self::NeverRun => "NEVER_RUN",
            Self::Disabled => "DISABLED",
        }
    }
}

/// `IaC` tools in the order the first environments get them, so every one appears.
pub(crate) const TOOLS: [Option<&str>; 10] = [
    Some("opentofu"),
    Some("terraform"),
    Some("terragrunt"),
    Some("pulumi"),
    Some("k8s"),
    Some("cloudformation"),
    Some("helm"),
    Some("ansible"),
    Some("workflow"),
    None,
];

/// Weights of the tools for the remaining environments (terraform-heavy, like real orgs).
pub(super) const TOOL_WEIGHTS: [u32; 10] = [20, 35, 10, 6, 8, 5, 6, 4, 4, 2];

/// Trigger names (`None` is a null `triggerName`). `"scheduled run"` is deliberately not a plain
/// identifier, so label mappings meet an odd value.
pub(crate) const TRIGGERS: [Option<&str>; 8] = [
    Some("user"),
    Some("terraform-cli"),
    Some("workflow"),
    Some("schedule"),
    Some("api"),
    Some("git"),
    Some("scheduled run"),
    None,
];

/// Weights of [`TRIGGERS`] for a run of `kind`.
pub(super) fn trigger_weights(kind: DeploymentType) -> [u32; 8] {
    // user, terraform-cli, workflow, schedule, api, git, "scheduled run", null
    match kind {
        DeploymentType::Deploy => [35, 8, 8, 4, 10, 25, 1, 9],
        DeploymentType::Destroy => [50, 10, 10, 10, 10, 0, 0, 10],
        DeploymentType::PrPlan => [5, 0, 0, 0, 0, 75, 0, 20],
        DeploymentType::DriftDetection => [3, 0, 0, 80, 2, 0, 5, 10],
        DeploymentType::Task => [60, 0, 10, 10, 15, 0, 0, 5],
        DeploymentType::RemotePlan => [30, 45, 0, 0, 15, 0, 0, 10],
        DeploymentType::DryRun => [60, 0, 10, 0, 20, 0, 0, 10],
        DeploymentType::ModuleTest => [20, 0, 0, 0, 10, 60, 0, 10],
    }
}

/// Relative frequency of run types: deploy most, then prPlan, driftDetection, remotePlan, …
pub(super) const TYPE_WEIGHTS: [u32; 8] = [45, 3, 20, 12, 5, 7, 4, 4];

/// Names of the first projects (the others are `project-<i>`).
pub(super) const PROJECT_NAMES: [&str; 8] = [
    "platform", "payments", "data", "web", "mobile", "security", "ml", "internal",
];
/// What environments deploy; an environment's name is `<app>-<stage>-<i>`.
pub(super) const APP_NAMES: [&str; 10] = [
    "api",
    "vpc",
    "db",
    "cache",
    "queue",
    "cdn",
    "auth",
    "search",
    "batch",
    "k8s-cluster",
];
/// Stages in environment names.
pub(super) const STAGES: [&str; 5] = ["dev", "staging", "prod", "qa", "sandbox"];
/// The users: (name, e-mail handle).
pub(super) const USERS: [(&str, &str); 6] = [
    ("Ada Lovelace", "ada"),
    ("Grace Hopper", "grace"),
    ("Alan Turing", "alan"),
    ("Edsger Dijkstra", "edsger"),
    ("Barbara Liskov", "barbara"),
    ("CI Bot", "ci-bot"),
];
