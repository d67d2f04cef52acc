//! Between polls: the poller waits for the next poll time or a webhook observation, whichever
//! comes first, and takes observations in through its own ingest path.
//!
//! The poller keeps sole ownership of the [`Store`](crate::state::Store): the webhook handler
//! only sends [`Observation`]s down a bounded queue and answers. Observations are ingested
//! between polls (during a poll they wait in the queue, and are taken right after it), and a
//! fresh snapshot is published at most every [`MIN_PUBLISH_GAP`] of real time, so a burst of
//! deliveries costs a few aggregations, not one each.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::Poller;
use crate::state::Observation;

/// Shortest real time between two publishes caused by webhooks (at most four a second).
pub(super) const MIN_PUBLISH_GAP: Duration = Duration::from_millis(250);
/// Observations taken from the queue at once before the next wake-up is looked at.
const BATCH: usize = 256;

impl Poller {
    /// Takes webhook observations from `receiver` between polls (see [`run`](Self::run)).
    pub fn set_webhooks(&mut self, receiver: mpsc::Receiver<Observation>) {
        self.webhooks = Some(receiver);
    }

    /// Refreshes the set of watched environments from the schedule (the last listing), when it
    /// changed, and publishes it at once: deliveries during a long poll (the start-up
    /// backfill) are then taken in right after it rather than ignored.
    pub(super) fn refresh_watched(&mut self) {
        let same = self.watched.len() == self.schedule.len()
            && self.schedule.keys().all(|id| self.watched.contains(id));
        if !same {
            self.watched = Arc::new(self.schedule.keys().cloned().collect::<HashSet<_>>());
            if self.webhooks.is_some() {
                let mut snap = (*self.snapshot.load()).clone();
                snap.watched_environments = self.watched.clone();
                self.snapshot.publish(snap);
            }
        }
    }

    /// Waits `wait` on the injected clock; meanwhile takes in webhook observations, publishing
    /// at most every [`MIN_PUBLISH_GAP`].
    pub(super) async fn wait_for_next_poll(&mut self, wait: Duration) {
        let mut sleep = self.clock.sleep(wait);
        let Some(mut inbox) = self.webhooks.take() else {
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
        if publish_at.is_some() {
            // The poll that follows publishes only if it succeeds: show what came in anyway.
            self.publish();
        }
        if open {
            self.webhooks = Some(inbox);
        }
    }

    /// Ingests one webhook observation, unless its environment left the listing since the
    /// handler checked it.
    fn take_webhook(&mut self, obs: &Observation) {
        if !self.schedule.contains_key(obs.environment_id.as_str()) {
            debug!(environment = %obs.environment_id, "webhook observation for an environment no longer listed, dropped");
            return;
        }
        let now = self.clock.now();
        self.ingest(obs, now);
    }
}
