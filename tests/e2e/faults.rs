//! Faults env0 can show that the simple ones (a status, a delay) do not cover, each met by the
//! real exporter over loopback and compared with the simulator's records: a key refused some
//! projects, an environment gone between listing and reading, pages that shift while read,
//! JSON of the wrong shape, timestamps out of order, undocumented values, and very large pages.

#![allow(clippy::float_cmp)] // the values compared are small counts, exact in f64

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use env0_exporter::clock;
use env0_exporter::simulator::{
    Fault, FaultKind, Malformation, SimConfig, SimDeployment, undocumented_value,
};

use crate::helpers::*;
use crate::{SHORT_LOOKBACK, assert_exact, assert_exact_for, assert_matches, short};

/// Long enough to outlast any test.
const ALWAYS: Duration = Duration::from_secs(30 * 24 * 3600);

fn latest_ids(h: &Harness) -> HashSet<String> {
    h.sim
        .environments()
        .into_iter()
        .filter_map(|e| e.latest_deployment_log_id)
        .collect()
}

fn counter(samples: &[Sample], name: &str, label: &str, value: &str) -> f64 {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get(label).map(String::as_str) == Some(value))
        .map_or(0.0, |s| s.value)
}

fn gauge(samples: &[Sample], name: &str) -> Option<f64> {
    samples.iter().find(|s| s.name == name).map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_refused_one_project_reads_the_rest_and_shows_how_many_environments_it_cannot_read() {
    let mut forbidden = String::new();
    // The brisk world: among the refused project's environments is one archived and quiet past
    // the 2 h window, which the full re-reads leave alone, so it must not stay counted as
    // unreadable once the key may read it (it did before: 1, want 0).
    let h = Harness::start_prepared(
        crate::brisk(120),
        &[
            "--lookback",
            crate::BRISK_LOOKBACK,
            "--full-sync-interval",
            "60s",
        ],
        None,
        |s| {
            forbidden = s.projects()[0].0.clone();
            s.inject_for(
                Some("/environments/"),
                FaultKind::ForbiddenProjects(vec![forbidden.clone()]),
                ALWAYS,
            );
        },
    )
    .await;
    h.sim.set_paused(true);
    let samples = h.scrape().await;
    assert_eq!(gauge(&samples, "env0_up"), Some(1.0), "the poll goes on");
    let refused: BTreeSet<String> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .map(|r| r.path)
        .collect();
    let in_project: BTreeSet<String> = h
        .sim
        .environments()
        .into_iter()
        .filter(|e| e.project_id == forbidden)
        .map(|e| format!("/environments/{}/deployments", e.id))
        .collect();
    assert!(!refused.is_empty() && refused.is_subset(&in_project));
    // Archived and quiet past the window: not read again, so not counted as unreadable.
    let window_start = clock::sub(h.sim_now(), h.lookback);
    let left_alone: BTreeSet<String> = h
        .sim
        .environments()
        .into_iter()
        .filter(|e| e.is_archived && e.updated_at < window_start)
        .map(|e| format!("/environments/{}/deployments", e.id))
        .collect();
    assert!(
        refused.iter().any(|p| left_alone.contains(p)),
        "the test needs a refused environment archived and quiet past the window"
    );
    #[allow(clippy::cast_precision_loss)]
    let (refused_n, refusals) = (
        refused.difference(&left_alone).count() as f64,
        refused.len() as f64,
    );
    assert_eq!(
        gauge(&samples, "env0_exporter_unreadable_environments"),
        Some(refused_n)
    );
    assert_eq!(
        counter(
            &samples,
            "env0_exporter_poll_errors_total",
            "reason",
            "forbidden"
        ),
        refusals,
        "every refusal counted, the left-alone environment's too"
    );
    // Everything of the other projects, and of the refused one what the listing embeds.
    let latest = latest_ids(&h);
    let envs: BTreeMap<String, String> = h
        .sim
        .environments()
        .into_iter()
        .map(|e| (e.id, e.project_id))
        .collect();
    let readable = |d: &SimDeployment| {
        envs.get(&d.environment_id) != Some(&forbidden) || latest.contains(&d.id)
    };
    assert_exact_for(&h, "with one project refused", readable).await;

    // The role is granted: the refused environments are read at their full sync.
    h.sim.clear_faults();
    h.next_poll().await;
    h.next_poll().await;
    assert_exact(&h, "once the key may read everything").await;
    let samples = h.scrape().await;
    assert_eq!(
        gauge(&samples, "env0_exporter_unreadable_environments"),
        Some(0.0)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_deleted_between_listing_and_reading_is_skipped_without_failing_the_poll() {
    let mut gone = String::new();
    let h = Harness::start_prepared(
        short(120),
        &["--lookback", SHORT_LOOKBACK, "--full-sync-interval", "60s"],
        None,
        |s| {
            let probe = Harness::busy_in(s, 5);
            gone = probe;
            s.inject(Fault {
                path_prefix: Some(format!("/environments/{gone}/deployments")),
                kind: FaultKind::Status(404),
                count: 1,
            });
        },
    )
    .await;
    h.sim.set_paused(true);
    let samples = h.scrape().await;
    assert_eq!(gauge(&samples, "env0_up"), Some(1.0));
    assert!(
        h.sim.requests().iter().any(|r| r.status == 404),
        "the fault was met"
    );
    let errors: f64 = series(&samples, "env0_exporter_poll_errors_total")
        .values()
        .sum();
    assert_eq!(errors, 0.0, "a vanished environment is no error");
    let latest = latest_ids(&h);
    assert_exact_for(&h, "without the vanished environment's history", |d| {
        d.environment_id != gone || latest.contains(&d.id)
    })
    .await;
    h.next_poll().await;
    h.next_poll().await;
    assert_exact(&h, "once it is listed and readable again").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_that_shift_by_one_between_requests_lose_nothing_and_count_nothing_twice() {
    // Three busy environments with the whole history in the window: over a hundred runs each,
    // so two pages or more each.
    let config = SimConfig {
        environments: 3,
        mean_deployment_interval: Duration::from_secs(20 * 60),
        ..SimConfig::default()
    };
    let flags = ["--full-sync-interval", "60s", "--lookback", "48h"];
    let h = Harness::start_prepared(config, &flags, None, |s| {
        s.inject_for(Some("/environments"), FaultKind::ShiftPages, ALWAYS);
    })
    .await;
    let shifted = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/deployments") && !r.query.contains("offset=0"))
        .count();
    assert!(
        shifted >= 2,
        "later pages were read (and shifted): {shifted}"
    );
    assert_exact(&h, "after a backfill over shifting pages").await;
    for i in 1..=5 {
        h.next_poll().await;
        assert_exact(&h, &format!("after poll {i} over shifting pages")).await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_an_id_or_of_the_wrong_shape_are_skipped_and_counted_and_the_poll_goes_on()
{
    let (mut no_id, mut bad_status) = (String::new(), String::new());
    let h = Harness::start_prepared(
        short(120),
        &["--lookback", SHORT_LOOKBACK, "--full-sync-interval", "0s"],
        None,
        |s| {
            let envs = Harness::busy_envs_in(s, 5);
            no_id.clone_from(&envs[0]);
            bad_status.clone_from(&envs[1]);
            for (env, how) in [
                (&no_id, Malformation::MissingId),
                (&bad_status, Malformation::NumberForText),
            ] {
                s.inject(Fault {
                    path_prefix: Some(format!("/environments/{env}/deployments")),
                    kind: FaultKind::Malformed(how),
                    count: 1,
                });
            }
            // Strings where numbers belong, everywhere: read as "no value", nothing skipped.
            s.inject_for(
                Some("/environments"),
                FaultKind::Malformed(Malformation::StringForNumber),
                ALWAYS,
            );
        },
    )
    .await;
    h.sim.set_paused(true);
    let samples = h.scrape().await;
    assert_eq!(gauge(&samples, "env0_up"), Some(1.0));
    let skipped = |reason| {
        counter(
            &samples,
            "env0_exporter_skipped_records_total",
            "reason",
            reason,
        )
    };
    assert_eq!((skipped("missing_id"), skipped("wrong_shape")), (1.0, 1.0));
    // The skipped record is each page's first (newest) one; the listing's embedded latest
    // run may bring it anyway.
    let cutoff = clock::sub(h.now(), h.lookback);
    let newest = |env: &str| {
        h.sim
            .deployments()
            .into_iter()
            .filter(|d| d.environment_id == env && d.created_at >= cutoff)
            .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
            .map(|d| d.id)
            .expect("a newest run")
    };
    let lost: HashSet<String> = [newest(&no_id), newest(&bad_status)].into();
    let latest = latest_ids(&h);
    assert_exact_for(&h, "without the two unreadable records", |d| {
        !lost.contains(&d.id) || latest.contains(&d.id)
    })
    .await;

    // A page that is an object, not an array: the poll fails as a decode error, keeps the
    // data, and the next one recovers.
    h.sim.clear_faults();
    h.sim.inject(Fault {
        path_prefix: Some("/environments".into()),
        kind: FaultKind::Malformed(Malformation::ObjectInsteadOfArray),
        count: 1,
    });
    h.next_poll().await;
    let samples = h.scrape().await;
    assert_eq!(gauge(&samples, "env0_up"), Some(0.0));
    assert_eq!(
        counter(
            &samples,
            "env0_exporter_poll_errors_total",
            "reason",
            "decode"
        ),
        1.0
    );
    assert_eq!(
        gauge(&samples, "env0_exporter_tracked_deployments").map(|v| v > 0.0),
        Some(true)
    );
    h.next_poll().await;
    assert_eq!(gauge(&h.scrape().await, "env0_up"), Some(1.0));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_out_of_order_give_no_negative_duration_and_the_counts_stay_right() {
    let flags = ["--lookback", SHORT_LOOKBACK, "--full-sync-interval", "60s"];
    let h = Harness::start_prepared(short(80), &flags, None, |s| {
        s.inject_for(None, FaultKind::DisorderedTimestamps, ALWAYS);
    })
    .await;
    for i in 1..=8 {
        h.next_poll().await;
        let samples = h.scrape().await;
        assert_eq!(gauge(&samples, "env0_up"), Some(1.0));
        assert_matches(
            &format!("poll {i}: env0_deployments_finished_total"),
            &series(&samples, "env0_deployments_finished_total"),
            &h.expected_finished(|_| true),
        );
        for s in samples
            .iter()
            .filter(|s| s.name.starts_with("env0_deployment_duration_seconds"))
        {
            assert!(
                s.value >= 0.0,
                "poll {i}: {} {:?} {}",
                s.name,
                s.labels,
                s.value
            );
        }
    }
    let finished: f64 = h.expected_finished(|_| true).values().sum();
    assert!(finished >= 8.0, "runs finished meanwhile: {finished}");
    assert_exact(&h, "after polls over disordered timestamps").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undocumented_statuses_types_tools_and_triggers_follow_the_label_rules_and_the_cap() {
    let h = Harness::start_prepared(short(150), &["--lookback", SHORT_LOOKBACK], None, |s| {
        s.inject_for(None, FaultKind::UndocumentedValues, ALWAYS);
    })
    .await;
    // What the exporter was sent: the world's records with the undocumented values applied.
    let cutoff = clock::sub(h.now(), h.lookback);
    let latest = latest_ids(&h);
    let mut sent = Vec::new();
    for mut d in h.sim.deployments() {
        let (field, value) = undocumented_value(&d.id);
        match field {
            "status" => d.status = value.unwrap_or_default(),
            "type" => d.deployment_type = value.unwrap_or_default(),
            "blueprintType" => d.blueprint_type = value,
            _ => d.trigger_name = value,
        }
        if d.created_at >= cutoff || (!is_finished(&d) && latest.contains(&d.id)) {
            sent.push(d);
        }
    }
    let samples = h.scrape().await;
    let window = series(&samples, "env0_deployments");
    #[allow(clippy::cast_precision_loss)]
    let want = sent.len() as f64;
    assert_eq!(window.values().sum::<f64>(), want, "every run counted once");
    for (label, raw) in [
        (
            "status",
            &(|d: &SimDeployment| Some(d.status.clone()))
                as &dyn Fn(&SimDeployment) -> Option<String>,
        ),
        ("deployment_type", &|d: &SimDeployment| {
            Some(d.deployment_type.clone())
        }),
        ("iac_tool", &|d: &SimDeployment| d.blueprint_type.clone()),
        ("trigger", &|d: &SimDeployment| d.trigger_name.clone()),
    ] {
        let allowed: BTreeSet<String> = sent
            .iter()
            .map(|d| expected_label(raw(d).as_deref()))
            .chain(["other".to_owned()])
            .collect();
        let got: BTreeSet<String> = window
            .keys()
            .filter_map(|l| l.get(label).cloned())
            .collect();
        assert!(
            got.is_subset(&allowed),
            "{label}: {got:?} not within {allowed:?}"
        );
        let named = got.iter().filter(|v| *v != "other").count();
        assert!(named <= 50, "{label}: {named} values past the cap");
        if allowed.len() > 51 {
            assert!(
                got.contains("other"),
                "{label}: values past the cap fold into other"
            );
        }
    }
    let tools: BTreeSet<&str> = window
        .keys()
        .filter_map(|l| l.get("iac_tool").map(String::as_str))
        .collect();
    let triggers: BTreeSet<&str> = window
        .keys()
        .filter_map(|l| l.get("trigger").map(String::as_str))
        .collect();
    assert!(
        tools.contains("other"),
        "a tool with a space is other: {tools:?}"
    );
    assert!(
        triggers.contains("unknown"),
        "a null trigger is unknown: {triggers:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_megabyte_page_is_read_and_a_page_past_the_limit_is_a_counted_decode_error() {
    let mut big = String::new();
    let h = Harness::start_prepared(
        short(120),
        &["--lookback", SHORT_LOOKBACK, "--full-sync-interval", "0s"],
        None,
        |s| {
            big = Harness::busy_in(s, 5);
            s.inject(Fault {
                path_prefix: Some(format!("/environments/{big}/deployments")),
                kind: FaultKind::Padded {
                    bytes: 10 * 1024 * 1024,
                },
                count: 1,
            });
        },
    )
    .await;
    h.sim.set_paused(true);
    assert_exact(&h, "after a backfill with a 10 MB page").await;

    // On the environment listing, which the counts need (the projects listing is optional).
    h.sim.inject(Fault {
        path_prefix: Some("/environments".into()),
        kind: FaultKind::Padded {
            bytes: env0_exporter::client::MAX_BODY_BYTES + 1024 * 1024,
        },
        count: 1,
    });
    h.next_poll().await;
    let samples = h.scrape().await;
    assert_eq!(gauge(&samples, "env0_up"), Some(0.0));
    assert_eq!(
        counter(
            &samples,
            "env0_exporter_poll_errors_total",
            "reason",
            "decode"
        ),
        1.0
    );
    h.next_poll().await;
    assert_exact(&h, "after the oversized page").await;
    h.stop().await;
}
