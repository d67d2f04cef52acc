//! Label mapping: env0's strings become bounded Prometheus label values.
//!
//! A value is kept as env0 spells it (`deploy`, `prPlan`, `SUCCESS`, `opentofu`, `user`) when it
//! matches `^[A-Za-z][A-Za-z0-9_-]{0,63}$`; null or missing becomes `unknown`; anything else
//! becomes `other`. Each label admits at most [`MAX_VALUES_PER_LABEL`] distinct values for the life
//! of the process; further new values become `other`, so a misbehaving upstream cannot blow up
//! the number of series.

use std::collections::HashSet;
use std::sync::Arc;

/// Distinct env0 values one label may take before new ones fold into `other`.
pub(crate) const MAX_VALUES_PER_LABEL: usize = 50;
/// The value for a missing or null field.
pub(crate) const UNKNOWN: &str = "unknown";
/// The value for an unusable or over-the-limit field.
pub(crate) const OTHER: &str = "other";

/// Whether env0's raw string can be a label value as it is.
#[must_use]
pub(crate) fn is_plain_value(raw: &str) -> bool {
    let mut chars = raw.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_alphabetic()
        && raw.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The values one label has admitted so far.
#[derive(Debug, Clone)]
pub(crate) struct LabelValues {
    admitted: HashSet<Arc<str>>,
    unknown: Arc<str>,
    other: Arc<str>,
}

impl Default for LabelValues {
    fn default() -> Self {
        Self {
            admitted: HashSet::new(),
            unknown: Arc::from(UNKNOWN),
            other: Arc::from(OTHER),
        }
    }
}

impl LabelValues {
    /// The label value for env0's raw field, admitting it if there is room.
    pub(crate) fn map(&mut self, raw: Option<&str>) -> Arc<str> {
        let Some(raw) = raw else {
            return self.unknown.clone();
        };
        if !is_plain_value(raw) {
            return self.other.clone();
        }
        if raw == UNKNOWN {
            return self.unknown.clone();
        }
        if raw == OTHER {
            return self.other.clone();
        }
        if let Some(value) = self.admitted.get(raw) {
            return value.clone();
        }
        if self.admitted.len() >= MAX_VALUES_PER_LABEL {
            return self.other.clone();
        }
        let value: Arc<str> = Arc::from(raw);
        self.admitted.insert(value.clone());
        value
    }
}

/// The label mappers of every label the exporter exports.
#[derive(Debug, Clone, Default)]
pub(crate) struct Labeler {
    /// `deployment_type`: the deployment log's `type`.
    pub deployment_type: LabelValues,
    /// `status`: the deployment log's `status`.
    pub status: LabelValues,
    /// `iac_tool`: the deployment log's `blueprintType`.
    pub iac_tool: LabelValues,
    /// `trigger`: the deployment log's `triggerName`.
    pub trigger: LabelValues,
    /// `status` of `env0_environments`: the environment's `status`.
    pub environment_status: LabelValues,
    /// `drift_status` of `env0_environments`: the environment's `driftStatus`.
    pub drift_status: LabelValues,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env0_spellings_are_kept_as_they_are() {
        let mut l = LabelValues::default();
        for raw in [
            "deploy",
            "prPlan",
            "SUCCESS",
            "opentofu",
            "terraform-cli",
            "k8s",
            "a_b",
        ] {
            assert_eq!(&*l.map(Some(raw)), raw);
        }
    }

    #[test]
    fn missing_values_are_unknown_and_odd_ones_are_other() {
        let mut l = LabelValues::default();
        assert_eq!(&*l.map(None), "unknown");
        assert_eq!(&*l.map(Some("")), "other");
        assert_eq!(&*l.map(Some("scheduled run")), "other");
        assert_eq!(&*l.map(Some("9lives")), "other");
        assert_eq!(&*l.map(Some("ünïcode")), "other");
        assert_eq!(&*l.map(Some(&"a".repeat(65))), "other");
        assert_eq!(&*l.map(Some(&"a".repeat(64))), "a".repeat(64));
        assert!(!l.admitted.is_empty());
    }

    #[test]
    fn the_fifty_first_distinct_value_becomes_other_and_admitted_ones_stay() {
        let mut l = LabelValues::default();
        for i in 0..50 {
            assert_eq!(&*l.map(Some(&format!("v{i}"))), format!("v{i}"));
        }
        assert_eq!(&*l.map(Some("v50")), "other");
        assert_eq!(&*l.map(Some("v7")), "v7");
        assert_eq!(l.admitted.len(), 50);
    }
}
