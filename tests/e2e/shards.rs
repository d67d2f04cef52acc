//! Sharding end to end: two exporters (`--shard 1/2`, `--shard 2/2`) poll one simulator on one
//! clock; together they equal the simulator's records, and no environment is read by both.
//!
//! Which exporter sent which request is told by a recording proxy in front of shard 2: the
//! simulator logs every request, the proxy only shard 2's, so shard 1's are the difference.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use env0_exporter::app::{self, Running};
use env0_exporter::clock::SharedClock;
use env0_exporter::config::Cli;
use tokio::net::TcpListener;

use super::{SHORT_LOOKBACK, assert_matches, short};
use crate::helpers::{Harness, Labels, REAL_TIMEOUT, Sample, Webhooks, parse_metrics, series};

/// Forwards every request to `target` as it is, and logs the paths it forwarded.
struct Proxy {
    target: SocketAddr,
    client: reqwest::Client,
    paths: Mutex<Vec<String>>,
}

async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let mut headers = parts.headers.clone();
    headers.remove("host");
    let answer = proxy
        .client
        .request(
            parts.method,
            format!("http://{}{path_and_query}", proxy.target),
        )
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    proxy
        .paths
        .lock()
        .unwrap()
        .push(parts.uri.path().to_owned());
    let status = answer.status();
    let mut headers = answer.headers().clone();
    for hop in ["transfer-encoding", "connection", "content-length"] {
        headers.remove(hop);
    }
    let bytes = answer.bytes().await.unwrap();
    (status, headers, bytes).into_response()
}

/// A proxy to `target` on a loopback port: its address, and the proxy (for its log).
async fn spawn_proxy(target: SocketAddr) -> (SocketAddr, Arc<Proxy>) {
    let proxy = Arc::new(Proxy {
        target,
        // Bodies pass through as env0 sent them, compressed or not.
        client: reqwest::Client::builder().no_gzip().build().unwrap(),
        paths: Mutex::new(Vec::new()),
    });
    let router = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, proxy)
}

/// The environment whose deployments `path` lists, if it is such a path.
fn read_environment(path: &str) -> Option<&str> {
    path.strip_prefix("/environments/")?
        .strip_suffix("/deployments")
}

/// Deployment listings per environment in `paths`.
fn reads<'a>(paths: impl Iterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for env in paths.filter_map(read_environment) {
        *out.entry(env.to_owned()).or_default() += 1;
    }
    out
}

/// Shard 2 of 2 on `h`'s simulator and clock, through a recording proxy.
async fn second_shard(h: &Harness, extra: &[&str]) -> (Running, Arc<Proxy>) {
    // The simulator served once more, on a port of its own, behind the proxy.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = listener.local_addr().unwrap();
    let (stop, _task) = app::spawn_simulator(h.sim.clone(), listener);
    std::mem::forget(stop); // served until the test ends
    let (proxy_addr, proxy) = spawn_proxy(sim_addr).await;
    let endpoint = format!("http://{proxy_addr}/");
    let mut args = vec![
        "env0-exporter",
        "--api-endpoint",
        &endpoint,
        "--shard",
        "2/2",
    ];
    args.extend_from_slice(extra);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (start_shard(h, args, listener).await, proxy)
}

/// An exporter with the command line `args` on `h`'s simulator credentials and clock, serving
/// on `listener`, once its first poll is done.
async fn start_shard(h: &Harness, args: Vec<&str>, listener: TcpListener) -> Running {
    let config = Cli::try_parse_from(args)
        .unwrap()
        .exporter
        .validate(false)
        .unwrap();
    let clock: SharedClock = h.clock.clone();
    let exporter = app::build(&config, &app::sim_credentials(&h.sim), clock).unwrap();
    let running = app::start(exporter, listener);
    wait_for_polls(&running, 1).await;
    running
}

async fn wait_for_polls(running: &Running, n: u64) {
    let mut rx = running.snapshot.subscribe_polls();
    tokio::time::timeout(REAL_TIMEOUT, rx.wait_for(|p| *p >= n))
        .await
        .unwrap_or_else(|_| panic!("shard 2's poll {n} did not finish in time"))
        .unwrap();
}

async fn scrape(running: &Running) -> Vec<Sample> {
    let body = reqwest::get(format!("http://{}/metrics", running.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_metrics(&body)
}

fn summed(shards: &[&[Sample]], name: &str) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    for samples in shards {
        for (labels, value) in series(samples, name) {
            *out.entry(labels).or_insert(0.0) += value;
        }
    }
    out
}

/// The environment ids a shard exposes in `env0_environment_info`.
fn exposed(samples: &[Sample]) -> BTreeSet<String> {
    series(samples, "env0_environment_info")
        .keys()
        .map(|l| l["environment_id"].clone())
        .collect()
}

/// After a poll of both shards: their sums equal the simulator's records, their environments are
/// disjoint and together every live environment, and each says which shard it is. Returns the
/// live environments.
async fn both_add_up(h: &Harness, second: &Running, when: &str) -> BTreeSet<String> {
    let (one, two) = (h.scrape().await, scrape(second).await);
    let both: [&[Sample]; 2] = [&one, &two];
    assert_matches(
        &format!("{when}: env0_deployments summed over the shards"),
        &summed(&both, "env0_deployments"),
        &h.expected_window(|_| true),
    );
    assert_matches(
        &format!("{when}: env0_deployments_finished_total summed over the shards"),
        &summed(&both, "env0_deployments_finished_total"),
        &h.expected_finished(|_| true),
    );
    assert_matches(
        &format!("{when}: env0_environments summed over the shards"),
        &summed(&both, "env0_environments"),
        &h.expected_environments(),
    );
    let (mine, theirs) = (exposed(&one), exposed(&two));
    assert!(
        mine.is_disjoint(&theirs),
        "{when}: exposed by both: {:?}",
        mine.intersection(&theirs).collect::<Vec<_>>()
    );
    let union: BTreeSet<String> = mine.union(&theirs).cloned().collect();
    // Environments are archived as the simulated organisation lives: the live set is re-read.
    let live: BTreeSet<String> = h
        .sim
        .environments()
        .into_iter()
        .filter(|e| !e.is_archived)
        .map(|e| e.id)
        .collect();
    assert_eq!(union, live, "{when}: the shards' environments");
    // Both shards carry a fair share (an even hash: far from none or all, at least 30 %).
    let fair = ENVIRONMENTS * 3 / 10;
    assert!(
        mine.len() >= fair && theirs.len() >= fair,
        "{when}: {} and {}",
        mine.len(),
        theirs.len()
    );
    for (samples, shard) in [(&one, "1"), (&two, "2")] {
        let info = series(samples, "env0_exporter_shard_info");
        let want = crate::helpers::labels(&[("shard", shard.into()), ("shards", "2".into())]);
        assert_eq!(info.keys().collect::<Vec<_>>(), vec![&want], "{when}");
        let shards: Vec<f64> = series(samples, "env0_exporter_shards")
            .into_values()
            .collect();
        assert_eq!(format!("{shards:?}"), "[2.0]", "{when}");
    }
    live
}

/// The organisation the shards split: 60 environments, one page of the environment listing;
/// how an environment is assigned depends on its id alone, not on how many there are.
const ENVIRONMENTS: usize = 60;

const EXTRA: [&str; 7] = [
    "--lookback",
    SHORT_LOOKBACK,
    "--full-sync-interval",
    "60s",
    "--max-requests-per-minute",
    "1000",
    "--environment-metrics",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_together_equal_the_simulators_records_and_no_environment_is_read_by_both() {
    let mut first_args = vec!["--shard", "1/2"];
    first_args.extend_from_slice(&EXTRA);
    let h = Harness::start(short(ENVIRONMENTS), &first_args).await;
    let (second, proxy) = second_shard(&h, &EXTRA).await;
    let mut ever_live = BTreeSet::new();

    for poll in 0..=10 {
        if poll > 0 {
            h.next_poll().await;
            wait_for_polls(&second, h.polls()).await;
        }
        let when = if poll == 0 {
            "after the backfill".to_owned()
        } else {
            format!("after poll {poll}")
        };
        ever_live.extend(both_add_up(&h, &second, &when).await);
    }

    // The requests: shard 2's went through the proxy, shard 1's are the rest.
    let all = reads(h.sim.requests().iter().map(|r| r.path.as_str()));
    let second_reads = reads(proxy.paths.lock().unwrap().iter().map(String::as_str));
    let first_reads: BTreeMap<String, usize> = all
        .iter()
        .filter_map(|(env, n)| {
            let rest = n - second_reads.get(env).copied().unwrap_or(0);
            (rest > 0).then(|| (env.clone(), rest))
        })
        .collect();
    let both: Vec<&String> = first_reads
        .keys()
        .filter(|e| second_reads.contains_key(*e))
        .collect();
    assert!(
        both.is_empty(),
        "environments read by both shards: {both:?}"
    );
    for env in &ever_live {
        assert!(
            first_reads.contains_key(env) || second_reads.contains_key(env),
            "{env} was read by neither shard"
        );
    }
    let total = h.sim.requests().len();
    let through_proxy = proxy.paths.lock().unwrap().len();
    eprintln!(
        "shard 1 read {} environments in {} requests, shard 2 read {} in {} requests",
        first_reads.len(),
        total - through_proxy,
        second_reads.len(),
        through_proxy
    );
    // What each shard read is what it exposes.
    let samples = h.scrape().await;
    let mine = exposed(&samples);
    assert!(
        mine.iter().all(|e| first_reads.contains_key(e)),
        "shard 1 exposes environments it never read"
    );
    second.shutdown().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_for_another_shards_environment_is_ignored_and_counted_so() {
    let secret = "shard-webhook-secret";
    let h = Harness::start_with(
        short(ENVIRONMENTS),
        &[
            "--lookback",
            SHORT_LOOKBACK,
            "--shard",
            "1/2",
            "--full-sync-interval",
            "60s",
            "--max-requests-per-minute",
            "1000",
        ],
        Some(Webhooks {
            secret,
            sim_sends: true,
        }),
    )
    .await;
    for _ in 0..5 {
        h.next_poll().await;
    }
    h.sim.webhooks_flushed().await;
    let read = reads(h.sim.requests().iter().map(|r| r.path.as_str()));
    let (mut accepted, mut ignored) = (0, 0);
    for delivery in h.sim.deliveries() {
        let body: serde_json::Value = serde_json::from_str(&delivery.body).unwrap();
        let Some(env) = body["data"]["environment"]["id"].as_str() else {
            continue;
        };
        if read.contains_key(env) {
            assert_eq!(delivery.status, Some(202), "{env}: this shard's, accepted");
            accepted += 1;
        } else {
            assert_eq!(
                delivery.status,
                Some(200),
                "{env}: another shard's, ignored"
            );
            ignored += 1;
        }
    }
    assert!(
        accepted > 0 && ignored > 0,
        "{accepted} accepted, {ignored} ignored"
    );
    let samples = h.scrape().await;
    let counted: f64 = series(&samples, "env0_exporter_webhook_events_total")
        .iter()
        .filter(|(l, _)| l["outcome"] == "ignored")
        .map(|(_, v)| v)
        .sum();
    assert!(
        (counted - f64::from(ignored)).abs() < f64::EPSILON,
        "ignored: counted {counted}, delivered {ignored}"
    );
    // And this shard's window is exactly its environments' runs.
    h.next_poll().await;
    let samples = h.scrape().await;
    assert_matches(
        "env0_deployments of shard 1",
        &series(&samples, "env0_deployments"),
        &h.expected_window(|d| read.contains_key(&d.environment_id)),
    );
    h.stop().await;
}

/// How long shard 2's `/metrics` may take to show a run whose delivery went to shard 1 (the
/// issue's bound): the forward and the target's publish (at most 250 ms after a delivery). It
/// proves no poll was needed: polls are an hour apart.
const FORWARDED_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The shard of 2 an environment belongs to, by the documented rule (64-bit FNV-1a of the id's
/// bytes, modulo M, plus 1), written out here rather than taken from the exporter.
fn documented_shard_of_2(environment_id: &str) -> u8 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in environment_id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    if hash.is_multiple_of(2) { 1 } else { 2 }
}

/// The environment a simulator delivery is about, if any.
fn delivered_environment(body: &str) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let data = &body["data"];
    data["deploymentLog"]["environmentId"]
        .as_str()
        .or_else(|| data["environment"]["id"].as_str())
        .map(str::to_owned)
}

/// The sum of `name`'s series whose `outcome` is `outcome`.
fn outcome_total(samples: &[Sample], name: &str, outcome: &str) -> f64 {
    series(samples, name)
        .iter()
        .filter(|(l, _)| l["outcome"] == outcome)
        .map(|(_, v)| v)
        .sum()
}

/// Flags both shards of the forwarding test run with: polls an hour apart.
const FORWARDING_FLAGS: [&str; 6] = [
    "--lookback",
    SHORT_LOOKBACK,
    "--poll-interval",
    "1h",
    "--max-requests-per-minute",
    "1000",
];

/// Shard 1 of 2, which receives every delivery and forwards to `127.0.0.{shard}:{port}` (the
/// template names the shard by its number, as a `StatefulSet`'s pod names do), and shard 2 of 2 on
/// `127.0.0.2` (loopback, like all of 127/8 on Linux), on one simulator and clock, both polled
/// once.
async fn forwarding_shards(secret: &str) -> (Harness, Running) {
    use env0_exporter::simulator::{SimConfig, WebhookSigning};
    let second_listener = TcpListener::bind("127.0.0.2:0")
        .await
        .expect("127.0.0.2 is a loopback address");
    let port = second_listener.local_addr().unwrap().port();
    let template = format!("http://127.0.0.{{shard}}:{port}/webhooks/env0");
    let mut first_args = vec![
        "--shard",
        "1/2",
        "--webhook-forward-url-template",
        &template,
    ];
    first_args.extend_from_slice(&FORWARDING_FLAGS);
    // env0 signs the canonical form and sends the body pretty-printed: the forward must keep
    // the bytes for the target to verify them.
    let sim_config = SimConfig {
        webhook_signing: WebhookSigning::Canonical,
        ..short(150)
    };
    let webhooks = Webhooks {
        secret,
        sim_sends: true,
    };
    let h = Harness::start_with(sim_config, &first_args, Some(webhooks)).await;
    let mut args = vec![
        "env0-exporter",
        "--api-endpoint",
        &h.endpoint,
        "--shard",
        "2/2",
        "--webhook-secret",
        secret,
    ];
    args.extend_from_slice(&FORWARDING_FLAGS);
    let second = start_shard(&h, args, second_listener).await;
    (h, second)
}

/// Moves the clock a minute, lets the simulator deliver that minute's changes to shard 1, and
/// waits at most [`FORWARDED_WITHIN`] for each shard's `/metrics` to equal the records of its
/// own environments.
async fn one_minute_on_both_shards(h: &Harness, second: &Running, minute: u32) {
    h.clock.advance(std::time::Duration::from_secs(60));
    h.sim.advance();
    tokio::time::timeout(REAL_TIMEOUT, h.sim.webhooks_flushed())
        .await
        .expect("the simulator delivered its webhooks");
    // Every delivery is answered (shard 1 answers a forwarded one after shard 2 did): from here
    // both shards' /metrics must equal their records within the bound.
    let of = |shard: u8| {
        move |d: &env0_exporter::simulator::SimDeployment| {
            documented_shard_of_2(&d.environment_id) == shard
        }
    };
    let want = [1, 2].map(|s| (h.expected_finished(of(s)), h.expected_window(of(s))));
    let delivered = tokio::time::Instant::now();
    loop {
        let (one, two) = (h.scrape().await, scrape(second).await);
        let got = [&one, &two].map(|samples| {
            (
                series(samples, "env0_deployments_finished_total"),
                series(samples, "env0_deployments"),
            )
        });
        if got == want {
            eprintln!(
                "minute {minute}: both shards equal to their records {:?} after the deliveries",
                delivered.elapsed()
            );
            return;
        }
        if delivered.elapsed() > FORWARDED_WITHIN {
            for (shard, (got, want)) in got.iter().zip(&want).enumerate() {
                let when = format!(
                    "minute {minute}, shard {}, {FORWARDED_WITHIN:?} after the deliveries",
                    shard + 1
                );
                assert_matches(&format!("{when}: finished"), &got.0, &want.0);
                assert_matches(&format!("{when}: env0_deployments"), &got.1, &want.1);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_to_shard_1_for_shard_2s_environment_shows_in_shard_2s_metrics_within_two_seconds_counted_once()
 {
    let (h, second) = forwarding_shards("forwarding-secret").await;
    for minute in 1..=6 {
        one_minute_on_both_shards(&h, &second, minute).await;
    }
    assert_eq!(h.polls(), 1, "no poll of shard 1 ran");
    assert_eq!(
        second.snapshot.load().health.polls_completed,
        1,
        "nor of shard 2"
    );

    // Every delivery went to shard 1; shard 2's were forwarded and answered with shard 2's 202.
    let (mut to_first, mut to_second) = (0_u32, 0_u32);
    for delivery in h.sim.deliveries() {
        let Some(env) = delivered_environment(&delivery.body) else {
            continue;
        };
        assert_eq!(delivery.status, Some(202), "{env}: {}", delivery.event_type);
        if documented_shard_of_2(&env) == 1 {
            to_first += 1;
        } else {
            to_second += 1;
        }
    }
    assert!(
        to_first > 0 && to_second > 0,
        "{to_first} deliveries for shard 1, {to_second} for shard 2"
    );
    let (one, two) = (h.scrape().await, scrape(&second).await);
    let events = "env0_exporter_webhook_events_total";
    for (what, got, want) in [
        (
            "shard 1 accepted",
            outcome_total(&one, events, "accepted"),
            to_first,
        ),
        (
            "shard 1 forwarded",
            outcome_total(&one, events, "forwarded"),
            to_second,
        ),
        (
            "shard 1 forwards ok",
            outcome_total(&one, "env0_exporter_webhook_forwards_total", "ok"),
            to_second,
        ),
        (
            "shard 2 accepted",
            outcome_total(&two, events, "accepted"),
            to_second,
        ),
        (
            "shard 2 forwarded",
            outcome_total(&two, events, "forwarded"),
            0,
        ),
    ] {
        assert!(
            (got - f64::from(want)).abs() < f64::EPSILON,
            "{what}: {got}, want {want}"
        );
    }
    // Counted once across both: the shards' finished runs add up to the simulator's, and shard
    // 2 learned of runs finishing through forwarded deliveries alone.
    assert_matches(
        "env0_deployments_finished_total summed over the shards",
        &summed(&[&one, &two], "env0_deployments_finished_total"),
        &h.expected_finished(|_| true),
    );
    let second_finished: f64 = series(&two, "env0_deployments_finished_total")
        .values()
        .sum();
    assert!(second_finished > 0.0, "shard 2 saw no run finish");
    second.shutdown().await;
    h.stop().await;
}
