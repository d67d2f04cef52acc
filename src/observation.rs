//! A deployment log, from a listing or a webhook delivery, turned into what the state takes (an
//! [`Observation`]). Neutral ground between the [`client`](crate::client) model and the
//! [`state`](crate::state): the poller and the webhook receiver both convert through here, so
//! neither imports the other.
//!
//! Timestamps that contradict each other are made consistent before a deployment log reaches
//! the state. env0's timestamps are compared only with each other, never with the local clock:
//!
//! - a `finishedAt` later than `updatedAt` (the log's last change) cannot be: the finish is
//!   taken as `updatedAt`, so a finish time in the future neither counts a run that finished
//!   before the exporter started nor moves the last-finished gauge ahead;
//! - a `startedAt` later than the finish (or than `updatedAt`) cannot be either: it is dropped,
//!   so no duration is observed for that run rather than a zero or a negative one.
//!
//! Missing timestamps stay missing: the state already falls back (`updatedAt` for the finish,
//! no duration without both ends).

use crate::client::DeploymentLog;
use crate::state::Observation;

/// The fields the state needs from a deployment log.
#[must_use]
pub fn observation(log: &DeploymentLog, environment_id: &str) -> Observation {
    let mut obs = Observation {
        id: log.id.clone(),
        environment_id: log
            .environment_id
            .clone()
            .unwrap_or_else(|| environment_id.to_owned()),
        deployment_type: log.deployment_type.clone(),
        status: log.status.clone(),
        blueprint_type: log.blueprint_type.clone(),
        trigger_name: log.trigger_name.clone(),
        started_by: log.started_by.clone(),
        created_at: log.created_at,
        queued_at: log.queued_at,
        started_at: log.started_at,
        finished_at: log.finished_at,
        updated_at: log.updated_at,
        resource_changes: log
            .plan_summary
            .as_ref()
            .map(|p| crate::state::ResourceChanges {
                added: p.added,
                changed: p.changed,
                destroyed: p.destroyed,
                imported: p.imported,
            }),
        drift_detected: log.drift_detected,
    };
    make_consistent(&mut obs);
    obs
}

/// Makes `obs`'s timestamps consistent with each other (see the module documentation).
pub fn make_consistent(obs: &mut Observation) {
    if let (Some(finished), Some(updated)) = (obs.finished_at, obs.updated_at)
        && finished > updated
    {
        tracing::debug!(id = %obs.id, %finished, %updated, "finishedAt after updatedAt: using updatedAt");
        obs.finished_at = Some(updated);
    }
    let end = obs.finished_at.or(obs.updated_at);
    if let (Some(started), Some(end)) = (obs.started_at, end)
        && started > end
    {
        tracing::debug!(id = %obs.id, %started, %end, "startedAt after the finish: ignored");
        obs.started_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(started: Option<&str>, finished: Option<&str>, updated: Option<&str>) -> Observation {
        let ts = |s: Option<&str>| s.and_then(|s| s.parse().ok());
        Observation {
            id: "d".into(),
            status: Some("SUCCESS".into()),
            started_at: ts(started),
            finished_at: ts(finished),
            updated_at: ts(updated),
            ..Observation::default()
        }
    }

    #[test]
    fn a_finish_after_the_last_change_is_the_last_change() {
        let mut o = obs(
            Some("2026-07-01T12:00:00Z"),
            Some("2027-07-01T12:10:00Z"),
            Some("2026-07-01T12:10:00Z"),
        );
        make_consistent(&mut o);
        assert_eq!(o.finished_at, o.updated_at);
        assert!(o.started_at.is_some());
    }

    #[test]
    fn a_start_after_the_finish_is_dropped_and_consistent_times_are_kept() {
        let mut o = obs(
            Some("2026-07-01T12:11:00Z"),
            Some("2026-07-01T12:10:00Z"),
            Some("2026-07-01T12:10:00Z"),
        );
        make_consistent(&mut o);
        assert_eq!(o.started_at, None);
        let mut fine = obs(Some("2026-07-01T12:00:00Z"), None, None);
        let before = fine.clone();
        make_consistent(&mut fine);
        assert_eq!(fine, before);
    }
}
