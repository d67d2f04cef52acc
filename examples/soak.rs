//! A soak: the exporter polls the simulator for many simulated hours in one process, with the
//! simulator's clock accelerated (a manual clock advanced one poll interval at a time), runs
//! starting and finishing throughout, and a fault every simulated hour or so (server errors,
//! 429s, a key refused one project, shifting pages, records without id, timestamps out of
//! order, a padded page, an object instead of a page).
//!
//! Every simulated hour it prints the records tracked, the process's RSS, its open file
//! descriptors, its threads and the tokio tasks alive; at the end it checks that, once the
//! lookback window is full, records and RSS stay flat and neither descriptors nor tasks grow.
//! It exits 1 when a check fails.
//!
//! Run: `cargo run --release --example soak -- --hours 30` (`--environments 500` for a bigger
//! organisation).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use env0_exporter::app;
use env0_exporter::clock::{ManualClock, SharedClock};
use env0_exporter::config::Cli;
use env0_exporter::simulator::{Fault, FaultKind, Malformation, SimConfig, Simulator};
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
struct Args {
    /// Simulated hours to run.
    #[arg(long, default_value_t = 30)]
    hours: u64,
    /// Simulated environments.
    #[arg(long, default_value_t = 150)]
    environments: usize,
}

/// One row of the report.
#[derive(Debug, Clone, Copy)]
struct Sample {
    hour: u64,
    polls: u64,
    tracked: usize,
    rss_kib: u64,
    fds: usize,
    threads: u64,
    tasks: usize,
}

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(name).map(str::trim).map(str::to_owned))
        })
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// The fault injected at the start of simulated hour `hour`.
fn fault_of_hour(sim: &Simulator, hour: u64) -> &'static str {
    let project = sim
        .projects()
        .first()
        .map(|p| p.0.clone())
        .unwrap_or_default();
    let ten_minutes = Duration::from_secs(600);
    match hour % 8 {
        0 => {
            sim.inject(Fault {
                path_prefix: Some("/environments".into()),
                kind: FaultKind::Status(503),
                count: 5,
            });
            "503 x5 on the environment listing (a failed poll)"
        }
        1 => {
            sim.inject(Fault {
                path_prefix: None,
                kind: FaultKind::RateLimited {
                    retry_after: Some(7),
                },
                count: 3,
            });
            "429 x3 with Retry-After"
        }
        2 => {
            sim.inject_for(
                Some("/environments/"),
                FaultKind::ForbiddenProjects(vec![project]),
                Duration::from_secs(30 * 60),
            );
            "30 min of 403 on one project's environments"
        }
        3 => {
            sim.inject_for(Some("/environments"), FaultKind::ShiftPages, ten_minutes);
            "10 min of pages shifting by one"
        }
        4 => {
            sim.inject_for(
                Some("/environments/"),
                FaultKind::Malformed(Malformation::MissingId),
                ten_minutes,
            );
            "10 min of records without id"
        }
        5 => {
            sim.inject_for(None, FaultKind::DisorderedTimestamps, ten_minutes);
            "10 min of timestamps out of order"
        }
        6 => {
            sim.inject(Fault {
                path_prefix: Some("/environments".into()),
                kind: FaultKind::Padded {
                    bytes: 8 * 1024 * 1024,
                },
                count: 1,
            });
            "one 8 MB page"
        }
        _ => {
            sim.inject(Fault {
                path_prefix: Some("/environments".into()),
                kind: FaultKind::Malformed(Malformation::ObjectInsteadOfArray),
                count: 1,
            });
            "an object instead of a page (a failed poll)"
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let clock = Arc::new(ManualClock::new(
        "2026-07-01T00:00:00Z".parse().unwrap_or_default(),
    ));
    let shared: SharedClock = clock.clone();
    let sim = Simulator::new(
        SimConfig {
            environments: args.environments,
            // Requests are not kept: a soak runs long enough for the log to matter.
            record_requests: false,
            ..SimConfig::default()
        },
        shared.clone(),
    );
    let Ok(sim_listener) = TcpListener::bind("127.0.0.1:0").await else {
        eprintln!("no loopback port");
        std::process::exit(1);
    };
    let sim_addr = sim_listener.local_addr().ok();
    let (_stop_sim, _sim_task) = app::spawn_simulator(sim.clone(), sim_listener);
    let endpoint = sim_addr.map(|a| format!("http://{a}/")).unwrap_or_default();
    let flags = ["env0-exporter", "--api-endpoint", &endpoint];
    let Ok(cli) = Cli::try_parse_from(flags) else {
        eprintln!("bad flags");
        std::process::exit(1);
    };
    let Ok(config) = cli.exporter.validate(false) else {
        eprintln!("invalid flags");
        std::process::exit(1);
    };
    let Ok(exporter) = app::build(&config, &app::sim_credentials(&sim), shared) else {
        eprintln!("cannot build the exporter");
        std::process::exit(1);
    };
    let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else {
        eprintln!("no loopback port");
        std::process::exit(1);
    };
    let running = app::start(exporter, listener);
    let mut polls = running.snapshot.subscribe_polls();
    let metrics_url = format!("http://{}/metrics", running.addr);
    let http = reqwest::Client::new();
    let runtime = tokio::runtime::Handle::current().metrics();
    let lookback_hours = config.poller.lookback.as_secs().div_ceil(3600);

    let wall = Instant::now();
    let polls_per_hour = 3600 / config.poller.poll_interval.as_secs().max(1);
    let mut samples = Vec::new();
    println!("hour  polls  tracked  rss_kib  fds  threads  tasks  fault");
    for hour in 0..=args.hours {
        let tracked = running.snapshot.load().tracked_deployments;
        // A scrape every hour, so the HTTP side is exercised too.
        if let Ok(response) = http.get(&metrics_url).send().await {
            let _ = response.bytes().await;
        }
        let sample = Sample {
            hour,
            polls: *polls.borrow(),
            tracked,
            rss_kib: status_field("VmRSS:"),
            fds: open_fds(),
            threads: status_field("Threads:"),
            tasks: runtime.num_alive_tasks(),
        };
        let fault = if hour < args.hours {
            fault_of_hour(&sim, hour)
        } else {
            ""
        };
        println!(
            "{:>4}  {:>5}  {:>7}  {:>7}  {:>3}  {:>7}  {:>5}  {fault}",
            sample.hour,
            sample.polls,
            sample.tracked,
            sample.rss_kib,
            sample.fds,
            sample.threads,
            sample.tasks
        );
        samples.push(sample);
        if hour == args.hours {
            break;
        }
        for _ in 0..polls_per_hour {
            next_poll(&clock, &mut polls, config.poller.poll_interval).await;
        }
    }
    let took = wall.elapsed();
    running.shutdown().await;
    println!(
        "{} simulated hours in {:.1} s of wall time",
        args.hours,
        took.as_secs_f64()
    );
    let failures = check(&samples, lookback_hours + 1);
    for f in &failures {
        println!("FAIL: {f}");
    }
    if failures.is_empty() {
        println!("OK: records and RSS flat once the window is full; no fd or task growth");
    } else {
        std::process::exit(1);
    }
}

/// Advances the clock one poll interval and waits for that poll; retries and back-offs wait on
/// the manual clock, so it is nudged until the poll ends.
async fn next_poll(
    clock: &ManualClock,
    polls: &mut tokio::sync::watch::Receiver<u64>,
    interval: Duration,
) {
    let before = *polls.borrow();
    clock.advance(interval);
    loop {
        let done =
            tokio::time::timeout(Duration::from_millis(200), polls.wait_for(|p| *p > before)).await;
        if matches!(done, Ok(Ok(_))) {
            return;
        }
        clock.advance(Duration::from_secs(5));
    }
}

/// The checks, over the hours from `full` (the lookback window is full) on.
fn check(samples: &[Sample], full: u64) -> Vec<String> {
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.hour >= full).collect();
    let mut failures = Vec::new();
    let (Some(first), Some(last)) = (steady.first(), steady.last()) else {
        return vec![format!(
            "run at least {} hours to see the window full",
            full + 1
        )];
    };
    let spread = |f: fn(&Sample) -> u64| {
        let values: Vec<u64> = steady.iter().map(|s| f(s)).collect();
        let (min, max) = (
            values.iter().copied().min().unwrap_or(0),
            values.iter().copied().max().unwrap_or(0),
        );
        (min, max)
    };
    let (min, max) = spread(|s| s.tracked as u64);
    // Runs come and go at random: a flat window still moves a little.
    if max > min + min / 4 {
        failures.push(format!("tracked records moved from {min} to {max}"));
    }
    // RSS: allocator noise, but no trend: the last hour within 10% (and 8 MiB) of the first.
    if last.rss_kib > first.rss_kib + (first.rss_kib / 10).max(8 * 1024) {
        failures.push(format!(
            "RSS grew from {} KiB to {} KiB once the window was full",
            first.rss_kib, last.rss_kib
        ));
    }
    if last.fds > first.fds + 2 {
        failures.push(format!("open fds grew from {} to {}", first.fds, last.fds));
    }
    if last.tasks > first.tasks + 2 {
        failures.push(format!(
            "tokio tasks grew from {} to {}",
            first.tasks, last.tasks
        ));
    }
    if last.threads > first.threads + 2 {
        failures.push(format!(
            "threads grew from {} to {}",
            first.threads, last.threads
        ));
    }
    failures
}
