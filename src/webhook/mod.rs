//! Real time: env0 notification-target deliveries on `POST /webhooks/env0`.
//!
//! A delivery is checked and answered here, at once, and never waits on a poll: its body is
//! read up to [`MAX_BODY_BYTES`] (413 past it), its HMAC-SHA256 signature verified in constant
//! time ([`signature`]; 401 and nothing changed when missing or wrong), its event id checked
//! against the ids of the last hour ([`recent`]), and a deployment log it carries for an
//! environment the exporter watches is converted like a polled one
//! ([`poller::observation`](crate::poller::observation)) and handed to the poller through a
//! bounded queue. The poller owns the state: it ingests the observation between polls through the
//! same path as polled runs (filters, exactly-once counting) and publishes a fresh snapshot.
//!
//! Whether an environment is watched is read from the published snapshot (the environments of
//! the last listing), so a delivery for another organisation's environment is answered as
//! ignored. Polling stays the source of truth: env0 never retries a delivery, so a lost one is
//! repaired by the next poll that reads its environment.
//!
//! Every delivery is counted once in `env0_exporter_webhook_events_total` under its
//! [`EventFamily`] and [`Outcome`]. The event type, the event id and the family are read from
//! the signed body where it has them (the headers are not signed); a delivery whose signature
//! or body is bad counts under `other`, since nothing in it can be trusted.

mod event;
mod recent;
mod signature;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::client::DeploymentLog;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::secret::SecretSource;
use crate::state::{Observation, SnapshotHandle};
use recent::RecentIds;

pub use event::{EventFamily, Outcome};
pub use signature::{sign, verify};

/// Where deliveries are received.
pub const PATH: &str = "/webhooks/env0";
/// Largest body read (1 MiB); a larger one is answered 413. env0's events are a few KiB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Observations waiting for the poller at most; past it, deliveries are ignored (and counted so)
/// until the poller catches up, and polling repairs what they carried.
pub const QUEUE_CAPACITY: usize = 4096;

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
    metrics: Arc<Metrics>,
    clock: SharedClock,
    queue: mpsc::Sender<Observation>,
    recent: Mutex<RecentIds>,
    bad_signatures: AtomicU64,
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
struct Verdict {
    status: StatusCode,
    event: EventFamily,
    outcome: Outcome,
}

impl Verdict {
    fn new(event: EventFamily, outcome: Outcome) -> Self {
        let status = match outcome {
            Outcome::Accepted => StatusCode::ACCEPTED,
            Outcome::Duplicate | Outcome::Ignored => StatusCode::OK,
            Outcome::BadSignature => StatusCode::UNAUTHORIZED,
            Outcome::BadRequest => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            event,
            outcome,
        }
    }

    fn too_large() -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..Self::new(EventFamily::Other, Outcome::BadRequest)
        }
    }
}

impl Intake {
    /// An intake checking signatures with `secret`, reading the watched environments from
    /// `snapshot`; the returned receiver is the poller's end of the hand-over queue.
    #[must_use]
    pub fn new(
        secret: impl Into<SecretSource>,
        snapshot: SnapshotHandle,
        metrics: Arc<Metrics>,
        clock: SharedClock,
    ) -> (Self, mpsc::Receiver<Observation>) {
        let (queue, receiver) = mpsc::channel(QUEUE_CAPACITY);
        let intake = Self {
            secret: secret.into(),
            snapshot,
            metrics,
            clock,
            queue,
            recent: Mutex::new(RecentIds::default()),
            bad_signatures: AtomicU64::new(0),
        };
        (intake, receiver)
    }

    /// Checks, answers and counts one delivery.
    async fn receive(&self, headers: &HeaderMap, body: Body) -> Verdict {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| usize::try_from(n).map_or(true, |n| n > MAX_BODY_BYTES)) {
            return Verdict::too_large();
        }
        // Past the limit, or a body that broke off (whose sender will not read the answer).
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
            return Verdict::too_large();
        };
        let secret = self.secret.current();
        let signed = first(headers, &SIGNATURE_HEADERS)
            .is_some_and(|s| verify(secret.expose().as_bytes(), &bytes, s));
        if !signed {
            self.bad_signature(headers);
            return Verdict::new(EventFamily::Other, Outcome::BadSignature);
        }
        // An event is a JSON object; of it, `type`, `id` and `data` are read.
        let Ok(event) = serde_json::from_slice::<Map<String, Value>>(&bytes) else {
            debug!("webhook: a signed body that is not a JSON event");
            return Verdict::new(EventFamily::Other, Outcome::BadRequest);
        };
        self.take(headers, &event)
    }

    /// The verified event: deduplicated, classified, and handed over when it is acted on.
    fn take(&self, headers: &HeaderMap, event: &Map<String, Value>) -> Verdict {
        let event_type = event
            .get("type")
            .and_then(Value::as_str)
            .or_else(|| first(headers, &EVENT_HEADERS))
            .map(str::to_owned);
        let event_id = first(headers, &EVENT_ID_HEADERS)
            .or_else(|| event.get("id").and_then(Value::as_str))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        let data = event.get("data").unwrap_or(&Value::Null);
        let log = match data.get("deploymentLog") {
            None | Some(Value::Null) => None,
            Some(value) => match DeploymentLog::deserialize(value) {
                Ok(log) => Some(log),
                Err(e) => {
                    debug!(error = %e, event_type = ?event_type, "webhook: unreadable deploymentLog");
                    return Verdict::new(EventFamily::Other, Outcome::BadRequest);
                }
            },
        };
        let family = EventFamily::of(
            event_type.as_deref(),
            log.as_ref().and_then(|l| l.deployment_type.as_deref()),
            log.as_ref().and_then(|l| l.status.as_deref()),
        );
        if let Some(id) = &event_id {
            let now = self.clock.now();
            let new = self
                .recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, now);
            if !new {
                debug!(event_id = %id, "webhook: duplicate delivery");
                return Verdict::new(family, Outcome::Duplicate);
            }
        }
        let Some(log) = log else {
            debug!(event_type = ?event_type, "webhook: no deployment log, nothing to do");
            return Verdict::new(family, Outcome::Ignored);
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
            return Verdict::new(EventFamily::Other, Outcome::BadRequest);
        };
        if !self
            .snapshot
            .load()
            .watched_environments
            .contains(environment_id.as_str())
        {
            debug!(environment = %environment_id, "webhook: environment not watched, ignored");
            return Verdict::new(family, Outcome::Ignored);
        }
        let observation = crate::poller::observation(&log, &environment_id);
        match self.queue.try_send(observation) {
            Ok(()) => {
                debug!(event_type = ?event_type, deployment = %log.id, status = ?log.status, "webhook: accepted");
                Verdict::new(family, Outcome::Accepted)
            }
            Err(e) => {
                warn!(error = %e, "webhook: the poller is not taking deliveries in now; the next polls catch up");
                Verdict::new(family, Outcome::Ignored)
            }
        }
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
    intake.metrics.webhook_event(verdict.event, verdict.outcome);
    let text = match verdict.outcome {
        Outcome::Accepted => "accepted\n",
        Outcome::Duplicate => "duplicate\n",
        Outcome::Ignored => "ignored\n",
        Outcome::BadSignature => "missing or wrong signature\n",
        Outcome::BadRequest if verdict.status == StatusCode::PAYLOAD_TOO_LARGE => {
            "body too large\n"
        }
        Outcome::BadRequest => "not an env0 event\n",
    };
    (verdict.status, text).into_response()
}

#[cfg(test)]
mod tests;
