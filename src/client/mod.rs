//! The env0 API client: the only code that speaks HTTP to env0.
//!
//! One [`Client`] holds one `reqwest` client (rustls, timeouts, `User-Agent`, Basic auth) and
//! spends one shared [`SlidingWindow`] request budget. Every HTTP attempt, retries included,
//! takes a slot from the budget first; a failed attempt becomes a typed [`Error`] ([`error`]),
//! and 429, 5xx, timeouts and connection errors are retried with back-off or after `Retry-After`
//! as the policy of [`retry`] decides; listings are paged and deduplicated ([`paging`]); env0's
//! JSON lands in the lenient types of [`model`]. This file holds the client, its configuration,
//! the endpoints and the single HTTP exchange. All waiting runs on the injected
//! [`Clock`](crate::clock::Clock), so tests
//! with a [`ManualClock`](crate::clock::ManualClock) control every wait.

mod error;
mod model;
mod pages;
mod paging;
pub mod query;
mod records;
mod retry;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use url::Url;

pub use error::{BODY_SNIPPET_CHARS, Error, Reason, Result};
pub use model::{DeploymentLog, Environment, Organization, PlanSummary, Project};
pub use paging::{MAX_PAGES, PAGE_LIMIT};
pub use records::{MAX_BODY_BYTES, Page, SkipReason, decode_records};
pub use retry::MAX_RETRY_AFTER;

use crate::clock::{self, OffsetSource, SharedClock};
use crate::ratelimit::SlidingWindow;
use crate::secret::SecretSource;
use query::{Route, set_query};
use retry::{Backoff, Decision, Failure, RetryPolicy, Wait};

/// The `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("env0-exporter/", env!("CARGO_PKG_VERSION"));

/// Retries after the first attempt, by default.
pub const DEFAULT_MAX_RETRIES: u32 = 4;
/// Ceiling of the first back-off, by default.
pub const DEFAULT_RETRY_BASE_DELAY: Duration = Duration::from_secs(1);
/// Cap of every back-off, by default.
pub const DEFAULT_RETRY_MAX_DELAY: Duration = Duration::from_secs(60);
/// Whole-request timeout, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Request budget per 60 s, by default: well below env0's 1,000, which other clients on the same
/// IP share.
pub const DEFAULT_MAX_REQUESTS_PER_MINUTE: u32 = 500;
/// The longest a TCP/TLS connect may take (or the request timeout, if shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The window env0 counts its rate limit over, and the request budget's window.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// How to reach env0 and how hard to try.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// env0's API root, e.g. `https://api.env0.com`; a path prefix (a proxy) is kept.
    pub base_url: Url,
    /// API key id, sent as the Basic auth user name.
    pub api_key: String,
    /// API key secret, sent as the Basic auth password; never logged. Read for every request,
    /// so a secret file that changes is followed.
    pub api_secret: SecretSource,
    /// Whole-request timeout of one attempt, body included.
    pub request_timeout: Duration,
    /// Retries after the first attempt for 429, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// Ceiling of the first back-off; doubles per retry.
    pub retry_base_delay: Duration,
    /// Cap of every back-off.
    pub retry_max_delay: Duration,
}

impl ClientConfig {
    /// A configuration with the `DEFAULT_*` values for everything but where and who.
    #[must_use]
    pub fn new(
        base_url: Url,
        api_key: impl Into<String>,
        api_secret: impl Into<SecretSource>,
    ) -> Self {
        Self {
            base_url,
            api_key: api_key.into(),
            api_secret: api_secret.into(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            retry_base_delay: DEFAULT_RETRY_BASE_DELAY,
            retry_max_delay: DEFAULT_RETRY_MAX_DELAY,
        }
    }
}

/// Told about every HTTP attempt (retries included), for request metrics.
pub trait RequestObserver: Send + Sync {
    /// One attempt at `endpoint` ended with `outcome` after `duration` (wall time of the HTTP
    /// exchange, body included; waits for budget or back-off are not part of it).
    fn observe(&self, endpoint: Endpoint, outcome: RequestOutcome, duration: Duration);

    /// A record of a page from `endpoint` could not be read and was skipped for `reason`.
    fn skipped(&self, endpoint: Endpoint, reason: SkipReason) {
        let _ = (endpoint, reason);
    }

    /// An attempt at `endpoint` was answered 429, with this `Retry-After` (`None`: the header
    /// was absent or unreadable). env0 does not document whether it sends one.
    fn rate_limited(&self, endpoint: Endpoint, retry_after: Option<Duration>) {
        let _ = (endpoint, retry_after);
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl RequestObserver for NoopObserver {
    fn observe(&self, _: Endpoint, _: RequestOutcome, _: Duration) {}
}

/// The env0 endpoint families, a bounded metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /organizations`.
    Organizations,
    /// `GET /projects`.
    Projects,
    /// `GET /environments`.
    Environments,
    /// `GET /environments/{id}/deployments` and `GET /environments/deployments/{id}`.
    Deployments,
}

impl Endpoint {
    /// The label value: `organizations`, `projects`, `environments` or `deployments`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organizations => "organizations",
            Self::Projects => "projects",
            Self::Environments => "environments",
            Self::Deployments => "deployments",
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one HTTP attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// env0 answered with this status.
    Status(u16),
    /// No answer within the request timeout.
    Timeout,
    /// No answer: connection refused or reset, TLS, DNS, a broken body.
    Error,
}

impl fmt::Display for RequestOutcome {
    /// The status code, `timeout` or `error`, as logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(code) => write!(f, "{code}"),
            Self::Timeout => f.write_str("timeout"),
            Self::Error => f.write_str("error"),
        }
    }
}

/// Filters of a deployment listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentQuery {
    /// `fromDate`, sent as `YYYY-MM-DDTHH:mm:ss.sssZ`.
    pub from: Timestamp,
    /// `toDate`, same format; fixing it at the poll's start keeps the listing stable.
    pub to: Timestamp,
    /// `deploymentTypes`, comma-joined; empty means not sent.
    pub deployment_types: Vec<String>,
    /// `statuses`, comma-joined; empty means not sent.
    pub statuses: Vec<String>,
    /// `userIds`, comma-joined; empty means not sent.
    pub user_ids: Vec<String>,
}

impl DeploymentQuery {
    /// All deployments created between `from` and `to`, no other filter.
    #[must_use]
    pub fn between(from: Timestamp, to: Timestamp) -> Self {
        Self {
            from,
            to,
            deployment_types: Vec::new(),
            statuses: Vec::new(),
            user_ids: Vec::new(),
        }
    }
}

/// A timestamp as env0's `fromDate`/`toDate` want it: `2026-07-01T14:02:10.000Z`.
#[must_use]
pub fn format_query_timestamp(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `pairs` followed by the `filters` that have a value (a filter left empty is not sent).
fn with_filters<'a>(
    mut pairs: Vec<(&'a str, &'a str)>,
    filters: &'a [(&'a str, String)],
) -> Vec<(&'a str, &'a str)> {
    pairs.extend(
        filters
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (*n, v.as_str())),
    );
    pairs
}

/// env0's clock minus ours, from a `Date` header (`date`, whole seconds, rounded down by the
/// server) read at our `local` time.
///
/// env0's time at `local` lies in `[date, date + 1 s)`, so the offset lies in
/// `[date − local, date − local + 1 s)`; the whole number of seconds in that interval is taken
/// (exact when the two clocks differ by whole seconds, less than a second off otherwise).
#[must_use]
pub fn clock_offset_from_date(date: Timestamp, local: Timestamp) -> jiff::SignedDuration {
    let raw = date.duration_since(local);
    let secs = raw.as_secs();
    let ceil = if raw.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    };
    jiff::SignedDuration::from_secs(ceil)
}

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

    /// env0's clock minus ours, as measured on the last response that carried a `Date` header
    /// (`None` before any did). See [`clock_offset_from_date`].
    #[must_use]
    pub fn clock_offset(&self) -> Option<jiff::SignedDuration> {
        *self
            .inner
            .clock_offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The best estimate of env0's clock minus ours, and where it comes from: the `Date`
    /// header when one was seen (exact to the second), else the largest lower bound the
    /// records have shown (env0's clock is at least that far ahead; it may be further), else
    /// nothing.
    #[must_use]
    pub fn clock_estimate(&self) -> (Option<jiff::SignedDuration>, OffsetSource) {
        if let Some(offset) = self.clock_offset() {
            return (Some(offset), OffsetSource::DateHeader);
        }
        let records = *self
            .inner
            .records_offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match records {
            Some(offset) => (Some(offset), OffsetSource::Records),
            None => (None, OffsetSource::None),
        }
    }

    /// Notes that env0's clock had reached `newest` by our time `arrived`.
    fn record_newest(&self, newest: Option<Timestamp>, arrived: Timestamp) {
        let Some(newest) = newest else {
            return;
        };
        let bound = newest.duration_since(arrived);
        let mut records = self
            .inner
            .records_offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if records.is_none_or(|known| bound > known) {
            *records = Some(bound);
        }
    }

    fn record_date(&self, headers: &HeaderMap) {
        let Some(date) = headers
            .get(header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| Timestamp::try_from(t).ok())
        else {
            return;
        };
        let offset = clock_offset_from_date(date, self.inner.clock.now());
        *self
            .inner
            .clock_offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(offset);
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
        paging::fetch_all(base.path(), PAGE_LIMIT, MAX_PAGES, 0, |offset| {
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

    /// The base URL with `segments` appended, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        // `new` rejected bases that cannot take path segments, so this always applies.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// GETs `url` with budget and retries, and decodes the JSON body. Whether a failed attempt is
    /// tried again, and after how long, is the [`RetryPolicy`]'s call.
    async fn get<T: DeserializeOwned>(&self, endpoint: Endpoint, url: Url) -> Result<T> {
        self.get_with(endpoint, url, |body| serde_json::from_slice(body))
            .await
    }

    /// GETs a page and decodes it record by record; each skipped record is reported to the
    /// observer.
    ///
    /// The newest timestamp of the page, against our time after it arrived, bounds env0's
    /// clock from below (see [`clock_estimate`](Self::clock_estimate)).
    async fn get_page<T: DeserializeOwned + model::Dated>(
        &self,
        endpoint: Endpoint,
        url: Url,
    ) -> Result<Page<T>> {
        let page: Page<T> = self
            .get_with(endpoint, url, records::decode_records)
            .await?;
        let newest = page.records.iter().filter_map(model::Dated::newest).max();
        self.record_newest(newest, self.inner.clock.now());
        for reason in &page.skipped {
            self.inner.observer.skipped(endpoint, *reason);
        }
        Ok(page)
    }

    /// Like [`get`](Self::get), with `decode` turning the body into the answer.
    async fn get_with<T>(
        &self,
        endpoint: Endpoint,
        url: Url,
        decode: fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T> {
        let path = url.path().to_owned();
        let policy = self.inner.retry;
        let mut retry = 0;
        loop {
            self.take_slot(&path).await?;
            let started = Instant::now();
            let (outcome, result) = self.attempt(&url, &path, decode).await;
            let took = started.elapsed();
            tracing::debug!(
                method = "GET",
                path,
                query = url.query().unwrap_or_default(),
                status = %outcome,
                ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                "env0 request"
            );
            // Pause the whole budget before reporting, so whoever watches the observer sees
            // the pause in place: every later request, not only this retry, honours it.
            if let Some(wait) = result.as_ref().err().and_then(Failure::retry_after) {
                self.inner
                    .limiter
                    .pause_until(clock::add(self.inner.clock.now(), wait));
            }
            self.inner.observer.observe(endpoint, outcome, took);
            if outcome == RequestOutcome::Status(429) {
                let retry_after = result.as_ref().err().and_then(Failure::retry_after);
                self.inner.observer.rate_limited(endpoint, retry_after);
            }
            let failure = match result {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let now = self.inner.clock.now();
            let wait = match policy.decide(&failure, retry, now, self.deadline()) {
                Decision::Retry(wait) => wait,
                Decision::GiveUp => return Err(failure.into_error()),
            };
            retry += 1;
            match wait {
                Wait::RetryAfter(wait) => tracing::warn!(
                    path,
                    retry,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %failure.error(),
                    "retrying after the server's retry-after"
                ),
                Wait::Backoff(wait) => {
                    tracing::warn!(
                        path,
                        retry,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %failure.error(),
                        "retrying after back-off"
                    );
                    self.inner.clock.sleep(wait).await;
                }
            }
        }
    }

    /// Takes one request from the budget, waiting on the clock unless that passes the deadline.
    async fn take_slot(&self, path: &str) -> Result<()> {
        let deadline = self.deadline().unwrap_or(Timestamp::MAX);
        if self
            .inner
            .limiter
            .acquire_before(&*self.inner.clock, deadline)
            .await
        {
            Ok(())
        } else {
            Err(Error::BudgetExhausted {
                path: path.to_owned(),
            })
        }
    }

    /// One HTTP exchange: the decoded body of a 2xx, or what went wrong.
    async fn attempt<T>(
        &self,
        url: &Url,
        path: &str,
        decode: fn(&[u8]) -> serde_json::Result<T>,
    ) -> (RequestOutcome, Result<T, Failure>) {
        let secret = self.inner.api_secret.current();
        let sent = self
            .inner
            .http
            .get(url.clone())
            .basic_auth(&self.inner.api_key, Some(secret.expose()))
            .send()
            .await;
        let failed = |e| {
            let (outcome, error) = error::from_transport(e, path);
            (outcome, Err(Failure::new(error, None)))
        };
        let response = match sent {
            Ok(response) => response,
            Err(e) => return failed(e),
        };
        let status = response.status();
        self.record_date(response.headers());
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, self.inner.clock.now()));
        let outcome = RequestOutcome::Status(status.as_u16());
        let body = match records::read_body(response).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                let error = Error::Decode {
                    path: path.to_owned(),
                    message: format!("the answer is larger than {MAX_BODY_BYTES} bytes"),
                };
                return (outcome, Err(Failure::new(error, None)));
            }
            Err(e) => return failed(e),
        };
        if status.is_success() {
            let decoded = decode(&body).map_err(|e| {
                let error = Error::Decode {
                    path: path.to_owned(),
                    // serde quotes offending values, which may be long: keep the message short.
                    message: error::body_snippet(e.to_string().as_bytes()),
                };
                Failure::new(error, None)
            });
            return (outcome, decoded);
        }
        let error = error::from_status(status, path, &body);
        (outcome, Err(Failure::new(error, retry_after)))
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_offset_is_the_whole_seconds_the_date_header_allows() {
        let offset = |date, local| clock_offset_from_date(ts(date), ts(local)).as_secs();
        // Same clocks: a Date rounded down by the server reads as no offset.
        assert_eq!(offset("2026-07-01T12:00:00Z", "2026-07-01T12:00:00Z"), 0);
        assert_eq!(
            offset("2026-07-01T12:00:00Z", "2026-07-01T12:00:00.700Z"),
            0
        );
        // env0 ten minutes ahead or behind.
        assert_eq!(offset("2026-07-01T12:10:00Z", "2026-07-01T12:00:00Z"), 600);
        assert_eq!(offset("2026-07-01T11:50:00Z", "2026-07-01T12:00:00Z"), -600);
        assert_eq!(
            offset("2026-07-01T11:50:00Z", "2026-07-01T12:00:00.300Z"),
            -600
        );
    }
}
