//! Rendering tests of the signal families and of the exemplars on the run histograms.

use super::tests::{labels, metrics_with, run, sample_lines};
use super::*;
use crate::state::{DriftResult, ResourceChanges, Snapshot};

fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn signal_events_feed_their_families_by_the_shape_of_each() {
    let m = metrics_with(Snapshot::default());
    let changes = ResourceChanges {
        added: Some(3),
        changed: Some(0),
        destroyed: Some(2),
        imported: None,
    };
    m.record(&Event::ResourceChanges {
        labels: labels("deploy", "SUCCESS"),
        changes,
    });
    m.record(&Event::ResourceChanges {
        labels: labels("deploy", "FAILURE"),
        changes: ResourceChanges {
            added: Some(1),
            imported: Some(4),
            ..ResourceChanges::default()
        },
    });
    m.record(&Event::ApprovalWait {
        labels: labels("deploy", "IN_PROGRESS"),
        wait: Duration::from_secs(240),
    });
    for result in [
        DriftResult::Drifted,
        DriftResult::Drifted,
        DriftResult::Failed,
    ] {
        m.record(&Event::DriftDetection {
            labels: labels("driftDetection", "SUCCESS"),
            result,
        });
    }
    m.record(&Event::Recovered {
        labels: labels("deploy", "SUCCESS"),
        duration: Duration::from_secs(1200),
    });
    let text = m.encode(false).unwrap();
    assert_eq!(
        sample_lines(&text, "env0_deployment_resource_changes_total"),
        vec![
            r#"env0_deployment_resource_changes_total{deployment_type="deploy",iac_tool="terraform",action="added"} 4"#,
            r#"env0_deployment_resource_changes_total{deployment_type="deploy",iac_tool="terraform",action="changed"} 0"#,
            r#"env0_deployment_resource_changes_total{deployment_type="deploy",iac_tool="terraform",action="destroyed"} 2"#,
            r#"env0_deployment_resource_changes_total{deployment_type="deploy",iac_tool="terraform",action="imported"} 4"#,
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_deployment_approval_wait_seconds_sum"),
        vec![
            r#"env0_deployment_approval_wait_seconds_sum{deployment_type="deploy",iac_tool="terraform"} 240.0"#
        ]
    );
    assert!(text.contains(
        r#"env0_deployment_approval_wait_seconds_bucket{deployment_type="deploy",iac_tool="terraform",le="300"} 1"#
    ));
    assert_eq!(
        sample_lines(&text, "env0_drift_detections_total"),
        vec![
            r#"env0_drift_detections_total{iac_tool="terraform",result="drifted"} 2"#,
            r#"env0_drift_detections_total{iac_tool="terraform",result="failed"} 1"#,
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_environment_recovery_duration_seconds_count"),
        vec![r#"env0_environment_recovery_duration_seconds_count{iac_tool="terraform"} 1"#]
    );
    assert!(text.contains(
        r#"env0_environment_recovery_duration_seconds_bucket{iac_tool="terraform",le="1800"} 1"#
    ));
    assert!(text.contains("# TYPE env0_deployment_resource_changes_total counter"));
    assert!(text.contains("# TYPE env0_environment_recovery_duration_seconds histogram"));
}

#[test]
fn series_users_alert_on_start_at_zero_for_the_label_sets_that_can_feed_them() {
    let m = metrics_with(Snapshot::default());
    m.ensure_series(&labels("driftDetection", "SUCCESS"));
    m.ensure_series(&labels("deploy", "WAITING_FOR_USER"));
    m.ensure_series(&labels("deploy", "TIMEOUT"));
    // Not an apply, or not finished: no resource series.
    m.ensure_series(&labels("prPlan", "SUCCESS"));
    m.ensure_series(&labels("deploy", "IN_PROGRESS"));
    let text = m.encode(false).unwrap();
    assert_eq!(
        sample_lines(&text, "env0_deployment_resource_changes_total"),
        vec![
            r#"env0_deployment_resource_changes_total{deployment_type="deploy",iac_tool="terraform",action="added"} 0"#,
            r#"env0_deployment_resource_changes_total{deployment_type="deploy",iac_tool="terraform",action="changed"} 0"#,
            r#"env0_deployment_resource_changes_total{deployment_type="deploy",iac_tool="terraform",action="destroyed"} 0"#,
            r#"env0_deployment_resource_changes_total{deployment_type="deploy",iac_tool="terraform",action="imported"} 0"#,
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_drift_detections_total"),
        vec![
            r#"env0_drift_detections_total{iac_tool="terraform",result="clean"} 0"#,
            r#"env0_drift_detections_total{iac_tool="terraform",result="drifted"} 0"#,
            r#"env0_drift_detections_total{iac_tool="terraform",result="failed"} 0"#,
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_deployment_approval_wait_seconds_count"),
        vec![
            r#"env0_deployment_approval_wait_seconds_count{deployment_type="deploy",iac_tool="terraform"} 0"#
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_environment_recovery_duration_seconds_count"),
        vec![r#"env0_environment_recovery_duration_seconds_count{iac_tool="terraform"} 0"#]
    );
}

#[test]
fn openmetrics_carries_the_runs_as_exemplars_and_prometheus_text_does_not() {
    let m = metrics_with(Snapshot::default());
    m.record(&Event::Finished {
        labels: labels("deploy", "SUCCESS"),
        duration: Some(Duration::from_secs(400)),
        run: run("d1"),
    });
    // A later run in the same bucket replaces the exemplar; one in another bucket adds one.
    m.record(&Event::Finished {
        labels: labels("deploy", "SUCCESS"),
        duration: Some(Duration::from_secs(500)),
        run: run("d2"),
    });
    m.record(&Event::Finished {
        labels: labels("deploy", "SUCCESS"),
        duration: Some(Duration::from_secs(7)),
        run: crate::state::RunRef {
            project_id: None,
            at: None,
            ..run("d3")
        },
    });
    m.record(&Event::Started {
        labels: labels("deploy", "IN_PROGRESS"),
        queue_wait: Duration::from_secs(20),
        run: run("d4"),
    });
    let om = m.encode(true).unwrap();
    assert_eq!(
        lines_with(&om, " # {"),
        vec![
            r#"env0_deployment_duration_seconds_bucket{le="15.0",deployment_type="deploy",status="SUCCESS",iac_tool="terraform"} 1 # {deployment="d3",env="e1"} 7.0"#,
            r#"env0_deployment_duration_seconds_bucket{le="600.0",deployment_type="deploy",status="SUCCESS",iac_tool="terraform"} 3 # {deployment="d2",env="e1",project="p1"} 500.0 1782907200.0"#,
            r#"env0_deployment_queue_duration_seconds_bucket{le="30.0",deployment_type="deploy",iac_tool="terraform"} 1 # {deployment="d4",env="e1",project="p1"} 20.0 1782907200.0"#,
        ]
    );
    let text = m.encode(false).unwrap();
    assert!(
        lines_with(&text, "#").iter().all(|l| l.starts_with('#')),
        "{text}"
    );
    assert!(
        !text.contains("deployment=\"d"),
        "no exemplar in 0.0.4: {text}"
    );
    assert!(text.contains(
        r#"env0_deployment_duration_seconds_bucket{deployment_type="deploy",status="SUCCESS",iac_tool="terraform",le="600"} 3"#
    ));
}
