//! The exporter's HTTP side: `/metrics`, `/-/healthy`, `/-/ready` and a landing page.
//!
//! Readiness is not tied to env0's health (that is `env0_up`): an exporter that cannot reach
//! env0 must still be scraped, so that the failure is visible.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{Metrics, OPENMETRICS_TEXT, PROMETHEUS_TEXT};

/// The routes, without a socket (tests call it with `oneshot`).
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(scrape))
        .route("/-/healthy", get(|| async { "OK\n" }))
        .route("/-/ready", get(|| async { "OK\n" }))
        .with_state(metrics)
}

/// Serves `router` on `listener` until `shutdown` completes, then stops taking connections.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Whether the scraper asked for `OpenMetrics`.
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
}

async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let openmetrics = wants_openmetrics(&headers);
    match metrics.encode(openmetrics) {
        Ok(body) => {
            let content_type = if openmetrics {
                OPENMETRICS_TEXT
            } else {
                PROMETHEUS_TEXT
            };
            (
                [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
                body,
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to encode metrics\n",
        )
            .into_response(),
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

#[cfg(test)]
mod tests {
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
