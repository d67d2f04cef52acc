//! Router tests of the webhook receiver: every answer, what reaches the poller's queue, and what
//! is counted. Signatures are computed with the `hmac` crate directly, by the helper the test
//! crates share (`tests/common`).

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use tokio::sync::mpsc;
use tower::ServiceExt;

use super::*;

#[path = "../../tests/common/mod.rs"]
mod common;
use crate::clock::ManualClock;
use crate::config::Secret;
use crate::metrics::MetricsConfig;
use crate::state::Snapshot;

const SECRET: &str = "s3cret";
const WATCHED: &str = "env-watched";

struct Fixture {
    router: Router,
    metrics: Arc<Metrics>,
    queue: mpsc::Receiver<Observation>,
}

fn fixture() -> Fixture {
    let snapshot = SnapshotHandle::default();
    snapshot.publish(Snapshot {
        watched_environments: Arc::new(HashSet::from([Arc::from(WATCHED)])),
        ..Snapshot::default()
    });
    let clock: SharedClock = Arc::new(ManualClock::new("2026-07-01T12:00:00Z".parse().unwrap()));
    let metrics = Arc::new(Metrics::new(
        &MetricsConfig::default(),
        snapshot.clone(),
        Arc::new(crate::ratelimit::SlidingWindow::new(
            500,
            crate::client::RATE_WINDOW,
        )),
        clock.clone(),
    ));
    let (intake, queue) = Intake::new(Secret::new(SECRET), snapshot, metrics.clone(), clock);
    Fixture {
        router: router(Arc::new(intake)),
        metrics,
        queue,
    }
}

/// HMAC-SHA256 hex of `body` under the test's secret, computed by the tests' shared helper
/// rather than with the code under test.
fn signature(body: &[u8]) -> String {
    common::hmac_hex(SECRET, body)
}

fn deploy_event(environment: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "com.env0.deploy.succeeded",
        "source": "env0",
        "id": "body-event-id",
        "time": "2026-07-01T12:00:05.000Z",
        "datacontenttype": "application/json",
        "data": {
            "deploymentLog": {
                "id": "dep-1",
                "environmentId": environment,
                "type": "deploy",
                "status": status,
                "blueprintType": "opentofu",
                "triggerName": "user",
                "createdAt": "2026-07-01T11:58:00.000Z",
                "queuedAt": "2026-07-01T11:58:00.000Z",
                "startedAt": "2026-07-01T11:58:10.000Z",
                "finishedAt": "2026-07-01T12:00:04.000Z",
                "updatedAt": "2026-07-01T12:00:04.000Z",
                "startedBy": "auth0|u1",
                "url": "https://app.env0.com/p/x",
            },
            "environment": {"id": environment, "name": "api-prod"},
            "project": {"id": "p1"},
            "organization": {"id": "o1"},
        }
    }))
    .unwrap()
}

async fn post(f: &Fixture, body: Vec<u8>, headers: &[(&str, &str)]) -> StatusCode {
    let mut req = Request::post(PATH);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    f.router
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap()
        .status()
}

async fn post_signed(f: &Fixture, body: Vec<u8>, event_id: Option<&str>) -> StatusCode {
    let sig = signature(&body);
    let mut headers = vec![("x-env0-signature", sig.as_str())];
    if let Some(id) = event_id {
        headers.push(("x-env0-event-id", id));
    }
    post(f, body, &headers).await
}

/// The value of `env0_exporter_webhook_events_total{event, outcome}`, 0 when absent.
fn counted(f: &Fixture, event: &str, outcome: &str) -> f64 {
    let text = f.metrics.encode(false).unwrap();
    let head =
        format!("env0_exporter_webhook_events_total{{event=\"{event}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn queued(f: &mut Fixture) -> Vec<Observation> {
    let mut out = Vec::new();
    while let Ok(obs) = f.queue.try_recv() {
        out.push(obs);
    }
    out
}

#[tokio::test]
async fn a_signed_deployment_event_is_accepted_and_handed_to_the_poller_as_an_observation() {
    let mut f = fixture();
    let status = post_signed(&f, deploy_event(WATCHED, "SUCCESS"), Some("e1")).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let obs = queued(&mut f);
    assert_eq!(obs.len(), 1);
    assert_eq!(obs[0].id, "dep-1");
    assert_eq!(obs[0].environment_id, WATCHED);
    assert_eq!(obs[0].status.as_deref(), Some("SUCCESS"));
    assert_eq!(obs[0].deployment_type.as_deref(), Some("deploy"));
    assert_eq!(
        obs[0].finished_at,
        Some("2026-07-01T12:00:04Z".parse().unwrap())
    );
    assert!((counted(&f, "deploy", "accepted") - 1.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn the_prefix_uppercase_hex_and_the_env_zero_header_are_accepted() {
    let mut f = fixture();
    let body = deploy_event(WATCHED, "SUCCESS");
    let sig = signature(&body);
    for (i, (name, value)) in [
        ("x-env0-signature", format!("sha256={sig}")),
        ("x-env0-signature", sig.to_uppercase()),
        ("x-env-zero-signature", sig.clone()),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("e{i}");
        let status = post(
            &f,
            body.clone(),
            &[(name, value.as_str()), ("x-env-zero-event-id", id.as_str())],
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{name}: {value}");
    }
    assert_eq!(queued(&mut f).len(), 3);
}

#[tokio::test]
async fn a_missing_wrong_or_replayed_signature_is_401_and_changes_nothing() {
    let mut f = fixture();
    let body = deploy_event(WATCHED, "SUCCESS");
    let other_body = deploy_event(WATCHED, "FAILURE");
    let wrong = signature(b"something else");
    let replayed = signature(&body);
    for (b, headers) in [
        (body.clone(), vec![]),
        (body.clone(), vec![("x-env0-signature", wrong.as_str())]),
        (body.clone(), vec![("x-env0-signature", "")]),
        (body.clone(), vec![("x-env0-signature", "sha256=zz")]),
        // A real signature of another body: replaying it on a changed body fails.
        (
            other_body.clone(),
            vec![("x-env0-signature", replayed.as_str())],
        ),
    ] {
        assert_eq!(post(&f, b, &headers).await, StatusCode::UNAUTHORIZED);
    }
    assert!(queued(&mut f).is_empty());
    assert!((counted(&f, "other", "bad_signature") - 5.0).abs() < f64::EPSILON);
    assert!(counted(&f, "deploy", "accepted").abs() < f64::EPSILON);
}

#[tokio::test]
async fn a_repeated_event_id_is_a_duplicate_and_a_new_one_is_handed_over_again() {
    let mut f = fixture();
    let body = deploy_event(WATCHED, "SUCCESS");
    assert_eq!(
        post_signed(&f, body.clone(), Some("e1")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post_signed(&f, body.clone(), Some("e1")).await,
        StatusCode::OK
    );
    // No header: the body's id is the event id.
    assert_eq!(
        post_signed(&f, body.clone(), None).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(post_signed(&f, body.clone(), None).await, StatusCode::OK);
    // Another event id for the same run: handed over (the state counts the run once).
    assert_eq!(
        post_signed(&f, body, Some("e2")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(queued(&mut f).len(), 3);
    assert!((counted(&f, "deploy", "duplicate") - 2.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn an_environment_not_watched_and_an_event_without_a_deployment_log_are_ignored_with_2xx() {
    let mut f = fixture();
    let status = post_signed(&f, deploy_event("env-elsewhere", "SUCCESS"), Some("e1")).await;
    assert_eq!(status, StatusCode::OK);
    let budget = serde_json::to_vec(&json!({
        "type": "com.env0.budget.exceeded",
        "id": "b1",
        "data": {"project": {"id": "p1"}, "budget": {"amount": 100}},
    }))
    .unwrap();
    assert_eq!(post_signed(&f, budget, None).await, StatusCode::OK);
    assert!(queued(&mut f).is_empty());
    assert!((counted(&f, "deploy", "ignored") - 1.0).abs() < f64::EPSILON);
    assert!((counted(&f, "other", "ignored") - 1.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn signed_bodies_that_are_not_env0_events_are_400() {
    let mut f = fixture();
    let no_id = serde_json::to_vec(&json!({
        "type": "com.env0.deploy.succeeded",
        "data": {"deploymentLog": {"environmentId": WATCHED, "status": "SUCCESS"}},
    }))
    .unwrap();
    let no_environment = serde_json::to_vec(&json!({
        "type": "com.env0.deploy.succeeded",
        "data": {"deploymentLog": {"id": "d", "status": "SUCCESS"}},
    }))
    .unwrap();
    for body in [
        b"not json".to_vec(),
        b"[1,2]".to_vec(),
        no_id,
        no_environment,
    ] {
        assert_eq!(post_signed(&f, body, None).await, StatusCode::BAD_REQUEST);
    }
    assert!(queued(&mut f).is_empty());
    assert!((counted(&f, "other", "bad_request") - 4.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_or_not_its_length_is_declared() {
    let mut f = fixture();
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let sig = signature(&big);
    let declared = (MAX_BODY_BYTES + 1).to_string();
    assert_eq!(
        post(
            &f,
            big.clone(),
            &[
                ("x-env0-signature", sig.as_str()),
                ("content-length", declared.as_str())
            ]
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        post(&f, big, &[("x-env0-signature", sig.as_str())]).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Exactly at the limit is read (and then judged on its signature).
    let at_limit = vec![b' '; MAX_BODY_BYTES];
    assert_eq!(
        post(&f, at_limit, &[("x-env0-signature", sig.as_str())]).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(queued(&mut f).is_empty());
    assert!((counted(&f, "other", "bad_request") - 2.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn the_alerting_series_exist_at_zero_before_any_delivery() {
    let f = fixture();
    let text = f.metrics.encode(false).unwrap();
    for family in EventFamily::ALL {
        let line = format!(
            "env0_exporter_webhook_events_total{{event=\"{}\",outcome=\"accepted\"}} 0",
            family.as_str()
        );
        assert!(text.contains(&line), "{line}");
    }
    for outcome in ["bad_signature", "bad_request"] {
        let line = format!(
            "env0_exporter_webhook_events_total{{event=\"other\",outcome=\"{outcome}\"}} 0"
        );
        assert!(text.contains(&line), "{line}");
    }
}

#[tokio::test]
async fn only_post_is_served() {
    let f = fixture();
    let resp = f
        .router
        .clone()
        .oneshot(Request::get(PATH).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}
