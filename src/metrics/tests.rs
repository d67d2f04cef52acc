//! Rendering tests: names, types, labels and values as a scrape sees them.

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::state::{DeploymentLabels, Health, Snapshot};
use crate::webhook::DeliveryObserver as _;

pub(super) fn labels(kind: &str, status: &str) -> DeploymentLabels {
    DeploymentLabels {
        deployment_type: kind.into(),
        status: status.into(),
        iac_tool: "terraform".into(),
        trigger: "user".into(),
        project: None,
    }
}

pub(super) fn run(id: &str) -> crate::state::RunRef {
    crate::state::RunRef {
        deployment_id: id.into(),
        environment_id: "e1".into(),
        project_id: Some("p1".into()),
        at: Some("2026-07-01T12:00:00Z".parse().unwrap()),
    }
}

pub(super) fn metrics_with(snapshot: Snapshot) -> Metrics {
    let handle = SnapshotHandle::default();
    handle.publish(snapshot);
    let clock = Arc::new(ManualClock::new("2026-07-01T12:00:00Z".parse().unwrap()));
    let budget = Arc::new(SlidingWindow::new(125, Duration::from_secs(60)));
    for _ in 0..2 {
        budget.try_acquire(clock.now()).unwrap();
    }
    Metrics::new(&MetricsConfig::default(), handle, budget, clock)
}

pub(super) fn sample_lines(text: &str, name: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn state_gauges_render_the_snapshot_values() {
    let m = metrics_with(Snapshot {
        deployments: vec![
            (labels("deploy", "SUCCESS"), 3),
            (labels("prPlan", "QUEUED"), 0),
        ],
        oldest_unfinished: vec![("QUEUED".into(), "2026-07-01T12:00:00.5Z".parse().unwrap())],
        environments: vec![(("ACTIVE".into(), "OK".into()), 7)],
        tracked_deployments: 3,
        health: Health {
            up: true,
            last_success: Some("2026-07-01T12:01:00Z".parse().unwrap()),
            last_poll_duration: Some(Duration::from_millis(1500)),
            polls_completed: 1,
            backfill_pending: 0,
            clock_offset: None,
            clock_source: crate::clock::OffsetSource::None,
            optional_unavailable: std::collections::BTreeMap::new(),
            full_sync_interval: Some(Duration::from_secs(600)),
            full_sync_oldest_age: Some(Duration::from_secs(125)),
            unfinished_reread_interval: Some(Duration::from_secs(1200)),
            webhook_coverage: Some(crate::state::WebhookCoverage {
                projects: 4,
                types: [("deploy".into(), true), ("prPlan".into(), false)].into(),
            }),
            ..Health::default()
        },
        ..Snapshot::default()
    });
    let text = m.encode(false).unwrap();
    assert_eq!(
        sample_lines(&text, "env0_exporter_webhook_projects_delivering"),
        vec!["env0_exporter_webhook_projects_delivering 4"]
    );
    assert_eq!(
        sample_lines(&text, "env0_exporter_webhook_ends_delivered"),
        vec![
            r#"env0_exporter_webhook_ends_delivered{deployment_type="deploy"} 1"#,
            r#"env0_exporter_webhook_ends_delivered{deployment_type="prPlan"} 0"#,
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_deployments"),
        vec![
            r#"env0_deployments{deployment_type="deploy",status="SUCCESS",iac_tool="terraform",trigger="user"} 3"#,
            r#"env0_deployments{deployment_type="prPlan",status="QUEUED",iac_tool="terraform",trigger="user"} 0"#,
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_deployment_oldest_unfinished_timestamp_seconds"),
        vec![
            r#"env0_deployment_oldest_unfinished_timestamp_seconds{status="QUEUED"} 1782907200.5"#
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_environments"),
        vec![r#"env0_environments{status="ACTIVE",drift_status="OK"} 7"#]
    );
    assert_eq!(sample_lines(&text, "env0_up"), vec!["env0_up 1"]);
    assert_eq!(
        sample_lines(&text, "env0_exporter_full_sync_duration_seconds"),
        vec!["env0_exporter_full_sync_duration_seconds 600.0"]
    );
    assert_eq!(
        sample_lines(&text, "env0_exporter_full_sync_oldest_age_seconds"),
        vec!["env0_exporter_full_sync_oldest_age_seconds 125.0"]
    );
    assert_eq!(
        sample_lines(&text, "env0_exporter_unfinished_reread_interval_seconds"),
        vec!["env0_exporter_unfinished_reread_interval_seconds 1200.0"]
    );
    assert_eq!(
        sample_lines(
            &text,
            "env0_exporter_last_successful_poll_timestamp_seconds"
        ),
        vec!["env0_exporter_last_successful_poll_timestamp_seconds 1782907260.0"]
    );
    assert_eq!(
        sample_lines(&text, "env0_exporter_poll_duration_seconds"),
        vec!["env0_exporter_poll_duration_seconds 1.5"]
    );
    assert_eq!(
        sample_lines(&text, "env0_exporter_api_budget_remaining"),
        vec!["env0_exporter_api_budget_remaining 123"]
    );
    assert_eq!(
        sample_lines(&text, "env0_exporter_tracked_deployments"),
        vec!["env0_exporter_tracked_deployments 3"]
    );
    // Nothing learnt, and a poll succeeded without a Date header.
    assert_eq!(
        sample_lines(&text, "env0_exporter_env0_behaviour_info"),
        vec![
            r#"env0_exporter_env0_behaviour_info{date_filter_field="unknown",page_order="unknown",date_header="false"} 1"#
        ]
    );
}

#[test]
fn what_was_learnt_of_env0_is_one_info_series() {
    use crate::probe::{DateFilterField, PageOrder};
    let info = |health: Health| {
        let text = metrics_with(Snapshot {
            health,
            ..Snapshot::default()
        })
        .encode(false)
        .unwrap();
        sample_lines(&text, "env0_exporter_env0_behaviour_info")
    };
    assert_eq!(
        info(Health::default()),
        vec![
            r#"env0_exporter_env0_behaviour_info{date_filter_field="unknown",page_order="unknown",date_header="unknown"} 1"#
        ]
    );
    assert_eq!(
        info(Health {
            date_filter_field: DateFilterField::StartedAt,
            page_order: PageOrder::Oldest,
            clock_offset: Some(jiff::SignedDuration::from_secs(-3)),
            clock_source: crate::clock::OffsetSource::DateHeader,
            ..Health::default()
        }),
        vec![
            r#"env0_exporter_env0_behaviour_info{date_filter_field="startedAt",page_order="oldest",date_header="true"} 1"#
        ]
    );
    // An offset estimated from the records after a good poll: no Date header came.
    assert_eq!(
        info(Health {
            clock_offset: Some(jiff::SignedDuration::from_secs(-3)),
            clock_source: crate::clock::OffsetSource::Records,
            last_success: Some("2026-07-01T12:01:00Z".parse().unwrap()),
            ..Health::default()
        }),
        vec![
            r#"env0_exporter_env0_behaviour_info{date_filter_field="unknown",page_order="unknown",date_header="false"} 1"#
        ]
    );
}

#[test]
fn events_feed_the_counter_and_histograms_and_every_error_reason_starts_at_zero() {
    let m = metrics_with(Snapshot::default());
    m.record(&Event::Finished {
        labels: labels("deploy", "FAILURE"),
        duration: Some(Duration::from_secs(400)),
        run: run("d1"),
    });
    m.record(&Event::Finished {
        labels: labels("deploy", "FAILURE"),
        duration: None,
        run: run("d2"),
    });
    m.record(&Event::Started {
        labels: labels("deploy", "IN_PROGRESS"),
        queue_wait: Duration::from_secs(20),
        run: run("d3"),
    });
    m.poll_error(Reason::RateLimited);
    m.observe(
        Endpoint::Deployments,
        RequestOutcome::Status(429),
        Duration::from_millis(30),
    );
    let text = m.encode(false).unwrap();
    assert_eq!(
        sample_lines(&text, "env0_deployments_finished_total"),
        vec![
            r#"env0_deployments_finished_total{deployment_type="deploy",status="FAILURE",iac_tool="terraform",trigger="user"} 2"#
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_deployment_duration_seconds_count"),
        vec![
            r#"env0_deployment_duration_seconds_count{deployment_type="deploy",status="FAILURE",iac_tool="terraform"} 1"#
        ]
    );
    assert!(text.contains(
        r#"env0_deployment_duration_seconds_bucket{deployment_type="deploy",status="FAILURE",iac_tool="terraform",le="600"} 1"#
    ));
    assert!(text.contains(
        r#"env0_deployment_duration_seconds_bucket{deployment_type="deploy",status="FAILURE",iac_tool="terraform",le="300"} 0"#
    ));
    assert_eq!(
        sample_lines(&text, "env0_deployment_queue_duration_seconds_sum"),
        vec![
            r#"env0_deployment_queue_duration_seconds_sum{deployment_type="deploy",iac_tool="terraform"} 20.0"#
        ]
    );
    let errors = sample_lines(&text, "env0_exporter_poll_errors_total");
    assert_eq!(errors.len(), 8, "every reason starts at 0: {errors:?}");
    assert!(
        errors.contains(&r#"env0_exporter_poll_errors_total{reason="rate_limited"} 1"#.to_owned())
    );
    assert!(errors.contains(&r#"env0_exporter_poll_errors_total{reason="auth"} 0"#.to_owned()));
    assert_eq!(
        sample_lines(&text, "env0_exporter_api_requests_total"),
        vec![r#"env0_exporter_api_requests_total{endpoint="deployments",code="429"} 1"#]
    );
}

#[test]
fn prometheus_text_has_no_eof_and_openmetrics_does_and_build_info_is_present() {
    let m = metrics_with(Snapshot::default());
    let text = m.encode(false).unwrap();
    let om = m.encode(true).unwrap();
    assert!(!text.contains("# EOF"));
    assert!(om.trim_end().ends_with("# EOF"));
    let version = env!("CARGO_PKG_VERSION");
    assert!(text.contains(&format!(
        "env0_exporter_build_info{{version=\"{version}\"}} 1"
    )));
    assert!(om.contains("# TYPE env0_exporter_build info"));
    assert!(text.contains("# TYPE env0_exporter_poll_errors_total counter"));
    // Cached data says so.
    assert!(
        text.contains(
            "# HELP env0_deployments env0 deployments created within the lookback window"
        )
    );
    assert!(text.contains("cached from the last poll"));
    // No successful poll yet: no last-success series rather than a fake 0.
    assert!(
        sample_lines(
            &text,
            "env0_exporter_last_successful_poll_timestamp_seconds"
        )
        .is_empty()
    );
    assert_eq!(sample_lines(&text, "env0_up"), vec!["env0_up 0"]);
}

#[test]
fn label_sets_seen_in_the_window_get_their_counter_and_histograms_at_zero() {
    let m = metrics_with(Snapshot::default());
    m.ensure_series(&labels("deploy", "FAILURE"));
    m.ensure_series(&labels("deploy", "IN_PROGRESS"));
    let text = m.encode(false).unwrap();
    assert_eq!(
        sample_lines(&text, "env0_deployments_finished_total"),
        vec![
            r#"env0_deployments_finished_total{deployment_type="deploy",status="FAILURE",iac_tool="terraform",trigger="user"} 0"#
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_deployment_duration_seconds_count"),
        vec![
            r#"env0_deployment_duration_seconds_count{deployment_type="deploy",status="FAILURE",iac_tool="terraform"} 0"#
        ]
    );
    assert_eq!(
        sample_lines(&text, "env0_deployment_queue_duration_seconds_count"),
        vec![
            r#"env0_deployment_queue_duration_seconds_count{deployment_type="deploy",iac_tool="terraform"} 0"#
        ]
    );
}

type Change = Box<dyn Fn(&Metrics)>;

/// Every public way to change a registered metric, by name.
fn every_change() -> Vec<(&'static str, Change)> {
    use crate::state::{DriftResult, ResourceChanges};
    vec![
        (
            "a finish",
            Box::new(|m: &Metrics| {
                m.record(&Event::Finished {
                    labels: labels("deploy", "SUCCESS"),
                    duration: Some(Duration::from_secs(90)),
                    run: run("d1"),
                });
            }),
        ),
        (
            "a start",
            Box::new(|m: &Metrics| {
                m.record(&Event::Started {
                    labels: labels("deploy", "IN_PROGRESS"),
                    queue_wait: Duration::from_secs(5),
                    run: run("d2"),
                });
            }),
        ),
        (
            "resource changes",
            Box::new(|m: &Metrics| {
                m.record(&Event::ResourceChanges {
                    labels: labels("deploy", "SUCCESS"),
                    changes: ResourceChanges {
                        added: Some(2),
                        ..ResourceChanges::default()
                    },
                });
            }),
        ),
        (
            "an approval wait",
            Box::new(|m: &Metrics| {
                m.record(&Event::ApprovalWait {
                    labels: labels("deploy", "IN_PROGRESS"),
                    wait: Duration::from_secs(60),
                });
            }),
        ),
        (
            "a drift detection",
            Box::new(|m: &Metrics| {
                m.record(&Event::DriftDetection {
                    labels: labels("driftDetection", "SUCCESS"),
                    result: DriftResult::Drifted,
                });
            }),
        ),
        (
            "a recovery",
            Box::new(|m: &Metrics| {
                m.record(&Event::Recovered {
                    labels: labels("deploy", "SUCCESS"),
                    duration: Duration::from_secs(600),
                });
            }),
        ),
        (
            "a new label set",
            Box::new(|m: &Metrics| m.ensure_series(&labels("destroy", "FAILURE"))),
        ),
        (
            "a poll error",
            Box::new(|m: &Metrics| m.poll_error(Reason::Timeout)),
        ),
        (
            "an API request",
            Box::new(|m: &Metrics| {
                m.observe(
                    Endpoint::Environments,
                    RequestOutcome::Status(200),
                    Duration::from_millis(80),
                );
            }),
        ),
        (
            "a skipped record",
            Box::new(|m: &Metrics| m.skipped(Endpoint::Deployments, SkipReason::MissingId)),
        ),
        (
            "a webhook delivery",
            Box::new(|m: &Metrics| {
                m.delivery(EventFamily::Deploy, webhook::WebhookOutcome::Duplicate);
            }),
        ),
        (
            "a webhook forward",
            Box::new(|m: &Metrics| m.forwarded(webhook::ForwardOutcome::Timeout)),
        ),
        (
            "a state file write",
            Box::new(|m: &Metrics| {
                m.state_file_written(true, "2026-07-01T12:00:30Z".parse().unwrap());
            }),
        ),
    ]
}

#[test]
fn every_change_to_a_registered_metric_shows_in_the_next_scrape() {
    let clock = Arc::new(ManualClock::new("2026-07-01T12:00:00Z".parse().unwrap()));
    let budget = Arc::new(SlidingWindow::new(125, Duration::from_secs(60)));
    let config = MetricsConfig {
        state_file: true,
        webhook_forwards: true,
        ..MetricsConfig::default()
    };
    let m = Metrics::new(&config, SnapshotHandle::default(), budget, clock);
    for (what, change) in every_change() {
        let before = [false, true].map(|openmetrics| m.body(openmetrics).unwrap().plain());
        change(&m);
        for (openmetrics, before) in [false, true].into_iter().zip(before) {
            let fresh = m.encode(openmetrics).unwrap();
            assert_ne!(
                before,
                fresh.as_bytes(),
                "{what}: the change must change the exposition (else this proves nothing)"
            );
            let served = m.body(openmetrics).unwrap().plain();
            assert_eq!(
                served,
                fresh.as_bytes(),
                "{what}: the cached body is stale (openmetrics: {openmetrics})"
            );
        }
    }
}
