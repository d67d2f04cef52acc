//! Whether and when a failed attempt is tried again: the [`RetryPolicy`] and the [`Failure`] it
//! judges, exponential back-off with full jitter, and `Retry-After`.
//!
//! The client's request loop takes a budget slot, makes one attempt, pauses the budget for an
//! honoured `Retry-After`, reports the attempt, and then does what [`RetryPolicy::decide`] says:
//! every rule about retrying is in this file.
//!
//! Written here rather than with `backon`: the waits must run on the injected
//! [`Clock`](crate::clock::Clock) and a `Retry-After` pauses the shared request budget
//! ([`SlidingWindow::pause_until`](crate::ratelimit::SlidingWindow::pause_until)) rather than one
//! request, so all a retry crate would bring is the back-off formula.

use std::time::Duration;

use jiff::Timestamp;

use super::error::Error;
use crate::clock;

/// The longest `Retry-After` honoured. env0 counts requests per 60-second window, so a longer
/// wait means a skewed clock or a misbehaving proxy; waiting hours on it would stall the exporter.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Exponential back-off with full jitter (AWS Architecture Blog, "Exponential Backoff And
/// Jitter"): retry `n` waits a uniformly random time in `[0, min(max, base·2ⁿ)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Backoff {
    /// The ceiling of the first retry.
    pub base: Duration,
    /// The cap of every ceiling.
    pub max: Duration,
}

impl Backoff {
    /// The longest wait before retry `retry` (0 for the first retry).
    #[must_use]
    pub(super) fn ceiling(&self, retry: u32) -> Duration {
        self.base
            .saturating_mul(2_u32.saturating_pow(retry))
            .min(self.max)
    }

    /// A random wait before retry `retry`, at most [`ceiling`](Self::ceiling).
    #[must_use]
    pub(super) fn delay(&self, retry: u32) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=ceiling))
    }
}

/// How long a `Retry-After` value asks to wait from `now`: delay-seconds (integer, or decimal as
/// some proxies send) or an HTTP date. `None` when unreadable; a date in the past is zero; capped
/// at [`MAX_RETRY_AFTER`].
#[must_use]
pub(super) fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = value.parse::<f64>() {
        Duration::try_from_secs_f64(secs).ok()?
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        clock::elapsed(now, Timestamp::try_from(when).ok()?)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// When a failed attempt is tried again, and after how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub(crate) max_retries: u32,
    /// The wait before a retry the server sent no `Retry-After` for.
    pub(crate) backoff: Backoff,
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Try again after this wait.
    Retry(Wait),
    /// Stop and return the failure's error.
    GiveUp,
}

/// The wait before a retry, and who keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The server's `Retry-After`. The client paused the whole request budget for it when the
    /// answer came, so the retry does not sleep: it waits for its budget slot like every request.
    RetryAfter(Duration),
    /// A jittered back-off, which the retry sleeps itself.
    Backoff(Duration),
}

impl Wait {
    /// How long the wait is.
    pub(crate) fn duration(self) -> Duration {
        match self {
            Self::RetryAfter(wait) | Self::Backoff(wait) => wait,
        }
    }
}

impl RetryPolicy {
    /// What follows `failure`, `retries` retries after the first attempt, at `now`, given the
    /// poll's `deadline` if one is set.
    ///
    /// Gives up on an error that is not retried ([`Failure::retryable`]) and once `max_retries`
    /// retries are spent. Otherwise the wait is the server's `Retry-After` if it sent one, else a
    /// back-off drawn for retry number `retries` (0 for the first retry). A wait that would reach
    /// the deadline gives up too: a retry that cannot happen before the poll's deadline is not the
    /// budget running out, env0 failed, and the poll reports that failure.
    pub(crate) fn decide(
        &self,
        failure: &Failure,
        retries: u32,
        now: Timestamp,
        deadline: Option<Timestamp>,
    ) -> Decision {
        if !failure.retryable() || retries >= self.max_retries {
            return Decision::GiveUp;
        }
        let wait = match failure.retry_after() {
            Some(wait) => Wait::RetryAfter(wait),
            None => Wait::Backoff(self.backoff.delay(retries)),
        };
        if deadline.is_some_and(|deadline| clock::add(now, wait.duration()) >= deadline) {
            return Decision::GiveUp;
        }
        Decision::Retry(wait)
    }
}

/// One failed attempt, as the retry policy sees it: what went wrong, and the server's
/// `Retry-After` where it is honoured.
pub(crate) struct Failure {
    error: Error,
    retry_after: Option<Duration>,
}

impl Failure {
    /// An attempt that failed with `error`, the answer carrying `retry_after` (a parsed
    /// `Retry-After`), if any. The wait is kept only where env0 means it: on a 429 and on a 503.
    pub(crate) fn new(error: Error, retry_after: Option<Duration>) -> Self {
        let honoured = matches!(
            error,
            Error::RateLimited { .. } | Error::Server { status: 503, .. }
        );
        Self {
            error,
            retry_after: retry_after.filter(|_| honoured),
        }
    }

    /// Whether another attempt may follow: after a 429, a 5xx, a timeout or a network error.
    /// Every other answer (401, 403, 404, other 4xx, an undecodable body) would come again.
    pub(crate) fn retryable(&self) -> bool {
        matches!(
            self.error,
            Error::RateLimited { .. }
                | Error::Server { .. }
                | Error::Timeout { .. }
                | Error::Network { .. }
        )
    }

    /// What went wrong.
    pub(crate) fn error(&self) -> &Error {
        &self.error
    }

    /// The honoured `Retry-After`, if the server sent one.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The error, for the caller once the policy gives up.
    pub(crate) fn into_error(self) -> Error {
        self.error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }

    #[test]
    fn back_off_ceilings_double_from_the_base_and_stop_at_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        };
        let ceilings: Vec<u64> = (0..8).map(|n| b.ceiling(n).as_secs()).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jittered_delays_stay_within_the_ceiling_and_spread_out() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let delays: Vec<Duration> = (0..200).map(|_| b.delay(2)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(distinct.len() > 100, "full jitter spreads the waits");
        assert_eq!(
            Backoff {
                base: Duration::ZERO,
                max: Duration::ZERO
            }
            .delay(3),
            Duration::ZERO
        );
    }

    #[test]
    fn only_rate_limits_server_errors_timeouts_and_network_errors_are_retried() {
        let path = || "/p".to_owned();
        let cases = [
            (
                Error::Auth {
                    path: path(),
                    body: String::new(),
                },
                false,
            ),
            (
                Error::Forbidden {
                    path: path(),
                    body: String::new(),
                },
                false,
            ),
            (
                Error::NotFound {
                    path: path(),
                    body: String::new(),
                },
                false,
            ),
            (
                Error::BadRequest {
                    path: path(),
                    status: 400,
                    message: String::new(),
                },
                false,
            ),
            (
                Error::Decode {
                    path: path(),
                    message: String::new(),
                },
                false,
            ),
            (Error::RateLimited { path: path() }, true),
            (
                Error::Server {
                    path: path(),
                    status: 500,
                },
                true,
            ),
            (Error::Timeout { path: path() }, true),
            (
                Error::Network {
                    path: path(),
                    message: String::new(),
                },
                true,
            ),
        ];
        for (error, retried) in cases {
            let name = error.to_string();
            assert_eq!(Failure::new(error, None).retryable(), retried, "{name}");
        }
    }

    #[test]
    fn retry_after_is_honoured_on_a_429_and_a_503_only() {
        let wait = Some(Duration::from_secs(7));
        let server = |status| Error::Server {
            path: "/p".into(),
            status,
        };
        let rate_limited = Failure::new(Error::RateLimited { path: "/p".into() }, wait);
        assert_eq!(rate_limited.retry_after(), wait);
        assert_eq!(Failure::new(server(503), wait).retry_after(), wait);
        assert_eq!(Failure::new(server(500), wait).retry_after(), None);
        assert_eq!(Failure::new(server(502), wait).retry_after(), None);
        let auth = Error::Auth {
            path: "/p".into(),
            body: String::new(),
        };
        assert_eq!(Failure::new(auth, wait).retry_after(), None);
        let failure = Failure::new(Error::RateLimited { path: "/p".into() }, None);
        assert_eq!(failure.retry_after(), None);
        assert!(matches!(failure.into_error(), Error::RateLimited { .. }));
    }

    fn policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
            },
        }
    }

    fn server_error(retry_after: Option<Duration>) -> Failure {
        let error = Error::Server {
            path: "/p".into(),
            status: 503,
        };
        Failure::new(error, retry_after)
    }

    #[test]
    fn a_retried_error_is_retried_max_retries_times_then_given_up() {
        let now = ts("2026-07-01T14:00:00Z");
        let three = policy(3);
        let failure = server_error(None);
        for retries in 0..3 {
            assert!(matches!(
                three.decide(&failure, retries, now, None),
                Decision::Retry(_)
            ));
        }
        assert_eq!(three.decide(&failure, 3, now, None), Decision::GiveUp);
        assert_eq!(policy(0).decide(&failure, 0, now, None), Decision::GiveUp);
    }

    #[test]
    fn an_error_that_is_not_retried_is_given_up_at_once() {
        let now = ts("2026-07-01T14:00:00Z");
        let auth = Error::Auth {
            path: "/p".into(),
            body: String::new(),
        };
        let failure = Failure::new(auth, Some(Duration::from_secs(1)));
        assert_eq!(policy(4).decide(&failure, 0, now, None), Decision::GiveUp);
    }

    #[test]
    fn the_server_s_retry_after_wins_over_the_back_off() {
        let now = ts("2026-07-01T14:00:00Z");
        let wait = Duration::from_secs(90);
        assert_eq!(
            policy(4).decide(&server_error(Some(wait)), 0, now, None),
            Decision::Retry(Wait::RetryAfter(wait))
        );
        for retries in 0..4 {
            match policy(4).decide(&server_error(None), retries, now, None) {
                Decision::Retry(Wait::Backoff(wait)) => {
                    assert!(wait <= policy(4).backoff.ceiling(retries));
                }
                other => panic!("retry {retries}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_wait_that_reaches_the_deadline_gives_up() {
        let now = ts("2026-07-01T14:00:00Z");
        let wait = Some(Duration::from_secs(10));
        let at = |s: &str| Some(ts(s));
        let policy = policy(4);
        let failure = server_error(wait);
        assert_eq!(
            policy.decide(&failure, 0, now, at("2026-07-01T14:00:10Z")),
            Decision::GiveUp
        );
        assert_eq!(
            policy.decide(&failure, 0, now, at("2026-07-01T14:00:09Z")),
            Decision::GiveUp
        );
        assert_eq!(
            policy.decide(&failure, 0, now, at("2026-07-01T14:00:10.001Z")),
            Decision::Retry(Wait::RetryAfter(Duration::from_secs(10)))
        );
        let no_wait = RetryPolicy {
            max_retries: 4,
            backoff: Backoff {
                base: Duration::ZERO,
                max: Duration::ZERO,
            },
        };
        assert_eq!(
            no_wait.decide(&server_error(None), 0, now, Some(now)),
            Decision::GiveUp,
            "even no wait reaches a deadline that is now"
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = ts("2026-07-01T14:00:00Z");
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 30 ", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 Jul 2026 14:00:42 GMT", now),
            Some(Duration::from_secs(42))
        );
        assert_eq!(
            parse_retry_after("Wed, 01 Jul 2026 13:59:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means retry now"
        );
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
