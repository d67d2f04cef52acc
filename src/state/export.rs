//! The store's side of the state file: [`Store::export`] and [`Store::restore`], the one place
//! where [`Record`]s meet the file's [`PersistedRecord`]s.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::compact::{self, Compact, DeploymentId};
use super::{DeploymentLabels, Store};
use crate::state_file_format::{
    PersistedDeployEnd, PersistedRecord, PersistedStore, Rejected, millis, timestamp, timestamp_opt,
};

/// Shares one allocation per distinct string among restored records.
#[derive(Default)]
struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(v) = self.0.get(s) {
            return v.clone();
        }
        let v: Arc<str> = Arc::from(s);
        self.0.insert(s.to_owned(), v.clone());
        v
    }
}

/// A record's times, converted (and so checked) before anything is applied.
struct Times {
    created_at: Timestamp,
    queued_at: Option<Timestamp>,
    started_at: Option<Timestamp>,
    finish_time: Option<Timestamp>,
    waiting_since: Option<Timestamp>,
}

impl Store {
    /// What the state file keeps of the store.
    #[must_use]
    pub fn export(&self) -> PersistedStore {
        PersistedStore {
            deployments: self
                .deployments()
                .map(|(id, r)| PersistedRecord {
                    id: id.to_string(),
                    environment: r.environment.to_string(),
                    deployment_type: r.labels.deployment_type.to_string(),
                    status: r.labels.status.to_string(),
                    iac_tool: r.labels.iac_tool.to_string(),
                    trigger: r.labels.trigger.to_string(),
                    project: r.labels.project.as_deref().map(str::to_owned),
                    created_at: millis(r.created_at),
                    queued_at: r.queued_at.map(millis),
                    started_at: r.started_at.map(millis),
                    finish_time: r.finish_time.map(millis),
                    waiting_since: r.waiting_since.map(millis),
                })
                .collect(),
            baselined: self.baselined.iter().map(ToString::to_string).collect(),
            deploy_ends: self
                .recoveries
                .ends()
                .map(|(environment, id, at, success)| PersistedDeployEnd {
                    environment: environment.to_string(),
                    id: id.to_string(),
                    at: millis(at),
                    success,
                })
                .collect(),
            admitted_projects: self.projects.admitted().map(ToString::to_string).collect(),
        }
    }

    /// Takes back what [`export`](Self::export) wrote, into an empty store, without events:
    /// restored finished deployments are history (never counted again), restored unfinished
    /// ones are known (their finish counts once, when seen), and restored baselines stand.
    /// Nothing is applied unless all of it converts.
    ///
    /// # Errors
    /// A timestamp out of range (a corrupt file).
    pub fn restore(&mut self, file: &PersistedStore) -> Result<(), Rejected> {
        let times = file
            .deployments
            .iter()
            .map(|r| {
                Ok(Times {
                    created_at: timestamp(r.created_at)?,
                    queued_at: timestamp_opt(r.queued_at)?,
                    started_at: timestamp_opt(r.started_at)?,
                    finish_time: timestamp_opt(r.finish_time)?,
                    waiting_since: timestamp_opt(r.waiting_since)?,
                })
            })
            .collect::<Result<Vec<Times>, Rejected>>()?;
        let ends = file
            .deploy_ends
            .iter()
            .map(|e| timestamp(e.at))
            .collect::<Result<Vec<Timestamp>, Rejected>>()?;
        let mut strings = Interner::default();
        for (r, t) in file.deployments.iter().zip(times) {
            // Label values are mapped again: a no-op on values already mapped, and it admits
            // them to the per-label limit as a backfill would.
            let labels = DeploymentLabels {
                deployment_type: self.labeler.deployment_type.map(Some(&r.deployment_type)),
                status: self.labeler.status.map(Some(&r.status)),
                iac_tool: self.labeler.iac_tool.map(Some(&r.iac_tool)),
                trigger: self.labeler.trigger.map(Some(&r.trigger)),
                project: r.project.as_deref().map(|p| strings.get(p)),
            };
            let label_set = self.label_sets.intern(labels);
            self.seen_label_sets.insert(label_set);
            let id = DeploymentId::new(&r.id);
            if let Some(since) = t.waiting_since {
                self.waiting.insert(id.clone(), since);
            }
            let record = Compact {
                environment: self.environment_ids.intern(&r.environment),
                labels: label_set,
                created_at: compact::millis(t.created_at),
                queued_at: compact::opt_millis(t.queued_at),
                started_at: compact::opt_millis(t.started_at),
                finish_time: compact::opt_millis(t.finish_time),
            };
            self.deployments.insert(id, record);
        }
        for env in &file.baselined {
            let key = self.environment_ids.key(env);
            self.baselined.insert(key);
        }
        for (end, at) in file.deploy_ends.iter().zip(ends) {
            let environment = self.environment_ids.key(&end.environment);
            self.recoveries
                .restore_end(environment, &end.id, at, end.success);
        }
        for project in &file.admitted_projects {
            self.projects.readmit(strings.get(project));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::state::{Event, Observation};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn run(id: &str, env: &str, status: &str, finished: Option<&str>) -> Observation {
        Observation {
            id: id.into(),
            environment_id: env.into(),
            deployment_type: Some("deploy".into()),
            status: Some(status.into()),
            blueprint_type: Some("opentofu".into()),
            trigger_name: Some("user".into()),
            created_at: Some(ts("2026-07-01T11:00:00Z")),
            queued_at: Some(ts("2026-07-01T11:00:00Z")),
            started_at: Some(ts("2026-07-01T11:01:00Z")),
            finished_at: finished.map(ts),
            updated_at: Some(ts(finished.unwrap_or("2026-07-01T11:01:00Z"))),
            ..Observation::default()
        }
    }

    fn finishes(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Finished { run, .. } => Some(run.deployment_id.to_string()),
                _ => None,
            })
            .collect()
    }

    fn store() -> Store {
        Store::new(ts("2026-07-01T12:00:00Z"), Duration::from_secs(86_400))
    }

    #[test]
    fn a_restored_store_counts_each_finish_once_and_takes_baselines_as_they_were() {
        let now = ts("2026-07-01T12:00:00Z");
        let mut before = store();
        let mut events = Vec::new();
        before.mark_baselined("e1");
        // e1: one finished (history), one running; e2: not read yet (no baseline).
        before.ingest(
            &run("done", "e1", "FAILURE", Some("2026-07-01T11:10:00Z")),
            now,
            &mut events,
        );
        before.ingest(&run("running", "e1", "IN_PROGRESS", None), now, &mut events);
        before.ingest(&run("seen", "e2", "IN_PROGRESS", None), now, &mut events);
        let file = before.export();
        assert_eq!(file.deployments.len(), 3);

        let mut after = store();
        after.restore(&file).unwrap();
        assert_eq!(after.tracked(), 3);
        assert!(after.is_baselined("e1") && !after.is_baselined("e2"));
        assert_eq!(
            after.failing_since("e1"),
            Some(ts("2026-07-01T11:10:00Z")),
            "the failing streak is restored"
        );
        let mut events = Vec::new();
        let later = ts("2026-07-01T12:05:00Z");
        // Seen again finished: history, not counted.
        after.ingest(
            &run("done", "e1", "FAILURE", Some("2026-07-01T11:10:00Z")),
            later,
            &mut events,
        );
        // Known running, now finished: counted once, and its recovery measured from the
        // restored failure.
        let success = run("running", "e1", "SUCCESS", Some("2026-07-01T12:02:00Z"));
        after.ingest(&success, later, &mut events);
        after.ingest(&success, later, &mut events);
        // New since e1's baseline: counted. Known in e2 (unbaselined): counted as seen running.
        after.ingest(
            &run("new", "e1", "SUCCESS", Some("2026-07-01T12:03:00Z")),
            later,
            &mut events,
        );
        after.ingest(
            &run("seen", "e2", "SUCCESS", Some("2026-07-01T12:04:00Z")),
            later,
            &mut events,
        );
        // First seen finished in an environment without a baseline: history.
        after.ingest(
            &run("old", "e2", "SUCCESS", Some("2026-07-01T11:30:00Z")),
            later,
            &mut events,
        );
        assert_eq!(finishes(&events), ["running", "new", "seen"]);
        let recovered: Vec<Duration> = events
            .iter()
            .filter_map(|e| match e {
                Event::Recovered { duration, .. } => Some(*duration),
                _ => None,
            })
            .collect();
        assert_eq!(recovered, [Duration::from_secs(52 * 60)]);
    }

    #[test]
    fn a_bad_timestamp_restores_nothing() {
        let mut before = store();
        let mut events = Vec::new();
        before.mark_baselined("e1");
        before.ingest(
            &run("a", "e1", "IN_PROGRESS", None),
            ts("2026-07-01T12:00:00Z"),
            &mut events,
        );
        let mut file = before.export();
        file.deployments[0].started_at = Some(i64::MAX);
        let mut after = store();
        assert!(matches!(after.restore(&file), Err(Rejected::Corrupt(_))));
        assert_eq!(after.tracked(), 0);
        assert!(!after.is_baselined("e1"));
    }
}
