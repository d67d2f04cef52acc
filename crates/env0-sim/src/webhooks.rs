//! Signed webhook deliveries, like an env0 notification target of type Webhook: every lifecycle
//! change of a run (see `world/changes.rs`) becomes a JSON body shaped like a `CloudEvent`, sent
//! with POST to the configured URL with env0's headers and an HMAC-SHA256 signature, computed
//! here (the simulator's own signer, not the exporter's).
//!
//! What env0 does is not settled, so each way it may go is a setting of [`SimConfig`]:
//! - [`WebhookSigning`]: the signature covers the raw body (env0's docs), or the body's
//!   re-serialisation (`JSON.stringify(req.body)` in env0's guide sample): then the body is sent
//!   pretty-printed and its compact form, with numbers written as JavaScript writes them, is
//!   signed;
//! - [`SimConfig::webhook_ids_differ`]: the `x-env0-event-id` header differs from the body's
//!   `id` (as in env0's sample delivery);
//! - [`WebhookEventTypes`]: `com.env0.deploy.*`-style types, `com.env0.deployment.*`, or
//!   `com.env-zero.*` with `x-env-zero-*` headers.
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

use std::fmt::Write as _;

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Notify, watch};
use tracing::debug;
use url::Url;

use super::json::{DeploymentJson, Ts};
use super::world::{Change, World, uuid};
use super::{SimConfig, lock};

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

/// What a delivery's signature covers (also `--sim-webhook-signing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WebhookSigning {
    /// The body as sent (env0's docs; the default). The body is sent compact.
    #[default]
    RawBody,
    /// The body's canonical re-serialisation, as `JSON.stringify(JSON.parse(body))` gives it
    /// (env0's guide sample); the body is sent pretty-printed, so the two differ.
    Canonical,
}

/// How event types and headers are spelt (also `--sim-webhook-event-types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WebhookEventTypes {
    /// `com.env0.<deploy|destroy|drift|pr-plan|…>.<action>` with `x-env0-*` headers (the
    /// default, after env0's published literals).
    #[default]
    Deploy,
    /// `com.env0.deployment.<action>` for every deployment type, with `x-env0-*` headers.
    Deployment,
    /// `com.env-zero.<deploy|destroy|…>.<action>` with `x-env-zero-*` headers (env0's renaming).
    EnvZero,
}

/// The ways of sending that [`SimConfig`] chooses.
#[derive(Debug, Clone, Copy)]
struct Style {
    signing: WebhookSigning,
    ids_differ: bool,
    event_types: WebhookEventTypes,
}

impl Style {
    fn of(config: &SimConfig) -> Self {
        Self {
            signing: config.webhook_signing,
            ids_differ: config.webhook_ids_differ,
            event_types: config.webhook_event_types,
        }
    }

    /// The event type of a change, spelt this way (the world notes `com.env0.<family>.<action>`).
    fn event_type(self, noted: &str) -> String {
        let rest = noted.strip_prefix("com.env0.").unwrap_or(noted);
        match self.event_types {
            WebhookEventTypes::Deploy => noted.to_owned(),
            WebhookEventTypes::Deployment => {
                let action = rest.rsplit('.').next().unwrap_or(rest);
                format!("com.env0.deployment.{action}")
            }
            WebhookEventTypes::EnvZero => format!("com.env-zero.{rest}"),
        }
    }

    /// The prefix of the header names and the `User-Agent`.
    fn brand(self) -> &'static str {
        match self.event_types {
            WebhookEventTypes::EnvZero => "env-zero",
            WebhookEventTypes::Deploy | WebhookEventTypes::Deployment => "env0",
        }
    }
}

/// One delivery as sent (kept for tests when [`SimConfig::record_requests`] is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The event type, e.g. `com.env0.deploy.succeeded`.
    pub event_type: String,
    /// The event id header's value (`x-env0-event-id` or `x-env-zero-event-id`).
    pub event_id: String,
    /// The body's `id`: the header's unless [`SimConfig::webhook_ids_differ`].
    pub body_id: String,
    /// The request headers, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: String,
    /// What the signature covers: the body, or its compact form under
    /// [`WebhookSigning::Canonical`].
    pub signed: String,
    /// The status the receiver answered; `None` when none came back.
    pub status: Option<u16>,
}

/// One queued delivery.
#[derive(Debug, Clone)]
struct Delivery {
    event_type: String,
    event_id: String,
    body_id: String,
    headers: Vec<(String, String)>,
    body: String,
    signed: String,
}

/// The deliveries waiting to be sent, and the sending.
pub(super) struct Outbox {
    target: WebhookTarget,
    record: bool,
    style: Style,
    /// The deployment types whose changes are not delivered.
    silent: Vec<String>,
    ids: Mutex<fastrand::Rng>,
    notification_target_id: String,
    pending: Mutex<VecDeque<Delivery>>,
    wake: Notify,
    queued: AtomicU64,
    done: watch::Sender<u64>,
    sent: Mutex<Vec<DeliveryRecord>>,
}

impl Outbox {
    /// An outbox for `target`, sending as `config` says (its seed is the world's).
    pub(super) fn new(target: WebhookTarget, config: &SimConfig) -> Self {
        let mut ids = fastrand::Rng::with_seed(config.seed ^ ID_SEED_SALT);
        let notification_target_id = uuid(&mut ids);
        Self {
            target,
            record: config.record_requests,
            style: Style::of(config),
            silent: config.webhook_silent_types.clone(),
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
        let style = self.style;
        let brand = style.brand();
        for change in &changes {
            if self
                .silent
                .iter()
                .any(|t| t == change.deployment.kind.as_str())
            {
                continue;
            }
            let body_id = uuid(&mut ids);
            let event_id = if style.ids_differ {
                uuid(&mut ids)
            } else {
                body_id.clone()
            };
            let event_type = style.event_type(&change.event_type);
            let Some(event) = body(world, change, &event_type, &body_id) else {
                continue;
            };
            let (body, signed) = match style.signing {
                WebhookSigning::RawBody => {
                    let Ok(body) = serde_json::to_string(&event) else {
                        continue;
                    };
                    (body.clone(), body)
                }
                WebhookSigning::Canonical => {
                    let event = as_javascript_numbers(event);
                    let (Ok(body), Ok(signed)) = (
                        serde_json::to_string_pretty(&event),
                        serde_json::to_string(&event),
                    ) else {
                        continue;
                    };
                    (body, signed)
                }
            };
            let signature = sign(self.target.secret.as_bytes(), signed.as_bytes());
            let headers = vec![
                ("user-agent".to_owned(), format!("{brand}-webhook")),
                ("content-type".to_owned(), "application/json".to_owned()),
                (format!("x-{brand}-event"), event_type.clone()),
                (format!("x-{brand}-event-id"), event_id.clone()),
                (
                    format!("x-{brand}-notification-target-id"),
                    self.notification_target_id.clone(),
                ),
                (format!("x-{brand}-signature"), signature),
            ];
            pending.push_back(Delivery {
                event_type,
                event_id,
                body_id,
                headers,
                body,
                signed,
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
                    body_id: delivery.body_id,
                    headers: delivery.headers,
                    body: delivery.body,
                    signed: delivery.signed,
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

    /// The bodies waiting to be sent.
    #[cfg(test)]
    fn pending_bodies(&self) -> Vec<String> {
        lock(&self.pending).iter().map(|d| d.body.clone()).collect()
    }

    /// The deliveries waiting to be sent.
    #[cfg(test)]
    fn pending(&self) -> Vec<Delivery> {
        lock(&self.pending).iter().cloned().collect()
    }
}

/// HMAC-SHA256 of `body` under `secret`, in lowercase hex: the simulator's own signer.
fn sign(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// `value` with every whole number held as a float (a cost of `12.0`) turned into an integer,
/// so that its compact serialisation is what JavaScript's `JSON.stringify` prints for it
/// (`12`). The simulator's other numbers are integers, and its fractional amounts lie where
/// both print the same shortest digits without an exponent.
fn as_javascript_numbers(value: Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            #[allow(clippy::cast_possible_truncation)] // whole and below 2^53: exact
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                Value::from(f as i64)
            }
            _ => Value::Number(n),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(as_javascript_numbers).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, as_javascript_numbers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// The `CloudEvent` body of one change, as a JSON value.
fn body(world: &World, change: &Change, event_type: &str, event_id: &str) -> Option<Value> {
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
        "type": event_type,
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
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimConfig, Simulator};
    use env0_clock::{Clock, ManualClock, SharedClock};

    fn config(webhook: bool) -> SimConfig {
        config_with(webhook, |_| {})
    }

    fn config_with(webhook: bool, set: impl FnOnce(&mut SimConfig)) -> SimConfig {
        let mut config = SimConfig {
            environments: 40,
            mean_deployment_interval: Duration::from_secs(20 * 60),
            webhook: webhook.then(|| WebhookTarget {
                url: "http://127.0.0.1:9/webhooks/env0".parse().unwrap(),
                secret: "s3cret".into(),
            }),
            ..SimConfig::default()
        };
        set(&mut config);
        config
    }

    fn run(webhook: bool) -> (Simulator, Arc<ManualClock>) {
        run_with(config(webhook))
    }

    fn run_with(config: SimConfig) -> (Simulator, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new("2026-07-01T12:00:00Z".parse().unwrap()));
        let shared: SharedClock = clock.clone();
        let sim = Simulator::new(config, shared);
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

    fn pending(sim: &Simulator) -> Vec<Delivery> {
        sim.inner
            .outbox
            .as_ref()
            .map(|o| o.pending())
            .unwrap_or_default()
    }

    fn header<'d>(d: &'d Delivery, name: &str) -> Option<&'d str> {
        d.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// HMAC-SHA256 hex, with the `hmac` crate here (neither the simulator's nor the exporter's).
    fn hmac_hex(body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            })
    }

    #[test]
    fn by_default_the_raw_compact_body_is_signed_and_both_ids_are_one() {
        let (sim, _) = run(true);
        let deliveries = pending(&sim);
        assert!(!deliveries.is_empty());
        for d in &deliveries {
            assert_eq!(d.body, d.signed);
            assert!(!d.body.contains('\n'));
            assert_eq!(
                header(d, "x-env0-signature"),
                Some(hmac_hex(&d.body).as_str())
            );
            assert_eq!(header(d, "x-env0-event-id"), Some(d.body_id.as_str()));
            assert_eq!(header(d, "user-agent"), Some("env0-webhook"));
            let body: Value = serde_json::from_str(&d.body).unwrap();
            assert_eq!(body["id"], d.body_id.as_str());
        }
    }

    #[test]
    fn canonical_signing_sends_a_pretty_body_and_signs_what_json_stringify_gives() {
        let (sim, _) = run_with(config_with(true, |c| {
            c.webhook_signing = WebhookSigning::Canonical;
        }));
        let deliveries = pending(&sim);
        assert!(deliveries.len() > 20);
        for d in &deliveries {
            assert_ne!(d.body, d.signed, "sent in another form than signed");
            assert!(d.body.contains("\n  "), "pretty-printed");
            assert_eq!(
                header(d, "x-env0-signature"),
                Some(hmac_hex(&d.signed).as_str())
            );
            // The same event either way (that what is signed is the body's canonical form as
            // the exporter's own reading of JSON.stringify computes it is the exporter's test:
            // tests/e2e/webhooks.rs).
            let sent: Value = serde_json::from_str(&d.body).unwrap();
            let signed: Value = serde_json::from_str(&d.signed).unwrap();
            assert_eq!(sent, signed);
        }
    }

    #[test]
    fn whole_floats_are_written_as_javascript_writes_them() {
        let value = json!({"a": 12.0, "b": [0.5, -3.0, 7], "c": {"d": 2.25}, "e": "1.0"});
        assert_eq!(
            serde_json::to_string(&as_javascript_numbers(value)).unwrap(),
            r#"{"a":12,"b":[0.5,-3,7],"c":{"d":2.25},"e":"1.0"}"#
        );
    }

    #[test]
    fn ids_can_differ_between_header_and_body() {
        let (sim, _) = run_with(config_with(true, |c| c.webhook_ids_differ = true));
        let deliveries = pending(&sim);
        assert!(!deliveries.is_empty());
        for d in &deliveries {
            let body: Value = serde_json::from_str(&d.body).unwrap();
            assert_eq!(body["id"], d.body_id.as_str());
            assert_eq!(header(d, "x-env0-event-id"), Some(d.event_id.as_str()));
            assert_ne!(d.event_id, d.body_id);
        }
    }

    #[test]
    fn silent_types_are_never_delivered_and_the_rest_is_as_before() {
        let (all, _) = run(true);
        let (some, _) = run_with(config_with(true, |c| {
            c.webhook_silent_types = vec!["prPlan".into(), "driftDetection".into()];
        }));
        assert_eq!(all.deployments(), some.deployments());
        let kind = |d: &Delivery| -> String {
            let body: Value = serde_json::from_str(&d.body).unwrap();
            body["data"]["deploymentLog"]["type"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let silent = |k: &str| k == "prPlan" || k == "driftDetection";
        let everything: Vec<String> = pending(&all).iter().map(kind).collect();
        assert!(everything.iter().any(|k| silent(k)), "{everything:?}");
        let kept: Vec<String> = everything.into_iter().filter(|k| !silent(k)).collect();
        let sent: Vec<String> = pending(&some).iter().map(kind).collect();
        assert!(!kept.is_empty());
        assert_eq!(sent, kept);
    }

    #[test]
    fn event_types_and_headers_are_spelt_as_configured_and_the_world_is_the_same() {
        let (default, _) = run(true);
        let (deployment, _) = run_with(config_with(true, |c| {
            c.webhook_event_types = WebhookEventTypes::Deployment;
        }));
        let (env_zero, _) = run_with(config_with(true, |c| {
            c.webhook_event_types = WebhookEventTypes::EnvZero;
        }));
        assert_eq!(default.deployments(), deployment.deployments());
        assert_eq!(default.deployments(), env_zero.deployments());
        let base = pending(&default);
        for (sim, prefix, brand) in [
            (&deployment, "com.env0.deployment.", "env0"),
            (&env_zero, "com.env-zero.", "env-zero"),
        ] {
            let deliveries = pending(sim);
            assert_eq!(deliveries.len(), base.len());
            for (d, b) in deliveries.iter().zip(&base) {
                assert!(d.event_type.starts_with(prefix), "{}", d.event_type);
                // The action is kept: `com.env0.drift.detected` → `…detected`.
                let action = b.event_type.rsplit('.').next().unwrap();
                assert!(
                    d.event_type.ends_with(action),
                    "{} {}",
                    d.event_type,
                    b.event_type
                );
                let body: Value = serde_json::from_str(&d.body).unwrap();
                assert_eq!(body["type"], d.event_type.as_str());
                assert_eq!(
                    header(d, &format!("x-{brand}-event")),
                    Some(d.event_type.as_str())
                );
                assert_eq!(
                    header(d, &format!("x-{brand}-event-id")),
                    Some(d.event_id.as_str())
                );
                assert_eq!(
                    header(d, &format!("x-{brand}-signature")),
                    Some(hmac_hex(&d.body).as_str())
                );
                assert_eq!(
                    header(d, "user-agent"),
                    Some(format!("{brand}-webhook").as_str())
                );
            }
        }
        assert!(
            pending(&env_zero)
                .iter()
                .any(|d| d.event_type.starts_with("com.env-zero.deploy."))
        );
    }
}
