//! The exporter's HTTP side: `/metrics`, `/-/healthy`, `/-/ready` and a landing page, and the
//! server they run on.
//!
//! Readiness is not tied to env0's health (that is `env0_up`): an exporter that cannot reach
//! env0 must still be scraped, so that the failure is visible.
//!
//! Files: [`server`] (the listener: timeouts, the connection limit and TLS), `slots` (the
//! connection limit), [`web_config`] (`--web-config-file`, followed as it changes), `tls` (the
//! rustls configuration built from it), [`basic_auth`] (its users). With users configured, every
//! route but the probes asks for basic auth: probes must work without credentials, and the
//! webhook route (added by the app) has its own signature check.

pub mod basic_auth;
pub mod server;
mod slots;
mod tls;
pub mod web_config;

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;

use crate::metrics::{Metrics, OPENMETRICS_TEXT, PROMETHEUS_TEXT};
use basic_auth::AuthVerdict;

pub use server::{DEFAULT_MAX_CONNECTIONS, HEADER_READ_TIMEOUT, ServeOptions, serve};
pub use web_config::{WebConfigError, WebConfigWatcher};

/// Largest request body the exporter's routes take: none of them reads one.
const MAX_REQUEST_BODY: usize = 0;

/// The routes, without a socket (tests call it with `oneshot`).
pub fn router(metrics: Arc<Metrics>) -> Router {
    routes(metrics, None)
}

/// The routes, with basic auth on all but the probes when `web_config` has users (read for
/// every request, so users added to the file take effect without a restart).
pub fn routes(metrics: Arc<Metrics>, web_config: Option<Arc<WebConfigWatcher>>) -> Router {
    let mut guarded = Router::new()
        .route("/", get(landing))
        .route("/metrics", get(scrape))
        .with_state(metrics);
    if let Some(web) = web_config {
        guarded = guarded.route_layer(from_fn_with_state(web, require));
    }
    Router::new()
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(|| async { "OK\n" }))
        .merge(guarded)
        // On the routes only: a path this router does not have (the webhook's, on a listener
        // of its own) stays a 404.
        .route_layer(RequestBodyLimitLayer::new(MAX_REQUEST_BODY))
}

/// Whether the scraper asked for `OpenMetrics`.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

/// Whether the scraper takes a gzip body (`Accept-Encoding: gzip`, not refused with `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let refused = |p: &str| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            };
            parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip")) && !parts.any(refused)
        })
}

async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let openmetrics = wants_openmetrics(&headers);
    // Encoding a large organisation's body takes tens of milliseconds: off the async workers,
    // so the scrapes served from the cached body meanwhile are not held up behind it.
    let body = match metrics.ready_body(openmetrics) {
        Some(body) => Ok(body),
        None => tokio::task::spawn_blocking(move || metrics.body(openmetrics))
            .await
            .unwrap_or(Err(std::fmt::Error)),
    };
    let Ok(body) = body else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to encode metrics\n",
        )
            .into_response();
    };
    let content_type = HeaderValue::from_static(if openmetrics {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    });
    let vary = (
        header::VARY,
        HeaderValue::from_static("Accept, Accept-Encoding"),
    );
    if accepts_gzip(&headers) {
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                vary,
            ],
            body.gzip.clone(),
        )
            .into_response()
    } else {
        // Inflated from the gzip body as it is sent: the whole text is never held.
        let chunks = futures_util::stream::iter(body.plain_chunks().map(Ok::<_, Infallible>));
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CONTENT_LENGTH, HeaderValue::from(body.plain_len)),
                vary,
            ],
            axum::body::Body::from_stream(chunks),
        )
            .into_response()
    }
}

async fn landing() -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html><head><title>env0 exporter</title></head><body>\n\
         <h1>env0 exporter</h1>\n<p>Version {}</p>\n\
         <ul><li><a href=\"metrics\">Metrics</a></li>\
         <li><a href=\"-/healthy\">Health</a></li><li><a href=\"-/ready\">Readiness</a></li></ul>\n\
         <p>Data is polled from the env0 API on the exporter's own timer and cached between polls; \
         <code>env0_up</code> tells whether the last poll worked.</p>\n</body></html>\n",
        env!("CARGO_PKG_VERSION")
    ))
}

/// Middleware: lets a request through when the web configuration has no users or the request
/// carries one of them; else 401 with `WWW-Authenticate: Basic` (503 while too many
/// verifications wait).
async fn require(
    State(web): State<Arc<WebConfigWatcher>>,
    request: Request,
    next: Next,
) -> Response {
    let active = web.current();
    if active.users.is_empty() {
        return next.run(request).await;
    }
    match active
        .users
        .verify(request.headers().get(header::AUTHORIZATION))
        .await
    {
        AuthVerdict::Allowed => next.run(request).await,
        AuthVerdict::Denied => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic")],
            "Unauthorized\n",
        )
            .into_response(),
        AuthVerdict::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "Too many password checks waiting; try again\n",
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn gzip_is_taken_when_offered_and_not_refused() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            super::accepts_gzip(&h)
        };
        assert!(with("gzip"));
        assert!(with("identity, gzip;q=0.5"));
        assert!(with("GZIP"));
        assert!(!with("gzip;q=0"));
        assert!(!with("gzip; q=0.0"));
        assert!(!with("br, deflate"));
        assert!(!super::accepts_gzip(&HeaderMap::new()));
    }

    use super::*;
    use crate::metrics::MetricsConfig;
    use crate::state::SnapshotHandle;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn app() -> Router {
        let metrics = Metrics::new(
            &MetricsConfig::default(),
            SnapshotHandle::default(),
            Arc::new(crate::ratelimit::SlidingWindow::new(
                500,
                crate::client::RATE_WINDOW,
            )),
            Arc::new(crate::clock::SystemClock),
        );
        router(Arc::new(metrics))
    }

    async fn get(uri: &str, accept: Option<&str>) -> (StatusCode, String, String) {
        let mut req = Request::get(uri);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let resp = app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn metrics_default_to_prometheus_text() {
        let (status, ct, body) = get("/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
        assert!(body.contains("env0_up 0"));
        assert!(!body.contains("# EOF"));
    }

    #[tokio::test]
    async fn metrics_are_openmetrics_when_the_scraper_asks() {
        let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let (status, ct, body) = get("/metrics", Some(accept)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            ct,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        assert!(body.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn a_gzip_scrape_inflates_to_the_plain_body_and_a_change_shows_at_once() {
        use std::io::Read as _;
        let snapshot = SnapshotHandle::default();
        let metrics = Arc::new(Metrics::new(
            &MetricsConfig::default(),
            snapshot.clone(),
            Arc::new(crate::ratelimit::SlidingWindow::new(
                500,
                crate::client::RATE_WINDOW,
            )),
            Arc::new(crate::clock::SystemClock),
        ));
        let app = router(metrics.clone());
        let fetch = |gzip: bool| {
            let app = app.clone();
            async move {
                let mut req = Request::get("/metrics");
                if gzip {
                    req = req.header(header::ACCEPT_ENCODING, "gzip, deflate");
                }
                let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
                let encoding = resp.headers().get(header::CONTENT_ENCODING).cloned();
                let length = resp.headers().get(header::CONTENT_LENGTH).cloned();
                let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                // The uncompressed body is sent in chunks, with its length said up front.
                if !gzip {
                    assert_eq!(length, Some(HeaderValue::from(bytes.len())));
                }
                (encoding, bytes)
            }
        };
        let (encoding, zipped) = fetch(true).await;
        assert_eq!(
            encoding.as_ref().and_then(|v| v.to_str().ok()),
            Some("gzip")
        );
        let mut inflated = String::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_string(&mut inflated)
            .unwrap();
        let (encoding, plain) = fetch(false).await;
        assert!(encoding.is_none());
        assert_eq!(inflated.as_bytes(), &plain[..]);
        assert!(
            zipped.len() * 2 < plain.len(),
            "{} vs {}",
            zipped.len(),
            plain.len()
        );

        // A counter moves: the next scrape shows it, from the cache's next encoding.
        metrics.poll_error(crate::client::Reason::Timeout);
        let (_, after) = fetch(false).await;
        let text = String::from_utf8(after.to_vec()).unwrap();
        assert!(text.contains(r#"env0_exporter_poll_errors_total{reason="timeout"} 1"#));
        // A published snapshot does too.
        let mut snap = (*snapshot.load()).clone();
        snap.health.up = true;
        snapshot.publish(snap);
        let (_, after) = fetch(false).await;
        assert!(
            String::from_utf8(after.to_vec())
                .unwrap()
                .contains("env0_up 1")
        );
    }

    #[tokio::test]
    async fn a_request_body_is_refused_by_the_exporters_routes() {
        let req = Request::get("/metrics")
            .header(header::CONTENT_LENGTH, "5")
            .body(Body::from("hello"))
            .unwrap();
        let resp = app().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn health_ready_and_landing_answer() {
        assert_eq!(get("/-/healthy", None).await.0, StatusCode::OK);
        assert_eq!(get("/-/ready", None).await.0, StatusCode::OK);
        let (status, ct, body) = get("/", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.starts_with("text/html"));
        assert!(body.contains("href=\"metrics\""));
        assert_eq!(get("/nope", None).await.0, StatusCode::NOT_FOUND);
    }
}
