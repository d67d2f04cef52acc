//! What env0 lists each poll: the organisation, its projects and the watched environments,
//! and what the poller takes from the environment listing (records, schedule, latest runs).

use std::collections::HashSet;
use std::sync::Arc;

use jiff::Timestamp;
use tracing::{debug, info};

use super::optional::OptionalCall;
use super::{PollError, Poller};
use crate::client::{Environment, Error as ClientError};
use crate::observation::observation;

impl Poller {
    pub(super) async fn organization(&mut self) -> Result<String, PollError> {
        if let Some(id) = &self.organization_id {
            return Ok(id.clone());
        }
        let orgs = self.client.organizations().await?;
        match orgs.as_slice() {
            [only] => {
                info!(organization_id = %only.id, name = only.name.as_deref().unwrap_or(""), "watching the only organisation the key sees");
                self.organization_id = Some(only.id.clone());
                Ok(only.id.clone())
            }
            [] => Err(PollError::Organization(
                "the API key sees no organisation".into(),
            )),
            several => {
                let choices: Vec<String> = several
                    .iter()
                    .map(|o| format!("{} ({})", o.id, o.name.as_deref().unwrap_or("unnamed")))
                    .collect();
                Err(PollError::Organization(format!(
                    "the API key sees {} organisations; choose one with --organization-id: {}",
                    several.len(),
                    choices.join(", ")
                )))
            }
        }
    }

    /// Lists the projects and the watched environments; `None` when the request budget ran out
    /// first (the poll then ends early without error, and the next one starts over).
    ///
    /// With `--projects`, the environments come from whichever costs fewer requests as last
    /// counted: one listing per watched project (`projectId`, Σ ⌊Eₚ/100⌋+1 pages) or the
    /// organisation's (⌊E/100⌋+1 pages, then dropped by project). Excluded projects' environments
    /// are dropped before anything of theirs is read.
    ///
    /// With `--shard`, only this shard's environments are kept, here, before anything else sees
    /// them: another shard's environments are never read, counted, exposed or watched for
    /// webhooks.
    pub(super) async fn list_environments(
        &mut self,
        org: &str,
    ) -> Result<Option<Vec<Environment>>, PollError> {
        let shard = self.config.shard;
        Ok(self
            .list_watched_environments(org)
            .await?
            .map(|envs| envs.into_iter().filter(|e| shard.owns(&e.id)).collect()))
    }

    /// The environments of the watched projects, of every shard.
    async fn list_watched_environments(
        &mut self,
        org: &str,
    ) -> Result<Option<Vec<Environment>>, PollError> {
        let projects = match self.client.projects(org).await {
            Ok(p) => {
                self.optional_available(OptionalCall::Projects);
                Some(p)
            }
            Err(e) if e.budget() => return Ok(None),
            // A rejected key (401) is not a refused call: nothing else would work either.
            Err(e @ ClientError::Auth { .. }) => return Err(e.into()),
            // Project names are optional: the counts carry on, labels show ids.
            Err(e) => {
                self.optional_unavailable(OptionalCall::Projects, &e);
                None
            }
        };
        if let Some(projects) = &projects {
            debug!(projects = projects.len(), "projects listed");
            self.store
                .set_projects(projects.iter().map(|p| (p.id.as_str(), p.name.as_deref())));
            self.project_names = projects
                .iter()
                .map(|p| (p.id.clone(), p.name.clone()))
                .collect();
        }
        let filter = self.config.projects.clone();
        if filter.is_empty() {
            return self.list_org_environments(org).await;
        }
        // Without this poll's projects listing, the names last listed (if any) stand in.
        let names = self.project_names.clone();
        let watched_project =
            |id: &str| filter.matches(id, names.get(id).and_then(Option::as_deref));
        let per_project_choice = projects.as_ref().map(|projects| {
            let watched: Vec<String> = projects
                .iter()
                .filter(|p| watched_project(&p.id))
                .map(|p| p.id.clone())
                .collect();
            let pages = |n: usize| n / crate::client::PAGE_LIMIT + 1;
            let per_project: usize = watched
                .iter()
                .map(|p| pages(self.listed_per_project.get(p).copied().unwrap_or(0)))
                .sum();
            (watched, per_project)
        });
        let org_wide = self
            .listed_in_org
            .map_or(usize::MAX, |n| n / crate::client::PAGE_LIMIT + 1);
        let environments = match per_project_choice {
            Some((watched, per_project))
                if !filter.include.is_empty() && per_project < org_wide =>
            {
                let mut all = Vec::new();
                for project in &watched {
                    match self.client.project_environments(org, project).await {
                        Ok(envs) => {
                            self.listed_per_project.insert(project.clone(), envs.len());
                            all.extend(envs);
                        }
                        Err(e) if e.budget() => return Ok(None),
                        Err(e) => return Err(e.into()),
                    }
                }
                all
            }
            _ => match self.list_org_environments(org).await? {
                Some(all) => all,
                None => return Ok(None),
            },
        };
        Ok(Some(
            environments
                .into_iter()
                .filter(|e| {
                    e.project_id
                        .as_deref()
                        .map_or(filter.include.is_empty(), watched_project)
                })
                .collect(),
        ))
    }

    /// The organisation's environments, counted per project for the next choice of listing.
    pub(super) async fn list_org_environments(
        &mut self,
        org: &str,
    ) -> Result<Option<Vec<Environment>>, PollError> {
        match self.client.environments(org).await {
            Ok(envs) => {
                self.listed_in_org = Some(envs.len());
                self.listed_per_project.clear();
                for env in &envs {
                    if let Some(p) = &env.project_id {
                        *self.listed_per_project.entry(p.clone()).or_default() += 1;
                    }
                }
                Ok(Some(envs))
            }
            Err(e) if e.budget() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes in what the environment listing says: environments gone are forgotten, each
    /// listed one updates its record and schedule, and its embedded latest run is ingested.
    pub(super) fn take_listing(&mut self, environments: &[Environment], now: Timestamp) {
        let listed: HashSet<&str> = environments.iter().map(|e| e.id.as_str()).collect();
        self.store.retain_environments(&listed);
        self.schedule.retain(|id, _| listed.contains(&**id));
        self.unreadable.retain(|id| listed.contains(&**id));
        for env in environments {
            self.store.upsert_environment(
                &env.id,
                env.project_id.as_deref(),
                env.status.as_deref(),
                env.drift_status.as_deref(),
                env.is_archived,
            );
            let latest = env.latest_deployment_log.as_ref();
            let listed_latest = latest
                .map(|l| (l.id.clone(), l.status.clone()))
                .or_else(|| env.latest_deployment_log_id.clone().map(|id| (id, None)));
            let entry = self.schedule.entry(Arc::from(env.id.as_str())).or_default();
            entry.listed_latest = listed_latest;
            entry.archived = env.is_archived;
            entry.updated_at = env.updated_at;
            let latest = latest.map(|log| observation(log, &env.id));
            self.store
                .set_environment_view(&env.id, env.name.as_deref(), latest.as_ref());
            if let Some(obs) = latest {
                self.ingest(&obs, now);
            }
        }
        self.refresh_watched();
    }
}
