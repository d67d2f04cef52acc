//! Reading the command line the way a user expects: flags a subcommand would ignore are refused
//! (or, when they come from the environment, noted), and an error caused by an environment
//! variable names that variable as well as the flag.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::{Cli, ConfigError};

/// Flags `demo` ignores: it runs against its own simulated env0, on a free loopback port, and
/// wires the simulated env0's webhooks to its own listener with a secret of its own (over plain
/// HTTP, so without a web configuration).
const IGNORED_BY_DEMO: [&str; 11] = [
    "api_endpoint",
    "api_key",
    "api_secret",
    "api_secret_file",
    "organization_id",
    "sim_listen_address",
    "webhook_secret",
    "webhook_secret_file",
    "webhook_listen_address",
    "webhook_forward_url_template",
    "web_config_file",
];
/// Flags `once` ignores: it polls once and prints, serving nothing (webhooks included).
const IGNORED_BY_ONCE: [&str; 8] = [
    "listen_address",
    "web_config_file",
    "web_max_connections",
    "poll_interval",
    "webhook_secret",
    "webhook_secret_file",
    "webhook_listen_address",
    "webhook_forward_url_template",
];
/// Flags `doctor` uses: the connection, what the exporter would watch and send, the request
/// limits, and the webhook settings it explains; it serves and polls nothing.
const USED_BY_DOCTOR: [&str; 18] = [
    "api_endpoint",
    "api_key",
    "api_secret",
    "api_secret_file",
    "organization_id",
    "max_requests_per_minute",
    "request_timeout",
    "log_format",
    "deployment_types",
    "statuses",
    "user_ids",
    "allow_unknown_filter_values",
    "projects",
    "exclude_projects",
    "listen_address",
    "webhook_secret",
    "webhook_secret_file",
    "webhook_listen_address",
];
/// Flags `simulate` ignores: it serves only the simulated env0 API (every exporter flag but the
/// log format).
const USED_BY_SIMULATE: [&str; 1] = ["log_format"];

/// The subcommand and the exporter flags it ignores.
fn ignored_flags(matches: &ArgMatches) -> Option<(&'static str, Vec<clap::Id>)> {
    let exporter_ids = || {
        Cli::command()
            .get_arguments()
            .filter(|a| a.is_global_set())
            .map(|a| a.get_id().clone())
            .collect::<Vec<_>>()
    };
    let ids = |names: &[&'static str]| names.iter().map(|n| clap::Id::from(*n)).collect();
    match matches.subcommand_name() {
        Some("demo") => Some(("demo", ids(&IGNORED_BY_DEMO))),
        Some("once") => Some(("once", ids(&IGNORED_BY_ONCE))),
        Some("simulate") => Some((
            "simulate",
            exporter_ids()
                .into_iter()
                .filter(|id| !USED_BY_SIMULATE.contains(&id.as_str()))
                .collect(),
        )),
        Some("doctor") => Some((
            "doctor",
            exporter_ids()
                .into_iter()
                .filter(|id| !USED_BY_DOCTOR.contains(&id.as_str()))
                .collect(),
        )),
        _ => None,
    }
}

/// `--flag` and the environment variable of the argument `id`.
fn names(id: &clap::Id) -> (String, Option<String>) {
    let command = Cli::command();
    let arg = command.get_arguments().find(|a| a.get_id() == id);
    let long = arg
        .and_then(|a| a.get_long())
        .map_or_else(|| id.to_string(), |l| format!("--{l}"));
    let env = arg
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    (long, env)
}

/// Refuses flags the chosen subcommand would ignore when given on the command line; returns
/// notes for those set only in the environment (a container's environment commonly sets them
/// all), to be logged once logging runs.
fn check_ignored(matches: &ArgMatches) -> Result<Vec<String>, clap::Error> {
    let Some((subcommand, ignored)) = ignored_flags(matches) else {
        return Ok(Vec::new());
    };
    // Global flags are propagated to the subcommand's matches, wherever they were written.
    let matches = matches.subcommand().map_or(matches, |(_, sub)| sub);
    let mut notes = Vec::new();
    for id in ignored {
        let (long, env) = names(&id);
        match matches.value_source(id.as_str()) {
            Some(ValueSource::CommandLine) => {
                return Err(Cli::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("{long} is not used by `{subcommand}`; leave it out"),
                ));
            }
            Some(ValueSource::EnvVariable) => notes.push(format!(
                "{} is set but `{subcommand}` does not use {long}; ignored",
                env.unwrap_or_default()
            )),
            _ => {}
        }
    }
    Ok(notes)
}

/// Whether `long` (`--flag`) appears in `args`, alone or as `--flag=value`.
fn given(args: &[OsString], long: &str) -> bool {
    args.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == long || a.strip_prefix(long).is_some_and(|r| r.starts_with('=')))
    })
}

/// The environment variable that set the flag named in a message, when the flag is not on the
/// command line but its variable is set.
fn env_source(args: &[OsString], long: &str) -> Option<String> {
    if given(args, long) {
        return None;
    }
    let command = Cli::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_long().is_some_and(|l| format!("--{l}") == long))?;
    let env = arg.get_env()?;
    std::env::var_os(env).map(|_| env.to_string_lossy().into_owned())
}

/// A clap error, naming the environment variable when one set the offending flag.
fn with_env_source(e: clap::Error, args: &[OsString]) -> clap::Error {
    let Some(clap::error::ContextValue::String(arg)) =
        e.get(clap::error::ContextKind::InvalidArg).cloned()
    else {
        return e;
    };
    let long = arg.split_whitespace().next().unwrap_or_default();
    match env_source(args, long) {
        Some(env) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first).replacen(
                &format!("'{arg}'"),
                &format!("'{arg}' (from {env})"),
                1,
            );
            Cli::command().error(e.kind(), message)
        }
        None => e,
    }
}

impl ConfigError {
    /// The message for the user: the flag, its environment variable when that set it, and what
    /// is wrong.
    #[must_use]
    pub fn explain(&self) -> String {
        let args: Vec<OsString> = std::env::args_os().collect();
        match env_source(&args, self.flag) {
            Some(env) => format!("{} (from {env}): {}", self.flag, self.message),
            None => self.to_string(),
        }
    }
}

impl Cli {
    /// Parses `args` (the program name first) with the checks above; on a wrong flag, the error
    /// to print (exit code 2).
    ///
    /// # Errors
    /// clap's error, or a flag the subcommand would ignore.
    pub fn parse_args(args: &[OsString]) -> Result<Self, clap::Error> {
        let matches = Self::command()
            .try_get_matches_from(args)
            .map_err(|e| with_env_source(e, args))?;
        let mut cli = Self::from_arg_matches(&matches).map_err(|e| with_env_source(e, args))?;
        cli.ignored_settings = check_ignored(&matches)?;
        Ok(cli)
    }

    /// Parses the process's command line; prints the error and exits (code 2) on a wrong flag,
    /// or prints help or the version and exits 0.
    #[must_use]
    pub fn parse_checked() -> Self {
        let args: Vec<OsString> = std::env::args_os().collect();
        Self::parse_args(&args).unwrap_or_else(|e| e.exit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args: Vec<OsString> = std::iter::once("env0-exporter")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        Cli::parse_args(&args)
    }

    #[test]
    fn a_flag_the_subcommand_ignores_is_refused_and_named() {
        for (args, flag) in [
            (&["demo", "--api-key", "k"][..], "--api-key"),
            (
                &["--api-endpoint", "http://x/", "demo"][..],
                "--api-endpoint",
            ),
            (
                &["simulate", "--poll-interval", "5s"][..],
                "--poll-interval",
            ),
            (&["simulate", "--statuses", "SUCCESS"][..], "--statuses"),
            (
                &["once", "--listen-address", "127.0.0.1:1"][..],
                "--listen-address",
            ),
            (&["once", "--webhook-secret", "s"][..], "--webhook-secret"),
            (
                &["simulate", "--webhook-secret-file", "/s"][..],
                "--webhook-secret-file",
            ),
            (&["demo", "--webhook-secret", "s"][..], "--webhook-secret"),
            (
                &["demo", "--web-config-file", "/w.yml"][..],
                "--web-config-file",
            ),
            (
                &["once", "--web-max-connections", "9"][..],
                "--web-max-connections",
            ),
            (
                &["demo", "--webhook-listen-address", "127.0.0.1:1"][..],
                "--webhook-listen-address",
            ),
        ] {
            if cfg!(not(feature = "simulator"))
                && args.iter().any(|a| matches!(*a, "demo" | "simulate"))
            {
                continue; // no such subcommand: see the test below
            }
            let e = parse(args).expect_err("refused");
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn flags_a_subcommand_uses_are_accepted() {
        if cfg!(feature = "simulator") {
            let cli = parse(&["demo", "--poll-interval", "5s", "--sim-seed", "3"]).unwrap();
            assert!(cli.ignored_settings.is_empty());
            parse(&["simulate", "--sim-seed", "3", "--log-format", "json"]).unwrap();
        }
        parse(&[
            "once",
            "--api-key",
            "k",
            "--api-secret",
            "s",
            "--lookback",
            "2h",
        ])
        .unwrap();
        parse(&["--api-key", "k", "--listen-address", "127.0.0.1:1"]).unwrap();
        parse(&[
            "--webhook-secret",
            "s",
            "--webhook-listen-address",
            "127.0.0.1:2",
        ])
        .unwrap();
    }

    #[cfg(not(feature = "simulator"))]
    #[test]
    fn without_the_simulator_demo_and_simulate_are_unknown_subcommands() {
        for command in ["demo", "simulate"] {
            let e = parse(&[command]).expect_err("no such subcommand");
            assert_eq!(e.kind(), clap::error::ErrorKind::InvalidSubcommand, "{e}");
        }
    }

    #[test]
    fn a_flag_is_found_alone_or_with_an_equals_sign() {
        let args: Vec<OsString> = ["x", "--poll-interval=5s", "--lookback"]
            .iter()
            .map(OsString::from)
            .collect();
        assert!(given(&args, "--poll-interval"));
        assert!(given(&args, "--lookback"));
        assert!(!given(&args, "--poll"));
        assert!(!given(&args, "--api-key"));
    }

    #[test]
    fn an_unknown_flag_suggests_a_close_one_or_nothing() {
        let e = parse(&["--poll-intervl", "5s"]).expect_err("unknown");
        assert!(e.to_string().contains("'--poll-interval'"), "{e}");
        let e = parse(&["--zzzz"]).expect_err("unknown");
        assert!(!e.to_string().contains("similar"), "{e}");
    }
}
