//! The infrastructure-as-code signals and the exemplars end to end: after some polls,
//! `/metrics` equals what the simulator's records say of the runs that finished after the start,
//! approval waits equal what the test itself saw at each poll, and the `OpenMetrics` exemplars
//! name real runs with their values and times. That the reference parser (Python
//! `prometheus_client`) accepts the `OpenMetrics` output is a step of the full test command
//! (`scripts/check-metrics.sh`): it needs Python, and `cargo test` needs nothing but Rust.
//!
//! The rules are re-stated here from `docs/metrics.md`, written for the tests, never taken from
//! exporter code.

use std::collections::{BTreeMap, HashMap};

use env0_exporter::clock;
use env0_exporter::simulator::{SimConfig, SimDeployment};
use jiff::Timestamp;

use super::assert_matches;
use crate::helpers::{
    Harness, Labels, expected_label, finish_time, is_finished, labels, parse_metrics,
    parse_openmetrics_exemplars, series,
};

/// A small, busy organisation: every signal shows within a few polls. Its short history (well
/// inside the default 24 h lookback, so every run is in the window) keeps the backfill and the
/// full re-reads cheap.
fn busy_sim() -> SimConfig {
    SimConfig {
        environments: 60,
        history: std::time::Duration::from_secs(3 * 3600),
        mean_deployment_interval: std::time::Duration::from_secs(8 * 60),
        ..SimConfig::default()
    }
}

const FAILED: [&str; 3] = ["FAILURE", "TIMEOUT", "INTERNAL_FAILURE"];

fn counted(h: &Harness, d: &SimDeployment) -> bool {
    is_finished(d) && finish_time(d) > h.sim_started()
}

fn kind_and_tool(d: &SimDeployment) -> Labels {
    labels(&[
        ("deployment_type", expected_label(Some(&d.deployment_type))),
        ("iac_tool", expected_label(d.blueprint_type.as_deref())),
    ])
}

fn tool(d: &SimDeployment) -> Labels {
    labels(&[("iac_tool", expected_label(d.blueprint_type.as_deref()))])
}

fn secs(from: Timestamp, to: Timestamp) -> f64 {
    clock::elapsed(from, to).as_secs_f64()
}

/// `env0_deployment_resource_changes_total`: the plan summaries of counted runs, non-zero only.
fn expected_resources(h: &Harness, deps: &[SimDeployment]) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    for d in deps.iter().filter(|d| counted(h, d)) {
        let Some(p) = d.plan_summary else { continue };
        let actions = [
            ("added", Some(p.added)),
            ("changed", Some(p.changed)),
            ("destroyed", Some(p.destroyed)),
            ("imported", p.imported),
        ];
        for (action, n) in actions {
            if let Some(n) = n.filter(|n| *n > 0) {
                let mut l = kind_and_tool(d);
                l.insert("action".into(), action.into());
                *out.entry(l).or_insert(0.0) += f64::from(n);
            }
        }
    }
    out
}

/// `env0_drift_detections_total`: counted drift detections by result.
fn expected_drift(h: &Harness, deps: &[SimDeployment]) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    for d in deps.iter().filter(|d| counted(h, d)) {
        if d.deployment_type != "driftDetection" {
            continue;
        }
        let changes = d
            .plan_summary
            .is_some_and(|p| p.added + p.changed + p.destroyed + p.imported.unwrap_or(0) > 0);
        let result = match (d.status.as_str(), d.drift_detected) {
            ("SUCCESS", Some(true)) => "drifted",
            ("SUCCESS", None) if changes => "drifted",
            ("SUCCESS", _) => "clean",
            _ => "failed",
        };
        let mut l = tool(d);
        l.insert("result".into(), result.into());
        *out.entry(l).or_insert(0.0) += 1.0;
    }
    out
}

/// `env0_environment_recovery_duration_seconds` `_count` and `_sum` by tool: per environment,
/// its known deploys (created in the window at start, or later) that failed or succeeded, in
/// order of finish; a streak starts at a failure and ends at the next success, observed when
/// that success finished after the start.
fn expected_recoveries(h: &Harness, deps: &[SimDeployment]) -> BTreeMap<Labels, (f64, f64)> {
    let known_from = clock::sub(h.started, h.lookback);
    let mut by_env: BTreeMap<&str, Vec<&SimDeployment>> = BTreeMap::new();
    for d in deps {
        let ends = d.status == "SUCCESS" || FAILED.contains(&d.status.as_str());
        if d.deployment_type == "deploy" && ends && d.created_at >= known_from {
            by_env.entry(&d.environment_id).or_default().push(d);
        }
    }
    let mut out: BTreeMap<Labels, (f64, f64)> = BTreeMap::new();
    for runs in by_env.values_mut() {
        runs.sort_by(|a, b| (finish_time(a), &a.id).cmp(&(finish_time(b), &b.id)));
        let mut failing_since = None;
        for d in runs.iter() {
            if d.status != "SUCCESS" {
                failing_since.get_or_insert(finish_time(d));
                continue;
            }
            if let Some(since) = failing_since.take()
                && counted(h, d)
            {
                let e = out.entry(tool(d)).or_default();
                e.0 += 1.0;
                e.1 += secs(since, finish_time(d));
            }
        }
    }
    out
}

/// What the test saw of approval waits: runs seen `WAITING_FOR_USER` at one poll and in another
/// status at a later one, with the time between those polls.
#[derive(Default)]
struct Waits {
    since: HashMap<String, Timestamp>,
    ended: BTreeMap<Labels, (f64, f64)>,
}

impl Waits {
    fn poll(&mut self, deps: &[SimDeployment], now: Timestamp) {
        for d in deps {
            let waiting = d.status == "WAITING_FOR_USER";
            match (self.since.get(&d.id).copied(), waiting) {
                (None, true) => {
                    self.since.insert(d.id.clone(), now);
                }
                (Some(since), false) => {
                    self.since.remove(&d.id);
                    let e = self.ended.entry(kind_and_tool(d)).or_default();
                    e.0 += 1.0;
                    e.1 += secs(since, now);
                }
                _ => {}
            }
        }
    }
}

/// `_count` and `_sum` of a histogram, by label set (non-zero counts only).
fn histogram(samples: &[crate::helpers::Sample], name: &str) -> BTreeMap<Labels, (f64, f64)> {
    let sums = series(samples, &format!("{name}_sum"));
    series(samples, &format!("{name}_count"))
        .into_iter()
        .map(|(l, count)| {
            let sum = sums.get(&l).copied().unwrap_or(0.0);
            (l, (count, sum))
        })
        .collect()
}

fn assert_histograms(
    what: &str,
    got: &BTreeMap<Labels, (f64, f64)>,
    want: &BTreeMap<Labels, (f64, f64)>,
) {
    let counts = |m: &BTreeMap<Labels, (f64, f64)>| {
        m.iter()
            .map(|(l, (c, _))| (l.clone(), *c))
            .collect::<BTreeMap<_, _>>()
    };
    assert_matches(&format!("{what} _count"), &counts(got), &counts(want));
    for (l, (_, want_sum)) in want {
        let got_sum = got[l].1;
        assert!(
            (got_sum - want_sum).abs() < 1e-6 * want_sum.max(1.0),
            "{what} _sum {l:?}: got {got_sum}, want {want_sum}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_changes_drift_results_recoveries_and_approval_waits_equal_the_simulators_records()
{
    let h = Harness::start(
        busy_sim(),
        &[
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
    )
    .await;
    let mut waits = Waits::default();
    waits.poll(&h.sim.deployments(), h.now());
    for _ in 0..30 {
        h.next_poll().await;
        waits.poll(&h.sim.deployments(), h.now());
    }
    let deps = h.sim.deployments();
    let samples = h.scrape().await;
    assert_matches(
        "env0_deployments_finished_total",
        &series(&samples, "env0_deployments_finished_total"),
        &h.expected_finished(|_| true),
    );

    let resources = expected_resources(&h, &deps);
    assert_matches(
        "env0_deployment_resource_changes_total",
        &series(&samples, "env0_deployment_resource_changes_total"),
        &resources,
    );
    let drift = expected_drift(&h, &deps);
    assert_matches(
        "env0_drift_detections_total",
        &series(&samples, "env0_drift_detections_total"),
        &drift,
    );
    let recoveries = expected_recoveries(&h, &deps);
    assert_histograms(
        "env0_environment_recovery_duration_seconds",
        &histogram(&samples, "env0_environment_recovery_duration_seconds"),
        &recoveries,
    );
    assert_histograms(
        "env0_deployment_approval_wait_seconds",
        &histogram(&samples, "env0_deployment_approval_wait_seconds"),
        &waits.ended,
    );

    // The test must have seen each signal, else it proves nothing.
    let total = |m: &BTreeMap<Labels, (f64, f64)>| m.values().map(|v| v.0).sum::<f64>();
    let imported = resources
        .iter()
        .filter(|(l, _)| l["action"] == "imported")
        .count();
    let results: Vec<&str> = drift.keys().map(|l| l["result"].as_str()).collect();
    eprintln!(
        "signals seen: {} resource series ({imported} imported), drift results {results:?}, \
         {} recoveries, {} approval waits",
        resources.len(),
        total(&recoveries),
        total(&waits.ended),
    );
    assert!(resources.len() >= 10 && imported >= 1, "{resources:?}");
    assert!(
        results.contains(&"drifted") && results.contains(&"clean"),
        "{drift:?}"
    );
    assert!(total(&recoveries) >= 1.0, "no recovery seen");
    assert!(total(&waits.ended) >= 3.0, "{:?}", waits.ended);
    h.stop().await;
}

fn millis(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_exemplars_name_simulator_runs_with_their_values_and_times() {
    let h = Harness::start(busy_sim(), &[]).await;
    for _ in 0..8 {
        h.next_poll().await;
    }
    let http = reqwest::Client::new();
    let om = http
        .get(h.metrics_url())
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let plain = http
        .get(h.metrics_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !plain
            .lines()
            .any(|l| !l.starts_with('#') && l.contains('#')),
        "Prometheus text 0.0.4 carries no exemplar"
    );
    assert!(!parse_metrics(&plain).is_empty());

    let parsed = parse_openmetrics_exemplars(&om);
    assert!(parsed.families > 20, "{} families", parsed.families);
    let deps: HashMap<String, SimDeployment> = h
        .sim
        .deployments()
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();
    let mut per_family: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &parsed.exemplars {
        let family = e.family.as_str();
        *per_family.entry(family).or_default() += 1;
        // The spec: exemplars on histogram buckets and counters only, their label set at most
        // 128 characters (names and values).
        assert!(
            (e.family_type == "histogram" && e.name.ends_with("_bucket"))
                || (e.family_type == "counter" && e.name.ends_with("_total")),
            "an exemplar on a sample that may not carry one: {e:?}"
        );
        let label_chars: usize = e
            .exemplar_labels
            .iter()
            .map(|(k, v)| k.chars().count() + v.chars().count())
            .sum();
        assert!(label_chars <= 128, "exemplar labels too long: {e:?}");
        let ex = &e.exemplar_labels;
        let id = ex["deployment"].as_str();
        let d = deps
            .get(id)
            .unwrap_or_else(|| panic!("exemplar of a run the simulator does not have: {e:?}"));
        assert_eq!(ex["env"], d.environment_id, "{e:?}");
        assert_eq!(ex["project"], d.project_id, "{e:?}");
        let value = e.exemplar_value;
        let le = e.labels["le"].as_str();
        assert!(
            le == "+Inf" || value <= le.parse::<f64>().unwrap(),
            "exemplar above its bucket: {e:?}"
        );
        assert_eq!(
            e.labels["deployment_type"],
            expected_label(Some(&d.deployment_type)),
            "{e:?}"
        );
        assert_eq!(
            e.labels["iac_tool"],
            expected_label(d.blueprint_type.as_deref()),
            "{e:?}"
        );
        let started = d.started_at.unwrap();
        let (want, at) = match family {
            "env0_deployment_duration_seconds" => {
                assert_eq!(e.labels["status"], d.status, "{e:?}");
                let finished = d.finished_at.unwrap();
                (secs(started, finished), finished)
            }
            "env0_deployment_queue_duration_seconds" => (secs(d.queued_at, started), started),
            other => panic!("an exemplar on {other}: {e:?}"),
        };
        assert!((value - want).abs() < 1e-9, "{e:?}: want {want}");
        assert_eq!(e.exemplar_timestamp_ms, Some(millis(at)), "{e:?}");
    }
    eprintln!("exemplars per family: {per_family:?}");
    assert!(per_family.get("env0_deployment_duration_seconds") >= Some(&3));
    assert!(per_family.get("env0_deployment_queue_duration_seconds") >= Some(&3));
    h.stop().await;
}
