//! The infrastructure-as-code signals a run carries beyond its status and times: the resources
//! its plan changes, how long it waited for approval, what a drift detection found, and how long
//! an environment took to recover from a failed deploy.
//!
//! The [`Store`](super::Store) calls in here from `ingest`; every signal becomes an
//! [`Event`](super::Event) exactly once per run (per wait for approvals), under the same rule as
//! the finished counter: a run counts when the process sees it finish after it started.
//!
//! Recovery ("time to restore", one of DORA's four keys) needs history per environment, kept in
//! [`Recoveries`]:
//! - A streak starts at the first failed `deploy` (`FAILURE`, `TIMEOUT`, `INTERNAL_FAILURE`)
//!   after the environment's last successful `deploy`, and ends at the next successful `deploy`;
//!   the duration is the success's finish minus the first failure's finish, both env0 timestamps
//!   (`finishedAt`, else `updatedAt`; a run with neither takes no part).
//! - Only failures the exporter has seen count: those in the lookback window at start and those
//!   after. A streak whose first failure predates the window is measured from the first failure
//!   the exporter saw (shorter than the truth); one whose failures were all before it, not at all.
//! - It is observed only for a success counted in `env0_deployments_finished_total` (finished
//!   after the process started), once.
//! - Other types (`destroy`, `task`, plans) and other ends (`CANCELLED`, `ABORTED`, `SKIPPED`,
//!   `NEVER_DEPLOYED`) neither start nor end a streak.
//! - Listings come newest first, so a failure may be learned after the success that ended its
//!   streak (both within one poll): the success waits, unresolved, and the failure resolves it.
//!   If two failures and the success all fall within one poll, the success is resolved by the
//!   later failure when it is learned first (the streak then looks shorter than it was).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::compact::{DeploymentId, LabelSetId, LabelSets};
use super::{DeploymentLabels, Event, Observation};
use crate::clock;

/// env0's status of a run waiting for approval.
pub const WAITING_FOR_USER: &str = "WAITING_FOR_USER";
/// The deployment type whose failures and successes make an environment fail and recover.
pub const DEPLOY: &str = "deploy";
/// The deployment type of drift detections.
pub const DRIFT_DETECTION: &str = "driftDetection";
/// Statuses of a failed deploy (what starts a recovery streak).
pub const FAILED_STATUSES: [&str; 3] = ["FAILURE", "TIMEOUT", "INTERNAL_FAILURE"];
/// The status of a successful run.
const SUCCESS: &str = "SUCCESS";

/// Successful deploys kept per environment: enough to place a failure learned late.
const KEEP_SUCCESSES: usize = 4;
/// Failures kept after an environment's last success: the first ones, which date the streak.
const MAX_STREAK: usize = 32;

/// What a plan would do (env0's `planSummary`); a count env0 left null is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceChanges {
    /// Resources added.
    pub added: Option<u64>,
    /// Resources changed.
    pub changed: Option<u64>,
    /// Resources destroyed.
    pub destroyed: Option<u64>,
    /// Resources imported (newer than the others; often absent).
    pub imported: Option<u64>,
}

impl ResourceChanges {
    /// The counts env0 gave, by action.
    pub fn by_action(&self) -> impl Iterator<Item = (Action, u64)> {
        [
            (Action::Added, self.added),
            (Action::Changed, self.changed),
            (Action::Destroyed, self.destroyed),
            (Action::Imported, self.imported),
        ]
        .into_iter()
        .filter_map(|(action, n)| n.map(|n| (action, n)))
    }

    /// Whether any count is above zero.
    #[must_use]
    pub fn any(&self) -> bool {
        self.by_action().any(|(_, n)| n > 0)
    }
}

/// What a plan does to a resource: the `action` label of `env0_deployment_resource_changes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `added`.
    Added,
    /// `changed`.
    Changed,
    /// `destroyed`.
    Destroyed,
    /// `imported`.
    Imported,
}

impl Action {
    /// Every action, in exposition order.
    pub const ALL: [Self; 4] = [Self::Added, Self::Changed, Self::Destroyed, Self::Imported];

    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Changed => "changed",
            Self::Destroyed => "destroyed",
            Self::Imported => "imported",
        }
    }
}

/// How a drift detection ended: the `result` label of `env0_drift_detections_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriftResult {
    /// It succeeded and found drift.
    Drifted,
    /// It succeeded and found none.
    Clean,
    /// It did not succeed (any finished status but `SUCCESS`).
    Failed,
}

impl DriftResult {
    /// Every result, in exposition order.
    pub const ALL: [Self; 3] = [Self::Drifted, Self::Clean, Self::Failed];

    /// The label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drifted => "drifted",
            Self::Clean => "clean",
            Self::Failed => "failed",
        }
    }

    /// The result of a finished drift detection: `failed` unless it succeeded; then env0's
    /// `driftDetected`, and when that is null, whether its plan changes anything.
    #[must_use]
    pub fn of(
        status: Option<&str>,
        drift_detected: Option<bool>,
        changes: Option<&ResourceChanges>,
    ) -> Self {
        if status != Some(SUCCESS) {
            return Self::Failed;
        }
        let drifted = drift_detected.unwrap_or_else(|| changes.is_some_and(ResourceChanges::any));
        if drifted { Self::Drifted } else { Self::Clean }
    }
}

/// Which run an event is about and when it happened, for exemplars that link to the run in env0
/// (`https://app.env0.com/p/{project}/environments/{environment}/deployments/{deployment}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    /// The deployment log id.
    pub deployment_id: Arc<str>,
    /// Its environment.
    pub environment_id: Arc<str>,
    /// The environment's project, when the environment listing named it.
    pub project_id: Option<Arc<str>>,
    /// env0's time of what the event records (`finishedAt` of a finish, `startedAt` of a
    /// start); `None` when env0 gave none.
    pub at: Option<Timestamp>,
}

impl RunRef {
    /// The run `deployment_id` of `environment_id`, with no time yet.
    #[must_use]
    pub fn new(
        deployment_id: &str,
        environment_id: &Arc<str>,
        project_id: Option<Arc<str>>,
    ) -> Self {
        Self {
            deployment_id: deployment_id.into(),
            environment_id: environment_id.clone(),
            project_id,
            at: None,
        }
    }

    /// The same run at `at`.
    #[must_use]
    pub fn at(&self, at: Option<Timestamp>) -> Self {
        Self { at, ..self.clone() }
    }
}

/// Takes in whether a sighting of the run `id` (now with `labels`) leaves or enters
/// `WAITING_FOR_USER`, pushing the wait that ended: from the first sighting in that status to the
/// first in another, both at the exporter's `now` (so precise to a poll interval).
pub(super) fn approval_wait(
    waiting: &mut HashMap<DeploymentId, Timestamp>,
    id: &DeploymentId,
    labels: &DeploymentLabels,
    obs: &Observation,
    now: Timestamp,
    events: &mut Vec<Event>,
) {
    let is_waiting = obs.status.as_deref() == Some(WAITING_FOR_USER);
    if is_waiting {
        waiting.entry(id.clone()).or_insert(now);
    } else if let Some(since) = waiting.remove(id) {
        events.push(Event::ApprovalWait {
            labels: labels.clone(),
            wait: clock::elapsed(since, now),
        });
    }
}

/// The events a run's first sighting as finished causes beyond `Finished`; `counted` says
/// whether it was counted (finished after the process started).
#[allow(clippy::too_many_arguments)]
pub(super) fn finished(
    recoveries: &mut Recoveries,
    sets: &LabelSets,
    obs: &Observation,
    id: &DeploymentId,
    label_set: LabelSetId,
    environment: &Arc<str>,
    counted: bool,
    events: &mut Vec<Event>,
) {
    let labels = sets.get(label_set);
    let kind = obs.deployment_type.as_deref();
    if counted {
        if let Some(changes) = obs.resource_changes
            && changes.by_action().next().is_some()
        {
            events.push(Event::ResourceChanges {
                labels: labels.clone(),
                changes,
            });
        }
        if kind == Some(DRIFT_DETECTION) {
            events.push(Event::DriftDetection {
                labels: labels.clone(),
                result: DriftResult::of(
                    obs.status.as_deref(),
                    obs.drift_detected,
                    obs.resource_changes.as_ref(),
                ),
            });
        }
    }
    if kind != Some(DEPLOY) {
        return;
    }
    // env0's own time only: a local fallback would compare the two clocks.
    let Some(at) = obs.finished_at.or(obs.updated_at) else {
        return;
    };
    let status = obs.status.as_deref().unwrap_or_default();
    let outcome = if status == SUCCESS {
        DeploymentOutcome::Success {
            pending: counted.then_some(label_set),
        }
    } else if FAILED_STATUSES.contains(&status) {
        DeploymentOutcome::Failure
    } else {
        return;
    };
    if let Some((label_set, duration)) = recoveries.add(environment, id, at, outcome) {
        events.push(Event::Recovered {
            labels: sets.get(label_set).clone(),
            duration,
        });
    }
}

/// A deploy's end, as the recovery timeline keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DeploymentOutcome {
    /// It failed.
    Failure,
    /// It succeeded; `pending` holds its label set while it is counted and its recovery, if any,
    /// not yet observed.
    Success { pending: Option<LabelSetId> },
}

/// The ends of the deploys of one environment, ordered by env0's finish time (then id).
type Timeline = BTreeMap<(Timestamp, DeploymentId), DeploymentOutcome>;

/// Per environment, the recent ends of its deploys: where a failing streak started.
#[derive(Debug, Default)]
pub(super) struct Recoveries {
    by_environment: HashMap<Arc<str>, Timeline>,
}

impl Recoveries {
    /// Forgets environments env0 no longer lists.
    pub(super) fn retain(&mut self, listed: &HashSet<&str>) {
        self.by_environment.retain(|id, _| listed.contains(&**id));
    }

    /// Every deploy end kept: (environment, id, env0's finish time, success), for the state file.
    pub(super) fn ends(&self) -> impl Iterator<Item = (&Arc<str>, &DeploymentId, Timestamp, bool)> {
        self.by_environment.iter().flat_map(|(env, timeline)| {
            timeline.iter().map(move |((at, id), outcome)| {
                (
                    env,
                    id,
                    *at,
                    matches!(outcome, DeploymentOutcome::Success { .. }),
                )
            })
        })
    }

    /// Puts back a deploy end from the state file (its recovery, if any, was observed then).
    pub(super) fn restore_end(
        &mut self,
        environment: Arc<str>,
        id: &str,
        at: Timestamp,
        success: bool,
    ) {
        let outcome = if success {
            DeploymentOutcome::Success { pending: None }
        } else {
            DeploymentOutcome::Failure
        };
        self.by_environment
            .entry(environment)
            .or_default()
            .insert((at, DeploymentId::new(id)), outcome);
    }

    /// When the failing streak of `environment` started (`None`: not failing, or not known).
    pub(super) fn failing_since(&self, environment: &str) -> Option<Timestamp> {
        let timeline = self.by_environment.get(environment)?;
        let last_success = timeline
            .iter()
            .rev()
            .find(|(_, o)| matches!(o, DeploymentOutcome::Success { .. }))
            .map(|(k, _)| k);
        let after = match last_success {
            Some(k) => timeline.range((Bound::Excluded(k), Bound::Unbounded)),
            None => timeline.range::<(Timestamp, DeploymentId), _>(..),
        };
        after.map(|(k, _)| k.0).next()
    }

    /// Adds one deploy end; returns the recovery it completes: the labels of the success and
    /// the time from the streak's first failure to it.
    fn add(
        &mut self,
        environment: &Arc<str>,
        id: &DeploymentId,
        at: Timestamp,
        outcome: DeploymentOutcome,
    ) -> Option<(LabelSetId, Duration)> {
        let timeline = self.by_environment.entry(environment.clone()).or_default();
        let key = (at, id.clone());
        let success = match outcome {
            DeploymentOutcome::Success { .. } => Some(key.clone()),
            // A failure learned late may date the streak of a later success still waiting.
            DeploymentOutcome::Failure => timeline
                .range((Bound::Excluded(&key), Bound::Unbounded))
                .find(|(_, o)| matches!(o, DeploymentOutcome::Success { .. }))
                .map(|(k, _)| k.clone()),
        };
        timeline.insert(key, outcome);
        let recovered = success.and_then(|k| resolve(timeline, &k));
        prune(timeline);
        recovered
    }
}

/// If the success at `key` is counted and unresolved and a failure precedes it since the success
/// before it, resolves it: its labels and the time since that streak's first failure.
fn resolve(
    timeline: &mut Timeline,
    key: &(Timestamp, DeploymentId),
) -> Option<(LabelSetId, Duration)> {
    if !matches!(
        timeline.get(key),
        Some(DeploymentOutcome::Success { pending: Some(_) })
    ) {
        return None;
    }
    let previous = timeline
        .range(..key)
        .rev()
        .find(|(_, o)| matches!(o, DeploymentOutcome::Success { .. }))
        .map(|(k, _)| k.clone());
    let lower = previous.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
    let first_failure = timeline
        .range((lower, Bound::Excluded(key)))
        .map(|(k, _)| k.0)
        .next()?;
    let Some(DeploymentOutcome::Success { pending }) = timeline.get_mut(key) else {
        return None;
    };
    let labels = pending.take()?;
    Some((labels, clock::elapsed(first_failure, key.0)))
}

/// Keeps the last [`KEEP_SUCCESSES`] successes with what follows them, and at most
/// [`MAX_STREAK`] failures after the last success (the first ones).
fn prune(timeline: &mut Timeline) {
    let successes: Vec<_> = timeline
        .iter()
        .filter(|(_, o)| matches!(o, DeploymentOutcome::Success { .. }))
        .map(|(k, _)| k.clone())
        .collect();
    if let Some(first_kept) = successes
        .len()
        .checked_sub(KEEP_SUCCESSES)
        .map(|i| &successes[i])
    {
        *timeline = timeline.split_off(first_kept);
    }
    let streak: Vec<_> = match successes.last() {
        Some(last) => timeline.range((Bound::Excluded(last), Bound::Unbounded)),
        None => timeline.range::<(Timestamp, DeploymentId), _>(..),
    }
    .skip(MAX_STREAK)
    .map(|(k, _)| k.clone())
    .collect();
    for k in streak {
        timeline.remove(&k);
    }
}
