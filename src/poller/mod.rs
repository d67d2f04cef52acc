//! The poller: the only part that knows about time, schedules, paging budgets and retries of
//! whole polls. It reads env0 through the [`Client`], feeds the [`Store`] and publishes a fresh
//! [`Snapshot`](crate::state::Snapshot) after every poll (and during a long backfill).

mod listing;
pub mod optional;
mod reads;
pub mod schedule;
mod state_file;
mod unstarted;
mod webhooks;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::client::{Client, Error as ClientError, Reason};
use crate::clock::{self, SharedClock};
use crate::filter::{DeploymentFilter, ProjectFilter};
use crate::metrics::Metrics;
use crate::state::{self, Event, Health, Observation, SnapshotHandle, Store, Views};
use schedule::EnvSchedule;

/// Settings of the poller.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    /// Organisation to watch; `None` = the only one the key sees.
    pub organization_id: Option<String>,
    /// Time between polls; also the request deadline of one poll.
    pub poll_interval: Duration,
    /// Window of deployments kept and shown.
    pub lookback: Duration,
    /// Period of full re-reads per environment; `None` = off. Stretched when the request budget
    /// cannot hold it for the environments listed (see [`schedule::full_sync_interval_in_force`]).
    pub full_sync_interval: Option<Duration>,
    /// The longest gap between re-reads of an environment's unfinished runs other than its
    /// latest (`--unfinished-reread-max-interval`): how stale such a run's status may get, plus
    /// one poll.
    pub unfinished_reread_max: Duration,
    /// The request budget per 60 s (`--max-requests-per-minute`), for the full re-reads' share.
    pub max_requests_per_minute: u32,
    /// Which deployments are watched.
    pub filter: DeploymentFilter,
    /// Which projects are watched.
    pub projects: ProjectFilter,
    /// The opt-in views.
    pub views: Views,
    /// The share of the organisation's environments this poller reads (`--shard`).
    pub shard: crate::shard::Shard,
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
    /// Full re-reads due but left for later polls: more than this poll's share of the cycle.
    pub full_syncs_held: usize,
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

/// How far env0's clock may be from ours, in either direction, while nothing tells how far (no
/// `Date` header): reads reach this far past our time, and the window's old edge trails by at
/// most this much.
pub const UNKNOWN_OFFSET_ALLOWANCE: Duration = Duration::from_secs(15 * 60);

/// The earliest and the latest env0's clock can read when ours reads `local`, given the
/// client's estimate of env0's clock minus ours and its source.
///
/// - From a `Date` header the offset is exact (to the second): both bounds are `local + offset`.
/// - From records it is a lower bound (env0 had reached its newest timestamp when the page
///   arrived), which trails by the age of that record: the earliest is `local + offset`, but
///   never more than [`UNKNOWN_OFFSET_ALLOWANCE`] behind our clock (a quiet organisation's newest
///   record may be hours old); the latest is [`UNKNOWN_OFFSET_ALLOWANCE`] past the larger of
///   our clock and that bound.
/// - With neither, env0's clock is taken to be within [`UNKNOWN_OFFSET_ALLOWANCE`] of ours.
///
/// No count depends on which: the earliest sets the window's old edge and `fromDate` (reading
/// further back costs nothing, records are deduplicated by id), the latest sets `toDate`.
#[must_use]
pub fn env0_time_bounds(
    local: Timestamp,
    offset: Option<jiff::SignedDuration>,
    source: crate::clock::OffsetSource,
) -> (Timestamp, Timestamp) {
    use crate::clock::OffsetSource;
    let shift = |d: jiff::SignedDuration| local.checked_add(d).unwrap_or(local);
    let allowance = jiff::SignedDuration::from_secs(
        i64::try_from(UNKNOWN_OFFSET_ALLOWANCE.as_secs()).unwrap_or(i64::MAX),
    );
    match (offset, source) {
        (Some(offset), OffsetSource::DateHeader) => (shift(offset), shift(offset)),
        (Some(bound), OffsetSource::Records) => (
            shift(bound.max(-allowance)),
            shift(bound.max(jiff::SignedDuration::ZERO) + allowance),
        ),
        _ => (shift(-allowance), shift(allowance)),
    }
}

/// Polls env0 and keeps the state.
pub struct Poller {
    /// What the last successful poll did.
    last_report: Option<PollReport>,
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
    /// Project names (by id) as last listed: they stand in for `--projects` by name while the
    /// projects listing is unavailable.
    project_names: HashMap<String, Option<String>>,
    /// Observations from the webhook receiver, taken in between polls; `None` without webhooks.
    webhooks: Option<mpsc::Receiver<Observation>>,
    /// The environments of the last listing, published for the webhook receiver.
    watched: Arc<HashSet<Arc<str>>>,
    /// Whether env0's dated listings hide runs that have not started (see [`unstarted`]).
    unstarted: unstarted::UnstartedRuns,
    /// Listed environments whose deployments the key may not read (403 on their last read).
    unreadable: HashSet<Arc<str>>,
    /// When (our clock) the current poll's reads were planned: the exporter's own schedules
    /// count from it.
    planned_at: Timestamp,
    /// The full re-read interval kept: the configured one, or longer when the budget cannot
    /// hold it.
    full_sync_in_force: Option<Duration>,
    /// The stretched interval last warned about (`None`: the configured one is kept).
    full_sync_warned: Option<Duration>,
    /// The start-up backfill under way, across polls.
    backfill: Option<reads::BackfillProgress>,
    /// The state file, with `--state-file`.
    state_file: Option<state_file::StateFileState>,
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
        let planned_at = clock.now();
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
            project_names: HashMap::new(),
            webhooks: None,
            watched: Arc::default(),
            unstarted: unstarted::UnstartedRuns::default(),
            unreadable: HashSet::new(),
            planned_at,
            full_sync_in_force: None,
            full_sync_warned: None,
            backfill: None,
            state_file: None,
            last_report: None,
        }
    }

    /// Polls every `poll_interval` forever (the caller aborts the task to stop it); with
    /// webhooks, takes their observations in between polls.
    pub async fn run(self) {
        self.run_until(std::future::pending()).await;
    }

    /// Like [`run`](Self::run), until `stop` completes: then the poll or wait under way is
    /// dropped and, with a state file, the state is written once more.
    pub async fn run_until(mut self, stop: impl Future<Output = ()>) {
        let mut stop = std::pin::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                () = self.cycle() => {}
            }
        }
        self.save_state().await;
    }

    /// One poll, the state file if due, and the wait for the next poll.
    async fn cycle(&mut self) {
        let started = self.clock.now();
        let deadline = clock::add(started, self.config.poll_interval);
        if !self.poll(Some(deadline)).await {
            info!("serving the last good data until a poll succeeds");
        }
        self.save_state_if_due();
        let wait = clock::elapsed(self.clock.now(), deadline);
        self.wait_for_next_poll(wait).await;
    }

    /// What the last successful poll did (reads by kind, deferred reads), for measurements.
    #[must_use]
    pub fn last_report(&self) -> Option<&PollReport> {
        self.last_report.as_ref()
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
                self.note_poll_for_state_file(report);
                self.health.up = true;
                self.health.last_success = Some(finished);
                info!(
                    environments = report.environments,
                    reads = ?report.reads,
                    deferred = report.deferred,
                    full_syncs_held = report.full_syncs_held,
                    tracked = self.store.tracked(),
                    budget_left = self.client.budget_remaining(),
                    took_ms = u64::try_from(clock::elapsed(started, finished).as_millis()).unwrap_or(u64::MAX),
                    "poll finished"
                );
                self.last_report = Some(report.clone());
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
            self.note_full_sync_health(self.env0_now());
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

    /// env0's time now, as far as the exporter can tell, at its earliest (see
    /// [`env0_time_bounds`]): exact with env0's `Date` header, else a lower bound. Every
    /// comparison with env0's timestamps (the lookback window, `fromDate`, the last read) uses
    /// this, never our clock alone: an estimate that trails only widens what is read and kept.
    pub(super) fn env0_now(&self) -> Timestamp {
        self.env0_time().0
    }

    /// env0's time now at its latest (see [`env0_time_bounds`]): what `toDate` must reach.
    pub(super) fn env0_latest(&self) -> Timestamp {
        self.env0_time().1
    }

    fn env0_time(&self) -> (Timestamp, Timestamp) {
        let (offset, source) = self.client.clock_estimate();
        env0_time_bounds(self.clock.now(), offset, source)
    }

    fn publish(&mut self) {
        let now = self.env0_now();
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
        self.note_full_sync_health(now);
        (self.health.clock_offset, self.health.clock_source) = self.client.clock_estimate();
        snap.health = self.health.clone();
        snap.watched_environments = self.watched.clone();
        snap.unreadable_environments = self.unreadable.len();
        self.snapshot.publish(snap);
    }

    /// The full re-reads' health: the interval kept and the age of the oldest full read (our
    /// clock), among the environments due them.
    fn note_full_sync_health(&mut self, now: Timestamp) {
        self.health.full_sync_interval = self.full_sync_in_force;
        let window_start = clock::sub(now, self.config.lookback);
        let local = self.clock.now();
        self.health.full_sync_oldest_age = self.full_sync_in_force.and_then(|_| {
            self.schedule
                .values()
                .filter(|s| s.backfilled && !s.full_sync_exempt(window_start))
                .filter_map(|s| s.last_full_read)
                .min()
                .map(|oldest| clock::elapsed(oldest, local))
        });
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

    /// One poll in named steps: the organisation, the listing, the plan, the reads.
    async fn poll_inner(&mut self) -> Result<PollReport, PollError> {
        let mut report = PollReport::default();
        let org = self.organization().await?;
        self.restore_state(&org).await;
        let Some(environments) = self.list_environments(&org).await? else {
            return Ok(report);
        };
        // After the first answers: their `Date` headers told env0's time.
        let now = self.env0_now();
        self.planned_at = self.clock.now();
        report.environments = environments.len();
        self.take_listing(&environments, now);
        // Before the first reads: they depend on what the date filter does.
        self.probe_listing(&environments).await;
        self.keep_full_sync_interval(now);
        let unfinished = self.unfinished();
        let mut plan = schedule::plan(
            &self.schedule,
            &unfinished,
            schedule::PlanTime {
                env0: now,
                local: self.planned_at,
            },
            self.config.lookback,
            self.config.full_sync_interval.is_some(),
        );
        if self.full_sync_in_force.is_some() {
            // Full re-reads come last in the plan, the oldest due first: keep this poll's share.
            let capacity = schedule::full_sync_capacity(
                self.schedule.len(),
                self.config.max_requests_per_minute,
                self.config.poll_interval,
            );
            let share = schedule::full_syncs_per_poll(capacity, self.config.poll_interval);
            let due = plan
                .iter()
                .filter(|r| r.kind == schedule::ReadKind::FullSync)
                .count();
            report.full_syncs_held = due.saturating_sub(share);
            plan.truncate(plan.len() - report.full_syncs_held);
        }
        self.run_plan(&plan, &unfinished, &mut report).await?;
        Ok(report)
    }

    /// Chooses the full re-read interval for the environments now listed, warning when the
    /// request budget cannot hold the configured one (on the first listing, then only when the
    /// interval that can be kept moves by more than a fifth).
    fn keep_full_sync_interval(&mut self, now: Timestamp) {
        let Some(configured) = self.config.full_sync_interval else {
            return;
        };
        let window_start = clock::sub(now, self.config.lookback);
        let eligible = self
            .schedule
            .values()
            .filter(|s| !s.full_sync_exempt(window_start))
            .count();
        let budget = self.config.max_requests_per_minute;
        let poll = self.config.poll_interval;
        let listed = self.schedule.len();
        let in_force =
            schedule::full_sync_interval_in_force(configured, listed, eligible, budget, poll);
        if in_force > configured {
            let moved = self.full_sync_warned.is_none_or(|warned| {
                let ratio = in_force.as_secs_f64() / warned.as_secs_f64().max(1.0);
                !(0.8..=1.25).contains(&ratio)
            });
            if moved {
                warn!(
                    environments = eligible,
                    configured = %humantime::format_duration(configured),
                    kept = %humantime::format_duration(in_force),
                    max_requests_per_minute = budget,
                    full_reads_per_minute = schedule::full_sync_capacity(listed, budget, poll).floor(),
                    "the request budget cannot re-read every environment within --full-sync-interval; full re-reads are spread over a longer interval (env0_exporter_full_sync_duration_seconds); raise --max-requests-per-minute or --poll-interval, or narrow with --projects"
                );
                self.full_sync_warned = Some(in_force);
            }
        } else if self.full_sync_warned.take().is_some() {
            info!(
                environments = eligible,
                interval = %humantime::format_duration(configured),
                "the request budget holds --full-sync-interval again"
            );
        }
        self.full_sync_in_force = Some(in_force);
    }
}

#[cfg(test)]
mod env0_time_tests {
    use super::*;
    use crate::clock::OffsetSource;
    use jiff::SignedDuration;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn a_date_header_gives_env0s_time_exactly() {
        let local = ts("2026-07-01T12:00:00Z");
        let ahead = env0_time_bounds(
            local,
            Some(SignedDuration::from_mins(10)),
            OffsetSource::DateHeader,
        );
        assert_eq!(
            ahead,
            (ts("2026-07-01T12:10:00Z"), ts("2026-07-01T12:10:00Z"))
        );
    }

    #[test]
    fn records_bound_env0s_time_from_below_and_to_date_reaches_fifteen_minutes_past() {
        let local = ts("2026-07-01T12:00:00Z");
        let at = |secs: i64| {
            env0_time_bounds(
                local,
                Some(SignedDuration::from_secs(secs)),
                OffsetSource::Records,
            )
        };
        // env0 ten minutes ahead, its newest record 5 s old.
        assert_eq!(
            at(595),
            (ts("2026-07-01T12:09:55Z"), ts("2026-07-01T12:24:55Z"))
        );
        // env0 ten minutes behind, its newest record 5 s old: toDate still covers our clock.
        assert_eq!(
            at(-605),
            (ts("2026-07-01T11:49:55Z"), ts("2026-07-01T12:15:00Z"))
        );
        // A quiet organisation: the newest record is three hours old; the edge trails 15 min.
        assert_eq!(
            at(-3 * 3600),
            (ts("2026-07-01T11:45:00Z"), ts("2026-07-01T12:15:00Z"))
        );
    }

    #[test]
    fn with_nothing_known_env0_is_within_fifteen_minutes_of_us() {
        let local = ts("2026-07-01T12:00:00Z");
        assert_eq!(
            env0_time_bounds(local, None, OffsetSource::None),
            (ts("2026-07-01T11:45:00Z"), ts("2026-07-01T12:15:00Z"))
        );
    }

    #[test]
    fn every_offset_within_fifteen_minutes_lies_between_the_bounds() {
        let local = ts("2026-07-01T12:00:00Z");
        for minutes in -15..=15 {
            let truth = local
                .checked_add(SignedDuration::from_mins(minutes))
                .unwrap_or(local);
            // What records can show: a bound at or below the truth, up to an hour old.
            for age in [0, 1, 30, 600, 3600] {
                let bound = SignedDuration::from_mins(minutes) - SignedDuration::from_secs(age);
                let (earliest, latest) =
                    env0_time_bounds(local, Some(bound), OffsetSource::Records);
                assert!(
                    earliest <= truth && truth <= latest,
                    "{minutes} min, record {age} s old"
                );
            }
            let (earliest, latest) = env0_time_bounds(local, None, OffsetSource::None);
            assert!(
                earliest <= truth && truth <= latest,
                "{minutes} min, nothing known"
            );
        }
    }
}
