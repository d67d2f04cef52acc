//! A page of env0's answer, as bytes: decoded record by record as deployment logs and as
//! environments, and every readable deployment log ingested into the state, which is then
//! aggregated as for a scrape. Nothing may panic; the decoded and skipped records must add up
//! to the page's length.

#![no_main]

use std::time::Duration;

use env0_exporter::client::{DeploymentLog, Environment, Page, decode_records};
use env0_exporter::poller::observation;
use env0_exporter::state::{Store, aggregate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let start: jiff::Timestamp = "2026-07-01T12:00:00Z".parse().unwrap_or_default();
    let lookback = Duration::from_secs(24 * 3600);
    let mut store = Store::new(start, lookback);
    let mut events = Vec::new();
    if let Ok(page) = decode_records::<DeploymentLog>(data) {
        check(&page);
        for (i, log) in page.records.iter().enumerate() {
            let now = env0_exporter::clock::add(start, Duration::from_secs(i as u64 * 30));
            store.ingest(&observation(log, "env"), now, &mut events);
        }
        let snapshot = aggregate(&store, start);
        assert!(snapshot.tracked_deployments <= page.records.len());
    }
    if let Ok(page) = decode_records::<Environment>(data) {
        check(&page);
        for env in &page.records {
            if let Some(log) = &env.latest_deployment_log {
                store.ingest(&observation(log, &env.id), start, &mut events);
            }
        }
    }
    for event in &events {
        if let env0_exporter::state::Event::Finished { duration: Some(d), .. } = event {
            assert!(d.as_secs_f64() >= 0.0);
        }
    }
});

fn check<T>(page: &Page<T>) {
    assert_eq!(page.records.len() + page.skipped.len(), page.len);
}
