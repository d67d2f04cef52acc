//! What `doctor` found: one JSON object (`--output json`) or a short aligned text for a person,
//! with what to do about each problem.

use std::fmt::Write as _;

use serde::Serialize;

use crate::client::Error;
use crate::secret::Secret;

/// How env0 answered a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CheckVerdict {
    /// Not asked (an earlier answer made it impossible, or the budget ran out).
    NotChecked,
    /// Answered 2xx.
    Accepted,
    /// Refused: 401 for the key, 400 for a parameter.
    Refused,
    /// 403 or 402.
    Forbidden,
}

impl CheckVerdict {
    /// What an error says about a parameter: 400 is a refusal, 403/402 forbidden; anything else
    /// (5xx, timeouts, the budget) says nothing.
    #[must_use]
    pub(crate) fn of_error(e: &Error) -> Option<Self> {
        match e {
            Error::BadRequest { status: 400, .. } => Some(Self::Refused),
            Error::Forbidden { .. } | Error::BadRequest { status: 402, .. } => {
                Some(Self::Forbidden)
            }
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::NotChecked => "not checked",
            Self::Accepted => "accepted",
            Self::Refused => "refused",
            Self::Forbidden => "forbidden",
        }
    }
}

/// One query parameter the exporter sends, and how env0 took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Parameter {
    /// The listing it is sent to.
    pub path: String,
    /// Its name.
    pub name: String,
    /// env0's answer.
    pub verdict: CheckVerdict,
    /// env0's message when not accepted.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Sent only by a once-per-process probe and dropped on a 400: a refusal stops nothing.
    pub probed: bool,
}

/// What to enter in env0's webhook settings (a notification target of type Webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct WebhookAdvice {
    /// The URL path the exporter serves deliveries on.
    pub path: &'static str,
    /// The port it listens on for them.
    pub port: u16,
    /// Whether deliveries have a listener of their own (`--webhook-listen-address`).
    pub own_listener: bool,
    /// The secret's length in characters (never the secret).
    pub secret_length: usize,
    /// The headers the exporter reads.
    pub headers: Vec<&'static str>,
}

/// Below this, a webhook secret is easy to guess.
const SHORT_SECRET: usize = 16;

impl WebhookAdvice {
    /// The advice for deliveries on `port`, signed with `secret`.
    #[must_use]
    pub(crate) fn new(port: u16, own_listener: bool, secret: &Secret) -> Self {
        Self {
            path: crate::webhook::PATH,
            port,
            own_listener,
            secret_length: secret.expose().chars().count(),
            headers: vec![
                "x-env-zero-signature (or x-env0-signature): HMAC-SHA256 of the body, hex",
                "x-env-zero-event (or x-env0-event)",
                "x-env-zero-event-id (or x-env0-event-id)",
            ],
        }
    }
}

/// Everything `doctor` found; `--output json` prints it as one object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// The env0 API asked.
    pub api_endpoint: String,
    /// Whether env0 took the key.
    pub credentials: CheckVerdict,
    /// The organisation the exporter would watch (`null` when none could be chosen).
    pub organization_id: Option<String>,
    /// Its name.
    pub organization_name: Option<String>,
    /// Projects the key sees (`null` when the listing failed).
    pub projects: Option<usize>,
    /// Of them, the ones `--projects`/`--exclude-projects` watch (`null` without a filter).
    pub watched_projects: Option<usize>,
    /// Environments the key sees, at most [`ENVIRONMENT_PAGES`](super::ENVIRONMENT_PAGES)
    /// pages of them (`null` when the listing failed).
    pub environments: Option<usize>,
    /// Whether `environments` is the whole count (false: a lower bound).
    pub environments_complete: bool,
    /// Of them, the ones in watched projects (`null` without a filter).
    pub watched_environments: Option<usize>,
    /// Projects whose environments' deployments answer 403.
    pub forbidden_projects: Vec<String>,
    /// Projects checked for access (one environment's deployments each).
    pub projects_checked: usize,
    /// Projects with environments not checked (past the sample).
    pub projects_not_checked: usize,
    /// Every query parameter the exporter sends, and env0's answer.
    pub parameters: Vec<Parameter>,
    /// The names of the refused ones, but for probed ones (which the exporter drops).
    pub refused_parameters: Vec<String>,
    /// Workflow sub-environments: `listed_without_parameter`, `listed_only_with_parameter`,
    /// `parameter_refused` (of `includeSubEnvironments`), or `null` when not known.
    pub sub_environments: Option<&'static str>,
    /// The timestamp env0's `fromDate`/`toDate` filter on: `createdAt`, `queuedAt`,
    /// `startedAt` or `unknown`.
    pub date_filter_field: String,
    /// The order of deployment listings: `newest`, `oldest` or `unknown`.
    pub page_order: String,
    /// Whether env0's answers carried a `Date` header.
    pub date_header: bool,
    /// env0's clock minus this machine's, in seconds (`null` when unknown); from the records,
    /// a lower bound of how far ahead env0 is.
    pub clock_offset_seconds: Option<i64>,
    /// `date_header`, `records` or `null`.
    pub clock_offset_source: Option<&'static str>,
    /// The deployment types seen in environments' `latestDeploymentLog`, or `"unknown"`.
    #[serde(serialize_with = "types_or_unknown")]
    pub latest_moves_for: Option<Vec<String>>,
    /// 429 answers received.
    pub rate_limited: u32,
    /// The `Retry-After` of the last 429 that carried one, in seconds.
    pub retry_after_seconds: Option<f64>,
    /// What to enter in env0's webhook settings (with a webhook secret).
    pub webhook: Option<WebhookAdvice>,
    /// Optional calls that failed: the core counts carry on without them.
    pub optional_failures: Vec<String>,
    /// What is worth knowing but stops nothing.
    pub notes: Vec<String>,
    /// HTTP requests sent, retries included.
    pub requests: u32,
    /// The most `doctor` sends.
    pub max_requests: u32,
    /// What would stop the exporter; `doctor` exits 1 when there is any.
    pub problems: Vec<String>,
}

#[allow(clippy::ref_option)] // serde's `serialize_with` takes a reference to the field
fn types_or_unknown<S: serde::Serializer>(
    types: &Option<Vec<String>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match types {
        Some(types) => types.serialize(s),
        None => s.serialize_str("unknown"),
    }
}

impl Report {
    /// An empty report about `api_endpoint`.
    #[must_use]
    pub(crate) fn new(api_endpoint: &str) -> Self {
        Self {
            api_endpoint: api_endpoint.to_owned(),
            credentials: CheckVerdict::NotChecked,
            organization_id: None,
            organization_name: None,
            projects: None,
            watched_projects: None,
            environments: None,
            environments_complete: false,
            watched_environments: None,
            forbidden_projects: Vec::new(),
            projects_checked: 0,
            projects_not_checked: 0,
            parameters: Vec::new(),
            refused_parameters: Vec::new(),
            sub_environments: None,
            date_filter_field: "unknown".to_owned(),
            page_order: "unknown".to_owned(),
            date_header: false,
            clock_offset_seconds: None,
            clock_offset_source: None,
            latest_moves_for: None,
            rate_limited: 0,
            retry_after_seconds: None,
            webhook: None,
            optional_failures: Vec::new(),
            notes: Vec::new(),
            requests: 0,
            max_requests: super::MAX_REQUESTS,
            problems: Vec::new(),
        }
    }

    /// Records env0's answer to `name` on `path`; a later answer replaces a `not_checked` or
    /// `accepted` one, never a refusal.
    pub(crate) fn parameter(
        &mut self,
        path: &str,
        name: &str,
        verdict: CheckVerdict,
        detail: String,
    ) {
        match self
            .parameters
            .iter_mut()
            .find(|p| p.path == path && p.name == name)
        {
            Some(p)
                if p.verdict == CheckVerdict::Refused || verdict == CheckVerdict::NotChecked => {}
            Some(p) => {
                p.verdict = verdict;
                p.detail = detail;
            }
            None => self.parameters.push(Parameter {
                path: path.to_owned(),
                name: name.to_owned(),
                verdict,
                detail,
                probed: crate::client::query::PARAMETERS
                    .iter()
                    .any(|p| p.name == name && p.probed && super::route_path(p.route) == path),
            }),
        }
    }

    /// Whether env0 answered anything with a 2xx.
    #[must_use]
    pub(crate) fn requests_answered(&self) -> bool {
        self.credentials == CheckVerdict::Accepted
    }

    /// Whether the exporter can run as configured.
    #[must_use]
    pub(crate) fn healthy(&self) -> bool {
        self.problems.is_empty()
    }

    /// The report as one line of JSON.
    ///
    /// # Errors
    /// Never in practice (every field serialises).
    pub(crate) fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }

    /// The report for a person: one aligned line per check, the webhook settings, then
    /// problems with what to do.
    #[must_use]
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "env0-exporter doctor: {} ({} requests, at most {})",
            self.api_endpoint, self.requests, self.max_requests
        );
        self.access_lines(&mut out);
        self.behaviour_lines(&mut out);
        self.webhook_lines(&mut out);
        self.closing_lines(&mut out);
        out
    }

    /// `  ok  what   text`: `ok`, `NO` or `?` for not known.
    fn line(out: &mut String, ok: Option<bool>, what: &str, text: &str) {
        let mark = match ok {
            Some(true) => "ok ",
            Some(false) => "NO ",
            None => " ? ",
        };
        let _ = writeln!(out, "  {mark} {what:<22} {text}");
    }

    /// The key, the organisation, what it sees and may read, and the parameters.
    fn access_lines(&self, out: &mut String) {
        let mut line = |ok: Option<bool>, what: &str, text: &str| Self::line(out, ok, what, text);
        line(
            Some(self.credentials == CheckVerdict::Accepted),
            "credentials",
            self.credentials.as_str(),
        );
        line(
            Some(self.organization_id.is_some()),
            "organisation",
            &self.organization_id.as_ref().map_or_else(
                || "none chosen".to_owned(),
                |id| {
                    format!(
                        "{id} ({})",
                        self.organization_name.as_deref().unwrap_or("unnamed")
                    )
                },
            ),
        );
        line(
            self.projects.map(|_| true),
            "projects",
            &self.projects.map_or_else(
                || "not listed".to_owned(),
                |n| match self.watched_projects {
                    Some(w) => format!("{n} ({w} watched)"),
                    None => n.to_string(),
                },
            ),
        );
        line(
            Some(self.environments.is_some()),
            "environments",
            &self.environments.map_or_else(
                || "not listed".to_owned(),
                |n| {
                    let n = if self.environments_complete {
                        n.to_string()
                    } else {
                        format!("at least {n}")
                    };
                    match self.watched_environments {
                        Some(w) => format!("{n} ({w} in watched projects)"),
                        None => n,
                    }
                },
            ),
        );
        let mut access = if self.forbidden_projects.is_empty() {
            format!("{} projects checked, none forbidden", self.projects_checked)
        } else {
            format!(
                "{} of {} projects checked answer 403: {}",
                self.forbidden_projects.len(),
                self.projects_checked,
                self.forbidden_projects.join(", ")
            )
        };
        if self.projects_not_checked > 0 {
            let _ = write!(access, " ({} not checked)", self.projects_not_checked);
        }
        line(
            (self.projects_checked > 0).then_some(self.forbidden_projects.is_empty()),
            "project access",
            &access,
        );
        let checked = self
            .parameters
            .iter()
            .filter(|p| p.verdict != CheckVerdict::NotChecked)
            .count();
        let accepted = self
            .parameters
            .iter()
            .filter(|p| p.verdict == CheckVerdict::Accepted)
            .count();
        line(
            (checked > 0).then_some(self.refused_parameters.is_empty()),
            "query parameters",
            &if self.refused_parameters.is_empty() {
                format!("{accepted} of {} accepted", self.parameters.len())
            } else {
                format!("refused: {}", self.refused_parameters.join(", "))
            },
        );
    }

    /// Which way this env0 goes where its docs are silent.
    fn behaviour_lines(&self, out: &mut String) {
        let mut line = |ok: Option<bool>, what: &str, text: &str| Self::line(out, ok, what, text);
        line(
            self.sub_environments
                .map(|s| s != "listed_only_with_parameter"),
            "sub-environments",
            match self.sub_environments {
                Some("listed_without_parameter") => "listed without includeSubEnvironments",
                Some("listed_only_with_parameter") => {
                    "listed only with includeSubEnvironments (the exporter sends it)"
                }
                Some(_) => "includeSubEnvironments refused (the exporter drops it)",
                None => "not checked",
            },
        );
        line(
            (self.date_filter_field != "unknown").then_some(true),
            "date filter on",
            &self.date_filter_field,
        );
        line(
            (self.page_order != "unknown").then_some(true),
            "page order",
            &match self.page_order.as_str() {
                "newest" => "newest first".to_owned(),
                "oldest" => "oldest first".to_owned(),
                other => other.to_owned(),
            },
        );
        line(
            self.date_header.then_some(true),
            "Date header",
            if self.date_header {
                "present"
            } else {
                "absent: env0's clock is estimated from the records"
            },
        );
        line(
            self.clock_offset_seconds.map(|_| true),
            "env0's clock",
            &match (self.clock_offset_seconds, self.clock_offset_source) {
                (Some(s), Some("records")) => {
                    format!("at least {s} s ahead of this machine's (from the records)")
                }
                (Some(s), _) => format!("{s:+} s from this machine's (from the Date header)"),
                (None, _) if self.requests_answered() && !self.date_header => {
                    "not seen ahead of this machine's (the records tell no more)".to_owned()
                }
                (None, _) => "offset unknown".to_owned(),
            },
        );
        line(
            self.latest_moves_for.as_ref().map(|_| true),
            "latest run moved by",
            &self
                .latest_moves_for
                .as_ref()
                .map_or_else(|| "unknown".to_owned(), |t| t.join(", ")),
        );
        line(
            Some(self.rate_limited == 0),
            "rate limit",
            &match (self.rate_limited, self.retry_after_seconds) {
                (0, _) => "no 429".to_owned(),
                (n, Some(s)) => format!("{n} × 429, Retry-After {s} s"),
                (n, None) => format!("{n} × 429, without Retry-After"),
            },
        );
    }

    /// What to enter in env0's webhook settings, with a webhook secret.
    fn webhook_lines(&self, out: &mut String) {
        if let Some(w) = &self.webhook {
            let _ = writeln!(
                out,
                "\nWebhooks: in env0, add a notification target of type Webhook, then choose the deployment events it gets:"
            );
            let _ = writeln!(
                out,
                "  URL      https://<a host that reaches this exporter's port {}>{}{}",
                w.port,
                w.path,
                if w.own_listener {
                    " (--webhook-listen-address)"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                out,
                "           env0 posts only over HTTPS: a TLS ingress or proxy in front, or --web-config-file with TLS"
            );
            let _ = writeln!(
                out,
                "  Secret   the same value as --webhook-secret ({} characters){}",
                w.secret_length,
                if w.secret_length < SHORT_SECRET {
                    ": short, use 32 random characters or more"
                } else {
                    ""
                }
            );
            let _ = writeln!(out, "  Headers  sent by env0, read by the exporter:");
            for h in &w.headers {
                let _ = writeln!(out, "           {h}");
            }
        }
    }

    /// Optional failures, notes, and the problems or the word that there is none.
    fn closing_lines(&self, out: &mut String) {
        for (title, items) in [
            (
                "Optional calls that failed (the counts carry on)",
                &self.optional_failures,
            ),
            ("Notes", &self.notes),
        ] {
            if !items.is_empty() {
                let _ = writeln!(out, "\n{title}:");
                for item in items {
                    let _ = writeln!(out, "  - {item}");
                }
            }
        }
        if self.problems.is_empty() {
            let _ = writeln!(
                out,
                "\nNo problem found: the exporter can run with these settings."
            );
        } else {
            let _ = writeln!(
                out,
                "\nProblems (the exporter cannot work until they are fixed):"
            );
            for p in &self.problems {
                let _ = writeln!(out, "  - {p}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_refusal_is_never_overwritten_and_not_checked_overwrites_nothing() {
        let mut r = Report::new("http://env0/");
        r.parameter("/p", "limit", CheckVerdict::Accepted, String::new());
        r.parameter("/p", "limit", CheckVerdict::NotChecked, "later".into());
        assert_eq!(r.parameters[0].verdict, CheckVerdict::Accepted);
        r.parameter("/p", "limit", CheckVerdict::Refused, "400".into());
        r.parameter("/p", "limit", CheckVerdict::Accepted, String::new());
        assert_eq!(r.parameters[0].verdict, CheckVerdict::Refused);
        assert_eq!(r.parameters[0].detail, "400");
        // Same name on another path is another parameter.
        r.parameter("/q", "limit", CheckVerdict::Accepted, String::new());
        assert_eq!(r.parameters.len(), 2);
    }

    #[test]
    fn latest_moves_for_is_a_list_or_the_word_unknown() {
        let mut r = Report::new("http://env0/");
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(json["latest_moves_for"], "unknown");
        assert_eq!(json["clock_offset_seconds"], serde_json::Value::Null);
        r.latest_moves_for = Some(vec!["deploy".into(), "prPlan".into()]);
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        assert_eq!(
            json["latest_moves_for"],
            serde_json::json!(["deploy", "prPlan"])
        );
    }

    #[test]
    fn the_text_lists_problems_or_says_there_is_none() {
        let mut r = Report::new("http://env0/");
        assert!(r.to_text().contains("No problem found"));
        assert!(r.healthy());
        r.problems.push("the key is revoked: make a new one".into());
        let text = r.to_text();
        assert!(!r.healthy());
        assert!(text.contains("Problems"), "{text}");
        assert!(
            text.contains("  - the key is revoked: make a new one"),
            "{text}"
        );
        assert!(!text.contains("No problem found"), "{text}");
    }

    #[test]
    fn the_webhook_advice_never_holds_the_secret() {
        let secret = Secret::new("s3cret-value-for-the-test");
        let advice = WebhookAdvice::new(9000, true, &secret);
        let mut r = Report::new("http://env0/");
        r.webhook = Some(advice);
        assert!(!r.to_text().contains("s3cret-value-for-the-test"));
        assert!(!r.to_json().unwrap().contains("s3cret-value-for-the-test"));
        assert!(
            r.to_text()
                .contains("port 9000>/webhooks/env0 (--webhook-listen-address)")
        );
    }
}
