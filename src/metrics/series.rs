//! How many label sets each family has, for `env0_exporter_series{metric}`: the number the
//! series budget (`--max-series-per-metric`) is about, visible to the operator.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, PoisonError};

use super::labels::DeploymentLabelSet;

/// The label sets created so far in each registered deployment family (counters and
/// histograms keep every series they ever had, so this only grows).
#[derive(Debug, Default)]
pub(crate) struct SeriesCounts(Mutex<BTreeMap<&'static str, HashSet<DeploymentLabelSet>>>);

impl SeriesCounts {
    /// Notes that `family` has a series with these labels.
    pub(crate) fn note(&self, family: &'static str, labels: &DeploymentLabelSet) {
        let mut families = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let sets = families.entry(family).or_default();
        if !sets.contains(labels) {
            sets.insert(labels.clone());
        }
    }

    /// Label sets per family, by family name.
    pub(crate) fn counts(&self) -> Vec<(&'static str, usize)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(family, sets)| (*family, sets.len()))
            .collect()
    }
}
