//! The env0 connection flags: where env0 is, who asks, which organisation, and how long one
//! request may take. They validate into a [`Connection`], which gives the client its
//! [`ClientConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

use super::{ConfigError, Secret, SecretSource, invalid, parse_duration};
use crate::client::ClientConfig;

/// How to reach env0.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "env0 connection")]
pub struct ConnectionArgs {
    /// Base URL of the env0 API
    #[arg(
        long,
        env = "ENV0_API_ENDPOINT",
        default_value = "https://api.env0.com",
        global = true
    )]
    pub api_endpoint: Url,
    /// env0 API key id (the user name of HTTP Basic auth)
    #[arg(long, env = "ENV0_API_KEY", global = true)]
    pub api_key: Option<String>,
    /// env0 API key secret; prefer --api-secret-file or the environment variable
    #[arg(long, env = "ENV0_API_SECRET", hide_env_values = true, global = true)]
    pub api_secret: Option<Secret>,
    /// File holding the env0 API key secret (e.g. a mounted Kubernetes Secret); re-read when it changes
    #[arg(
        long,
        env = "ENV0_API_SECRET_FILE",
        global = true,
        conflicts_with = "api_secret"
    )]
    pub api_secret_file: Option<PathBuf>,
    /// env0 organisation to watch [default: the only one the key sees]
    #[arg(long, env = "ENV0_ORGANIZATION_ID", global = true)]
    pub organization_id: Option<String>,
    /// Timeout of one request to env0
    #[arg(long, env = "ENV0_EXPORTER_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,
}

/// env0 credentials.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// API key id.
    pub key: String,
    /// API key secret, followed as its file changes when it comes from one.
    pub secret: SecretSource,
}

/// Validated connection settings: what the client needs besides its credentials, which `demo`
/// takes from its simulator.
#[derive(Debug, Clone)]
pub struct Connection {
    /// env0 API base URL.
    pub api_endpoint: Url,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Credentials (absent only in demo mode, which supplies its own).
    pub credentials: Option<Credentials>,
}

impl Connection {
    /// The client's configuration with these `credentials`; the retries are the defaults.
    #[must_use]
    pub fn client_config(&self, credentials: &Credentials) -> ClientConfig {
        ClientConfig {
            request_timeout: self.request_timeout,
            ..ClientConfig::new(
                self.api_endpoint.clone(),
                credentials.key.clone(),
                credentials.secret.clone(),
            )
        }
    }
}

impl ConnectionArgs {
    /// Checks the connection; `need_credentials` is false in demo mode.
    ///
    /// # Errors
    /// The first wrong setting, naming its flag.
    pub fn validate(&self, need_credentials: bool) -> Result<Connection, ConfigError> {
        if self.request_timeout.is_zero() {
            return Err(invalid("--request-timeout", "must be more than 0s"));
        }
        if !matches!(self.api_endpoint.scheme(), "http" | "https") {
            return Err(invalid(
                "--api-endpoint",
                "must be an http:// or https:// URL",
            ));
        }
        Ok(Connection {
            api_endpoint: self.api_endpoint.clone(),
            request_timeout: self.request_timeout,
            credentials: if need_credentials {
                Some(self.credentials()?)
            } else {
                None
            },
        })
    }

    /// `--organization-id`, `None` when unset or empty.
    #[must_use]
    pub fn organization_id(&self) -> Option<String> {
        self.organization_id.clone().filter(|s| !s.is_empty())
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
