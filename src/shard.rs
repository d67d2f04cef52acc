//! Sharding one organisation across several exporters (`--shard N/M`): each environment
//! belongs to exactly one shard, chosen by a stable hash of its id, so that M exporters together
//! read every environment once.
//!
//! The hash is 64-bit FNV-1a over the id's UTF-8 bytes: fixed by its two published constants,
//! the same on every platform, build and version (std's hasher is randomly seeded per process, so
//! it cannot be used). Environment `id` belongs to shard `fnv1a(id) % M + 1`.

use std::fmt;
use std::str::FromStr;

/// Most shards one organisation may be split into.
pub(crate) const MAX_SHARDS: u32 = 1024;

/// The offset basis of 64-bit FNV-1a: the hash of no bytes.
pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// 64-bit FNV-1a of `text`'s bytes: stable across runs, platforms and versions.
#[must_use]
pub(crate) fn fnv1a(text: &str) -> u64 {
    fnv1a_extend(FNV_OFFSET, text.as_bytes())
}

/// Continues the 64-bit FNV-1a `hash` over `bytes` (to hash several fields in a row).
#[must_use]
pub(crate) fn fnv1a_extend(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Which share of the organisation's environments this exporter reads: shard `index` (from 1)
/// of `count`. The default, 1 of 1, is the whole organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self { index: 1, count: 1 }
    }
}

impl Shard {
    /// Shard `index` (1 ≤ index ≤ count) of `count` (1 ≤ count ≤ [`MAX_SHARDS`]).
    ///
    /// # Errors
    /// Why the pair is out of range.
    pub fn new(index: u32, count: u32) -> Result<Self, String> {
        if count == 0 || count > MAX_SHARDS {
            return Err(format!(
                "the number of shards M must be between 1 and {MAX_SHARDS}, not {count}"
            ));
        }
        if index == 0 || index > count {
            return Err(format!(
                "the shard N counts from 1 to M ({count}), not {index}"
            ));
        }
        Ok(Self { index, count })
    }

    /// This shard's number, from 1.
    #[must_use]
    pub fn index(self) -> u32 {
        self.index
    }

    /// The number of shards.
    #[must_use]
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether this exporter is the only one (1 of 1).
    #[must_use]
    pub fn is_whole(self) -> bool {
        self.count == 1
    }

    /// Whether the environment `id` belongs to this shard.
    #[must_use]
    pub fn owns(self, environment_id: &str) -> bool {
        self.owner(environment_id) == self
    }

    /// The shard of the same count that the environment `id` belongs to: shard
    /// `fnv1a(id) % M + 1` of M (the split the poller reads by, and webhooks are forwarded by).
    #[must_use]
    pub fn owner(self, environment_id: &str) -> Self {
        if self.count == 1 {
            return self;
        }
        // The remainder is below `count`, a u32: it fits.
        let ordinal =
            u32::try_from(fnv1a(environment_id) % u64::from(self.count)).unwrap_or_default();
        Self {
            index: ordinal + 1,
            count: self.count,
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

const FORMS: &str = "write N/M with N from 1 to M (e.g. 2/3), or a StatefulSet pod name and M (e.g. env0-exporter-1/3, shard 2)";

impl FromStr for Shard {
    type Err = String;

    /// `N/M` (N from 1), or `<pod name>-<ordinal>/M`: a `StatefulSet` pod's name, whose ordinal
    /// counts from 0, so `env0-exporter-0/3` is shard 1 of 3.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (left, right) = s.rsplit_once('/').ok_or_else(|| FORMS.to_owned())?;
        let number = |t: &str| -> Option<u32> {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        };
        let count = number(right.trim()).ok_or_else(|| FORMS.to_owned())?;
        let left = left.trim();
        let index = if let Some(n) = number(left) {
            n
        } else {
            let ordinal = left
                .rsplit_once('-')
                .filter(|(name, _)| !name.is_empty())
                .and_then(|(_, ordinal)| number(ordinal))
                .ok_or_else(|| FORMS.to_owned())?;
            ordinal.checked_add(1).ok_or_else(|| FORMS.to_owned())?
        };
        Self::new(index, count)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference test suite (draft-eastlake-fnv, 64-bit FNV-1a).
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn the_owner_is_the_hash_modulo_m_plus_one_whichever_shard_asks() {
        // fnv1a("a") = 0xaf63_dc4c_8601_ec8c: ≡ 0 (mod 2), 1 (mod 3), 5 (mod 7), by hand.
        for (count, want) in [(1, 1), (2, 1), (3, 2), (7, 6)] {
            for asking in 1..=count {
                let shard = Shard::new(asking, count).unwrap();
                assert_eq!(shard.owner("a"), Shard::new(want, count).unwrap());
                assert_eq!(shard.owns("a"), asking == want);
            }
        }
    }

    #[test]
    fn shards_are_written_n_of_m_from_one_or_as_a_statefulset_pod_name() {
        assert_eq!("2/3".parse::<Shard>().unwrap(), Shard::new(2, 3).unwrap());
        assert_eq!(" 1 / 1 ".parse::<Shard>().unwrap(), Shard::default());
        assert_eq!(
            "env0-exporter-0/3".parse::<Shard>().unwrap(),
            Shard::new(1, 3).unwrap()
        );
        assert_eq!(
            "my-release-env0-exporter-2/3".parse::<Shard>().unwrap(),
            Shard::new(3, 3).unwrap()
        );
        assert_eq!(Shard::new(2, 3).unwrap().to_string(), "2/3");
        for bad in [
            "",
            "2",
            "0/2",
            "3/2",
            "1/0",
            "1/1025",
            "a/2",
            "-1/2",
            "exporter-3/3",
            "1/2/3",
            "x-/2",
            "-0/2",
            "1/-2",
            "99999999999/2",
        ] {
            assert!(bad.parse::<Shard>().is_err(), "{bad:?} accepted");
        }
        assert!("1024/1024".parse::<Shard>().is_ok());
    }

    #[test]
    fn every_environment_belongs_to_exactly_one_shard() {
        for count in [1, 2, 3, 7, 64] {
            let shards: Vec<Shard> = (1..=count).map(|i| Shard::new(i, count).unwrap()).collect();
            let mut sizes = vec![0_u32; count as usize];
            for n in 0..2_000 {
                let id = format!("{n:08x}-5c1e-4d5a-9a1b-env{n}");
                let owners: Vec<usize> =
                    (0..shards.len()).filter(|&s| shards[s].owns(&id)).collect();
                assert_eq!(owners.len(), 1, "{id} of {count}: {owners:?}");
                // Every shard names the same owner, the one that owns it.
                for shard in &shards {
                    assert_eq!(shard.owner(&id), shards[owners[0]], "{id} of {count}");
                }
                sizes[owners[0]] += 1;
            }
            // Balanced within a generous margin: 2,000 ids, each shard near 2,000 / M.
            let fair = 2_000 / count;
            assert!(
                sizes
                    .iter()
                    .all(|&s| s >= fair / 2 && s <= fair * 3 / 2 + 5),
                "{count} shards: {sizes:?}"
            );
        }
    }
}
