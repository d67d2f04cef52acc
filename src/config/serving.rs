//! The serving and logging flags: where `/metrics` is served, with which TLS and basic auth and
//! how many connections, and how the exporter logs. The listener's flags validate into
//! [`Serving`], which holds the server's [`ServeOptions`]; the log format is read before any
//! validation, so that every command logs the same way.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};

use super::{ConfigError, invalid};
use crate::http::{DEFAULT_MAX_CONNECTIONS, ServeOptions, WebConfigWatcher};

/// The exporter's default port. 9100–9999 is fully allocated on the Prometheus wiki's
/// default-port-allocations page; 19180 is on neither of its lists.
pub const DEFAULT_PORT: u16 = 19180;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// How `/metrics` is served, and how the exporter logs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Serving and logging")]
pub struct ServingArgs {
    /// Address to serve /metrics on
    #[arg(long, env = "ENV0_EXPORTER_LISTEN_ADDRESS", default_value_t = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)), global = true)]
    pub listen_address: SocketAddr,
    /// Web configuration file in the Prometheus exporter-toolkit format: TLS and basic auth for
    /// /metrics (probes stay open); re-read when it or the files it names change [default: none,
    /// plain HTTP]
    #[arg(long, env = "ENV0_EXPORTER_WEB_CONFIG_FILE", global = true)]
    pub web_config_file: Option<PathBuf>,
    /// Connections open at once at most, per listener; past it, the one idle the longest is closed
    #[arg(long, env = "ENV0_EXPORTER_WEB_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=65_536), global = true)]
    pub web_max_connections: u32,
    /// Log format (level from `RUST_LOG`, default info)
    #[arg(long, env = "ENV0_EXPORTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Validated listener settings.
#[derive(Debug, Clone)]
pub struct Serving {
    /// Where /metrics is served.
    pub listen_address: SocketAddr,
    /// Connection limit, timeouts, and the TLS and basic auth of the web configuration (followed
    /// as the file changes; `None` = plain HTTP).
    pub options: ServeOptions,
}

impl ServingArgs {
    /// Checks the listener's settings and loads the web configuration.
    ///
    /// # Errors
    /// A web configuration file that cannot be used.
    pub fn validate(&self) -> Result<Serving, ConfigError> {
        let web_config = match &self.web_config_file {
            Some(path) => Some(Arc::new(
                WebConfigWatcher::load(path)
                    .map_err(|e| invalid("--web-config-file", e.to_string()))?,
            )),
            None => None,
        };
        Ok(Serving {
            listen_address: self.listen_address,
            options: ServeOptions {
                max_connections: self.web_max_connections as usize,
                web_config,
                ..ServeOptions::default()
            },
        })
    }
}
