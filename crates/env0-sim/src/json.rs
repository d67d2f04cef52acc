//! Wire shapes: the world's records serialized as env0 sends them (camelCase, timestamps with
//! milliseconds, `snake_case` inside `startedByUser`, cost amounts as strings or numbers), borrowing
//! from the world so a listing serializes without cloning it.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use super::world::{Cost, Deployment, Environment, Organization, Project, User, World};

/// env0's timestamp format.
pub(crate) const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

/// A timestamp serialized as `2026-07-01T14:02:10.000Z`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ts(pub Timestamp);

impl Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.digits() {
            Some(buf) => s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default()),
            None => s.collect_str(&self.0.strftime(TIMESTAMP_FORMAT)),
        }
    }
}

impl Ts {
    /// [`TIMESTAMP_FORMAT`] written digit by digit, for years 0 to 9999 (`None` outside them):
    /// the simulator writes several timestamps a deployment, and `strftime` reads its format
    /// each time. The tests hold it to `strftime`.
    fn digits(self) -> Option<[u8; 24]> {
        let dt = jiff::tz::Offset::UTC.to_datetime(self.0);
        let year = u32::try_from(dt.year()).ok().filter(|y| *y <= 9999)?;
        let mut buf = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut n: u32| {
            for i in (at..at + width).rev() {
                // A digit: n % 10 < 10.
                buf[i] = b'0' + u8::try_from(n % 10).unwrap_or(0);
                n /= 10;
            }
        };
        let two = |n: i8| u32::try_from(n).unwrap_or(0);
        put(0, 4, year);
        put(5, 2, two(dt.month()));
        put(8, 2, two(dt.day()));
        put(11, 2, two(dt.hour()));
        put(14, 2, two(dt.minute()));
        put(17, 2, two(dt.second()));
        put(
            20,
            3,
            u32::try_from(dt.subsec_nanosecond()).unwrap_or(0) / 1_000_000,
        );
        Some(buf)
    }
}

/// `{}`, without building a map each time.
#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
pub(crate) struct OrganizationJson<'a> {
    id: &'a str,
    name: &'a str,
    #[serde(rename = "createdAt")]
    created_at: Ts,
    role: &'static str,
    #[serde(rename = "isSelfHostedK8s")]
    is_self_hosted_k8s: bool,
}

impl<'a> OrganizationJson<'a> {
    pub(crate) fn new(o: &'a Organization) -> Self {
        Self {
            id: &o.id,
            name: &o.name,
            created_at: Ts(o.created_at),
            role: "Admin",
            is_self_hosted_k8s: false,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProjectJson<'a> {
    id: &'a str,
    name: &'a str,
    organization_id: &'a str,
    is_archived: bool,
    parent_project_id: Option<&'a str>,
    created_at: Ts,
    description: &'static str,
}

impl<'a> ProjectJson<'a> {
    pub(crate) fn new(world: &'a World, p: &'a Project) -> Self {
        Self {
            id: &p.id,
            name: &p.name,
            organization_id: world.organization_id(),
            is_archived: false,
            parent_project_id: p
                .parent
                .and_then(|i| world.projects.get(i))
                .map(|parent| parent.id.as_str()),
            created_at: Ts(p.created_at),
            description: "",
        }
    }
}

#[derive(Serialize)]
struct UserJson<'a> {
    user_id: &'a str,
    email: &'a str,
    name: &'a str,
    given_name: &'a str,
}

impl<'a> UserJson<'a> {
    fn new(u: &'a User) -> Self {
        Self {
            user_id: &u.id,
            email: &u.email,
            name: &u.name,
            given_name: u.name.split(' ').next().unwrap_or(""),
        }
    }
}

#[derive(Serialize)]
struct PlanSummaryJson {
    added: u32,
    changed: u32,
    destroyed: u32,
    /// Newer than the others: absent rather than null where a run has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    imported: Option<u32>,
}

#[derive(Serialize)]
struct ErrorJson {
    message: &'static str,
}

fn amount(value: f64, as_string: bool) -> Value {
    if as_string {
        Value::String(format!("{value:.2}"))
    } else {
        json!(value)
    }
}

fn cost_json(c: &Cost) -> Value {
    json!({
        "totalMonthlyCost": amount(c.total, c.as_string),
        "monthlyCostDiff": amount(c.diff, c.as_string),
        "projects": [{"diff": {"totalMonthlyCost": amount(c.diff, c.as_string)}}],
    })
}

/// A deployment log object.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeploymentJson<'a> {
    id: &'a str,
    environment_id: &'a str,
    r#type: &'static str,
    status: &'static str,
    blueprint_type: Option<&'static str>,
    blueprint_id: &'a str,
    blueprint_name: &'a str,
    blueprint_revision: &'static str,
    trigger_name: Option<&'static str>,
    created_at: Ts,
    updated_at: Ts,
    queued_at: Ts,
    started_at: Option<Ts>,
    finished_at: Option<Ts>,
    started_by: &'a str,
    started_by_user: UserJson<'a>,
    reviewed_by: Option<&'a str>,
    reviewers: Option<Value>,
    aborted_by: Option<&'a str>,
    plan_summary: Option<PlanSummaryJson>,
    cost_estimation: Option<Value>,
    error: Option<ErrorJson>,
    resource_count: Option<u32>,
    is_scheduled_run: bool,
    drift_detected: Option<bool>,
    is_skipped_apply: bool,
    pr_number: Option<u32>,
    workflow_deployment_id: Option<&'static str>,
    output: EmptyObject,
}

impl<'a> DeploymentJson<'a> {
    pub(crate) fn new(world: &'a World, env: &'a Environment, d: &'a Deployment) -> Self {
        let user = |i: usize| world.users.get(i);
        // Users are a fixed pool and runs only ever draw indices into it.
        let started_by = &world.users[d.user];
        let results = d.results();
        Self {
            id: &d.id,
            environment_id: &env.id,
            r#type: d.kind.as_str(),
            status: d.status.as_str(),
            blueprint_type: env.tool,
            blueprint_id: &env.blueprint_id,
            blueprint_name: &env.blueprint_name,
            blueprint_revision: "main",
            trigger_name: d.trigger,
            created_at: Ts(d.created_at),
            updated_at: Ts(d.updated_at),
            queued_at: Ts(d.queued_at),
            started_at: d.started_at.map(Ts),
            finished_at: d.finished_at.map(Ts),
            started_by: &started_by.id,
            started_by_user: UserJson::new(started_by),
            reviewed_by: d.reviewed_by.and_then(user).map(|u| u.id.as_str()),
            reviewers: None,
            aborted_by: d.aborted_by.and_then(user).map(|u| u.id.as_str()),
            plan_summary: results.and_then(|r| {
                r.plan_summary.map(|[a, c, x]| PlanSummaryJson {
                    added: a,
                    changed: c,
                    destroyed: x,
                    imported: r.imported,
                })
            }),
            cost_estimation: results.and_then(|r| r.cost.as_ref()).map(cost_json),
            error: d.error_message().map(|message| ErrorJson { message }),
            resource_count: results.and_then(|r| r.resource_count),
            is_scheduled_run: matches!(d.trigger, Some("schedule" | "scheduled run")),
            drift_detected: results.and_then(|r| r.drift_detected),
            is_skipped_apply: false,
            pr_number: d.pr_number,
            workflow_deployment_id: None,
            output: EmptyObject {},
        }
    }
}

/// An environment object, with its latest deployment log embedded.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EnvironmentJson<'a> {
    id: &'a str,
    name: &'a str,
    project_id: &'a str,
    organization_id: &'a str,
    status: &'static str,
    drift_status: &'static str,
    latest_deployment_log_id: Option<&'a str>,
    latest_deployment_log: Option<DeploymentJson<'a>>,
    created_at: Ts,
    updated_at: Ts,
    is_archived: bool,
    user_id: &'a str,
    workspace_name: Option<&'a str>,
    lifespan_end_at: Option<Ts>,
    requires_approval: bool,
    is_remote_backend: bool,
}

impl<'a> EnvironmentJson<'a> {
    pub(crate) fn new(world: &'a World, env: &'a Environment) -> Self {
        Self {
            id: &env.id,
            name: &env.name,
            project_id: world
                .projects
                .get(env.project)
                .map_or("", |p| p.id.as_str()),
            organization_id: world.organization_id(),
            status: env.status.as_str(),
            drift_status: env.drift.as_str(),
            latest_deployment_log_id: env.latest.as_deref(),
            latest_deployment_log: env
                .latest_deployment()
                .map(|d| DeploymentJson::new(world, env, d)),
            created_at: Ts(env.created_at),
            updated_at: Ts(env.updated_at),
            is_archived: env.archived,
            user_id: world.users.get(env.creator).map_or("", |u| u.id.as_str()),
            workspace_name: Some(&env.name),
            lifespan_end_at: None,
            requires_approval: false,
            is_remote_backend: env.tool == Some("terraform"),
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::{TIMESTAMP_FORMAT, Ts};

    fn both(ts: Timestamp) -> (String, String) {
        let written = serde_json::to_string(&Ts(ts)).expect("a timestamp serializes");
        (written, format!("\"{}\"", ts.strftime(TIMESTAMP_FORMAT)))
    }

    #[test]
    fn timestamps_are_written_as_strftime_writes_them() {
        let mut cases = vec![
            (0, 0),
            (-1, -1_000_000),               // 1969-12-31T23:59:58.999
            (-315_619_200, 0),              // 1960
            (946_684_799, 999_999_999),     // 1999-12-31T23:59:59.999
            (1_709_208_000, 500_000_000),   // 2024-02-29T12:00:00.500
            (1_782_914_530, 1_000_000),     // 2026
            (253_402_207_199, 999_000_000), // 9999-12-30T21:59:59.999, jiff's last second
            (-62_167_219_200, 0),           // year 0
            (-62_167_219_201, 0),           // year -1: strftime's own writing
        ];
        // And a spread of seconds and nanoseconds over the years 1970 to 9999.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let secs = i64::try_from((x >> 11) % 253_402_207_200).expect("fits");
            let nanos = i32::try_from((x >> 3) % 1_000_000_000).expect("fits");
            cases.push((secs, nanos));
        }
        for (secs, nanos) in cases {
            let ts = Timestamp::new(secs, nanos).expect("in range");
            let (written, want) = both(ts);
            assert_eq!(written, want, "{secs} s {nanos} ns");
        }
    }
}
