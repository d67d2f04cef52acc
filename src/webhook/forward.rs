//! Forwarding deliveries between shards (`--webhook-forward-url-template`).
//!
//! env0 posts every delivery to one URL; behind a Service it reaches one shard, which does not
//! watch the environments of the others. With forwarding on, a verified delivery for an
//! environment of another shard (by [`Shard::owner`], the split the poller reads by) is sent on
//! to that shard's URL, built from the template: the body byte for byte and the signature, event
//! and event id headers as received, so the target verifies and deduplicates it as if env0 had
//! sent it there. The target takes it in; the receiving shard only counts it as `forwarded`
//! (its own dedupe keeps a replay from being forwarded twice), so the run is counted once.
//!
//! The forward is bounded by a timeout ([`TIMEOUT`]): the receiving shard answers env0 at most
//! that long after verifying (env0 allows 10 s). Its result is counted in
//! `env0_exporter_webhook_forwards_total` and decides env0's answer: the target's own 2xx when
//! it answered one, else 502 (refused, failed) or 504 (timed out). env0 never retries; the next
//! poll of the owning shard repairs a lost forward.
//!
//! Loop guard: a forwarded delivery carries [`FORWARDED_FROM`] (the sender's `N/M`) and is never
//! forwarded again. A shard that receives one for an environment that is not its own either
//! (the shards disagree on M, e.g. halfway through a change of the shard count) answers 421 and
//! counts it as `misrouted`.

use std::str::FromStr;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use bytes::Bytes;
use tracing::{debug, info, warn};
use url::Url;

use super::labels::ForwardOutcome;
use super::{
    DeliveryVerdict, EVENT_HEADERS, EVENT_ID_HEADERS, EventFamily, SIGNATURE_HEADERS,
    WebhookOutcome, first,
};
use crate::shard::Shard;

/// How long one forward may take, from connecting to the target's answer. A few seconds: a
/// shard in the same cluster answers in milliseconds (it never waits on a poll), and env0 counts
/// a delivery failed without a 2xx within 10 s.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// The header that marks a forwarded delivery; its value is the forwarding shard, `N/M`.
pub const FORWARDED_FROM: &str = "x-env0-exporter-forwarded-from";

/// The placeholder replaced by the target shard's number N (from 1, as in `--shard N/M`).
const SHARD: &str = "{shard}";
/// The placeholder replaced by N − 1: the ordinal of a `StatefulSet` pod (from 0).
const ORDINAL: &str = "{ordinal}";

/// A URL with `{shard}` and/or `{ordinal}`: where the shard of each number receives deliveries
/// (`--webhook-forward-url-template`), e.g.
/// `http://env0-exporter-{ordinal}.env0-exporter-headless:19180/webhooks/env0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTemplate(String);

impl UrlTemplate {
    /// The URL of `shard`: `{shard}` replaced by its number N, `{ordinal}` by N − 1.
    ///
    /// # Errors
    /// When the number makes the URL invalid (a placeholder in the port, say).
    pub fn url(&self, shard: Shard) -> Result<Url, url::ParseError> {
        Url::parse(
            &self
                .0
                .replace(SHARD, &shard.index().to_string())
                .replace(ORDINAL, &(shard.index() - 1).to_string()),
        )
    }
}

impl std::fmt::Display for UrlTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for UrlTemplate {
    type Err = String;

    /// An `http://` or `https://` URL, without user or password, with `{shard}` or `{ordinal}`
    /// (or both) and no other `{…}`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if !s.contains(SHARD) && !s.contains(ORDINAL) {
            return Err(format!(
                "the URL must name the shard with {SHARD} (N of --shard N/M) or {ORDINAL} (N-1, a StatefulSet pod's ordinal), e.g. http://env0-exporter-{ORDINAL}.env0-exporter-headless:19180/webhooks/env0"
            ));
        }
        if s.replace(SHARD, "")
            .replace(ORDINAL, "")
            .contains(['{', '}'])
        {
            return Err(format!(
                "only {SHARD} and {ORDINAL} are replaced; a brace is left in {s}"
            ));
        }
        let template = Self(s.to_owned());
        let url = template
            .url(Shard::default())
            .map_err(|e| format!("not a URL once the shard is filled in: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(format!("an http:// or https:// URL with a host, not {s}"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("no user or password in the URL: the shards verify the forwarded delivery's signature".into());
        }
        Ok(template)
    }
}

/// Where a verified delivery for an environment this shard does not watch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// It is this shard's environment (or forwarding is off): answered as not watched.
    Here,
    /// To the shard that owns the environment.
    To(Shard),
    /// Forwarded here already, and not this shard's: dropped (the loop guard).
    Misrouted,
}

/// Forwarding from this shard to the others.
#[derive(Debug)]
pub struct Forwarding {
    own: Shard,
    template: UrlTemplate,
    http: reqwest::Client,
    /// The forwarded-from header's value: this shard's `N/M`.
    from: HeaderValue,
}

impl Forwarding {
    /// Forwarding from shard `own` to the shards at `template`'s URLs, each forward bounded by
    /// `timeout`. `Ok(None)` when the organisation is not split (`own` is 1/1): no environment
    /// belongs to another shard, so the template has no effect (and a warning says so).
    ///
    /// # Errors
    /// The HTTP client cannot be built (no TLS backend).
    pub fn new(
        own: Shard,
        template: UrlTemplate,
        timeout: Duration,
    ) -> Result<Option<Self>, reqwest::Error> {
        if own.is_whole() {
            warn!(
                "--webhook-forward-url-template has no effect without --shard: every environment is this exporter's"
            );
            return Ok(None);
        }
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("env0-exporter/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            // Shards talk to each other directly: not through the proxy env0 is reached by.
            .no_proxy()
            // A redirect is not followed: the target's own answer is what counts.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let from = HeaderValue::from_str(&own.to_string())
            .unwrap_or_else(|_| HeaderValue::from_static("?"));
        info!(%template, timeout = ?timeout, "webhooks: deliveries for other shards' environments are forwarded to their shard");
        Ok(Some(Self {
            own,
            template,
            http,
            from,
        }))
    }

    /// Where a delivery with `headers` for `environment_id`, which this shard does not watch,
    /// goes.
    pub(super) fn route(&self, headers: &HeaderMap, environment_id: &str) -> Route {
        let owner = self.own.owner(environment_id);
        if owner == self.own {
            return Route::Here;
        }
        match headers.get(FORWARDED_FROM) {
            None => Route::To(owner),
            Some(from) => {
                warn!(
                    environment = %environment_id,
                    forwarded_from = ?from,
                    this_shard = %self.own,
                    owner = %owner,
                    "webhook: a forwarded delivery for another shard's environment, dropped (do the shards agree on their number?)"
                );
                Route::Misrouted
            }
        }
    }

    /// How a delivery with `headers` for `environment_id`, which this shard does not watch, is
    /// answered: `None` when it is this shard's (ignored as not watched).
    pub(super) fn verdict(
        &self,
        headers: &HeaderMap,
        environment_id: &str,
        family: EventFamily,
    ) -> Option<DeliveryVerdict> {
        match self.route(headers, environment_id) {
            Route::Here => None,
            Route::To(shard) => Some(DeliveryVerdict {
                forward_to: Some(shard),
                ..DeliveryVerdict::new(family, WebhookOutcome::Forwarded)
            }),
            Route::Misrouted => Some(DeliveryVerdict::new(family, WebhookOutcome::Misrouted)),
        }
    }

    /// Sends the delivery (`body` and the headers the receiver reads, as received) to shard
    /// `to`, counts the outcome, and returns the status to answer env0 with.
    pub(super) async fn send(
        &self,
        to: Shard,
        headers: &HeaderMap,
        body: Bytes,
        metrics: &dyn super::DeliveryObserver,
    ) -> StatusCode {
        let (outcome, status) = self.try_send(to, headers, body).await;
        metrics.forwarded(outcome);
        status
    }

    async fn try_send(
        &self,
        to: Shard,
        headers: &HeaderMap,
        body: Bytes,
    ) -> (ForwardOutcome, StatusCode) {
        let url = match self.template.url(to) {
            Ok(url) => url,
            Err(e) => {
                warn!(error = %e, template = %self.template, shard = %to, "webhook: no URL for the shard, not forwarded");
                return (ForwardOutcome::Error, StatusCode::BAD_GATEWAY);
            }
        };
        let mut passed_on = HeaderMap::new();
        let names = SIGNATURE_HEADERS
            .iter()
            .chain(&EVENT_HEADERS)
            .chain(&EVENT_ID_HEADERS)
            .chain(&["content-type"]);
        for name in names {
            for value in headers.get_all(*name) {
                passed_on.append(*name, value.clone());
            }
        }
        passed_on.insert(FORWARDED_FROM, self.from.clone());
        let event_id = first(headers, &EVENT_ID_HEADERS).unwrap_or("");
        let sent = self
            .http
            .post(url.clone())
            .headers(passed_on)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => {
                debug!(shard = %to, %url, status = %answer.status(), header_event_id = event_id, "webhook: forwarded");
                (ForwardOutcome::Ok, answer.status())
            }
            Ok(answer) => {
                warn!(shard = %to, %url, status = %answer.status(), "webhook: the shard refused the forwarded delivery (the same --webhook-secret and --shard M on every shard?)");
                (ForwardOutcome::Refused, StatusCode::BAD_GATEWAY)
            }
            Err(e) if e.is_timeout() => {
                warn!(shard = %to, %url, "webhook: forwarding timed out");
                (ForwardOutcome::Timeout, StatusCode::GATEWAY_TIMEOUT)
            }
            Err(e) => {
                warn!(shard = %to, %url, error = %e, "webhook: forwarding failed");
                (ForwardOutcome::Error, StatusCode::BAD_GATEWAY)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn shard(n: u32, m: u32) -> Shard {
        Shard::new(n, m).unwrap()
    }

    #[test]
    fn the_template_names_each_shard_by_its_number_or_its_pod_ordinal() {
        let t: UrlTemplate =
            "http://env0-exporter-{ordinal}.env0-exporter-headless:19180/webhooks/env0"
                .parse()
                .unwrap();
        assert_eq!(
            t.url(shard(1, 3)).unwrap().as_str(),
            "http://env0-exporter-0.env0-exporter-headless:19180/webhooks/env0"
        );
        assert_eq!(
            t.url(shard(3, 3)).unwrap().as_str(),
            "http://env0-exporter-2.env0-exporter-headless:19180/webhooks/env0"
        );
        let t: UrlTemplate = " https://hooks.example.com/shard/{shard}/of-3?pod={ordinal} "
            .parse()
            .unwrap();
        assert_eq!(
            t.url(shard(2, 3)).unwrap().as_str(),
            "https://hooks.example.com/shard/2/of-3?pod=1"
        );
        // A placeholder in the port gives a URL for some numbers only: that shard's forward
        // fails (counted as an error) rather than going anywhere else.
        let t: UrlTemplate = "http://127.0.0.1:6553{shard}/".parse().unwrap();
        assert!(t.url(shard(5, 7)).is_ok());
        assert!(t.url(shard(6, 7)).is_err());
    }

    #[test]
    fn a_template_without_a_placeholder_with_another_or_not_an_http_url_is_refused() {
        for (bad, says) in [
            ("", "{shard}"),
            ("http://env0-exporter-0:19180/webhooks/env0", "{ordinal}"),
            ("http://env0-exporter-{index}:19180/{shard}", "brace"),
            ("http://env0-exporter-{SHARD}:19180/", "{shard}"),
            ("http://env0-exporter-{ordinal}}:19180/", "brace"),
            ("env0-exporter-{ordinal}:19180/webhooks/env0", "http"),
            ("ftp://env0-exporter-{ordinal}/", "http"),
            ("http://exporter-{shard}:99999/", "not a URL"),
            ("http://user:pw@exporter-{shard}/", "no user or password"),
        ] {
            let e = bad.parse::<UrlTemplate>().unwrap_err();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
    }

    #[tokio::test]
    async fn nothing_is_forwarded_by_an_exporter_that_is_not_sharded() {
        let t: UrlTemplate = "http://x-{shard}/".parse().unwrap();
        assert!(
            Forwarding::new(Shard::default(), t, TIMEOUT)
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn another_shards_environment_goes_to_its_owner_unless_it_was_forwarded_already() {
        let t: UrlTemplate = "http://x-{shard}/".parse().unwrap();
        let f = Forwarding::new(shard(2, 2), t, TIMEOUT).unwrap().unwrap();
        // By hand: fnv1a("env-1") = 0xad25_ffbf_427f_8b5e (even: shard 1 of 2), fnv1a("env-2") =
        // 0xad25_febf_427f_89ab (odd: shard 2 of 2).
        let none = HeaderMap::new();
        assert_eq!(f.route(&none, "env-1"), Route::To(shard(1, 2)));
        assert_eq!(f.route(&none, "env-2"), Route::Here);
        let mut forwarded = HeaderMap::new();
        forwarded.insert(FORWARDED_FROM, HeaderValue::from_static("1/2"));
        assert_eq!(f.route(&forwarded, "env-1"), Route::Misrouted);
        assert_eq!(f.route(&forwarded, "env-2"), Route::Here);
    }
}
