//! The real binary: flags, exit codes, secrets, `simulate` + `once`, and `demo` with a clean
//! shutdown on SIGTERM.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod doctor;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../common/mod.rs"]
mod common;

use common::hmac_hex;

const BIN: &str = env!("CARGO_BIN_EXE_env0-exporter");

/// How long a test waits for the exporter to get somewhere (listen, poll, take a webhook) before
/// it calls it hung: a guard against a hang, not a claim about speed. A debug build's first poll
/// on a loaded 2-core machine shared with other builds took more than 30 s.
const PATIENCE: Duration = Duration::from_secs(120);

fn exporter(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for var in [
        "ENV0_API_KEY",
        "ENV0_API_SECRET",
        "ENV0_API_SECRET_FILE",
        "ENV0_ORGANIZATION_ID",
        "ENV0_API_ENDPOINT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

fn run(args: &[&str]) -> Output {
    exporter(args).output().expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the child when the test ends, whatever happens.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + PATIENCE;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `env0-exporter simulate` on a free loopback port; returns its guard and API URL.
fn spawn_simulate(extra: &[&str]) -> (Guard, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["simulate", "--sim-listen-address", &addr];
    args.extend_from_slice(extra);
    let sim = Guard(
        exporter(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    (sim, format!("http://{addr}/"))
}

/// `env0-exporter once` against `endpoint` with the simulator's key and this secret.
fn once(endpoint: &str, secret: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "once",
        "--api-endpoint",
        endpoint,
        "--api-key",
        "demo-key",
        "--api-secret",
        secret,
    ];
    args.extend_from_slice(extra);
    run(&args)
}

fn http_get(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::get(url).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    })
}

#[test]
fn version_prints_the_crate_version() {
    let o = run(&["--version"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o).trim(),
        format!("env0-exporter {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn a_wrong_flag_exits_with_code_2_and_names_the_flag() {
    for (args, flag) in [
        (vec!["--poll-interval", "soon"], "--poll-interval"),
        (vec!["--no-such-flag"], "--no-such-flag"),
        (
            vec!["--max-requests-per-minute", "0"],
            "--max-requests-per-minute",
        ),
        (vec!["--listen-address", "localhost"], "--listen-address"),
        (
            vec![
                "--api-key",
                "k",
                "--api-secret",
                "s",
                "--duration-buckets",
                "9,3",
            ],
            "--duration-buckets",
        ),
        (
            vec![
                "--api-key",
                "k",
                "--api-secret",
                "s",
                "--duration-histogram-labels",
                "iac_tool,environment",
            ],
            "--duration-histogram-labels",
        ),
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(flag), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn missing_credentials_and_unreadable_secret_files_exit_with_code_2() {
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--api-key"), "{}", stderr(&o));
    let o = run(&["--api-key", "k"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--api-secret"), "{}", stderr(&o));
    let o = run(&[
        "--api-key",
        "k",
        "--api-secret-file",
        "/nonexistent/env0-secret",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--api-secret-file"), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .lines()
            .filter(|l| l.starts_with("error"))
            .count()
            == 1,
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_secret_never_shows_in_help() {
    let o = exporter(&["--help"])
        .env("ENV0_API_SECRET", "topsecret-value-123")
        .env("ENV0_EXPORTER_WEBHOOK_SECRET", "webhook-secret-456")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).contains("ENV0_API_SECRET"));
    assert!(stdout(&o).contains("ENV0_EXPORTER_WEBHOOK_SECRET"));
    assert!(!stdout(&o).contains("topsecret-value-123"));
    assert!(!stdout(&o).contains("webhook-secret-456"));
}

#[test]
fn once_against_the_simulator_prints_metrics_and_exits_0_and_1_with_a_wrong_secret() {
    let (sim, endpoint) = spawn_simulate(&["--sim-environments", "120"]);
    let o = once(&endpoint, "demo-secret", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.lines().any(|l| l == "env0_up 1"), "{text}");
    assert!(text.contains("env0_deployments{"), "{text}");
    assert!(text.contains("env0_environments{"), "{text}");
    assert!(!stderr(&o).contains("demo-secret"));

    let o = once(&endpoint, "wrong-secret-456", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.lines().any(|l| l == "env0_up 0"), "{text}");
    assert!(
        text.contains(r#"env0_exporter_poll_errors_total{reason="auth"} 1"#),
        "{text}"
    );
    assert!(!stderr(&o).contains("wrong-secret-456"));
    assert!(!text.contains("wrong-secret-456"));
    drop(sim);
}

#[test]
fn once_into_a_reader_that_stops_early_ends_quietly_and_logs_no_colour_into_a_pipe() {
    let (sim, endpoint) = spawn_simulate(&[]);
    let mut child = exporter(&[
        "once",
        "--api-endpoint",
        &endpoint,
        "--api-key",
        "demo-key",
        "--api-secret",
        "demo-secret",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // `once | head -n 1`: read one line, then close the pipe before the rest is written.
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    drop(out);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(first.starts_with("# HELP"), "{first}");
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI colour when stderr is a pipe: {err}"
    );
    assert!(
        !err.contains("serving the last good data"),
        "once serves nothing: {err}"
    );
    drop(sim);
}

#[test]
fn a_shard_out_of_range_or_malformed_exits_with_code_2_and_names_the_flag() {
    for (value, says) in [
        ("0/2", "counts from 1 to M"),
        ("3/2", "counts from 1 to M"),
        ("1/0", "between 1 and 1024"),
        ("1/1025", "between 1 and 1024"),
        ("2", "N/M"),
        ("one/two", "N/M"),
        ("env0-exporter-3/3", "counts from 1 to M"),
    ] {
        let o = run(&["--api-key", "k", "--api-secret", "s", "--shard", value]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{value}: {err}");
        assert!(
            err.contains("--shard") && err.contains(says),
            "{value}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let o = exporter(&["--api-key", "k", "--api-secret", "s"])
        .env("ENV0_EXPORTER_SHARD", "4/3")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--shard") && err.contains("ENV0_EXPORTER_SHARD"),
        "{err}"
    );
}

#[test]
fn once_with_a_shard_reads_only_that_shard_and_says_which() {
    let (sim, endpoint) = spawn_simulate(&["--sim-environments", "120"]);
    let environments = |text: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with("env0_environments{"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let whole = stdout(&once(&endpoint, "demo-secret", &[]));
    let mut parts = 0.0;
    for shard in ["1/3", "2/3", "3/3"] {
        let o = once(&endpoint, "demo-secret", &["--shard", shard]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = stdout(&o);
        let (n, m) = shard.split_once('/').unwrap();
        assert!(
            text.contains(&format!(
                "env0_exporter_shard_info{{shard=\"{n}\",shards=\"{m}\"}} 1"
            )),
            "{text}"
        );
        assert!(environments(&text) > 0.0 && environments(&text) < environments(&whole));
        parts += environments(&text);
    }
    assert!(
        (parts - environments(&whole)).abs() < f64::EPSILON,
        "the three shards' environments add up to the whole: {parts} vs {}",
        environments(&whole)
    );
    drop(sim);
}

#[test]
fn an_error_from_an_environment_variable_names_the_variable_and_the_flag() {
    let o = exporter(&[])
        .env("ENV0_EXPORTER_POLL_INTERVAL", "soon")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--poll-interval") && err.contains("ENV0_EXPORTER_POLL_INTERVAL"),
        "{err}"
    );
    let o = exporter(&["--api-key", "k", "--api-secret", "s"])
        .env("ENV0_EXPORTER_LOOKBACK", "5s")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--lookback (from ENV0_EXPORTER_LOOKBACK): must be at least 1m"),
        "{err}"
    );
    // Given on the command line, the flag alone is named.
    let o = run(&["--lookback", "5s", "--api-key", "k", "--api-secret", "s"]);
    assert!(stderr(&o).contains("error: --lookback: must be at least 1m"));
}

#[test]
fn flags_a_subcommand_ignores_are_refused_and_help_is_grouped_under_headings() {
    let o = run(&["demo", "--api-key", "k"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("--api-key is not used by `demo`"),
        "{}",
        stderr(&o)
    );
    let o = run(&["simulate", "--poll-interval", "5s"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--poll-interval is not used by `simulate`"));

    let help = stdout(&run(&["demo", "--help"]));
    let headings: Vec<&str> = help
        .lines()
        .filter(|l| l.ends_with(':') && !l.starts_with(' '))
        .collect();
    assert_eq!(
        headings,
        [
            "Options:",
            "Simulated env0 organisation:",
            "env0 connection:",
            "Polling:",
            "Filters:",
            "Metrics and views:",
            "Serving and logging:",
            "State file:",
            "Webhooks:",
        ],
        "{help}"
    );
    let buckets = help
        .split("--duration-buckets")
        .nth(1)
        .and_then(|rest| rest.split("--").next())
        .unwrap_or_default();
    assert!(
        buckets.contains("[default: 5,15,30,60,120,300,600,900,1800,3600,5400,7200,14400]"),
        "{buckets}"
    );
}

#[test]
fn demo_serves_metrics_and_stops_within_five_seconds_on_sigterm() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Guard(
        exporter(&[
            "demo",
            "--listen-address",
            &addr,
            "--sim-environments",
            "60",
            "--sim-mean-deployment-interval",
            "2m",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let out = child.0.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(out).read_line(&mut first).unwrap();
    assert_eq!(first.trim(), format!("metrics at http://{addr}/metrics"));
    wait_for_port(port);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = http_get(&format!("http://{addr}/metrics"));
        assert_eq!(status, 200);
        if body.lines().any(|l| l == "env0_up 1") {
            assert!(body.contains("env0_deployments{"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "demo never reported env0_up 1:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http_get(&format!("http://{addr}/-/ready")).0, 200);
    // Real time: the simulated env0 signs a webhook for every run that changes, and the demo
    // exporter takes them in.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, body) = http_get(&format!("http://{addr}/metrics"));
        let webhooks = |outcome: &str| -> f64 {
            body.lines()
                .filter(|l| l.starts_with("env0_exporter_webhook_events_total{"))
                .filter(|l| l.contains(&format!("outcome=\"{outcome}\"")))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum()
        };
        assert!(webhooks("bad_signature").abs() < f64::EPSILON, "{body}");
        if webhooks("accepted") > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo accepted no webhook within {PATIENCE:?}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let pid = child.0.id().to_string();
    sigterm(&pid);
    let stop_deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            Instant::now() < stop_deadline,
            "demo did not stop within 5 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_key_that_sees_several_organisations_needs_organization_id_and_the_error_lists_them() {
    let (sim, endpoint) = spawn_simulate(&["--sim-organizations", "2", "--sim-environments", "20"]);
    let o = once(&endpoint, "demo-secret", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(
        log.contains("sees 2 organisations; choose one with --organization-id"),
        "{log}"
    );

    // The ids it lists are the simulator's; either one then works.
    let (status, body) = http_get_auth(&format!("{endpoint}organizations"));
    assert_eq!(status, 200);
    let orgs: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(orgs.len(), 2);
    let first = orgs[0]["id"].as_str().unwrap().to_owned();
    for org in &orgs {
        assert!(log.contains(org["id"].as_str().unwrap()), "{log}");
    }
    let o = once(&endpoint, "demo-secret", &["--organization-id", &first]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("env0_environments{"));
    drop(sim);
}

fn http_get_auth(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(url)
            .basic_auth("demo-key", Some("demo-secret"))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    })
}

/// A Kubernetes secret volume in `dir`: `..<version>/<key>` holds the data, `..data` links to
/// the current version (swapped by renaming a fresh link over it), `<key>` links to
/// `..data/<key>`.
fn write_secret_volume(dir: &std::path::Path, version: &str, key: &str, value: &str) {
    use std::os::unix::fs::symlink;
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join(key), format!("{value}\n")).unwrap();
    let fresh = dir.join("..data_tmp");
    symlink(format!("..{version}"), &fresh).unwrap();
    std::fs::rename(&fresh, dir.join("..data")).unwrap();
    if std::fs::symlink_metadata(dir.join(key)).is_err() {
        symlink(format!("..data/{key}"), dir.join(key)).unwrap();
    }
}

/// The exporter with `args` at debug level, its stdout and stderr into files in `dir`.
fn spawn_logged(args: &[&str], dir: &std::path::Path) -> Guard {
    Guard(
        exporter(args)
            .env("RUST_LOG", "debug")
            .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .unwrap(),
    )
}

/// Sends SIGTERM to `pid` with the shell's own `kill` (a builtin of every POSIX shell): the
/// `kill` program comes with procps, which slim images without it lack, and `cargo test` needs
/// nothing but the Rust toolchain.
fn sigterm(pid: &str) {
    let status = Command::new("sh")
        .args(["-c", "kill -TERM \"$1\"", "sh", pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM {pid}: {status:?}");
}

/// Stops the exporter with SIGTERM and returns everything it wrote.
fn stop_and_read(mut child: Guard, dir: &std::path::Path) -> String {
    let pid = child.0.id().to_string();
    sigterm(&pid);
    let _ = child.0.wait();
    format!(
        "{}{}",
        std::fs::read_to_string(dir.join("stdout")).unwrap(),
        std::fs::read_to_string(dir.join("stderr")).unwrap()
    )
}

/// Every secret of a run (API secrets before and after a rotation, the webhook secret, basic
/// auth passwords right and wrong, and the password hash) is searched for in everything the
/// process wrote at debug level and every `/metrics` it served, through auth errors, refused
/// scrapes, a badly signed webhook and the rotation itself.
#[test]
#[allow(clippy::too_many_lines)] // one scenario, told in order
fn no_secret_appears_in_the_output_of_a_run_with_faults_rotation_and_basic_auth() {
    const OLD_API_SECRET: &str = "old-api-secret-111";
    // The simulator's: the rotation makes the exporter's secret right.
    const NEW_API_SECRET: &str = "demo-secret";
    const WEB_PASSWORD: &str = "web-password-222";
    const WRONG_WEB_PASSWORD: &str = "wrong-web-password-333";
    const WEBHOOK_SECRET: &str = "webhook-secret-444";
    const WRONG_WEBHOOK_SECRET: &str = "wrong-webhook-666";

    let (sim, endpoint) = spawn_simulate(&["--sim-environments", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("env0");
    std::fs::create_dir(&volume).unwrap();
    write_secret_volume(&volume, "v1", "api-secret", OLD_API_SECRET);
    let webhook_file = dir.path().join("webhook-secret");
    std::fs::write(&webhook_file, WEBHOOK_SECRET).unwrap();
    let hash = bcrypt::hash(WEB_PASSWORD, 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let child = spawn_logged(
        &[
            "--api-endpoint",
            &endpoint,
            "--api-key",
            "demo-key",
            "--api-secret-file",
            volume.join("api-secret").to_str().unwrap(),
            "--webhook-secret-file",
            webhook_file.to_str().unwrap(),
            "--web-config-file",
            web.to_str().unwrap(),
            "--listen-address",
            &addr,
            "--poll-interval",
            "1s",
        ],
        dir.path(),
    );
    wait_for_port(port);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let metrics_url = format!("http://{addr}/metrics");
    let http = reqwest::Client::new();
    let scrape = |password: Option<&str>| {
        let mut request = http.get(&metrics_url);
        if let Some(p) = password {
            request = request.basic_auth("prometheus", Some(p));
        }
        rt.block_on(async {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        })
    };
    let mut served = String::new();
    let wait_for = |want: &str, served: &mut String| {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) = scrape(Some(WEB_PASSWORD));
            assert_eq!(status, 200, "{body}");
            served.push_str(&body);
            if body.lines().any(|l| l.starts_with(want)) {
                return;
            }
            assert!(Instant::now() < deadline, "never {want}:\n{body}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    // The old secret is refused: auth errors.
    wait_for(
        r#"env0_exporter_poll_errors_total{reason="auth"} "#,
        &mut served,
    );
    for password in [Some(WRONG_WEB_PASSWORD), None] {
        let (status, body) = scrape(password);
        assert_eq!(status, 401);
        served.push_str(&body);
    }
    let body = br#"{"type":"com.env0.test","id":"cli-1","data":{}}"#;
    let status = rt.block_on(async {
        http.post(format!("http://{addr}/webhooks/env0"))
            .header("x-env0-signature", hmac_hex(WRONG_WEBHOOK_SECRET, body))
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 401, "a badly signed webhook");

    // The new secret lands in the volume; the same process recovers.
    write_secret_volume(&volume, "v2", "api-secret", NEW_API_SECRET);
    wait_for("env0_up 1", &mut served);

    let output = stop_and_read(child, dir.path());
    assert!(
        output.contains("the secret file changed"),
        "the rotation is logged: {output}"
    );
    assert!(output.contains("DEBUG"), "debug lines were written");
    for secret in [
        OLD_API_SECRET,
        NEW_API_SECRET,
        WEB_PASSWORD,
        WRONG_WEB_PASSWORD,
        WEBHOOK_SECRET,
        WRONG_WEBHOOK_SECRET,
        hash.as_str(),
    ] {
        assert!(!output.contains(secret), "{secret} in the output");
        assert!(!served.contains(secret), "{secret} in /metrics");
    }
    drop(sim);
}

#[test]
fn a_bad_web_config_exits_with_code_2_naming_the_file_and_key_but_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    for (text, key) in [
        (
            "basic_auth_users:\n  alice: plaintext-password-555\n",
            "basic_auth_users.alice",
        ),
        ("tls_server_config:\n  cert_fil: x\n", "cert_fil"),
        ("rate_limit:\n  burst: 1\n", "rate_limit"),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            "tls_server_config.cert_file",
        ),
    ] {
        std::fs::write(&web, text).unwrap();
        let o = run(&[
            "--api-key",
            "k",
            "--api-secret",
            "s",
            "--web-config-file",
            web.to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{text}: {err}");
        assert!(
            err.contains("--web-config-file") && err.contains(web.to_str().unwrap()),
            "{err}"
        );
        assert!(err.contains(key), "{key}: {err}");
        assert!(!err.contains("plaintext-password-555"), "{err}");
    }
}

#[test]
fn sigterm_during_the_start_up_backfill_stops_the_exporter_within_five_seconds() {
    // 400 environments at 30 requests a minute: the backfill takes many minutes, so the
    // exporter is in the middle of it (waiting for its request budget) when the signal comes.
    let (_sim, endpoint) = spawn_simulate(&["--sim-environments", "400"]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Guard(
        exporter(&[
            "--api-endpoint",
            &endpoint,
            "--api-key",
            "demo-key",
            "--api-secret",
            "demo-secret",
            "--listen-address",
            &addr,
            "--max-requests-per-minute",
            "30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    wait_for_port(port);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, body) = http_get(&format!("http://{addr}/metrics"));
        let pending = body
            .lines()
            .find_map(|l| l.strip_prefix("env0_exporter_backfill_pending_environments "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        let tracked = body
            .lines()
            .find_map(|l| l.strip_prefix("env0_exporter_tracked_deployments "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
        // Some environments read, many still waiting: mid-backfill.
        if pending > 100.0 && tracked > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no backfill under way:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = child.0.id().to_string();
    let sent = Instant::now();
    sigterm(&pid);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            eprintln!("stopped {} ms after SIGTERM", sent.elapsed().as_millis());
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "the exporter did not stop within 5 s of SIGTERM during its backfill"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
