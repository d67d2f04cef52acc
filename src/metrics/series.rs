//! How many label sets each family has, for `env0_exporter_series{metric}`: the number the
//! series budget (`--max-series-per-metric`) is about, visible to the operator.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, PoisonError};

/// The label sets created so far in each registered deployment family (counters and
/// histograms keep every series they ever had, so this only grows). Label sets are kept as
/// 64-bit hashes: a count, not a copy of every set.
#[derive(Debug, Default)]
pub(crate) struct SeriesCounts {
    hasher: RandomState,
    families: Mutex<BTreeMap<&'static str, HashSet<u64>>>,
}

impl SeriesCounts {
    /// Notes that `family` has a series with these labels.
    pub(crate) fn note(&self, family: &'static str, labels: &impl Hash) {
        let hash = self.hasher.hash_one(labels);
        self.families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(family)
            .or_default()
            .insert(hash);
    }

    /// Label sets per family, by family name.
    pub(crate) fn counts(&self) -> Vec<(&'static str, usize)> {
        self.families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(family, sets)| (*family, sets.len()))
            .collect()
    }
}
