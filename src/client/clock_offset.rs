//! env0's clock as the client learns it: from the `Date` header of each answer, else from the
//! newest record timestamps seen.

use std::sync::PoisonError;

use jiff::Timestamp;
use reqwest::header::{self, HeaderMap};

use super::Client;
use crate::clock::OffsetSource;

/// env0's clock minus ours, from a `Date` header (`date`, whole seconds, rounded down by the
/// server) read at our `local` time.
///
/// env0's time at `local` lies in `[date, date + 1 s)`, so the offset lies in
/// `[date − local, date − local + 1 s)`; the whole number of seconds in that interval is taken
/// (exact when the two clocks differ by whole seconds, less than a second off otherwise).
#[must_use]
pub fn clock_offset_from_date(date: Timestamp, local: Timestamp) -> jiff::SignedDuration {
    let raw = date.duration_since(local);
    let secs = raw.as_secs();
    let ceil = if raw.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    };
    jiff::SignedDuration::from_secs(ceil)
}

impl Client {
    /// env0's clock minus ours, as measured on the last response that carried a `Date` header
    /// (`None` before any did). See [`clock_offset_from_date`].
    #[must_use]
    pub fn clock_offset(&self) -> Option<jiff::SignedDuration> {
        *self
            .inner
            .clock_offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The best estimate of env0's clock minus ours, and where it comes from: the `Date`
    /// header when one was seen (exact to the second), else the largest lower bound the
    /// records have shown (env0's clock is at least that far ahead; it may be further), else
    /// nothing.
    #[must_use]
    pub fn clock_estimate(&self) -> (Option<jiff::SignedDuration>, OffsetSource) {
        if let Some(offset) = self.clock_offset() {
            return (Some(offset), OffsetSource::DateHeader);
        }
        let records = *self
            .inner
            .records_offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match records {
            Some(offset) => (Some(offset), OffsetSource::Records),
            None => (None, OffsetSource::None),
        }
    }

    /// Notes that env0's clock had reached `newest` by our time `arrived`.
    pub(super) fn record_newest(&self, newest: Option<Timestamp>, arrived: Timestamp) {
        let Some(newest) = newest else {
            return;
        };
        let bound = newest.duration_since(arrived);
        let mut records = self
            .inner
            .records_offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if records.is_none_or(|known| bound > known) {
            *records = Some(bound);
        }
    }

    pub(super) fn record_date(&self, headers: &HeaderMap) {
        let Some(date) = headers
            .get(header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| Timestamp::try_from(t).ok())
        else {
            return;
        };
        let offset = clock_offset_from_date(date, self.inner.clock.now());
        *self
            .inner
            .clock_offset
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(offset);
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn the_offset_is_the_whole_seconds_the_date_header_allows() {
        let offset = |date, local| clock_offset_from_date(ts(date), ts(local)).as_secs();
        // Same clocks: a Date rounded down by the server reads as no offset.
        assert_eq!(offset("2026-07-01T12:00:00Z", "2026-07-01T12:00:00Z"), 0);
        assert_eq!(
            offset("2026-07-01T12:00:00Z", "2026-07-01T12:00:00.700Z"),
            0
        );
        // env0 ten minutes ahead or behind.
        assert_eq!(offset("2026-07-01T12:10:00Z", "2026-07-01T12:00:00Z"), 600);
        assert_eq!(offset("2026-07-01T11:50:00Z", "2026-07-01T12:00:00Z"), -600);
        assert_eq!(
            offset("2026-07-01T11:50:00Z", "2026-07-01T12:00:00.300Z"),
            -600
        );
    }
}
