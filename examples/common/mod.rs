//! What the measuring examples share: a simulator served on a loopback port, and an exporter
//! built against it from command-line flags.

use clap::Parser;
use env0_exporter::app;
use env0_exporter::clock::SharedClock;
use env0_exporter::config::Cli;
use env0_exporter::simulator::Simulator;
use tokio::net::TcpListener;

/// Serves `sim` on a free loopback port until the process ends, and builds an exporter against
/// it on `clock` with the exporter flags `flags` (a wrong flag exits as the binary would).
pub(crate) async fn exporter_against(
    sim: &Simulator,
    clock: SharedClock,
    flags: &[&str],
) -> app::Exporter {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback port");
    let addr = listener.local_addr().expect("local address");
    let (stop, _task) = app::spawn_simulator(sim.clone(), listener);
    std::mem::forget(stop); // keep the simulator serving until the process ends
    let endpoint = format!("http://{addr}/");
    let mut args = vec!["env0-exporter", "--api-endpoint", &endpoint];
    args.extend_from_slice(flags);
    let config = Cli::try_parse_from(args)
        .unwrap_or_else(|e| e.exit())
        .exporter
        .validate(false)
        .expect("valid flags");
    let credentials = app::sim_credentials(sim);
    app::build(&config, &credentials, clock).expect("exporter")
}
