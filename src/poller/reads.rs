//! The deployment reads of a poll: running the plan in order within the request budget, the
//! error policy of one read, the direct look-up of tracked runs a listing no longer shows, and
//! the start-up backfill's progress.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::{debug, info, warn};

use super::optional::OptionalCall;
use super::schedule::{self, PlannedRead, ReadKind, Unfinished};
use super::{PollError, PollReport, Poller};
use crate::client::{DeploymentQuery, Error as ClientError};
use crate::clock;
use crate::observation::observation;
use crate::state::Store;

/// How far past env0's estimated now `toDate` reaches: the clock offset is measured to the
/// second, and a run created in env0's last second must not fall outside the listing.
const TO_DATE_MARGIN: Duration = Duration::from_secs(60);

/// How often a long poll (the start-up backfill) republishes what it has so far.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The longest gap between two log lines of the backfill's progress (one is also logged at every
/// tenth of it).
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(60);

impl Poller {
    /// Runs the planned reads in order until the plan or the request budget ends.
    pub(super) async fn run_plan(
        &mut self,
        plan: &[PlannedRead],
        unfinished: &HashMap<Arc<str>, Unfinished>,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        self.start_backfill(plan);
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
            if read.kind == ReadKind::Backfill {
                let requests = self.metrics.requests_made();
                let budget = self.config.max_requests_per_minute;
                let now = self.clock.now();
                if let Some(progress) = &mut self.backfill
                    && progress.step(now, requests, budget, &self.store)
                {
                    self.publish();
                }
            }
        }
        self.finish_backfill();
        if report.deferred == 0 {
            self.catch_up_unstarted().await?;
        }
        Ok(())
    }

    /// The error policy of one environment's read: what a key may not see and what was deleted
    /// meanwhile are skipped; anything else fails the poll.
    pub(super) fn read_failed(
        &mut self,
        read: &PlannedRead,
        e: ClientError,
    ) -> Result<(), PollError> {
        match e {
            ClientError::Forbidden { .. } => {
                // A user key sees only some projects: carry on with what is visible.
                warn!(environment = %read.environment, error = %e, "environment not readable with this key; skipped until it changes");
                self.metrics.poll_error(e.reason());
                self.unreadable.insert(read.environment.clone());
                let held = self.held_when_planned(read);
                self.mark_read(read, self.env0_now(), (held, held));
                Ok(())
            }
            ClientError::NotFound { .. } => {
                // Deleted between the listing and this read; the next listing drops it.
                debug!(environment = %read.environment, "environment gone before its deployments were read");
                let held = self.held_when_planned(read);
                self.mark_read(read, self.env0_now(), (held, held));
                Ok(())
            }
            e => Err(e.into()),
        }
    }

    /// Unfinished runs per environment.
    pub(super) fn unfinished(&self) -> HashMap<Arc<str>, Unfinished> {
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
    pub(super) async fn read(
        &mut self,
        read: &PlannedRead,
        open: Option<&Unfinished>,
    ) -> Result<(), ClientError> {
        // `toDate` in env0's clock at its latest, a little ahead for what the offset cannot
        // tell (a `Date` header is to the second); the read is noted at env0's earliest, so
        // the next incremental read starts early enough whatever the estimate's error.
        let read_at = self.env0_now();
        let to = clock::add(self.env0_latest(), TO_DATE_MARGIN);
        let query = DeploymentQuery {
            from: read.from,
            to,
            deployment_types: self.config.filter.deployment_types.clone(),
            statuses: self.config.filter.statuses.clone(),
            user_ids: self.config.filter.user_ids.clone(),
        };
        let logs = self.client.deployments(&read.environment, &query).await?;
        let now = self.env0_now();
        let mut seen = HashSet::with_capacity(logs.len());
        self.learn_from_listing(read.from, &logs);
        let latest = self.listed_latest_id(&read.environment);
        let held_before =
            open.and_then(|u| schedule::unfinished_fingerprint(&u.ids, latest.as_deref()));
        for log in &logs {
            seen.insert(log.id.clone());
            let obs = observation(log, &read.environment);
            self.ingest(&obs, now);
        }
        self.read_unstarted(&read.environment, &query, read.from, &mut seen)
            .await?;
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
                        if log.started_at.is_none()
                            && !crate::state::is_finished(log.status.as_deref(), log.finished_at)
                        {
                            self.note_hidden_unstarted(
                                "a queued run created within a dated listing's dates was not in it",
                            );
                        }
                        let obs = observation(&log, &read.environment);
                        self.ingest(&obs, self.env0_now());
                    }
                    Err(ClientError::NotFound { .. }) => {
                        self.optional_available(OptionalCall::Deployment);
                        self.store.remove(&id);
                        continue;
                    }
                    // The budget stops the poll's reads; a rejected key (401) fails the poll.
                    Err(e) if e.budget() || matches!(e, ClientError::Auth { .. }) => {
                        return Err(e);
                    }
                    // Optional: the run keeps its last status until a listing shows it.
                    Err(e) => {
                        self.optional_unavailable(OptionalCall::Deployment, &e);
                        continue;
                    }
                }
                self.optional_available(OptionalCall::Deployment);
            }
        }
        self.unreadable.remove(&read.environment);
        // The environment's baseline is set by its first read that worked: what its runs do
        // from here on is observed by this process.
        self.store.mark_baselined(&read.environment);
        // What the read leaves unfinished: the listing reached back to the oldest unfinished
        // run, so the plan's set and this listing cover them all.
        let still_open: Vec<Box<str>> = open
            .map_or(&[][..], |u| u.ids.as_slice())
            .iter()
            .map(|id| &**id)
            .chain(logs.iter().map(|log| log.id.as_str()))
            .filter(|id| self.store.deployment(id).is_some_and(|r| !r.is_finished()))
            .map(Box::from)
            .collect();
        let held_after = schedule::unfinished_fingerprint(&still_open, latest.as_deref());
        self.mark_read(read, read_at, (held_before, held_after));
        Ok(())
    }

    /// The environment's latest run as its listing showed it this poll.
    fn listed_latest_id(&self, environment: &str) -> Option<String> {
        self.schedule
            .get(environment)
            .and_then(|s| s.listed_latest.as_ref())
            .map(|(id, _)| id.clone())
    }

    /// The fingerprint of the unfinished non-latest runs `read` was planned with (from the
    /// store, which the failed read did not change).
    fn held_when_planned(&self, read: &PlannedRead) -> Option<u64> {
        let latest = self.listed_latest_id(&read.environment);
        let ids: Vec<Box<str>> = self
            .store
            .deployments()
            .filter(|(_, r)| **r.environment == *read.environment && !r.is_finished())
            .map(|(id, _)| Box::from(id))
            .collect();
        schedule::unfinished_fingerprint(&ids, latest.as_deref())
    }

    /// Notes a read done at `to` (env0's clock) in the schedule. It sets no baseline: a read
    /// that was refused (403) or found the environment gone (404) saw none of its history, so
    /// the first read that works still takes what it finds finished as history.
    ///
    /// `held` fingerprints the environment's unfinished non-latest runs when the read was
    /// planned and after it, for the back-off of their re-reads.
    pub(super) fn mark_read(
        &mut self,
        read: &PlannedRead,
        to: Timestamp,
        held: (Option<u64>, Option<u64>),
    ) {
        let full_sync = self.full_sync_in_force.or(self.config.full_sync_interval);
        let planned = self.planned_at;
        let poll = self.config.poll_interval;
        let max = self.config.unfinished_reread_max;
        if let Some(s) = self.schedule.get_mut(&read.environment) {
            s.read_latest = s.listed_latest.clone();
            s.last_read = Some(to);
            s.note_read(read.kind, planned, held, poll, max);
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

impl Poller {
    /// Starts following the backfill when `plan` holds the first reads of a lookback window.
    fn start_backfill(&mut self, plan: &[PlannedRead]) {
        if self.backfill.is_some() {
            return;
        }
        let planned = plan.iter().filter(|r| r.kind == ReadKind::Backfill).count();
        if planned == 0 {
            return;
        }
        let total = self.schedule.values().filter(|s| !s.backfilled).count();
        info!(environments = total, lookback = %humantime::format_duration(self.config.lookback), "backfilling the lookback window");
        self.backfill = Some(BackfillProgress {
            total,
            done: 0,
            started: self.clock.now(),
            requests_at_start: self.metrics.requests_made(),
            last_logged: self.clock.now(),
            last_logged_tenth: 0,
            last_published: self.clock.now(),
        });
    }

    /// Says when no environment waits for its backfill any more, with the time it took.
    fn finish_backfill(&mut self) {
        let Some(progress) = &self.backfill else {
            return;
        };
        if self.schedule.values().any(|s| !s.backfilled) {
            return;
        }
        let took = clock::elapsed(progress.started, self.clock.now());
        info!(
            environments = progress.total,
            tracked = self.store.tracked(),
            requests = self.metrics.requests_made() - progress.requests_at_start,
            took = %humantime::format_duration(Duration::from_secs(took.as_secs())),
            "backfill complete"
        );
        self.backfill = None;
    }
}

/// The backfill's progress across polls: logged at every tenth of it and at least every
/// [`PROGRESS_LOG_EVERY`], published every [`PROGRESS_EVERY`].
#[derive(Debug)]
pub(super) struct BackfillProgress {
    /// Environments waiting for their backfill when it started.
    total: usize,
    /// Backfill reads done since.
    done: usize,
    /// When it started (our clock).
    started: Timestamp,
    /// The exporter's env0 requests so far when it started.
    requests_at_start: u64,
    last_logged: Timestamp,
    /// Tenths of `total` done when last logged.
    last_logged_tenth: usize,
    last_published: Timestamp,
}

impl BackfillProgress {
    /// One more backfill read done at `now` (`requests` made by the exporter so far, `budget`
    /// a minute); logs when a tenth more is done or a while passed, and says when to publish.
    fn step(&mut self, now: Timestamp, requests: u64, budget: u32, store: &Store) -> bool {
        self.done += 1;
        let tenth = (self.done * 10) / self.total.max(1);
        if tenth > self.last_logged_tenth
            || clock::elapsed(self.last_logged, now) >= PROGRESS_LOG_EVERY
        {
            self.last_logged = now;
            self.last_logged_tenth = tenth;
            let used = requests.saturating_sub(self.requests_at_start);
            let left = self.total.saturating_sub(self.done);
            // At the requests each environment has cost so far, the whole budget spent on it.
            #[allow(clippy::cast_precision_loss)]
            let eta_secs =
                used as f64 / self.done as f64 * left as f64 / f64::from(budget.max(1)) * 60.0;
            info!(
                done = self.done,
                of = self.total,
                requests = used,
                tracked = store.tracked(),
                elapsed = %humantime::format_duration(Duration::from_secs(clock::elapsed(self.started, now).as_secs())),
                estimated_left = %humantime::format_duration(Duration::from_secs_f64(eta_secs.clamp(0.0, 1e9).round())),
                "backfill progress"
            );
        }
        if clock::elapsed(self.last_published, now) < PROGRESS_EVERY {
            return false;
        }
        self.last_published = now;
        true
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
