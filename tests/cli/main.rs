//! The real binary: flags, exit codes, secrets, `simulate` + `once`, and `demo` with a clean
//! shutdown on SIGTERM.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_env0-exporter");

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
    let deadline = Instant::now() + Duration::from_secs(30);
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
            "Serving and logging:",
            "Polling:",
            "Metrics:",
            "Filters:",
            "Views:",
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
    let deadline = Instant::now() + Duration::from_secs(30);
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
    let deadline = Instant::now() + Duration::from_secs(30);
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
            "the demo accepted no webhook within 30 s:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
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
    let deadline = Instant::now() + Duration::from_secs(30);
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
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
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
