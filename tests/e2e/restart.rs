//! `--state-file`: a restart resumes from the file (its first poll reads only what changed, not
//! the lookback window), shows the same window, and counts nothing twice; a file it cannot use
//! is ignored with a warning and the exporter backfills and stays healthy.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use clap::Parser;
use env0_exporter::app;
use env0_exporter::config::Cli;
use env0_exporter::simulator::{LatestMovedBy, SimConfig, Simulator};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use jiff::Timestamp;
use tokio::net::TcpListener;

use crate::helpers::*;

impl Harness {
    /// Starts a new exporter with `extra` on the same simulator and clock (after the last one
    /// was shut down, as SIGTERM does), and waits for its first poll.
    async fn start_exporter(&mut self, extra: &[&str]) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut args = vec!["env0-exporter", "--api-endpoint", &self.endpoint];
        args.extend_from_slice(extra);
        let config = Cli::try_parse_from(args)
            .unwrap()
            .exporter
            .validate(false)
            .unwrap();
        let clock: env0_exporter::clock::SharedClock = self.clock.clone();
        let exporter = app::build(&config, &app::sim_credentials(&self.sim), clock).unwrap();
        self.exporter = Some(app::start(exporter, listener));
        self.wait_for_polls(1).await;
    }
}

/// Environment id → its latest run's (id, status), as env0 lists it now.
fn latest_runs(sim: &Simulator) -> BTreeMap<String, Option<(String, String)>> {
    let status: BTreeMap<String, String> = sim
        .deployments()
        .into_iter()
        .map(|d| (d.id, d.status))
        .collect();
    sim.environments()
        .into_iter()
        .map(|e| {
            let latest = e
                .latest_deployment_log_id
                .map(|id| (id.clone(), status.get(&id).cloned().unwrap_or_default()));
            (e.id, latest)
        })
        .collect()
}

/// Environments holding an unfinished run that is not their latest.
fn holding(sim: &Simulator) -> BTreeSet<String> {
    held_runs(sim, &sim.deployments())
        .into_iter()
        .map(|d| d.environment_id.clone())
        .collect()
}

/// The environments whose deployments were listed, from the simulator's request log (the
/// start-up probe's requests aside).
fn environments_read(sim: &Simulator) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| !is_probe(r))
        .filter_map(|r| {
            r.path
                .strip_prefix("/environments/")?
                .strip_suffix("/deployments")
                .map(str::to_owned)
        })
        .collect()
}

/// The simulator's truth for `env0_deployments_finished_total` of a process that took over
/// at `since` (env0's clock): runs that finished after it.
fn finished_after(sim: &Simulator, since: Timestamp) -> BTreeMap<Labels, f64> {
    let mut out = BTreeMap::new();
    for d in sim.deployments() {
        if is_finished(&d) && finish_time(&d) > since {
            *out.entry(deployment_labels(&d, true)).or_insert(0.0) += 1.0;
        }
    }
    out
}

async fn assert_window_and_finished(h: &Harness, since: Timestamp, when: &str) {
    let samples = h.scrape().await;
    assert_eq!(series(&samples, "env0_up").len(), 1, "{when}: env0_up is 1");
    crate::assert_matches(
        &format!("{when}: env0_deployments"),
        &series(&samples, "env0_deployments"),
        &h.expected_window(|_| true),
    );
    crate::assert_matches(
        &format!("{when}: env0_deployments_finished_total"),
        &series(&samples, "env0_deployments_finished_total"),
        &finished_after(&h.sim, since),
    );
}

/// A simulated organisation where every run moves its environment's `latestDeploymentLog`, so
/// polls without full re-reads are exact (the full re-reads are tested elsewhere), read with a
/// short window ([`crate::short`]).
fn sim(environments: usize) -> SimConfig {
    SimConfig {
        latest_moved_by: LatestMovedBy::Every,
        ..crate::short(environments)
    }
}

/// The exporter's flags with the state file at `path`, written at most every `interval` (and
/// at shutdown).
fn flags(path: &Path, interval: &str) -> Vec<String> {
    vec![
        "--lookback".into(),
        crate::SHORT_LOOKBACK.into(),
        "--state-file".into(),
        path.display().to_string(),
        "--state-file-interval".into(),
        interval.into(),
        "--full-sync-interval".into(),
        "0s".into(),
        "--max-requests-per-minute".into(),
        "1000".into(),
        // Held unfinished runs re-read every poll (no back-off): the window is compared with
        // env0's records exactly at every poll; the back-off has its own tests (cost.rs).
        "--unfinished-reread-max-interval".into(),
        "60s".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_state_file_reads_only_what_changed_and_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json.gz");
    // Written after the first poll, then not before an hour has passed: what the restart
    // resumes from is what the stopped process wrote at shutdown.
    let owned = flags(&path, "1h");
    let extra: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut h = Harness::start(sim(150), &extra).await;
    let backfill = environments_read(&h.sim).len();
    assert_eq!(backfill, 150, "the first start backfills every environment");
    for _ in 0..3 {
        h.next_poll().await;
    }
    wait_for_a_write(&h).await;
    // The clock stands still during a poll: what the last poll saw is env0 at this time.
    let last_poll = h.sim_now();
    let latest_before = latest_runs(&h.sim);
    let holding_before = holding(&h.sim);
    h.exporter.take().unwrap().shutdown().await;

    // env0 moves on for five minutes while no exporter runs.
    h.clock.advance(Duration::from_secs(300));
    let latest_after = latest_runs(&h.sim);
    let changed: BTreeSet<String> = latest_after
        .iter()
        .filter(|(env, latest)| latest_before.get(*env) != Some(latest))
        .map(|(env, _)| env.clone())
        .collect();
    assert!(!changed.is_empty(), "the test needs environments to change");
    let finished_meanwhile = finished_after(&h.sim, last_poll).values().sum::<f64>();
    assert!(
        finished_meanwhile > 0.0,
        "the test needs runs to finish while the exporter is down"
    );

    h.sim.clear_requests();
    h.start_exporter(&extra).await;
    let all = h.sim.requests();
    let probe = all.iter().filter(|r| is_probe(r)).count();
    assert!(probe <= env0_exporter::probe::MAX_REQUESTS as usize);
    let requests = all.len() - probe;
    let read = environments_read(&h.sim);
    let holding_now = holding(&h.sim);
    let allowed: BTreeSet<&String> = changed
        .iter()
        .chain(&holding_before)
        .chain(&holding_now)
        .collect();
    eprintln!(
        "first poll after the restart: {requests} requests, {} environment reads ({} changed, {} holding an older unfinished run); the backfill read {backfill}",
        read.len(),
        changed.len(),
        holding_before.len()
    );
    for env in &read {
        assert!(
            allowed.contains(env),
            "{env} was read although it neither changed nor holds an unfinished run"
        );
    }
    assert_eq!(
        read.iter().collect::<BTreeSet<_>>().len(),
        read.len(),
        "no environment is read twice"
    );
    // Organisation, projects, two pages of environments, the reads, and a look-up per
    // unfinished run a listing no longer shows; the probe's few requests aside.
    assert!(
        requests <= 4 + allowed.len() * 2,
        "{requests} requests for {} environments to read",
        allowed.len()
    );
    assert!(
        requests < backfill / 2,
        "{requests} requests: not a backfill"
    );
    // The window is whole at once; finished counts only what finished since the last poll of
    // the stopped process (what it had counted is not counted again).
    assert_window_and_finished(&h, last_poll, "after the restart").await;
    for i in 1..=5 {
        h.next_poll().await;
        assert_window_and_finished(&h, last_poll, &format!("poll {i} after the restart")).await;
    }
    let samples = h.scrape().await;
    let writes = series(&samples, "env0_exporter_state_file_writes_total");
    assert!(
        writes
            .iter()
            .any(|(l, v)| l.get("outcome").map(String::as_str) == Some("success") && *v >= 1.0),
        "{writes:?}"
    );
    assert!(
        !series(
            &samples,
            "env0_exporter_state_file_last_write_timestamp_seconds"
        )
        .is_empty()
    );
    h.stop().await;
}

/// Waits until the exporter has written the state file once (writes run in the background).
async fn wait_for_a_write(h: &Harness) {
    let deadline = tokio::time::Instant::now() + REAL_TIMEOUT;
    loop {
        let samples = h.scrape().await;
        let writes = series(&samples, "env0_exporter_state_file_writes_total");
        if writes
            .iter()
            .any(|(l, v)| l.get("outcome").map(String::as_str) == Some("success") && *v >= 1.0)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no state file written: {writes:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A way to spoil a good state file, named.
type Spoil = (&'static str, fn(&Path));

/// Rewrites the header line of a state file with `edit`.
fn edit_header(path: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let mut text = String::new();
    GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let mut header: serde_json::Value = serde_json::from_str(header).unwrap();
    edit(&mut header);
    let mut gz = GzEncoder::new(std::fs::File::create(path).unwrap(), Compression::fast());
    writeln!(gz, "{header}").unwrap();
    gz.write_all(body.as_bytes()).unwrap();
    gz.finish().unwrap();
}

/// The organisation of the state-file acceptance tests: whether a file is taken or refused shows
/// in which environments the first poll reads (all of them, or only what changed), whatever
/// their number.
const STATE_FILE_ENVIRONMENTS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_foreign_state_file_is_ignored_and_the_exporter_backfills() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    {
        let owned = flags(&good, "0s");
        let extra: Vec<&str> = owned.iter().map(String::as_str).collect();
        let h = Harness::start(sim(STATE_FILE_ENVIRONMENTS), &extra).await;
        h.next_poll().await;
        h.stop().await;
    }
    let variants: [Spoil; 4] = [
        ("corrupt", |p: &Path| {
            let bytes = std::fs::read(p).unwrap();
            std::fs::write(p, &bytes[..bytes.len() / 2]).unwrap();
        }),
        ("another organisation's", |p: &Path| {
            edit_header(p, |h| h["organization_id"] = "someone-else".into());
        }),
        ("another format version's", |p: &Path| {
            edit_header(p, |h| h["format"] = 999.into());
        }),
        ("another lookback's", |p: &Path| {
            edit_header(p, |h| h["settings"]["lookback_seconds"] = 3600.into());
        }),
    ];
    for (what, spoil) in variants {
        let path = dir.path().join(what.replace(' ', "-"));
        std::fs::copy(&good, &path).unwrap();
        spoil(&path);
        let owned = flags(&path, "0s");
        let extra: Vec<&str> = owned.iter().map(String::as_str).collect();
        let h = Harness::start(sim(STATE_FILE_ENVIRONMENTS), &extra).await;
        let read: BTreeSet<String> = environments_read(&h.sim).into_iter().collect();
        assert_eq!(
            read.len(),
            STATE_FILE_ENVIRONMENTS,
            "{what} file: a full backfill"
        );
        h.next_poll().await;
        let samples = h.scrape().await;
        assert_eq!(series(&samples, "env0_up").len(), 1, "{what} file: healthy");
        crate::assert_matches(
            &format!("{what} file: env0_deployments"),
            &series(&samples, "env0_deployments"),
            &h.expected_window(|_| true),
        );
        h.stop().await;
        // The exporter replaced it with a good one: a new start restores from it.
        h_restores(&path).await;
    }
}

/// A new exporter (same simulated organisation) with the file at `path` does not backfill.
async fn h_restores(path: &Path) {
    let owned = flags(path, "0s");
    let extra: Vec<&str> = owned.iter().map(String::as_str).collect();
    let h = Harness::start(sim(STATE_FILE_ENVIRONMENTS), &extra).await;
    let read = environments_read(&h.sim).len();
    assert!(
        read < STATE_FILE_ENVIRONMENTS / 2,
        "restored from the rewritten file: {read} reads"
    );
    h.stop().await;
}

/// The deployment types `h` now shows covered (`env0_exporter_webhook_ends_delivered` 1).
async fn covered_types(h: &Harness) -> BTreeSet<String> {
    h.scrape_only(&["env0_exporter_webhook_ends_delivered"])
        .await
        .into_iter()
        .filter(|s| s.value > 0.5)
        .filter_map(|s| s.labels.get("deployment_type").cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_webhook_deliveries_covered_is_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json.gz");
    let secret = "a-webhook-secret-for-the-restart-test";
    let mut owned = flags(&path, "1h");
    owned.extend(["--webhook-secret".into(), secret.into()]);
    let extra: Vec<&str> = owned.iter().map(String::as_str).collect();
    let mut h = Harness::start_with(
        sim(150),
        &extra[..extra.len() - 2],
        Some(Webhooks {
            secret,
            sim_sends: true,
        }),
    )
    .await;
    // The world moves until the deliveries have covered some type (a success and another end).
    let mut covered = BTreeSet::new();
    for _ in 0..60 {
        h.next_poll().await;
        tokio::time::timeout(REAL_TIMEOUT, h.sim.webhooks_flushed())
            .await
            .expect("the simulator delivered its webhooks");
        covered = covered_types(&h).await;
        if !covered.is_empty() {
            break;
        }
    }
    assert!(!covered.is_empty(), "the test needs a covered type");
    // Nothing more is delivered (the world stands still, and the simulator still sends to the
    // stopped process): what the restarted one shows comes from the file.
    h.sim.set_paused(true);
    h.exporter.take().unwrap().shutdown().await;
    h.clock.advance(Duration::from_secs(60));
    h.start_exporter(&extra).await;
    assert_eq!(
        covered_types(&h).await,
        covered,
        "covered before the restart"
    );
    h.stop().await;
}
