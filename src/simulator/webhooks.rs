//! Signed webhook deliveries, like an env0 notification target of type Webhook: every lifecycle
//! change of a run (see `world/changes.rs`) becomes a JSON body shaped like a `CloudEvent`, sent
//! with POST to the configured URL with env0's headers and an HMAC-SHA256 signature of the body.
//!
//! Deliveries are queued while the world advances (under its lock, in the order of the changes)
//! and sent one at a time by a background task that [`Simulator::serve`](super::Simulator::serve)
//! starts. A failed delivery is dropped, as env0 drops it (no retry). Event ids come from a
//! random generator of their own, seeded from the world's seed, so the world draws exactly the
//! same numbers with webhooks on or off, and the same seed gives the same deliveries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use tracing::debug;
use url::Url;

use super::json::{DeploymentJson, Ts};
use super::lock;
use super::world::{Change, World, uuid};

/// env0 counts a delivery failed when no 2xx came within 10 s.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries waiting to be sent at most; the oldest are dropped past it.
const MAX_PENDING: usize = 10_000;
/// Mixed into the seed of the event id generator, so it differs from the world's.
const ID_SEED_SALT: u64 = 0x7765_6268_6f6f_6b73;

/// Where the simulator sends its deliveries.
#[derive(Clone)]
pub struct WebhookTarget {
    /// The receiving URL, e.g. `http://127.0.0.1:19180/webhooks/env0`.
    pub url: Url,
    /// The notification target's secret that signs each body.
    pub secret: String,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

/// One delivery as sent (kept for tests when [`SimConfig::record_requests`] is on).
///
/// [`SimConfig::record_requests`]: super::SimConfig::record_requests
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The event type, e.g. `com.env0.deploy.succeeded`.
    pub event_type: String,
    /// The event id (`x-env0-event-id` and the body's `id`).
    pub event_id: String,
    /// The request headers, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: String,
    /// The status the receiver answered; `None` when none came back.
    pub status: Option<u16>,
}

/// One queued delivery.
#[derive(Debug)]
struct Delivery {
    event_type: String,
    event_id: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// The deliveries waiting to be sent, and the sending.
pub(super) struct Outbox {
    target: WebhookTarget,
    record: bool,
    ids: Mutex<fastrand::Rng>,
    notification_target_id: String,
    pending: Mutex<VecDeque<Delivery>>,
    wake: Notify,
    queued: AtomicU64,
    done: watch::Sender<u64>,
    sent: Mutex<Vec<DeliveryRecord>>,
}

impl Outbox {
    /// An outbox for `target`; `seed` is the world's.
    pub(super) fn new(target: WebhookTarget, seed: u64, record: bool) -> Self {
        let mut ids = fastrand::Rng::with_seed(seed ^ ID_SEED_SALT);
        let notification_target_id = uuid(&mut ids);
        Self {
            target,
            record,
            ids: Mutex::new(ids),
            notification_target_id,
            pending: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            queued: AtomicU64::new(0),
            done: watch::channel(0).0,
            sent: Mutex::new(Vec::new()),
        }
    }

    /// Turns the world's noted changes into signed deliveries and queues them.
    pub(super) fn enqueue(&self, world: &mut World) {
        let changes = world.take_changes();
        if changes.is_empty() {
            return;
        }
        let mut ids = lock(&self.ids);
        let mut pending = lock(&self.pending);
        for change in &changes {
            let event_id = uuid(&mut ids);
            let Some(body) = body(world, change, &event_id) else {
                continue;
            };
            let signature = crate::webhook::sign(self.target.secret.as_bytes(), body.as_bytes());
            let headers = vec![
                ("user-agent".to_owned(), "env0-webhook".to_owned()),
                ("content-type".to_owned(), "application/json".to_owned()),
                ("x-env0-event".to_owned(), change.event_type.clone()),
                ("x-env0-event-id".to_owned(), event_id.clone()),
                (
                    "x-env0-notification-target-id".to_owned(),
                    self.notification_target_id.clone(),
                ),
                ("x-env0-signature".to_owned(), signature),
            ];
            pending.push_back(Delivery {
                event_type: change.event_type.clone(),
                event_id,
                headers,
                body,
            });
            self.queued.fetch_add(1, Ordering::SeqCst);
            if pending.len() > MAX_PENDING {
                pending.pop_front();
                self.done.send_modify(|n| *n += 1);
            }
        }
        drop(pending);
        self.wake.notify_one();
    }

    /// Sends queued deliveries one at a time, forever (the caller aborts the task).
    pub(super) async fn run(self: Arc<Self>) {
        let client = match reqwest::Client::builder().timeout(DELIVERY_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "simulator: cannot build the webhook client; no deliveries");
                return;
            }
        };
        loop {
            let next = lock(&self.pending).pop_front();
            let Some(delivery) = next else {
                self.wake.notified().await;
                continue;
            };
            let mut request = client.post(self.target.url.clone());
            for (name, value) in &delivery.headers {
                request = request.header(name, value);
            }
            let status = match request.body(delivery.body.clone()).send().await {
                Ok(response) => Some(response.status().as_u16()),
                Err(e) => {
                    // Dropped, like env0 drops a failed delivery.
                    debug!(error = %e, event = %delivery.event_type, "simulator: webhook delivery failed");
                    None
                }
            };
            if self.record {
                lock(&self.sent).push(DeliveryRecord {
                    event_type: delivery.event_type,
                    event_id: delivery.event_id,
                    headers: delivery.headers,
                    body: delivery.body,
                    status,
                });
            }
            self.done.send_modify(|n| *n += 1);
        }
    }

    /// Completes once every delivery queued so far has been sent (or dropped).
    pub(super) async fn flushed(&self) {
        let target = self.queued.load(Ordering::SeqCst);
        let mut done = self.done.subscribe();
        // The sender lives in `self`: the channel cannot close while this waits.
        let _ = done.wait_for(|n| *n >= target).await;
    }

    /// The deliveries sent so far (when recording).
    pub(super) fn sent(&self) -> Vec<DeliveryRecord> {
        lock(&self.sent).clone()
    }

    /// How many deliveries wait to be sent.
    #[cfg(test)]
    fn pending_bodies(&self) -> Vec<String> {
        lock(&self.pending).iter().map(|d| d.body.clone()).collect()
    }
}

/// The `CloudEvent` body of one change.
fn body(world: &World, change: &Change, event_id: &str) -> Option<String> {
    let env = world.environments.get(change.environment)?;
    let project = world.projects.get(env.project)?;
    let organization = world.organizations.first()?;
    let mut log = serde_json::to_value(DeploymentJson::new(world, env, &change.deployment)).ok()?;
    if let Value::Object(map) = &mut log {
        map.insert(
            "url".to_owned(),
            Value::String(format!(
                "https://app.env0.com/p/{}/environments/{}/deployments/{}",
                project.id, env.id, change.deployment.id
            )),
        );
    }
    let event = json!({
        "specversion": "1.0",
        "type": change.event_type,
        "source": format!("env0/organizations/{}", organization.id),
        "id": event_id,
        "time": Ts(change.at),
        "datacontenttype": "application/json",
        "data": {
            "deploymentLog": log,
            "environment": {
                "id": env.id,
                "name": env.name,
                "projectId": project.id,
                "organizationId": organization.id,
                "status": change.environment_status,
                "driftStatus": change.drift_status,
            },
            "project": {"id": project.id, "name": project.name},
            "organization": {"id": organization.id, "name": organization.name},
        },
    });
    serde_json::to_string(&event).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock, SharedClock};
    use crate::simulator::{SimConfig, Simulator};

    fn config(webhook: bool) -> SimConfig {
        SimConfig {
            environments: 40,
            mean_deployment_interval: Duration::from_secs(20 * 60),
            webhook: webhook.then(|| WebhookTarget {
                url: "http://127.0.0.1:9/webhooks/env0".parse().unwrap(),
                secret: "s3cret".into(),
            }),
            ..SimConfig::default()
        }
    }

    fn run(webhook: bool) -> (Simulator, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new("2026-07-01T12:00:00Z".parse().unwrap()));
        let shared: SharedClock = clock.clone();
        let sim = Simulator::new(config(webhook), shared);
        for _ in 0..12 {
            clock.advance(Duration::from_secs(300));
            sim.advance();
        }
        (sim, clock)
    }

    fn bodies(sim: &Simulator) -> Vec<String> {
        sim.inner
            .outbox
            .as_ref()
            .map(|o| o.pending_bodies())
            .unwrap_or_default()
    }

    #[test]
    fn the_world_is_the_same_with_webhooks_on_or_off() {
        let (off, _) = run(false);
        let (on, _) = run(true);
        assert_eq!(off.deployments(), on.deployments());
        assert_eq!(off.environments(), on.environments());
        assert!(bodies(&off).is_empty());
        assert!(
            bodies(&on).len() > 20,
            "an hour of 40 environments changes runs"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_deliveries() {
        let (a, _) = run(true);
        let (b, _) = run(true);
        assert_eq!(bodies(&a), bodies(&b));
    }

    #[test]
    fn every_change_after_the_start_is_delivered_once_per_status_and_history_is_not() {
        let (sim, clock) = run(true);
        let start: jiff::Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
        let events: Vec<Value> = bodies(&sim)
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        for e in &events {
            let time: jiff::Timestamp = e["time"].as_str().unwrap().parse().unwrap();
            assert!(time > start && time <= clock.now(), "{e}");
            let t = e["type"].as_str().unwrap();
            assert!(t.starts_with("com.env0."), "{t}");
            assert_eq!(e["datacontenttype"], "application/json");
            let log = &e["data"]["deploymentLog"];
            assert_eq!(log["environmentId"], e["data"]["environment"]["id"]);
            assert!(
                log["url"]
                    .as_str()
                    .unwrap()
                    .ends_with(log["id"].as_str().unwrap())
            );
        }
        // Every run that finished after the start has exactly one finishing delivery, with
        // the status the world holds.
        for d in sim.deployments() {
            let finished_after_start = !matches!(
                d.status.as_str(),
                "QUEUED" | "IN_PROGRESS" | "WAITING_FOR_USER" | "ABORTING"
            ) && d.updated_at > start;
            let finishes: Vec<&Value> = events
                .iter()
                .filter(|e| {
                    e["data"]["deploymentLog"]["id"] == d.id.as_str()
                        && e["data"]["deploymentLog"]["status"] == d.status.as_str()
                })
                .collect();
            if finished_after_start {
                assert_eq!(finishes.len(), 1, "{}", d.id);
            }
        }
    }
}
