//! Deterministic inputs shared by the benchmarks and `examples/memory.rs`: an organisation of
//! environments and env0-shaped deployment log pages with realistic label skew.
//!
//! Label variety is env0's: 8 deployment types × 12 statuses × 8 `IaC` tools × 3 triggers, drawn
//! with skew (most runs are successful deploys and plans by terraform, started by a user or by
//! git), so a 200,000-deployment window holds most of the 2,304 combinations, the rare ones with
//! a handful of runs each, as a large organisation's does.

#![allow(dead_code)] // each bench target uses part of it

use jiff::Timestamp;

/// env0's deployment types with their weights.
const TYPES: [(&str, u32); 8] = [
    ("deploy", 40),
    ("prPlan", 25),
    ("driftDetection", 12),
    ("destroy", 6),
    ("task", 6),
    ("remotePlan", 5),
    ("dryRun", 4),
    ("moduleTest", 2),
];
/// env0's statuses with their weights (about 2 % unfinished).
const STATUSES: [(&str, u32); 12] = [
    ("SUCCESS", 800),
    ("FAILURE", 90),
    ("CANCELLED", 25),
    ("SKIPPED", 20),
    ("TIMEOUT", 10),
    ("ABORTED", 8),
    ("INTERNAL_FAILURE", 5),
    ("NEVER_DEPLOYED", 2),
    ("IN_PROGRESS", 15),
    ("QUEUED", 10),
    ("WAITING_FOR_USER", 8),
    ("ABORTING", 1),
];
/// The `IaC` tools with their weights.
const TOOLS: [(&str, u32); 8] = [
    ("terraform", 50),
    ("opentofu", 20),
    ("terragrunt", 10),
    ("pulumi", 6),
    ("k8s", 5),
    ("cloudformation", 4),
    ("helm", 3),
    ("ansible", 2),
];
/// The triggers with their weights.
const TRIGGERS: [(&str, u32); 3] = [("user", 55), ("git", 35), ("scheduled", 10)];

fn pick<'a>(rng: &mut fastrand::Rng, table: &[(&'a str, u32)]) -> &'a str {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut n = rng.u32(0..total);
    for (value, weight) in table {
        if n < *weight {
            return value;
        }
        n -= weight;
    }
    table[0].0
}

/// A version-4 UUID in env0's lowercase form.
pub(crate) fn uuid(rng: &mut fastrand::Rng) -> String {
    let v = rng.u128(..);
    let v = (v & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// An organisation: environment ids, each in one of a few hundred projects.
pub(crate) struct Org {
    /// Environment ids.
    pub(crate) environments: Vec<String>,
    /// The project of each environment.
    pub(crate) projects: Vec<String>,
}

impl Org {
    /// `n` environments in `n / 40` projects, from a fixed seed.
    pub(crate) fn new(n: usize) -> Self {
        let mut rng = fastrand::Rng::with_seed(7);
        let projects: Vec<String> = (0..(n / 40).max(1)).map(|_| uuid(&mut rng)).collect();
        let environments = (0..n).map(|_| uuid(&mut rng)).collect();
        let projects = (0..n)
            .map(|_| projects[rng.usize(0..projects.len())].clone())
            .collect();
        Self {
            environments,
            projects,
        }
    }
}

fn iso(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .expect("in range")
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// One deployment log as env0 sends it (the fields the exporter reads and the larger ones it
/// skips), created at `created_ms` in `environment`.
pub(crate) fn deployment_json(
    rng: &mut fastrand::Rng,
    environment: &str,
    created_ms: i64,
) -> String {
    let kind = pick(rng, &TYPES);
    let status = pick(rng, &STATUSES);
    let tool = pick(rng, &TOOLS);
    let trigger = pick(rng, &TRIGGERS);
    let queued = created_ms + i64::from(rng.u32(0..2_000));
    let started = queued + i64::from(rng.u32(1_000..120_000));
    let finished = started + i64::from(rng.u32(5_000..1_800_000));
    let unfinished = matches!(
        status,
        "QUEUED" | "IN_PROGRESS" | "WAITING_FOR_USER" | "ABORTING"
    );
    let not_started = matches!(status, "QUEUED" | "SKIPPED" | "NEVER_DEPLOYED");
    let ts = |ms: i64, null: bool| {
        if null {
            "null".to_owned()
        } else {
            format!("\"{}\"", iso(ms))
        }
    };
    let id = uuid(rng);
    let user = format!("auth0|{:024x}", rng.u128(..) >> 32);
    let added = rng.u32(0..20);
    format!(
        r#"{{"id":"{id}","createdAt":{created},"updatedAt":{updated},"type":"{kind}","status":"{status}","startedBy":"{user}","queuedAt":{queued},"startedAt":{started},"finishedAt":{finished},"output":{{}},"error":null,"costEstimation":{{"totalMonthlyCost":"0","projects":[{{"diff":{{"totalMonthlyCost":"0"}}}}]}},"planSummary":{{"added":{added},"changed":0,"destroyed":0}},"blueprintType":"{tool}","environmentId":"{environment}","resourceCount":{added},"isScheduledRun":false,"triggerName":"{trigger}","driftDetected":null,"comment":null,"userCanAbort":true}}"#,
        created = ts(created_ms, false),
        updated = ts(if unfinished { started } else { finished }, false),
        queued = ts(queued, false),
        started = ts(started, not_started),
        finished = ts(finished, unfinished || not_started),
    )
}

/// A page (a JSON array) of `n` deployment logs of `environment`, the newest created at
/// `newest_ms` and each one `spacing_ms` older than the one before.
pub(crate) fn page(
    rng: &mut fastrand::Rng,
    environment: &str,
    n: usize,
    newest_ms: i64,
    spacing_ms: i64,
) -> Vec<u8> {
    let mut out = String::from("[");
    for i in 0..n {
        if i > 0 {
            out.push(',');
        }
        let created = newest_ms - spacing_ms * i64::try_from(i).expect("small");
        out.push_str(&deployment_json(rng, environment, created));
    }
    out.push(']');
    out.into_bytes()
}
