//! A simulated env0 API: a seeded, living world of organizations, projects, environments and
//! deployments, served over the same routes, auth, paging, filters, errors and rate limit as
//! `api.env0.com` (see `env0-api.md`), with time read only from the injected [`Clock`].
//!
//! Used by the exporter's tests (against a [`ManualClock`](env0_clock::ManualClock)) and by the
//! demo (against the system clock). The world is a pure function of the seed and of the clock
//! times at which it is advanced: events live in a priority queue ordered by (time, sequence), so
//! advancing in one big step or in many small ones gives the same world.
//!
//! Organizations: all projects and environments belong to the first organization
//! ([`Simulator::organization_id`]); the others (when [`SimConfig::organizations`] > 1) are listed
//! by `GET /organizations` but hold no projects and no environments.
//!
//! It shares no code with env0-exporter (only the clock of the `env0-clock` crate, so that both
//! read one time in tests): its rate limit, its webhook signer and its JSON are its own, so the
//! exporter's are checked against a second implementation rather than against themselves.
//!
//! Files: [`world`] (state, generation and lifecycle, a file each), `api` (routes, auth,
//! validation), `ratelimit` (env0's per-(method, path) limit), `args` (the `--sim-*` flags),
//! `json` (wire shapes), `faults` (injected failures), `reply` (the error
//! answers both `api` and `faults` give, so `faults` needs nothing from `api`), `webhooks`
//! (signed deliveries of every run's lifecycle changes to [`SimConfig::webhook`]).

mod api;
mod args;
mod chaos;
mod faults;
mod json;
mod ratelimit;
mod reply;
#[cfg(test)]
mod tests;
mod webhooks;
mod world;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::Timestamp;

use env0_clock::SharedClock;
use webhooks::Outbox;
use world::World;

pub use args::{SimArgs, SimScale};
pub use chaos::undocumented_value;
pub use webhooks::{DeliveryRecord, WebhookEventTypes, WebhookSigning, WebhookTarget};

/// How the simulated world is generated and how its API behaves.
// Each bool is an independent switch of one undocumented way env0 may behave; tests combine them
// freely, which a state machine would not make clearer.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice: same seed and same clock times give the same world.
    pub seed: u64,
    /// Organizations listed; only the first holds projects and environments.
    pub organizations: usize,
    /// Projects of the first organization.
    pub projects: usize,
    /// Environments, spread over the projects (more than 100 so paging is exercised).
    pub environments: usize,
    /// Past activity already present when the simulator starts.
    pub history: Duration,
    /// Mean gap between two runs of one environment (exponentially distributed).
    pub mean_deployment_interval: Duration,
    /// Multiplies queue, run and approval durations (below 1 for livelier demos).
    pub time_scale: f64,
    /// The API key id accepted as the Basic auth user name.
    pub api_key_id: String,
    /// The API key secret accepted as the Basic auth password.
    pub api_key_secret: String,
    /// Requests allowed per 60 s, counted per (HTTP method, URL path) like env0.
    pub rate_limit_per_minute: u32,
    /// Whether a 429 carries `Retry-After` (env0 does not document it: tests need both).
    pub send_retry_after: bool,
    /// Keep every request for [`Simulator::requests`] (tests); off for `demo` and `simulate`,
    /// which run for days and would otherwise grow without bound.
    pub record_requests: bool,
    /// Where to POST signed webhook deliveries of every run's lifecycle changes (`None`: off).
    /// The world is the same with or without.
    pub webhook: Option<WebhookTarget>,
    /// What a webhook signature covers: the raw body (default) or its re-serialisation, sent
    /// pretty-printed (env0's docs and its guide's sample differ).
    pub webhook_signing: WebhookSigning,
    /// Whether a delivery's `x-env0-event-id` header differs from its body's `id`, as in env0's
    /// sample delivery (false by default).
    pub webhook_ids_differ: bool,
    /// How webhook event types and headers are spelt (`com.env0.deploy.*` by default).
    pub webhook_event_types: WebhookEventTypes,
    /// Deployment types (camelCase, e.g. `prPlan`) whose changes are never delivered: a
    /// notification target whose projects left those events out, or a type env0 sends no event
    /// for (it documents events for deploys, destroys and drift detections only). Empty by
    /// default: every change is delivered.
    pub webhook_silent_types: Vec<String>,
    /// env0's clock minus the injected clock (signed): applied to every timestamp the world
    /// produces, to the `Date` header, and to how `fromDate`/`toDate` are read. env0's clock is
    /// not the client's; zero by default.
    pub clock_offset: jiff::SignedDuration,
    /// Which timestamp `fromDate`/`toDate` filter on (env0 does not document it).
    pub date_filter_field: DateFilterField,
    /// Which deployment types move an environment's `latestDeploymentLog` (undocumented).
    pub latest_moved_by: LatestMovedBy,
    /// The order of deployment listings (undocumented; newest first as observed).
    pub page_order: PageOrder,
    /// Workflow sub-environments, added after the others (0 by default).
    pub sub_environments: usize,
    /// Whether `GET /environments` lists sub-environments without `includeSubEnvironments`
    /// (env0 does not document its default).
    pub sub_environments_listed_by_default: bool,
    /// Share (0..1) of the runs that stop for approval which then wait 2 to 12 hours (not scaled
    /// by [`time_scale`](Self::time_scale)) instead of 2 minutes to 6 hours scaled; 0 by default.
    /// Their environment's later runs stay `QUEUED` behind them meanwhile.
    pub long_approval_share: f64,
    /// Share (0..1) of the `prPlan` and `driftDetection` runs that do not move
    /// `latestDeploymentLog` (see [`latest_moved_by`](Self::latest_moved_by)) which stay
    /// unfinished for 1.5 to 10 hours (`QUEUED`, or `WAITING_FOR_USER` after a start) without
    /// holding up their environment: its later runs go on around them. 0 by default.
    pub stuck_share: f64,
    /// Finished runs created more than [`history`](Self::history) plus this ago are dropped
    /// (each environment's latest and unfinished runs are kept); 24 h by default.
    pub retention_margin: Duration,
    /// Refuse a query parameter that env0's own clients do not send with
    /// `400 {"message": "\"<name>\" is not allowed"}` (a validating API; off by default). The
    /// list of what is allowed is the simulator's own (`api::ALLOWED_PARAMETERS`), written apart
    /// from the client's. With it, workflow sub-environments are listed by default: no parameter
    /// could reach them otherwise.
    pub validating_api: bool,
    /// Send env0's `Date` header on every answer (on by default; off = a proxy that drops it,
    /// or an env0 that never sends it).
    pub send_date_header: bool,
    /// `queuedAt` minus `createdAt` of every run: zero by default, as in env0's sample payloads.
    /// When not zero a run starts at least a second after it was queued, so the three
    /// timestamps a date filter may use all differ (what `probe` needs to tell them apart).
    pub queued_after_created: Duration,
    /// Runs ended from the queue (`CANCELLED` and `SKIPPED` in turn, no `startedAt`) added to
    /// the first environment's history before the world starts, one a minute back from the
    /// start; 0 by default. Its undated listing of runs that have not started then takes
    /// several pages, whatever its recent activity.
    pub queue_ended_history: usize,
    /// Environments differ in how often they run, as in real organisations (false by default:
    /// every environment at [`mean_deployment_interval`](Self::mean_deployment_interval)). With
    /// it, 8 % are busy (a run every 4 to 25 minutes at a 72-minute mean), 22 % active (every 25
    /// minutes to 3.3 hours) and 70 % quiet (every 3.3 hours to 3.3 days), each environment's
    /// own mean drawn by seed, so that the organisation as a whole still runs
    /// [`environments`](Self::environments) / `mean_deployment_interval` runs in a unit of time.
    pub activity_skew: bool,
}

impl SimConfig {
    /// The large organisation: 10,000 environments in 500 projects, a run every 72 minutes per
    /// environment on average (about 200,000 runs a day), skewed as real organisations are (a
    /// few busy environments, a long quiet tail: [`activity_skew`](Self::activity_skew)), a quarter of the approvals waiting hours, 5 % of
    /// the plans and drift detections unfinished for hours beside later runs, 25 h of history
    /// and 2 h of retention beyond it (memory stays near one day of runs). Every other setting as
    /// in [`SimConfig::default`].
    #[must_use]
    pub fn large() -> Self {
        Self {
            projects: 500,
            environments: 10_000,
            history: Duration::from_secs(25 * 3600),
            mean_deployment_interval: Duration::from_secs(72 * 60),
            long_approval_share: 0.25,
            stuck_share: 0.05,
            retention_margin: Duration::from_secs(2 * 3600),
            activity_skew: true,
            ..Self::default()
        }
    }
}

/// The timestamp a dated deployment listing filters on (also `--sim-date-filter-field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DateFilterField {
    /// `createdAt` (the likely one, and the default).
    #[default]
    CreatedAt,
    /// `queuedAt`.
    QueuedAt,
    /// `startedAt`: a run that has not started is in no dated listing.
    StartedAt,
}

/// Which deployment types move `latestDeploymentLog` when created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatestMovedBy {
    /// `deploy`, `destroy` and `task` (the default).
    #[default]
    DeployDestroyTask,
    /// Only `deploy` and `destroy`.
    DeployDestroy,
    /// Every type, plans and drift detections included.
    Every,
}

/// The order of a deployment listing's pages (also `--sim-page-order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PageOrder {
    /// Newest `createdAt` first (the default, as env0 was observed to answer).
    #[default]
    NewestFirst,
    /// Oldest first.
    OldestFirst,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            organizations: 1,
            projects: 6,
            environments: 150,
            history: Duration::from_secs(48 * 3600),
            mean_deployment_interval: Duration::from_secs(2 * 3600),
            time_scale: 1.0,
            api_key_id: "demo-key".to_owned(),
            api_key_secret: "demo-secret".to_owned(),
            rate_limit_per_minute: 1000,
            send_retry_after: true,
            record_requests: true,
            webhook: None,
            webhook_signing: WebhookSigning::default(),
            webhook_ids_differ: false,
            webhook_event_types: WebhookEventTypes::default(),
            webhook_silent_types: Vec::new(),
            clock_offset: jiff::SignedDuration::ZERO,
            date_filter_field: DateFilterField::default(),
            latest_moved_by: LatestMovedBy::default(),
            page_order: PageOrder::default(),
            sub_environments: 0,
            sub_environments_listed_by_default: false,
            long_approval_share: 0.0,
            stuck_share: 0.0,
            retention_margin: Duration::from_secs(24 * 3600),
            validating_api: false,
            send_date_header: true,
            queued_after_created: Duration::ZERO,
            queue_ended_history: 0,
            activity_skew: false,
        }
    }
}

/// One deployment as the world holds it (the truth tests compare the exporter against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDeployment {
    /// Deployment log id.
    pub id: String,
    /// The environment it ran in.
    pub environment_id: String,
    /// The environment's project.
    pub project_id: String,
    /// env0's `type`.
    pub deployment_type: String,
    /// env0's `status`, now.
    pub status: String,
    /// env0's `blueprintType` (the infrastructure-as-code tool); `None` is sent as `null`.
    pub blueprint_type: Option<String>,
    /// env0's `triggerName`; `None` is sent as `null`.
    pub trigger_name: Option<String>,
    /// The id of the user who started it.
    pub started_by: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was queued.
    pub queued_at: Timestamp,
    /// When it started running, once it has.
    pub started_at: Option<Timestamp>,
    /// When it finished; `None` while unfinished and for some finished runs.
    pub finished_at: Option<Timestamp>,
    /// Its last change.
    pub updated_at: Timestamp,
    /// env0's `planSummary` as the API sends it now (only once the run succeeded).
    pub plan_summary: Option<SimPlanSummary>,
    /// env0's `driftDetected` as the API sends it now (drift detections that succeeded).
    pub drift_detected: Option<bool>,
}

/// A `planSummary` as the simulated API sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimPlanSummary {
    /// Resources added.
    pub added: u32,
    /// Resources changed.
    pub changed: u32,
    /// Resources destroyed.
    pub destroyed: u32,
    /// Resources imported; `None`: the field is not sent.
    pub imported: Option<u32>,
}

/// One environment as the world holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEnvironment {
    /// Environment id.
    pub id: String,
    /// Its project.
    pub project_id: String,
    /// Display name.
    pub name: String,
    /// env0's environment `status`.
    pub status: String,
    /// env0's `driftStatus`.
    pub drift_status: String,
    /// Archived environments are listed with `isArchived: true`.
    pub is_archived: bool,
    /// The run the environment's `latestDeploymentLog` shows.
    pub latest_deployment_log_id: Option<String>,
    /// Its last change, as its listing's `updatedAt` shows it.
    pub updated_at: Timestamp,
}

/// One request the simulator received, whatever it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The HTTP method.
    pub method: String,
    /// The URL path without the query string.
    pub path: String,
    /// The raw query string, empty when there was none.
    pub query: String,
    /// The status answered.
    pub status: u16,
    /// When it arrived, on the injected clock.
    pub at: Timestamp,
}

/// A failure to answer instead of the normal response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Applies to requests whose path starts with this (`None`: any request).
    pub path_prefix: Option<String>,
    /// What happens to them.
    pub kind: FaultKind,
    /// How many matching requests get the fault.
    pub count: u32,
}

/// What an injected fault does to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// That status with a JSON error body.
    Status(u16),
    /// 429, with `Retry-After: <seconds>` when given.
    RateLimited {
        /// The `Retry-After` seconds; `None` sends none.
        retry_after: Option<u64>,
    },
    /// 200 with a body that is not JSON.
    Garbage,
    /// A real (tokio) sleep before answering normally, to exercise client timeouts.
    Delay(Duration),
    /// 401 as for a bad key.
    Unauthorized,
    /// 403 on `GET /environments/{id}/deployments` for the environments of these projects (by
    /// project id), as for a User-role key without a role there; other requests answer normally.
    ForbiddenProjects(Vec<String>),
    /// Pages start one record early (`offset - 1` when above 0), as when a run is inserted at
    /// the top of a newest-first listing between two page requests.
    ShiftPages,
    /// The normal answer with a part of the wrong shape.
    Malformed(Malformation),
    /// Deployment logs with `startedAt` after `finishedAt`, `finishedAt` a year ahead, or
    /// neither (by position in the page; finish times stay truthful where sent).
    DisorderedTimestamps,
    /// Deployment logs with statuses, types, tools and triggers env0 does not document
    /// ([`undocumented_value`]).
    UndocumentedValues,
    /// Every record of a page padded with a string field so the body is about `bytes` long.
    Padded {
        /// The body's size.
        bytes: usize,
    },
}

/// How [`FaultKind::Malformed`] breaks an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformation {
    /// A page is an object (`{"data": [...]}`) instead of a bare array.
    ObjectInsteadOfArray,
    /// `resourceCount` and `planSummary.added` are strings that are not numbers.
    StringForNumber,
    /// The first deployment log of the answer has no `id`.
    MissingId,
    /// The first deployment log of the answer has a number for its `status`.
    NumberForText,
}

/// A fault that lasts for a span of the injected clock rather than a number of requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TimedFault {
    /// Applies to requests whose path starts with this (`None`: any request).
    pub(crate) path_prefix: Option<String>,
    /// What happens to them.
    pub(crate) kind: FaultKind,
    /// When it stops applying (exclusive).
    pub(crate) until: Timestamp,
}

/// The simulated env0 API; cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    config: SimConfig,
    /// The API key secret accepted now: the configured one until
    /// [`Simulator::set_api_key_secret`] rotates it.
    api_key_secret: Mutex<String>,
    clock: SharedClock,
    world: Mutex<World>,
    requests: Mutex<Vec<RequestRecord>>,
    limits: Mutex<ratelimit::RateLimit>,
    faults: Mutex<VecDeque<Fault>>,
    /// Faults that last for a span of the clock, consulted after `faults`.
    timed_faults: Mutex<Vec<TimedFault>>,
    /// Webhook deliveries, when a target is set.
    outbox: Option<Arc<Outbox>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// `at` moved by `offset`, saturating.
fn shifted(at: Timestamp, offset: jiff::SignedDuration) -> Timestamp {
    at.checked_add(offset).unwrap_or(if offset.is_negative() {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Simulator {
    /// Generates the world from `config.seed` and fills it with `config.history` of activity up
    /// to `clock.now()`.
    #[must_use]
    pub fn new(config: SimConfig, clock: SharedClock) -> Self {
        let mut world = World::new(&config, shifted(clock.now(), config.clock_offset));
        let outbox = config.webhook.clone().map(|target| {
            world.set_noting(true);
            Arc::new(Outbox::new(target, &config))
        });
        Self {
            inner: Arc::new(Inner {
                api_key_secret: Mutex::new(config.api_key_secret.clone()),
                config,
                clock,
                world: Mutex::new(world),
                requests: Mutex::new(Vec::new()),
                limits: Mutex::new(ratelimit::RateLimit::default()),
                faults: Mutex::new(VecDeque::new()),
                timed_faults: Mutex::new(Vec::new()),
                outbox,
            }),
        }
    }

    /// The env0 API routes (no socket: tests can call it with `oneshot`).
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// Serves [`router`](Self::router) on `listener` until `shutdown` completes, and sends the
    /// webhook deliveries meanwhile when a target is set.
    ///
    /// # Errors
    /// When the listener fails.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sender = self.inner.outbox.clone().map(|o| tokio::spawn(o.run()));
        let served = if self.inner.config.send_date_header {
            axum::serve(listener, self.router())
                .with_graceful_shutdown(shutdown)
                .await
        } else {
            serve_without_date(listener, self.router(), shutdown).await
        };
        if let Some(sender) = sender {
            sender.abort();
        }
        served
    }

    /// Completes once every webhook delivery queued so far has been sent (or dropped); at once
    /// without a webhook target.
    pub async fn webhooks_flushed(&self) {
        if let Some(outbox) = &self.inner.outbox {
            outbox.flushed().await;
        }
    }

    /// The webhook deliveries sent so far, oldest first (kept when
    /// [`SimConfig::record_requests`] is on).
    #[must_use]
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        self.inner
            .outbox
            .as_ref()
            .map(|o| o.sent())
            .unwrap_or_default()
    }

    /// env0's time now: the injected clock plus [`SimConfig::clock_offset`].
    #[must_use]
    pub fn now(&self) -> Timestamp {
        shifted(self.inner.clock.now(), self.inner.config.clock_offset)
    }

    /// The configuration the world was built from (its `api_key_secret` is the first one
    /// accepted; see [`api_key_secret`](Self::api_key_secret)).
    #[must_use]
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// The API key secret accepted now.
    #[must_use]
    pub fn api_key_secret(&self) -> String {
        lock(&self.inner.api_key_secret).clone()
    }

    /// Rotates the API key secret: from now on only `secret` is accepted, as when a key's secret
    /// is replaced in env0.
    pub fn set_api_key_secret(&self, secret: &str) {
        secret.clone_into(&mut lock(&self.inner.api_key_secret));
    }

    /// The organization that holds every project and environment.
    #[must_use]
    pub fn organization_id(&self) -> String {
        lock(&self.inner.world).organization_id().to_owned()
    }

    /// Brings the world up to `clock.now()` (also done at the start of every request), queueing
    /// a webhook delivery for every change when a target is set.
    pub fn advance(&self) {
        let now = self.now();
        let mut world = lock(&self.inner.world);
        world.advance_to(now);
        if let Some(outbox) = &self.inner.outbox {
            outbox.enqueue(&mut world);
        }
    }

    /// Freezes (`true`) or resumes (`false`) the world. Frozen: no run is created and none
    /// changes status, whatever the clock does. Resuming shifts every pending event by the time
    /// spent frozen, so nothing missed happens in a burst.
    pub fn set_paused(&self, paused: bool) {
        let now = self.now();
        lock(&self.inner.world).set_paused(paused, now);
    }

    /// Every deployment the world holds, after [`advance`](Self::advance), oldest first.
    #[must_use]
    pub fn deployments(&self) -> Vec<SimDeployment> {
        self.advance();
        lock(&self.inner.world).sim_deployments()
    }

    /// Every environment, archived ones included, after [`advance`](Self::advance).
    #[must_use]
    pub fn environments(&self) -> Vec<SimEnvironment> {
        self.advance();
        lock(&self.inner.world).sim_environments()
    }

    /// Every project of the active organization: (id, name).
    #[must_use]
    pub fn projects(&self) -> Vec<(String, String)> {
        lock(&self.inner.world)
            .projects
            .iter()
            .map(|p| (p.id.clone(), p.name.clone()))
            .collect()
    }

    /// Every request received, in order of arrival.
    #[must_use]
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner.requests).clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.inner.requests).clear();
    }

    /// Queues a fault; faults apply in the order they were injected.
    pub fn inject(&self, fault: Fault) {
        if fault.count > 0 {
            lock(&self.inner.faults).push_back(fault);
        }
    }

    /// Applies `kind` to every request whose path starts with `path_prefix` (`None`: every
    /// request) from now for `span` of the injected clock, after the counted faults of
    /// [`inject`](Self::inject).
    pub fn inject_for(&self, path_prefix: Option<&str>, kind: FaultKind, span: Duration) {
        let until = env0_clock::add(self.inner.clock.now(), span);
        lock(&self.inner.timed_faults).push(TimedFault {
            path_prefix: path_prefix.map(str::to_owned),
            kind,
            until,
        });
    }

    /// Drops every fault, counted or timed, not yet used up.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
        lock(&self.inner.timed_faults).clear();
    }
}

/// Serves `router` like `axum::serve`, except that the HTTP stack adds no `Date` header of its
/// own (it would tell the host's clock, not the simulated env0's): for
/// [`SimConfig::send_date_header`] off. Connections still open at `shutdown` are dropped.
async fn serve_without_date(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A connection that failed before it was accepted: take the next one.
                Err(_) => continue,
            },
        };
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.auto_date_header(false);
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        // Finished connections are reaped as new ones come.
        while connections.try_join_next().is_some() {}
    }
    connections.shutdown().await;
    Ok(())
}
