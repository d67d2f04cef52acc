//! The scale scenario in simulated time: a large organisation (10,000 environments by default)
//! served by the simulator over loopback HTTP, the exporter polling it on a manual clock 60 s
//! apart, so the request budget, not the machine, sets the pace.
//!
//! Prints Markdown table rows (`| scenario | measure | value | bound | ratio |`) for
//! `scripts/scale.sh`, which runs it and the real-process part:
//! - the backfill: requests it needed, the time the budget makes the minimum
//!   (requests / budget per minute) and the simulated time it took (polls × 60 s);
//! - steady polls with the organisation changing: mean requests per poll against the floor
//!   `ceil(E/100) + 2 + environments whose latest run changed` (counted here from the
//!   simulator's own state between polls, not from the exporter), with the periodic full
//!   re-read on (the default) and off;
//! - the freshness of runs that are not their environment's latest (plans, drift detections):
//!   for each such run the exporter held unfinished and that finished during the steady polls,
//!   the simulated time from its `finishedAt` (the simulator's record) to the first poll after
//!   which the exporter's store shows it finished: median, 90th percentile and maximum;
//! - the freshness of runs that start and finish between two polls (never seen unfinished): the
//!   delay from their `finishedAt` (the simulator's record) to the first poll after which the
//!   exporter's store holds them finished, median and 90th percentile, over the steady polls and
//!   `--freshness-polls` more;
//! - every 60 s window of the simulator's request log within the budget, and no 429;
//! - with `--webhooks`, the same with the simulator delivering every run's changes as signed
//!   webhooks to the exporter (taken in before each poll, as between polls in a running
//!   exporter): the steady cost and the freshness with webhooks live;
//! - series per family (the ten largest), with the default labels and with
//!   `--duration-histogram-labels` cut.
//!
//! Run: `cargo run --release --example scale -- --environments 10000 --budget 500`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use clap::Parser;
use env0_exporter::app;
use env0_exporter::clock::{self, Clock, ManualClock, SharedClock};
use env0_exporter::config::{Cli, Command};
use env0_exporter::simulator::{RequestRecord, Simulator, WebhookTarget};
use env0_exporter::state::Store;
use jiff::Timestamp;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
struct Args {
    /// Simulated environments
    #[arg(long, default_value_t = 10_000)]
    environments: u32,
    /// Simulated projects
    #[arg(long, default_value_t = 500)]
    projects: u32,
    /// Mean time between two runs of one environment
    #[arg(long, default_value = "72m")]
    mean_interval: String,
    /// The exporter's request budget per minute
    #[arg(long, default_value_t = 500)]
    budget: u32,
    /// Steady 60 s polls to measure per scenario
    #[arg(long, default_value_t = 10)]
    polls: usize,
    /// 60 s polls after the backfill and before the steady ones measured: the reads that
    /// waited behind the backfill are done by then
    #[arg(long, default_value_t = 0)]
    warmup_polls: usize,
    /// More 60 s polls after the steady ones of the default scenario, for the freshness of runs
    /// never seen unfinished (longer than the full re-read interval in force)
    #[arg(long, default_value_t = 120)]
    freshness_polls: usize,
    /// Only the default scenario (no full-re-read-off and cut-labels runs, no series table)
    #[arg(long)]
    default_only: bool,
    /// The labels `--duration-histogram-labels` keeps in the cut scenario
    #[arg(long, default_value = "deployment_type,iac_tool")]
    cut: String,
    /// The simulator sends every run's changes as signed webhooks to the exporter, which takes
    /// them in before each poll (webhooks live: unfinished non-latest runs are re-read only to
    /// repair a lost delivery)
    #[arg(long)]
    webhooks: bool,
    /// One more flag for `simulate` (repeat it; e.g. `--sim-flag=--sim-seed --sim-flag=7`)
    #[arg(long = "sim-flag", allow_hyphen_values = true)]
    sim_flags: Vec<String>,
    /// One more flag for the exporter, in every scenario (repeat it; e.g.
    /// `--exporter-flag=--unfinished-reread-max-interval --exporter-flag=30m`)
    #[arg(long = "exporter-flag", allow_hyphen_values = true)]
    exporter_flags: Vec<String>,
}

/// A simulator and an exporter on a manual clock.
struct Scenario {
    clock: Arc<ManualClock>,
    sim: Simulator,
    exporter: app::Exporter,
    environments: usize,
    /// Per steady poll, the delays from a non-latest run's finish to the exporter showing it.
    nonlatest_freshness: Vec<Duration>,
    /// Followed after each steady poll when set.
    freshness: Option<Freshness>,
    /// Deployment reads of the steady polls by kind (the poll report's), summed.
    steady_reads: BTreeMap<&'static str, usize>,
}

/// What one steady poll cost, in requests.
struct PollCost {
    /// All of them.
    requests: usize,
    /// The floor: the listing's pages and one read per environment whose latest run changed.
    floor: usize,
    /// The periodic full re-reads.
    full: usize,
    /// Second and further pages of reads of over 100 runs.
    further: usize,
}

/// The secret the simulator signs its webhook deliveries with (`--webhooks`).
const WEBHOOK_SECRET: &str = "scale-webhook-secret";

/// The delay from a run's end to the first poll after which the exporter holds it finished, for
/// runs the exporter never held unfinished (they started and finished between two polls, so
/// only a read of their environment finds them). The run's end is the simulator's `finishedAt`;
/// runs without one (ended from the queue) are left out.
#[derive(Debug, Default)]
struct Freshness {
    /// The first poll followed: runs that finished before it are left out.
    since: Option<Timestamp>,
    /// Runs the exporter held unfinished after some poll.
    seen_unfinished: HashSet<String>,
    /// Runs found finished.
    counted: HashSet<String>,
    /// Seconds from `finishedAt` to the poll that found them, of those never held unfinished.
    delays: Vec<f64>,
}

impl Freshness {
    /// Notes what the exporter's store holds after the poll at `now`.
    fn after_poll(&mut self, sim: &Simulator, store: &Store, now: Timestamp) {
        let since = *self.since.get_or_insert(now);
        for d in sim.deployments() {
            if self.counted.contains(&d.id) {
                continue;
            }
            match store.deployment(&d.id) {
                Some(r) if !r.is_finished() => {
                    self.seen_unfinished.insert(d.id);
                }
                Some(_) => {
                    if let Some(end) = d.finished_at.filter(|end| *end > since)
                        && !self.seen_unfinished.contains(&d.id)
                    {
                        self.delays
                            .push(clock::elapsed(end, now).as_secs_f64().max(0.0));
                    }
                    self.counted.insert(d.id);
                }
                None => {}
            }
        }
    }

    /// (found, median, p90, not found yet) at `now`: runs finished since the first poll followed
    /// and never held unfinished; those not found yet count with their age at `now` (a lower
    /// bound, marked `≥`).
    fn summary(&self, sim: &Simulator, now: Timestamp) -> (usize, String, String, usize) {
        let since = self.since.unwrap_or(now);
        let mut all: Vec<(f64, bool)> = self.delays.iter().map(|&d| (d, false)).collect();
        let waiting: Vec<f64> = sim
            .deployments()
            .into_iter()
            .filter(|d| !self.counted.contains(&d.id) && !self.seen_unfinished.contains(&d.id))
            .filter_map(|d| d.finished_at.filter(|end| *end > since))
            .map(|end| clock::elapsed(end, now).as_secs_f64())
            .collect();
        all.extend(waiting.iter().map(|&d| (d, true)));
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let quantile = |q: f64| {
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len().max(1)) - 1;
            all.get(i).map_or_else(
                || "-".to_owned(),
                |&(d, open)| format!("{}{:.0} s", if open { "≥ " } else { "" }, d),
            )
        };
        (
            self.delays.len(),
            quantile(0.5),
            quantile(0.9),
            waiting.len(),
        )
    }
}

const POLL: Duration = Duration::from_secs(60);
/// A poll's deadline: just before the next one is due.
const POLL_DEADLINE: Duration = Duration::from_millis(59_999);

impl Scenario {
    async fn start(args: &Args, exporter_flags: &[&str]) -> Self {
        let environments = args.environments.to_string();
        let projects = args.projects.to_string();
        let mut sim_flags = vec![
            "env0-exporter",
            "simulate",
            "--sim-environments",
            &environments,
            "--sim-projects",
            &projects,
            "--sim-mean-deployment-interval",
            &args.mean_interval,
        ];
        sim_flags.extend(args.sim_flags.iter().map(String::as_str));
        let Some(Command::Simulate(sim_args)) = Cli::try_parse_from(sim_flags)
            .unwrap_or_else(|e| e.exit())
            .command
        else {
            unreachable!("simulate parses as simulate");
        };
        let mut sim_config = sim_args.config();
        sim_config.record_requests = true;
        let mut exporter_flags = exporter_flags.to_vec();
        exporter_flags.extend(args.exporter_flags.iter().map(String::as_str));
        let webhook_listener = if args.webhooks {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("loopback port");
            let url = format!(
                "http://{}/webhooks/env0",
                listener.local_addr().expect("local address")
            );
            sim_config.webhook = Some(WebhookTarget {
                url: url.parse().expect("url"),
                secret: WEBHOOK_SECRET.to_owned(),
            });
            exporter_flags.extend(["--webhook-secret", WEBHOOK_SECRET]);
            Some(listener)
        } else {
            None
        };

        let start = "2026-07-01T12:00:00Z".parse().expect("timestamp");
        let clock = Arc::new(ManualClock::new(start));
        let shared: SharedClock = clock.clone();
        let sim = Simulator::new(sim_config, shared.clone());
        let exporter = common::exporter_against(&sim, shared, &exporter_flags).await;
        if let Some(listener) = webhook_listener {
            let intake = exporter.webhook.clone().expect("webhooks on");
            let router = env0_exporter::webhook::router(intake);
            tokio::spawn(async move { axum::serve(listener, router).await });
        }
        let environments = sim.environments().len();
        Self {
            clock,
            sim,
            exporter,
            environments,
            nonlatest_freshness: Vec::new(),
            freshness: None,
            steady_reads: BTreeMap::new(),
        }
    }

    /// One poll at the clock's now, ending before the next one is due; with webhooks, the
    /// deliveries of what changed up to now are sent and taken in first.
    async fn poll(&mut self) {
        if self.exporter.webhook.is_some() {
            self.sim.advance();
            self.sim.webhooks_flushed().await;
            self.exporter.poller.take_queued_webhooks().await;
        }
        let deadline = clock::add(self.clock.now(), POLL_DEADLINE);
        self.exporter.poller.poll(Some(deadline)).await;
    }

    /// Polls every 60 s until nothing is pending: (polls, requests, wall time), and the
    /// requests by what they were for (deployment reads by kind, listings and the rest).
    async fn backfill(&mut self) -> (usize, usize, Duration, BTreeMap<&'static str, usize>) {
        let wall = Instant::now();
        let mut polls = 0;
        let mut by_kind: BTreeMap<&'static str, usize> = BTreeMap::new();
        loop {
            polls += 1;
            self.poll().await;
            if let Some(report) = self.exporter.poller.last_report() {
                for (kind, n) in &report.reads {
                    *by_kind.entry(kind).or_default() += n;
                }
            }
            if self.exporter.snapshot.load().health.backfill_pending == 0 {
                break;
            }
            self.clock.advance(POLL);
        }
        let requests = self.sim.requests();
        let reads: usize = by_kind.values().sum();
        by_kind.insert(
            "listings and other requests",
            requests.len().saturating_sub(reads),
        );
        (polls, requests.len(), wall.elapsed(), by_kind)
    }

    /// Each environment's latest run and that run's status, as the simulator holds them now.
    fn latest(&self) -> HashMap<String, (Option<String>, Option<String>)> {
        let status: HashMap<String, String> = self
            .sim
            .deployments()
            .into_iter()
            .map(|d| (d.id, d.status))
            .collect();
        self.sim
            .environments()
            .into_iter()
            .filter(|e| !e.is_archived)
            .map(|e| {
                let s = e
                    .latest_deployment_log_id
                    .as_ref()
                    .and_then(|id| status.get(id).cloned());
                (e.id, (e.latest_deployment_log_id, s))
            })
            .collect()
    }

    /// Runs the exporter holds unfinished that are not their environment's latest in the
    /// simulator (`latest`).
    fn held_non_latest(
        &self,
        latest: &HashMap<String, (Option<String>, Option<String>)>,
    ) -> HashSet<String> {
        self.exporter
            .poller
            .store()
            .deployments()
            .filter(|(_, r)| !r.is_finished())
            .filter(|(id, r)| {
                latest
                    .get(&**r.environment)
                    .is_none_or(|(l, _)| l.as_deref().is_none_or(|l| **id != *l))
            })
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// Of `held`, the runs the exporter now shows finished that finished (the simulator's
    /// records) after `since`: the delay from each finish to now. Counted runs leave `held`.
    fn note_finished(&mut self, held: &mut HashSet<String>, since: Timestamp) {
        let now = self.clock.now();
        let finished: HashMap<String, Timestamp> = self
            .sim
            .deployments()
            .into_iter()
            .filter_map(|d| Some((d.id, d.finished_at?)))
            .collect();
        let store = self.exporter.poller.store();
        held.retain(|id| {
            let Some(&end) = finished.get(id) else {
                return true;
            };
            if !store.deployment(id).is_some_and(|r| r.is_finished()) {
                return true;
            }
            if end >= since {
                self.nonlatest_freshness.push(clock::elapsed(end, now));
            }
            false
        });
    }

    /// `polls` steady polls: what each cost.
    async fn steady(&mut self, polls: usize) -> Vec<PollCost> {
        let mut before = self.latest();
        let mut out = Vec::new();
        let since = self.clock.now();
        let mut held = self.held_non_latest(&before);
        for _ in 0..polls {
            self.clock.advance(POLL);
            let now = self.latest();
            held.extend(self.held_non_latest(&now));
            let changed = now
                .iter()
                .filter(|(id, latest)| before.get(*id) != Some(latest))
                .count();
            let sent = self.sim.requests().len();
            self.poll().await;
            let log = self.sim.requests();
            let requests = log.len() - sent;
            let further = log[sent..].iter().filter(|r| is_further_page(r)).count();
            if let Some(f) = &mut self.freshness {
                f.after_poll(&self.sim, self.exporter.poller.store(), self.clock.now());
            }
            let report = self.exporter.poller.last_report();
            let full = report
                .and_then(|r| r.reads.get("full_sync").copied())
                .unwrap_or(0);
            for (kind, n) in report.iter().flat_map(|r| &r.reads) {
                *self.steady_reads.entry(kind).or_default() += n;
            }
            self.note_finished(&mut held, since);
            out.push(PollCost {
                requests,
                floor: self.environments.div_ceil(100) + 2 + changed,
                full,
                further,
            });
            before = now;
        }
        out
    }

    /// `polls` steady polls whose figures are dropped.
    async fn warm_up(&mut self, polls: usize) {
        if polls > 0 {
            let _ = self.steady(polls).await;
            self.steady_reads.clear();
            self.nonlatest_freshness.clear();
        }
    }

    /// Series per family of the Prometheus text rendering, largest first.
    fn series(&self) -> Vec<(String, usize)> {
        let text = self.exporter.metrics.encode(false).expect("encode");
        let mut families: BTreeMap<String, usize> = BTreeMap::new();
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                rest.split(' ')
                    .next()
                    .unwrap_or_default()
                    .clone_into(&mut family);
            } else if !line.starts_with('#') && !line.is_empty() {
                *families.entry(family.clone()).or_default() += 1;
            }
        }
        let mut out: Vec<(String, usize)> = families.into_iter().collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// Whether `r` asked for a second or further page of an environment's deployments (a read of
/// more than 100 runs: in the steady polls, nearly always a busy environment's full re-read).
fn is_further_page(r: &RequestRecord) -> bool {
    r.path.starts_with("/environments/")
        && r.path.ends_with("/deployments")
        && r.query.split('&').any(|p| {
            p.strip_prefix("offset=")
                .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
        })
}

/// The most requests in any window `[t, t + 60 s)` of the log, and the 429s in it.
fn windows(log: &[RequestRecord]) -> (usize, usize) {
    let mut times: Vec<Timestamp> = log.iter().map(|r| r.at).collect();
    times.sort_unstable();
    let mut most = 0;
    let mut end = 0;
    for (start, t) in times.iter().enumerate() {
        let limit = clock::add(*t, POLL);
        while end < times.len() && times[end] < limit {
            end += 1;
        }
        most = most.max(end - start);
    }
    (most, log.iter().filter(|r| r.status == 429).count())
}

#[allow(clippy::cast_precision_loss)]
fn ratio(a: usize, b: usize) -> String {
    if b == 0 {
        return "-".into();
    }
    format!("{:.2}", a as f64 / b as f64)
}

fn row(scenario: &str, measure: &str, value: &str, bound: &str, ratio: &str) {
    println!("| {scenario} | {measure} | {value} | {bound} | {ratio} |");
}

#[allow(clippy::cast_precision_loss)]
fn steady_rows(name: &str, costs: &[PollCost], budget: u32) {
    let n = costs.len().max(1) as f64;
    let requests: usize = costs.iter().map(|c| c.requests).sum();
    let floor: usize = costs.iter().map(|c| c.floor).sum();
    let full: usize = costs.iter().map(|c| c.full).sum();
    let further: usize = costs.iter().map(|c| c.further).sum();
    let max = costs.iter().map(|c| c.requests).max().unwrap_or(0);
    let bound = format!(
        "floor {:.1} = ceil(E/100) + 2 + changed latest runs; budget {budget}",
        floor as f64 / n
    );
    row(
        name,
        &format!(
            "steady 60 s polls ({}): mean requests per poll, all",
            costs.len()
        ),
        &format!("{:.1} (max {max})", requests as f64 / n),
        &bound,
        &ratio(requests, floor),
    );
    if full > 0 {
        row(
            name,
            "… of which periodic full re-reads (the budget's spare share) / the rest",
            &format!(
                "{:.1} / {:.1}",
                full as f64 / n,
                (requests - full) as f64 / n
            ),
            &bound,
            &ratio(requests - full, floor),
        );
    }
    if further > 0 {
        row(
            name,
            "… of which further pages of reads of over 100 runs (busy environments' full re-reads, nearly all) / the rest besides full re-reads",
            &format!(
                "{:.1} / {:.1}",
                further as f64 / n,
                (requests - full - further) as f64 / n
            ),
            &bound,
            &ratio(requests - full - further, floor),
        );
    }
}

/// The backfill's requests by what they were for.
fn backfill_kinds_row(environments: usize, by_kind: &BTreeMap<&'static str, usize>) {
    let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
    row(
        "default",
        "backfill requests by what they were for",
        &kinds.join(", "),
        &format!("{environments} backfill reads at least"),
        "-",
    );
}

/// The steady polls' deployment reads by kind, per poll.
#[allow(clippy::cast_precision_loss)]
fn reads_row(name: &str, reads: &BTreeMap<&'static str, usize>, polls: usize) {
    let n = polls.max(1) as f64;
    let kinds: Vec<String> = reads
        .iter()
        .map(|(k, r)| format!("{k} {:.1}", *r as f64 / n))
        .collect();
    row(
        name,
        "… deployment reads per steady poll by kind",
        &kinds.join(", "),
        "changed: in the floor",
        "-",
    );
}

/// The freshness of non-latest runs: median, 90th percentile and maximum of `delays`.
fn freshness_row(name: &str, delays: &[Duration]) {
    let mut d: Vec<u64> = delays.iter().map(Duration::as_secs).collect();
    d.sort_unstable();
    let at = |p: f64| {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rank = ((d.len() as f64) * p).ceil().max(1.0) as usize;
        d.get(rank.min(d.len()).saturating_sub(1)).copied()
    };
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |s| format!("{s} s"));
    row(
        name,
        &format!(
            "non-latest runs seen finished, from finishedAt to the poll showing it ({} runs): median / p90 / max",
            d.len()
        ),
        &format!(
            "{} / {} / {}",
            show(at(0.5)),
            show(at(0.9)),
            show(d.last().copied())
        ),
        "young runs: within 2 polls (120 s)",
        "",
    );
}

fn window_rows(name: &str, sim: &Simulator, budget: u32) {
    let (most, throttled) = windows(&sim.requests());
    row(
        name,
        "most requests in any 60 s window / 429s",
        &format!("{most} / {throttled}"),
        &format!("≤ {budget} / 0"),
        if most <= budget as usize && throttled == 0 {
            "ok"
        } else {
            "OVER"
        },
    );
}

/// Without the periodic full re-read: what the listing, the changes and the re-reads of
/// unfinished runs alone cost.
async fn full_reread_off(args: &Args, base: &[&str]) {
    let mut flags = base.to_vec();
    flags.extend(["--full-sync-interval", "0s"]);
    let name = if args.webhooks {
        "full re-read off, webhooks live"
    } else {
        "full re-read off"
    };
    let mut s = Scenario::start(args, &flags).await;
    let _ = s.backfill().await;
    s.warm_up(args.warmup_polls).await;
    let costs = s.steady(args.polls).await;
    steady_rows(name, &costs, args.budget);
    reads_row(name, &s.steady_reads, costs.len());
    freshness_row(name, &s.nonlatest_freshness);
    window_rows(name, &s.sim, args.budget);
}

#[tokio::main]
#[allow(clippy::cast_precision_loss)]
async fn main() {
    let args = Args::parse();
    let budget = args.budget.to_string();
    let base = ["--max-requests-per-minute", budget.as_str()];
    println!("| scenario (simulated time) | measure | value | bound | ratio |");
    println!("|---|---|---|---|---|");

    let default_name = if args.webhooks {
        "default, webhooks live (full re-read every 10m)"
    } else {
        "default (full re-read every 10m)"
    };
    // Default flags: backfill, steady polls with the periodic full re-read, series.
    let mut s = Scenario::start(&args, &base).await;
    let (polls, requests, wall, by_kind) = s.backfill().await;
    let deployments = s.exporter.poller.store().tracked();
    let e = s.environments;
    // The least a backfill can take: one read per environment and one listing, at the budget.
    let least = (e + e.div_ceil(100) + 2) as f64 / f64::from(args.budget);
    row(
        "default",
        &format!("backfill of {e} environments ({deployments} deployments tracked)"),
        &format!(
            "{requests} requests in {polls} polls = {polls} min simulated ({:.0} s wall)",
            wall.as_secs_f64()
        ),
        &format!("{least:.1} min = (E + ceil(E/100) + 2) / {budget} per min"),
        &format!("{:.2}", polls as f64 / least),
    );
    backfill_kinds_row(e, &by_kind);
    s.warm_up(args.warmup_polls).await;
    s.freshness = Some(Freshness::default());
    let costs = s.steady(args.polls).await;
    steady_rows(default_name, &costs, args.budget);
    reads_row(default_name, &s.steady_reads, costs.len());
    freshness_row(default_name, &s.nonlatest_freshness);
    let more = s.steady(args.freshness_polls).await;
    if let Some(f) = &s.freshness {
        let (found, median, p90, waiting) = f.summary(&s.sim, s.clock.now());
        row(
            "default",
            &format!(
                "runs never seen unfinished, over {} steady polls: delay from finishedAt to counted, median / p90",
                costs.len() + more.len()
            ),
            &format!("{median} / {p90}"),
            &format!("{found} runs found, {waiting} not yet"),
            "-",
        );
    }
    // While it backfills, the exporter also keeps up with what changes (the steady floor):
    // the backfill has the rest of the budget.
    let floor = costs.iter().map(|c| c.floor).sum::<usize>() as f64 / costs.len().max(1) as f64;
    let spare = f64::from(args.budget) - floor;
    if spare > 0.0 {
        row(
            "default",
            "backfill, against the budget left beside the steady floor",
            &format!("{polls} min simulated"),
            &format!(
                "{:.1} min = E / ({budget} − floor {floor:.1}) per min",
                e as f64 / spare
            ),
            &format!("{:.2}", polls as f64 / (e as f64 / spare)),
        );
    }
    window_rows("default", &s.sim, args.budget);
    let default_series = s.series();
    drop(s);
    if args.default_only {
        return;
    }

    full_reread_off(&args, &base).await;

    // The duration histogram cut to fewer labels.
    let mut flags = base.to_vec();
    flags.extend(["--duration-histogram-labels", args.cut.as_str()]);
    let mut s = Scenario::start(&args, &flags).await;
    let _ = s.backfill().await;
    s.steady(1).await;
    let cut_series: BTreeMap<String, usize> = s.series().into_iter().collect();
    drop(s);

    println!();
    println!(
        "| family (series after backfill + steady polls) | default labels | --duration-histogram-labels {} |",
        args.cut
    );
    println!("|---|---|---|");
    for (family, n) in default_series.iter().take(10) {
        let cut = cut_series.get(family).copied().unwrap_or(0);
        println!("| {family} | {n} | {cut} |");
    }
    let total: usize = default_series.iter().map(|f| f.1).sum();
    let cut_total: usize = cut_series.values().sum();
    println!("| all families | {total} | {cut_total} |");
}
