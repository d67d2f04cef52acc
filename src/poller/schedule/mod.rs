//! Which environments a poll reads, and from when: the cost model of polling env0.
//!
//! env0 has no organisation-wide deployment listing, so every deployment read is per
//! environment. A poll lists the environments (whose embedded `latestDeploymentLog` shows what
//! changed) and then reads only:
//! 1. environments whose latest run changed (id or status) since their last read;
//! 2. environments holding an unfinished run that is not their latest one: every poll while one
//!    of those runs is young, or the set of them changed ([`ReadKind::Fresh`], see [`unfinished`]);
//!    otherwise backing off: the next poll first, then after 2, 4, 8… poll intervals up to
//!    `--unfinished-reread-max-interval` (stretched when those re-reads would take more than
//!    their share of the budget), from the last read of the environment; any other read of the
//!    environment starts over. A stuck plan costs a read per maximum interval, not per poll, and
//!    its status is never staler than that maximum plus one poll. With webhooks live the
//!    deliveries bring those runs' changes: neither youth nor a changed set makes a read, and
//!    the re-reads, there only to repair a lost delivery, come at the maximum interval from the
//!    later of the environment's last read (any read of it refreshes them) and the start (else
//!    creation) of its oldest such run ([`Unfinished::overdue`]): a run younger than the
//!    interval cannot have lost a delivery longer ago than that, so one that starts and
//!    finishes within it, its end delivered, costs no read. This holds for the runs the
//!    deliveries are known to cover ([`unfinished::covered`]); an environment holding another
//!    keeps the polling rules ([`Unfinished::polled`]);
//! 3. environments not yet backfilled (the lookback window, once, at start);
//! 4. environments whose periodic full re-read is due (`--full-sync-interval`), because env0 does
//!    not say that every deployment type moves `latestDeploymentLog`. Due times are spread over
//!    the interval so no poll bursts; when the request budget cannot hold the interval for this
//!    many environments, longer ones are kept on purpose, and busy environments (their latest
//!    run changed within [`BUSY_WINDOW`]) keep a shorter one than quiet ones
//!    ([`full_sync_intervals`]).
//!
//! While a backfill is pending, the environments are listed only every few polls
//! ([`polls_per_listing_while_backfilling`]) and the other reads (changes of environments
//! already read, re-reads of unfinished runs, young or backing off) wait behind the backfill's
//! own reads ([`backfill_first`]): the budget goes to the backfill.
//!
//! A read that does not happen (budget, error) leaves its reason in place, so the next poll
//! continues where this one stopped.
//!
//! This module holds the policy, as pure functions of what is remembered; [`Schedule`] holds
//! what is remembered (per environment, the listing counts, the full re-read interval in force)
//! and applies the policy to it.

mod environments;
pub mod unfinished;

pub use unfinished::{
    Unfinished, first_unfinished_step, next_unfinished_step, unfinished_fingerprint,
};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::clock;

pub use environments::Schedule;

/// Overlap kept between incremental reads, for clock skew between env0 and the exporter.
pub const READ_OVERLAP: Duration = Duration::from_secs(300);

/// Why an environment is read this poll (also the order of priority).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReadKind {
    /// Its latest run changed.
    Changed,
    /// It holds an unfinished run that is not its latest and is young (re-read every poll), or
    /// a set of such runs not read yet.
    Fresh,
    /// It holds an unfinished run that is not its latest, re-read with the back-off.
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
    /// The unfinished non-latest runs as the last read left them ([`unfinished_fingerprint`]);
    /// a different set is read at once.
    pub unfinished_seen: Option<u64>,
    /// The gap from the last read to the next re-read of its unfinished non-latest runs: one
    /// poll interval after any other read, doubled by each such re-read, up to the maximum.
    pub unfinished_step: Duration,
    /// When (the exporter's clock) those runs are next re-read.
    pub next_unfinished_read: Option<Timestamp>,
    /// When (the exporter's clock) the last read of the whole lookback window finished.
    pub last_full_read: Option<Timestamp>,
    /// When (the exporter's clock) the poll that read its changed latest run was planned: its
    /// runs happen now, so its full re-read comes more often ([`full_sync_intervals`]).
    pub last_changed: Option<Timestamp>,
}

impl EnvSchedule {
    /// Whether the periodic full re-read leaves this environment alone at `window_start`:
    /// archived and quiet for longer than the lookback window.
    #[must_use]
    pub fn full_sync_exempt(&self, window_start: Timestamp) -> bool {
        self.archived && self.updated_at.is_some_and(|u| u < window_start)
    }

    /// Whether its latest run changed within [`BUSY_WINDOW`] before `local` (the exporter's
    /// clock).
    #[must_use]
    pub fn is_busy(&self, local: Timestamp) -> bool {
        self.last_changed
            .is_some_and(|t| clock::elapsed(t, local) < BUSY_WINDOW)
    }

    /// Notes, in the exporter's own schedules, a read of `kind` made in the poll planned at
    /// `planned` (the exporter's clock), of an environment that held the unfinished non-latest
    /// runs `held.0` when planned and `held.1` after the read ([`unfinished_fingerprint`]).
    /// Counting from the plan, not the read, keeps "the next poll" exactly one poll interval
    /// later however long this poll's reads took. `first_step` is the gap to the first re-read
    /// after a read of another kind: one poll interval, or `max` while webhooks are live.
    pub fn note_read(
        &mut self,
        kind: ReadKind,
        planned: Timestamp,
        held: (Option<u64>, Option<u64>),
        first_step: Duration,
        max: Duration,
    ) {
        // A re-read because the set changed starts the back-off over, like any other read.
        let backing_off = kind == ReadKind::Unfinished && self.unfinished_seen == held.0;
        let step_kind = if backing_off { kind } else { ReadKind::Changed };
        self.unfinished_step =
            next_unfinished_step(self.unfinished_step, step_kind, first_step, max);
        self.next_unfinished_read = Some(clock::add(planned, self.unfinished_step));
        self.unfinished_seen = held.1;
        if matches!(kind, ReadKind::Backfill | ReadKind::FullSync) {
            self.last_full_read = Some(planned);
        }
    }
}

/// Times a plan is made at: env0's (for its timestamps) and the exporter's (for its own
/// schedules, which must not move with env0's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanTime {
    /// env0's time now, as estimated.
    pub env0: Timestamp,
    /// The exporter's clock now.
    pub local: Timestamp,
}

/// One planned read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRead {
    /// The environment.
    pub environment: Arc<str>,
    /// Why.
    pub kind: ReadKind,
    /// Whether it reads the whole lookback window and counts as the environment's full read: a
    /// backfill, a full re-read, or a read of another kind made while the full re-read is due
    /// (see [`plan`]).
    pub full: bool,
    /// `fromDate` of the listing.
    pub from: Timestamp,
    /// Whether the polling rules applied to the environment's unfinished non-latest runs when
    /// planned ([`Unfinished::polled`]): the first gap to their re-read after this read is one
    /// poll, else the maximum ([`first_unfinished_step`]).
    pub polled: bool,
}

/// Whether an environment holding unfinished non-latest runs (`held`) with `open` is read this
/// poll, ahead of the back-off: when the polling rules apply to it (`polled`, see
/// [`Unfinished::polled`]: webhooks are not live, see [`unfinished::webhooks_live`], or one of
/// its runs is uncovered), if the set changed since its last read or one of them is young. Else
/// never: the deliveries bring what changed (a run new to the set came by one), and the back-off
/// re-reads repair what a lost delivery would have brought.
fn reads_fresh(
    s: &EnvSchedule,
    open: Option<&Unfinished>,
    held: Option<u64>,
    polled: bool,
) -> bool {
    let latest = s.listed_latest.as_ref().map(|(id, _)| id.as_str());
    polled
        && held.is_some_and(|held| {
            s.unfinished_seen != Some(held) || open.is_some_and(|u| u.holds_young(latest))
        })
}

/// Environments holding unfinished non-latest runs that back off ([`Unfinished::backs_off`]:
/// none young, or webhooks live and one overdue): what their share of the budget must re-read
/// each interval.
#[must_use]
pub fn backing_off(
    schedule: &HashMap<Arc<str>, EnvSchedule>,
    unfinished: &HashMap<Arc<str>, Unfinished>,
    polling_only: bool,
) -> usize {
    unfinished
        .iter()
        .filter(|(env, open)| {
            schedule.get(*env).is_some_and(|s| {
                let latest = s.listed_latest.as_ref().map(|(id, _)| id.as_str());
                unfinished_fingerprint(&open.ids, latest).is_some()
                    && open.backs_off(latest, polling_only)
            })
        })
        .count()
}

/// Decides the reads of one poll at `now`, in priority order.
#[must_use]
pub fn plan(
    schedule: &HashMap<Arc<str>, EnvSchedule>,
    unfinished: &HashMap<Arc<str>, Unfinished>,
    at: PlanTime,
    lookback: Duration,
    full_sync: bool,
    polling_only: bool,
) -> Vec<PlannedRead> {
    let now = at.env0;
    let window_start = clock::sub(now, lookback);
    let mut reads: Vec<(PlannedRead, Option<Timestamp>)> = schedule
        .iter()
        .filter_map(|(env, s)| {
            let open = unfinished.get(env);
            let latest_id = s.listed_latest.as_ref().map(|(id, _)| id.as_str());
            let held = open.and_then(|u| unfinished_fingerprint(&u.ids, latest_id));
            let polled = open.map_or(polling_only, |u| u.polled(latest_id, polling_only));
            let full_due = full_sync
                && !s.full_sync_exempt(window_start)
                && s.next_full_sync.is_none_or(|due| due <= now);
            let kind = if !s.backfilled {
                ReadKind::Backfill
            } else if s.listed_latest != s.read_latest {
                ReadKind::Changed
            } else if reads_fresh(s, open, held, polled) {
                ReadKind::Fresh
            } else if held.is_some()
                && s.next_unfinished_read.is_none_or(|due| due <= at.local)
                && (polled || open.is_some_and(|u| u.holds_overdue(latest_id)))
            {
                ReadKind::Unfinished
            } else if full_due {
                ReadKind::FullSync
            } else {
                return None;
            };
            // A read of another kind made while the full re-read is due reads the whole window
            // and is that full re-read: an environment read every poll (a young run) is never
            // kept from it, and the same request does both.
            let full = kind.is_full() || full_due;
            let base = if full {
                window_start
            } else {
                s.last_read.map_or(window_start, |t| {
                    clock::sub(t, READ_OVERLAP).max(window_start)
                })
            };
            let from = open
                .and_then(|u| u.oldest_created)
                .map_or(base, |oldest| oldest.min(base));
            let read = PlannedRead {
                environment: env.clone(),
                kind,
                full,
                from,
                polled,
            };
            // Within a kind, the oldest due first: full re-reads by env0's clock, back-off
            // re-reads by ours; young re-reads the longest unread first (env0's clock), so that
            // when the budget cannot hold them all, those left for the next poll come first then.
            let due = match kind {
                ReadKind::FullSync => s.next_full_sync,
                ReadKind::Unfinished => s.next_unfinished_read,
                ReadKind::Fresh => s.last_read,
                _ => None,
            };
            Some((read, due))
        })
        .collect();
    // Full and back-off re-reads the oldest due first: when a poll cannot do them all, none
    // waits forever.
    reads.sort_by(|(a, a_due), (b, b_due)| {
        a.kind
            .cmp(&b.kind)
            .then_with(|| a_due.cmp(b_due))
            .then_with(|| a.environment.cmp(&b.environment))
    });
    reads.into_iter().map(|(read, _)| read).collect()
}

/// Requests a poll of `poll_interval` may make of a share worth `per_minute` requests a minute:
/// rounded up, at least one.
#[must_use]
pub fn per_poll(per_minute: f64, poll_interval: Duration) -> usize {
    let n = per_minute * poll_interval.as_secs_f64() / 60.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = n.ceil().clamp(1.0, 1e9) as usize;
    n
}

/// Share of the request budget kept for reads of changed and unfinished runs, retries and the
/// start of a backfill: full re-reads may use the rest after the environment listing.
pub const FULL_SYNC_HEADROOM: f64 = 0.25;

/// Requests per minute the periodic full re-reads may use: the budget, less
/// [`FULL_SYNC_HEADROOM`], less the listing of `listed` environments (⌊E/100⌋+1 pages and the
/// projects page every poll). At least one.
#[must_use]
pub fn full_sync_capacity(listed: usize, budget_per_minute: u32, poll_interval: Duration) -> f64 {
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let listing = (listed / crate::client::PAGE_LIMIT + 2) as f64;
    let polls_per_minute = 60.0 / poll_interval.as_secs_f64().max(1.0);
    let usable = f64::from(budget_per_minute) * (1.0 - FULL_SYNC_HEADROOM);
    (usable - listing * polls_per_minute).max(1.0)
}

/// The full re-read interval kept for `eligible` environments (those due periodic full re-reads,
/// one request each) of `listed` when none is busy: `configured`, or longer when
/// [`full_sync_capacity`] cannot read them all within it. The quiet interval of
/// [`full_sync_intervals`].
#[must_use]
pub fn full_sync_interval_in_force(
    configured: Duration,
    listed: usize,
    eligible: usize,
    budget_per_minute: u32,
    poll_interval: Duration,
) -> Duration {
    full_sync_intervals(
        configured,
        listed,
        (eligible, 0),
        budget_per_minute,
        poll_interval,
    )
    .quiet
}

/// How long "recently" is for the full re-reads: an environment whose latest run changed within
/// this (the exporter's clock, from the poll that read the change) is busy.
pub const BUSY_WINDOW: Duration = Duration::from_secs(3600);

/// When the budget cannot hold `--full-sync-interval` for every environment, a quiet one is
/// re-read this many times less often than a busy one (unless the busy ones fit within the
/// configured interval: then the quiet ones take all the capacity left).
pub const QUIET_FACTOR: f64 = 4.0;

/// The full re-read intervals kept: one for busy environments, one for the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FullSyncIntervals {
    /// Environments whose latest run changed within [`BUSY_WINDOW`].
    pub busy: Duration,
    /// The others; never shorter than `busy`. The longest any environment waits.
    pub quiet: Duration,
}

impl FullSyncIntervals {
    /// Both the same.
    #[must_use]
    pub fn uniform(interval: Duration) -> Self {
        Self {
            busy: interval,
            quiet: interval,
        }
    }
}

/// The full re-read intervals for `eligible.0` environments due periodic full re-reads, of which
/// `eligible.1` busy, among `listed`, within [`full_sync_capacity`] `C` a minute (the same count
/// of full re-reads a minute as one interval for all).
///
/// With `B` busy and `Q` quiet environments and `I` configured: when `(B + Q) / C ≤ I`, both
/// are `I`. Otherwise the busy interval is `Tb = max(I, (B + Q / QUIET_FACTOR) / C)` and the
/// quiet one `Tq = max(Tb, Q / (C − B / Tb))`: `B / Tb + Q / Tq = C`, the quiet ones re-read
/// [`QUIET_FACTOR`] times less often than the busy ones, or less than that when the busy ones
/// fit within `I`. Whole seconds, rounded up (the figures are logged and shown).
#[must_use]
pub fn full_sync_intervals(
    configured: Duration,
    listed: usize,
    eligible: (usize, usize),
    budget_per_minute: u32,
    poll_interval: Duration,
) -> FullSyncIntervals {
    let per_second = full_sync_capacity(listed, budget_per_minute, poll_interval) / 60.0;
    #[allow(clippy::cast_precision_loss)] // counts far below 2^52
    let (busy, quiet) = {
        let busy = eligible.1.min(eligible.0);
        (busy as f64, (eligible.0 - busy) as f64)
    };
    let i = configured.as_secs_f64();
    if (busy + quiet) / per_second <= i {
        return FullSyncIntervals::uniform(configured);
    }
    let tb = i.max((busy + quiet / QUIET_FACTOR) / per_second);
    let left = (per_second - busy / tb).max(f64::MIN_POSITIVE);
    let tq = tb.max(quiet / left);
    let whole = |secs: f64| configured.max(Duration::from_secs_f64(secs.ceil().min(1e9)));
    FullSyncIntervals {
        busy: whole(tb),
        quiet: whole(tq),
    }
}

/// Full re-reads one poll may do: the share of one poll of [`full_sync_capacity`] (`capacity` a
/// minute), rounded up, plus one. When the interval is stretched that is one poll's part of the
/// cycle; when it is held with room to spare, the due re-reads after an outage catch up at that
/// pace, never in a burst that would eat the headroom.
#[must_use]
pub fn full_syncs_per_poll(capacity: f64, poll_interval: Duration) -> usize {
    let per_poll = capacity * poll_interval.as_secs_f64() / 60.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = per_poll.ceil().clamp(0.0, 1e9) as usize;
    n + 1
}

/// The share of the request budget the listing of the environments may take while a backfill
/// is pending (see [`polls_per_listing_while_backfilling`]).
pub const LISTING_SHARE_WHILE_BACKFILLING: f64 = 0.05;

/// The most polls from one listing of the environments to the next while a backfill is
/// pending: how much later than usual a change of an environment already read may be seen.
pub const MAX_POLLS_PER_LISTING: u32 = 5;

/// Every how many polls the environments are listed while a backfill is pending: as few as keep
/// the listing of `listed` environments (⌊E/100⌋+2 requests) within
/// [`LISTING_SHARE_WHILE_BACKFILLING`] of the budget, at most [`MAX_POLLS_PER_LISTING`]. The
/// polls in between read the backfill with what the listing would have cost, and the changes
/// of the environments already read, deduplicated over those polls, are read at the next
/// listing. 1 (every poll) when the listing is that cheap, and always once nothing is pending.
#[must_use]
// Counts far below 2^52; the result is clamped to 1..=5.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
pub fn polls_per_listing_while_backfilling(
    listed: usize,
    budget_per_minute: u32,
    poll_interval: Duration,
) -> u32 {
    let listing = (listed / crate::client::PAGE_LIMIT + 2) as f64;
    let per_poll = f64::from(budget_per_minute) * poll_interval.as_secs_f64() / 60.0;
    (listing / (LISTING_SHARE_WHILE_BACKFILLING * per_poll).max(f64::MIN_POSITIVE))
        .ceil()
        .clamp(1.0, f64::from(MAX_POLLS_PER_LISTING)) as u32
}

/// While `plan` holds backfill reads, moves every other read behind them (the order within each
/// kind kept): the budget goes first to the backfill, and the reads of environments already
/// read, which only refresh what is already counted, take what is left — the changes of their
/// latest runs first, then the re-reads of unfinished runs, young ones ([`ReadKind::Fresh`]) as
/// well as backing-off ones. Measured with `examples/scale.rs` at 10,000 skewed environments
/// and 500 requests a minute: young runs read every poll took a fifth of the budget from the
/// backfill (2,544 of 16,500 requests), and the changes of environments already read 877 of
/// 12,500 once the young re-reads waited. A change waits at most until the backfill ends; an
/// environment changed several times meanwhile is read once.
pub fn backfill_first(plan: &mut [PlannedRead]) {
    if !plan.iter().any(|r| r.kind == ReadKind::Backfill) {
        return;
    }
    plan.sort_by_key(|r| match r.kind {
        ReadKind::Backfill => 0,
        ReadKind::Changed => 1,
        ReadKind::Fresh => 2,
        ReadKind::Unfinished => 3,
        ReadKind::FullSync => 4,
    });
}

/// Share of the request budget the periodic full re-reads get ahead of the re-reads of
/// unfinished runs (see [`full_syncs_ahead`]).
pub const FULL_SYNC_FLOOR_SHARE: f64 = 0.05;

/// Full re-reads a poll makes ahead of the re-reads of unfinished runs: [`FULL_SYNC_FLOOR_SHARE`]
/// of the budget over one poll interval, rounded up.
#[must_use]
pub fn full_sync_floor_per_poll(budget_per_minute: u32, poll_interval: Duration) -> usize {
    per_poll(
        f64::from(budget_per_minute) * FULL_SYNC_FLOOR_SHARE,
        poll_interval,
    )
}

/// Unless a backfill is pending, moves the first `floor` full re-reads of `plan` (the oldest due
/// first) ahead of the re-reads of unfinished runs, right after the changed environments. The
/// full re-reads are what finds runs no listing shows (env0 does not say that every type moves
/// `latestDeploymentLog`), so they must never wait for good: measured with `examples/scale.rs`
/// at 10,000 skewed environments and 500 requests a minute without webhooks, the young re-reads
/// (about 190 a poll) left them no budget at all, poll after poll.
pub fn full_syncs_ahead(plan: &mut Vec<PlannedRead>, floor: usize) {
    if floor == 0 || plan.iter().any(|r| r.kind == ReadKind::Backfill) {
        return;
    }
    let mut moved = Vec::with_capacity(floor);
    plan.retain(|r| {
        if r.kind == ReadKind::FullSync && moved.len() < floor {
            moved.push(r.clone());
            false
        } else {
            true
        }
    });
    let at = plan
        .iter()
        .position(|r| r.kind != ReadKind::Changed)
        .unwrap_or(plan.len());
    plan.splice(at..at, moved);
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

    /// Both clocks at `s`.
    fn at(s: &str) -> PlanTime {
        PlanTime {
            env0: ts(s),
            local: ts(s),
        }
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
            ..EnvSchedule::default()
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
            at("2026-07-01T12:00:00Z"),
            DAY,
            true,
            true,
        );
        assert!(reads.is_empty(), "{reads:?}");
    }

    #[test]
    fn each_reason_to_read_is_planned_in_priority_order_with_its_from_date() {
        let now = at("2026-07-01T12:00:00Z");
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
                young: Vec::new(),
                overdue: Vec::new(),
                uncovered: Vec::new(),
            },
        )]);
        let reads = plan(&schedule, &unfinished, now, DAY, true, true);
        let got: Vec<(&str, ReadKind, Timestamp)> = reads
            .iter()
            .map(|r| (&*r.environment, r.kind, r.from))
            .collect();
        assert_eq!(
            got,
            vec![
                ("d-changed", ReadKind::Changed, ts("2026-07-01T11:54:00Z")),
                // The unfinished run is older than the window: the read reaches back to it. Its
                // environment was not read since it was seen: read at once.
                ("c-holding", ReadKind::Fresh, ts("2026-06-30T01:00:00Z")),
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
        let reads = plan(&schedule, &unfinished, now, DAY, false, true);
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
                young: Vec::new(),
                overdue: Vec::new(),
                uncovered: Vec::new(),
            },
        )]);
        assert!(
            plan(
                &schedule,
                &unfinished,
                at("2026-07-01T12:00:00Z"),
                DAY,
                false,
                true
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

    const POLL: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(600);

    /// Polls every minute for `polls` minutes an environment holding the unfinished non-latest
    /// runs `held(poll)` returns; the polls (1-based) in which it was read.
    fn reread_polls(s: EnvSchedule, polls: u32, held: impl Fn(u32) -> Vec<Box<str>>) -> Vec<u32> {
        reread_polls_young(s, polls, held, |_| false, true)
    }

    /// [`reread_polls`], the held runs young at the polls where `young(poll)` (all of them),
    /// and young runs read every poll when `polling_only` (webhooks not live). The held runs
    /// started an hour before the first poll: overdue throughout.
    fn reread_polls_young(
        s: EnvSchedule,
        polls: u32,
        held: impl Fn(u32) -> Vec<Box<str>>,
        young: impl Fn(u32) -> bool,
        polling_only: bool,
    ) -> Vec<u32> {
        reread_polls_with(s, polls, held, young, |_| true, false, polling_only)
    }

    /// [`reread_polls_young`], the held runs overdue at the polls where `overdue(poll)`, and
    /// not covered by the deliveries when `uncovered`.
    fn reread_polls_with(
        mut s: EnvSchedule,
        polls: u32,
        held: impl Fn(u32) -> Vec<Box<str>>,
        young: impl Fn(u32) -> bool,
        overdue: impl Fn(u32) -> bool,
        uncovered: bool,
        polling_only: bool,
    ) -> Vec<u32> {
        let start = ts("2026-07-01T12:00:00Z");
        let mut read_in = Vec::new();
        for poll in 1..=polls {
            let now = clock::add(start, POLL * poll);
            let t = PlanTime {
                env0: now,
                local: now,
            };
            let ids = held(poll);
            let fp = unfinished_fingerprint(&ids, Some("d1"));
            let schedule = HashMap::from([(Arc::from("e1"), s.clone())]);
            let unfinished = HashMap::from([(
                Arc::from("e1"),
                Unfinished {
                    oldest_created: Some(ts("2026-07-01T11:00:00Z")),
                    young: if young(poll) { ids.clone() } else { Vec::new() },
                    overdue: if overdue(poll) {
                        ids.clone()
                    } else {
                        Vec::new()
                    },
                    uncovered: if uncovered { ids.clone() } else { Vec::new() },
                    ids,
                },
            )]);
            let reads = plan(&schedule, &unfinished, t, DAY, false, polling_only);
            if let Some(read) = reads.first() {
                assert!(matches!(read.kind, ReadKind::Fresh | ReadKind::Unfinished));
                read_in.push(poll);
                // As the schedule notes it: the first step as the plan saw the environment.
                assert_eq!(read.polled, polling_only || uncovered);
                let first = first_unfinished_step(read.polled, POLL, MAX);
                s.note_read(read.kind, now, (fp, fp), first, MAX);
            }
        }
        read_in
    }

    /// The environment right after a read (of another kind, at poll 0) that saw `held`.
    fn just_read(held: &[&str]) -> EnvSchedule {
        just_read_first_step(held, POLL)
    }

    /// [`just_read`] by a poll made while webhooks were live.
    fn just_read_with_webhooks(held: &[&str]) -> EnvSchedule {
        just_read_first_step(held, first_unfinished_step(false, POLL, MAX))
    }

    /// [`just_read`], the next re-read `first` after it.
    fn just_read_first_step(held: &[&str], first: Duration) -> EnvSchedule {
        let mut s = settled("d1", "SUCCESS", "2026-07-01T12:00:00Z");
        let ids: Vec<Box<str>> = held.iter().map(|&id| id.into()).collect();
        let fp = unfinished_fingerprint(&ids, Some("d1"));
        s.note_read(
            ReadKind::Changed,
            ts("2026-07-01T12:00:00Z"),
            (fp, fp),
            first,
            MAX,
        );
        s
    }

    fn read_of(environment: &str, kind: ReadKind) -> PlannedRead {
        PlannedRead {
            environment: Arc::from(environment),
            kind,
            full: kind.is_full(),
            from: ts("2026-07-01T00:00:00Z"),
            polled: true,
        }
    }

    #[test]
    fn a_twentieth_of_the_budget_goes_to_full_rereads_ahead_of_the_unfinished_runs() {
        // 500 a minute, 60 s polls: 25 a poll; a tiny budget still one.
        assert_eq!(full_sync_floor_per_poll(500, POLL), 25);
        assert_eq!(full_sync_floor_per_poll(10, POLL), 1);
        let kinds = [
            ("a", ReadKind::Changed),
            ("b", ReadKind::Fresh),
            ("c", ReadKind::Fresh),
            ("d", ReadKind::Unfinished),
            ("e", ReadKind::FullSync),
            ("f", ReadKind::FullSync),
            ("g", ReadKind::FullSync),
        ];
        let mut plan: Vec<PlannedRead> = kinds.iter().map(|&(e, k)| read_of(e, k)).collect();
        full_syncs_ahead(&mut plan, 2);
        let order: Vec<&str> = plan.iter().map(|r| &*r.environment).collect();
        assert_eq!(order, ["a", "e", "f", "b", "c", "d", "g"]);
        // While a backfill is pending the backfill goes first and nothing moves.
        let mut backfilling = vec![
            read_of("a", ReadKind::Backfill),
            read_of("b", ReadKind::Fresh),
            read_of("c", ReadKind::FullSync),
        ];
        let before = backfilling.clone();
        full_syncs_ahead(&mut backfilling, 2);
        assert_eq!(backfilling, before);
    }

    #[test]
    fn young_rereads_go_the_longest_unread_first() {
        // Three environments holding young runs, read at different times: when the budget
        // cannot read them all, the one left over comes first next poll.
        let now = ts("2026-07-01T12:05:00Z");
        let mut schedule = HashMap::new();
        let mut unfinished = HashMap::new();
        for (env, last_read) in [
            ("e1", "2026-07-01T12:04:00Z"),
            ("e2", "2026-07-01T12:02:00Z"),
            ("e3", "2026-07-01T12:03:00Z"),
        ] {
            let ids: Vec<Box<str>> = vec![format!("plan-{env}").into()];
            let mut s = settled("d1", "SUCCESS", last_read);
            s.unfinished_seen = unfinished_fingerprint(&ids, Some("d1"));
            schedule.insert(Arc::from(env), s);
            unfinished.insert(
                Arc::from(env),
                Unfinished {
                    oldest_created: Some(ts("2026-07-01T12:00:00Z")),
                    young: ids.clone(),
                    overdue: Vec::new(),
                    ids,
                    uncovered: Vec::new(),
                },
            );
        }
        let at = PlanTime {
            env0: now,
            local: now,
        };
        let reads = plan(&schedule, &unfinished, at, DAY, false, true);
        let order: Vec<(&str, ReadKind)> =
            reads.iter().map(|r| (&*r.environment, r.kind)).collect();
        assert_eq!(
            order,
            [
                ("e2", ReadKind::Fresh),
                ("e3", ReadKind::Fresh),
                ("e1", ReadKind::Fresh)
            ]
        );
    }

    #[test]
    fn a_stuck_unfinished_run_is_reread_next_poll_then_ever_less_often_up_to_the_maximum() {
        let read = reread_polls(just_read(&["plan-1"]), 60, |_| vec!["plan-1".into()]);
        // Gaps of 1, 2, 4 and 8 polls, then 10 (the maximum) for the rest of the hour.
        assert_eq!(read, vec![1, 3, 7, 15, 25, 35, 45, 55]);
    }

    #[test]
    fn a_young_run_is_reread_every_poll_then_backs_off_from_its_end_of_youth() {
        // Young for the first 6 polls (a plan younger than its type's 90th percentile): read
        // every poll, so its finish shows within two polls; then the back-off as for any
        // stuck run, counted from the last read: 7, then gaps of 2, 4, 8, 10.
        let read = reread_polls_young(
            just_read(&["plan-1"]),
            40,
            |_| vec!["plan-1".into()],
            |poll| poll <= 6,
            true,
        );
        assert_eq!(read, vec![1, 2, 3, 4, 5, 6, 7, 9, 13, 21, 31]);
    }

    #[test]
    fn with_webhooks_live_a_young_run_is_reread_only_at_the_maximum_interval() {
        // The deliveries bring its changes; the re-reads only repair a lost one, so they come
        // every maximum interval (10 polls) from the last read, young or not.
        let [young, old] = [true, false].map(|young| {
            reread_polls_young(
                just_read_with_webhooks(&["plan-1"]),
                60,
                |_| vec!["plan-1".into()],
                |_| young,
                false,
            )
        });
        assert_eq!(young, old);
        assert_eq!(young, vec![10, 20, 30, 40, 50, 60]);
        // Webhooks that just went live after a read made without them: one poll later, then
        // the maximum.
        let since_polling = reread_polls_young(
            just_read(&["plan-1"]),
            25,
            |_| vec!["plan-1".into()],
            |_| true,
            false,
        );
        assert_eq!(since_polling, vec![1, 11, 21]);
    }

    #[test]
    fn with_webhooks_live_a_run_whose_ends_are_not_delivered_keeps_the_polling_rules() {
        // A plan young for 6 polls in a project whose plans' ends no delivery has brought: read
        // every poll, then the back-off from one poll, exactly as without webhooks; the same
        // plan covered by the deliveries (overdue from poll 6 on): read only every maximum
        // interval from the last read (12:00), young or not.
        let young = |poll: u32| poll <= 6;
        let held = |_| vec!["plan-1".into()];
        let polling = reread_polls_young(just_read(&["plan-1"]), 40, held, young, true);
        let uncovered = reread_polls_with(
            just_read(&["plan-1"]),
            40,
            held,
            young,
            |poll| poll >= 6,
            true,
            false,
        );
        assert_eq!(polling, vec![1, 2, 3, 4, 5, 6, 7, 9, 13, 21, 31]);
        assert_eq!(uncovered, polling);
        let covered = reread_polls_with(
            just_read_with_webhooks(&["plan-1"]),
            40,
            held,
            young,
            |poll| poll >= 6,
            false,
            false,
        );
        assert_eq!(covered, vec![10, 20, 30, 40]);
    }

    #[test]
    fn with_webhooks_live_a_run_new_to_the_set_makes_no_read_of_its_own() {
        // A second plan joins at poll 4 (by webhook): polling alone reads the set at once and
        // backs off from there; with webhooks live the maximum interval is kept.
        let held = |poll: u32| -> Vec<Box<str>> {
            if poll < 4 {
                vec!["plan-1".into()]
            } else {
                vec!["plan-1".into(), "plan-2".into()]
            }
        };
        let polling = reread_polls_young(just_read(&["plan-1"]), 30, held, |_| false, true);
        assert_eq!(polling, vec![1, 3, 4, 5, 7, 11, 19, 29]);
        let webhooks = reread_polls_young(
            just_read_with_webhooks(&["plan-1"]),
            30,
            held,
            |_| false,
            false,
        );
        assert_eq!(webhooks, vec![10, 20, 30]);
    }

    #[test]
    fn a_run_first_seen_already_old_backs_off_at_once() {
        // At start-up the store holds a plan started hours ago (by env0's clock): not young,
        // so after the first read it backs off like a stuck one.
        let read = reread_polls_young(
            just_read(&["plan-1"]),
            16,
            |_| vec!["plan-1".into()],
            |_| false,
            true,
        );
        assert_eq!(read, vec![1, 3, 7, 15]);
    }

    #[test]
    fn the_latest_run_being_young_costs_no_extra_read() {
        let s = just_read(&["d1"]);
        let unfinished = HashMap::from([(
            Arc::from("e1"),
            Unfinished {
                oldest_created: None,
                ids: vec!["d1".into()],
                young: vec!["d1".into()],
                overdue: Vec::new(),
                uncovered: Vec::new(),
            },
        )]);
        let schedule = HashMap::from([(Arc::from("e1"), s)]);
        let t = at("2026-07-01T12:01:00Z");
        assert!(plan(&schedule, &unfinished, t, DAY, false, true).is_empty());
        assert_eq!(backing_off(&schedule, &unfinished, true), 0);
    }

    #[test]
    fn a_new_unfinished_run_starts_the_back_off_over() {
        let read = reread_polls(just_read(&["plan-1"]), 40, |poll| {
            if poll < 20 {
                vec!["plan-1".into()]
            } else {
                vec!["plan-1".into(), "plan-2".into()]
            }
        });
        // 1, 3, 7, 15 as before; at 20 the set changed: read at once, then 21, 23, 27, 35.
        assert_eq!(read, vec![1, 3, 7, 15, 20, 21, 23, 27, 35]);
    }

    #[test]
    fn another_read_of_the_environment_starts_the_back_off_over() {
        let mut s = just_read(&["plan-1"]);
        for (planned, kind) in [
            ("2026-07-01T12:01:00Z", ReadKind::Unfinished),
            ("2026-07-01T12:03:00Z", ReadKind::Unfinished),
        ] {
            let fp = s.unfinished_seen;
            s.note_read(kind, ts(planned), (fp, fp), POLL, MAX);
        }
        assert_eq!(s.unfinished_step, Duration::from_secs(240));
        s.note_read(
            ReadKind::FullSync,
            ts("2026-07-01T12:05:00Z"),
            (s.unfinished_seen, s.unfinished_seen),
            POLL,
            MAX,
        );
        assert_eq!(s.unfinished_step, POLL);
        assert_eq!(s.next_unfinished_read, Some(ts("2026-07-01T12:06:00Z")));
        assert_eq!(s.last_full_read, Some(ts("2026-07-01T12:05:00Z")));
    }

    #[test]
    fn the_back_off_follows_the_exporters_clock_not_env0s() {
        // env0's clock an hour ahead of ours: the re-read is still due one poll later by ours.
        let s = just_read(&["plan-1"]);
        let schedule = HashMap::from([(Arc::from("e1"), s)]);
        let unfinished = HashMap::from([(
            Arc::from("e1"),
            Unfinished {
                oldest_created: None,
                ids: vec!["plan-1".into()],
                young: Vec::new(),
                overdue: Vec::new(),
                uncovered: Vec::new(),
            },
        )]);
        let plan_at = |local: &str| PlanTime {
            env0: clock::add(ts(local), Duration::from_secs(3600)),
            local: ts(local),
        };
        assert!(
            plan(
                &schedule,
                &unfinished,
                plan_at("2026-07-01T12:00:30Z"),
                DAY,
                false,
                true
            )
            .is_empty()
        );
        assert_eq!(
            plan(
                &schedule,
                &unfinished,
                plan_at("2026-07-01T12:01:00Z"),
                DAY,
                false,
                true
            )
            .len(),
            1
        );
    }

    #[test]
    fn the_unfinished_fingerprint_ignores_order_and_the_latest_run() {
        let a: Vec<Box<str>> = vec!["x".into(), "y".into(), "latest".into()];
        let b: Vec<Box<str>> = vec!["y".into(), "x".into()];
        let c: Vec<Box<str>> = vec!["x".into()];
        let fa = unfinished_fingerprint(&a, Some("latest"));
        assert_eq!(fa, unfinished_fingerprint(&b, None));
        assert_ne!(fa, unfinished_fingerprint(&c, None));
        assert_eq!(
            unfinished_fingerprint(&["latest".into()], Some("latest")),
            None
        );
    }

    #[test]
    fn full_sync_keeps_its_interval_when_the_budget_holds_it_and_stretches_when_not() {
        // 150 environments, 500 requests a minute, 60 s polls: listing 3 a poll, 15 a minute of
        // full re-reads wanted; plenty of room.
        assert_eq!(full_sync_interval_in_force(MAX, 150, 150, 500, POLL), MAX);
        // 10,000: listing 102 a poll; 500 × 3/4 − 102 = 273 a minute for full re-reads, so
        // 10,000 take 36.6 minutes, not 10.
        assert!((full_sync_capacity(10_000, 500, POLL) - 273.0).abs() < 1e-9);
        assert_eq!(
            full_sync_interval_in_force(MAX, 10_000, 10_000, 500, POLL),
            Duration::from_secs(2198)
        );
        // Environments left out of full re-reads (archived long ago) are still listed.
        assert_eq!(
            full_sync_interval_in_force(MAX, 10_000, 9_000, 500, POLL),
            Duration::from_secs(1979)
        );
        // At the full env0 rate and 5-minute polls it can be held again at 20 minutes.
        assert_eq!(
            full_sync_interval_in_force(
                Duration::from_secs(1200),
                10_000,
                10_000,
                1000,
                Duration::from_secs(300)
            ),
            Duration::from_secs(1200)
        );
        // A budget smaller than the listing still yields an interval (one full read a minute).
        assert!((full_sync_capacity(10_000, 50, POLL) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_poll_does_its_share_of_the_cycle_of_full_rereads() {
        // 10,000 at the defaults: 273 a minute, so 273 a 60 s poll, plus one.
        assert_eq!(full_syncs_per_poll(273.0, POLL), 274);
        // 150: 372 a minute, 5-minute polls.
        assert_eq!(full_syncs_per_poll(372.0, Duration::from_secs(300)), 1861);
    }

    #[test]
    fn busy_environments_get_their_full_reread_more_often_within_the_same_capacity() {
        const TEN_MINUTES: Duration = Duration::from_secs(600);
        let intervals = |eligible, busy| {
            let i = full_sync_intervals(TEN_MINUTES, 10_000, (eligible, busy), 500, POLL);
            (i.busy.as_secs(), i.quiet.as_secs())
        };
        // 273 a minute = 4.55 a second. 2,000 busy and 8,000 quiet: (2,000 + 8,000 / 4) / 4.55
        // = 879.12 s for the busy ones, four times that (3,516.48 s) for the quiet ones, and
        // 2,000 / 879.12 + 8,000 / 3,516.48 = 2.275 + 2.275 = 4.55 a second.
        assert_eq!(intervals(10_000, 2_000), (880, 3517));
        // 100 busy fit within the configured 10 minutes: they keep it, and the 9,900 quiet ones
        // take the rest, 4.55 − 100 / 600 = 4.3833 a second: 2,258.56 s (less than 4 × 600).
        assert_eq!(intervals(10_000, 100), (600, 2259));
        // All busy, or none: one interval, as before (2,197.8 s).
        assert_eq!(intervals(10_000, 10_000), (2198, 2198));
        assert_eq!(intervals(10_000, 0), (600, 2198));
        // The budget holds everything at the configured interval: nothing changes.
        let few = full_sync_intervals(TEN_MINUTES, 150, (150, 10), 500, POLL);
        assert_eq!(few, FullSyncIntervals::uniform(TEN_MINUTES));
        // Whatever the mix, the re-reads a second stay within the capacity (up to the rounding
        // of each interval to whole seconds), and a quiet environment never waits less.
        for busy in (0..=10_000).step_by(250) {
            let i = full_sync_intervals(TEN_MINUTES, 10_000, (10_000, busy), 500, POLL);
            #[allow(clippy::cast_precision_loss)]
            let rate =
                busy as f64 / i.busy.as_secs_f64() + (10_000 - busy) as f64 / i.quiet.as_secs_f64();
            assert!(
                (4.54..=4.55).contains(&rate),
                "{busy} busy: {rate} a second"
            );
            assert!(i.busy <= i.quiet && i.busy >= TEN_MINUTES);
        }
    }

    #[test]
    fn an_environment_is_busy_for_an_hour_after_its_latest_run_changed() {
        let s = EnvSchedule {
            last_changed: Some(ts("2026-07-01T11:00:30Z")),
            ..EnvSchedule::default()
        };
        assert!(s.is_busy(ts("2026-07-01T12:00:00Z")));
        assert!(!s.is_busy(ts("2026-07-01T12:00:30Z")));
        assert!(!EnvSchedule::default().is_busy(ts("2026-07-01T12:00:00Z")));
    }

    #[test]
    fn while_backfilling_the_listing_keeps_to_a_twentieth_of_the_budget_every_five_polls_at_most() {
        // 10,000 environments: 102 requests a listing. At 500 a minute a twentieth is 25 a
        // poll: every 5 polls (102 / 25 = 4.08, rounded up); at 1,000, every 3 (102 / 50).
        assert_eq!(polls_per_listing_while_backfilling(10_000, 500, POLL), 5);
        assert_eq!(polls_per_listing_while_backfilling(10_000, 1000, POLL), 3);
        // 2,000: 22 a listing, within 25: every poll.
        assert_eq!(polls_per_listing_while_backfilling(2_000, 500, POLL), 1);
        // Never more than 5 polls apart; 5-minute polls have five times the budget.
        assert_eq!(polls_per_listing_while_backfilling(100_000, 500, POLL), 5);
        assert_eq!(
            polls_per_listing_while_backfilling(10_000, 500, Duration::from_secs(300)),
            1
        );
    }

    #[test]
    fn while_backfilling_the_changes_and_the_rereads_of_unfinished_runs_wait_behind_the_backfill() {
        let read = |env: &str, kind| PlannedRead {
            environment: Arc::from(env),
            kind,
            full: false,
            from: ts("2026-07-01T00:00:00Z"),
            polled: true,
        };
        let mut plan = vec![
            read("a", ReadKind::Changed),
            read("g", ReadKind::Fresh),
            read("b", ReadKind::Unfinished),
            read("c", ReadKind::Unfinished),
            read("d", ReadKind::Backfill),
            read("e", ReadKind::Backfill),
            read("f", ReadKind::FullSync),
        ];
        let unchanged = plan.clone();
        backfill_first(&mut plan);
        let order: Vec<&str> = plan.iter().map(|r| &*r.environment).collect();
        assert_eq!(order, ["d", "e", "a", "g", "b", "c", "f"]);
        // Without backfill reads the plan keeps its order.
        let mut steady: Vec<PlannedRead> = unchanged
            .into_iter()
            .filter(|r| r.kind != ReadKind::Backfill)
            .collect();
        let before = steady.clone();
        backfill_first(&mut steady);
        assert_eq!(steady, before);
    }

    #[test]
    fn full_rereads_are_planned_oldest_due_first() {
        let now = at("2026-07-01T12:00:00Z");
        let mut early = settled("d1", "SUCCESS", "2026-07-01T11:59:00Z");
        early.next_full_sync = Some(ts("2026-07-01T11:00:00Z"));
        let mut late = early.clone();
        late.next_full_sync = Some(ts("2026-07-01T11:30:00Z"));
        let schedule = HashMap::from([(Arc::from("a-late"), late), (Arc::from("z-early"), early)]);
        let order: Vec<String> = plan(&schedule, &HashMap::new(), now, DAY, true, true)
            .iter()
            .map(|r| r.environment.to_string())
            .collect();
        assert_eq!(order, vec!["z-early", "a-late"]);
    }
}
