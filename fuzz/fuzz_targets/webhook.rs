//! A webhook delivery's body, as bytes, correctly signed, posted to the real receiver's router
//! (signature check, size limit, JSON, dedupe, classification, hand-over). Nothing may panic
//! and every answer must be one the receiver documents.

#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use env0_exporter::clock::{ManualClock, SharedClock};
use env0_exporter::config::Secret;
use env0_exporter::metrics::{Metrics, MetricsConfig};
use env0_exporter::state::SnapshotHandle;
use env0_exporter::webhook::{Intake, router, sign};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const SECRET: &str = "fuzz-secret";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|e| panic!("runtime: {e}"));
        let snapshot = SnapshotHandle::default();
        let start = "2026-07-01T12:00:00Z".parse().unwrap_or_default();
        let clock: SharedClock = Arc::new(ManualClock::new(start));
        let budget = Arc::new(env0_exporter::ratelimit::SlidingWindow::new(
            500,
            env0_exporter::client::RATE_WINDOW,
        ));
        let metrics = Arc::new(Metrics::new(
            &MetricsConfig::default(),
            snapshot.clone(),
            budget,
            clock.clone(),
        ));
        let (intake, queue) = Intake::new(Secret::new(SECRET), snapshot, metrics, clock);
        // The poller's end is not read: a full queue is one of the answers to exercise.
        std::mem::forget(queue);
        Fixture {
            runtime,
            router: router(Arc::new(intake)),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let request = Request::post("/webhooks/env0")
        .header("content-type", "application/json")
        .header("x-env0-signature", sign(SECRET.as_bytes(), data))
        .body(Body::from(data.to_vec()))
        .unwrap_or_else(|e| panic!("request: {e}"));
    let response = f
        .runtime
        .block_on(f.router.clone().oneshot(request))
        .unwrap_or_else(|e| match e {});
    let status = response.status().as_u16();
    assert!(
        matches!(status, 200..=299 | 400 | 413),
        "undocumented answer {status}"
    );
});
