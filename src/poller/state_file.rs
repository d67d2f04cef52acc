//! The poller's side of the state file (`--state-file`, see [`crate::persist`]): restored at the
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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::schedule::{self, EnvSchedule};
use super::{PollReport, Poller};
use crate::clock;
use crate::persist::{
    self, Body, Expected, FORMAT_VERSION, Header, PersistedSchedule, Rejected, Settings, StateFile,
    StateFileConfig,
};

/// The state file's bookkeeping in the poller.
#[derive(Debug)]
pub(super) struct StateFileState {
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

impl Poller {
    /// Restores from and writes to the state file `config` describes.
    pub fn set_state_file(&mut self, config: StateFileConfig) {
        let c = &self.config;
        let expected = Expected {
            settings: Settings::new(c.lookback, &c.filter, &c.projects, c.views),
            // A file of another shard holds other environments: refused like another
            // organisation's.
            shard: (!c.shard.is_whole()).then(|| c.shard.to_string()),
            lookback: c.lookback,
        };
        self.state_file = Some(StateFileState {
            config,
            expected,
            looked_at: false,
            ready: false,
            dirty: false,
            last_write: None,
            writing: None,
        });
    }

    /// At the first poll that knows the organisation `org`: reads the state file and, if it may
    /// be used, restores from it; else says why not (a warning) and lets the backfill run.
    pub(super) async fn restore_state(&mut self, org: &str) {
        let Some(sf) = self.state_file.as_mut() else {
            return;
        };
        if sf.looked_at {
            return;
        }
        sf.looked_at = true;
        let path = sf.config.path.clone();
        if !self.schedule.is_empty() || self.store.tracked() > 0 {
            return;
        }
        let started = Instant::now();
        let loaded = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || persist::load(&path))
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
        let now = self.clock.now();
        let checked = file
            .header
            .check(&sf.expected, org, now)
            .and_then(|()| self.apply_state(&file.body));
        match checked {
            Ok(()) => {
                if let Some(sf) = self.state_file.as_mut() {
                    sf.ready = true;
                }
                info!(
                    file = %path.display(),
                    environments = self.schedule.len(),
                    deployments = self.store.tracked(),
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

    /// Applies a checked file's body: all of it, or (on a bad value) none of it.
    fn apply_state(&mut self, body: &Body) -> Result<(), Rejected> {
        let now = self.env0_now();
        let mut restored: HashMap<Arc<str>, EnvSchedule> =
            HashMap::with_capacity(body.schedule.len());
        let mut unreadable = Vec::new();
        for entry in &body.schedule {
            let id: Arc<str> = Arc::from(entry.id.as_str());
            let mut s = schedule_of(entry)?;
            // A full re-read that fell due while the exporter was down is spread over the
            // interval again, as at a backfill, rather than all done by the first poll.
            if let Some(interval) = self.config.full_sync_interval {
                if s.backfilled && s.next_full_sync.is_none_or(|due| due <= now) {
                    s.next_full_sync = Some(schedule::first_full_sync(&id, now, interval));
                }
            } else {
                s.next_full_sync = None;
            }
            if entry.unreadable {
                unreadable.push(id.clone());
            }
            restored.insert(id, s);
        }
        self.store.restore(&body.store)?;
        self.schedule = restored;
        self.unreadable = unreadable.into_iter().collect();
        Ok(())
    }

    /// What the state file holds now; `None` before the organisation is known.
    fn export_state(&self) -> Option<StateFile> {
        let sf = self.state_file.as_ref()?;
        let organization_id = self.organization_id.clone()?;
        Some(StateFile {
            header: Header {
                format: FORMAT_VERSION,
                exporter_version: env!("CARGO_PKG_VERSION").to_owned(),
                organization_id,
                written_at_ms: persist::millis(self.clock.now()),
                shard: sf.expected.shard.clone(),
                settings: sf.expected.settings.clone(),
            },
            body: Body {
                schedule: self
                    .schedule
                    .iter()
                    .map(|(id, s)| persisted(id, s, self.unreadable.contains(id)))
                    .collect(),
                store: self.store.export(),
            },
        })
    }

    /// Notes what a successful poll did: a listing makes the state worth writing, a read makes
    /// it worth writing again.
    pub(super) fn note_poll_for_state_file(&mut self, report: &PollReport) {
        if let Some(sf) = self.state_file.as_mut() {
            if report.environments > 0 {
                sf.ready = true;
            }
            if report.reads.values().any(|n| *n > 0) {
                sf.dirty = true;
            }
        }
    }

    /// After a poll: writes the state file in the background when something was read since the
    /// last write and the interval has passed (and no write is under way).
    pub(super) fn save_state_if_due(&mut self) {
        let now = self.clock.now();
        let Some(sf) = self.state_file.as_mut() else {
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
        if let Some(write) = self.spawn_write()
            && let Some(sf) = self.state_file.as_mut()
        {
            sf.writing = Some(write);
        }
    }

    /// Writes the state file now and waits for it (at shutdown, and after `once`'s poll),
    /// after any write under way.
    pub async fn save_state(&mut self) {
        let Some(sf) = self.state_file.as_mut() else {
            return;
        };
        if let Some(write) = sf.writing.take() {
            let _ = write.await;
        }
        if !sf.ready {
            return;
        }
        if let Some(write) = self.spawn_write() {
            let _ = write.await;
        }
    }

    /// Takes the state now and writes it on a blocking thread.
    fn spawn_write(&mut self) -> Option<JoinHandle<()>> {
        let started = Instant::now();
        let file = self.export_state()?;
        let exported = started.elapsed();
        let now = self.clock.now();
        let sf = self.state_file.as_mut()?;
        sf.dirty = false;
        sf.last_write = Some(now);
        let path = sf.config.path.clone();
        let metrics = self.metrics.clone();
        Some(tokio::task::spawn_blocking(move || {
            let deployments = file.body.store.deployments.len();
            let result = persist::save(&path, &file);
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

fn latest_of(latest: Option<&(String, Option<String>)>) -> Option<persist::PersistedLatest> {
    latest.map(|(id, status)| persist::PersistedLatest {
        id: id.clone(),
        status: status.clone(),
    })
}

fn latest_from(latest: Option<&persist::PersistedLatest>) -> Option<(String, Option<String>)> {
    latest.map(|l| (l.id.clone(), l.status.clone()))
}

/// The file's form of environment `id`'s schedule.
fn persisted(id: &str, s: &EnvSchedule, unreadable: bool) -> PersistedSchedule {
    PersistedSchedule {
        id: id.to_owned(),
        listed_latest: latest_of(s.listed_latest.as_ref()),
        read_latest: latest_of(s.read_latest.as_ref()),
        backfilled: s.backfilled,
        last_read: s.last_read.map(persist::millis),
        next_full_sync: s.next_full_sync.map(persist::millis),
        archived: s.archived,
        updated_at: s.updated_at.map(persist::millis),
        unreadable,
        last_full_read: s.last_full_read.map(persist::millis),
    }
}

/// Back to the poller's form; a timestamp out of range is an error.
fn schedule_of(p: &PersistedSchedule) -> Result<EnvSchedule, Rejected> {
    Ok(EnvSchedule {
        listed_latest: latest_from(p.listed_latest.as_ref()),
        read_latest: latest_from(p.read_latest.as_ref()),
        backfilled: p.backfilled,
        last_read: persist::timestamp_opt(p.last_read)?,
        next_full_sync: persist::timestamp_opt(p.next_full_sync)?,
        archived: p.archived,
        updated_at: persist::timestamp_opt(p.updated_at)?,
        last_full_read: persist::timestamp_opt(p.last_full_read)?,
        // The back-off of re-reads of held runs starts afresh: the first is at the next poll.
        ..EnvSchedule::default()
    })
}
