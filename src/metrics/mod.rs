//! Prometheus metrics: the only module that knows `prometheus-client`.
//!
//! Two kinds live here. Events that happen once (a deployment finishing, an API request) go into
//! ordinary registered counters and histograms. State that mirrors env0 (window gauges, ages,
//! health) is encoded per scrape from the current [`Snapshot`](crate::state::Snapshot) by
//! [`collector::StateCollector`], so a scrape never sees half-updated data.

mod collector;
mod exemplar;
mod exposition;
mod labels;
mod series;
mod signals;
mod skipped;
mod state_file_writes;
mod webhook;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use crate::client::{Endpoint, Reason, RequestObserver, RequestOutcome, SkipReason};
use crate::clock::SharedClock;
use crate::ratelimit::SlidingWindow;
use crate::state::{DeploymentLabels, Event, FINISHED_STATUSES, SnapshotHandle};
use exemplar::RunHistogram;
use labels::{
    ApiLabels, DeploymentLabelSet, EndpointLabels, ReasonLabels, Shape, ShardLabels, VersionLabels,
};
use series::SeriesCounts;

/// Exposed names of the registered deployment families, as `env0_exporter_series` labels them.
const FINISHED: &str = "env0_deployments_finished_total";
const DURATION: &str = "env0_deployment_duration_seconds";
const QUEUE: &str = "env0_deployment_queue_duration_seconds";

pub use collector::StateCollector;
pub use exposition::Body;
pub use labels::HistogramLabels;
pub use signals::{APPROVAL_BUCKETS, RECOVERY_BUCKETS};
pub use webhook::{
    EventFamily, ForwardOutcome as WebhookForwardOutcome, SignatureForm, WebhookOutcome,
};

/// Content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// Content type of `OpenMetrics` text 1.0.0.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Default buckets of `env0_deployment_duration_seconds`: 5 s to 4 h, the span of `IaC` runs.
pub const DEFAULT_DURATION_BUCKETS: [f64; 13] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 5400.0, 7200.0, 14400.0,
];
/// Buckets of `env0_deployment_queue_duration_seconds`: 1 s to 1 h.
pub const QUEUE_BUCKETS: [f64; 10] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Buckets of `env0_exporter_api_request_duration_seconds`.
pub const API_BUCKETS: [f64; 10] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Histogram constructor with fixed buckets.
#[derive(Clone, Debug)]
struct Buckets(Arc<[f64]>);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// Settings of the metrics.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// Bucket bounds (seconds) of `env0_deployment_duration_seconds`.
    pub duration_buckets: Vec<f64>,
    /// This exporter's shard, shown by `env0_exporter_shard_info` and `env0_exporter_shards`.
    pub shard: crate::shard::Shard,
    /// Whether the state file's metrics are registered (`--state-file` set).
    pub state_file: bool,
    /// Whether `env0_exporter_webhook_forwards_total` is registered (webhooks forwarded between
    /// shards).
    pub webhook_forwards: bool,
    /// Labels of `env0_deployment_duration_seconds`; `None`: type, status, tool (and project).
    pub duration_labels: Option<HistogramLabels>,
    /// Labels of `env0_deployment_queue_duration_seconds`; `None`: type, tool (and project).
    pub queue_labels: Option<HistogramLabels>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            duration_buckets: DEFAULT_DURATION_BUCKETS.to_vec(),
            shard: crate::shard::Shard::default(),
            state_file: false,
            webhook_forwards: false,
            duration_labels: None,
            queue_labels: None,
        }
    }
}

/// Every metric the exporter serves.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The registered families that change while the exporter runs: reachable only through
    /// [`Live::change`](exposition::Live::change), which keys the cached body.
    families: exposition::Live<Families>,
    /// The labels `duration` and `queue` carry: their defaults or the operator's choice.
    shapes: (Shape, Shape),
    series: Arc<SeriesCounts>,
    /// Deployment label sets whose series [`Self::ensure_series`] has created: the poller
    /// passes every label set at every publish, and a set seen before costs one look-up
    /// instead of a label set built, hashed and looked up per family.
    ensured: Mutex<HashSet<DeploymentLabels>>,
    /// The last scrape bodies encoded.
    cache: exposition::Cache,
    /// Where the snapshot, the budget and the time the body depends on come from.
    sources: (SnapshotHandle, Arc<SlidingWindow>, SharedClock),
}

/// The registered counters, histograms and gauges that events change (the snapshot's state is
/// encoded per scrape by the collector instead).
#[derive(Debug)]
struct Families {
    finished: Family<DeploymentLabelSet, Counter>,
    duration: Family<DeploymentLabelSet, RunHistogram, Buckets>,
    queue: Family<DeploymentLabelSet, RunHistogram, Buckets>,
    signals: signals::SignalMetrics,
    api_requests: Family<ApiLabels, Counter>,
    api_duration: Family<EndpointLabels, Histogram, Buckets>,
    poll_errors: Family<ReasonLabels, Counter>,
    webhook_events: webhook::WebhookMetrics,
    skipped_records: Family<skipped::SkipLabels, Counter>,
    state_file: Option<state_file_writes::StateFileMetrics>,
}

/// The exporter's build and shard: series that never change while it runs.
fn register_identity(registry: &mut Registry, shard: crate::shard::Shard) {
    registry.register(
        "env0_exporter_build",
        "Build information of env0-exporter",
        Info::new(VersionLabels {
            version: env!("CARGO_PKG_VERSION"),
        }),
    );
    registry.register(
        "env0_exporter_shard",
        "This exporter's shard of the env0 organisation (--shard N/M): shard N of M",
        Info::new(ShardLabels {
            shard: shard.index().to_string(),
            shards: shard.count().to_string(),
        }),
    );
    let shards = Gauge::<i64>::default();
    shards.set(i64::from(shard.count()));
    registry.register(
        "env0_exporter_shards",
        "Number of shards the env0 organisation is split into (M of --shard N/M; 1 unsharded)",
        shards,
    );
}

impl Metrics {
    /// Registers every metric; state metrics read `snapshot`, and the request `budget` at
    /// `clock`'s now, at each scrape.
    #[must_use]
    pub fn new(
        config: &MetricsConfig,
        snapshot: SnapshotHandle,
        budget: Arc<SlidingWindow>,
        clock: SharedClock,
    ) -> Self {
        let mut registry = Registry::default();
        let finished = Family::<DeploymentLabelSet, Counter>::default();
        let duration =
            Family::new_with_constructor(Buckets(config.duration_buckets.clone().into()));
        let queue = Family::new_with_constructor(Buckets(QUEUE_BUCKETS.to_vec().into()));
        let api_requests = Family::<ApiLabels, Counter>::default();
        let api_duration = Family::new_with_constructor(Buckets(API_BUCKETS.to_vec().into()));
        let poll_errors = Family::<ReasonLabels, Counter>::default();
        let series = Arc::new(SeriesCounts::default());
        for reason in Reason::ALL {
            let _ = poll_errors.get_or_create(&ReasonLabels { reason });
        }

        registry.register(
            "env0_deployments_finished",
            "env0 deployments that reached a finished status since the exporter started, each counted once (learned from polls)",
            finished.clone(),
        );
        registry.register_with_unit(
            "env0_deployment_duration",
            "finishedAt - startedAt of env0 deployments counted in env0_deployments_finished_total",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register_with_unit(
            "env0_deployment_queue_duration",
            "startedAt - queuedAt of env0 deployments that started since the exporter started",
            Unit::Seconds,
            queue.clone(),
        );
        let signals = signals::SignalMetrics::register(&mut registry, series.clone());
        registry.register(
            "env0_exporter_api_requests",
            "HTTP requests the exporter made to the env0 API, by endpoint and HTTP status (timeout/error when none came back)",
            api_requests.clone(),
        );
        registry.register_with_unit(
            "env0_exporter_api_request_duration",
            "Duration of HTTP requests to the env0 API",
            Unit::Seconds,
            api_duration.clone(),
        );
        registry.register(
            "env0_exporter_poll_errors",
            "Polls of env0 that failed, by reason",
            poll_errors.clone(),
        );
        let webhook_events = webhook::register(&mut registry, config.webhook_forwards);
        let skipped_records = skipped::register(&mut registry);
        let state_file = config
            .state_file
            .then(|| state_file_writes::StateFileMetrics::register(&mut registry));
        register_identity(&mut registry, config.shard);
        let sources = (snapshot.clone(), budget.clone(), clock.clone());
        registry.register_collector(Box::new(StateCollector::new(
            snapshot,
            budget,
            clock,
            series.clone(),
        )));

        Self {
            registry,
            families: exposition::Live::new(Families {
                finished,
                duration,
                queue,
                signals,
                api_requests,
                api_duration,
                poll_errors,
                webhook_events,
                skipped_records,
                state_file,
            }),
            shapes: (
                Shape::chosen(Shape::DURATION, config.duration_labels),
                Shape::chosen(Shape::QUEUE, config.queue_labels),
            ),
            series,
            ensured: Mutex::default(),
            cache: exposition::Cache::default(),
            sources,
        }
    }

    /// Records a one-time event from the state.
    pub fn record(&self, event: &Event) {
        self.families.change(|f| match event {
            Event::Finished {
                labels,
                duration,
                run,
            } => {
                f.finished
                    .get_or_create(&self.labels(FINISHED, labels, Shape::ALL))
                    .inc();
                if let Some(d) = duration {
                    let histogram =
                        f.duration
                            .get_or_create(&self.labels(DURATION, labels, self.shapes.0));
                    exemplar::observe(&histogram, d.as_secs_f64(), run);
                }
            }
            Event::Started {
                labels,
                queue_wait,
                run,
            } => {
                let histogram = f
                    .queue
                    .get_or_create(&self.labels(QUEUE, labels, self.shapes.1));
                exemplar::observe(&histogram, queue_wait.as_secs_f64(), run);
            }
            Event::ResourceChanges { .. }
            | Event::ApprovalWait { .. }
            | Event::DriftDetection { .. }
            | Event::Recovered { .. } => f.signals.record(event),
        });
    }

    /// Creates, at 0, the counter and histogram series a deployment with these labels will
    /// feed, so `increase()` and `rate()` see its first finish instead of a series appearing
    /// at 1 (which they cannot tell from a series that was always 1).
    pub fn ensure_series(&self, labels: &DeploymentLabels) {
        {
            let mut ensured = self.ensured.lock().unwrap_or_else(PoisonError::into_inner);
            if ensured.contains(labels) {
                return; // families never drop a series: they are all still there
            }
            ensured.insert(labels.clone());
        }
        self.families.change(|f| {
            if FINISHED_STATUSES.contains(&&*labels.status) {
                let _ = f
                    .finished
                    .get_or_create(&self.labels(FINISHED, labels, Shape::ALL));
                let _ = f
                    .duration
                    .get_or_create(&self.labels(DURATION, labels, self.shapes.0));
            }
            let _ = f
                .queue
                .get_or_create(&self.labels(QUEUE, labels, self.shapes.1));
            f.signals.ensure_series(labels);
        });
    }

    /// The label set of `family` for a deployment, noted for `env0_exporter_series`.
    fn labels(
        &self,
        family: &'static str,
        labels: &DeploymentLabels,
        shape: Shape,
    ) -> DeploymentLabelSet {
        let set = DeploymentLabelSet::new(labels, shape);
        self.series.note(family, &set);
        set
    }

    /// Counts a failed poll under its reason.
    pub fn poll_error(&self, reason: Reason) {
        self.families.change(|f| {
            f.poll_errors.get_or_create(&ReasonLabels { reason }).inc();
        });
    }

    /// The scrape body, `OpenMetrics` text when `openmetrics` else Prometheus text 0.0.4, kept
    /// gzip-compressed (the text is inflated from it for a scrape without gzip): encoded again only when the snapshot, a registered family or the budget left
    /// changed since the last one (see [`exposition`]).
    ///
    /// # Errors
    /// Only if formatting into a string fails, which it does not in practice.
    pub fn body(&self, openmetrics: bool) -> Result<Arc<Body>, std::fmt::Error> {
        self.cache
            .get_or_encode(usize::from(openmetrics), self.key(), |mut out| {
                self.encode_into(&mut out, openmetrics)
            })
    }

    /// The body [`body`](Self::body) would give without encoding, if there is one: the current
    /// body, or the previous one while another scrape encodes the current one. A scrape that
    /// gets `None` encodes, off the async workers.
    #[must_use]
    pub fn ready_body(&self, openmetrics: bool) -> Option<Arc<Body>> {
        self.cache.ready(usize::from(openmetrics), self.key())
    }

    /// What the scrape body depends on, now.
    fn key(&self) -> exposition::Key {
        let (snapshot, budget, clock) = &self.sources;
        exposition::Key {
            snapshot: snapshot.version(),
            changes: self.families.changes(),
            budget: budget.remaining(clock.now()),
        }
    }

    /// Renders every metric; `OpenMetrics` text when `openmetrics`, else Prometheus text 0.0.4.
    ///
    /// # Errors
    /// Only if formatting into a string fails, which it does not in practice.
    pub fn encode(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        self.encode_into(&mut out, openmetrics)?;
        Ok(out)
    }

    /// [`encode`](Self::encode) into `out`.
    fn encode_into(
        &self,
        out: &mut impl std::fmt::Write,
        openmetrics: bool,
    ) -> Result<(), std::fmt::Error> {
        if openmetrics {
            prometheus_client::encoding::text::encode(out, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
        }
    }
}

/// Every HTTP attempt the client makes feeds the request counter and duration histogram.
impl RequestObserver for Metrics {
    fn observe(&self, endpoint: Endpoint, outcome: RequestOutcome, duration: Duration) {
        self.families.change(|f| {
            f.api_requests
                .get_or_create(&ApiLabels {
                    endpoint,
                    code: outcome,
                })
                .inc();
            f.api_duration
                .get_or_create(&EndpointLabels { endpoint })
                .observe(duration.as_secs_f64());
        });
    }

    fn skipped(&self, _endpoint: Endpoint, reason: SkipReason) {
        self.families.change(|f| {
            f.skipped_records
                .get_or_create(&skipped::SkipLabels { reason })
                .inc();
        });
    }
}

#[cfg(test)]
mod signal_tests;
#[cfg(test)]
mod tests;
