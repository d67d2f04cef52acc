//! Measures what polling costs: backfill time and requests for the simulator's default
//! organisation, and requests per steady-state poll (live and quiet).
//!
//! Run: `cargo run --release --example measure` (add `-- --environments 1000` for another size,
//! `-- --full-sync-interval 0s` to leave out the periodic full re-reads).
//! Backfill is measured twice: in wall-clock time against the simulator over loopback HTTP, and in
//! simulated time (a manual clock) where the request budget, not the network, sets the pace.
//! Last, quiet polls with environments holding stuck unfinished runs that are not their latest,
//! with the re-reads backing off (`--unfinished-reread-max-interval`) and re-read every poll.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use clap::Parser;
use env0_exporter::app;
use env0_exporter::clock::{self, Clock, ManualClock, SharedClock, SystemClock};
use env0_exporter::simulator::{SimConfig, Simulator};

#[derive(Debug, Parser)]
struct Args {
    /// Simulated environments (default: the simulator's default organisation)
    #[arg(long)]
    environments: Option<usize>,
    /// Steady-state polls to measure
    #[arg(long, default_value_t = 30)]
    polls: usize,
    /// The exporter's request budget per minute
    #[arg(long, default_value_t = 500)]
    max_requests_per_minute: u32,
    /// The exporter's full re-read interval (0s = off)
    #[arg(long, default_value = "10m")]
    full_sync_interval: String,
    /// The exporter's longest gap between re-reads of unfinished non-latest runs
    #[arg(long, default_value = "10m")]
    unfinished_reread_max_interval: String,
}

async fn setup(
    clock: SharedClock,
    environments: Option<usize>,
    flags: &[&str],
) -> (Simulator, app::Exporter) {
    let mut sim_config = SimConfig::default();
    if let Some(e) = environments {
        sim_config.environments = e;
    }
    let sim = Simulator::new(sim_config, clock.clone());
    let exporter = common::exporter_against(&sim, clock, flags).await;
    (sim, exporter)
}

fn summary(costs: &[usize]) -> String {
    let mut sorted = costs.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return "no polls".into();
    }
    let sum: usize = sorted.iter().sum();
    #[allow(clippy::cast_precision_loss)]
    let mean = sum as f64 / sorted.len() as f64;
    format!(
        "min {} / median {} / mean {mean:.1} / max {} requests",
        sorted[0],
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    )
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let budget = args.max_requests_per_minute.to_string();
    let flags = [
        "--max-requests-per-minute",
        budget.as_str(),
        "--full-sync-interval",
        args.full_sync_interval.as_str(),
        "--unfinished-reread-max-interval",
        args.unfinished_reread_max_interval.as_str(),
    ];
    let sync = &args.full_sync_interval;

    // 1. Backfill in wall-clock time over loopback HTTP.
    let (sim, mut exporter) = setup(Arc::new(SystemClock), args.environments, &flags).await;
    let environments = sim.environments().len();
    let t = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        exporter.poller.poll(None).await;
        if exporter.snapshot.load().health.backfill_pending == 0 {
            break;
        }
    }
    let wall = t.elapsed();
    println!(
        "organisation: {environments} environments, {} deployments in the simulator",
        sim.deployments().len()
    );
    println!(
        "backfill (wall clock, loopback HTTP, budget {budget}/min): {:.2} s, {} requests, {polls} poll(s), {} deployments tracked",
        wall.as_secs_f64(),
        sim.requests().len(),
        exporter.poller.store().tracked()
    );

    // 2. Backfill and steady polls in simulated time: the budget sets the pace.
    let start = "2026-07-01T12:00:00Z".parse().expect("timestamp");
    let manual = Arc::new(ManualClock::new(start));
    let shared: SharedClock = manual.clone();
    let interval = Duration::from_secs(60);
    let (sim, mut exporter) = setup(shared, args.environments, &flags).await;
    let mut backfill_polls = 0;
    loop {
        backfill_polls += 1;
        let deadline = clock::add(
            manual.now(),
            interval.saturating_sub(Duration::from_millis(1)),
        );
        exporter.poller.poll(Some(deadline)).await;
        if exporter.snapshot.load().health.backfill_pending == 0 {
            break;
        }
        manual.advance(interval);
    }
    println!(
        "backfill (simulated time, budget {budget}/min, 60 s polls): done in poll {backfill_polls}, {} requests",
        sim.requests().len()
    );

    let mut live = Vec::new();
    for _ in 0..args.polls {
        manual.advance(interval);
        sim.clear_requests();
        let deadline = clock::add(
            manual.now(),
            interval.saturating_sub(Duration::from_millis(1)),
        );
        exporter.poller.poll(Some(deadline)).await;
        live.push(sim.requests().len());
    }
    println!(
        "steady polls, live organisation, full sync every {sync}: {}",
        summary(&live)
    );

    sim.set_paused(true);
    manual.advance(interval);
    exporter.poller.poll(None).await;
    let mut quiet = Vec::new();
    for _ in 0..args.polls {
        manual.advance(interval);
        sim.clear_requests();
        exporter.poller.poll(None).await;
        quiet.push(sim.requests().len());
    }
    println!(
        "steady polls, nothing changing, full sync every {sync}: {} (listing alone: {} requests)",
        summary(&quiet),
        environments.div_ceil(100) + 1 + usize::from(environments % 100 == 0)
    );

    report_stuck(&args, &budget, environments).await;
}

/// Quiet polls with stuck runs, their re-reads backing off and re-read every poll.
async fn report_stuck(args: &Args, budget: &str, environments: usize) {
    // 3. Stuck runs: the world frozen with runs that are not their environment's latest still
    //    unfinished; without full re-reads, only the re-reads of those runs cost anything.
    let mut stuck = Vec::new();
    for max in [args.unfinished_reread_max_interval.as_str(), "60s"] {
        let flags = [
            "--max-requests-per-minute",
            budget,
            "--full-sync-interval",
            "0s",
            "--unfinished-reread-max-interval",
            max,
        ];
        stuck.push(stuck_costs(args.environments, args.polls, &flags).await);
    }
    println!(
        "steady polls, nothing changing, full sync off, {} of {environments} environments holding stuck unfinished non-latest runs, over {} polls: re-reads backing off to {}: {}",
        stuck[0].1,
        args.polls,
        args.unfinished_reread_max_interval,
        summary(&stuck[0].0),
    );
    println!(
        "steady polls, nothing changing, full sync off, {} of {environments} environments holding stuck unfinished non-latest runs, over {} polls: re-read every poll: {}",
        stuck[1].1,
        args.polls,
        summary(&stuck[1].0)
    );
}

/// Environments of `sim` holding an unfinished run that is not their latest.
fn holding_environments(sim: &Simulator) -> usize {
    let latest: std::collections::HashMap<String, Option<String>> = sim
        .environments()
        .into_iter()
        .map(|e| (e.id, e.latest_deployment_log_id))
        .collect();
    let mut envs = std::collections::HashSet::new();
    for d in sim.deployments() {
        let open = !env0_exporter::state::FINISHED_STATUSES.contains(&d.status.as_str());
        if open
            && latest
                .get(&d.environment_id)
                .is_some_and(|l| l.as_deref() != Some(&d.id))
        {
            envs.insert(d.environment_id);
        }
    }
    envs.len()
}

/// Requests per quiet poll (60 s apart, simulated time) after a backfill and ten live polls,
/// the world then frozen; and the environments holding stuck runs.
async fn stuck_costs(
    environments: Option<usize>,
    polls: usize,
    flags: &[&str],
) -> (Vec<usize>, usize) {
    let start = "2026-07-01T12:00:00Z".parse().expect("timestamp");
    let manual = Arc::new(ManualClock::new(start));
    let shared: SharedClock = manual.clone();
    let interval = Duration::from_secs(60);
    let (sim, mut exporter) = setup(shared, environments, flags).await;
    let deadline = |now| clock::add(now, interval.saturating_sub(Duration::from_millis(1)));
    loop {
        exporter.poller.poll(Some(deadline(manual.now()))).await;
        if exporter.snapshot.load().health.backfill_pending == 0 {
            break;
        }
        manual.advance(interval);
    }
    for _ in 0..10 {
        manual.advance(interval);
        exporter.poller.poll(Some(deadline(manual.now()))).await;
    }
    sim.set_paused(true);
    let holding = holding_environments(&sim);
    let mut costs = Vec::new();
    for _ in 0..polls {
        manual.advance(interval);
        sim.clear_requests();
        exporter.poller.poll(Some(deadline(manual.now()))).await;
        costs.push(sim.requests().len());
    }
    (costs, holding)
}
