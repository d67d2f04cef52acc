//! What polling costs at scale: re-reads of long-unfinished runs back off (and still see them
//! finish within the documented bound), full re-reads stretch to what the request budget holds
//! and say so, and no 60-second window ever exceeds the budget.

use std::time::Duration;

use env0_exporter::clock;
use env0_exporter::simulator::{RequestRecord, Simulator};
use jiff::Timestamp;

use super::sim;
use crate::helpers::*;

/// (environment, run) of every unfinished run that is not its environment's latest.
fn stuck_runs(sim: &Simulator) -> Vec<(String, String)> {
    let latest: std::collections::HashMap<String, Option<String>> = sim
        .environments()
        .into_iter()
        .map(|e| (e.id, e.latest_deployment_log_id))
        .collect();
    sim.deployments()
        .into_iter()
        .filter(|d| !is_finished(d))
        .filter(|d| {
            latest
                .get(&d.environment_id)
                .is_some_and(|l| l.as_deref() != Some(&d.id))
        })
        .map(|d| (d.environment_id, d.id))
        .collect()
}

/// The times of the reads of `environment`'s deployments among `requests`.
fn reads_of(requests: &[RequestRecord], environment: &str) -> Vec<Timestamp> {
    let path = format!("/environments/{environment}/deployments");
    requests
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.at)
        .collect()
}

fn minutes_since(start: Timestamp, t: Timestamp) -> u64 {
    clock::elapsed(start, t).as_secs() / 60
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_unfinished_run_is_reread_ever_less_often_yet_seen_finished_within_the_bound() {
    // No full re-reads: only the re-reads of unfinished runs can notice a run that is not the
    // latest finish.
    let h = Harness::start(
        sim(300),
        &[
            "--full-sync-interval",
            "0s",
            "--unfinished-reread-max-interval",
            "10m",
        ],
    )
    .await;
    // The first poll read every environment at START; from here nothing changes.
    h.sim.set_paused(true);
    let stuck = stuck_runs(&h.sim);
    let stuck_envs: std::collections::BTreeSet<&str> =
        stuck.iter().map(|(e, _)| e.as_str()).collect();
    assert!(
        stuck_envs.len() >= 3,
        "the test needs environments holding unfinished runs that are not their latest: {stuck:?}"
    );
    h.sim.clear_requests();
    for _ in 0..60 {
        h.next_poll().await;
    }
    let requests = h.sim.requests();
    // The documented back-off, in 60 s polls: the next poll, then gaps of 2, 4 and 8 polls,
    // then every 10 (the maximum): minutes 1, 3, 7, 15, 25, 35, 45, 55. Every poll would be 60.
    for env in &stuck_envs {
        let minutes: Vec<u64> = reads_of(&requests, env)
            .into_iter()
            .map(|t| minutes_since(h.started, t))
            .collect();
        assert_eq!(minutes, vec![1, 3, 7, 15, 25, 35, 45, 55], "reads of {env}");
    }
    let deployment_reads = requests
        .iter()
        .filter(|r| r.path.ends_with("/deployments") && r.path.starts_with("/environments/"))
        .count();
    assert_eq!(
        deployment_reads,
        8 * stuck_envs.len(),
        "only the environments holding such runs are read"
    );

    // Let the world move one poll at a time until one of those runs finishes, then freeze it:
    // the exporter must read that environment again within the maximum interval plus one poll.
    let mut finished = None;
    for _ in 0..600 {
        h.sim.set_paused(false);
        h.next_poll().await;
        h.sim.set_paused(true);
        let now_finished: Vec<(String, String)> = {
            let done: std::collections::HashSet<String> = h
                .sim
                .deployments()
                .into_iter()
                .filter(is_finished)
                .map(|d| d.id)
                .collect();
            stuck
                .iter()
                .filter(|(_, id)| done.contains(id))
                .cloned()
                .collect()
        };
        if let Some(first) = now_finished.into_iter().next() {
            finished = Some((first, h.now()));
            break;
        }
    }
    let ((env, run), finished_by) = finished.expect("a stuck run finished within 10 hours");
    for _ in 0..11 {
        h.next_poll().await;
    }
    let bound = clock::add(finished_by, Duration::from_secs(600 + 60));
    let seen = reads_of(&h.sim.requests(), &env)
        .into_iter()
        .any(|t| t >= finished_by && t <= bound);
    // The clock stands still during a poll and its first request moved the world: a read in
    // the poll that let the run finish saw it finished.
    assert!(
        seen,
        "{run} in {env} finished by {finished_by} but was not read again by {bound}"
    );
    h.stop().await;
}
