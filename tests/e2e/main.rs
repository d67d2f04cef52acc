//! End-to-end: the real exporter on a loopback port polls the simulator over HTTP; `/metrics`
//! must equal the simulator's own records.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

#[path = "../common/mod.rs"]
mod common;
mod corners;
mod cost;
mod faults;
mod filters;
mod helpers;
mod probe;
mod restart;
mod secrets;
mod security;
mod series;
mod shards;
mod signals;
mod views;
mod webhooks;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use env0_exporter::simulator::{Fault, FaultKind, SimConfig, SimDeployment};
use helpers::*;

pub(crate) fn sim(environments: usize) -> SimConfig {
    SimConfig {
        environments,
        mean_deployment_interval: Duration::from_secs(30 * 60),
        ..SimConfig::default()
    }
}

/// The lookback of the tests that read a short window ([`short`]): eight hours.
pub(crate) const SHORT_LOOKBACK: &str = "8h";

/// [`sim`] with ten hours of history, for an exporter reading a [`SHORT_LOOKBACK`] window: runs
/// start, finish and leave the window at the same pace as in [`sim`], and some of the history
/// lies outside the window. 8 h, not less: approval waits last up to 6 h (and the queue behind
/// them), and an unfinished run older than the window at the backfill is outside what the
/// exporter promises to know. The cost of the end-to-end suite is nearly all JSON of the runs in
/// the windows read.
pub(crate) fn short(environments: usize) -> SimConfig {
    SimConfig {
        history: Duration::from_secs(10 * 3600),
        ..sim(environments)
    }
}

/// The lookback of the tests that read a brisk world ([`brisk`]): two hours.
pub(crate) const BRISK_LOOKBACK: &str = "2h";

/// [`short`] four times as quick (queues, runs and approval waits last a quarter as long: at
/// most 1.5 h) with four hours of history, for an exporter reading a [`BRISK_LOOKBACK`] window:
/// the same runs start, finish and leave the window, and a full read carries a quarter of the
/// runs. For the truth tests that re-read every environment at every poll; a test whose property
/// needs runs held unfinished for hours, or more runs than a page in a window, stays on [`short`].
pub(crate) fn brisk(environments: usize) -> SimConfig {
    SimConfig {
        history: Duration::from_secs(4 * 3600),
        time_scale: 0.25,
        ..sim(environments)
    }
}

pub(crate) fn assert_matches(
    label: &str,
    got: &BTreeMap<Labels, f64>,
    want: &BTreeMap<Labels, f64>,
) {
    if got != want {
        let mut diff = String::new();
        for (k, v) in want {
            let g = got.get(k).copied().unwrap_or(0.0);
            if (g - v).abs() > f64::EPSILON {
                let _ = writeln!(diff, "  {k:?}: got {g}, want {v}");
            }
        }
        for (k, g) in got {
            if !want.contains_key(k) {
                let _ = writeln!(diff, "  {k:?}: got {g}, want 0");
            }
        }
        if diff.is_empty() {
            let _ = writeln!(diff, "  got {got:?}\n  want {want:?}");
        }
        panic!("{label} differs from the simulator's records:\n{diff}");
    }
}

async fn assert_exact(h: &Harness, when: &str) {
    assert_exact_for(h, when, |_| true).await;
}

/// `/metrics` equals the simulator's records of the deployments `keep` selects.
async fn assert_exact_for(h: &Harness, when: &str, keep: impl Fn(&SimDeployment) -> bool + Copy) {
    let samples = h
        .scrape_only(&[
            "env0_up",
            "env0_deployments",
            "env0_deployments_finished_total",
            "env0_environments",
        ])
        .await;
    assert_eq!(series(&samples, "env0_up").len(), 1, "{when}: env0_up is 1");
    assert_matches(
        &format!("{when}: env0_deployments"),
        &series(&samples, "env0_deployments"),
        &h.expected_window(keep),
    );
    assert_matches(
        &format!("{when}: env0_deployments_finished_total"),
        &series(&samples, "env0_deployments_finished_total"),
        &h.expected_finished(keep),
    );
    assert_matches(
        &format!("{when}: env0_environments"),
        &series(&samples, "env0_environments"),
        &h.expected_environments(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_equal_the_simulators_records_after_every_poll_while_runs_start_and_finish() {
    let h = Harness::start(
        brisk(60),
        &[
            "--lookback",
            BRISK_LOOKBACK,
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
    )
    .await;
    assert_exact(&h, "after the backfill").await;
    let mut finished_seen = 0.0;
    for i in 1..=20 {
        h.next_poll().await;
        assert_exact(&h, &format!("after poll {i}")).await;
        finished_seen = h.expected_finished(|_| true).values().sum();
    }
    assert!(
        finished_seen >= 20.0,
        "the test must see runs finish: {finished_seen}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn economical_polling_catches_up_exactly_once_the_full_sync_interval_has_passed() {
    // Default full sync (10 m): runs that do not move latestDeploymentLog are found late, but
    // found, and every finished run is counted exactly once.
    let h = Harness::start(short(60), &["--lookback", SHORT_LOOKBACK]).await;
    for _ in 0..40 {
        h.next_poll().await;
    }
    h.sim.set_paused(true);
    for _ in 0..11 {
        h.next_poll().await;
    }
    assert_exact(&h, "after a quiet full-sync interval").await;
    let finished: f64 = h.expected_finished(|_| true).values().sum();
    assert!(
        finished >= 30.0,
        "the test must see runs finish: {finished}"
    );
    h.stop().await;
}

async fn quiet_poll_costs(environments: usize) -> (Vec<usize>, usize, usize) {
    let h = Harness::start(
        short(environments),
        &["--lookback", SHORT_LOOKBACK, "--full-sync-interval", "0s"],
    )
    .await;
    h.sim.set_paused(true);
    h.next_poll().await; // settle what changed during the backfill poll
    let mut holding: Vec<String> = held_runs(&h.sim, &h.sim.deployments())
        .into_iter()
        .map(|d| d.environment_id.clone())
        .collect();
    holding.sort();
    holding.dedup();
    let mut costs = Vec::new();
    for _ in 0..5 {
        h.sim.clear_requests();
        h.next_poll().await;
        costs.push(h.sim.requests().len());
    }
    let bound = environments.div_ceil(100) + 2 + holding.len();
    h.stop().await;
    (costs, bound, holding.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_with_nothing_changing_costs_the_listing_plus_one_per_environment_holding_an_older_unfinished_run()
 {
    for environments in [150, 200] {
        let (costs, bound, holding) = quiet_poll_costs(environments).await;
        eprintln!(
            "{environments} environments: quiet polls cost {costs:?} requests (bound {bound}, {holding} holding unfinished non-latest runs)"
        );
        for cost in &costs {
            assert!(*cost <= bound, "{environments} envs: {cost} > {bound}");
            // Projects and every environment page are always read.
            assert!(
                *cost > environments.div_ceil(100),
                "{environments} envs: {cost}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_api_keeps_the_last_data_sets_env0_up_to_zero_and_recovers() {
    let h = Harness::start(
        short(120),
        &["--lookback", SHORT_LOOKBACK, "--full-sync-interval", "0s"],
    )
    .await;
    h.sim.set_paused(true);
    h.next_poll().await;
    let before = h.scrape().await;
    let window_before = series(&before, "env0_deployments");
    assert!(!window_before.is_empty());

    // Server errors on every attempt of one poll's environment listing: the first try and
    // all retries (the client's default), then env0 is healthy again.
    let attempts = 1 + env0_exporter::client::DEFAULT_MAX_RETRIES;
    h.sim.inject(Fault {
        path_prefix: Some("/environments".into()),
        kind: FaultKind::Status(503),
        count: attempts,
    });
    let n = h.polls() + 1;
    h.nudge_until_poll(n, Duration::from_secs(5)).await;
    let during = h.scrape().await;
    assert_eq!(series(&during, "env0_up").len(), 0, "env0_up is 0");
    assert_eq!(
        series(&during, "env0_deployments"),
        window_before,
        "data kept"
    );
    let errors = series(&during, "env0_exporter_poll_errors_total");
    assert!(
        errors
            .keys()
            .any(|l| l.get("reason").map(String::as_str) == Some("server_error")),
        "{errors:?}"
    );
    let codes = series(&during, "env0_exporter_api_requests_total");
    let code_503 = codes
        .iter()
        .find(|(l, _)| l.get("code").map(String::as_str) == Some("503"))
        .map(|(_, v)| *v);
    assert_eq!(code_503, Some(f64::from(attempts)), "{codes:?}");

    h.next_poll().await;
    assert_exact(&h, "after env0 recovered").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_an_auth_error_without_retries_and_the_next_good_poll_recovers() {
    let h = Harness::start(
        short(120),
        &["--lookback", SHORT_LOOKBACK, "--full-sync-interval", "0s"],
    )
    .await;
    h.sim.set_paused(true);
    h.sim.inject(Fault {
        path_prefix: None,
        kind: FaultKind::Unauthorized,
        count: 1,
    });
    h.sim.clear_requests();
    h.next_poll().await;
    assert_eq!(h.sim.requests().len(), 1, "401 is not retried");
    let samples = h.scrape().await;
    assert_eq!(series(&samples, "env0_up").len(), 0);
    let auth = labels(&[("reason", "auth".into())]);
    assert_eq!(
        series(&samples, "env0_exporter_poll_errors_total").get(&auth),
        Some(&1.0)
    );
    h.next_poll().await;
    assert_exact(&h, "after recovering").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_larger_than_the_budget_continues_where_it_stopped_and_never_exceeds_it() {
    let h = Harness::start(
        short(150),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--max-requests-per-minute",
            "40",
            "--full-sync-interval",
            "0s",
        ],
    )
    .await;
    h.sim.set_paused(true);
    let mut polls = 1;
    loop {
        let pending = h.scrape().await;
        let left = series(&pending, "env0_exporter_backfill_pending_environments");
        if left.is_empty() {
            break;
        }
        assert!(polls < 10, "backfill did not finish: {left:?}");
        h.next_poll().await;
        polls += 1;
    }
    assert!(
        polls >= 4,
        "150 environments cannot be read with 40 requests a minute in fewer than 4 polls, took {polls}"
    );
    // No 60-second window ever held more than 40 requests.
    let times: Vec<_> = h.sim.requests().iter().map(|r| r.at).collect();
    for t in &times {
        let end = env0_exporter::clock::add(*t, Duration::from_secs(60));
        let n = times.iter().filter(|u| *u >= t && *u < &end).count();
        assert!(n <= 40, "{n} requests in the minute from {t}");
    }
    h.next_poll().await;
    assert_exact(&h, "after the paced backfill").await;
    h.stop().await;
}
