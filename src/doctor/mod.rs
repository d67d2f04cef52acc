//! `env0-exporter doctor`: the first command a user runs against their env0. In a bounded number
//! of read-only requests it checks what the exporter needs (the key, the organisation, the
//! listings, every query parameter the exporter sends) and tells which way this env0 goes where
//! env0's docs are silent (the date filter's timestamp, page order, the `Date` header, what moves
//! `latestDeploymentLog`, `Retry-After` on a 429).
//!
//! The bound holds by construction: the doctor's client spends a budget of
//! [`MAX_REQUESTS`] (or `--max-requests-per-minute`, when lower) with a deadline shorter than the
//! budget's window, so no request past it is ever sent, retries included. Each check asks for
//! single pages of at most [`ENVIRONMENT_PAGES`] environment pages and one sample per project for
//! at most [`SAMPLED_PROJECTS`] projects.
//!
//! [`report`] holds what is found and prints it; this file asks the questions, and
//! `parameters.rs` the ones about project access and each query parameter.

mod parameters;
pub(crate) mod report;
mod tally;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::client::query::{self, Route};
use crate::client::{self, Client, ClientConfig, Environment, Error};
use crate::clock::{self, OffsetSource, SharedClock};
use crate::config::{Config, Credentials};
use crate::filter::{DeploymentFilter, ProjectFilter};
use crate::ratelimit::SlidingWindow;

pub(crate) use report::{CheckVerdict, Report, WebhookAdvice};
use tally::Tally;

/// The most requests one run of `doctor` sends, retries included.
pub(crate) const MAX_REQUESTS: u32 = 40;

/// Pages of `GET /environments` read at most (100 environments each): past them, the counts are
/// lower bounds.
pub(crate) const ENVIRONMENT_PAGES: usize = 3;

/// Environments per page of the environments listing.
const ENVIRONMENT_PAGE_LIMIT: usize = 100;

/// Projects whose access is checked (one environment's deployments each); the others are
/// reported as not checked.
pub(crate) const SAMPLED_PROJECTS: usize = 8;

/// How long `doctor` may spend waiting (for its budget, a back-off or a `Retry-After`): shorter
/// than the budget's 60 s window, so the budget is never refilled.
const DEADLINE: Duration = Duration::from_secs(50);

/// What `doctor` needs besides the client: the settings the exporter would run with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// `--organization-id`.
    pub organization_id: Option<String>,
    /// `--projects` / `--exclude-projects`.
    pub projects: ProjectFilter,
    /// `--deployment-types`, `--statuses`, `--user-ids`.
    pub filter: DeploymentFilter,
    /// What to enter in env0's webhook settings, when a webhook secret is set.
    pub webhook: Option<WebhookAdvice>,
}

impl Settings {
    /// The settings of a validated exporter configuration.
    #[must_use]
    pub(crate) fn from_config(config: &Config) -> Self {
        let webhook = config.webhook.as_ref().map(|w| {
            let port = w
                .listen_address
                .map_or(config.serving.listen_address.port(), |a| a.port());
            WebhookAdvice::new(port, w.listen_address.is_some(), &w.secret.current())
        });
        Self {
            organization_id: config.poller.organization_id.clone(),
            projects: config.poller.projects.clone(),
            filter: config.poller.filter.clone(),
            webhook,
        }
    }
}

/// A client for `doctor`: the exporter's connection settings, one retry at most, and a budget of
/// [`MAX_REQUESTS`] that is never refilled (see the module's text).
struct Doctor {
    client: Client,
    tally: Arc<Tally>,
    clock: SharedClock,
    settings: Settings,
    report: Report,
    /// Whether a check was left undone because the budget ran out.
    budget_ran_out: std::cell::Cell<bool>,
}

/// Runs every check against the env0 of `config` with `credentials`.
///
/// # Errors
/// When the HTTP client cannot be built (a wrong setting, not an env0 answer).
pub(crate) async fn run(
    config: &Config,
    credentials: &Credentials,
    clock: SharedClock,
) -> Result<Report, Error> {
    let budget = Arc::new(SlidingWindow::new(
        config.poller.max_requests_per_minute.min(MAX_REQUESTS),
        client::RATE_WINDOW,
    ));
    let tally = Arc::new(Tally::default());
    let client = Client::new(
        ClientConfig {
            max_retries: 1,
            retry_max_delay: Duration::from_secs(5),
            ..config.connection.client_config(credentials)
        },
        budget,
        clock.clone(),
        tally.clone(),
    )?;
    let mut doctor = Doctor {
        client: client.with_deadline(Some(clock::add(clock.now(), DEADLINE))),
        tally,
        clock,
        settings: Settings::from_config(config),
        report: Report {
            max_requests: config.poller.max_requests_per_minute.min(MAX_REQUESTS),
            ..Report::new(config.connection.api_endpoint.as_str())
        },
        budget_ran_out: std::cell::Cell::new(false),
    };
    doctor.report.webhook = doctor.settings.webhook.clone();
    doctor.check().await;
    Ok(doctor.finish())
}

impl Doctor {
    /// How a check's request ended, for the report.
    fn describe(&self, e: &Error) -> String {
        if e.budget() {
            self.budget_ran_out.set(true);
            format!(
                "not checked: doctor's budget of {} requests ran out",
                self.report.max_requests
            )
        } else {
            e.to_string()
        }
    }

    async fn check(&mut self) {
        let Some(org) = self.organization().await else {
            return;
        };
        let names = self.projects(&org).await;
        let Some(environments) = self.environments(&org).await else {
            return;
        };
        self.sub_environments(&org, &environments).await;
        self.latest_types(&environments);
        let watched: Vec<&Environment> = environments
            .iter()
            .filter(|e| {
                let project = e.project_id.as_deref().unwrap_or_default();
                self.settings
                    .projects
                    .matches(project, names.get(project).and_then(Option::as_deref))
            })
            .collect();
        if !self.settings.projects.is_empty() {
            self.report.watched_environments = Some(watched.len());
            if watched.is_empty() && !environments.is_empty() {
                self.report.problems.push(
                    "--projects / --exclude-projects leave no environment to watch: check the ids and name patterns against the projects listing".to_owned(),
                );
            }
        }
        let readable = self.project_access(&watched).await;
        match &readable {
            Some((env, sample)) => {
                self.deployment_parameters(env, sample.as_ref()).await;
                if let Some(run) = sample {
                    self.single_deployment(&run.id).await;
                }
            }
            None => {
                for p in query::PARAMETERS
                    .iter()
                    .filter(|p| p.route == Route::EnvironmentDeployments)
                {
                    self.report.parameter(
                        DEPLOYMENTS_PATH,
                        p.name,
                        CheckVerdict::NotChecked,
                        "no environment's deployments could be read".to_owned(),
                    );
                }
            }
        }
        if readable.is_some() {
            let forbidden = &self.report.forbidden_projects;
            let probed: Vec<Environment> = watched
                .iter()
                .filter(|e| e.project_id.as_ref().is_none_or(|p| !forbidden.contains(p)))
                .map(|e| (*e).clone())
                .collect();
            self.behaviour(&probed).await;
        }
        let project = names
            .keys()
            .next()
            .cloned()
            .or_else(|| environments.iter().find_map(|e| e.project_id.clone()));
        self.project_parameter(&org, project).await;
    }

    /// The key and the organisation: `GET /organizations`, always (it also proves the key).
    async fn organization(&mut self) -> Option<String> {
        let orgs = match self.client.organizations().await {
            Ok(orgs) => {
                self.report.credentials = CheckVerdict::Accepted;
                orgs
            }
            // The exporter lists organisations only to choose one: with --organization-id it
            // never does, and a key that may not list them still works.
            Err(e)
                if CheckVerdict::of_error(&e) == Some(CheckVerdict::Forbidden)
                    && self.settings.organization_id.is_some() =>
            {
                self.report.credentials = CheckVerdict::Accepted;
                self.report.optional_failures.push(format!(
                    "the organisations listing: {}; the exporter does not need it with --organization-id",
                    self.describe(&e)
                ));
                let id = self.settings.organization_id.clone();
                self.report.organization_id.clone_from(&id);
                return id;
            }
            Err(e) => {
                let problem = match &e {
                    Error::Auth { .. } => {
                        self.report.credentials = CheckVerdict::Refused;
                        format!(
                            "{}: check the key id and secret (ENV0_API_KEY, ENV0_API_SECRET): the key may be revoked, or this machine's IP outside the organisation's allowlist",
                            self.describe(&e)
                        )
                    }
                    _ => format!(
                        "{}: check --api-endpoint and that env0 is reachable from here",
                        self.describe(&e)
                    ),
                };
                self.report.problems.push(problem);
                return None;
            }
        };
        let chosen = match (&self.settings.organization_id, orgs.as_slice()) {
            (Some(id), _) if orgs.iter().any(|o| &o.id == id) => Some(id.clone()),
            (Some(id), _) => {
                self.report.problems.push(format!(
                    "the key does not see organisation {id} (--organization-id); it sees: {}",
                    orgs.iter()
                        .map(|o| o.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                None
            }
            (None, [only]) => Some(only.id.clone()),
            (None, []) => {
                self.report
                    .problems
                    .push("the key sees no organisation".to_owned());
                None
            }
            (None, several) => {
                self.report.problems.push(format!(
                    "the key sees {} organisations: choose one with --organization-id: {}",
                    several.len(),
                    several
                        .iter()
                        .map(|o| format!("{} ({})", o.id, o.name.as_deref().unwrap_or("unnamed")))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                None
            }
        };
        if let Some(id) = &chosen {
            self.report.organization_id = Some(id.clone());
            self.report.organization_name = orgs
                .iter()
                .find(|o| &o.id == id)
                .and_then(|o| o.name.clone());
        }
        chosen
    }

    /// `GET /projects`: optional (labels fall back to project ids without it). Returns each
    /// project's name by id.
    async fn projects(&mut self, org: &str) -> BTreeMap<String, Option<String>> {
        match self.client.projects(org).await {
            Ok(projects) => {
                self.report.projects = Some(projects.len());
                self.report.parameter(
                    PROJECTS_PATH,
                    "organizationId",
                    CheckVerdict::Accepted,
                    String::new(),
                );
                let names: BTreeMap<String, Option<String>> =
                    projects.into_iter().map(|p| (p.id, p.name)).collect();
                if !self.settings.projects.is_empty() {
                    self.report.watched_projects = Some(
                        names
                            .iter()
                            .filter(|(id, name)| {
                                self.settings.projects.matches(id, name.as_deref())
                            })
                            .count(),
                    );
                }
                names
            }
            Err(e) => {
                self.report.optional_failures.push(format!(
                    "the projects listing: {}; project labels fall back to project ids{}",
                    self.describe(&e),
                    if self
                        .settings
                        .projects
                        .include
                        .iter()
                        .any(|p| p.contains(['*', '?']))
                    {
                        ", and --projects name patterns match only names listed earlier"
                    } else {
                        ""
                    }
                ));
                if let Some(verdict) = CheckVerdict::of_error(&e) {
                    self.report.parameter(
                        PROJECTS_PATH,
                        "organizationId",
                        verdict,
                        self.describe(&e),
                    );
                }
                BTreeMap::new()
            }
        }
    }

    /// The organisation's environments, at most [`ENVIRONMENT_PAGES`] pages.
    async fn environments(&mut self, org: &str) -> Option<Vec<Environment>> {
        let mut all: Vec<Environment> = Vec::new();
        let mut complete = false;
        for page in 0..ENVIRONMENT_PAGES {
            let offset = page * ENVIRONMENT_PAGE_LIMIT;
            match self
                .client
                .environments_page(org, None, false, ENVIRONMENT_PAGE_LIMIT, offset)
                .await
            {
                Ok(p) => {
                    let short = p.len < ENVIRONMENT_PAGE_LIMIT;
                    for env in p.records {
                        if !all.iter().any(|e| e.id == env.id) {
                            all.push(env);
                        }
                    }
                    if short {
                        complete = true;
                        break;
                    }
                }
                Err(e) => {
                    for name in ["organizationId", "limit", "offset"] {
                        let verdict =
                            CheckVerdict::of_error(&e).unwrap_or(CheckVerdict::NotChecked);
                        self.report
                            .parameter(ENVIRONMENTS_PATH, name, verdict, self.describe(&e));
                    }
                    self.report.problems.push(format!(
                        "the environments listing fails: {}; the exporter lists environments every poll and counts nothing without them",
                        self.describe(&e)
                    ));
                    return None;
                }
            }
        }
        for name in ["organizationId", "limit", "offset"] {
            self.report.parameter(
                ENVIRONMENTS_PATH,
                name,
                CheckVerdict::Accepted,
                String::new(),
            );
        }
        self.report.environments = Some(all.len());
        self.report.environments_complete = complete;
        Some(all)
    }

    /// `includeSubEnvironments`, which no env0 client sends and the exporter probes once, as
    /// the exporter does: the page with it that starts where the plain listing ended (empty
    /// unless it lists more, wherever env0 puts them), or its first page when the plain listing
    /// was not read to its end.
    async fn sub_environments(&mut self, org: &str, listed: &[Environment]) {
        let name = "includeSubEnvironments";
        let offset = if self.report.environments_complete {
            listed.len()
        } else {
            0
        };
        match self
            .client
            .environments_page(org, None, true, ENVIRONMENT_PAGE_LIMIT, offset)
            .await
        {
            Ok(page) => {
                let more = page
                    .records
                    .iter()
                    .filter(|e| !listed.iter().any(|l| l.id == e.id))
                    .count();
                self.report.sub_environments = match (more, self.report.environments_complete) {
                    (0, true) => Some("listed_without_parameter"),
                    // A first page with nothing new says nothing about the pages not read.
                    (0, false) => None,
                    _ => Some("listed_only_with_parameter"),
                };
                self.report.parameter(
                    ENVIRONMENTS_PATH,
                    name,
                    CheckVerdict::Accepted,
                    String::new(),
                );
                if more > 0 {
                    self.report.notes.push(format!(
                        "{more} environments (workflow sub-environments) are listed only with includeSubEnvironments: the exporter sends it from its first poll on"
                    ));
                }
            }
            Err(e) => {
                let verdict = CheckVerdict::of_error(&e).unwrap_or(CheckVerdict::NotChecked);
                if verdict == CheckVerdict::Refused {
                    self.report.sub_environments = Some("parameter_refused");
                    self.report.notes.push(format!(
                        "env0 refuses includeSubEnvironments ({}): the exporter drops it after one try; workflow sub-environments count if env0 lists them without it",
                        self.describe(&e)
                    ));
                }
                self.report
                    .parameter(ENVIRONMENTS_PATH, name, verdict, self.describe(&e));
            }
        }
    }

    /// The types of the runs the environments' `latestDeploymentLog` show.
    fn latest_types(&mut self, environments: &[Environment]) {
        let types: BTreeSet<String> = environments
            .iter()
            .filter_map(|e| e.latest_deployment_log.as_ref())
            .filter_map(|l| l.deployment_type.clone())
            .collect();
        self.report.latest_moves_for = (!types.is_empty()).then(|| types.into_iter().collect());
    }

    /// Which timestamp the date filter uses and the page order: the exporter's own probe
    /// ([`crate::probe`]), on the environments of the projects the key may read.
    async fn behaviour(&mut self, environments: &[Environment]) {
        match crate::probe::deployment_listing(&self.client, crate::probe::candidates(environments))
            .await
        {
            Ok(learnt) => {
                learnt
                    .date_filter_field
                    .as_str()
                    .clone_into(&mut self.report.date_filter_field);
                learnt
                    .page_order
                    .as_str()
                    .clone_into(&mut self.report.page_order);
                if learnt.date_filter_field == crate::probe::DateFilterField::Unknown {
                    self.report.notes.push(
                        "the date filter's timestamp could not be told (no run that has started was found): the exporter learns it later from the data".to_owned(),
                    );
                }
            }
            Err(e) => self.report.notes.push(format!(
                "the date filter and page order could not be learnt: {}",
                self.describe(&e)
            )),
        }
    }

    /// The report, with what the client and the counters saw and the problems the parameters
    /// make.
    fn finish(mut self) -> Report {
        let (requests, rate_limited, retry_after) = self.tally.read();
        self.report.requests = requests;
        self.report.rate_limited = rate_limited;
        self.report.retry_after_seconds = retry_after.map(|d| d.as_secs_f64());
        match self.client.clock_estimate() {
            (Some(offset), OffsetSource::DateHeader) => {
                self.report.date_header = true;
                self.report.clock_offset_seconds = Some(offset.as_secs());
                self.report.clock_offset_source = Some(OffsetSource::DateHeader.as_str());
            }
            // From the records, a lower bound: it tells only how far ahead env0 is at least.
            (Some(offset), OffsetSource::Records) if offset.as_secs() > 0 => {
                self.report.clock_offset_seconds = Some(offset.as_secs());
                self.report.clock_offset_source = Some(OffsetSource::Records.as_str());
            }
            _ => {}
        }
        if self.budget_ran_out.get() {
            self.report.notes.push(format!(
                "doctor's budget of {} requests ran out before every check was done (see \"not checked\" above): raise --max-requests-per-minute to 40 or more",
                self.report.max_requests
            ));
        }
        for p in &query::PARAMETERS {
            self.report.parameter(
                route_path(p.route),
                p.name,
                CheckVerdict::NotChecked,
                "not asked".to_owned(),
            );
        }
        let filter = &self.settings.filter;
        let needed = |name: &str| match name {
            "projectId" => !self.settings.projects.include.is_empty(),
            "deploymentTypes" => !filter.deployment_types.is_empty(),
            "userIds" => !filter.user_ids.is_empty(),
            _ => true,
        };
        let refused: Vec<(String, String, String)> = self
            .report
            .parameters
            .iter()
            .filter(|p| p.verdict == CheckVerdict::Refused && !p.probed)
            .map(|p| (p.path.clone(), p.name.clone(), p.detail.clone()))
            .collect();
        for (path, name, detail) in refused {
            let line = format!("env0 refuses the query parameter {name} on {path}: {detail}");
            if needed(&name) {
                self.report.problems.push(format!(
                    "{line}; the exporter sends it{}: please report it with this output",
                    match name.as_str() {
                        "projectId" => " with --projects",
                        "deploymentTypes" => " with --deployment-types",
                        "userIds" => " with --user-ids",
                        _ => "",
                    }
                ));
            } else {
                self.report.notes.push(line);
            }
        }
        self.report.refused_parameters = self
            .report
            .parameters
            .iter()
            .filter(|p| p.verdict == CheckVerdict::Refused && !p.probed)
            .map(|p| p.name.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.report.forbidden_projects.sort();
        self.report
    }
}

/// The path the report names a route's parameters under.
#[must_use]
pub(crate) fn route_path(route: Route) -> &'static str {
    match route {
        Route::Organizations => "/organizations",
        Route::Projects => PROJECTS_PATH,
        Route::Environments => ENVIRONMENTS_PATH,
        Route::EnvironmentDeployments => DEPLOYMENTS_PATH,
        Route::Deployment => "/environments/deployments/{id}",
    }
}

const PROJECTS_PATH: &str = "/projects";
const ENVIRONMENTS_PATH: &str = "/environments";
const DEPLOYMENTS_PATH: &str = "/environments/{id}/deployments";
