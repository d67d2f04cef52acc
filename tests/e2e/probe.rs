//! What the exporter learns of env0 where its docs say nothing (the date filter's field, page
//! order), learnt at start and shown by `env0_exporter_env0_behaviour_info`; and the undated
//! listing of runs that have not started staying bounded whatever an environment's history.

use std::sync::Arc;
use std::time::Duration;

use env0_exporter::app;
use env0_exporter::client::{Client, ClientConfig, NoopObserver};
use env0_exporter::clock::{ManualClock, SharedClock};
use env0_exporter::probe::{self, DateFilterField as Learnt, PageOrder as LearntOrder};
use env0_exporter::ratelimit::SlidingWindow;
use env0_exporter::secret::Secret;
use env0_exporter::simulator::{
    DateFilterField, Fault, FaultKind, PageOrder, RequestRecord, SimConfig, Simulator,
};
use tokio::net::TcpListener;

use super::{assert_exact, sim};
use crate::helpers::*;

/// Every way the simulator's listings can go, with what the probe must say of each. With
/// `queued_after_created` zero (env0's sample payloads) `queuedAt` equals `createdAt` on every
/// run, so a filter on either is the same filter and reads as `createdAt`.
const VARIANTS: [(DateFilterField, Duration, &str); 4] = [
    (DateFilterField::CreatedAt, Duration::ZERO, "createdAt"),
    (
        DateFilterField::CreatedAt,
        Duration::from_secs(2),
        "createdAt",
    ),
    (
        DateFilterField::QueuedAt,
        Duration::from_secs(2),
        "queuedAt",
    ),
    (
        DateFilterField::StartedAt,
        Duration::from_secs(2),
        "startedAt",
    ),
];

fn order_name(order: PageOrder) -> &'static str {
    match order {
        PageOrder::NewestFirst => "newest",
        PageOrder::OldestFirst => "oldest",
    }
}

/// A small organisation whose runs come often enough for every environment to hold some.
fn variant(field: DateFilterField, queued_after: Duration, order: PageOrder) -> SimConfig {
    SimConfig {
        date_filter_field: field,
        queued_after_created: queued_after,
        page_order: order,
        mean_deployment_interval: Duration::from_secs(15 * 60),
        ..sim(12)
    }
}

/// The simulator served on a loopback port, and a client of it with a budget of its own.
async fn served(config: SimConfig) -> (Simulator, Client, tokio::sync::oneshot::Sender<()>) {
    let clock: SharedClock = Arc::new(ManualClock::new(START.parse().unwrap()));
    let sim = Simulator::new(config, clock.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, _task) = app::spawn_simulator(sim.clone(), listener);
    let client = Client::new(
        ClientConfig::new(
            format!("http://{addr}/").parse().unwrap(),
            sim.config().api_key_id.clone(),
            Secret::new(&sim.api_key_secret()),
        ),
        Arc::new(SlidingWindow::new(1000, Duration::from_secs(60))),
        clock,
        Arc::new(NoopObserver),
    )
    .unwrap();
    (sim, client, stop)
}

fn deployment_requests(requests: &[RequestRecord]) -> usize {
    requests
        .iter()
        .filter(|r| r.path.ends_with("/deployments"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_names_the_field_and_the_order_of_every_variant_in_a_bounded_number_of_requests()
{
    // Requests, counted by hand from the probe's steps: one undated sample, then one dated
    // listing per timestamp tried (createdAt, queuedAt when it differs, startedAt) until the
    // run is listed.
    let want_requests = [2, 2, 3, 4];
    for ((field, queued_after, name), want) in VARIANTS.into_iter().zip(want_requests) {
        for order in [PageOrder::NewestFirst, PageOrder::OldestFirst] {
            let what = format!("{field:?}, queued {queued_after:?} after created, {order:?}");
            let (sim, client, _stop) = served(variant(field, queued_after, order)).await;
            let environments = client.environments(&sim.organization_id()).await.unwrap();
            sim.clear_requests();
            let learnt = probe::deployment_listing(&client, probe::candidates(&environments))
                .await
                .unwrap();
            assert_eq!(learnt.date_filter_field.as_str(), name, "{what}");
            assert_eq!(learnt.page_order.as_str(), order_name(order), "{what}");
            let sent = sim.requests();
            assert_eq!(sent.len(), deployment_requests(&sent), "{what}: {sent:?}");
            assert_eq!(sent.len(), want, "{what}: {sent:?}");
            assert_eq!(learnt.requests as usize, sent.len(), "{what}");
            assert!(sent.len() <= probe::MAX_REQUESTS as usize, "{what}");
            // Read-only, one environment, and only parameters env0's clients send.
            for r in &sent {
                assert_eq!(r.method, "GET");
                for pair in r.query.split('&') {
                    let name = pair.split('=').next().unwrap_or_default();
                    assert!(
                        ["limit", "offset", "fromDate", "toDate"].contains(&name),
                        "{what}: {r:?}"
                    );
                }
            }
            assert_eq!(
                learnt.environment_id.as_deref(),
                sent.first()
                    .map(|r| r.path.split('/').nth(2).unwrap_or_default()),
                "{what}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environments_that_tell_nothing_leave_both_unknown_and_at_most_three_are_tried() {
    let (sim, client, _stop) = served(sim(4)).await;
    // Gone (404) environments: passed over, each for one request.
    let gone = ["gone-1", "gone-2", "gone-3", "gone-4", "gone-5"];
    let learnt = probe::deployment_listing(&client, gone).await.unwrap();
    assert_eq!(learnt.date_filter_field, Learnt::Unknown);
    assert_eq!(learnt.page_order, LearntOrder::Unknown);
    assert_eq!(sim.requests().len(), 3, "{:?}", sim.requests());
    assert_eq!(learnt.requests, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_exporter_shows_what_it_learnt_of_env0_for_every_variant() {
    for (field, queued_after, name) in VARIANTS {
        for order in [PageOrder::NewestFirst, PageOrder::OldestFirst] {
            let what = format!("{field:?}, queued {queued_after:?} after created, {order:?}");
            let h = Harness::start(variant(field, queued_after, order), &[]).await;
            let info = series(&h.scrape().await, "env0_exporter_env0_behaviour_info");
            let want = labels(&[
                ("date_filter_field", name.to_owned()),
                ("page_order", order_name(order).to_owned()),
                // The simulator sends a Date header.
                ("date_header", "true".to_owned()),
            ]);
            assert_eq!(
                info.into_iter().collect::<Vec<_>>(),
                [(want, 1.0)],
                "{what}"
            );
            assert_exact(&h, &what).await;
            h.stop().await;
        }
    }
}

/// Runs that do not move their environment's latest run are found by the full re-reads: every
/// minute, so that counts are exact after every poll.
const FULL_SYNC_EVERY_MINUTE: &[&str] = &[
    "--full-sync-interval",
    "60s",
    "--max-requests-per-minute",
    "1000",
];

/// The undated listings of runs that have not started sent to `environment`, as the offsets of
/// their pages.
fn unstarted_pages(requests: &[RequestRecord], environment: &str) -> Vec<usize> {
    let path = format!("/environments/{environment}/deployments");
    requests
        .iter()
        .filter(|r| r.path == path && r.query.contains("statuses=QUEUED"))
        .filter(|r| !r.query.contains("fromDate"))
        .map(|r| {
            r.query
                .split('&')
                .find_map(|p| p.strip_prefix("offset="))
                .and_then(|o| o.parse().ok())
                .unwrap_or(usize::MAX)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_of_cancelled_and_skipped_runs_is_not_read_again_and_again_when_pages_are_newest_first()
 {
    // 450 runs ended from the queue, all before the lookback window: five pages of them.
    let config = SimConfig {
        date_filter_field: DateFilterField::StartedAt,
        queue_ended_history: 450,
        ..variant(
            DateFilterField::StartedAt,
            Duration::ZERO,
            PageOrder::NewestFirst,
        )
    };
    let h = Harness::start(config, FULL_SYNC_EVERY_MINUTE).await;
    let long = h.sim.environments()[0].id.clone();
    let history = h
        .sim
        .deployments()
        .iter()
        .filter(|d| d.environment_id == long && d.started_at.is_none())
        .filter(|d| ["CANCELLED", "SKIPPED"].contains(&d.status.as_str()))
        .count();
    assert!(history > 400, "the environment's history: {history}");
    assert_exact(&h, "after the backfill").await;
    for i in 1..=4 {
        h.next_poll().await;
        assert_exact(&h, &format!("after poll {i}")).await;
    }
    let pages = unstarted_pages(&h.sim.requests(), &long);
    // Read at the backfill, and again at full syncs and on changes: every read stopped at its
    // first page of runs older than it needed, never reaching the third.
    assert!(pages.len() >= 2, "{pages:?}");
    assert!(pages.iter().all(|&offset| offset < 200), "{pages:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_pages_oldest_first_the_listing_of_runs_not_started_is_read_whole_and_counts_stay_exact()
 {
    let config = SimConfig {
        queue_ended_history: 450,
        ..variant(
            DateFilterField::StartedAt,
            Duration::ZERO,
            PageOrder::OldestFirst,
        )
    };
    let h = Harness::start(config, FULL_SYNC_EVERY_MINUTE).await;
    let long = h.sim.environments()[0].id.clone();
    assert_exact(&h, "after the backfill").await;
    h.next_poll().await;
    assert_exact(&h, "after a poll").await;
    let pages = unstarted_pages(&h.sim.requests(), &long);
    // Nothing tells where the recent runs are: every page, to the short one after 400.
    assert!(pages.contains(&400), "{pages:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_first_probe_cannot_tell_a_started_at_filter_is_still_found_and_counts_stay_exact()
{
    // The probe's three sample requests are refused (403): it learns nothing at the first poll.
    // The data's evidence during the backfill, or the next poll's probe, must find the filter.
    let config = variant(
        DateFilterField::StartedAt,
        Duration::ZERO,
        PageOrder::NewestFirst,
    );
    let h = Harness::start_prepared(config, FULL_SYNC_EVERY_MINUTE, None, |sim| {
        sim.inject(Fault {
            path_prefix: Some("/environments/".to_owned()),
            kind: FaultKind::Status(403),
            count: 3,
        });
    })
    .await;
    let refused = h.sim.requests().iter().filter(|r| r.status == 403).count();
    assert_eq!(refused, 3, "the faults were met");
    assert_exact(&h, "after the backfill").await;
    for i in 1..=4 {
        h.next_poll().await;
        assert_exact(&h, &format!("after poll {i}")).await;
    }
    let info = series(&h.scrape().await, "env0_exporter_env0_behaviour_info");
    let fields: Vec<_> = info
        .keys()
        .map(|l| l["date_filter_field"].clone())
        .collect();
    assert_eq!(fields, ["startedAt"]);
    h.stop().await;
}
