//! The start-up backfill's progress across polls: when it starts (the first plan with reads of
//! a lookback window), how far it is (logged at every tenth and at least every
//! [`PROGRESS_LOG_EVERY`], with an estimate of the time left at the request budget), when a long
//! poll republishes what it has so far (every [`PROGRESS_EVERY`]), and when it is complete.
//!
//! It is told the request count and the times; it makes no request and reads no clock.

use std::time::Duration;

use jiff::Timestamp;
use tracing::info;

use crate::clock;

/// How often a long poll (the start-up backfill) republishes what it has so far.
pub(super) const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// The longest gap between two log lines of the backfill's progress (one is also logged at every
/// tenth of it).
const PROGRESS_LOG_EVERY: Duration = Duration::from_secs(60);

/// The backfill under way, if any.
#[derive(Debug, Default)]
pub(super) struct Backfill {
    progress: Option<Progress>,
}

/// The progress of a backfill under way.
#[derive(Debug)]
struct Progress {
    /// Environments waiting for their backfill when it started.
    total: usize,
    /// Backfill reads done since.
    done: usize,
    /// When it started (our clock).
    started: Timestamp,
    /// The exporter's env0 requests so far when it started.
    requests_at_start: u64,
    last_logged: Timestamp,
    /// Tenths of `total` done when last logged.
    last_logged_tenth: usize,
    last_published: Timestamp,
}

impl Backfill {
    /// Starts following the backfill at `now` when a plan holds `planned` first reads of a
    /// lookback window and none is followed yet; `pending` environments wait for theirs,
    /// `requests` have been sent so far.
    pub(super) fn start(
        &mut self,
        planned: usize,
        pending: usize,
        now: Timestamp,
        requests: u64,
        lookback: Duration,
    ) {
        if self.progress.is_some() || planned == 0 {
            return;
        }
        info!(environments = pending, lookback = %humantime::format_duration(lookback), "backfilling the lookback window");
        self.progress = Some(Progress {
            total: pending,
            done: 0,
            started: now,
            requests_at_start: requests,
            last_logged: now,
            last_logged_tenth: 0,
            last_published: now,
        });
    }

    /// One more backfill read done at `now` (`requests` sent by the exporter so far, `budget`
    /// a minute, `tracked` deployments); logs when a tenth more is done or a while passed, and
    /// says whether to publish what there is.
    pub(super) fn step(
        &mut self,
        now: Timestamp,
        requests: u64,
        budget: u32,
        tracked: usize,
    ) -> bool {
        let Some(p) = &mut self.progress else {
            return false;
        };
        p.done += 1;
        let tenth = (p.done * 10) / p.total.max(1);
        if tenth > p.last_logged_tenth || clock::elapsed(p.last_logged, now) >= PROGRESS_LOG_EVERY {
            p.last_logged = now;
            p.last_logged_tenth = tenth;
            let used = requests.saturating_sub(p.requests_at_start);
            let left = p.total.saturating_sub(p.done);
            // At the requests each environment has cost so far, the whole budget spent on it.
            #[allow(clippy::cast_precision_loss)]
            let eta_secs =
                used as f64 / p.done as f64 * left as f64 / f64::from(budget.max(1)) * 60.0;
            info!(
                done = p.done,
                of = p.total,
                requests = used,
                tracked,
                elapsed = %humantime::format_duration(Duration::from_secs(clock::elapsed(p.started, now).as_secs())),
                estimated_left = %humantime::format_duration(Duration::from_secs_f64(eta_secs.clamp(0.0, 1e9).round())),
                "backfill progress"
            );
        }
        if clock::elapsed(p.last_published, now) < PROGRESS_EVERY {
            return false;
        }
        p.last_published = now;
        true
    }

    /// Says, once no environment waits for its backfill any more (`pending` is zero), that it
    /// is complete, with the time and the requests it took.
    pub(super) fn finish(&mut self, pending: usize, now: Timestamp, requests: u64, tracked: usize) {
        let Some(p) = &self.progress else {
            return;
        };
        if pending > 0 {
            return;
        }
        let took = clock::elapsed(p.started, now);
        info!(
            environments = p.total,
            tracked,
            requests = requests.saturating_sub(p.requests_at_start),
            took = %humantime::format_duration(Duration::from_secs(took.as_secs())),
            "backfill complete"
        );
        self.progress = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_780_000_000 + secs).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_plan_without_backfill_reads_starts_nothing_and_a_running_backfill_is_not_restarted() {
        let mut b = Backfill::default();
        b.start(0, 5, at(0), 0, DAY);
        assert!(b.progress.is_none());
        b.start(3, 5, at(0), 10, DAY);
        assert!(b.progress.is_some());
        b.start(2, 2, at(30), 50, DAY);
        assert_eq!(
            b.progress.as_ref().map(|p| (p.total, p.requests_at_start)),
            Some((5, 10))
        );
    }

    #[test]
    fn a_long_backfill_is_published_every_ten_seconds_of_progress() {
        let mut b = Backfill::default();
        b.start(100, 100, at(0), 0, DAY);
        let published: Vec<i64> = (1..=25).filter(|&s| b.step(at(s), 0, 500, 0)).collect();
        assert_eq!(published, vec![10, 20]);
        assert!(
            !Backfill::default().step(at(60), 0, 500, 0),
            "nothing followed, nothing to publish"
        );
    }

    #[test]
    fn the_backfill_ends_when_no_environment_waits_for_it() {
        let mut b = Backfill::default();
        b.start(2, 2, at(0), 0, DAY);
        b.finish(1, at(5), 3, 0);
        assert!(b.progress.is_some(), "one environment still waits");
        b.finish(0, at(9), 6, 0);
        assert!(b.progress.is_none());
    }
}
