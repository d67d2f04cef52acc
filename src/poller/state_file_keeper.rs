//! The poller's side of the state file (`--state-file`, see [`crate::state_file_format`]): restored at the
//! first poll that knows the organisation (before the first environment listing), written after
//! polls that read something, at most every `--state-file-interval`, off the poll's path, and
//! once more at shutdown.
//!
//! What a restore means: restored environments count as backfilled and baselined as they were;
//! their finished runs are history (never counted again), their unfinished runs are known (their
//! finish counts once, when seen). An environment whose listed latest run differs from the one it
//! was last read at is read from its last read (less the usual overlap), like any changed
//! environment; one whose periodic full re-read fell due while the exporter was down is given a
//! new due time spread over the interval, so a restart does not re-read every environment at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::coverage::Coverage;
use super::known::Known;
use super::schedule::{self, EnvSchedule, Schedule};
use super::{PollReport, PollerConfig};
use crate::clock::{self, Clock};
use crate::state::Store;
use crate::state_file_format::{
    self, Body, Expected, FORMAT_VERSION, Header, PersistedSchedule, Rejected, Settings, StateFile,
    StateFileConfig,
};

/// The state file's keeper: when to look at it, whether and when to write it. Without
/// `--state-file` it does nothing.
#[derive(Debug, Default)]
pub(super) struct StateFileKeeper {
    file: Option<Kept>,
}

/// The bookkeeping of one state file.
#[derive(Debug)]
struct Kept {
    config: StateFileConfig,
    expected: Expected,
    /// Whether the file was looked at (once, at the first poll that knows the organisation).
    looked_at: bool,
    /// Whether there is anything worth writing: a file restored, or a listing taken. Until then a
    /// write would replace a good file with an empty one.
    ready: bool,
    /// Whether something was read since the last write.
    dirty: bool,
    /// When the last write started (the exporter's clock).
    last_write: Option<Timestamp>,
    /// The write under way, if any.
    writing: Option<JoinHandle<()>>,
}

impl StateFileKeeper {
    /// Keeps the state file `config` describes, for a poller with settings `c`.
    pub(super) fn new(config: StateFileConfig, c: &PollerConfig) -> Self {
        let expected = Expected {
            settings: Settings::new(c.lookback, &c.filter, &c.projects, c.views),
            // A file of another shard holds other environments: refused like another
            // organisation's.
            shard: (!c.shard.is_whole()).then(|| c.shard.to_string()),
            lookback: c.lookback,
        };
        Self {
            file: Some(Kept {
                config,
                expected,
                looked_at: false,
                ready: false,
                dirty: false,
                last_write: None,
                writing: None,
            }),
        }
    }

    /// At the first poll that knows the organisation `org`: reads the state file and, if it may
    /// be used, restores `schedule` and `store` from it (both still empty); else says why not (a
    /// warning) and lets the backfill run. `env0_now` tells env0's time (see
    /// [`env0_time_bounds`](super::env0_time_bounds)).
    pub(super) async fn restore(
        &mut self,
        org: &str,
        config: &PollerConfig,
        (schedule, coverage): (&mut Schedule, &mut Coverage),
        store: &mut Store,
        clock: &dyn Clock,
        env0_now: &(dyn Fn() -> Timestamp + Sync),
    ) {
        let Some(sf) = self.file.as_mut() else {
            return;
        };
        if sf.looked_at {
            return;
        }
        sf.looked_at = true;
        let path = sf.config.path.clone();
        if !schedule.is_empty() || store.tracked() > 0 {
            return;
        }
        let started = Instant::now();
        let loaded = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || state_file_format::load(&path))
                .await
                .unwrap_or_else(|e| Err(Rejected::Corrupt(e.to_string())))
        };
        let file = match loaded {
            Ok(Some(file)) => file,
            Ok(None) => {
                info!(file = %path.display(), "no state file yet: backfilling the lookback window");
                return;
            }
            Err(reason) => {
                warn!(file = %path.display(), %reason, "state file not used: backfilling the lookback window");
                return;
            }
        };
        let now = clock.now();
        let checked = file
            .header
            .check(&sf.expected, org, now)
            .and_then(|()| apply(&file.body, config, schedule, store, env0_now()));
        match checked {
            Ok(()) => {
                coverage.restore(&file.body.webhooks);
                sf.ready = true;
                info!(
                    file = %path.display(),
                    environments = schedule.len(),
                    deployments = store.tracked(),
                    age = %humantime::format_duration(Duration::from_secs(file.header.age(now).as_secs())),
                    written_by = %file.header.exporter_version,
                    took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "state restored: reading only what changed since"
                );
            }
            Err(reason) => {
                warn!(file = %path.display(), %reason, "state file not used: backfilling the lookback window");
            }
        }
    }

    /// Notes what a successful poll did: a listing makes the state worth writing, a read makes
    /// it worth writing again.
    pub(super) fn note_poll(&mut self, report: &PollReport) {
        if let Some(sf) = self.file.as_mut() {
            if report.environments > 0 {
                sf.ready = true;
            }
            if report.reads.values().any(|n| *n > 0) {
                sf.dirty = true;
            }
        }
    }

    /// After a poll: writes the state file in the background when
    /// something was read since the last write and the interval has passed (and no write is
    /// under way).
    pub(super) fn save_if_due(
        &mut self,
        clock: &dyn Clock,
        org: Option<&str>,
        state: (&Schedule, &Coverage),
        known: &Known,
    ) {
        let now = clock.now();
        let Some(sf) = self.file.as_ref() else {
            return;
        };
        if !sf.ready || !sf.dirty || sf.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        if sf
            .last_write
            .is_some_and(|last| clock::elapsed(last, now) < sf.config.interval)
        {
            return;
        }
        if let Some(write) = self.spawn_write(clock, org, state, known)
            && let Some(sf) = self.file.as_mut()
        {
            sf.writing = Some(write);
        }
    }

    /// Writes the state file now and waits for it (at shutdown, and after `once`'s poll),
    /// after any write under way.
    pub(super) async fn save(
        &mut self,
        clock: &dyn Clock,
        org: Option<&str>,
        state: (&Schedule, &Coverage),
        known: &Known,
    ) {
        let Some(sf) = self.file.as_mut() else {
            return;
        };
        if let Some(write) = sf.writing.take() {
            let _ = write.await;
        }
        if !sf.ready {
            return;
        }
        if let Some(write) = self.spawn_write(clock, org, state, known) {
            let _ = write.await;
        }
    }

    /// Takes the state now and writes it on a blocking thread; `None` before the organisation
    /// is known.
    fn spawn_write(
        &mut self,
        clock: &dyn Clock,
        org: Option<&str>,
        state: (&Schedule, &Coverage),
        known: &Known,
    ) -> Option<JoinHandle<()>> {
        let started = Instant::now();
        let sf = self.file.as_mut()?;
        let file = export(sf, org?, clock.now(), state, &known.store);
        let exported = started.elapsed();
        let now = clock.now();
        sf.dirty = false;
        sf.last_write = Some(now);
        let path = sf.config.path.clone();
        let metrics = known.metrics.clone();
        Some(tokio::task::spawn_blocking(move || {
            let deployments = file.body.store.deployments.len();
            let result = state_file_format::save(&path, &file);
            let took = started.elapsed();
            metrics.state_file_written(result.is_ok(), now);
            match result {
                Ok(bytes) => debug!(
                    file = %path.display(),
                    deployments,
                    bytes,
                    export_ms = u64::try_from(exported.as_millis()).unwrap_or(u64::MAX),
                    took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                    "state file written"
                ),
                Err(e) => {
                    warn!(file = %path.display(), error = %e, "state file not written; the previous one is kept");
                }
            }
        }))
    }
}

/// Applies a checked file's body at env0's `now`: all of it, or (on a bad value) none of it.
fn apply(
    body: &Body,
    config: &PollerConfig,
    schedule: &mut Schedule,
    store: &mut Store,
    now: Timestamp,
) -> Result<(), Rejected> {
    let mut restored: HashMap<Arc<str>, EnvSchedule> = HashMap::with_capacity(body.schedule.len());
    let mut unreadable = HashSet::new();
    for entry in &body.schedule {
        let id: Arc<str> = Arc::from(entry.id.as_str());
        let mut s = schedule_of(entry)?;
        // A full re-read that fell due while the exporter was down is spread over the
        // interval again, as at a backfill, rather than all done by the first poll.
        if let Some(interval) = config.full_sync_interval {
            if s.backfilled && s.next_full_sync.is_none_or(|due| due <= now) {
                s.next_full_sync = Some(schedule::first_full_sync(&id, now, interval));
            }
        } else {
            s.next_full_sync = None;
        }
        if entry.unreadable {
            unreadable.insert(id.clone());
        }
        restored.insert(id, s);
    }
    store.restore(&body.store)?;
    schedule.restore(restored, unreadable);
    Ok(())
}

/// What the state file holds at `now` (our clock).
fn export(
    sf: &Kept,
    organization_id: &str,
    now: Timestamp,
    (schedule, coverage): (&Schedule, &Coverage),
    store: &Store,
) -> StateFile {
    StateFile {
        header: Header {
            format: FORMAT_VERSION,
            exporter_version: env!("CARGO_PKG_VERSION").to_owned(),
            organization_id: organization_id.to_owned(),
            written_at_ms: state_file_format::millis(now),
            shard: sf.expected.shard.clone(),
            settings: sf.expected.settings.clone(),
        },
        body: Body {
            schedule: schedule
                .iter()
                .map(|(id, s)| persisted(id, s, schedule.is_unreadable(id)))
                .collect(),
            store: store.export(),
            webhooks: coverage.export(),
        },
    }
}

fn latest_of(
    latest: Option<&(String, Option<String>)>,
) -> Option<state_file_format::PersistedLatest> {
    latest.map(|(id, status)| state_file_format::PersistedLatest {
        id: id.clone(),
        status: status.clone(),
    })
}

fn latest_from(
    latest: Option<&state_file_format::PersistedLatest>,
) -> Option<(String, Option<String>)> {
    latest.map(|l| (l.id.clone(), l.status.clone()))
}

/// The file's form of environment `id`'s schedule.
fn persisted(id: &str, s: &EnvSchedule, unreadable: bool) -> PersistedSchedule {
    PersistedSchedule {
        id: id.to_owned(),
        listed_latest: latest_of(s.listed_latest.as_ref()),
        read_latest: latest_of(s.read_latest.as_ref()),
        backfilled: s.backfilled,
        last_read: s.last_read.map(state_file_format::millis),
        next_full_sync: s.next_full_sync.map(state_file_format::millis),
        archived: s.archived,
        updated_at: s.updated_at.map(state_file_format::millis),
        unreadable,
        last_full_read: s.last_full_read.map(state_file_format::millis),
    }
}

/// Back to the poller's form; a timestamp out of range is an error.
fn schedule_of(p: &PersistedSchedule) -> Result<EnvSchedule, Rejected> {
    Ok(EnvSchedule {
        listed_latest: latest_from(p.listed_latest.as_ref()),
        read_latest: latest_from(p.read_latest.as_ref()),
        backfilled: p.backfilled,
        last_read: state_file_format::timestamp_opt(p.last_read)?,
        next_full_sync: state_file_format::timestamp_opt(p.next_full_sync)?,
        archived: p.archived,
        updated_at: state_file_format::timestamp_opt(p.updated_at)?,
        last_full_read: state_file_format::timestamp_opt(p.last_full_read)?,
        // The back-off of re-reads of held runs starts afresh: the first is at the next poll.
        ..EnvSchedule::default()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::clock::ManualClock;
    use crate::poller::schedule::{PlannedRead, ReadKind};
    use crate::poller::test_support;

    fn now() -> Timestamp {
        test_support::ts("2026-07-01T12:00:00Z")
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        config: PollerConfig,
        clock: ManualClock,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("state.json");
        Fixture {
            _dir: dir,
            path,
            config: test_support::config(),
            clock: ManualClock::new(now()),
        }
    }

    impl Fixture {
        fn keeper(&self) -> StateFileKeeper {
            let file = StateFileConfig {
                path: self.path.clone(),
                interval: Duration::ZERO,
            };
            StateFileKeeper::new(file, &self.config)
        }
    }

    /// A schedule listing `e1`, read once (its backfill).
    fn read_once(config: &PollerConfig) -> Schedule {
        let mut schedule = Schedule::new(now());
        schedule.take_listed(&test_support::environment("e1", Some("d1")));
        let read = PlannedRead {
            environment: Arc::from("e1"),
            kind: ReadKind::Backfill,
            full: true,
            from: now(),
            polled: true,
        };
        schedule.mark_read(config, &read, now(), (None, None));
        schedule
    }

    #[tokio::test]
    async fn nothing_is_written_before_a_listing_so_a_good_file_is_never_emptied() {
        let f = fixture();
        let mut keeper = f.keeper();
        let known = Known::for_tests();
        keeper.note_poll(&PollReport::default());
        keeper
            .save(
                &f.clock,
                Some("o"),
                (&Schedule::new(now()), &Coverage::default()),
                &known,
            )
            .await;
        assert!(!f.path.exists());
        let listed = PollReport {
            environments: 1,
            reads: HashMap::from([("backfill", 1)]),
            ..PollReport::default()
        };
        keeper.note_poll(&listed);
        keeper
            .save(
                &f.clock,
                Some("o"),
                (&read_once(&f.config), &Coverage::default()),
                &known,
            )
            .await;
        assert!(f.path.exists());
    }

    #[tokio::test]
    async fn what_was_written_is_restored_for_the_same_organisation_only() {
        let f = fixture();
        let mut keeper = f.keeper();
        keeper.note_poll(&PollReport {
            environments: 1,
            ..PollReport::default()
        });
        // What the deliveries covered is kept too.
        let mut coverage = Coverage::default();
        coverage.note_project(Arc::from("p"), now());
        coverage.note_end(Arc::from("deploy"), true, now());
        coverage.note_end(Arc::from("deploy"), false, now());
        keeper
            .save(
                &f.clock,
                Some("o"),
                (&read_once(&f.config), &coverage),
                &Known::for_tests(),
            )
            .await;
        let restore = |org: &'static str| {
            let mut keeper = f.keeper();
            let config = f.config.clone();
            let clock = &f.clock;
            async move {
                let mut schedule = Schedule::new(now());
                let mut coverage = Coverage::default();
                let mut store = Store::new(now(), config.lookback);
                keeper
                    .restore(
                        org,
                        &config,
                        (&mut schedule, &mut coverage),
                        &mut store,
                        clock,
                        &now,
                    )
                    .await;
                (schedule, coverage)
            }
        };
        let (restored, coverage) = restore("o").await;
        assert!(coverage.covers(Some(&Arc::from("p")), "deploy", now()));
        assert!(!coverage.covers(Some(&Arc::from("p")), "prPlan", now()));
        assert!(restored.contains("e1"));
        assert_eq!(restored.backfill_pending(), 0, "restored as read");
        assert_eq!(restored.listed_latest_id("e1").as_deref(), Some("d1"));
        let (other, coverage) = restore("another").await;
        assert!(other.is_empty());
        assert!(!coverage.covers(Some(&Arc::from("p")), "deploy", now()));
    }
}
