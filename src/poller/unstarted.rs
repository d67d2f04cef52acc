//! Runs that have not started, whichever timestamp env0's date filter uses.
//!
//! env0 does not document which timestamp `fromDate`/`toDate` filter on. On `createdAt` or
//! `queuedAt` a queued run is in the dated listings like any other; on `startedAt` a run that
//! has not started is in none, and a queued run that is not its environment's latest would stay
//! invisible until it starts. The poller learns which at start, before its first reads, by
//! asking env0 ([`crate::probe`], at most [`probe::MAX_REQUESTS`] requests, tried again on the
//! next polls while it finds no run that tells, at most
//! [`MAX_PROBES`](super::date_filter::MAX_PROBES) times). Whatever the
//! probe said, the evidence of the data still switches to the `startedAt` handling:
//! - a dated listing returns a run created and queued before its `fromDate` (so the filter is on
//!   a later timestamp), or
//! - a run the exporter knows has not started, created within a listing's dates, is missing from
//!   it and its direct read says it still has not started.
//!
//! From then on every read of an environment adds one undated listing of the runs without a
//! `startedAt`: `statuses=QUEUED,SKIPPED,CANCELLED,NEVER_DEPLOYED` (queued, or ended from the
//! queue), and environments read before the evidence get that listing once, at the end of the
//! poll, as part of their baseline (what it shows finished is history). Cost: nothing while env0
//! filters on `createdAt`/`queuedAt`; one more request per environment read while it filters
//! on `startedAt`.
//!
//! That listing holds the environment's whole history of cancelled and skipped runs. When pages
//! come newest first (as the probe learnt) it stops at the first full page whose runs were all
//! created before the read's `fromDate`: older runs are what a `createdAt` filter would not show
//! either, and tracked unfinished runs are never older than the read's `fromDate` (it reaches
//! back to them). So it costs one page, two when over 100 such runs are recent, whatever the
//! history. When the order is oldest first or unknown nothing tells where the recent runs are:
//! every page is read (correct, and as costly as that environment's history).

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use tracing::{info, warn};

use super::Poller;
use crate::client::{Client, DeploymentLog, DeploymentQuery, Error as ClientError};
use crate::clock;
use crate::observation::observation;
use crate::probe::{self, DateFilterField, PageOrder};

impl Poller {
    /// Learns at start which timestamp env0's date filter uses and the order of its pages,
    /// from the `candidates` of the environments just listed, unless known or probed
    /// [`MAX_PROBES`](super::date_filter::MAX_PROBES) times. A failed probe does not fail the
    /// poll.
    pub(super) async fn probe_listing(&mut self, client: &Client, candidates: Vec<&str>) {
        if !self
            .date_filter
            .wants_probe(self.known.health.date_filter_field)
        {
            return;
        }
        let learnt = match probe::deployment_listing(client, candidates).await {
            Ok(learnt) => learnt,
            Err(e) if e.budget() => return,
            Err(e) => {
                self.date_filter.probed();
                warn!(error = %e, "could not learn env0's date filter; its evidence is watched for instead");
                return;
            }
        };
        self.date_filter.probed();
        let health = &mut self.known.health;
        if health.page_order == PageOrder::Unknown {
            health.page_order = learnt.page_order;
        }
        if health.date_filter_field == DateFilterField::Unknown {
            health.date_filter_field = learnt.date_filter_field;
        }
        info!(
            date_filter_field = %learnt.date_filter_field,
            page_order = %learnt.page_order,
            requests = learnt.requests,
            environment = learnt.environment_id.as_deref().unwrap_or(""),
            "learnt env0's deployment listing"
        );
        if learnt.date_filter_field.hides_unstarted() == Some(true) {
            self.date_filter.hide(self.schedule.backfilled());
        }
    }

    /// Learns from one dated listing (`from` its `fromDate`) whether the date filter is on a
    /// timestamp later than `queuedAt`.
    pub(super) fn learn_from_listing(&mut self, from: Timestamp, logs: &[DeploymentLog]) {
        if super::date_filter::DateFilterLearning::filters_after_queueing(from, logs) {
            self.note_hidden_unstarted("a dated listing returned runs queued before its fromDate");
        }
    }

    /// env0 showed that dated listings leave out runs that have not started.
    pub(super) fn note_hidden_unstarted(&mut self, why: &str) {
        if self.date_filter.is_hidden() {
            return;
        }
        info!(
            why,
            "env0's date filter leaves out runs that have not started: queued runs are read without dates from now on"
        );
        self.known.health.date_filter_field = DateFilterField::StartedAt;
        self.date_filter.hide(self.schedule.backfilled());
    }

    /// Reads `environment`'s queued runs without dates when dated listings hide them; the ids
    /// read go into `seen`. Runs created before `since` are not needed: when pages come newest
    /// first, paging stops at a page of such runs.
    pub(super) async fn read_unstarted(
        &mut self,
        client: &Client,
        environment: &Arc<str>,
        query: &DeploymentQuery,
        since: Timestamp,
        seen: &mut HashSet<String>,
    ) -> Result<(), ClientError> {
        self.date_filter.settle(environment);
        let Some(statuses) = self.date_filter.statuses(&self.config.filter.statuses) else {
            return Ok(());
        };
        let since = (self.known.health.page_order == PageOrder::Newest).then_some(since);
        let logs = client
            .deployments_in_status(environment, &statuses, query, since)
            .await?;
        let now = self.env0_now();
        for log in &logs {
            seen.insert(log.id.clone());
            let obs = observation(log, environment);
            self.ingest(&obs, now);
        }
        Ok(())
    }

    /// The one undated read of queued runs owed to environments read before env0 showed that
    /// dated listings hide them; what the budget leaves out waits for the next poll.
    ///
    /// # Errors
    /// A client error other than the budget, 403 or 404.
    pub(super) async fn catch_up_unstarted(&mut self, client: &Client) -> Result<(), ClientError> {
        let pending = self.date_filter.owed();
        // What the environments' first reads covered: the lookback window (with the overlap
        // kept for clock skew) and their unfinished runs.
        let window_start = clock::sub(
            self.env0_now(),
            self.config.lookback + super::schedule::READ_OVERLAP,
        );
        // Only their oldest creation is used: no webhook figures.
        let unfinished = self.unfinished(self.env0_now(), true);
        let query = DeploymentQuery {
            from: Timestamp::UNIX_EPOCH,
            to: Timestamp::UNIX_EPOCH,
            deployment_types: self.config.filter.deployment_types.clone(),
            statuses: Vec::new(),
            user_ids: self.config.filter.user_ids.clone(),
        };
        for environment in pending {
            if !self.schedule.contains(&environment) {
                self.date_filter.settle(&environment);
                continue;
            }
            // Part of the environment's baseline: what ended before it is history.
            self.known.store.unmark_baselined(&environment);
            let mut seen = HashSet::new();
            let since = unfinished
                .get(&environment)
                .and_then(|u| u.oldest_created)
                .map_or(window_start, |oldest| oldest.min(window_start));
            let read = self
                .read_unstarted(client, &environment, &query, since, &mut seen)
                .await;
            self.known.store.mark_baselined(&environment);
            match read {
                Ok(()) | Err(ClientError::NotFound { .. } | ClientError::Forbidden { .. }) => {}
                Err(e) if e.budget() => {
                    self.date_filter.owe(environment);
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
