//! `env0-exporter doctor`, the real binary, against an in-process simulator playing each env0
//! variant on a loopback port. Expected values come from the simulator's configuration and
//! records, never from the doctor's code.

use std::collections::BTreeSet;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use env0_exporter::client::query::PARAMETERS;
use env0_exporter::clock::{SharedClock, SystemClock};
use env0_exporter::simulator::{
    DateFilterField, Fault, FaultKind, LatestMovedBy, PageOrder, SimConfig, Simulator,
};
use serde_json::Value;

use super::{run, stderr, stdout};

/// The bound the README documents.
const MAX_REQUESTS: u64 = 40;

/// A simulator served on a loopback port for as long as it lives.
struct Served {
    sim: Simulator,
    endpoint: String,
    _runtime: tokio::runtime::Runtime,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// A small, lively organisation: 20 environments in 4 projects, a run every 10 minutes each.
fn small(config: SimConfig) -> SimConfig {
    SimConfig {
        environments: 20,
        projects: 4,
        history: Duration::from_secs(6 * 3600),
        mean_deployment_interval: Duration::from_secs(600),
        ..config
    }
}

fn serve(config: SimConfig) -> Served {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let sim = Simulator::new(small(config), clock);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, task) = {
        let _entered = runtime.enter();
        env0_exporter::app::spawn_simulator(sim.clone(), listener)
    };
    drop(task);
    Served {
        sim,
        endpoint: format!("http://{addr}/"),
        _runtime: runtime,
        _stop: stop,
    }
}

fn doctor(served: &Served, secret: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "doctor",
        "--api-endpoint",
        &served.endpoint,
        "--api-key",
        "demo-key",
        "--api-secret",
        secret,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

/// `doctor --output json`: its exit code and its one JSON object.
fn doctor_json(served: &Served, extra: &[&str]) -> (Option<i32>, Value) {
    let mut args = vec!["--output", "json"];
    args.extend_from_slice(extra);
    let o = doctor(served, "demo-secret", &args);
    let out = stdout(&o);
    assert_eq!(
        out.lines().count(),
        1,
        "one JSON line: {out}\n{}",
        stderr(&o)
    );
    let report: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{}", stderr(&o)));
    let requests = report["requests"].as_u64().unwrap();
    assert!(
        requests <= MAX_REQUESTS,
        "{requests} requests, more than {MAX_REQUESTS}"
    );
    // The simulator counts what it received: the report's count is the truth.
    assert_eq!(
        u64::try_from(served.sim.requests().len()).unwrap(),
        requests,
        "requests received by the simulator"
    );
    (o.status.code(), report)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// The types of the runs the simulator's environments show as their latest.
fn latest_types(sim: &Simulator) -> Vec<String> {
    let runs = sim.deployments();
    sim.environments()
        .iter()
        .filter_map(|e| e.latest_deployment_log_id.as_ref())
        .filter_map(|id| runs.iter().find(|d| &d.id == id))
        .map(|d| d.deployment_type.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Makes the simulator answer 403 on the deployments of its first two projects for an hour;
/// their ids.
fn forbid_two_projects(served: &Served) -> Vec<String> {
    let forbidden: Vec<String> = served
        .sim
        .projects()
        .iter()
        .take(2)
        .map(|(id, _)| id.clone())
        .collect();
    served.sim.inject_for(
        None,
        FaultKind::ForbiddenProjects(forbidden.clone()),
        Duration::from_secs(3600),
    );
    forbidden
}

/// What every run against a healthy simulator reports the same way.
fn assert_sees_the_organisation(served: &Served, code: Option<i32>, report: &Value) {
    let sim = &served.sim;
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["problems"], Value::Array(Vec::new()));
    assert_eq!(report["credentials"], "accepted");
    assert_eq!(report["organization_id"], sim.organization_id().as_str());
    assert_eq!(report["projects"], sim.projects().len());
    assert_eq!(report["environments"], sim.environments().len());
    assert_eq!(report["environments_complete"], true);
    assert_eq!(strings(&report["refused_parameters"]), Vec::<String>::new());
    // Every parameter of the client's list is asked about, and taken (the validating API
    // refuses only the one the exporter probes and drops).
    let validating = sim.config().validating_api;
    let mut asked: Vec<(String, String)> = Vec::new();
    for p in report["parameters"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_owned();
        let expected = if validating && name == "includeSubEnvironments" {
            "refused"
        } else {
            "accepted"
        };
        assert_eq!(p["verdict"], expected, "{p}");
        asked.push((name, p["path"].as_str().unwrap().to_owned()));
    }
    let mut names: Vec<&str> = asked.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let mut listed: Vec<&str> = PARAMETERS.iter().map(|p| p.name).collect();
    listed.sort_unstable();
    assert_eq!(names, listed);
    let listed_by_default = sim.config().sub_environments_listed_by_default || validating;
    let subs = if validating {
        "parameter_refused"
    } else if sim.config().sub_environments > 0 && !listed_by_default {
        "listed_only_with_parameter"
    } else {
        "listed_without_parameter"
    };
    assert_eq!(report["sub_environments"], subs);
}

fn offset_of(report: &Value) -> i64 {
    report["clock_offset_seconds"]
        .as_i64()
        .unwrap_or_else(|| panic!("no offset: {report:#}"))
}

#[test]
fn doctor_against_the_default_simulator_reports_it_as_it_is() {
    let served = serve(SimConfig::default());
    let (code, report) = doctor_json(&served, &[]);
    assert_sees_the_organisation(&served, code, &report);
    assert_eq!(report["forbidden_projects"], Value::Array(Vec::new()));
    assert_eq!(report["date_filter_field"], "createdAt");
    assert_eq!(report["page_order"], "newest");
    assert_eq!(report["date_header"], true);
    assert_eq!(report["clock_offset_source"], "date_header");
    // The Date header has whole seconds: the offset is right to within one.
    assert!(offset_of(&report).abs() <= 1, "{report:#}");
    assert_eq!(
        strings(&report["latest_moves_for"]),
        latest_types(&served.sim)
    );
    assert_eq!(report["rate_limited"], 0);
    assert_eq!(report["webhook"], Value::Null);
}

#[test]
fn doctor_tells_a_date_filter_on_queued_at_and_on_started_at() {
    for (field, name) in [
        (DateFilterField::QueuedAt, "queuedAt"),
        (DateFilterField::StartedAt, "startedAt"),
    ] {
        let served = serve(SimConfig {
            date_filter_field: field,
            ..SimConfig::default()
        });
        let (code, report) = doctor_json(&served, &[]);
        assert_sees_the_organisation(&served, code, &report);
        // A run queued when it is created is in the same dated listings either way: the two
        // filters cannot be told apart, and are the same, so the report says `createdAt`.
        let same = served
            .sim
            .deployments()
            .iter()
            .all(|d| d.queued_at == d.created_at);
        let name = if field == DateFilterField::QueuedAt && same {
            "createdAt"
        } else {
            name
        };
        assert_eq!(report["date_filter_field"], name, "{report:#}");
        assert_eq!(report["page_order"], "newest");
    }
}

#[test]
fn doctor_tells_workflow_sub_environments_listed_only_with_the_parameter() {
    let served = serve(SimConfig {
        sub_environments: 3,
        ..SimConfig::default()
    });
    let (code, report) = doctor_json(&served, &[]);
    // Sub-environments are not in the plain listing the environment count comes from.
    let sim = &served.sim;
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["sub_environments"], "listed_only_with_parameter");
    assert_eq!(
        report["environments"],
        sim.config().environments,
        "the plain listing"
    );
    assert_eq!(report["environments_complete"], true);
}

#[test]
fn doctor_tells_pages_oldest_first() {
    let served = serve(SimConfig {
        page_order: PageOrder::OldestFirst,
        ..SimConfig::default()
    });
    let (code, report) = doctor_json(&served, &[]);
    assert_sees_the_organisation(&served, code, &report);
    assert_eq!(report["page_order"], "oldest", "{report:#}");
    assert_eq!(report["date_filter_field"], "createdAt");
}

#[test]
fn doctor_against_a_validating_api_with_a_key_forbidden_on_some_projects() {
    let served = serve(SimConfig {
        validating_api: true,
        ..SimConfig::default()
    });
    let forbidden = forbid_two_projects(&served);
    let (code, report) = doctor_json(&served, &[]);
    // The exporter sends only what env0's clients send, but for the parameter it probes once
    // and drops on a 400: that is the only request refused.
    assert_sees_the_organisation(&served, code, &report);
    let refused: Vec<_> = served
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.status == 400)
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].query.contains("includeSubEnvironments"),
        "{refused:?}"
    );
    let mut expected = forbidden;
    expected.sort();
    assert_eq!(strings(&report["forbidden_projects"]), expected);
    assert_eq!(report["date_filter_field"], "createdAt");
}

#[test]
fn doctor_without_a_date_header_says_so_and_estimates_the_clock_from_the_records() {
    let served = serve(SimConfig {
        send_date_header: false,
        clock_offset: jiff::SignedDuration::from_secs(600),
        ..SimConfig::default()
    });
    let (code, report) = doctor_json(&served, &[]);
    assert_sees_the_organisation(&served, code, &report);
    assert_eq!(report["date_header"], false);
    // The records give a lower bound of how far ahead env0 is: above zero, at most the truth
    // (plus the second the records' milliseconds may round up to).
    assert_eq!(report["clock_offset_source"], "records", "{report:#}");
    let offset = offset_of(&report);
    assert!(0 < offset && offset <= 601, "{report:#}");
}

#[test]
fn doctor_sees_env0_ten_minutes_ahead_from_the_date_header() {
    let served = serve(SimConfig {
        clock_offset: jiff::SignedDuration::from_secs(600),
        ..SimConfig::default()
    });
    let (code, report) = doctor_json(&served, &[]);
    assert_sees_the_organisation(&served, code, &report);
    assert_eq!(report["date_header"], true);
    assert_eq!(report["clock_offset_source"], "date_header");
    assert!((offset_of(&report) - 600).abs() <= 1, "{report:#}");
}

#[test]
fn doctor_lists_the_types_that_move_the_latest_run_when_every_type_does() {
    let served = serve(SimConfig {
        latest_moved_by: LatestMovedBy::Every,
        ..SimConfig::default()
    });
    let (code, report) = doctor_json(&served, &[]);
    assert_sees_the_organisation(&served, code, &report);
    let expected = latest_types(&served.sim);
    assert!(
        expected
            .iter()
            .any(|t| t != "deploy" && t != "destroy" && t != "task"),
        "the simulated organisation shows a plan or drift detection as a latest run: {expected:?}"
    );
    assert_eq!(strings(&report["latest_moves_for"]), expected);
}

#[test]
fn doctor_names_the_projects_whose_deployments_answer_403() {
    let served = serve(SimConfig::default());
    let forbidden = forbid_two_projects(&served);
    let (code, report) = doctor_json(&served, &[]);
    assert_sees_the_organisation(&served, code, &report);
    let mut expected = forbidden;
    expected.sort();
    assert_eq!(strings(&report["forbidden_projects"]), expected);
    let with_environments: BTreeSet<String> = served
        .sim
        .environments()
        .into_iter()
        .filter(|e| !e.is_archived)
        .map(|e| e.project_id)
        .collect();
    assert_eq!(report["projects_checked"], with_environments.len());
}

#[test]
fn doctor_lists_optional_calls_that_fail_and_still_exits_0() {
    let served = serve(SimConfig::default());
    for prefix in ["/organizations", "/projects", "/environments/deployments/"] {
        served.sim.inject_for(
            Some(prefix),
            FaultKind::Status(403),
            Duration::from_secs(3600),
        );
    }
    let org = served.sim.organization_id();
    let (code, report) = doctor_json(&served, &["--organization-id", &org]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["problems"], Value::Array(Vec::new()));
    assert_eq!(report["organization_id"], org.as_str());
    assert_eq!(report["projects"], Value::Null);
    assert_eq!(report["environments"], served.sim.environments().len());
    let failures = strings(&report["optional_failures"]);
    assert_eq!(failures.len(), 3, "{failures:?}");
    for (failure, path) in
        failures
            .iter()
            .zip(["/organizations", "/projects", "/environments/deployments/"])
    {
        assert!(failure.contains(path), "{failure} names {path}");
    }
}

#[test]
fn doctor_never_sends_more_than_a_lower_request_budget_and_says_what_it_left_undone() {
    let served = serve(SimConfig::default());
    let (code, report) = doctor_json(&served, &["--max-requests-per-minute", "10"]);
    assert_eq!(report["max_requests"], 10);
    // `doctor_json` checked that the simulator received exactly `requests`.
    assert!(report["requests"].as_u64().unwrap() <= 10, "{report:#}");
    assert_eq!(
        code,
        Some(0),
        "running out of budget stops nothing: {report:#}"
    );
    let notes = strings(&report["notes"]);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("budget of 10 requests ran out")),
        "{notes:?}"
    );
    assert!(
        report["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["verdict"] == "not_checked"),
        "{report:#}"
    );
}

#[test]
fn doctor_counts_the_watched_projects_and_finds_a_filter_that_watches_nothing() {
    let served = serve(SimConfig::default());
    let (id, name) = served.sim.projects()[0].clone();
    let (code, report) = doctor_json(&served, &["--projects", &name]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["watched_projects"], 1);
    let in_project = served
        .sim
        .environments()
        .iter()
        .filter(|e| e.project_id == id)
        .count();
    assert_eq!(report["watched_environments"], in_project);
    served.sim.clear_requests();
    let (code, report) = doctor_json(&served, &["--projects", "no-such-project-*"]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["watched_environments"], 0);
    assert!(
        strings(&report["problems"])[0].contains("--projects"),
        "{report:#}"
    );
}

#[test]
fn doctor_with_a_revoked_key_reports_the_problem_and_exits_1() {
    let served = serve(SimConfig::default());
    served.sim.set_api_key_secret("the-rotated-secret");
    let (code, report) = doctor_json(&served, &[]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["credentials"], "refused");
    let problems = strings(&report["problems"]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("401"), "{problems:?}");
    assert_eq!(report["organization_id"], Value::Null);
}

#[test]
fn doctor_reports_a_429_and_its_retry_after() {
    let served = serve(SimConfig::default());
    served.sim.inject(Fault {
        path_prefix: Some("/organizations".into()),
        kind: FaultKind::RateLimited {
            retry_after: Some(1),
        },
        count: 1,
    });
    let (code, report) = doctor_json(&served, &[]);
    assert_sees_the_organisation(&served, code, &report);
    assert_eq!(report["rate_limited"], 1);
    assert_eq!(report["retry_after_seconds"], 1.0);
}

#[test]
fn doctor_prints_the_key_lines_for_a_person_and_what_to_enter_for_webhooks() {
    let served = serve(SimConfig::default());
    let secret = "a-webhook-secret-of-32-characters";
    let o = doctor(
        &served,
        "demo-secret",
        &[
            "--webhook-secret",
            secret,
            "--listen-address",
            "0.0.0.0:9999",
        ],
    );
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    for line in [
        "credentials",
        "organisation",
        &served.sim.organization_id(),
        "projects",
        "environments",
        "project access",
        "query parameters",
        "sub-environments",
        "date filter on",
        "page order",
        "Date header",
        "env0's clock",
        "latest run moved by",
        "rate limit",
        "No problem found",
        "port 9999>/webhooks/env0",
        "x-env0-signature",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert!(!out.contains(secret), "the secret is never printed");
    let o = doctor(&served, "wrong", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("Problems"), "{}", stdout(&o));
    assert!(stdout(&o).contains("401"), "{}", stdout(&o));
}

#[test]
fn doctor_refuses_the_flags_it_does_not_use_with_code_2() {
    for flag in [
        &["--poll-interval", "5s"][..],
        &["--state-file", "/tmp/x"],
        &["--web-config-file", "/w.yml"],
        &["--shard", "1/2"],
        &["--project-label"],
    ] {
        let mut args = vec!["doctor", "--api-key", "k", "--api-secret", "s"];
        args.extend_from_slice(flag);
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{flag:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(flag[0]), "{flag:?}: {}", stderr(&o));
    }
}
