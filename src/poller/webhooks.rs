//! Between polls: the poller waits for the next poll time or a webhook observation, whichever
//! comes first, and takes observations in through its own ingest path. The [`WebhookInbox`]
//! holds the poller's ends of the two channels with the webhook receiver: the queue of
//! observations in, and the set of watched environments out.
//!
//! The poller keeps sole ownership of the [`Store`](crate::state::Store): the webhook handler
//! only sends [`Observation`]s down a bounded queue and answers. Observations are ingested
//! between polls (during a poll they wait in the queue, and are taken right after it), and a
//! fresh snapshot is published at most every [`MIN_PUBLISH_GAP`] of real time, so a burst of
//! deliveries costs a few aggregations, not one each.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::debug;

use super::Poller;
use super::coverage::Coverage;
use super::schedule::Schedule;
use crate::state::Observation;

/// Shortest real time between two publishes caused by webhooks (at most four a second).
pub(super) const MIN_PUBLISH_GAP: Duration = Duration::from_millis(250);
/// Observations taken from the queue at once before the next wake-up is looked at.
const BATCH: usize = 256;

/// The poller's ends of its channels with the webhook receiver.
#[derive(Debug)]
pub(super) struct WebhookInbox {
    /// Observations from the receiver, taken in between polls; `None` without webhooks (or once
    /// every sender is gone).
    receiver: Option<mpsc::Receiver<Observation>>,
    /// The environments of the last listing, for the receiver: deliveries for any other are
    /// ignored there.
    watched: watch::Sender<Arc<HashSet<Arc<str>>>>,
    /// When (the exporter's clock) the last observation arrived: the receiver sends only
    /// verified deliveries, so this says whether webhooks are live
    /// ([`webhooks_live`](super::schedule::unfinished::webhooks_live)).
    last_delivery: Option<jiff::Timestamp>,
    /// What the deliveries are known to cover.
    pub(super) coverage: Coverage,
    /// Whether webhooks are on (a receiver was connected), while the receiver is taken too.
    connected: bool,
}

impl Default for WebhookInbox {
    fn default() -> Self {
        Self {
            receiver: None,
            watched: watch::Sender::new(Arc::default()),
            last_delivery: None,
            coverage: Coverage::default(),
            connected: false,
        }
    }
}

impl WebhookInbox {
    /// Takes observations from `receiver` from now on.
    pub(super) fn connect(&mut self, receiver: mpsc::Receiver<Observation>) {
        self.receiver = Some(receiver);
        self.connected = true;
    }

    /// When (the exporter's clock) the last verified delivery arrived.
    pub(super) fn last_delivery(&self) -> Option<jiff::Timestamp> {
        self.last_delivery
    }

    /// What the deliveries cover at `now` (the exporter's clock), for the types `seen` (label
    /// values of runs the store holds) and those delivered; `None` without webhooks.
    pub(super) fn coverage_figures<'a>(
        &'a self,
        seen: impl Iterator<Item = &'a Arc<str>>,
        now: jiff::Timestamp,
    ) -> Option<crate::state::WebhookCoverage> {
        self.connected.then(|| self.coverage.figures(seen, now))
    }

    /// A receiver of the watched environments, for the webhook receiver.
    pub(super) fn subscribe(&self) -> watch::Receiver<Arc<HashSet<Arc<str>>>> {
        self.watched.subscribe()
    }

    /// Sends the environments `schedule` lists when they differ from those last sent, at once:
    /// deliveries during a long poll (the start-up backfill) are then taken in right after it
    /// rather than ignored. Says whether it sent.
    pub(super) fn refresh_watched(&self, schedule: &Schedule) -> bool {
        self.watched.send_if_modified(|watched| {
            let same =
                watched.len() == schedule.len() && schedule.ids().all(|id| watched.contains(id));
            if !same {
                *watched = Arc::new(schedule.ids().cloned().collect());
            }
            !same
        })
    }
}

impl Poller {
    /// Waits on the injected clock until `until`; meanwhile takes in webhook observations,
    /// publishing at most every [`MIN_PUBLISH_GAP`].
    pub(super) async fn wait_for_next_poll(&mut self, until: jiff::Timestamp) {
        let mut sleep = self.clock.sleep_until(until);
        let Some(mut inbox) = self.webhooks.receiver.take() else {
            sleep.await;
            return;
        };
        let mut last_publish: Option<Instant> = None;
        let mut publish_at: Option<Instant> = None;
        let mut open = true;
        loop {
            let due = publish_at.unwrap_or_else(Instant::now);
            tokio::select! {
                biased;
                () = &mut sleep => break,
                () = tokio::time::sleep_until(due), if publish_at.is_some() => {
                    self.publish();
                    last_publish = Some(Instant::now());
                    publish_at = None;
                }
                delivered = inbox.recv(), if open => {
                    let Some(first) = delivered else {
                        // Every sender is gone: no more webhooks, only the clock.
                        open = false;
                        continue;
                    };
                    self.take_webhook(&first);
                    for _ in 1..BATCH {
                        match inbox.try_recv() {
                            Ok(next) => self.take_webhook(&next),
                            Err(_) => break,
                        }
                    }
                    if publish_at.is_none() {
                        let earliest = last_publish.map_or_else(Instant::now, |t| t + MIN_PUBLISH_GAP);
                        publish_at = Some(earliest.max(Instant::now()));
                    }
                }
            }
        }
        // What is queued now is taken before the poll, even when polls overrun their interval
        // and there is no time left to wait.
        if open {
            while let Ok(next) = inbox.try_recv() {
                self.take_webhook(&next);
                publish_at.get_or_insert_with(Instant::now);
            }
        }
        if publish_at.is_some() {
            // The poll that follows publishes only if it succeeds: show what came in anyway.
            self.publish();
        }
        if open {
            self.webhooks.receiver = Some(inbox);
        }
    }

    /// Takes in the webhook observations queued now and publishes once if there were any, without
    /// waiting: for a poller driven by hand ([`Poller::poll`]) instead of [`Poller::run`], as the
    /// scale example drives it.
    pub async fn take_queued_webhooks(&mut self) {
        self.wait_for_next_poll(self.clock.now()).await;
    }

    /// Ingests one webhook observation, unless its environment left the listing since the
    /// handler checked it.
    fn take_webhook(&mut self, obs: &Observation) {
        let at = self.clock.now();
        self.webhooks.last_delivery = Some(at);
        if !self.schedule.contains(obs.environment_id.as_str()) {
            debug!(environment = %obs.environment_id, "webhook observation for an environment no longer listed, dropped");
            return;
        }
        let now = self.env0_now();
        self.ingest(obs, now);
        self.note_coverage(obs, at);
    }

    /// Notes what `obs` (delivered at `at`) says of what the deliveries bring: its
    /// environment's project sends them, and, when it is the end of a run the store keeps, ends
    /// of its type come (a success, or another end).
    fn note_coverage(&mut self, obs: &Observation, at: jiff::Timestamp) {
        let store = &self.known.store;
        let project = store
            .environment(&obs.environment_id)
            .and_then(|e| e.project_id.clone())
            .unwrap_or_else(|| Arc::from(""));
        self.webhooks.coverage.note_project(project, at);
        let Some(record) = store.deployment(&obs.id) else {
            return;
        };
        if !crate::state::is_finished(obs.status.as_deref(), obs.finished_at) {
            return;
        }
        let succeeded = obs.status.as_deref() == Some("SUCCESS");
        self.webhooks
            .coverage
            .note_end(record.labels.deployment_type.clone(), succeeded, at);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::client::{Client, ClientConfig, RATE_WINDOW};
    use crate::clock::{Clock, ManualClock, SharedClock};
    use crate::metrics::{Metrics, MetricsConfig};
    use crate::ratelimit::SlidingWindow;
    use crate::state::SnapshotHandle;

    const LISTED: &str = "env-listed";

    struct Fixture {
        poller: Poller,
        clock: Arc<ManualClock>,
        snapshot: SnapshotHandle,
        queue: mpsc::Sender<Observation>,
    }

    /// A poller that never polls here (its client points nowhere), with `LISTED` in its last
    /// listing and a webhook queue.
    fn fixture() -> Fixture {
        let clock = Arc::new(ManualClock::new("2026-07-01T12:00:00Z".parse().unwrap()));
        let shared: SharedClock = clock.clone();
        let snapshot = SnapshotHandle::default();
        let budget = Arc::new(SlidingWindow::new(100, RATE_WINDOW));
        let metrics = Arc::new(Metrics::new(
            &MetricsConfig::default(),
            snapshot.clone(),
            budget.clone(),
            shared.clone(),
        ));
        let client = Client::new(
            ClientConfig::new(
                "http://127.0.0.1:9/".parse().unwrap(),
                "k",
                crate::config::Secret::new("s"),
            ),
            budget,
            shared.clone(),
            metrics.clone(),
        )
        .unwrap();
        let mut poller = Poller::new(
            Arc::new(client),
            shared,
            crate::poller::test_support::config(),
            snapshot.clone(),
            metrics,
        );
        poller.schedule.take_listed(&listed(LISTED));
        let (queue, inbox) = mpsc::channel(16);
        poller.set_webhooks(inbox);
        Fixture {
            poller,
            clock,
            snapshot,
            queue,
        }
    }

    fn listed(id: &str) -> crate::client::Environment {
        crate::poller::test_support::environment(id, None)
    }

    fn finished(id: &str, environment: &str) -> Observation {
        let at = "2026-07-01T12:00:30Z".parse().ok();
        Observation {
            id: id.into(),
            environment_id: environment.into(),
            deployment_type: Some("deploy".into()),
            status: Some("SUCCESS".into()),
            created_at: at,
            started_at: at,
            finished_at: at,
            ..Observation::default()
        }
    }

    #[tokio::test]
    async fn an_observation_is_taken_in_and_published_while_waiting_and_the_wait_ends_at_poll_time()
    {
        let mut f = fixture();
        let (clock, snapshot, queue) = (f.clock.clone(), f.snapshot.clone(), f.queue.clone());
        let until = crate::clock::add(clock.now(), Duration::from_secs(60));
        let waiting = tokio::spawn(async move {
            f.poller.wait_for_next_poll(until).await;
            f.poller
        });
        queue.send(finished("d1", LISTED)).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while snapshot.load().tracked_deployments != 1 {
            assert!(tokio::time::Instant::now() < deadline, "not published");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            !waiting.is_finished(),
            "the wait goes on until the poll time"
        );
        clock.advance(Duration::from_secs(60));
        let poller = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(poller.store().deployment("d1").unwrap().is_finished());
    }

    #[tokio::test]
    async fn delivered_ends_cover_their_type_in_their_project_and_nothing_else_does() {
        let mut f = fixture();
        f.poller
            .known
            .store
            .upsert_environment(LISTED, Some("p1"), None, None, false);
        let run = |id: &str, kind: &str, status: &str| Observation {
            deployment_type: Some(kind.into()),
            status: Some(status.into()),
            finished_at: if status == "IN_PROGRESS" {
                None
            } else {
                "2026-07-01T12:00:30Z".parse().ok()
            },
            ..self::finished(id, LISTED)
        };
        let uncovered = |f: &Fixture| {
            let open = f.poller.unfinished(f.clock.now(), false);
            let mut ids: Vec<String> = open[LISTED]
                .uncovered
                .iter()
                .map(ToString::to_string)
                .collect();
            ids.sort();
            ids
        };
        let deliver = async |f: &mut Fixture, obs: Observation| {
            f.queue.send(obs).await.unwrap();
            let now = f.clock.now();
            f.poller.wait_for_next_poll(now).await;
        };
        // Two starts: webhooks are live, but no end has come.
        deliver(&mut f, run("plan-1", "prPlan", "IN_PROGRESS")).await;
        deliver(&mut f, run("deploy-1", "deploy", "IN_PROGRESS")).await;
        assert_eq!(f.poller.webhooks.last_delivery(), Some(f.clock.now()));
        assert_eq!(uncovered(&f), ["deploy-1", "plan-1"]);
        // A plan's failure: failures only, its success may never be delivered.
        deliver(&mut f, run("plan-0", "prPlan", "FAILURE")).await;
        assert_eq!(uncovered(&f), ["deploy-1", "plan-1"]);
        // And a plan's success a minute later: plans of p1 are covered, for a day from the
        // older of the two; deploys of p1 are not, nor are plans of a project never heard from.
        f.clock.advance(Duration::from_secs(60));
        deliver(&mut f, run("plan-00", "prPlan", "SUCCESS")).await;
        assert_eq!(uncovered(&f), ["deploy-1"]);
        let now = f.clock.now();
        assert!(
            f.poller
                .webhooks
                .coverage
                .covers(Some(&Arc::from("p1")), "prPlan", now)
        );
        assert!(
            !f.poller
                .webhooks
                .coverage
                .covers(Some(&Arc::from("p2")), "prPlan", now)
        );
        f.clock.advance(Duration::from_secs(24 * 3600 - 61));
        assert_eq!(uncovered(&f), ["deploy-1"]);
        f.clock.advance(Duration::from_secs(1));
        assert_eq!(uncovered(&f), ["deploy-1", "plan-1"]);
    }

    #[tokio::test]
    async fn what_is_queued_is_taken_in_even_when_there_is_no_time_left_to_wait() {
        let mut f = fixture();
        f.queue.send(finished("d1", LISTED)).await.unwrap();
        f.queue
            .send(finished("d2", "env-not-listed"))
            .await
            .unwrap();
        assert_eq!(f.poller.webhooks.last_delivery(), None);
        let now = f.clock.now();
        f.poller.wait_for_next_poll(now).await;
        // A verified delivery arrived now: webhooks are live, young runs may back off.
        assert_eq!(
            f.poller.webhooks.last_delivery(),
            Some("2026-07-01T12:00:00Z".parse().unwrap())
        );
        assert!(f.poller.store().deployment("d1").is_some());
        assert!(
            f.poller.store().deployment("d2").is_none(),
            "an environment that left the listing is not taken in"
        );
        assert_eq!(f.snapshot.load().tracked_deployments, 1);
    }

    #[test]
    fn the_watched_environments_are_sent_when_the_listing_changes_and_only_then() {
        let inbox = WebhookInbox::default();
        let mut watched = inbox.subscribe();
        let mut schedule = Schedule::new("2026-07-01T12:00:00Z".parse().unwrap());
        schedule.take_listed(&listed("a"));
        assert!(inbox.refresh_watched(&schedule));
        assert!(watched.has_changed().unwrap());
        assert!(watched.borrow_and_update().contains("a"));
        assert!(!inbox.refresh_watched(&schedule), "the same listing");
        assert!(!watched.has_changed().unwrap());
        schedule.take_listed(&listed("b"));
        assert!(inbox.refresh_watched(&schedule));
        assert_eq!(watched.borrow_and_update().len(), 2);
        schedule.retain_listed(&HashSet::from(["b"]));
        assert!(inbox.refresh_watched(&schedule));
        let now = watched.borrow_and_update().clone();
        assert!(now.contains("b") && !now.contains("a"));
    }

    #[tokio::test]
    async fn sending_the_watched_environments_publishes_no_snapshot() {
        let f = fixture();
        let before = f.snapshot.version();
        let mut watched = f.poller.watched_environments();
        assert!(f.poller.webhooks.refresh_watched(&f.poller.schedule));
        assert!(watched.borrow_and_update().contains(LISTED));
        assert_eq!(f.snapshot.version(), before);
    }
}
