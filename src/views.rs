//! The opt-in views (`--project-label`, `--environment-metrics`) and their series budget
//! (`--max-series-per-metric`): settings that the configuration makes, the state applies and the
//! state file records, so they live below all three.

/// The opt-in per-project and per-environment views, and their series budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Views {
    /// `project` on the deployment families (`--project-label`).
    pub project_label: bool,
    /// The per-environment gauges (`--environment-metrics`).
    pub environment_metrics: bool,
    /// Most label sets per family (`--max-series-per-metric`).
    pub max_series_per_metric: usize,
}

/// Default of `--max-series-per-metric`: room for the default demo organisation's ~1,000
/// `env0_deployments` label sets several times over, well below what burdens a Prometheus.
pub const DEFAULT_MAX_SERIES_PER_METRIC: usize = 5000;

impl Default for Views {
    fn default() -> Self {
        Self {
            project_label: false,
            environment_metrics: false,
            max_series_per_metric: DEFAULT_MAX_SERIES_PER_METRIC,
        }
    }
}
