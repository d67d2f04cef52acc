//! Error answers shared by the routes ([`api`](super::api)) and the injected faults
//! ([`faults`](super::faults)): [`ApiError`] with its JSON body, and the 429 of
//! [`too_many_requests`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer with a JSON body.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(super) status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "message": self.message,
            "statusCode": self.status.as_u16(),
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// A 429, with `Retry-After: <seconds>` when given.
pub(crate) fn too_many_requests(retry_after: Option<u64>) -> Response {
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
