//! The env0 API client: the only code that speaks HTTP to env0.
//!
//! One [`Client`] holds one `reqwest` client (rustls, timeouts, `User-Agent`, Basic auth) and
//! spends one shared [`SlidingWindow`] request budget. Every HTTP attempt, retries included,
//! takes a slot from the budget first; a failed attempt becomes a typed [`Error`] ([`error`]),
//! and 429, 5xx, timeouts and connection errors are retried with back-off or after `Retry-After`
//! as the policy of [`retry`] decides; listings are paged and deduplicated ([`paging`]); env0's
//! JSON lands in the lenient types of [`model`]. Its configuration is in [`config`], what it
//! reports of each attempt in [`observe`], what it learns of env0's clock in [`clock_offset`];
//! this file holds the client and its endpoints, [`exchange`] the single HTTP exchange. All waiting runs on the injected
//! [`Clock`](crate::clock::Clock), so tests
//! with a [`ManualClock`](crate::clock::ManualClock) control every wait.

mod clock_offset;
mod config;
mod error;
mod exchange;
mod model;
mod observe;
mod pages;
mod paging;
pub mod query;
mod records;
mod retry;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use reqwest::header::{self, HeaderMap, HeaderValue};
use url::Url;

pub use clock_offset::clock_offset_from_date;
pub use config::{
    ClientConfig, DEFAULT_MAX_REQUESTS_PER_MINUTE, DEFAULT_MAX_RETRIES, DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_RETRY_BASE_DELAY, DEFAULT_RETRY_MAX_DELAY, RATE_WINDOW, USER_AGENT,
};
pub use error::{BODY_SNIPPET_CHARS, Error, Reason, Result};
pub use model::{DeploymentLog, Environment, Organization, PlanSummary, Project};
pub use observe::{Endpoint, NoopObserver, RequestObserver, RequestOutcome};
pub use paging::{MAX_PAGES, PAGE_LIMIT};
pub use query::{DeploymentQuery, format_query_timestamp};
pub use records::{MAX_BODY_BYTES, Page, SkipReason, decode_records};
pub use retry::MAX_RETRY_AFTER;

use crate::clock::SharedClock;
use crate::ratelimit::SlidingWindow;
use crate::secret::SecretSource;
use config::CONNECT_TIMEOUT;
use query::{Route, set_query, with_filters};
use retry::{Backoff, RetryPolicy};

/// The env0 API client. Cheap to clone: clones share the HTTP pool, the budget and what was
/// learnt of env0's clock; each carries its own deadline ([`with_deadline`](Self::with_deadline)).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Requests that would have to wait past it fail at once (see
    /// [`with_deadline`](Self::with_deadline)); a value of this handle, never shared.
    deadline: Option<Timestamp>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api_key: String,
    api_secret: SecretSource,
    clock: SharedClock,
    observer: Arc<dyn RequestObserver>,
    limiter: Arc<SlidingWindow>,
    retry: RetryPolicy,
    /// env0's clock minus ours, as its last `Date` header told.
    clock_offset: Mutex<Option<jiff::SignedDuration>>,
    /// The largest lower bound on env0's clock minus ours that records have shown: the newest
    /// timestamp of a page minus our time when the page arrived.
    records_offset: Mutex<Option<jiff::SignedDuration>>,
    /// Whether environment listings send `includeSubEnvironments=true` (see
    /// [`Client::environments`]).
    sub_environments: Mutex<SubEnvironments>,
    /// How many environments the organisation's last listing held: the next one is collected
    /// into a list of that size (and a page more) from the start.
    listed_environments: AtomicUsize,
}

/// What [`Client::each_environment`] hands its caller as an environment listing is read.
#[derive(Debug)]
pub enum ListingStep {
    /// The next page's environments not seen on an earlier page of this reading, in env0's
    /// order (empty when the page held none).
    Page(Vec<Environment>),
    /// The listing is read again from the start (with `includeSubEnvironments`): what this
    /// reading lists supersedes the earlier pages.
    Again,
}

/// What the once-per-process probe of `includeSubEnvironments` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubEnvironments {
    /// Not probed yet: listings go without it, the next listing probes.
    Unknown,
    /// The probe listed environments the plain listing did not: sent from then on.
    Sent,
    /// The probe listed nothing more: never sent again.
    NotNeeded,
    /// env0 refused it (400): never sent again.
    Refused,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base.as_str())
            .field("api_key", &self.inner.api_key)
            .field("limiter", &self.inner.limiter)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the client; no request is made. Every attempt takes a slot from `budget` (shared
    /// with whoever shows what is left of it) and is reported to `observer`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a base URL that is not http(s), an empty key, a zero
    /// timeout, or an HTTP stack that cannot be built.
    pub fn new(
        config: ClientConfig,
        budget: Arc<SlidingWindow>,
        clock: SharedClock,
        observer: Arc<dyn RequestObserver>,
    ) -> Result<Self> {
        let invalid = |m: &str| Error::InvalidConfig(m.to_owned());
        let mut base = config.base_url;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("base url must be an http or https url"));
        }
        base.set_query(None);
        base.set_fragment(None);
        if config.api_key.is_empty() {
            return Err(invalid("api key id is empty"));
        }
        if config.request_timeout.is_zero() {
            return Err(invalid("request timeout must be positive"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(USER_AGENT)
            .default_headers(headers)
            .timeout(config.request_timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(config.request_timeout))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build the http client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                api_key: config.api_key,
                api_secret: config.api_secret,
                clock,
                observer,
                limiter: budget,
                retry: RetryPolicy {
                    max_retries: config.max_retries,
                    backoff: Backoff {
                        base: config.retry_base_delay,
                        max: config.retry_max_delay,
                    },
                },
                clock_offset: Mutex::new(None),
                records_offset: Mutex::new(None),
                sub_environments: Mutex::new(SubEnvironments::Unknown),
                listed_environments: AtomicUsize::new(0),
            }),
            deadline: None,
        })
    }

    /// Requests left in the current 60-second window.
    #[must_use]
    pub fn budget_remaining(&self) -> u32 {
        self.inner.limiter.remaining(self.inner.clock.now())
    }

    /// This client with `deadline` (`None`: none): through the handle returned, a request that
    /// would have to wait past it (for the budget, a back-off or a `Retry-After`) fails at once
    /// with [`Error::BudgetExhausted`] (or the error it would have retried). A cheap value
    /// sharing everything else with `self`; `self` and its other clones keep their own deadline.
    #[must_use]
    pub fn with_deadline(&self, deadline: Option<Timestamp>) -> Self {
        Self {
            inner: self.inner.clone(),
            deadline,
        }
    }

    /// Requests this client and its clones have sent to env0 since start (every attempt,
    /// retries included: each took a slot of the budget).
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.inner.limiter.taken()
    }

    fn deadline(&self) -> Option<Timestamp> {
        self.deadline
    }

    /// The organizations the key sees.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn organizations(&self) -> Result<Vec<Organization>> {
        let mut url = self.url(&["organizations"]);
        set_query(&mut url, Route::Organizations, &[]);
        Ok(self.get_page(Endpoint::Organizations, url).await?.records)
    }

    /// The projects of an organization (env0 does not page this listing).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn projects(&self, organization_id: &str) -> Result<Vec<Project>> {
        let mut url = self.url(&["projects"]);
        set_query(
            &mut url,
            Route::Projects,
            &[("organizationId", organization_id)],
        );
        Ok(self.get_page(Endpoint::Projects, url).await?.records)
    }

    /// Every environment of an organization, all pages, duplicates dropped.
    ///
    /// # Errors
    /// See [`Error`]; the first failing page fails the listing.
    pub async fn environments(&self, organization_id: &str) -> Result<Vec<Environment>> {
        self.environment_list(organization_id, None).await
    }

    /// Every environment of one project (env0's `projectId` filter), all pages.
    ///
    /// # Errors
    /// See [`Error`]; the first failing page fails the listing.
    pub async fn project_environments(
        &self,
        organization_id: &str,
        project_id: &str,
    ) -> Result<Vec<Environment>> {
        self.environment_list(organization_id, Some(project_id))
            .await
    }

    /// The listing of [`environments`](Self::environments) (of one project's with
    /// `project_id`), handed to `on_step` page by page as each page arrives, so that the whole
    /// listing is never held: each page's environments not seen on an earlier page, in env0's
    /// order. When the listing is read again with `includeSubEnvironments` (once per process,
    /// see below), [`ListingStep::Again`] comes first and the pages of the new reading follow.
    /// Returns how many environments the (last) reading listed.
    ///
    /// # Errors
    /// See [`Error`]; the first failing page fails the listing, after the pages before it were
    /// handed over.
    pub async fn each_environment(
        &self,
        organization_id: &str,
        project_id: Option<&str>,
        on_step: impl FnMut(ListingStep),
    ) -> Result<usize> {
        self.environment_listing(organization_id, project_id, on_step)
            .await
    }

    /// A whole listing, collected.
    async fn environment_list(
        &self,
        organization_id: &str,
        project_id: Option<&str>,
    ) -> Result<Vec<Environment>> {
        let mut listed = Vec::with_capacity(self.listing_capacity(project_id));
        self.environment_listing(organization_id, project_id, |step| match step {
            ListingStep::Page(page) => listed.extend(page),
            ListingStep::Again => listed.clear(),
        })
        .await?;
        Ok(listed)
    }

    /// What the probe of `includeSubEnvironments` found so far.
    #[must_use]
    pub fn sub_environments(&self) -> SubEnvironments {
        *self
            .inner
            .sub_environments
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn set_sub_environments(&self, found: SubEnvironments) {
        *self
            .inner
            .sub_environments
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = found;
    }

    /// A listing with only what env0's clients send, and, once per process (until one probe
    /// gets an answer), one more request: the page with `includeSubEnvironments=true` that
    /// starts where the plain listing ended (its offset is the plain listing's length, so it
    /// is empty unless the parameter lists more, wherever env0 puts them; with no
    /// environments, the first page). Workflow sub-environments' runs count too, and env0
    /// documents neither the parameter nor whether they are listed without it. A 400 drops
    /// the parameter for good; a probe that lists environments the plain listing did not
    /// makes every later listing send it (and this one is read again with it); otherwise it is
    /// never sent again.
    async fn environment_listing(
        &self,
        organization_id: &str,
        project_id: Option<&str>,
        mut on_step: impl FnMut(ListingStep),
    ) -> Result<usize> {
        let found = self.sub_environments();
        let with_subs = found == SubEnvironments::Sent;
        let known = self
            .environment_pages(organization_id, project_id, with_subs, &mut on_step)
            .await?;
        if found != SubEnvironments::Unknown {
            return Ok(known.len());
        }
        let url = self.environments_url(organization_id, project_id, true, PAGE_LIMIT, known.len());
        let probe: Result<Page<Environment>> = self.get_page(Endpoint::Environments, url).await;
        match probe {
            Ok(page) => {
                let more = page
                    .records
                    .iter()
                    .filter(|e| !known.contains(e.id.as_str()))
                    .count();
                if more == 0 {
                    tracing::info!(
                        "includeSubEnvironments lists nothing more on this env0: not sent"
                    );
                    self.set_sub_environments(SubEnvironments::NotNeeded);
                    return Ok(known.len());
                }
                tracing::info!(
                    more,
                    "includeSubEnvironments lists environments the plain listing does not: sent from now on"
                );
                self.set_sub_environments(SubEnvironments::Sent);
                drop((page, known));
                on_step(ListingStep::Again);
                let listed = self
                    .environment_pages(organization_id, project_id, true, &mut on_step)
                    .await?;
                Ok(listed.len())
            }
            Err(Error::BadRequest {
                status: 400,
                message,
                ..
            }) => {
                tracing::info!(
                    message,
                    "env0 refused includeSubEnvironments (400): not sent again"
                );
                self.set_sub_environments(SubEnvironments::Refused);
                Ok(known.len())
            }
            Err(e) => {
                // Not an answer about the parameter (budget, 5xx, a timeout): probe next time.
                tracing::debug!(error = %e, "the probe of includeSubEnvironments got no answer");
                Ok(known.len())
            }
        }
    }

    /// Room for a listing: the organisation's as large as it last was, a page more; a
    /// project's is not sized (only the organisation's is counted).
    fn listing_capacity(&self, project_id: Option<&str>) -> usize {
        match project_id {
            None => self.inner.listed_environments.load(Ordering::Relaxed) + PAGE_LIMIT,
            Some(_) => 0,
        }
    }

    /// Every page of an environment listing, handed to `on_step`; the ids listed.
    async fn environment_pages(
        &self,
        organization_id: &str,
        project_id: Option<&str>,
        with_subs: bool,
        on_step: &mut impl FnMut(ListingStep),
    ) -> Result<std::collections::HashSet<String>> {
        let path = self.url(&["environments"]).path().to_owned();
        let listed = paging::visit(
            &path,
            PAGE_LIMIT,
            MAX_PAGES,
            self.listing_capacity(project_id),
            |_: &[Environment]| false,
            |offset| {
                let url = self.environments_url(
                    organization_id,
                    project_id,
                    with_subs,
                    PAGE_LIMIT,
                    offset,
                );
                self.get_page(Endpoint::Environments, url)
            },
            |page| on_step(ListingStep::Page(page)),
        )
        .await?;
        if project_id.is_none() {
            self.inner
                .listed_environments
                .store(listed.len(), Ordering::Relaxed);
        }
        Ok(listed)
    }

    /// One page (`limit` items from `offset`) of an environment listing.
    fn environments_url(
        &self,
        organization_id: &str,
        project_id: Option<&str>,
        with_subs: bool,
        limit: usize,
        offset: usize,
    ) -> Url {
        let mut url = self.url(&["environments"]);
        let (limit, offset) = (limit.to_string(), offset.to_string());
        let mut pairs = vec![("organizationId", organization_id)];
        if let Some(project) = project_id {
            pairs.push(("projectId", project));
        }
        if with_subs {
            pairs.push(("includeSubEnvironments", "true"));
        }
        pairs.extend([("limit", limit.as_str()), ("offset", offset.as_str())]);
        set_query(&mut url, Route::Environments, &pairs);
        url
    }

    /// Every deployment of an environment matching `query`, all pages, duplicates dropped.
    ///
    /// # Errors
    /// See [`Error`]; the first failing page fails the listing.
    pub async fn deployments(
        &self,
        environment_id: &str,
        query: &DeploymentQuery,
    ) -> Result<Vec<DeploymentLog>> {
        let base = self.url(&["environments", environment_id, "deployments"]);
        let from = format_query_timestamp(query.from);
        let to = format_query_timestamp(query.to);
        let filters = [
            ("deploymentTypes", query.deployment_types.join(",")),
            ("statuses", query.statuses.join(",")),
            ("userIds", query.user_ids.join(",")),
        ];
        paging::fetch_all(base.path(), PAGE_LIMIT, MAX_PAGES, |offset| {
            let mut url = base.clone();
            let (limit, offset) = (PAGE_LIMIT.to_string(), offset.to_string());
            let pairs = with_filters(
                vec![
                    ("limit", limit.as_str()),
                    ("offset", offset.as_str()),
                    ("fromDate", from.as_str()),
                    ("toDate", to.as_str()),
                ],
                &filters,
            );
            set_query(&mut url, Route::EnvironmentDeployments, &pairs);
            self.get_page(Endpoint::Deployments, url)
        })
        .await
    }

    /// One page (offset 0, at most `limit` ≤ [`PAGE_LIMIT`] items) of an environment's
    /// deployments, without filters but `dates` (`fromDate`, `toDate`) when given: exactly one
    /// request, retries aside. What [`probe`](crate::probe) asks to learn env0's ways.
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn deployment_page(
        &self,
        environment_id: &str,
        limit: usize,
        dates: Option<(Timestamp, Timestamp)>,
    ) -> Result<Vec<DeploymentLog>> {
        let mut url = self.url(&["environments", environment_id, "deployments"]);
        let limit = limit.clamp(1, PAGE_LIMIT).to_string();
        let dates =
            dates.map(|(from, to)| (format_query_timestamp(from), format_query_timestamp(to)));
        let mut pairs = vec![("limit", limit.as_str()), ("offset", "0")];
        if let Some((from, to)) = &dates {
            pairs.extend([("fromDate", from.as_str()), ("toDate", to.as_str())]);
        }
        set_query(&mut url, Route::EnvironmentDeployments, &pairs);
        Ok(self.get_page(Endpoint::Deployments, url).await?.records)
    }

    /// Every deployment of an environment in one of `statuses`, without `fromDate`/`toDate`
    /// (whichever timestamp env0's date filter uses, a run that has not reached it is in no
    /// dated listing), with the other filters of `query`; duplicates dropped.
    ///
    /// All pages, or, with `created_since` (for a listing known to come newest first), the
    /// pages up to the first full one whose runs were all created before it: the rest is older
    /// still. Such a listing holds an environment's whole history of cancelled and skipped runs;
    /// this keeps its cost to what is recent.
    ///
    /// # Errors
    /// See [`Error`]; the first failing page fails the listing.
    pub async fn deployments_in_status(
        &self,
        environment_id: &str,
        statuses: &[String],
        query: &DeploymentQuery,
        created_since: Option<Timestamp>,
    ) -> Result<Vec<DeploymentLog>> {
        let base = self.url(&["environments", environment_id, "deployments"]);
        let statuses = statuses.join(",");
        let filters = [
            ("deploymentTypes", query.deployment_types.join(",")),
            ("userIds", query.user_ids.join(",")),
        ];
        let older = |page: &[DeploymentLog]| {
            created_since.is_some_and(|since| {
                page.iter()
                    .all(|l| l.created_at.is_some_and(|created| created < since))
            })
        };
        paging::fetch_until(base.path(), PAGE_LIMIT, MAX_PAGES, older, |offset| {
            let mut url = base.clone();
            let (limit, offset) = (PAGE_LIMIT.to_string(), offset.to_string());
            let pairs = with_filters(
                vec![
                    ("limit", limit.as_str()),
                    ("offset", offset.as_str()),
                    ("statuses", statuses.as_str()),
                ],
                &filters,
            );
            set_query(&mut url, Route::EnvironmentDeployments, &pairs);
            self.get_page(Endpoint::Deployments, url)
        })
        .await
    }

    /// One deployment log.
    ///
    /// # Errors
    /// See [`Error`]; an unknown id is [`Error::NotFound`].
    pub async fn deployment(&self, deployment_log_id: &str) -> Result<DeploymentLog> {
        let mut url = self.url(&["environments", "deployments", deployment_log_id]);
        set_query(&mut url, Route::Deployment, &[]);
        let log: DeploymentLog = self.get(Endpoint::Deployments, url).await?;
        self.record_newest(model::Dated::newest(&log), self.inner.clock.now());
        Ok(log)
    }
}
