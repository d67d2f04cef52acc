//! Invariants of ingest and aggregation under any order of sightings.
//!
//! Sightings of a few deployments come from polls and webhooks in any order, repeated, stale
//! (an older status after a newer one) and interleaved with the environments' baseline reads.
//! Whatever the order: the finished counter counts each deployment at most once, exactly when
//! it was seen unfinished before it was seen finished, or first seen finished after its
//! environment's baseline; and the window gauge sums to the deployments seen.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;

use super::*;

const ENVIRONMENTS: usize = 3;
const DEPLOYMENTS: usize = 8;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// One step: a sighting of deployment `d` at lifecycle stage `stage` (0 queued, 1 running,
/// 2 finished), or the baseline read of environment `env`.
#[derive(Debug, Clone, Copy)]
enum Step {
    Sighting { d: usize, stage: u8 },
    Baseline { env: usize },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..DEPLOYMENTS, 0..3_u8).prop_map(|(d, stage)| Step::Sighting { d, stage }),
        1 => (0..ENVIRONMENTS).prop_map(|env| Step::Baseline { env }),
    ]
}

fn sighting(d: usize, stage: u8) -> Observation {
    let created = ts("2026-07-01T11:00:00Z");
    let minute = |m: i64| {
        created
            .checked_add(jiff::SignedDuration::from_mins(m))
            .unwrap()
    };
    Observation {
        id: format!("d{d}"),
        environment_id: format!("e{}", d % ENVIRONMENTS),
        deployment_type: Some(
            if d.is_multiple_of(2) {
                "deploy"
            } else {
                "prPlan"
            }
            .into(),
        ),
        status: Some(["QUEUED", "IN_PROGRESS", "SUCCESS"][usize::from(stage)].into()),
        blueprint_type: Some("terraform".into()),
        trigger_name: Some("user".into()),
        created_at: Some(created),
        queued_at: Some(created),
        started_at: (stage >= 1).then(|| minute(1)),
        finished_at: (stage >= 2).then(|| minute(5)),
        updated_at: Some(minute(i64::from(stage) * 5)),
        ..Observation::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn finishes_count_once_by_observation_and_the_window_sums_to_the_runs_seen(
        steps in proptest::collection::vec(step(), 0..40),
    ) {
        // The process clock is irrelevant: put it far from env0's timestamps either way.
        let mut store = Store::new(ts("2026-07-02T00:00:00Z"), Duration::from_secs(86_400));
        let now = ts("2026-07-01T12:00:00Z");
        let mut events = Vec::new();
        let mut baselined: HashSet<usize> = HashSet::new();
        let mut seen_unfinished: HashSet<usize> = HashSet::new();
        let mut finished_first: HashMap<usize, bool> = HashMap::new();
        let mut seen: HashSet<usize> = HashSet::new();
        for step in &steps {
            match *step {
                Step::Baseline { env } => {
                    store.mark_baselined(&format!("e{env}"));
                    baselined.insert(env);
                }
                Step::Sighting { d, stage } => {
                    store.ingest(&sighting(d, stage), now, &mut events);
                    seen.insert(d);
                    if stage < 2 {
                        if !finished_first.contains_key(&d) {
                            seen_unfinished.insert(d);
                        }
                    } else {
                        finished_first.entry(d).or_insert_with(|| {
                            seen_unfinished.contains(&d)
                                || baselined.contains(&(d % ENVIRONMENTS))
                        });
                    }
                }
            }
        }
        let counted: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                Event::Finished { run, .. } => Some(&*run.deployment_id),
                _ => None,
            })
            .collect();
        let distinct: HashSet<&str> = counted.iter().copied().collect();
        prop_assert_eq!(distinct.len(), counted.len(), "counted twice: {:?}", counted);
        let want: HashSet<String> = finished_first
            .iter()
            .filter(|(_, counts)| **counts)
            .map(|(d, _)| format!("d{d}"))
            .collect();
        let got: HashSet<String> = distinct.iter().map(|s| (*s).to_owned()).collect();
        prop_assert_eq!(got, want);
        let snapshot = aggregate(&store, now);
        let window: u64 = snapshot.deployments.iter().map(|(_, n)| n).sum();
        prop_assert_eq!(window, seen.len() as u64);
    }
}
