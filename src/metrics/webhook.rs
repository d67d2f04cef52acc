//! `env0_exporter_webhook_events_total`: deliveries received on `/webhooks/env0`, by event family
//! and outcome, with the webhook's bounded values encoded as label values.

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

/// Registers the family, with the series users alert on created at 0: every family's
/// `accepted` (is anything arriving?) and the refusals, which count under `other`.
pub(crate) fn register(registry: &mut Registry) -> Family<WebhookLabels, Counter> {
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
                .get_or_create(&WebhookLabels { event, outcome })
                .inc();
        });
    }
}

label_value_as_str!(EventFamily, Outcome);

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
    /// Its event id was seen within the last hour: answered, not taken in again.
    Duplicate,
    /// Verified but not acted on: no deployment log (budget, test events), an environment
    /// that is not watched, or the hand-over queue full (polling catches up).
    Ignored,
    /// Missing or wrong signature: 401, nothing changed.
    BadSignature,
    /// A body that is too large (413) or not an env0 event (400).
    BadRequest,
}
