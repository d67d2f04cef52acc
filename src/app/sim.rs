//! What ties the simulated env0 to the exporter (the `simulator` feature): its credentials as the
//! exporter's, and serving it on a listener.

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{Credentials, Secret, SecretSource};
use crate::simulator::Simulator;

/// The credentials the simulator accepts.
#[must_use]
pub fn sim_credentials(simulator: &Simulator) -> Credentials {
    let c = simulator.config();
    Credentials {
        key: c.api_key_id.clone(),
        secret: SecretSource::fixed(Secret::new(&c.api_key_secret)),
    }
}

/// A simulator served on `listener` until the returned sender fires (or is dropped).
#[must_use = "dropping the sender stops the simulator at once"]
pub fn spawn_simulator(
    simulator: Simulator,
    listener: TcpListener,
) -> (oneshot::Sender<()>, JoinHandle<std::io::Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(simulator.serve(listener, async move {
        let _ = stopped.await;
    }));
    (stop, task)
}
