//! What env0 lists each poll: the organisation, its projects and the watched environments,
//! and what the poller takes from the environment listing (records, schedule, latest runs).

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use tracing::{debug, info};

use super::optional::{self, OptionalCall};
use super::schedule::Schedule;
use super::{PollError, Poller};
use crate::client::{Client, Environment, Error as ClientError, ListingStep};
use crate::observation::observation;
use crate::probe;

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

    /// Lists the projects and the watched environments, taking in each page of the
    /// environment listing as it arrives (see [`take_environment`](Self::take_environment)),
    /// so that the poll never holds the whole decoded listing; `None` when the request budget
    /// ran out first (the poll then ends early without error, and the next one starts over).
    /// What the listing says as a whole (environments gone are forgotten) is taken only once
    /// every page has been read: a listing that fails or runs out of budget part way has
    /// updated the environments it listed and forgotten none.
    ///
    /// With `--projects`, the environments come from whichever costs fewer requests as last
    /// counted: one listing per watched project (`projectId`, Σ ⌊Eₚ/100⌋+1 pages) or the
    /// organisation's (⌊E/100⌋+1 pages, then dropped by project). Excluded projects'
    /// environments are dropped before anything of theirs is read.
    ///
    /// With `--shard`, only this shard's environments are kept, here, before anything else sees
    /// them: another shard's environments are never read, counted, exposed or watched for
    /// webhooks.
    pub(super) async fn list_environments(
        &mut self,
        client: &Client,
        org: &str,
    ) -> Result<Option<Listing>, PollError> {
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
        // Without this poll's projects listing, the names last listed (if any) stand in.
        let names = self.organization.project_names.clone();
        let watched_project =
            |id: &str| filter.matches(id, names.get(id).and_then(Option::as_deref));
        let shard = self.config.shard;
        let keep = |e: &Environment| {
            shard.owns(&e.id)
                && (filter.is_empty()
                    || e.project_id
                        .as_deref()
                        .map_or(filter.include.is_empty(), watched_project))
        };
        let watched: Option<Vec<String>> = projects.as_ref().map(|projects| {
            projects
                .iter()
                .filter(|p| watched_project(&p.id))
                .map(|p| p.id.clone())
                .collect()
        });
        let wants_probe = self
            .date_filter
            .wants_probe(self.known.health.date_filter_field);
        let mut listing = Listing::new(wants_probe);
        match watched {
            Some(watched)
                if !filter.include.is_empty() && self.schedule.per_project_is_cheaper(&watched) =>
            {
                for project in &watched {
                    let taken = self
                        .take_listing(client, org, Some(project), &keep, &mut listing)
                        .await;
                    match taken {
                        Ok((n, _)) => self.schedule.note_project_listing(project, n),
                        Err(e) if e.budget() => return Ok(None),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            _ => match self
                .take_listing(client, org, None, &keep, &mut listing)
                .await
            {
                Ok((n, per_project)) => self.schedule.note_org_counts(n, per_project),
                Err(e) if e.budget() => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        }
        self.forget_unlisted(&listing);
        Ok(Some(listing))
    }

    /// Reads one environment listing (the organisation's, or `project`'s) page by page and
    /// takes in each environment that `keep` keeps; returns how many the listing held and
    /// how many of them each project has.
    async fn take_listing(
        &mut self,
        client: &Client,
        org: &str,
        project: Option<&str>,
        keep: &impl Fn(&Environment) -> bool,
        listing: &mut Listing,
    ) -> Result<(usize, HashMap<String, usize>), ClientError> {
        let mut per_project = HashMap::new();
        let n = client
            .each_environment(org, project, |step| match step {
                ListingStep::Again => per_project.clear(),
                ListingStep::Page(environments) => {
                    Schedule::count_projects(&mut per_project, &environments);
                    // After the page's answer: its `Date` header told env0's time.
                    let now = self.env0_now();
                    for env in environments.into_iter().filter(|e| keep(e)) {
                        self.take_environment(&env, now);
                        listing.add(env);
                    }
                }
            })
            .await?;
        Ok((n, per_project))
    }

    /// Takes in what the listing says of one environment: it updates its record and
    /// schedule, and its embedded latest run is ingested.
    fn take_environment(&mut self, env: &Environment, now: Timestamp) {
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

    /// Once the whole listing is read: environments it did not list are forgotten.
    fn forget_unlisted(&mut self, listing: &Listing) {
        let listed: HashSet<&str> = listing.listed.iter().map(String::as_str).collect();
        self.known.store.retain_environments(&listed);
        self.schedule.retain_listed(&listed);
        self.schedule.note_listing(true);
        self.webhooks.refresh_watched(&self.schedule);
    }
}

/// What the poll keeps of an environment listing taken in page by page: the ids of the
/// environments listed (this shard's, of the watched projects) and, while env0's date filter
/// is still to be probed, the probe's candidates.
#[derive(Debug, Default)]
pub(super) struct Listing {
    /// The environments listed.
    listed: HashSet<String>,
    /// [`probe::candidate_rank`] and id of each candidate, in listing order; `None` when no
    /// probe is wanted.
    candidates: Option<Vec<(u8, String)>>,
}

impl Listing {
    fn new(wants_probe: bool) -> Self {
        Self {
            listed: HashSet::new(),
            candidates: wants_probe.then(Vec::new),
        }
    }

    /// Notes `env` as listed (an environment listed again by a second reading counts once).
    fn add(&mut self, env: Environment) {
        if let Some(candidates) = &mut self.candidates
            && !self.listed.contains(&env.id)
            && let Some(rank) = probe::candidate_rank(&env)
        {
            candidates.push((rank, env.id.clone()));
        }
        self.listed.insert(env.id);
    }

    /// How many environments were listed.
    pub(super) fn len(&self) -> usize {
        self.listed.len()
    }

    /// The environments worth probing, best first (see [`probe::candidates`]).
    pub(super) fn candidates(&self) -> Vec<&str> {
        probe::ranked(
            self.candidates
                .iter()
                .flatten()
                .map(|(rank, id)| (*rank, id.as_str())),
        )
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
