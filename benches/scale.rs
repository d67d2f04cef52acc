//! Benchmarks at the scale of a large organisation: decoding a page of 100 deployment logs,
//! ingesting it into the store, rebuilding the snapshot of 200,000 deployments in 10,000
//! environments, and encoding `/metrics` (Prometheus text and `OpenMetrics`) for it; with
//! `serde_json::Value` decoding of the same page as the yardstick for ingest.
//!
//! Run: `cargo bench --bench scale` (criterion; `-- snapshot` for one group). After criterion's
//! groups, the bench prints the ratio of ingest (bytes → typed → store) to `Value` decoding,
//! both timed in the same run. Under `cargo test --all-targets` each benchmark runs once.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use env0_exporter::client::{DeploymentLog, decode_records};
use env0_exporter::clock::{ManualClock, SharedClock};
use env0_exporter::metrics::{Metrics, MetricsConfig};
use env0_exporter::observation::observation;
use env0_exporter::ratelimit::SlidingWindow;
use env0_exporter::state::{Event, SnapshotHandle, Store, aggregate};
use jiff::Timestamp;

#[path = "common/mod.rs"]
mod common;

const LOOKBACK: Duration = Duration::from_secs(24 * 3600);
const DEPLOYMENTS: usize = 200_000;
const ENVIRONMENTS: usize = 10_000;

fn start() -> Timestamp {
    "2026-07-01T12:00:00Z".parse().expect("timestamp")
}

/// A page of 100 deployment logs of one environment, created over the last hour.
fn page() -> (Vec<u8>, String) {
    let org = common::Org::new(1);
    let env = org.environments[0].clone();
    let mut rng = fastrand::Rng::with_seed(1);
    let body = common::page(
        &mut rng,
        &env,
        100,
        start().as_millisecond() - 1_000,
        36_000,
    );
    (body, env)
}

/// Decodes `body` as the client does and ingests it as the poller does.
fn ingest(store: &mut Store, body: &[u8], env: &str, now: Timestamp, events: &mut Vec<Event>) {
    let page = decode_records::<DeploymentLog>(body).expect("a page");
    for log in &page.records {
        store.ingest(&observation(log, env), now, events);
    }
    events.clear();
}

/// Whether this is a benchmark run (`cargo bench`), not the single pass of `cargo test`.
fn benchmarking() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// A store holding 200,000 deployments of 10,000 environments, ingested page by page (a
/// hundredth of that under `cargo test`, which only checks that the benchmarks run).
fn full_store() -> Store {
    let scale = if benchmarking() { 1 } else { 100 };
    let (deployments, environments) = (DEPLOYMENTS / scale, ENVIRONMENTS / scale);
    let org = common::Org::new(environments);
    let mut store = Store::new(start(), LOOKBACK);
    let mut rng = fastrand::Rng::with_seed(42);
    let per_env = deployments / environments;
    let spacing = i64::try_from(LOOKBACK.as_millis()).expect("small")
        / i64::try_from(per_env).expect("small");
    let mut events = Vec::new();
    for (i, (env, project)) in org.environments.iter().zip(&org.projects).enumerate() {
        store.upsert_environment(env, Some(project), Some("ACTIVE"), Some("OK"), false);
        store.mark_baselined(env);
        let offset = i64::try_from(i * per_env).expect("small") * spacing
            / i64::try_from(deployments).expect("small");
        let newest = start().as_millisecond() - offset - 1;
        let body = common::page(&mut rng, env, per_env, newest, spacing);
        ingest(&mut store, &body, env, start(), &mut events);
    }
    store
}

fn decode(c: &mut Criterion) {
    let (body, _) = page();
    let mut g = c.benchmark_group("page_of_100");
    g.throughput(Throughput::Bytes(u64::try_from(body.len()).expect("small")));
    g.bench_function("serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("json"));
    });
    g.bench_function("decode_typed", |b| {
        b.iter(|| decode_records::<DeploymentLog>(black_box(&body)).expect("page"));
    });
    g.bench_function("ingest", |b| {
        let (body, env) = page();
        let mut events = Vec::new();
        b.iter_batched_ref(
            || Store::new(start(), LOOKBACK),
            |store| ingest(store, black_box(&body), &env, start(), &mut events),
            BatchSize::SmallInput,
        );
    });
    g.bench_function("ingest_again", |b| {
        // The same page seen by the next poll: every run already known.
        let (body, env) = page();
        let mut events = Vec::new();
        let mut store = Store::new(start(), LOOKBACK);
        ingest(&mut store, &body, &env, start(), &mut events);
        b.iter(|| ingest(&mut store, black_box(&body), &env, start(), &mut events));
    });
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    let store = full_store();
    let mut g = c.benchmark_group("200k_deployments");
    g.sample_size(20);
    g.bench_function("snapshot", |b| {
        b.iter(|| aggregate(black_box(&store), start()));
    });

    let clock: SharedClock = Arc::new(ManualClock::new(start()));
    let handle = SnapshotHandle::default();
    let budget = Arc::new(SlidingWindow::new(500, Duration::from_secs(60)));
    let metrics = Metrics::new(&MetricsConfig::default(), handle.clone(), budget, clock);
    for labels in store.seen_label_sets() {
        metrics.ensure_series(labels);
    }
    g.bench_function("ensure_series", |b| {
        b.iter(|| {
            for labels in store.seen_label_sets() {
                metrics.ensure_series(labels);
            }
        });
    });
    handle.publish(aggregate(&store, start()));
    g.bench_function("encode_prometheus_text", |b| {
        b.iter(|| metrics.encode(false).expect("encodes"));
    });
    g.bench_function("encode_openmetrics", |b| {
        b.iter(|| metrics.encode(true).expect("encodes"));
    });
    g.finish();
}

criterion_group!(benches, decode, snapshot);

/// The median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[runs / 2]
}

/// Ingest of a page against `Value` decoding of the same bytes, in this run.
fn ratio() {
    let (body, env) = page();
    let runs = if benchmarking() { 500 } else { 3 };
    let value = median(runs, || {
        black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).expect("json"));
    });
    let mut events = Vec::new();
    let ingested = median(runs, || {
        let mut store = Store::new(start(), LOOKBACK);
        ingest(&mut store, black_box(&body), &env, start(), &mut events);
        black_box(store);
    });
    println!(
        "page of 100 ({} bytes): serde_json::Value {:?}, decode + ingest {:?}: ratio {:.2}",
        body.len(),
        value,
        ingested,
        ingested.as_secs_f64() / value.as_secs_f64()
    );
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    ratio();
}
