//! `--web-config-file`: TLS and basic auth for the exporter's listener, in the web configuration
//! format of the Prometheus exporter toolkit, so that the file written for `node_exporter` or
//! `mysqld_exporter` works here too.
//!
//! Of that format, `tls_server_config` (`cert_file`/`cert`, `key_file`/`key`,
//! `client_ca_file`/`client_ca`, `client_auth_type`, `min_version`, `max_version`) and
//! `basic_auth_users` are read; a key the format has and this exporter does not implement
//! (`cipher_suites`, `curve_preferences`, `prefer_server_cipher_suites`, `client_allowed_sans`,
//! `http_server_config`, `rate_limit`) and any unknown key are an error naming the file and the
//! key, at start. Relative paths are relative to the file's folder.
//!
//! The file and the files it names are read again at most once per [`RELOAD_INTERVAL`], when a
//! connection or a request needs them, and a new TLS configuration and user list are built when
//! any of their contents changed: a certificate renewed in place (cert-manager) or a user added is
//! in effect for the next connection, without a restart. A change that cannot be used (a
//! certificate written before its key, a typo) keeps the last good configuration in use, with a
//! warning naming the file and the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_norway::Value;
use tracing::{info, warn};

use super::basic_auth::Users;
use super::tls::{self, ClientAuth, Pem, TlsSettings, TlsVersion};

/// How often the files are read again at most.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// A web configuration that cannot be used: the file, the key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct WebConfigError {
    file: String,
    message: String,
}

impl WebConfigError {
    fn new(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.display().to_string(),
            message: message.into(),
        }
    }
}

/// The file as written. Known keys of the format that are not implemented are read as any
/// value, to be refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tls_server_config: Option<RawTls>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    http_server_config: Option<Value>,
    rate_limit: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    client_ca_file: Option<String>,
    client_ca: Option<String>,
    client_auth_type: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Value>,
    curve_preferences: Option<Value>,
    prefer_server_cipher_suites: Option<Value>,
    client_allowed_sans: Option<Value>,
}

/// The file, checked: what to build TLS and basic auth from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WebConfig {
    tls: Option<TlsSettings>,
    users: BTreeMap<String, String>,
}

/// What connections and requests use now.
#[derive(Debug)]
pub struct ActiveWebConfig {
    /// The TLS configuration new connections are handshaken with; `None`: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Users and their password hashes; empty: no basic auth.
    pub users: Users,
}

/// The web configuration file, followed as it and the files it names change.
pub struct WebConfigWatcher {
    path: PathBuf,
    active: RwLock<Arc<ActiveWebConfig>>,
    check: Mutex<Check>,
}

struct Check {
    at: Instant,
    /// The contents everything active was built from: the file, then each file it names.
    inputs: Vec<Vec<u8>>,
    /// The last failed reload's message, so that a file that stays broken warns once.
    failing: Option<String>,
}

impl std::fmt::Debug for WebConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfigWatcher")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl WebConfigWatcher {
    /// Reads the file at `path` and everything it names, and builds TLS and basic auth from it.
    ///
    /// # Errors
    /// An unreadable file, an unknown or unsupported key, a bad value, a certificate or key that
    /// cannot be used, or a password that is not a bcrypt hash: naming the file and the key.
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let (inputs, config) = read(path)?;
        let active = build(path, &config)?;
        Ok(Self {
            path: path.to_owned(),
            active: RwLock::new(Arc::new(active)),
            check: Mutex::new(Check {
                at: Instant::now(),
                inputs,
                failing: None,
            }),
        })
    }

    /// The file followed.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in effect, after reading the files again if [`RELOAD_INTERVAL`] has
    /// passed since they were last read.
    pub fn current(&self) -> Arc<ActiveWebConfig> {
        self.reload_if_due();
        self.active
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn reload_if_due(&self) {
        // One reader at a time; the others use what is active.
        let Ok(mut check) = self.check.try_lock() else {
            return;
        };
        if check.at.elapsed() < RELOAD_INTERVAL {
            return;
        }
        check.at = Instant::now();
        let built = read(&self.path).and_then(|(inputs, config)| {
            if inputs == check.inputs {
                return Ok(None);
            }
            let active = build(&self.path, &config)?;
            Ok(Some((inputs, active, config)))
        });
        match built {
            Ok(None) => check.failing = None,
            Ok(Some((inputs, active, config))) => {
                info!(
                    file = %self.path.display(),
                    tls = config.tls.is_some(),
                    basic_auth_users = config.users.len(),
                    "web configuration changed; new connections and requests use it"
                );
                *self.active.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(active);
                check.inputs = inputs;
                check.failing = None;
            }
            Err(e) => {
                let message = e.to_string();
                if check.failing.as_deref() != Some(message.as_str()) {
                    warn!(error = %message, "web configuration cannot be used; the last good one stays in effect");
                    check.failing = Some(message);
                }
            }
        }
    }
}

/// Reads and checks the file, and reads the files it names: their contents, in order, and the
/// checked configuration.
fn read(path: &Path) -> Result<(Vec<Vec<u8>>, WebConfig), WebConfigError> {
    let text =
        std::fs::read(path).map_err(|e| WebConfigError::new(path, format!("cannot read: {e}")))?;
    let config = parse(path, &text)?;
    let mut inputs = vec![text];
    if let Some(tls) = &config.tls {
        for (pem, key) in [Some(&tls.cert), Some(&tls.key), tls.client_ca.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Pem::File(file) = pem {
                let bytes = std::fs::read(file).map_err(|e| {
                    WebConfigError::new(
                        path,
                        format!(
                            "tls_server_config.{key}: cannot read {}: {e}",
                            file.display()
                        ),
                    )
                })?;
                inputs.push(bytes);
            }
        }
    }
    Ok((inputs, config))
}

/// The checked configuration of the file's `text`.
fn parse(path: &Path, text: &[u8]) -> Result<WebConfig, WebConfigError> {
    let fail = |message: String| WebConfigError::new(path, message);
    // An empty file (or one with only comments) is the empty configuration, as in the toolkit.
    let raw: RawFile = match serde_norway::from_slice::<Option<RawFile>>(text) {
        Ok(raw) => raw.unwrap_or_default(),
        Err(e) => return Err(fail(e.to_string())),
    };
    for (key, present) in [
        ("http_server_config", raw.http_server_config.is_some()),
        ("rate_limit", raw.rate_limit.is_some()),
    ] {
        if present {
            return Err(fail(format!(
                "{key}: not supported by env0-exporter (it serves HTTP/1.1 and sets no extra headers or rate limit); remove it"
            )));
        }
    }
    let users = raw.basic_auth_users.unwrap_or_default();
    for (user, hash) in &users {
        if user.contains(':') {
            return Err(fail(format!(
                "basic_auth_users: the user name {user:?} contains ':', which basic auth cannot carry"
            )));
        }
        if hash.parse::<bcrypt::HashParts>().is_err() {
            return Err(fail(format!(
                "basic_auth_users.{user}: not a bcrypt hash (make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            )));
        }
    }
    let tls = match raw.tls_server_config {
        None => None,
        Some(raw) => Some(tls_settings(path, raw).map_err(fail)?),
    };
    Ok(WebConfig { tls, users })
}

/// `tls_server_config`, checked; the message names the key.
fn tls_settings(path: &Path, raw: RawTls) -> Result<TlsSettings, String> {
    for (key, present) in [
        ("cipher_suites", raw.cipher_suites.is_some()),
        ("curve_preferences", raw.curve_preferences.is_some()),
        (
            "prefer_server_cipher_suites",
            raw.prefer_server_cipher_suites.is_some(),
        ),
        ("client_allowed_sans", raw.client_allowed_sans.is_some()),
    ] {
        if present {
            return Err(format!(
                "tls_server_config.{key}: not supported by env0-exporter (its TLS library offers only modern cipher suites and curves); remove it"
            ));
        }
    }
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let pem = |file: Option<String>,
               inline: Option<String>,
               file_key: &'static str,
               inline_key: &'static str|
     -> Result<Option<(Pem, &'static str)>, String> {
        match (
            file.filter(|f| !f.is_empty()),
            inline.filter(|i| !i.is_empty()),
        ) {
            (Some(_), Some(_)) => Err(format!(
                "tls_server_config: set {file_key} or {inline_key}, not both"
            )),
            (Some(f), None) => Ok(Some((Pem::File(dir.join(f)), file_key))),
            (None, Some(i)) => Ok(Some((Pem::Inline(i.into_bytes()), inline_key))),
            (None, None) => Ok(None),
        }
    };
    let cert = pem(raw.cert_file, raw.cert, "cert_file", "cert")?
        .ok_or("tls_server_config.cert_file: missing (or cert)")?;
    let key = pem(raw.key_file, raw.key, "key_file", "key")?
        .ok_or("tls_server_config.key_file: missing (or key)")?;
    let client_ca = pem(
        raw.client_ca_file,
        raw.client_ca,
        "client_ca_file",
        "client_ca",
    )?;
    let client_auth = match raw.client_auth_type.as_deref() {
        None | Some("") => ClientAuth::NoClientCert,
        Some(name) => ClientAuth::from_name(name).ok_or_else(|| {
            format!(
                "tls_server_config.client_auth_type: {name:?} is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            )
        })?,
    };
    match (&client_ca, client_auth) {
        (Some((_, key)), ClientAuth::NoClientCert) => {
            return Err(format!(
                "tls_server_config.{key}: a client CA is set but client_auth_type asks for no client certificate"
            ));
        }
        (None, ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert) => {
            return Err(format!(
                "tls_server_config.client_ca_file: required to verify client certificates ({client_auth:?})"
            ));
        }
        _ => {}
    }
    let version = |value: Option<String>, key: &str, default: TlsVersion| match value.as_deref() {
        None | Some("") => Ok(default),
        Some(name) => TlsVersion::from_name(name).ok_or_else(|| {
            format!("tls_server_config.{key}: {name:?} is not supported (use TLS12 or TLS13)")
        }),
    };
    let min_version = version(raw.min_version, "min_version", TlsVersion::Tls12)?;
    let max_version = version(raw.max_version, "max_version", TlsVersion::Tls13)?;
    if min_version > max_version {
        return Err("tls_server_config.min_version: newer than max_version".to_owned());
    }
    Ok(TlsSettings {
        cert,
        key,
        client_ca,
        client_auth,
        min_version,
        max_version,
    })
}

/// TLS and users from the checked configuration.
fn build(path: &Path, config: &WebConfig) -> Result<ActiveWebConfig, WebConfigError> {
    let tls = match &config.tls {
        None => None,
        Some(settings) => Some(Arc::new(
            tls::server_config(settings).map_err(|m| WebConfigError::new(path, m))?,
        )),
    };
    Ok(ActiveWebConfig {
        tls,
        users: Users::new(config.users.clone()),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn parsed(text: &str) -> Result<WebConfig, String> {
        parse(Path::new("/etc/env0/web.yml"), text.as_bytes()).map_err(|e| e.to_string())
    }

    const HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

    #[test]
    fn an_empty_file_is_the_empty_configuration() {
        for text in ["", "\n", "# nothing\n", "{}"] {
            let c = parsed(text).unwrap();
            assert!(c.tls.is_none() && c.users.is_empty(), "{text:?}");
        }
    }

    #[test]
    fn tls_paths_are_relative_to_the_files_folder_with_the_toolkit_defaults() {
        let c = parsed(&format!(
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: /abs/tls.key\nbasic_auth_users:\n  prometheus: '{HASH}'\n"
        ))
        .unwrap();
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert.0, Pem::File("/etc/env0/tls.crt".into()));
        assert_eq!(tls.key.0, Pem::File("/abs/tls.key".into()));
        assert_eq!(tls.client_auth, ClientAuth::NoClientCert);
        assert_eq!(tls.min_version, TlsVersion::Tls12);
        assert_eq!(tls.max_version, TlsVersion::Tls13);
        assert_eq!(c.users.len(), 1);
    }

    #[test]
    fn unknown_and_unsupported_keys_are_refused_by_name() {
        for (text, key) in [
            ("tls_server_config:\n  cert_fil: a\n", "cert_fil"),
            ("basic_auth_user:\n  a: b\n", "basic_auth_user"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "tls_server_config.cipher_suites",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
                "tls_server_config.client_allowed_sans",
            ),
            (
                "http_server_config:\n  http2: false\n",
                "http_server_config",
            ),
            ("rate_limit:\n  burst: 3\n", "rate_limit"),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS11\n",
                "tls_server_config.min_version",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
                "tls_server_config.client_auth_type",
            ),
            (
                "tls_server_config:\n  key_file: b\n",
                "tls_server_config.cert_file",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAndVerifyClientCert\n",
                "tls_server_config.client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n",
                "tls_server_config.client_ca_file",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS13\n  max_version: TLS12\n",
                "tls_server_config.min_version",
            ),
            (
                "basic_auth_users:\n  alice: plaintext-password\n",
                "basic_auth_users.alice",
            ),
        ] {
            let e = parsed(text).unwrap_err();
            assert!(e.starts_with("/etc/env0/web.yml: "), "{e}");
            assert!(e.contains(key), "{text:?}: {e}");
        }
    }

    #[test]
    fn the_documented_example_is_a_valid_configuration_whose_hash_is_of_its_password() {
        let page =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md"))
                .unwrap();
        let yaml = page
            .split("```yaml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let c = parsed(yaml).unwrap();
        assert!(c.tls.is_some());
        let hash = &c.users["prometheus"];
        assert!(bcrypt::verify("change-me", hash).unwrap());
    }

    #[test]
    fn a_plaintext_password_in_place_of_a_hash_is_not_repeated_in_the_error() {
        let e = parsed("basic_auth_users:\n  alice: correct-horse-battery\n").unwrap_err();
        assert!(!e.contains("correct-horse-battery"), "{e}");
    }
}
