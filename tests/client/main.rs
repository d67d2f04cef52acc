//! The env0 client against a fake env0 on a real socket: paging, query strings, headers,
//! retries, error mapping, decoding, the observer and the request budget.

mod helpers;

use std::sync::Arc;
use std::time::{Duration, Instant};

use env0_exporter::client::RATE_WINDOW;
use env0_exporter::client::{
    Client, ClientConfig, DeploymentQuery, Endpoint, Error, Reason, RequestOutcome,
};
use env0_exporter::clock::{Clock, SystemClock};
use env0_exporter::ratelimit::SlidingWindow;
use helpers::{
    FakeEnv0, Reply, client, client_on, config, finish, ids_page, manual_clock, rate_limited_once,
    settle, spawn_organizations, ts,
};

fn offset(seen: &helpers::Seen) -> usize {
    seen.param("offset")
        .expect("offset sent")
        .parse()
        .expect("numeric offset")
}

/// The offsets of the plain environment listing's pages, after checking that the listing
/// was probed exactly once with `includeSubEnvironments=true`, on the page past its end.
fn plain_listing_offsets(server: &FakeEnv0, listed: usize) -> Vec<usize> {
    let (probes, plain): (Vec<_>, Vec<_>) = server
        .requests()
        .into_iter()
        .partition(|r| r.param("includeSubEnvironments").is_some());
    assert_eq!(probes.len(), 1, "one probe per process");
    assert_eq!(probes[0].param("includeSubEnvironments"), Some("true"));
    assert_eq!(
        offset(&probes[0]),
        listed,
        "the probe reads past the plain listing"
    );
    plain.iter().map(offset).collect()
}

/// Serves `total` environments in pages of the requested size.
fn environments_of(total: usize) -> impl Fn(&helpers::Seen, usize) -> Reply {
    move |seen, _| {
        let start = offset(seen).min(total);
        let limit: usize = seen.param("limit").expect("limit").parse().expect("limit");
        Reply::json(ids_page("env-", start..(start + limit).min(total)))
    }
}

#[tokio::test]
async fn environments_are_paged_by_offset_until_a_short_page() {
    let server = FakeEnv0::start(environments_of(250)).await;
    let (client, _) = client(&server);

    let envs = client.environments("org-1").await.expect("environments");

    assert_eq!(envs.len(), 250);
    assert_eq!(envs[0].id, "env-0");
    assert_eq!(envs[249].id, "env-249");
    let seen = server.requests();
    assert_eq!(seen.len(), 4, "three pages and the probe");
    assert_eq!(plain_listing_offsets(&server, 250), [0, 100, 200]);
    for request in &seen {
        assert_eq!(request.path, "/environments");
        assert_eq!(request.param("organizationId"), Some("org-1"));
        assert_eq!(request.param("limit"), Some("100"));
    }
}

#[tokio::test]
async fn an_exact_multiple_of_the_page_size_ends_with_an_empty_third_page() {
    let server = FakeEnv0::start(environments_of(200)).await;
    let (client, _) = client(&server);

    let envs = client.environments("org-1").await.expect("environments");

    assert_eq!(envs.len(), 200);
    assert_eq!(plain_listing_offsets(&server, 200), [0, 100, 200]);
}

#[tokio::test]
async fn the_next_organisation_listing_is_collected_into_a_list_sized_by_the_last() {
    let server = FakeEnv0::start(environments_of(90)).await;
    let (client, _) = client(&server);

    let first = client.environments("org-1").await.expect("environments");
    let second = client.environments("org-1").await.expect("environments");

    // The same listing both times; the second made room for the first's 90 and a page more
    // from the start (grown from empty, it would hold 128 at most).
    assert_eq!(first.len(), 90);
    assert_eq!(second, first);
    assert!(second.capacity() >= 190, "{}", second.capacity());
}

#[tokio::test]
async fn duplicates_across_pages_are_dropped_and_the_first_occurrence_wins() {
    // Five new environments arrive after the first page: the second page repeats 95..100.
    let server = FakeEnv0::start(|seen, _| match offset(seen) {
        0 => Reply::json(ids_page("env-", 0..100)),
        100 => {
            Reply::json(ids_page("env-", 95..195).replace(r#""name":"n95""#, r#""name":"moved""#))
        }
        _ => Reply::json(ids_page("env-", 195..210)),
    })
    .await;
    let (client, _) = client(&server);

    let envs = client.environments("org-1").await.expect("environments");

    assert_eq!(envs.len(), 210);
    let env95: Vec<_> = envs.iter().filter(|e| e.id == "env-95").collect();
    assert_eq!(env95.len(), 1);
    assert_eq!(env95[0].name.as_deref(), Some("n95"));
    assert_eq!(
        plain_listing_offsets(&server, 210),
        [0, 100, 200],
        "the offset moves by page length, not by new ids"
    );
}

#[tokio::test]
async fn deployments_send_the_exact_date_format_and_the_filters_when_given() {
    let server = FakeEnv0::start(|_, _| Reply::json(ids_page("dep-", 0..3))).await;
    let (client, _) = client(&server);
    let query = DeploymentQuery {
        from: ts("2026-07-01T14:02:10Z"),
        to: ts("2026-07-01T15:00:00.123456Z"),
        deployment_types: vec!["deploy".into(), "destroy".into()],
        statuses: vec!["SUCCESS".into(), "FAILURE".into()],
        user_ids: vec!["auth0|a".into(), "auth0|b".into()],
    };

    let deployments = client
        .deployments("env-1", &query)
        .await
        .expect("deployments");

    assert_eq!(deployments.len(), 3);
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.path, "/environments/env-1/deployments");
    assert_eq!(request.param("fromDate"), Some("2026-07-01T14:02:10.000Z"));
    assert_eq!(request.param("toDate"), Some("2026-07-01T15:00:00.123Z"));
    assert_eq!(request.param("deploymentTypes"), Some("deploy,destroy"));
    assert_eq!(request.param("statuses"), Some("SUCCESS,FAILURE"));
    assert_eq!(request.param("userIds"), Some("auth0|a,auth0|b"));
    assert_eq!(request.param("limit"), Some("100"));
    assert_eq!(request.param("offset"), Some("0"));
}

#[tokio::test]
async fn deployments_without_filters_send_only_dates_and_paging() {
    let server = FakeEnv0::start(|_, _| Reply::json("[]")).await;
    let (client, _) = client(&server);
    let query = DeploymentQuery::between(ts("2026-07-01T00:00:00Z"), ts("2026-07-02T00:00:00Z"));

    let deployments = client
        .deployments("env-1", &query)
        .await
        .expect("deployments");

    assert!(deployments.is_empty());
    let seen = server.requests();
    let names: Vec<_> = seen[0].query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["limit", "offset", "fromDate", "toDate"]);
    assert_eq!(seen[0].param("toDate"), Some("2026-07-02T00:00:00.000Z"));
}

#[tokio::test]
async fn deployments_are_paged_and_deduplicated_like_environments() {
    let server = FakeEnv0::start(|seen, _| match offset(seen) {
        0 => Reply::json(ids_page("dep-", 0..100)),
        100 => Reply::json(ids_page("dep-", 99..199)),
        _ => Reply::json(ids_page("dep-", 199..230)),
    })
    .await;
    let (client, recorder) = client(&server);
    let query = DeploymentQuery::between(ts("2026-07-01T00:00:00Z"), ts("2026-07-02T00:00:00Z"));

    let deployments = client
        .deployments("env-1", &query)
        .await
        .expect("deployments");

    assert_eq!(deployments.len(), 230);
    assert_eq!(
        recorder.attempts(),
        vec![(Endpoint::Deployments, RequestOutcome::Status(200)); 3]
    );
}

#[tokio::test]
async fn every_request_carries_basic_auth_the_user_agent_and_accept_json() {
    let server = FakeEnv0::start(|_, _| Reply::json(r#"[{"id":"org-1","name":"Acme"}]"#)).await;
    let (client, _) = client(&server);

    let orgs = client.organizations().await.expect("organizations");

    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0].name.as_deref(), Some("Acme"));
    let request = &server.requests()[0];
    assert_eq!(request.path, "/organizations");
    // base64("key-id:s3cret"), computed outside the code under test.
    assert_eq!(
        request.header("authorization"),
        Some("Basic a2V5LWlkOnMzY3JldA==")
    );
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("env0-exporter/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(request.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn a_base_url_with_a_path_prefix_keeps_the_prefix_with_or_without_a_trailing_slash() {
    let server = FakeEnv0::start(|_, _| Reply::json("[]")).await;
    for prefix in ["env0/", "env0"] {
        let base = server.base_url.join(prefix).expect("prefixed url");
        let (client, _) = client_on(config(&base), Arc::new(SystemClock));
        client.projects("org 1").await.expect("projects");
    }
    let seen = server.requests();
    assert_eq!(seen[0].path, "/env0/projects");
    assert_eq!(seen[1].path, "/env0/projects");
    assert_eq!(seen[0].param("organizationId"), Some("org 1"));
}

#[tokio::test]
async fn ids_are_percent_encoded_as_one_path_segment() {
    let server = FakeEnv0::start(|_, _| Reply::json(r#"{"id":"a/b"}"#)).await;
    let (client, recorder) = client(&server);

    let log = client.deployment("a/b").await.expect("deployment");

    assert_eq!(log.id, "a/b");
    assert_eq!(server.requests()[0].path, "/environments/deployments/a%2Fb");
    assert_eq!(
        recorder.attempts(),
        [(Endpoint::Deployments, RequestOutcome::Status(200))]
    );
}

#[tokio::test]
async fn projects_are_read_with_their_names_and_extra_fields_ignored() {
    let server = FakeEnv0::start(|_, _| {
        Reply::json(
            r#"[{"id":"p1","name":"Core","organizationId":"org-1","isArchived":false,"parentProjectId":null},
                {"id":"p2","name":"Old","organizationId":"org-1","isArchived":true,"parentProjectId":"p1","extra":[1]},
                {"id":"p3","name":null}]"#,
        )
    })
    .await;
    let (client, _) = client(&server);

    let projects = client.projects("org-1").await.expect("projects");

    let names: Vec<_> = projects
        .iter()
        .map(|p| (p.id.as_str(), p.name.as_deref()))
        .collect();
    assert_eq!(
        names,
        [("p1", Some("Core")), ("p2", Some("Old")), ("p3", None)]
    );
}

#[tokio::test]
async fn an_environment_page_with_unknown_fields_nulls_string_costs_and_mixed_timestamps_reads() {
    let server = FakeEnv0::start(|_, _| {
        Reply::json(
            r#"[{"id":"e1","name":"prod","projectId":"p1","organizationId":"org-1","status":"ACTIVE",
                 "driftStatus":"OK","latestDeploymentLogId":"d1","updatedAt":"2026-07-01T13:45:31Z",
                 "isArchived":false,"somethingNew":{"deep":true},
                 "latestDeploymentLog":{"id":"d1","type":"deploy","status":"SUCCESS",
                    "createdAt":"2026-07-01T13:44:32.000Z","startedAt":"2026-07-01T13:44:34Z",
                    "finishedAt":null,"costEstimation":{"totalMonthlyCost":"12.5","monthlyCostDiff":-2},
                    "planSummary":null,"error":{"message":"boom"},"resourceCount":null}},
                {"id":"e2","name":null,"status":null,"updatedAt":"garbage","latestDeploymentLog":null,
                 "isArchived":null}]"#,
        )
    })
    .await;
    let (client, _) = client(&server);

    let envs = client.environments("org-1").await.expect("environments");

    assert_eq!(envs.len(), 2);
    let e1 = &envs[0];
    assert_eq!(e1.updated_at, Some(ts("2026-07-01T13:45:31Z")));
    assert_eq!(e1.drift_status.as_deref(), Some("OK"));
    let log = e1.latest_deployment_log.as_ref().expect("embedded log");
    assert_eq!(log.created_at, Some(ts("2026-07-01T13:44:32Z")));
    assert_eq!(log.started_at, Some(ts("2026-07-01T13:44:34Z")));
    assert_eq!(log.finished_at, None);
    assert_eq!(log.plan_summary, None);
    let e2 = &envs[1];
    assert_eq!(
        (e2.name.as_deref(), e2.updated_at, e2.is_archived),
        (None, None, false)
    );
}

#[tokio::test]
async fn a_429_with_retry_after_pauses_the_whole_budget_until_then() {
    let server = FakeEnv0::start(rate_limited_once(Some("1"))).await;
    let clock = manual_clock();
    let (client, recorder) = client_on(config(&server.base_url), clock.clone());
    let task = spawn_organizations(&client);

    recorder.wait_for(1).await;
    settle().await;
    clock.advance(Duration::from_millis(999));
    settle().await;
    assert_eq!(server.count(), 1, "no retry before the second is over");
    assert!(!task.is_finished());
    clock.advance(Duration::from_millis(1));
    let result = finish(task, "retried once the pause ended").await;

    assert!(result.expect("success after the pause").is_empty());
    assert_eq!(server.count(), 2);
    assert_eq!(recorder.attempts(), helpers::LIMITED_THEN_OK);
}

#[tokio::test]
async fn a_429_with_retry_after_waits_at_least_that_long_on_the_system_clock() {
    let server = FakeEnv0::start(rate_limited_once(Some("1"))).await;
    let (client, _) = client(&server);
    let started = Instant::now();

    client
        .organizations()
        .await
        .expect("success after the pause");

    assert!(
        started.elapsed() >= Duration::from_millis(990),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_429_with_an_http_date_retry_after_pauses_until_that_date() {
    let server = FakeEnv0::start(rate_limited_once(Some("Wed, 01 Jul 2026 14:00:30 GMT"))).await;
    let clock = manual_clock(); // 14:00:00
    let (client, recorder) = client_on(config(&server.base_url), clock.clone());
    let task = spawn_organizations(&client);

    recorder.wait_for(1).await;
    settle().await;
    clock.advance(Duration::from_secs(29));
    settle().await;
    assert_eq!(server.count(), 1);
    clock.advance(Duration::from_secs(1));
    finish(task, "retried at the date").await.expect("success");
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn a_429_without_retry_after_backs_off_and_then_succeeds() {
    let server = FakeEnv0::start(rate_limited_once(None)).await;
    let clock = manual_clock();
    let cfg = ClientConfig {
        retry_base_delay: Duration::from_secs(60),
        retry_max_delay: Duration::from_secs(60),
        ..config(&server.base_url)
    };
    let (client, recorder) = client_on(cfg, clock.clone());

    let waiting = helpers::spawn_organizations(&client);
    settle().await;
    // Backing off on the clock: no retry until it moves (a jittered wait of exactly 0 ns
    // out of up to 60 s is the only way through).
    assert_eq!(server.count(), 1);
    clock.advance(Duration::from_secs(60));
    let orgs = finish(waiting, "retry after the back-off")
        .await
        .expect("success after back-off");

    assert!(orgs.is_empty());
    assert_eq!(recorder.attempts(), helpers::LIMITED_THEN_OK);
}

#[tokio::test]
async fn a_429_forever_is_rate_limited_after_max_retries_plus_one_attempts() {
    let server = FakeEnv0::start(|_, _| Reply::status(429)).await;
    let (client, recorder) = client(&server);

    let err = client.projects("org-1").await.expect_err("rate limited");

    assert!(
        matches!(&err, Error::RateLimited { path } if path == "/projects"),
        "{err:?}"
    );
    assert_eq!(err.reason(), Reason::RateLimited);
    assert_eq!(server.count(), 5);
    assert_eq!(
        recorder.attempts(),
        vec![(Endpoint::Projects, RequestOutcome::Status(429)); 5]
    );
}

#[tokio::test]
async fn a_503_twice_then_200_succeeds_on_the_third_attempt() {
    let server = FakeEnv0::start(|_, n| match n {
        0 | 1 => Reply::status(503),
        _ => Reply::json(r#"{"id":"d1","status":"SUCCESS"}"#),
    })
    .await;
    let (client, recorder) = client(&server);

    let log = client
        .deployment("d1")
        .await
        .expect("success on the third attempt");

    assert_eq!(log.status.as_deref(), Some("SUCCESS"));
    assert_eq!(
        recorder.attempts(),
        [
            (Endpoint::Deployments, RequestOutcome::Status(503)),
            (Endpoint::Deployments, RequestOutcome::Status(503)),
            (Endpoint::Deployments, RequestOutcome::Status(200))
        ]
    );
}

#[tokio::test]
async fn a_500_forever_is_a_server_error_after_every_retry() {
    let server = FakeEnv0::start(|_, _| Reply::status(500)).await;
    let (client, recorder) = client(&server);

    let err = client.organizations().await.expect_err("server error");

    assert!(matches!(err, Error::Server { status: 500, .. }), "{err:?}");
    assert_eq!(err.reason(), Reason::ServerError);
    assert_eq!(recorder.attempts().len(), 5);
}

#[tokio::test]
async fn a_401_is_an_auth_error_at_once_without_a_retry_or_the_secret_in_the_message() {
    let server = FakeEnv0::start(|_, _| Reply::status(401)).await;
    let (client, recorder) = client(&server);

    let err = client.organizations().await.expect_err("auth error");

    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    assert_eq!(err.reason(), Reason::Auth);
    assert_eq!(
        err.to_string(),
        r#"env0 rejected the api key on /organizations (401): {"message":"status 401"}"#
    );
    assert!(!format!("{err} {err:?}").contains(helpers::SECRET));
    assert_eq!(
        recorder.attempts(),
        [(Endpoint::Organizations, RequestOutcome::Status(401))]
    );
}

#[tokio::test]
async fn a_403_is_forbidden_at_once() {
    let server = FakeEnv0::start(|_, _| Reply::status(403)).await;
    let (client, recorder) = client(&server);

    let err = client.projects("org-1").await.expect_err("forbidden");

    assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
    assert_eq!(err.reason(), Reason::Forbidden);
    assert_eq!(server.count(), 1);
    assert_eq!(
        recorder.attempts(),
        [(Endpoint::Projects, RequestOutcome::Status(403))]
    );
}

#[tokio::test]
async fn a_404_and_a_400_are_typed_at_once_without_retries() {
    let server = FakeEnv0::start(|seen, _| {
        if seen.path.starts_with("/environments/deployments/") {
            Reply::status(404)
        } else {
            Reply::status(400)
        }
    })
    .await;
    let (client, _) = client(&server);

    let missing = client.deployment("gone").await.expect_err("not found");
    let query = DeploymentQuery::between(ts("2026-07-01T00:00:00Z"), ts("2026-07-02T00:00:00Z"));
    let refused = client
        .deployments("env-1", &query)
        .await
        .expect_err("bad request");

    assert!(
        matches!(&missing, Error::NotFound { path, .. } if path == "/environments/deployments/gone")
    );
    assert!(
        matches!(&refused, Error::BadRequest { status: 400, message, .. } if message == "status 400"),
        "{refused:?}"
    );
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn malformed_json_is_a_decode_error_without_a_retry() {
    let server = FakeEnv0::start(|_, _| Reply::json(r#"[{"id":"org-1","#)).await;
    let (client, recorder) = client(&server);

    let err = client.organizations().await.expect_err("decode error");

    assert!(
        matches!(&err, Error::Decode { path, .. } if path == "/organizations"),
        "{err:?}"
    );
    assert_eq!(err.reason(), Reason::Decode);
    assert_eq!(
        recorder.attempts(),
        [(Endpoint::Organizations, RequestOutcome::Status(200))]
    );
}

#[tokio::test]
async fn a_listing_that_answers_an_object_instead_of_an_array_is_a_decode_error() {
    let server = FakeEnv0::start(|_, _| Reply::json(r#"{"items":[],"total":0}"#)).await;
    let (client, _) = client(&server);

    let err = client
        .environments("org-1")
        .await
        .expect_err("decode error");

    assert!(
        matches!(&err, Error::Decode { message, .. } if message.contains("expected a sequence")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_slow_server_times_out_after_the_request_timeout_and_its_retries() {
    let server = FakeEnv0::start(|_, _| Reply::json("[]").delayed(Duration::from_secs(3))).await;
    let cfg = ClientConfig {
        request_timeout: Duration::from_millis(200),
        max_retries: 1,
        ..config(&server.base_url)
    };
    let (client, recorder) = client_on(cfg, Arc::new(SystemClock));
    let started = Instant::now();

    let err = client.organizations().await.expect_err("timeout");

    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(err.reason(), Reason::Timeout);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        recorder.attempts(),
        [
            (Endpoint::Organizations, RequestOutcome::Timeout),
            (Endpoint::Organizations, RequestOutcome::Timeout)
        ]
    );
}

#[tokio::test]
async fn a_refused_connection_is_a_network_error_after_every_retry() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base: url::Url = format!("http://{}/", listener.local_addr().expect("addr"))
        .parse()
        .expect("url");
    drop(listener);
    let (client, recorder) = client_on(config(&base), Arc::new(SystemClock));

    let err = client.organizations().await.expect_err("network error");

    assert!(
        matches!(&err, Error::Network { path, .. } if path == "/organizations"),
        "{err:?}"
    );
    assert_eq!(err.reason(), Reason::Network);
    assert_eq!(
        recorder.attempts(),
        vec![(Endpoint::Organizations, RequestOutcome::Error); 5]
    );
}

#[tokio::test]
async fn the_observer_sees_each_endpoint_under_its_own_name() {
    let server = FakeEnv0::start(|seen, _| {
        if seen.path == "/environments/deployments/d1" {
            Reply::json(r#"{"id":"d1"}"#)
        } else {
            Reply::json("[]")
        }
    })
    .await;
    let (client, recorder) = client(&server);
    let query = DeploymentQuery::between(ts("2026-07-01T00:00:00Z"), ts("2026-07-02T00:00:00Z"));

    client.organizations().await.expect("organizations");
    client.projects("o").await.expect("projects");
    client.environments("o").await.expect("environments");
    client.deployments("e", &query).await.expect("deployments");
    client.deployment("d1").await.expect("deployment");

    let names: Vec<_> = recorder
        .attempts()
        .iter()
        .map(|(e, _)| e.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "organizations",
            "projects",
            "environments",
            // The once-per-process probe of includeSubEnvironments.
            "environments",
            "deployments",
            "deployments"
        ]
    );
}

/// A client with a budget of 5 requests per minute on a manual clock.
fn five_per_minute(server: &FakeEnv0) -> (Client, Arc<env0_exporter::clock::ManualClock>) {
    let clock = manual_clock();
    let (client, _) = helpers::client_with_budget(config(&server.base_url), 5, clock.clone());
    (client, clock)
}

#[tokio::test]
async fn the_sixth_request_of_a_five_per_minute_budget_waits_until_the_clock_frees_a_slot() {
    let server = FakeEnv0::start(|_, _| Reply::json("[]")).await;
    let (client, clock) = five_per_minute(&server);

    let mut remaining = vec![client.budget_remaining()];
    for _ in 0..5 {
        client.organizations().await.expect("within budget");
        remaining.push(client.budget_remaining());
    }
    assert_eq!(remaining, [5, 4, 3, 2, 1, 0]);

    let sixth = spawn_organizations(&client);
    settle().await;
    clock.advance(Duration::from_secs(59));
    settle().await;
    assert_eq!(server.count(), 5, "the sixth request waits for the window");
    assert!(!sixth.is_finished());
    clock.advance(Duration::from_secs(1));
    finish(sixth, "sent once a slot was free")
        .await
        .expect("success");
    assert_eq!(server.count(), 6);
    assert_eq!(
        client.requests_sent(),
        6,
        "counted where the budget is taken"
    );
    assert_eq!(client.budget_remaining(), 4, "five expired, one just taken");
}

#[tokio::test]
async fn with_a_deadline_the_sixth_request_fails_with_budget_exhausted_instead_of_waiting() {
    let server = FakeEnv0::start(|_, _| Reply::json("[]")).await;
    let (without_deadline, clock) = five_per_minute(&server);
    let client = without_deadline.with_deadline(Some(helpers::ts("2026-07-01T14:00:30Z")));

    for _ in 0..5 {
        client.organizations().await.expect("within budget");
    }
    let err = client
        .organizations()
        .await
        .expect_err("no budget before the deadline");

    assert!(err.budget(), "{err:?}");
    assert!(matches!(&err, Error::BudgetExhausted { path } if path == "/organizations"));
    assert_eq!(server.count(), 5);
    assert_eq!(clock.now(), ts("2026-07-01T14:00:00Z"), "nothing waited");

    let waiting = spawn_organizations(&without_deadline);
    settle().await;
    clock.advance(Duration::from_secs(60));
    finish(waiting, "without a deadline it waits")
        .await
        .expect("success");
}

#[tokio::test]
async fn a_retry_after_past_the_deadline_fails_at_once_as_rate_limited_and_keeps_the_budget_paused()
{
    let server = FakeEnv0::start(|_, _| Reply::status(429).header("retry-after", "30")).await;
    let clock = manual_clock();
    let (client, recorder) = client_on(config(&server.base_url), clock.clone());
    let client = client.with_deadline(Some(ts("2026-07-01T14:00:10Z")));

    let err = client
        .organizations()
        .await
        .expect_err("would wait past the deadline");

    assert!(matches!(err, Error::RateLimited { .. }), "{err:?}");
    assert_eq!(err.reason(), Reason::RateLimited);
    assert_eq!(
        recorder.attempts(),
        [(Endpoint::Organizations, RequestOutcome::Status(429))]
    );
    let err = client
        .projects("o")
        .await
        .expect_err("the whole budget is paused");
    assert!(err.budget(), "{err:?}");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn a_back_off_past_the_deadline_fails_at_once_with_the_server_error() {
    let server = FakeEnv0::start(|_, _| Reply::status(503)).await;
    let clock = manual_clock();
    let cfg = ClientConfig {
        retry_base_delay: Duration::from_secs(10),
        retry_max_delay: Duration::from_secs(10),
        ..config(&server.base_url)
    };
    let (client, _) = client_on(cfg, clock.clone());
    // One nanosecond of slack: any back-off but a jittered 0 ns passes the deadline, so this
    // fails if the back-off were skipped, not merely because the deadline is now.
    let client = client.with_deadline(Some(env0_exporter::clock::add(
        clock.now(),
        Duration::from_nanos(1),
    )));

    let err = client
        .organizations()
        .await
        .expect_err("no time to back off");

    assert!(matches!(err, Error::Server { status: 503, .. }), "{err:?}");
    assert_eq!(server.count(), 1);
}

#[tokio::test]
async fn a_config_that_cannot_work_is_rejected_up_front() {
    let base: url::Url = "http://127.0.0.1:9/".parse().expect("url");
    let clock: env0_exporter::clock::SharedClock = Arc::new(SystemClock);
    let observer = Arc::new(env0_exporter::client::NoopObserver);
    let budget = Arc::new(SlidingWindow::new(1000, RATE_WINDOW));
    let bad = [
        ClientConfig {
            request_timeout: Duration::ZERO,
            ..config(&base)
        },
        ClientConfig {
            api_key: String::new(),
            ..config(&base)
        },
        ClientConfig {
            base_url: "ftp://example.com/".parse().expect("url"),
            ..config(&base)
        },
        ClientConfig {
            base_url: "mailto:a@example.com".parse().expect("url"),
            ..config(&base)
        },
    ];
    for cfg in bad {
        let err =
            Client::new(cfg, budget.clone(), clock.clone(), observer.clone()).expect_err("invalid");
        assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    }
}

#[tokio::test]
async fn neither_the_config_nor_the_client_prints_the_secret() {
    let base: url::Url = "https://api.env0.com".parse().expect("url");
    let cfg = config(&base);
    let printed = format!("{cfg:?}");
    let (client, _) = client_on(cfg, Arc::new(SystemClock));

    let printed = format!("{printed} {client:?}");

    assert!(!printed.contains(helpers::SECRET), "{printed}");
    assert!(
        printed.contains(helpers::KEY),
        "the key id is not secret: {printed}"
    );
}

#[tokio::test]
async fn a_400_is_bad_request_with_env0s_message_never_decode() {
    let server = FakeEnv0::start(|_, _| {
        Reply::json(r#"{"message":"\"sort\" is not allowed","statusCode":400}"#).with_status(400)
    })
    .await;
    let (client, recorder) = client(&server);

    let err = client.projects("org-1").await.expect_err("refused");

    assert!(
        matches!(&err, Error::BadRequest { status: 400, path, message }
            if path == "/projects" && message == r#""sort" is not allowed"#),
        "{err:?}"
    );
    assert_eq!(err.reason(), Reason::BadRequest);
    assert_eq!(err.reason().as_str(), "bad_request");
    assert_eq!(
        err.to_string(),
        r#"env0 refused /projects (400): "sort" is not allowed"#
    );
    assert_eq!(
        recorder.attempts(),
        [(Endpoint::Projects, RequestOutcome::Status(400))],
        "a 400 is not retried"
    );
}

/// A fake env0 whose plain listing holds `plain` environments and whose listing with
/// `includeSubEnvironments=true` holds `with_subs` (`None`: refused with 400).
fn sub_environment_listing(
    plain: usize,
    with_subs: Option<usize>,
) -> impl Fn(&helpers::Seen, usize) -> Reply {
    move |seen, _| {
        let total = match (seen.param("includeSubEnvironments"), with_subs) {
            (None, _) => plain,
            (Some(_), Some(n)) => n,
            (Some(_), None) => {
                return Reply::json(r#"{"message":"\"includeSubEnvironments\" is not allowed"}"#)
                    .with_status(400);
            }
        };
        let start = offset(seen).min(total);
        Reply::json(ids_page("env-", start..(start + 100).min(total)))
    }
}

#[tokio::test]
async fn include_sub_environments_is_probed_once_and_dropped_for_good_on_a_400() {
    let server = FakeEnv0::start(sub_environment_listing(30, None)).await;
    let (client, _) = client(&server);

    for _ in 0..3 {
        let envs = client.environments("org-1").await.expect("environments");
        assert_eq!(envs.len(), 30);
    }

    let probes = server
        .requests()
        .iter()
        .filter(|r| r.param("includeSubEnvironments").is_some())
        .count();
    assert_eq!(probes, 1);
    assert_eq!(
        server.count(),
        4,
        "three listings of one page and one probe"
    );
    assert_eq!(
        client.sub_environments(),
        env0_exporter::client::SubEnvironments::Refused
    );
}

#[tokio::test]
async fn include_sub_environments_is_sent_from_then_on_when_the_probe_lists_more() {
    let server = FakeEnv0::start(sub_environment_listing(30, Some(34))).await;
    let (client, _) = client(&server);

    let first = client.environments("org-1").await.expect("environments");
    let second = client.environments("org-1").await.expect("environments");

    // The listing that found out is read again with the parameter.
    assert_eq!((first.len(), second.len()), (34, 34));
    let sent: Vec<bool> = server
        .requests()
        .iter()
        .map(|r| r.param("includeSubEnvironments") == Some("true"))
        .collect();
    assert_eq!(sent, [false, true, true, true]);
    assert_eq!(
        client.sub_environments(),
        env0_exporter::client::SubEnvironments::Sent
    );
}

#[tokio::test]
async fn include_sub_environments_is_never_sent_again_when_it_lists_nothing_more() {
    let server = FakeEnv0::start(sub_environment_listing(30, Some(30))).await;
    let (client, _) = client(&server);

    client.environments("org-1").await.expect("environments");
    client
        .project_environments("org-1", "p1")
        .await
        .expect("environments");

    let sent: Vec<bool> = server
        .requests()
        .iter()
        .map(|r| r.param("includeSubEnvironments").is_some())
        .collect();
    assert_eq!(sent, [false, true, false]);
    assert_eq!(server.requests()[2].param("projectId"), Some("p1"));
}

/// The steps of `each_environment` as (page lengths, with `None` for `Again`).
fn steps_of(steps: &[env0_exporter::client::ListingStep]) -> Vec<Option<usize>> {
    steps
        .iter()
        .map(|step| match step {
            env0_exporter::client::ListingStep::Page(page) => Some(page.len()),
            env0_exporter::client::ListingStep::Again => None,
        })
        .collect()
}

#[tokio::test]
async fn each_environment_hands_over_each_page_as_it_arrives_and_a_failing_page_ends_it() {
    // 250 environments; the page at offset 200 fails with a 403 (not retried) until `fail`
    // is unset.
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let failing = Arc::clone(&fail);
    let listing = environments_of(250);
    let server = FakeEnv0::start(move |seen, n| {
        if offset(seen) == 200 && failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Reply::status(403);
        }
        listing(seen, n)
    })
    .await;
    let (client, _) = client(&server);

    // Pages handed over as they arrive, in env0's order, asked for one after the other.
    let mut steps = Vec::new();
    let mut requests_at_step = Vec::new();
    let result = client
        .each_environment("org-1", None, |step| {
            requests_at_step.push(server.count());
            steps.push(step);
        })
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(steps_of(&steps), [Some(100), Some(100)]);
    assert_eq!(
        requests_at_step,
        [1, 2],
        "each page before the next request"
    );

    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let mut ids = Vec::new();
    let listed = client
        .each_environment("org-1", None, |step| {
            if let env0_exporter::client::ListingStep::Page(page) = step {
                ids.extend(page.into_iter().map(|e| e.id));
            }
        })
        .await
        .expect("the whole listing");
    assert_eq!(listed, 250);
    let collected: Vec<String> = client
        .environments("org-1")
        .await
        .expect("environments")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        ids, collected,
        "the same environments as collected, in order"
    );
}

#[tokio::test]
async fn each_environment_says_again_before_the_listing_read_with_sub_environments() {
    let server = FakeEnv0::start(sub_environment_listing(130, Some(134))).await;
    let (client, _) = client(&server);

    let mut steps = Vec::new();
    let listed = client
        .each_environment("org-1", None, |step| steps.push(step))
        .await
        .expect("environments");

    // The plain listing (100 + 30), the probe that lists more, then the listing again with
    // the parameter (100 + 34): the count is the last reading's.
    assert_eq!(listed, 134);
    assert_eq!(
        steps_of(&steps),
        [Some(100), Some(30), None, Some(100), Some(34)]
    );
}
