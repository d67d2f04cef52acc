//! The opt-in views end to end: the `project` label and its series budget, the project filters
//! (fewer requests, not only fewer series) and the per-environment view, each against the
//! simulator's own records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use env0_exporter::simulator::SimDeployment;

use super::{SHORT_LOOKBACK, assert_matches, short};
use crate::helpers::{
    Harness, Labels, deployment_labels, expected_label, is_finished, labels, series, twin,
};

/// Project id → name, as the simulator holds them.
fn project_names(h: &Harness) -> HashMap<String, String> {
    h.sim.projects().into_iter().collect()
}

/// The simulator's truth for `env0_deployments`, with `project` set by `project_of`.
fn expected_window_by_project(
    h: &Harness,
    keep: impl Fn(&SimDeployment) -> bool,
    project_of: impl Fn(&SimDeployment) -> String,
) -> BTreeMap<Labels, f64> {
    let cutoff = env0_exporter::clock::sub(h.now(), h.lookback);
    let mut out = BTreeMap::new();
    for d in h.sim.deployments() {
        if !keep(&d) || (is_finished(&d) && d.created_at < cutoff) {
            continue;
        }
        let mut l = deployment_labels(&d, true);
        l.insert("project".into(), project_of(&d));
        *out.entry(l).or_insert(0.0) += 1.0;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_label_is_each_deployments_project_name() {
    let h = Harness::start(
        short(150),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--project-label",
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
    )
    .await;
    let names = project_names(&h);
    for poll in 0..3 {
        let samples = h.scrape().await;
        assert_matches(
            &format!("poll {poll}: env0_deployments by project"),
            &series(&samples, "env0_deployments"),
            &expected_window_by_project(&h, |_| true, |d| names[&d.project_id].clone()),
        );
        h.next_poll().await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_series_budget_the_least_busy_projects_fold_into_other_and_stay_there() {
    // The budget: what the family needs without projects, and half as much again. Every project
    // with a name of its own adds label sets, so not all six can have one.
    let probe = Harness::start(short(150), &["--lookback", SHORT_LOOKBACK]).await;
    let without = series(&probe.scrape().await, "env0_deployments").len()
        + probe
            .scrape()
            .await
            .iter()
            .filter(|s| s.name == "env0_deployments" && s.value == 0.0)
            .count();
    probe.stop().await;
    let budget = without * 3 / 2;
    let h = Harness::start(
        short(150),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--project-label",
            "--max-series-per-metric",
            &budget.to_string(),
        ],
    )
    .await;
    let names = project_names(&h);
    let samples = h.scrape().await;
    let window = series(&samples, "env0_deployments");
    let own: BTreeSet<String> = window
        .keys()
        .map(|l| l["project"].clone())
        .filter(|p| p != "other")
        .collect();
    assert!(
        !own.is_empty()
            && own.len() < names.len()
            && window.keys().any(|l| l["project"] == "other"),
        "some projects keep their name, the rest are other: {own:?} of {names:?}, {} label sets",
        window.len()
    );
    // Nothing is lost: by every label but project, the sums equal the simulator's records.
    let without_project = |m: &BTreeMap<Labels, f64>| {
        let mut out: BTreeMap<Labels, f64> = BTreeMap::new();
        for (l, v) in m {
            let mut l = l.clone();
            l.remove("project");
            *out.entry(l).or_default() += v;
        }
        out
    };
    assert_matches(
        "env0_deployments summed over projects",
        &without_project(&window),
        &h.expected_window(|_| true),
    );
    // The projects with a name of their own are the busiest (deployments known, then name).
    let mut activity: BTreeMap<String, usize> = BTreeMap::new();
    let cutoff = env0_exporter::clock::sub(h.now(), h.lookback);
    for d in h.sim.deployments() {
        if !is_finished(&d) || d.created_at >= cutoff {
            *activity.entry(names[&d.project_id].clone()).or_default() += 1;
        }
    }
    let mut ranked: Vec<(&String, &usize)> = activity.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let busiest: BTreeSet<String> = ranked
        .iter()
        .take(own.len())
        .map(|(n, _)| (*n).clone())
        .collect();
    assert_eq!(
        own, busiest,
        "the admitted projects are the busiest ones: {ranked:?}"
    );
    // The exporter says how many label sets it has, and they respect the budget.
    let all = h.scrape().await;
    let label_sets = all.iter().filter(|s| s.name == "env0_deployments").count();
    let reported = all
        .iter()
        .find(|s| {
            s.name == "env0_exporter_series"
                && s.labels.get("metric").map(String::as_str) == Some("env0_deployments")
        })
        .map(|s| s.value);
    assert_eq!(
        reported,
        Some(f64::from(u32::try_from(label_sets).unwrap()))
    );
    assert!(
        label_sets <= budget,
        "{label_sets} label sets, budget {budget}"
    );
    // Stable: later polls keep every admitted project.
    for _ in 0..3 {
        h.next_poll().await;
    }
    let later: BTreeSet<String> = series(&h.scrape().await, "env0_deployments")
        .keys()
        .map(|l| l["project"].clone())
        .filter(|p| p != "other")
        .collect();
    assert!(later.is_superset(&own), "{later:?} keeps {own:?}");
    h.stop().await;
}

/// Paths of the deployment listings the simulator served, by environment id.
fn read_environments(h: &Harness) -> BTreeSet<String> {
    h.sim
        .requests()
        .iter()
        .filter_map(|r| {
            r.path
                .strip_prefix("/environments/")
                .and_then(|p| p.strip_suffix("/deployments"))
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_include_list_reads_only_that_projects_environments() {
    let (pid, pname) = twin(short(150)).projects()[1].clone();
    let pattern = format!("{}*", &pname[..pname.len().min(3)]);
    let h = Harness::start(
        short(150),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--projects",
            &pattern,
            "--project-label",
            "--full-sync-interval",
            "60s",
        ],
    )
    .await;
    let names = project_names(&h);
    let watched: BTreeSet<String> = names
        .iter()
        .filter(|(_, n)| n.starts_with(&pname[..pname.len().min(3)]))
        .map(|(id, _)| id.clone())
        .collect();
    assert!(watched.contains(&pid));
    let in_project: BTreeSet<String> = h
        .sim
        .environments()
        .into_iter()
        .filter(|e| watched.contains(&e.project_id))
        .map(|e| e.id)
        .collect();
    let read = read_environments(&h);
    assert!(
        !read.is_empty() && read.is_subset(&in_project),
        "only watched projects are read"
    );
    let listings: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/environments")
        .collect();
    assert!(
        listings.iter().all(|r| r.query.contains("projectId=")),
        "a few watched projects are listed one by one: {listings:?}"
    );
    h.next_poll().await;
    assert_matches(
        "env0_deployments of the watched projects",
        &series(&h.scrape().await, "env0_deployments"),
        &expected_window_by_project(
            &h,
            |d| watched.contains(&d.project_id),
            |d| names[&d.project_id].clone(),
        ),
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_excluded_project_is_never_read() {
    let (pid, pname) = twin(short(150)).projects()[0].clone();
    let h = Harness::start(
        short(150),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--exclude-projects",
            &pname,
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
    )
    .await;
    h.next_poll().await;
    let excluded: BTreeSet<String> = h
        .sim
        .environments()
        .into_iter()
        .filter(|e| e.project_id == pid)
        .map(|e| e.id)
        .collect();
    assert!(!excluded.is_empty());
    assert!(read_environments(&h).is_disjoint(&excluded));
    assert_matches(
        "env0_deployments without the excluded project",
        &series(&h.scrape().await, "env0_deployments"),
        &h.expected_window(|d| d.project_id != pid),
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_view_shows_each_environments_latest_run_and_status() {
    let h = Harness::start(
        short(120),
        &["--lookback", SHORT_LOOKBACK, "--environment-metrics"],
    )
    .await;
    h.next_poll().await;
    let names = project_names(&h);
    let runs: HashMap<String, SimDeployment> = h
        .sim
        .deployments()
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();
    let mut want_latest = BTreeMap::new();
    let mut want_info = BTreeMap::new();
    for e in h.sim.environments().into_iter().filter(|e| !e.is_archived) {
        let common = [
            ("environment", e.name.clone()),
            ("environment_id", e.id.clone()),
            ("project", names[&e.project_id].clone()),
            ("project_id", e.project_id.clone()),
        ];
        let mut info = labels(&common);
        info.insert("status".into(), expected_label(Some(&e.status)));
        info.insert("drift_status".into(), expected_label(Some(&e.drift_status)));
        want_info.insert(info, 1.0);
        if let Some(run) = e.latest_deployment_log_id.as_ref().map(|id| &runs[id]) {
            let mut l = labels(&common);
            l.insert(
                "deployment_type".into(),
                expected_label(Some(&run.deployment_type)),
            );
            l.insert("status".into(), expected_label(Some(&run.status)));
            want_latest.insert(l, 1.0);
        }
    }
    let samples = h.scrape().await;
    assert_matches(
        "env0_environment_info",
        &series(&samples, "env0_environment_info"),
        &want_info,
    );
    assert_matches(
        "env0_environment_latest_deployment",
        &series(&samples, "env0_environment_latest_deployment"),
        &want_latest,
    );
    h.stop().await;
}

/// The organisation's id, as the user would give it (the world is a function of the seed).
fn organization_of(config: &env0_exporter::simulator::SimConfig) -> String {
    env0_exporter::simulator::Simulator::new(
        config.clone(),
        std::sync::Arc::new(env0_exporter::clock::ManualClock::new(
            crate::helpers::START.parse().unwrap(),
        )),
    )
    .organization_id()
}

/// The simulator's truth for `env0_deployments_finished_total`, `project` being the id.
fn finished_by_project_id(h: &Harness) -> BTreeMap<Labels, f64> {
    let mut finished = BTreeMap::new();
    for d in h.sim.deployments() {
        if is_finished(&d) && crate::helpers::finish_time(&d) > h.sim_started() {
            let mut l = deployment_labels(&d, true);
            l.insert("project".into(), d.project_id.clone());
            *finished.entry(l).or_insert(0.0) += 1.0;
        }
    }
    finished
}

/// Series summed over their `project` label (which must be there and not empty).
fn without_project(m: BTreeMap<Labels, f64>) -> BTreeMap<Labels, f64> {
    let mut out: BTreeMap<Labels, f64> = BTreeMap::new();
    for (mut l, v) in m {
        let project = l.remove("project").expect("a project label");
        assert!(!project.is_empty());
        *out.entry(l).or_insert(0.0) += v;
    }
    out
}

/// The value of the one sample of `name` whose labels hold all of `want`, if any.
fn sample_with(
    samples: &[crate::helpers::Sample],
    name: &str,
    want: &[(&str, &str)],
) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_may_list_neither_organisations_nor_projects_counts_exactly_with_project_ids() {
    use env0_exporter::simulator::{FaultKind, SimConfig};
    use std::time::Duration;
    const ALWAYS: Duration = Duration::from_secs(30 * 24 * 3600);
    let config = SimConfig {
        mean_deployment_interval: Duration::from_secs(15 * 60),
        ..short(60)
    };
    let org = organization_of(&config);
    let h = Harness::start_prepared(
        config,
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--organization-id",
            &org,
            "--project-label",
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
        None,
        |s| {
            s.inject_for(Some("/organizations"), FaultKind::Status(403), ALWAYS);
            s.inject_for(Some("/projects"), FaultKind::Status(403), ALWAYS);
        },
    )
    .await;
    for poll in 0..4 {
        let samples = h.scrape().await;
        let when = format!("poll {poll}");
        assert_eq!(
            sample_with(&samples, "env0_up", &[]),
            Some(1.0),
            "{when}: the polls go on"
        );
        // The project label falls back to the project id.
        assert_matches(
            &format!("{when}: env0_deployments by project id"),
            &series(&samples, "env0_deployments"),
            &expected_window_by_project(&h, |_| true, |d| d.project_id.clone()),
        );
        assert_matches(
            &format!("{when}: env0_deployments_finished_total by project id"),
            &series(&samples, "env0_deployments_finished_total"),
            &finished_by_project_id(&h),
        );
        assert_eq!(
            sample_with(
                &samples,
                "env0_exporter_optional_call_unavailable",
                &[("call", "projects"), ("reason", "forbidden")]
            ),
            Some(1.0),
            "{when}: the degraded call is shown"
        );
        let errors: f64 = samples
            .iter()
            .filter(|s| s.name == "env0_exporter_poll_errors_total")
            .map(|s| s.value)
            .sum();
        assert!(errors == 0.0, "{when}: no poll failed");
        h.next_poll().await;
    }
    let requests = h.sim.requests();
    assert!(
        !requests.iter().any(|r| r.path == "/organizations"),
        "with --organization-id the organisations are never listed"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/projects" && r.status == 403)
    );
    let finished: f64 = h.expected_finished(|_| true).values().sum();
    assert!(finished >= 3.0, "the test must see runs finish: {finished}");

    // The key is granted the projects: the call is no longer shown, and the counts stay
    // exact whatever the project label (runs already tracked keep the id they were given,
    // like runs of a project renamed in env0; new runs get the name).
    h.sim.clear_faults();
    h.next_poll().await;
    let samples = h.scrape().await;
    assert_matches(
        "with the projects listed again: env0_deployments",
        &without_project(series(&samples, "env0_deployments")),
        &without_project(expected_window_by_project(
            &h,
            |_| true,
            |d| d.project_id.clone(),
        )),
    );
    assert_eq!(
        sample_with(
            &samples,
            "env0_exporter_optional_call_unavailable",
            &[("call", "projects"), ("reason", "none")]
        ),
        Some(0.0),
        "the projects listing works again"
    );
    h.stop().await;
}
