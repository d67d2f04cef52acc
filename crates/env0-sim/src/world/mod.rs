//! The simulated world: seeded generation of organizations, projects, environments and users,
//! and the lifecycle of deployments, driven by a priority queue of timed events.
//!
//! Determinism: every random draw happens while handling an event, events are handled in
//! (time, sequence) order and never look at the time the world is advanced to, so the world at
//! time T depends only on the seed, the start time and the pauses, not on how often
//! [`World::advance_to`] ran. All times are whole milliseconds, as on the wire.
//!
//! Files: `vocabulary` (env0's types, statuses, tools, triggers, and the weights and names drawn
//! from), `entities` (users, organizations, projects, environments, deployments), `queue` (timed
//! events and their order), `generate` (the seeded new world, and the random draws), `lifecycle`
//! (runs from creation to end and what they do to environments; the lifecycle rules are at its
//! top), and here the [`World`] that holds it all: advancing and pausing it, pruning, lookups.

mod changes;
mod entities;
mod generate;
mod lifecycle;
mod queue;
mod vocabulary;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use jiff::Timestamp;

pub(super) use changes::Change;
pub(super) use entities::{Cost, Deployment, Environment, Organization, Project, User};
pub(super) use generate::uuid;
#[cfg(test)]
pub(super) use vocabulary::TRIGGERS;

use super::{LatestMovedBy, SimDeployment, SimEnvironment, SimPlanSummary};
use env0_clock as clock;
use queue::Scheduled;

/// Retention is applied once per this many seconds of env0's clock, at the start of each such
/// slot (so the world at a time does not depend on how often it was advanced), not per request.
const PRUNE_EVERY_SECS: i64 = 60;

/// The whole simulated state.
#[derive(Debug)]
pub(super) struct World {
    rng: fastrand::Rng,
    mean_interval: Duration,
    /// Per environment, its mean gap between runs as a multiple of `mean_interval`
    /// ([`SimConfig::activity_skew`](super::SimConfig)); empty: 1 for every environment.
    activity: Vec<f64>,
    time_scale: f64,
    /// Finished runs created longer ago than this are dropped (see [`World::prune`]).
    retention: Duration,
    /// Share of approvals that wait hours ([`SimConfig::long_approval_share`](super::SimConfig)).
    long_approval_share: f64,
    /// Share of plans and drift detections left unfinished for hours beside later runs.
    stuck_share: f64,
    /// The retention slot last pruned (see [`PRUNE_EVERY_SECS`]).
    pruned_slot: Option<i64>,
    pub organizations: Vec<Organization>,
    pub projects: Vec<Project>,
    pub environments: Vec<Environment>,
    pub users: Vec<User>,
    /// Deployment id → index into `environments`.
    by_id: HashMap<String, usize>,
    /// Environment id → index into `environments` (environments are never removed).
    env_index: HashMap<String, usize>,
    /// Project id → index into `projects`.
    project_index: HashMap<String, usize>,
    /// Per project, the indices of its environments in listing order; workflow
    /// sub-environments, added last, come last.
    project_envs: Vec<Vec<usize>>,
    events: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    next_key: u64,
    paused_at: Option<Timestamp>,
    /// Time spent paused: frozen time does not age runs out of retention either.
    paused_total: Duration,
    /// Whether lifecycle changes are noted (for webhook deliveries).
    noting: bool,
    /// Changes noted and not yet taken.
    changes: Vec<Change>,
    /// Which run types move `latestDeploymentLog`.
    latest_moved_by: LatestMovedBy,
    /// [`SimConfig::queued_after_created`](super::SimConfig::queued_after_created).
    queued_after_created: Duration,
}

impl World {
    /// The organization holding all projects and environments.
    #[must_use]
    pub(super) fn organization_id(&self) -> &str {
        self.organizations.first().map_or("", |o| o.id.as_str())
    }

    /// Handles every event up to `now` (nothing while paused), then drops old finished runs.
    pub(super) fn advance_to(&mut self, now: Timestamp) {
        if self.paused_at.is_some() {
            return;
        }
        while let Some(Reverse(next)) = self.events.peek() {
            if next.at > now {
                break;
            }
            let Some(Reverse(Scheduled { at, event, .. })) = self.events.pop() else {
                break;
            };
            self.handle(at, event);
        }
        let slot = now.as_second().div_euclid(PRUNE_EVERY_SECS);
        if self.pruned_slot != Some(slot) {
            self.pruned_slot = Some(slot);
            let slot_start = Timestamp::from_second(slot * PRUNE_EVERY_SECS).unwrap_or(now);
            self.prune(slot_start.min(now));
        }
    }

    /// Freezes or resumes the world at `now`.
    pub(super) fn set_paused(&mut self, paused: bool, now: Timestamp) {
        match (paused, self.paused_at) {
            (true, None) => {
                self.advance_to(now);
                self.paused_at = Some(now);
            }
            (false, Some(at)) => {
                let shift = Duration::from_millis(
                    u64::try_from(clock::elapsed(at, now).as_millis()).unwrap_or(u64::MAX),
                );
                let events = std::mem::take(&mut self.events);
                self.events = events
                    .into_iter()
                    .map(|Reverse(mut s)| {
                        s.at = clock::add(s.at, shift);
                        Reverse(s)
                    })
                    .collect();
                self.paused_at = None;
                self.paused_total += shift;
                self.advance_to(now);
            }
            _ => {}
        }
    }

    /// Drops finished runs created before `now - (history + retention margin)` (not counting
    /// time spent paused), except each environment's latest. Pruning with a later `now` removes
    /// everything an earlier one would have (runs only finish and stop being the latest), so
    /// pruning once per slot gives the same world as pruning on every advance would at the
    /// slots' starts.
    fn prune(&mut self, now: Timestamp) {
        let cutoff = clock::sub(now, self.retention + self.paused_total);
        for env in &mut self.environments {
            let old = env.deployments.partition_point(|d| d.created_at < cutoff);
            let removable = |d: &Deployment| {
                d.status.is_finished() && env.latest.as_deref() != Some(d.id.as_str())
            };
            if !env.deployments[..old].iter().any(removable) {
                continue;
            }
            let tail = env.deployments.split_off(old);
            let mut kept = Vec::with_capacity(env.deployments.len() + tail.len());
            for d in env.deployments.drain(..) {
                if removable(&d) {
                    self.by_id.remove(&d.id);
                } else {
                    kept.push(d);
                }
            }
            kept.extend(tail);
            env.deployments = kept;
        }
    }

    /// The environment holding a deployment, and the deployment.
    #[must_use]
    pub(super) fn deployment(&self, id: &str) -> Option<(&Environment, &Deployment)> {
        let env = self.environments.get(*self.by_id.get(id)?)?;
        let d = env.deployments.iter().rev().find(|d| d.id == id)?;
        Some((env, d))
    }

    /// The environment with this id.
    #[must_use]
    pub(super) fn environment(&self, id: &str) -> Option<&Environment> {
        self.env_index.get(id).map(|&i| &self.environments[i])
    }

    /// A page of the environment listing: every project's (`project: None`) or the one with
    /// that id (an unknown id lists nothing), workflow sub-environments only when `subs`.
    /// Costs the page, not the organisation: sub-environments are added last, so the others are
    /// a prefix of either list.
    pub(super) fn environment_page(
        &self,
        project: Option<&str>,
        subs: bool,
        offset: usize,
        limit: usize,
    ) -> Vec<&Environment> {
        let listed = |len: usize, index: &dyn Fn(usize) -> usize| -> Vec<&Environment> {
            (offset.min(len)..offset.saturating_add(limit).min(len))
                .map(|i| &self.environments[index(i)])
                .collect()
        };
        match project {
            None => {
                let len = if subs {
                    self.environments.len()
                } else {
                    self.environments.partition_point(|e| !e.workflow_sub)
                };
                listed(len, &|i| i)
            }
            Some(id) => {
                let Some(envs) = self.project_index.get(id).map(|&p| &self.project_envs[p]) else {
                    return Vec::new();
                };
                let len = if subs {
                    envs.len()
                } else {
                    envs.partition_point(|&e| !self.environments[e].workflow_sub)
                };
                listed(len, &|i| envs[i])
            }
        }
    }

    /// The truth as public records, oldest first.
    #[must_use]
    pub(super) fn sim_deployments(&self) -> Vec<SimDeployment> {
        let mut out: Vec<SimDeployment> = self
            .environments
            .iter()
            .flat_map(|env| {
                let project = &self.projects[env.project].id;
                env.deployments.iter().map(move |d| SimDeployment {
                    id: d.id.clone(),
                    environment_id: env.id.clone(),
                    project_id: project.clone(),
                    deployment_type: d.kind.as_str().to_owned(),
                    status: d.status.as_str().to_owned(),
                    blueprint_type: env.tool.map(str::to_owned),
                    trigger_name: d.trigger.map(str::to_owned),
                    started_by: self.users[d.user].id.clone(),
                    created_at: d.created_at,
                    queued_at: d.queued_at,
                    started_at: d.started_at,
                    finished_at: d.finished_at,
                    updated_at: d.updated_at,
                    plan_summary: d.results().and_then(|r| {
                        r.plan_summary
                            .map(|[added, changed, destroyed]| SimPlanSummary {
                                added,
                                changed,
                                destroyed,
                                imported: r.imported,
                            })
                    }),
                    drift_detected: d.results().and_then(|r| r.drift_detected),
                })
            })
            .collect();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        out
    }

    /// The environments as public records, in listing order.
    #[must_use]
    pub(super) fn sim_environments(&self) -> Vec<SimEnvironment> {
        self.environments
            .iter()
            .map(|env| SimEnvironment {
                id: env.id.clone(),
                project_id: self.projects[env.project].id.clone(),
                name: env.name.clone(),
                status: env.status.as_str().to_owned(),
                drift_status: env.drift.as_str().to_owned(),
                is_archived: env.archived,
                latest_deployment_log_id: env.latest.clone(),
                updated_at: env.updated_at,
            })
            .collect()
    }
}
