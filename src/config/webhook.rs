//! The webhook flags: off unless a secret is given, and served on the main listener or on its
//! own, so that `/metrics` need not be reachable from env0.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::{ConfigError, Secret, SecretSource, invalid};

/// Settings of `POST /webhooks/env0`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct WebhookArgs {
    /// Receive env0 webhooks on POST /webhooks/env0, signed with this secret (the notification
    /// target's); prefer --webhook-secret-file or the environment variable [default: off]
    #[arg(
        long,
        env = "ENV0_EXPORTER_WEBHOOK_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub webhook_secret: Option<Secret>,
    /// File holding the webhook secret (e.g. a mounted Kubernetes Secret); re-read when it changes
    #[arg(
        long,
        env = "ENV0_EXPORTER_WEBHOOK_SECRET_FILE",
        global = true,
        conflicts_with = "webhook_secret"
    )]
    pub webhook_secret_file: Option<PathBuf>,
    /// Serve /webhooks/env0 on this address instead of --listen-address (so /metrics need not
    /// be reachable from env0)
    #[arg(long, env = "ENV0_EXPORTER_WEBHOOK_LISTEN_ADDRESS", global = true)]
    pub webhook_listen_address: Option<SocketAddr>,
}

/// Validated webhook settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The secret deliveries are signed with, followed as its file changes when it comes from
    /// one.
    pub secret: SecretSource,
    /// Its own listener; `None` = the main one.
    pub listen_address: Option<SocketAddr>,
}

impl WebhookArgs {
    /// The webhook settings, `None` when no secret is set (webhooks off).
    ///
    /// # Errors
    /// An unreadable or empty secret file, or a listen address without a secret.
    pub fn validate(&self) -> Result<Option<WebhookConfig>, ConfigError> {
        let secret = match (&self.webhook_secret, &self.webhook_secret_file) {
            (Some(secret), _) if !secret.expose().is_empty() => {
                Some(SecretSource::fixed(secret.clone()))
            }
            (_, Some(path)) => Some(
                SecretSource::file(path, "--webhook-secret-file")
                    .map_err(|e| invalid("--webhook-secret-file", e.to_string()))?,
            ),
            _ => None,
        };
        match (secret, self.webhook_listen_address) {
            (Some(secret), listen_address) => Ok(Some(WebhookConfig {
                secret,
                listen_address,
            })),
            (None, Some(_)) => Err(invalid(
                "--webhook-listen-address",
                "webhooks are off without --webhook-secret or --webhook-secret-file",
            )),
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Write as _;

    use super::*;

    fn args(secret: Option<&str>, file: Option<PathBuf>, listen: Option<&str>) -> WebhookArgs {
        WebhookArgs {
            webhook_secret: secret.map(Secret::new),
            webhook_secret_file: file,
            webhook_listen_address: listen.map(|a| a.parse().unwrap()),
        }
    }

    #[test]
    fn webhooks_are_off_without_a_secret() {
        assert!(args(None, None, None).validate().unwrap().is_none());
        assert!(args(Some(""), None, None).validate().unwrap().is_none());
    }

    #[test]
    fn a_secret_turns_them_on_on_the_main_listener_or_their_own() {
        let c = args(Some("s3cret"), None, None)
            .validate()
            .unwrap()
            .unwrap();
        assert_eq!(c.secret.current().expose(), "s3cret");
        assert_eq!(c.listen_address, None);
        let c = args(Some("s3cret"), None, Some("127.0.0.1:9999"))
            .validate()
            .unwrap()
            .unwrap();
        assert_eq!(c.listen_address, Some("127.0.0.1:9999".parse().unwrap()));
    }

    #[test]
    fn the_secret_file_is_read_without_its_trailing_newline() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "from-a-file").unwrap();
        let c = args(None, Some(f.path().into()), None)
            .validate()
            .unwrap()
            .unwrap();
        assert_eq!(c.secret.current().expose(), "from-a-file");
    }

    #[test]
    fn an_empty_or_missing_secret_file_and_a_lone_listen_address_are_errors() {
        let empty = tempfile::NamedTempFile::new().unwrap();
        let e = args(None, Some(empty.path().into()), None)
            .validate()
            .unwrap_err();
        assert_eq!(e.flag, "--webhook-secret-file");
        let e = args(None, Some("/nonexistent/secret".into()), None)
            .validate()
            .unwrap_err();
        assert_eq!(e.flag, "--webhook-secret-file");
        let e = args(None, None, Some("127.0.0.1:9999"))
            .validate()
            .unwrap_err();
        assert_eq!(e.flag, "--webhook-listen-address");
    }

    #[test]
    fn the_secret_never_prints() {
        let c = args(Some("s3cret"), None, None)
            .validate()
            .unwrap()
            .unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(!format!("{:?}", args(Some("s3cret"), None, None)).contains("s3cret"));
    }
}
