//! What polling costs at scale: re-reads of long-unfinished runs back off (and still see them
//! finish within the documented bound), full re-reads stretch to what the request budget holds
//! and say so, and no 60-second window ever exceeds the budget.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use env0_exporter::clock;
use env0_exporter::simulator::{RequestRecord, SimConfig, SimDeployment, Simulator};
use jiff::Timestamp;

use super::{SHORT_LOOKBACK, short, sim};
use crate::helpers::*;

/// (environment, run) of every unfinished run that is not its environment's latest.
fn stuck_runs(sim: &Simulator) -> Vec<(String, String)> {
    held_runs(sim, &sim.deployments())
        .into_iter()
        .map(|d| (d.environment_id.clone(), d.id.clone()))
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

/// Per environment among `stuck`, how many minutes past `now` (env0's clock) its stuck runs stay
/// young by the documented thresholds ([`documented_young_thresholds`]), with a fifth to spare
/// (the exporter's window of durations is not exactly this); zero or less: all old already.
fn young_minutes(
    stuck: &[(String, String)],
    runs: &[SimDeployment],
    now: Timestamp,
    lookback: Duration,
) -> HashMap<String, f64> {
    let thresholds = documented_young_thresholds(runs, now, lookback);
    let mut minutes: HashMap<String, f64> = HashMap::new();
    for (env, id) in stuck {
        let run = runs.iter().find(|d| &d.id == id).expect("a stuck run");
        let threshold = thresholds
            .get(&run.deployment_type)
            .copied()
            .unwrap_or(Duration::from_secs(900));
        let age = clock::elapsed(run.started_at.unwrap_or(run.created_at), now);
        let left = (1.2 * threshold.as_secs_f64() - age.as_secs_f64()) / 60.0;
        let entry = minutes.entry(env.clone()).or_insert(f64::MIN);
        *entry = entry.max(left);
    }
    minutes
}

/// The minutes after START at which an environment holding a stuck run is read over `polls`
/// 60 s polls, when that run is young until minute `young_until` (0: already old): every poll
/// while young, then the documented back-off counted from the last read: the next poll, then
/// gaps of 2, 4 and 8 polls, then every 10 (`--unfinished-reread-max-interval`).
fn documented_rereads(young_until: u64, polls: u64) -> Vec<u64> {
    let mut reads: Vec<u64> = (1..=young_until).collect();
    let (mut at, mut gap) = (young_until, 1);
    while at + gap <= polls {
        at += gap;
        reads.push(at);
        gap = (gap * 2).min(10);
    }
    reads
}

/// Checks the reads of `env` (minutes after START, over 26 polls) against
/// [`documented_rereads`]: every poll from minute 1 while its stuck runs are young (at most
/// `young_for` minutes by the documented thresholds: not at all when all were old at START),
/// then the back-off counted from the last read.
fn assert_rereads_as_documented(env: &str, minutes: &[u64], young_for: f64) {
    let young_until = minutes
        .iter()
        .zip(1..)
        .take_while(|(m, i)| **m == *i)
        .count()
        .saturating_sub(1);
    assert_eq!(
        minutes,
        documented_rereads(u64::try_from(young_until).unwrap(), 26),
        "reads of {env}"
    );
    assert!(
        f64::from(u32::try_from(young_until).unwrap()) <= young_for.ceil(),
        "{env} was read every poll for {young_until} minutes; its runs were young for {young_for:.1}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_unfinished_run_is_reread_ever_less_often_yet_seen_finished_within_the_bound() {
    // No full re-reads: only the re-reads of unfinished runs can notice a run that is not the
    // latest finish. The world runs four times faster than IaC-like (approvals wait up to 1.5 h
    // instead of 6), so that a stuck run finishes within fewer polls; the back-off is the
    // exporter's, by its clock, whatever the world's pace.
    let h = Harness::start(
        SimConfig {
            time_scale: 0.25,
            ..short(300)
        },
        &[
            "--lookback",
            SHORT_LOOKBACK,
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
    let stuck_envs: BTreeSet<&str> = stuck.iter().map(|(e, _)| e.as_str()).collect();
    assert!(
        stuck_envs.len() >= 3,
        "the test needs environments holding unfinished runs that are not their latest: {stuck:?}"
    );
    // A stuck run still young at START (younger than its type's threshold, docs/polling.md) is
    // read every poll until it is not, and its back-off counts from that last read (the unit
    // test poller::schedule::tests::a_young_run_is_reread_every_poll_then_backs_off_from_its_end_of_youth).
    let young_minutes = young_minutes(&stuck, &h.sim.deployments(), h.sim_now(), h.lookback);
    h.sim.clear_requests();
    for _ in 0..26 {
        h.next_poll().await;
    }
    let requests = h.sim.requests();
    // The documented back-off, in 60 s polls: the next poll, then gaps of 2, 4 and 8 polls,
    // then every 10 (the maximum): minutes 1, 3, 7, 15, 25. Every poll would be 26. The whole
    // schedule over an hour (…, 35, 45, 55) is the unit test
    // poller::schedule::tests::a_stuck_unfinished_run_is_reread_next_poll_then_ever_less_often_up_to_the_maximum;
    // here the real exporter shows it follows that schedule up to the maximum.
    let mut expected_reads = 0;
    let mut backing_off_from_start = 0;
    for env in &stuck_envs {
        let minutes: Vec<u64> = reads_of(&requests, env)
            .into_iter()
            .map(|t| minutes_since(h.started, t))
            .collect();
        let young_for = young_minutes[*env].max(0.0);
        assert_rereads_as_documented(env, &minutes, young_for);
        backing_off_from_start += usize::from(young_for == 0.0);
        expected_reads += minutes.len();
    }
    // Runs already old at START (first seen old) back off at once: 1, 3, 7, 15, 25.
    assert!(
        backing_off_from_start >= 3,
        "the test needs environments whose stuck runs are all old at START: {young_minutes:?}"
    );
    let deployment_reads = requests
        .iter()
        .filter(|r| r.path.ends_with("/deployments") && r.path.starts_with("/environments/"))
        .count();
    assert_eq!(
        deployment_reads, expected_reads,
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
    eprintln!(
        "{run} finished after {} polls",
        minutes_since(h.started, finished_by) - 26
    );
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

/// The most requests any 60-second window (starting at a request) holds.
fn busiest_minute(requests: &[RequestRecord]) -> usize {
    let times: Vec<Timestamp> = requests.iter().map(|r| r.at).collect();
    times
        .iter()
        .map(|t| {
            let end = clock::add(*t, Duration::from_secs(60));
            times.iter().filter(|u| *u >= t && *u < &end).count()
        })
        .max()
        .unwrap_or(0)
}

fn gauge(samples: &[Sample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_and_stretched_full_syncs_never_exceed_the_budget_in_any_minute() {
    // 300 environments, 60 requests a minute, full re-reads wanted every 5 minutes. The listing
    // costs 300/100 + 2 = 5 a poll; a quarter of the budget is headroom: 60 × 3/4 − 5 = 40 full
    // re-reads a minute, so 300 take 7.5 minutes, not 5.
    let quiet = SimConfig {
        mean_deployment_interval: Duration::from_secs(6 * 3600),
        ..sim(300)
    };
    let h = Harness::start(
        quiet,
        &[
            "--max-requests-per-minute",
            "60",
            "--full-sync-interval",
            "5m",
        ],
    )
    .await;
    // Environments archived long ago get no full re-reads: between the non-archived ones and
    // all 300 are due them, at 40 a minute.
    let non_archived = h
        .sim
        .environments()
        .iter()
        .filter(|e| !e.is_archived)
        .count();
    let kept_ok = |v: Option<f64>| {
        v.is_some_and(|v| v <= 450.0 && v >= f64::from(u32::try_from(non_archived).unwrap()) * 1.5)
    };
    let mut pending_seen = Vec::new();
    loop {
        // Served all along, with the progress so far.
        let samples = h.scrape().await;
        let pending = gauge(&samples, "env0_exporter_backfill_pending_environments").unwrap();
        pending_seen.push(pending);
        if pending == 0.0 {
            break;
        }
        let kept = gauge(&samples, "env0_exporter_full_sync_duration_seconds");
        assert!(kept_ok(kept), "{kept:?}, {non_archived} not archived");
        assert!(
            pending_seen.len() < 20,
            "backfill did not finish: {pending_seen:?}"
        );
        h.next_poll().await;
    }
    assert!(
        pending_seen.len() >= 6 && pending_seen.windows(2).all(|w| w[1] < w[0]),
        "300 environments at 60 requests a minute take several polls, each one less pending: {pending_seen:?}"
    );
    // Full re-reads after the backfill, the world still moving, then frozen.
    for _ in 0..10 {
        h.next_poll().await;
    }
    h.sim.set_paused(true);
    let frozen_at = h.now();
    for _ in 0..20 {
        h.next_poll().await;
    }
    let requests = h.sim.requests();
    let busiest = busiest_minute(&requests);
    assert!(busiest <= 60, "{busiest} requests in one minute");
    assert!(busiest >= 50, "the budget is used: {busiest}");
    assert!(requests.iter().all(|r| r.status != 429), "no 429");
    // Frozen: every read is a full re-read, and their pace is the interval kept.
    let frozen: Vec<&RequestRecord> = requests
        .iter()
        .filter(|r| r.at > frozen_at && r.path.ends_with("/deployments"))
        .collect();
    let mut by_minute = std::collections::BTreeMap::<u64, usize>::new();
    for r in &frozen {
        *by_minute.entry(minutes_since(frozen_at, r.at)).or_default() += 1;
    }
    let stuck_envs: BTreeSet<String> = stuck_runs(&h.sim).into_iter().map(|(e, _)| e).collect();
    eprintln!(
        "stuck: {} envs; reads by minute: {by_minute:?}",
        stuck_envs.len()
    );
    // No poll does more than its share of the cycle, ⌈40 × 60 s / 60 s⌉ + 1 = 41, besides the
    // re-reads of environments holding unfinished non-latest runs.
    let most = by_minute.values().copied().max().unwrap_or(0);
    assert!(most <= 41 + stuck_envs.len(), "{most} reads in one poll");
    let per_poll = f64::from(u32::try_from(frozen.len()).unwrap()) / 20.0;
    assert!(
        (38.0..=42.0).contains(&per_poll),
        "300 environments in 7.5 minutes is 40 a poll: {per_poll}"
    );
    let samples = h.scrape().await;
    let kept = gauge(&samples, "env0_exporter_full_sync_duration_seconds");
    assert!(kept_ok(kept), "{kept:?}");
    // Every environment was re-read within the interval kept (plus the poll it was due in).
    let oldest = gauge(&samples, "env0_exporter_full_sync_oldest_age_seconds").unwrap();
    assert!(oldest <= 450.0 + 60.0, "oldest full read {oldest} s ago");
    assert!(
        oldest >= 360.0,
        "the cycle is stretched, not bursting: {oldest}"
    );
    h.stop().await;
}

/// The young threshold of each deployment type as docs/polling.md states it, computed here from
/// the simulator's records: the nearest-rank 90th percentile of the durations (`startedAt` to
/// `finishedAt`) of the type's runs created within `lookback` of `now`, within 1 and 60
/// minutes; 15 minutes for a type with fewer than 5 of them.
fn documented_young_thresholds(
    runs: &[SimDeployment],
    now: Timestamp,
    lookback: Duration,
) -> HashMap<String, Duration> {
    let cutoff = clock::sub(now, lookback);
    let mut by_type: HashMap<String, Vec<Duration>> = HashMap::new();
    for d in runs.iter().filter(|d| d.created_at >= cutoff) {
        if let (Some(start), Some(end)) = (d.started_at, d.finished_at) {
            by_type
                .entry(d.deployment_type.clone())
                .or_default()
                .push(clock::elapsed(start, end));
        }
    }
    by_type
        .into_iter()
        .filter(|(_, d)| d.len() >= 5)
        .map(|(t, mut d)| {
            d.sort_unstable();
            let rank = (d.len() * 9).div_ceil(10);
            let p90 = d[rank - 1].clamp(Duration::from_secs(60), Duration::from_secs(3600));
            (t, p90)
        })
        .collect()
}

/// A run's age (from its start, else creation) at `h`'s next poll, in env0's clock.
fn age_at_next_poll(h: &Harness, d: &SimDeployment) -> Duration {
    clock::elapsed(d.started_at.unwrap_or(d.created_at), h.sim_now()) + h.poll_interval
}

/// Among `held` ([`held_runs`] of `runs`), those the exporter holds as they are (their
/// environment was read since they started, or were created while queued: a queued run that
/// starts is known to have started only once read again, see `requests`) that are still young at
/// the next poll by the documented thresholds, with a fifth to spare for what the exporter's
/// window holds that this count does not.
fn young_as_read<'r>(
    h: &Harness,
    held: &[&'r SimDeployment],
    runs: &[SimDeployment],
    requests: &[RequestRecord],
) -> Vec<&'r SimDeployment> {
    let thresholds = documented_young_thresholds(runs, h.sim_now(), h.lookback);
    held.iter()
        .copied()
        .filter(|d| {
            let since = d.started_at.unwrap_or(d.created_at);
            reads_of(requests, &d.environment_id)
                .iter()
                .any(|t| *t >= since)
        })
        .filter(|d| {
            let threshold = thresholds
                .get(&d.deployment_type)
                .copied()
                .unwrap_or(Duration::from_secs(900));
            age_at_next_poll(h, d).as_secs_f64() < 0.8 * threshold.as_secs_f64()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_webhooks_a_young_run_that_is_not_the_latest_is_reread_every_poll() {
    // No full re-reads and no webhooks: only the re-reads of unfinished runs notice a run that
    // is not its environment's latest finish. While such a run is young its environment is read
    // every poll, so its finish shows within two polls; the back-off would skip polls 2, 4-6, ….
    let h = Harness::start(
        short(300),
        &["--lookback", SHORT_LOOKBACK, "--full-sync-interval", "0s"],
    )
    .await;
    let mut checked = 0;
    for _ in 0..15 {
        // The world moves during one poll, then stands still for the next, which is checked.
        h.sim.set_paused(false);
        h.next_poll().await;
        h.sim.set_paused(true);
        let runs = h.sim.deployments();
        let requests = h.sim.requests();
        let young: BTreeSet<String> =
            young_as_read(&h, &held_runs(&h.sim, &runs), &runs, &requests)
                .into_iter()
                .map(|d| d.environment_id.clone())
                .collect();
        let mark = requests.len();
        h.next_poll().await;
        let this_poll = &h.sim.requests()[mark..];
        for env in &young {
            assert!(
                !reads_of(this_poll, env).is_empty(),
                "{env} holds a young run that is not its latest but was not read this poll"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 5,
        "the test needs young non-latest runs to check: {checked}"
    );
    h.stop().await;
}

/// (project, deployment type) of every run in `deliveries` answered 2xx, and the types of which
/// both a success and another end were: what the exporter counts as covered by the deliveries
/// (docs/webhooks.md, "What the deliveries cover").
fn covered_by(
    deliveries: &[env0_exporter::simulator::DeliveryRecord],
    runs: &HashMap<&str, &SimDeployment>,
) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut projects = std::collections::BTreeSet::new();
    let mut ends: HashMap<String, (bool, bool)> = HashMap::new();
    for d in deliveries
        .iter()
        .filter(|d| d.status.is_some_and(|s| (200..300).contains(&s)))
    {
        let body: serde_json::Value = serde_json::from_str(&d.body).unwrap();
        let log = &body["data"]["deploymentLog"];
        let Some(run) = log["id"].as_str().and_then(|id| runs.get(id)) else {
            continue;
        };
        projects.insert(run.project_id.clone());
        let status = log["status"].as_str().unwrap_or_default();
        let end = ends.entry(run.deployment_type.clone()).or_default();
        match status {
            "SUCCESS" => end.0 = true,
            "QUEUED" | "IN_PROGRESS" | "WAITING_FOR_USER" | "ABORTING" => {}
            _ => end.1 = true,
        }
    }
    let types = ends
        .into_iter()
        .filter(|(_, (ok, other))| *ok && *other)
        .map(|(t, _)| t)
        .collect();
    (projects, types)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_webhooks_live_runs_whose_ends_never_come_are_reread_every_poll_and_the_rest_are_not()
{
    // env0 delivers every change but those of PR plans here (a notification target whose
    // projects left those events out; env0 lists a PR plan's failure as an event, not its
    // success). Webhooks are live, so the runs whose ends the deliveries bring are re-read only
    // to repair a lost delivery, once overdue; a young PR plan that is not its environment's
    // latest is re-read every poll as without webhooks, or its end would show 10 minutes late.
    let h = Harness::start_with(
        SimConfig {
            webhook_silent_types: vec!["prPlan".into()],
            ..short(300)
        },
        &["--lookback", SHORT_LOOKBACK, "--full-sync-interval", "0s"],
        Some(Webhooks {
            secret: "a-webhook-secret-of-32-bytes-or-more",
            sim_sends: true,
        }),
    )
    .await;
    let (mut polled, mut left_alone) = (0, 0);
    for _ in 0..15 {
        // The world moves during one poll, then stands still for the next, which is checked.
        h.sim.set_paused(false);
        h.next_poll().await;
        h.sim.set_paused(true);
        tokio::time::timeout(Duration::from_secs(30), h.sim.webhooks_flushed())
            .await
            .expect("the simulator delivered its webhooks");
        let runs = h.sim.deployments();
        let by_id: HashMap<&str, &SimDeployment> =
            runs.iter().map(|d| (d.id.as_str(), d)).collect();
        let (projects, types) = covered_by(&h.sim.deliveries(), &by_id);
        let requests = h.sim.requests();
        let held = held_runs(&h.sim, &runs);
        let young_plans: BTreeSet<&str> = young_as_read(&h, &held, &runs, &requests)
            .into_iter()
            .filter(|d| d.deployment_type == "prPlan")
            .map(|d| d.environment_id.as_str())
            .collect();
        // Environments holding only runs the deliveries cover, none of them near overdue (10
        // minutes old, `--unfinished-reread-max-interval`), and no PR plan the exporter could
        // still hold unfinished (one that ended silently since it began): nothing to read.
        let plans_since_start: BTreeSet<&str> = runs
            .iter()
            .filter(|d| d.deployment_type == "prPlan")
            .filter(|d| d.finished_at.is_none_or(|f| f > h.sim_started()))
            .map(|d| d.environment_id.as_str())
            .collect();
        let mut covered: BTreeMap<&str, bool> = BTreeMap::new();
        for d in &held {
            let ok = projects.contains(&d.project_id)
                && types.contains(&d.deployment_type)
                && age_at_next_poll(&h, d) < Duration::from_secs(540)
                && !plans_since_start.contains(d.environment_id.as_str());
            *covered.entry(d.environment_id.as_str()).or_insert(true) &= ok;
        }
        let mark = requests.len();
        h.next_poll().await;
        let this_poll = &h.sim.requests()[mark..];
        for env in &young_plans {
            assert!(
                !reads_of(this_poll, env).is_empty(),
                "{env} holds a young PR plan whose end no delivery brings, but was not read this poll"
            );
            polled += 1;
        }
        for (env, _) in covered.iter().filter(|(_, ok)| **ok) {
            assert!(
                reads_of(this_poll, env).is_empty(),
                "{env} holds only young runs whose ends the deliveries bring, but was read this poll"
            );
            left_alone += 1;
        }
    }
    eprintln!("{polled} environments read for a young PR plan, {left_alone} left alone");
    // What the exporter says it covers is what the deliveries brought.
    let runs = h.sim.deployments();
    let by_id: HashMap<&str, &SimDeployment> = runs.iter().map(|d| (d.id.as_str(), d)).collect();
    let (projects, types) = covered_by(&h.sim.deliveries(), &by_id);
    let samples = h.scrape().await;
    let gauge = |name: &str, deployment_type: Option<&str>| {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.get("deployment_type").map(String::as_str) == deployment_type
            })
            .map(|s| s.value)
    };
    assert_eq!(
        gauge("env0_exporter_webhook_projects_delivering", None),
        Some(f64::from(u32::try_from(projects.len()).unwrap()))
    );
    assert_eq!(
        gauge("env0_exporter_webhook_ends_delivered", Some("prPlan")),
        Some(0.0)
    );
    assert!(!types.is_empty());
    for t in &types {
        assert_eq!(
            gauge("env0_exporter_webhook_ends_delivered", Some(t)),
            Some(1.0),
            "{t}"
        );
    }
    assert!(
        polled >= 5 && left_alone >= 5,
        "the test needs both kinds of environment: {polled} polled, {left_alone} left alone"
    );
    h.stop().await;
}
