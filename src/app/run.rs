//! The commands: run against env0, `once`, `doctor`, `demo` and `simulate`, with logging, the async
//! runtime and the shutdown signal. `main` hands the parsed flags to [`main`] and nothing else.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, error::ErrorKind};
use tokio::net::TcpListener;
use tracing::{info, warn};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Cli, Command, Config, ConfigError, Credentials, DoctorOutput, LogFormat};

#[cfg(feature = "simulator")]
mod sim;

/// Runs what the command line asks for, and says how the process ends.
#[must_use]
pub fn main(cli: Cli) -> ExitCode {
    init_logging(cli.exporter.serving.log_format);
    for note in &cli.ignored_settings {
        warn!("{note}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Exits with code 2 and a one-line message naming the flag (and the environment variable that
/// set it, if one did), like clap's own errors.
fn config_error(e: &ConfigError) -> ! {
    Cli::command()
        .error(ErrorKind::ValueValidation, e.explain())
        .exit()
}

/// Logs to stderr; colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
/// The level comes from `RUST_LOG`: a level (`debug`) or comma-separated `target=level` directives
/// (`env0_exporter=debug,info`), default `info`. A `RUST_LOG` that does not parse is said in the log
/// and replaced by the default, never a reason not to start.
fn init_logging(format: LogFormat) {
    let (filter, invalid) = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(layer)
            .with(filter)
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(layer.json())
            .with(filter)
            .init(),
    }
    if let Some((value, e)) = invalid {
        warn!("RUST_LOG={value:?} is not a log filter ({e}); logging at info");
    }
}

/// The log filter `RUST_LOG` asks for, or `info` (with what was wrong) when it does not parse.
fn log_filter(value: Option<&str>) -> (Targets, Option<(String, String)>) {
    let default = Targets::new().with_default(LevelFilter::INFO);
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => (default, None),
        Some(v) => match v.parse::<Targets>() {
            Ok(targets) => (targets, None),
            Err(e) => (default, Some((v.to_owned(), e.to_string()))),
        },
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let clock: SharedClock = Arc::new(SystemClock);
    match cli.command {
        None => {
            let (config, credentials) = against_env0(&cli)?;
            serve(&config, &credentials, clock).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Once) => {
            let (config, credentials) = against_env0(&cli)?;
            let mut exporter = super::build(&config, &credentials, clock)?;
            let ok = exporter.poller.poll(None).await;
            exporter.poller.save_state().await;
            let text = exporter.metrics.encode(false)?;
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                // A reader that stopped early (`once | head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(e).context("cannot write the metrics to stdout");
                }
                _ => {}
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Doctor(ref args)) => doctor(&cli, args.output, clock).await,
        #[cfg(feature = "simulator")]
        Some(Command::Demo(ref sim_args)) => sim::demo(&cli, sim_args, clock).await,
        #[cfg(feature = "simulator")]
        Some(Command::Simulate(ref sim_args)) => sim::simulate(sim_args, clock).await,
    }
}

/// `doctor`: checks env0 with the exporter's settings and prints the report; exit 0 when
/// nothing stops the exporter, 1 when something does.
async fn doctor(cli: &Cli, output: DoctorOutput, clock: SharedClock) -> anyhow::Result<ExitCode> {
    let (config, credentials) = against_env0(cli)?;
    let report = crate::doctor::run(&config, &credentials, clock).await?;
    let text = match output {
        DoctorOutput::Text => report.to_text(),
        DoctorOutput::Json => report.to_json()? + "\n",
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        // A reader that stopped early (`doctor | head`) is not an error.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write the report to stdout");
        }
        _ => {}
    }
    Ok(if report.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The settings to poll the real env0 with; a wrong one exits with code 2.
fn against_env0(cli: &Cli) -> anyhow::Result<(Config, Credentials)> {
    let config = cli
        .exporter
        .validate(true)
        .unwrap_or_else(|e| config_error(&e));
    let credentials = config
        .connection
        .credentials
        .clone()
        .context("credentials are validated")?;
    Ok((config, credentials))
}

/// The main listener, on `--listen-address`.
async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("--listen-address: cannot listen on {address}"))
}

async fn serve(
    config: &Config,
    credentials: &Credentials,
    clock: SharedClock,
) -> anyhow::Result<()> {
    let listener = bind(config.serving.listen_address).await?;
    serve_on(config, credentials, clock, listener).await
}

async fn serve_on(
    config: &Config,
    credentials: &Credentials,
    clock: SharedClock,
    listener: TcpListener,
) -> anyhow::Result<()> {
    let exporter = super::build(config, credentials, clock)?;
    let webhook_listener =
        match config.webhook.as_ref().and_then(|w| w.listen_address) {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("--webhook-listen-address: cannot listen on {address}")
            })?),
            None => None,
        };
    let running = super::start_with(exporter, listener, webhook_listener);
    let shown = if running.addr.ip().is_unspecified() {
        format!("localhost:{}", running.addr.port())
    } else {
        running.addr.to_string()
    };
    info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %running.addr,
        api = %config.connection.api_endpoint,
        poll_interval = %humantime::format_duration(config.poller.poll_interval),
        lookback = %humantime::format_duration(config.poller.lookback),
        max_requests_per_minute = config.poller.max_requests_per_minute,
        "env0-exporter started"
    );
    if !config.poller.shard.is_whole() {
        info!(
            shard = %config.poller.shard,
            "sharded: only the environments of this shard are read, counted and shown; sum across the shards"
        );
    }
    let f = &config.poller.filter;
    if f.is_empty() {
        info!("filters: none, every deployment is watched");
    } else {
        info!(
            deployment_types = %f.deployment_types.join(","),
            statuses = %f.statuses.join(","),
            user_ids = %f.user_ids.join(","),
            "filters active (empty = all); runs outside them are not shown in any metric"
        );
    }
    let scheme = if config
        .serving
        .options
        .web_config
        .as_ref()
        .is_some_and(|w| w.current().tls.is_some())
    {
        "https"
    } else {
        "http"
    };
    if config.webhook.is_some() {
        // A listener of its own is plain HTTP; on the main one, webhooks share its TLS.
        let webhook_scheme = if running.webhook_addr.is_some() {
            "http"
        } else {
            scheme
        };
        let webhook_shown = running.webhook_addr.map_or(shown.clone(), |a| {
            if a.ip().is_unspecified() {
                format!("localhost:{}", a.port())
            } else {
                a.to_string()
            }
        });
        info!(
            url = %format!("{webhook_scheme}://{webhook_shown}{}", crate::webhook::PATH),
            "webhooks on: signed env0 deliveries are taken in between polls"
        );
    }
    if let Some(web) = &config.serving.options.web_config {
        let active = web.current();
        info!(
            file = %web.path().display(),
            tls = active.tls.is_some(),
            basic_auth = !active.users.is_empty(),
            "web configuration loaded; /-/healthy and /-/ready stay open, and it is re-read when it changes"
        );
    }
    say(&format!("metrics at {scheme}://{shown}/metrics"));
    shutdown_signal().await;
    info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// One line for the user on stdout; a closed stdout is not a reason to stop serving.
fn say(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::log_filter;

    #[test]
    fn rust_log_sets_the_level_per_target_and_a_wrong_one_falls_back_to_info() {
        let (none, invalid) = log_filter(None);
        assert!(invalid.is_none());
        assert!(none.would_enable("env0_exporter::poller", &Level::INFO));
        assert!(!none.would_enable("env0_exporter::poller", &Level::DEBUG));

        let (f, invalid) = log_filter(Some("env0_exporter=debug,warn"));
        assert!(invalid.is_none());
        assert!(f.would_enable("env0_exporter::client", &Level::DEBUG));
        assert!(!f.would_enable("hyper_util::client", &Level::INFO));
        assert!(f.would_enable("hyper_util::client", &Level::WARN));

        let (f, invalid) = log_filter(Some("env0_exporter=loud"));
        let (value, why) = invalid.expect("a level that is not one is reported");
        assert_eq!(value, "env0_exporter=loud");
        assert!(!why.is_empty());
        assert!(f.would_enable("env0_exporter", &Level::INFO));
        assert!(!f.would_enable("env0_exporter", &Level::DEBUG));
    }
}
