//! What the client tells its observer (the request metrics) about each HTTP attempt, and the
//! bounded labels it uses.

use std::fmt;
use std::time::Duration;

use super::SkipReason;

/// Told about every HTTP attempt (retries included), for request metrics.
pub trait RequestObserver: Send + Sync {
    /// One attempt at `endpoint` ended with `outcome` after `duration` (wall time of the HTTP
    /// exchange, body included; waits for budget or back-off are not part of it).
    fn observe(&self, endpoint: Endpoint, outcome: RequestOutcome, duration: Duration);

    /// A record of a page from `endpoint` could not be read and was skipped for `reason`.
    fn skipped(&self, endpoint: Endpoint, reason: SkipReason) {
        let _ = (endpoint, reason);
    }

    /// An attempt at `endpoint` was answered 429, with this `Retry-After` (`None`: the header
    /// was absent or unreadable). env0 does not document whether it sends one.
    fn rate_limited(&self, endpoint: Endpoint, retry_after: Option<Duration>) {
        let _ = (endpoint, retry_after);
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl RequestObserver for NoopObserver {
    fn observe(&self, _: Endpoint, _: RequestOutcome, _: Duration) {}
}

/// The env0 endpoint families, a bounded metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /organizations`.
    Organizations,
    /// `GET /projects`.
    Projects,
    /// `GET /environments`.
    Environments,
    /// `GET /environments/{id}/deployments` and `GET /environments/deployments/{id}`.
    Deployments,
}

impl Endpoint {
    /// The label value: `organizations`, `projects`, `environments` or `deployments`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organizations => "organizations",
            Self::Projects => "projects",
            Self::Environments => "environments",
            Self::Deployments => "deployments",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one HTTP attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// env0 answered with this status.
    Status(u16),
    /// No answer within the request timeout.
    Timeout,
    /// No answer: connection refused or reset, TLS, DNS, a broken body.
    Error,
}

impl fmt::Display for RequestOutcome {
    /// The status code, `timeout` or `error`, as logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "{code}"),
            Self::Timeout => f.write_str("timeout"),
            Self::Error => f.write_str("error"),
        }
    }
}
