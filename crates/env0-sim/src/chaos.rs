//! The faults that change what a normal answer says rather than replace it: a key that may not
//! read some projects, pages that shift while they are read, bodies of the wrong shape,
//! timestamps out of order, values env0 has not documented, and pages of many megabytes.
//!
//! Each works on the request before the route runs ([`refuse`], [`rewrite`]) or on the route's
//! JSON answer after it ([`mutate`]); the world itself is never changed, so
//! [`Simulator::deployments`] stays the truth of what env0 holds.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::reply::ApiError;
use super::{FaultKind, Malformation, Simulator, lock};

/// The largest normal answer [`mutate`] reads back (the simulator's own pages are far smaller).
const MAX_MUTATED_BODY: usize = 64 * 1024 * 1024;

/// 403 for `GET /environments/{id}/deployments` of an environment in one of the refused
/// projects, as for a User-role key without a role there; `None` for every other request.
pub(crate) fn refuse(sim: &Simulator, kind: &FaultKind, path: &str) -> Option<Response> {
    let FaultKind::ForbiddenProjects(projects) = kind else {
        return None;
    };
    let environment = path
        .strip_prefix("/environments/")?
        .strip_suffix("/deployments")?;
    let world = lock(&sim.inner.world);
    let env = world.environment(environment)?;
    let project = &world.projects.get(env.project)?.id;
    projects.contains(project).then(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "You do not have permission to access this environment",
        )
        .into_response()
    })
}

/// For [`FaultKind::ShiftPages`], the request with `offset` one less (when above 0): the page
/// starts one record earlier, as if one record had been inserted at the top of a newest-first
/// listing since the previous page was read. Any other request is returned as is.
pub(crate) fn rewrite(kind: &FaultKind, mut req: Request) -> Request {
    if *kind != FaultKind::ShiftPages {
        return req;
    }
    let Some(query) = req.uri().query() else {
        return req;
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| {
            let v = match (k.as_ref(), v.parse::<usize>()) {
                ("offset", Ok(n)) if n > 0 => (n - 1).to_string(),
                _ => v.into_owned(),
            };
            (k.into_owned(), v)
        })
        .collect();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let uri = format!("{}?{query}", req.uri().path());
    if let Ok(uri) = uri.parse() {
        *req.uri_mut() = uri;
    }
    req
}

/// The route's answer changed as `kind` says, for the kinds that change answers; a non-JSON or
/// failed answer is returned as is.
pub(crate) async fn mutate(kind: &FaultKind, response: Response) -> Response {
    let change: fn(&mut Value, &FaultKind) = match kind {
        FaultKind::Malformed(_)
        | FaultKind::DisorderedTimestamps
        | FaultKind::UndocumentedValues
        | FaultKind::Padded { .. } => apply,
        _ => return response,
    };
    if !response.status().is_success() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_MUTATED_BODY).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "unreadable body").into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    change(&mut value, kind);
    let Ok(out) = serde_json::to_vec(&value) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "unencodable body").into_response();
    };
    let mut response = Response::from_parts(parts, Body::from(out));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

fn apply(body: &mut Value, kind: &FaultKind) {
    match kind {
        FaultKind::Malformed(Malformation::ObjectInsteadOfArray) => {
            if body.is_array() {
                let items = body.take();
                *body = serde_json::json!({ "data": items, "count": 0 });
            }
        }
        FaultKind::Padded { bytes } => pad(body, *bytes),
        _ => {
            for (i, record) in deployment_logs(body).into_iter().enumerate() {
                change_record(record, i, kind);
            }
        }
    }
}

/// The deployment log objects of an answer: the elements of a deployments page, the embedded
/// `latestDeploymentLog` of each environment of an environments page, or a single log.
fn deployment_logs(body: &mut Value) -> Vec<&mut Map<String, Value>> {
    let items: Vec<&mut Value> = match body {
        Value::Array(items) => items.iter_mut().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .filter_map(|item| {
            let object = item.as_object_mut()?;
            if object.contains_key("latestDeploymentLog") {
                object
                    .get_mut("latestDeploymentLog")
                    .and_then(Value::as_object_mut)
            } else {
                Some(object)
            }
        })
        .collect()
}

fn change_record(record: &mut Map<String, Value>, i: usize, kind: &FaultKind) {
    match kind {
        FaultKind::Malformed(Malformation::MissingId) if i == 0 => {
            record.remove("id");
        }
        FaultKind::Malformed(Malformation::StringForNumber) => {
            record.insert("resourceCount".into(), Value::from("twelve"));
            if let Some(plan) = record.get_mut("planSummary").and_then(Value::as_object_mut) {
                plan.insert("added".into(), Value::from("a few"));
            }
        }
        FaultKind::Malformed(Malformation::NumberForText) if i == 0 => {
            record.insert("status".into(), Value::from(7));
        }
        FaultKind::DisorderedTimestamps => disorder(record, i),
        FaultKind::UndocumentedValues => {
            let id = record.get("id").and_then(Value::as_str).unwrap_or_default();
            let (field, value) = undocumented_value(id);
            record.insert(field.into(), value.map_or(Value::Null, Value::from));
        }
        _ => {}
    }
}

/// Every third record: `startedAt` moved after `finishedAt`; the next: `finishedAt` a year in the
/// future; the next: neither `startedAt` nor `finishedAt`. Finish times stay truthful where they
/// are sent, so counts can be compared with the world's.
fn disorder(record: &mut Map<String, Value>, i: usize) {
    let finished = record
        .get("finishedAt")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match (i % 3, finished) {
        (0, Some(end)) => {
            if let Ok(later) = end.checked_add(jiff::SignedDuration::from_secs(60)) {
                record.insert(
                    "startedAt".into(),
                    Value::from(later.strftime(super::json::TIMESTAMP_FORMAT).to_string()),
                );
            }
        }
        (1, Some(end)) => {
            if let Ok(later) = end.checked_add(jiff::SignedDuration::from_hours(24 * 365)) {
                record.insert(
                    "finishedAt".into(),
                    Value::from(later.strftime(super::json::TIMESTAMP_FORMAT).to_string()),
                );
            }
        }
        (2, _) => {
            record.remove("startedAt");
            record.remove("finishedAt");
        }
        _ => {}
    }
}

/// The undocumented value [`FaultKind::UndocumentedValues`] gives the deployment log `id`: the
/// field it replaces and its new value (`None`: null). A pure function of the id, so tests can
/// compute the answer the exporter saw from the world's records.
///
/// By a hash of the id: a quarter get one of 60 new statuses `STATUS_<n>` (more than the
/// 50-value label cap), a quarter one of 60 new types `newType<n>`, a quarter an `IaC` tool with
/// a space in it, a quarter no trigger (null).
#[must_use]
pub fn undocumented_value(id: &str) -> (&'static str, Option<String>) {
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let n = (h >> 8) % 60;
    match h % 4 {
        0 => ("status", Some(format!("STATUS_{n}"))),
        1 => ("type", Some(format!("newType{n}"))),
        2 => ("blueprintType", Some("tool with space".to_owned())),
        _ => ("triggerName", None),
    }
}

/// Every record of the answer gets a `padding` string field, sized so the whole body is about
/// `bytes` long.
fn pad(body: &mut Value, bytes: usize) {
    let Value::Array(items) = body else {
        return;
    };
    let per_record = bytes / items.len().max(1);
    for item in items {
        if let Some(object) = item.as_object_mut() {
            object.insert("padding".into(), Value::from("x".repeat(per_record)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undocumented_values_cover_every_field_and_more_statuses_than_the_cap() {
        let mut fields = std::collections::HashSet::new();
        let mut statuses = std::collections::HashSet::new();
        for i in 0..2000 {
            let (field, value) = undocumented_value(&format!("id-{i}"));
            fields.insert(field);
            if field == "status" {
                statuses.insert(value);
            }
        }
        assert_eq!(fields.len(), 4);
        assert!(statuses.len() > 50, "{}", statuses.len());
    }

    #[test]
    fn disordered_records_start_after_they_finish_finish_in_the_future_or_have_no_times() {
        let log = || {
            serde_json::json!({"id": "d", "startedAt": "2026-07-01T12:00:00.000Z",
                "finishedAt": "2026-07-01T12:10:00.000Z"})
        };
        let mut page = Value::Array(vec![log(), log(), log()]);
        apply(&mut page, &FaultKind::DisorderedTimestamps);
        assert_eq!(page[0]["startedAt"], "2026-07-01T12:11:00.000Z");
        assert_eq!(page[1]["finishedAt"], "2027-07-01T12:10:00.000Z");
        assert!(page[2].get("startedAt").is_none() && page[2].get("finishedAt").is_none());
    }

    #[test]
    fn an_environment_page_changes_its_embedded_logs_and_padding_reaches_the_size() {
        let mut page = serde_json::json!([{"id": "e", "latestDeploymentLog": {"id": "d"}}]);
        apply(&mut page, &FaultKind::Malformed(Malformation::MissingId));
        assert_eq!(page[0]["id"], "e");
        assert!(page[0]["latestDeploymentLog"].get("id").is_none());
        let mut page = serde_json::json!([{"id": "a"}, {"id": "b"}]);
        apply(&mut page, &FaultKind::Padded { bytes: 10_000 });
        let len = serde_json::to_vec(&page).map_or(0, |v| v.len());
        assert!((10_000..10_200).contains(&len), "{len}");
    }
}
