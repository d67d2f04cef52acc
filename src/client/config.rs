//! How to reach env0 and how hard to try: the client's configuration and its defaults.

use std::time::Duration;

use url::Url;

use crate::secret::SecretSource;

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("env0-exporter/", env!("CARGO_PKG_VERSION"));

/// Retries after the first attempt, by default.
pub const DEFAULT_MAX_RETRIES: u32 = 4;
/// Ceiling of the first back-off, by default.
pub const DEFAULT_RETRY_BASE_DELAY: Duration = Duration::from_secs(1);
/// Cap of every back-off, by default.
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(60);
/// Whole-request timeout, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Request budget per 60 s, by default: well below env0's 1,000, which other clients on the same
/// IP share.
pub const DEFAULT_MAX_REQUESTS_PER_MINUTE: u32 = 500;
/// The longest a TCP/TLS connect may take (or the request timeout, if shorter).
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The window env0 counts its rate limit over, and the request budget's window.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// How to reach env0 and how hard to try.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// env0's API root, e.g. `https://api.env0.com`; a path prefix (a proxy) is kept.
    pub base_url: Url,
    /// API key id, sent as the Basic auth user name.
    pub api_key: String,
    /// API key secret, sent as the Basic auth password; never logged. Read for every request,
    /// so a secret file that changes is followed.
    pub api_secret: SecretSource,
    /// Whole-request timeout of one attempt, body included.
    pub request_timeout: Duration,
    /// Retries after the first attempt for 429, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// Ceiling of the first back-off; doubles per retry.
    pub retry_base_delay: Duration,
    /// Cap of every back-off.
    pub retry_max_delay: Duration,
}

impl ClientConfig {
    /// A configuration with the `DEFAULT_*` values for everything but where and who.
    #[must_use]
    pub fn new(
        base_url: Url,
        api_key: impl Into<String>,
        api_secret: impl Into<SecretSource>,
    ) -> Self {
        Self {
            base_url,
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_base_delay: DEFAULT_RETRY_BASE_DELAY,
            retry_max_delay: DEFAULT_RETRY_MAX_DELAY,
        }
    }
}
