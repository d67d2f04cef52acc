//! The deployment reads of a poll: running the plan in order within the request budget, the
//! error policy of one read, and the direct look-up of tracked runs a listing no longer shows.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::optional::{self, OptionalCall};
use super::schedule::{self, PlannedRead, ReadKind, Unfinished};
use super::{PollError, PollReport, Poller};
use crate::client::{Client, DeploymentQuery, Error as ClientError};
use crate::clock;
use crate::observation::observation;

/// How far past env0's estimated now `toDate` reaches: the clock offset is measured to the
/// second, and a run created in env0's last second must not fall outside the listing.
const TO_DATE_MARGIN: Duration = Duration::from_secs(60);

impl Poller {
    /// Runs the planned reads in order until the plan or the request budget ends.
    pub(super) async fn run_plan(
        &mut self,
        client: &Client,
        plan: &[PlannedRead],
        unfinished: &HashMap<Arc<str>, Unfinished>,
        report: &mut PollReport,
    ) -> Result<(), PollError> {
        self.backfill.start(
            plan.iter().filter(|r| r.kind == ReadKind::Backfill).count(),
            self.schedule.backfill_pending(),
            self.clock.now(),
            client.requests_sent(),
            self.config.lookback,
        );
        for (i, read) in plan.iter().enumerate() {
            if let Err(e) = self
                .read(client, read, unfinished.get(&read.environment))
                .await
            {
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
            if read.kind == ReadKind::Backfill
                && self.backfill.step(
                    self.clock.now(),
                    client.requests_sent(),
                    self.config.max_requests_per_minute,
                    self.known.store.tracked(),
                )
            {
                self.publish();
            }
        }
        self.backfill.finish(
            self.schedule.backfill_pending(),
            self.clock.now(),
            client.requests_sent(),
            self.known.store.tracked(),
        );
        if report.deferred == 0 {
            self.catch_up_unstarted(client).await?;
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
                self.known.metrics.poll_error(e.reason());
                self.schedule.mark_unreadable(&read.environment);
                let held = self.held_when_planned(read);
                self.schedule
                    .mark_read(&self.config, read, self.env0_now(), (held, held));
                Ok(())
            }
            ClientError::NotFound { .. } => {
                // Deleted between the listing and this read; the next listing drops it.
                debug!(environment = %read.environment, "environment gone before its deployments were read");
                let held = self.held_when_planned(read);
                self.schedule
                    .mark_read(&self.config, read, self.env0_now(), (held, held));
                Ok(())
            }
            e => Err(e.into()),
        }
    }

    /// Unfinished runs per environment, and which are young at env0's `now` (by the durations of
    /// the runs of their type the store holds) and, unless `polling_only` (webhooks not live:
    /// the polling rules apply to every run), which are overdue for a re-read repairing a lost
    /// delivery and which the deliveries do not cover (see [`schedule::unfinished`]).
    pub(super) fn unfinished(
        &self,
        now: jiff::Timestamp,
        polling_only: bool,
    ) -> HashMap<Arc<str>, Unfinished> {
        let store = &self.known.store;
        let durations = store.deployments().filter_map(|(_, r)| {
            let (start, end) = (r.started_at?, r.finish_time?);
            Some((r.labels.deployment_type.clone(), clock::elapsed(start, end)))
        });
        let young = schedule::unfinished::YoungThresholds::from_durations(durations);
        let (latest, interval) = (
            self.env0_latest(),
            self.schedule.unfinished_reread_max(&self.config),
        );
        let local = self.clock.now();
        let mut out: HashMap<Arc<str>, Unfinished> = HashMap::new();
        for (id, record) in store.deployments() {
            if !record.is_finished() {
                let u = out.entry(record.environment.clone()).or_default();
                u.ids.push(id.into());
                u.oldest_created = Some(
                    u.oldest_created
                        .map_or(record.created_at, |t| t.min(record.created_at)),
                );
                let since = record.started_at.unwrap_or(record.created_at);
                if young.is_young(&record.labels.deployment_type, since, now) {
                    u.young.push(id.into());
                }
                if polling_only {
                    continue;
                }
                if schedule::unfinished::is_overdue(since, latest, interval) {
                    u.overdue.push(id.into());
                }
                let project = store
                    .environment(record.environment)
                    .and_then(|e| e.project_id.as_ref());
                if !self
                    .webhooks
                    .coverage
                    .covers(project, &record.labels.deployment_type, local)
                {
                    u.uncovered.push(id.into());
                }
            }
        }
        out
    }

    /// Reads one environment's deployments; `open` are its unfinished runs as of the plan.
    pub(super) async fn read(
        &mut self,
        client: &Client,
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
        let logs = client.deployments(&read.environment, &query).await?;
        let now = self.env0_now();
        let mut seen = HashSet::with_capacity(logs.len());
        self.learn_from_listing(read.from, &logs);
        let latest = self.schedule.listed_latest_id(&read.environment);
        let held_before =
            open.and_then(|u| schedule::unfinished_fingerprint(&u.ids, latest.as_deref()));
        for log in &logs {
            seen.insert(log.id.clone());
            let obs = observation(log, &read.environment);
            self.ingest(&obs, now);
        }
        self.read_unstarted(client, &read.environment, &query, read.from, &mut seen)
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
                    self.known.store.deployment(id).is_some_and(|r| {
                        !r.is_finished() && r.created_at >= read.from && r.created_at <= to
                    })
                })
                .map(std::string::ToString::to_string)
                .collect();
            for id in missing {
                match client.deployment(&id).await {
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
                        optional::note_available(&mut self.known.health, OptionalCall::Deployment);
                        self.known.store.remove(&id);
                        continue;
                    }
                    // The budget stops the poll's reads; a rejected key (401) fails the poll.
                    Err(e) if e.budget() || matches!(e, ClientError::Auth { .. }) => {
                        return Err(e);
                    }
                    // Optional: the run keeps its last status until a listing shows it.
                    Err(e) => {
                        optional::note_unavailable(
                            &mut self.known.health,
                            OptionalCall::Deployment,
                            &e,
                        );
                        continue;
                    }
                }
                optional::note_available(&mut self.known.health, OptionalCall::Deployment);
            }
        }
        self.schedule.mark_readable(&read.environment);
        // The environment's baseline is set by its first read that worked: what its runs do
        // from here on is observed by this process.
        self.known.store.mark_baselined(&read.environment);
        // What the read leaves unfinished: the listing reached back to the oldest unfinished
        // run, so the plan's set and this listing cover them all.
        let still_open: Vec<Box<str>> = open
            .map_or(&[][..], |u| u.ids.as_slice())
            .iter()
            .map(|id| &**id)
            .chain(logs.iter().map(|log| log.id.as_str()))
            .filter(|id| {
                self.known
                    .store
                    .deployment(id)
                    .is_some_and(|r| !r.is_finished())
            })
            .map(Box::from)
            .collect();
        let held_after = schedule::unfinished_fingerprint(&still_open, latest.as_deref());
        self.schedule
            .mark_read(&self.config, read, read_at, (held_before, held_after));
        Ok(())
    }

    /// The fingerprint of the unfinished non-latest runs `read` was planned with (from the
    /// store, which the failed read did not change).
    fn held_when_planned(&self, read: &PlannedRead) -> Option<u64> {
        let latest = self.schedule.listed_latest_id(&read.environment);
        let ids: Vec<Box<str>> = self
            .known
            .store
            .deployments()
            .filter(|(_, r)| **r.environment == *read.environment && !r.is_finished())
            .map(|(id, _)| Box::from(id))
            .collect();
        schedule::unfinished_fingerprint(&ids, latest.as_deref())
    }
}

fn kind_name(kind: ReadKind) -> &'static str {
    match kind {
        ReadKind::Changed => "changed",
        ReadKind::Fresh => "fresh_unfinished",
        ReadKind::Unfinished => "unfinished",
        ReadKind::Backfill => "backfill",
        ReadKind::FullSync => "full_sync",
    }
}
