//! The store's side of the state file: [`Store::export`] and [`Store::restore`], the one place
//! where [`Record`]s meet the file's [`PersistedRecord`]s.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::{DeploymentLabels, Record, Store};
use crate::persist::{
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
                .deployments
                .iter()
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
                    id: id.to_owned(),
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
            self.seen_label_sets.insert(labels.clone());
            let record = Record {
                environment: strings.get(&r.environment),
                labels,
                created_at: t.created_at,
                queued_at: t.queued_at,
                started_at: t.started_at,
                finish_time: t.finish_time,
                waiting_since: t.waiting_since,
            };
            self.deployments.insert(r.id.as_str().into(), record);
        }
        for env in &file.baselined {
            self.baselined.insert(strings.get(env));
        }
        for (end, at) in file.deploy_ends.iter().zip(ends) {
            self.recoveries
                .restore_end(strings.get(&end.environment), &end.id, at, end.success);
        }
        for project in &file.admitted_projects {
            self.projects.readmit(strings.get(project));
        }
        Ok(())
    }
}
