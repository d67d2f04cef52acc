//! Secrets that rotate: a new env0 API key secret written to `--api-secret-file` the way a
//! Kubernetes secret volume writes it is used by the running exporter, without a restart.

use std::path::Path;
use std::time::Duration;

use env0_exporter::secret::RECHECK_INTERVAL;

use super::sim;
use crate::helpers::*;

/// A secret volume as the kubelet lays it out: `<dir>/..<version>/<key>` holds the data,
/// `<dir>/..data` links to the current version, and `<dir>/<key>` links to `..data/<key>`.
fn write_volume_version(dir: &Path, version: &str, secret: &str) {
    write_volume_key(dir, version, "api-secret", secret);
}

fn write_volume_key(dir: &Path, version: &str, key: &str, secret: &str) {
    use std::os::unix::fs::symlink;
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join(key), format!("{secret}\n")).unwrap();
    // The swap is one rename of a fresh link over `..data`: readers never see a gap.
    let fresh = dir.join("..data_tmp");
    symlink(format!("..{version}"), &fresh).unwrap();
    std::fs::rename(&fresh, dir.join("..data")).unwrap();
    if !dir.join(key).exists() {
        symlink(format!("..data/{key}"), dir.join(key)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_api_secret_file_is_used_by_the_same_process_and_env0_up_returns_to_one() {
    let volume = tempfile::tempdir().unwrap();
    write_volume_version(volume.path(), "2026_07_01_12_00_00.1", "demo-secret");
    let file = volume.path().join("api-secret");
    let h = Harness::start(
        sim(30),
        &[
            "--api-key",
            "demo-key",
            "--api-secret-file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    h.sim.set_paused(true);
    let up = |samples: &[Sample]| {
        samples
            .iter()
            .find(|s| s.name == "env0_up")
            .map(|s| s.value)
    };
    assert_eq!(up(&h.scrape().await), Some(1.0), "the first secret works");

    // env0 replaces the key's secret: the exporter's is refused.
    h.sim.set_api_key_secret("rotated-secret-789");
    h.next_poll().await;
    let samples = h.scrape().await;
    assert_eq!(up(&samples), Some(0.0), "the old secret is refused");
    let auth = labels(&[("reason", "auth".into())]);
    assert_eq!(
        series(&samples, "env0_exporter_poll_errors_total").get(&auth),
        Some(&1.0)
    );

    // The new secret lands in the volume; once the file is read again, the next poll works.
    write_volume_version(volume.path(), "2026_07_01_12_05_00.2", "rotated-secret-789");
    std::fs::remove_dir_all(volume.path().join("..2026_07_01_12_00_00.1")).unwrap();
    tokio::time::sleep(RECHECK_INTERVAL + Duration::from_millis(100)).await;
    h.next_poll().await;
    let samples = h.scrape().await;
    assert_eq!(up(&samples), Some(1.0), "the rotated secret is used");
    assert_eq!(
        series(&samples, "env0_exporter_poll_errors_total").get(&auth),
        Some(&1.0),
        "no new auth error"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_webhook_secret_file_is_used_for_signatures_without_a_restart() {
    let volume = tempfile::tempdir().unwrap();
    write_volume_key(
        volume.path(),
        "v1",
        "webhook-secret",
        "first-webhook-secret",
    );
    let file = volume.path().join("webhook-secret");
    let h = Harness::start(sim(10), &["--webhook-secret-file", file.to_str().unwrap()]).await;
    let mut n = 0;
    let mut post = async |secret: &str| {
        n += 1;
        let body = format!(r#"{{"type":"com.env0.test","id":"event-{n}","data":{{}}}}"#);
        let signed = hmac_hex(secret, body.as_bytes());
        h.post_webhook(body.as_bytes(), &[("x-env0-signature", &signed)])
            .await
    };
    assert_ne!(post("first-webhook-secret").await, 401);
    assert_eq!(post("second-webhook-secret").await, 401);

    write_volume_key(
        volume.path(),
        "v2",
        "webhook-secret",
        "second-webhook-secret",
    );
    tokio::time::sleep(RECHECK_INTERVAL + Duration::from_millis(100)).await;
    assert_ne!(post("second-webhook-secret").await, 401, "the new secret");
    assert_eq!(
        post("first-webhook-secret").await,
        401,
        "the old one no longer"
    );
    h.stop().await;
}
