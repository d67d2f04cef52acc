//! Hand-computed expectations for the signal events: approval waits, resource changes, drift
//! results and recovery streaks, each with its edge cases.

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Process started 2026-07-01 12:00; lookback 24 h.
/// No environment read yet: what is ingested is the baseline (history).
fn fresh_store() -> Store {
    Store::new(ts("2026-07-01T12:00:00Z"), 24 * HOUR)
}

/// The baseline read of e1, e2 and e3 done: what is ingested is new.
fn store() -> Store {
    let mut s = fresh_store();
    for env in ["e1", "e2", "e3"] {
        s.mark_baselined(env);
    }
    s
}

/// A run of `kind` in `status`, created at `created` and (when finished) finished at `finished`.
fn run(id: &str, kind: &str, status: &str, created: &str, finished: Option<&str>) -> Observation {
    Observation {
        id: id.into(),
        environment_id: "e1".into(),
        deployment_type: Some(kind.into()),
        status: Some(status.into()),
        blueprint_type: Some("terraform".into()),
        trigger_name: Some("user".into()),
        created_at: Some(ts(created)),
        queued_at: Some(ts(created)),
        started_at: Some(ts(created)),
        finished_at: finished.map(ts),
        updated_at: Some(ts(finished.unwrap_or(created))),
        ..Observation::default()
    }
}

fn ingest(s: &mut Store, o: &Observation, now: &str) -> Vec<Event> {
    let mut events = Vec::new();
    s.ingest(o, ts(now), &mut events);
    events
}

fn waits(events: &[Event]) -> Vec<Duration> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ApprovalWait { wait, .. } => Some(*wait),
            _ => None,
        })
        .collect()
}

fn recoveries(events: &[Event]) -> Vec<Duration> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Recovered { duration, .. } => Some(*duration),
            _ => None,
        })
        .collect()
}

fn changes(events: &[Event]) -> Vec<ResourceChanges> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ResourceChanges { changes, .. } => Some(*changes),
            _ => None,
        })
        .collect()
}

fn drift(events: &[Event]) -> Vec<DriftResult> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::DriftDetection { result, .. } => Some(*result),
            _ => None,
        })
        .collect()
}

const MIN: u64 = 60;

#[test]
fn an_approval_wait_runs_from_the_first_sighting_waiting_to_the_first_sighting_after() {
    let mut s = store();
    let mut o = run("d1", "deploy", "IN_PROGRESS", "2026-07-01T12:01:00Z", None);
    assert!(waits(&ingest(&mut s, &o, "2026-07-01T12:02:00Z")).is_empty());
    o.status = Some("WAITING_FOR_USER".into());
    assert!(waits(&ingest(&mut s, &o, "2026-07-01T12:03:00Z")).is_empty());
    // Still waiting at the next polls: nothing yet, and the start stays the first sighting.
    assert!(waits(&ingest(&mut s, &o, "2026-07-01T12:04:00Z")).is_empty());
    assert!(waits(&ingest(&mut s, &o, "2026-07-01T12:05:00Z")).is_empty());
    o.status = Some("IN_PROGRESS".into());
    let events = ingest(&mut s, &o, "2026-07-01T12:09:00Z");
    assert_eq!(waits(&events), [Duration::from_secs(6 * MIN)]);
    let Some(Event::ApprovalWait { labels, .. }) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(&*labels.deployment_type, "deploy");
    // Seen again in progress, then finished: the wait is not observed again.
    assert!(waits(&ingest(&mut s, &o, "2026-07-01T12:10:00Z")).is_empty());
    o.status = Some("SUCCESS".into());
    o.finished_at = Some(ts("2026-07-01T12:10:30Z"));
    assert!(waits(&ingest(&mut s, &o, "2026-07-01T12:11:00Z")).is_empty());
}

#[test]
fn each_wait_of_a_run_is_observed_once_and_a_wait_may_end_in_a_finish() {
    let mut s = store();
    let mut o = run(
        "d1",
        "deploy",
        "WAITING_FOR_USER",
        "2026-07-01T12:01:00Z",
        None,
    );
    ingest(&mut s, &o, "2026-07-01T12:02:00Z");
    o.status = Some("IN_PROGRESS".into());
    assert_eq!(
        waits(&ingest(&mut s, &o, "2026-07-01T12:03:00Z")),
        [Duration::from_secs(MIN)]
    );
    o.status = Some("WAITING_FOR_USER".into());
    ingest(&mut s, &o, "2026-07-01T12:04:00Z");
    o.status = Some("CANCELLED".into());
    o.finished_at = Some(ts("2026-07-01T12:05:10Z"));
    assert_eq!(
        waits(&ingest(&mut s, &o, "2026-07-01T12:06:00Z")),
        [Duration::from_secs(2 * MIN)]
    );
    assert!(waits(&ingest(&mut s, &o, "2026-07-01T12:07:00Z")).is_empty());
}

#[test]
fn a_run_first_seen_finished_had_no_wait_the_exporter_saw() {
    let mut s = store();
    let o = run(
        "d1",
        "deploy",
        "SUCCESS",
        "2026-07-01T12:01:00Z",
        Some("2026-07-01T12:03:00Z"),
    );
    assert!(waits(&ingest(&mut s, &o, "2026-07-01T12:04:00Z")).is_empty());
}

#[test]
fn a_plan_summary_is_counted_once_with_the_finish_and_null_counts_add_nothing() {
    let mut s = store();
    let mut o = run("d1", "deploy", "IN_PROGRESS", "2026-07-01T12:01:00Z", None);
    let summary = ResourceChanges {
        added: Some(3),
        changed: Some(1),
        destroyed: None,
        imported: Some(0),
    };
    o.resource_changes = Some(summary);
    assert!(changes(&ingest(&mut s, &o, "2026-07-01T12:02:00Z")).is_empty());
    o.status = Some("SUCCESS".into());
    o.finished_at = Some(ts("2026-07-01T12:05:00Z"));
    assert_eq!(
        changes(&ingest(&mut s, &o, "2026-07-01T12:06:00Z")),
        [summary]
    );
    for now in ["2026-07-01T12:07:00Z", "2026-07-01T12:08:00Z"] {
        assert!(changes(&ingest(&mut s, &o, now)).is_empty());
    }
    // A null summary, and a summary of nulls, add nothing.
    let mut none = run(
        "d2",
        "deploy",
        "FAILURE",
        "2026-07-01T12:01:00Z",
        Some("2026-07-01T12:05:00Z"),
    );
    assert!(changes(&ingest(&mut s, &none, "2026-07-01T12:06:00Z")).is_empty());
    none.id = "d3".into();
    none.resource_changes = Some(ResourceChanges::default());
    assert!(changes(&ingest(&mut s, &none, "2026-07-01T12:06:00Z")).is_empty());
}

#[test]
fn a_plan_summary_of_a_run_that_finished_before_the_start_is_not_counted() {
    let mut s = fresh_store();
    let mut o = run(
        "d1",
        "prPlan",
        "SUCCESS",
        "2026-07-01T11:00:00Z",
        Some("2026-07-01T11:05:00Z"),
    );
    o.resource_changes = Some(ResourceChanges {
        added: Some(2),
        ..ResourceChanges::default()
    });
    assert!(changes(&ingest(&mut s, &o, "2026-07-01T12:00:00Z")).is_empty());
}

#[test]
fn drift_detections_are_drifted_clean_or_failed_and_counted_once() {
    let mut s = store();
    let cases = [
        ("SUCCESS", Some(true), None, DriftResult::Drifted),
        ("SUCCESS", Some(false), None, DriftResult::Clean),
        // env0 left driftDetected null: the plan decides.
        ("SUCCESS", None, Some(1), DriftResult::Drifted),
        ("SUCCESS", None, Some(0), DriftResult::Clean),
        ("SUCCESS", None, None, DriftResult::Clean),
        // Did not succeed: failed, whatever the flag says.
        ("FAILURE", Some(true), None, DriftResult::Failed),
        ("TIMEOUT", None, None, DriftResult::Failed),
        ("CANCELLED", None, None, DriftResult::Failed),
    ];
    for (i, (status, detected, changed, want)) in cases.into_iter().enumerate() {
        let mut o = run(
            &format!("d{i}"),
            "driftDetection",
            status,
            "2026-07-01T12:01:00Z",
            Some("2026-07-01T12:04:00Z"),
        );
        o.drift_detected = detected;
        o.resource_changes = changed.map(|n| ResourceChanges {
            changed: Some(n),
            ..ResourceChanges::default()
        });
        assert_eq!(
            drift(&ingest(&mut s, &o, "2026-07-01T12:05:00Z")),
            [want],
            "{status} {detected:?} {changed:?}"
        );
        assert!(drift(&ingest(&mut s, &o, "2026-07-01T12:06:00Z")).is_empty());
    }
    // Other types are not drift detections, whatever their flag.
    let mut o = run(
        "x",
        "deploy",
        "SUCCESS",
        "2026-07-01T12:01:00Z",
        Some("2026-07-01T12:04:00Z"),
    );
    o.drift_detected = Some(true);
    assert!(drift(&ingest(&mut s, &o, "2026-07-01T12:05:00Z")).is_empty());
}

#[test]
fn recovery_runs_from_the_first_known_failure_to_the_next_counted_success() {
    let mut s = store();
    // Failures before the start, seen by the backfill: known.
    let f1 = run(
        "f1",
        "deploy",
        "FAILURE",
        "2026-07-01T10:00:00Z",
        Some("2026-07-01T10:05:00Z"),
    );
    let f2 = run(
        "f2",
        "deploy",
        "TIMEOUT",
        "2026-07-01T11:00:00Z",
        Some("2026-07-01T11:30:00Z"),
    );
    // Neither a destroy's success nor a cancelled deploy ends the streak.
    let destroy = run(
        "x1",
        "destroy",
        "SUCCESS",
        "2026-07-01T11:40:00Z",
        Some("2026-07-01T11:45:00Z"),
    );
    let cancelled = run(
        "x2",
        "deploy",
        "CANCELLED",
        "2026-07-01T11:50:00Z",
        Some("2026-07-01T11:51:00Z"),
    );
    for o in [&f2, &destroy, &f1, &cancelled] {
        assert!(recoveries(&ingest(&mut s, o, "2026-07-01T12:00:00Z")).is_empty());
    }
    assert_eq!(s.failing_since("e1"), Some(ts("2026-07-01T10:05:00Z")));
    let ok = run(
        "s1",
        "deploy",
        "SUCCESS",
        "2026-07-01T12:10:00Z",
        Some("2026-07-01T12:20:00Z"),
    );
    let events = ingest(&mut s, &ok, "2026-07-01T12:21:00Z");
    // 10:05 → 12:20, env0's times (not the exporter's 12:21).
    assert_eq!(recoveries(&events), [Duration::from_secs(135 * MIN)]);
    let Some(Event::Recovered { labels, .. }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(&*labels.iac_tool, "terraform");
    assert_eq!(s.failing_since("e1"), None);
    // Seen again: not observed again.
    assert!(recoveries(&ingest(&mut s, &ok, "2026-07-01T12:22:00Z")).is_empty());
}

#[test]
fn no_recovery_without_a_known_failure() {
    let mut s = store();
    // A failure created before the lookback window is not tracked, so not known.
    let old = run(
        "f0",
        "deploy",
        "FAILURE",
        "2026-06-30T11:00:00Z",
        Some("2026-06-30T11:10:00Z"),
    );
    ingest(&mut s, &old, "2026-07-01T12:00:00Z");
    assert_eq!(s.failing_since("e1"), None);
    let ok = run(
        "s1",
        "deploy",
        "SUCCESS",
        "2026-07-01T12:10:00Z",
        Some("2026-07-01T12:20:00Z"),
    );
    assert!(recoveries(&ingest(&mut s, &ok, "2026-07-01T12:21:00Z")).is_empty());
    // A failure in another environment does not count either.
    let mut other = run(
        "f9",
        "deploy",
        "FAILURE",
        "2026-07-01T12:22:00Z",
        Some("2026-07-01T12:23:00Z"),
    );
    other.environment_id = "e2".into();
    ingest(&mut s, &other, "2026-07-01T12:24:00Z");
    let ok2 = run(
        "s2",
        "deploy",
        "SUCCESS",
        "2026-07-01T12:25:00Z",
        Some("2026-07-01T12:30:00Z"),
    );
    assert!(recoveries(&ingest(&mut s, &ok2, "2026-07-01T12:31:00Z")).is_empty());
    assert_eq!(s.failing_since("e2"), Some(ts("2026-07-01T12:23:00Z")));
}

#[test]
fn a_success_before_the_start_ends_a_streak_without_being_observed() {
    let mut s = fresh_store();
    let runs = [
        (
            "f1",
            "FAILURE",
            "2026-07-01T09:00:00Z",
            "2026-07-01T09:10:00Z",
        ),
        (
            "s0",
            "SUCCESS",
            "2026-07-01T10:00:00Z",
            "2026-07-01T10:10:00Z",
        ),
        (
            "f2",
            "FAILURE",
            "2026-07-01T11:00:00Z",
            "2026-07-01T11:10:00Z",
        ),
    ];
    // Backfill order: newest first.
    for (id, status, created, finished) in runs.iter().rev() {
        let o = run(id, "deploy", status, created, Some(finished));
        assert!(recoveries(&ingest(&mut s, &o, "2026-07-01T12:00:00Z")).is_empty());
    }
    assert_eq!(s.failing_since("e1"), Some(ts("2026-07-01T11:10:00Z")));
    s.mark_baselined("e1");
    let ok = run(
        "s1",
        "deploy",
        "SUCCESS",
        "2026-07-01T12:00:00Z",
        Some("2026-07-01T12:10:00Z"),
    );
    assert_eq!(
        recoveries(&ingest(&mut s, &ok, "2026-07-01T12:11:00Z")),
        [Duration::from_secs(60 * MIN)]
    );
}

#[test]
fn a_failure_learned_after_the_success_that_ended_it_still_dates_the_recovery() {
    // Both finished within one poll; the environment's embedded latest run (the success) is
    // ingested before the listing shows the failure.
    let mut s = store();
    let ok = run(
        "s1",
        "deploy",
        "SUCCESS",
        "2026-07-01T12:06:00Z",
        Some("2026-07-01T12:09:00Z"),
    );
    let failed = run(
        "f1",
        "deploy",
        "INTERNAL_FAILURE",
        "2026-07-01T12:01:00Z",
        Some("2026-07-01T12:05:00Z"),
    );
    assert!(recoveries(&ingest(&mut s, &ok, "2026-07-01T12:10:00Z")).is_empty());
    let events = ingest(&mut s, &failed, "2026-07-01T12:10:00Z");
    assert_eq!(recoveries(&events), [Duration::from_secs(4 * MIN)]);
    assert_eq!(s.failing_since("e1"), None);
    // A failure older than a success that was never counted resolves nothing.
    let mut t = fresh_store();
    let early = run(
        "s0",
        "deploy",
        "SUCCESS",
        "2026-07-01T11:00:00Z",
        Some("2026-07-01T11:09:00Z"),
    );
    let earlier = run(
        "f0",
        "deploy",
        "FAILURE",
        "2026-07-01T10:00:00Z",
        Some("2026-07-01T10:05:00Z"),
    );
    ingest(&mut t, &early, "2026-07-01T12:00:00Z");
    assert!(recoveries(&ingest(&mut t, &earlier, "2026-07-01T12:00:00Z")).is_empty());
    assert_eq!(t.failing_since("e1"), None);
}

#[test]
fn events_name_the_run_and_its_project_for_exemplars() {
    let mut s = store();
    s.upsert_environment("e1", Some("p1"), Some("ACTIVE"), Some("OK"), false);
    let o = run(
        "d1",
        "deploy",
        "SUCCESS",
        "2026-07-01T12:01:00Z",
        Some("2026-07-01T12:03:00Z"),
    );
    let events = ingest(&mut s, &o, "2026-07-01T12:04:00Z");
    let runs: Vec<&RunRef> = events
        .iter()
        .filter_map(|e| match e {
            Event::Started { run, .. } | Event::Finished { run, .. } => Some(run),
            _ => None,
        })
        .collect();
    let want = |at: &str| RunRef {
        deployment_id: "d1".into(),
        environment_id: "e1".into(),
        project_id: Some("p1".into()),
        at: Some(ts(at)),
    };
    assert_eq!(
        runs,
        [&want("2026-07-01T12:01:00Z"), &want("2026-07-01T12:03:00Z")]
    );
}

#[test]
fn a_streak_keeps_its_first_failures_and_an_environment_gone_forgets_it() {
    let mut s = store();
    for i in 0..40 {
        let created = clock::add(ts("2026-07-01T10:00:00Z"), Duration::from_secs(i * MIN));
        let finished = clock::add(created, Duration::from_secs(30));
        let mut o = run("x", "deploy", "FAILURE", "2026-07-01T10:00:00Z", None);
        o.id = format!("f{i}");
        o.created_at = Some(created);
        o.finished_at = Some(finished);
        ingest(&mut s, &o, "2026-07-01T12:00:00Z");
    }
    assert_eq!(s.failing_since("e1"), Some(ts("2026-07-01T10:00:30Z")));
    s.retain_environments(&HashSet::from(["e2"]));
    assert_eq!(s.failing_since("e1"), None);
}
