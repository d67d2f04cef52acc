//! The rules for unfinished runs that are not their environment's latest (plans, drift
//! detections, remote plans: runs that never move `latestDeploymentLog`), as pure functions:
//! - **young** runs (younger than runs of their type usually take: [`YoungThresholds`]) are
//!   re-read every poll, so their finish shows within two poll intervals, unless webhooks are
//!   live ([`webhooks_live`]) and the deliveries are known to bring their ends ([`covered`]: a
//!   delivery from their project, a success and another end of their type, within a day): then
//!   the deliveries bring their changes, and every such run is re-read only
//!   `--unfinished-reread-max-interval` after its environment's last read and after its own start
//!   ([`is_overdue`]), to repair a lost delivery;
//! - runs past that back off ([`next_unfinished_step`]), and those back-off re-reads take
//!   at most [`LONG_HELD_SHARE`] of the request budget: when more are due than that allows, their
//!   interval stretches ([`long_held_interval_in_force`]) and the poll reads the oldest due first.
//!
//! A run's age is measured on env0's clock: its own `startedAt` (else `createdAt`) against env0's
//! "now" as the client estimates it at its earliest (see [`crate::poller::env0_time_bounds`]).
//! A run first seen at start-up is then young or old by its true age, not by when this process
//! met it; an estimate that trails (no `Date` header) only makes runs look younger, which costs
//! reads, never freshness. Ages decide only when a read is made, never a count.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::ReadKind;
use crate::clock;

/// The percentile of a type's finished durations below which a run of that type is young.
pub const YOUNG_PERCENTILE: f64 = 0.9;
/// The shortest young threshold: a run is re-read every poll for at least its first minute.
pub const YOUNG_MIN: Duration = Duration::from_secs(60);
/// The longest young threshold: a type whose runs usually take hours is not re-read every poll
/// for hours.
pub const YOUNG_MAX: Duration = Duration::from_secs(3600);
/// The young threshold of a type with no finished duration seen yet.
pub const YOUNG_UNKNOWN: Duration = Duration::from_secs(900);
/// Finished durations of a type needed before their percentile replaces [`YOUNG_UNKNOWN`].
pub const YOUNG_MIN_SAMPLES: usize = 5;
/// Webhooks are live while a verified delivery arrived within this long (the exporter's clock).
pub const WEBHOOKS_LIVE_WITHIN: Duration = Duration::from_secs(600);
/// A delivery counts towards its project's and its type's being covered ([`covered`]) this long
/// (the exporter's clock).
pub const COVERED_WITHIN: Duration = Duration::from_secs(24 * 3600);
/// Share of `--max-requests-per-minute` the back-off re-reads of unfinished non-latest runs may
/// use.
pub const LONG_HELD_SHARE: f64 = 0.10;

/// Per deployment type, the age below which its unfinished runs are young.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct YoungThresholds {
    per_type: HashMap<Arc<str>, Duration>,
}

impl YoungThresholds {
    /// The thresholds from finished runs' durations (type, `startedAt` to `finishedAt`): per
    /// type, the [`YOUNG_PERCENTILE`] (nearest rank) within [`YOUNG_MIN`]..=[`YOUNG_MAX`], to the
    /// second above; a type with fewer than [`YOUNG_MIN_SAMPLES`] durations keeps
    /// [`YOUNG_UNKNOWN`]. Durations are counted per whole second within the bounds (clamping
    /// before the percentile gives the same answer as after): the memory is a few kilobytes a
    /// type, whatever the number of runs the store holds.
    #[must_use]
    pub fn from_durations(durations: impl IntoIterator<Item = (Arc<str>, Duration)>) -> Self {
        let (min, max) = (YOUNG_MIN.as_secs(), YOUNG_MAX.as_secs());
        let width = usize::try_from(max - min + 1).unwrap_or(usize::MAX);
        let mut by_type: HashMap<Arc<str>, (usize, Vec<u32>)> = HashMap::new();
        for (deployment_type, d) in durations {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            let bucket = usize::try_from(secs.clamp(min, max) - min).unwrap_or(width - 1);
            let (n, counts) = by_type
                .entry(deployment_type)
                .or_insert_with(|| (0, vec![0; width]));
            *n += 1;
            counts[bucket] = counts[bucket].saturating_add(1);
        }
        let per_type = by_type
            .into_iter()
            .filter(|(_, (n, _))| *n >= YOUNG_MIN_SAMPLES)
            .map(|(t, (n, counts))| {
                let rank = nearest_rank(n, YOUNG_PERCENTILE);
                let mut seen = 0usize;
                let bucket = counts
                    .iter()
                    .position(|c| {
                        seen += *c as usize;
                        seen >= rank
                    })
                    .unwrap_or(width - 1);
                (t, Duration::from_secs(min + bucket as u64))
            })
            .collect();
        Self { per_type }
    }

    /// The young threshold of `deployment_type`.
    #[must_use]
    pub fn threshold(&self, deployment_type: &str) -> Duration {
        self.per_type
            .get(deployment_type)
            .copied()
            .unwrap_or(YOUNG_UNKNOWN)
    }

    /// Whether a run of `deployment_type` that started (else was created) at `since`, on env0's
    /// clock, is young at env0's `now`.
    #[must_use]
    pub fn is_young(&self, deployment_type: &str, since: Timestamp, now: Timestamp) -> bool {
        clock::elapsed(since, now) < self.threshold(deployment_type)
    }
}

/// The 1-based nearest rank of the `p` percentile among `n` values: ⌈n × p⌉, at least 1.
fn nearest_rank(n: usize, p: f64) -> usize {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let rank = ((n as f64) * p).ceil().max(1.0) as usize;
    rank.min(n)
}

/// Whether a run that started (else was created) at `since`, on env0's clock, is overdue at
/// env0's `now` for re-reads `interval` apart: it is at least that old. With webhooks live, only
/// an overdue run is re-read: the end of a younger one came less than `interval` ago, so a lost
/// delivery of it is still within the bound. `now` is to be env0's time at its latest, so that an
/// estimate's error makes runs look older (an early read), never younger.
#[must_use]
pub fn is_overdue(since: Timestamp, now: Timestamp, interval: Duration) -> bool {
    clock::elapsed(since, now) >= interval
}

/// Whether webhooks are live at `now` (the exporter's clock): a verified delivery arrived at
/// `last_delivery` within [`WEBHOOKS_LIVE_WITHIN`].
#[must_use]
pub fn webhooks_live(last_delivery: Option<Timestamp>, now: Timestamp) -> bool {
    last_delivery.is_some_and(|t| clock::elapsed(t, now) < WEBHOOKS_LIVE_WITHIN)
}

/// When (the exporter's clock) deliveries last brought the ends of runs of one type: a success,
/// and an end of any other kind (failed, cancelled, …).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndsSeen {
    /// The last delivered end with status `SUCCESS`.
    pub succeeded: Option<Timestamp>,
    /// The last delivered end with another finished status.
    pub otherwise: Option<Timestamp>,
}

impl EndsSeen {
    /// Notes an end delivered at `at`, a success or not.
    pub fn note(&mut self, succeeded: bool, at: Timestamp) {
        if succeeded {
            self.succeeded = Some(at);
        } else {
            self.otherwise = Some(at);
        }
    }
}

/// Whether the deliveries are known to bring the ends of runs of a type in a project, at `now`
/// (the exporter's clock): a delivery of the project arrived at `project_seen`, and a success
/// and another end of runs of the type (`type_ends`, in any project) were delivered, all within
/// [`COVERED_WITHIN`]. env0 sends a notification target only the events of the projects
/// associated with it, and of those only the events chosen (a success and a failure are two
/// events); it lists no event for some types and outcomes (a PR plan's failure, not its
/// success). Live webhooks say nothing of the projects and ends they never brought, so runs whose
/// ends may not come keep the polling rules. The events chosen are taken to be the same in every
/// project that sends any: a project that chose fewer than the others, or a run ending in a way
/// never delivered (cancelled, where only failures are), is still seen within the repair bound.
#[must_use]
pub fn covered(
    project_seen: Option<Timestamp>,
    type_ends: Option<&EndsSeen>,
    now: Timestamp,
) -> bool {
    recent(project_seen, now) && ends_covered(type_ends, now)
}

/// The type's part of [`covered`]: a success and another end delivered within
/// [`COVERED_WITHIN`] of `now`.
#[must_use]
pub fn ends_covered(type_ends: Option<&EndsSeen>, now: Timestamp) -> bool {
    type_ends.is_some_and(|s| recent(s.succeeded, now) && recent(s.otherwise, now))
}

/// Whether a delivery at `at` is within [`COVERED_WITHIN`] of `now`.
#[must_use]
pub fn recent(at: Option<Timestamp>, now: Timestamp) -> bool {
    at.is_some_and(|t| clock::elapsed(t, now) < COVERED_WITHIN)
}

/// Back-off re-reads of unfinished non-latest runs a minute may take: [`LONG_HELD_SHARE`] of the
/// budget, at least one.
#[must_use]
pub fn long_held_capacity(budget_per_minute: u32) -> f64 {
    (f64::from(budget_per_minute) * LONG_HELD_SHARE).max(1.0)
}

/// The longest gap between back-off re-reads of an environment kept for `held` environments
/// whose unfinished non-latest runs back off: `configured` (`--unfinished-reread-max-interval`)
/// when [`long_held_capacity`] reads them all within it (one read each per interval, in the
/// steady state), else the time that capacity takes to read them all, in whole seconds.
#[must_use]
pub fn long_held_interval_in_force(
    configured: Duration,
    held: usize,
    budget_per_minute: u32,
) -> Duration {
    #[allow(clippy::cast_precision_loss)]
    let minutes = held as f64 / long_held_capacity(budget_per_minute);
    configured.max(Duration::from_secs_f64((minutes * 60.0).ceil().min(1e9)))
}

/// Back-off re-reads one poll may make: its part of [`long_held_capacity`], rounded up.
#[must_use]
pub fn long_held_rereads_per_poll(budget_per_minute: u32, poll_interval: Duration) -> usize {
    super::per_poll(long_held_capacity(budget_per_minute), poll_interval)
}

/// Unfinished runs per environment: the oldest one's creation time and the ids.
#[derive(Debug, Default)]
pub struct Unfinished {
    /// Creation time of the oldest unfinished run.
    pub oldest_created: Option<Timestamp>,
    /// Ids of the unfinished runs.
    pub ids: Vec<Box<str>>,
    /// Ids of those that are young ([`YoungThresholds`]) when planned.
    pub young: Vec<Box<str>>,
    /// Ids of those that started (else were created) at least the re-read interval in force ago
    /// ([`is_overdue`]): with webhooks live, only these can have lost the delivery
    /// of an end more than that interval ago.
    pub overdue: Vec<Box<str>>,
    /// Ids of those whose ends the webhook deliveries are not known to bring
    /// ([`covered`]: their project not heard from, or not both a success and another
    /// end of their type delivered, lately): even while webhooks are live, the polling rules
    /// apply to them.
    pub uncovered: Vec<Box<str>>,
}

impl Unfinished {
    /// Whether a young run other than `latest` is among them.
    #[must_use]
    pub fn holds_young(&self, latest: Option<&str>) -> bool {
        any_but(&self.young, latest)
    }

    /// Whether an overdue run other than `latest` is among them.
    #[must_use]
    pub fn holds_overdue(&self, latest: Option<&str>) -> bool {
        any_but(&self.overdue, latest)
    }

    /// Whether the polling rules apply to an environment holding these runs, `latest` left out:
    /// webhooks are not live (`polling_only`), or one of them is uncovered (its end may never be
    /// delivered).
    #[must_use]
    pub fn polled(&self, latest: Option<&str>, polling_only: bool) -> bool {
        polling_only || any_but(&self.uncovered, latest)
    }

    /// Whether, with these runs held, an environment backs off rather than being read every
    /// poll, and whether a re-read of it is of any use: under the polling rules
    /// ([`Self::polled`]), it holds no young run other than `latest`; else (the deliveries bring
    /// every change of its runs) it holds an overdue one (a run younger than the interval has
    /// not yet missed a delivery by more than it).
    #[must_use]
    pub fn backs_off(&self, latest: Option<&str>, polling_only: bool) -> bool {
        if self.polled(latest, polling_only) {
            !self.holds_young(latest)
        } else {
            self.holds_overdue(latest)
        }
    }
}

/// Whether `ids` holds a run other than `latest`.
fn any_but(ids: &[Box<str>], latest: Option<&str>) -> bool {
    ids.iter().any(|id| Some(&**id) != latest)
}

/// A stable fingerprint of an environment's unfinished runs other than its latest; `None` when
/// there are none. The order of `ids` does not matter.
#[must_use]
pub fn unfinished_fingerprint(ids: &[Box<str>], latest: Option<&str>) -> Option<u64> {
    let mut held: Vec<&str> = ids
        .iter()
        .map(|id| &**id)
        .filter(|id| Some(*id) != latest)
        .collect();
    if held.is_empty() {
        return None;
    }
    held.sort_unstable();
    held.dedup();
    let mut hash = crate::shard::FNV_OFFSET;
    for id in held {
        hash = crate::shard::fnv1a_extend(hash, id.as_bytes());
        hash = crate::shard::fnv1a_extend(hash, &[0]);
    }
    Some(hash)
}

/// The gap to the next re-read of unfinished non-latest runs after a read of `kind`: doubled
/// after such a re-read (at least `first`, at most `max`), `first` after any other read. `first`
/// is [`first_unfinished_step`].
#[must_use]
pub fn next_unfinished_step(
    previous: Duration,
    kind: ReadKind,
    first: Duration,
    max: Duration,
) -> Duration {
    let step = if kind == ReadKind::Unfinished {
        previous.saturating_mul(2)
    } else {
        first
    };
    step.max(first).min(max.max(first))
}

/// The gap to the first re-read of unfinished non-latest runs after a read of another kind: one
/// poll interval when `polling_only`; with webhooks live, `max`, so every gap is `max` (the
/// re-reads only repair a lost delivery).
#[must_use]
pub fn first_unfinished_step(
    polling_only: bool,
    poll_interval: Duration,
    max: Duration,
) -> Duration {
    if polling_only { poll_interval } else { max }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn mins(m: u64) -> Duration {
        Duration::from_secs(60 * m)
    }

    fn thresholds(durations: &[(&str, u64)]) -> YoungThresholds {
        YoungThresholds::from_durations(
            durations
                .iter()
                .map(|&(t, secs)| (Arc::from(t), Duration::from_secs(secs))),
        )
    }

    #[test]
    fn the_young_threshold_is_the_90th_percentile_of_a_types_durations_within_bounds() {
        // Plans of 1..=10 minutes: the nearest-rank 90th percentile of ten is the 9th, 9 min.
        let plans: Vec<(&str, u64)> = (1..=10).map(|m| ("plan", m * 60)).collect();
        // Deploys of 2 h: bounded at an hour. Drift detections of 10 s: at least a minute.
        let mut all = plans.clone();
        all.extend((0..5).map(|_| ("deploy", 7200)));
        all.extend((0..5).map(|_| ("driftDetection", 10)));
        // Four destroys: too few to tell, the default.
        all.extend((0..4).map(|_| ("destroy", 30)));
        let t = thresholds(&all);
        assert_eq!(t.threshold("plan"), mins(9));
        assert_eq!(t.threshold("deploy"), mins(60));
        assert_eq!(t.threshold("driftDetection"), mins(1));
        assert_eq!(t.threshold("destroy"), mins(15));
        assert_eq!(t.threshold("never-seen"), mins(15));
        assert_eq!(YoungThresholds::default().threshold("plan"), mins(15));
    }

    #[test]
    fn a_threshold_is_rounded_up_to_the_second() {
        // Nine plans of 100.2 s and one of 10 min: the 90th percentile is 100.2 s, kept as 101.
        let mut d: Vec<(Arc<str>, Duration)> = (0..9)
            .map(|_| (Arc::from("plan"), Duration::from_millis(100_200)))
            .collect();
        d.push((Arc::from("plan"), mins(10)));
        let t = YoungThresholds::from_durations(d);
        assert_eq!(t.threshold("plan"), Duration::from_secs(101));
    }

    proptest::proptest! {
        #[test]
        fn the_counted_percentile_is_the_sorted_one_rounded_up_and_bounded(
            millis in proptest::collection::vec(0u64..5_000_000, 5..400),
        ) {
            // The reference: sort, take the nearest rank, round up to the second, bound.
            let mut sorted = millis.clone();
            sorted.sort_unstable();
            let rank = (sorted.len() * 9).div_ceil(10);
            let secs = sorted[rank - 1].div_ceil(1000).clamp(60, 3600);
            let t = YoungThresholds::from_durations(
                millis.iter().map(|&m| (Arc::from("t"), Duration::from_millis(m))),
            );
            proptest::prop_assert_eq!(t.threshold("t"), Duration::from_secs(secs));
        }
    }

    #[test]
    fn a_run_is_young_by_env0s_clock_until_its_types_threshold() {
        let t = thresholds(&(1..=10).map(|m| ("plan", m * 60)).collect::<Vec<_>>());
        let started = ts("2026-07-01T12:00:00Z");
        // Seen first at 12:03 (young) or first seen at start-up at 13:00 (old already): age is
        // env0's now minus its start, whenever this process met it.
        assert!(t.is_young("plan", started, ts("2026-07-01T12:03:00Z")));
        assert!(t.is_young("plan", started, ts("2026-07-01T12:08:59Z")));
        assert!(!t.is_young("plan", started, ts("2026-07-01T12:09:00Z")));
        assert!(!t.is_young("plan", started, ts("2026-07-01T13:00:00Z")));
        // No data for deploys: young for 15 minutes.
        assert!(t.is_young("deploy", started, ts("2026-07-01T12:14:59Z")));
        assert!(!t.is_young("deploy", started, ts("2026-07-01T12:15:00Z")));
    }

    #[test]
    fn webhooks_are_live_for_ten_minutes_after_a_verified_delivery() {
        let at = ts("2026-07-01T12:00:00Z");
        assert!(!webhooks_live(None, at));
        assert!(webhooks_live(Some(at), at));
        assert!(webhooks_live(Some(at), ts("2026-07-01T12:09:59Z")));
        assert!(!webhooks_live(Some(at), ts("2026-07-01T12:10:00Z")));
    }

    #[test]
    fn a_type_is_covered_in_a_project_heard_from_by_a_success_and_another_end_within_a_day() {
        let at = ts("2026-07-01T12:00:00Z");
        let later = ts("2026-07-01T18:00:00Z");
        let project = Some(at);
        assert!(!covered(project, None, at));
        let mut seen = EndsSeen::default();
        seen.note(false, at);
        // Failures only (a PR plan's failure is an event, its success is not): not covered.
        assert!(!covered(project, Some(&seen), at));
        seen.note(true, later);
        assert!(covered(project, Some(&seen), later));
        // A project never heard from is not, whatever its type's ends elsewhere.
        assert!(!covered(None, Some(&seen), later));
        // Each counts for a day from its own delivery: the failure's and the project's day end
        // first.
        assert!(covered(project, Some(&seen), ts("2026-07-02T11:59:59Z")));
        assert!(!covered(project, Some(&seen), ts("2026-07-02T12:00:00Z")));
        seen.note(false, ts("2026-07-02T12:00:00Z"));
        let project = Some(ts("2026-07-02T12:00:00Z"));
        assert!(covered(project, Some(&seen), ts("2026-07-02T17:59:59Z")));
        assert!(!covered(project, Some(&seen), ts("2026-07-02T18:00:00Z")));
    }

    #[test]
    fn a_run_is_overdue_once_it_is_as_old_as_the_interval() {
        let started = ts("2026-07-01T12:00:00Z");
        assert!(!is_overdue(started, ts("2026-07-01T12:09:59Z"), mins(10)));
        assert!(is_overdue(started, ts("2026-07-01T12:10:00Z"), mins(10)));
        assert!(is_overdue(started, ts("2026-07-01T13:00:00Z"), mins(10)));
    }

    #[test]
    fn long_held_rereads_keep_a_tenth_of_the_budget_and_stretch_their_interval_past_it() {
        // 500 a minute: 50 back-off re-reads a minute, 50 a 60 s poll, 250 a 5-minute one.
        assert!((long_held_capacity(500) - 50.0).abs() < 1e-9);
        assert_eq!(long_held_rereads_per_poll(500, mins(1)), 50);
        assert_eq!(long_held_rereads_per_poll(500, mins(5)), 250);
        // A tiny budget still re-reads one a poll.
        assert_eq!(long_held_rereads_per_poll(5, mins(1)), 1);
        // 400 environments re-read every 10 minutes: 40 a minute, within the share.
        assert_eq!(long_held_interval_in_force(mins(10), 400, 500), mins(10));
        // 4,000 (the large organisation): 80 minutes at 50 a minute.
        assert_eq!(long_held_interval_in_force(mins(10), 4000, 500), mins(80));
        // 4,010: rounded up to the second.
        assert_eq!(
            long_held_interval_in_force(mins(10), 4010, 500),
            Duration::from_secs(4812)
        );
        assert_eq!(long_held_interval_in_force(mins(10), 0, 500), mins(10));
    }
}
