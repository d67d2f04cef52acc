//! The single HTTP exchange: a request's URL, its slot of the budget, its attempts and the
//! retry policy between them, and the decoding of the answer.

use std::time::Instant;

use reqwest::header;
use serde::de::DeserializeOwned;
use url::Url;

use super::records::{self, MAX_BODY_BYTES, Page};
use super::retry::{self, Decision, Failure, Wait};
use super::{Client, Endpoint, Error, RequestOutcome, Result, error, model};
use crate::clock;
use jiff::Timestamp;

impl Client {
    /// The base URL with `segments` appended, each percent-encoded as one path segment.
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        // `new` rejected bases that cannot take path segments, so this always applies.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// GETs `url` with budget and retries, and decodes the JSON body. Whether a failed attempt is
    /// tried again, and after how long, is the [`RetryPolicy`]'s call.
    pub(super) async fn get<T: DeserializeOwned>(&self, endpoint: Endpoint, url: Url) -> Result<T> {
        self.get_with(endpoint, url, |body| serde_json::from_slice(body))
            .await
    }

    /// GETs a page and decodes it record by record; each skipped record is reported to the
    /// observer.
    ///
    /// The newest timestamp of the page, against our time after it arrived, bounds env0's
    /// clock from below (see [`clock_estimate`](Self::clock_estimate)).
    pub(super) async fn get_page<T: DeserializeOwned + model::Dated>(
        &self,
        endpoint: Endpoint,
        url: Url,
    ) -> Result<Page<T>> {
        let page: Page<T> = self
            .get_with(endpoint, url, records::decode_records)
            .await?;
        let newest = page.records.iter().filter_map(model::Dated::newest).max();
        self.record_newest(newest, self.inner.clock.now());
        for reason in &page.skipped {
            self.inner.observer.skipped(endpoint, *reason);
        }
        Ok(page)
    }

    /// Like [`get`](Self::get), with `decode` turning the body into the answer.
    pub(super) async fn get_with<T>(
        &self,
        endpoint: Endpoint,
        url: Url,
        decode: fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<T> {
        let path = url.path().to_owned();
        let policy = self.inner.retry;
        let mut retry = 0;
        loop {
            self.take_slot(&path).await?;
            let started = Instant::now();
            let (outcome, result) = self.attempt(&url, &path, decode).await;
            let took = started.elapsed();
            tracing::debug!(
                method = "GET",
                path,
                query = url.query().unwrap_or_default(),
                status = %outcome,
                ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                "env0 request"
            );
            // Pause the whole budget before reporting, so whoever watches the observer sees
            // the pause in place: every later request, not only this retry, honours it.
            if let Some(wait) = result.as_ref().err().and_then(Failure::retry_after) {
                self.inner
                    .limiter
                    .pause_until(clock::add(self.inner.clock.now(), wait));
            }
            self.inner.observer.observe(endpoint, outcome, took);
            if outcome == RequestOutcome::Status(429) {
                let retry_after = result.as_ref().err().and_then(Failure::retry_after);
                self.inner.observer.rate_limited(endpoint, retry_after);
            }
            let failure = match result {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            let now = self.inner.clock.now();
            let wait = match policy.decide(&failure, retry, now, self.deadline()) {
                Decision::Retry(wait) => wait,
                Decision::GiveUp => return Err(failure.into_error()),
            };
            retry += 1;
            match wait {
                Wait::RetryAfter(wait) => tracing::warn!(
                    path,
                    retry,
                    wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    error = %failure.error(),
                    "retrying after the server's retry-after"
                ),
                Wait::Backoff(wait) => {
                    tracing::warn!(
                        path,
                        retry,
                        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        error = %failure.error(),
                        "retrying after back-off"
                    );
                    self.inner.clock.sleep(wait).await;
                }
            }
        }
    }

    /// Takes one request from the budget, waiting on the clock unless that passes the deadline.
    async fn take_slot(&self, path: &str) -> Result<()> {
        let deadline = self.deadline().unwrap_or(Timestamp::MAX);
        if self
            .inner
            .limiter
            .acquire_before(&*self.inner.clock, deadline)
            .await
        {
            Ok(())
        } else {
            Err(Error::BudgetExhausted {
                path: path.to_owned(),
            })
        }
    }

    /// One HTTP exchange: the decoded body of a 2xx, or what went wrong.
    async fn attempt<T>(
        &self,
        url: &Url,
        path: &str,
        decode: fn(&[u8]) -> serde_json::Result<T>,
    ) -> (RequestOutcome, Result<T, Failure>) {
        let secret = self.inner.api_secret.current();
        let sent = self
            .inner
            .http
            .get(url.clone())
            .basic_auth(&self.inner.api_key, Some(secret.expose()))
            .send()
            .await;
        let failed = |e| {
            let (outcome, error) = error::from_transport(e, path);
            (outcome, Err(Failure::new(error, None)))
        };
        let response = match sent {
            Ok(response) => response,
            Err(e) => return failed(e),
        };
        let status = response.status();
        self.record_date(response.headers());
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::parse_retry_after(v, self.inner.clock.now()));
        let outcome = RequestOutcome::Status(status.as_u16());
        let body = match records::read_body(response).await {
            Ok(Some(body)) => body,
            Ok(None) => {
                let error = Error::Decode {
                    path: path.to_owned(),
                    message: format!("the answer is larger than {MAX_BODY_BYTES} bytes"),
                };
                return (outcome, Err(Failure::new(error, None)));
            }
            Err(e) => return failed(e),
        };
        if status.is_success() {
            let decoded = decode(&body).map_err(|e| {
                let error = Error::Decode {
                    path: path.to_owned(),
                    // serde quotes offending values, which may be long: keep the message short.
                    message: error::body_snippet(e.to_string().as_bytes()),
                };
                Failure::new(error, None)
            });
            return (outcome, decoded);
        }
        let error = error::from_status(status, path, &body);
        (outcome, Err(Failure::new(error, retry_after)))
    }
}
