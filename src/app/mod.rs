//! Wiring: builds the client, poller, metrics and HTTP server from a [`Config`] and runs them.
//! `main` only parses flags and calls [`main`]; tests call the same functions on port 0.
//!
//! Wiring runs one way: the request budget is built here and handed to the client (which spends
//! it) and to the metrics (which show what is left); the metrics observe the client's requests.
//! With webhooks on, the receiver's queue is handed to the poller, which owns the state.

mod run;
#[cfg(feature = "simulator")]
mod sim;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::client::{self, Client};
use crate::clock::SharedClock;
use crate::config::{Config, Credentials};
use crate::http::ServeOptions;
use crate::metrics::{Metrics, MetricsConfig};
use crate::poller::Poller;
use crate::ratelimit::SlidingWindow;
use crate::state::SnapshotHandle;
use crate::webhook::{Forwarding, Intake};

pub use run::main;
#[cfg(feature = "simulator")]
pub use sim::{sim_credentials, spawn_simulator};

/// How long shutdown waits for open HTTP connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// How long shutdown waits for the poller to write the state file once more (`--state-file`);
/// within Kubernetes' default 30 s between SIGTERM and SIGKILL, with the HTTP grace after it.
pub const STATE_FILE_GRACE: Duration = Duration::from_secs(20);

/// An exporter, built but not yet running.
#[derive(Debug)]
pub struct Exporter {
    /// Everything `/metrics` serves.
    pub metrics: Arc<Metrics>,
    /// The published state.
    pub snapshot: SnapshotHandle,
    /// The poller, to run or to drive by hand.
    pub poller: Poller,
    /// The webhook receiver, when webhooks are on (its queue feeds the poller).
    pub webhook: Option<Arc<Intake>>,
    /// How the main listener is served: connection limit, timeouts, TLS and basic auth. A
    /// webhook listener of its own gets the same limits, without TLS or basic auth.
    pub serve_options: ServeOptions,
}

/// Builds an exporter for `config` with these credentials, reading time from `clock`.
///
/// # Errors
/// When the HTTP client cannot be built.
pub fn build(
    config: &Config,
    credentials: &Credentials,
    clock: SharedClock,
) -> Result<Exporter, crate::client::Error> {
    let snapshot = SnapshotHandle::default();
    let forwarding = match config
        .webhook
        .as_ref()
        .and_then(|w| w.forward_url_template.clone())
    {
        Some(template) => Forwarding::new(
            config.poller.shard,
            template,
            crate::webhook::FORWARD_TIMEOUT,
        )
        .map_err(|e| {
            crate::client::Error::InvalidConfig(format!(
                "cannot build the http client that forwards webhooks between shards: {e}"
            ))
        })?,
        None => None,
    };
    let budget = Arc::new(SlidingWindow::new(
        config.poller.max_requests_per_minute,
        client::RATE_WINDOW,
    ));
    let metrics = Arc::new(Metrics::new(
        // Registered when a forwarder was built: `Forwarding::new` alone decides (a split
        // organisation and a template).
        &MetricsConfig {
            webhook_forwards: forwarding.is_some(),
            ..config.metrics.clone()
        },
        snapshot.clone(),
        budget.clone(),
        clock.clone(),
    ));
    let client = Arc::new(Client::new(
        config.connection.client_config(credentials),
        budget,
        clock.clone(),
        metrics.clone(),
    )?);
    let mut poller = Poller::new(
        client,
        clock.clone(),
        config.poller.clone(),
        snapshot.clone(),
        metrics.clone(),
    );
    if let Some(state_file) = &config.state_file {
        poller.set_state_file(state_file.clone());
    }
    let webhook = config.webhook.as_ref().map(|w| {
        let (intake, receiver) = Intake::new(
            w.secret.clone(),
            snapshot.clone(),
            poller.watched_environments(),
            metrics.clone(),
            clock,
        );
        poller.set_webhooks(receiver);
        Arc::new(intake.with_forwarding(forwarding))
    });
    Ok(Exporter {
        metrics,
        snapshot,
        poller,
        webhook,
        serve_options: config.serving.options.clone(),
    })
}

/// A running exporter: its poller and its HTTP server.
#[derive(Debug)]
pub struct Running {
    /// Where `/metrics` is served.
    pub addr: SocketAddr,
    /// The published state (tests wait on its poll counter).
    pub snapshot: SnapshotHandle,
    /// Where `/webhooks/env0` is served when it has a listener of its own.
    pub webhook_addr: Option<SocketAddr>,
    poller: JoinHandle<()>,
    stop_poller: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    stop: oneshot::Sender<()>,
    webhook_server: Option<(oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
}

impl Running {
    /// Stops polling at once (mid-poll too), writes the state file once more (with
    /// `--state-file`, within [`STATE_FILE_GRACE`]), and stops the HTTP server within
    /// [`SHUTDOWN_GRACE`].
    pub async fn shutdown(mut self) {
        let _ = self.stop_poller.send(());
        if tokio::time::timeout(STATE_FILE_GRACE, &mut self.poller)
            .await
            .is_err()
        {
            warn!("the state file was still being written after the grace period; stopping");
            self.poller.abort();
        }
        let _ = self.stop.send(());
        if let Some((stop, server)) = self.webhook_server {
            let _ = stop.send(());
            if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
                warn!("webhook connections still open after the grace period; closing them");
            }
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, self.server).await {
            Ok(Ok(Ok(()))) => info!("stopped"),
            Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server stopped with an error"),
            Ok(Err(e)) => warn!(error = %e, "HTTP server task failed"),
            Err(_) => warn!("HTTP connections still open after the grace period; closing them"),
        }
    }
}

/// Starts polling and serving `/metrics` on `listener` (and `/webhooks/env0` when webhooks are
/// on).
#[must_use]
pub fn start(exporter: Exporter, listener: TcpListener) -> Running {
    start_with(exporter, listener, None)
}

/// Like [`start`], with `/webhooks/env0` on `webhook_listener` when one is given (else on
/// `listener`).
#[must_use]
pub fn start_with(
    exporter: Exporter,
    listener: TcpListener,
    webhook_listener: Option<TcpListener>,
) -> Running {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let options = exporter.serve_options;
    let mut router = crate::http::routes(exporter.metrics.clone(), options.web_config.clone());
    let mut webhook_addr = None;
    let mut webhook_server = None;
    if let Some(intake) = exporter.webhook {
        let webhooks = crate::webhook::router(intake);
        match webhook_listener {
            Some(l) => {
                webhook_addr = l.local_addr().ok();
                let (stop, stopped) = oneshot::channel::<()>();
                let webhook_options = ServeOptions {
                    web_config: None,
                    ..options.clone()
                };
                let server = tokio::spawn(crate::http::serve(
                    l,
                    webhooks,
                    webhook_options,
                    async move {
                        let _ = stopped.await;
                    },
                ));
                webhook_server = Some((stop, server));
            }
            None => router = router.merge(webhooks),
        }
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(listener, router, options, async move {
        let _ = stopped.await;
    }));
    let (stop_poller, poller_stopped) = oneshot::channel::<()>();
    let poller = tokio::spawn(exporter.poller.run_until(async move {
        let _ = poller_stopped.await;
    }));
    Running {
        addr,
        snapshot: exporter.snapshot,
        webhook_addr,
        poller,
        stop_poller,
        server,
        stop,
        webhook_server,
    }
}
