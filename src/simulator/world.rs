//! The simulated world: seeded generation of organizations, projects, environments and users,
//! and the lifecycle of deployments, driven by a priority queue of timed events.
//!
//! Determinism: every random draw happens while handling an event, events are handled in
//! (time, sequence) order and never look at the time the world is advanced to, so the world at
//! time T depends only on the seed, the start time and the pauses, not on how often
//! [`World::advance_to`] ran. All times are whole milliseconds, as on the wire.
//!
//! Lifecycle rules:
//! - Each active environment gets new runs at exponential gaps (mean
//!   [`SimConfig::mean_deployment_interval`]). A few environments are dormant and stay
//!   `NEVER_DEPLOYED`; archived environments rarely get runs (a deploy that un-archives them).
//! - Runs of one environment execute one at a time: a run created while another is unfinished
//!   stays `QUEUED` until that one ends.
//! - A run goes `QUEUED` → `IN_PROGRESS` → a finished status; deploys and destroys may stop at
//!   `WAITING_FOR_USER` (approved back to `IN_PROGRESS`, or `CANCELLED`/`ABORTED`); a few go
//!   `ABORTING` → `ABORTED`; a few end straight from the queue (`SKIPPED`, `CANCELLED`,
//!   `NEVER_DEPLOYED`). `SKIPPED`, `NEVER_DEPLOYED` and half of the `CANCELLED` keep
//!   `finishedAt` null: their `updatedAt` is when they ended.
//! - **Only `deploy`, `destroy` and `task` move an environment's `latestDeploymentLog`** (when they
//!   are created); `prPlan`, `driftDetection`, `remotePlan`, `dryRun` and `moduleTest` never do.
//! - Environment status: in progress per type (`DEPLOY_IN_PROGRESS`, …; `dryRun` and `moduleTest`
//!   leave it alone), `WAITING_FOR_USER`, `ABORTING`; then deploy success → `ACTIVE`, deploy or
//!   destroy failure → `FAILED`, timeout → `TIMEOUT`, abort → `ABORTED`, destroy success →
//!   `INACTIVE` (archived 30 % of the time); a drift detection finding drift → driftStatus
//!   `DRIFTED` (and status `DRIFTED` half of the time), finding none → `OK`, failing → `ERROR`;
//!   anything else returns to the status before the run.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;

use super::{SimConfig, SimDeployment, SimEnvironment};
use crate::clock;

/// Finished deployments older than `history` plus this are dropped.
const RETENTION_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// A deployment type, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeploymentType {
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
    pub const ALL: [Self; 8] = [
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
    pub fn as_str(self) -> &'static str {
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
    pub fn moves_latest(self) -> bool {
        matches!(self, Self::Deploy | Self::Destroy | Self::Task)
    }

    fn in_progress_status(self) -> Option<EnvStatus> {
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
pub enum Status {
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
    /// Every status.
    pub const ALL: [Self; 12] = [
        Self::Queued,
        Self::InProgress,
        Self::WaitingForUser,
        Self::Aborting,
        Self::Success,
        Self::Failure,
        Self::Timeout,
        Self::Cancelled,
        Self::InternalFailure,
        Self::Aborted,
        Self::Skipped,
        Self::NeverDeployed,
    ];

    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
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
    pub fn is_finished(self) -> bool {
        !matches!(
            self,
            Self::Queued | Self::InProgress | Self::WaitingForUser | Self::Aborting
        )
    }
}

/// An environment status, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvStatus {
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
    pub fn as_str(self) -> &'static str {
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
pub enum DriftStatus {
    Ok,
    Drifted,
    Error,
    NeverRun,
    Disabled,
}

impl DriftStatus {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Drifted => "DRIFTED",
            Self::Error => "ERROR",
            Self::NeverRun => "NEVER_RUN",
            Self::Disabled => "DISABLED",
        }
    }
}

/// IaC tools in the order the first environments get them, so every one appears.
pub const TOOLS: [Option<&str>; 10] = [
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
const TOOL_WEIGHTS: [u32; 10] = [20, 35, 10, 6, 8, 5, 6, 4, 4, 2];

/// Trigger names (`None` is a null `triggerName`). `"scheduled run"` is deliberately not a plain
/// identifier, so label mappings meet an odd value.
pub const TRIGGERS: [Option<&str>; 8] = [
    Some("user"),
    Some("terraform-cli"),
    Some("workflow"),
    Some("schedule"),
    Some("api"),
    Some("git"),
    Some("scheduled run"),
    None,
];

fn trigger_weights(kind: DeploymentType) -> [u32; 8] {
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
const TYPE_WEIGHTS: [u32; 8] = [45, 3, 20, 12, 5, 7, 4, 4];

const PROJECT_NAMES: [&str; 8] = [
    "platform", "payments", "data", "web", "mobile", "security", "ml", "internal",
];
const APP_NAMES: [&str; 10] = [
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
const STAGES: [&str; 5] = ["dev", "staging", "prod", "qa", "sandbox"];
const USERS: [(&str, &str); 6] = [
    ("Ada Lovelace", "ada"),
    ("Grace Hopper", "grace"),
    ("Alan Turing", "alan"),
    ("Edsger Dijkstra", "edsger"),
    ("Barbara Liskov", "barbara"),
    ("CI Bot", "ci-bot"),
];

/// A user who starts runs.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
}

/// An organization.
#[derive(Debug, Clone)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// A project (of the first organization).
#[derive(Debug, Clone)]
pub struct Project {
    pub id: String,
    pub name: String,
    /// Index into [`World::projects`] of the parent project.
    pub parent: Option<usize>,
    pub created_at: Timestamp,
}

/// Monthly cost estimate; `as_string` says how the amounts go on the wire (env0 sends both).
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub total: f64,
    pub diff: f64,
    pub as_string: bool,
}

/// What a run produces, drawn when it is created and shown once it has finished.
#[derive(Debug, Clone, Copy)]
pub struct Results {
    /// added, changed, destroyed.
    pub plan_summary: Option<[u32; 3]>,
    pub resource_count: Option<u32>,
    pub cost: Option<Cost>,
    pub drift_detected: Option<bool>,
}

#[derive(Debug, Clone, Copy)]
struct Step {
    /// Wait before this step, from the previous one (for the first: from when the run may start).
    after: Duration,
    to: Status,
}

/// One deployment (run).
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Creation sequence number (internal handle for events).
    key: u64,
    pub id: String,
    pub kind: DeploymentType,
    pub status: Status,
    pub trigger: Option<&'static str>,
    /// Index into [`World::users`].
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
    results: Results,
    /// Whether the end sets `finishedAt` (some runs end with it null).
    records_finish: bool,
    /// For a destroy: whether success archives the environment.
    archives: bool,
    /// For a drift detection: whether found drift also sets the environment status `DRIFTED`.
    marks_drifted: bool,
    plan: VecDeque<Step>,
}

impl Deployment {
    /// Results as visible now: only after a successful end.
    #[must_use]
    pub fn results(&self) -> Option<&Results> {
        (self.status == Status::Success).then_some(&self.results)
    }

    /// The error message of a failed run.
    #[must_use]
    pub fn error_message(&self) -> Option<&'static str> {
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
pub struct Environment {
    pub id: String,
    pub name: String,
    /// Index into [`World::projects`].
    pub project: usize,
    pub tool: Option<&'static str>,
    pub blueprint_id: String,
    /// The template's name, e.g. `api-terraform`.
    pub blueprint_name: String,
    pub status: EnvStatus,
    /// The status outside of runs, restored when a run does not change it.
    resting: EnvStatus,
    pub drift: DriftStatus,
    pub archived: bool,
    /// Index into [`World::users`] of the creator.
    pub creator: usize,
    pub latest: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Ordered by (`created_at`, `id`), oldest first.
    pub deployments: Vec<Deployment>,
    active: Option<u64>,
    waiting: VecDeque<u64>,
}

impl Environment {
    /// The embedded `latestDeploymentLog`.
    #[must_use]
    pub fn latest_deployment(&self) -> Option<&Deployment> {
        let id = self.latest.as_deref()?;
        self.deployments.iter().rev().find(|d| d.id == id)
    }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// Create a run and schedule the next one.
    NewRun(usize),
    /// Before the history starts: the run that put the environment in its initial state.
    Seed(usize, DeploymentType, Status),
    /// The next status change of a run.
    Step(usize, u64),
}

#[derive(Debug)]
struct Scheduled {
    at: Timestamp,
    seq: u64,
    event: Event,
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

/// The whole simulated state.
#[derive(Debug)]
pub struct World {
    rng: fastrand::Rng,
    mean_interval: Duration,
    time_scale: f64,
    retention: Duration,
    pub organizations: Vec<Organization>,
    pub projects: Vec<Project>,
    pub environments: Vec<Environment>,
    pub users: Vec<User>,
    /// Deployment id → index into `environments`.
    by_id: HashMap<String, usize>,
    /// Environment id → index into `environments` (environments are never removed).
    env_index: HashMap<String, usize>,
    events: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    next_key: u64,
    paused_at: Option<Timestamp>,
    /// Time spent paused: frozen time does not age runs out of retention either.
    paused_total: Duration,
}

/// `ts` cut to whole milliseconds (what the wire shows).
fn trunc_ms(ts: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(ts.as_millisecond()).unwrap_or(ts)
}

fn uuid(rng: &mut fastrand::Rng) -> String {
    let v = rng.u128(..);
    // Version 4, variant 1, like env0's ids.
    let v = (v & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T], weights: &[u32]) -> T {
    let total: u32 = weights.iter().sum();
    let mut roll = rng.u32(0..total.max(1));
    for (item, w) in items.iter().zip(weights) {
        if roll < *w {
            return *item;
        }
        roll -= w;
    }
    items[0]
}

/// A duration between `min` and `max` seconds, uniform on a log scale, in whole milliseconds.
fn log_uniform(rng: &mut fastrand::Rng, min: f64, max: f64) -> Duration {
    let secs = (min.ln() + rng.f64() * (max.ln() - min.ln())).exp();
    Duration::from_millis((secs * 1000.0) as u64)
}

impl World {
    /// Generates the world at `now - history` and plays it forward to `now`.
    #[must_use]
    pub fn new(config: &SimConfig, now: Timestamp) -> Self {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let start = trunc_ms(clock::sub(now, config.history));
        let year_before = clock::sub(start, Duration::from_secs(365 * 24 * 3600));
        let old = |rng: &mut fastrand::Rng| {
            clock::add(
                year_before,
                Duration::from_secs(rng.u64(0..300 * 24 * 3600)),
            )
        };
        let organizations = (0..config.organizations.max(1))
            .map(|i| Organization {
                id: uuid(&mut rng),
                name: if i == 0 {
                    "Acme Platform".to_owned()
                } else {
                    format!("Acme Subsidiary {i}")
                },
                created_at: old(&mut rng),
            })
            .collect();
        let projects = (0..config.projects.max(1))
            .map(|i| Project {
                id: uuid(&mut rng),
                name: match PROJECT_NAMES.get(i) {
                    Some(n) => (*n).to_owned(),
                    None => format!("project-{i}"),
                },
                // The last of several projects is a sub-project of the first.
                parent: (i > 0 && i + 1 == config.projects).then_some(0),
                created_at: old(&mut rng),
            })
            .collect::<Vec<_>>();
        let users = USERS
            .iter()
            .map(|(name, handle)| User {
                id: format!("auth0|{:024x}", rng.u128(..) >> 32),
                email: format!("{handle}@acme.example"),
                name: (*name).to_owned(),
            })
            .collect::<Vec<_>>();
        let mut world = Self {
            rng,
            mean_interval: config.mean_deployment_interval.max(Duration::from_secs(1)),
            time_scale: if config.time_scale.is_finite() && config.time_scale > 0.0 {
                config.time_scale
            } else {
                1.0
            },
            retention: config.history + RETENTION_MARGIN,
            organizations,
            projects,
            environments: Vec::with_capacity(config.environments),
            users,
            by_id: HashMap::new(),
            env_index: HashMap::new(),
            events: BinaryHeap::new(),
            seq: 0,
            next_key: 0,
            paused_at: None,
            paused_total: Duration::ZERO,
        };
        for i in 0..config.environments {
            world.add_environment(i, start);
        }
        world.advance_to(now);
        world
    }

    fn add_environment(&mut self, i: usize, start: Timestamp) {
        let rng = &mut self.rng;
        let project = if i < self.projects.len() {
            i
        } else {
            rng.usize(0..self.projects.len())
        };
        let tool = TOOLS
            .get(i)
            .copied()
            .unwrap_or_else(|| pick(rng, &TOOLS, &TOOL_WEIGHTS));
        let app = APP_NAMES[rng.usize(0..APP_NAMES.len())];
        let name = format!("{app}-{}-{i}", STAGES[rng.usize(0..STAGES.len())]);
        let blueprint_name = format!("{app}-{}", tool.unwrap_or("template"));
        let created_at = clock::sub(start, Duration::from_secs(rng.u64(2 * 86400..200 * 86400)));
        let roll = rng.f64();
        // Environment 3 is always dormant so every world has a never-deployed one.
        let (dormant, archived) = (i == 3 || roll < 0.04, (0.04..0.07).contains(&roll));
        let drift = if dormant {
            DriftStatus::NeverRun
        } else {
            pick(
                rng,
                &[
                    DriftStatus::Ok,
                    DriftStatus::Drifted,
                    DriftStatus::NeverRun,
                    DriftStatus::Disabled,
                ],
                &[60, 10, 15, 15],
            )
        };
        let env = Environment {
            id: uuid(rng),
            name,
            project,
            tool,
            blueprint_id: uuid(rng),
            blueprint_name,
            status: EnvStatus::NeverDeployed,
            resting: EnvStatus::NeverDeployed,
            drift,
            archived: false,
            creator: rng.usize(0..self.users.len()),
            latest: None,
            created_at,
            updated_at: created_at,
            deployments: Vec::new(),
            active: None,
            waiting: VecDeque::new(),
        };
        let e = self.environments.len();
        self.env_index.insert(env.id.clone(), e);
        self.environments.push(env);
        if dormant {
            return;
        }
        let rng = &mut self.rng;
        let seed_at = clock::sub(start, log_uniform(rng, 3600.0, 20.0 * 3600.0));
        let seed = if archived {
            (DeploymentType::Destroy, Status::Success)
        } else if rng.f64() < 0.85 {
            (DeploymentType::Deploy, Status::Success)
        } else {
            (DeploymentType::Deploy, Status::Failure)
        };
        self.schedule(seed_at, Event::Seed(e, seed.0, seed.1));
        let first = clock::add(start, self.exp_gap());
        self.schedule(first, Event::NewRun(e));
    }

    /// The organization holding all projects and environments.
    #[must_use]
    pub fn organization_id(&self) -> &str {
        self.organizations.first().map_or("", |o| o.id.as_str())
    }

    fn schedule(&mut self, at: Timestamp, event: Event) {
        self.seq += 1;
        self.events.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            event,
        }));
    }

    fn exp_gap(&mut self) -> Duration {
        let u = self.rng.f64();
        let secs = -(1.0 - u).ln() * self.mean_interval.as_secs_f64();
        Duration::from_millis((secs * 1000.0).max(1000.0) as u64)
    }

    fn scaled(&self, d: Duration) -> Duration {
        let ms = (d.as_secs_f64() * 1000.0 * self.time_scale).max(1.0);
        Duration::from_millis(ms as u64)
    }

    /// Handles every event up to `now` (nothing while paused), then drops old finished runs.
    pub fn advance_to(&mut self, now: Timestamp) {
        if self.paused_at.is_some() {
            return;
        }
        while let Some(Reverse(next)) = self.events.peek() {
            if next.at > now {
                break;
            }
            let Some(Reverse(Scheduled { at, event, .. })) = self.events.pop() else {
                break;
            };
            self.handle(at, event);
        }
        self.prune(now);
    }

    /// Freezes or resumes the world at `now`.
    pub fn set_paused(&mut self, paused: bool, now: Timestamp) {
        match (paused, self.paused_at) {
            (true, None) => {
                self.advance_to(now);
                self.paused_at = Some(now);
            }
            (false, Some(at)) => {
                let shift = Duration::from_millis(
                    u64::try_from(clock::elapsed(at, now).as_millis()).unwrap_or(u64::MAX),
                );
                let events = std::mem::take(&mut self.events);
                self.events = events
                    .into_iter()
                    .map(|Reverse(mut s)| {
                        s.at = clock::add(s.at, shift);
                        Reverse(s)
                    })
                    .collect();
                self.paused_at = None;
                self.paused_total += shift;
                self.advance_to(now);
            }
            _ => {}
        }
    }

    fn handle(&mut self, at: Timestamp, event: Event) {
        match event {
            Event::NewRun(e) => {
                let gap = self.exp_gap();
                self.schedule(clock::add(at, gap), Event::NewRun(e));
                let env = &self.environments[e];
                if env.archived {
                    // Rarely, an archived environment is redeployed (and un-archived).
                    if self.rng.f64() < 0.1 {
                        self.environments[e].archived = false;
                        self.create_run(e, at, DeploymentType::Deploy, None);
                    }
                    return;
                }
                let kind = self.pick_type(e);
                self.create_run(e, at, kind, None);
            }
            Event::Seed(e, kind, outcome) => self.create_run(e, at, kind, Some(outcome)),
            Event::Step(e, key) => self.step(e, key, at),
        }
    }

    fn pick_type(&mut self, e: usize) -> DeploymentType {
        let kind = pick(&mut self.rng, &DeploymentType::ALL, &TYPE_WEIGHTS);
        let env = &self.environments[e];
        let deployed = !matches!(env.resting, EnvStatus::NeverDeployed | EnvStatus::Inactive);
        match kind {
            DeploymentType::Destroy | DeploymentType::Task if !deployed => DeploymentType::Deploy,
            DeploymentType::DriftDetection if !deployed || env.drift == DriftStatus::Disabled => {
                DeploymentType::Deploy
            }
            k => k,
        }
    }

    /// Draws the statuses a new run will go through.
    fn draw_plan(&mut self, kind: DeploymentType, forced: Option<Status>) -> (Vec<Step>, bool) {
        let rng = &mut self.rng;
        let queue = log_uniform(rng, 2.0, 120.0);
        let run = match kind {
            DeploymentType::Deploy | DeploymentType::Destroy => {
                if rng.f64() < 0.15 {
                    log_uniform(rng, 600.0, 1800.0)
                } else {
                    log_uniform(rng, 20.0, 600.0)
                }
            }
            DeploymentType::ModuleTest => log_uniform(rng, 60.0, 900.0),
            DeploymentType::DriftDetection | DeploymentType::Task => log_uniform(rng, 20.0, 600.0),
            _ => log_uniform(rng, 20.0, 300.0),
        };
        let approval = log_uniform(rng, 120.0, 6.0 * 3600.0);
        let abort = log_uniform(rng, 5.0, 60.0);
        let part = run.mul_f64(0.2 + 0.6 * rng.f64());
        let rest = run.saturating_sub(part);
        let needs_approval =
            matches!(kind, DeploymentType::Deploy | DeploymentType::Destroy) && rng.f64() < 0.2;
        let roll = rng.f64();
        let half = rng.bool();
        let (q, run, part, rest, approval, abort) = (
            self.scaled(queue),
            self.scaled(run),
            self.scaled(part),
            self.scaled(rest),
            self.scaled(approval),
            self.scaled(abort),
        );
        let step = |after, to| Step { after, to };
        if let Some(outcome) = forced {
            return (vec![step(q, Status::InProgress), step(run, outcome)], true);
        }
        let mut plan = Vec::with_capacity(5);
        let mut records_finish = true;
        if roll < 0.02 {
            plan.push(step(q, Status::Skipped));
            records_finish = false;
        } else if roll < 0.035 {
            plan.push(step(q, Status::Cancelled));
            records_finish = half;
        } else if roll < 0.04 && matches!(kind, DeploymentType::Deploy | DeploymentType::Destroy) {
            plan.push(step(q, Status::NeverDeployed));
            records_finish = false;
        } else if roll < 0.06 {
            plan.push(step(q, Status::InProgress));
            plan.push(step(part, Status::Aborting));
            plan.push(step(abort, Status::Aborted));
        } else if needs_approval {
            plan.push(step(q, Status::InProgress));
            plan.push(step(part, Status::WaitingForUser));
            let r = (roll - 0.06) / 0.94;
            if r < 0.75 {
                plan.push(step(approval, Status::InProgress));
                plan.push(step(rest, Self::final_status(r / 0.75)));
            } else if r < 0.9 {
                plan.push(step(approval, Status::Cancelled));
                records_finish = half;
            } else {
                plan.push(step(approval, Status::Aborted));
            }
        } else {
            plan.push(step(q, Status::InProgress));
            let final_status = Self::final_status((roll - 0.06) / 0.94);
            if final_status == Status::Cancelled {
                records_finish = half;
            }
            plan.push(step(run, final_status));
        }
        (plan, records_finish)
    }

    /// The end of a run that ran through, from a uniform roll.
    fn final_status(roll: f64) -> Status {
        match roll {
            r if r < 0.82 => Status::Success,
            r if r < 0.92 => Status::Failure,
            r if r < 0.94 => Status::Timeout,
            r if r < 0.96 => Status::InternalFailure,
            _ => Status::Cancelled,
        }
    }

    fn draw_results(&mut self, kind: DeploymentType) -> Results {
        let rng = &mut self.rng;
        let resources = rng.u32(1..60);
        let summary = [rng.u32(0..6), rng.u32(0..4), rng.u32(0..3)];
        let cost = (matches!(kind, DeploymentType::Deploy | DeploymentType::PrPlan)
            && rng.f64() < 0.5)
            .then(|| Cost {
                total: f64::from(rng.u32(0..500_000)) / 100.0,
                diff: f64::from(rng.u32(0..20_000)) / 100.0 - 50.0,
                as_string: rng.f64() < 0.6,
            });
        let drift = rng.f64() < 0.3;
        match kind {
            DeploymentType::Deploy => Results {
                plan_summary: Some(summary),
                resource_count: Some(resources),
                cost,
                drift_detected: None,
            },
            DeploymentType::Destroy => Results {
                plan_summary: Some([0, 0, resources]),
                resource_count: Some(0),
                cost: None,
                drift_detected: None,
            },
            DeploymentType::PrPlan | DeploymentType::RemotePlan | DeploymentType::DryRun => {
                Results {
                    plan_summary: Some(summary),
                    resource_count: None,
                    cost,
                    drift_detected: None,
                }
            }
            DeploymentType::DriftDetection => Results {
                plan_summary: Some(if drift { summary } else { [0, 0, 0] }),
                resource_count: None,
                cost: None,
                drift_detected: Some(drift),
            },
            DeploymentType::Task | DeploymentType::ModuleTest => Results {
                plan_summary: None,
                resource_count: None,
                cost: None,
                drift_detected: None,
            },
        }
    }

    fn create_run(
        &mut self,
        e: usize,
        at: Timestamp,
        kind: DeploymentType,
        forced: Option<Status>,
    ) {
        let (plan, records_finish) = self.draw_plan(kind, forced);
        let results = self.draw_results(kind);
        let rng = &mut self.rng;
        let trigger = if forced.is_some() {
            Some("user")
        } else {
            pick(rng, &TRIGGERS, &trigger_weights(kind))
        };
        let user = rng.usize(0..self.users.len());
        let reviewer = rng.usize(0..self.users.len());
        let pr = rng.u32(1..2000);
        let git = trigger == Some("git") || kind == DeploymentType::PrPlan;
        let archives = rng.f64() < 0.3;
        let marks_drifted = rng.bool();
        let id = uuid(rng);
        self.next_key += 1;
        let approved = plan.iter().any(|s| s.to == Status::WaitingForUser);
        let dep = Deployment {
            key: self.next_key,
            id: id.clone(),
            kind,
            status: Status::Queued,
            trigger,
            user,
            reviewed_by: approved.then_some(reviewer),
            aborted_by: None,
            pr_number: git.then_some(pr),
            created_at: at,
            queued_at: at,
            started_at: None,
            finished_at: None,
            updated_at: at,
            results,
            records_finish,
            archives,
            marks_drifted,
            plan: plan.into(),
        };
        let key = dep.key;
        let env = &mut self.environments[e];
        let pos = env
            .deployments
            .partition_point(|d| (d.created_at, d.id.as_str()) <= (at, id.as_str()));
        env.deployments.insert(pos, dep);
        self.by_id.insert(id.clone(), e);
        if kind.moves_latest() {
            env.latest = Some(id);
            env.updated_at = at;
        }
        if env.active.is_none() {
            env.active = Some(key);
            self.schedule_next_step(e, key, at);
        } else {
            env.waiting.push_back(key);
        }
    }

    fn find(&self, e: usize, key: u64) -> Option<usize> {
        self.environments[e]
            .deployments
            .iter()
            .rposition(|d| d.key == key)
    }

    fn schedule_next_step(&mut self, e: usize, key: u64, from: Timestamp) {
        let Some(i) = self.find(e, key) else { return };
        if let Some(step) = self.environments[e].deployments[i].plan.front() {
            let at = clock::add(from, step.after);
            self.schedule(at, Event::Step(e, key));
        }
    }

    fn step(&mut self, e: usize, key: u64, at: Timestamp) {
        let Some(i) = self.find(e, key) else { return };
        let env = &mut self.environments[e];
        let d = &mut env.deployments[i];
        let Some(step) = d.plan.pop_front() else {
            return;
        };
        let was = d.status;
        d.status = step.to;
        d.updated_at = at;
        if step.to == Status::InProgress && d.started_at.is_none() {
            d.started_at = Some(at);
        }
        if step.to == Status::Aborted {
            d.aborted_by = d.reviewed_by.or(Some(d.user));
        }
        let finished = step.to.is_finished();
        if finished && d.records_finish {
            d.finished_at = Some(at);
        }
        let (kind, archives, marks_drifted) = (d.kind, d.archives, d.marks_drifted);
        let drift_found = d.results.drift_detected == Some(true);
        let (old_status, old_drift) = (env.status, env.drift);
        match step.to {
            Status::InProgress => {
                if let Some(s) = kind.in_progress_status() {
                    env.status = s;
                }
            }
            Status::WaitingForUser => env.status = EnvStatus::WaitingForUser,
            Status::Aborting if kind.moves_latest() => env.status = EnvStatus::Aborting,
            s if s.is_finished() => {
                let started = was != Status::Queued;
                env.resting =
                    Self::resting_after(env, kind, s, started, drift_found, marks_drifted);
                if kind == DeploymentType::Destroy && s == Status::Success && archives {
                    env.archived = true;
                }
                env.status = env.resting;
            }
            _ => {}
        }
        if env.status != old_status || env.drift != old_drift {
            env.updated_at = at;
        }
        if finished {
            env.active = None;
            if let Some(next) = env.waiting.pop_front() {
                env.active = Some(next);
                self.schedule_next_step(e, next, at);
            }
        } else {
            self.schedule_next_step(e, key, at);
        }
    }

    /// The environment status after a run of `kind` ended with `s` (and its drift status, set
    /// in place).
    fn resting_after(
        env: &mut Environment,
        kind: DeploymentType,
        s: Status,
        started: bool,
        drift_found: bool,
        marks_drifted: bool,
    ) -> EnvStatus {
        use DeploymentType as T;
        let resting = env.resting;
        match (kind, s) {
            (T::Deploy, Status::Success) => {
                if env.drift == DriftStatus::Drifted {
                    env.drift = DriftStatus::Ok;
                }
                EnvStatus::Active
            }
            (T::Deploy | T::Destroy, Status::Failure | Status::InternalFailure) => {
                EnvStatus::Failed
            }
            (T::Deploy | T::Destroy, Status::Timeout) => EnvStatus::Timeout,
            (T::Deploy | T::Destroy | T::Task, Status::Aborted) if started => EnvStatus::Aborted,
            (T::Destroy, Status::Success) => EnvStatus::Inactive,
            (T::DriftDetection, Status::Success) if drift_found => {
                env.drift = DriftStatus::Drifted;
                if marks_drifted && resting == EnvStatus::Active {
                    EnvStatus::Drifted
                } else {
                    resting
                }
            }
            (T::DriftDetection, Status::Success) => {
                env.drift = DriftStatus::Ok;
                if resting == EnvStatus::Drifted {
                    EnvStatus::Active
                } else {
                    resting
                }
            }
            (T::DriftDetection, Status::Failure | Status::Timeout | Status::InternalFailure) => {
                env.drift = DriftStatus::Error;
                resting
            }
            _ => resting,
        }
    }

    /// Drops finished runs created before `now - (history + 1 day)` (not counting time spent
    /// paused), except each environment's latest.
    fn prune(&mut self, now: Timestamp) {
        let cutoff = clock::sub(now, self.retention + self.paused_total);
        for env in &mut self.environments {
            let old = env.deployments.partition_point(|d| d.created_at < cutoff);
            let removable = |d: &Deployment| {
                d.status.is_finished() && env.latest.as_deref() != Some(d.id.as_str())
            };
            if !env.deployments[..old].iter().any(removable) {
                continue;
            }
            let tail = env.deployments.split_off(old);
            let mut kept = Vec::with_capacity(env.deployments.len() + tail.len());
            for d in env.deployments.drain(..) {
                if removable(&d) {
                    self.by_id.remove(&d.id);
                } else {
                    kept.push(d);
                }
            }
            kept.extend(tail);
            env.deployments = kept;
        }
    }

    /// The environment holding a deployment, and the deployment.
    #[must_use]
    pub fn deployment(&self, id: &str) -> Option<(&Environment, &Deployment)> {
        let env = self.environments.get(*self.by_id.get(id)?)?;
        let d = env.deployments.iter().rev().find(|d| d.id == id)?;
        Some((env, d))
    }

    /// The environment with this id.
    #[must_use]
    pub fn environment(&self, id: &str) -> Option<&Environment> {
        self.env_index.get(id).map(|&i| &self.environments[i])
    }

    /// The truth as public records, oldest first.
    #[must_use]
    pub fn sim_deployments(&self) -> Vec<SimDeployment> {
        let mut out: Vec<SimDeployment> = self
            .environments
            .iter()
            .flat_map(|env| {
                let project = &self.projects[env.project].id;
                env.deployments.iter().map(move |d| SimDeployment {
                    id: d.id.clone(),
                    environment_id: env.id.clone(),
                    project_id: project.clone(),
                    deployment_type: d.kind.as_str().to_owned(),
                    status: d.status.as_str().to_owned(),
                    blueprint_type: env.tool.map(str::to_owned),
                    trigger_name: d.trigger.map(str::to_owned),
                    started_by: self.users[d.user].id.clone(),
                    created_at: d.created_at,
                    queued_at: d.queued_at,
                    started_at: d.started_at,
                    finished_at: d.finished_at,
                    updated_at: d.updated_at,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    /// The environments as public records, in listing order.
    #[must_use]
    pub fn sim_environments(&self) -> Vec<SimEnvironment> {
        self.environments
            .iter()
            .map(|env| SimEnvironment {
                id: env.id.clone(),
                project_id: self.projects[env.project].id.clone(),
                name: env.name.clone(),
                status: env.status.as_str().to_owned(),
                drift_status: env.drift.as_str().to_owned(),
                is_archived: env.archived,
                latest_deployment_log_id: env.latest.clone(),
            })
            .collect()
    }
}
