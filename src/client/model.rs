//! Serde types for the parts of env0's JSON the exporter reads.
//!
//! env0 adds and drops fields without notice and real payloads differ from the docs (cost amounts
//! are strings, most fields may be null), so these types are lenient: unknown fields are ignored,
//! every field but `id` is optional, and a value of the wrong shape in a field the exporter can
//! live without becomes `None` (logged at debug) instead of failing the whole page.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An env0 organization (`GET /organizations`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// The organization id.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
}

/// An env0 project (`GET /projects?organizationId=`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// The project id.
    pub id: String,
    /// Display name (the `project` label of per-project views joins through it).
    pub name: Option<String>,
}

/// An env0 environment (`GET /environments?organizationId=`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// The environment id.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// The project the environment belongs to (deployment logs only name the environment).
    pub project_id: Option<String>,
    /// Environment status, e.g. `ACTIVE`, `FAILED`, `DEPLOY_IN_PROGRESS`.
    pub status: Option<String>,
    /// Drift status: `OK`, `DRIFTED`, `ERROR`, `NEVER_RUN`, `DISABLED`.
    pub drift_status: Option<String>,
    /// The id of the environment's latest deployment log.
    pub latest_deployment_log_id: Option<String>,
    /// The latest deployment log, embedded; `None` when absent, null or unreadable.
    #[serde(default, deserialize_with = "lenient::deployment_log")]
    pub latest_deployment_log: Option<DeploymentLog>,
    /// Last change of the environment.
    #[serde(default, deserialize_with = "lenient::timestamp")]
    pub updated_at: Option<Timestamp>,
    /// Archived environments are skipped; missing or null means not archived.
    #[serde(default, deserialize_with = "lenient::flag")]
    pub is_archived: bool,
}

/// One deployment of an environment (`GET /environments/{id}/deployments` and
/// `GET /environments/deployments/{id}`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentLog {
    /// The deployment log id.
    pub id: String,
    /// The environment deployed.
    pub environment_id: Option<String>,
    /// Deployment type: `deploy`, `destroy`, `prPlan`, `driftDetection`, `task`, …
    #[serde(rename = "type")]
    pub deployment_type: Option<String>,
    /// Status: `QUEUED`, `IN_PROGRESS`, … (not finished) or `SUCCESS`, `FAILURE`, … (finished).
    pub status: Option<String>,
    /// The `IaC` tool: `terraform`, `opentofu`, `pulumi`, …
    pub blueprint_type: Option<String>,
    /// What started it: `user`, `terraform-cli`, `workflow`, …
    pub trigger_name: Option<String>,
    /// When the deployment was created.
    #[serde(default, deserialize_with = "lenient::timestamp")]
    pub created_at: Option<Timestamp>,
    /// Last change of the deployment log.
    #[serde(default, deserialize_with = "lenient::timestamp")]
    pub updated_at: Option<Timestamp>,
    /// When it was queued.
    #[serde(default, deserialize_with = "lenient::timestamp")]
    pub queued_at: Option<Timestamp>,
    /// When it started running; null until then.
    #[serde(default, deserialize_with = "lenient::timestamp")]
    pub started_at: Option<Timestamp>,
    /// When it finished; null until then.
    #[serde(default, deserialize_with = "lenient::timestamp")]
    pub finished_at: Option<Timestamp>,
    /// The id of the user who started it.
    #[serde(default, deserialize_with = "lenient::text")]
    pub started_by: Option<String>,
    /// Resources the plan adds, changes, destroys and imports (for the resource-change
    /// signals of the real-time issue).
    #[serde(default, deserialize_with = "lenient::plan_summary")]
    pub plan_summary: Option<PlanSummary>,
    /// A drift detection run found drift (for the drift-detection signals).
    #[serde(default, deserialize_with = "lenient::opt_flag")]
    pub drift_detected: Option<bool>,
}

/// What a plan would do; `imported` is newer than the rest.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanSummary {
    /// Resources to add.
    #[serde(default, deserialize_with = "lenient::count")]
    pub added: Option<u64>,
    /// Resources to change.
    #[serde(default, deserialize_with = "lenient::count")]
    pub changed: Option<u64>,
    /// Resources to destroy.
    #[serde(default, deserialize_with = "lenient::count")]
    pub destroyed: Option<u64>,
    /// Resources to import.
    #[serde(default, deserialize_with = "lenient::count")]
    pub imported: Option<u64>,
}

/// Things that have an env0 id, for deduplicating pages.
pub(crate) trait Identified {
    /// The env0 id.
    fn id(&self) -> &str;
}

/// A record that carries env0 timestamps: the newest of them is a time env0's clock has
/// already reached, which bounds env0's clock from below when no `Date` header tells it.
pub(crate) trait Dated {
    /// The newest env0 timestamp the record carries.
    fn newest(&self) -> Option<Timestamp> {
        None
    }
}

impl Dated for Organization {}

impl Dated for Project {}

impl Dated for Environment {
    fn newest(&self) -> Option<Timestamp> {
        let latest = self.latest_deployment_log.as_ref().and_then(Dated::newest);
        self.updated_at.max(latest)
    }
}

impl Dated for DeploymentLog {
    fn newest(&self) -> Option<Timestamp> {
        [
            self.created_at,
            self.updated_at,
            self.queued_at,
            self.started_at,
            self.finished_at,
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

impl Identified for Environment {
    fn id(&self) -> &str {
        &self.id
    }
}

impl Identified for DeploymentLog {
    fn id(&self) -> &str {
        &self.id
    }
}

/// Parses an env0 timestamp: RFC 3339 with or without fractional seconds; a date-time without an
/// offset is read as UTC. Anything else is `None`.
#[must_use]
pub(crate) fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts);
    }
    text.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| jiff::tz::Offset::UTC.to_timestamp(dt).ok())
}

/// Field deserializers that turn odd values into `None` instead of an error.
mod lenient {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

    use super::{
        DeploymentLog, Deserialize, Deserializer, PlanSummary, Timestamp, Value, parse_timestamp,
    };

    fn value<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Ok(Option::<Value>::deserialize(d)?.unwrap_or(Value::Null))
    }

    /// An object field read with its own derive, `None` when it does not fit.
    fn object<'de, D, T>(d: D, what: &str) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: serde::de::DeserializeOwned,
    {
        match value(d)? {
            Value::Null => Ok(None),
            other => match serde_json::from_value(other) {
                Ok(parsed) => Ok(Some(parsed)),
                Err(e) => {
                    tracing::debug!(error = %e, "ignoring an unreadable {what}");
                    Ok(None)
                }
            },
        }
    }

    /// A field's JSON value as the lenient fields read it: scalars as they are, text borrowed
    /// from the input where it can be, objects and arrays skipped without building a tree.
    enum Scalar<'a> {
        Null,
        Bool(bool),
        U64(u64),
        I64(i64),
        F64(f64),
        Str(Cow<'a, str>),
        Compound,
    }

    impl fmt::Display for Scalar<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::Null => f.write_str("null"),
                Self::Bool(b) => write!(f, "{b}"),
                Self::U64(n) => write!(f, "{n}"),
                Self::I64(n) => write!(f, "{n}"),
                Self::F64(n) => write!(f, "{n}"),
                Self::Str(s) => write!(f, "{s:?}"),
                Self::Compound => f.write_str("an object or array"),
            }
        }
    }

    struct ScalarVisitor;

    impl<'de> Visitor<'de> for ScalarVisitor {
        type Value = Scalar<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Scalar::Null)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(Scalar::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
            Ok(Scalar::Bool(b))
        }
        fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Scalar::U64(n))
        }
        fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
            Ok(Scalar::I64(n))
        }
        fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
            Ok(Scalar::F64(n))
        }
        fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Borrowed(s)))
        }
        fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(s.to_owned())))
        }
        fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
            Ok(Scalar::Str(Cow::Owned(s)))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Scalar::Compound)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Scalar::Compound)
        }
    }

    impl<'de> Deserialize<'de> for Scalar<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ScalarVisitor)
        }
    }

    fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Scalar<'de>, D::Error> {
        Scalar::deserialize(d)
    }

    pub(super) fn timestamp<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Timestamp>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Null => None,
            Scalar::Str(text) => {
                let parsed = parse_timestamp(&text);
                if parsed.is_none() {
                    tracing::debug!(value = %text, "ignoring an unparsable timestamp");
                }
                parsed
            }
            other => {
                tracing::debug!(value = %other, "ignoring a timestamp that is not a string");
                None
            }
        })
    }

    /// A count from a number or numeric text; anything else is `None`.
    fn to_count(value: Scalar<'_>) -> Option<u64> {
        match value {
            Scalar::U64(n) => Some(n),
            Scalar::I64(n) => u64::try_from(n).ok(),
            Scalar::F64(f) => Some(f)
                .filter(|f| f.fract() == 0.0 && (0.0..1.8e19).contains(f))
                // Whole, non-negative and below u64::MAX: the cast is exact.
                .map(
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    |f| f as u64,
                ),
            Scalar::Str(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    pub(super) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(to_count(scalar(d)?))
    }

    pub(super) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(opt_flag(d)?.unwrap_or(false))
    }

    pub(super) fn opt_flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Bool(b) => Some(b),
            Scalar::Str(text) => text.trim().parse().ok(),
            _ => None,
        })
    }

    pub(super) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match scalar(d)? {
            Scalar::Str(text) => Some(text.into_owned()),
            Scalar::Null => None,
            other => {
                tracing::debug!(value = %other, "ignoring a text field that is not a string");
                None
            }
        })
    }

    /// `planSummary`, read in one pass: an object's known counts (as [`count`] reads them), or
    /// the first four elements of an array as the derive would; anything else is `None`.
    struct PlanSummaryVisitor;

    impl<'de> Visitor<'de> for PlanSummaryVisitor {
        /// `None` for null; `Some(None)` for a value that is not a plan summary.
        type Value = Option<Option<PlanSummary>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a plan summary")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut summary = PlanSummary::default();
            let mut seen = [false; 4];
            let mut duplicate = false;
            while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                let (i, slot) = match &*key {
                    "added" => (0, &mut summary.added),
                    "changed" => (1, &mut summary.changed),
                    "destroyed" => (2, &mut summary.destroyed),
                    "imported" => (3, &mut summary.imported),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                };
                duplicate |= std::mem::replace(&mut seen[i], true);
                *slot = to_count(map.next_value::<Scalar<'de>>()?);
            }
            // The derive refuses a field given twice.
            Ok(Some((!duplicate).then_some(summary)))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut counts = [None; 4];
            for count in &mut counts {
                match seq.next_element::<Scalar<'de>>()? {
                    Some(value) => *count = to_count(value),
                    None => break,
                }
            }
            let extra = seq.next_element::<IgnoredAny>()?.is_some();
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            let [added, changed, destroyed, imported] = counts;
            Ok(Some((!extra).then_some(PlanSummary {
                added,
                changed,
                destroyed,
                imported,
            })))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Some(None))
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Some(None))
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Some(None))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Some(None))
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Some(None))
        }
    }

    pub(super) fn deployment_log<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<DeploymentLog>, D::Error> {
        object(d, "embedded deployment log")
    }

    pub(super) fn plan_summary<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PlanSummary>, D::Error> {
        Ok(d.deserialize_any(PlanSummaryVisitor)?.and_then(|summary| {
            if summary.is_none() {
                tracing::debug!("ignoring an unreadable plan summary");
            }
            summary
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }

    const REAL_SHAPED: &str = r#"{"id":"31bb8369-e3eb-4a41-9bfb-efe32c2fa86f","createdAt":"2026-07-01T13:44:32.000Z",
      "updatedAt":"2026-07-01T13:45:31.000Z","type":"deploy","status":"SUCCESS",
      "startedBy":"auth0|5f1e2d3c4b5a69788796a5b4","queuedAt":"2026-07-01T13:44:32.000Z",
      "startedAt":"2026-07-01T13:44:34.000Z","finishedAt":"2026-07-01T13:45:31.000Z","output":{},
      "error":null,"costEstimation":{"totalMonthlyCost":"0","projects":[{"diff":{"totalMonthlyCost":"0"}}]},
      "planSummary":{"added":2,"changed":0,"destroyed":0},"blueprintType":"terraform",
      "environmentId":"1dba9261-b429-4857-b9ad-b9cfea5d228c","resourceCount":2,"isScheduledRun":false,
      "triggerName":"user","driftDetected":null}"#;

    #[test]
    fn the_real_shaped_deployment_log_from_the_reference_reads_completely() {
        let log: DeploymentLog = serde_json::from_str(REAL_SHAPED).expect("parses");
        assert_eq!(log.id, "31bb8369-e3eb-4a41-9bfb-efe32c2fa86f");
        assert_eq!(log.deployment_type.as_deref(), Some("deploy"));
        assert_eq!(log.status.as_deref(), Some("SUCCESS"));
        assert_eq!(log.blueprint_type.as_deref(), Some("terraform"));
        assert_eq!(log.trigger_name.as_deref(), Some("user"));
        assert_eq!(
            log.started_by.as_deref(),
            Some("auth0|5f1e2d3c4b5a69788796a5b4")
        );
        assert_eq!(log.created_at, Some(ts("2026-07-01T13:44:32Z")));
        assert_eq!(log.started_at, Some(ts("2026-07-01T13:44:34Z")));
        assert_eq!(log.finished_at, Some(ts("2026-07-01T13:45:31Z")));
        assert_eq!(
            log.plan_summary,
            Some(PlanSummary {
                added: Some(2),
                changed: Some(0),
                destroyed: Some(0),
                imported: None
            })
        );
        assert_eq!(log.drift_detected, None);
    }

    #[test]
    fn timestamps_with_and_without_millis_parse_and_bad_ones_are_none() {
        assert_eq!(
            parse_timestamp("2026-07-01T14:02:10.123Z"),
            Some(ts("2026-07-01T14:02:10.123Z"))
        );
        assert_eq!(
            parse_timestamp("2026-07-01T14:02:10Z"),
            Some(ts("2026-07-01T14:02:10Z"))
        );
        assert_eq!(
            parse_timestamp("2026-07-01T16:02:10+02:00"),
            Some(ts("2026-07-01T14:02:10Z"))
        );
        assert_eq!(
            parse_timestamp("2026-07-01T14:02:10.5"),
            Some(ts("2026-07-01T14:02:10.5Z"))
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
        let log: DeploymentLog = serde_json::from_str(
            r#"{"id":"d","createdAt":"not a date","startedAt":17,"finishedAt":null}"#,
        )
        .expect("a bad timestamp does not fail the object");
        assert_eq!(
            (log.created_at, log.started_at, log.finished_at),
            (None, None, None)
        );
    }

    #[test]
    fn a_minimal_object_with_nulls_everywhere_reads_with_defaults() {
        let env: Environment = serde_json::from_str(
            r#"{"id":"e","name":null,"projectId":null,"status":null,"driftStatus":null,
                "latestDeploymentLogId":null,"latestDeploymentLog":null,"updatedAt":null,
                "isArchived":null,"brandNewField":{"nested":[1,2,3]}}"#,
        )
        .expect("parses");
        assert_eq!(env.id, "e");
        assert!(!env.is_archived);
        assert_eq!(env.latest_deployment_log, None);
        let project: Project = serde_json::from_str(r#"{"id":"p"}"#).expect("parses");
        assert_eq!(project.name, None);
    }

    #[test]
    fn an_object_without_an_id_is_an_error() {
        assert!(serde_json::from_str::<DeploymentLog>(r#"{"status":"SUCCESS"}"#).is_err());
    }

    #[test]
    fn an_unreadable_embedded_deployment_log_is_none_not_a_failed_environment() {
        let env: Environment = serde_json::from_str(
            r#"{"id":"e","latestDeploymentLog":{"status":"SUCCESS"},"updatedAt":"2026-07-01T00:00:00Z"}"#,
        )
        .expect("parses");
        assert_eq!(env.latest_deployment_log, None);
        assert_eq!(env.updated_at, Some(ts("2026-07-01T00:00:00Z")));
        let env: Environment =
            serde_json::from_str(r#"{"id":"e","latestDeploymentLog":{"id":"d","type":"destroy"}}"#)
                .expect("parses");
        assert_eq!(
            env.latest_deployment_log.and_then(|d| d.deployment_type),
            Some("destroy".to_owned())
        );
    }

    #[test]
    fn a_plan_summary_of_another_shape_is_none_and_does_not_fail_the_log() {
        let summary = |json: &str| {
            serde_json::from_str::<DeploymentLog>(&format!(r#"{{"id":"d","planSummary":{json}}}"#))
                .expect("the log reads")
                .plan_summary
        };
        assert_eq!(summary("null"), None);
        assert_eq!(summary(r#""3 to add""#), None);
        assert_eq!(summary("7"), None);
        assert_eq!(summary(r#"{"added":1,"added":2}"#), None, "a field twice");
        assert_eq!(
            summary(r#"{"added":1,"other":{"deep":[1,{"x":null}]},"imported":"4"}"#),
            Some(PlanSummary {
                added: Some(1),
                imported: Some(4),
                ..PlanSummary::default()
            })
        );
        assert_eq!(
            summary("[1,2]"),
            Some(PlanSummary {
                added: Some(1),
                changed: Some(2),
                ..PlanSummary::default()
            }),
            "an array reads in field order"
        );
        assert_eq!(summary("[1,2,3,4,5]"), None);
    }

    #[test]
    fn counts_accept_integral_numbers_and_numeric_strings_only() {
        let p: PlanSummary =
            serde_json::from_str(r#"{"added":"3","changed":2.0,"destroyed":-1,"imported":1.5}"#)
                .expect("parses");
        assert_eq!(
            p,
            PlanSummary {
                added: Some(3),
                changed: Some(2),
                destroyed: None,
                imported: None
            }
        );
    }
}
