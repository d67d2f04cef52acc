//! Per-scrape encoding of the state-mirroring metrics from the current snapshot.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use super::labels::{DeploymentLabelSet, Shape};
use super::series::SeriesCounts;
use crate::clock::SharedClock;
use crate::ratelimit::SlidingWindow;
use crate::state::{EnvironmentRow, Snapshot, SnapshotHandle};

const CACHED: &str = "(cached from the last poll of env0)";

/// Encodes the gauges that mirror env0 and the exporter's health.
pub struct StateCollector {
    snapshot: SnapshotHandle,
    /// The client's request budget, shared: the gauge shows what is left of it now.
    budget: Arc<SlidingWindow>,
    clock: SharedClock,
    /// Label sets of the registered deployment families.
    series: Arc<SeriesCounts>,
}

impl std::fmt::Debug for StateCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCollector").finish_non_exhaustive()
    }
}

impl StateCollector {
    /// A collector reading `snapshot`, `budget` at `clock`'s now for the requests left, and
    /// `series` for the size of the registered families.
    #[must_use]
    pub(crate) fn new(
        snapshot: SnapshotHandle,
        budget: Arc<SlidingWindow>,
        clock: SharedClock,
        series: Arc<SeriesCounts>,
    ) -> Self {
        Self {
            snapshot,
            budget,
            clock,
            series,
        }
    }
}

/// The families of the environment view (`--environment-metrics`).
const ENVIRONMENT_VIEW: [&str; 3] = [
    "env0_environment_info",
    "env0_environment_latest_deployment",
    "env0_environment_latest_deployment_finished_timestamp_seconds",
];

/// One series per environment row; nothing at all when the view is off.
fn encode_environment_view(
    encoder: &mut DescriptorEncoder,
    rows: &[EnvironmentRow],
) -> Result<(), std::fmt::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(
        "env0_environment_info",
        &format!("1 for each env0 environment, by status and drift status {CACHED}"),
        None,
        MetricType::Gauge,
    )?;
    for row in rows {
        let labels = [
            ("environment", &*row.environment),
            ("environment_id", &*row.environment_id),
            ("project", &*row.project),
            ("project_id", &*row.project_id),
            ("status", &*row.status),
            ("drift_status", &*row.drift_status),
        ];
        ConstGauge::new(1).encode(m.encode_family(&labels)?)?;
    }
    let mut m = encoder.encode_descriptor(
        "env0_environment_latest_deployment",
        &format!(
            "1 for each env0 environment's latest deployment, by its type and status {CACHED}"
        ),
        None,
        MetricType::Gauge,
    )?;
    for row in rows {
        if let Some(latest) = &row.latest {
            let labels = [
                ("environment", &*row.environment),
                ("environment_id", &*row.environment_id),
                ("project", &*row.project),
                ("project_id", &*row.project_id),
                ("deployment_type", &*latest.deployment_type),
                ("status", &*latest.status),
            ];
            ConstGauge::new(1).encode(m.encode_family(&labels)?)?;
        }
    }
    let mut m = encoder.encode_descriptor(
        "env0_environment_latest_deployment_finished_timestamp",
        &format!("When each env0 environment's latest deployment finished {CACHED}"),
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    for row in rows {
        if let Some(finished) = row.latest.as_ref().and_then(|l| l.finished_at) {
            let labels = [
                ("environment", &*row.environment),
                ("environment_id", &*row.environment_id),
                ("project", &*row.project),
            ];
            ConstGauge::new(seconds(finished)).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
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

/// `env0_exporter_clock_offset_seconds{source}`, once anything told: exact from env0's `Date`
/// headers (`source="date_header"`), a lower bound from its records (`source="records"`);
/// absent while nothing told (no series at all rather than a made-up 0).
fn clock_offset(
    encoder: &mut DescriptorEncoder,
    offset: Option<jiff::SignedDuration>,
    source: crate::clock::OffsetSource,
) -> Result<(), std::fmt::Error> {
    let Some(offset) = offset else {
        return Ok(());
    };
    if source == crate::clock::OffsetSource::None {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(
        "env0_exporter_clock_offset",
        "env0's clock minus the exporter's: exact to the second from env0's Date headers (source=\"date_header\"), else a lower bound from the newest timestamp env0's records showed (source=\"records\"); env0's timestamps are compared only with env0's time so estimated",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    ConstGauge::new(offset.as_secs_f64()).encode(m.encode_family(&[("source", source.as_str())])?)
}

/// `env0_exporter_optional_call_unavailable{call, reason}`: per optional env0 call, 1 with why
/// while it is unavailable as last tried, 0 with `reason="none"` while it works.
fn optional_unavailable(
    encoder: &mut DescriptorEncoder,
    health: &crate::state::Health,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(
        "env0_exporter_optional_call_unavailable",
        "1 while an optional env0 call (projects: project names; deployment: a single deployment read) is refused or failing when last tried, with the reason; 0 with reason=\"none\" while it works. The counts carry on without it; some labels degrade",
        None,
        MetricType::Gauge,
    )?;
    for call in crate::state::OPTIONAL_CALLS {
        let (reason, value) = health
            .optional_unavailable
            .get(call)
            .map_or(("none", 0), |reason| (*reason, 1));
        ConstGauge::new(value).encode(m.encode_family(&[("call", call), ("reason", reason)])?)?;
    }
    Ok(())
}

/// `env0_exporter_env0_behaviour_info`: what the exporter learnt of env0 where its docs say
/// nothing.
fn env0_behaviour(
    encoder: &mut DescriptorEncoder,
    health: &crate::state::Health,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(
        "env0_exporter_env0_behaviour_info",
        "What the exporter learnt of env0 where its docs say nothing: the timestamp the deployments listing's date filter uses (createdAt, queuedAt, startedAt, unknown), the order of its pages (newest, oldest, unknown) and whether env0 sends a Date header (true, false, unknown before a poll succeeded)",
        None,
        MetricType::Gauge,
    )?;
    let labels = [
        ("date_filter_field", health.date_filter_field.as_str()),
        ("page_order", health.page_order.as_str()),
        ("date_header", date_header(health)),
    ];
    ConstGauge::new(1).encode(m.encode_family(&labels)?)
}

/// Whether env0's answers carry a `Date` header: from where the clock estimate comes from.
fn date_header(health: &crate::state::Health) -> &'static str {
    match (health.clock_source, health.last_success) {
        (crate::clock::OffsetSource::DateHeader, _) => "true",
        (_, Some(_)) => "false",
        (_, None) => "unknown",
    }
}

/// With webhooks on, what their deliveries are known to cover:
/// `env0_exporter_webhook_projects_delivering` and `env0_exporter_webhook_ends_delivered` by
/// deployment type (runs of a type at 0, or of a project not delivering, keep the polling rules).
fn webhook_coverage(
    encoder: &mut DescriptorEncoder,
    health: &crate::state::Health,
) -> Result<(), std::fmt::Error> {
    let Some(coverage) = &health.webhook_coverage else {
        return Ok(());
    };
    gauge(
        encoder,
        "env0_exporter_webhook_projects_delivering",
        "env0 projects a verified webhook delivery came from within the last 24 hours: runs of other projects keep the polling freshness while webhooks are live",
        None,
        coverage.projects,
    )?;
    let mut m = encoder.encode_descriptor(
        "env0_exporter_webhook_ends_delivered",
        "1 when, within the last 24 hours, webhook deliveries brought both a success and another end (failed, cancelled, ...) of runs of this deployment type, else 0: runs of a type at 0 keep the polling freshness while webhooks are live",
        None,
        MetricType::Gauge,
    )?;
    for (deployment_type, covered) in &coverage.types {
        ConstGauge::new(i64::from(*covered))
            .encode(m.encode_family(&[("deployment_type", &**deployment_type)])?)?;
    }
    Ok(())
}

/// How far the reads of whole lookback windows are: the backfill, and (with full sync on)
/// `env0_exporter_full_sync_duration_seconds` and `…_oldest_age_seconds`.
fn read_progress(
    encoder: &mut DescriptorEncoder,
    health: &crate::state::Health,
) -> Result<(), std::fmt::Error> {
    gauge(
        encoder,
        "env0_exporter_backfill_pending_environments",
        "env0 environments whose lookback window has not been read yet (0 once the start-up backfill is done)",
        None,
        health.backfill_pending,
    )?;
    if let Some(interval) = health.full_sync_interval {
        gauge(
            encoder,
            "env0_exporter_full_sync_duration",
            "The interval in which every environment's deployments are re-read in full: --full-sync-interval, or longer when the request budget cannot hold it for the environments listed",
            Some(&Unit::Seconds),
            interval.as_secs_f64(),
        )?;
    }
    if let Some(interval) = health.unfinished_reread_interval {
        gauge(
            encoder,
            "env0_exporter_unfinished_reread_interval",
            "The longest gap kept between re-reads of an environment holding unfinished runs that are not its latest, once they back off: --unfinished-reread-max-interval, or longer when those re-reads would take more than a tenth of the request budget",
            Some(&Unit::Seconds),
            interval.as_secs_f64(),
        )?;
    }
    if let Some(age) = health.full_sync_oldest_age {
        gauge(
            encoder,
            "env0_exporter_full_sync_oldest_age",
            "Age of the oldest full read of an environment's lookback window among those due periodic full re-reads, by the exporter's clock as of the last poll",
            Some(&Unit::Seconds),
            age.as_secs_f64(),
        )?;
    }
    Ok(())
}

impl StateCollector {
    /// `env0_exporter_series`: label sets per deployment family.
    fn encode_series(
        &self,
        encoder: &mut DescriptorEncoder,
        snap: &Snapshot,
    ) -> Result<(), std::fmt::Error> {
        let mut m = encoder.encode_descriptor(
            "env0_exporter_series",
            "Label sets of each deployment family, the number --max-series-per-metric bounds",
            None,
            MetricType::Gauge,
        )?;
        let mut families: Vec<(&str, usize)> = self.series.counts();
        families.push(("env0_deployments", snap.deployments.len()));
        if !snap.environment_rows.is_empty() {
            for family in ENVIRONMENT_VIEW {
                families.push((family, snap.environment_rows.len()));
            }
        }
        families.sort_unstable();
        for (family, count) in families {
            ConstGauge::new(count).encode(m.encode_family(&[("metric", family)])?)?;
        }
        Ok(())
    }
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

        encode_environment_view(&mut encoder, &snap.environment_rows)?;

        self.encode_series(&mut encoder, &snap)?;

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
        clock_offset(&mut encoder, health.clock_offset, health.clock_source)?;
        optional_unavailable(&mut encoder, health)?;
        env0_behaviour(&mut encoder, health)?;
        read_progress(&mut encoder, health)?;
        webhook_coverage(&mut encoder, health)?;
        gauge(
            &mut encoder,
            "env0_exporter_unreadable_environments",
            "env0 environments listed whose deployments the API key may not read (403 on their last read), as of the last poll",
            None,
            snap.unreadable_environments,
        )?;
        Ok(())
    }
}
