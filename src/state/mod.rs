//! What the exporter knows about env0: compact deployment records and environments.
//!
//! The poller (and later the webhook receiver) feed [`Observation`]s into the [`Store`]; the store
//! keeps one small [`Record`] per deployment in the lookback window (plus any still unfinished),
//! never raw JSON, and reports the one-time [`Event`]s (a deployment finished, a deployment
//! started) that counters and histograms need. [`aggregate`] turns the store into the immutable
//! [`Snapshot`] that `/metrics` encodes.

mod aggregate;
mod persist;
mod signals;
mod snapshot;
mod views;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::clock;
use crate::labels::Labeler;

pub use aggregate::aggregate;
pub use signals::{
    Action, DEPLOY, DRIFT_DETECTION, DriftResult, FAILED_STATUSES, ResourceChanges, RunRef,
    WAITING_FOR_USER,
};
pub use snapshot::{Health, Snapshot, SnapshotHandle};
use views::ProjectLabels;
pub use views::{EnvironmentRow, LatestRun};

/// env0's documented deployment statuses: the unfinished ones, then the finished ones.
pub const STATUSES: [&str; 12] = [
    "QUEUED",
    "IN_PROGRESS",
    "WAITING_FOR_USER",
    "ABORTING",
    "SUCCESS",
    "FAILURE",
    "TIMEOUT",
    "CANCELLED",
    "INTERNAL_FAILURE",
    "ABORTED",
    "SKIPPED",
    "NEVER_DEPLOYED",
];
/// env0 statuses of a deployment that has not finished yet.
pub const UNFINISHED_STATUSES: &[&str] = STATUSES.split_at(4).0;
/// env0 statuses of a deployment that has finished.
pub const FINISHED_STATUSES: &[&str] = STATUSES.split_at(4).1;

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
/// new label is a field here, its line in `pairs` and its mapping in [`Store::ingest`].
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

/// The opt-in per-project and per-environment views, and their series budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Views {
    /// `project` on the deployment families (`--project-label`).
    pub project_label: bool,
    /// The per-environment gauges (`--environment-metrics`).
    pub environment_metrics: bool,
    /// Most label sets per family (`--max-series-per-metric`).
    pub max_series_per_metric: usize,
}

/// Default of `--max-series-per-metric`: room for the default demo organisation's ~1,000
/// `env0_deployments` label sets several times over, well below what burdens a Prometheus.
pub const DEFAULT_MAX_SERIES_PER_METRIC: usize = 5000;

impl Default for Views {
    fn default() -> Self {
        Self {
            project_label: false,
            environment_metrics: false,
            max_series_per_metric: DEFAULT_MAX_SERIES_PER_METRIC,
        }
    }
}

/// What the store keeps of one deployment.
#[derive(Debug, Clone)]
pub struct Record {
    /// The environment it belongs to (shared with the environment table).
    pub environment: Arc<str>,
    /// Its label values as of the latest sighting.
    pub labels: DeploymentLabels,
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

impl Record {
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

/// The deployments and environments known, and what has been counted.
#[derive(Debug)]
pub struct Store {
    process_start: Timestamp,
    lookback: Duration,
    labeler: Labeler,
    deployments: HashMap<Box<str>, Record>,
    environments: HashMap<Arc<str>, EnvironmentRecord>,
    /// Label sets of `env0_deployments` ever exported: they stay (at 0) while the process lives.
    seen_label_sets: HashSet<DeploymentLabels>,
    /// The `project` label: names and the projects admitted under the budget.
    projects: ProjectLabels,
    /// Whether the environment view is kept.
    environment_view: bool,
    /// Per environment, where its failing streak started (for recovery durations).
    recoveries: signals::Recoveries,
    /// Environments whose first read (the start-up backfill) is done: what that read saw
    /// finished is history; what is seen finished for the first time after it is new.
    baselined: HashSet<Arc<str>>,
}

impl Store {
    /// An empty store for a process that started at `process_start`, keeping `lookback` of
    /// history.
    #[must_use]
    pub fn new(process_start: Timestamp, lookback: Duration) -> Self {
        Self {
            process_start,
            lookback,
            labeler: Labeler::default(),
            deployments: HashMap::new(),
            environments: HashMap::new(),
            seen_label_sets: HashSet::new(),
            projects: ProjectLabels::new(false, DEFAULT_MAX_SERIES_PER_METRIC),
            environment_view: false,
            recoveries: signals::Recoveries::default(),
            baselined: HashSet::new(),
        }
    }

    /// The same store with the opt-in `views` on.
    #[must_use]
    pub fn with_views(mut self, views: Views) -> Self {
        self.projects = ProjectLabels::new(views.project_label, views.max_series_per_metric);
        self.environment_view = views.environment_metrics;
        self
    }

    /// The start of the lookback window at `now`.
    #[must_use]
    pub fn cutoff(&self, now: Timestamp) -> Timestamp {
        clock::sub(now, self.lookback)
    }

    /// The configured lookback.
    #[must_use]
    pub fn lookback(&self) -> Duration {
        self.lookback
    }

    /// When the process started (local clock; informational: no count compares an env0
    /// timestamp with it).
    #[must_use]
    pub fn process_start(&self) -> Timestamp {
        self.process_start
    }

    /// Marks `environment`'s baseline read as done: from now on, a run of it first seen already
    /// finished (or started) is counted as a finish (or a start) observed by this process.
    pub fn mark_baselined(&mut self, environment: &str) {
        if !self.baselined.contains(environment) {
            let key = self.environment_key(environment);
            self.baselined.insert(key);
        }
    }

    /// Takes back [`Self::mark_baselined`] for a read that completes the baseline after it.
    pub fn unmark_baselined(&mut self, environment: &str) {
        self.baselined.remove(environment);
    }

    /// Whether `environment`'s baseline read is done.
    #[must_use]
    pub fn is_baselined(&self, environment: &str) -> bool {
        self.baselined.contains(environment)
    }

    /// Interns an environment id so records share one allocation.
    fn environment_key(&self, id: &str) -> Arc<str> {
        self.environments
            .get_key_value(id)
            .map_or_else(|| Arc::from(id), |(k, _)| k.clone())
    }

    /// Records what env0's listing says of an environment.
    pub fn upsert_environment(
        &mut self,
        id: &str,
        project_id: Option<&str>,
        status: Option<&str>,
        drift_status: Option<&str>,
        archived: bool,
    ) {
        let key = self.environment_key(id);
        let record = EnvironmentRecord {
            project_id: project_id.map(Arc::from),
            name: None,
            latest: None,
            status: self.labeler.environment_status.map(status),
            drift_status: self.labeler.drift_status.map(drift_status),
            archived,
        };
        self.environments.insert(key, record);
    }

    /// Forgets environments (and their deployments) that env0 no longer lists.
    pub fn retain_environments(&mut self, listed: &HashSet<&str>) {
        self.environments.retain(|id, _| listed.contains(&**id));
        self.baselined.retain(|id| listed.contains(&**id));
        self.recoveries.retain(listed);
        self.deployments
            .retain(|_, r| listed.contains(&*r.environment));
    }

    /// The environments known.
    pub fn environments(&self) -> impl Iterator<Item = (&Arc<str>, &EnvironmentRecord)> {
        self.environments.iter()
    }

    /// The deployments known.
    pub fn deployments(&self) -> impl Iterator<Item = (&str, &Record)> {
        self.deployments.iter().map(|(id, r)| (&**id, r))
    }

    /// One deployment, by id.
    #[must_use]
    pub fn deployment(&self, id: &str) -> Option<&Record> {
        self.deployments.get(id)
    }

    /// How many deployment records are in memory.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.deployments.len()
    }

    /// When `environment`'s failing streak started: the finish of its first failed deploy since
    /// its last successful one, as far as the exporter has seen; `None` when not failing.
    #[must_use]
    pub fn failing_since(&self, environment: &str) -> Option<Timestamp> {
        self.recoveries.failing_since(environment)
    }

    /// Label sets of `env0_deployments` exported so far.
    pub fn seen_label_sets(&self) -> impl Iterator<Item = &DeploymentLabels> {
        self.seen_label_sets.iter()
    }

    /// Takes in one sighting of a deployment at `now`, pushing the events it causes.
    ///
    /// A finished deployment created before the lookback window that is not already tracked is
    /// ignored: it is outside what is watched, and it may be one that was counted and forgotten.
    ///
    /// `now` is env0's time as the exporter estimates it (the window is measured on env0's
    /// timestamps). Whether a finish (or a start) counts never compares an env0 timestamp with
    /// a clock: it counts when this process saw the run unfinished (not started) before, or
    /// sees it for the first time after its environment's baseline read ([`Self::mark_baselined`]).
    pub fn ingest(&mut self, obs: &Observation, now: Timestamp, events: &mut Vec<Event>) {
        let finished = is_finished(obs.status.as_deref(), obs.finished_at);
        let created_at = obs
            .created_at
            .or(obs.queued_at)
            .or(obs.updated_at)
            .unwrap_or(now);
        let finish_time = if finished {
            Some(obs.finished_at.or(obs.updated_at).unwrap_or(now))
        } else {
            None
        };
        let cutoff = self.cutoff(now);
        if finished && created_at < cutoff && !self.deployments.contains_key(obs.id.as_str()) {
            return;
        }
        let labels = DeploymentLabels {
            deployment_type: self
                .labeler
                .deployment_type
                .map(obs.deployment_type.as_deref()),
            status: self.labeler.status.map(obs.status.as_deref()),
            iac_tool: self.labeler.iac_tool.map(obs.blueprint_type.as_deref()),
            trigger: self.labeler.trigger.map(obs.trigger_name.as_deref()),
            project: self.projects.label(
                self.environments
                    .get(obs.environment_id.as_str())
                    .and_then(|e| e.project_id.as_deref()),
            ),
        };
        let environment = self.environment_key(&obs.environment_id);
        let project = self.environments.get(&environment).map(|e| &e.project_id);
        let run = RunRef::new(&obs.id, &environment, project.cloned().flatten());
        let baselined = self.baselined.contains(&environment);
        let mut known = true;
        let record = self
            .deployments
            .entry(obs.id.as_str().into())
            .or_insert_with(|| {
                known = false;
                Record {
                    environment: environment.clone(),
                    labels: labels.clone(),
                    created_at,
                    queued_at: None,
                    started_at: None,
                    finish_time: None,
                    waiting_since: None,
                }
            });
        // Seen before by this process (unfinished, not started), or new since the baseline.
        let observed = known || baselined;
        let (already_started, already_finished) =
            (record.started_at.is_some(), record.is_finished());
        if already_finished && !finished {
            // env0 does not reopen a finished run; an older sighting arrived late. Keep what we know.
            return;
        }
        record.labels = labels;
        record.created_at = created_at;
        record.queued_at = obs.queued_at.or(record.queued_at);
        record.started_at = obs.started_at.or(record.started_at);
        record.finish_time = finish_time;
        signals::approval_wait(record, obs, now, events);

        if !already_started
            && observed
            && let Some(started) = record.started_at
        {
            let queued = record.queued_at.unwrap_or(record.created_at);
            events.push(Event::Started {
                labels: record.labels.clone(),
                queue_wait: clock::elapsed(queued, started),
                run: run.at(Some(started)),
            });
        }
        if record.finish_time.is_some() && !already_finished {
            let counted = observed;
            if counted {
                let duration = match (record.started_at, obs.finished_at) {
                    (Some(start), Some(end)) => Some(clock::elapsed(start, end)),
                    _ => None,
                };
                events.push(Event::Finished {
                    labels: record.labels.clone(),
                    duration,
                    run: run.at(obs.finished_at.or(obs.updated_at)),
                });
            }
            signals::finished(
                &mut self.recoveries,
                obs,
                &record.labels,
                &environment,
                counted,
                events,
            );
        }
        if !self.seen_label_sets.contains(&record.labels) {
            self.seen_label_sets.insert(record.labels.clone());
        }
    }

    /// Forgets one deployment (deleted in env0, or no longer matching the filters).
    pub fn remove(&mut self, id: &str) {
        self.deployments.remove(id);
    }

    /// Drops finished deployments that have left the lookback window.
    pub fn evict(&mut self, now: Timestamp) {
        let cutoff = self.cutoff(now);
        self.deployments.retain(|_, r| r.is_current(cutoff));
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod signal_tests;
#[cfg(test)]
mod tests;
