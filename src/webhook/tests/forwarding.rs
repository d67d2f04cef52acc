//! Router tests of forwarding between shards: this intake is shard 2 of 2 (it watches
//! [`WATCHED`], which hashes to shard 2) and forwards to a fake shard on a loopback port that
//! records what it receives. Which shard owns an id is worked out by hand from 64-bit FNV-1a
//! (`fnv1a(id) % 2 + 1`), never with the code under test.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use bytes::Bytes;

use super::*;
use crate::shard::Shard;

/// Shard 1 of 2's: `fnv1a("env-1") = 0xad25_ffbf_427f_8b5e`, even.
const FIRST_SHARDS: &str = "env-1";
/// Shard 2 of 2's, not watched: `fnv1a("env-2") = 0xad25_febf_427f_89ab`, odd.
const OWN_NOT_WATCHED: &str = "env-2";

/// What the fake shard received: path, headers, body.
type Received = Mutex<Vec<(String, HeaderMap, Bytes)>>;

/// How the fake shard answers.
#[derive(Clone, Copy)]
enum Answer {
    Status(StatusCode),
    Never,
}

/// A fake shard that records every request and answers with `answer`: its address.
async fn fake_shard(answer: Answer) -> (SocketAddr, Arc<Received>) {
    let received = Arc::new(Received::default());
    let log = received.clone();
    let app = Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                log.lock()
                    .unwrap()
                    .push((uri.path().to_owned(), headers, body));
                match answer {
                    Answer::Status(status) => status,
                    Answer::Never => std::future::pending().await,
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

/// Shard 2 of 2 forwarding to `http://{target}/shard-{shard}/ordinal-{ordinal}` within
/// `timeout`.
fn forwarding_fixture(target: SocketAddr, timeout: Duration) -> Fixture {
    let template: UrlTemplate = format!("http://{target}/shard-{{shard}}/ordinal-{{ordinal}}")
        .parse()
        .unwrap();
    let forwarding = Forwarding::new(Shard::new(2, 2).unwrap(), template, timeout)
        .unwrap()
        .expect("sharded: forwarding on");
    let config = MetricsConfig {
        shard: Shard::new(2, 2).unwrap(),
        webhook_forwards: true,
        ..MetricsConfig::default()
    };
    fixture_with(&config, |intake| intake.with_forwarding(Some(forwarding)))
}

/// `env0_exporter_webhook_forwards_total{outcome}`, `None` when the series is absent.
fn forwards(f: &Fixture, outcome: &str) -> Option<u64> {
    let text = f.metrics.encode(false).unwrap();
    let head = format!("env0_exporter_webhook_forwards_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .map(|v| v.parse().unwrap())
}

/// The four forward outcomes' counts, in the order ok, refused, error, timeout.
fn all_forwards(f: &Fixture) -> [u64; 4] {
    ["ok", "refused", "error", "timeout"].map(|o| forwards(f, o).unwrap())
}

/// A deployment event for `environment` whose bytes differ from any re-serialisation of it
/// (spaces before, a newline after), with its id in the body and a header.
fn delivery_for(environment: &str, id: &str) -> Vec<u8> {
    let mut body = b"  ".to_vec();
    body.extend(event_with(
        environment,
        "SUCCESS",
        id,
        "2026-07-01T12:00:05.000Z",
    ));
    body.push(b'\n');
    body
}

/// POSTs `body` signed as env0 does, with its event headers and `extra` ones; the status.
async fn deliver(f: &Fixture, body: &[u8], extra: &[(&str, &str)]) -> StatusCode {
    let sig = format!("sha256={}", signature(body));
    let mut headers = vec![
        ("x-env0-signature", sig.as_str()),
        ("x-env0-event", "com.env0.deploy.succeeded"),
        ("x-env0-event-id", "header-id-1"),
        ("content-type", "application/json"),
        ("x-env0-notification-target-id", "target-1"),
    ];
    headers.extend_from_slice(extra);
    post(f, body.to_vec(), &headers).await
}

#[tokio::test]
async fn another_shards_delivery_is_forwarded_byte_for_byte_counted_once_and_a_replay_is_not() {
    let (addr, received) = fake_shard(Answer::Status(StatusCode::ACCEPTED)).await;
    let mut f = forwarding_fixture(addr, FORWARD_TIMEOUT);
    assert_eq!(all_forwards(&f), [0; 4], "every outcome starts at 0");
    let body = delivery_for(FIRST_SHARDS, "event-1");
    assert_eq!(deliver(&f, &body, &[]).await, StatusCode::ACCEPTED);

    {
        let got = received.lock().unwrap();
        assert_eq!(got.len(), 1, "one forward");
        let (path, headers, forwarded) = &got[0];
        assert_eq!(
            path, "/shard-1/ordinal-0",
            "shard 1 of 2: {{shard}} 1, {{ordinal}} 0"
        );
        assert_eq!(
            forwarded.as_ref(),
            body.as_slice(),
            "the body byte for byte"
        );
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let sig = format!("sha256={}", signature(&body));
        assert_eq!(header("x-env0-signature").as_deref(), Some(sig.as_str()));
        assert_eq!(
            header("x-env0-event").as_deref(),
            Some("com.env0.deploy.succeeded")
        );
        assert_eq!(header("x-env0-event-id").as_deref(), Some("header-id-1"));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert_eq!(header(FORWARDED_FROM).as_deref(), Some("2/2"));
    }
    assert!(queued(&mut f).is_empty(), "not taken in here");
    assert!((counted(&f, "deploy", "forwarded") - 1.0).abs() < f64::EPSILON);
    assert!(counted(&f, "deploy", "accepted").abs() < f64::EPSILON);
    assert_eq!(all_forwards(&f), [1, 0, 0, 0]);

    // env0's replay (same body, same signature) is this shard's duplicate: not forwarded again.
    assert_eq!(deliver(&f, &body, &[]).await, StatusCode::OK);
    assert_eq!(received.lock().unwrap().len(), 1);
    assert!((counted(&f, "deploy", "duplicate") - 1.0).abs() < f64::EPSILON);
    assert_eq!(all_forwards(&f), [1, 0, 0, 0]);
}

#[tokio::test]
async fn the_owning_shards_2xx_is_env0s_answer_and_its_refusal_a_502() {
    let (addr, _) = fake_shard(Answer::Status(StatusCode::OK)).await;
    let f = forwarding_fixture(addr, FORWARD_TIMEOUT);
    let body = delivery_for(FIRST_SHARDS, "event-ok");
    assert_eq!(deliver(&f, &body, &[]).await, StatusCode::OK);
    assert_eq!(all_forwards(&f), [1, 0, 0, 0]);

    // The other shard has another secret (401), or disagrees on the shard count (421).
    for (n, refusal) in [StatusCode::UNAUTHORIZED, StatusCode::MISDIRECTED_REQUEST]
        .into_iter()
        .enumerate()
    {
        let (addr, received) = fake_shard(Answer::Status(refusal)).await;
        let f = forwarding_fixture(addr, FORWARD_TIMEOUT);
        let body = delivery_for(FIRST_SHARDS, &format!("event-refused-{n}"));
        assert_eq!(deliver(&f, &body, &[]).await, StatusCode::BAD_GATEWAY);
        assert_eq!(received.lock().unwrap().len(), 1);
        assert_eq!(all_forwards(&f), [0, 1, 0, 0], "{refusal}");
        assert!((counted(&f, "deploy", "forwarded") - 1.0).abs() < f64::EPSILON);
    }
}

#[tokio::test]
async fn a_shard_that_is_down_is_an_error_and_one_that_never_answers_a_timeout() {
    // A port nothing listens on any more: the connection is refused.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let f = forwarding_fixture(closed, FORWARD_TIMEOUT);
    let body = delivery_for(FIRST_SHARDS, "event-down");
    assert_eq!(deliver(&f, &body, &[]).await, StatusCode::BAD_GATEWAY);
    assert_eq!(all_forwards(&f), [0, 0, 1, 0]);

    // A shard that takes the request and never answers: the forward gives up at its timeout
    // (short here, so the test does not wait the real one), and env0 is answered 504.
    let (addr, received) = fake_shard(Answer::Never).await;
    let f = forwarding_fixture(addr, Duration::from_millis(200));
    let body = delivery_for(FIRST_SHARDS, "event-silent");
    assert_eq!(deliver(&f, &body, &[]).await, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(received.lock().unwrap().len(), 1, "it did reach the shard");
    assert_eq!(all_forwards(&f), [0, 0, 0, 1]);
}

#[tokio::test]
async fn a_forwarded_delivery_is_never_forwarded_again_and_is_taken_in_by_its_own_shard() {
    let (addr, received) = fake_shard(Answer::Status(StatusCode::ACCEPTED)).await;
    let mut f = forwarding_fixture(addr, FORWARD_TIMEOUT);
    // Forwarded here by shard 1, yet not this shard's either: dropped with 421.
    let body = delivery_for(FIRST_SHARDS, "event-loop");
    let from = [(FORWARDED_FROM, "1/2")];
    assert_eq!(
        deliver(&f, &body, &from).await,
        StatusCode::MISDIRECTED_REQUEST
    );
    assert!(received.lock().unwrap().is_empty(), "not forwarded again");
    assert!((counted(&f, "deploy", "misrouted") - 1.0).abs() < f64::EPSILON);
    assert_eq!(all_forwards(&f), [0; 4]);

    // Forwarded here for this shard's watched environment: taken in as from env0.
    let body = delivery_for(WATCHED, "event-mine");
    assert_eq!(deliver(&f, &body, &from).await, StatusCode::ACCEPTED);
    assert_eq!(queued(&mut f).len(), 1);
    assert!((counted(&f, "deploy", "accepted") - 1.0).abs() < f64::EPSILON);

    // This shard's environment that it does not watch (another organisation's, or listed
    // since): ignored here, as without forwarding, and never sent to another shard.
    let body = delivery_for(OWN_NOT_WATCHED, "event-not-watched");
    assert_eq!(deliver(&f, &body, &[]).await, StatusCode::OK);
    assert!(received.lock().unwrap().is_empty());
    assert!((counted(&f, "deploy", "ignored") - 1.0).abs() < f64::EPSILON);
    assert!(queued(&mut f).is_empty());
}

#[tokio::test]
async fn a_refused_signature_is_not_forwarded_and_without_forwarding_there_is_no_forwards_family() {
    let (addr, received) = fake_shard(Answer::Status(StatusCode::ACCEPTED)).await;
    let f = forwarding_fixture(addr, FORWARD_TIMEOUT);
    let body = delivery_for(FIRST_SHARDS, "event-forged");
    let status = post(
        &f,
        body,
        &[("x-env0-signature", "sha256=00"), (FORWARDED_FROM, "1/2")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(received.lock().unwrap().is_empty());

    // Forwarding off (the default): another shard's delivery is ignored, and not counted as a
    // forward anywhere.
    let f = fixture();
    let body = delivery_for(FIRST_SHARDS, "event-off");
    assert_eq!(deliver(&f, &body, &[]).await, StatusCode::OK);
    assert!((counted(&f, "deploy", "ignored") - 1.0).abs() < f64::EPSILON);
    assert_eq!(forwards(&f, "ok"), None);
}
