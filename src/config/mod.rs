//! Command line and environment: one clap-derive struct of flag groups, one file each
//! (connection, polling, filters, views, serving, state file, webhooks); each group validates
//! straight into the configuration its consumer takes, and [`Config`] is the set of those.
//!
//! env0 names (`ENV0_API_KEY`, `ENV0_API_SECRET`, `ENV0_ORGANIZATION_ID`, `ENV0_API_ENDPOINT`)
//! match env0's own Terraform provider, so users' existing variables work.

mod command_line;
mod connection;
mod filters;
mod polling;
mod serving;
mod state_file_args;
mod views;
mod webhook;

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::metrics::MetricsConfig;
use crate::poller::PollerConfig;
use crate::state_file_format::StateFileConfig;

pub use crate::secret::{Secret, SecretSource};
pub use connection::{Connection, ConnectionArgs, Credentials};
pub use filters::{FilterArgs, Filters};
pub use polling::{DEFAULT_UNFINISHED_REREAD_MAX_INTERVAL, PollingArgs};
pub use serving::{DEFAULT_PORT, LogFormat, Serving, ServingArgs};
pub use state_file_args::StateFileArgs;
pub use views::ViewsArgs;
pub use webhook::{WebhookArgs, WebhookConfig};

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

/// Exporter settings, one group per consumer, each under its own heading in `--help`.
#[derive(Debug, Clone, Args)]
pub struct ExporterArgs {
    /// How to reach env0.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// How env0 is polled.
    #[command(flatten)]
    pub polling: PollingArgs,
    /// What is watched.
    #[command(flatten)]
    pub filters: FilterArgs,
    /// What is shown, and how finely.
    #[command(flatten)]
    pub views: ViewsArgs,
    /// How /metrics is served, and how the exporter logs.
    #[command(flatten)]
    pub serving: ServingArgs,
    /// Where the state is kept across restarts.
    #[command(flatten)]
    pub state_file: StateFileArgs,
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

/// Validated exporter settings: each consumer's configuration, built once from its flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// How the client reaches env0.
    pub connection: Connection,
    /// The poller's settings: polling, the organisation, the filters and the views.
    pub poller: PollerConfig,
    /// The metrics' settings.
    pub metrics: MetricsConfig,
    /// The main listener.
    pub serving: Serving,
    /// The state file; `None` = off.
    pub state_file: Option<StateFileConfig>,
    /// env0 webhooks; `None` = off.
    pub webhook: Option<WebhookConfig>,
}

impl ExporterArgs {
    /// Checks the settings; `need_credentials` is false in demo mode.
    ///
    /// # Errors
    /// The first wrong setting, naming its flag.
    pub fn validate(&self, need_credentials: bool) -> Result<Config, ConfigError> {
        let (views, metrics) = self.views.validate()?;
        let filters = self.filters.validate()?;
        let poller = self
            .polling
            .validate(self.connection.organization_id(), filters, views)?;
        let connection = self.connection.validate(need_credentials)?;
        let serving = self.serving.validate()?;
        let webhook = self.webhook.validate()?;
        let state_file = self.state_file.validate()?;
        Ok(Config {
            connection,
            metrics: MetricsConfig {
                shard: poller.shard,
                state_file: state_file.is_some(),
                ..metrics
            },
            poller,
            serving,
            state_file,
            webhook,
        })
    }
}

#[cfg(test)]
mod tests;
