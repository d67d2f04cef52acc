//! Cutting the run histograms' series (`--duration-histogram-labels`,
//! `--queue-histogram-labels`): runs that differ only in a label left out are summed into one
//! series, so `_count` and `_sum` stay exact totals while the series count drops.

use std::collections::{BTreeMap, BTreeSet};

use crate::helpers::*;
use crate::{SHORT_LOOKBACK, short};

const DURATION: &str = "env0_deployment_duration_seconds";
const QUEUE: &str = "env0_deployment_queue_duration_seconds";

/// `_count` (or `_sum`) of `family` summed by the values of the labels in `by`.
fn totals(samples: &[Sample], family: &str, suffix: &str, by: &[&str]) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    for s in samples
        .iter()
        .filter(|s| s.name == format!("{family}{suffix}"))
    {
        let key: Labels = s
            .labels
            .iter()
            .filter(|(k, _)| by.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        *out.entry(key).or_insert(0.0) += s.value;
    }
    out
}

/// The label sets of `family`'s bucket series, `le` left out.
fn label_sets(samples: &[Sample], family: &str) -> BTreeSet<Labels> {
    samples
        .iter()
        .filter(|s| s.name == format!("{family}_bucket"))
        .map(|s| {
            let mut l = s.labels.clone();
            l.remove("le");
            l
        })
        .collect()
}

fn bucket_series(samples: &[Sample], family: &str) -> usize {
    samples
        .iter()
        .filter(|s| s.name == format!("{family}_bucket"))
        .count()
}

fn close(a: &BTreeMap<Labels, f64>, b: &BTreeMap<Labels, f64>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && (va - vb).abs() <= 1e-6 * va.abs().max(1.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_labels_cut_the_series_and_keep_every_total_against_the_same_world() {
    let budget = [
        "--lookback",
        SHORT_LOOKBACK,
        "--max-requests-per-minute",
        "1000",
    ];
    let default = Harness::start(short(150), &budget).await;
    let mut cut_flags = budget.to_vec();
    cut_flags.extend([
        "--duration-histogram-labels",
        "iac_tool",
        "--queue-histogram-labels",
        "",
    ]);
    let cut = Harness::start(short(150), &cut_flags).await;
    for _ in 0..12 {
        default.next_poll().await;
        cut.next_poll().await;
    }
    // Same seed, same clock times: the same world in both.
    assert_eq!(default.sim.deployments(), cut.sim.deployments());
    let (d, c) = (default.scrape().await, cut.scrape().await);

    // Runs that finished since the baseline, with a start and a finish: the simulator's count.
    let finished_with_duration = default
        .sim
        .deployments()
        .iter()
        .filter(|r| is_finished(r) && r.started_at.is_some() && r.finished_at.is_some())
        .filter(|r| finish_time(r) > default.sim_started())
        .count();
    let all = totals(&d, DURATION, "_count", &[]);
    assert!(
        all.values().sum::<f64>() >= 20.0,
        "the test must see runs finish: {all:?} ({finished_with_duration} in the simulator)"
    );

    // Duration: one series per tool, each the sum of the default run's series of that tool.
    assert_eq!(
        label_sets(&c, DURATION)
            .iter()
            .map(|l| l.keys().cloned().collect::<Vec<_>>())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([vec!["iac_tool".to_owned()]])
    );
    for suffix in ["_count", "_sum"] {
        let (want, got) = (
            totals(&d, DURATION, suffix, &["iac_tool"]),
            totals(&c, DURATION, suffix, &["iac_tool"]),
        );
        assert!(
            close(&got, &want),
            "{DURATION}{suffix}: {got:?} != {want:?}"
        );
    }
    assert_eq!(
        totals(&c, DURATION, "_count", &[]),
        all,
        "summed _count equals the default run's"
    );
    assert!(
        bucket_series(&c, DURATION) < bucket_series(&d, DURATION),
        "{} bucket series with the cut, {} without",
        bucket_series(&c, DURATION),
        bucket_series(&d, DURATION)
    );

    // Queue, no labels at all: a single series holding every start.
    assert_eq!(label_sets(&c, QUEUE), BTreeSet::from([Labels::new()]));
    for suffix in ["_count", "_sum"] {
        let (want, got) = (
            totals(&d, QUEUE, suffix, &[]),
            totals(&c, QUEUE, suffix, &[]),
        );
        assert!(close(&got, &want), "{QUEUE}{suffix}: {got:?} != {want:?}");
        assert!(want.values().sum::<f64>() > 0.0, "runs started");
    }

    // The other families are untouched.
    assert_eq!(
        series(&c, "env0_deployments_finished_total"),
        series(&d, "env0_deployments_finished_total")
    );
    default.stop().await;
    cut.stop().await;
}
