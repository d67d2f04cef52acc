//! What the webhook deliveries are known to cover (see
//! [`covered`](super::schedule::unfinished::covered)): per project, when a delivery of one of its
//! environments last arrived; per deployment type, when deliveries last brought ends of such
//! runs. Learnt from the deliveries taken in, shown by the coverage gauges, and kept in the state
//! file so that a restart does not poll every run as without webhooks until it is learnt again.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::schedule::unfinished::{EndsSeen, covered, ends_covered, recent};
use crate::state_file_format::{PersistedCoverage, PersistedEnds, millis};

/// What the deliveries were seen to bring, in the exporter's clock.
#[derive(Debug, Default)]
pub(super) struct Coverage {
    projects_seen: HashMap<Arc<str>, Timestamp>,
    type_ends: HashMap<Arc<str>, EndsSeen>,
}

impl Coverage {
    /// Notes a delivery of an environment of `project` (`""` when it has none) at `at`.
    pub(super) fn note_project(&mut self, project: Arc<str>, at: Timestamp) {
        self.projects_seen.insert(project, at);
    }

    /// Notes a delivered end of a run of `deployment_type` at `at`, a success or not.
    pub(super) fn note_end(&mut self, deployment_type: Arc<str>, succeeded: bool, at: Timestamp) {
        self.type_ends
            .entry(deployment_type)
            .or_default()
            .note(succeeded, at);
    }

    /// Whether the deliveries are known, at `now`, to bring the ends of runs of
    /// `deployment_type` (its label value) in `project`.
    pub(super) fn covers(
        &self,
        project: Option<&Arc<str>>,
        deployment_type: &str,
        now: Timestamp,
    ) -> bool {
        let project_seen = self
            .projects_seen
            .get(project.map_or("", |p| &**p))
            .copied();
        covered(project_seen, self.type_ends.get(deployment_type), now)
    }

    /// The gauges' figures at `now`, for the types `seen` (label values of runs the store holds)
    /// and those delivered.
    pub(super) fn figures<'a>(
        &'a self,
        seen: impl Iterator<Item = &'a Arc<str>>,
        now: Timestamp,
    ) -> crate::state::WebhookCoverage {
        let projects = self
            .projects_seen
            .values()
            .filter(|t| recent(Some(**t), now))
            .count();
        let types = seen
            .chain(self.type_ends.keys())
            .map(|t| (t.clone(), ends_covered(self.type_ends.get(t), now)))
            .collect();
        crate::state::WebhookCoverage { projects, types }
    }

    /// The state file's form, sorted.
    pub(super) fn export(&self) -> PersistedCoverage {
        let mut projects: Vec<(String, i64)> = self
            .projects_seen
            .iter()
            .map(|(p, t)| (p.to_string(), millis(*t)))
            .collect();
        projects.sort();
        let mut type_ends: Vec<PersistedEnds> = self
            .type_ends
            .iter()
            .map(|(t, e)| PersistedEnds {
                deployment_type: t.to_string(),
                succeeded: e.succeeded.map(millis),
                otherwise: e.otherwise.map(millis),
            })
            .collect();
        type_ends.sort_by(|a, b| a.deployment_type.cmp(&b.deployment_type));
        PersistedCoverage {
            projects,
            type_ends,
        }
    }

    /// Takes what a state file kept (times that do not convert are left out).
    pub(super) fn restore(&mut self, kept: &PersistedCoverage) {
        let at = |ms: i64| Timestamp::from_millisecond(ms).ok();
        for (project, ms) in &kept.projects {
            if let Some(t) = at(*ms) {
                self.projects_seen.insert(Arc::from(project.as_str()), t);
            }
        }
        for e in &kept.type_ends {
            self.type_ends.insert(
                Arc::from(e.deployment_type.as_str()),
                EndsSeen {
                    succeeded: e.succeeded.and_then(at),
                    otherwise: e.otherwise.and_then(at),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn what_is_kept_is_what_is_restored() {
        let at = ts("2026-07-01T12:00:00Z");
        let mut c = Coverage::default();
        c.note_project(Arc::from("p1"), at);
        c.note_end(Arc::from("prPlan"), true, at);
        c.note_end(Arc::from("prPlan"), false, ts("2026-07-01T12:05:00Z"));
        c.note_end(Arc::from("deploy"), true, at);
        let kept = c.export();
        let mut back = Coverage::default();
        back.restore(&kept);
        assert_eq!(back.export(), kept);
        let later = ts("2026-07-01T13:00:00Z");
        assert!(back.covers(Some(&Arc::from("p1")), "prPlan", later));
        assert!(!back.covers(Some(&Arc::from("p1")), "deploy", later));
        assert!(!back.covers(Some(&Arc::from("p2")), "prPlan", later));
    }
}
