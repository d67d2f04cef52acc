//! `env0_exporter_skipped_records_total`: records of env0 pages that could not be read and were
//! skipped while the rest of the page was taken, by bounded reason.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::client::SkipReason;

/// The labels of one series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct SkipLabels {
    /// Why the records were skipped.
    pub(crate) reason: SkipReason,
}

/// Registers the family with every reason at 0.
pub(crate) fn register(registry: &mut Registry) -> Family<SkipLabels, Counter> {
    let family = Family::<SkipLabels, Counter>::default();
    for reason in SkipReason::ALL {
        let _ = family.get_or_create(&SkipLabels { reason });
    }
    registry.register(
        "env0_exporter_skipped_records",
        "Records of env0 pages skipped because they could not be read (the rest of the page was taken), by reason",
        family.clone(),
    );
    family
}

impl EncodeLabelValue for SkipReason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}
