//! The doctor's questions about what the key may read per project and about each query
//! parameter the exporter sends: one request each, named in the report by path and parameter.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{CheckVerdict, DEPLOYMENTS_PATH, Doctor, ENVIRONMENTS_PATH, SAMPLED_PROJECTS};
use crate::client::{self, DeploymentLog, Environment, Error};
use crate::clock;

/// The parameters one request asks about, and its query (`None`: nothing to ask with).
type Probe<'a> = (&'a [&'a str], Option<Vec<(&'a str, String)>>);

impl Doctor {
    /// One environment's deployments per project, for at most [`SAMPLED_PROJECTS`] projects:
    /// a 403 names the project. Returns an environment whose deployments could be read (one
    /// with runs when there is one) and a run of it.
    pub(super) async fn project_access(
        &mut self,
        watched: &[&Environment],
    ) -> Option<(Environment, Option<DeploymentLog>)> {
        // Per project, the environment most likely to have runs: one with a latest run.
        let mut by_project: BTreeMap<&str, &Environment> = BTreeMap::new();
        for env in watched.iter().filter(|e| !e.is_archived) {
            let project = env.project_id.as_deref().unwrap_or_default();
            let better = by_project.get(project).is_none_or(|held| {
                held.latest_deployment_log.is_none() && env.latest_deployment_log.is_some()
            });
            if better {
                by_project.insert(project, env);
            }
        }
        let mut readable: Option<(Environment, Option<DeploymentLog>)> = None;
        let mut checked = 0;
        for (project, env) in &by_project {
            if checked == SAMPLED_PROJECTS {
                break;
            }
            checked += 1;
            match self
                .client
                .deployments_page(&env.id, &[("limit", "1"), ("offset", "0")])
                .await
            {
                Ok(page) => {
                    let run = page.records.into_iter().next();
                    self.report.parameter(
                        DEPLOYMENTS_PATH,
                        "limit",
                        CheckVerdict::Accepted,
                        String::new(),
                    );
                    self.report.parameter(
                        DEPLOYMENTS_PATH,
                        "offset",
                        CheckVerdict::Accepted,
                        String::new(),
                    );
                    let better = readable
                        .as_ref()
                        .is_none_or(|(_, r)| r.is_none() && run.is_some());
                    if better {
                        readable = Some(((*env).clone(), run));
                    }
                }
                Err(Error::Forbidden { .. }) => {
                    self.report.forbidden_projects.push((*project).to_owned());
                }
                Err(e) => {
                    if let Some(verdict @ CheckVerdict::Refused) = CheckVerdict::of_error(&e) {
                        for name in ["limit", "offset"] {
                            self.report.parameter(
                                DEPLOYMENTS_PATH,
                                name,
                                verdict,
                                self.describe(&e),
                            );
                        }
                    }
                    self.report.notes.push(format!(
                        "project {project}: reading environment {}'s deployments failed: {}",
                        env.id,
                        self.describe(&e)
                    ));
                }
            }
        }
        self.report.projects_checked = checked;
        self.report.projects_not_checked = by_project.len() - checked;
        if readable.is_none() && checked > 0 && self.report.forbidden_projects.len() == checked {
            self.report.problems.push(
                "the key may not read the deployments of any environment checked (403): give it a role (read-only is enough) in the projects to watch, or use an organisation key".to_owned(),
            );
        }
        readable
    }

    /// Each deployment-listing parameter the exporter sends, one request each (besides `limit`
    /// and `offset`, which every listing sends).
    pub(super) async fn deployment_parameters(
        &mut self,
        env: &Environment,
        sample: Option<&DeploymentLog>,
    ) {
        // Wide bounds: the question is whether env0 takes them, not what they match.
        let from = "2000-01-01T00:00:00.000Z";
        let to = client::format_query_timestamp(clock::add(
            self.clock.now(),
            Duration::from_secs(86_400 * 365),
        ));
        let user = sample
            .and_then(|s| s.started_by.clone())
            .or_else(|| self.settings.filter.user_ids.first().cloned());
        let types = self
            .settings
            .filter
            .deployment_types
            .first()
            .cloned()
            .unwrap_or_else(|| "deploy".to_owned());
        let statuses = self
            .settings
            .filter
            .statuses
            .first()
            .cloned()
            .unwrap_or_else(|| "SUCCESS".to_owned());
        let probes: [Probe<'_>; 4] = [
            (
                &["fromDate", "toDate"],
                Some(vec![("fromDate", from.to_owned()), ("toDate", to)]),
            ),
            (&["deploymentTypes"], Some(vec![("deploymentTypes", types)])),
            (&["statuses"], Some(vec![("statuses", statuses)])),
            (&["userIds"], user.map(|u| vec![("userIds", u)])),
        ];
        for (names, pairs) in probes {
            let Some(pairs) = pairs else {
                for name in names {
                    self.report.parameter(
                        DEPLOYMENTS_PATH,
                        name,
                        CheckVerdict::NotChecked,
                        "no run with a user id was seen to ask with".to_owned(),
                    );
                }
                continue;
            };
            let mut query: Vec<(&str, &str)> = vec![("limit", "1"), ("offset", "0")];
            query.extend(pairs.iter().map(|(n, v)| (*n, v.as_str())));
            let (verdict, detail) = match self.client.deployments_page(&env.id, &query).await {
                Ok(_) => (CheckVerdict::Accepted, String::new()),
                Err(e) => (
                    CheckVerdict::of_error(&e).unwrap_or(CheckVerdict::NotChecked),
                    self.describe(&e),
                ),
            };
            for name in names {
                self.report
                    .parameter(DEPLOYMENTS_PATH, name, verdict, detail.clone());
            }
        }
    }

    /// `GET /environments/deployments/{id}`: optional (the exporter reads a run on its own only
    /// to follow one that left the listings).
    pub(super) async fn single_deployment(&mut self, id: &str) {
        if let Err(e) = self.client.deployment(id).await {
            self.report.optional_failures.push(format!(
                "reading one deployment by id: {}; a run that leaves its listing unfinished keeps its last status until a listing shows it",
                self.describe(&e)
            ));
        }
    }

    /// `projectId` on the environments listing (sent with `--projects`): one request.
    pub(super) async fn project_parameter(&mut self, org: &str, project: Option<String>) {
        let Some(project) = project else {
            self.report.parameter(
                ENVIRONMENTS_PATH,
                "projectId",
                CheckVerdict::NotChecked,
                "no project to ask with".to_owned(),
            );
            return;
        };
        let (verdict, detail) = match self
            .client
            .environments_page(org, Some(&project), false, 1, 0)
            .await
        {
            Ok(_) => (CheckVerdict::Accepted, String::new()),
            Err(e) => (
                CheckVerdict::of_error(&e).unwrap_or(CheckVerdict::NotChecked),
                self.describe(&e),
            ),
        };
        self.report
            .parameter(ENVIRONMENTS_PATH, "projectId", verdict, detail);
    }
}
