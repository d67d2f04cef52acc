//! The opt-in views: the `project` label under a series budget, and one row per environment.
//!
//! **The project label** (`--project-label`) is the project's name, joined through the
//! deployment's environment. Its values are bounded by `--max-series-per-metric`, measured on
//! `env0_deployments` (the widest deployment family): projects are *admitted* to a label value of
//! their own, busiest first (most deployments known, then name, then id), for as long as the
//! family's label sets stay within the budget; the others share `project="other"`. Admission
//! runs at every publish and only ever adds, so the set of values is stable across scrapes and a
//! function of what env0 returned. A project admitted late keeps what it counted under `other`
//! there (a counter cannot move), and counts under its name from then on; an `env0_deployments`
//! label set under `other` that only its deployments held moves with them. If the family
//! without any project already needs more label sets than the budget, no project is admitted.
//!
//! **The environment view** (`--environment-metrics`) is one row per non-archived environment:
//! its status and its latest run as env0's listing shows it. Past the budget, environments whose
//! latest run failed are kept first, then by name.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;

use super::compact::LabelSetId;
use super::{DeploymentLabels, FAILED_STATUSES, Observation, Store, is_finished};

/// Longest project or environment name used as a label value; longer ones are cut.
const MAX_NAME_CHARS: usize = 128;

/// The project label's state: names, and which projects have a value of their own.
#[derive(Debug, Clone)]
pub(crate) struct ProjectLabels {
    enabled: bool,
    budget: usize,
    /// Project id → its label value (the name; the id when env0 gives no name).
    names: HashMap<Arc<str>, Arc<str>>,
    /// Project ids admitted to a value of their own.
    admitted: HashSet<Arc<str>>,
    other: Arc<str>,
    unknown: Arc<str>,
}

impl ProjectLabels {
    /// Off, or on with at most `budget` label sets per family.
    pub(crate) fn new(enabled: bool, budget: usize) -> Self {
        Self {
            enabled,
            budget,
            names: HashMap::new(),
            admitted: HashSet::new(),
            other: Arc::from(crate::labels::OTHER),
            unknown: Arc::from(crate::labels::UNKNOWN),
        }
    }

    /// Projects admitted to a value of their own, for the state file.
    pub(crate) fn admitted(&self) -> impl Iterator<Item = &Arc<str>> {
        self.admitted.iter()
    }

    /// Admits `project` again from the state file.
    pub(crate) fn readmit(&mut self, project: Arc<str>) {
        self.admitted.insert(project);
    }

    /// The project's display value: its name (cut to [`MAX_NAME_CHARS`]), else its id, else
    /// `unknown`.
    pub(crate) fn name(&self, project_id: Option<&str>) -> Arc<str> {
        match project_id {
            None => self.unknown.clone(),
            Some(id) => self.names.get(id).cloned().unwrap_or_else(|| Arc::from(id)),
        }
    }

    /// The shared project id `id` (one allocation per project, not per environment).
    pub(crate) fn id(&self, id: &str) -> Arc<str> {
        self.names
            .get_key_value(id)
            .map_or_else(|| Arc::from(id), |(k, _)| k.clone())
    }

    /// The `project` label of a deployment in this project: `None` when the label is off.
    pub(crate) fn label(&self, project_id: Option<&str>) -> Option<Arc<str>> {
        if !self.enabled {
            return None;
        }
        Some(match project_id {
            Some(id) if self.admitted.contains(id) => self.name(Some(id)),
            Some(_) => self.other.clone(),
            None => self.unknown.clone(),
        })
    }
}

/// Cuts a free-text name to [`MAX_NAME_CHARS`] characters.
fn cut(name: &str) -> Arc<str> {
    match name.char_indices().nth(MAX_NAME_CHARS) {
        Some((end, _)) => Arc::from(&name[..end]),
        None => Arc::from(name),
    }
}

/// An environment's latest run as env0's environment listing embeds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestRun {
    /// Its `deployment_type` label value.
    pub deployment_type: Arc<str>,
    /// Its `status` label value.
    pub status: Arc<str>,
    /// When it finished (`finishedAt`, else `updatedAt` once finished); `None` while unfinished.
    pub finished_at: Option<Timestamp>,
}

/// One row of the environment view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRow {
    /// The environment's name (its id when it has none).
    pub environment: Arc<str>,
    /// env0's environment id, for links.
    pub environment_id: Arc<str>,
    /// The project's name.
    pub project: Arc<str>,
    /// env0's project id, for links.
    pub project_id: Arc<str>,
    /// The environment's `status`.
    pub status: Arc<str>,
    /// The environment's `driftStatus`.
    pub drift_status: Arc<str>,
    /// Its latest run, when env0 shows one.
    pub latest: Option<LatestRun>,
}

impl EnvironmentRow {
    /// Whether the latest run failed.
    #[must_use]
    pub fn failed(&self) -> bool {
        self.latest
            .as_ref()
            .is_some_and(|l| FAILED_STATUSES.contains(&&*l.status))
    }
}

impl Store {
    /// Records the projects env0 lists: id and name.
    pub fn set_projects<'a>(
        &mut self,
        projects: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) {
        for (id, name) in projects {
            let value = name.map_or_else(|| Arc::from(id), cut);
            self.projects.names.insert(Arc::from(id), value);
        }
    }

    /// Records what the environment view shows of an environment: its name and its latest run
    /// (call after [`upsert_environment`](Self::upsert_environment)).
    pub fn set_environment_view(
        &mut self,
        id: &str,
        name: Option<&str>,
        latest: Option<&Observation>,
    ) {
        if !self.environment_view {
            return;
        }
        let latest = latest.map(|obs| LatestRun {
            deployment_type: self
                .labeler
                .deployment_type
                .map(obs.deployment_type.as_deref()),
            status: self.labeler.status.map(obs.status.as_deref()),
            finished_at: is_finished(obs.status.as_deref(), obs.finished_at)
                .then(|| obs.finished_at.or(obs.updated_at))
                .flatten(),
        });
        if let Some(env) = self.environments.get_mut(id) {
            env.name = name.map(cut);
            env.latest = latest;
        }
    }

    /// The environment view's rows, within the series budget, sorted by name then id.
    #[must_use]
    pub fn environment_rows(&self) -> Vec<EnvironmentRow> {
        if !self.environment_view {
            return Vec::new();
        }
        let mut rows: Vec<EnvironmentRow> = self
            .environments
            .iter()
            .filter(|(_, env)| !env.archived)
            .map(|(id, env)| EnvironmentRow {
                environment: env.name.clone().unwrap_or_else(|| id.clone()),
                environment_id: id.clone(),
                project: self.projects.name(env.project_id.as_deref()),
                project_id: env
                    .project_id
                    .clone()
                    .unwrap_or_else(|| self.projects.unknown.clone()),
                status: env.status.clone(),
                drift_status: env.drift_status.clone(),
                latest: env.latest.clone(),
            })
            .collect();
        let by_name = |a: &EnvironmentRow, b: &EnvironmentRow| {
            (&a.environment, &a.environment_id).cmp(&(&b.environment, &b.environment_id))
        };
        rows.sort_by(|a, b| b.failed().cmp(&a.failed()).then_with(|| by_name(a, b)));
        rows.truncate(self.projects.budget);
        rows.sort_by(by_name);
        rows
    }

    /// Admits the busiest projects not yet admitted to a `project` value of their own while
    /// `env0_deployments` stays within the budget (see the module doc); relabels their records.
    /// Returns how many were admitted. One pass over the records, then per candidate only its
    /// own label sets.
    pub fn admit_projects(&mut self) -> usize {
        if !self.projects.enabled {
            return 0;
        }
        // The project of each environment index, looked up once rather than per record.
        let project_of: Vec<Option<Arc<str>>> = (0..self.environment_ids.slots())
            .map(|i| {
                self.environments
                    .get(self.environment_ids.get(i))
                    .and_then(|e| e.project_id.clone())
            })
            .collect();
        // Label sets of all deployments, and of each project not yet admitted, with counts.
        let mut totals: HashMap<LabelSetId, usize> = HashMap::new();
        let mut by_project: HashMap<Arc<str>, HashMap<LabelSetId, usize>> = HashMap::new();
        for record in self.deployments.values() {
            *totals.entry(record.labels).or_default() += 1;
            if let Some(project) = project_of
                .get(record.environment as usize)
                .and_then(Option::as_ref)
                .filter(|p| !self.projects.admitted.contains(*p))
            {
                *by_project
                    .entry(project.clone())
                    .or_default()
                    .entry(record.labels)
                    .or_default() += 1;
            }
        }
        let mut candidates: Vec<(Arc<str>, usize, Arc<str>)> = by_project
            .iter()
            .map(|(id, sets)| {
                (
                    id.clone(),
                    sets.values().sum(),
                    self.projects.name(Some(id)),
                )
            })
            .collect();
        candidates.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| (&a.2, &a.0).cmp(&(&b.2, &b.0))));
        let mut admitted = 0;
        for (project, _, name) in candidates {
            let before = by_project.remove(&project).unwrap_or_default();
            let relabel = |set: &DeploymentLabels| DeploymentLabels {
                project: Some(name.clone()),
                ..set.clone()
            };
            // `other` sets that only this project's deployments held move with them.
            let vacated: Vec<LabelSetId> = before
                .iter()
                .filter(|(set, n)| totals.get(*set) == Some(*n))
                .map(|(set, _)| *set)
                .collect();
            let added = before
                .keys()
                .map(|set| relabel(self.label_sets.get(*set)))
                .filter(|set| {
                    !self
                        .label_sets
                        .find(set)
                        .is_some_and(|id| self.seen_label_sets.contains(id))
                })
                .count();
            if self.seen_label_sets.len() - vacated.len() + added > self.projects.budget {
                break; // the busiest first: a quieter project does not jump the queue
            }
            for set in vacated {
                self.seen_label_sets.remove(set);
            }
            let mut moved: HashMap<LabelSetId, LabelSetId> = HashMap::new();
            for (set, n) in &before {
                if let Some(total) = totals.get_mut(set) {
                    *total -= n;
                }
                let new = self.label_sets.intern(relabel(self.label_sets.get(*set)));
                *totals.entry(new).or_default() += n;
                self.seen_label_sets.insert(new);
                moved.insert(*set, new);
            }
            self.projects.admitted.insert(project.clone());
            let in_project: Vec<bool> = project_of
                .iter()
                .map(|p| p.as_ref() == Some(&project))
                .collect();
            for record in self.deployments.values_mut() {
                if in_project.get(record.environment as usize) == Some(&true) {
                    record.labels = match moved.get(&record.labels) {
                        Some(new) => *new,
                        None => self
                            .label_sets
                            .intern(relabel(self.label_sets.get(record.labels))),
                    };
                }
            }
            admitted += 1;
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Views;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn store(budget: usize) -> Store {
        Store::new(
            ts("2026-07-01T12:00:00Z"),
            std::time::Duration::from_secs(86_400),
        )
        .with_views(Views {
            project_label: true,
            environment_metrics: true,
            max_series_per_metric: budget,
        })
    }

    fn run(id: &str, env: &str, kind: &str, status: &str) -> Observation {
        Observation {
            id: id.into(),
            environment_id: env.into(),
            deployment_type: Some(kind.into()),
            status: Some(status.into()),
            created_at: Some(ts("2026-07-01T11:00:00Z")),
            finished_at: Some(ts("2026-07-01T11:10:00Z")),
            ..Observation::default()
        }
    }

    #[test]
    fn a_project_waits_under_other_until_admitted_and_admission_is_by_activity_then_name() {
        let mut s = store(100);
        s.set_projects([("p1", Some("busy")), ("p2", Some("quiet")), ("p3", None)]);
        for (env, project) in [("e1", "p1"), ("e2", "p2"), ("e3", "p3")] {
            s.upsert_environment(env, Some(project), Some("ACTIVE"), Some("OK"), false);
        }
        let now = ts("2026-07-01T12:00:00Z");
        let mut events = Vec::new();
        for (i, env) in ["e1", "e1", "e2", "e3"].iter().enumerate() {
            s.ingest(
                &run(&format!("d{i}"), env, "deploy", "SUCCESS"),
                now,
                &mut events,
            );
        }
        let projects = |s: &Store| -> Vec<Option<String>> {
            let mut v: Vec<_> = s
                .deployments()
                .map(|(_, r)| r.labels.project.as_deref().map(str::to_owned))
                .collect();
            v.sort();
            v
        };
        assert!(projects(&s).iter().all(|p| p.as_deref() == Some("other")));
        assert_eq!(s.admit_projects(), 3);
        assert_eq!(
            projects(&s),
            [
                Some("busy".into()),
                Some("busy".into()),
                Some("p3".into()),
                Some("quiet".into())
            ],
            "named by name, else by id"
        );
        let sets: Vec<_> = s
            .seen_label_sets()
            .filter_map(|l| l.project.clone())
            .collect();
        assert!(
            !sets.iter().any(|p| &**p == "other"),
            "vacated other sets are gone: {sets:?}"
        );
    }

    #[test]
    fn a_budget_below_what_one_more_project_needs_stops_admission_at_the_busiest() {
        let mut s = store(3);
        s.set_projects([("p1", Some("a")), ("p2", Some("b"))]);
        s.upsert_environment("e1", Some("p1"), None, None, false);
        s.upsert_environment("e2", Some("p2"), None, None, false);
        let now = ts("2026-07-01T12:00:00Z");
        let mut events = Vec::new();
        // Two label sets in p1 (busier), two in p2 sharing one with p1.
        s.ingest(&run("d1", "e1", "deploy", "SUCCESS"), now, &mut events);
        s.ingest(&run("d2", "e1", "destroy", "SUCCESS"), now, &mut events);
        s.ingest(&run("d3", "e1", "destroy", "SUCCESS"), now, &mut events);
        s.ingest(&run("d4", "e2", "deploy", "SUCCESS"), now, &mut events);
        s.ingest(&run("d5", "e2", "task", "SUCCESS"), now, &mut events);
        // other: {deploy, destroy, task} = 3. Admitting p1 vacates destroy, adds 2: 4 > 3.
        assert_eq!(s.admit_projects(), 0);
        let mut roomy = store(5);
        std::mem::swap(&mut roomy.deployments, &mut s.deployments);
        std::mem::swap(&mut roomy.label_sets, &mut s.label_sets);
        std::mem::swap(&mut roomy.environment_ids, &mut s.environment_ids);
        std::mem::swap(&mut roomy.environments, &mut s.environments);
        std::mem::swap(&mut roomy.seen_label_sets, &mut s.seen_label_sets);
        roomy.set_projects([("p1", Some("a")), ("p2", Some("b"))]);
        // 3 - 1 + 2 = 4 ≤ 5 admits p1; then p2: 4 - 2 + 2 = 4 ≤ 5 admits p2 too.
        assert_eq!(roomy.admit_projects(), 2);
    }

    #[test]
    fn past_the_budget_the_environment_view_keeps_failed_environments_first() {
        let mut s = store(2);
        for (env, name, status) in [
            ("e1", "alpha", "SUCCESS"),
            ("e2", "beta", "FAILURE"),
            ("e3", "gamma", "SUCCESS"),
            ("e4", "delta", "TIMEOUT"),
        ] {
            s.upsert_environment(env, Some("p1"), Some("ACTIVE"), Some("OK"), false);
            s.set_environment_view(env, Some(name), Some(&run("x", env, "deploy", status)));
        }
        let names: Vec<_> = s
            .environment_rows()
            .iter()
            .map(|r| r.environment.to_string())
            .collect();
        assert_eq!(names, ["beta", "delta"]);
    }
}
