//! The HTTP side of the simulator: env0's routes, Basic auth, the per-(method, path) rate limit,
//! injected faults, query validation (400s), paging and filters, and the request log.
//!
//! Choices where env0 documents nothing:
//! - Error bodies are `{"message": "...", "statusCode": n}`.
//! - `fromDate`/`toDate` filter on `createdAt` by default ([`SimConfig::date_filter_field`]:
//!   `queuedAt` or `startedAt`, where a run not started is in no dated listing) and **both bounds
//!   are inclusive**; `fromDate` after `toDate` is not an error, it matches nothing. They are read
//!   in env0's clock ([`SimConfig::clock_offset`]), which is also the `Date` header's.
//! - `deploymentTypes`, `statuses`, `userIds` are comma-separated exact matches (`userIds` against
//!   `startedBy`); an unknown value matches nothing rather than failing; an empty parameter
//!   (`statuses=`) filters nothing.
//! - Deployments are listed newest first by `createdAt`, ties by `id` descending (or oldest
//!   first with [`SimConfig::page_order`]).
//! - `GET /environments` takes `projectId` (exact match); without it, every project's. It takes
//!   `includeSubEnvironments` (`true`/`false`); without it, workflow sub-environments are listed
//!   only with [`SimConfig::sub_environments_listed_by_default`].
//! - `GET /projects` and `GET /environments` need `organizationId` (400 without); an id that is
//!   not one of the listed organizations is 403.
//! - With [`SimConfig::validating_api`], a query parameter not in [`ALLOWED_PARAMETERS`] (what
//!   env0's own clients send to that route) is `400 {"message": "\"<name>\" is not allowed"}`,
//!   and workflow sub-environments are listed without `includeSubEnvironments`.
//! - Without [`SimConfig::send_date_header`], no answer carries a `Date` header.
//! - Order of checks: injected fault, rate limit (every request counts, even unauthorized ones,
//!   like env0's per-IP budget), auth, then parameters, then 404.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use jiff::Timestamp;
use serde::Serialize;

use super::json::{DeploymentJson, EnvironmentJson, OrganizationJson, ProjectJson};
use super::reply::{ApiError, too_many_requests};
use super::world::{Deployment, World};
use super::{DateFilterField, FaultKind, PageOrder, RequestRecord, Simulator, chaos, faults, lock};

/// Largest and default page size.
const MAX_LIMIT: usize = 100;

pub(crate) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/organizations", get(organizations))
        .route("/projects", get(projects))
        .route("/environments", get(environments))
        .route(
            "/environments/{environment_id}/deployments",
            get(deployments),
        )
        .route("/environments/deployments/{deployment_id}", get(deployment))
        .fallback(|| async { ApiError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
        })
        .layer(from_fn_with_state(sim.clone(), gate))
        .with_state(sim)
}

/// What a validating env0 takes, per route: the query parameters env0's own clients (its
/// Terraform provider, Backstage plugin, MCP server, API reference) are seen to send. Written for
/// the simulator, apart from the exporter's own list, so that each checks the other.
pub(crate) const ALLOWED_PARAMETERS: [(Route, &[&str]); 5] = [
    (Route::Organizations, &[]),
    (Route::Projects, &["organizationId"]),
    (
        Route::Environments,
        &[
            "organizationId",
            "projectId",
            "name",
            "isActive",
            "limit",
            "offset",
        ],
    ),
    (
        Route::EnvironmentDeployments,
        &[
            "limit",
            "offset",
            "fromDate",
            "toDate",
            "deploymentTypes",
            "statuses",
            "userIds",
        ],
    ),
    (Route::Deployment, &[]),
];

/// The simulator's routes, as far as query parameters go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /organizations`.
    Organizations,
    /// `GET /projects`.
    Projects,
    /// `GET /environments`.
    Environments,
    /// `GET /environments/{id}/deployments`.
    EnvironmentDeployments,
    /// `GET /environments/deployments/{id}`.
    Deployment,
}

impl Route {
    /// The route of a request path, `None` for one the simulator does not serve.
    #[must_use]
    pub(crate) fn of(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["organizations"] => Some(Self::Organizations),
            ["projects"] => Some(Self::Projects),
            ["environments"] => Some(Self::Environments),
            ["environments", "deployments", _] => Some(Self::Deployment),
            ["environments", _, "deployments"] => Some(Self::EnvironmentDeployments),
            _ => None,
        }
    }
}

/// The first query parameter of `query` that a validating env0 refuses on `path`.
fn refused_parameter(path: &str, query: &str) -> Option<String> {
    let route = Route::of(path)?;
    let allowed = ALLOWED_PARAMETERS
        .iter()
        .find(|(r, _)| *r == route)
        .map_or(&[][..], |(_, names)| *names);
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(name, _)| name.into_owned())
        .find(|name| !allowed.contains(&name.as_str()))
}

/// Faults, rate limit and auth in front of every route; records every request.
async fn gate(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    sim.advance();
    let at = sim.inner.clock.now();
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let fault = faults::take(&mut lock(&sim.inner.faults), &path)
        .or_else(|| faults::take_timed(&mut lock(&sim.inner.timed_faults), &path, at));
    let response = if let Some(response) = fault.as_ref().and_then(faults::respond) {
        response
    } else if let Some(response) = fault
        .as_ref()
        .and_then(|kind| chaos::refuse(&sim, kind, &path))
    {
        response
    } else {
        if let Some(FaultKind::Delay(delay)) = fault {
            tokio::time::sleep(delay).await;
        }
        let refused = sim
            .inner
            .config
            .validating_api
            .then(|| refused_parameter(&path, &query))
            .flatten();
        match admit(&sim, &method, &path, req.headers()) {
            Some(refusal) => refusal,
            None if refused.is_some() => {
                let name = refused.unwrap_or_default();
                ApiError::bad_request(format!("\"{name}\" is not allowed")).into_response()
            }
            None => match &fault {
                Some(kind) => chaos::mutate(kind, next.run(chaos::rewrite(kind, req)).await).await,
                None => next.run(req).await,
            },
        }
    };
    let mut response = response;
    // env0's time, as env0 tells it (whole seconds, rounded down); nothing without the header.
    if sim.inner.config.send_date_header {
        let date = sim.now().strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
        if let Ok(value) = header::HeaderValue::from_str(&date) {
            response.headers_mut().insert(header::DATE, value);
        }
    } else {
        // The HTTP stack adds one of its own (the injected clock's, not env0's) unless told.
        response.headers_mut().remove(header::DATE);
    }
    if sim.inner.config.record_requests {
        lock(&sim.inner.requests).push(RequestRecord {
            method,
            path,
            query,
            status: response.status().as_u16(),
            at,
        });
    }
    response
}

/// The rate limit and auth checks: `Some(answer)` when the request is turned away.
fn admit(sim: &Simulator, method: &str, path: &str, headers: &HeaderMap) -> Option<Response> {
    let config = &sim.inner.config;
    let now = sim.inner.clock.now();
    let verdict = lock(&sim.inner.limits).admit(method, path, now, config.rate_limit_per_minute);
    let refusal = if let Err(wait) = verdict {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        too_many_requests(config.send_retry_after.then_some(secs.max(1)))
    } else if !authorized(
        headers,
        &config.api_key_id,
        &lock(&sim.inner.api_key_secret),
    ) {
        ApiError::unauthorized().into_response()
    } else {
        return None;
    };
    Some(refusal)
}

/// Whether `headers` carry HTTP Basic auth with this key id and secret.
fn authorized(headers: &HeaderMap, key_id: &str, secret: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    decoded.split_once(':') == Some((key_id, secret))
}

/// Query parameters; the first of repeated names wins.
fn params(raw: Option<&str>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// A non-negative integer written with digits only.
fn number(q: &HashMap<String, String>, name: &str) -> Result<Option<usize>, ApiError> {
    let Some(raw) = q.get(name) else {
        return Ok(None);
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "{name} must be a non-negative integer"
        )));
    }
    raw.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("{name} is too large")))
}

/// `limit` (1..=100, default 100) and `offset` (default 0).
fn paging(q: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    let limit = number(q, "limit")?.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    Ok((limit, number(q, "offset")?.unwrap_or(0)))
}

/// A date in exactly `YYYY-MM-DDTHH:mm:ss.sssZ`.
fn date(name: &str, raw: &str) -> Result<Timestamp, ApiError> {
    const SHAPE: &[u8; 24] = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let bad =
        || ApiError::bad_request(format!("{name} must be formatted YYYY-MM-DDTHH:mm:ss.sssZ"));
    let fits = raw.len() == SHAPE.len()
        && raw.bytes().zip(SHAPE).all(|(b, s)| {
            if *s == b'd' {
                b.is_ascii_digit()
            } else {
                b == *s
            }
        });
    if !fits {
        return Err(bad());
    }
    raw.parse().map_err(|_| bad())
}

/// `fromDate` and `toDate`, both or neither (inclusive bounds on `createdAt`).
fn date_range(q: &HashMap<String, String>) -> Result<Option<(Timestamp, Timestamp)>, ApiError> {
    match (q.get("fromDate"), q.get("toDate")) {
        (None, None) => Ok(None),
        (Some(from), Some(to)) => Ok(Some((date("fromDate", from)?, date("toDate", to)?))),
        _ => Err(ApiError::bad_request(
            "fromDate and toDate must be given together",
        )),
    }
}

/// A comma-separated filter; `None` (no filtering) when absent or empty.
fn list<'q>(q: &'q HashMap<String, String>, name: &str) -> Option<Vec<&'q str>> {
    let raw = q.get(name)?;
    let items: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!items.is_empty()).then_some(items)
}

fn json_response<T: Serialize + ?Sized>(body: &T) -> Result<Response, ApiError> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// The organization named by `organizationId`: `Ok(true)` for the one with activity,
/// `Ok(false)` for another listed one, 403 for any other id.
fn organization(world: &World, q: &HashMap<String, String>) -> Result<bool, ApiError> {
    let Some(id) = q.get("organizationId") else {
        return Err(ApiError::bad_request("organizationId is required"));
    };
    if !world.organizations.iter().any(|o| &o.id == id) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "You do not have access to this organization",
        ));
    }
    Ok(id == world.organization_id())
}

async fn organizations(State(sim): State<Simulator>) -> Result<Response, ApiError> {
    let world = lock(&sim.inner.world);
    let orgs: Vec<_> = world
        .organizations
        .iter()
        .map(OrganizationJson::new)
        .collect();
    json_response(&orgs)
}

async fn projects(
    State(sim): State<Simulator>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = params(raw.as_deref());
    let world = lock(&sim.inner.world);
    let active = organization(&world, &q)?;
    let projects: Vec<_> = world
        .projects
        .iter()
        .filter(|_| active)
        .map(|p| ProjectJson::new(&world, p))
        .collect();
    json_response(&projects)
}

async fn environments(
    State(sim): State<Simulator>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = params(raw.as_deref());
    let (limit, offset) = paging(&q)?;
    let world = lock(&sim.inner.world);
    let active = organization(&world, &q)?;
    let project = q.get("projectId");
    let subs = match q.get("includeSubEnvironments").map(String::as_str) {
        Some("true") => true,
        Some("false") => false,
        _ => sim.inner.config.sub_environments_listed_by_default || sim.inner.config.validating_api,
    };
    let page: Vec<_> = if active {
        world.environment_page(project.map(String::as_str), subs, offset, limit)
    } else {
        Vec::new()
    }
    .into_iter()
    .map(|env| EnvironmentJson::new(&world, env))
    .collect();
    json_response(&page)
}

async fn deployments(
    State(sim): State<Simulator>,
    Path(environment_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = params(raw.as_deref());
    let (limit, offset) = paging(&q)?;
    let range = date_range(&q)?;
    let types = list(&q, "deploymentTypes");
    let statuses = list(&q, "statuses");
    let users = list(&q, "userIds");
    let world = lock(&sim.inner.world);
    let env = world
        .environment(&environment_id)
        .ok_or_else(|| ApiError::not_found("Environment not found"))?;
    let field = sim.inner.config.date_filter_field;
    let in_range = |d: &&Deployment| {
        range.is_none_or(|(from, to)| {
            let at = match field {
                DateFilterField::CreatedAt => Some(d.created_at),
                DateFilterField::QueuedAt => Some(d.queued_at),
                DateFilterField::StartedAt => d.started_at,
            };
            at.is_some_and(|at| from <= at && at <= to)
        })
    };
    // Held oldest `createdAt` first: a `createdAt` range is a slice, found by bisection.
    let held = match (field, range) {
        (DateFilterField::CreatedAt, Some((from, to))) => {
            let first = env.deployments.partition_point(|d| d.created_at < from);
            let end = env.deployments.partition_point(|d| d.created_at <= to);
            &env.deployments[first..end.max(first)]
        }
        _ => &env.deployments[..],
    };
    let ordered: Box<dyn Iterator<Item = &Deployment>> = match sim.inner.config.page_order {
        PageOrder::NewestFirst => Box::new(held.iter().rev()),
        PageOrder::OldestFirst => Box::new(held.iter()),
    };
    let page: Vec<_> = ordered
        .filter(in_range)
        .filter(|d| types.as_ref().is_none_or(|t| t.contains(&d.kind.as_str())))
        .filter(|d| {
            statuses
                .as_ref()
                .is_none_or(|s| s.contains(&d.status.as_str()))
        })
        .filter(|d| {
            users.as_ref().is_none_or(|u| {
                world
                    .users
                    .get(d.user)
                    .is_some_and(|user| u.contains(&user.id.as_str()))
            })
        })
        .skip(offset)
        .take(limit)
        .map(|d| DeploymentJson::new(&world, env, d))
        .collect();
    json_response(&page)
}

async fn deployment(
    State(sim): State<Simulator>,
    Path(deployment_id): Path<String>,
) -> Result<Response, ApiError> {
    let world = lock(&sim.inner.world);
    let (env, d) = world
        .deployment(&deployment_id)
        .ok_or_else(|| ApiError::not_found("Deployment not found"))?;
    json_response(&DeploymentJson::new(&world, env, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn dates_must_have_exactly_milliseconds_and_a_z() {
        assert!(date("fromDate", "2026-07-01T14:02:10.000Z").is_ok());
        for bad in [
            "2026-07-01",
            "2026-07-01T14:02:10Z",
            "2026-07-01T14:02:10.00Z",
            "2026-07-01T14:02:10.000+00:00",
            "2026-13-01T14:02:10.000Z",
        ] {
            assert_eq!(
                date("fromDate", bad).map_err(|e| e.status).err(),
                Some(StatusCode::BAD_REQUEST),
                "{bad}"
            );
        }
    }

    #[test]
    fn paging_defaults_to_a_full_page_from_the_start_and_rejects_out_of_range_values() {
        assert_eq!(paging(&q(&[])).ok(), Some((100, 0)));
        assert_eq!(
            paging(&q(&[("limit", "7"), ("offset", "3")])).ok(),
            Some((7, 3))
        );
        for bad in [
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "ten"),
            ("offset", "-1"),
            ("offset", "x"),
        ] {
            assert!(paging(&q(&[bad])).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_filter_filters_nothing_and_items_are_trimmed() {
        assert_eq!(list(&q(&[("statuses", "")]), "statuses"), None);
        assert_eq!(
            list(&q(&[("statuses", "SUCCESS, FAILURE")]), "statuses"),
            Some(vec!["SUCCESS", "FAILURE"])
        );
    }
}
