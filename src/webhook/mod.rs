//! Real time: env0 notification-target deliveries on `POST /webhooks/env0`.
//!
//! A delivery is checked and answered here, at once, and never waits on a poll:
//! 1. its body is read up to [`MAX_BODY_BYTES`] (413 past it);
//! 2. its HMAC-SHA256 signature is verified in constant time against the raw body and against
//!    the body's canonical form, `JSON.stringify(JSON.parse(body))` ([`canonical`],
//!    [`signature`]): env0's docs sign the raw body, its guide's sample the re-serialised one.
//!    401 and nothing changed when neither matches; otherwise the form that matched is counted
//!    in `env0_exporter_webhook_signatures_total`;
//! 3. an event carrying a deployment log whose `time` lies more than [`MAX_EVENT_SKEW`] from
//!    env0's time as the exporter knows it (our clock plus the clock offset the poller
//!    measured) is refused as `stale`: once its id is forgotten it could not be told from a
//!    replay, and polling repairs what it carried. Events without a log change nothing and are
//!    not judged by their age (env0's test button may send a sample with an old time);
//! 4. the signed body is checked against those of the last two hours ([`recent`]): the body's
//!    `id` with its deployment log's `id` and `status` make the key. The `x-env0-event-id`
//!    header is not signed (and differs from the body's `id` in env0's own sample), so it is
//!    only logged: a body replayed under a fresh header id is a duplicate;
//! 5. a deployment log it carries (whatever the event type: `com.env0.deploy.*`,
//!    `com.env0.deployment.*`, `com.env-zero.*`, …) for an environment the exporter watches is
//!    converted like a polled one ([`observation`](crate::observation::observation)) and
//!    handed to the poller through a bounded queue. The poller owns the state: it ingests the
//!    observation between polls through the same path as polled runs (filters, exactly-once
//!    counting, which reads the log's type and status) and publishes a fresh snapshot.
//!
//! Whether an environment is watched is read from the set the poller sends down a channel of
//! its own ([`tokio::sync::watch`]: the environments of the last listing), so a delivery for
//! another organisation's environment is answered as ignored. Polling stays the source of
//! truth: env0 never retries a delivery, so a lost or refused one is repaired by the next poll
//! that reads its environment.
//!
//! With `--shard` and `--webhook-forward-url-template`, a delivery for an environment of another
//! shard is forwarded to that shard instead of ignored ([`forward`]).
//!
//! Every delivery is counted once in `env0_exporter_webhook_events_total` under its
//! [`EventFamily`] and [`WebhookOutcome`]. The family is read from the signed body (the headers are
//! not signed); a delivery whose signature or body is bad counts under `other`, since nothing in
//! it can be trusted.

mod canonical;
mod event;
mod forward;
pub(crate) mod labels;
mod recent;
mod signature;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::client::DeploymentLog;
use crate::clock::SharedClock;
use crate::secret::SecretSource;
use crate::state::{Observation, SnapshotHandle};
use recent::RecentIds;

pub use event::{EventFamily, WebhookOutcome};
pub use forward::{FORWARDED_FROM, Forwarding, TIMEOUT as FORWARD_TIMEOUT, UrlTemplate};
pub use signature::{SignatureForm, sign, verify, verify_either};

/// Told what became of each delivery, for the webhook metrics (`crate::metrics` implements
/// it): the webhook room names the outcomes, the metrics count them, and nothing here depends on
/// how they are encoded.
pub trait DeliveryObserver: Send + Sync {
    /// One delivery of the `event` family ended with `outcome`.
    fn delivery(&self, event: EventFamily, outcome: WebhookOutcome);
    /// One delivery forwarded to another shard, by what came of it.
    fn forwarded(&self, outcome: labels::ForwardOutcome);
    /// One valid signature, by the form of the body it covered.
    fn signature(&self, form: SignatureForm);
}

/// `JSON.stringify(JSON.parse(body))`, or `None` when `body` is not JSON: what a signature of
/// the canonical form covers (the simulator's tests hold its own signer against it).
#[must_use]
pub fn canonical_form(body: &[u8]) -> Option<String> {
    canonical::canonical(body)
}

/// Where deliveries are received.
pub const PATH: &str = "/webhooks/env0";
/// Largest body read (1 MiB); a larger one is answered 413. env0's events are a few KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Observations waiting for the poller at most; past it, deliveries are ignored (and counted so)
/// until the poller catches up, and polling repairs what they carried.
pub const QUEUE_CAPACITY: usize = 4096;

/// How far an event's `time` may lie from env0's time as the exporter knows it, either way;
/// past it the delivery is refused as [`WebhookOutcome::Stale`]. Half the time an event id is kept
/// ([`recent::TIME_TO_LIVE`]), so nothing the dedupe has forgotten is taken in again, and wide
/// enough for an estimate of env0's clock that is a quarter of an hour off.
pub const MAX_EVENT_SKEW: Duration = Duration::from_secs(30 * 60);
const _: () = assert!(recent::TIME_TO_LIVE.as_secs() >= 2 * MAX_EVENT_SKEW.as_secs());

/// Signature headers, env0's spelling first (the docs move to "env zero").
const SIGNATURE_HEADERS: [&str; 2] = ["x-env0-signature", "x-env-zero-signature"];
/// Event id headers.
const EVENT_ID_HEADERS: [&str; 2] = ["x-env0-event-id", "x-env-zero-event-id"];
/// Event type headers.
const EVENT_HEADERS: [&str; 2] = ["x-env0-event", "x-env-zero-event"];

/// The receiving side of webhooks: what the handler needs, shared by every request.
pub struct Intake {
    secret: SecretSource,
    snapshot: SnapshotHandle,
    /// The environments of the poller's last listing: deliveries for any other (another
    /// organisation's, or one env0 no longer lists) are ignored.
    watched: watch::Receiver<Arc<HashSet<Arc<str>>>>,
    metrics: Arc<dyn DeliveryObserver>,
    clock: SharedClock,
    queue: mpsc::Sender<Observation>,
    recent: Mutex<RecentIds>,
    bad_signatures: AtomicU64,
    /// Where deliveries for other shards' environments go; `None`: they are ignored.
    forwarding: Option<Forwarding>,
}

impl std::fmt::Debug for Intake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Intake")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// How a delivery is answered and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeliveryVerdict {
    status: StatusCode,
    event: EventFamily,
    outcome: WebhookOutcome,
    /// The shard to forward the delivery to, when it is another's.
    forward_to: Option<crate::shard::Shard>,
}

impl DeliveryVerdict {
    fn new(event: EventFamily, outcome: WebhookOutcome) -> Self {
        let status = match outcome {
            // A forwarded delivery is answered as the forward went (`forward::Forwarding::send`).
            WebhookOutcome::Accepted | WebhookOutcome::Forwarded => StatusCode::ACCEPTED,
            WebhookOutcome::Duplicate | WebhookOutcome::Ignored => StatusCode::OK,
            WebhookOutcome::Misrouted => StatusCode::MISDIRECTED_REQUEST,
            WebhookOutcome::BadSignature => StatusCode::UNAUTHORIZED,
            WebhookOutcome::BadRequest | WebhookOutcome::Stale => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            event,
            outcome,
            forward_to: None,
        }
    }

    fn too_large() -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..Self::new(EventFamily::Other, WebhookOutcome::BadRequest)
        }
    }
}

impl Intake {
    /// An intake checking signatures with `secret`, reading env0's clock offset from
    /// `snapshot` and the watched environments from `watched` (the poller's channel); the
    /// returned receiver is the poller's end of the hand-over queue.
    #[must_use]
    pub fn new(
        secret: impl Into<SecretSource>,
        snapshot: SnapshotHandle,
        watched: watch::Receiver<Arc<HashSet<Arc<str>>>>,
        metrics: Arc<dyn DeliveryObserver>,
        clock: SharedClock,
    ) -> (Self, mpsc::Receiver<Observation>) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let intake = Self {
            secret: secret.into(),
            snapshot,
            watched,
            metrics,
            clock,
            queue,
            recent: Mutex::new(RecentIds::default()),
            bad_signatures: AtomicU64::new(0),
            forwarding: None,
        };
        (intake, receiver)
    }

    /// This intake, forwarding deliveries for other shards' environments with `forwarding`.
    #[must_use]
    pub fn with_forwarding(self, forwarding: Option<Forwarding>) -> Self {
        Self { forwarding, ..self }
    }

    /// Checks, answers and counts one delivery.
    async fn receive(&self, headers: &HeaderMap, body: Body) -> DeliveryVerdict {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| usize::try_from(n).map_or(true, |n| n > MAX_BODY_BYTES)) {
            return DeliveryVerdict::too_large();
        }
        // Past the limit, or a body that broke off (whose sender will not read the answer).
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return DeliveryVerdict::too_large();
        };
        let secret = self.secret.current();
        let canonical = canonical::canonical(&bytes);
        let form = first(headers, &SIGNATURE_HEADERS).and_then(|s| {
            verify_either(
                secret.expose().as_bytes(),
                &bytes,
                canonical.as_deref().map(str::as_bytes),
                s,
            )
        });
        let Some(form) = form else {
            self.bad_signature(headers);
            return DeliveryVerdict::new(EventFamily::Other, WebhookOutcome::BadSignature);
        };
        self.metrics.signature(form);
        // An event is a JSON object; of it, `type`, `id`, `time` and `data` are read.
        let Ok(event) = serde_json::from_slice::<Map<String, Value>>(&bytes) else {
            debug!("webhook: a signed body that is not a JSON event");
            return DeliveryVerdict::new(EventFamily::Other, WebhookOutcome::BadRequest);
        };
        let verdict = self.take(headers, &event);
        match (verdict.forward_to, &self.forwarding) {
            (Some(to), Some(forwarding)) => DeliveryVerdict {
                status: forwarding.send(to, headers, bytes, &*self.metrics).await,
                ..verdict
            },
            _ => verdict,
        }
    }

    /// The verified event: checked for age, deduplicated, classified, and handed over when it
    /// is acted on.
    fn take(&self, headers: &HeaderMap, event: &Map<String, Value>) -> DeliveryVerdict {
        let event_type = event
            .get("type")
            .and_then(Value::as_str)
            .or_else(|| first(headers, &EVENT_HEADERS))
            .map(str::to_owned);
        let body_id = event.get("id").and_then(id_text);
        let header_id = first(headers, &EVENT_ID_HEADERS);
        let data = event.get("data").unwrap_or(&Value::Null);
        let log = match data.get("deploymentLog") {
            None | Some(Value::Null) => None,
            Some(value) => match DeploymentLog::deserialize(value) {
                Ok(log) => Some(log),
                Err(e) => {
                    debug!(error = %e, event_type = ?event_type, "webhook: unreadable deploymentLog");
                    return DeliveryVerdict::new(EventFamily::Other, WebhookOutcome::BadRequest);
                }
            },
        };
        let family = EventFamily::of(
            event_type.as_deref(),
            log.as_ref().and_then(|l| l.deployment_type.as_deref()),
            log.as_ref().and_then(|l| l.status.as_deref()),
        );
        // Only an event that would be acted on is judged by its age: a test or budget event
        // (env0's test button may well send a sample with an old time) changes nothing anyway.
        let env0_now = self.env0_now();
        let time = log
            .as_ref()
            .and_then(|_| event.get("time"))
            .and_then(Value::as_str);
        if let Some(time) = time {
            match time.parse::<jiff::Timestamp>() {
                Ok(time) if skew(time, env0_now) > MAX_EVENT_SKEW => {
                    debug!(%time, %env0_now, event_id = ?body_id, "webhook: event time too far from env0's time, refused as stale");
                    return DeliveryVerdict::new(family, WebhookOutcome::Stale);
                }
                Ok(_) => {}
                // Not a timestamp: its age cannot be told, the dedupe still applies.
                Err(e) => debug!(error = %e, "webhook: unreadable event time"),
            }
        }
        let key = dedupe_key(
            body_id.as_deref(),
            log.as_ref().map(|l| l.id.as_str()),
            log.as_ref().and_then(|l| l.status.as_deref()),
        );
        if let Some(key) = key {
            let new = self
                .recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(&key, self.clock.now());
            if !new {
                debug!(event_id = ?body_id, header_event_id = ?header_id, "webhook: duplicate delivery");
                return DeliveryVerdict::new(family, WebhookOutcome::Duplicate);
            }
        }
        let Some(log) = log else {
            debug!(event_type = ?event_type, "webhook: no deployment log, nothing to do");
            return DeliveryVerdict::new(family, WebhookOutcome::Ignored);
        };
        let environment_id = log
            .environment_id
            .clone()
            .or_else(|| {
                data.pointer("/environment/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .filter(|id| !id.is_empty());
        let Some(environment_id) = environment_id else {
            debug!(deployment = %log.id, "webhook: deployment log without an environment");
            return DeliveryVerdict::new(EventFamily::Other, WebhookOutcome::BadRequest);
        };
        if !self.watched.borrow().contains(environment_id.as_str()) {
            if let Some(forward) = self
                .forwarding
                .as_ref()
                .and_then(|f| f.verdict(headers, &environment_id, family))
            {
                return forward;
            }
            debug!(environment = %environment_id, "webhook: environment not watched, ignored");
            return DeliveryVerdict::new(family, WebhookOutcome::Ignored);
        }
        let observation = crate::observation::observation(&log, &environment_id);
        match self.queue.try_send(observation) {
            Ok(()) => {
                debug!(event_type = ?event_type, event_id = ?body_id, header_event_id = ?header_id, deployment = %log.id, status = ?log.status, "webhook: accepted");
                DeliveryVerdict::new(family, WebhookOutcome::Accepted)
            }
            Err(e) => {
                warn!(error = %e, "webhook: the poller is not taking deliveries in now; the next polls catch up");
                DeliveryVerdict::new(family, WebhookOutcome::Ignored)
            }
        }
    }

    /// env0's time now as the exporter knows it: our clock plus the offset the poller last
    /// published (none before the first poll, or when env0's clock could not be told).
    fn env0_now(&self) -> jiff::Timestamp {
        let now = self.clock.now();
        self.snapshot
            .load()
            .health
            .clock_offset
            .and_then(|offset| now.checked_add(offset).ok())
            .unwrap_or(now)
    }

    /// Logs a refused signature: the first, then at every power of two, so a wrong secret shows
    /// in the logs and a flood does not fill them.
    fn bad_signature(&self, headers: &HeaderMap) {
        let n = self.bad_signatures.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            let present = first(headers, &SIGNATURE_HEADERS).is_some();
            warn!(
                refused_so_far = n,
                signature_header_present = present,
                "webhook: missing or wrong signature (does the notification target's secret match --webhook-secret?)"
            );
        }
    }
}

/// How far apart two timestamps are, either way.
fn skew(a: jiff::Timestamp, b: jiff::Timestamp) -> Duration {
    crate::clock::elapsed(a, b).max(crate::clock::elapsed(b, a))
}

/// An event id as text: a string as it is, a number in its JSON form; nothing else is an id.
fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_owned()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What identifies a signed delivery for the dedupe: the body's event id, with the deployment
/// log's id and status (so that, were env0's body ids not unique per event, a run's next status
/// is still taken in). `None` when the body has none of them.
fn dedupe_key(body_id: Option<&str>, log_id: Option<&str>, status: Option<&str>) -> Option<String> {
    if body_id.is_none() && log_id.is_none() {
        return None;
    }
    let part = |p: Option<&str>| p.unwrap_or("").replace('\\', "\\\\").replace('\n', "\\n");
    Some(format!(
        "{}\n{}\n{}",
        part(body_id),
        part(log_id),
        part(status)
    ))
}

/// The value of the first of `names` present (as text).
fn first<'h>(headers: &'h HeaderMap, names: &[&str]) -> Option<&'h str> {
    names
        .iter()
        .find_map(|n| headers.get(*n))
        .and_then(|v| v.to_str().ok())
}

/// The webhook route, without a socket (tests call it with `oneshot`).
pub fn router(intake: Arc<Intake>) -> Router {
    Router::new().route(PATH, post(handle)).with_state(intake)
}

async fn handle(State(intake): State<Arc<Intake>>, headers: HeaderMap, body: Body) -> Response {
    let verdict = intake.receive(&headers, body).await;
    intake.metrics.delivery(verdict.event, verdict.outcome);
    let text = match verdict.outcome {
        WebhookOutcome::Accepted => "accepted\n",
        WebhookOutcome::Duplicate => "duplicate\n",
        WebhookOutcome::Stale => "event time too far from env0's time\n",
        WebhookOutcome::Ignored => "ignored\n",
        WebhookOutcome::Forwarded if verdict.status.is_success() => {
            "forwarded to the shard of its environment\n"
        }
        WebhookOutcome::Forwarded => "forwarding to the shard of its environment failed\n",
        WebhookOutcome::Misrouted => {
            "forwarded by another shard, and not this shard's environment\n"
        }
        WebhookOutcome::BadSignature => "missing or wrong signature\n",
        WebhookOutcome::BadRequest if verdict.status == StatusCode::PAYLOAD_TOO_LARGE => {
            "body too large\n"
        }
        WebhookOutcome::BadRequest => "not an env0 event\n",
    };
    (verdict.status, text).into_response()
}

#[cfg(test)]
mod tests;
