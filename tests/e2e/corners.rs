//! The truth under env0's undocumented corners: `/metrics` equals the simulator's records
//! whichever way env0 behaves where it documents nothing (its clock, the date filter's field,
//! what moves `latestDeploymentLog`, page order).

use std::time::Duration;

use env0_exporter::simulator::{DateFilterField, LatestMovedBy, PageOrder, SimConfig};
use jiff::SignedDuration;

use super::{BRISK_LOOKBACK, SHORT_LOOKBACK, assert_exact, brisk, short};
use crate::helpers::*;

/// A small organisation for the variants: enough runs start and finish in a few polls. Read
/// with a [`BRISK_LOOKBACK`] window (see [`brisk`]): each variant is about how runs are listed,
/// dated and moved, which a shorter window shows the same.
fn small(environments: usize) -> SimConfig {
    SimConfig {
        mean_deployment_interval: Duration::from_secs(15 * 60),
        ..brisk(environments)
    }
}

/// Runs `polls` polls against `config` with a full sync every minute, asserting after the
/// backfill and after every poll that `/metrics` equals the simulator's records; returns how
/// many finishes the truth holds and whether any deployment listing took a second page.
async fn truth_holds_paged(
    config: SimConfig,
    lookback: &str,
    polls: usize,
    what: &str,
) -> (f64, bool) {
    let h = start_for_truth(config, lookback).await;
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
    truth_holds_paged(config, BRISK_LOOKBACK, polls, what)
        .await
        .0
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
    // A filter on createdAt (the simulator's default) with the latest run moved by deploys and
    // destroys only is the DeployDestroy variant of
    // `counts_are_right_whichever_types_move_the_latest_run`: the same truth after every poll.
    for field in [DateFilterField::QueuedAt, DateFilterField::StartedAt] {
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
    // About 120 runs per environment in the 8 h window: many listings take two pages. The
    // short world, not the brisk one: a run every 4 minutes queues behind hour-long approval
    // waits, and a window that holds the queues needs more runs than a page.
    let config = SimConfig {
        page_order: PageOrder::OldestFirst,
        mean_deployment_interval: Duration::from_secs(4 * 60),
        ..short(20)
    };
    let (finished, paged) = truth_holds_paged(config, SHORT_LOOKBACK, 8, "oldest first").await;
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

/// Under a validating env0, the only request refused is the one probe of
/// `includeSubEnvironments` (it then is never sent again), and no other request carries a
/// parameter outside the simulator's own list (it would have been refused too).
fn assert_only_the_probe_was_refused(h: &Harness, what: &str) {
    let requests = h.sim.requests();
    let refused: Vec<_> = requests.iter().filter(|r| r.status == 400).collect();
    assert_eq!(
        refused.len(),
        1,
        "{what}: one refusal, the probe: {refused:?}"
    );
    assert_eq!(refused[0].path, "/environments", "{what}");
    assert!(
        refused[0].query.contains("includeSubEnvironments=true"),
        "{what}: {:?}",
        refused[0]
    );
    let probes = requests
        .iter()
        .filter(|r| r.query.contains("includeSubEnvironments"))
        .count();
    assert_eq!(probes, 1, "{what}: probed once per process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_right_against_a_validating_env0_with_each_variant() {
    let variants = [
        (
            "validating, sub-environments",
            SimConfig {
                sub_environments: 4,
                ..small(60)
            },
        ),
        (
            "validating, date filter on startedAt",
            SimConfig {
                date_filter_field: DateFilterField::StartedAt,
                latest_moved_by: LatestMovedBy::DeployDestroy,
                // As in the date filter's own test: the backfill meets the evidence.
                ..small(80)
            },
        ),
        (
            "validating, pages oldest first",
            SimConfig {
                page_order: PageOrder::OldestFirst,
                ..small(60)
            },
        ),
    ];
    for (what, config) in variants {
        let config = SimConfig {
            validating_api: true,
            ..config
        };
        let h = start_for_truth(config, BRISK_LOOKBACK).await;
        assert_exact(&h, &format!("{what}: after the backfill")).await;
        for i in 1..=6 {
            h.next_poll().await;
            assert_exact(&h, &format!("{what}: after poll {i}")).await;
        }
        let finished: f64 = h.expected_finished(|_| true).values().sum();
        assert!(
            finished >= 5.0,
            "{what}: the test must see runs finish: {finished}"
        );
        assert_only_the_probe_was_refused(&h, what);
        let errors = series(&h.scrape().await, "env0_exporter_poll_errors_total");
        assert!(errors.is_empty(), "{what}: no poll failed: {errors:?}");
        h.stop().await;
    }
}

/// The exporter for the truth tests: a full sync every minute, the whole budget, and a `lookback`
/// whose old edge lies inside the simulator's history ([`BRISK_LOOKBACK`] with [`brisk`],
/// [`SHORT_LOOKBACK`] with [`short`]).
async fn start_for_truth(config: SimConfig, lookback: &str) -> Harness {
    Harness::start(
        config,
        &[
            "--lookback",
            lookback,
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
    )
    .await
}

/// How far the window's old edge may trail without a `Date` header, on these small
/// organisations: the age of the newest record env0 showed, which with a run every 15 minutes in
/// each of 60 environments (a change every few seconds) stays well under this. The test holds the
/// exporter to it.
const EDGE_LAG_BOUND: Duration = Duration::from_secs(120);

/// Without a `Date` header: finished counters and environments exact; the window exact but for
/// finished runs created within [`EDGE_LAG_BOUND`] before its old edge (env0's true time less the
/// lookback), which it may still show; and the clock estimate a lower bound within that bound.
async fn assert_exact_but_the_old_edge(h: &Harness, when: &str) {
    let samples = h
        .scrape_only(&[
            "env0_up",
            "env0_deployments_finished_total",
            "env0_environments",
            "env0_deployments",
            "env0_exporter_clock_offset_seconds",
        ])
        .await;
    assert_eq!(series(&samples, "env0_up").len(), 1, "{when}: env0_up is 1");
    super::assert_matches(
        &format!("{when}: env0_deployments_finished_total"),
        &series(&samples, "env0_deployments_finished_total"),
        &h.expected_finished(|_| true),
    );
    super::assert_matches(
        &format!("{when}: env0_environments"),
        &series(&samples, "env0_environments"),
        &h.expected_environments(),
    );
    let edge = env0_exporter::clock::sub(h.sim_now(), h.lookback);
    let exact = h.expected_window_at(edge, |_| true);
    let wide = h.expected_window_at(env0_exporter::clock::sub(edge, EDGE_LAG_BOUND), |_| true);
    let got = series(&samples, "env0_deployments");
    let keys: std::collections::BTreeSet<_> =
        exact.keys().chain(got.keys()).chain(wide.keys()).collect();
    for key in keys {
        let g = got.get(key).copied().unwrap_or(0.0);
        let lo = exact.get(key).copied().unwrap_or(0.0);
        let hi = wide.get(key).copied().unwrap_or(0.0);
        assert!(
            lo <= g && g <= hi,
            "{when}: env0_deployments {key:?} = {g}, want {lo} (or up to {hi} with runs at the old edge)"
        );
    }
    // Raw samples: `series` drops a zero, which an estimate may well be.
    let offsets: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "env0_exporter_clock_offset_seconds")
        .map(|s| (s.labels.get("source").cloned().unwrap_or_default(), s.value))
        .collect();
    assert_eq!(offsets.len(), 1, "{when}: one estimate: {offsets:?}");
    let (source, measured) = offsets[0].clone();
    assert_eq!(
        source, "records",
        "{when}: the estimate comes from the records"
    );
    #[allow(clippy::cast_precision_loss)]
    let truth = h.sim.config().clock_offset.as_millis() as f64 / 1000.0;
    assert!(
        measured <= truth && truth - measured <= EDGE_LAG_BOUND.as_secs_f64(),
        "{when}: estimated offset {measured} s, true {truth} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_right_without_a_date_header_with_env0s_clock_ahead_behind_or_equal() {
    let variants = [
        (
            10,
            "date filter on startedAt",
            SimConfig {
                date_filter_field: DateFilterField::StartedAt,
                latest_moved_by: LatestMovedBy::DeployDestroy,
                // As in the date filter's own test: the backfill meets the evidence.
                ..small(80)
            },
        ),
        (
            -10,
            "pages oldest first",
            SimConfig {
                page_order: PageOrder::OldestFirst,
                ..small(60)
            },
        ),
        (
            0,
            "a validating env0",
            SimConfig {
                validating_api: true,
                ..small(60)
            },
        ),
    ];
    for (minutes, variant, config) in variants {
        let what = format!("no Date header, env0 {minutes:+} min, {variant}");
        let config = SimConfig {
            send_date_header: false,
            clock_offset: SignedDuration::from_mins(minutes),
            ..config
        };
        let h = start_for_truth(config, BRISK_LOOKBACK).await;
        assert_exact_but_the_old_edge(&h, &format!("{what}: after the backfill")).await;
        for i in 1..=8 {
            h.next_poll().await;
            assert_exact_but_the_old_edge(&h, &format!("{what}: after poll {i}")).await;
        }
        let finished: f64 = h.expected_finished(|_| true).values().sum();
        assert!(
            finished >= 5.0,
            "{what}: the test must see runs finish: {finished}"
        );
        let estimate = h
            .scrape()
            .await
            .into_iter()
            .find(|s| s.name == "env0_exporter_clock_offset_seconds")
            .map(|s| s.value);
        eprintln!("{what}: {finished} finishes counted; estimated offset {estimate:?} s");
        let dated = h.sim.requests();
        assert!(
            dated.iter().any(|r| r.query.contains("toDate=")),
            "{what}: dated listings were made"
        );
        h.stop().await;
    }
}
