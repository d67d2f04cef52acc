//! What env0 lists each poll: the organisation, its projects and the watched environments,
//! and what the poller takes from the environment listing (records, schedule, latest runs).

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use tracing::{debug, info};

use super::optional::{self, OptionalCall};
use super::{PollError, Poller};
use crate::client::{Client, Environment, Error as ClientError};
use crate::observation::observation;

/// The organisation watched and the names of its projects, as last listed.
#[derive(Debug)]
pub(super) struct Organization {
    /// `--organization-id`, or the only organisation the key sees once listed.
    id: Option<String>,
    /// Project names (by id) as last listed: they stand in for `--projects` by name while the
    /// projects listing is unavailable.
    project_names: HashMap<String, Option<String>>,
}

impl Organization {
    /// The organisation `id` when configured, else chosen at the first poll.
    pub(super) fn new(id: Option<String>) -> Self {
        Self {
            id,
            project_names: HashMap::new(),
        }
    }

    /// The organisation watched, once known.
    pub(super) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The organisation among those `listed` (id, name) that the key sees: the only one.
    fn choose(listed: &[(String, Option<String>)]) -> Result<String, PollError> {
        match listed {
            [(id, _)] => Ok(id.clone()),
            [] => Err(PollError::Organization(
                "the API key sees no organisation".into(),
            )),
            several => {
                let choices: Vec<String> = several
                    .iter()
                    .map(|(id, name)| format!("{id} ({})", name.as_deref().unwrap_or("unnamed")))
                    .collect();
                Err(PollError::Organization(format!(
                    "the API key sees {} organisations; choose one with --organization-id: {}",
                    several.len(),
                    choices.join(", ")
                )))
            }
        }
    }
}

impl Poller {
    pub(super) async fn organization(&mut self, client: &Client) -> Result<String, PollError> {
        if let Some(id) = self.organization.id() {
            return Ok(id.to_owned());
        }
        let orgs = client.organizations().await?;
        let listed: Vec<(String, Option<String>)> =
            orgs.into_iter().map(|o| (o.id, o.name)).collect();
        let id = Organization::choose(&listed)?;
        let name = listed.first().and_then(|(_, name)| name.as_deref());
        info!(organization_id = %id, name = name.unwrap_or(""), "watching the only organisation the key sees");
        self.organization.id = Some(id.clone());
        Ok(id)
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
        client: &Client,
        org: &str,
    ) -> Result<Option<Vec<Environment>>, PollError> {
        let shard = self.config.shard;
        Ok(self
            .list_watched_environments(client, org)
            .await?
            .map(|envs| envs.into_iter().filter(|e| shard.owns(&e.id)).collect()))
    }

    /// The environments of the watched projects, of every shard.
    async fn list_watched_environments(
        &mut self,
        client: &Client,
        org: &str,
    ) -> Result<Option<Vec<Environment>>, PollError> {
        let projects = match client.projects(org).await {
            Ok(p) => {
                optional::note_available(&mut self.known.health, OptionalCall::Projects);
                Some(p)
            }
            Err(e) if e.budget() => return Ok(None),
            // A rejected key (401) is not a refused call: nothing else would work either.
            Err(e @ ClientError::Auth { .. }) => return Err(e.into()),
            // Project names are optional: the counts carry on, labels show ids.
            Err(e) => {
                optional::note_unavailable(&mut self.known.health, OptionalCall::Projects, &e);
                None
            }
        };
        if let Some(projects) = &projects {
            debug!(projects = projects.len(), "projects listed");
            self.known
                .store
                .set_projects(projects.iter().map(|p| (p.id.as_str(), p.name.as_deref())));
            self.organization.project_names = projects
                .iter()
                .map(|p| (p.id.clone(), p.name.clone()))
                .collect();
        }
        let filter = self.config.projects.clone();
        if filter.is_empty() {
            return self.list_org_environments(client, org).await;
        }
        // Without this poll's projects listing, the names last listed (if any) stand in.
        let names = self.organization.project_names.clone();
        let watched_project =
            |id: &str| filter.matches(id, names.get(id).and_then(Option::as_deref));
        let watched: Option<Vec<String>> = projects.as_ref().map(|projects| {
            projects
                .iter()
                .filter(|p| watched_project(&p.id))
                .map(|p| p.id.clone())
                .collect()
        });
        let environments = match watched {
            Some(watched)
                if !filter.include.is_empty() && self.schedule.per_project_is_cheaper(&watched) =>
            {
                let mut all = Vec::new();
                for project in &watched {
                    match client.project_environments(org, project).await {
                        Ok(envs) => {
                            self.schedule.note_project_listing(project, envs.len());
                            all.extend(envs);
                        }
                        Err(e) if e.budget() => return Ok(None),
                        Err(e) => return Err(e.into()),
                    }
                }
                all
            }
            _ => match self.list_org_environments(client, org).await? {
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
    async fn list_org_environments(
        &mut self,
        client: &Client,
        org: &str,
    ) -> Result<Option<Vec<Environment>>, PollError> {
        match client.environments(org).await {
            Ok(envs) => {
                self.schedule.note_org_listing(&envs);
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
        self.known.store.retain_environments(&listed);
        self.schedule.retain_listed(&listed);
        self.schedule.note_listing(true);
        for env in environments {
            self.known.store.upsert_environment(
                &env.id,
                env.project_id.as_deref(),
                env.status.as_deref(),
                env.drift_status.as_deref(),
                env.is_archived,
            );
            self.schedule.take_listed(env);
            let latest = env
                .latest_deployment_log
                .as_ref()
                .map(|log| observation(log, &env.id));
            self.known
                .store
                .set_environment_view(&env.id, env.name.as_deref(), latest.as_ref());
            if let Some(obs) = latest {
                self.ingest(&obs, now);
            }
        }
        self.webhooks.refresh_watched(&self.schedule);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(id: &str, name: Option<&str>) -> (String, Option<String>) {
        (id.to_owned(), name.map(str::to_owned))
    }

    #[test]
    fn the_only_organisation_the_key_sees_is_chosen_and_none_or_several_are_refused() {
        assert_eq!(
            Organization::choose(&[org("o1", Some("Acme"))]).ok(),
            Some("o1".to_owned())
        );
        let none = Organization::choose(&[]).map_err(|e| e.to_string());
        assert_eq!(none, Err("the API key sees no organisation".to_owned()));
        let several = Organization::choose(&[org("o1", Some("Acme")), org("o2", None)])
            .map_err(|e| e.to_string());
        assert_eq!(
            several,
            Err("the API key sees 2 organisations; choose one with --organization-id: o1 (Acme), o2 (unnamed)".to_owned())
        );
    }
}
