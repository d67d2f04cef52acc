//! The calls the core counts do not need, and what happens when env0 refuses them.
//!
//! Only the environment listing and each environment's deployments are needed to count. The
//! projects listing (project names, for `--project-label` and `--projects` by name) and the
//! direct read of one deployment (a tracked unfinished run a listing no longer shows) are
//! optional: when env0 refuses them (403, 402, 404, 400) or they fail (5xx, timeouts, an
//! unreadable answer), the poll carries on (a 401 still fails it: the key itself is rejected), the
//! labels or views that needed them degrade as `docs/metrics.md` says, the exporter logs it
//! once (and once more when the call works again), and
//! `env0_exporter_optional_call_unavailable{call, reason}` shows it from
//! [`Health::optional_unavailable`](crate::state::Health::optional_unavailable).
//! (The organisations listing is needed only without `--organization-id`, to choose the
//! organisation: without it there is nothing to count, so its failure still fails the poll.)

use tracing::{info, warn};

use crate::client::Error as ClientError;
use crate::state::Health;

/// An optional call, a bounded label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OptionalCall {
    /// `GET /projects`: project names.
    Projects,
    /// `GET /environments/deployments/{id}`: one deployment, read directly.
    Deployment,
}

impl OptionalCall {
    /// Every optional call.
    pub const ALL: [Self; 2] = [Self::Projects, Self::Deployment];

    /// The label value: `projects` or `deployment`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Projects => "projects",
            Self::Deployment => "deployment",
        }
    }

    /// What is lost while it is unavailable, for the log.
    fn degrades(self) -> &'static str {
        match self {
            Self::Projects => {
                "project labels show project ids; --projects matches by id or by the names last listed"
            }
            Self::Deployment => {
                "a tracked unfinished run that listings no longer show keeps its last status until a listing shows it"
            }
        }
    }
}

/// The label value of why an optional call is unavailable: `forbidden` (403, 402), `not_found`
/// (404), `bad_request` (400), or the poll-error reason of any other failure.
#[must_use]
pub fn unavailable_reason(e: &ClientError) -> &'static str {
    match e {
        ClientError::Forbidden { .. } | ClientError::BadRequest { status: 402, .. } => "forbidden",
        ClientError::NotFound { .. } => "not_found",
        other => other.reason().as_str(),
    }
}

/// Notes in `health` that `call` failed with `e`: logged when it becomes unavailable or its
/// reason changes, shown in the health.
pub(super) fn note_unavailable(health: &mut Health, call: OptionalCall, e: &ClientError) {
    let reason = unavailable_reason(e);
    let before = health.optional_unavailable.insert(call.as_str(), reason);
    if before != Some(reason) {
        warn!(
            call = call.as_str(),
            reason,
            error = %e,
            degraded = call.degrades(),
            "an optional env0 call is unavailable; the counts carry on without it"
        );
    }
}

/// Notes in `health` that `call` worked.
pub(super) fn note_available(health: &mut Health, call: OptionalCall) {
    if health.optional_unavailable.remove(call.as_str()).is_some() {
        info!(call = call.as_str(), "an optional env0 call works again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_are_the_ones_the_metric_pre_creates() {
        assert_eq!(
            OptionalCall::ALL.map(OptionalCall::as_str),
            crate::state::OPTIONAL_CALLS
        );
    }

    #[test]
    fn an_unavailable_call_shows_in_the_health_until_it_works_again() {
        let mut health = Health::default();
        let refused = ClientError::Forbidden {
            path: "/projects".to_owned(),
            body: String::new(),
        };
        note_unavailable(&mut health, OptionalCall::Projects, &refused);
        assert_eq!(
            health.optional_unavailable.get("projects"),
            Some(&"forbidden")
        );
        note_available(&mut health, OptionalCall::Deployment);
        assert_eq!(health.optional_unavailable.len(), 1);
        note_available(&mut health, OptionalCall::Projects);
        assert!(health.optional_unavailable.is_empty());
    }

    #[test]
    fn refusals_are_named_by_what_env0_answered() {
        let path = || "/projects".to_owned();
        let reason = |e: ClientError| unavailable_reason(&e);
        assert_eq!(
            reason(ClientError::Forbidden {
                path: path(),
                body: String::new()
            }),
            "forbidden"
        );
        assert_eq!(
            reason(ClientError::BadRequest {
                path: path(),
                status: 402,
                message: String::new()
            }),
            "forbidden"
        );
        assert_eq!(
            reason(ClientError::NotFound {
                path: path(),
                body: String::new()
            }),
            "not_found"
        );
        assert_eq!(
            reason(ClientError::BadRequest {
                path: path(),
                status: 400,
                message: String::new()
            }),
            "bad_request"
        );
        assert_eq!(
            reason(ClientError::Server {
                path: path(),
                status: 503
            }),
            "server_error"
        );
    }
}
