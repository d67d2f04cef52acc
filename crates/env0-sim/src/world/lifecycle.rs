//! The lifecycle of deployments: what each event does, how a new run is drawn (type, trigger,
//! statuses, results), how runs of one environment step through their statuses one at a time,
//! and what each end does to the environment.
//!
//! Lifecycle rules:
//! - Each active environment gets new runs at exponential gaps (mean
//!   [`SimConfig::mean_deployment_interval`]). A few environments are dormant and stay
//!   `NEVER_DEPLOYED`; archived environments rarely get runs (a deploy that un-archives them).
//! - Runs of one environment execute one at a time: a run created while another is unfinished
//!   stays `QUEUED` until that one ends.
//! - A run goes `QUEUED` → `IN_PROGRESS` → a finished status; deploys and destroys may stop at
//!   `WAITING_FOR_USER` (approved back to `IN_PROGRESS`, or `CANCELLED`/`ABORTED`); a few go
//!   `ABORTING` → `ABORTED`; a few end straight from the queue (`SKIPPED`, `CANCELLED`,
//!   `NEVER_DEPLOYED`). `SKIPPED`, `NEVER_DEPLOYED` and half of the `CANCELLED` keep
//!   `finishedAt` null: their `updatedAt` is when they ended.
//! - **Only `deploy`, `destroy` and `task` move an environment's `latestDeploymentLog`** (when they
//!   are created); `prPlan`, `driftDetection`, `remotePlan`, `dryRun` and `moduleTest` never do.
//!   [`SimConfig::latest_moved_by`](crate::SimConfig::latest_moved_by) changes that
//!   (only deploy and destroy, or every type).
//! - Approval waits last 2 min to 6 h (scaled by the time scale); with
//!   [`SimConfig::long_approval_share`] that share of them lasts 2 to 12 h (not scaled), and the
//!   environment's later runs stay `QUEUED` behind it.
//! - With [`SimConfig::stuck_share`], that share of the `prPlan` and `driftDetection` runs that do
//!   not move `latestDeploymentLog` run beside the environment's queue: they take no turn, hold
//!   nothing up, leave the environment's status alone, and stay unfinished for 1.5 to 10 h
//!   (`QUEUED` then run, or `WAITING_FOR_USER` then approved and successful, or cancelled)
//!   while later runs go on.
//! - Environment status: in progress per type (`DEPLOY_IN_PROGRESS`, …; `dryRun` and `moduleTest`
//!   leave it alone), `WAITING_FOR_USER`, `ABORTING`; then deploy success → `ACTIVE`, deploy or
//!   destroy failure → `FAILED`, timeout → `TIMEOUT`, abort → `ABORTED`, destroy success →
//!   `INACTIVE` (archived 30 % of the time); a drift detection finding drift → driftStatus
//!   `DRIFTED` (and status `DRIFTED` half of the time), finding none → `OK`, failing → `ERROR`;
//!   anything else returns to the status before the run.
//!
//! [`SimConfig::mean_deployment_interval`]: crate::SimConfig::mean_deployment_interval
//! [`SimConfig::long_approval_share`]: crate::SimConfig::long_approval_share
//! [`SimConfig::stuck_share`]: crate::SimConfig::stuck_share

use std::time::Duration;

use jiff::Timestamp;

use super::World;
use super::entities::{Cost, Deployment, Environment, Lane, Results, Step};
use super::generate::{log_uniform, pick, uuid, whole_millis};
use super::queue::Event;
use super::vocabulary::{
    DeploymentType, DriftStatus, EnvStatus, Status, TRIGGERS, TYPE_WEIGHTS, trigger_weights,
};
use crate::LatestMovedBy;
use env0_clock as clock;

/// A wait of `min_hours` to `max_hours`, uniform on a log scale, not scaled by `time_scale`.
fn long_wait(rng: &mut fastrand::Rng, min_hours: f64, max_hours: f64) -> Duration {
    log_uniform(rng, min_hours * 3600.0, max_hours * 3600.0)
}

impl World {
    fn scaled(&self, d: Duration) -> Duration {
        whole_millis((d.as_secs_f64() * 1000.0 * self.time_scale).max(1.0))
    }

    /// Handles one event due at `at`.
    pub(super) fn handle(&mut self, at: Timestamp, event: Event) {
        match event {
            Event::NewRun(e) => {
                let gap = self.exp_gap(e);
                self.schedule(clock::add(at, gap), Event::NewRun(e));
                let env = &self.environments[e];
                if env.archived {
                    // Rarely, an archived environment is redeployed (and un-archived).
                    if self.rng.f64() < 0.1 {
                        self.environments[e].archived = false;
                        self.create_run(e, at, DeploymentType::Deploy, None);
                    }
                    return;
                }
                let kind = self.pick_type(e);
                self.create_run(e, at, kind, None);
            }
            Event::Seed(e, kind, outcome) => self.create_run(e, at, kind, Some(outcome)),
            Event::Step(e, key) => self.step(e, key, at),
        }
    }

    fn pick_type(&mut self, e: usize) -> DeploymentType {
        let kind = pick(&mut self.rng, &DeploymentType::ALL, &TYPE_WEIGHTS);
        let env = &self.environments[e];
        let deployed = !matches!(env.resting, EnvStatus::NeverDeployed | EnvStatus::Inactive);
        match kind {
            DeploymentType::Destroy | DeploymentType::Task if !deployed => DeploymentType::Deploy,
            DeploymentType::DriftDetection if !deployed || env.drift == DriftStatus::Disabled => {
                DeploymentType::Deploy
            }
            k => k,
        }
    }

    /// Draws the statuses a new run will go through.
    fn draw_plan(&mut self, kind: DeploymentType, forced: Option<Status>) -> (Vec<Step>, bool) {
        let rng = &mut self.rng;
        let queue = log_uniform(rng, 2.0, 120.0);
        let run = match kind {
            DeploymentType::Deploy | DeploymentType::Destroy => {
                if rng.f64() < 0.15 {
                    log_uniform(rng, 600.0, 1800.0)
                } else {
                    log_uniform(rng, 20.0, 600.0)
                }
            }
            DeploymentType::ModuleTest => log_uniform(rng, 60.0, 900.0),
            DeploymentType::DriftDetection | DeploymentType::Task => log_uniform(rng, 20.0, 600.0),
            _ => log_uniform(rng, 20.0, 300.0),
        };
        let approval = log_uniform(rng, 120.0, 6.0 * 3600.0);
        let abort = log_uniform(rng, 5.0, 60.0);
        let part = run.mul_f64(0.2 + 0.6 * rng.f64());
        let rest = run.saturating_sub(part);
        let needs_approval =
            matches!(kind, DeploymentType::Deploy | DeploymentType::Destroy) && rng.f64() < 0.2;
        let roll = rng.f64();
        let half = rng.bool();
        // Drawn only when asked for, so a world without long approvals is the same as before.
        let long_approval = (needs_approval && self.long_approval_share > 0.0)
            .then(|| (rng.f64() < self.long_approval_share).then(|| long_wait(rng, 2.0, 12.0)))
            .flatten();
        let (q, run, part, rest, abort) = (
            self.scaled(queue),
            self.scaled(run),
            self.scaled(part),
            self.scaled(rest),
            self.scaled(abort),
        );
        let approval = long_approval.unwrap_or_else(|| self.scaled(approval));
        let step = |after, to| Step { after, to };
        if let Some(outcome) = forced {
            return (vec![step(q, Status::InProgress), step(run, outcome)], true);
        }
        let mut plan = Vec::with_capacity(5);
        let mut records_finish = true;
        if roll < 0.02 {
            plan.push(step(q, Status::Skipped));
            records_finish = false;
        } else if roll < 0.035 {
            plan.push(step(q, Status::Cancelled));
            records_finish = half;
        } else if roll < 0.04 && matches!(kind, DeploymentType::Deploy | DeploymentType::Destroy) {
            plan.push(step(q, Status::NeverDeployed));
            records_finish = false;
        } else if roll < 0.06 {
            plan.push(step(q, Status::InProgress));
            plan.push(step(part, Status::Aborting));
            plan.push(step(abort, Status::Aborted));
        } else if needs_approval {
            plan.push(step(q, Status::InProgress));
            plan.push(step(part, Status::WaitingForUser));
            let r = (roll - 0.06) / 0.94;
            if r < 0.75 {
                plan.push(step(approval, Status::InProgress));
                plan.push(step(rest, Self::final_status(r / 0.75)));
            } else if r < 0.9 {
                plan.push(step(approval, Status::Cancelled));
                records_finish = half;
            } else {
                plan.push(step(approval, Status::Aborted));
            }
        } else {
            plan.push(step(q, Status::InProgress));
            let final_status = Self::final_status((roll - 0.06) / 0.94);
            if final_status == Status::Cancelled {
                records_finish = half;
            }
            plan.push(step(run, final_status));
        }
        (plan, records_finish)
    }

    /// The plan of a run left unfinished for hours beside its environment's queue: half stay
    /// `QUEUED` that long (as behind a lock) and then run as `plan` says; the others start, wait
    /// for approval that long, and are then approved (and succeed) or cancelled.
    fn stuck_plan(&mut self, plan: Vec<Step>, records_finish: bool) -> (Vec<Step>, bool) {
        let rng = &mut self.rng;
        let wait = long_wait(rng, 1.5, 10.0);
        let step = |after, to| Step { after, to };
        if rng.bool() {
            let mut plan = plan;
            if let Some(first) = plan.first_mut() {
                first.after += wait;
            }
            return (plan, records_finish);
        }
        let (start, before) = (log_uniform(rng, 2.0, 120.0), log_uniform(rng, 10.0, 120.0));
        let rest = log_uniform(rng, 20.0, 300.0);
        let (start, before, rest) = (self.scaled(start), self.scaled(before), self.scaled(rest));
        let mut plan = vec![
            step(start, Status::InProgress),
            step(before, Status::WaitingForUser),
        ];
        if self.rng.f64() < 0.7 {
            plan.push(step(wait, Status::InProgress));
            plan.push(step(rest, Status::Success));
        } else {
            plan.push(step(wait, Status::Cancelled));
        }
        (plan, true)
    }

    /// The end of a run that ran through, from a uniform roll.
    fn final_status(roll: f64) -> Status {
        match roll {
            r if r < 0.82 => Status::Success,
            r if r < 0.92 => Status::Failure,
            r if r < 0.94 => Status::Timeout,
            r if r < 0.96 => Status::InternalFailure,
            _ => Status::Cancelled,
        }
    }

    fn draw_results(&mut self, kind: DeploymentType) -> Results {
        let rng = &mut self.rng;
        let resources = rng.u32(1..60);
        let summary = [rng.u32(0..6), rng.u32(0..4), rng.u32(0..3)];
        let cost = (matches!(kind, DeploymentType::Deploy | DeploymentType::PrPlan)
            && rng.f64() < 0.5)
            .then(|| Cost {
                total: f64::from(rng.u32(0..500_000)) / 100.0,
                diff: f64::from(rng.u32(0..20_000)) / 100.0 - 50.0,
                as_string: rng.f64() < 0.6,
            });
        let drift = rng.f64() < 0.3;
        match kind {
            DeploymentType::Deploy => Results {
                plan_summary: Some(summary),
                // From a value already drawn, so the world's draws stay what they were.
                imported: Some(u32::from(resources.is_multiple_of(4))),
                resource_count: Some(resources),
                cost,
                drift_detected: None,
            },
            DeploymentType::Destroy => Results {
                plan_summary: Some([0, 0, resources]),
                imported: None,
                resource_count: Some(0),
                cost: None,
                drift_detected: None,
            },
            DeploymentType::PrPlan | DeploymentType::RemotePlan | DeploymentType::DryRun => {
                Results {
                    plan_summary: Some(summary),
                    imported: None,
                    resource_count: None,
                    cost,
                    drift_detected: None,
                }
            }
            DeploymentType::DriftDetection => Results {
                plan_summary: Some(if drift { summary } else { [0, 0, 0] }),
                imported: None,
                resource_count: None,
                cost: None,
                drift_detected: Some(drift),
            },
            DeploymentType::Task | DeploymentType::ModuleTest => Results {
                plan_summary: None,
                imported: None,
                resource_count: None,
                cost: None,
                drift_detected: None,
            },
        }
    }

    fn create_run(
        &mut self,
        e: usize,
        at: Timestamp,
        kind: DeploymentType,
        forced: Option<Status>,
    ) {
        let (mut plan, records_finish) = self.draw_plan(kind, forced);
        if !self.queued_after_created.is_zero()
            && let Some(first) = plan.first_mut()
        {
            // Queued first, then started: the three timestamps differ.
            first.after = first
                .after
                .max(self.queued_after_created + Duration::from_secs(1));
        }
        let results = self.draw_results(kind);
        let rng = &mut self.rng;
        let trigger = if forced.is_some() {
            Some("user")
        } else {
            pick(rng, &TRIGGERS, &trigger_weights(kind))
        };
        let user = rng.usize(0..self.users.len());
        let reviewer = rng.usize(0..self.users.len());
        let pr = rng.u32(1..2000);
        let git = trigger == Some("git") || kind == DeploymentType::PrPlan;
        let archives = rng.f64() < 0.3;
        let marks_drifted = rng.bool();
        let id = uuid(rng);
        let moves_latest = match self.latest_moved_by {
            LatestMovedBy::DeployDestroyTask => kind.moves_latest(),
            LatestMovedBy::DeployDestroy => {
                matches!(kind, DeploymentType::Deploy | DeploymentType::Destroy)
            }
            LatestMovedBy::Every => true,
        };
        let stuck = forced.is_none()
            && !moves_latest
            && matches!(
                kind,
                DeploymentType::PrPlan | DeploymentType::DriftDetection
            )
            && self.stuck_share > 0.0
            && self.rng.f64() < self.stuck_share;
        let (plan, records_finish) = if stuck {
            self.stuck_plan(plan, records_finish)
        } else {
            (plan, records_finish)
        };
        self.next_key += 1;
        let approved = plan.iter().any(|s| s.to == Status::WaitingForUser);
        let dep = Deployment {
            key: self.next_key,
            id: id.clone(),
            kind,
            status: Status::Queued,
            trigger,
            user,
            reviewed_by: approved.then_some(reviewer),
            aborted_by: None,
            pr_number: git.then_some(pr),
            created_at: at,
            queued_at: clock::add(at, self.queued_after_created),
            started_at: None,
            finished_at: None,
            updated_at: at,
            results,
            records_finish,
            archives,
            marks_drifted,
            plan: plan.into(),
            lane: if stuck { Lane::Beside } else { Lane::Queue },
        };
        let key = dep.key;
        let env = &mut self.environments[e];
        let pos = env
            .deployments
            .partition_point(|d| (d.created_at, d.id.as_str()) <= (at, id.as_str()));
        env.deployments.insert(pos, dep);
        self.by_id.insert(id.clone(), e);
        if moves_latest {
            env.latest = Some(id);
            env.updated_at = at;
        }
        if stuck {
            self.schedule_next_step(e, key, at);
        } else if env.active.is_none() {
            env.active = Some(key);
            self.schedule_next_step(e, key, at);
        } else {
            env.waiting.push_back(key);
        }
        self.note_change(e, key, at, None);
    }

    pub(super) fn find(&self, e: usize, key: u64) -> Option<usize> {
        self.environments[e]
            .deployments
            .iter()
            .rposition(|d| d.key == key)
    }

    fn schedule_next_step(&mut self, e: usize, key: u64, from: Timestamp) {
        let Some(i) = self.find(e, key) else { return };
        if let Some(step) = self.environments[e].deployments[i].plan.front() {
            let at = clock::add(from, step.after);
            self.schedule(at, Event::Step(e, key));
        }
    }

    fn step(&mut self, e: usize, key: u64, at: Timestamp) {
        let Some(i) = self.find(e, key) else { return };
        let env = &mut self.environments[e];
        let d = &mut env.deployments[i];
        let Some(step) = d.plan.pop_front() else {
            return;
        };
        let was = d.status;
        d.status = step.to;
        d.updated_at = at;
        if step.to == Status::InProgress && d.started_at.is_none() {
            d.started_at = Some(at);
        }
        if step.to == Status::Aborted {
            d.aborted_by = d.reviewed_by.or(Some(d.user));
        }
        let finished = step.to.is_finished();
        if finished && d.records_finish {
            d.finished_at = Some(at);
        }
        if d.plan.is_empty() {
            d.plan = std::collections::VecDeque::new();
        }
        if d.lane == Lane::Beside {
            if !finished {
                self.schedule_next_step(e, key, at);
            }
            self.note_change(e, key, at, Some(was));
            return;
        }
        let (kind, archives, marks_drifted) = (d.kind, d.archives, d.marks_drifted);
        let drift_found = d.results.drift_detected == Some(true);
        let (old_status, old_drift) = (env.status, env.drift);
        match step.to {
            Status::InProgress => {
                if let Some(s) = kind.in_progress_status() {
                    env.status = s;
                }
            }
            Status::WaitingForUser => env.status = EnvStatus::WaitingForUser,
            Status::Aborting if kind.moves_latest() => env.status = EnvStatus::Aborting,
            s if s.is_finished() => {
                let started = was != Status::Queued;
                env.resting =
                    Self::resting_after(env, kind, s, started, drift_found, marks_drifted);
                if kind == DeploymentType::Destroy && s == Status::Success && archives {
                    env.archived = true;
                }
                env.status = env.resting;
            }
            _ => {}
        }
        if env.status != old_status || env.drift != old_drift {
            env.updated_at = at;
        }
        if finished {
            env.active = None;
            if let Some(next) = env.waiting.pop_front() {
                env.active = Some(next);
                self.schedule_next_step(e, next, at);
            }
        } else {
            self.schedule_next_step(e, key, at);
        }
        self.note_change(e, key, at, Some(was));
    }

    /// The environment status after a run of `kind` ended with `s` (and its drift status, set
    /// in place).
    fn resting_after(
        env: &mut Environment,
        kind: DeploymentType,
        s: Status,
        started: bool,
        drift_found: bool,
        marks_drifted: bool,
    ) -> EnvStatus {
        use DeploymentType as T;
        let resting = env.resting;
        match (kind, s) {
            (T::Deploy, Status::Success) => {
                if env.drift == DriftStatus::Drifted {
                    env.drift = DriftStatus::Ok;
                }
                EnvStatus::Active
            }
            (T::Deploy | T::Destroy, Status::Failure | Status::InternalFailure) => {
                EnvStatus::Failed
            }
            (T::Deploy | T::Destroy, Status::Timeout) => EnvStatus::Timeout,
            (T::Deploy | T::Destroy | T::Task, Status::Aborted) if started => EnvStatus::Aborted,
            (T::Destroy, Status::Success) => EnvStatus::Inactive,
            (T::DriftDetection, Status::Success) if drift_found => {
                env.drift = DriftStatus::Drifted;
                if marks_drifted && resting == EnvStatus::Active {
                    EnvStatus::Drifted
                } else {
                    resting
                }
            }
            (T::DriftDetection, Status::Success) => {
                env.drift = DriftStatus::Ok;
                if resting == EnvStatus::Drifted {
                    EnvStatus::Active
                } else {
                    resting
                }
            }
            (T::DriftDetection, Status::Failure | Status::Timeout | Status::InternalFailure) => {
                env.drift = DriftStatus::Error;
                resting
            }
            _ => resting,
        }
    }
}
