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

use crate::client::{Endpoint, Outcome, Reason};
use crate::state::DeploymentLabels;

/// Which of a deployment's labels a family carries: all of them, less those named in `omit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    omit: &'static [&'static str],
}

impl Shape {
    /// Every label: `env0_deployments` and `env0_deployments_finished_total`.
    pub(crate) const ALL: Self = Self { omit: &[] };
    /// `env0_deployment_duration_seconds`: not by `trigger`, which would multiply the bucket
    /// series by the number of triggers for little insight into run time.
    pub(crate) const DURATION: Self = Self { omit: &["trigger"] };
    /// `env0_deployment_queue_duration_seconds`: observed when a run starts, before it has an
    /// outcome, so not by `status`; and not by `trigger`, like the duration.
    pub(crate) const QUEUE: Self = Self {
        omit: &["status", "trigger"],
    };
    /// `env0_deployment_resource_changes_total`: what a plan does depends on the type and the
    /// tool; not by `status` (a plan's numbers are the same whatever the apply did), nor `trigger`.
    pub(crate) const RESOURCES: Self = Self {
        omit: &["status", "trigger"],
    };
    /// `env0_deployment_approval_wait_seconds`: observed when the wait ends, before the run
    /// has an outcome, so not by `status`; nor by `trigger`.
    pub(crate) const APPROVAL: Self = Self {
        omit: &["status", "trigger"],
    };
    /// `env0_drift_detections_total` and `env0_environment_recovery_duration_seconds`: one
    /// deployment type each, and the result (or success) is the point, so by tool only.
    pub(crate) const TOOL: Self = Self {
        omit: &["deployment_type", "status", "trigger"],
    };

    /// Whether the family carries the label `name`.
    fn carries(self, name: &str) -> bool {
        !self.omit.contains(&name)
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
    pub(crate) code: Outcome,
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

impl EncodeLabelValue for Outcome {
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
            for omitted in shape.omit {
                assert!(names.contains(omitted), "{omitted} is not a label");
            }
        }
    }
}
