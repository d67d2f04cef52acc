//! Command line and environment: one clap-derive struct, validated once into a [`Config`].
//!
//! env0 names (`ENV0_API_KEY`, `ENV0_API_SECRET`, `ENV0_ORGANIZATION_ID`, `ENV0_API_ENDPOINT`)
//! match env0's own Terraform provider, so users' existing variables work.

mod command_line;
mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use url::Url;

use crate::filter::{DEPLOYMENT_TYPES, DeploymentFilter, ProjectFilter, STATUSES};
use crate::http::{DEFAULT_MAX_CONNECTIONS, WebConfigWatcher};
use crate::metrics::{DEFAULT_DURATION_BUCKETS, HistogramLabels};
use crate::persist::StateFileConfig;
use crate::shard::Shard;
use crate::state::{DEFAULT_MAX_SERIES_PER_METRIC, Views};

pub use crate::secret::{Secret, SecretSource};
pub use webhook::{WebhookArgs, WebhookConfig};

/// [`DEFAULT_DURATION_BUCKETS`] as `--help` shows them (a test keeps the two equal).
const DEFAULT_DURATION_BUCKETS_TEXT: &str = "5,15,30,60,120,300,600,900,1800,3600,5400,7200,14400";

/// The exporter's default port. 9100–9999 is fully allocated on the Prometheus wiki's
/// default-port-allocations page; 19180 is on neither of its lists.
pub const DEFAULT_PORT: u16 = 19180;

/// `--unfinished-reread-max-interval` when not set (or `--poll-interval`, when longer).
pub const DEFAULT_UNFINISHED_REREAD_MAX_INTERVAL: Duration = Duration::from_secs(600);

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 90s, 5m, 24h)"))
}

/// Prometheus exporter for env0 deployments.
///
/// Polls env0's public API on its own timer (env0 is rate limited) and serves deployment
/// counts, durations, queue waits, in-flight runs and environment status on /metrics.
#[derive(Debug, Parser)]
#[command(name = "env0-exporter", version, about, long_about = None)]
pub struct Cli {
    /// What to run; without one, the exporter runs against env0.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Exporter settings, accepted before or after the subcommand.
    #[command(flatten)]
    pub exporter: ExporterArgs,
    /// Settings the environment gave that the chosen subcommand does not use, to be logged.
    #[arg(skip)]
    pub ignored_settings: Vec<String>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a simulated env0 organisation in-process and the exporter against it over HTTP
    /// (no env0 account needed); prints the /metrics URL
    #[command(
        after_help = "demo runs against its own simulated env0, which sends webhooks to the exporter with a secret of its own: the env0 connection flags, the webhook flags, --web-config-file and --sim-listen-address are refused."
    )]
    #[cfg(feature = "simulator")]
    Demo(env0_sim::SimArgs),
    /// Serve only the simulated env0 API (to try a Prometheus/Grafana setup or load tests)
    #[command(
        after_help = "simulate serves only the simulated env0 API: of the exporter's flags it takes only --log-format, and refuses the others."
    )]
    #[cfg(feature = "simulator")]
    Simulate(env0_sim::SimArgs),
    /// Poll env0 once, print the metrics to stdout; exit 0 if the poll succeeded, 1 if not
    #[command(
        after_help = "once polls once and prints: --listen-address, --poll-interval, the --web-* flags and the webhook flags are refused."
    )]
    Once,
    /// Check the key, the organisation and which way this env0 goes, in a few dozen read-only
    /// requests; exit 0 if the exporter can run, 1 if not
    #[command(
        after_help = "doctor takes the env0 connection flags, the filters, --max-requests-per-minute, --request-timeout and the webhook flags (to say what to enter in env0's webhook settings); the other flags are refused. It sends at most 40 requests, read-only."
    )]
    Doctor(DoctorArgs),
}

/// How `doctor` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DoctorOutput {
    /// Aligned lines for a person, with what to do about each problem.
    #[default]
    Text,
    /// One JSON object (attach it to a bug report).
    Json,
}

/// Settings of `doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Report format
    #[arg(long, value_enum, default_value_t = DoctorOutput::Text)]
    pub output: DoctorOutput,
}

/// Exporter settings.
#[derive(Debug, Clone, Args)]
pub struct ExporterArgs {
    /// Base URL of the env0 API
    #[arg(
        long,
        env = "ENV0_API_ENDPOINT",
        default_value = "https://api.env0.com",
        global = true,
        help_heading = "env0 connection"
    )]
    pub api_endpoint: Url,
    /// env0 API key id (the user name of HTTP Basic auth)
    #[arg(
        long,
        env = "ENV0_API_KEY",
        global = true,
        help_heading = "env0 connection"
    )]
    pub api_key: Option<String>,
    /// env0 API key secret; prefer --api-secret-file or the environment variable
    #[arg(
        long,
        env = "ENV0_API_SECRET",
        hide_env_values = true,
        global = true,
        help_heading = "env0 connection"
    )]
    pub api_secret: Option<Secret>,
    /// File holding the env0 API key secret (e.g. a mounted Kubernetes Secret); re-read when it changes
    #[arg(
        long,
        env = "ENV0_API_SECRET_FILE",
        global = true,
        conflicts_with = "api_secret",
        help_heading = "env0 connection"
    )]
    pub api_secret_file: Option<PathBuf>,
    /// env0 organisation to watch [default: the only one the key sees]
    #[arg(
        long,
        env = "ENV0_ORGANIZATION_ID",
        global = true,
        help_heading = "env0 connection"
    )]
    pub organization_id: Option<String>,
    /// Address to serve /metrics on
    #[arg(long, env = "ENV0_EXPORTER_LISTEN_ADDRESS", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)), global = true, help_heading = "Serving and logging")]
    pub listen_address: SocketAddr,
    /// Web configuration file in the Prometheus exporter-toolkit format: TLS and basic auth for
    /// /metrics (probes stay open); re-read when it or the files it names change [default: none,
    /// plain HTTP]
    #[arg(
        long,
        env = "ENV0_EXPORTER_WEB_CONFIG_FILE",
        global = true,
        help_heading = "Serving and logging"
    )]
    pub web_config_file: Option<PathBuf>,
    /// Connections open at once at most, per listener; past it, the one idle the longest is closed
    #[arg(long, env = "ENV0_EXPORTER_WEB_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=65_536), global = true, help_heading = "Serving and logging")]
    pub web_max_connections: u32,
    /// Time between two polls of env0
    #[arg(long, env = "ENV0_EXPORTER_POLL_INTERVAL", default_value = "60s", value_parser = parse_duration, global = true, help_heading = "Polling")]
    pub poll_interval: Duration,
    /// How far back deployments are read and shown by `env0_deployments`
    #[arg(long, env = "ENV0_EXPORTER_LOOKBACK", default_value = "24h", value_parser = parse_duration, global = true, help_heading = "Polling")]
    pub lookback: Duration,
    /// Every environment's deployments are re-read at least this often (0 = never)
    #[arg(long, env = "ENV0_EXPORTER_FULL_SYNC_INTERVAL", default_value = "10m", value_parser = parse_duration, global = true, help_heading = "Polling")]
    pub full_sync_interval: Duration,
    /// Longest gap between re-reads of an environment's unfinished runs other than its latest (the next poll first, then doubling): how stale their status may get, plus one poll; at least --poll-interval [default: 10m, or --poll-interval when longer]
    #[arg(long, env = "ENV0_EXPORTER_UNFINISHED_REREAD_MAX_INTERVAL", value_parser = parse_duration, global = true, help_heading = "Polling")]
    pub unfinished_reread_max_interval: Option<Duration>,
    /// The exporter's own budget of env0 API requests in any 60 s (env0 allows 1000 per IP, shared with your other env0 clients)
    #[arg(long, env = "ENV0_EXPORTER_MAX_REQUESTS_PER_MINUTE", default_value_t = crate::client::DEFAULT_MAX_REQUESTS_PER_MINUTE, value_parser = clap::value_parser!(u32).range(1..=1000), global = true, help_heading = "Polling")]
    pub max_requests_per_minute: u32,
    /// Read only shard N of M of the organisation's environments (by a stable hash of their ids), so that M exporters share an organisation: N/M with N from 1, or a stateful set's pod name and M (`env0-exporter-0/3` is shard 1 of 3) [default: 1/1, every environment]
    #[arg(long, env = "ENV0_EXPORTER_SHARD", value_name = "N/M", value_parser = clap::value_parser!(Shard), global = true, help_heading = "Polling")]
    pub shard: Option<Shard>,
    /// Timeout of one request to env0
    #[arg(long, env = "ENV0_EXPORTER_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true, help_heading = "Polling")]
    pub request_timeout: Duration,
    /// Log format (level from `RUST_LOG`, default info)
    #[arg(long, env = "ENV0_EXPORTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true, help_heading = "Serving and logging")]
    pub log_format: LogFormat,
    /// Bucket bounds in seconds of `env0_deployment_duration_seconds`, comma-separated
    #[arg(
        long,
        env = "ENV0_EXPORTER_DURATION_BUCKETS",
        value_delimiter = ',',
        default_value = DEFAULT_DURATION_BUCKETS_TEXT,
        global = true, help_heading = "Metrics")]
    pub duration_buckets: Vec<f64>,
    /// Labels of `env0_deployment_duration_seconds`, comma-separated, from `deployment_type`, `status`, `iac_tool`, `trigger`, `project` (with --project-label); runs differing only in a label left out are summed into one series [default: `deployment_type,status,iac_tool`, and `project` with --project-label]
    #[arg(
        long,
        env = "ENV0_EXPORTER_DURATION_HISTOGRAM_LABELS",
        value_delimiter = ',',
        global = true,
        help_heading = "Metrics"
    )]
    pub duration_histogram_labels: Option<Vec<String>>,
    /// Labels of `env0_deployment_queue_duration_seconds`, comma-separated, from `deployment_type`, `iac_tool`, `trigger`, `project` (with --project-label); runs differing only in a label left out are summed into one series [default: `deployment_type,iac_tool`, and `project` with --project-label]
    #[arg(
        long,
        env = "ENV0_EXPORTER_QUEUE_HISTOGRAM_LABELS",
        value_delimiter = ',',
        global = true,
        help_heading = "Metrics"
    )]
    pub queue_histogram_labels: Option<Vec<String>>,
    /// Watch only these deployment types, comma-separated (e.g. deploy,destroy) [default: all]
    #[arg(
        long,
        env = "ENV0_EXPORTER_DEPLOYMENT_TYPES",
        value_delimiter = ',',
        global = true,
        help_heading = "Filters"
    )]
    pub deployment_types: Vec<String>,
    /// Watch only runs whose current status is one of these, comma-separated (e.g. SUCCESS,FAILURE) [default: all]
    #[arg(
        long,
        env = "ENV0_EXPORTER_STATUSES",
        value_delimiter = ',',
        global = true,
        help_heading = "Filters"
    )]
    pub statuses: Vec<String>,
    /// Watch only runs started by these env0 user ids, comma-separated [default: all]
    #[arg(
        long,
        env = "ENV0_EXPORTER_USER_IDS",
        value_delimiter = ',',
        global = true,
        help_heading = "Filters"
    )]
    pub user_ids: Vec<String>,
    /// Watch only these projects: ids or name patterns (`*`, `?`), comma-separated; environments of other projects are never read [default: all]
    #[arg(
        long,
        env = "ENV0_EXPORTER_PROJECTS",
        value_delimiter = ',',
        global = true,
        help_heading = "Filters"
    )]
    pub projects: Vec<String>,
    /// Never watch these projects: ids or name patterns (`*`, `?`), comma-separated; wins over --projects
    #[arg(
        long,
        env = "ENV0_EXPORTER_EXCLUDE_PROJECTS",
        value_delimiter = ',',
        global = true,
        help_heading = "Filters"
    )]
    pub exclude_projects: Vec<String>,
    /// Add a `project` label (the project's name) to the deployment families
    #[arg(
        long,
        env = "ENV0_EXPORTER_PROJECT_LABEL",
        global = true,
        help_heading = "Views"
    )]
    pub project_label: bool,
    /// Per-environment gauges: each environment's status and its latest run's type, status and finish time, labelled by environment and project
    #[arg(
        long,
        env = "ENV0_EXPORTER_ENVIRONMENT_METRICS",
        global = true,
        help_heading = "Views"
    )]
    pub environment_metrics: bool,
    /// Most label sets one family may have: past it, the least busy projects fold into project="other", and the environment view keeps environments whose latest run failed first
    #[arg(long, env = "ENV0_EXPORTER_MAX_SERIES_PER_METRIC", default_value_t = u32::try_from(DEFAULT_MAX_SERIES_PER_METRIC).unwrap_or(u32::MAX), value_parser = clap::value_parser!(u32).range(10..=1_000_000), global = true, help_heading = "Views")]
    pub max_series_per_metric: u32,
    /// Let --deployment-types and --statuses take values env0 does not document (yet)
    #[arg(
        long,
        env = "ENV0_EXPORTER_ALLOW_UNKNOWN_FILTER_VALUES",
        global = true,
        help_heading = "Filters"
    )]
    pub allow_unknown_filter_values: bool,
    /// File where the exporter keeps what it read, so that a restart resumes from it instead of re-reading the lookback window (e.g. on a mounted volume) [default: none]
    #[arg(
        long,
        env = "ENV0_EXPORTER_STATE_FILE",
        global = true,
        help_heading = "Polling"
    )]
    pub state_file: Option<PathBuf>,
    /// Least time between two writes of --state-file after polls that read something (0 = after every such poll); it is also written at shutdown
    #[arg(long, env = "ENV0_EXPORTER_STATE_FILE_INTERVAL", default_value = "60s", value_parser = parse_duration, global = true, help_heading = "Polling")]
    pub state_file_interval: Duration,
    /// `POST /webhooks/env0`: off unless a secret is set.
    #[command(flatten)]
    pub webhook: WebhookArgs,
}

/// A setting that is wrong, with the flag that set it.
#[derive(Debug, thiserror::Error)]
#[error("{flag}: {message}")]
pub struct ConfigError {
    /// The flag to name in the message.
    pub flag: &'static str,
    /// What is wrong.
    pub message: String,
}

/// The values of a list flag, trimmed, without empties and repeats.
fn trimmed(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
        if !out.iter().any(|o| o == value) {
            out.push(value.to_owned());
        }
    }
    out
}

fn invalid(flag: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        flag,
        message: message.into(),
    }
}

/// env0 credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// API key id.
    pub key: String,
    /// API key secret, followed as its file changes when it comes from one.
    pub secret: SecretSource,
}

/// Validated exporter settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// env0 API base URL.
    pub api_endpoint: Url,
    /// Credentials (absent only in demo mode, which supplies its own).
    pub credentials: Option<Credentials>,
    /// Organisation to watch, if set.
    pub organization_id: Option<String>,
    /// Where /metrics is served.
    pub listen_address: SocketAddr,
    /// TLS and basic auth of the listener, followed as the file changes; `None` = plain HTTP.
    pub web_config: Option<std::sync::Arc<WebConfigWatcher>>,
    /// Connections open at once at most, per listener.
    pub max_connections: usize,
    /// Time between polls.
    pub poll_interval: Duration,
    /// Window of deployments shown.
    pub lookback: Duration,
    /// Full re-read period per environment; `None` = off.
    pub full_sync_interval: Option<Duration>,
    /// Longest gap between re-reads of unfinished non-latest runs.
    pub unfinished_reread_max_interval: Duration,
    /// Requests per 60 s.
    pub max_requests_per_minute: u32,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// The share of the organisation's environments this exporter reads.
    pub shard: Shard,
    /// Log format.
    pub log_format: LogFormat,
    /// Duration histogram buckets.
    pub duration_buckets: Vec<f64>,
    /// Labels of the duration histogram; `None` = the default ones.
    pub duration_labels: Option<HistogramLabels>,
    /// Labels of the queue histogram; `None` = the default ones.
    pub queue_labels: Option<HistogramLabels>,
    /// Which deployments are watched.
    pub filter: DeploymentFilter,
    /// Which projects are watched.
    pub projects: ProjectFilter,
    /// The opt-in views and their series budget.
    pub views: Views,
    /// env0 webhooks; `None` = off.
    pub webhook: Option<WebhookConfig>,
    /// The state file; `None` = off.
    pub state_file: Option<StateFileConfig>,
}

impl ExporterArgs {
    /// Checks the settings; `need_credentials` is false in demo mode.
    ///
    /// # Errors
    /// The first wrong setting, naming its flag.
    pub fn validate(&self, need_credentials: bool) -> Result<Config, ConfigError> {
        if self.poll_interval < Duration::from_secs(1) {
            return Err(invalid("--poll-interval", "must be at least 1s"));
        }
        if self.lookback < Duration::from_secs(60) {
            return Err(invalid("--lookback", "must be at least 1m"));
        }
        let unfinished_reread_max_interval = self.unfinished_reread_max_interval()?;
        if self.request_timeout.is_zero() {
            return Err(invalid("--request-timeout", "must be more than 0s"));
        }
        if !matches!(self.api_endpoint.scheme(), "http" | "https") {
            return Err(invalid(
                "--api-endpoint",
                "must be an http:// or https:// URL",
            ));
        }
        let duration_buckets = self.duration_buckets()?;
        let duration_labels = self.histogram_labels(
            "--duration-histogram-labels",
            self.duration_histogram_labels.as_deref(),
            &[],
        )?;
        // The queue wait is observed when a run starts, before it has an outcome.
        let queue_labels = self.histogram_labels(
            "--queue-histogram-labels",
            self.queue_histogram_labels.as_deref(),
            &["status"],
        )?;
        let filter = DeploymentFilter {
            deployment_types: self.filter_values(
                "--deployment-types",
                &self.deployment_types,
                Some(&DEPLOYMENT_TYPES),
            )?,
            statuses: self.filter_values("--statuses", &self.statuses, Some(&STATUSES))?,
            user_ids: self.filter_values("--user-ids", &self.user_ids, None)?,
        };
        let credentials = if need_credentials {
            Some(self.credentials()?)
        } else {
            None
        };
        let web_config = match &self.web_config_file {
            Some(path) => Some(std::sync::Arc::new(
                WebConfigWatcher::load(path)
                    .map_err(|e| invalid("--web-config-file", e.to_string()))?,
            )),
            None => None,
        };
        Ok(Config {
            api_endpoint: self.api_endpoint.clone(),
            credentials,
            organization_id: self.organization_id.clone().filter(|s| !s.is_empty()),
            listen_address: self.listen_address,
            web_config,
            max_connections: self.web_max_connections as usize,
            poll_interval: self.poll_interval,
            lookback: self.lookback,
            full_sync_interval: (!self.full_sync_interval.is_zero())
                .then_some(self.full_sync_interval),
            unfinished_reread_max_interval,
            max_requests_per_minute: self.max_requests_per_minute,
            request_timeout: self.request_timeout,
            shard: self.shard.unwrap_or_default(),
            log_format: self.log_format,
            duration_buckets,
            duration_labels,
            queue_labels,
            filter,
            // Project names are free text: white space inside a pattern is kept.
            projects: ProjectFilter {
                include: trimmed(&self.projects),
                exclude: trimmed(&self.exclude_projects),
            },
            views: Views {
                project_label: self.project_label,
                environment_metrics: self.environment_metrics,
                max_series_per_metric: self.max_series_per_metric as usize,
            },
            webhook: self.webhook.validate()?,
            state_file: self.state_file()?,
        })
    }

    /// `--unfinished-reread-max-interval`: at least the poll interval; unset, 10 minutes or the
    /// poll interval, whichever is longer.
    fn unfinished_reread_max_interval(&self) -> Result<Duration, ConfigError> {
        match self.unfinished_reread_max_interval {
            Some(max) if max >= self.poll_interval => Ok(max),
            None => Ok(DEFAULT_UNFINISHED_REREAD_MAX_INTERVAL.max(self.poll_interval)),
            Some(_) => Err(invalid(
                "--unfinished-reread-max-interval",
                format!(
                    "must be at least --poll-interval ({})",
                    humantime::format_duration(self.poll_interval)
                ),
            )),
        }
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

    /// `--state-file`: its directory must exist (the file itself is created by the first write).
    fn state_file(&self) -> Result<Option<StateFileConfig>, ConfigError> {
        let Some(path) = &self.state_file else {
            return Ok(None);
        };
        if path.as_os_str().is_empty() {
            return Ok(None);
        }
        if path.file_name().is_none() || path.is_dir() {
            return Err(invalid(
                "--state-file",
                format!("{} is not a file path", path.display()),
            ));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        if !dir.is_dir() {
            return Err(invalid(
                "--state-file",
                format!("directory {} does not exist", dir.display()),
            ));
        }
        Ok(Some(StateFileConfig {
            path: path.clone(),
            interval: self.state_file_interval,
        }))
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

    /// Trims, drops empties and duplicates, and checks values against env0's documented list.
    fn filter_values(
        &self,
        flag: &'static str,
        values: &[String],
        known: Option<&[&str]>,
    ) -> Result<Vec<String>, ConfigError> {
        let mut out: Vec<String> = Vec::new();
        for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
            if value.contains(char::is_whitespace) {
                return Err(invalid(flag, format!("'{value}' contains white space")));
            }
            if let Some(known) = known
                && !self.allow_unknown_filter_values
                && !known.contains(&value)
            {
                return Err(invalid(
                    flag,
                    format!(
                        "'{value}' is not one of env0's values: {} (values env0 adds later can be let through with --allow-unknown-filter-values)",
                        known.join(", ")
                    ),
                ));
            }
            if !out.iter().any(|o| o == value) {
                out.push(value.to_owned());
            }
        }
        Ok(out)
    }

    fn credentials(&self) -> Result<Credentials, ConfigError> {
        let key = self
            .api_key
            .clone()
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| {
                invalid(
                    "--api-key",
                    "the env0 API key id is required (or set ENV0_API_KEY)",
                )
            })?;
        let secret = match (&self.api_secret, &self.api_secret_file) {
            (Some(secret), _) if !secret.expose().is_empty() => SecretSource::fixed(secret.clone()),
            (_, Some(path)) => SecretSource::file(path, "--api-secret-file")
                .map_err(|e| invalid("--api-secret-file", e.to_string()))?,
            _ => {
                return Err(invalid(
                    "--api-secret",
                    "the env0 API key secret is required: set --api-secret-file, ENV0_API_SECRET_FILE or ENV0_API_SECRET",
                ));
            }
        };
        Ok(Credentials { key, secret })
    }
}

#[cfg(test)]
mod tests;
