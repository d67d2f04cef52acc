//! Webhooks end to end: the simulator's signed deliveries (or deliveries built here from its
//! records and signed here) reach the real exporter on loopback, and `/metrics` follows them
//! within a second, without a poll; each run is counted once however it is learned of, and
//! refused deliveries change nothing; and all of that whichever way env0 signs, spells its event
//! types and identifies its events.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use env0_exporter::app;
use env0_exporter::clock::{ManualClock, SharedClock};
use env0_exporter::config::Cli;
use env0_exporter::simulator::{
    DateFilterField, DeliveryRecord, PageOrder, SimConfig, SimDeployment, Simulator,
    WebhookEventTypes, WebhookSigning,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use tokio::net::TcpListener;

use super::{SHORT_LOOKBACK, assert_matches, short, sim};
use crate::helpers::{
    Harness, REAL_TIMEOUT, START, Sample, Webhooks, finish_time, hmac_hex, is_finished, series,
};

const SECRET: &str = "e2e-webhook-secret";
/// How long `/metrics` may take to show what a delivery carried.
/// How long `/metrics` may take to show a delivered run. The exporter publishes at most 250 ms
/// after a delivery; on an idle machine it shows within a second (the latency of every minute is
/// printed: `cargo test --test e2e runs_finishing -- --nocapture`). The bound allows for the
/// shared, loaded 2-core machines the suite runs on, where the whole suite competes for the CPU:
/// it still proves no poll was needed (polls are an hour apart).
const WITHIN: Duration = Duration::from_secs(5);

/// HMAC-SHA256 hex under [`SECRET`], computed here rather than with the exporter's code.
fn sign(body: &[u8]) -> String {
    hmac_hex(SECRET, body)
}

fn wire(ts: Timestamp) -> String {
    ts.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// A deployment event for `d` as env0 documents it, built from the simulator's records.
fn delivery(d: &SimDeployment, event_id: &str) -> Vec<u8> {
    let event_type = match d.status.as_str() {
        "SUCCESS" => "com.env0.deploy.succeeded",
        _ => "com.env0.deploy.failed",
    };
    serde_json::to_vec(&json!({
        "type": event_type,
        "source": "env0",
        "id": event_id,
        "time": wire(d.updated_at),
        "datacontenttype": "application/json",
        "data": {
            "deploymentLog": {
                "id": d.id,
                "environmentId": d.environment_id,
                "type": d.deployment_type,
                "status": d.status,
                "blueprintType": d.blueprint_type,
                "triggerName": d.trigger_name,
                "startedBy": d.started_by,
                "createdAt": wire(d.created_at),
                "queuedAt": wire(d.queued_at),
                "startedAt": d.started_at.map(wire),
                "finishedAt": d.finished_at.map(wire),
                "updatedAt": wire(d.updated_at),
            },
            "environment": {"id": d.environment_id},
            "project": {"id": d.project_id},
        },
    }))
    .unwrap()
}

async fn post_signed(h: &Harness, body: &[u8], event_id: &str) -> u16 {
    let signature = sign(body);
    h.post_webhook(
        body,
        &[
            ("user-agent", "env0-webhook"),
            ("content-type", "application/json"),
            ("x-env0-event-id", event_id),
            ("x-env0-signature", &signature),
        ],
    )
    .await
}

fn total(samples: &[Sample], name: &str) -> f64 {
    series(samples, name).values().sum()
}

fn webhook_events(samples: &[Sample], event: &str, outcome: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == "env0_exporter_webhook_events_total")
        .filter(|s| s.labels.get("event").map(String::as_str) == Some(event))
        .filter(|s| s.labels.get("outcome").map(String::as_str) == Some(outcome))
        .map(|s| s.value)
        .sum()
}

/// Scrapes until the total of `env0_deployments_finished_total` is `want`; fails past [`WITHIN`].
async fn finished_total_becomes(h: &Harness, want: f64, when: &str) {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let got = total(&h.scrape().await, "env0_deployments_finished_total");
        if (got - want).abs() < f64::EPSILON {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{when}: env0_deployments_finished_total is {got}, want {want}, after {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A run that finished in `(after, now]` and is not in `used`.
fn finished_since(h: &Harness, after: Timestamp, used: &mut BTreeSet<String>) -> SimDeployment {
    let d = h
        .sim
        .deployments()
        .into_iter()
        .find(|d| is_finished(d) && finish_time(d) > after && !used.contains(&d.id))
        .expect("a run finished in the interval");
    used.insert(d.id.clone());
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_finishing_in_the_simulator_show_in_metrics_within_a_second_of_their_webhook_without_a_poll()
 {
    let h = Harness::start_with(
        short(150),
        &["--lookback", SHORT_LOOKBACK, "--poll-interval", "1h"],
        Some(Webhooks {
            secret: SECRET,
            sim_sends: true,
        }),
    )
    .await;
    let mut finished = 0.0;
    for minute in 1..=10 {
        finished = one_simulated_minute(&h, minute).await;
    }
    assert_eq!(
        h.polls(),
        1,
        "no poll ran: the webhooks alone moved /metrics"
    );
    assert!(finished >= 5.0, "the test must see runs finish: {finished}");
    let deliveries = h.sim.deliveries();
    assert!(deliveries.len() >= 20, "{} deliveries", deliveries.len());
    assert!(
        deliveries.iter().all(|d| d.status == Some(202)),
        "every delivery accepted: {:?}",
        deliveries
            .iter()
            .filter(|d| d.status != Some(202))
            .map(|d| (&d.event_type, d.status))
            .collect::<Vec<_>>()
    );
    let samples = h.scrape().await;
    let accepted: f64 = samples
        .iter()
        .filter(|s| s.name == "env0_exporter_webhook_events_total")
        .filter(|s| s.labels.get("outcome").map(String::as_str) == Some("accepted"))
        .map(|s| s.value)
        .sum();
    let sent = f64::from(u32::try_from(deliveries.len()).unwrap());
    assert!(
        (accepted - sent).abs() < f64::EPSILON,
        "{accepted} != {sent}"
    );

    // Replaying a real delivery as it was sent (same event id, same signature) is a duplicate,
    // and so is its body under a new event id header (the header is not signed).
    let finish = deliveries
        .iter()
        .rev()
        .find(|d| d.event_type == "com.env0.deploy.succeeded")
        .expect("a deploy succeeded");
    let headers: Vec<(&str, &str)> = finish
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(h.post_webhook(finish.body.as_bytes(), &headers).await, 200);
    assert_eq!(
        post_signed(&h, finish.body.as_bytes(), "a-new-event-id").await,
        200
    );
    // The next minute's deliveries queue behind the replays: /metrics still equals the records.
    one_simulated_minute(&h, 11).await;
    let samples = h.scrape().await;
    assert!((webhook_events(&samples, "deploy", "duplicate") - 2.0).abs() < f64::EPSILON);
    assert_eq!(h.polls(), 1);
    h.stop().await;
}

/// Moves the clock a minute, lets the simulator deliver that minute's changes, and waits at
/// most [`WITHIN`] for `/metrics` to equal the simulator's records; the runs finished so far.
async fn one_simulated_minute(h: &Harness, minute: u32) -> f64 {
    h.clock.advance(Duration::from_secs(60));
    h.sim.advance();
    records_shown(h, &format!("minute {minute}")).await
}

/// Waits for the simulator to deliver every change it has queued, then at most [`WITHIN`] for
/// `/metrics` to equal the simulator's records; the runs finished so far.
async fn records_shown(h: &Harness, when: &str) -> f64 {
    tokio::time::timeout(REAL_TIMEOUT, h.sim.webhooks_flushed())
        .await
        .expect("the simulator delivered its webhooks");
    // From here, the exporter has answered every delivery: it must show them within WITHIN.
    // The clock stands still, so the records do too: compute them once, before timing.
    let (want_finished, want_window) = (h.expected_finished(|_| true), h.expected_window(|_| true));
    let delivered = tokio::time::Instant::now();
    let deadline = delivered + WITHIN;
    loop {
        let samples = h
            .scrape_only(&["env0_deployments_finished_total", "env0_deployments"])
            .await;
        let got_finished = series(&samples, "env0_deployments_finished_total");
        let got_window = series(&samples, "env0_deployments");
        if got_finished == want_finished && got_window == want_window {
            eprintln!(
                "{when}: /metrics equal to the records {:?} after the deliveries",
                delivered.elapsed()
            );
            return want_finished.values().sum();
        }
        if tokio::time::Instant::now() >= deadline {
            let when = format!("{when}: {WITHIN:?} after the deliveries");
            assert_matches(
                &format!("{when}: env0_deployments_finished_total"),
                &got_finished,
                &want_finished,
            );
            assert_matches(
                &format!("{when}: env0_deployments"),
                &got_window,
                &want_window,
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_counted_once_by_webhook_then_poll_poll_then_webhook_or_two_event_ids_and_refused_deliveries_change_nothing()
 {
    // The simulator sends nothing here: the deliveries are built from its records and signed in
    // the test, so their order against the polls is the test's.
    let h = Harness::start_with(
        short(150),
        // Every environment re-read at every poll: a poll then finds every run.
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--poll-interval",
            "10m",
            "--full-sync-interval",
            "60s",
        ],
        Some(Webhooks {
            secret: SECRET,
            sim_sends: false,
        }),
    )
    .await;
    let mut used = BTreeSet::new();
    let base = total(&h.scrape().await, "env0_deployments_finished_total");
    h.clock.advance(Duration::from_secs(5 * 60));
    webhooks_before_a_poll(&h, base, &mut used).await;

    // Poll after webhook: the poll finds the delivered runs again, and counts every run once.
    h.clock.advance(Duration::from_secs(5 * 60));
    h.wait_for_polls(2).await;
    let polled_at = h.now();
    let counted = h.expected_finished(|_| true);
    assert_matches(
        "after the poll that followed the webhooks",
        &series(&h.scrape().await, "env0_deployments_finished_total"),
        &counted,
    );
    let after_poll: f64 = counted.values().sum();
    assert!(
        after_poll > base + 2.0,
        "the poll found more runs: {after_poll}"
    );

    // Poll then webhook: a run the poll counted, delivered now, changes nothing; the next new
    // run shows alone.
    let polled = finished_since(&h, h.started, &mut used);
    assert!(finish_time(&polled) <= polled_at);
    assert_eq!(post_signed(&h, &delivery(&polled, "d-1"), "d-1").await, 202);
    h.clock.advance(Duration::from_secs(3 * 60));
    let later = finished_since(&h, polled_at, &mut used);
    assert_eq!(post_signed(&h, &delivery(&later, "e-1"), "e-1").await, 202);
    finished_total_becomes(&h, after_poll + 1.0, "a run polled then delivered").await;

    // And the poll after that agrees with the simulator exactly.
    h.clock.advance(Duration::from_secs(7 * 60));
    h.wait_for_polls(3).await;
    assert_matches(
        "after the last poll",
        &series(&h.scrape().await, "env0_deployments_finished_total"),
        &h.expected_finished(|_| true),
    );
    h.stop().await;
}

/// Between two polls: a run's webhook counts it at once; the same run under a second event id,
/// a replayed event id, refused signatures, an environment not watched and a budget event
/// count nothing more (and are counted as such).
async fn webhooks_before_a_poll(h: &Harness, base: f64, used: &mut BTreeSet<String>) {
    let t0 = h.started;
    let first = finished_since(h, t0, used);
    assert_eq!(post_signed(h, &delivery(&first, "a-1"), "a-1").await, 202);
    finished_total_becomes(h, base + 1.0, "a run's webhook").await;
    // The deliveries are taken in order: once the last run below shows, everything before it
    // has been taken in, and counted nothing.
    assert_eq!(post_signed(h, &delivery(&first, "a-2"), "a-2").await, 202);
    assert_eq!(post_signed(h, &delivery(&first, "a-1"), "a-1").await, 200);
    // Refused: forged, missing, and a real signature replayed on another body.
    let refused = finished_since(h, t0, used);
    let body = delivery(&refused, "b-1");
    let forged = sign(b"something else");
    let replayed = sign(&delivery(&first, "a-1"));
    for headers in [
        vec![("x-env0-signature", forged.as_str())],
        vec![],
        vec![("x-env0-signature", replayed.as_str())],
    ] {
        let mut headers = headers;
        headers.push(("x-env0-event-id", "b-1"));
        assert_eq!(h.post_webhook(&body, &headers).await, 401);
    }
    // Not watched: a finished run in an environment the exporter has not listed.
    let mut stranger = refused.clone();
    stranger.id = "00000000-0000-4000-8000-000000000001".into();
    stranger.environment_id = "00000000-0000-4000-8000-0000000000e0".into();
    assert_eq!(
        post_signed(h, &delivery(&stranger, "s-1"), "s-1").await,
        200
    );
    // Not a deployment event.
    let budget = serde_json::to_vec(&json!({
        "type": "com.env0.budget.exceeded",
        "id": "budget-1",
        "time": wire(h.now()),
        "data": {"project": {"id": refused.project_id}, "threshold": 80},
    }))
    .unwrap();
    assert_eq!(post_signed(h, &budget, "budget-1").await, 200);
    // The next good delivery shows alone: nothing before it counted.
    let last = finished_since(h, t0, used);
    assert_eq!(post_signed(h, &delivery(&last, "c-1"), "c-1").await, 202);
    finished_total_becomes(h, base + 2.0, "a second run's webhook after refused ones").await;

    // Counted under the family of each run's deployment log (the documented rule, restated in
    // `family`), whatever the event type says.
    let mut want: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for (d, outcome, n) in [
        (&first, "accepted", 2.0),
        (&first, "duplicate", 1.0),
        (&last, "accepted", 1.0),
        (&refused, "ignored", 1.0),
    ] {
        *want.entry((family(d), outcome)).or_default() += n;
    }
    *want.entry(("other", "ignored")).or_default() += 1.0;
    want.insert(("other", "bad_signature"), 3.0);
    want.insert(("other", "bad_request"), 0.0);
    let samples = h.scrape().await;
    for ((event, outcome), want) in want {
        let got = webhook_events(&samples, event, outcome);
        assert!(
            (got - want).abs() < f64::EPSILON,
            "{event}/{outcome}: got {got}, want {want}"
        );
    }
    let all: f64 = samples
        .iter()
        .filter(|s| s.name == "env0_exporter_webhook_events_total")
        .map(|s| s.value)
        .sum();
    assert!(
        (all - 9.0).abs() < f64::EPSILON,
        "9 deliveries counted: {all}"
    );
}

/// The event family of a finished run's delivery: its deployment type's (the documented rule).
fn family(d: &SimDeployment) -> &'static str {
    match d.deployment_type.as_str() {
        "deploy" => "deploy",
        "destroy" => "destroy",
        "driftDetection" => "drift",
        "prPlan" | "remotePlan" | "dryRun" => "plan",
        _ => "other",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_on_their_own_listener_are_not_served_next_to_metrics_and_the_other_way_round() {
    let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
    let shared: SharedClock = clock.clone();
    let simulator = Simulator::new(sim(5), shared.clone());
    let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}/", sim_listener.local_addr().unwrap());
    let (stop_sim, _task) = app::spawn_simulator(simulator.clone(), sim_listener);
    let cli = Cli::try_parse_from([
        "env0-exporter",
        "--api-endpoint",
        &endpoint,
        "--webhook-secret",
        SECRET,
        "--webhook-listen-address",
        "127.0.0.1:0",
    ])
    .unwrap();
    let config = cli.exporter.validate(false).unwrap();
    let own = config.webhook.as_ref().unwrap().listen_address.unwrap();
    let exporter = app::build(&config, &app::sim_credentials(&simulator), shared).unwrap();
    let running = app::start_with(
        exporter,
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Some(TcpListener::bind(own).await.unwrap()),
    );
    let (main, hooks) = (running.addr, running.webhook_addr.unwrap());
    let http = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    let post = |addr| {
        http.post(format!("http://{addr}/webhooks/env0"))
            .body("{}")
            .send()
    };
    assert_eq!(status(post(hooks).await.unwrap()), 401, "unsigned");
    assert_eq!(
        status(post(main).await.unwrap()),
        404,
        "not next to /metrics"
    );
    let get = |addr| http.get(format!("http://{addr}/metrics")).send();
    assert_eq!(status(get(hooks).await.unwrap()), 404, "no /metrics there");
    let text = get(main).await.unwrap().text().await.unwrap();
    let samples = crate::helpers::parse_metrics(&text);
    assert!((webhook_events(&samples, "other", "bad_signature") - 1.0).abs() < f64::EPSILON);
    running.shutdown().await;
    let _ = stop_sim.send(());
}

/// One way env0 may go, for [`the_truth_holds`]: the first three of [`variants`] in one test, the
/// last three in another, so that the two run side by side.
struct Variant {
    what: &'static str,
    config: SimConfig,
}

fn variants() -> Vec<Variant> {
    // Three hours of history, all inside the 8 h window (see `short()`): the variants are about
    // deliveries and polls of the runs of the minutes watched, which a window holding the whole
    // history shows the same as one whose old edge cuts it (the window's edge is the corner
    // tests' and the polling-truth tests'). No run is older than the window, so none can be
    // unfinished past it: a full read carries 9 runs of an environment instead of 24.
    let base = || SimConfig {
        history: Duration::from_secs(3 * 3600),
        mean_deployment_interval: Duration::from_secs(20 * 60),
        ..short(60)
    };
    vec![
        Variant {
            what: "signing the canonical form",
            config: SimConfig {
                webhook_signing: WebhookSigning::Canonical,
                ..base()
            },
        },
        Variant {
            what: "header ids differing from body ids",
            config: SimConfig {
                webhook_ids_differ: true,
                ..base()
            },
        },
        Variant {
            what: "com.env0.deployment.* types",
            config: SimConfig {
                webhook_event_types: WebhookEventTypes::Deployment,
                ..base()
            },
        },
        Variant {
            what: "com.env-zero.* types and headers",
            config: SimConfig {
                webhook_event_types: WebhookEventTypes::EnvZero,
                ..base()
            },
        },
        Variant {
            what: "all three, with env0's clock two hours ahead",
            config: SimConfig {
                webhook_signing: WebhookSigning::Canonical,
                webhook_ids_differ: true,
                webhook_event_types: WebhookEventTypes::EnvZero,
                clock_offset: SignedDuration::from_hours(2),
                ..base()
            },
        },
        Variant {
            what: "deployment types and differing ids, the date filter on startedAt, pages oldest \
                   first, env0's clock ten minutes behind",
            config: SimConfig {
                webhook_ids_differ: true,
                webhook_event_types: WebhookEventTypes::Deployment,
                date_filter_field: DateFilterField::StartedAt,
                page_order: PageOrder::OldestFirst,
                clock_offset: SignedDuration::from_mins(-10),
                ..base()
            },
        },
    ]
}

/// The value of `env0_exporter_webhook_signatures_total{form}`.
fn signatures(samples: &[Sample], form: &str) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == "env0_exporter_webhook_signatures_total")
        .filter(|s| s.labels.get("form").map(String::as_str) == Some(form))
        .map(|s| s.value)
        .sum()
}

fn count(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_truth_holds_whichever_way_env0_signs_identifies_or_types_its_events() {
    the_truth_holds(variants().into_iter().take(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_truth_holds_with_env_zero_spellings_and_the_ways_combined_with_env0s_corners() {
    the_truth_holds(variants().into_iter().skip(3)).await;
}

/// For each variant: six simulated minutes of deliveries with polls every three, `/metrics`
/// equal to the records after every minute and after the next poll, every delivery accepted
/// once, signatures counted by the form env0 signed, replays refused.
async fn the_truth_holds(variants: impl Iterator<Item = Variant>) {
    for Variant { what, config } in variants {
        let signing = config.webhook_signing;
        let h = Harness::start_with(
            config,
            // Polls every 3 minutes: the webhooks and the polls in between must agree.
            &["--lookback", SHORT_LOOKBACK, "--poll-interval", "3m"],
            Some(Webhooks {
                secret: SECRET,
                sim_sends: true,
            }),
        )
        .await;
        let mut finished = 0.0;
        for minute in 1..=6 {
            finished = one_simulated_minute(&h, minute).await;
        }
        assert!(
            finished >= 3.0,
            "{what}: the test must see runs finish: {finished}"
        );
        // Polls ran between the deliveries: at the start and at minutes 3 and 6 (the last one
        // is due when the clock reaches minute 6 and may still be running here).
        h.wait_for_polls(3).await;
        let deliveries = h.sim.deliveries();
        assert!(
            deliveries.len() >= 20,
            "{what}: {} deliveries",
            deliveries.len()
        );
        let refused: Vec<(&String, Option<u16>)> = deliveries
            .iter()
            .filter(|d| d.status != Some(202))
            .map(|d| (&d.event_type, d.status))
            .collect();
        assert!(
            refused.is_empty(),
            "{what}: every delivery accepted: {refused:?}"
        );
        let samples = h.scrape().await;
        let accepted: f64 = samples
            .iter()
            .filter(|s| s.name == "env0_exporter_webhook_events_total")
            .filter(|s| s.labels.get("outcome").map(String::as_str) == Some("accepted"))
            .map(|s| s.value)
            .sum();
        let sent = count(deliveries.len());
        assert!(
            (accepted - sent).abs() < f64::EPSILON,
            "{what}: {accepted} != {sent}"
        );

        let (raw, canonical, both) = signature_forms_match(&samples, &deliveries, signing, what);
        replays_are_duplicates_and_old_events_stale(&h, &deliveries, what).await;

        // And the next poll agrees with the records, every run counted once. The poll's reads
        // move the simulator's world on three minutes: the changes of the runs it need not
        // re-read (plans, drift runs) reach the exporter as webhooks, which may still be on their
        // way when the poll ends.
        h.next_poll().await;
        records_shown(&h, &format!("{what}: after the last poll")).await;
        crate::assert_exact(&h, &format!("{what}: after the last poll")).await;
        eprintln!(
            "{what}: {sent} deliveries, {finished} finishes, signatures raw {raw} canonical {canonical} both {both}"
        );
        h.stop().await;
    }
}

/// The signature counter tells what the simulator did: the canonical form only when it signed
/// that (its bodies are pretty-printed); else the raw body, which is also the canonical form when
/// the compact body has no whole number written as a float. The counts by form.
fn signature_forms_match(
    samples: &[Sample],
    deliveries: &[DeliveryRecord],
    signing: WebhookSigning,
    what: &str,
) -> (f64, f64, f64) {
    let sent = count(deliveries.len());
    let (raw, canonical, both) = (
        signatures(samples, "raw"),
        signatures(samples, "canonical"),
        signatures(samples, "both"),
    );
    let raw_is_canonical = deliveries
        .iter()
        .filter(|d| d.body == d.signed && !whole_float_in(&d.body))
        .count();
    match signing {
        WebhookSigning::Canonical => {
            assert!(deliveries.iter().all(|d| d.body != d.signed), "{what}");
            // The simulator's JSON.stringify and the exporter's agree (two implementations).
            for d in deliveries {
                let canonical = env0_exporter::webhook::canonical_form(d.body.as_bytes());
                assert_eq!(canonical.as_deref(), Some(d.signed.as_str()), "{what}");
            }
            assert_eq!((raw, canonical, both), (0.0, sent, 0.0), "{what}");
        }
        WebhookSigning::RawBody => {
            let both_want = count(raw_is_canonical);
            assert_eq!(
                (raw, canonical, both),
                (sent - both_want, 0.0, both_want),
                "{what}"
            );
        }
    }
    (raw, canonical, both)
}

/// A delivery's body replayed under a fresh event id header is a duplicate; an event dated at our
/// clock's now is as old or as new as env0's clock is off ours: refused as stale exactly when
/// that is past the half hour.
async fn replays_are_duplicates_and_old_events_stale(
    h: &Harness,
    deliveries: &[DeliveryRecord],
    what: &str,
) {
    let finish = last_finish(deliveries);
    let headers: Vec<(&str, &str)> = finish
        .headers
        .iter()
        .map(|(k, v)| match k.as_str() {
            "x-env0-event-id" | "x-env-zero-event-id" => (k.as_str(), "a-fresh-header-id"),
            _ => (k.as_str(), v.as_str()),
        })
        .collect();
    assert_eq!(
        h.post_webhook(finish.body.as_bytes(), &headers).await,
        200,
        "{what}"
    );
    let duplicates: f64 = h
        .scrape()
        .await
        .iter()
        .filter(|s| s.name == "env0_exporter_webhook_events_total")
        .filter(|s| s.labels.get("outcome").map(String::as_str) == Some("duplicate"))
        .map(|s| s.value)
        .sum();
    assert!(
        (duplicates - 1.0).abs() < f64::EPSILON,
        "{what}: {duplicates} duplicates"
    );

    let offset = h.sim.config().clock_offset;
    let mut event: serde_json::Value = serde_json::from_str(&finish.body).unwrap();
    event["id"] = "dated-at-our-clock".into();
    event["time"] = wire(h.now()).into();
    let body = serde_json::to_vec(&event).unwrap();
    let want = if offset.unsigned_abs() > Duration::from_secs(30 * 60) {
        400
    } else {
        202
    };
    assert_eq!(post_signed(h, &body, "dated").await, want, "{what}");
}

/// The last delivery of a run that finished successfully.
fn last_finish(deliveries: &[DeliveryRecord]) -> &DeliveryRecord {
    deliveries
        .iter()
        .rev()
        .find(|d| {
            d.body.contains(r#""status":"SUCCESS""#) || d.body.contains(r#""status": "SUCCESS""#)
        })
        .expect("a run succeeded")
}

/// Whether a compact JSON body holds a number written with a fraction of zeros (`12.0`), which
/// JavaScript writes without it: found by hand, outside strings.
fn whole_float_in(body: &str) -> bool {
    let bytes = body.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if b == b'"' {
            in_string = true;
        } else if b == b'.' && i > 0 && bytes[i - 1].is_ascii_digit() {
            let fraction: Vec<u8> = bytes[i + 1..]
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            if fraction.iter().all(|d| *d == b'0') {
                return true;
            }
        }
    }
    false
}
