//! The deployment reads of a poll: running the plan in order within the request budget, the
//! error policy of one read, the direct look-up of tracked runs a listing no longer shows, and
//! the start-up backfill's progress.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::{debug, info, warn};

use super::schedule::{self, PlannedRead, ReadKind, Unfinished};
use super::{PollError, PollReport, Poller, observation};
use crate::client::{DeploymentQuery, Error as ClientError};
use crate::clock;
use crate::state::Store;

/// How far past env0's estimated now `toDate` reaches: the clock offset is measured to the
/// second, and a run created in env0's last second must not fall outside the listing.
const TO_DATE_MARGIN: Duration = Duration::from_secs(60);

/// How often a long poll (the start-up backfill) republishes what it has so far.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl Poller {
    /// Runs the planned reads in order until the plan or the request budget ends.
    pub(super) async fn run_plan(
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
                self.mark_read(read, self.env0_now());
                Ok(())
            }
            ClientError::NotFound { .. } => {
                // Deleted between the listing and this read; the next listing drops it.
                debug!(environment = %read.environment, "environment gone before its deployments were read");
                self.mark_read(read, self.env0_now());
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
        // `toDate` in env0's clock, a little ahead for what the offset cannot tell (it is
        // measured to the second).
        let read_at = self.env0_now();
        let to = clock::add(read_at, TO_DATE_MARGIN);
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
        for log in &logs {
            seen.insert(log.id.clone());
            let obs = observation(log, &read.environment);
            self.ingest(&obs, now);
        }
        self.read_unstarted(&read.environment, &query, &mut seen)
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
                    Err(ClientError::NotFound { .. }) => self.store.remove(&id),
                    Err(e) => return Err(e),
                }
            }
        }
        self.unreadable.remove(&read.environment);
        // The environment's baseline is set by its first read that worked: what its runs do
        // from here on is observed by this process.
        self.store.mark_baselined(&read.environment);
        self.mark_read(read, read_at);
        Ok(())
    }

    /// Notes a read done at `to` (env0's clock) in the schedule. It sets no baseline: a read
    /// that was refused (403) or found the environment gone (404) saw none of its history, so
    /// the first read that works still takes what it finds finished as history.
    pub(super) fn mark_read(&mut self, read: &PlannedRead, to: Timestamp) {
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
