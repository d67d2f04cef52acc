//! env0's rate limit as the simulated env0 enforces it: at most `per_minute` requests (1,000 by
//! default) in any 60 seconds, counted per HTTP method and URL path (the query string is not part
//! of the path); over it, a refusal that says when the oldest counted request leaves the window.
//!
//! Written here for the simulator alone, from env0's documented rule, so that the exporter's own
//! request budget is checked against a second reading of that rule instead of against itself.
//! Refused requests are not counted (env0 does not say; counting them would only lengthen the
//! refusal of a client that keeps knocking, which the exporter does not).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// env0's window.
const WINDOW: SignedDuration = SignedDuration::from_secs(60);

/// Paths kept before the ones with no request in the window are forgotten.
const PATHS_KEPT: usize = 4096;

/// The times of the requests each (method, path) was granted in the last minute, oldest first.
#[derive(Debug)]
pub(crate) struct RateLimit {
    granted: HashMap<(String, String), VecDeque<Timestamp>>,
    /// Forget idle paths once more than this many are kept (each environment's listing and each
    /// deployment read by id is a path of its own: a large organisation has thousands live).
    forget_above: usize,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            granted: HashMap::new(),
            forget_above: PATHS_KEPT,
        }
    }
}

/// Whether a request granted at `at` still counts at `now`.
fn counts(at: Timestamp, now: Timestamp) -> bool {
    now.duration_since(at) < WINDOW
}

impl RateLimit {
    /// Counts a `method` request to `path` at `now`, or refuses it with the time until the
    /// window has room again.
    pub(crate) fn admit(
        &mut self,
        method: &str,
        path: &str,
        now: Timestamp,
        per_minute: u32,
    ) -> Result<(), Duration> {
        if self.granted.len() > self.forget_above {
            self.granted
                .retain(|_, times| times.back().is_some_and(|t| counts(*t, now)));
            self.forget_above = PATHS_KEPT.max(2 * self.granted.len());
        }
        let times = self
            .granted
            .entry((method.to_owned(), path.to_owned()))
            .or_default();
        while times.front().is_some_and(|t| !counts(*t, now)) {
            times.pop_front();
        }
        match times.front() {
            Some(&oldest) if times.len() >= per_minute.max(1) as usize => {
                let free_at = oldest.checked_add(WINDOW).unwrap_or(Timestamp::MAX);
                Err(Duration::try_from(free_at.duration_since(now)).unwrap_or(Duration::ZERO))
            }
            _ => {
                times.push_back(now);
                Ok(())
            }
        }
    }

    /// The paths currently remembered (for the test of forgetting idle ones).
    #[cfg(test)]
    fn paths(&self) -> usize {
        self.granted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_790_000_000 + secs).expect("valid timestamp")
    }

    #[test]
    fn no_sixty_seconds_ever_hold_more_than_the_limit_on_one_path() {
        let mut limit = RateLimit::default();
        let granted: Vec<i64> = (0..600)
            .filter(|s| limit.admit("GET", "/projects", at(*s / 2), 10).is_ok())
            .map(|s| s / 2)
            .collect();
        for start in 0..300 {
            let inside = granted
                .iter()
                .filter(|g| (start..start + 60).contains(*g))
                .count();
            assert!(
                inside <= 10,
                "{inside} requests in the minute from {start}s"
            );
        }
        assert_eq!(granted.len(), 50, "ten a minute for five minutes");
    }

    #[test]
    fn a_refusal_says_when_the_oldest_request_leaves_the_window() {
        let mut limit = RateLimit::default();
        assert!(limit.admit("GET", "/organizations", at(0), 2).is_ok());
        assert!(limit.admit("GET", "/organizations", at(15), 2).is_ok());
        assert_eq!(
            limit.admit("GET", "/organizations", at(20), 2),
            Err(Duration::from_secs(40))
        );
        assert!(limit.admit("GET", "/organizations", at(60), 2).is_ok());
        assert_eq!(
            limit.admit("GET", "/organizations", at(61), 2),
            Err(Duration::from_secs(14)),
            "the refused request at 20 s counted for nothing"
        );
    }

    #[test]
    fn each_method_and_path_has_its_own_allowance() {
        let mut limit = RateLimit::default();
        assert!(limit.admit("GET", "/projects", at(0), 1).is_ok());
        assert!(limit.admit("GET", "/projects", at(0), 1).is_err());
        assert!(limit.admit("POST", "/projects", at(0), 1).is_ok());
        assert!(limit.admit("GET", "/environments", at(0), 1).is_ok());
    }

    #[test]
    fn idle_paths_are_forgotten_once_many_are_kept() {
        let mut limit = RateLimit::default();
        for i in 0..=PATHS_KEPT {
            assert!(limit.admit("GET", &format!("/d/{i}"), at(0), 5).is_ok());
        }
        assert_eq!(limit.paths(), PATHS_KEPT + 1);
        assert!(limit.admit("GET", "/d/again", at(60), 5).is_ok());
        assert_eq!(
            limit.paths(),
            1,
            "only the path asked for a minute later is left"
        );
    }
}
