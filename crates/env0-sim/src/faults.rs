//! Injected faults: a queue of [`Fault`]s, each answering the next `count` requests whose path
//! matches instead of the normal handler (or, for a delay, before it).

use std::collections::VecDeque;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::reply::{ApiError, too_many_requests};
use jiff::Timestamp;

use super::{Fault, FaultKind, TimedFault};

/// Takes one use of the first queued fault matching `path`, dropping it once used up.
pub(crate) fn take(queue: &mut VecDeque<Fault>, path: &str) -> Option<FaultKind> {
    let i = queue.iter().position(|f| {
        f.path_prefix
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix))
    })?;
    let fault = &mut queue[i];
    let kind = fault.kind.clone();
    fault.count = fault.count.saturating_sub(1);
    if fault.count == 0 {
        queue.remove(i);
    }
    Some(kind)
}

/// The first timed fault matching `path` at `now`, dropping those whose span is over.
pub(crate) fn take_timed(
    faults: &mut Vec<TimedFault>,
    path: &str,
    now: Timestamp,
) -> Option<FaultKind> {
    faults.retain(|f| now < f.until);
    faults
        .iter()
        .find(|f| {
            f.path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
        })
        .map(|f| f.kind.clone())
}

/// The answer a fault gives in place of the normal one (`None` for a delay, which answers
/// normally after sleeping).
pub(crate) fn respond(kind: &FaultKind) -> Option<Response> {
    match kind {
        FaultKind::Status(code) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(ApiError::new(status, "injected fault").into_response())
        }
        FaultKind::RateLimited { retry_after } => Some(too_many_requests(*retry_after)),
        FaultKind::Garbage => Some(
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                "<html><body>502 Bad Gateway (not JSON)</body></html>",
            )
                .into_response(),
        ),
        FaultKind::Unauthorized => Some(ApiError::unauthorized().into_response()),
        FaultKind::Delay(_)
        | FaultKind::ForbiddenProjects(_)
        | FaultKind::ShiftPages
        | FaultKind::Malformed(_)
        | FaultKind::DisorderedTimestamps
        | FaultKind::UndocumentedValues
        | FaultKind::Padded { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(prefix: Option<&str>, count: u32) -> Fault {
        Fault {
            path_prefix: prefix.map(str::to_owned),
            kind: FaultKind::Status(503),
            count,
        }
    }

    #[test]
    fn a_fault_is_used_up_after_count_matching_requests() {
        let mut q = VecDeque::from([fault(Some("/projects"), 2)]);
        assert_eq!(take(&mut q, "/environments"), None);
        assert_eq!(take(&mut q, "/projects"), Some(FaultKind::Status(503)));
        assert_eq!(take(&mut q, "/projects"), Some(FaultKind::Status(503)));
        assert_eq!(take(&mut q, "/projects"), None);
        assert!(q.is_empty());
    }

    #[test]
    fn a_timed_fault_applies_until_its_span_is_over() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap_or_default();
        let mut faults = vec![TimedFault {
            path_prefix: Some("/environments".into()),
            kind: FaultKind::ShiftPages,
            until: at("2026-07-01T12:05:00Z"),
        }];
        let now = at("2026-07-01T12:04:59Z");
        assert_eq!(take_timed(&mut faults, "/projects", now), None);
        for _ in 0..3 {
            assert_eq!(
                take_timed(&mut faults, "/environments/e/deployments", now),
                Some(FaultKind::ShiftPages)
            );
        }
        let later = at("2026-07-01T12:05:00Z");
        assert_eq!(take_timed(&mut faults, "/environments", later), None);
        assert!(faults.is_empty());
    }

    #[test]
    fn a_fault_without_prefix_matches_any_path() {
        let mut q = VecDeque::from([fault(None, 1)]);
        assert_eq!(take(&mut q, "/organizations"), Some(FaultKind::Status(503)));
        assert_eq!(take(&mut q, "/organizations"), None);
    }
}
