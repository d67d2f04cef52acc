//! The metrics and views flags: the opt-in project and environment views, their series budget,
//! and the shape of the histograms. They validate into the state's [`Views`] and the
//! [`MetricsConfig`] (whose shard and state-file facts come from their own groups).

use clap::Args;

use super::{ConfigError, invalid};
use crate::metrics::{DEFAULT_DURATION_BUCKETS, HistogramLabels, MetricsConfig};
use crate::state::{DEFAULT_MAX_SERIES_PER_METRIC, Views};

/// [`DEFAULT_DURATION_BUCKETS`] as `--help` shows them (a test keeps the two equal).
pub(super) const DEFAULT_DURATION_BUCKETS_TEXT: &str =
    "5,15,30,60,120,300,600,900,1800,3600,5400,7200,14400";

/// What is shown, and how finely.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Metrics and views")]
pub struct ViewsArgs {
    /// Add a `project` label (the project's name) to the deployment families
    #[arg(long, env = "ENV0_EXPORTER_PROJECT_LABEL", global = true)]
    pub project_label: bool,
    /// Per-environment gauges: each environment's status and its latest run's type, status and finish time, labelled by environment and project
    #[arg(long, env = "ENV0_EXPORTER_ENVIRONMENT_METRICS", global = true)]
    pub environment_metrics: bool,
    /// Most label sets one family may have: past it, the least busy projects fold into project="other", and the environment view keeps environments whose latest run failed first
    #[arg(long, env = "ENV0_EXPORTER_MAX_SERIES_PER_METRIC", default_value_t = u32::try_from(DEFAULT_MAX_SERIES_PER_METRIC).unwrap_or(u32::MAX), value_parser = clap::value_parser!(u32).range(10..=1_000_000), global = true)]
    pub max_series_per_metric: u32,
    /// Bucket bounds in seconds of `env0_deployment_duration_seconds`, comma-separated
    #[arg(
        long,
        env = "ENV0_EXPORTER_DURATION_BUCKETS",
        value_delimiter = ',',
        default_value = DEFAULT_DURATION_BUCKETS_TEXT,
        global = true
    )]
    pub duration_buckets: Vec<f64>,
    /// Labels of `env0_deployment_duration_seconds`, comma-separated, from `deployment_type`, `status`, `iac_tool`, `trigger`, `project` (with --project-label); runs differing only in a label left out are summed into one series [default: `deployment_type,status,iac_tool`, and `project` with --project-label]
    #[arg(
        long,
        env = "ENV0_EXPORTER_DURATION_HISTOGRAM_LABELS",
        value_delimiter = ',',
        global = true
    )]
    pub duration_histogram_labels: Option<Vec<String>>,
    /// Labels of `env0_deployment_queue_duration_seconds`, comma-separated, from `deployment_type`, `iac_tool`, `trigger`, `project` (with --project-label); runs differing only in a label left out are summed into one series [default: `deployment_type,iac_tool`, and `project` with --project-label]
    #[arg(
        long,
        env = "ENV0_EXPORTER_QUEUE_HISTOGRAM_LABELS",
        value_delimiter = ',',
        global = true
    )]
    pub queue_histogram_labels: Option<Vec<String>>,
}

impl ViewsArgs {
    /// The views, and the metrics' configuration with the default shard and no state file
    /// (those two come from their own groups).
    ///
    /// # Errors
    /// The first wrong setting, naming its flag.
    pub fn validate(&self) -> Result<(Views, MetricsConfig), ConfigError> {
        let metrics = MetricsConfig {
            duration_buckets: self.duration_buckets()?,
            duration_labels: self.histogram_labels(
                "--duration-histogram-labels",
                self.duration_histogram_labels.as_deref(),
                &[],
            )?,
            // The queue wait is observed when a run starts, before it has an outcome.
            queue_labels: self.histogram_labels(
                "--queue-histogram-labels",
                self.queue_histogram_labels.as_deref(),
                &["status"],
            )?,
            ..MetricsConfig::default()
        };
        let views = Views {
            project_label: self.project_label,
            environment_metrics: self.environment_metrics,
            max_series_per_metric: self.max_series_per_metric as usize,
        };
        Ok((views, metrics))
    }

    /// `--duration-buckets`: positive and increasing; unset, the defaults.
    fn duration_buckets(&self) -> Result<Vec<f64>, ConfigError> {
        if self.duration_buckets.is_empty() {
            return Ok(DEFAULT_DURATION_BUCKETS.to_vec());
        }
        let b = &self.duration_buckets;
        if b.iter().any(|v| !v.is_finite() || *v <= 0.0) || b.windows(2).any(|w| w[0] >= w[1]) {
            return Err(invalid(
                "--duration-buckets",
                "must be positive numbers of seconds in increasing order, e.g. 30,60,300,900,3600",
            ));
        }
        Ok(b.clone())
    }

    /// The labels a histogram flag names, `None` when it is not set; `refused` are labels the
    /// family cannot carry, and `project` needs `--project-label`.
    fn histogram_labels(
        &self,
        flag: &'static str,
        names: Option<&[String]>,
        refused: &[&str],
    ) -> Result<Option<HistogramLabels>, ConfigError> {
        let Some(names) = names else {
            return Ok(None);
        };
        let allowed: Vec<&str> = HistogramLabels::NAMES
            .into_iter()
            .filter(|n| !refused.contains(n))
            .collect();
        if let Some(name) = names.iter().map(|n| n.trim()).find(|n| refused.contains(n)) {
            return Err(invalid(
                flag,
                format!(
                    "'{name}' is not a label this family can carry: use {}",
                    allowed.join(", ")
                ),
            ));
        }
        let labels = HistogramLabels::parse(names).map_err(|name| {
            invalid(
                flag,
                format!("'{name}' is not one of {}", allowed.join(", ")),
            )
        })?;
        if labels.has_project() && !self.project_label {
            return Err(invalid(
                flag,
                "'project' needs --project-label, which gives deployments that label",
            ));
        }
        Ok(Some(labels))
    }
}
