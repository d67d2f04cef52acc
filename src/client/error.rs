//! The one error type of the env0 client, and the bounded reason each error is counted under.
//!
//! Messages name the request path (never the key secret, never the `Authorization` header) and
//! carry at most [`BODY_SNIPPET_CHARS`] characters of env0's error body, whose shape is not
//! documented.

/// How much of an error body a message may quote.
pub const BODY_SNIPPET_CHARS: usize = 200;

/// The result of every client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a call to env0 failed.
///
/// Every variant except [`Error::InvalidConfig`] names the request `path` (without the query
/// string), so a log line says which call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401: the key is wrong, revoked, or the source IP is outside the organization's allowlist.
    #[error("env0 rejected the api key on {path} (401){}", detail(.body))]
    Auth {
        /// The request path.
        path: String,
        /// The start of env0's error body.
        body: String,
    },
    /// 403: the key has no permission for this object.
    #[error("the api key may not read {path} (403){}", detail(.body))]
    Forbidden {
        /// The request path.
        path: String,
        /// The start of env0's error body.
        body: String,
    },
    /// 404: env0 does not know the path or the object.
    #[error("env0 has no {path} (404){}", detail(.body))]
    NotFound {
        /// The request path.
        path: String,
        /// The start of env0's error body.
        body: String,
    },
    /// 400, 402 (feature not in plan) and any other 4xx that is not handled on its own.
    #[error("env0 refused {path} ({status}){}", detail(.message))]
    BadRequest {
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The start of env0's error body.
        message: String,
    },
    /// 429 still, once every retry was spent.
    #[error("env0 rate limited {path} (429)")]
    RateLimited {
        /// The request path.
        path: String,
    },
    /// 5xx still, once every retry was spent.
    #[error("env0 answered {path} with {status}")]
    Server {
        /// The request path.
        path: String,
        /// The HTTP status of the last attempt.
        status: u16,
    },
    /// The request timed out on every attempt.
    #[error("request to {path} timed out")]
    Timeout {
        /// The request path.
        path: String,
    },
    /// Connecting or talking to env0 failed on every attempt.
    #[error("request to {path} failed: {message}")]
    Network {
        /// The request path.
        path: String,
        /// What the HTTP stack said, source chain included.
        message: String,
    },
    /// env0 answered 2xx with a body that is not the documented JSON, or a listing never ended.
    #[error("cannot decode the answer to {path}: {message}")]
    Decode {
        /// The request path.
        path: String,
        /// What did not fit.
        message: String,
    },
    /// A deadline is set and the request would have had to wait past it (for the request budget,
    /// a back-off or a `Retry-After`). Not a failure of env0: the poll just stops early.
    #[error("request budget exhausted before the deadline on {path}")]
    BudgetExhausted {
        /// The request path.
        path: String,
    },
    /// The [`ClientConfig`](super::ClientConfig) cannot work.
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
}

/// The bounded reasons a failed poll is counted under in `env0_exporter_poll_errors_total`.
///
/// An enum rather than strings so that a reason nobody declared cannot be counted: every value
/// is pre-created at 0 from [`Reason::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// 401: the key is wrong or revoked, or the source IP is not allowed.
    Auth,
    /// 403 or 402: the key may not read something (or the organisation cannot be chosen).
    Forbidden,
    /// 429 after every retry.
    RateLimited,
    /// No answer within the request timeout, on every attempt.
    Timeout,
    /// 5xx after every retry.
    ServerError,
    /// Connection refused or reset, TLS, DNS, a broken body.
    Network,
    /// env0 did not answer a documented request the documented way.
    Decode,
}

impl Reason {
    /// Every reason, in the order they are documented.
    pub const ALL: [Self; 7] = [
        Self::Auth,
        Self::Forbidden,
        Self::RateLimited,
        Self::Timeout,
        Self::ServerError,
        Self::Network,
        Self::Decode,
    ];

    /// The label value: `auth`, `forbidden`, `rate_limited`, `timeout`, `server_error`,
    /// `network` or `decode`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Forbidden => "forbidden",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::ServerError => "server_error",
            Self::Network => "network",
            Self::Decode => "decode",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The bounded reason this error is counted under in `env0_exporter_poll_errors_total`.
    ///
    /// - 402 (feature not in plan) counts as `forbidden`: like a 403, the key may not read it.
    /// - 404, other 4xx and [`Error::InvalidConfig`] count as `decode`: env0 did not answer a
    ///   documented request the documented way (a changed API or a wrong base URL), which calls
    ///   for the same look at the exporter as a body that no longer parses.
    /// - [`Error::BudgetExhausted`] is not a failure (check [`budget`](Self::budget) first); if
    ///   it is counted anyway it counts as `rate_limited`, the nearest cause.
    #[must_use]
    pub fn reason(&self) -> Reason {
        match self {
            Self::Auth { .. } => Reason::Auth,
            Self::Forbidden { .. } | Self::BadRequest { status: 402, .. } => Reason::Forbidden,
            Self::RateLimited { .. } | Self::BudgetExhausted { .. } => Reason::RateLimited,
            Self::Timeout { .. } => Reason::Timeout,
            Self::Server { .. } => Reason::ServerError,
            Self::Network { .. } => Reason::Network,
            Self::NotFound { .. }
            | Self::BadRequest { .. }
            | Self::Decode { .. }
            | Self::InvalidConfig(_) => Reason::Decode,
        }
    }

    /// Whether the request stopped because the deadline left no budget (not an env0 failure).
    #[must_use]
    pub fn budget(&self) -> bool {
        matches!(self, Self::BudgetExhausted { .. })
    }
}

/// `": <text>"`, or nothing when there is no text.
fn detail(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// At most [`BODY_SNIPPET_CHARS`] characters of a body, whitespace collapsed, for a message.
#[must_use]
pub(crate) fn body_snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut words = text.split_whitespace();
    let mut out = String::new();
    if let Some(first) = words.next() {
        out.push_str(first);
        for word in words {
            out.push(' ');
            out.push_str(word);
        }
    }
    match out.char_indices().nth(BODY_SNIPPET_CHARS) {
        Some((cut, _)) => {
            out.truncate(cut);
            out.push('…');
            out
        }
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_one_of_the_seven_bounded_values() {
        let path = || "/p".to_owned();
        let all = [
            Error::Auth {
                path: path(),
                body: String::new(),
            },
            Error::Forbidden {
                path: path(),
                body: String::new(),
            },
            Error::NotFound {
                path: path(),
                body: String::new(),
            },
            Error::BadRequest {
                path: path(),
                status: 400,
                message: String::new(),
            },
            Error::BadRequest {
                path: path(),
                status: 402,
                message: String::new(),
            },
            Error::RateLimited { path: path() },
            Error::Server {
                path: path(),
                status: 503,
            },
            Error::Timeout { path: path() },
            Error::Network {
                path: path(),
                message: "refused".into(),
            },
            Error::Decode {
                path: path(),
                message: "eof".into(),
            },
            Error::BudgetExhausted { path: path() },
            Error::InvalidConfig("x".into()),
        ];
        let reasons: Vec<_> = all.iter().map(|e| e.reason().as_str()).collect();
        assert_eq!(
            reasons,
            [
                "auth",
                "forbidden",
                "decode",
                "decode",
                "forbidden",
                "rate_limited",
                "server_error",
                "timeout",
                "network",
                "decode",
                "rate_limited",
                "decode"
            ]
        );
        let budget: Vec<_> = all.iter().map(Error::budget).collect();
        assert_eq!(budget.iter().filter(|b| **b).count(), 1);
        assert!(all[10].budget());
    }

    #[test]
    fn messages_are_lowercase_name_the_path_and_quote_the_body() {
        let e = Error::Auth {
            path: "/organizations".into(),
            body: body_snippet(br#"{"message": "Unauthorized"}"#),
        };
        assert_eq!(
            e.to_string(),
            r#"env0 rejected the api key on /organizations (401): {"message": "Unauthorized"}"#
        );
        let e = Error::Server {
            path: "/projects".into(),
            status: 503,
        };
        assert_eq!(e.to_string(), "env0 answered /projects with 503");
        let e = Error::Forbidden {
            path: "/projects".into(),
            body: String::new(),
        };
        assert_eq!(e.to_string(), "the api key may not read /projects (403)");
    }

    #[test]
    fn a_long_body_is_cut_to_two_hundred_characters() {
        let body = "x".repeat(1000);
        let snippet = body_snippet(body.as_bytes());
        assert_eq!(snippet.chars().count(), BODY_SNIPPET_CHARS + 1);
        assert!(snippet.ends_with('…'));
        assert_eq!(body_snippet(b"  a\n\n b  "), "a b");
    }
}
