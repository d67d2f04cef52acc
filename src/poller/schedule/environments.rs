//! The schedule's data: what the poller remembers of each listed environment between polls, the
//! listing counts that choose the next poll's environment listing, and the full re-read interval
//! in force. Its methods apply the policy of [`super`] (pure functions) to that data and touch
//! neither the network nor the store, so each is tested here on hand-built environments.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::{info, warn};

use super::{EnvSchedule, FullSyncIntervals, PlanTime, PlannedRead, ReadKind, Unfinished};
use crate::client::{Environment, PAGE_LIMIT};
use crate::clock;
use crate::poller::PollerConfig;

/// Which environments a poll reads, and what it needs to decide: one entry per listed
/// environment, and what the listings and the budget said.
#[derive(Debug)]
pub struct Schedule {
    /// Per listed environment, its schedule.
    envs: HashMap<Arc<str>, EnvSchedule>,
    /// Listed environments whose deployments the key may not read (403 on their last read).
    unreadable: HashSet<Arc<str>>,
    /// When (our clock) the current poll's reads were planned: the exporter's own schedules
    /// count from it.
    planned_at: Timestamp,
    /// The full re-read intervals kept, busy and quiet: the configured one, or longer when the
    /// budget cannot hold it.
    full_sync_in_force: Option<FullSyncIntervals>,
    /// The stretched interval last warned about (`None`: the configured one is kept).
    full_sync_warned: Option<Duration>,
    /// The longest gap kept between back-off re-reads of unfinished non-latest runs:
    /// `--unfinished-reread-max-interval`, or longer when their share of the budget cannot hold
    /// it (`None` before the first plan).
    unfinished_in_force: Option<Duration>,
    /// Environments per project as last listed, to choose the cheaper listing (see
    /// [`per_project_is_cheaper`](Self::per_project_is_cheaper)).
    listed_per_project: HashMap<String, usize>,
    /// Environments of the whole organisation as last listed org-wide.
    listed_in_org: Option<usize>,
    /// Polls since the environments were last listed (see [`Self::listing_due`]).
    unlisted_polls: u32,
}

/// Pages of a listing of `n` environments.
fn pages(n: usize) -> usize {
    n / PAGE_LIMIT + 1
}

impl Schedule {
    /// An empty schedule, its plan time `now` until the first plan.
    #[must_use]
    pub fn new(now: Timestamp) -> Self {
        Self {
            envs: HashMap::new(),
            unreadable: HashSet::new(),
            planned_at: now,
            full_sync_in_force: None,
            full_sync_warned: None,
            unfinished_in_force: None,
            listed_per_project: HashMap::new(),
            listed_in_org: None,
            unlisted_polls: 0,
        }
    }

    /// Environments listed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.envs.len()
    }

    /// Whether no environment is listed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.envs.is_empty()
    }

    /// Whether `environment` is listed.
    #[must_use]
    pub fn contains(&self, environment: &str) -> bool {
        self.envs.contains_key(environment)
    }

    /// The listed environments and their schedules.
    pub fn iter(&self) -> impl Iterator<Item = (&Arc<str>, &EnvSchedule)> {
        self.envs.iter()
    }

    /// The listed environments.
    pub fn ids(&self) -> impl Iterator<Item = &Arc<str>> {
        self.envs.keys()
    }

    /// Whether `environment`'s last read was refused (403).
    #[must_use]
    pub fn is_unreadable(&self, environment: &str) -> bool {
        self.unreadable.contains(environment)
    }

    /// Listed environments whose last read was refused, but for those the full re-reads leave
    /// alone at `window_start` (archived and quiet past the window): those are not read again,
    /// so a refusal of theirs would stay counted after the key may read them.
    #[must_use]
    pub fn unreadable_count(&self, window_start: Timestamp) -> usize {
        self.unreadable
            .iter()
            .filter(|id| {
                !self
                    .envs
                    .get(&***id)
                    .is_some_and(|s| s.full_sync_exempt(window_start))
            })
            .count()
    }

    /// Replaces everything per environment (a restored state file).
    pub fn restore(&mut self, envs: HashMap<Arc<str>, EnvSchedule>, unreadable: HashSet<Arc<str>>) {
        self.envs = envs;
        self.unreadable = unreadable;
    }

    /// Forgets the environments not in `listed`.
    pub fn retain_listed(&mut self, listed: &HashSet<&str>) {
        self.envs.retain(|id, _| listed.contains(&**id));
        self.unreadable.retain(|id| listed.contains(&**id));
    }

    /// Takes in what the listing says of `env`: its latest run, whether it is archived, its
    /// last change.
    pub fn take_listed(&mut self, env: &Environment) {
        let listed_latest = env
            .latest_deployment_log
            .as_ref()
            .map(|l| (l.id.clone(), l.status.clone()))
            .or_else(|| env.latest_deployment_log_id.clone().map(|id| (id, None)));
        let entry = self.envs.entry(Arc::from(env.id.as_str())).or_default();
        entry.listed_latest = listed_latest;
        entry.archived = env.is_archived;
        entry.updated_at = env.updated_at;
    }

    /// The environment's latest run as its listing showed it.
    #[must_use]
    pub fn listed_latest_id(&self, environment: &str) -> Option<String> {
        self.envs
            .get(environment)
            .and_then(|s| s.listed_latest.as_ref())
            .map(|(id, _)| id.clone())
    }

    /// Environments whose lookback window has not been read yet.
    #[must_use]
    pub fn backfill_pending(&self) -> usize {
        self.envs.values().filter(|s| !s.backfilled).count()
    }

    /// Environments whose lookback window has been read.
    #[must_use]
    pub fn backfilled(&self) -> HashSet<Arc<str>> {
        self.envs
            .iter()
            .filter(|(_, s)| s.backfilled)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// The full re-read interval in force for quiet environments, the longest any environment
    /// waits (`None`: full re-reads are off, or no listing yet).
    #[must_use]
    pub fn full_sync_in_force(&self) -> Option<Duration> {
        self.full_sync_in_force.map(|i| i.quiet)
    }

    /// The full re-read intervals in force, busy and quiet.
    #[must_use]
    pub fn full_sync_intervals(&self) -> Option<FullSyncIntervals> {
        self.full_sync_in_force
    }

    /// Whether this poll lists the environments: every poll, but only every
    /// [`super::polls_per_listing_while_backfilling`] polls while a backfill is pending (and
    /// always while nothing is listed yet).
    #[must_use]
    pub fn listing_due(&self, config: &PollerConfig) -> bool {
        if self.envs.is_empty() || self.envs.values().all(|s| s.backfilled) {
            return true;
        }
        let every = super::polls_per_listing_while_backfilling(
            self.envs.len(),
            config.max_requests_per_minute,
            config.poll_interval,
        );
        self.unlisted_polls + 1 >= every
    }

    /// Notes a poll that lists the environments (`true`) or not.
    pub fn note_listing(&mut self, listed: bool) {
        self.unlisted_polls = if listed {
            0
        } else {
            self.unlisted_polls.saturating_add(1)
        };
    }

    /// The age (our clock, `local`) of the oldest full read among the environments due periodic
    /// full re-reads at env0's `now`; `None` while full re-reads are off.
    #[must_use]
    pub fn full_sync_oldest_age(
        &self,
        config: &PollerConfig,
        now: Timestamp,
        local: Timestamp,
    ) -> Option<Duration> {
        let window_start = clock::sub(now, config.lookback);
        self.full_sync_in_force.and_then(|_| {
            self.envs
                .values()
                .filter(|s| s.backfilled && !s.full_sync_exempt(window_start))
                .filter_map(|s| s.last_full_read)
                .min()
                .map(|oldest| clock::elapsed(oldest, local))
        })
    }

    /// The longest gap kept between back-off re-reads of an environment's unfinished non-latest
    /// runs (`None` before the first plan).
    #[must_use]
    pub fn unfinished_reread_in_force(&self) -> Option<Duration> {
        self.unfinished_in_force
    }

    /// The longest gap between re-reads of unfinished non-latest runs now: the interval in force
    /// once a plan has set it, else `--unfinished-reread-max-interval`.
    #[must_use]
    pub fn unfinished_reread_max(&self, config: &PollerConfig) -> Duration {
        self.unfinished_in_force
            .unwrap_or(config.unfinished_reread_max)
    }

    /// Keeps the back-off re-reads of unfinished non-latest runs within their share of the
    /// budget: sets the longest gap kept between them for the environments backing off, and
    /// drops from `plan` those past one poll's share (the oldest due stay: the plan orders them
    /// so); the dropped stay due for the next poll.
    fn keep_unfinished_share(
        &mut self,
        config: &PollerConfig,
        unfinished: &HashMap<Arc<str>, Unfinished>,
        polling_only: bool,
        plan: &mut Vec<PlannedRead>,
    ) {
        use super::unfinished::{long_held_interval_in_force, long_held_rereads_per_poll};
        let budget = config.max_requests_per_minute;
        let backing_off = super::backing_off(&self.envs, unfinished, polling_only);
        self.unfinished_in_force = Some(long_held_interval_in_force(
            config.unfinished_reread_max,
            backing_off,
            budget,
        ));
        let mut share = long_held_rereads_per_poll(budget, config.poll_interval);
        plan.retain(|r| {
            if r.kind != ReadKind::Unfinished {
                return true;
            }
            let keep = share > 0;
            share = share.saturating_sub(1);
            keep
        });
    }

    /// The reads of one poll planned `at`, and how many due full re-reads are held for later
    /// polls: full re-reads come last in the plan, the oldest due first, and a poll does only
    /// its share of the cycle (see [`super::full_syncs_per_poll`]). Young unfinished non-latest
    /// runs are re-read every poll when `polling_only` (webhooks are not live).
    #[must_use]
    pub fn plan(
        &mut self,
        config: &PollerConfig,
        unfinished: &HashMap<Arc<str>, Unfinished>,
        at: PlanTime,
        polling_only: bool,
    ) -> (Vec<PlannedRead>, usize) {
        self.planned_at = at.local;
        let mut plan = super::plan(
            &self.envs,
            unfinished,
            at,
            config.lookback,
            config.full_sync_interval.is_some(),
            polling_only,
        );
        self.keep_unfinished_share(config, unfinished, polling_only, &mut plan);
        super::backfill_first(&mut plan);
        let mut held = 0;
        if self.full_sync_in_force.is_some() {
            let capacity = super::full_sync_capacity(
                self.envs.len(),
                config.max_requests_per_minute,
                config.poll_interval,
            );
            let share = super::full_syncs_per_poll(capacity, config.poll_interval);
            let due = plan.iter().filter(|r| r.kind == ReadKind::FullSync).count();
            held = due.saturating_sub(share);
            plan.truncate(plan.len() - held);
            super::full_syncs_ahead(
                &mut plan,
                super::full_sync_floor_per_poll(
                    config.max_requests_per_minute,
                    config.poll_interval,
                ),
            );
        }
        (plan, held)
    }

    /// Chooses the full re-read intervals for the environments now listed (busy and quiet, at
    /// `at`), warning when the request budget cannot hold the configured one (on the first
    /// listing, then only when the quiet interval moves by more than a fifth).
    pub fn keep_full_sync_interval(&mut self, config: &PollerConfig, at: PlanTime) {
        let Some(configured) = config.full_sync_interval else {
            return;
        };
        let window_start = clock::sub(at.env0, config.lookback);
        let (eligible, busy) = self
            .envs
            .values()
            .filter(|s| !s.full_sync_exempt(window_start))
            .fold((0, 0), |(n, busy), s| {
                (n + 1, busy + usize::from(s.is_busy(at.local)))
            });
        let budget = config.max_requests_per_minute;
        let poll = config.poll_interval;
        let listed = self.envs.len();
        let intervals =
            super::full_sync_intervals(configured, listed, (eligible, busy), budget, poll);
        let in_force = intervals.quiet;
        if in_force > configured {
            let moved = self.full_sync_warned.is_none_or(|warned| {
                let ratio = in_force.as_secs_f64() / warned.as_secs_f64().max(1.0);
                !(0.8..=1.25).contains(&ratio)
            });
            if moved {
                warn!(
                    environments = eligible,
                    busy,
                    configured = %humantime::format_duration(configured),
                    kept = %humantime::format_duration(in_force),
                    kept_busy = %humantime::format_duration(intervals.busy),
                    max_requests_per_minute = budget,
                    full_reads_per_minute = super::full_sync_capacity(listed, budget, poll).floor(),
                    "the request budget cannot re-read every environment within --full-sync-interval; full re-reads are spread over a longer interval (env0_exporter_full_sync_duration_seconds); raise --max-requests-per-minute or --poll-interval, or narrow with --projects"
                );
                self.full_sync_warned = Some(in_force);
            }
        } else if self.full_sync_warned.take().is_some() {
            info!(
                environments = eligible,
                interval = %humantime::format_duration(configured),
                "the request budget holds --full-sync-interval again"
            );
        }
        self.full_sync_in_force = Some(intervals);
    }

    /// Notes a read done at `to` (env0's clock). It sets no baseline: a read that was refused
    /// (403) or found the environment gone (404) saw none of its history, so the first read
    /// that works still takes what it finds finished as history.
    ///
    /// `held` fingerprints the environment's unfinished non-latest runs when the read was
    /// planned and after it, for the back-off of their re-reads.
    pub fn mark_read(
        &mut self,
        config: &PollerConfig,
        read: &PlannedRead,
        to: Timestamp,
        held: (Option<u64>, Option<u64>),
    ) {
        let full_sync = self
            .full_sync_in_force
            .or(config.full_sync_interval.map(FullSyncIntervals::uniform));
        let unfinished_max = self.unfinished_reread_max(config);
        let planned = self.planned_at;
        let first_step =
            super::first_unfinished_step(read.polled, config.poll_interval, unfinished_max);
        if let Some(s) = self.envs.get_mut(&read.environment) {
            if read.kind == ReadKind::Changed {
                s.last_changed = Some(planned);
            }
            s.read_latest = s.listed_latest.clone();
            s.last_read = Some(to);
            s.note_read(read.kind, planned, held, first_step, unfinished_max);
            if let Some(intervals) = full_sync {
                // A busy environment's next full re-read comes within the busy interval: a
                // change brings a quiet environment's forward.
                let interval = if s.is_busy(planned) {
                    intervals.busy
                } else {
                    intervals.quiet
                };
                let due = clock::add(to, interval);
                s.next_full_sync = Some(match read.kind {
                    ReadKind::Backfill => super::first_full_sync(&read.environment, to, interval),
                    _ if read.full => due,
                    _ => s.next_full_sync.map_or(due, |next| next.min(due)),
                });
            }
            if read.full {
                s.last_full_read = Some(planned);
            }
            s.backfilled = true;
        }
    }

    /// Notes that the key may not read `environment` (403), until a read of it works.
    pub fn mark_unreadable(&mut self, environment: &Arc<str>) {
        self.unreadable.insert(environment.clone());
    }

    /// Notes that a read of `environment` worked.
    pub fn mark_readable(&mut self, environment: &str) {
        self.unreadable.remove(environment);
    }

    /// Notes an organisation-wide listing of `environments`: its size, and the environments of
    /// each project.
    pub fn note_org_listing(&mut self, environments: &[Environment]) {
        let mut per_project = HashMap::new();
        Self::count_projects(&mut per_project, environments);
        self.note_org_counts(environments.len(), per_project);
    }

    /// Notes an organisation-wide listing counted page by page: `listed` environments,
    /// `per_project` of them in each project (see [`count_projects`](Self::count_projects)).
    pub fn note_org_counts(&mut self, listed: usize, per_project: HashMap<String, usize>) {
        self.listed_in_org = Some(listed);
        self.listed_per_project = per_project;
    }

    /// Adds `environments` to the count of each project's environments in `counts`.
    pub fn count_projects(counts: &mut HashMap<String, usize>, environments: &[Environment]) {
        for env in environments {
            if let Some(p) = &env.project_id {
                *counts.entry(p.clone()).or_default() += 1;
            }
        }
    }

    /// Notes a listing of `project`'s `n` environments.
    pub fn note_project_listing(&mut self, project: &str, n: usize) {
        self.listed_per_project.insert(project.to_owned(), n);
    }

    /// Whether one listing per project of `watched` costs fewer requests, as last counted, than
    /// the organisation's (Σ ⌊Eₚ/100⌋+1 pages against ⌊E/100⌋+1; an organisation never listed
    /// counts as costing more).
    #[must_use]
    pub fn per_project_is_cheaper(&self, watched: &[String]) -> bool {
        let per_project: usize = watched
            .iter()
            .map(|p| pages(self.listed_per_project.get(p).copied().unwrap_or(0)))
            .sum();
        let org_wide = self.listed_in_org.map_or(usize::MAX, pages);
        per_project < org_wide
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poller::test_support::{self, ts};

    const TEN_MINUTES: Duration = Duration::from_secs(600);

    fn config(full_sync: Option<Duration>) -> PollerConfig {
        PollerConfig {
            full_sync_interval: full_sync,
            ..test_support::config()
        }
    }

    fn environment(id: &str, project: &str, latest: Option<&str>) -> Environment {
        Environment {
            project_id: Some(project.into()),
            ..test_support::environment(id, latest)
        }
    }

    /// Both clocks at `now`.
    fn both(now: Timestamp) -> PlanTime {
        PlanTime {
            env0: now,
            local: now,
        }
    }

    /// A schedule listing `n` environments, all backfilled.
    fn listing(n: usize) -> Schedule {
        let mut s = Schedule::new(ts("2026-07-01T12:00:00Z"));
        for i in 0..n {
            s.take_listed(&environment(&format!("e{i}"), "p", None));
        }
        for env in s.envs.values_mut() {
            env.backfilled = true;
        }
        s
    }

    #[test]
    fn a_stretched_interval_is_warned_about_once_and_again_only_when_it_moves_by_a_fifth() {
        let config = config(Some(TEN_MINUTES));
        let now = ts("2026-07-01T12:00:00Z");
        // 10,000 environments at 500 requests a minute: 2,198 s, not 10 minutes (the figures
        // of `full_sync_keeps_its_interval_when_the_budget_holds_it_and_stretches_when_not`).
        let mut s = listing(10_000);
        s.keep_full_sync_interval(&config, both(now));
        assert_eq!(s.full_sync_in_force(), Some(Duration::from_secs(2198)));
        assert_eq!(s.full_sync_warned, Some(Duration::from_secs(2198)));
        // 500 more: the interval moves by under a fifth, the warning stands as it was.
        let mut more = listing(10_500);
        more.full_sync_warned = s.full_sync_warned;
        more.keep_full_sync_interval(&config, both(now));
        assert!(more.full_sync_in_force() > s.full_sync_in_force());
        assert_eq!(more.full_sync_warned, Some(Duration::from_secs(2198)));
        // Twice as many: warned again, at the new interval.
        let mut twice = listing(20_000);
        twice.full_sync_warned = s.full_sync_warned;
        twice.keep_full_sync_interval(&config, both(now));
        assert_eq!(twice.full_sync_warned, twice.full_sync_in_force());
        // Few again: the configured interval, nothing left warned about.
        let mut few = listing(10);
        few.full_sync_warned = twice.full_sync_warned;
        few.keep_full_sync_interval(&config, both(now));
        assert_eq!(few.full_sync_in_force(), Some(TEN_MINUTES));
        assert_eq!(few.full_sync_warned, None);
    }

    #[test]
    fn a_poll_holds_the_full_rereads_past_its_share_for_later_polls() {
        let config = config(Some(TEN_MINUTES));
        let now = ts("2026-07-01T12:00:00Z");
        // 10,000 due at once (after an outage): 273 a minute less the listing, plus one, a poll.
        let mut s = listing(10_000);
        for env in s.envs.values_mut() {
            env.next_full_sync = Some(ts("2026-07-01T11:00:00Z"));
            env.last_read = Some(now);
        }
        s.keep_full_sync_interval(&config, both(now));
        let at = PlanTime {
            env0: now,
            local: now,
        };
        let (plan, held) = s.plan(&config, &HashMap::new(), at, true);
        assert_eq!(plan.len(), 274);
        assert_eq!(held, 10_000 - 274);
        assert!(plan.iter().all(|r| r.kind == ReadKind::FullSync));
    }

    #[test]
    fn back_off_rereads_keep_to_their_share_the_oldest_due_first_and_stretch_the_interval() {
        let config = config(None);
        let now = ts("2026-07-01T12:00:00Z");
        // 1,000 environments each holding a stuck plan (not their latest), all due, the
        // re-read of e<i> due i seconds before now.
        let mut s = listing(1000);
        let mut unfinished = HashMap::new();
        for (i, (id, env)) in s.envs.iter_mut().enumerate() {
            let n: u64 = id[1..].parse().unwrap();
            let ids: Vec<Box<str>> = vec![format!("plan-{i}").into()];
            env.unfinished_seen = super::super::unfinished_fingerprint(&ids, None);
            env.next_unfinished_read = Some(clock::sub(now, Duration::from_secs(n + 1)));
            unfinished.insert(
                id.clone(),
                Unfinished {
                    ids,
                    ..Unfinished::default()
                },
            );
        }
        let at = PlanTime {
            env0: now,
            local: now,
        };
        let (plan, _) = s.plan(&config, &unfinished, at, true);
        // A tenth of 500 a minute: 50 a 60 s poll, the 50 due longest (e950..e999).
        assert_eq!(plan.len(), 50);
        assert!(plan.iter().all(|r| r.kind == ReadKind::Unfinished));
        let mut read: Vec<u64> = plan
            .iter()
            .map(|r| r.environment[1..].parse().unwrap())
            .collect();
        read.sort_unstable();
        assert_eq!(read, (950..1000).collect::<Vec<u64>>());
        // 1,000 at 50 a minute: every 20 minutes, not the configured 10.
        assert_eq!(
            s.unfinished_reread_in_force(),
            Some(Duration::from_secs(1200))
        );
        // Noted reads back off up to the interval kept.
        let mut e = s.envs["e999"].clone();
        for _ in 0..10 {
            let held = e.unfinished_seen;
            e.note_read(
                ReadKind::Unfinished,
                now,
                (held, held),
                config.poll_interval,
                Duration::from_secs(1200),
            );
        }
        assert_eq!(e.unfinished_step, Duration::from_secs(1200));
        // 400 fit within the share at the configured 10 minutes.
        let mut few = listing(400);
        let few_unfinished: HashMap<Arc<str>, Unfinished> = unfinished
            .into_iter()
            .filter(|(id, _)| few.contains(id))
            .collect();
        let _ = few.plan(&config, &few_unfinished, at, true);
        assert_eq!(few.unfinished_reread_in_force(), Some(TEN_MINUTES));
    }

    #[test]
    fn an_environment_read_every_poll_gets_its_full_reread_in_the_same_request() {
        let config = config(Some(TEN_MINUTES));
        let start = ts("2026-07-01T12:00:00Z");
        let minute = Duration::from_secs(60);
        // One environment holding a plan that is not its latest and stays young: read every
        // poll (webhooks not live). Its full re-read is due at 12:02:30.
        let mut s = listing(1);
        let id: Arc<str> = Arc::from("e0");
        let ids: Vec<Box<str>> = vec!["plan-1".into()];
        let fp = super::super::unfinished_fingerprint(&ids, None);
        let e0 = s.envs.get_mut(&id).unwrap();
        e0.unfinished_seen = fp;
        e0.last_read = Some(start);
        e0.last_full_read = Some(start);
        e0.next_full_sync = Some(clock::add(start, Duration::from_secs(150)));
        let unfinished = HashMap::from([(
            id,
            Unfinished {
                oldest_created: Some(start),
                young: ids.clone(),
                overdue: Vec::new(),
                ids,
                uncovered: Vec::new(),
            },
        )]);
        let mut full_reads = Vec::new();
        for poll in 1..=30 {
            let now = clock::add(start, minute * poll);
            s.keep_full_sync_interval(&config, both(now));
            // The full read is never older than the interval and the poll it is due in.
            let oldest = s.full_sync_oldest_age(&config, now, now).unwrap();
            assert!(oldest <= TEN_MINUTES + minute, "{oldest:?} at poll {poll}");
            let (plan, held) = s.plan(&config, &unfinished, both(now), true);
            assert_eq!((plan.len(), held), (1, 0), "one read a poll");
            let read = &plan[0];
            assert_eq!(read.kind, ReadKind::Fresh);
            if read.full {
                // The same request reads the whole window: it is the full re-read.
                assert_eq!(read.from, clock::sub(now, config.lookback));
                full_reads.push(poll);
            }
            s.mark_read(&config, read, now, (fp, fp));
        }
        assert_eq!(full_reads, vec![3, 13, 23]);
    }

    #[test]
    fn with_webhooks_live_an_environment_holding_young_runs_is_read_once_per_maximum_interval() {
        // The same environment as above without full re-reads, planned and noted through the
        // schedule, its plan started at `started` and never finishing: polling alone reads it
        // every poll; with webhooks live, every maximum interval (10 polls) from the later of
        // its last read (12:00) and the plan's start, as the poller marks it overdue.
        let config = config(None);
        let start = ts("2026-07-01T12:00:00Z");
        let minute = Duration::from_secs(60);
        let id: Arc<str> = Arc::from("e0");
        let ids: Vec<Box<str>> = vec!["plan-1".into()];
        let fp = super::super::unfinished_fingerprint(&ids, None);
        let polls_read = |polling_only: bool, started: Timestamp| {
            let mut s = listing(1);
            let e0 = s.envs.get_mut(&id).unwrap();
            e0.unfinished_seen = fp;
            e0.last_read = Some(start);
            e0.next_unfinished_read = Some(clock::add(start, minute));
            let mut read_in = Vec::new();
            for poll in 1..=30 {
                let now = clock::add(start, minute * poll);
                let interval = s.unfinished_reread_max(&config);
                let overdue = super::super::unfinished::is_overdue(started, now, interval);
                let unfinished = HashMap::from([(
                    id.clone(),
                    Unfinished {
                        oldest_created: Some(started),
                        young: ids.clone(),
                        overdue: if overdue { ids.clone() } else { Vec::new() },
                        ids: ids.clone(),
                        uncovered: Vec::new(),
                    },
                )]);
                let (plan, _) = s.plan(&config, &unfinished, both(now), polling_only);
                for read in &plan {
                    read_in.push(poll);
                    s.mark_read(&config, read, now, (fp, fp));
                }
            }
            read_in
        };
        // Started at the last read: first re-read 10 minutes after it, then every 10.
        assert_eq!(polls_read(true, start), (1..=30).collect::<Vec<u32>>());
        assert_eq!(polls_read(false, start), vec![10, 20, 30]);
        // Started long before (met at start-up): its re-read is due one poll after the
        // last read, as the back-off had it, then every 10.
        let hour_before = clock::sub(start, Duration::from_secs(3600));
        assert_eq!(polls_read(false, hour_before), vec![1, 11, 21]);
        // Started 5 minutes after the last read: nothing until 10 minutes after its start,
        // however long ago the environment was read.
        let later = clock::add(start, minute * 5);
        assert_eq!(polls_read(false, later), vec![15, 25]);
    }

    #[test]
    fn a_first_read_notes_the_latest_run_and_spreads_the_first_full_reread() {
        let config = config(Some(TEN_MINUTES));
        let mut s = Schedule::new(ts("2026-07-01T12:00:00Z"));
        s.take_listed(&environment("e1", "p", Some("d1")));
        let read = PlannedRead {
            environment: Arc::from("e1"),
            kind: ReadKind::Backfill,
            full: true,
            from: ts("2026-06-30T12:00:00Z"),
            polled: true,
        };
        let to = ts("2026-07-01T12:00:05Z");
        s.mark_read(&config, &read, to, (None, None));
        let e1 = &s.envs["e1"];
        assert!(e1.backfilled);
        assert_eq!(e1.read_latest, Some(("d1".into(), None)));
        assert_eq!(e1.last_read, Some(to));
        assert_eq!(
            e1.next_full_sync,
            Some(super::super::first_full_sync("e1", to, TEN_MINUTES))
        );
        assert_eq!(s.backfill_pending(), 0);
        // A later full re-read is due one interval after it.
        let full = PlannedRead {
            kind: ReadKind::FullSync,
            full: true,
            ..read
        };
        s.mark_read(&config, &full, to, (None, None));
        assert_eq!(
            s.envs["e1"].next_full_sync,
            Some(clock::add(to, TEN_MINUTES))
        );
    }

    #[test]
    fn while_a_backfill_is_pending_ten_thousand_environments_are_listed_every_fifth_poll() {
        let config = config(Some(TEN_MINUTES));
        let empty = Schedule::new(ts("2026-07-01T12:00:00Z"));
        assert!(empty.listing_due(&config), "nothing listed yet");
        let mut s = listing(10_000);
        s.envs
            .values_mut()
            .take(10)
            .for_each(|e| e.backfilled = false);
        let listed: Vec<bool> = (0..11)
            .map(|_| {
                let due = s.listing_due(&config);
                s.note_listing(due);
                due
            })
            .collect();
        assert_eq!(
            listed,
            [
                false, false, false, false, true, false, false, false, false, true, false
            ]
        );
        // Backfilled: every poll again.
        s.envs.values_mut().for_each(|e| e.backfilled = true);
        assert!(s.listing_due(&config));
    }

    #[test]
    fn a_change_brings_the_full_reread_within_the_busy_interval() {
        let config = config(Some(TEN_MINUTES));
        let now = ts("2026-07-01T12:00:00Z");
        // 10,000 environments, none busy yet: 600 s busy, 2,198 s quiet.
        let mut s = listing(10_000);
        s.keep_full_sync_interval(&config, both(now));
        let intervals = s.full_sync_intervals().unwrap();
        assert_eq!(intervals.busy, TEN_MINUTES);
        assert_eq!(intervals.quiet, Duration::from_secs(2198));
        s.planned_at = now;
        let read = |kind| PlannedRead {
            environment: Arc::from("e1"),
            kind,
            full: kind == ReadKind::FullSync,
            from: ts("2026-06-30T12:00:00Z"),
            polled: true,
        };
        // A quiet environment's full re-read: due one quiet interval later.
        s.mark_read(&config, &read(ReadKind::FullSync), now, (None, None));
        assert_eq!(
            s.envs["e1"].next_full_sync,
            Some(clock::add(now, Duration::from_secs(2198)))
        );
        // Its latest run changes a minute later: busy, due within the busy interval of it.
        let later = ts("2026-07-01T12:01:00Z");
        s.planned_at = later;
        s.mark_read(&config, &read(ReadKind::Changed), later, (None, None));
        assert!(s.envs["e1"].is_busy(later));
        assert_eq!(
            s.envs["e1"].next_full_sync,
            Some(clock::add(later, TEN_MINUTES))
        );
        // The next full re-read keeps the busy interval while it stays busy.
        s.mark_read(&config, &read(ReadKind::FullSync), later, (None, None));
        assert_eq!(
            s.envs["e1"].next_full_sync,
            Some(clock::add(later, TEN_MINUTES))
        );
    }

    #[test]
    fn environments_no_longer_listed_are_forgotten_with_their_refusals() {
        let mut s = Schedule::new(ts("2026-07-01T12:00:00Z"));
        for id in ["kept", "gone"] {
            s.take_listed(&environment(id, "p", None));
            s.mark_unreadable(&Arc::from(id));
        }
        s.retain_listed(&HashSet::from(["kept"]));
        assert_eq!(s.ids().map(|id| &**id).collect::<Vec<_>>(), ["kept"]);
        assert!(s.is_unreadable("kept"));
        let window_start = ts("2026-07-01T10:00:00Z");
        assert_eq!(s.unreadable_count(window_start), 1);
        s.mark_readable("kept");
        assert_eq!(s.unreadable_count(window_start), 0);
    }

    #[test]
    fn a_refused_environment_archived_and_quiet_past_the_window_is_not_counted_unreadable() {
        let mut s = Schedule::new(ts("2026-07-01T12:00:00Z"));
        let window_start = ts("2026-07-01T10:00:00Z");
        for (id, archived, updated) in [
            ("open", false, "2026-07-01T09:00:00Z"),
            ("archived-recently", true, "2026-07-01T11:00:00Z"),
            ("archived-long-ago", true, "2026-07-01T09:00:00Z"),
        ] {
            s.take_listed(&Environment {
                is_archived: archived,
                updated_at: Some(ts(updated)),
                ..environment(id, "p", None)
            });
            s.mark_unreadable(&Arc::from(id));
        }
        // The full re-reads still come to the first two, so a refusal of theirs can end; never to
        // the third.
        assert_eq!(s.unreadable_count(window_start), 2);
        assert!(s.is_unreadable("archived-long-ago"));
    }

    #[test]
    fn the_cheaper_listing_is_chosen_by_the_counts_last_listed() {
        let mut s = Schedule::new(ts("2026-07-01T12:00:00Z"));
        let watched = vec!["small".to_owned()];
        // Never listed org-wide: per project.
        assert!(s.per_project_is_cheaper(&watched));
        // 250 environments org-wide (3 pages), 5 in the watched project (1 page).
        let mut envs: Vec<Environment> = (0..245)
            .map(|i| environment(&format!("b{i}"), "big", None))
            .collect();
        envs.extend((0..5).map(|i| environment(&format!("s{i}"), "small", None)));
        s.note_org_listing(&envs);
        assert!(s.per_project_is_cheaper(&watched));
        // Watching both: 1 + 3 pages per project against 3 org-wide.
        let both = vec!["small".to_owned(), "big".to_owned()];
        assert!(!s.per_project_is_cheaper(&both));
        // The big project shrank to 50 when listed alone: 2 pages against 3.
        s.note_project_listing("big", 50);
        assert!(s.per_project_is_cheaper(&both));
    }
}
