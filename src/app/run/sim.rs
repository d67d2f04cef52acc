//! `demo` and `simulate`: the commands that run the simulated env0 (the `simulator` feature).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::info;

use super::{Cli, bind, config_error, say, serve_on, shutdown_signal};
use crate::clock::SharedClock;
use crate::config::{Secret, WebhookConfig};
use crate::simulator::{SimArgs, Simulator, WebhookTarget};

/// How often `demo` brings its simulated world up to now, so that webhooks are sent as runs
/// change rather than when the exporter next asks the API.
const DEMO_TICK: Duration = Duration::from_secs(1);

/// `demo`: the simulated env0 on a loopback port, sending its webhooks to the exporter, which
/// polls it and serves its metrics.
pub(super) async fn demo(
    cli: &Cli,
    sim_args: &SimArgs,
    clock: SharedClock,
) -> anyhow::Result<ExitCode> {
    let mut config = cli
        .exporter
        .validate(false)
        .unwrap_or_else(|e| config_error(&e));
    // The exporter's port first: the simulator's webhooks go to it.
    let exporter_listener = bind(config.serving.listen_address).await?;
    let secret = demo_secret();
    // The simulated env0 posts its webhooks over plain HTTP, without credentials.
    config.serving.options.web_config = None;
    config.webhook = Some(WebhookConfig::on_main_listener(Secret::new(&secret).into()));
    let webhook_url = demo_webhook_url(exporter_listener.local_addr()?)?;
    let mut sim_config = sim_args.config();
    sim_config.webhook = Some(WebhookTarget {
        url: webhook_url.clone(),
        secret,
    });
    let simulator = Simulator::new(sim_config, clock.clone());
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("cannot open a loopback port for the simulator")?;
    let sim_addr = listener.local_addr()?;
    let (stop_sim, sim_task) = crate::app::spawn_simulator(simulator.clone(), listener);
    let ticker = tokio::spawn({
        let simulator = simulator.clone();
        async move {
            let mut tick = tokio::time::interval(DEMO_TICK);
            loop {
                tick.tick().await;
                simulator.advance();
            }
        }
    });
    config.connection.api_endpoint = format!("http://{sim_addr}/").parse()?;
    let sim_config = simulator.config();
    let credentials = crate::app::sim_credentials(&simulator);
    info!(api = %config.connection.api_endpoint, environments = sim_config.environments, "demo: simulated env0 organisation started");
    info!(webhook = %webhook_url, "demo: real time, the simulated env0 sends a signed webhook for every run that changes and the exporter takes it in between polls");
    let result = serve_on(&config, &credentials, clock, exporter_listener).await;
    ticker.abort();
    let _ = stop_sim.send(());
    let _ = sim_task.await;
    result?;
    Ok(ExitCode::SUCCESS)
}

/// `simulate`: only the simulated env0 API, on `--sim-listen-address`, until a signal.
pub(super) async fn simulate(sim_args: &SimArgs, clock: SharedClock) -> anyhow::Result<ExitCode> {
    let simulator = Simulator::new(sim_args.config(), clock);
    let listener = TcpListener::bind(sim_args.sim_listen_address)
        .await
        .with_context(|| {
            format!(
                "--sim-listen-address: cannot listen on {}",
                sim_args.sim_listen_address
            )
        })?;
    let addr = listener.local_addr()?;
    let c = simulator.config();
    say(&format!(
        "simulated env0 API on http://{addr}/ (API key {} / secret {}, organization {})",
        c.api_key_id,
        c.api_key_secret,
        simulator.organization_id()
    ));
    let (stop, task) = crate::app::spawn_simulator(simulator, listener);
    shutdown_signal().await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(crate::app::SHUTDOWN_GRACE, task).await;
    Ok(ExitCode::SUCCESS)
}

/// A webhook secret for `demo`, new each run. `fastrand` is not a cryptographic generator, which
/// is enough for a demo whose exporter and simulator talk over loopback.
fn demo_secret() -> String {
    let mut rng = fastrand::Rng::new();
    format!("{:032x}{:032x}", rng.u128(..), rng.u128(..))
}

/// Where `demo`'s simulator sends its webhooks: the exporter's listener, over loopback when it
/// listens on every address.
fn demo_webhook_url(listening: SocketAddr) -> anyhow::Result<url::Url> {
    let ip = match listening.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let address = SocketAddr::new(ip, listening.port());
    format!("http://{address}{}", crate::webhook::PATH)
        .parse()
        .context("the demo's webhook URL")
}
