//! Basic auth against `basic_auth_users` (user → bcrypt hash), as the exporter toolkit does it.
//!
//! - A user that is not configured is checked against a dummy hash of the same cost, so the time
//!   an answer takes does not tell which users exist.
//! - bcrypt is slow on purpose (about 70 ms at cost 10), so a password that verified is
//!   remembered: per user, a SHA-256 digest of the user, the hash and the password, compared in
//!   constant time. A scraper sending the same credentials every 15 s pays bcrypt once. Only
//!   successes are remembered (at most one per configured user), and a changed hash (the file
//!   edited) no longer matches.
//! - Verifications run one at a time on the blocking pool, so that a flood of wrong passwords
//!   costs at most one core and never stalls the async workers; at most [`MAX_WAITING`] wait
//!   their turn, and past that a request that needs bcrypt is answered 503 at once rather than
//!   holding its connection (a request waiting is a busy connection, which the connection limit
//!   never closes). A scraper whose password is remembered is not affected.
//! - A failure is answered 401 with `WWW-Authenticate: Basic`, whatever was wrong.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::http::HeaderValue;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;

/// The configured users, and the verifications remembered for them.
pub struct Users {
    /// User → bcrypt hash.
    hashes: BTreeMap<String, String>,
    /// Cost of the dummy hash: the highest of the configured ones.
    cost: u32,
    /// The dummy hash unknown users are checked against, made on first need.
    dummy: Arc<OnceLock<String>>,
    /// User → digest of the credentials that last verified.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    /// One bcrypt at a time.
    gate: Arc<Semaphore>,
    /// Verifications waiting for the gate.
    waiting: AtomicUsize,
}

/// Verifications that may wait for bcrypt at once; past it, requests are answered 503.
pub const MAX_WAITING: usize = 16;

/// What a request's credentials are worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthVerdict {
    /// A configured user and its password.
    Allowed,
    /// Anything else: answered 401.
    Denied,
    /// Too many verifications waiting: answered 503, try again.
    Busy,
}

/// Counts a verification as waiting until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("users", &self.hashes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// bcrypt's default cost, for the dummy hash when no configured hash says otherwise.
const DEFAULT_COST: u32 = 10;

impl Users {
    /// Users with these bcrypt hashes (checked to be bcrypt hashes already).
    #[must_use]
    pub fn new(hashes: BTreeMap<String, String>) -> Self {
        let cost = hashes
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(DEFAULT_COST);
        Self {
            hashes,
            cost,
            dummy: Arc::new(OnceLock::new()),
            verified: Mutex::new(HashMap::new()),
            gate: Arc::new(Semaphore::new(1)),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Whether no user is configured (no basic auth).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `authorization` (the header's value) carries a configured user and its password.
    pub async fn verify(&self, authorization: Option<&HeaderValue>) -> AuthVerdict {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return AuthVerdict::Denied;
        };
        let hash = self.hashes.get(&user).cloned();
        let digest = digest(&user, hash.as_deref().unwrap_or_default(), &password);
        if hash.is_some() && self.remembered(&user, &digest) {
            return AuthVerdict::Allowed;
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return AuthVerdict::Busy;
        }
        let waiting = Waiting(&self.waiting);
        let Ok(permit) = self.gate.clone().acquire_owned().await else {
            return AuthVerdict::Denied;
        };
        drop(waiting);
        let (cost, dummy) = (self.cost, self.dummy.clone());
        let known = hash.is_some();
        // The permit goes with the work: a client that leaves does not let the next bcrypt start
        // before this one ends.
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if let Some(hash) = hash {
                return bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false);
            }
            let dummy = dummy.get_or_init(|| {
                bcrypt::hash(b"env0-exporter dummy password", cost).unwrap_or_default()
            });
            let _ = bcrypt::verify(password.as_bytes(), dummy);
            false
        })
        .await
        .unwrap_or(false);
        if verified && known {
            self.verified
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(user, digest);
            return AuthVerdict::Allowed;
        }
        AuthVerdict::Denied
    }

    fn remembered(&self, user: &str, digest: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .is_some_and(|known| bool::from(known.ct_eq(digest)))
    }
}

/// User name and password of a `Basic` authorization header.
fn credentials(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// SHA-256 of the user, the hash and the password, each length-prefixed so that no two triples
/// share a digest by concatenation.
fn digest(user: &str, hash: &str, password: &str) -> [u8; 32] {
    let mut sha = Sha256::new();
    for part in [user, hash, password] {
        sha.update((part.len() as u64).to_be_bytes());
        sha.update(part.as_bytes());
    }
    sha.finalize().into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::AuthVerdict::{Allowed, Busy, Denied};
    use super::*;

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    fn users() -> Users {
        // Cost 4, bcrypt's lowest, to keep the test fast.
        let hash = bcrypt::hash("s3cret-pass", 4).unwrap();
        Users::new(BTreeMap::from([("prometheus".to_owned(), hash)]))
    }

    #[tokio::test]
    async fn the_right_password_passes_and_anything_else_fails() {
        let u = users();
        let check = async |user: &str, password: &str| u.verify(Some(&basic(user, password))).await;
        assert_eq!(check("prometheus", "s3cret-pass").await, Allowed);
        assert_eq!(check("prometheus", "wrong").await, Denied);
        assert_eq!(check("nobody", "s3cret-pass").await, Denied);
        assert_eq!(u.verify(None).await, Denied);
        for raw in ["Bearer abc", "Basic !!!", "Basic", "basic cHJvbWV0aGV1cw=="] {
            let header = HeaderValue::from_static(raw);
            assert_eq!(u.verify(Some(&header)).await, Denied, "{raw}");
        }
        // The scheme's case does not matter.
        let lower = basic("prometheus", "s3cret-pass")
            .to_str()
            .unwrap()
            .replacen("Basic", "basic", 1);
        let lower = HeaderValue::from_str(&lower).unwrap();
        assert_eq!(u.verify(Some(&lower)).await, Allowed);
    }

    #[tokio::test]
    async fn a_verified_password_is_remembered_and_a_wrong_one_never() {
        let u = users();
        assert_eq!(
            u.verify(Some(&basic("prometheus", "s3cret-pass"))).await,
            Allowed
        );
        let d = digest("prometheus", &u.hashes["prometheus"], "s3cret-pass");
        assert!(u.remembered("prometheus", &d));
        assert_eq!(
            u.verify(Some(&basic("prometheus", "s3cret-pasS"))).await,
            Denied
        );
        let wrong = digest("prometheus", &u.hashes["prometheus"], "s3cret-pasS");
        assert!(!u.remembered("prometheus", &wrong));
        assert_eq!(u.verified.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_unknown_user_costs_a_bcrypt_too() {
        let u = users();
        assert_eq!(u.verify(Some(&basic("mallory", "x"))).await, Denied);
        let dummy = u.dummy.get().unwrap();
        assert_eq!(dummy.parse::<bcrypt::HashParts>().unwrap().get_cost(), 4);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn past_the_waiting_limit_a_new_password_check_is_busy_but_a_remembered_one_passes() {
        let u = Arc::new(users());
        assert_eq!(
            u.verify(Some(&basic("prometheus", "s3cret-pass"))).await,
            Allowed
        );
        // Hold the gate, as a long bcrypt would, and fill the waiting places.
        let held = u.gate.clone().acquire_owned().await.unwrap();
        let mut waiters = tokio::task::JoinSet::new();
        for i in 0..MAX_WAITING {
            let u = u.clone();
            waiters
                .spawn(async move { u.verify(Some(&basic("prometheus", &format!("w{i}")))).await });
        }
        while u.waiting.load(Ordering::SeqCst) < MAX_WAITING {
            tokio::task::yield_now().await;
        }
        assert_eq!(u.verify(Some(&basic("prometheus", "another"))).await, Busy);
        assert_eq!(
            u.verify(Some(&basic("prometheus", "s3cret-pass"))).await,
            Allowed,
            "a remembered password needs no bcrypt"
        );
        drop(held);
        while let Some(verdict) = waiters.join_next().await {
            assert_eq!(verdict.unwrap(), Denied);
        }
        assert_eq!(u.waiting.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_password_never_prints() {
        let u = users();
        let printed = format!("{u:?}");
        assert!(printed.contains("prometheus"));
        assert!(!printed.contains("$2"), "{printed}");
    }
}
