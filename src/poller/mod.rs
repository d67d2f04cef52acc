//! The poller: the only part that knows about time, schedules, paging budgets and retries of
//! whole polls. It reads env0 through the [`Client`], feeds the [`Store`] and publishes a fresh
//! [`Snapshot`](crate::state::Snapshot) after every poll (and during a long backfill).

pub mod schedule;
mod webhooks;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::client::{
    Client, DeploymentLog, DeploymentQuery, Environment, Error as ClientError, Reason,
};
use crate::clock::{self, SharedClock};
use crate::filter::{DeploymentFilter, ProjectFilter};
use crate::metrics::Metrics;
use crate::state::{self, Event, Health, Observation, SnapshotHandle, Store, Views};
use schedule::{EnvSchedule, PlannedRead, ReadKind, Unfinished};

/// How often a long poll (the start-up backfill) republishes what it has so far.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Settings of the poller.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// Organisation to watch; `None` = the only one the key sees.
    pub organization_id: Option<String>,
    /// Time between polls; also the request deadline of one poll.
    pub poll_interval: Duration,
    /// Window of deployments kept and shown.
    pub lookback: Duration,
    /// Period of full re-reads per environment; `None` = off.
    pub full_sync_interval: Option<Duration>,
    /// Which deployments are watched.
    pub filter: DeploymentFilter,
    /// Which projects are watched.
    pub projects: ProjectFilter,
    /// The opt-in views.
    pub views: Views,
}

/// What one poll did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Deployment listings read, by kind.
    pub reads: HashMap<&'static str, usize>,
    /// Planned reads left for the next poll because the request budget ran out.
    pub deferred: usize,
    /// Environments listed.
    pub environments: usize,
}

/// Why a poll failed: a client error, or a configuration the API contradicts.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The env0 API failed.
    #[error(transparent)]
    Api(#[from] ClientError),
    /// The organisation cannot be chosen.
    #[error("{0}")]
    Organization(String),
}

impl PollError {
    /// The bounded reason counted in `env0_exporter_poll_errors_total`.
    #[must_use]
    pub fn reason(&self) -> Reason {
        match self {
            Self::Api(e) => e.reason(),
            Self::Organization(_) => Reason::Forbidden,
        }
    }
}

/// Polls env0 and keeps the state.
pub struct Poller {
    client: Arc<Client>,
    clock: SharedClock,
    config: PollerConfig,
    store: Store,
    schedule: HashMap<Arc<str>, EnvSchedule>,
    organization_id: Option<String>,
    snapshot: SnapshotHandle,
    metrics: Arc<Metrics>,
    health: Health,
    events: Vec<Event>,
    /// Environments per project as last listed, to choose the cheaper listing (see
    /// [`Poller::list_environments`]).
    listed_per_project: HashMap<String, usize>,
    /// Environments of the whole organisation as last listed org-wide.
    listed_in_org: Option<usize>,
    /// Observations from the webhook receiver, taken in between polls; `None` without webhooks.
    webhooks: Option<mpsc::Receiver<Observation>>,
    /// The environments of the last listing, published for the webhook receiver.
    watched: Arc<HashSet<Arc<str>>>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("organization_id", &self.organization_id)
            .field("environments", &self.schedule.len())
            .field("tracked", &self.store.tracked())
            .finish_non_exhaustive()
    }
}

/// The fields the state needs from a deployment log.
#[must_use]
pub fn observation(log: &DeploymentLog, environment_id: &str) -> Observation {
    Observation {
        id: log.id.clone(),
        environment_id: log
            .environment_id
            .clone()
            .unwrap_or_else(|| environment_id.to_owned()),
        deployment_type: log.deployment_type.clone(),
        status: log.status.clone(),
        blueprint_type: log.blueprint_type.clone(),
        trigger_name: log.trigger_name.clone(),
        started_by: log.started_by.clone(),
        created_at: log.created_at,
        queued_at: log.queued_at,
        started_at: log.started_at,
        finished_at: log.finished_at,
        updated_at: log.updated_at,
        resource_changes: log.plan_summary.as_ref().map(|p| state::ResourceChanges {
            added: p.added,
            changed: p.changed,
            destroyed: p.destroyed,
            imported: p.imported,
        }),
        drift_detected: log.drift_detected,
    }
}

impl Poller {
    /// A poller starting now (finishes before now are not counted).
    #[must_use]
    pub fn new(
        client: Arc<Client>,
        clock: SharedClock,
        config: PollerConfig,
        snapshot: SnapshotHandle,
        metrics: Arc<Metrics>,
    ) -> Self {
        let store = Store::new(clock.now(), config.lookback).with_views(config.views);
        Self {
            client,
            clock,
            organization_id: config.organization_id.clone(),
            config,
            store,
            schedule: HashMap::new(),
            snapshot,
            metrics,
            health: Health::default(),
            events: Vec::new(),
            listed_per_project: HashMap::new(),
            listed_in_org: None,
            webhooks: None,
            watched: Arc::default(),
        }
    }

    /// Polls every `poll_interval` forever (the caller aborts the task to stop it); with
    /// webhooks, takes their observations in between polls.
    pub async fn run(mut self) {
        loop {
            let started = self.clock.now();
            let deadline = clock::add(started, self.config.poll_interval);
            if !self.poll(Some(deadline)).await {
                info!("serving the last good data until a poll succeeds");
            }
            let wait = clock::elapsed(self.clock.now(), deadline);
            self.wait_for_next_poll(wait).await;
        }
    }

    /// One poll; requests that would have to wait past `deadline` for the budget are left for
    /// the next poll. Returns whether it completed without error.
    pub async fn poll(&mut self, deadline: Option<Timestamp>) -> bool {
        let started = self.clock.now();
        self.client.set_deadline(deadline);
        let result = self.poll_inner().await;
        self.client.set_deadline(None);
        let finished = self.clock.now();
        self.health.polls_completed += 1;
        self.health.last_poll_duration = Some(clock::elapsed(started, finished));
        let ok = match &result {
            Ok(report) => {
                self.health.up = true;
                self.health.last_success = Some(finished);
                info!(
                    environments = report.environments,
                    reads = ?report.reads,
                    deferred = report.deferred,
                    tracked = self.store.tracked(),
                    budget_left = self.client.budget_remaining(),
                    took_ms = u64::try_from(clock::elapsed(started, finished).as_millis()).unwrap_or(u64::MAX),
                    "poll finished"
                );
                true
            }
            Err(e) => {
                self.health.up = false;
                self.metrics.poll_error(e.reason());
                warn!(error = %e, reason = %e.reason(), "poll failed");
                false
            }
        };
        if ok {
            self.publish();
        } else {
            // The last good values stay: only the health part of the snapshot changes.
            let mut snap = (*self.snapshot.load()).clone();
            snap.health = self.health.clone();
            self.snapshot.publish(snap);
        }
        ok
    }

    /// The state (tests compare it with the simulator's records).
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn publish(&mut self) {
        let now = self.clock.now();
        self.store.evict(now);
        let admitted = self.store.admit_projects();
        if admitted > 0 {
            debug!(
                projects = admitted,
                "projects given a project label value of their own"
            );
        }
        for labels in self.store.seen_label_sets() {
            self.metrics.ensure_series(labels);
        }
        let mut snap = state::aggregate(&self.store, now);
        self.health.backfill_pending = self.schedule.values().filter(|s| !s.backfilled).count();
        snap.health = self.health.clone();
        snap.watched_environments = self.watched.clone();
        self.snapshot.publish(snap);
    }

    fn ingest(&mut self, obs: &Observation, now: Timestamp) {
        if !self.config.filter.matches(obs) {
            // Filtered out, or no longer matching (a status filter and a run that moved on).
            self.store.remove(&obs.id);
            return;
        }
        self.store.ingest(obs, now, &mut self.events);
        for event in self.events.drain(..) {
            self.metrics.record(&event);
        }
    }

    async fn organization(&mut self) -> Result<String, PollError> {
        if let Some(id) = &self.organization_id {
            return Ok(id.clone());
        }
        let orgs = self.client.organizations().await?;
        match orgs.as_slice() {
            [only] => {
                info!(organization_id = %only.id, name = only.name.as_deref().unwrap_or(""), "watching the only organisation the key sees");
                self.organization_id = Some(only.id.clone());
                Ok(only.id.clone())
            }
            [] => Err(PollError::Organization(
                "the API key sees no organisation".into(),
            )),
            several => {
                let choices: Vec<String> = several
                    .iter()
                    .map(|o| format!("{} ({})", o.id, o.name.as_deref().unwrap_or("unnamed")))
                    .collect();
                Err(PollError::Organization(format!(
                    "the API key sees {} organisations; choose one with --organization-id: {}",
                    several.len(),
                    choices.join(", ")
                )))
            }
        }
    }

    /// One poll in named steps: the organisation, the listing, the plan, the reads.
    async fn poll_inner(&mut self) -> Result<PollReport, PollError> {
        let mut report = PollReport::default();
        let org = self.organization().await?;
        let now = self.clock.now();
        let Some(environments) = self.list_environments(&org).await? else {
            return Ok(report);
        };
        report.environments = environments.len();
        self.take_listing(&environments, now);
        let unfinished = self.unfinished();
        let plan = schedule::plan(
            &self.schedule,
            &unfinished,
            now,
            self.config.lookback,
            self.config.full_sync_interval.is_some(),
        );
        self.run_plan(&plan, &unfinished, &mut report).await?;
        Ok(report)
    }

    /// Lists the projects and the watched environments; `None` when the request budget ran out
    /// first (the poll then ends early without error, and the next one starts over).
    ///
    /// With `--projects`, the environments come from whichever costs fewer requests as last
    /// counted: one listing per watched project (`projectId`, Σ ⌊Eₚ/100⌋+1 pages) or the
    /// organisation's (⌊E/100⌋+1 pages, then dropped by project). Excluded projects' environments
    /// are dropped before anything of theirs is read.
    async fn list_environments(
        &mut self,
        org: &str,
    ) -> Result<Option<Vec<Environment>>, PollError> {
        let projects = match self.client.projects(org).await {
            Ok(p) => p,
            Err(e) if e.budget() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        debug!(projects = projects.len(), "projects listed");
        self.store
            .set_projects(projects.iter().map(|p| (p.id.as_str(), p.name.as_deref())));
        let filter = self.config.projects.clone();
        if filter.is_empty() {
            return self.list_org_environments(org).await;
        }
        let watched: HashSet<&str> = projects
            .iter()
            .filter(|p| filter.matches(&p.id, p.name.as_deref()))
            .map(|p| p.id.as_str())
            .collect();
        let pages = |n: usize| n / crate::client::PAGE_LIMIT + 1;
        let per_project: usize = watched
            .iter()
            .map(|p| pages(self.listed_per_project.get(*p).copied().unwrap_or(0)))
            .sum();
        let org_wide = self.listed_in_org.map_or(usize::MAX, pages);
        let environments = if filter.include.is_empty() || per_project >= org_wide {
            match self.list_org_environments(org).await? {
                Some(all) => all,
                None => return Ok(None),
            }
        } else {
            let mut all = Vec::new();
            for project in &watched {
                match self.client.project_environments(org, project).await {
                    Ok(envs) => {
                        self.listed_per_project
                            .insert((*project).to_owned(), envs.len());
                        all.extend(envs);
                    }
                    Err(e) if e.budget() => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            all
        };
        Ok(Some(
            environments
                .into_iter()
                .filter(|e| {
                    e.project_id
                        .as_deref()
                        .map_or(filter.include.is_empty(), |p| watched.contains(p))
                })
                .collect(),
        ))
    }

    /// The organisation's environments, counted per project for the next choice of listing.
    async fn list_org_environments(
        &mut self,
        org: &str,
    ) -> Result<Option<Vec<Environment>>, PollError> {
        match self.client.environments(org).await {
            Ok(envs) => {
                self.listed_in_org = Some(envs.len());
                self.listed_per_project.clear();
                for env in &envs {
                    if let Some(p) = &env.project_id {
                        *self.listed_per_project.entry(p.clone()).or_default() += 1;
                    }
                }
                Ok(Some(envs))
            }
            Err(e) if e.budget() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes in what the environment listing says: environments gone are forgotten, each
    /// listed one updates its record and schedule, and its embedded latest run is ingested.
    fn take_listing(&mut self, environments: &[Environment], now: Timestamp) {
        let listed: HashSet<&str> = environments.iter().map(|e| e.id.as_str()).collect();
        self.store.retain_environments(&listed);
        self.schedule.retain(|id, _| listed.contains(&**id));
        for env in environments {
            self.store.upsert_environment(
                &env.id,
                env.project_id.as_deref(),
                env.status.as_deref(),
                env.drift_status.as_deref(),
                env.is_archived,
            );
            let latest = env.latest_deployment_log.as_ref();
            let listed_latest = latest
                .map(|l| (l.id.clone(), l.status.clone()))
                .or_else(|| env.latest_deployment_log_id.clone().map(|id| (id, None)));
            let entry = self.schedule.entry(Arc::from(env.id.as_str())).or_default();
            entry.listed_latest = listed_latest;
            entry.archived = env.is_archived;
            entry.updated_at = env.updated_at;
            let latest = latest.map(|log| observation(log, &env.id));
            self.store
                .set_environment_view(&env.id, env.name.as_deref(), latest.as_ref());
            if let Some(obs) = latest {
                self.ingest(&obs, now);
            }
        }
        self.refresh_watched();
    }

    /// Runs the planned reads in order until the plan or the request budget ends.
    async fn run_plan(
        &mut self,
        plan: &[PlannedRead],
        unfinished: &HashMap<Arc<str>, Unfinished>,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        let mut backfill = BackfillProgress::start(plan, self.config.lookback, self.clock.now());
        for (i, read) in plan.iter().enumerate() {
            if let Err(e) = self.read(read, unfinished.get(&read.environment)).await {
                if e.budget() {
                    report.deferred = plan.len() - i;
                    info!(
                        deferred = report.deferred,
                        "request budget used up; the rest continues next poll"
                    );
                    break;
                }
                self.read_failed(read, e)?;
            }
            *report.reads.entry(kind_name(read.kind)).or_default() += 1;
            if read.kind == ReadKind::Backfill && backfill.step(self.clock.now(), &self.store) {
                self.publish();
            }
        }
        backfill.finish(&self.store);
        Ok(())
    }

    /// The error policy of one environment's read: what a key may not see and what was deleted
    /// meanwhile are skipped; anything else fails the poll.
    fn read_failed(&mut self, read: &PlannedRead, e: ClientError) -> Result<(), PollError> {
        match e {
            ClientError::Forbidden { .. } => {
                // A user key sees only some projects: carry on with what is visible.
                warn!(environment = %read.environment, error = %e, "environment not readable with this key; skipped until it changes");
                self.metrics.poll_error(e.reason());
                self.mark_read(read, self.clock.now());
                Ok(())
            }
            ClientError::NotFound { .. } => {
                // Deleted between the listing and this read; the next listing drops it.
                debug!(environment = %read.environment, "environment gone before its deployments were read");
                self.mark_read(read, self.clock.now());
                Ok(())
            }
            e => Err(e.into()),
        }
    }

    /// Unfinished runs per environment.
    fn unfinished(&self) -> HashMap<Arc<str>, Unfinished> {
        let mut out: HashMap<Arc<str>, Unfinished> = HashMap::new();
        for (id, record) in self.store.deployments() {
            if !record.is_finished() {
                let u = out.entry(record.environment.clone()).or_default();
                u.ids.push(id.into());
                u.oldest_created = Some(
                    u.oldest_created
                        .map_or(record.created_at, |t| t.min(record.created_at)),
                );
            }
        }
        out
    }

    /// Reads one environment's deployments; `open` are its unfinished runs as of the plan.
    async fn read(
        &mut self,
        read: &PlannedRead,
        open: Option<&Unfinished>,
    ) -> Result<(), ClientError> {
        let to = self.clock.now();
        let query = DeploymentQuery {
            from: read.from,
            to,
            deployment_types: self.config.filter.deployment_types.clone(),
            statuses: self.config.filter.statuses.clone(),
            user_ids: self.config.filter.user_ids.clone(),
        };
        let logs = self.client.deployments(&read.environment, &query).await?;
        let now = self.clock.now();
        let mut seen = HashSet::with_capacity(logs.len());
        for log in &logs {
            seen.insert(log.id.as_str());
            let obs = observation(log, &read.environment);
            self.ingest(&obs, now);
        }
        {
            // A tracked unfinished run the listing should have shown but did not: ask for it
            // directly, so a deleted run, or one that left a status filter, cannot stay
            // "in progress" forever.
            // Runs that became unfinished during this poll were in this listing or the
            // environment listing, so the plan-time set is enough: no scan of every record.
            let missing: Vec<String> = open
                .map_or(&[][..], |u| u.ids.as_slice())
                .iter()
                .filter(|id| !seen.contains(&***id))
                .filter(|id| {
                    self.store.deployment(id).is_some_and(|r| {
                        !r.is_finished() && r.created_at >= read.from && r.created_at <= to
                    })
                })
                .map(std::string::ToString::to_string)
                .collect();
            for id in missing {
                match self.client.deployment(&id).await {
                    Ok(log) => {
                        let obs = observation(&log, &read.environment);
                        self.ingest(&obs, self.clock.now());
                    }
                    Err(ClientError::NotFound { .. }) => self.store.remove(&id),
                    Err(e) => return Err(e),
                }
            }
        }
        self.mark_read(read, to);
        Ok(())
    }

    fn mark_read(&mut self, read: &PlannedRead, to: Timestamp) {
        let full_sync = self.config.full_sync_interval;
        if let Some(s) = self.schedule.get_mut(&read.environment) {
            s.read_latest = s.listed_latest.clone();
            s.last_read = Some(to);
            if let Some(interval) = full_sync {
                s.next_full_sync = Some(match read.kind {
                    ReadKind::Backfill => {
                        schedule::first_full_sync(&read.environment, to, interval)
                    }
                    ReadKind::FullSync => clock::add(to, interval),
                    _ => s.next_full_sync.unwrap_or_else(|| clock::add(to, interval)),
                });
            }
            s.backfilled = true;
        }
    }
}

/// The start-up backfill's progress, logged (and published) every [`PROGRESS_EVERY`].
struct BackfillProgress {
    total: usize,
    done: usize,
    last_logged: Timestamp,
}

impl BackfillProgress {
    /// Counts the backfill reads of `plan`, and says when there are any.
    fn start(plan: &[PlannedRead], lookback: Duration, now: Timestamp) -> Self {
        let total = plan.iter().filter(|r| r.kind == ReadKind::Backfill).count();
        if total > 0 {
            info!(environments = total, lookback = %humantime::format_duration(lookback), "backfilling the lookback window");
        }
        Self {
            total,
            done: 0,
            last_logged: now,
        }
    }

    /// One more backfill read done at `now`; true when it is time to log and publish progress.
    fn step(&mut self, now: Timestamp, store: &Store) -> bool {
        self.done += 1;
        if clock::elapsed(self.last_logged, now) < PROGRESS_EVERY {
            return false;
        }
        self.last_logged = now;
        info!(
            done = self.done,
            of = self.total,
            tracked = store.tracked(),
            "backfill progress"
        );
        true
    }

    /// Says when every backfill read of the plan was done.
    fn finish(&self, store: &Store) {
        if self.total > 0 && self.done == self.total {
            info!(
                environments = self.total,
                tracked = store.tracked(),
                "backfill complete"
            );
        }
    }
}

fn kind_name(kind: ReadKind) -> &'static str {
    match kind {
        ReadKind::Changed => "changed",
        ReadKind::Unfinished => "unfinished",
        ReadKind::Backfill => "backfill",
        ReadKind::FullSync => "full_sync",
    }
}
