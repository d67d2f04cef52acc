//! Sliding-window request budget: at most `capacity` requests in any window of `window` length.
//!
//! env0 counts 1,000 requests per 60 s per IP, method and path, and the exporter shares that with
//! every other env0 client on the same IP, so its own budget must hold in *every* 60-second window,
//! not on average. A token bucket (e.g. `governor`) allows a full burst plus the refill inside one
//! window; this keeps the timestamps of the last `capacity` requests instead, which is exact, tells
//! how much budget is left (`env0_exporter_api_budget_remaining`) and reads time from the injected
//! [`Clock`](crate::clock::Clock). The simulated env0 enforces env0's rule with a limiter of its
//! own (in `env0-sim`), so that this one is checked against a second reading of the rule.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use jiff::Timestamp;

use crate::clock::{self, Clock};

/// The times of recent requests, oldest first, and a pause imposed by the server.
#[derive(Debug)]
pub struct SlidingWindow {
    capacity: u32,
    window: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    sent: VecDeque<Timestamp>,
    paused_until: Option<Timestamp>,
    /// Requests taken since the budget was made, all windows together.
    taken: u64,
}

impl SlidingWindow {
    /// A budget of `capacity` requests per `window`.
    #[must_use]
    pub fn new(capacity: u32, window: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            window,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn expire(&self, inner: &mut Inner, now: Timestamp) {
        let horizon = clock::sub(now, self.window);
        while inner.sent.front().is_some_and(|t| *t <= horizon) {
            inner.sent.pop_front();
        }
        if inner.paused_until.is_some_and(|p| p <= now) {
            inner.paused_until = None;
        }
    }

    /// Takes one request from the budget at `now`, or says how long to wait until one is free.
    ///
    /// # Errors
    /// The wait until a request fits the window (or the server's pause ends).
    pub fn try_acquire(&self, now: Timestamp) -> Result<(), Duration> {
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        if let Some(until) = inner.paused_until {
            return Err(clock::elapsed(now, until).max(Duration::from_millis(1)));
        }
        if inner.sent.len() < self.capacity as usize {
            inner.sent.push_back(now);
            inner.taken += 1;
            return Ok(());
        }
        let oldest = inner.sent.front().copied().unwrap_or(now);
        let free_at = clock::add(oldest, self.window);
        Err(clock::elapsed(now, free_at).max(Duration::from_millis(1)))
    }

    /// Requests that could be sent at `now`: none during a server-imposed pause, else what is
    /// left of the window ending at `now`.
    #[must_use]
    pub fn remaining(&self, now: Timestamp) -> u32 {
        let mut inner = self.lock();
        self.expire(&mut inner, now);
        if inner.paused_until.is_some() {
            return 0;
        }
        let used = u32::try_from(inner.sent.len()).unwrap_or(u32::MAX);
        self.capacity.saturating_sub(used)
    }

    /// Requests taken from the budget since it was made (refused ones aside): what its users
    /// sent, counted where they ask leave to send.
    #[must_use]
    pub fn taken(&self) -> u64 {
        self.lock().taken
    }

    /// Holds every request back until `until` (a server's `Retry-After`).
    pub fn pause_until(&self, until: Timestamp) {
        let mut inner = self.lock();
        if inner.paused_until.is_none_or(|p| p < until) {
            inner.paused_until = Some(until);
        }
    }

    /// Waits on `clock` until a request fits, then takes it; gives up (returning `false`, taking
    /// nothing) when the request could not be sent before `deadline` (a slot freeing exactly then is too late: the
    /// deadline is when the next poll starts).
    pub async fn acquire_before(&self, clock: &dyn Clock, deadline: Timestamp) -> bool {
        loop {
            let now = clock.now();
            match self.try_acquire(now) {
                Ok(()) => return true,
                Err(wait) if clock::add(now, wait) >= deadline => return false,
                Err(wait) => clock.sleep_until(clock::add(now, wait)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_780_000_000 + secs).expect("valid timestamp")
    }

    #[test]
    fn no_window_of_the_given_length_ever_holds_more_than_capacity() {
        let w = SlidingWindow::new(5, Duration::from_secs(60));
        let mut granted = Vec::new();
        // Ask every second for five minutes; record what is granted.
        for s in 0..300 {
            if w.try_acquire(t(s)).is_ok() {
                granted.push(s);
            }
        }
        for start in 0..300 {
            let in_window = granted
                .iter()
                .filter(|&&g| g >= start && g < start + 60)
                .count();
            assert!(in_window <= 5, "window at {start}s held {in_window}");
        }
        // 5 per minute for 5 minutes.
        assert_eq!(granted.len(), 25);
        assert_eq!(
            w.taken(),
            25,
            "every request granted is counted, across windows"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..proptest::prelude::ProptestConfig::default() })]
        /// Whatever the budget (1 to 1,000, the flag's range) and however requests are asked
        /// for (bursts, gaps, many in the same millisecond) and paused (a 429's `Retry-After`),
        /// no 60-second window of granted requests holds more than the budget, nothing is
        /// granted during a pause, and a refusal says how long to wait.
        #[test]
        fn no_60_second_window_goes_over_any_budget(
            capacity in 1u32..=1000,
            gaps_ms in proptest::collection::vec(0u64..2_000, 1..3_000),
            pauses in proptest::collection::vec((0usize..3_000, 1u64..120_000), 0..4),
        ) {
            let w = SlidingWindow::new(capacity, Duration::from_secs(60));
            let mut now = t(0);
            let mut granted: Vec<Timestamp> = Vec::new();
            let mut paused: Vec<(Timestamp, Timestamp)> = Vec::new();
            for (i, gap) in gaps_ms.iter().enumerate() {
                now = clock::add(now, Duration::from_millis(*gap));
                for (at, ms) in &pauses {
                    if *at == i {
                        let until = clock::add(now, Duration::from_millis(*ms));
                        w.pause_until(until);
                        paused.push((now, until));
                    }
                }
                // A pause set so far (this step's included) that holds `now`.
                let in_pause = paused.iter().any(|(from, until)| *from <= now && now < *until);
                match w.try_acquire(now) {
                    Ok(()) => {
                        proptest::prop_assert!(!in_pause, "granted at {now} during a pause");
                        granted.push(now);
                    }
                    Err(wait) => {
                        proptest::prop_assert!(wait > Duration::ZERO);
                        // Refused only when paused or when the last 60 s hold the whole budget.
                        let horizon = clock::sub(now, Duration::from_secs(60));
                        let recent = granted.iter().filter(|g| **g > horizon).count();
                        proptest::prop_assert!(in_pause || recent == capacity as usize, "refused with {recent} of {capacity} used");
                    }
                }
            }
            // The busiest window starts at a granted request.
            for (i, start) in granted.iter().enumerate() {
                let end = clock::add(*start, Duration::from_secs(60));
                let held = granted[i..].iter().take_while(|g| **g < end).count();
                proptest::prop_assert!(held <= capacity as usize, "{held} requests in the 60 s from {start} with a budget of {capacity}");
            }
        }
    }

    #[test]
    fn a_full_window_says_how_long_until_the_oldest_request_expires() {
        let w = SlidingWindow::new(2, Duration::from_secs(60));
        assert!(w.try_acquire(t(0)).is_ok());
        assert!(w.try_acquire(t(10)).is_ok());
        assert_eq!(w.remaining(t(10)), 0);
        assert_eq!(w.try_acquire(t(20)), Err(Duration::from_secs(40)));
        assert_eq!(w.remaining(t(60)), 1);
    }

    #[tokio::test]
    async fn a_slot_that_frees_exactly_at_the_deadline_is_too_late() {
        let clock = crate::clock::ManualClock::new(t(0));
        let w = SlidingWindow::new(1, Duration::from_secs(60));
        assert!(w.acquire_before(&clock, t(60)).await);
        assert!(!w.acquire_before(&clock, t(60)).await);
        assert_eq!(w.remaining(t(0)), 0, "a refused request takes nothing");
        assert_eq!(w.taken(), 1, "nor is it counted");
        let later = tokio::time::timeout(Duration::from_secs(5), async {
            let waiting = w.acquire_before(&clock, t(61));
            tokio::pin!(waiting);
            tokio::select! {
                ok = &mut waiting => ok,
                () = async { tokio::task::yield_now().await; clock.advance(Duration::from_secs(60)); std::future::pending().await } => unreachable!(),
            }
        });
        assert!(later.await.expect("woke once the slot freed"));
    }

    #[test]
    fn a_pause_holds_requests_until_it_ends() {
        let w = SlidingWindow::new(100, Duration::from_secs(60));
        w.pause_until(t(30));
        assert_eq!(w.remaining(t(0)), 0, "nothing can be sent during the pause");
        assert_eq!(w.try_acquire(t(0)), Err(Duration::from_secs(30)));
        assert_eq!(w.remaining(t(30)), 100);
        assert!(w.try_acquire(t(30)).is_ok());
    }
}
