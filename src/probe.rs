//! What env0 does where its docs say nothing, learnt by asking it: which timestamp the
//! deployments listing's `fromDate`/`toDate` filter on, and in which order its pages come.
//!
//! Shared by the running exporter (the poller probes once at start, see
//! [`crate::poller`]) and by the `doctor` command. Read-only, and only query parameters env0's
//! own clients send (`limit`, `offset`, `fromDate`, `toDate`).
//!
//! How ([`deployment_listing`]), per candidate environment, at most
//! [`MAX_REQUESTS_PER_ENVIRONMENT`] requests:
//! 1. one undated page of [`SAMPLE_SIZE`] runs: its `createdAt` order is the page order
//!    (strictly newest first, strictly oldest first, or unknown), and it yields a run that has
//!    started, preferably one whose `createdAt` < `queuedAt` < `startedAt` differ;
//! 2. dated listings whose window (2 ms wide, so that inclusive or exclusive bounds read the
//!    same) holds only one of the run's timestamps: `createdAt`'s, then `queuedAt`'s, then
//!    `startedAt`'s. The first that lists the run names the field.
//!
//! Only env0's timestamps are compared, with each other: the local clock plays no part.
//! When every run looked at has `createdAt` equal to `queuedAt` (as in env0's sample payloads)
//! the two filters are the same for every run and the answer is [`DateFilterField::CreatedAt`].
//! At most [`MAX_ENVIRONMENTS`] environments are tried, so a probe costs at most
//! [`MAX_REQUESTS`] requests (retries of a failed request aside); on the default case (a
//! `createdAt` filter, the first environment usable) it costs 2.
//!
//! ```no_run
//! # async fn example(client: &env0_exporter::client::Client) -> Result<(), env0_exporter::client::Error> {
//! use env0_exporter::probe;
//!
//! let environments = client.environments("organization-id").await?;
//! let learnt = probe::deployment_listing(client, probe::candidates(&environments)).await?;
//! println!(
//!     "date filter on {}, pages {} first, {} requests",
//!     learnt.date_filter_field.as_str(),
//!     learnt.page_order.as_str(),
//!     learnt.requests
//! );
//! # Ok(())
//! # }
//! ```

use std::fmt;

use jiff::{SignedDuration, Timestamp};

use crate::client::{Client, DeploymentLog, Environment, Error, PAGE_LIMIT};

/// Runs asked for in the undated sample of an environment.
pub const SAMPLE_SIZE: usize = 20;
/// Environments tried before giving up (each may lack a run that tells).
pub const MAX_ENVIRONMENTS: usize = 3;
/// Requests one environment's probe may take: the sample and three dated listings.
pub const MAX_REQUESTS_PER_ENVIRONMENT: u32 = 4;
/// Requests a whole probe may take (retries of a failed request aside).
#[allow(clippy::cast_possible_truncation)] // a small constant
pub const MAX_REQUESTS: u32 = MAX_REQUESTS_PER_ENVIRONMENT * MAX_ENVIRONMENTS as u32;

/// Half the width of a window around one timestamp: the wire has millisecond precision, so
/// `[t − 1 ms, t + 1 ms]` holds `t` whether env0's bounds are inclusive or not, and nothing 2 ms
/// or more away from it.
const HALF_WINDOW: SignedDuration = SignedDuration::from_millis(1);

/// The timestamp env0's `fromDate`/`toDate` filter deployments on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum DateFilterField {
    /// `createdAt` (also when `queuedAt` never differs from it: the two are then the same).
    CreatedAt,
    /// `queuedAt`.
    QueuedAt,
    /// `startedAt`: a run that has not started is in no dated listing.
    StartedAt,
    /// Not learnt (yet).
    #[default]
    Unknown,
}

impl DateFilterField {
    /// The field's name in env0's JSON, or `unknown`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatedAt => "createdAt",
            Self::QueuedAt => "queuedAt",
            Self::StartedAt => "startedAt",
            Self::Unknown => "unknown",
        }
    }

    /// Whether dated listings leave out runs that have not started (`None`: unknown).
    #[must_use]
    pub fn hides_unstarted(self) -> Option<bool> {
        match self {
            Self::CreatedAt | Self::QueuedAt => Some(false),
            Self::StartedAt => Some(true),
            Self::Unknown => None,
        }
    }
}

impl fmt::Display for DateFilterField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The order of a deployment listing's pages, by `createdAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum PageOrder {
    /// Newest first.
    Newest,
    /// Oldest first.
    Oldest,
    /// Not learnt (yet), or neither.
    #[default]
    Unknown,
}

impl PageOrder {
    /// `newest`, `oldest` or `unknown`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Newest => "newest",
            Self::Oldest => "oldest",
            Self::Unknown => "unknown",
        }
    }

    /// The order of `page` by `createdAt`: strictly monotonic between the runs whose
    /// `createdAt` differ, with at least two of them; anything else is unknown.
    #[must_use]
    pub fn of(page: &[DeploymentLog]) -> Self {
        let created: Vec<Timestamp> = page.iter().filter_map(|l| l.created_at).collect();
        let mut order = Self::Unknown;
        for pair in created.windows(2) {
            let step = match pair[0].cmp(&pair[1]) {
                std::cmp::Ordering::Greater => Self::Newest,
                std::cmp::Ordering::Less => Self::Oldest,
                std::cmp::Ordering::Equal => continue,
            };
            if order == Self::Unknown {
                order = step;
            } else if order != step {
                return Self::Unknown;
            }
        }
        order
    }
}

impl fmt::Display for PageOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a probe of the deployments listing learnt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeploymentListing {
    /// The timestamp the date filter uses.
    pub date_filter_field: DateFilterField,
    /// The order of pages.
    pub page_order: PageOrder,
    /// Requests sent (retries of a failed request aside); at most [`MAX_REQUESTS`].
    pub requests: u32,
    /// The environment whose runs told the date filter's field (`None`: none did).
    pub environment_id: Option<String>,
}

/// The environments worth probing, best first: those whose latest run has started (they hold
/// a run that tells), then the others with a latest run. Archived ones come last.
#[must_use]
pub fn candidates(environments: &[Environment]) -> Vec<&str> {
    ranked(
        environments
            .iter()
            .filter_map(|e| candidate_rank(e).map(|rank| (rank, e.id.as_str()))),
    )
}

/// Where `environment` stands among [`candidates`] (lower first), `None` when it is not one
/// (no latest run): for callers that see a listing page by page and keep only ids.
#[must_use]
pub fn candidate_rank(environment: &Environment) -> Option<u8> {
    if environment.latest_deployment_log_id.is_none() && environment.latest_deployment_log.is_none()
    {
        return None;
    }
    let started = environment
        .latest_deployment_log
        .as_ref()
        .is_some_and(|l| l.started_at.is_some());
    Some(u8::from(environment.is_archived) * 2 + u8::from(!started))
}

/// The ids of (rank, id) pairs in listing order, best rank first; within a rank, env0's
/// listing order.
#[must_use]
pub fn ranked<'a>(ranked: impl IntoIterator<Item = (u8, &'a str)>) -> Vec<&'a str> {
    let mut ranked: Vec<(u8, &str)> = ranked.into_iter().collect();
    // Stable: env0's listing order within a rank.
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, id)| id).collect()
}

/// Learns the date filter's field and the page order from the first of `environments` (see
/// [`candidates`]) whose runs tell, trying at most [`MAX_ENVIRONMENTS`] of them. An environment
/// the key may not read (403) or that is gone (404) is passed over.
///
/// # Errors
/// Any other client error (the request budget included): the probe stops there.
pub async fn deployment_listing<'a>(
    client: &Client,
    environments: impl IntoIterator<Item = &'a str>,
) -> Result<DeploymentListing, Error> {
    let mut learnt = DeploymentListing::default();
    for environment in environments.into_iter().take(MAX_ENVIRONMENTS) {
        learnt.requests += 1;
        let sample = match client.deployment_page(environment, SAMPLE_SIZE, None).await {
            Ok(sample) => sample,
            Err(Error::Forbidden { .. } | Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        if learnt.page_order == PageOrder::Unknown {
            learnt.page_order = PageOrder::of(&sample);
        }
        let Some(run) = telling_run(&sample) else {
            continue;
        };
        for (field, at) in run.windows() {
            let (Ok(from), Ok(to)) = (at.checked_sub(HALF_WINDOW), at.checked_add(HALF_WINDOW))
            else {
                continue;
            };
            learnt.requests += 1;
            let window = (from, to);
            let listed = match client
                .deployment_page(environment, PAGE_LIMIT, Some(window))
                .await
            {
                Ok(listed) => listed,
                Err(Error::Forbidden { .. } | Error::NotFound { .. }) => break,
                Err(e) => return Err(e),
            };
            if listed.iter().any(|l| l.id == run.id) {
                learnt.date_filter_field = field;
                learnt.environment_id = Some(environment.to_owned());
                return Ok(learnt);
            }
        }
    }
    Ok(learnt)
}

/// A run whose timestamps can be told apart by windows of ±1 ms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TellingRun {
    id: String,
    created: Timestamp,
    /// `None` when equal to `created`.
    queued: Option<Timestamp>,
    started: Timestamp,
}

impl TellingRun {
    /// The windows to ask, in turn, with the field each names.
    fn windows(&self) -> Vec<(DateFilterField, Timestamp)> {
        let mut out = vec![(DateFilterField::CreatedAt, self.created)];
        out.extend(self.queued.map(|q| (DateFilterField::QueuedAt, q)));
        out.push((DateFilterField::StartedAt, self.started));
        out
    }
}

/// The best run of `sample` to tell the field by: one whose `createdAt` < `queuedAt` <
/// `startedAt` are each at least 2 ms apart, else one whose `queuedAt` equals its `createdAt`
/// and whose `startedAt` is at least 2 ms later.
fn telling_run(sample: &[DeploymentLog]) -> Option<TellingRun> {
    let apart = |a: Timestamp, b: Timestamp| b.duration_since(a) >= HALF_WINDOW * 2;
    let mut tie = None;
    for log in sample {
        let (Some(created), Some(queued), Some(started)) =
            (log.created_at, log.queued_at, log.started_at)
        else {
            continue;
        };
        if apart(created, queued) && apart(queued, started) {
            return Some(TellingRun {
                id: log.id.clone(),
                created,
                queued: Some(queued),
                started,
            });
        }
        if tie.is_none() && created == queued && apart(created, started) {
            tie = Some(TellingRun {
                id: log.id.clone(),
                created,
                queued: None,
                started,
            });
        }
    }
    tie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn log(id: &str, created: &str, queued: &str, started: Option<&str>) -> DeploymentLog {
        let mut log: DeploymentLog =
            serde_json::from_value(serde_json::json!({ "id": id })).expect("a log");
        log.created_at = Some(ts(created));
        log.queued_at = Some(ts(queued));
        log.started_at = started.map(ts);
        log
    }

    #[test]
    fn the_page_order_is_read_from_created_at_and_anything_mixed_is_unknown() {
        let a = log("a", "2026-07-01T10:00:00Z", "2026-07-01T10:00:00Z", None);
        let b = log("b", "2026-07-01T11:00:00Z", "2026-07-01T11:00:00Z", None);
        let c = log("c", "2026-07-01T12:00:00Z", "2026-07-01T12:00:00Z", None);
        let b_again = log("b2", "2026-07-01T11:00:00Z", "2026-07-01T11:00:00Z", None);
        let page = |logs: &[&DeploymentLog]| logs.iter().map(|l| (*l).clone()).collect::<Vec<_>>();
        assert_eq!(
            PageOrder::of(&page(&[&c, &b, &b_again, &a])),
            PageOrder::Newest
        );
        assert_eq!(PageOrder::of(&page(&[&a, &b, &c])), PageOrder::Oldest);
        assert_eq!(PageOrder::of(&page(&[&a, &c, &b])), PageOrder::Unknown);
        assert_eq!(PageOrder::of(&page(&[&a])), PageOrder::Unknown);
        assert_eq!(PageOrder::of(&page(&[&b, &b_again])), PageOrder::Unknown);
        assert_eq!(PageOrder::of(&[]), PageOrder::Unknown);
    }

    #[test]
    fn a_run_with_three_distinct_timestamps_is_preferred_to_one_queued_when_created() {
        let tie = log(
            "tie",
            "2026-07-01T10:00:00Z",
            "2026-07-01T10:00:00Z",
            Some("2026-07-01T10:00:05Z"),
        );
        let close = log(
            "close",
            "2026-07-01T10:00:00.000Z",
            "2026-07-01T10:00:00.001Z",
            Some("2026-07-01T10:00:05Z"),
        );
        let unstarted = log("q", "2026-07-01T10:00:00Z", "2026-07-01T10:00:01Z", None);
        let distinct = log(
            "distinct",
            "2026-07-01T10:00:00Z",
            "2026-07-01T10:00:01Z",
            Some("2026-07-01T10:00:05Z"),
        );
        let sample = [tie.clone(), close.clone(), unstarted.clone(), distinct];
        let run = telling_run(&sample).expect("a run");
        assert_eq!(run.id, "distinct");
        assert_eq!(
            run.windows(),
            [
                (DateFilterField::CreatedAt, ts("2026-07-01T10:00:00Z")),
                (DateFilterField::QueuedAt, ts("2026-07-01T10:00:01Z")),
                (DateFilterField::StartedAt, ts("2026-07-01T10:00:05Z")),
            ]
        );
        let run = telling_run(&[close.clone(), tie, unstarted.clone()]).expect("a run");
        assert_eq!(run.id, "tie");
        assert_eq!(run.windows().len(), 2);
        // 1 ms apart cannot be told by a ±1 ms window; a run that has not started tells nothing.
        assert_eq!(telling_run(&[close, unstarted]), None);
    }

    #[test]
    fn the_names_are_env0s_field_names_and_the_orders_words() {
        let fields = [
            DateFilterField::CreatedAt,
            DateFilterField::QueuedAt,
            DateFilterField::StartedAt,
            DateFilterField::Unknown,
        ];
        let names: Vec<_> = fields.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["createdAt", "queuedAt", "startedAt", "unknown"]);
        let hides: Vec<_> = fields.iter().map(|f| f.hides_unstarted()).collect();
        assert_eq!(hides, [Some(false), Some(false), Some(true), None]);
        let orders = [PageOrder::Newest, PageOrder::Oldest, PageOrder::Unknown];
        let names: Vec<_> = orders.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["newest", "oldest", "unknown"]);
    }
}
