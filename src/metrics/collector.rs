//! Per-scrape encoding of the state-mirroring metrics from the current snapshot.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use super::labels::{DeploymentLabelSet, Shape};
use crate::clock::SharedClock;
use crate::ratelimit::SlidingWindow;
use crate::state::SnapshotHandle;

const CACHED: &str = "(cached from the last poll of env0)";

/// Encodes the gauges that mirror env0 and the exporter's health.
pub struct StateCollector {
    snapshot: SnapshotHandle,
    /// The client's request budget, shared: the gauge shows what is left of it now.
    budget: Arc<SlidingWindow>,
    clock: SharedClock,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

impl StateCollector {
    /// A collector reading `snapshot`, and `budget` at `clock`'s now for the requests left.
    #[must_use]
    pub fn new(snapshot: SnapshotHandle, budget: Arc<SlidingWindow>, clock: SharedClock) -> Self {
        Self {
            snapshot,
            budget,
            clock,
        }
    }
}

fn seconds(ts: jiff::Timestamp) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let millis = ts.as_millisecond() as f64;
    millis / 1000.0
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl EncodeGaugeValue,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snap = self.snapshot.load();

        let mut m = encoder.encode_descriptor(
            "env0_deployments",
            &format!(
                "env0 deployments created within the lookback window, plus older unfinished ones, by current status {CACHED}"
            ),
            None,
            MetricType::Gauge,
        )?;
        for (labels, count) in &snap.deployments {
            let labels = DeploymentLabelSet::new(labels, Shape::ALL);
            ConstGauge::new(*count).encode(m.encode_family(&labels)?)?;
        }

        let mut m = encoder.encode_descriptor(
            "env0_deployment_oldest_unfinished_timestamp",
            &format!("queuedAt (else createdAt) of the oldest env0 deployment in each unfinished status {CACHED}"),
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (status, ts) in &snap.oldest_unfinished {
            ConstGauge::new(seconds(*ts)).encode(m.encode_family(&[("status", &**status)])?)?;
        }

        let mut m = encoder.encode_descriptor(
            "env0_deployment_last_finished_timestamp",
            &format!("Newest finish time among the known env0 deployments of each type and status {CACHED}"),
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        for ((kind, status), ts) in &snap.last_finished {
            let labels = [("deployment_type", &**kind), ("status", &**status)];
            ConstGauge::new(seconds(*ts)).encode(m.encode_family(&labels)?)?;
        }

        let mut m = encoder.encode_descriptor(
            "env0_environments",
            &format!("Non-archived env0 environments by status and drift status {CACHED}"),
            None,
            MetricType::Gauge,
        )?;
        for ((status, drift), count) in &snap.environments {
            let labels = [("status", &**status), ("drift_status", &**drift)];
            ConstGauge::new(*count).encode(m.encode_family(&labels)?)?;
        }

        let health = &snap.health;
        gauge(
            &mut encoder,
            "env0_up",
            "1 if the last poll of the env0 API completed without error, else 0",
            None,
            i64::from(health.up),
        )?;
        if let Some(ts) = health.last_success {
            gauge(
                &mut encoder,
                "env0_exporter_last_successful_poll_timestamp",
                "When the last successful poll of env0 finished",
                Some(&Unit::Seconds),
                seconds(ts),
            )?;
        }
        if let Some(d) = health.last_poll_duration {
            gauge(
                &mut encoder,
                "env0_exporter_poll_duration",
                "Duration of the last poll of env0",
                Some(&Unit::Seconds),
                d.as_secs_f64(),
            )?;
        }
        gauge(
            &mut encoder,
            "env0_exporter_api_budget_remaining",
            "Requests left in the exporter's own 60-second env0 API budget",
            None,
            self.budget.remaining(self.clock.now()),
        )?;
        gauge(
            &mut encoder,
            "env0_exporter_tracked_deployments",
            "env0 deployment records held in memory",
            None,
            snap.tracked_deployments,
        )?;
        gauge(
            &mut encoder,
            "env0_exporter_backfill_pending_environments",
            "env0 environments whose lookback window has not been read yet (0 once the start-up backfill is done)",
            None,
            health.backfill_pending,
        )?;
        Ok(())
    }
}
