//! The webhook's words, bounded: how a valid signature covered the body, the family of an
//! event, what became of a delivery and of its forwarding. `crate::metrics` encodes them as
//! label values; this module says what they are.

/// What a valid webhook signature covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureForm {
    /// The raw body as received, and not its canonical form (the two differ).
    Raw,
    /// The canonical form of the body (`JSON.stringify(JSON.parse(body))`), and not the raw
    /// body: the sender re-serialised the body before signing, as env0's guide sample does.
    Canonical,
    /// Both: the body arrived in its canonical form, so either reading fits.
    Both,
}

impl SignatureForm {
    /// Every form, in the order they are documented.
    pub const ALL: [Self; 3] = [Self::Raw, Self::Canonical, Self::Both];

    /// The label value: `raw`, `canonical` or `both`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Canonical => "canonical",
            Self::Both => "both",
        }
    }
}

/// The family of a delivered event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventFamily {
    /// A deploy (apply) started, finished, failed, …
    Deploy,
    /// A destroy.
    Destroy,
    /// A drift detection (drift detected, not detected, failed).
    Drift,
    /// A run waiting for, or resuming after, an approval.
    Approval,
    /// A plan: PR plan, remote plan, dry run.
    Plan,
    /// Anything else: budget, test, task events and types not known yet.
    Other,
}

/// What became of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookOutcome {
    /// Verified and handed to the state (the deployment filters then apply as to polled runs).
    Accepted,
    /// Its signed body (event id, deployment log id and status) was seen within the last two
    /// hours: answered, not taken in again.
    Duplicate,
    /// It carries a deployment log and its `time` is more than half an hour from env0's time as
    /// the exporter knows it: refused (400), nothing changed; too old to be told from a replay
    /// once its id is forgotten. Polling repairs what it carried.
    Stale,
    /// Verified but not acted on: no deployment log (budget, test events), an environment
    /// that is not watched, or the hand-over queue full (polling catches up).
    Ignored,
    /// Verified, for an environment of another shard: passed on to that shard (with forwarding
    /// between shards on), which takes it in; what came of the forward is counted in
    /// `env0_exporter_webhook_forwards_total`.
    Forwarded,
    /// Forwarded here by another shard, for an environment that is not this shard's either (the
    /// shards disagree on their number): 421, dropped rather than forwarded again.
    Misrouted,
    /// Missing or wrong signature: 401, nothing changed.
    BadSignature,
    /// A body that is too large (413) or not an env0 event (400).
    BadRequest,
}

/// What came of forwarding a delivery to the shard of its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardOutcome {
    /// That shard answered 2xx (it took the delivery in, or found it a duplicate or ignored it).
    Ok,
    /// That shard answered, but not 2xx (a different webhook secret: 401; its own shard count
    /// disagrees: 421; a redirect, a proxy's error page, …).
    Refused,
    /// No answer: the URL could not be built, the name not resolved, the connection refused or
    /// broken.
    Error,
    /// No answer within the forward's timeout.
    Timeout,
}

impl ForwardOutcome {
    /// Every outcome, in the order they are documented.
    pub const ALL: [Self; 4] = [Self::Ok, Self::Refused, Self::Error, Self::Timeout];

    /// The label value: `ok`, `refused`, `error` or `timeout`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }
}
