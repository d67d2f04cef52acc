//! The compact forms the store keeps a deployment in: ids as 128-bit numbers, times as integer
//! milliseconds, label sets and environments as small indices into interned tables.
//!
//! At 200,000 deployments a byte per record is 200 KB, so a record holds no string, no `Arc` and
//! no `Option<Timestamp>`: 40 bytes plus its id.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;

use super::DeploymentLabels;

/// A deployment log id as the store keys it: env0's ids are lowercase UUIDs, kept as their 128
/// bits (no allocation); anything else is kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeploymentId {
    /// A UUID in env0's lowercase 8-4-4-4-12 form (its high and low 64 bits).
    Uuid(u64, u64),
    /// Any other id, as it came.
    Text(Box<str>),
}

impl DeploymentId {
    /// The key of `id`: a UUID when it is one in env0's lowercase form (so it prints back
    /// exactly), else the text.
    #[must_use]
    pub fn new(id: &str) -> Self {
        parse_uuid(id).map_or_else(
            || Self::Text(id.into()),
            #[allow(clippy::cast_possible_truncation)]
            |v| Self::Uuid((v >> 64) as u64, v as u64),
        )
    }
}

/// The 128 bits of a lowercase `8-4-4-4-12` UUID; `None` for anything else (upper case
/// included, which would not print back the same).
fn parse_uuid(id: &str) -> Option<u128> {
    let bytes = id.as_bytes();
    if bytes.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if b != b'-' {
                return None;
            }
            continue;
        }
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(digit);
    }
    Some(v)
}

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uuid(hi, lo) => {
                let h = format!("{hi:016x}{lo:016x}");
                write!(
                    f,
                    "{}-{}-{}-{}-{}",
                    &h[0..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..32]
                )
            }
            Self::Text(text) => f.write_str(text),
        }
    }
}

impl From<&DeploymentId> for Box<str> {
    fn from(id: &DeploymentId) -> Self {
        match id {
            DeploymentId::Text(text) => text.clone(),
            DeploymentId::Uuid(..) => id.to_string().into_boxed_str(),
        }
    }
}

impl PartialEq<str> for DeploymentId {
    fn eq(&self, other: &str) -> bool {
        match self {
            Self::Text(text) => &**text == other,
            Self::Uuid(..) => *self == Self::new(other),
        }
    }
}

/// No time (a field env0 left null, or a run not started or finished yet).
pub(super) const NO_TIME: i64 = i64::MIN;

/// `ts` in whole milliseconds (env0's timestamps have no finer digits).
pub(super) fn millis(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

/// [`millis`] of a time that may be missing.
pub(super) fn opt_millis(ts: Option<Timestamp>) -> i64 {
    ts.map_or(NO_TIME, millis)
}

/// The time `ms` stands for.
pub(super) fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::MIN)
}

/// The time `ms` stands for, `None` for [`NO_TIME`].
pub(super) fn opt_timestamp(ms: i64) -> Option<Timestamp> {
    (ms != NO_TIME).then(|| timestamp(ms))
}

/// The least whole millisecond at or after `ts`: for a time `c` in whole milliseconds,
/// `c >= ts` exactly when `c >= ceil_millis(ts)`.
pub(super) fn ceil_millis(ts: Timestamp) -> i64 {
    let ms = ts.as_millisecond();
    if timestamp(ms) < ts { ms + 1 } else { ms }
}

/// Index of a label set in the [`LabelSets`] table.
pub(super) type LabelSetId = u32;

/// Every label set a deployment has had, each stored once; records hold its index.
///
/// Label values are bounded (see [`crate::labels`]) and so is the number of sets; a set stays in
/// the table for the life of the process, like the series it feeds.
#[derive(Debug, Default)]
pub(super) struct LabelSets {
    sets: Vec<DeploymentLabels>,
    index: HashMap<DeploymentLabels, LabelSetId>,
}

impl LabelSets {
    /// The index of `labels`, adding it when new.
    pub(super) fn intern(&mut self, labels: DeploymentLabels) -> LabelSetId {
        if let Some(&id) = self.index.get(&labels) {
            return id;
        }
        let id = LabelSetId::try_from(self.sets.len()).unwrap_or(LabelSetId::MAX);
        self.sets.push(labels.clone());
        self.index.insert(labels, id);
        id
    }

    /// The index of `labels` when known.
    pub(super) fn find(&self, labels: &DeploymentLabels) -> Option<LabelSetId> {
        self.index.get(labels).copied()
    }

    /// The label set at `id`.
    pub(super) fn get(&self, id: LabelSetId) -> &DeploymentLabels {
        &self.sets[id as usize]
    }

    /// How many sets there are (indices run from 0 to this).
    pub(super) fn len(&self) -> usize {
        self.sets.len()
    }
}

/// Index of an environment id in the [`EnvironmentIds`] table.
pub(super) type EnvironmentIndex = u32;

/// Environment ids interned once: records hold the index. A slot is freed when the environment
/// leaves the listing (with its records), so the table follows the organisation's size.
#[derive(Debug, Default)]
pub(super) struct EnvironmentIds {
    ids: Vec<Option<Arc<str>>>,
    index: HashMap<Arc<str>, EnvironmentIndex>,
    free: Vec<EnvironmentIndex>,
}

impl EnvironmentIds {
    /// The index of `id`, interning it when new.
    pub(super) fn intern(&mut self, id: &str) -> EnvironmentIndex {
        if let Some(&i) = self.index.get(id) {
            return i;
        }
        let id: Arc<str> = Arc::from(id);
        let i = if let Some(i) = self.free.pop() {
            self.ids[i as usize] = Some(id.clone());
            i
        } else {
            self.ids.push(Some(id.clone()));
            EnvironmentIndex::try_from(self.ids.len() - 1).unwrap_or(EnvironmentIndex::MAX)
        };
        self.index.insert(id, i);
        i
    }

    /// The id at `i`.
    pub(super) fn get(&self, i: EnvironmentIndex) -> &Arc<str> {
        static NONE: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
        self.ids
            .get(i as usize)
            .and_then(Option::as_ref)
            .unwrap_or(&NONE)
    }

    /// How many slots there are (indices run from 0 to this).
    pub(super) fn slots(&self) -> EnvironmentIndex {
        EnvironmentIndex::try_from(self.ids.len()).unwrap_or(EnvironmentIndex::MAX)
    }

    /// The shared id `id`, interning it when new.
    pub(super) fn key(&mut self, id: &str) -> Arc<str> {
        let i = self.intern(id);
        self.get(i).clone()
    }

    /// Frees every id for which `keep` is false.
    pub(super) fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        for (i, slot) in self.ids.iter_mut().enumerate() {
            if let Some(id) = slot
                && !keep(id)
            {
                self.index.remove(&**id);
                *slot = None;
                self.free
                    .push(EnvironmentIndex::try_from(i).unwrap_or(EnvironmentIndex::MAX));
            }
        }
    }
}

/// What the store keeps of one deployment: 40 bytes, every time in milliseconds
/// ([`NO_TIME`] when missing).
#[derive(Debug, Clone, Copy)]
pub(super) struct Compact {
    /// Its environment.
    pub(super) environment: EnvironmentIndex,
    /// Its label set as of the latest sighting.
    pub(super) labels: LabelSetId,
    /// When it was created (the lookback window is measured on this).
    pub(super) created_at: i64,
    /// When it was queued.
    pub(super) queued_at: i64,
    /// When it started.
    pub(super) started_at: i64,
    /// When it finished ([`NO_TIME`] while unfinished).
    pub(super) finish_time: i64,
}

impl Compact {
    /// Whether it has finished.
    pub(super) fn is_finished(&self) -> bool {
        self.finish_time != NO_TIME
    }

    /// Whether it is in the window at `cutoff` (from [`ceil_millis`]) or still running.
    pub(super) fn is_current(&self, cutoff_ms: i64) -> bool {
        !self.is_finished() || self.created_at >= cutoff_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env0_uuids_are_kept_as_numbers_and_print_back_the_same() {
        let id = "31bb8369-e3eb-4a41-9bfb-efe32c2fa86f";
        let key = DeploymentId::new(id);
        assert!(matches!(key, DeploymentId::Uuid(..)));
        assert_eq!(key.to_string(), id);
        assert_eq!(&*Box::<str>::from(&key), id);
        assert!(key == *id);
    }

    #[test]
    fn other_ids_are_kept_as_text() {
        for id in [
            "d1",
            "31BB8369-E3EB-4A41-9BFB-EFE32C2FA86F",
            "31bb8369e3eb4a419bfbefe32c2fa86f",
            "31bb8369-e3eb-4a41-9bfb-efe32c2fa86g",
            "31bb8369+e3eb-4a41-9bfb-efe32c2fa86f",
            "",
        ] {
            let key = DeploymentId::new(id);
            assert_eq!(key, DeploymentId::Text(id.into()));
            assert_eq!(key.to_string(), id);
        }
    }

    #[test]
    fn a_time_compares_with_a_cutoff_as_it_did_before_it_was_cut_to_milliseconds() {
        let c: Timestamp = "2026-07-01T12:00:00.001Z".parse().expect("ts");
        for cutoff in [
            "2026-07-01T12:00:00.0005Z",
            "2026-07-01T12:00:00.001Z",
            "2026-07-01T12:00:00.0011Z",
            "2026-07-01T12:00:00.002Z",
        ] {
            let cutoff: Timestamp = cutoff.parse().expect("ts");
            assert_eq!(millis(c) >= ceil_millis(cutoff), c >= cutoff, "{cutoff}");
        }
        assert_eq!(opt_timestamp(opt_millis(None)), None);
        assert_eq!(opt_timestamp(opt_millis(Some(c))), Some(c));
    }
}
