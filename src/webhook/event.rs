//! The bounded label values of `env0_exporter_webhook_events_total`: which family of event a
//! delivery was, and what became of it.
//!
//! env0 publishes only some of its event type literals (`com.env0.deploy.succeeded`,
//! `com.env0.drift.detected`, `com.env0.destroy.resumed`, …), and the rest may be spelt
//! `com.env0.deploy.*`, `com.env0.deployment.*` or `com.env-zero.*`; what a deployment event is
//! about is therefore read from the deployment log it carries, and the type is only the
//! fallback:
//!
//! 1. `approval` when the deployment log's status is `WAITING_FOR_USER`;
//! 2. else by the deployment log's `type`: `deploy` → deploy, `destroy` → destroy,
//!    `driftDetection` → drift, `prPlan`/`remotePlan`/`dryRun` → plan, any other type
//!    (`task`, …) → other;
//! 3. else (no deployment log, or one without a type) by the event type: `approval` when any
//!    part after `com.env0.` / `com.env-zero.` mentions approval
//!    (`com.env0.deploy.waiting-for-approval`), else by its first part (case, `-` and `_`
//!    ignored): `deploy` → deploy, `destroy` → destroy, `drift`/`driftDetection` → drift,
//!    `plan`/`prPlan`/`remotePlan`/`dryRun` → plan;
//! 4. else `other` (budget and test events, `com.env0.deployment.*` without a log, and anything
//!    new).
pub use super::labels::{EventFamily, WebhookOutcome};

impl EventFamily {
    /// Every family, in the order they are documented.
    pub const ALL: [Self; 6] = [
        Self::Deploy,
        Self::Destroy,
        Self::Drift,
        Self::Approval,
        Self::Plan,
        Self::Other,
    ];

    /// The label value: `deploy`, `destroy`, `drift`, `approval`, `plan` or `other`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Destroy => "destroy",
            Self::Drift => "drift",
            Self::Approval => "approval",
            Self::Plan => "plan",
            Self::Other => "other",
        }
    }

    /// The family of an event of type `event_type` carrying a deployment log of this `type` and
    /// `status` (see the module documentation for the rules).
    #[must_use]
    pub fn of(
        event_type: Option<&str>,
        deployment_type: Option<&str>,
        status: Option<&str>,
    ) -> Self {
        if status == Some("WAITING_FOR_USER") {
            return Self::Approval;
        }
        let by_log = deployment_type.map(|t| match t {
            "deploy" => Self::Deploy,
            "destroy" => Self::Destroy,
            "driftDetection" => Self::Drift,
            "prPlan" | "remotePlan" | "dryRun" => Self::Plan,
            _ => Self::Other,
        });
        if let Some(family) = by_log {
            return family;
        }
        let parts = event_type.map(type_parts).unwrap_or_default();
        if parts.iter().any(|p| p.contains("approval")) {
            return Self::Approval;
        }
        parts
            .first()
            .and_then(|p| match p.as_str() {
                "deploy" => Some(Self::Deploy),
                "destroy" => Some(Self::Destroy),
                "drift" | "driftdetection" => Some(Self::Drift),
                "plan" | "prplan" | "remoteplan" | "dryrun" => Some(Self::Plan),
                _ => None,
            })
            .unwrap_or(Self::Other)
    }
}

/// The parts of an env0 event type after its prefix, lowercased without `-` and `_`; empty for
/// a type that is not env0's.
fn type_parts(event_type: &str) -> Vec<String> {
    let lower = event_type.trim().to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("com.env0.")
        .or_else(|| lower.strip_prefix("com.env-zero."))
    else {
        return Vec::new();
    };
    rest.split('.')
        .map(|p| p.chars().filter(|c| !matches!(c, '-' | '_')).collect())
        .collect()
}

impl WebhookOutcome {
    /// Every outcome, in the order they are documented.
    pub const ALL: [Self; 8] = [
        Self::Accepted,
        Self::Duplicate,
        Self::Stale,
        Self::Ignored,
        Self::Forwarded,
        Self::Misrouted,
        Self::BadSignature,
        Self::BadRequest,
    ];

    /// The label value: `accepted`, `duplicate`, `stale`, `ignored`, `forwarded`, `misrouted`,
    /// `bad_signature` or `bad_request`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Stale => "stale",
            Self::Ignored => "ignored",
            Self::Forwarded => "forwarded",
            Self::Misrouted => "misrouted",
            Self::BadSignature => "bad_signature",
            Self::BadRequest => "bad_request",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EventFamily as F;

    #[test]
    fn the_type_names_the_family() {
        for (t, want) in [
            ("com.env0.deploy.succeeded", F::Deploy),
            ("com.env0.deploy.started", F::Deploy),
            ("com.env0.destroy.resumed", F::Destroy),
            ("com.env0.drift.detected", F::Drift),
            ("com.env0.drift-detection.failed", F::Drift),
            ("com.env0.pr-plan.failed", F::Plan),
            ("com.env0.prPlan.failed", F::Plan),
            ("com.env0.remote_plan.succeeded", F::Plan),
            ("com.env-zero.deploy.failed", F::Deploy),
            ("COM.ENV0.DESTROY.SUCCEEDED", F::Destroy),
            ("com.env0.deploy.waiting-for-approval", F::Approval),
            ("com.env0.approval.required", F::Approval),
            ("com.env0.budget.exceeded", F::Other),
            ("com.env0.webhook.test", F::Other),
            ("com.env0.task.succeeded", F::Other),
            ("org.example.deploy.succeeded", F::Other),
            ("", F::Other),
        ] {
            assert_eq!(F::of(Some(t), None, None), want, "{t}");
        }
    }

    #[test]
    fn the_deployment_log_decides_whatever_the_type_says() {
        assert_eq!(F::of(None, Some("deploy"), Some("SUCCESS")), F::Deploy);
        assert_eq!(
            F::of(Some("com.env0.environment.changed"), Some("destroy"), None),
            F::Destroy
        );
        assert_eq!(F::of(None, Some("driftDetection"), None), F::Drift);
        assert_eq!(F::of(None, Some("dryRun"), None), F::Plan);
        assert_eq!(F::of(None, Some("task"), Some("FAILURE")), F::Other);
        assert_eq!(F::of(None, None, None), F::Other);
        // The log wins over a type that names another family, in every spelling.
        for t in [
            "com.env0.deploy.succeeded",
            "com.env0.deployment.succeeded",
            "com.env-zero.deploy.succeeded",
            "com.env-zero.deployment.finished",
        ] {
            assert_eq!(
                F::of(Some(t), Some("destroy"), Some("SUCCESS")),
                F::Destroy,
                "{t}"
            );
            assert_eq!(
                F::of(Some(t), Some("prPlan"), Some("FAILURE")),
                F::Plan,
                "{t}"
            );
            assert_eq!(
                F::of(Some(t), Some("task"), Some("SUCCESS")),
                F::Other,
                "{t}"
            );
        }
        // A deployment event without a log, or with a log without a type: the type decides.
        assert_eq!(
            F::of(Some("com.env0.deployment.succeeded"), None, None),
            F::Other
        );
        assert_eq!(
            F::of(Some("com.env0.destroy.succeeded"), None, Some("SUCCESS")),
            F::Destroy
        );
    }

    #[test]
    fn a_run_waiting_for_approval_is_an_approval_event_whatever_the_type_says() {
        for t in [
            "com.env0.deploy.started",
            "com.env0.deployment.waiting",
            "com.env-zero.destroy.started",
        ] {
            assert_eq!(
                F::of(Some(t), Some("deploy"), Some("WAITING_FOR_USER")),
                F::Approval,
                "{t}"
            );
        }
    }

    #[test]
    fn label_values_are_distinct_snake_case() {
        let mut values: Vec<&str> = F::ALL.iter().map(|f| f.as_str()).collect();
        values.extend(super::WebhookOutcome::ALL.iter().map(|o| o.as_str()));
        for v in &values {
            assert!(v.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{v}");
        }
        let mut unique = values.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), values.len());
    }
}
