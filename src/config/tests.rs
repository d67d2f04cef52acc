//! Parsing and validation of the flags: defaults, errors naming their flag, secrets.
use super::*;
use crate::metrics::{DEFAULT_DURATION_BUCKETS, HistogramLabels};
use clap::CommandFactory;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("env0-exporter").chain(args.iter().copied()))
}

#[test]
fn clap_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn defaults_match_the_documented_ones() {
    let cli = parse(&["--api-key", "k", "--api-secret", "s"]).unwrap();
    let c = cli.exporter.validate(true).unwrap();
    assert_eq!(c.connection.api_endpoint.as_str(), "https://api.env0.com/");
    assert_eq!(c.serving.listen_address, "0.0.0.0:19180".parse().unwrap());
    assert_eq!(c.poller.poll_interval, Duration::from_secs(60));
    assert_eq!(c.poller.lookback, Duration::from_secs(24 * 3600));
    assert_eq!(c.poller.full_sync_interval, Some(Duration::from_secs(600)));
    assert_eq!(c.poller.max_requests_per_minute, 500);
    assert_eq!(c.connection.request_timeout, Duration::from_secs(30));
    assert_eq!(cli.exporter.serving.log_format, LogFormat::Text);
    assert_eq!(
        c.metrics.duration_buckets,
        DEFAULT_DURATION_BUCKETS.to_vec()
    );
    assert!(cli.command.is_none());
}

#[cfg(feature = "simulator")]
#[test]
fn flags_work_after_a_subcommand_and_zero_turns_full_sync_off() {
    let cli = parse(&[
        "demo",
        "--poll-interval",
        "5s",
        "--full-sync-interval",
        "0s",
    ])
    .unwrap();
    assert!(matches!(cli.command, Some(Command::Demo(_))));
    let c = cli.exporter.validate(false).unwrap();
    assert_eq!(c.poller.poll_interval, Duration::from_secs(5));
    assert_eq!(c.poller.full_sync_interval, None);
    assert!(c.connection.credentials.is_none());
}

#[test]
fn bad_values_are_parse_errors_naming_the_flag() {
    for (args, flag) in [
        (vec!["--poll-interval", "soon"], "--poll-interval"),
        (vec!["--listen-address", "nowhere"], "--listen-address"),
        (
            vec!["--max-requests-per-minute", "5000"],
            "--max-requests-per-minute",
        ),
        (vec!["--log-format", "xml"], "--log-format"),
        (vec!["--api-endpoint", "not a url"], "--api-endpoint"),
    ] {
        let err = parse(&args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
        assert!(err.to_string().contains(flag), "{args:?}: {err}");
    }
}

#[test]
fn missing_or_unreadable_credentials_name_their_flag() {
    let cli = parse(&[]).unwrap();
    assert_eq!(cli.exporter.validate(true).unwrap_err().flag, "--api-key");
    let cli = parse(&["--api-key", "k"]).unwrap();
    assert_eq!(
        cli.exporter.validate(true).unwrap_err().flag,
        "--api-secret"
    );
    let cli = parse(&["--api-key", "k", "--api-secret-file", "/nonexistent/secret"]).unwrap();
    let err = cli.exporter.validate(true).unwrap_err();
    assert_eq!(err.flag, "--api-secret-file");
    assert!(err.to_string().contains("/nonexistent/secret"));
}

#[test]
fn the_secret_file_is_read_and_its_trailing_newline_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "s3cr3t\n").unwrap();
    let cli = parse(&[
        "--api-key",
        "k",
        "--api-secret-file",
        path.to_str().unwrap(),
    ])
    .unwrap();
    let c = cli.exporter.validate(true).unwrap();
    assert_eq!(
        c.connection.credentials.unwrap().secret.current().expose(),
        "s3cr3t"
    );
}

#[test]
fn the_secret_never_appears_in_debug_output() {
    let cli = parse(&["--api-key", "k", "--api-secret", "hunter2-secret"]).unwrap();
    let c = cli.exporter.validate(true).unwrap();
    assert!(!format!("{cli:?}").contains("hunter2-secret"));
    assert!(!format!("{c:?}").contains("hunter2-secret"));
}

#[test]
fn filters_are_checked_against_env0s_values_and_typos_list_the_valid_ones() {
    let cli = parse(&[
        "--deployment-types",
        "deploy, destroy,deploy",
        "--statuses",
        "FAILURE",
        "--user-ids",
        "auth0|a,auth0|b",
    ])
    .unwrap();
    let f = cli.exporter.validate(false).unwrap().poller.filter;
    assert_eq!(f.deployment_types, vec!["deploy", "destroy"]);
    assert_eq!(f.statuses, vec!["FAILURE"]);
    assert_eq!(f.user_ids, vec!["auth0|a", "auth0|b"]);

    let err = parse(&["--deployment-types", "pr-plan"])
        .unwrap()
        .exporter
        .validate(false)
        .unwrap_err();
    assert_eq!(err.flag, "--deployment-types");
    assert!(err.message.contains("prPlan, driftDetection"), "{err}");
    let err = parse(&["--statuses", "success"])
        .unwrap()
        .exporter
        .validate(false)
        .unwrap_err();
    assert_eq!(err.flag, "--statuses");
    assert!(err.message.contains("SUCCESS"), "{err}");

    let cli = parse(&[
        "--statuses",
        "SOMETHING_NEW",
        "--allow-unknown-filter-values",
    ])
    .unwrap();
    assert_eq!(
        cli.exporter.validate(false).unwrap().poller.filter.statuses,
        vec!["SOMETHING_NEW"]
    );
    assert!(
        parse(&[])
            .unwrap()
            .exporter
            .validate(false)
            .unwrap()
            .poller
            .filter
            .is_empty()
    );
}

#[test]
fn the_duration_buckets_help_shows_are_the_default_buckets() {
    let shown: Vec<f64> = views::DEFAULT_DURATION_BUCKETS_TEXT
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(shown, DEFAULT_DURATION_BUCKETS);
    let c = parse(&["--api-key", "k", "--api-secret", "s"])
        .unwrap()
        .exporter
        .validate(true)
        .unwrap();
    assert_eq!(c.metrics.duration_buckets, DEFAULT_DURATION_BUCKETS);
}

#[test]
fn histogram_labels_default_to_none_and_refuse_what_the_family_cannot_carry() {
    let c = parse(&[]).unwrap().exporter.validate(false).unwrap();
    assert_eq!(
        (c.metrics.duration_labels, c.metrics.queue_labels),
        (None, None)
    );
    let c = parse(&["--duration-histogram-labels", "iac_tool,status"])
        .unwrap()
        .exporter
        .validate(false)
        .unwrap();
    assert_eq!(
        c.metrics.duration_labels,
        Some(HistogramLabels::parse(&["status", "iac_tool"]).unwrap())
    );
    for (args, flag, says) in [
        (
            ["--duration-histogram-labels", "iac_tool,environment"],
            "--duration-histogram-labels",
            "'environment'",
        ),
        (
            ["--duration-histogram-labels", "project"],
            "--duration-histogram-labels",
            "--project-label",
        ),
        (
            ["--queue-histogram-labels", "status"],
            "--queue-histogram-labels",
            "'status'",
        ),
    ] {
        let e = parse(&args).unwrap().exporter.validate(false).unwrap_err();
        assert_eq!(e.flag, flag, "{args:?}");
        assert!(e.message.contains(says), "{args:?}: {}", e.message);
    }
    let c = parse(&["--project-label", "--queue-histogram-labels", "project"])
        .unwrap()
        .exporter
        .validate(false)
        .unwrap();
    assert!(c.metrics.queue_labels.unwrap().has_project());
}

#[test]
fn duration_buckets_must_increase() {
    let cli = parse(&["--duration-buckets", "60,30"]).unwrap();
    assert_eq!(
        cli.exporter.validate(false).unwrap_err().flag,
        "--duration-buckets"
    );
    let cli = parse(&["--duration-buckets", "30,60,600"]).unwrap();
    assert_eq!(
        cli.exporter
            .validate(false)
            .unwrap()
            .metrics
            .duration_buckets,
        vec![30.0, 60.0, 600.0]
    );
}

#[test]
fn the_docs_configuration_table_lists_every_flag_with_its_variable_and_default() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .expect("docs/configuration.md");
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `--")).collect();
    let command = Cli::command();
    let mut problems = Vec::new();
    for arg in command.get_arguments().filter(|a| a.is_global_set()) {
        let Some(long) = arg.get_long() else { continue };
        let flag = format!("`--{long}`");
        let Some(row) = rows.iter().find(|r| {
            r.split('|')
                .nth(1)
                .is_some_and(|cell| cell.split(" / ").any(|f| f.trim() == flag))
        }) else {
            problems.push(format!("--{long}: no row"));
            continue;
        };
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        if let Some(env) = arg.get_env() {
            let env = format!("`{}`", env.to_string_lossy());
            if !cells[2].split(" / ").any(|e| e.trim() == env) {
                problems.push(format!("--{long}: environment is not {env}"));
            }
        }
        // A default written as code must be clap's; prose ("all", "required") is left alone.
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if let Some(code) = cells[3].strip_prefix('`').and_then(|c| c.strip_suffix('`'))
            && default.join(",") != code
        {
            problems.push(format!(
                "--{long}: documented default `{code}`, clap {default:?}"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md flags table: {problems:#?}"
    );
}

#[test]
fn the_unfinished_reread_maximum_is_at_least_the_poll_interval() {
    let c = parse(&[]).unwrap().exporter.validate(false).unwrap();
    assert_eq!(
        c.poller.unfinished_reread_max,
        Duration::from_secs(600),
        "default"
    );
    let cli = parse(&[
        "--poll-interval",
        "5m",
        "--unfinished-reread-max-interval",
        "2m",
    ])
    .unwrap();
    let err = cli.exporter.validate(false).unwrap_err();
    assert_eq!(err.flag, "--unfinished-reread-max-interval");
    assert!(err.message.contains("--poll-interval"), "{}", err.message);
    let cli = parse(&["--unfinished-reread-max-interval", "60s"]).unwrap();
    assert!(cli.exporter.validate(false).is_ok(), "equal is allowed");
    // Unset, it follows a poll interval longer than 10 minutes.
    let c = parse(&["--poll-interval", "1h"])
        .unwrap()
        .exporter
        .validate(false)
        .unwrap();
    assert_eq!(c.poller.unfinished_reread_max, Duration::from_secs(3600));
}

#[test]
fn the_state_file_needs_an_existing_directory_and_is_off_by_default() {
    let off = parse(&["--api-key", "k", "--api-secret", "s"]).unwrap();
    assert_eq!(off.exporter.validate(true).unwrap().state_file, None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.json.gz");
    let file = file.to_str().unwrap();
    let on = parse(&["--state-file", file, "--state-file-interval", "5m"]).unwrap();
    let config = on.exporter.validate(false).unwrap().state_file.unwrap();
    assert_eq!(config.path, std::path::PathBuf::from(file));
    assert_eq!(config.interval, Duration::from_secs(300));
    let default = parse(&["--state-file", file]).unwrap();
    assert_eq!(
        default
            .exporter
            .validate(false)
            .unwrap()
            .state_file
            .unwrap()
            .interval,
        Duration::from_secs(60)
    );
    let missing = dir.path().join("no-such-dir").join("state");
    for path in [missing.to_str().unwrap(), dir.path().to_str().unwrap()] {
        let err = parse(&["--state-file", path])
            .unwrap()
            .exporter
            .validate(false)
            .unwrap_err();
        assert_eq!(err.flag, "--state-file", "{path}: {err}");
    }
}

/// A flag of each group, a value for it other than its default, and the flags it needs beside it.
const EVERY_FLAG: [(&str, Option<&str>, &[&str]); 34] = [
    ("--api-endpoint", Some("http://other.example/"), &[]),
    ("--api-key", Some("k2"), &[]),
    ("--api-secret", Some("s2"), &[]),
    ("--api-secret-file", Some("FILE"), &[]),
    ("--organization-id", Some("org-9"), &[]),
    ("--request-timeout", Some("7s"), &[]),
    ("--poll-interval", Some("5s"), &[]),
    ("--lookback", Some("2h"), &[]),
    ("--full-sync-interval", Some("0s"), &[]),
    ("--unfinished-reread-max-interval", Some("20m"), &[]),
    ("--max-requests-per-minute", Some("99"), &[]),
    ("--shard", Some("2/3"), &[]),
    ("--deployment-types", Some("deploy"), &[]),
    ("--statuses", Some("FAILURE"), &[]),
    ("--user-ids", Some("u1"), &[]),
    (
        "--allow-unknown-filter-values",
        None,
        &["--statuses", "NEW"],
    ),
    ("--projects", Some("payments-*"), &[]),
    ("--exclude-projects", Some("sandbox"), &[]),
    ("--project-label", None, &[]),
    ("--environment-metrics", None, &[]),
    ("--max-series-per-metric", Some("77"), &[]),
    ("--duration-buckets", Some("1,2,3"), &[]),
    ("--duration-histogram-labels", Some("status"), &[]),
    ("--queue-histogram-labels", Some("iac_tool"), &[]),
    ("--listen-address", Some("127.0.0.1:1"), &[]),
    ("--web-config-file", Some("FILE"), &[]),
    ("--web-max-connections", Some("9"), &[]),
    ("--state-file", Some("STATE"), &[]),
    (
        "--state-file-interval",
        Some("5m"),
        &["--state-file", "STATE"],
    ),
    ("--webhook-secret", Some("w"), &[]),
    ("--webhook-secret-file", Some("FILE"), &[]),
    (
        "--webhook-listen-address",
        Some("127.0.0.1:2"),
        &["--webhook-secret", "w"],
    ),
    (
        "--webhook-forward-url-template",
        Some("http://127.0.0.1:9/{shard}"),
        &["--webhook-secret", "w", "--shard", "1/2"],
    ),
    // Read before any validation, to start logging (`app::main`): not part of `Config`.
    ("--log-format", Some("json"), &[]),
];

/// What a validation gives, secrets included (their `Debug` hides them).
fn seen(result: &Result<Config, ConfigError>) -> String {
    match result {
        Ok(c) => format!(
            "{c:?} api secret {:?} webhook secret {:?}",
            c.connection
                .credentials
                .as_ref()
                .map(|c| c.secret.current().expose().to_owned()),
            c.webhook
                .as_ref()
                .map(|w| w.secret.current().expose().to_owned()),
        ),
        Err(e) => format!("error {e}"),
    }
}

#[test]
fn every_flag_of_every_group_reaches_the_validated_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "from-a-file\n").unwrap();
    let state = dir.path().join("state.json.gz");
    let (file, state) = (file.to_str().unwrap(), state.to_str().unwrap());
    let placeholder = |a: &str| match a {
        "FILE" => file.to_owned(),
        "STATE" => state.to_owned(),
        a => a.to_owned(),
    };
    let validate = |args: &[String]| {
        let mut all = args.to_vec();
        for (given, default) in [("--api-key", "k"), ("--api-secret", "s")] {
            if !args.iter().any(|a| a.starts_with(given)) {
                all.extend([given, default].map(String::from));
            }
        }
        let cli = parse(&all.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        (cli.exporter.validate(true), cli.exporter.serving.log_format)
    };
    for (flag, value, beside) in EVERY_FLAG {
        let without: Vec<String> = beside.iter().copied().map(placeholder).collect();
        let mut with = without.clone();
        with.push(flag.to_owned());
        with.extend(value.map(placeholder));
        let (a, log_a) = validate(&with);
        let (b, log_b) = validate(&without);
        if flag == "--log-format" {
            assert_ne!(log_a, log_b, "{flag}");
            assert_eq!(seen(&a), seen(&b), "{flag} is not validated");
        } else {
            assert_ne!(seen(&a), seen(&b), "{flag} {value:?} changes nothing");
        }
    }
    let listed: std::collections::BTreeSet<String> = EVERY_FLAG
        .iter()
        .map(|(flag, _, _)| (*flag).to_owned())
        .collect();
    let defined: std::collections::BTreeSet<String> = Cli::command()
        .get_arguments()
        .filter(|a| a.is_global_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    assert_eq!(listed, defined, "every exporter flag has a row above");
}

#[test]
fn every_flag_of_a_group_is_shown_under_its_heading_and_accepted_anywhere() {
    let group = |heading: &'static str, command: clap::Command| (heading, command);
    let groups = [
        group(
            "env0 connection",
            ConnectionArgs::augment_args(clap::Command::new("g")),
        ),
        group(
            "Polling",
            PollingArgs::augment_args(clap::Command::new("g")),
        ),
        group("Filters", FilterArgs::augment_args(clap::Command::new("g"))),
        group(
            "Metrics and views",
            ViewsArgs::augment_args(clap::Command::new("g")),
        ),
        group(
            "Serving and logging",
            ServingArgs::augment_args(clap::Command::new("g")),
        ),
        group(
            "State file",
            StateFileArgs::augment_args(clap::Command::new("g")),
        ),
        group(
            "Webhooks",
            WebhookArgs::augment_args(clap::Command::new("g")),
        ),
    ];
    let cli = Cli::command();
    let mut grouped = 0;
    for (heading, command) in groups {
        for arg in command.get_arguments() {
            grouped += 1;
            let id = arg.get_id();
            let in_cli = cli
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("{id} is not a flag of the command line"));
            assert_eq!(in_cli.get_help_heading(), Some(heading), "{id}");
            assert!(
                in_cli.is_global_set(),
                "{id} is accepted after a subcommand"
            );
            assert!(
                in_cli.get_long().is_some() && in_cli.get_env().is_some(),
                "{id} has a flag and an environment variable"
            );
        }
    }
    let exporter_flags = cli.get_arguments().filter(|a| a.is_global_set()).count();
    assert_eq!(grouped, exporter_flags, "every exporter flag is in a group");
}
