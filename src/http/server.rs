//! Serving a router on a TCP listener so that no client can starve the others: HTTP/1.1 with a
//! bound on the time to send request headers (and to finish a TLS handshake), a bound on the
//! request head's size, and a bound on open connections ([`slots`](super::slots)) that makes room
//! for a new connection by closing the one idle the longest. With a web configuration that has
//! TLS, every connection's handshake uses the configuration current when it was accepted.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::slots::{Slot, Slots};
use super::web_config::WebConfigWatcher;

/// How long a client may take to send a request's headers (and before that, with TLS, to finish
/// its handshake). It also closes a keep-alive connection that sends nothing for that long.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections per listener, by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 256;
/// Largest request head a connection buffers (hyper's smallest allowed is 8 KiB).
const MAX_BUF_SIZE: usize = 64 * 1024;
/// Pause after an accept error that is not the client's (too many open files, say).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How a listener is served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections open at once at most; past it, the one idle the longest is closed.
    pub max_connections: usize,
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// The web configuration whose TLS settings (when it has any) every new connection uses.
    pub web_config: Option<Arc<WebConfigWatcher>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS as usize,
            header_read_timeout: HEADER_READ_TIMEOUT,
            web_config: None,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops taking connections and
/// lets open ones finish the request they are answering.
///
/// # Errors
/// None so far: a failed accept is logged and retried.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Slots::new(options.max_connections);
    let options = Arc::new(options);
    let (stop, stopped) = watch::channel(());
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let evicted = slots.evicted();
                    let Some(slot) = slots.admit() else {
                        debug!("every connection is answering a request; refusing a new one");
                        continue;
                    };
                    if slots.evicted() > evicted {
                        debug!("connection limit reached: closed the connection idle the longest");
                    }
                    connections.spawn(connection(
                        stream,
                        slot,
                        router.clone(),
                        options.clone(),
                        stopped.clone(),
                    ));
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
    drop(listener);
    stop.send_replace(());
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// An accept error that concerns only that one connection.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection: the TLS handshake when the web configuration has TLS, then HTTP/1.1.
async fn connection(
    stream: TcpStream,
    slot: Slot,
    router: Router,
    options: Arc<ServeOptions>,
    mut stop: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let tls = options
        .web_config
        .as_ref()
        .and_then(|web| web.current().tls.clone());
    let Some(tls) = tls else {
        return drive(stream, &slot, router, &options, stop).await;
    };
    let handshake = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
    let stream = tokio::select! {
        done = tokio::time::timeout(options.header_read_timeout, handshake) => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                debug!("TLS handshake timed out");
                return;
            }
        },
        () = slot.evicted() => return,
        _ = stop.changed() => return,
    };
    drive(stream, &slot, router, &options, stop).await;
}

/// HTTP/1.1 on `io` until the client leaves, a timeout, an eviction or shutdown.
async fn drive<I>(
    io: I,
    slot: &Slot,
    router: Router,
    options: &ServeOptions,
    mut stop: watch::Receiver<()>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tower = TowerToHyperService::new(router);
    let service = hyper::service::service_fn(|request| {
        use hyper::service::Service as _;
        let busy = slot.busy();
        let answer = tower.call(request);
        async move {
            let response = answer.await;
            drop(busy);
            response
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(MAX_BUF_SIZE);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    debug!(error = %e, "connection closed");
                }
                return;
            }
            () = slot.evicted() => return,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Serves a one-route router with these options on a loopback port.
    async fn spawn(
        options: ServeOptions,
    ) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", get(|| async { "hi\n" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, router, options, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off_after_the_timeout() {
        let timeout = Duration::from_millis(300);
        let (addr, _stop) = spawn(ServeOptions {
            header_read_timeout: timeout,
            ..ServeOptions::default()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        // The server closes the connection (possibly after a 408): the read ends.
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
            .await
            .expect("closed within 5 s")
            .ok();
        let took = started.elapsed();
        assert!(
            took >= timeout.mul_f32(0.8) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(!String::from_utf8_lossy(&buf).contains("hi"));
    }

    #[tokio::test]
    async fn a_kept_alive_connection_answers_twice_and_is_closed_on_shutdown() {
        let (addr, stop) = spawn(ServeOptions::default()).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        for _ in 0..2 {
            stream
                .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0_u8; 256];
            let n = stream.read(&mut buf).await.unwrap();
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        }
        // Shutdown closes the idle keep-alive connection.
        stop.send(()).unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut rest))
            .await
            .expect("closed on shutdown")
            .ok();
    }
}
