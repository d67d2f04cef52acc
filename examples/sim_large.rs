//! Measures the simulator at the large-organisation preset (`--sim-scale large`): the time to
//! generate its world, its shape counted through the public API, the memory it holds, and the
//! requests per second it serves for `GET /environments/{id}/deployments` and
//! `GET /environments` pages over loopback HTTP.
//!
//! Run: `cargo run --release --example sim_large` (`-- --seconds 20 --clients 16` to change the
//! load). The load generator runs in the same process, so the memory figure is taken before it
//! starts; `env0-exporter simulate --sim-scale large` gives the simulator's own in a process of
//! its own.

#![allow(
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::too_many_lines
)] // a measuring tool, not the product

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use env0_exporter::app;
use env0_exporter::clock::{SharedClock, SystemClock};
use env0_exporter::simulator::{SimConfig, Simulator};
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
struct Args {
    /// Seconds of load per route
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients
    #[arg(long, default_value_t = 8)]
    clients: usize,
}

/// `VmRSS` and `VmHWM` of this process, in MiB (Linux).
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or_else(|| "?".to_owned(), |kb| format!("{} MiB", kb / 1024))
    };
    format!("VmRSS {}, peak {}", field("VmRSS:"), field("VmHWM:"))
}

/// Sends `GET base + path(i)` from `clients` tasks for `seconds`; returns requests per second.
async fn load(
    base: &str,
    clients: usize,
    seconds: u64,
    path: Arc<dyn Fn(u64) -> String + Send + Sync>,
) -> f64 {
    let client = reqwest::Client::new();
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients as u64)
        .map(|c| {
            let (client, base, done, failed, path) = (
                client.clone(),
                base.to_owned(),
                done.clone(),
                failed.clone(),
                path.clone(),
            );
            tokio::spawn(async move {
                let mut i = c * 7919;
                while Instant::now() < until {
                    i += 1;
                    let answer = client
                        .get(format!("{base}{}", path(i)))
                        .basic_auth("demo-key", Some("demo-secret"))
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let failed = failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "{failed} requests failed");
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let clock: SharedClock = Arc::new(SystemClock);
    let config = SimConfig {
        record_requests: false,
        // The load is one client, far past env0's 1000 a minute per path: measure the serving.
        rate_limit_per_minute: u32::MAX,
        ..SimConfig::large()
    };
    let t = Instant::now();
    let sim = Simulator::new(config, clock);
    let generated = t.elapsed();
    println!(
        "generated 10,000 environments with 25 h of history in {:.2} s; {}",
        generated.as_secs_f64(),
        memory()
    );

    let now = sim.now();
    let day_ago = env0_exporter::clock::sub(now, Duration::from_secs(24 * 3600));
    let hour_ago = env0_exporter::clock::sub(now, Duration::from_secs(3600));
    let two_hours_ago = env0_exporter::clock::sub(now, Duration::from_secs(2 * 3600));
    let envs = sim.environments();
    let latest: HashSet<String> = envs
        .iter()
        .filter_map(|e| e.latest_deployment_log_id.clone())
        .collect();
    let deps = sim.deployments();
    let unfinished = |d: &&env0_exporter::simulator::SimDeployment| {
        !matches!(
            d.status.as_str(),
            "SUCCESS"
                | "FAILURE"
                | "TIMEOUT"
                | "INTERNAL_FAILURE"
                | "CANCELLED"
                | "ABORTED"
                | "SKIPPED"
                | "NEVER_DEPLOYED"
        )
    };
    println!(
        "{} environments in {} projects; {} deployments held, {} created in the last 24 h; \
         {} unfinished and not their environment's latest, created over 1 h ago; \
         {} WAITING_FOR_USER for over 2 h; {} prPlan and {} driftDetection in 24 h",
        envs.len(),
        sim.projects().len(),
        deps.len(),
        deps.iter().filter(|d| d.created_at >= day_ago).count(),
        deps.iter()
            .filter(unfinished)
            .filter(|d| !latest.contains(&d.id) && d.created_at < hour_ago)
            .count(),
        deps.iter()
            .filter(|d| d.status == "WAITING_FOR_USER" && d.updated_at < two_hours_ago)
            .count(),
        deps.iter()
            .filter(|d| d.deployment_type == "prPlan" && d.created_at >= day_ago)
            .count(),
        deps.iter()
            .filter(|d| d.deployment_type == "driftDetection" && d.created_at >= day_ago)
            .count(),
    );
    let org = sim.organization_id();
    let ids: Arc<Vec<String>> = Arc::new(envs.into_iter().map(|e| e.id).collect());
    drop(deps);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, _task) = app::spawn_simulator(sim.clone(), listener);

    let from = day_ago.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let to = now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let list_ids = ids.clone();
    let rps = load(
        &base,
        args.clients,
        args.seconds,
        Arc::new(move |i| {
            let id = &list_ids[usize::try_from(i).unwrap() % list_ids.len()];
            format!("/environments/{id}/deployments?limit=100&fromDate={from}&toDate={to}")
        }),
    )
    .await;
    println!(
        "GET /environments/{{id}}/deployments (24 h window, up to 100 a page): {rps:.0} requests/s \
         with {} clients",
        args.clients
    );
    let rps = load(
        &base,
        args.clients,
        args.seconds,
        Arc::new(move |i| {
            format!(
                "/environments?organizationId={org}&limit=100&offset={}",
                (i % 100) * 100
            )
        }),
    )
    .await;
    println!(
        "GET /environments (pages of 100 at any offset): {rps:.0} requests/s with {} clients",
        args.clients
    );
    println!("after the load: {}", memory());
    let _ = stop.send(());
}
