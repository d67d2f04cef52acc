//! The truth under env0's undocumented corners: `/metrics` equals the simulator's records
//! whichever way env0 behaves where it documents nothing (its clock, the date filter's field,
//! what moves `latestDeploymentLog`, page order).

use std::time::Duration;

use env0_exporter::simulator::{DateFilterField, LatestMovedBy, PageOrder, SimConfig};
use jiff::SignedDuration;

use super::{SHORT_LOOKBACK, assert_exact, short};
use crate::helpers::*;

/// A small organisation for the variants: enough runs start and finish in a few polls. Read
/// with a [`SHORT_LOOKBACK`] window (see [`short`]): each variant is about how runs are listed,
/// dated and moved, which a shorter window shows the same.
fn small(environments: usize) -> SimConfig {
    SimConfig {
        mean_deployment_interval: Duration::from_secs(15 * 60),
        ..short(environments)
    }
}

/// Runs `polls` polls against `config` with a full sync every minute, asserting after the
/// backfill and after every poll that `/metrics` equals the simulator's records; returns how
/// many finishes the truth holds and whether any deployment listing took a second page.
async fn truth_holds_paged(config: SimConfig, polls: usize, what: &str) -> (f64, bool) {
    let h = Harness::start(
        config,
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
    )
    .await;
    assert_exact(&h, &format!("{what}: after the backfill")).await;
    for i in 1..=polls {
        h.next_poll().await;
        assert_exact(&h, &format!("{what}: after poll {i}")).await;
    }
    let finished: f64 = h.expected_finished(|_| true).values().sum();
    let offset = series(&h.scrape().await, "env0_exporter_clock_offset_seconds");
    let measured = offset.values().next().copied().unwrap_or(0.0);
    #[allow(clippy::cast_precision_loss)] // minutes of offset
    let want = h.sim.config().clock_offset.as_secs() as f64;
    assert!(
        (measured - want).abs() < f64::EPSILON,
        "{what}: clock offset {measured}, want {want}"
    );
    eprintln!("{what}: {finished} finishes counted over {polls} polls");
    let paged = h
        .sim
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/deployments") && r.query.contains("offset=100"));
    h.stop().await;
    (finished, paged)
}

/// [`truth_holds_paged`], for the finishes.
async fn truth_holds(config: SimConfig, polls: usize, what: &str) -> f64 {
    truth_holds_paged(config, polls, what).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_right_with_env0s_clock_ten_minutes_ahead_of_ours_or_behind() {
    for minutes in [10, -10] {
        let config = SimConfig {
            clock_offset: SignedDuration::from_mins(minutes),
            ..small(40)
        };
        let finished = truth_holds(config, 12, &format!("env0 {minutes:+} min")).await;
        assert!(
            finished >= 10.0,
            "the test must see runs finish: {finished}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_right_whichever_timestamp_the_date_filter_uses() {
    for field in [
        DateFilterField::CreatedAt,
        DateFilterField::QueuedAt,
        DateFilterField::StartedAt,
    ] {
        let config = SimConfig {
            date_filter_field: field,
            // Plans and drift detections queue behind others without moving the latest run.
            latest_moved_by: LatestMovedBy::DeployDestroy,
            ..small(80)
        };
        let finished = truth_holds(config, 8, &format!("date filter on {field:?}")).await;
        assert!(finished >= 5.0, "the test must see runs finish: {finished}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_right_whichever_types_move_the_latest_run() {
    for moved_by in [LatestMovedBy::Every, LatestMovedBy::DeployDestroy] {
        let config = SimConfig {
            latest_moved_by: moved_by,
            ..small(40)
        };
        let finished = truth_holds(config, 8, &format!("latest moved by {moved_by:?}")).await;
        assert!(finished >= 5.0, "the test must see runs finish: {finished}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_right_with_pages_oldest_first() {
    // About 120 runs per environment in the 8 h window: many listings take two pages.
    let config = SimConfig {
        page_order: PageOrder::OldestFirst,
        mean_deployment_interval: Duration::from_secs(4 * 60),
        ..small(20)
    };
    let (finished, paged) = truth_holds_paged(config, 8, "oldest first").await;
    assert!(finished >= 5.0, "the test must see runs finish: {finished}");
    assert!(paged, "some listing must take more than one page");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_sub_environments_runs_count_whatever_the_listings_default() {
    for listed_by_default in [false, true] {
        let config = SimConfig {
            sub_environments: 4,
            sub_environments_listed_by_default: listed_by_default,
            ..small(30)
        };
        let finished = truth_holds(
            config,
            6,
            &format!("sub-environments listed by default: {listed_by_default}"),
        )
        .await;
        assert!(finished >= 5.0, "the test must see runs finish: {finished}");
    }
}
