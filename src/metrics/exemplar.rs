//! Exemplars on the run histograms (`env0_deployment_duration_seconds`,
//! `env0_deployment_queue_duration_seconds`): each bucket keeps the latest run it counted, by
//! its ids, so a dashboard links from a slow bucket to the run in env0,
//! `https://app.env0.com/p/{project}/environments/{env}/deployments/{deployment}`.
//!
//! Only the `OpenMetrics` rendering carries them; `prometheus-client`'s Prometheus text 0.0.4
//! encoder leaves them out. `OpenMetrics` caps an exemplar's label names and values at 128
//! characters together, and three env0 ids (UUIDs, 36 each) leave 20 for the names: hence the
//! short `deployment`, `env` and `project`. Ids longer than that drop `project`, then `env`.
//! The exemplar's timestamp is env0's own time of the event (`finishedAt`, `startedAt`), so a
//! rescrape repeats the same exemplar instead of adding one.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::MetricConstructor;

use super::Buckets;
use crate::state::RunRef;

/// `OpenMetrics`' limit on an exemplar's label names and values, in characters.
pub(crate) const MAX_EXEMPLAR_CHARS: usize = 128;

/// The labels of an exemplar: the run's ids, in priority order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RunExemplar(Vec<(&'static str, Arc<str>)>);

impl RunExemplar {
    /// The ids of `run` that fit in [`MAX_EXEMPLAR_CHARS`]; `None` when not even the
    /// deployment id does.
    pub(crate) fn new(run: &RunRef) -> Option<Self> {
        let mut labels = vec![
            ("deployment", run.deployment_id.clone()),
            ("env", run.environment_id.clone()),
        ];
        if let Some(project) = &run.project_id {
            labels.push(("project", project.clone()));
        }
        let chars = |l: &[(&str, Arc<str>)]| {
            l.iter()
                .map(|(k, v)| k.chars().count() + v.chars().count())
                .sum::<usize>()
        };
        while chars(&labels) > MAX_EXEMPLAR_CHARS {
            labels.pop();
        }
        (!labels.is_empty()).then_some(Self(labels))
    }
}

impl EncodeLabelSet for RunExemplar {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

/// A histogram of runs whose buckets keep the latest run they counted.
pub(crate) type RunHistogram = HistogramWithExemplars<RunExemplar>;

impl MetricConstructor<RunHistogram> for Buckets {
    fn new_metric(&self) -> RunHistogram {
        HistogramWithExemplars::new(self.0.iter().copied())
    }
}

/// Observes `value` with `run` as the exemplar of its bucket, stamped with `run.at`.
pub(crate) fn observe(histogram: &RunHistogram, value: f64, run: &RunRef) {
    histogram.observe(value, RunExemplar::new(run), run.at.and_then(system_time));
}

/// `ts` as a `SystemTime`, to the millisecond (env0's precision); `None` before 1970, which the
/// encoder cannot write (it would panic).
fn system_time(ts: Timestamp) -> Option<SystemTime> {
    let millis = u64::try_from(ts.as_millisecond()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(deployment: &str, env: &str, project: Option<&str>) -> RunRef {
        RunRef {
            deployment_id: deployment.into(),
            environment_id: env.into(),
            project_id: project.map(Into::into),
            at: None,
        }
    }

    fn names(e: &RunExemplar) -> Vec<&str> {
        e.0.iter().map(|(k, _)| *k).collect()
    }

    const UUID: &str = "31bb8369-e3eb-4a41-9bfb-efe32c2fa86f";

    #[test]
    fn three_uuids_fit_the_openmetrics_limit_exactly() {
        let e = RunExemplar::new(&run(UUID, UUID, Some(UUID))).unwrap();
        assert_eq!(names(&e), ["deployment", "env", "project"]);
        let chars: usize = e.0.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(chars, 128);
    }

    #[test]
    fn longer_ids_drop_the_project_then_the_environment() {
        let long = format!("{UUID}-x");
        let e = RunExemplar::new(&run(UUID, UUID, Some(&long))).unwrap();
        assert_eq!(names(&e), ["deployment", "env"]);
        let huge = "x".repeat(100);
        let e = RunExemplar::new(&run(UUID, &huge, None)).unwrap();
        assert_eq!(names(&e), ["deployment"]);
        assert!(RunExemplar::new(&run(&"y".repeat(200), UUID, None)).is_none());
    }

    #[test]
    fn times_before_1970_have_no_exemplar_timestamp() {
        assert!(system_time("1969-12-31T23:59:59Z".parse().unwrap()).is_none());
        assert!(system_time("2026-07-01T12:00:00Z".parse().unwrap()).is_some());
    }
}
