//! Secrets: a [`Secret`] never prints, and a [`SecretSource`] read from a file follows the file
//! when it changes, so that a rotated env0 API key or webhook secret is used without a restart.
//!
//! A file is re-read at most once per [`RECHECK_INTERVAL`], when the secret is next asked for
//! (the client building a request, the webhook receiver checking a signature), and its contents
//! are compared with what was read before. Reading follows symbolic links at every read, so the
//! way a Kubernetes secret volume changes a file (a new timestamped directory, then the `..data`
//! link renamed over the old one) is seen like an edit in place. A file that cannot be read or is
//! empty for a moment (a rotation half done) leaves the last good secret in use, with a warning
//! that names the file and never its contents.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use tracing::{info, warn};

/// How often a secret file is read again at most.
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A secret from the command line, the environment or a file, that never prints.
#[derive(Clone)]
pub struct Secret(Arc<SecretString>);

impl Secret {
    /// The secret's text, for the one place that must send or check it.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Wraps a secret string.
    #[must_use]
    pub fn new(value: &str) -> Self {
        Self(Arc::new(SecretString::from(value)))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

/// Where a secret comes from: a value given once, or a file followed as it changes. Cheap to
/// clone; clones share the file's last reading.
#[derive(Clone)]
pub struct SecretSource(Arc<Source>);

enum Source {
    Fixed(Secret),
    File(SecretFile),
}

struct SecretFile {
    path: PathBuf,
    /// The flag that named the file, for log lines.
    flag: &'static str,
    state: Mutex<FileState>,
}

struct FileState {
    secret: Secret,
    checked: Instant,
    /// The last reading's failure, so that a file that stays broken warns once.
    failing: Option<String>,
}

/// A secret file that cannot be used: what is wrong, without the file's contents.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SecretFileError(String);

/// The secret in `path`: the whole file less its trailing line breaks, not empty.
///
/// # Errors
/// When the file cannot be read, is not UTF-8, or holds nothing.
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SecretFileError(format!("cannot read {}: {e}", path.display())))?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() {
        return Err(SecretFileError(format!("{} is empty", path.display())));
    }
    Ok(Secret::new(text))
}

impl SecretSource {
    /// A secret that never changes.
    #[must_use]
    pub fn fixed(secret: Secret) -> Self {
        Self(Arc::new(Source::Fixed(secret)))
    }

    /// The secret in `path` (named by `flag` in log lines), read now and again whenever it is
    /// asked for and [`RECHECK_INTERVAL`] has passed.
    ///
    /// # Errors
    /// When the file cannot be used now (see [`read_secret_file`]).
    pub fn file(path: &Path, flag: &'static str) -> Result<Self, SecretFileError> {
        let secret = read_secret_file(path)?;
        Ok(Self(Arc::new(Source::File(SecretFile {
            path: path.to_owned(),
            flag,
            state: Mutex::new(FileState {
                secret,
                checked: Instant::now(),
                failing: None,
            }),
        }))))
    }

    /// The secret to use now.
    #[must_use]
    pub fn current(&self) -> Secret {
        match &*self.0 {
            Source::Fixed(secret) => secret.clone(),
            Source::File(file) => file.current(),
        }
    }

    /// The file followed, if the secret comes from one.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        match &*self.0 {
            Source::Fixed(_) => None,
            Source::File(file) => Some(&file.path),
        }
    }
}

impl SecretFile {
    fn current(&self) -> Secret {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() < RECHECK_INTERVAL {
            return state.secret.clone();
        }
        state.checked = Instant::now();
        match read_secret_file(&self.path) {
            Ok(secret) => {
                if secret.expose() != state.secret.expose() {
                    info!(
                        flag = self.flag,
                        file = %self.path.display(),
                        "the secret file changed; its new secret is used from now on"
                    );
                    state.secret = secret;
                } else if state.failing.is_some() {
                    info!(flag = self.flag, file = %self.path.display(), "the secret file can be read again");
                }
                state.failing = None;
            }
            Err(e) => {
                let message = e.to_string();
                if state.failing.as_deref() != Some(message.as_str()) {
                    warn!(
                        flag = self.flag,
                        error = %message,
                        "the secret file cannot be used; the last secret read from it stays in use"
                    );
                    state.failing = Some(message);
                }
            }
        }
        state.secret.clone()
    }
}

impl From<Secret> for SecretSource {
    fn from(secret: Secret) -> Self {
        Self::fixed(secret)
    }
}

impl From<SecretString> for SecretSource {
    fn from(secret: SecretString) -> Self {
        Self::fixed(Secret(Arc::new(secret)))
    }
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Source::Fixed(_) => f.write_str("[redacted]"),
            Source::File(file) => write!(f, "[redacted, from {}]", file.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Lets the next `current()` read the file again without waiting.
    fn expire(source: &SecretSource) {
        if let Source::File(file) = &*source.0 {
            let mut state = file.state.lock().unwrap();
            state.checked = Instant::now().checked_sub(RECHECK_INTERVAL).unwrap();
        }
    }

    #[test]
    fn a_fixed_secret_never_prints() {
        let s = SecretSource::fixed(Secret::new("hunter2"));
        assert_eq!(s.current().expose(), "hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{:?}", s.current()).contains("hunter2"));
        assert!(s.path().is_none());
    }

    #[test]
    fn a_file_is_read_again_once_the_interval_passed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "first\n").unwrap();
        let s = SecretSource::file(&path, "--api-secret-file").unwrap();
        assert_eq!(s.current().expose(), "first");
        std::fs::write(&path, "second\r\n").unwrap();
        // Within the interval, the last reading stands.
        assert_eq!(s.current().expose(), "first");
        expire(&s);
        assert_eq!(s.current().expose(), "second");
        assert!(!format!("{s:?}").contains("second"));
    }

    #[test]
    fn a_missing_or_empty_file_keeps_the_last_good_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "good").unwrap();
        let s = SecretSource::file(&path, "--api-secret-file").unwrap();
        std::fs::write(&path, "").unwrap();
        expire(&s);
        assert_eq!(s.current().expose(), "good");
        std::fs::remove_file(&path).unwrap();
        expire(&s);
        assert_eq!(s.current().expose(), "good");
        std::fs::write(&path, "better").unwrap();
        expire(&s);
        assert_eq!(s.current().expose(), "better");
    }

    #[cfg(unix)]
    #[test]
    fn a_kubernetes_style_symlink_swap_is_followed() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // <volume>/..2026_01_01/secret, <volume>/..data -> ..2026_01_01, <volume>/secret ->
        // ..data/secret, as the kubelet lays out a secret volume.
        std::fs::create_dir(root.join("..v1")).unwrap();
        std::fs::write(root.join("..v1/secret"), "old").unwrap();
        symlink("..v1", root.join("..data")).unwrap();
        symlink("..data/secret", root.join("secret")).unwrap();
        let s = SecretSource::file(&root.join("secret"), "--api-secret-file").unwrap();
        assert_eq!(s.current().expose(), "old");
        std::fs::create_dir(root.join("..v2")).unwrap();
        std::fs::write(root.join("..v2/secret"), "new").unwrap();
        symlink("..v2", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        std::fs::remove_dir_all(root.join("..v1")).unwrap();
        expire(&s);
        assert_eq!(s.current().expose(), "new");
    }

    #[test]
    fn an_unusable_file_is_an_error_at_start_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let e = SecretSource::file(&path, "--api-secret-file").unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
        std::fs::write(&path, "\n").unwrap();
        let e = SecretSource::file(&path, "--api-secret-file").unwrap_err();
        assert!(e.to_string().ends_with("is empty"), "{e}");
    }
}
