//! What the exporter knows about env0: compact deployment records and environments.
//!
//! The poller (and later the webhook receiver) feed [`Observation`]s into the [`Store`]; the store
//! keeps one small [`Record`] per deployment in the lookback window (plus any still unfinished),
//! never raw JSON, and reports the one-time [`Event`]s (a deployment finished, a deployment
//! started) that counters and histograms need. [`aggregate`] turns the store into the immutable
//! [`Snapshot`] that `/metrics` encodes.

mod aggregate;
mod compact;
mod export;
mod records;
mod signals;
mod snapshot;
mod views;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::clock;
use crate::labels::Labeler;
use compact::{Compact, EnvironmentIds, LabelSetId, LabelSets, NO_TIME};

pub use crate::views::{DEFAULT_MAX_SERIES_PER_METRIC, Views};
pub use aggregate::aggregate;
pub use compact::DeploymentId;
pub use records::{DeploymentLabels, EnvironmentRecord, Event, Observation, Record, is_finished};
pub use signals::{
    Action, DEPLOY, DRIFT_DETECTION, DriftResult, FAILED_STATUSES, ResourceChanges, RunRef,
    WAITING_FOR_USER,
};
pub use snapshot::{Health, OPTIONAL_CALLS, Snapshot, SnapshotHandle, WebhookCoverage};
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

/// The label sets of `env0_deployments` exported so far (indices into the label table): they
/// stay (at 0) while the process lives.
#[derive(Debug, Default)]
pub(crate) struct SeenSets {
    flags: Vec<bool>,
    count: usize,
}

impl SeenSets {
    pub(crate) fn contains(&self, id: LabelSetId) -> bool {
        self.flags.get(id as usize).copied().unwrap_or(false)
    }

    pub(crate) fn insert(&mut self, id: LabelSetId) {
        let i = id as usize;
        if self.flags.len() <= i {
            self.flags.resize(i + 1, false);
        }
        if !self.flags[i] {
            self.flags[i] = true;
            self.count += 1;
        }
    }

    pub(crate) fn remove(&mut self, id: LabelSetId) {
        if let Some(flag) = self.flags.get_mut(id as usize)
            && *flag
        {
            *flag = false;
            self.count -= 1;
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.count
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = LabelSetId> + '_ {
        self.flags
            .iter()
            .enumerate()
            .filter(|(_, seen)| **seen)
            .map(|(i, _)| LabelSetId::try_from(i).unwrap_or(LabelSetId::MAX))
    }
}

/// The deployments and environments known, and what has been counted.
///
/// Deployments are kept compact (see [`compact`]): an id of 128 bits, times in milliseconds,
/// the label set and the environment as indices into interned tables; [`Record`] is the view
/// the rest of the crate reads.
#[derive(Debug)]
pub struct Store {
    process_start: Timestamp,
    lookback: Duration,
    labeler: Labeler,
    deployments: HashMap<DeploymentId, Compact>,
    /// When runs now `WAITING_FOR_USER` were first seen so (exporter time; few at a time).
    waiting: HashMap<DeploymentId, Timestamp>,
    /// Every label set a deployment has had.
    label_sets: LabelSets,
    /// Environment ids, for records.
    environment_ids: EnvironmentIds,
    environments: HashMap<Arc<str>, EnvironmentRecord>,
    /// Label sets of `env0_deployments` ever exported: they stay (at 0) while the process lives.
    seen_label_sets: SeenSets,
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
            waiting: HashMap::new(),
            label_sets: LabelSets::default(),
            environment_ids: EnvironmentIds::default(),
            environments: HashMap::new(),
            seen_label_sets: SeenSets::default(),
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
            let key = self.environment_ids.key(environment);
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

    /// Records what env0's listing says of an environment.
    pub fn upsert_environment(
        &mut self,
        id: &str,
        project_id: Option<&str>,
        status: Option<&str>,
        drift_status: Option<&str>,
        archived: bool,
    ) {
        let key = self.environment_ids.key(id);
        let record = EnvironmentRecord {
            project_id: project_id.map(|p| self.projects.id(p)),
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
        let ids = &self.environment_ids;
        let kept: Vec<bool> = (0..ids.slots())
            .map(|i| listed.contains(&**ids.get(i)))
            .collect();
        self.deployments
            .retain(|_, r| kept.get(r.environment as usize) == Some(&true));
        let deployments = &self.deployments;
        self.waiting.retain(|id, _| deployments.contains_key(id));
        self.environment_ids.retain(|id| listed.contains(id));
    }

    /// The environments known.
    pub fn environments(&self) -> impl Iterator<Item = (&Arc<str>, &EnvironmentRecord)> {
        self.environments.iter()
    }

    /// One environment, by id.
    #[must_use]
    pub fn environment(&self, id: &str) -> Option<&EnvironmentRecord> {
        self.environments.get(id)
    }

    /// The view of the compact record of `id`.
    fn view<'a>(&'a self, id: &DeploymentId, r: &Compact) -> Record<'a> {
        Record {
            environment: self.environment_ids.get(r.environment),
            labels: self.label_sets.get(r.labels),
            created_at: compact::timestamp(r.created_at),
            queued_at: compact::opt_timestamp(r.queued_at),
            started_at: compact::opt_timestamp(r.started_at),
            finish_time: compact::opt_timestamp(r.finish_time),
            waiting_since: if self.waiting.is_empty() {
                None
            } else {
                self.waiting.get(id).copied()
            },
        }
    }

    /// The deployments known.
    pub fn deployments(&self) -> impl Iterator<Item = (&DeploymentId, Record<'_>)> {
        self.deployments
            .iter()
            .map(|(id, r)| (id, self.view(id, r)))
    }

    /// One deployment, by id.
    #[must_use]
    pub fn deployment(&self, id: &str) -> Option<Record<'_>> {
        let id = DeploymentId::new(id);
        self.deployments.get(&id).map(|r| self.view(&id, r))
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
        self.seen_label_sets
            .iter()
            .map(|id| self.label_sets.get(id))
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
        let id = DeploymentId::new(&obs.id);
        let known = self.deployments.get(&id).copied();
        if finished && created_at < cutoff && known.is_none() {
            return;
        }
        let label_set = self.label_set(obs);
        let environment_index = self.environment_ids.intern(&obs.environment_id);
        let environment = self.environment_ids.get(environment_index).clone();
        let project = self
            .environments
            .get(&environment)
            .and_then(|e| e.project_id.clone());
        let run = |at| RunRef {
            deployment_id: Arc::from(obs.id.as_str()),
            environment_id: environment.clone(),
            project_id: project.clone(),
            at,
        };
        let baselined = self.baselined.contains(&environment);
        let mut record = known.unwrap_or(Compact {
            environment: environment_index,
            labels: label_set,
            created_at: compact::millis(created_at),
            queued_at: NO_TIME,
            started_at: NO_TIME,
            finish_time: NO_TIME,
        });
        // Seen before by this process (unfinished, not started), or new since the baseline.
        let observed = known.is_some() || baselined;
        let (already_started, already_finished) =
            (record.started_at != NO_TIME, record.is_finished());
        if already_finished && !finished {
            // env0 does not reopen a finished run; an older sighting arrived late. Keep what we know.
            return;
        }
        record.labels = label_set;
        record.created_at = compact::millis(created_at);
        if obs.queued_at.is_some() {
            record.queued_at = compact::opt_millis(obs.queued_at);
        }
        if obs.started_at.is_some() {
            record.started_at = compact::opt_millis(obs.started_at);
        }
        record.finish_time = compact::opt_millis(finish_time);
        let labels = self.label_sets.get(label_set);
        signals::approval_wait(&mut self.waiting, &id, labels, obs, now, events);

        if !already_started
            && observed
            && let Some(started) = compact::opt_timestamp(record.started_at)
        {
            let queued = compact::opt_timestamp(record.queued_at)
                .unwrap_or_else(|| compact::timestamp(record.created_at));
            events.push(Event::Started {
                labels: labels.clone(),
                queue_wait: clock::elapsed(queued, started),
                run: run(Some(started)),
            });
        }
        if record.is_finished() && !already_finished {
            let counted = observed;
            if counted {
                let duration = match (compact::opt_timestamp(record.started_at), obs.finished_at) {
                    (Some(start), Some(end)) => Some(clock::elapsed(start, end)),
                    _ => None,
                };
                events.push(Event::Finished {
                    labels: labels.clone(),
                    duration,
                    run: run(obs.finished_at.or(obs.updated_at)),
                });
            }
            signals::finished(
                &mut self.recoveries,
                &self.label_sets,
                obs,
                &id,
                label_set,
                &environment,
                counted,
                events,
            );
        }
        self.seen_label_sets.insert(label_set);
        self.deployments.insert(id, record);
    }

    /// The label set of a sighting (admitting its values to the labeler), interned.
    fn label_set(&mut self, obs: &Observation) -> LabelSetId {
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
        self.label_sets.intern(labels)
    }

    /// Forgets one deployment (deleted in env0, or no longer matching the filters).
    pub fn remove(&mut self, id: &str) {
        let id = DeploymentId::new(id);
        self.deployments.remove(&id);
        self.waiting.remove(&id);
    }

    /// Drops finished deployments that have left the lookback window.
    pub fn evict(&mut self, now: Timestamp) {
        let cutoff = compact::ceil_millis(self.cutoff(now));
        self.deployments.retain(|_, r| r.is_current(cutoff));
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod signal_tests;
#[cfg(test)]
mod tests;
