//! Securing `/metrics`: TLS and basic auth from `--web-config-file` (the exporter-toolkit
//! format) seen by a real TLS client, certificates and users changed on disk while the exporter
//! runs, and a listener that idle and slow clients cannot take from a scraper.
//!
//! Certificates come from a test CA made here with `rcgen`; passwords are hashed here with cost 4
//! (bcrypt's lowest) to keep the tests fast.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use env0_exporter::http::web_config::RELOAD_INTERVAL;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SerialNumber,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::sim;
use crate::helpers::{Harness, Webhooks, hmac_hex};

/// A test CA that signs server and client certificates.
struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM, and the certificate's DER (what a client sees).
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for 127.0.0.1 and localhost (a server's or a client's).
    fn leaf(&self, common_name: &str, serial: u64) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

/// Writes `text` to `path` through a temporary file and a rename, as most tools (and the
/// kubelet) replace a file.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// A folder holding `web.yml`, `tls.crt`, `tls.key` and `ca.crt`.
struct WebDir {
    dir: tempfile::TempDir,
}

impl WebDir {
    fn new(server: &Leaf, ca: &TestCa) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), &server.cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &server.key_pem).unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("web.yml")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `web.yml`: TLS with the files beside it (relative paths), `tls_extra` lines added
    /// under `tls_server_config`, and these users.
    fn write(&self, tls_extra: &str, users: &[(&str, &str)]) {
        let mut text =
            format!("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n{tls_extra}");
        if !users.is_empty() {
            text.push_str("basic_auth_users:\n");
            for (user, password) in users {
                let _ = writeln!(text, "  {user}: '{}'", hash(password));
            }
        }
        replace(&self.config(), &text);
    }
}

fn addr(h: &Harness) -> SocketAddr {
    h.exporter.as_ref().unwrap().addr
}

/// A client that trusts only `ca`, shows the server's certificate, and keeps no connection
/// between requests (so each request is a new handshake).
fn client(ca: &TestCa, identity: Option<&Leaf>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10));
    if let Some(leaf) = identity {
        let pem = format!("{}{}", leaf.cert_pem, leaf.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// Status, `WWW-Authenticate`, body and the server certificate's DER of one request.
async fn get(
    client: &reqwest::Client,
    url: &str,
    user: Option<(&str, &str)>,
) -> Result<(u16, Option<String>, String, Vec<u8>), reqwest::Error> {
    let mut request = client.get(url);
    if let Some((user, password)) = user {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let der = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let body = response.text().await?;
    Ok((status, challenge, body, der))
}

/// Retries `check` until it holds, for a change on disk to be read (at most five seconds).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    tokio::time::sleep(RELOAD_INTERVAL).await;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_and_users_only_the_right_password_gets_metrics_and_probes_stay_open() {
    let ca = TestCa::new("env0-exporter test CA");
    let server = ca.leaf("env0-exporter", 1);
    let web = WebDir::new(&server, &ca);
    web.write("", &[("prometheus", "scrape-pass-1")]);
    let h = Harness::start_with(
        sim(10),
        &["--web-config-file", web.config().to_str().unwrap()],
        Some(Webhooks {
            secret: "webhook-secret",
            sim_sends: false,
        }),
    )
    .await;
    let base = format!("https://{}", addr(&h));
    let metrics = format!("{base}/metrics");
    let c = client(&ca, None);

    let (status, _, body, der) = get(&c, &metrics, Some(("prometheus", "scrape-pass-1")))
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.lines().any(|l| l == "env0_up 1"), "{body}");
    assert_eq!(der, server.der, "the configured certificate is served");

    for user in [
        Some(("prometheus", "scrape-pass-2")),
        Some(("grafana", "scrape-pass-1")),
        Some(("prometheus", "")),
        None,
    ] {
        let (status, challenge, body, _) = get(&c, &metrics, user).await.unwrap();
        assert_eq!(status, 401, "{user:?}");
        assert_eq!(challenge.as_deref(), Some("Basic"), "{user:?}");
        assert!(!body.contains("env0_"), "{user:?}: {body}");
    }
    let (status, ..) = get(&c, &format!("{base}/"), None).await.unwrap();
    assert_eq!(status, 401, "the landing page is behind basic auth too");
    for probe in ["/-/healthy", "/-/ready"] {
        let (status, _, body, _) = get(&c, &format!("{base}{probe}"), None).await.unwrap();
        assert_eq!((status, body.as_str()), (200, "OK\n"), "{probe}");
    }

    // The webhook route keeps its own check: a signed delivery needs no basic auth, and an
    // unsigned one is refused by the signature check, not by basic auth.
    let body = br#"{"type":"com.env0.test","id":"sec-1","data":{}}"#;
    let post = |signature: Option<String>| {
        let mut request = c.post(format!("{base}/webhooks/env0")).body(body.to_vec());
        if let Some(s) = signature {
            request = request.header("x-env0-signature", s);
        }
        async move { request.send().await.unwrap() }
    };
    let signed = post(Some(hmac_hex("webhook-secret", body))).await;
    assert!(signed.status().is_success(), "{}", signed.status());
    let unsigned = post(None).await;
    assert_eq!(unsigned.status(), 401);
    assert!(unsigned.headers().get("www-authenticate").is_none());

    // Plain HTTP gets no metrics: the handshake fails and the connection is closed.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/metrics", addr(&h)))
        .basic_auth("prometheus", Some("scrape-pass-1"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    match plain {
        Err(e) => assert!(!e.is_timeout(), "refused at once: {e}"),
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            panic!("plain HTTP answered {status}: {text}");
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_and_verified_when_the_web_config_says_so() {
    let ca = TestCa::new("env0-exporter test CA");
    let other_ca = TestCa::new("someone else's CA");
    let server = ca.leaf("env0-exporter", 1);
    let good = ca.leaf("prometheus", 2);
    let stranger = other_ca.leaf("prometheus", 3);
    let web = WebDir::new(&server, &ca);
    web.write(
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n",
        &[],
    );
    let h = Harness::start(
        sim(10),
        &["--web-config-file", web.config().to_str().unwrap()],
    )
    .await;
    let metrics = format!("https://{}/metrics", addr(&h));

    let (status, _, body, _) = get(&client(&ca, Some(&good)), &metrics, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("env0_up"));
    assert!(
        get(&client(&ca, None), &metrics, None).await.is_err(),
        "no client certificate"
    );
    assert!(
        get(&client(&ca, Some(&stranger)), &metrics, None)
            .await
            .is_err(),
        "a certificate from another CA"
    );

    // RequireAnyClientCert: any certificate, unverified; none is still refused.
    web.write("  client_auth_type: RequireAnyClientCert\n", &[]);
    eventually("RequireAnyClientCert in effect", || async {
        get(&client(&ca, Some(&stranger)), &metrics, None)
            .await
            .is_ok_and(|r| r.0 == 200)
    })
    .await;
    assert!(get(&client(&ca, None), &metrics, None).await.is_err());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_and_a_new_user_take_effect_without_a_restart() {
    let ca = TestCa::new("env0-exporter test CA");
    let first = ca.leaf("env0-exporter", 1001);
    let web = WebDir::new(&first, &ca);
    web.write("", &[("prometheus", "first-pass")]);
    let h = Harness::start(
        sim(10),
        &["--web-config-file", web.config().to_str().unwrap()],
    )
    .await;
    let metrics = format!("https://{}/metrics", addr(&h));
    let c = client(&ca, None);
    let (status, _, _, der) = get(&c, &metrics, Some(("prometheus", "first-pass")))
        .await
        .unwrap();
    assert_eq!((status, der == first.der), (200, true));

    // cert-manager renews: a new key and certificate (another serial) at the same paths.
    let renewed = ca.leaf("env0-exporter renewed", 1002);
    replace(&web.path("tls.key"), &renewed.key_pem);
    replace(&web.path("tls.crt"), &renewed.cert_pem);
    eventually("the renewed certificate is served", || async {
        get(
            &client(&ca, None),
            &metrics,
            Some(("prometheus", "first-pass")),
        )
        .await
        .is_ok_and(|(status, _, _, der)| status == 200 && der == renewed.der)
    })
    .await;

    // A user added to the file.
    web.write(
        "",
        &[("prometheus", "first-pass"), ("grafana", "second-pass")],
    );
    eventually("the new user is let in", || async {
        get(&c, &metrics, Some(("grafana", "second-pass")))
            .await
            .is_ok_and(|r| r.0 == 200)
    })
    .await;
    let (status, ..) = get(&c, &metrics, Some(("prometheus", "first-pass")))
        .await
        .unwrap();
    assert_eq!(status, 200, "the first user still is");

    // A broken file keeps the last good configuration.
    replace(
        &web.config(),
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: tls.key\n",
    );
    tokio::time::sleep(RELOAD_INTERVAL + Duration::from_millis(200)).await;
    let (status, ..) = get(
        &client(&ca, None),
        &metrics,
        Some(("grafana", "second-pass")),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "the last good configuration stays in effect");
    h.stop().await;
}

/// Idle connections held open by the hundred, and slow-loris clients trickling a request one
/// byte a second, do not keep a scraper out: the connection limit (256 by default) makes room by
/// closing the connection idle the longest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_idle_connections_and_slow_loris_clients_do_not_keep_a_scrape_out() {
    let h = Harness::start(sim(10), &[]).await;
    let target = addr(&h);
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(TcpStream::connect(target).await.unwrap());
    }
    let mut loris = tokio::task::JoinSet::new();
    for _ in 0..5 {
        loris.spawn(async move {
            let mut stream = TcpStream::connect(target).await.unwrap();
            // Never finishes its headers; bounded: at most 8 bytes, then it gives up.
            for byte in b"GET /met".iter().copied() {
                if stream.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A new connection per scrape: the one a scraper keeps between scrapes is idle, and may be
    // the one closed to make room.
    let scraper = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let response = scraper
            .get(format!("http://{target}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.contains("env0_up 1"));
        slowest = slowest.max(started.elapsed());
        // More idle connections arrive between scrapes.
        for _ in 0..50 {
            idle.push(TcpStream::connect(target).await.unwrap());
        }
    }
    eprintln!(
        "slowest of 5 scrapes with {} idle connections and 5 slow-loris clients: {slowest:?}",
        idle.len()
    );
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    loris.abort_all();
    drop(idle);
    h.stop().await;
}

/// The server's head buffer (64 KiB) does not cap bodies: a webhook delivery of nearly 1 MiB
/// is read in full and its signature checked; past 1 MiB it is refused with 413.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_webhook_body_is_read_through_the_server_and_one_past_its_limit_refused() {
    let h = Harness::start_with(
        sim(10),
        &[],
        Some(Webhooks {
            secret: "webhook-secret",
            sim_sends: false,
        }),
    )
    .await;
    let padding = "x".repeat(env0_exporter::webhook::MAX_BODY_BYTES - 100);
    let body = format!(r#"{{"type":"com.env0.test","id":"big-1","pad":"{padding}"}}"#);
    assert!(body.len() <= env0_exporter::webhook::MAX_BODY_BYTES);
    let signature = hmac_hex("webhook-secret", body.as_bytes());
    let status = h
        .post_webhook(body.as_bytes(), &[("x-env0-signature", &signature)])
        .await;
    assert!((200..300).contains(&status), "{status}");
    // Refused on its declared length, before a byte of it is read: the server answers 413 and
    // closes, and a client still writing its megabyte may see the connection reset before it
    // reads the answer (seen once under load). Every answer that arrives is 413, and one must.
    let too_big = vec![b'x'; env0_exporter::webhook::MAX_BODY_BYTES + 1];
    let mut resets = Vec::new();
    let status = loop {
        match h.try_post_webhook(&too_big, &[]).await {
            Ok(status) => break status,
            Err(e) if resets.len() < 4 => resets.push(e.to_string()),
            Err(e) => panic!("no answer in 5 tries: {e}; before: {resets:?}"),
        }
    };
    assert_eq!(status, 413, "after {} resets: {resets:?}", resets.len());
    h.stop().await;
}
