//! The one error type of the env0 client, how an HTTP status or a failed exchange becomes one,
//! and the bounded reason each error is counted under.
//!
//! Whether an error is retried is not decided here but in [`retry`](super::retry).
//!
//! Messages name the request path (never the key secret, never the `Authorization` header) and
//! carry at most [`BODY_SNIPPET_CHARS`] characters of env0's error body, whose shape is not
//! documented.

use reqwest::StatusCode;

use super::RequestOutcome;

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
        /// env0's `message` when the body is `{"message": "..."}`, else the start of the body.
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
    /// 400: env0 refused the request's parameters (a validating env0 refuses any it does not
    /// know); the log has the path and env0's message.
    BadRequest,
}

impl Reason {
    /// Every reason, in the order they are documented.
    pub const ALL: [Self; 8] = [
        Self::Auth,
        Self::Forbidden,
        Self::RateLimited,
        Self::Timeout,
        Self::ServerError,
        Self::Network,
        Self::Decode,
        Self::BadRequest,
    ];

    /// The label value: `auth`, `forbidden`, `rate_limited`, `timeout`, `server_error`,
    /// `network`, `decode` or `bad_request`.
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
            Self::BadRequest => "bad_request",
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
    /// - 400 counts as `bad_request`: env0 refused what was sent.
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
            Self::BadRequest { status: 400, .. } => Reason::BadRequest,
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

/// The error of an answer to `path` whose `status` is not a success: 401, 403 and 404 have their
/// own variants, 429 is [`Error::RateLimited`], every 5xx is [`Error::Server`], and any other
/// status (400, 402, …) is [`Error::BadRequest`]. The variants that quote env0 take the start of
/// `body`.
pub(crate) fn from_status(status: StatusCode, path: &str, body: &[u8]) -> Error {
    let path = path.to_owned();
    let snippet = || body_snippet(body);
    match status {
        StatusCode::UNAUTHORIZED => Error::Auth {
            path,
            body: snippet(),
        },
        StatusCode::FORBIDDEN => Error::Forbidden {
            path,
            body: snippet(),
        },
        StatusCode::NOT_FOUND => Error::NotFound {
            path,
            body: snippet(),
        },
        StatusCode::TOO_MANY_REQUESTS => Error::RateLimited { path },
        s if s.is_server_error() => Error::Server {
            path,
            status: s.as_u16(),
        },
        s => Error::BadRequest {
            path,
            status: s.as_u16(),
            message: env0_message(body).unwrap_or_else(snippet),
        },
    }
}

/// env0's `message` from an error body shaped `{"message": "..."}` (the shape is undocumented:
/// `None` for anything else), cut like a snippet.
fn env0_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        message: String,
    }
    let parsed: Body = serde_json::from_slice(body).ok()?;
    let message = body_snippet(parsed.message.as_bytes());
    (!message.is_empty()).then_some(message)
}

/// The error of an exchange with `path` that got no status, and the outcome it is observed as:
/// [`Error::Timeout`] for a timeout, [`Error::Network`] for everything below HTTP (refused or
/// reset connections, TLS, DNS, a broken body), its message the error's source chain without
/// the URL.
pub(crate) fn from_transport(e: reqwest::Error, path: &str) -> (RequestOutcome, Error) {
    let path = path.to_owned();
    if e.is_timeout() {
        return (RequestOutcome::Timeout, Error::Timeout { path });
    }
    let error = Error::Network {
        path,
        message: error_chain(&e.without_url()),
    };
    (RequestOutcome::Error, error)
}

/// An error and its sources, `": "`-joined, each said once.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_maps_to_its_variant_and_only_refusals_quote_the_body() {
        let body = br#"{"message": "nope"}"#;
        let at = |code: u16| {
            let status = StatusCode::from_u16(code).expect("valid status");
            from_status(status, "/projects", body).to_string()
        };
        let quoted = r#": {"message": "nope"}"#;
        assert_eq!(
            at(401),
            format!("env0 rejected the api key on /projects (401){quoted}")
        );
        assert_eq!(
            at(403),
            format!("the api key may not read /projects (403){quoted}")
        );
        assert_eq!(at(404), format!("env0 has no /projects (404){quoted}"));
        // A refusal quotes env0's message, not the whole body.
        assert_eq!(at(400), "env0 refused /projects (400): nope");
        assert_eq!(at(402), "env0 refused /projects (402): nope");
        assert_eq!(at(418), "env0 refused /projects (418): nope");
        let other = from_status(StatusCode::BAD_REQUEST, "/p", b"<html>bad</html>");
        assert_eq!(other.to_string(), "env0 refused /p (400): <html>bad</html>");
        let empty = from_status(StatusCode::BAD_REQUEST, "/p", br#"{"message": ""}"#);
        assert_eq!(
            empty.to_string(),
            r#"env0 refused /p (400): {"message": ""}"#
        );
        assert_eq!(at(429), "env0 rate limited /projects (429)");
        for code in [500, 502, 503, 504] {
            assert_eq!(at(code), format!("env0 answered /projects with {code}"));
        }
    }

    #[test]
    fn each_status_is_counted_under_its_reason() {
        let reason = |code: u16| {
            let status = StatusCode::from_u16(code).expect("valid status");
            from_status(status, "/p", b"").reason().as_str()
        };
        let reasons: Vec<_> = [401, 403, 404, 400, 402, 429, 500, 502, 503]
            .into_iter()
            .map(reason)
            .collect();
        assert_eq!(
            reasons,
            [
                "auth",
                "forbidden",
                "decode",
                "bad_request",
                "forbidden",
                "rate_limited",
                "server_error",
                "server_error",
                "server_error"
            ]
        );
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug)]
        struct Layer(&'static str, Option<Box<Layer>>);
        impl std::fmt::Display for Layer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Layer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_deref().map(|l| l as _)
            }
        }
        let chain = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "connection refused",
                Some(Box::new(Layer("refused", None))),
            ))),
        );
        assert_eq!(
            error_chain(&chain),
            "error sending request: connection refused"
        );
        assert_eq!(error_chain(&Layer("alone", None)), "alone");
    }

    #[test]
    fn every_reason_is_one_of_the_eight_bounded_values() {
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
                "bad_request",
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
