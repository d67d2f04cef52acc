//! Hand-computed expectations for ingest, counting and aggregation.

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Process started 2026-07-01 12:00; lookback 24 h; no environment read yet.
fn fresh_store() -> Store {
    Store::new(ts("2026-07-01T12:00:00Z"), 24 * HOUR)
}

/// Like [`fresh_store`], with the baseline read of e1, e2 and e3 done.
fn store() -> Store {
    let mut s = fresh_store();
    for env in ["e1", "e2", "e3"] {
        s.mark_baselined(env);
    }
    s
}

fn obs(id: &str, env: &str, status: &str, created: &str) -> Observation {
    Observation {
        id: id.into(),
        environment_id: env.into(),
        deployment_type: Some("deploy".into()),
        status: Some(status.into()),
        blueprint_type: Some("opentofu".into()),
        trigger_name: Some("user".into()),
        created_at: Some(ts(created)),
        queued_at: Some(ts(created)),
        updated_at: Some(ts(created)),
        ..Observation::default()
    }
}

fn labels(kind: &str, status: &str, tool: &str, trigger: &str) -> DeploymentLabels {
    DeploymentLabels {
        deployment_type: kind.into(),
        status: status.into(),
        iac_tool: tool.into(),
        trigger: trigger.into(),
        project: None,
    }
}

fn run_ref(id: &str, env: &str, project: Option<&str>, at: &str) -> RunRef {
    RunRef {
        deployment_id: id.into(),
        environment_id: env.into(),
        project_id: project.map(Into::into),
        at: Some(ts(at)),
    }
}

fn gauge(snapshot: &Snapshot, l: &DeploymentLabels) -> Option<u64> {
    snapshot
        .deployments
        .iter()
        .find(|(k, _)| k == l)
        .map(|(_, v)| *v)
}

#[test]
fn a_run_seen_running_then_finished_is_counted_once_with_its_duration() {
    let mut s = store();
    let now = ts("2026-07-01T12:10:00Z");
    let mut events = Vec::new();
    let mut o = obs("d1", "e1", "IN_PROGRESS", "2026-07-01T12:01:00Z");
    o.started_at = Some(ts("2026-07-01T12:02:00Z"));
    s.ingest(&o, now, &mut events);
    assert_eq!(
        events,
        vec![Event::Started {
            labels: labels("deploy", "IN_PROGRESS", "opentofu", "user"),
            queue_wait: Duration::from_secs(60),
            run: run_ref("d1", "e1", None, "2026-07-01T12:02:00Z"),
        }]
    );
    events.clear();

    o.status = Some("SUCCESS".into());
    o.finished_at = Some(ts("2026-07-01T12:07:30Z"));
    s.ingest(&o, now, &mut events);
    s.ingest(&o, now, &mut events); // seen again by the next poll
    assert_eq!(
        events,
        vec![Event::Finished {
            labels: labels("deploy", "SUCCESS", "opentofu", "user"),
            duration: Some(Duration::from_secs(330)),
            run: run_ref("d1", "e1", None, "2026-07-01T12:07:30Z"),
        }]
    );
}

#[test]
fn runs_seen_finished_in_their_environments_baseline_read_are_shown_but_not_counted() {
    let mut s = fresh_store();
    let now = ts("2026-07-01T12:00:30Z");
    let mut events = Vec::new();
    let mut o = obs("d1", "e1", "FAILURE", "2026-07-01T10:00:00Z");
    o.started_at = Some(ts("2026-07-01T10:01:00Z"));
    o.finished_at = Some(ts("2026-07-01T10:05:00Z"));
    s.ingest(&o, now, &mut events);
    // Whatever its timestamps say: env0's clock may be far ahead of ours.
    let mut ahead = obs("d2", "e1", "SUCCESS", "2026-07-01T13:00:00Z");
    ahead.finished_at = Some(ts("2026-07-01T13:05:00Z"));
    s.ingest(&ahead, now, &mut events);
    assert!(events.is_empty(), "{events:?}");
    let snap = aggregate(&s, now);
    assert_eq!(
        gauge(&snap, &labels("deploy", "FAILURE", "opentofu", "user")),
        Some(1)
    );
    // After the baseline, a run first seen finished is new, whatever its timestamps say
    // (env0's clock may be far behind ours).
    s.mark_baselined("e1");
    let mut behind = obs("d3", "e1", "SUCCESS", "2026-07-01T11:00:00Z");
    behind.finished_at = Some(ts("2026-07-01T11:05:00Z"));
    s.ingest(&behind, now, &mut events);
    s.ingest(&ahead, now, &mut events);
    let finished = events
        .iter()
        .filter(|e| matches!(e, Event::Finished { .. }))
        .count();
    assert_eq!(finished, 1, "{events:?}");
}

#[test]
fn a_run_seen_unfinished_in_the_baseline_read_counts_when_it_finishes() {
    let mut s = fresh_store();
    let now = ts("2026-07-01T12:00:30Z");
    let mut events = Vec::new();
    let mut o = obs("d1", "e1", "QUEUED", "2026-07-01T10:00:00Z");
    s.ingest(&o, now, &mut events);
    assert!(events.is_empty(), "{events:?}");
    o.status = Some("IN_PROGRESS".into());
    o.started_at = Some(ts("2026-07-01T10:01:00Z"));
    s.ingest(&o, now, &mut events);
    o.status = Some("SUCCESS".into());
    o.finished_at = Some(ts("2026-07-01T10:05:00Z"));
    s.ingest(&o, now, &mut events);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Started { .. } => "started",
            Event::Finished { .. } => "finished",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["started", "finished"]);
}

#[test]
fn a_run_first_seen_already_finished_after_start_is_counted_once() {
    let mut s = store();
    let now = ts("2026-07-01T13:00:00Z");
    let mut events = Vec::new();
    let mut o = obs("d1", "e1", "SUCCESS", "2026-07-01T12:20:00Z");
    o.started_at = Some(ts("2026-07-01T12:21:00Z"));
    o.finished_at = Some(ts("2026-07-01T12:31:00Z"));
    for _ in 0..3 {
        s.ingest(&o, now, &mut events);
    }
    let finished: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Finished { .. }))
        .collect();
    assert_eq!(finished.len(), 1);
    let started = events.len() - finished.len();
    assert_eq!(started, 1, "queue wait observed once: {events:?}");
}

#[test]
fn a_finished_run_without_finished_at_finishes_at_updated_at_and_has_no_duration() {
    let mut s = store();
    let now = ts("2026-07-01T13:00:00Z");
    let mut events = Vec::new();
    let mut o = obs("d1", "e1", "SKIPPED", "2026-07-01T12:20:00Z");
    o.updated_at = Some(ts("2026-07-01T12:25:00Z"));
    s.ingest(&o, now, &mut events);
    assert_eq!(
        events,
        vec![Event::Finished {
            labels: labels("deploy", "SKIPPED", "opentofu", "user"),
            duration: None,
            run: run_ref("d1", "e1", None, "2026-07-01T12:25:00Z"),
        }]
    );
    let snap = aggregate(&s, now);
    assert_eq!(
        snap.last_finished,
        vec![(
            ("deploy".into(), "SKIPPED".into()),
            ts("2026-07-01T12:25:00Z")
        )]
    );
}

#[test]
fn the_window_holds_recent_runs_and_old_unfinished_ones_only() {
    let mut s = store();
    let now = ts("2026-07-02T12:00:00Z"); // window starts 2026-07-01T12:00
    let mut events = Vec::new();
    // In the window, finished.
    s.ingest(
        &obs("a", "e1", "SUCCESS", "2026-07-02T01:00:00Z"),
        now,
        &mut events,
    );
    // Before the window, finished, never seen: ignored entirely.
    s.ingest(
        &obs("b", "e1", "SUCCESS", "2026-07-01T11:00:00Z"),
        now,
        &mut events,
    );
    // Before the window but still waiting for approval: shown.
    s.ingest(
        &obs("c", "e1", "WAITING_FOR_USER", "2026-07-01T08:00:00Z"),
        now,
        &mut events,
    );
    let snap = aggregate(&s, now);
    assert_eq!(
        gauge(&snap, &labels("deploy", "SUCCESS", "opentofu", "user")),
        Some(1)
    );
    assert_eq!(
        gauge(
            &snap,
            &labels("deploy", "WAITING_FOR_USER", "opentofu", "user")
        ),
        Some(1)
    );
    assert_eq!(snap.tracked_deployments, 2);
    assert_eq!(
        snap.oldest_unfinished,
        vec![("WAITING_FOR_USER".into(), ts("2026-07-01T08:00:00Z"))]
    );
}

#[test]
fn a_label_set_once_seen_stays_at_zero_and_aged_out_runs_are_evicted() {
    let mut s = store();
    let mut events = Vec::new();
    let t0 = ts("2026-07-01T12:30:00Z");
    s.ingest(
        &obs("a", "e1", "IN_PROGRESS", "2026-07-01T12:29:00Z"),
        t0,
        &mut events,
    );
    s.ingest(
        &obs("a", "e1", "SUCCESS", "2026-07-01T12:29:00Z"),
        t0,
        &mut events,
    );
    let snap = aggregate(&s, t0);
    assert_eq!(
        gauge(&snap, &labels("deploy", "IN_PROGRESS", "opentofu", "user")),
        Some(0)
    );
    assert_eq!(
        gauge(&snap, &labels("deploy", "SUCCESS", "opentofu", "user")),
        Some(1)
    );

    let later = ts("2026-07-02T13:00:00Z");
    s.evict(later);
    let snap = aggregate(&s, later);
    assert_eq!(snap.tracked_deployments, 0);
    assert_eq!(
        gauge(&snap, &labels("deploy", "SUCCESS", "opentofu", "user")),
        Some(0)
    );
    // Seen again after eviction (e.g. a listing filtered on another date): not counted again.
    events.clear();
    s.ingest(
        &obs("a", "e1", "SUCCESS", "2026-07-01T12:29:00Z"),
        later,
        &mut events,
    );
    assert!(events.is_empty());
}

#[test]
fn oldest_unfinished_and_last_finished_are_per_status_and_type() {
    let mut s = store();
    let now = ts("2026-07-01T14:00:00Z");
    let mut ev = Vec::new();
    s.ingest(
        &obs("q1", "e1", "QUEUED", "2026-07-01T13:10:00Z"),
        now,
        &mut ev,
    );
    s.ingest(
        &obs("q2", "e2", "QUEUED", "2026-07-01T13:05:00Z"),
        now,
        &mut ev,
    );
    s.ingest(
        &obs("r1", "e3", "IN_PROGRESS", "2026-07-01T13:30:00Z"),
        now,
        &mut ev,
    );
    let mut f1 = obs("f1", "e1", "FAILURE", "2026-07-01T12:30:00Z");
    f1.finished_at = Some(ts("2026-07-01T12:40:00Z"));
    let mut f2 = obs("f2", "e2", "FAILURE", "2026-07-01T12:35:00Z");
    f2.finished_at = Some(ts("2026-07-01T12:50:00Z"));
    let mut p1 = obs("p1", "e2", "SUCCESS", "2026-07-01T12:00:00Z");
    p1.deployment_type = Some("prPlan".into());
    p1.finished_at = Some(ts("2026-07-01T12:03:00Z"));
    for o in [&f1, &f2, &p1] {
        s.ingest(o, now, &mut ev);
    }
    let snap = aggregate(&s, now);
    assert_eq!(
        snap.oldest_unfinished,
        vec![
            ("IN_PROGRESS".into(), ts("2026-07-01T13:30:00Z")),
            ("QUEUED".into(), ts("2026-07-01T13:05:00Z")),
        ]
    );
    assert_eq!(
        snap.last_finished,
        vec![
            (
                ("deploy".into(), "FAILURE".into()),
                ts("2026-07-01T12:50:00Z")
            ),
            (
                ("prPlan".into(), "SUCCESS".into()),
                ts("2026-07-01T12:03:00Z")
            ),
        ]
    );
}

#[test]
fn environments_are_counted_by_status_and_drift_without_archived_ones() {
    let mut s = store();
    s.upsert_environment("e1", Some("p1"), Some("ACTIVE"), Some("OK"), false);
    s.upsert_environment("e2", Some("p1"), Some("ACTIVE"), Some("OK"), false);
    s.upsert_environment("e3", Some("p1"), Some("ACTIVE"), Some("DRIFTED"), false);
    s.upsert_environment("e4", Some("p2"), Some("INACTIVE"), None, true);
    s.upsert_environment("e5", None, None, Some("NEVER_RUN"), false);
    let now = ts("2026-07-01T12:00:00Z");
    let snap = aggregate(&s, now);
    assert_eq!(
        snap.environments,
        vec![
            (("ACTIVE".into(), "DRIFTED".into()), 1),
            (("ACTIVE".into(), "OK".into()), 2),
            (("unknown".into(), "NEVER_RUN".into()), 1),
        ]
    );
}

#[test]
fn environments_that_disappear_take_their_runs_with_them() {
    let mut s = store();
    let now = ts("2026-07-01T12:30:00Z");
    let mut ev = Vec::new();
    s.upsert_environment("e1", None, Some("ACTIVE"), Some("OK"), false);
    s.upsert_environment("e2", None, Some("ACTIVE"), Some("OK"), false);
    s.ingest(
        &obs("a", "e1", "QUEUED", "2026-07-01T12:29:00Z"),
        now,
        &mut ev,
    );
    s.ingest(
        &obs("b", "e2", "QUEUED", "2026-07-01T12:29:00Z"),
        now,
        &mut ev,
    );
    s.retain_environments(&HashSet::from(["e2"]));
    assert_eq!(s.tracked(), 1);
    assert!(s.deployment("b").is_some());
    assert_eq!(s.environments().count(), 1);
}

#[test]
fn unknown_statuses_count_as_finished_only_with_a_finish_time() {
    assert!(!is_finished(Some("SOMETHING_NEW"), None));
    assert!(is_finished(
        Some("SOMETHING_NEW"),
        Some(ts("2026-07-01T12:00:00Z"))
    ));
    assert!(!is_finished(
        Some("IN_PROGRESS"),
        Some(ts("2026-07-01T12:00:00Z"))
    ));
    assert!(is_finished(Some("NEVER_DEPLOYED"), None));
}

/// The simulated env0's 48 hours of history hold every status [`STATUSES`] knows but ABORTING
/// (which lasts seconds), and no other: the two vocabularies are written apart.
#[cfg(feature = "simulator")]
#[test]
fn the_simulated_history_holds_every_status_but_aborting() {
    use std::collections::BTreeSet;
    let start = "2026-07-01T12:00:00Z".parse().expect("valid timestamp");
    let clock = std::sync::Arc::new(crate::clock::ManualClock::new(start));
    let sim = crate::simulator::Simulator::new(crate::simulator::SimConfig::default(), clock);
    let deployments = sim.deployments();
    let seen: BTreeSet<&str> = deployments.iter().map(|d| d.status.as_str()).collect();
    let expected: BTreeSet<&str> = STATUSES.into_iter().filter(|s| *s != "ABORTING").collect();
    assert_eq!(seen, expected);
}
