//! The poller: the only part that knows about time, schedules, paging budgets and retries of
//! whole polls. It reads env0 through the [`Client`], feeds the [`Store`] and publishes a fresh
//! [`Snapshot`](crate::state::Snapshot) after every poll (and during a long backfill).
//!
//! [`Poller`] wires parts that each own their data and are tested without a client:
//! [`Schedule`] (which environment is read when), [`Backfill`] (the start-up backfill's
//! progress), [`DateFilterLearning`] (what env0's date filter hides), [`WebhookInbox`]
//! (observations in, watched environments out), [`StateFileKeeper`] (`--state-file`) and
//! [`Known`] (the store, the health and their publication). What needs env0 stays here and in
//! [`listing`] (the organisation, its projects and environments), [`reads`] (the plan's reads)
//! and [`unstarted`] (the probe and the undated reads of queued runs). Each poll takes a handle
//! of the client with its own deadline, passed down to every call.

mod backfill;
mod coverage;
mod date_filter;
mod known;
mod listing;
pub mod optional;
mod reads;
pub mod schedule;
mod state_file_keeper;
mod unstarted;
mod webhooks;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::client::{Client, Error as ClientError, Reason};
use crate::clock::{self, SharedClock};
use crate::filter::{DeploymentFilter, ProjectFilter};
use crate::metrics::Metrics;
use crate::state::{Observation, SnapshotHandle, Store, Views};
use crate::state_file_format::StateFileConfig;
use backfill::Backfill;
use date_filter::DateFilterLearning;
use known::Known;
use schedule::Schedule;
use state_file_keeper::StateFileKeeper;
use webhooks::WebhookInbox;

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

/// Polls env0 and keeps the state: wires its parts, each of which owns its data.
pub struct Poller {
    /// env0, without a deadline: each poll takes a handle of its own with the poll's deadline.
    client: Arc<Client>,
    clock: SharedClock,
    config: PollerConfig,
    /// The organisation watched and its projects' names, as last listed.
    organization: listing::Organization,
    /// The store, the health, and where they are published.
    known: Known,
    /// Which environments are read when, and what the listings and the budget said.
    schedule: Schedule,
    /// The start-up backfill under way, across polls.
    backfill: Backfill,
    /// Whether env0's dated listings hide runs that have not started (see [`unstarted`]).
    date_filter: DateFilterLearning,
    /// Observations from the webhook receiver, and the watched environments sent to it.
    webhooks: WebhookInbox,
    /// The state file, with `--state-file`.
    state_file: StateFileKeeper,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller")
            .field("organization_id", &self.organization.id())
            .field("environments", &self.schedule.len())
            .field("tracked", &self.known.store.tracked())
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
        Self {
            client,
            organization: listing::Organization::new(config.organization_id.clone()),
            known: Known::new(store, snapshot, metrics),
            schedule: Schedule::new(clock.now()),
            backfill: Backfill::default(),
            date_filter: DateFilterLearning::default(),
            webhooks: WebhookInbox::default(),
            state_file: StateFileKeeper::default(),
            clock,
            config,
        }
    }

    /// Restores from and writes to the state file `config` describes.
    pub fn set_state_file(&mut self, config: StateFileConfig) {
        self.state_file = StateFileKeeper::new(config, &self.config);
    }

    /// Takes webhook observations from `receiver` between polls (see [`run`](Self::run)).
    pub fn set_webhooks(&mut self, receiver: mpsc::Receiver<Observation>) {
        self.webhooks.connect(receiver);
    }

    /// The environments of the last listing, as they change: what the webhook receiver
    /// accepts deliveries for. Sent on their own channel, so a change publishes no snapshot.
    #[must_use]
    pub fn watched_environments(&self) -> watch::Receiver<Arc<HashSet<Arc<str>>>> {
        self.webhooks.subscribe()
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
        self.state_file.save_if_due(
            &*self.clock,
            self.organization.id(),
            (&self.schedule, &self.webhooks.coverage),
            &self.known,
        );
        // Until the deadline itself, not for the time left when looked at: a clock moved
        // between the two readings (a test's, as soon as the poll count shows) would push the
        // next poll back by that much.
        self.wait_for_next_poll(deadline).await;
    }

    /// Writes the state file now and waits for it (at shutdown, and after `once`'s poll),
    /// after any write under way.
    pub async fn save_state(&mut self) {
        self.state_file
            .save(
                &*self.clock,
                self.organization.id(),
                (&self.schedule, &self.webhooks.coverage),
                &self.known,
            )
            .await;
    }

    /// What the last successful poll did (reads by kind, deferred reads), for measurements.
    #[must_use]
    pub fn last_report(&self) -> Option<&PollReport> {
        self.known.last_report.as_ref()
    }

    /// One poll; requests that would have to wait past `deadline` for the budget are left for
    /// the next poll. Returns whether it completed without error.
    pub async fn poll(&mut self, deadline: Option<Timestamp>) -> bool {
        let started = self.clock.now();
        let client = self.client.with_deadline(deadline);
        let result = self.poll_inner(&client).await;
        let finished = self.clock.now();
        let health = &mut self.known.health;
        health.polls_completed += 1;
        health.last_poll_duration = Some(clock::elapsed(started, finished));
        let ok = match &result {
            Ok(report) => {
                self.state_file.note_poll(report);
                health.up = true;
                health.last_success = Some(finished);
                info!(
                    environments = report.environments,
                    reads = ?report.reads,
                    deferred = report.deferred,
                    full_syncs_held = report.full_syncs_held,
                    tracked = self.known.store.tracked(),
                    budget_left = self.client.budget_remaining(),
                    took_ms = u64::try_from(clock::elapsed(started, finished).as_millis()).unwrap_or(u64::MAX),
                    "poll finished"
                );
                self.known.last_report = Some(report.clone());
                true
            }
            Err(e) => {
                health.up = false;
                self.known.metrics.poll_error(e.reason());
                warn!(error = %e, reason = %e.reason(), "poll failed");
                false
            }
        };
        if ok {
            self.publish();
        } else {
            // The last good values stay: only the health part of the snapshot changes.
            self.note_reread_health(self.env0_now());
            self.known.publish_health();
        }
        ok
    }

    /// The state (tests compare it with the simulator's records).
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.known.store
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
        self.known.health.backfill_pending = self.schedule.backfill_pending();
        self.note_reread_health(now);
        (
            self.known.health.clock_offset,
            self.known.health.clock_source,
        ) = self.client.clock_estimate();
        let window_start = self.known.store.cutoff(now);
        self.known
            .publish(now, self.schedule.unreadable_count(window_start));
    }

    /// The re-reads' health: the full re-read interval kept and the age of the oldest full read
    /// (our clock), among the environments due them; the repair interval; what the webhook
    /// deliveries cover.
    fn note_reread_health(&mut self, now: Timestamp) {
        self.known.health.full_sync_interval = self.schedule.full_sync_in_force();
        self.known.health.unfinished_reread_interval = self.schedule.unfinished_reread_in_force();
        self.known.health.full_sync_oldest_age =
            self.schedule
                .full_sync_oldest_age(&self.config, now, self.clock.now());
        let types = self
            .known
            .store
            .seen_label_sets()
            .map(|l| &l.deployment_type);
        self.known.health.webhook_coverage =
            self.webhooks.coverage_figures(types, self.clock.now());
    }

    fn ingest(&mut self, obs: &Observation, now: Timestamp) {
        self.known.ingest(obs, now, &self.config.filter);
    }

    /// One poll in named steps: the organisation, the listing, the plan, the reads.
    async fn poll_inner(&mut self, client: &Client) -> Result<PollReport, PollError> {
        let mut report = PollReport::default();
        let org = self.organization(client).await?;
        self.restore_state(&org).await;
        // While a backfill is pending, the polls between two listings plan from the last one.
        // A listing is taken in page by page: the decoded listing (about 1 KB an environment)
        // is never held whole.
        let listing = if self.schedule.listing_due(&self.config) {
            let Some(listing) = self.list_environments(client, &org).await? else {
                return Ok(report);
            };
            Some(listing)
        } else {
            self.schedule.note_listing(false);
            None
        };
        // After the first answers: their `Date` headers told env0's time.
        let now = self.env0_now();
        let planned_at = self.clock.now();
        report.environments = self.schedule.len();
        if let Some(listing) = listing {
            report.environments = listing.len();
            // Before the first reads: they depend on what the date filter does.
            self.probe_listing(client, listing.candidates()).await;
        }
        let at = schedule::PlanTime {
            env0: now,
            local: planned_at,
        };
        self.schedule.keep_full_sync_interval(&self.config, at);
        // With webhooks live, the deliveries bring these runs' changes: they are re-read only to
        // repair a lost delivery (see `schedule::unfinished`).
        let polling_only =
            !schedule::unfinished::webhooks_live(self.webhooks.last_delivery(), planned_at);
        let unfinished = self.unfinished(now, polling_only);
        let (plan, held) = self
            .schedule
            .plan(&self.config, &unfinished, at, polling_only);
        report.full_syncs_held = held;
        self.run_plan(client, &plan, &unfinished, &mut report)
            .await?;
        Ok(report)
    }

    /// At the first poll that knows the organisation `org`: restores from the state file, if
    /// there is one and it may be used.
    async fn restore_state(&mut self, org: &str) {
        let (client, clock) = (&self.client, &self.clock);
        let env0_now = || {
            let (offset, source) = client.clock_estimate();
            env0_time_bounds(clock.now(), offset, source).0
        };
        self.state_file
            .restore(
                org,
                &self.config,
                (&mut self.schedule, &mut self.webhooks.coverage),
                &mut self.known.store,
                &**clock,
                &env0_now,
            )
            .await;
    }
}

/// What the parts' tests share: settings and listed environments made by hand.
#[cfg(test)]
pub(crate) mod test_support {
    use std::time::Duration;

    use jiff::Timestamp;

    use super::PollerConfig;
    use crate::client::Environment;

    pub(crate) fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// A poller's settings: 60 s polls, a day's lookback, no full re-reads, 500 requests a
    /// minute.
    pub(crate) fn config() -> PollerConfig {
        PollerConfig {
            organization_id: Some("o".into()),
            poll_interval: Duration::from_secs(60),
            lookback: Duration::from_secs(86_400),
            full_sync_interval: None,
            unfinished_reread_max: Duration::from_secs(600),
            max_requests_per_minute: 500,
            filter: crate::filter::DeploymentFilter::default(),
            projects: crate::filter::ProjectFilter::default(),
            views: crate::state::Views::default(),
            shard: crate::shard::Shard::default(),
        }
    }

    /// An environment as listed, of project `p`, its latest run `latest` (by id only).
    pub(crate) fn environment(id: &str, latest: Option<&str>) -> Environment {
        Environment {
            id: id.into(),
            name: None,
            project_id: Some("p".into()),
            status: None,
            drift_status: None,
            latest_deployment_log_id: latest.map(Into::into),
            latest_deployment_log: None,
            updated_at: None,
            is_archived: false,
        }
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
