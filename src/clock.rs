//! The one clock of the process: every "now" and every timed wait goes through it.
//!
//! The clock itself is the `env0-clock` crate, which the simulated env0 reads too (tests move one
//! [`ManualClock`] for both sides); this module names it for the exporter and adds what only the
//! exporter knows about time.

pub use env0_clock::{Clock, ManualClock, SharedClock, SystemClock, add, elapsed, sub};

/// Where the exporter's estimate of env0's clock comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetSource {
    /// Nothing yet: no `Date` header and no dated record seen.
    #[default]
    None,
    /// env0's `Date` header (exact to the second).
    DateHeader,
    /// The newest timestamp env0's records showed against when they arrived: a lower bound on
    /// how far ahead env0's clock is (it may trail env0's time by the age of that record).
    Records,
}

impl OffsetSource {
    /// The label value: `none`, `date_header` or `records`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DateHeader => "date_header",
            Self::Records => "records",
        }
    }
}
