//! Router tests of the webhook receiver: every answer, what reaches the poller's queue, and what
//! is counted. Signatures are computed with the `hmac` crate directly, by the helper the test
//! crates share (`tests/common`), of bodies whose canonical form is written out by hand.

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
use crate::metrics::{Metrics, MetricsConfig};

const SECRET: &str = "s3cret";
const WATCHED: &str = "env-watched";

struct Fixture {
    router: Router,
    metrics: Arc<Metrics>,
    queue: mpsc::Receiver<Observation>,
    clock: Arc<ManualClock>,
    snapshot: SnapshotHandle,
}

fn fixture() -> Fixture {
    fixture_with(&MetricsConfig::default(), |intake| intake)
}

/// A fixture whose metrics have `config` and whose intake `configure` finishes.
fn fixture_with(config: &MetricsConfig, configure: impl FnOnce(Intake) -> Intake) -> Fixture {
    let snapshot = SnapshotHandle::default();
    let (_, watched) = tokio::sync::watch::channel(Arc::new(HashSet::from([Arc::from(WATCHED)])));
    let manual = Arc::new(ManualClock::new("2026-07-01T12:00:00Z".parse().unwrap()));
    let clock: SharedClock = manual.clone();
    let metrics = Arc::new(Metrics::new(
        config,
        snapshot.clone(),
        Arc::new(crate::ratelimit::SlidingWindow::new(
            500,
            crate::client::RATE_WINDOW,
        )),
        clock.clone(),
    ));
    let (intake, queue) = Intake::new(
        Secret::new(SECRET),
        snapshot.clone(),
        watched,
        metrics.clone(),
        clock,
    );
    Fixture {
        router: router(Arc::new(configure(intake))),
        metrics,
        queue,
        clock: manual,
        snapshot,
    }
}

/// Publishes env0's clock offset as the poller would.
fn set_clock_offset(f: &Fixture, offset: jiff::SignedDuration) {
    let mut snap = (*f.snapshot.load()).clone();
    snap.health.clock_offset = Some(offset);
    f.snapshot.publish(snap);
}

/// HMAC-SHA256 hex of `body` under the test's secret, computed by the tests' shared helper
/// rather than with the code under test.
fn signature(body: &[u8]) -> String {
    common::hmac_hex(SECRET, body)
}

fn deploy_event(environment: &str, status: &str) -> Vec<u8> {
    event_with(
        environment,
        status,
        "body-event-id",
        "2026-07-01T12:00:05.000Z",
    )
}

fn event_with(environment: &str, status: &str, id: &str, time: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "type": "com.env0.deploy.succeeded",
        "source": "env0",
        "id": id,
        "time": time,
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

/// The value of `env0_exporter_webhook_signatures_total{form}`, 0 when absent.
fn signatures(f: &Fixture, form: &str) -> f64 {
    let text = f.metrics.encode(false).unwrap();
    let head = format!("env0_exporter_webhook_signatures_total{{form=\"{form}\"}} ");
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
    for (i, form) in ["sha256={sig}", "upper", "x-env-zero-signature"]
        .into_iter()
        .enumerate()
    {
        let id = format!("e{i}");
        let body = event_with(WATCHED, "SUCCESS", &id, "2026-07-01T12:00:05.000Z");
        let sig = signature(&body);
        let (name, value) = match form {
            "upper" => ("x-env0-signature", sig.to_uppercase()),
            "x-env-zero-signature" => ("x-env-zero-signature", sig),
            _ => ("x-env0-signature", format!("sha256={sig}")),
        };
        let status = post(
            &f,
            body,
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
async fn the_signed_body_decides_duplicates_and_a_replay_under_a_fresh_header_id_is_one() {
    let mut f = fixture();
    let body = deploy_event(WATCHED, "SUCCESS");
    assert_eq!(
        post_signed(&f, body.clone(), Some("e1")).await,
        StatusCode::ACCEPTED
    );
    // The same body again: under the same header id, a fresh one, or none.
    for header_id in [Some("e1"), Some("e2"), None] {
        assert_eq!(
            post_signed(&f, body.clone(), header_id).await,
            StatusCode::OK,
            "{header_id:?}"
        );
    }
    // Another body id for the same run and status: handed over (the state counts the run once).
    let time = "2026-07-01T12:00:05.000Z";
    let other_id = event_with(WATCHED, "SUCCESS", "body-event-id-2", time);
    assert_eq!(
        post_signed(&f, other_id, Some("e1")).await,
        StatusCode::ACCEPTED
    );
    // The same body id with the run's next status: handed over (were env0's body ids not
    // unique per event, a run's finish must still come in).
    let next_status = event_with(WATCHED, "FAILURE", "body-event-id", time);
    assert_eq!(
        post_signed(&f, next_status.clone(), Some("e1")).await,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post_signed(&f, next_status, Some("e9")).await,
        StatusCode::OK
    );
    assert_eq!(queued(&mut f).len(), 3);
    assert!((counted(&f, "deploy", "duplicate") - 4.0).abs() < f64::EPSILON);
    assert!((counted(&f, "deploy", "accepted") - 3.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn a_signature_of_the_canonical_form_is_accepted_and_the_form_that_matched_is_counted() {
    let mut f = fixture();
    // Pretty-printed, with `1.0`, an escaped `/` and an escaped non-ASCII letter; its canonical
    // form, written by hand as `JSON.stringify(JSON.parse(body))` prints it:
    let pretty = |id: &str| {
        format!(
            "{{\n  \"type\": \"com.env0.deploy.succeeded\",\n  \"id\": \"{id}\",\n  \"time\": \"2026-07-01T12:00:05.000Z\",\n  \"data\": {{\n    \"deploymentLog\": {{\"id\": \"dep-{id}\", \"environmentId\": \"{WATCHED}\", \"type\": \"deploy\", \"status\": \"SUCCESS\", \"resourceCount\": 3.0, \"blueprintRevision\": \"a\\/b \\u00e9\", \"createdAt\": \"2026-07-01T11:58:00.000Z\", \"finishedAt\": \"2026-07-01T12:00:04.000Z\"}}\n  }}\n}}\n"
        )
    };
    let compact = |id: &str| {
        format!(
            "{{\"type\":\"com.env0.deploy.succeeded\",\"id\":\"{id}\",\"time\":\"2026-07-01T12:00:05.000Z\",\"data\":{{\"deploymentLog\":{{\"id\":\"dep-{id}\",\"environmentId\":\"{WATCHED}\",\"type\":\"deploy\",\"status\":\"SUCCESS\",\"resourceCount\":3,\"blueprintRevision\":\"a/b é\",\"createdAt\":\"2026-07-01T11:58:00.000Z\",\"finishedAt\":\"2026-07-01T12:00:04.000Z\"}}}}}}"
        )
    };
    // Signed compact, sent pretty: only the canonical form matches.
    let sig = signature(compact("c1").as_bytes());
    let status = post(
        &f,
        pretty("c1").into_bytes(),
        &[("x-env0-signature", sig.as_str())],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Signed and sent pretty: only the raw body matches.
    let body = pretty("r1").into_bytes();
    let sig = signature(&body);
    assert_eq!(
        post(&f, body, &[("x-env0-signature", sig.as_str())]).await,
        StatusCode::ACCEPTED
    );
    // Sent compact (already canonical): both match.
    let body = compact("b1").into_bytes();
    let sig = signature(&body);
    assert_eq!(
        post(&f, body, &[("x-env0-signature", sig.as_str())]).await,
        StatusCode::ACCEPTED
    );
    // A re-serialisation that is not JavaScript's (`3.0` kept, keys sorted): refused.
    let not_js = compact("n1").replace("\"resourceCount\":3", "\"resourceCount\":3.0");
    let sig = signature(not_js.as_bytes());
    assert_eq!(
        post(
            &f,
            pretty("n1").into_bytes(),
            &[("x-env0-signature", sig.as_str())]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let sorted =
        serde_json::to_vec(&serde_json::from_str::<Value>(&compact("n2")).unwrap()).unwrap();
    let sig = signature(&sorted);
    assert_eq!(
        post(
            &f,
            pretty("n2").into_bytes(),
            &[("x-env0-signature", sig.as_str())]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(queued(&mut f).len(), 3);
    for (form, want) in [("raw", 1.0), ("canonical", 1.0), ("both", 1.0)] {
        assert!((signatures(&f, form) - want).abs() < f64::EPSILON, "{form}");
    }
    assert!((counted(&f, "other", "bad_signature") - 2.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn an_event_far_from_env0s_time_is_stale_and_env0s_clock_offset_is_what_counts() {
    let mut f = fixture();
    // Our clock: 12:00:00, env0's as known: the same (no offset measured yet).
    for (id, time, want) in [
        ("t1", "2026-07-01T11:30:00.000Z", StatusCode::ACCEPTED),
        ("t2", "2026-07-01T12:30:00.000Z", StatusCode::ACCEPTED),
        ("t3", "2026-07-01T11:29:59.000Z", StatusCode::BAD_REQUEST),
        ("t4", "2026-07-01T12:30:01.000Z", StatusCode::BAD_REQUEST),
    ] {
        let body = event_with(WATCHED, "SUCCESS", id, time);
        assert_eq!(post_signed(&f, body, None).await, want, "{time}");
    }
    // env0's clock two hours ahead of ours, as the poller measured it: env0's time decides.
    set_clock_offset(&f, jiff::SignedDuration::from_hours(2));
    let now_at_env0 = event_with(WATCHED, "SUCCESS", "t5", "2026-07-01T14:00:00.000Z");
    assert_eq!(
        post_signed(&f, now_at_env0, None).await,
        StatusCode::ACCEPTED
    );
    let our_now = event_with(WATCHED, "SUCCESS", "t6", "2026-07-01T12:00:00.000Z");
    assert_eq!(
        post_signed(&f, our_now, None).await,
        StatusCode::BAD_REQUEST
    );
    // A body without a time (or an unreadable one) is judged on the rest.
    let no_time = serde_json::to_vec(&json!({
        "type": "com.env0.deploy.succeeded",
        "id": "t7",
        "data": {"deploymentLog": {"id": "dep-7", "environmentId": WATCHED, "status": "SUCCESS"}},
    }))
    .unwrap();
    assert_eq!(post_signed(&f, no_time, None).await, StatusCode::ACCEPTED);
    // An event without a deployment log changes nothing: its age is not judged.
    let old_test = serde_json::to_vec(&json!({
        "type": "com.env0.webhook.test",
        "id": "t8",
        "time": "2022-01-01T00:00:00.000Z",
        "data": {},
    }))
    .unwrap();
    assert_eq!(post_signed(&f, old_test, None).await, StatusCode::OK);
    assert!((counted(&f, "other", "ignored") - 1.0).abs() < f64::EPSILON);
    assert_eq!(queued(&mut f).len(), 4);
    assert!((counted(&f, "deploy", "stale") - 3.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn a_replay_after_its_id_is_forgotten_is_stale_rather_than_taken_in_again() {
    let mut f = fixture();
    let body = deploy_event(WATCHED, "SUCCESS");
    assert_eq!(
        post_signed(&f, body.clone(), Some("e1")).await,
        StatusCode::ACCEPTED
    );
    f.clock.advance(std::time::Duration::from_secs(40 * 60));
    assert_eq!(
        post_signed(&f, body.clone(), Some("e2")).await,
        StatusCode::BAD_REQUEST
    );
    f.clock.advance(recent::TIME_TO_LIVE);
    assert_eq!(
        post_signed(&f, body, Some("e3")).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(queued(&mut f).len(), 1);
    assert!((counted(&f, "deploy", "stale") - 2.0).abs() < f64::EPSILON);
}

#[tokio::test]
async fn deployment_events_of_every_spelling_are_taken_in_by_their_deployment_log() {
    let mut f = fixture();
    for (i, (event_type, headers)) in [
        (
            "com.env0.deploy.succeeded",
            ["x-env0-signature", "x-env0-event-id", "x-env0-event"],
        ),
        (
            "com.env0.deployment.succeeded",
            ["x-env0-signature", "x-env0-event-id", "x-env0-event"],
        ),
        (
            "com.env-zero.deployment.finished",
            [
                "x-env-zero-signature",
                "x-env-zero-event-id",
                "x-env-zero-event",
            ],
        ),
        (
            "com.env-zero.destroy.succeeded",
            [
                "x-env-zero-signature",
                "x-env-zero-event-id",
                "x-env-zero-event",
            ],
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let body = serde_json::to_vec(&json!({
            "type": event_type,
            "id": format!("body-{i}"),
            "time": "2026-07-01T12:00:05.000Z",
            "data": {"deploymentLog": {
                "id": format!("dep-{i}"),
                "environmentId": WATCHED,
                "type": "destroy",
                "status": "SUCCESS",
            }},
        }))
        .unwrap();
        let sig = signature(&body);
        let header_id = format!("header-{i}");
        let status = post(
            &f,
            body,
            &[
                (headers[0], sig.as_str()),
                (headers[1], header_id.as_str()),
                (headers[2], event_type),
            ],
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{event_type}");
    }
    let obs = queued(&mut f);
    assert_eq!(obs.len(), 4);
    assert!(
        obs.iter()
            .all(|o| o.deployment_type.as_deref() == Some("destroy"))
    );
    // Counted by the log's type, whatever the event type's first part says.
    assert!((counted(&f, "destroy", "accepted") - 4.0).abs() < f64::EPSILON);
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
    for form in SignatureForm::ALL {
        let line = format!(
            "env0_exporter_webhook_signatures_total{{form=\"{}\"}} 0",
            form.as_str()
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

/// Forwarding between shards, against a fake shard on a loopback port.
mod forwarding;
