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
pub use crate::webhook::labels::{EventFamily, ForwardOutcome, SignatureForm, WebhookOutcome};

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

/// The webhook room reports each delivery here.
impl crate::webhook::DeliveryObserver for Metrics {
    fn delivery(&self, event: EventFamily, outcome: WebhookOutcome) {
        self.families.change(|f| {
            f.webhook_events
                .events
                .get_or_create(&WebhookLabels { event, outcome })
                .inc();
        });
    }

    /// Nothing is counted when forwarding is off (the family is not registered).
    fn forwarded(&self, outcome: ForwardOutcome) {
        self.families.change(|f| {
            if let Some(forwards) = &f.webhook_events.forwards {
                forwards.get_or_create(&ForwardLabels { outcome }).inc();
            }
        });
    }

    fn signature(&self, form: SignatureForm) {
        self.families.change(|f| {
            f.webhook_events
                .signatures
                .get_or_create(&SignatureLabels { form })
                .inc();
        });
    }
}

label_value_as_str!(EventFamily, WebhookOutcome, SignatureForm, ForwardOutcome);
