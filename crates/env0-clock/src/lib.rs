//! The one clock of env0-exporter and of the simulated env0 it is tested against: every "now"
//! and every timed wait goes through it.
//!
//! Production code uses [`SystemClock`]; tests and simulated soaks use [`ManualClock`], which
//! only moves when told to, so hours of env0 activity can be replayed in milliseconds. It is a
//! crate of its own so that the exporter and the simulator (which must not share the exporter's
//! code) read one time in tests.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use tokio::sync::watch;

/// A source of the current time and of timed waits.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Timestamp;
    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// A future that completes once this clock reaches `deadline` (at once if it has). Unlike
    /// `sleep(elapsed(now(), deadline))`, the clock moving between the two readings of "now"
    /// cannot push the wake-up past `deadline`.
    fn sleep_until(&self, deadline: Timestamp) -> BoxFuture<'static, ()>;
}

/// The clock shared by every part of one process.
pub type SharedClock = Arc<dyn Clock>;

/// Adds a std duration to a timestamp, saturating at the end of representable time.
#[must_use]
pub fn add(ts: Timestamp, duration: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| ts.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Subtracts a std duration from a timestamp, saturating at the start of representable time.
#[must_use]
pub fn sub(ts: Timestamp, duration: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| ts.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

/// `later - earlier` as a std duration, zero when `later` is not after `earlier`.
#[must_use]
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// Wall-clock time and tokio timers.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }

    fn sleep_until(&self, deadline: Timestamp) -> BoxFuture<'static, ()> {
        self.sleep(elapsed(Timestamp::now(), deadline))
    }
}

/// A clock that stands still until [`ManualClock::advance`] or [`ManualClock::set`] moves it.
///
/// Sleepers wake as soon as the clock reaches their deadline.
pub struct ManualClock {
    now: Mutex<Timestamp>,
    tick: watch::Sender<Timestamp>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

impl ManualClock {
    /// A clock standing at `start`.
    #[must_use]
    pub fn new(start: Timestamp) -> Self {
        let (tick, _) = watch::channel(start);
        Self {
            now: Mutex::new(start),
            tick,
        }
    }

    /// Moves the clock forward by `duration` and wakes the sleepers that are due.
    pub fn advance(&self, duration: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = add(*now, duration);
        self.tick.send_replace(*now);
    }

    /// Moves the clock to `ts` (never backwards) and wakes the sleepers that are due.
    pub fn set(&self, ts: Timestamp) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ts > *now {
            *now = ts;
            self.tick.send_replace(ts);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.sleep_until(add(self.now(), duration))
    }

    fn sleep_until(&self, deadline: Timestamp) -> BoxFuture<'static, ()> {
        let mut rx = self.tick.subscribe();
        Box::pin(async move {
            // An error means the clock was dropped: time will never come, so wait forever
            // like a timer on a stopped runtime would.
            if rx.wait_for(|now| *now >= deadline).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse()
            .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
    }

    #[tokio::test]
    async fn a_sleep_until_a_deadline_is_not_pushed_back_by_the_clock_moving_before_it_starts() {
        let clock = Arc::new(ManualClock::new(ts("2026-07-01T00:00:00Z")));
        let deadline = ts("2026-07-01T00:01:00Z");
        // The time left, read before the clock moves: 60 s. Slept from the moved clock, that
        // would wake at 00:02; the deadline itself is reached already.
        let left = elapsed(clock.now(), deadline);
        clock.advance(Duration::from_secs(60));
        tokio::time::timeout(Duration::from_secs(5), clock.sleep_until(deadline))
            .await
            .expect("a deadline already reached completes at once");
        let late = tokio::spawn(clock.sleep(left));
        tokio::task::yield_now().await;
        assert!(
            !late.is_finished(),
            "sleep(left) from the moved clock waits on"
        );
        // A sleeper until a later deadline waking exactly then: the next test, through `sleep`.
    }

    /// `sleep` is `sleep_until(now + duration)`: this covers both.
    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_once_their_deadline_is_reached() {
        let clock = Arc::new(ManualClock::new(ts("2026-07-01T00:00:00Z")));
        let sleeper = tokio::spawn(clock.sleep(Duration::from_secs(60)));
        clock.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("sleeper task ran");
        assert_eq!(clock.now(), ts("2026-07-01T00:01:00Z"));
    }

    #[test]
    fn manual_clock_never_moves_backwards() {
        let clock = ManualClock::new(ts("2026-07-01T00:00:00Z"));
        clock.set(ts("2026-06-01T00:00:00Z"));
        assert_eq!(clock.now(), ts("2026-07-01T00:00:00Z"));
    }

    #[test]
    fn elapsed_is_zero_when_time_went_backwards() {
        assert_eq!(
            elapsed(ts("2026-07-01T00:00:10Z"), ts("2026-07-01T00:00:00Z")),
            Duration::ZERO
        );
        assert_eq!(
            elapsed(ts("2026-07-01T00:00:00Z"), ts("2026-07-01T00:00:10Z")),
            Duration::from_secs(10)
        );
    }
}
