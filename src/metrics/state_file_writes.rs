//! `env0_exporter_state_file_*`: writes of the state file (`--state-file`), registered only when
//! it is set.

use std::sync::atomic::AtomicU64;

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::Metrics;

/// The labels of one write series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(crate) struct WriteLabels {
    /// `success` or `failure`.
    pub(crate) outcome: &'static str,
}

/// The state file's metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct StateFileMetrics {
    writes: Family<WriteLabels, Counter>,
    last_write: Gauge<f64, AtomicU64>,
}

impl StateFileMetrics {
    /// Registers both, with each outcome at 0.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        for outcome in ["success", "failure"] {
            let _ = metrics.writes.get_or_create(&WriteLabels { outcome });
        }
        registry.register(
            "env0_exporter_state_file_writes",
            "Writes of the state file (--state-file), by outcome; a failed write leaves the previous file",
            metrics.writes.clone(),
        );
        registry.register_with_unit(
            "env0_exporter_state_file_last_write_timestamp",
            "When the state file was last written successfully (Unix time, the exporter's clock)",
            Unit::Seconds,
            metrics.last_write.clone(),
        );
        metrics
    }
}

impl Metrics {
    /// Counts one write of the state file, started at `at`.
    pub fn state_file_written(&self, ok: bool, at: Timestamp) {
        self.families.change(|f| {
            let Some(m) = &f.state_file else {
                return;
            };
            let outcome = if ok { "success" } else { "failure" };
            m.writes.get_or_create(&WriteLabels { outcome }).inc();
            if ok {
                #[allow(clippy::cast_precision_loss)] // milliseconds since 1970 fit in 53 bits
                m.last_write.set(at.as_millisecond() as f64 / 1000.0);
            }
        });
    }
}
