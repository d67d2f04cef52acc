//! Which environments a poll reads, and from when: the cost model of polling env0.
//!
//! env0 has no organisation-wide deployment listing, so every deployment read is per
//! environment. A poll lists the environments (whose embedded `latestDeploymentLog` shows what
//! changed) and then reads only:
//! 1. environments whose latest run changed (id or status) since their last read;
//! 2. environments holding an unfinished run that is not their latest one;
//! 3. environments not yet backfilled (the lookback window, once, at start);
//! 4. environments whose periodic full re-read is due (`--full-sync-interval`), because env0 does
//!    not say that every deployment type moves `latestDeploymentLog`. Due times are spread over
//!    the interval so no poll bursts.
//!
//! A read that does not happen (budget, error) leaves its reason in place, so the next poll
//! continues where this one stopped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::clock;

/// Overlap kept between incremental reads, for clock skew between env0 and the exporter.
pub const READ_OVERLAP: Duration = Duration::from_secs(300);

/// Why an environment is read this poll (also the order of priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadKind {
    /// Its latest run changed.
    Changed,
    /// It holds an unfinished run that is not its latest.
    Unfinished,
    /// Its lookback window has not been read yet.
    Backfill,
    /// Its periodic full re-read is due.
    FullSync,
}

impl ReadKind {
    /// Whether the read covers the whole lookback window.
    #[must_use]
    pub fn is_full(self) -> bool {
        matches!(self, Self::Backfill | Self::FullSync)
    }
}

/// The latest run of an environment as its listing shows it: (id, status).
pub type Latest = Option<(String, Option<String>)>;

/// What the poller remembers of one environment between polls.
#[derive(Debug, Clone, Default)]
pub struct EnvSchedule {
    /// The latest run as listed now.
    pub listed_latest: Latest,
    /// The latest run as listed when the environment was last read.
    pub read_latest: Latest,
    /// Whether the lookback window has been read.
    pub backfilled: bool,
    /// The `toDate` of the last successful read.
    pub last_read: Option<Timestamp>,
    /// When the next full re-read is due.
    pub next_full_sync: Option<Timestamp>,
    /// Archived environments get no periodic full re-read once they have been quiet for longer
    /// than the lookback window: nothing they hold can still change what is shown.
    pub archived: bool,
    /// The environment's `updatedAt` as listed.
    pub updated_at: Option<Timestamp>,
}

/// One planned read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRead {
    /// The environment.
    pub environment: Arc<str>,
    /// Why.
    pub kind: ReadKind,
    /// `fromDate` of the listing.
    pub from: Timestamp,
}

/// Unfinished runs per environment: the oldest one's creation time and the ids.
#[derive(Debug, Default)]
pub struct Unfinished {
    /// Creation time of the oldest unfinished run.
    pub oldest_created: Option<Timestamp>,
    /// Ids of the unfinished runs.
    pub ids: Vec<Box<str>>,
}

/// Decides the reads of one poll at `now`, in priority order.
#[must_use]
pub fn plan(
    schedule: &HashMap<Arc<str>, EnvSchedule>,
    unfinished: &HashMap<Arc<str>, Unfinished>,
    now: Timestamp,
    lookback: Duration,
    full_sync: bool,
) -> Vec<PlannedRead> {
    let window_start = clock::sub(now, lookback);
    let mut reads: Vec<PlannedRead> = schedule
        .iter()
        .filter_map(|(env, s)| {
            let open = unfinished.get(env);
            let latest_id = s.listed_latest.as_ref().map(|(id, _)| id.as_str());
            let kind = if !s.backfilled {
                ReadKind::Backfill
            } else if s.listed_latest != s.read_latest {
                ReadKind::Changed
            } else if open.is_some_and(|u| u.ids.iter().any(|id| Some(&**id) != latest_id)) {
                ReadKind::Unfinished
            } else if full_sync
                && !(s.archived && s.updated_at.is_some_and(|u| u < window_start))
                && s.next_full_sync.is_none_or(|due| due <= now)
            {
                ReadKind::FullSync
            } else {
                return None;
            };
            let base = if kind.is_full() {
                window_start
            } else {
                s.last_read.map_or(window_start, |t| {
                    clock::sub(t, READ_OVERLAP).max(window_start)
                })
            };
            let from = open
                .and_then(|u| u.oldest_created)
                .map_or(base, |oldest| oldest.min(base));
            Some(PlannedRead {
                environment: env.clone(),
                kind,
                from,
            })
        })
        .collect();
    reads.sort_by(|a, b| {
        a.kind
            .cmp(&b.kind)
            .then_with(|| a.environment.cmp(&b.environment))
    });
    reads
}

/// The first full re-read of a freshly backfilled environment: spread over the interval by a
/// stable hash of its id, so that environments backfilled together are not all due together.
#[must_use]
pub fn first_full_sync(environment: &str, now: Timestamp, interval: Duration) -> Timestamp {
    // FNV-1a: stable across runs and platforms (std's hasher is randomly seeded).
    let hash = crate::shard::fnv1a(environment);
    let fraction = f64::from(u32::try_from(hash % 1024).unwrap_or(0)) / 1024.0;
    clock::add(now, interval.mul_f64(fraction))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[allow(clippy::unnecessary_wraps)] // the shape of `Latest`, as the schedule holds it
    fn latest(id: &str, status: &str) -> Latest {
        Some((id.into(), Some(status.into())))
    }

    fn settled(id: &str, status: &str, last_read: &str) -> EnvSchedule {
        EnvSchedule {
            listed_latest: latest(id, status),
            read_latest: latest(id, status),
            backfilled: true,
            last_read: Some(ts(last_read)),
            next_full_sync: Some(ts("2026-07-02T00:00:00Z")),
            archived: false,
            updated_at: Some(ts("2026-07-01T11:00:00Z")),
        }
    }

    #[test]
    fn nothing_is_read_when_nothing_changed() {
        let schedule = HashMap::from([(
            Arc::from("e1"),
            settled("d1", "SUCCESS", "2026-07-01T11:59:00Z"),
        )]);
        let reads = plan(
            &schedule,
            &HashMap::new(),
            ts("2026-07-01T12:00:00Z"),
            DAY,
            true,
        );
        assert!(reads.is_empty(), "{reads:?}");
    }

    #[test]
    fn each_reason_to_read_is_planned_in_priority_order_with_its_from_date() {
        let now = ts("2026-07-01T12:00:00Z");
        let mut changed = settled("d1", "SUCCESS", "2026-07-01T11:59:00Z");
        changed.listed_latest = latest("d1", "FAILURE");
        let holding = settled("d2", "SUCCESS", "2026-07-01T11:59:00Z");
        let fresh = EnvSchedule::default();
        let mut due = settled("d3", "SUCCESS", "2026-07-01T11:59:00Z");
        due.next_full_sync = Some(ts("2026-07-01T11:00:00Z"));
        // Archived within the window: its queued runs may still finish, keep re-reading it.
        let mut archived_recently = due.clone();
        archived_recently.archived = true;
        // Archived and quiet for longer than the window: nothing left to learn.
        let mut archived_long_ago = archived_recently.clone();
        archived_long_ago.updated_at = Some(ts("2026-06-20T00:00:00Z"));
        let schedule = HashMap::from([
            (Arc::from("a-fresh"), fresh),
            (Arc::from("b-due"), due),
            (Arc::from("c-holding"), holding),
            (Arc::from("d-changed"), changed),
            (Arc::from("e-archived-recently"), archived_recently),
            (Arc::from("f-archived-long-ago"), archived_long_ago),
        ]);
        let unfinished = HashMap::from([(
            Arc::from("c-holding"),
            Unfinished {
                oldest_created: Some(ts("2026-06-30T01:00:00Z")),
                ids: vec!["old-plan".into()],
            },
        )]);
        let reads = plan(&schedule, &unfinished, now, DAY, true);
        let got: Vec<(&str, ReadKind, Timestamp)> = reads
            .iter()
            .map(|r| (&*r.environment, r.kind, r.from))
            .collect();
        assert_eq!(
            got,
            vec![
                ("d-changed", ReadKind::Changed, ts("2026-07-01T11:54:00Z")),
                // The unfinished run is older than the window: the read reaches back to it.
                (
                    "c-holding",
                    ReadKind::Unfinished,
                    ts("2026-06-30T01:00:00Z")
                ),
                ("a-fresh", ReadKind::Backfill, ts("2026-06-30T12:00:00Z")),
                ("b-due", ReadKind::FullSync, ts("2026-06-30T12:00:00Z")),
                (
                    "e-archived-recently",
                    ReadKind::FullSync,
                    ts("2026-06-30T12:00:00Z")
                ),
            ]
        );
        // Full sync off: the due environment is left alone.
        let reads = plan(&schedule, &unfinished, now, DAY, false);
        assert!(reads.iter().all(|r| r.kind != ReadKind::FullSync));
    }

    #[test]
    fn an_unfinished_run_that_is_the_latest_needs_no_extra_read() {
        let schedule = HashMap::from([(
            Arc::from("e1"),
            settled("d1", "IN_PROGRESS", "2026-07-01T11:59:00Z"),
        )]);
        let unfinished = HashMap::from([(
            Arc::from("e1"),
            Unfinished {
                oldest_created: Some(ts("2026-07-01T11:50:00Z")),
                ids: vec!["d1".into()],
            },
        )]);
        assert!(
            plan(
                &schedule,
                &unfinished,
                ts("2026-07-01T12:00:00Z"),
                DAY,
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn first_full_syncs_spread_over_the_interval() {
        let now = ts("2026-07-01T12:00:00Z");
        let interval = Duration::from_secs(600);
        let mut per_minute = [0u32; 10];
        for i in 0..1000 {
            let due = first_full_sync(&format!("env-{i}"), now, interval);
            let offset = clock::elapsed(now, due);
            assert!(offset < interval);
            per_minute[usize::try_from(offset.as_secs() / 60).unwrap()] += 1;
        }
        // 100 per minute on average; no minute gets more than twice its share.
        assert!(
            per_minute.iter().all(|&n| (50..=200).contains(&n)),
            "{per_minute:?}"
        );
        assert_eq!(
            first_full_sync("env-1", now, interval),
            first_full_sync("env-1", now, interval)
        );
    }
}
