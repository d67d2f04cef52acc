//! Tests of the simulator through its public API and its router (no socket except where the
//! real listener is the point), against a [`ManualClock`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine as _;
use http_body_util::BodyExt as _;
use jiff::Timestamp;
use serde_json::Value;
use tower::ServiceExt as _;

use super::world::TRIGGERS;
use super::*;
use env0_clock::{Clock as _, ManualClock};

const HOUR: Duration = Duration::from_secs(3600);

fn start() -> Timestamp {
    "2026-07-01T12:00:00Z".parse().expect("valid timestamp")
}

fn sim_with(config: SimConfig) -> (Simulator, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(start()));
    (Simulator::new(config, clock.clone()), clock)
}

fn sim() -> (Simulator, Arc<ManualClock>) {
    sim_with(SimConfig::default())
}

fn basic(id: &str, secret: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    format!("Basic {token}")
}

async fn call(router: &Router, uri: &str, auth: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut req = Request::get(uri);
    if let Some(auth) = auth {
        req = req.header(header::AUTHORIZATION, auth);
    }
    let resp = router
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// GET with the default key; the status and the body as JSON (`Null` when it is not JSON).
async fn get(router: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = call(router, uri, Some(&basic("demo-key", "demo-secret"))).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page.as_array()
        .expect("a JSON array")
        .iter()
        .map(|d| d["id"].as_str().expect("string id").to_owned())
        .collect()
}

/// The environment with the most deployments, and its deployments newest first.
fn busiest(sim: &Simulator) -> (String, Vec<SimDeployment>) {
    let all = sim.deployments();
    let env = sim
        .environments()
        .into_iter()
        .max_by_key(|e| all.iter().filter(|d| d.environment_id == e.id).count())
        .expect("environments");
    let mut deps: Vec<_> = all
        .into_iter()
        .filter(|d| d.environment_id == env.id)
        .collect();
    deps.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    (env.id, deps)
}

fn wire(ts: Timestamp) -> String {
    ts.strftime(json::TIMESTAMP_FORMAT).to_string()
}

#[test]
fn timestamps_go_on_the_wire_as_env0_writes_them() {
    // The shape env0 documents, written out: milliseconds and a Z, always.
    let at: Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
    assert_eq!(wire(at), "2026-07-01T12:00:00.000Z");
    assert_eq!(
        serde_json::to_value(json::Ts(at)).unwrap(),
        serde_json::json!("2026-07-01T12:00:00.000Z")
    );
    let later: Timestamp = "2026-07-01T12:00:00.5Z".parse().unwrap();
    assert_eq!(wire(later), "2026-07-01T12:00:00.500Z");
}

#[test]
fn the_same_seed_gives_identical_deployments_and_another_seed_different_ones() {
    let (a, _) = sim();
    let (b, _) = sim();
    let (c, _) = sim_with(SimConfig {
        seed: 7,
        ..SimConfig::default()
    });
    assert!(a.deployments().len() > 1000);
    // Plain asserts: a diff of thousands of records helps nobody.
    assert!(a.deployments() == b.deployments());
    assert!(a.environments() == b.environments());
    assert!(a.deployments() != c.deployments());
}

#[test]
fn advancing_in_one_big_step_or_many_small_ones_gives_the_same_world() {
    let (big, big_clock) = sim();
    let (small, small_clock) = sim();
    big_clock.advance(6 * HOUR);
    big.advance();
    for _ in 0..(6 * 60) {
        small_clock.advance(Duration::from_secs(60));
        small.advance();
    }
    assert!(big.deployments() == small.deployments());
    assert!(big.environments() == small.environments());
    assert!(big.deployments() != sim().0.deployments());
}

#[test]
fn forty_eight_hours_hold_every_type_tool_trigger_and_status() {
    let (sim, _) = sim();
    let deps = sim.deployments();
    let types: BTreeSet<_> = deps.iter().map(|d| d.deployment_type.as_str()).collect();
    // env0's spellings, written out here rather than taken from the simulator's own tables,
    // so a misspelled wire name fails.
    let expected: BTreeSet<_> = [
        "deploy",
        "destroy",
        "prPlan",
        "driftDetection",
        "task",
        "remotePlan",
        "dryRun",
        "moduleTest",
    ]
    .into_iter()
    .collect();
    assert_eq!(types, expected);
    let tools: HashSet<_> = deps.iter().map(|d| d.blueprint_type.as_deref()).collect();
    let expected: HashSet<_> = [
        "opentofu",
        "terraform",
        "terragrunt",
        "pulumi",
        "k8s",
        "cloudformation",
        "helm",
        "ansible",
        "workflow",
    ]
    .into_iter()
    .map(Some)
    .chain([None])
    .collect();
    assert_eq!(tools, expected);
    let triggers: HashSet<_> = deps.iter().map(|d| d.trigger_name.as_deref()).collect();
    for known in ["user", "terraform-cli", "workflow"] {
        assert!(
            triggers.contains(&Some(known)),
            "{known} missing: {triggers:?}"
        );
    }
    assert!(triggers.contains(&None), "a null trigger is simulated");
    assert!(
        triggers.iter().flatten().any(|t| t.contains(' ')),
        "a trigger that is not a plain label value is simulated: {triggers:?}"
    );
    assert_eq!(triggers, TRIGGERS.into_iter().collect());
    let statuses: BTreeSet<_> = deps.iter().map(|d| d.status.as_str()).collect();
    // env0's spellings written out, as above; ABORTING lasts seconds: see the lifecycle test
    // below. (The exporter's tests hold its own list of statuses against this world.)
    let expected: BTreeSet<_> = [
        "QUEUED",
        "IN_PROGRESS",
        "WAITING_FOR_USER",
        "SUCCESS",
        "FAILURE",
        "TIMEOUT",
        "CANCELLED",
        "INTERNAL_FAILURE",
        "ABORTED",
        "SKIPPED",
        "NEVER_DEPLOYED",
    ]
    .into_iter()
    .collect();
    assert_eq!(statuses, expected);
    let counts = |t: &str| deps.iter().filter(|d| d.deployment_type == t).count();
    assert!(counts("deploy") > counts("prPlan"));
    assert!(counts("prPlan") > counts("driftDetection"));
    assert!(counts("driftDetection") > counts("remotePlan"));
}

#[test]
fn finished_at_is_null_exactly_where_env0_leaves_it_null() {
    let (sim, _) = sim();
    let deps = sim.deployments();
    for d in &deps {
        let finished = !matches!(
            d.status.as_str(),
            "QUEUED" | "IN_PROGRESS" | "WAITING_FOR_USER" | "ABORTING"
        );
        if !finished {
            assert_eq!(d.finished_at, None, "{d:?}");
        }
        if matches!(d.status.as_str(), "SKIPPED" | "NEVER_DEPLOYED") {
            assert_eq!(d.finished_at, None, "{d:?}");
            assert!(d.updated_at > d.created_at, "{d:?}");
        }
        if let Some(f) = d.finished_at {
            assert_eq!(f, d.updated_at);
            match d.started_at {
                Some(s) => assert!(s >= d.queued_at && s <= f, "{d:?}"),
                None => assert_eq!(d.status, "CANCELLED", "{d:?}"),
            }
        }
    }
    let cancelled = |with: bool| {
        deps.iter()
            .filter(|d| d.status == "CANCELLED" && d.finished_at.is_some() == with)
            .count()
    };
    assert!(cancelled(true) > 0 && cancelled(false) > 0);
    let unfinished = deps
        .iter()
        .filter(|d| {
            matches!(
                d.status.as_str(),
                "QUEUED" | "IN_PROGRESS" | "WAITING_FOR_USER"
            )
        })
        .count();
    assert!(unfinished > 3, "{unfinished} unfinished runs");
}

#[test]
fn runs_go_through_aborting_and_waiting_for_user_and_environments_follow() {
    let (sim, clock) = sim();
    let mut seen = HashSet::new();
    let mut env_seen = HashSet::new();
    for _ in 0..(4 * 360) {
        clock.advance(Duration::from_secs(10));
        sim.advance();
        let world = lock(&sim.inner.world);
        for env in &world.environments {
            env_seen.insert(env.status.as_str());
            seen.extend(env.deployments.iter().map(|d| d.status.as_str()));
        }
    }
    for s in ["ABORTING", "WAITING_FOR_USER", "QUEUED", "IN_PROGRESS"] {
        assert!(seen.contains(s), "{s} never seen");
    }
    for s in [
        "ACTIVE",
        "FAILED",
        "INACTIVE",
        "NEVER_DEPLOYED",
        "DRIFTED",
        "DEPLOY_IN_PROGRESS",
        "PR_PLAN_IN_PROGRESS",
        "DRIFT_DETECTION_IN_PROGRESS",
        "WAITING_FOR_USER",
    ] {
        assert!(env_seen.contains(s), "environment status {s} never seen");
    }
    let drift: HashSet<_> = sim
        .environments()
        .into_iter()
        .map(|e| e.drift_status)
        .collect();
    for s in ["OK", "DRIFTED", "NEVER_RUN", "DISABLED"] {
        assert!(drift.contains(s), "drift status {s} never seen");
    }
    assert!(sim.environments().iter().any(|e| e.is_archived));
}

#[test]
fn only_deploy_destroy_and_task_move_the_latest_deployment_log() {
    let (sim, clock) = sim();
    let mut passed_over = 0;
    for _ in 0..6 {
        let deps = sim.deployments();
        for env in sim.environments() {
            let mine: Vec<_> = deps.iter().filter(|d| d.environment_id == env.id).collect();
            let newest_moving = mine
                .iter()
                .filter(|d| matches!(d.deployment_type.as_str(), "deploy" | "destroy" | "task"))
                .max_by_key(|d| (d.created_at, &d.id))
                .map(|d| d.id.clone());
            assert_eq!(env.latest_deployment_log_id, newest_moving, "{}", env.name);
            let newest = mine.iter().max_by_key(|d| (d.created_at, &d.id));
            if newest.is_some_and(|d| d.deployment_type == "prPlan") {
                passed_over += 1;
            }
        }
        clock.advance(HOUR);
    }
    assert!(
        passed_over > 5,
        "only {passed_over} environments with a newer prPlan"
    );
}

#[tokio::test]
async fn the_environment_listing_embeds_the_latest_deploy_not_a_newer_pr_plan() {
    let (sim, _) = sim();
    let router = sim.router();
    let org = sim.organization_id();
    let deps = sim.deployments();
    let (_, page) = get(&router, &format!("/environments?organizationId={org}")).await;
    let page = page.as_array().expect("array");
    let env = page
        .iter()
        .find(|e| {
            deps.iter()
                .filter(|d| Some(d.environment_id.as_str()) == e["id"].as_str())
                .max_by_key(|d| (d.created_at, &d.id))
                .is_some_and(|d| d.deployment_type == "prPlan")
        })
        .expect("an environment whose newest run is a prPlan");
    assert_eq!(
        env["latestDeploymentLog"]["id"],
        env["latestDeploymentLogId"]
    );
    let kind = env["latestDeploymentLog"]["type"].as_str().expect("type");
    assert!(matches!(kind, "deploy" | "destroy" | "task"), "{kind}");
}

#[tokio::test]
async fn deployments_are_paged_newest_first_without_gaps_or_duplicates() {
    let (sim, _) = sim();
    let router = sim.router();
    let (env, truth) = busiest(&sim);
    assert!(truth.len() > 20);
    let mut seen = Vec::new();
    loop {
        let uri = format!(
            "/environments/{env}/deployments?limit=7&offset={}",
            seen.len()
        );
        let (status, page) = get(&router, &uri).await;
        assert_eq!(status, StatusCode::OK);
        let page = ids(&page);
        seen.extend(page.iter().cloned());
        if page.len() < 7 {
            break;
        }
    }
    let expected: Vec<_> = truth.iter().map(|d| d.id.clone()).collect();
    assert_eq!(seen, expected);
    let (_, first) = get(&router, &format!("/environments/{env}/deployments")).await;
    assert_eq!(ids(&first).len(), truth.len().min(100));
    assert_eq!(first[0]["createdAt"], wire(truth[0].created_at));
}

#[tokio::test]
async fn environments_are_paged_by_a_hundred_and_include_archived_ones() {
    let (sim, _) = sim();
    let router = sim.router();
    let org = sim.organization_id();
    let (_, first) = get(&router, &format!("/environments?organizationId={org}")).await;
    let (_, second) = get(
        &router,
        &format!("/environments?organizationId={org}&offset=100&limit=100"),
    )
    .await;
    let mut all = ids(&first);
    assert_eq!(all.len(), 100);
    all.extend(ids(&second));
    let truth = sim.environments();
    assert_eq!(all, truth.iter().map(|e| e.id.clone()).collect::<Vec<_>>());
    let archived = first
        .as_array()
        .into_iter()
        .chain(second.as_array())
        .flatten()
        .filter(|e| e["isArchived"] == true)
        .count();
    assert_eq!(archived, truth.iter().filter(|e| e.is_archived).count());
    assert!(archived > 0);
    let never = first
        .as_array()
        .into_iter()
        .chain(second.as_array())
        .flatten()
        .find(|e| e["status"] == "NEVER_DEPLOYED")
        .expect("a never-deployed environment");
    assert_eq!(never["latestDeploymentLogId"], Value::Null);
    assert_eq!(never["latestDeploymentLog"], Value::Null);
    assert_eq!(never["driftStatus"], "NEVER_RUN");
}

#[tokio::test]
async fn the_date_filter_is_on_created_at_with_both_bounds_inclusive() {
    let (sim, _) = sim();
    let router = sim.router();
    let (env, truth) = busiest(&sim);
    let (to, from) = (truth[3].created_at, truth[12].created_at);
    let uri = format!(
        "/environments/{env}/deployments?fromDate={}&toDate={}",
        wire(from),
        wire(to)
    );
    let (status, page) = get(&router, &uri).await;
    assert_eq!(status, StatusCode::OK);
    let expected: Vec<_> = truth
        .iter()
        .filter(|d| d.created_at >= from && d.created_at <= to)
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(ids(&page), expected);
    assert_eq!(expected.first(), Some(&truth[3].id));
    assert_eq!(expected.last(), Some(&truth[12].id));
}

#[tokio::test]
async fn bad_parameters_are_answered_400_with_a_json_message() {
    let (sim, _) = sim();
    let router = sim.router();
    let (env, _) = busiest(&sim);
    for query in [
        "fromDate=2026-07-01T00:00:00.000Z",
        "toDate=2026-07-01T00:00:00.000Z",
        "fromDate=2026-07-01&toDate=2026-07-02T00:00:00.000Z",
        "limit=101",
        "limit=0",
        "offset=-1",
    ] {
        let (status, body) =
            get(&router, &format!("/environments/{env}/deployments?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{query}"
        );
    }
    let (status, _) = get(&router, "/projects").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_ids_are_404_and_unknown_organizations_403() {
    let (sim, _) = sim();
    let router = sim.router();
    let (status, body) = get(&router, "/no/such/route").await;
    assert_eq!(
        (status, &body["statusCode"]),
        (StatusCode::NOT_FOUND, &Value::from(404))
    );
    let (status, _) = get(&router, "/environments/nope/deployments").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&router, "/environments/deployments/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&router, "/projects?organizationId=nope").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = get(&router, "/environments?organizationId=nope").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn organizations_beyond_the_first_are_listed_but_empty() {
    let (sim, _) = sim_with(SimConfig {
        organizations: 3,
        ..SimConfig::default()
    });
    let router = sim.router();
    let (_, orgs) = get(&router, "/organizations").await;
    let orgs = ids(&orgs);
    assert_eq!(orgs.len(), 3);
    assert_eq!(orgs[0], sim.organization_id());
    let (_, projects) = get(&router, &format!("/projects?organizationId={}", orgs[0])).await;
    assert_eq!(ids(&projects).len(), 6);
    let (status, projects) = get(&router, &format!("/projects?organizationId={}", orgs[2])).await;
    assert_eq!((status, ids(&projects).len()), (StatusCode::OK, 0));
    let (_, envs) = get(
        &router,
        &format!("/environments?organizationId={}", orgs[1]),
    )
    .await;
    assert_eq!(ids(&envs).len(), 0);
}

#[tokio::test]
async fn a_deployment_is_served_with_the_fields_of_the_truth() {
    let (sim, _) = sim();
    let router = sim.router();
    let deps = sim.deployments();
    let d = deps
        .iter()
        .rev()
        .find(|d| d.status == "SUCCESS" && d.deployment_type == "deploy")
        .expect("a successful deploy");
    let (status, body) = get(&router, &format!("/environments/deployments/{}", d.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], d.id.as_str());
    assert_eq!(body["environmentId"], d.environment_id.as_str());
    assert_eq!(body["type"], "deploy");
    assert_eq!(body["status"], "SUCCESS");
    assert_eq!(body["createdAt"], wire(d.created_at));
    assert_eq!(body["queuedAt"], wire(d.queued_at));
    assert_eq!(body["finishedAt"], wire(d.finished_at.expect("finished")));
    assert_eq!(body["updatedAt"], wire(d.updated_at));
    assert_eq!(body["startedBy"], d.started_by.as_str());
    assert_eq!(body["startedByUser"]["user_id"], d.started_by.as_str());
    assert_eq!(body["blueprintType"].as_str(), d.blueprint_type.as_deref());
    assert_eq!(body["triggerName"].as_str(), d.trigger_name.as_deref());
    assert!(body["planSummary"]["added"].is_u64());
    assert_eq!(body["error"], Value::Null);
    assert_eq!(body["output"], serde_json::json!({}));
}

#[tokio::test]
async fn plan_summaries_and_drift_flags_are_served_as_the_records_say() {
    let (sim, _) = sim();
    let router = sim.router();
    let deps = sim.deployments();
    let (env, _) = busiest(&sim);
    let (status, page) = get(
        &router,
        &format!("/environments/{env}/deployments?limit=100"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut checked = 0;
    for body in page.as_array().unwrap() {
        let d = deps.iter().find(|d| body["id"] == d.id.as_str()).unwrap();
        let summary = &body["planSummary"];
        match d.plan_summary {
            None => assert_eq!(summary, &Value::Null, "{}", d.id),
            Some(p) => {
                assert_eq!(summary["added"], p.added);
                assert_eq!(summary["changed"], p.changed);
                assert_eq!(summary["destroyed"], p.destroyed);
                assert_eq!(
                    summary.get("imported").and_then(Value::as_u64),
                    p.imported.map(u64::from)
                );
            }
        }
        assert_eq!(body["driftDetected"].as_bool(), d.drift_detected);
        checked += 1;
    }
    assert!(checked > 5, "{checked}");
    // Across the world: summaries only on successes; imported only (and sometimes 1) on
    // deploys; drift detections that succeeded found drift sometimes and none other times.
    for d in &deps {
        assert_eq!(
            d.plan_summary.is_some() || d.drift_detected.is_some(),
            d.status == "SUCCESS" && !["task", "moduleTest"].contains(&d.deployment_type.as_str()),
            "{d:?}"
        );
        let imported = d.plan_summary.and_then(|p| p.imported);
        assert_eq!(
            imported.is_some(),
            d.deployment_type == "deploy" && d.status == "SUCCESS",
            "{d:?}"
        );
    }
    assert!(
        deps.iter()
            .any(|d| d.plan_summary.and_then(|p| p.imported) == Some(1))
    );
    for flag in [true, false] {
        assert!(
            deps.iter()
                .any(|d| d.deployment_type == "driftDetection" && d.drift_detected == Some(flag)),
            "a drift detection with driftDetected {flag}"
        );
    }
}

#[test]
fn cost_amounts_are_strings_for_some_deployments_and_numbers_for_others() {
    let (sim, _) = sim();
    let world = lock(&sim.inner.world);
    let mut kinds = HashSet::new();
    for env in &world.environments {
        for d in &env.deployments {
            let v = serde_json::to_value(json::DeploymentJson::new(&world, env, d)).expect("json");
            let amount = &v["costEstimation"]["totalMonthlyCost"];
            if !amount.is_null() {
                kinds.insert(if amount.is_string() {
                    "string"
                } else {
                    "number"
                });
            }
        }
    }
    assert_eq!(kinds, HashSet::from(["string", "number"]));
}

#[tokio::test]
async fn filters_match_types_statuses_and_users_exactly() {
    type Keep<'a> = Box<dyn Fn(&SimDeployment) -> bool + 'a>;
    let (sim, _) = sim();
    let router = sim.router();
    let (env, truth) = busiest(&sim);
    let user = truth[0].started_by.clone();
    let cases: [(String, Keep<'_>); 4] = [
        (
            "deploymentTypes=prPlan,driftDetection".to_owned(),
            Box::new(|d| matches!(d.deployment_type.as_str(), "prPlan" | "driftDetection")),
        ),
        (
            "statuses=SUCCESS".to_owned(),
            Box::new(|d| d.status == "SUCCESS"),
        ),
        (
            format!("userIds={user}"),
            Box::new(move |d| d.started_by == user),
        ),
        ("deploymentTypes=noSuchType".to_owned(), Box::new(|_| false)),
    ];
    for (query, keep) in &cases {
        let (status, page) =
            get(&router, &format!("/environments/{env}/deployments?{query}")).await;
        assert_eq!(status, StatusCode::OK);
        let expected: Vec<_> = truth
            .iter()
            .filter(|d| keep(d))
            .map(|d| d.id.clone())
            .collect();
        assert_eq!(ids(&page), expected, "{query}");
    }
}

#[tokio::test]
async fn requests_without_or_with_a_wrong_key_are_401_and_recorded() {
    let (sim, _) = sim();
    let router = sim.router();
    let (status, _, _) = call(&router, "/organizations", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(&router, "/organizations", Some(&basic("demo-key", "wrong"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = call(
        &router,
        "/organizations?x=1",
        Some(&basic("demo-key", "demo-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let seen: Vec<_> = sim
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.query, r.status, r.at))
        .collect();
    let record = |q: &str, s| {
        (
            "GET".to_owned(),
            "/organizations".to_owned(),
            q.to_owned(),
            s,
            start(),
        )
    };
    assert_eq!(
        seen,
        vec![record("", 401), record("", 401), record("x=1", 200)]
    );
    sim.clear_requests();
    assert_eq!(sim.requests(), vec![]);
}

#[tokio::test]
async fn every_route_checks_the_key_before_looking_anything_up() {
    let (sim, _) = sim();
    let router = sim.router();
    for uri in [
        "/projects",
        "/environments?organizationId=nope",
        "/environments/nope/deployments?limit=500",
        "/environments/deployments/nope",
    ] {
        let (status, _, body) = call(&router, uri, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
        let body: Value = serde_json::from_slice(&body).expect("json error body");
        assert_eq!(body["statusCode"], 401);
    }
}

async fn exhaust(router: &Router, path: &str) {
    for i in 0..1000 {
        let (status, _) = get(router, path).await;
        assert_eq!(status, StatusCode::OK, "request {i}");
    }
}

#[tokio::test]
async fn the_rate_limit_is_per_path_and_says_when_to_retry() {
    let (sim, clock) = sim();
    let router = sim.router();
    exhaust(&router, "/organizations").await;
    clock.advance(Duration::from_millis(20_500));
    let auth = basic("demo-key", "demo-secret");
    let (status, headers, _) = call(&router, "/organizations", Some(&auth)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "40");
    let org = sim.organization_id();
    let (status, _) = get(&router, &format!("/projects?organizationId={org}")).await;
    assert_eq!(status, StatusCode::OK);
    clock.advance(Duration::from_secs(40));
    let (status, _) = get(&router, "/organizations").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.requests().iter().filter(|r| r.status == 429).count(), 1);
}

#[tokio::test]
async fn retry_after_is_left_out_when_configured_so() {
    let (sim, _) = sim_with(SimConfig {
        send_retry_after: false,
        rate_limit_per_minute: 1000,
        ..SimConfig::default()
    });
    let router = sim.router();
    exhaust(&router, "/organizations").await;
    let (status, headers, _) = call(
        &router,
        "/organizations",
        Some(&basic("demo-key", "demo-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers.get(header::RETRY_AFTER), None);
}

#[tokio::test]
async fn faults_apply_exactly_count_times_to_matching_paths() {
    let (sim, _) = sim();
    let router = sim.router();
    let org = sim.organization_id();
    let projects = format!("/projects?organizationId={org}");
    sim.inject(Fault {
        path_prefix: Some("/projects".to_owned()),
        kind: FaultKind::Status(503),
        count: 2,
    });
    sim.inject(Fault {
        path_prefix: None,
        kind: FaultKind::RateLimited {
            retry_after: Some(7),
        },
        count: 1,
    });
    sim.inject(Fault {
        path_prefix: Some("/organizations".to_owned()),
        kind: FaultKind::Garbage,
        count: 1,
    });
    sim.inject(Fault {
        path_prefix: Some("/organizations".to_owned()),
        kind: FaultKind::Unauthorized,
        count: 1,
    });
    let auth = basic("demo-key", "demo-secret");
    let mut got = Vec::new();
    for uri in [
        &projects,
        &projects,
        &projects,
        "/organizations",
        "/organizations",
        "/organizations",
    ] {
        let (status, headers, body) = call(&router, uri, Some(&auth)).await;
        let json = serde_json::from_slice::<Value>(&body).is_ok();
        got.push((
            status.as_u16(),
            headers.get(header::RETRY_AFTER).cloned(),
            json,
        ));
    }
    let seven = Some(header::HeaderValue::from_static("7"));
    assert_eq!(
        got,
        vec![
            (503, None, true),
            (503, None, true),
            (429, seven, true),
            (200, None, false),
            (401, None, true),
            (200, None, true),
        ]
    );
}

#[tokio::test]
async fn a_delay_fault_answers_normally_after_a_real_sleep() {
    let (sim, _) = sim();
    let router = sim.router();
    sim.inject(Fault {
        path_prefix: None,
        kind: FaultKind::Delay(Duration::from_millis(200)),
        count: 1,
    });
    let before = std::time::Instant::now();
    let (status, _) = get(&router, "/organizations").await;
    assert_eq!(status, StatusCode::OK);
    assert!(before.elapsed() >= Duration::from_millis(200));
    let before = std::time::Instant::now();
    get(&router, "/organizations").await;
    assert!(before.elapsed() < Duration::from_millis(200));
}

#[test]
fn a_paused_world_stands_still_and_resumes_without_a_burst() {
    let (sim, clock) = sim();
    sim.set_paused(true);
    let frozen = (sim.deployments(), sim.environments());
    clock.advance(6 * HOUR);
    assert!((sim.deployments(), sim.environments()) == frozen);
    sim.set_paused(false);
    assert!((sim.deployments(), sim.environments()) == frozen);
    clock.advance(Duration::from_secs(60));
    let changed = sim
        .deployments()
        .iter()
        .filter(|d| !frozen.0.contains(d))
        .count();
    assert!(
        changed < 10,
        "{changed} runs changed in the minute after resuming"
    );
    clock.advance(6 * HOUR);
    assert!(sim.deployments() != frozen.0);
}

#[test]
fn old_finished_deployments_are_dropped_but_latest_ones_kept() {
    let (sim, clock) = sim();
    for _ in 0..(24 * 4) {
        clock.advance(HOUR);
        sim.advance();
    }
    let cutoff = env0_clock::sub(clock.now(), 72 * HOUR);
    let latest: HashSet<_> = sim
        .environments()
        .into_iter()
        .filter_map(|e| e.latest_deployment_log_id)
        .collect();
    let deps = sim.deployments();
    let old: Vec<_> = deps.iter().filter(|d| d.created_at < cutoff).collect();
    assert!(
        old.iter()
            .all(|d| latest.contains(&d.id) || d.status == "WAITING_FOR_USER")
    );
    assert!(
        deps.len() < 150 * 72 / 2 + 200,
        "{} deployments kept",
        deps.len()
    );
}

#[tokio::test]
async fn serve_answers_on_a_real_socket_and_stops_on_shutdown() {
    let (sim, _) = sim();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sim.clone().serve(listener, async {
        stopped.await.ok();
    }));
    let orgs: Value = reqwest::Client::new()
        .get(format!("http://{addr}/organizations"))
        .basic_auth("demo-key", Some("demo-secret"))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(ids(&orgs), vec![sim.organization_id()]);
    stop.send(()).expect("server listening");
    server.await.expect("joined").expect("served");
}

#[test]
fn generating_the_default_world_takes_well_under_a_second() {
    let before = std::time::Instant::now();
    let (sim, _) = sim();
    let took = before.elapsed();
    // About 30 ms in a debug build, under 10 ms in release.
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(sim.deployments().len() > 3000);
}

#[test]
fn a_run_created_while_another_is_unfinished_stays_queued_until_it_ends() {
    let (sim, _) = sim();
    let deps = sim.deployments();
    // Queue delays are at most two minutes: a longer wait means the run waited its turn.
    let waited: Vec<_> = deps
        .iter()
        .filter(|d| {
            d.started_at
                .is_some_and(|s| env0_clock::elapsed(d.queued_at, s) > Duration::from_secs(120))
        })
        .collect();
    assert!(!waited.is_empty());
    for d in waited {
        let started = d.started_at.expect("filtered on started");
        let blocker = deps.iter().find(|o| {
            o.environment_id == d.environment_id
                && o.created_at <= d.created_at
                && o.id != d.id
                && o.updated_at <= started
                && o.updated_at > d.queued_at
        });
        assert!(blocker.is_some(), "nothing ran before {d:?}");
    }
}

#[test]
fn time_scale_shortens_queues_and_runs() {
    let longest_pr_plan = |time_scale| {
        let (sim, _) = sim_with(SimConfig {
            time_scale,
            ..SimConfig::default()
        });
        sim.deployments()
            .iter()
            .filter(|d| d.deployment_type == "prPlan")
            .filter_map(|d| Some(env0_clock::elapsed(d.started_at?, d.finished_at?)))
            .max()
            .expect("finished prPlans")
    };
    // prPlans run 20 s to 5 min and never wait for approval.
    let normal = longest_pr_plan(1.0);
    assert!(normal > Duration::from_secs(30) && normal <= Duration::from_secs(300));
    assert!(longest_pr_plan(0.1) <= Duration::from_secs(30));
}

#[tokio::test]
async fn a_project_s_environments_are_paged_in_listing_order_with_sub_environments_on_request() {
    let (sim, _) = sim_with(SimConfig {
        environments: 60,
        projects: 4,
        sub_environments: 6,
        ..SimConfig::default()
    });
    let router = sim.router();
    let org = sim.organization_id();
    let truth = sim.environments();
    for (project, _) in sim.projects() {
        for (subs, names_subs) in [("true", true), ("false", false)] {
            let mut listed = Vec::new();
            for offset in (0..40).step_by(7) {
                let (status, page) = get(
                    &router,
                    &format!(
                        "/environments?organizationId={org}&projectId={project}\
                         &includeSubEnvironments={subs}&limit=7&offset={offset}"
                    ),
                )
                .await;
                assert_eq!(status, StatusCode::OK);
                listed.extend(ids(&page));
            }
            let expected: Vec<_> = truth
                .iter()
                .filter(|e| e.project_id == project)
                .filter(|e| names_subs || !e.name.ends_with("-workflow-sub"))
                .map(|e| e.id.clone())
                .collect();
            assert!(!expected.is_empty());
            assert_eq!(listed, expected, "project {project}, subs {subs}");
        }
    }
    let (_, page) = get(
        &router,
        &format!("/environments?organizationId={org}&projectId=no-such-project"),
    )
    .await;
    assert!(ids(&page).is_empty());
    let (_, page) = get(
        &router,
        &format!("/environments?organizationId={org}&offset=1000000"),
    )
    .await;
    assert!(ids(&page).is_empty());
}

#[test]
fn the_large_preset_is_ten_thousand_environments_with_long_waits_beside_later_runs() {
    let (sim, _) = sim_with(SimConfig::large());
    let now = sim.now();
    let envs = sim.environments();
    assert_eq!(envs.len(), 10_000);
    assert_eq!(sim.projects().len(), 500);
    assert_eq!(
        envs.iter()
            .map(|e| &e.project_id)
            .collect::<HashSet<_>>()
            .len(),
        500
    );
    let latest: HashSet<&str> = envs
        .iter()
        .filter_map(|e| e.latest_deployment_log_id.as_deref())
        .collect();
    let deps = sim.deployments();
    let ago = |hours: u32| env0_clock::sub(now, HOUR * hours);
    let last_day: Vec<_> = deps.iter().filter(|d| d.created_at >= ago(24)).collect();
    assert!(
        (170_000..=230_000).contains(&last_day.len()),
        "{} deployments created in the last 24 h",
        last_day.len()
    );
    // Skewed as real organisations are: a tenth of the environments (the busy ones and the
    // busiest active ones) run more than half of the runs, the quieter half under a twentieth.
    let mut per_env: HashMap<&str, usize> = HashMap::new();
    for d in &last_day {
        *per_env.entry(d.environment_id.as_str()).or_default() += 1;
    }
    let mut counts: Vec<usize> = envs
        .iter()
        .map(|e| per_env.get(e.id.as_str()).copied().unwrap_or(0))
        .collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let busiest_tenth: usize = counts[..1000].iter().sum();
    let quieter_half: usize = counts[5000..].iter().sum();
    assert!(
        busiest_tenth * 2 > last_day.len() && quieter_half * 20 < last_day.len(),
        "busiest tenth {busiest_tenth}, quieter half {quieter_half} of {}",
        last_day.len()
    );
    let unfinished = |d: &SimDeployment| {
        matches!(
            d.status.as_str(),
            "QUEUED" | "IN_PROGRESS" | "WAITING_FOR_USER" | "ABORTING"
        )
    };
    // Unfinished for over an hour and not their environment's latest.
    let old_unfinished: Vec<_> = deps
        .iter()
        .filter(|d| unfinished(d) && d.created_at < ago(1) && !latest.contains(d.id.as_str()))
        .collect();
    assert!(
        old_unfinished.len() >= 500,
        "{} old unfinished runs",
        old_unfinished.len()
    );
    let waiting = deps
        .iter()
        .filter(|d| d.status == "WAITING_FOR_USER" && d.updated_at < ago(2))
        .count();
    assert!(
        waiting >= 200,
        "{waiting} runs waiting for approval over 2 h"
    );
    // Plans and drift detections never move the latest; some stay unfinished for hours while a
    // later run of their environment has already finished.
    for kind in ["prPlan", "driftDetection"] {
        let of_kind: Vec<_> = last_day
            .iter()
            .filter(|d| d.deployment_type == kind)
            .collect();
        assert!(of_kind.len() > 10_000, "{} {kind} runs", of_kind.len());
        assert!(of_kind.iter().all(|d| !latest.contains(d.id.as_str())));
    }
    let mut last_finished: std::collections::HashMap<&str, Timestamp> =
        std::collections::HashMap::new();
    for d in deps.iter().filter(|d| d.finished_at.is_some()) {
        let at = last_finished
            .entry(d.environment_id.as_str())
            .or_insert(d.created_at);
        *at = (*at).max(d.created_at);
    }
    let overtaken = old_unfinished
        .iter()
        .filter(|d| matches!(d.deployment_type.as_str(), "prPlan" | "driftDetection"))
        .filter(|d| {
            last_finished
                .get(d.environment_id.as_str())
                .is_some_and(|at| *at > d.created_at)
        })
        .count();
    assert!(overtaken >= 50, "{overtaken} plans overtaken by later runs");
}

#[tokio::test]
async fn a_validating_api_refuses_what_env0s_clients_do_not_send_and_lists_sub_environments() {
    let (sim, _) = sim_with(SimConfig {
        validating_api: true,
        sub_environments: 3,
        ..SimConfig::default()
    });
    let router = sim.router();
    let org = sim.organization_id();
    let (env, _) = busiest(&sim);
    let deployment = sim.deployments()[0].id.clone();
    let accepted = [
        "/organizations".to_owned(),
        format!("/projects?organizationId={org}"),
        format!(
            "/environments?organizationId={org}&projectId=x&name=n&isActive=true&limit=5&offset=0"
        ),
        format!(
            "/environments/{env}/deployments?limit=5&offset=0&fromDate=2026-07-01T00:00:00.000Z&toDate=2026-07-01T00:00:00.000Z&deploymentTypes=deploy&statuses=SUCCESS&userIds=u"
        ),
        format!("/environments/deployments/{deployment}"),
    ];
    for uri in &accepted {
        let (status, _) = get(&router, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}");
    }
    let refused = [
        ("/organizations?limit=5".to_owned(), "limit"),
        (format!("/projects?organizationId={org}&limit=5"), "limit"),
        (
            format!("/environments?organizationId={org}&includeSubEnvironments=true"),
            "includeSubEnvironments",
        ),
        (format!("/environments/{env}/deployments?sort=asc"), "sort"),
        (
            format!("/environments/deployments/{deployment}?organizationId={org}"),
            "organizationId",
        ),
    ];
    for (uri, name) in &refused {
        let (status, body) = get(&router, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(
            body["message"],
            format!("\"{name}\" is not allowed"),
            "{uri}"
        );
    }
    // Without the parameter, the sub-environments are listed (the only way to reach them).
    let (_, page) = get(
        &router,
        &format!("/environments?organizationId={org}&limit=100&offset=100"),
    )
    .await;
    let listed = ids(&page).len() + 100;
    assert_eq!(listed, SimConfig::default().environments + 3);
}

#[tokio::test]
async fn the_date_header_tells_env0s_clock_or_is_left_out() {
    for send in [true, false] {
        let clock = Arc::new(ManualClock::new(start()));
        let sim = Simulator::new(
            SimConfig {
                send_date_header: send,
                clock_offset: jiff::SignedDuration::from_mins(10),
                environments: 5,
                ..SimConfig::default()
            },
            clock,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sim.serve(listener, async move {
            let _ = stopped.await;
        }));
        let resp = reqwest::Client::new()
            .get(format!("http://{addr}/organizations"))
            .basic_auth("demo-key", Some("demo-secret"))
            .send()
            .await
            .expect("answer");
        assert_eq!(resp.status(), 200);
        let date = resp
            .headers()
            .get(header::DATE)
            .map(|v| v.to_str().expect("ascii").to_owned());
        if send {
            assert_eq!(date.as_deref(), Some("Wed, 01 Jul 2026 12:10:00 GMT"));
        } else {
            assert_eq!(date, None, "no Date header at all");
        }
        let _ = stop.send(());
        task.await.expect("joined").expect("served");
    }
}
