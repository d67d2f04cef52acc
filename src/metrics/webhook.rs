//! `env0_exporter_webhook_events_total`: deliveries received on `/webhooks/env0`, by event family
//! and outcome; `env0_exporter_webhook_signatures_total`: the valid signatures, by the form
//! of the body they covered (which tells a user which way their env0 signs); and, with forwarding
//! between shards on, `env0_exporter_webhook_forwards_total`: the deliveries passed on to the
//! shard of their environment, by what came of it. The webhook's bounded values are encoded as
//! label values.

use super::labels::label_value_as_str;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;

/// The labels of one series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct WebhookLabels {
    /// The event family.
    pub(crate) event: EventFamily,
    /// What became of the delivery.
    pub(crate) outcome: WebhookOutcome,
}

/// The labels of one signature series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct SignatureLabels {
    /// What the valid signature covered.
    pub(crate) form: SignatureForm,
}

/// The labels of one forward series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ForwardLabels {
    /// What came of the forward.
    pub(crate) outcome: ForwardOutcome,
}

/// The webhook families.
#[derive(Debug, Clone)]
pub(crate) struct WebhookMetrics {
    events: Family<WebhookLabels, Counter>,
    signatures: Family<SignatureLabels, Counter>,
    /// Registered only with forwarding between shards on.
    forwards: Option<Family<ForwardLabels, Counter>>,
}

/// Registers the families, with the series users alert on created at 0: every event family's
/// `accepted` (is anything arriving?), the refusals, which count under `other`, every
/// signature form, and, when `forwarding` (between shards) is on, every forward outcome.
pub(crate) fn register(registry: &mut Registry, forwarding: bool) -> WebhookMetrics {
    let events = register_events(registry);
    let signatures = Family::<SignatureLabels, Counter>::default();
    for form in SignatureForm::ALL {
        let _ = signatures.get_or_create(&SignatureLabels { form });
    }
    registry.register(
        "env0_exporter_webhook_signatures",
        "env0 webhook deliveries whose signature was valid, by what it covered: the raw body, its canonical re-serialisation (JSON.stringify of the parsed body), or both (the body arrived in its canonical form)",
        signatures.clone(),
    );
    let forwards = forwarding.then(|| register_forwards(registry));
    WebhookMetrics {
        events,
        signatures,
        forwards,
    }
}

fn register_forwards(registry: &mut Registry) -> Family<ForwardLabels, Counter> {
    let family = Family::<ForwardLabels, Counter>::default();
    for outcome in ForwardOutcome::ALL {
        let _ = family.get_or_create(&ForwardLabels { outcome });
    }
    registry.register(
        "env0_exporter_webhook_forwards",
        "env0 webhook deliveries for another shard's environment passed on to that shard (--webhook-forward-url-template), by outcome",
        family.clone(),
    );
    family
}

fn register_events(registry: &mut Registry) -> Family<WebhookLabels, Counter> {
    let family = Family::<WebhookLabels, Counter>::default();
    for event in EventFamily::ALL {
        let _ = family.get_or_create(&WebhookLabels {
            event,
            outcome: WebhookOutcome::Accepted,
        });
    }
    for outcome in [WebhookOutcome::BadSignature, WebhookOutcome::BadRequest] {
        let _ = family.get_or_create(&WebhookLabels {
            event: EventFamily::Other,
            outcome,
        });
    }
    registry.register(
        "env0_exporter_webhook_events",
        "env0 webhook deliveries received on /webhooks/env0, by event family and outcome",
        family.clone(),
    );
    family
}

impl Metrics {
    /// Counts one webhook delivery.
    pub fn webhook_event(&self, event: EventFamily, outcome: WebhookOutcome) {
        self.families.change(|f| {
            f.webhook_events
                .events
                .get_or_create(&WebhookLabels { event, outcome })
                .inc();
        });
    }

    /// Counts one delivery forwarded to another shard, by what came of it (nothing is counted
    /// when forwarding is off).
    pub fn webhook_forward(&self, outcome: ForwardOutcome) {
        self.families.change(|f| {
            if let Some(forwards) = &f.webhook_events.forwards {
                forwards.get_or_create(&ForwardLabels { outcome }).inc();
            }
        });
    }

    /// Counts one valid signature by the form of the body it covered.
    pub fn webhook_signature(&self, form: SignatureForm) {
        self.families.change(|f| {
            f.webhook_events
                .signatures
                .get_or_create(&SignatureLabels { form })
                .inc();
        });
    }
}

label_value_as_str!(EventFamily, WebhookOutcome, SignatureForm, ForwardOutcome);

/// What a valid webhook signature covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureForm {
    /// The raw body as received, and not its canonical form (the two differ).
    Raw,
    /// The canonical form of the body (`JSON.stringify(JSON.parse(body))`), and not the raw
    /// body: the sender re-serialised the body before signing, as env0's guide sample does.
    Canonical,
    /// Both: the body arrived in its canonical form, so either reading fits.
    Both,
}

impl SignatureForm {
    /// Every form, in the order they are documented.
    pub const ALL: [Self; 3] = [Self::Raw, Self::Canonical, Self::Both];

    /// The label value: `raw`, `canonical` or `both`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Canonical => "canonical",
            Self::Both => "both",
        }
    }
}

/// The family of a delivered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventFamily {
    /// A deploy (apply) started, finished, failed, …
    Deploy,
    /// A destroy.
    Destroy,
    /// A drift detection (drift detected, not detected, failed).
    Drift,
    /// A run waiting for, or resuming after, an approval.
    Approval,
    /// A plan: PR plan, remote plan, dry run.
    Plan,
    /// Anything else: budget, test, task events and types not known yet.
    Other,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookOutcome {
    /// Verified and handed to the state (the deployment filters then apply as to polled runs).
    Accepted,
    /// Its signed body (event id, deployment log id and status) was seen within the last two
    /// hours: answered, not taken in again.
    Duplicate,
    /// It carries a deployment log and its `time` is more than half an hour from env0's time as
    /// the exporter knows it: refused (400), nothing changed; too old to be told from a replay
    /// once its id is forgotten. Polling repairs what it carried.
    Stale,
    /// Verified but not acted on: no deployment log (budget, test events), an environment
    /// that is not watched, or the hand-over queue full (polling catches up).
    Ignored,
    /// Verified, for an environment of another shard: passed on to that shard (with forwarding
    /// between shards on), which takes it in; what came of the forward is counted in
    /// `env0_exporter_webhook_forwards_total`.
    Forwarded,
    /// Forwarded here by another shard, for an environment that is not this shard's either (the
    /// shards disagree on their number): 421, dropped rather than forwarded again.
    Misrouted,
    /// Missing or wrong signature: 401, nothing changed.
    BadSignature,
    /// A body that is too large (413) or not an env0 event (400).
    BadRequest,
}

/// What came of forwarding a delivery to the shard of its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardOutcome {
    /// That shard answered 2xx (it took the delivery in, or found it a duplicate or ignored it).
    Ok,
    /// That shard answered, but not 2xx (a different webhook secret: 401; its own shard count
    /// disagrees: 421; a redirect, a proxy's error page, …).
    Refused,
    /// No answer: the URL could not be built, the name not resolved, the connection refused or
    /// broken.
    Error,
    /// No answer within the forward's timeout.
    Timeout,
}

impl ForwardOutcome {
    /// Every outcome, in the order they are documented.
    pub const ALL: [Self; 4] = [Self::Ok, Self::Refused, Self::Error, Self::Timeout];

    /// The label value: `ok`, `refused`, `error` or `timeout`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }
}
