//! The doctor's count of the requests it sent and the 429s it met, for the report.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::client::{Endpoint, RequestObserver, RequestOutcome};

/// Counts every attempt and remembers the 429s, for the report.
#[derive(Debug, Default)]
pub(super) struct Tally {
    inner: Mutex<TallyInner>,
}

#[derive(Debug, Default)]
struct TallyInner {
    requests: u32,
    rate_limited: u32,
    retry_after: Option<Duration>,
}

impl Tally {
    pub(super) fn read(&self) -> (u32, u32, Option<Duration>) {
        let t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (t.requests, t.rate_limited, t.retry_after)
    }
}

impl RequestObserver for Tally {
    fn observe(&self, _: Endpoint, _: RequestOutcome, _: Duration) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .requests += 1;
    }

    fn rate_limited(&self, _: Endpoint, retry_after: Option<Duration>) {
        let mut t = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        t.rate_limited += 1;
        if retry_after.is_some() {
            t.retry_after = retry_after;
        }
    }
}
