//! The label sets of every family, typed: deployment families take theirs from the state's
//! [`DeploymentLabels`], the exporter's own families from the client's bounded enums.
//!
//! A deployment family is a [`Shape`]: every label of [`DeploymentLabels::pairs`] less the ones
//! the shape leaves out. A label added to [`DeploymentLabels`] therefore reaches every deployment
//! family, the per-scrape collector included, without a change here.

use std::sync::Arc;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};

use crate::client::{Endpoint, Reason, RequestOutcome};
use crate::state::DeploymentLabels;

/// The deployment labels a family can carry, in exposition order: bit `i` of a [`Shape`] or of
/// a [`HistogramLabels`] stands for `LABEL_NAMES[i]`.
const LABEL_NAMES: [&str; 5] = [
    "deployment_type",
    "status",
    "iac_tool",
    "trigger",
    "project",
];

const DEPLOYMENT_TYPE: u8 = 1;
const STATUS: u8 = 1 << 1;
const TRIGGER: u8 = 1 << 3;
const PROJECT: u8 = 1 << 4;
const EVERY_LABEL: u8 = (1 << LABEL_NAMES.len()) - 1;

/// Which of a deployment's labels a family carries: all of them, less those in `omit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Bits of [`LABEL_NAMES`].
    omit: u8,
}

impl Shape {
    /// Every label: `env0_deployments` and `env0_deployments_finished_total`.
    pub(crate) const ALL: Self = Self { omit: 0 };
    /// `env0_deployment_duration_seconds` by default: not by `trigger`, which would multiply
    /// the bucket series by the number of triggers for little insight into run time.
    pub(crate) const DURATION: Self = Self { omit: TRIGGER };
    /// `env0_deployment_queue_duration_seconds` by default: observed when a run starts, before
    /// it has an outcome, so not by `status`; and not by `trigger`, like the duration.
    pub(crate) const QUEUE: Self = Self {
        omit: STATUS | TRIGGER,
    };
    /// `env0_deployment_resource_changes_total`: what a plan does depends on the type and the
    /// tool; not by `status` (a plan's numbers are the same whatever the apply did), nor `trigger`.
    pub(crate) const RESOURCES: Self = Self {
        omit: STATUS | TRIGGER,
    };
    /// `env0_deployment_approval_wait_seconds`: observed when the wait ends, before the run
    /// has an outcome, so not by `status`; nor by `trigger`.
    pub(crate) const APPROVAL: Self = Self {
        omit: STATUS | TRIGGER,
    };
    /// `env0_drift_detections_total` and `env0_environment_recovery_duration_seconds`: one
    /// deployment type each, and the result (or success) is the point, so by tool only.
    pub(crate) const TOOL: Self = Self {
        omit: DEPLOYMENT_TYPE | STATUS | TRIGGER,
    };

    /// `default`, or only the labels the operator chose when `chosen` is set.
    pub(crate) fn chosen(default: Self, chosen: Option<HistogramLabels>) -> Self {
        chosen.map_or(default, |c| Self {
            omit: EVERY_LABEL & !c.keep,
        })
    }

    /// Whether the family carries the label `name`.
    fn carries(self, name: &str) -> bool {
        LABEL_NAMES
            .iter()
            .position(|n| *n == name)
            .is_none_or(|i| self.omit & (1 << i) == 0)
    }
}

/// The deployment labels an operator keeps on a run histogram
/// (`--duration-histogram-labels`, `--queue-histogram-labels`): runs that differ only in a
/// label left out share a series, so each bucket, `_count` and `_sum` is the sum over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistogramLabels {
    /// Bits of [`LABEL_NAMES`].
    keep: u8,
}

impl HistogramLabels {
    /// The label names the flags take.
    pub const NAMES: [&'static str; 5] = LABEL_NAMES;

    /// The labels named in `names` (empty: none, a single series per bucket).
    ///
    /// # Errors
    /// The first name that is not one of [`NAMES`](Self::NAMES).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut keep = 0;
        for name in names
            .iter()
            .map(|n| n.as_ref().trim())
            .filter(|n| !n.is_empty())
        {
            let i = LABEL_NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| name.to_owned())?;
            keep |= 1 << i;
        }
        Ok(Self { keep })
    }

    /// Whether `project` is among the labels kept.
    #[must_use]
    pub fn has_project(self) -> bool {
        self.keep & PROJECT != 0
    }
}

/// The labels of one series of a deployment family, in exposition order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DeploymentLabelSet(Vec<(&'static str, Arc<str>)>);

impl DeploymentLabelSet {
    /// The labels `shape` carries of `labels`.
    pub(crate) fn new(labels: &DeploymentLabels, shape: Shape) -> Self {
        Self(
            labels
                .pairs()
                .filter(|(name, _)| shape.carries(name))
                .map(|(name, value)| (name, value.clone()))
                .collect(),
        )
    }
}

impl EncodeLabelSet for DeploymentLabelSet {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

/// `env0_exporter_api_requests_total`: which endpoint, and how the attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ApiLabels {
    /// The env0 endpoint family.
    pub(crate) endpoint: Endpoint,
    /// The HTTP status, or `timeout` / `error` when none came back.
    pub(crate) code: RequestOutcome,
}

/// `env0_exporter_api_request_duration_seconds`: which endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct EndpointLabels {
    /// The env0 endpoint family.
    pub(crate) endpoint: Endpoint,
}

/// `env0_exporter_poll_errors_total`: why the poll failed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    /// One of the bounded reasons.
    pub(crate) reason: Reason,
}

/// `env0_exporter_build_info`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct VersionLabels {
    /// The crate version.
    pub(crate) version: &'static str,
}

/// `env0_exporter_shard_info`: this exporter's shard (`--shard`), both from 1.
#[derive(Debug, Clone, PartialEq, Eq, Hash, prometheus_client::encoding::EncodeLabelSet)]
pub(crate) struct ShardLabels {
    /// This shard's number, N.
    pub(crate) shard: String,
    /// The number of shards, M.
    pub(crate) shards: String,
}

/// Bounded enums from the rest of the crate as label values, through their `as_str()`.
///
/// Written here rather than derived: the derive writes the Rust variant name (`RateLimited`)
/// while the exposed values are in snake case (`rate_limited`), and it would put `prometheus-client`
/// into the modules that own the enums.
macro_rules! label_value_as_str {
    ($($enum:ty),+ $(,)?) => {$(
        impl prometheus_client::encoding::EncodeLabelValue for $enum {
            fn encode(
                &self,
                encoder: &mut prometheus_client::encoding::LabelValueEncoder,
            ) -> Result<(), std::fmt::Error> {
                prometheus_client::encoding::EncodeLabelValue::encode(&self.as_str(), encoder)
            }
        }
    )+};
}
pub(crate) use label_value_as_str;

label_value_as_str!(Endpoint, Reason);

impl EncodeLabelValue for RequestOutcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self {
            Self::Status(code) => EncodeLabelValue::encode(code, encoder),
            Self::Timeout => EncodeLabelValue::encode(&"timeout", encoder),
            Self::Error => EncodeLabelValue::encode(&"error", encoder),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> DeploymentLabels {
        DeploymentLabels {
            deployment_type: "deploy".into(),
            status: "SUCCESS".into(),
            iac_tool: "opentofu".into(),
            trigger: "user".into(),
            project: None,
        }
    }

    fn names(set: &DeploymentLabelSet) -> Vec<&str> {
        set.0.iter().map(|(name, _)| *name).collect()
    }

    #[test]
    fn each_shape_keeps_the_labels_it_carries_in_exposition_order() {
        let l = labels();
        assert_eq!(
            names(&DeploymentLabelSet::new(&l, Shape::ALL)),
            ["deployment_type", "status", "iac_tool", "trigger"]
        );
        assert_eq!(
            names(&DeploymentLabelSet::new(&l, Shape::DURATION)),
            ["deployment_type", "status", "iac_tool"]
        );
        assert_eq!(
            names(&DeploymentLabelSet::new(&l, Shape::QUEUE)),
            ["deployment_type", "iac_tool"]
        );
        assert_eq!(
            names(&DeploymentLabelSet::new(&l, Shape::RESOURCES)),
            ["deployment_type", "iac_tool"]
        );
        assert_eq!(
            names(&DeploymentLabelSet::new(&l, Shape::APPROVAL)),
            ["deployment_type", "iac_tool"]
        );
        assert_eq!(
            names(&DeploymentLabelSet::new(&l, Shape::TOOL)),
            ["iac_tool"]
        );
    }

    #[test]
    fn runs_that_differ_only_in_an_omitted_label_share_a_series() {
        let a = labels();
        let mut b = labels();
        b.trigger = "git".into();
        b.status = "FAILURE".into();
        assert_ne!(
            DeploymentLabelSet::new(&a, Shape::DURATION),
            DeploymentLabelSet::new(&b, Shape::DURATION)
        );
        assert_eq!(
            DeploymentLabelSet::new(&a, Shape::QUEUE),
            DeploymentLabelSet::new(&b, Shape::QUEUE)
        );
    }

    #[test]
    fn every_omitted_name_is_a_deployment_label() {
        // A typo in a shape would silently omit nothing.
        let names: Vec<&str> = labels().pairs().map(|(n, _)| n).collect();
        for shape in [
            Shape::ALL,
            Shape::DURATION,
            Shape::QUEUE,
            Shape::RESOURCES,
            Shape::APPROVAL,
            Shape::TOOL,
        ] {
            for (i, name) in LABEL_NAMES.iter().enumerate() {
                if shape.omit & (1 << i) != 0 {
                    assert!(names.contains(name), "{name} is not a label");
                }
            }
        }
    }

    #[test]
    fn the_label_names_are_the_deployment_labels_in_exposition_order() {
        let mut l = labels();
        l.project = Some("p".into());
        let names: Vec<&str> = l.pairs().map(|(n, _)| n).collect();
        assert_eq!(names, LABEL_NAMES);
    }

    #[test]
    fn a_chosen_shape_keeps_exactly_the_named_labels() {
        let mut l = labels();
        l.project = Some("p".into());
        let shape = |names: &[&str]| {
            Shape::chosen(
                Shape::DURATION,
                Some(HistogramLabels::parse(names).unwrap()),
            )
        };
        assert_eq!(
            names(&DeploymentLabelSet::new(&l, shape(&["iac_tool"]))),
            ["iac_tool"]
        );
        assert_eq!(
            names(&DeploymentLabelSet::new(
                &l,
                shape(&["trigger", " status", ""])
            )),
            ["status", "trigger"]
        );
        assert!(names(&DeploymentLabelSet::new(&l, shape(&[]))).is_empty());
        assert_eq!(
            names(&DeploymentLabelSet::new(
                &l,
                Shape::chosen(Shape::DURATION, None)
            )),
            ["deployment_type", "status", "iac_tool", "project"]
        );
    }

    #[test]
    fn an_unknown_label_name_is_refused_by_name() {
        assert_eq!(
            HistogramLabels::parse(&["iac_tool", "environment"]),
            Err("environment".to_owned())
        );
        assert!(HistogramLabels::parse(&["project"]).unwrap().has_project());
        assert!(!HistogramLabels::parse(&["status"]).unwrap().has_project());
    }
}
