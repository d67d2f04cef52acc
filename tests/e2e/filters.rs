//! Deployment filters end to end: the requests carry env0's filter parameters and `/metrics`
//! equals the simulator's records of exactly the filtered set.

use std::collections::BTreeMap;

use env0_exporter::simulator::SimDeployment;

use super::{SHORT_LOOKBACK, assert_exact_for, short};
use crate::helpers::{Harness, is_probe, twin};

/// The organisation the filter tests read: a filter is a property of every listing, whatever
/// their number, so 60 environments (one page of the environment listing, about two runs
/// starting a minute) show it as well as 150.
const ENVIRONMENTS: usize = 60;

/// The query parameters of every deployment listing the simulator received (but the start-up
/// probe's, which learns how env0 lists, not what to count).
fn listing_queries(h: &Harness) -> Vec<BTreeMap<String, String>> {
    h.sim
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/environments/") && r.path.ends_with("/deployments"))
        .filter(|r| !is_probe(r))
        .map(|r| {
            url::form_urlencoded::parse(r.query.as_bytes())
                .into_owned()
                .collect()
        })
        .collect()
}

async fn run_and_compare(h: &Harness, polls: usize, keep: impl Fn(&SimDeployment) -> bool + Copy) {
    assert_exact_for(h, "after the backfill", keep).await;
    for i in 1..=polls {
        h.next_poll().await;
        assert_exact_for(h, &format!("after poll {i}"), keep).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_type_filter_is_sent_to_env0_and_only_those_types_show() {
    let h = Harness::start(
        short(ENVIRONMENTS),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--deployment-types",
            "deploy,destroy",
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
    )
    .await;
    let keep = |d: &SimDeployment| d.deployment_type == "deploy" || d.deployment_type == "destroy";
    run_and_compare(&h, 15, keep).await;
    let queries = listing_queries(&h);
    assert!(queries.len() > ENVIRONMENTS);
    for q in &queries {
        assert_eq!(
            q.get("deploymentTypes").map(String::as_str),
            Some("deploy,destroy"),
            "{q:?}"
        );
        assert!(
            !q.contains_key("statuses") && !q.contains_key("userIds"),
            "{q:?}"
        );
    }
    // The filter really removed something.
    assert!(
        h.expected_window(|_| true).values().sum::<f64>()
            > h.expected_window(keep).values().sum::<f64>()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_filter_without_in_progress_still_counts_every_matching_finish_exactly_once() {
    // Economical polling (full sync every 10 m): runs are learned of when env0 lists them in a
    // final status; each is counted once.
    let h = Harness::start(
        short(ENVIRONMENTS),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--statuses",
            "SUCCESS,FAILURE",
        ],
    )
    .await;
    let keep = |d: &SimDeployment| d.status == "SUCCESS" || d.status == "FAILURE";
    for _ in 0..30 {
        h.next_poll().await;
    }
    h.sim.set_paused(true);
    for _ in 0..11 {
        h.next_poll().await;
    }
    assert_exact_for(&h, "after a quiet full-sync interval", keep).await;
    let counted: f64 = h.expected_finished(keep).values().sum();
    assert!(
        counted >= 20.0,
        "the test must see matching runs finish: {counted}"
    );
    for q in listing_queries(&h) {
        assert_eq!(
            q.get("statuses").map(String::as_str),
            Some("SUCCESS,FAILURE"),
            "{q:?}"
        );
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_that_leave_a_status_filter_drop_out_of_the_gauges() {
    let h = Harness::start(
        short(ENVIRONMENTS),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--statuses",
            "QUEUED,IN_PROGRESS,WAITING_FOR_USER",
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
    )
    .await;
    let keep = |d: &SimDeployment| {
        ["QUEUED", "IN_PROGRESS", "WAITING_FOR_USER"].contains(&d.status.as_str())
    };
    run_and_compare(&h, 15, keep).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_filter_shows_only_the_runs_those_users_started() {
    // The simulator is deterministic: a twin tells which users exist before the test starts.
    let mut by_user: BTreeMap<String, usize> = BTreeMap::new();
    for d in twin(short(ENVIRONMENTS)).deployments() {
        *by_user.entry(d.started_by).or_default() += 1;
    }
    let mut users: Vec<(String, usize)> = by_user.into_iter().collect();
    users.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    assert!(users.len() >= 3, "{users:?}");
    let chosen = format!("{},{}", users[0].0, users[2].0);
    let h = Harness::start(
        short(ENVIRONMENTS),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--user-ids",
            &chosen,
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
    )
    .await;
    let (a, b) = (users[0].0.clone(), users[2].0.clone());
    let keep = move |d: &SimDeployment| d.started_by == a || d.started_by == b;
    // Closures that own Strings are not Copy; compare through a reference.
    let keep = &keep;
    run_and_compare(&h, 10, |d| keep(d)).await;
    for q in listing_queries(&h) {
        assert_eq!(q.get("userIds"), Some(&chosen), "{q:?}");
    }
    h.stop().await;
}
