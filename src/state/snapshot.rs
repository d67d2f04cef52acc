//! The immutable picture `/metrics` encodes, swapped in whole after each poll.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use super::{DeploymentLabels, EnvironmentRow};

/// The exporter's own health as of the last poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// Whether the last poll completed without error (`env0_up`).
    pub up: bool,
    /// When the last successful poll finished.
    pub last_success: Option<Timestamp>,
    /// How long the last poll took.
    pub last_poll_duration: Option<Duration>,
    /// Polls finished since start, successful or not (tests and logs wait on this).
    pub polls_completed: u64,
    /// Environments still waiting for their first read of the lookback window.
    pub backfill_pending: usize,
    /// env0's clock minus ours as estimated (`None` until anything told): exact from env0's
    /// `Date` headers, a lower bound from its records (see [`clock_source`](Self::clock_source)).
    pub clock_offset: Option<jiff::SignedDuration>,
    /// Where [`clock_offset`](Self::clock_offset) comes from.
    pub clock_source: crate::clock::OffsetSource,
    /// Optional env0 calls unavailable as last tried (call → reason, e.g. `projects` →
    /// `forbidden`; calls from [`OPTIONAL_CALLS`]): the counts carry on without them, some
    /// labels degrade (see `poller::optional`). Empty when every call works.
    pub optional_unavailable: std::collections::BTreeMap<&'static str, &'static str>,
    /// The full re-read interval kept (`None`: full sync off, or before the first listing).
    pub full_sync_interval: Option<Duration>,
    /// Age (our clock, at the last poll) of the oldest full read among the backfilled
    /// environments due full re-reads, counted from the start of the poll that did it (`None`:
    /// full sync off, or none yet).
    pub full_sync_oldest_age: Option<Duration>,
    /// The longest gap kept between re-reads of an environment's unfinished runs that are not
    /// its latest, once they back off: `--unfinished-reread-max-interval`, or longer when their
    /// share of the budget cannot hold it (`None` before the first plan).
    pub unfinished_reread_interval: Option<Duration>,
    /// With webhooks on, what the deliveries are known to cover (`None`: webhooks off).
    pub webhook_coverage: Option<WebhookCoverage>,
    /// The timestamp env0's date filter uses, as learnt (probe or evidence).
    pub date_filter_field: crate::probe::DateFilterField,
    /// The order of env0's deployment listings, as learnt.
    pub page_order: crate::probe::PageOrder,
}

/// What the webhook deliveries are known to cover, as of the last publish (see
/// `poller::schedule::unfinished::covered`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookCoverage {
    /// Projects a verified delivery came from within the last day.
    pub projects: usize,
    /// Per `deployment_type` label value seen (in the store or in a delivery), whether both a
    /// success and another end of runs of that type were delivered within the last day.
    pub types: std::collections::BTreeMap<Arc<str>, bool>,
}

/// The optional env0 calls (the `call` label of `env0_exporter_optional_call_unavailable`):
/// the projects listing and the direct read of one deployment.
pub const OPTIONAL_CALLS: [&str; 2] = ["projects", "deployment"];

/// A pair of label values, e.g. (deployment type, status).
pub(super) type LabelPair = (Arc<str>, Arc<str>);

/// Everything the state-mirroring metrics show, computed once per poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// `env0_deployments`, sorted by labels; label sets once seen stay with 0.
    pub deployments: Vec<(DeploymentLabels, u64)>,
    /// `env0_deployment_oldest_unfinished_timestamp_seconds` by status.
    pub oldest_unfinished: Vec<(Arc<str>, Timestamp)>,
    /// `env0_deployment_last_finished_timestamp_seconds` by (deployment type, status).
    pub last_finished: Vec<(LabelPair, Timestamp)>,
    /// `env0_environments` by (status, drift status), non-archived only.
    pub environments: Vec<(LabelPair, u64)>,
    /// The environment view's rows (empty unless `--environment-metrics`).
    pub environment_rows: Vec<EnvironmentRow>,
    /// `env0_exporter_tracked_deployments`.
    pub tracked_deployments: usize,
    /// `env0_up` and friends.
    pub health: Health,
    /// `env0_exporter_unreadable_environments`: listed environments the key may not read.
    pub unreadable_environments: usize,
}

/// Where the poller publishes snapshots and readers take the current one.
#[derive(Debug, Clone)]
pub struct SnapshotHandle {
    current: Arc<RwLock<Arc<Snapshot>>>,
    /// Bumped by every publish: what a cached scrape body was encoded from.
    version: Arc<std::sync::atomic::AtomicU64>,
    polls: watch::Sender<u64>,
}

impl Default for SnapshotHandle {
    fn default() -> Self {
        Self {
            current: Arc::new(RwLock::new(Arc::new(Snapshot::default()))),
            version: Arc::default(),
            polls: watch::channel(0).0,
        }
    }
}

impl SnapshotHandle {
    /// The snapshot being served now.
    #[must_use]
    pub fn load(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// How many snapshots were published.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Replaces the served snapshot in one step.
    pub fn publish(&self, snapshot: Snapshot) {
        let polls = snapshot.health.polls_completed;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(snapshot);
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::Release);
        self.polls.send_if_modified(|p| {
            let changed = *p != polls;
            *p = polls;
            changed
        });
    }

    /// Follows the number of completed polls.
    #[must_use]
    pub fn subscribe_polls(&self) -> watch::Receiver<u64> {
        self.polls.subscribe()
    }
}
