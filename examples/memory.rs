//! The store's memory in-process: fills a [`Store`] with 200,000 deployments of 10,000
//! environments the way the poller does (env0-shaped JSON pages decoded by the client's decoder,
//! turned into observations, ingested), prints the resident memory it took and the bytes per
//! record, then runs an hour of churn (new runs arriving, unfinished ones finishing, old ones
//! leaving the lookback window as the clock moves) and prints the resident memory as it goes.
//!
//! Run: `cargo run --release --example memory` (`-- --deployments 400000 --environments 20000`
//! for another size). Linux only (it reads `/proc/self/status`).

use std::time::{Duration, Instant};

use clap::Parser;
use env0_exporter::client::{DeploymentLog, decode_records};
use env0_exporter::observation::observation;
use env0_exporter::state::{Event, Observation, Store, aggregate};
use jiff::Timestamp;

#[path = "../benches/common/mod.rs"]
mod common;

#[derive(Debug, Parser)]
struct Args {
    /// Deployments in the lookback window
    #[arg(long, default_value_t = 200_000)]
    deployments: usize,
    /// Environments they belong to
    #[arg(long, default_value_t = 10_000)]
    environments: usize,
    /// Minutes of churn after the fill
    #[arg(long, default_value_t = 60)]
    minutes: u32,
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let m = kib as f64 / 1024.0;
    format!("{m:.1} MiB")
}

const LOOKBACK: Duration = Duration::from_secs(24 * 3600);
const MINUTE_MS: i64 = 60_000;

/// Decodes `body` as the client does and ingests every log as the poller does.
fn ingest_page(
    store: &mut Store,
    body: &[u8],
    environment: &str,
    now: Timestamp,
    events: &mut Vec<Event>,
    unfinished: &mut Vec<Observation>,
) {
    let page = decode_records::<DeploymentLog>(body).expect("a page");
    for log in &page.records {
        let obs = observation(log, environment);
        store.ingest(&obs, now, events);
        if obs.finished_at.is_none() && obs.status.as_deref() != Some("SKIPPED") {
            unfinished.push(obs);
        }
    }
    events.clear();
}

fn main() {
    let args = Args::parse();
    let org = common::Org::new(args.environments);
    let start: Timestamp = "2026-07-01T12:00:00Z".parse().expect("timestamp");
    let mut rng = fastrand::Rng::with_seed(42);
    let mut store = Store::new(start, LOOKBACK);
    let (before, _) = rss();

    for (env, project) in org.environments.iter().zip(&org.projects) {
        store.upsert_environment(env, Some(project), Some("ACTIVE"), Some("OK"), false);
        store.mark_baselined(env);
    }
    // Each environment's share of the window, spread evenly over the 24 hours before `start`.
    let per_env = args.deployments / args.environments;
    let window_ms = i64::try_from(LOOKBACK.as_millis()).expect("small");
    let spacing = window_ms / i64::try_from(per_env.max(1)).expect("small");
    let mut events = Vec::new();
    let mut unfinished = Vec::new();
    let fill = Instant::now();
    for (i, env) in org.environments.iter().enumerate() {
        // Environments staggered over one spacing, so the window's edge moves evenly.
        let offset = i64::try_from(i * per_env).expect("small") * spacing
            / i64::try_from(args.deployments.max(1)).expect("small");
        let newest = start.as_millisecond() - offset - 1;
        let body = common::page(&mut rng, env, per_env, newest, spacing);
        ingest_page(&mut store, &body, env, start, &mut events, &mut unfinished);
    }
    let fill_time = fill.elapsed();
    let snapshot_start = Instant::now();
    let snapshot = aggregate(&store, start);
    let snapshot_time = snapshot_start.elapsed();
    let (after, hwm) = rss();
    let tracked = store.tracked();
    let delta = after.saturating_sub(before);
    println!(
        "filled: {tracked} deployments in {} environments ({} label sets) in {:.2} s",
        args.environments,
        snapshot.deployments.len(),
        fill_time.as_secs_f64()
    );
    println!(
        "RSS {} before, {} after (peak {}): {} for the store, {} bytes per deployment",
        mib(before),
        mib(after),
        mib(hwm),
        mib(delta),
        delta * 1024 / u64::try_from(tracked.max(1)).expect("small"),
    );
    println!(
        "snapshot rebuild: {:.1} ms",
        snapshot_time.as_secs_f64() * 1e3
    );
    drop(snapshot);

    // Churn: the window's rate of new runs, each minute; unfinished runs finish ten minutes
    // after they were seen unfinished; the clock moves a minute a step and evicts.
    let per_minute = args.deployments / (24 * 60);
    let mut now = start;
    let mut pending: Vec<(Timestamp, Observation)> =
        unfinished.drain(..).map(|o| (start, o)).collect();
    println!(
        "churn: {per_minute} new deployments a minute for {} minutes",
        args.minutes
    );
    for minute in 1..=args.minutes {
        now = Timestamp::from_millisecond(now.as_millisecond() + MINUTE_MS).expect("in range");
        for _ in 0..per_minute {
            let env = &org.environments[rng.usize(0..org.environments.len())];
            let body = common::page(&mut rng, env, 1, now.as_millisecond() - 1_000, 0);
            ingest_page(&mut store, &body, env, now, &mut events, &mut unfinished);
        }
        pending.extend(unfinished.drain(..).map(|o| (now, o)));
        let due =
            Timestamp::from_millisecond(now.as_millisecond() - 10 * MINUTE_MS).expect("in range");
        pending.retain(|(seen, obs)| {
            if *seen > due {
                return true;
            }
            let done = Observation {
                status: Some("SUCCESS".into()),
                started_at: obs.started_at.or(Some(*seen)),
                finished_at: Some(now),
                updated_at: Some(now),
                ..obs.clone()
            };
            store.ingest(&done, now, &mut events);
            false
        });
        events.clear();
        store.evict(now);
        let snapshot = aggregate(&store, now);
        if minute % 10 == 0 || minute == args.minutes {
            let (rss, hwm) = rss();
            println!(
                "  +{minute:>3} min: {} deployments, {} label sets, RSS {} (peak {})",
                store.tracked(),
                snapshot.deployments.len(),
                mib(rss),
                mib(hwm)
            );
        }
    }
}
