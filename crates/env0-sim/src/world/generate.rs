//! Seeded generation: the organizations, projects, users and environments of a new world, each
//! environment's first events, and the random draws (ids, weighted picks, durations) that
//! generation and the lifecycle share.

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

use jiff::Timestamp;

use super::World;
use super::entities::{Deployment, Environment, Lane, Organization, Project, Results, User};
use super::queue::Event;
use super::vocabulary::{
    APP_NAMES, DeploymentType, DriftStatus, EnvStatus, PROJECT_NAMES, STAGES, Status, TOOL_WEIGHTS,
    TOOLS, USERS,
};
use crate::SimConfig;
use env0_clock as clock;

/// `ts` cut to whole milliseconds (what the wire shows).
fn trunc_ms(ts: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(ts.as_millisecond()).unwrap_or(ts)
}

/// A random version-4 UUID, like env0's ids.
pub(crate) fn uuid(rng: &mut fastrand::Rng) -> String {
    let v = rng.u128(..);
    // Version 4, variant 1, like env0's ids.
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

/// One of `items`, drawn with the matching `weights`.
pub(super) fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T], weights: &[u32]) -> T {
    let total: u32 = weights.iter().sum();
    let mut roll = rng.u32(0..total.max(1));
    for (item, w) in items.iter().zip(weights) {
        if roll < *w {
            return *item;
        }
        roll -= w;
    }
    items[0]
}

/// A duration between `min` and `max` seconds, uniform on a log scale, in whole milliseconds.
pub(super) fn log_uniform(rng: &mut fastrand::Rng, min: f64, max: f64) -> Duration {
    let secs = (min.ln() + rng.f64() * (max.ln() - min.ln())).exp();
    whole_millis(secs * 1000.0)
}

/// A share clamped to 0..=1 (anything not a number is 0).
fn share(s: f64) -> f64 {
    if s.is_nan() { 0.0 } else { s.clamp(0.0, 1.0) }
}

/// `ms` milliseconds as whole milliseconds (the wire's precision), rounded down; negative is 0.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // float → int saturates
pub(super) fn whole_millis(ms: f64) -> Duration {
    Duration::from_millis(ms as u64)
}

/// The tiers of a skewed organisation: (share of the environments, the least and the most of
/// an environment's mean gap between runs, before normalising, as multiples of the mean).
const ACTIVITY_TIERS: [(f64, f64, f64); 3] = [
    // Busy: a run every few minutes.
    (0.08, 0.08, 0.5),
    // Active: every half hour to a few hours.
    (0.22, 0.5, 4.0),
    // Quiet: hours to days apart.
    (0.70, 4.0, 96.0),
];

/// Per environment, its mean gap between runs as a multiple of the organisation's mean: a tier
/// of [`ACTIVITY_TIERS`] by its share, then a factor uniform on a log scale within the tier,
/// all scaled so that the mean rate over environments (the mean of `1 / factor`) is 1: the
/// organisation runs as often in total as without the skew. Drawn from a generator of its own,
/// so the world's other draws are the same.
fn activity_factors(seed: u64, environments: usize) -> Vec<f64> {
    // The mean of 1/f for f uniform on a log scale in [a, b] is (1/a - 1/b) / ln(b/a).
    let mean_rate: f64 = ACTIVITY_TIERS
        .iter()
        .map(|&(share, a, b)| share * (1.0 / a - 1.0 / b) / (b / a).ln())
        .sum();
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xAC71_7E5E_ED00);
    (0..environments)
        .map(|_| {
            let mut roll = rng.f64();
            let &(_, a, b) = ACTIVITY_TIERS
                .iter()
                .find(|&&(share, _, _)| {
                    let inside = roll < share;
                    roll -= share;
                    inside
                })
                .unwrap_or(&ACTIVITY_TIERS[ACTIVITY_TIERS.len() - 1]);
            let f = (a.ln() + rng.f64() * (b.ln() - a.ln())).exp();
            f * mean_rate
        })
        .collect()
}

impl World {
    /// Generates the world at `now - history` and plays it forward to `now`.
    #[must_use]
    pub(crate) fn new(config: &SimConfig, now: Timestamp) -> Self {
        let mut rng = fastrand::Rng::with_seed(config.seed);
        let start = trunc_ms(clock::sub(now, config.history));
        let year_before = clock::sub(start, Duration::from_secs(365 * 24 * 3600));
        let old = |rng: &mut fastrand::Rng| {
            clock::add(
                year_before,
                Duration::from_secs(rng.u64(0..300 * 24 * 3600)),
            )
        };
        let organizations = (0..config.organizations.max(1))
            .map(|i| Organization {
                id: uuid(&mut rng),
                name: if i == 0 {
                    "Acme Platform".to_owned()
                } else {
                    format!("Acme Subsidiary {i}")
                },
                created_at: old(&mut rng),
            })
            .collect();
        let projects = (0..config.projects.max(1))
            .map(|i| Project {
                id: uuid(&mut rng),
                name: match PROJECT_NAMES.get(i) {
                    Some(n) => (*n).to_owned(),
                    None => format!("project-{i}"),
                },
                // The last of several projects is a sub-project of the first.
                parent: (i > 0 && i + 1 == config.projects).then_some(0),
                created_at: old(&mut rng),
            })
            .collect::<Vec<_>>();
        let users = USERS
            .iter()
            .map(|(name, handle)| User {
                id: format!("auth0|{:024x}", rng.u128(..) >> 32),
                email: format!("{handle}@acme.example"),
                name: (*name).to_owned(),
            })
            .collect::<Vec<_>>();
        let project_index = projects
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.clone(), i))
            .collect();
        let project_envs = vec![Vec::new(); projects.len()];
        let mut world = Self {
            rng,
            mean_interval: config.mean_deployment_interval.max(Duration::from_secs(1)),
            activity: if config.activity_skew {
                activity_factors(config.seed, config.environments)
            } else {
                Vec::new()
            },
            time_scale: if config.time_scale.is_finite() && config.time_scale > 0.0 {
                config.time_scale
            } else {
                1.0
            },
            retention: config.history + config.retention_margin,
            long_approval_share: share(config.long_approval_share),
            stuck_share: share(config.stuck_share),
            pruned_slot: None,
            organizations,
            projects,
            environments: Vec::with_capacity(config.environments),
            users,
            by_id: HashMap::new(),
            env_index: HashMap::new(),
            project_index,
            project_envs,
            events: BinaryHeap::new(),
            seq: 0,
            next_key: 0,
            paused_at: None,
            paused_total: Duration::ZERO,
            noting: false,
            changes: Vec::new(),
            latest_moved_by: config.latest_moved_by,
            queued_after_created: config.queued_after_created,
        };
        for i in 0..config.environments {
            world.add_environment(i, start);
        }
        // After every other draw, so a world without them is the same as before.
        for i in 0..config.sub_environments {
            world.add_environment(config.environments + i, start);
            if let Some(env) = world.environments.last_mut() {
                env.workflow_sub = true;
                env.name = format!("{}-workflow-sub", env.name);
            }
        }
        world.advance_to(now);
        world.add_queue_ended_history(config, start);
        world
    }

    /// [`SimConfig::queue_ended_history`]: runs ended from the queue in the first environment,
    /// one a minute before `start`. Drawn from a generator of their own, so the rest of the
    /// world is the same with or without them.
    fn add_queue_ended_history(&mut self, config: &SimConfig, start: Timestamp) {
        if self.environments.is_empty() {
            return;
        }
        let mut rng = fastrand::Rng::with_seed(config.seed ^ 0x0051_7E0E_11DE);
        let mut runs = Vec::with_capacity(config.queue_ended_history);
        for i in (1..=config.queue_ended_history).rev() {
            let minutes = u64::try_from(i).unwrap_or(u64::MAX);
            let created_at = clock::sub(start, Duration::from_secs(60 * minutes));
            let queued_at = clock::add(created_at, config.queued_after_created);
            self.next_key += 1;
            runs.push(Deployment {
                key: self.next_key,
                id: uuid(&mut rng),
                kind: DeploymentType::Deploy,
                status: if i % 2 == 0 {
                    Status::Cancelled
                } else {
                    Status::Skipped
                },
                trigger: Some("user"),
                user: 0,
                reviewed_by: None,
                aborted_by: None,
                pr_number: None,
                created_at,
                queued_at,
                started_at: None,
                finished_at: None,
                updated_at: clock::add(queued_at, Duration::from_secs(20)),
                results: Results {
                    plan_summary: None,
                    imported: None,
                    resource_count: None,
                    cost: None,
                    drift_detected: None,
                },
                records_finish: false,
                archives: false,
                marks_drifted: false,
                plan: VecDeque::new(),
                lane: Lane::Queue,
            });
        }
        for run in &runs {
            self.by_id.insert(run.id.clone(), 0);
        }
        let env = &mut self.environments[0];
        // Older than every run the world generated: they go first, oldest first.
        runs.append(&mut env.deployments);
        env.deployments = runs;
    }

    fn add_environment(&mut self, i: usize, start: Timestamp) {
        let rng = &mut self.rng;
        let project = if i < self.projects.len() {
            i
        } else {
            rng.usize(0..self.projects.len())
        };
        let tool = TOOLS
            .get(i)
            .copied()
            .unwrap_or_else(|| pick(rng, &TOOLS, &TOOL_WEIGHTS));
        let app = APP_NAMES[rng.usize(0..APP_NAMES.len())];
        let name = format!("{app}-{}-{i}", STAGES[rng.usize(0..STAGES.len())]);
        let blueprint_name = format!("{app}-{}", tool.unwrap_or("template"));
        let created_at = clock::sub(start, Duration::from_secs(rng.u64(2 * 86400..200 * 86400)));
        let roll = rng.f64();
        // Environment 3 is always dormant so every world has a never-deployed one.
        let (dormant, archived) = (i == 3 || roll < 0.04, (0.04..0.07).contains(&roll));
        let drift = if dormant {
            DriftStatus::NeverRun
        } else {
            pick(
                rng,
                &[
                    DriftStatus::Ok,
                    DriftStatus::Drifted,
                    DriftStatus::NeverRun,
                    DriftStatus::Disabled,
                ],
                &[60, 10, 15, 15],
            )
        };
        let env = Environment {
            id: uuid(rng),
            name,
            project,
            tool,
            blueprint_id: uuid(rng),
            blueprint_name,
            status: EnvStatus::NeverDeployed,
            resting: EnvStatus::NeverDeployed,
            drift,
            archived: false,
            creator: rng.usize(0..self.users.len()),
            latest: None,
            created_at,
            updated_at: created_at,
            deployments: Vec::new(),
            active: None,
            waiting: VecDeque::new(),
            workflow_sub: false,
        };
        let e = self.environments.len();
        self.env_index.insert(env.id.clone(), e);
        self.project_envs[project].push(e);
        self.environments.push(env);
        if dormant {
            return;
        }
        let rng = &mut self.rng;
        let seed_at = clock::sub(start, log_uniform(rng, 3600.0, 20.0 * 3600.0));
        let seed = if archived {
            (DeploymentType::Destroy, Status::Success)
        } else if rng.f64() < 0.85 {
            (DeploymentType::Deploy, Status::Success)
        } else {
            (DeploymentType::Deploy, Status::Failure)
        };
        self.schedule(seed_at, Event::Seed(e, seed.0, seed.1));
        let first = clock::add(start, self.exp_gap(e));
        self.schedule(first, Event::NewRun(e));
    }

    /// The gap before environment `e`'s next run: exponential, mean `mean_interval` times the
    /// environment's activity factor ([`activity_factors`]), at least 1 s.
    pub(super) fn exp_gap(&mut self, e: usize) -> Duration {
        let u = self.rng.f64();
        let factor = self.activity.get(e).copied().unwrap_or(1.0);
        let secs = -(1.0 - u).ln() * self.mean_interval.as_secs_f64() * factor;
        whole_millis((secs * 1000.0).max(1000.0))
    }
}
