//! `env0_exporter_webhook_events_total`: deliveries received on `/webhooks/env0`, by event family
//! and outcome; and `env0_exporter_webhook_signatures_total`: the valid signatures, by the form
//! of the body they covered (which tells a user which way their env0 signs). The webhook's
//! bounded values are encoded as label values.

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
    pub(crate) outcome: Outcome,
}

/// The labels of one signature series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct SignatureLabels {
    /// What the valid signature covered.
    pub(crate) form: SignatureForm,
}

/// The webhook families.
#[derive(Debug, Clone)]
pub(crate) struct WebhookMetrics {
    events: Family<WebhookLabels, Counter>,
    signatures: Family<SignatureLabels, Counter>,
}

/// Registers both families, with the series users alert on created at 0: every event family's
/// `accepted` (is anything arriving?), the refusals, which count under `other`, and every
/// signature form.
pub(crate) fn register(registry: &mut Registry) -> WebhookMetrics {
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
    WebhookMetrics { events, signatures }
}

fn register_events(registry: &mut Registry) -> Family<WebhookLabels, Counter> {
    let family = Family::<WebhookLabels, Counter>::default();
    for event in EventFamily::ALL {
        let _ = family.get_or_create(&WebhookLabels {
            event,
            outcome: Outcome::Accepted,
        });
    }
    for outcome in [Outcome::BadSignature, Outcome::BadRequest] {
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
    pub fn webhook_event(&self, event: EventFamily, outcome: Outcome) {
        self.families.change(|f| {
            f.webhook_events
                .events
                .get_or_create(&WebhookLabels { event, outcome })
                .inc();
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

label_value_as_str!(EventFamily, Outcome, SignatureForm);

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
pub enum Outcome {
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
    /// Missing or wrong signature: 401, nothing changed.
    BadSignature,
    /// A body that is too large (413) or not an env0 event (400).
    BadRequest,
}
