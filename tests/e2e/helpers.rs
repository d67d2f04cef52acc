//! Test harness: the simulator and the real exporter on loopback ports, sharing one manual clock,
//! and a scraper that parses `/metrics`.
//!
//! Expected values come from the simulator's own records through [`expected_label`], a
//! re-statement of the documented label rules written for the tests, never from exporter code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use env0_exporter::app::{self, Running};
use env0_exporter::clock::{self, Clock, ManualClock, SharedClock};
use env0_exporter::config::Cli;
use env0_exporter::probe;
use env0_exporter::simulator::{RequestRecord, SimConfig, SimDeployment, Simulator, WebhookTarget};
use jiff::Timestamp;
use tokio::net::TcpListener;

pub(crate) const START: &str = "2026-07-01T12:00:00Z";
pub(crate) const REAL_TIMEOUT: Duration = Duration::from_secs(60);

/// The documented label rule: env0's string if it matches `^[A-Za-z][A-Za-z0-9_-]{0,63}$`,
/// `unknown` when missing, `other` otherwise (the 50-value cap is not reached by the simulator).
pub(crate) fn expected_label(raw: Option<&str>) -> String {
    match raw {
        None => "unknown".into(),
        Some(s) => {
            let ok = s.len() <= 64
                && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if ok { s.into() } else { "other".into() }
        }
    }
}

pub(crate) const FINISHED: [&str; 8] = [
    "SUCCESS",
    "FAILURE",
    "TIMEOUT",
    "CANCELLED",
    "INTERNAL_FAILURE",
    "ABORTED",
    "SKIPPED",
    "NEVER_DEPLOYED",
];

/// Whether `r` is one of the start-up probe's requests (`env0_exporter::probe`): its undated
/// sample of [`probe::SAMPLE_SIZE`] runs, or a dated listing 2 ms wide. They carry no filter and
/// read no environment's runs for counting.
pub(crate) fn is_probe(r: &RequestRecord) -> bool {
    let param = |name: &str| {
        url::form_urlencoded::parse(r.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if !r.path.ends_with("/deployments") || param("offset").as_deref() != Some("0") {
        return false;
    }
    let sample = probe::SAMPLE_SIZE.to_string();
    match (param("fromDate"), param("toDate")) {
        (None, None) => param("limit").as_deref() == Some(sample.as_str()),
        (Some(from), Some(to)) => {
            let (Ok(from), Ok(to)) = (from.parse::<Timestamp>(), to.parse::<Timestamp>()) else {
                return false;
            };
            to.duration_since(from) == jiff::SignedDuration::from_millis(2)
        }
        _ => false,
    }
}

pub(crate) fn is_finished(d: &SimDeployment) -> bool {
    FINISHED.contains(&d.status.as_str())
}

/// The unfinished runs among `runs` that are not their environment's latest as `sim` lists it
/// now: what an exporter re-reads to see them finish.
pub(crate) fn held_runs<'r>(sim: &Simulator, runs: &'r [SimDeployment]) -> Vec<&'r SimDeployment> {
    let latest: std::collections::HashMap<String, Option<String>> = sim
        .environments()
        .into_iter()
        .map(|e| (e.id, e.latest_deployment_log_id))
        .collect();
    runs.iter()
        .filter(|d| !is_finished(d))
        .filter(|d| latest.get(&d.environment_id).and_then(Option::as_deref) != Some(&d.id))
        .collect()
}

pub(crate) fn finish_time(d: &SimDeployment) -> Timestamp {
    d.finished_at.unwrap_or(d.updated_at)
}

/// HMAC-SHA256 of `body` under `secret`, in lowercase hex: the test crates' one helper for it
/// (`tests/common`), computed with the `hmac` crate, never with the exporter's or the
/// simulator's signer.
pub(crate) use crate::common::hmac_hex;

pub(crate) type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

/// Parses Prometheus text 0.0.4 samples (enough for this exporter's output).
pub(crate) fn parse_metrics(text: &str) -> Vec<Sample> {
    parse_metrics_of(text, |_| true)
}

/// [`parse_metrics`], keeping only the samples whose name `keep` takes: the labels of the rest
/// (most of a body is histogram buckets) are never parsed.
pub(crate) fn parse_metrics_of(text: &str, keep: impl Fn(&str) -> bool) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        // A name ends at its label set's `{`, or at the space before the value when it has none
        // (then the line has no `{`). `find(char)` searches with memchr, quick in a debug build.
        let name_end = line
            .find('{')
            .or_else(|| line.find(' '))
            .expect("sample line has a name");
        if !keep(&line[..name_end]) {
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect("sample line has a value");
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => (
                name.to_owned(),
                label_map(rest.strip_suffix('}').expect("label set closes")),
            ),
            None => (head.to_owned(), Labels::new()),
        };
        out.push(Sample {
            name,
            labels,
            value: value.parse().expect("numeric value"),
        });
    }
    out
}

/// One sample carrying an exemplar in `OpenMetrics` text, as [`parse_openmetrics_exemplars`]
/// reads it.
#[derive(Debug, Clone)]
pub(crate) struct OmExemplar {
    /// The family the sample belongs to (its last `# TYPE` line).
    pub family: String,
    /// The family's type as its `# TYPE` line says.
    pub family_type: String,
    /// The sample's name (`…_bucket`, `…_total`).
    pub name: String,
    pub labels: Labels,
    pub exemplar_labels: Labels,
    pub exemplar_value: f64,
    /// The exemplar's timestamp in whole milliseconds (written as seconds with a fraction).
    pub exemplar_timestamp_ms: Option<i64>,
}

/// What [`parse_openmetrics_exemplars`] found: the exemplars and the number of families.
pub(crate) struct OmText {
    pub exemplars: Vec<OmExemplar>,
    pub families: usize,
}

/// Reads `OpenMetrics` 1.0 text written for the tests from the spec, not from exporter code:
/// every sample line must belong to the family of the last `# TYPE` line (its name, or its name
/// with a `_bucket`, `_count`, `_sum`, `_total`, `_created` or `_info` suffix), the text must end
/// in `# EOF`, and a sample may carry an exemplar (`value # {labels} value [timestamp]`). Panics
/// with the offending line on anything else. The reference parser (Python `prometheus_client`)
/// reads the same output in the full test command (`scripts/check-metrics.sh`).
pub(crate) fn parse_openmetrics_exemplars(text: &str) -> OmText {
    const SUFFIXES: [&str; 7] = [
        "", "_bucket", "_count", "_sum", "_total", "_created", "_info",
    ];
    assert_eq!(
        text.lines().last(),
        Some("# EOF"),
        "OpenMetrics text ends in # EOF"
    );
    let mut family: Option<(String, String)> = None;
    let mut families = 0;
    let mut exemplars = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
            family = Some((name.to_owned(), kind.to_owned()));
            families += 1;
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (family_name, family_type) = family.as_ref().expect("a sample after a # TYPE line");
        let (sample, exemplar) = match line.split_once(" # {") {
            Some((sample, exemplar)) => (sample, Some(exemplar)),
            None => (line, None),
        };
        let (head, value) = sample.rsplit_once(' ').expect("sample line has a value");
        let _: f64 = value.parse().expect("numeric value");
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => (
                name,
                label_map(rest.strip_suffix('}').expect("labels close")),
            ),
            None => (head, Labels::new()),
        };
        assert!(
            SUFFIXES
                .iter()
                .any(|s| name.strip_suffix(s) == Some(family_name.as_str())),
            "sample {name} outside its family {family_name}: {line}"
        );
        let Some(exemplar) = exemplar else { continue };
        let (ex_labels, rest) = exemplar.split_once("} ").expect("exemplar labels close");
        let mut parts = rest.split(' ');
        let ex_value: f64 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("exemplar value: {line}"));
        let ts = parts.next().map(|t| {
            let (secs, frac) = t.split_once('.').unwrap_or((t, "0"));
            assert!(
                frac.len() <= 3,
                "exemplar timestamp beyond milliseconds: {line}"
            );
            let millis: i64 = format!("{frac:0<3}").parse().expect("timestamp fraction");
            secs.parse::<i64>().expect("timestamp seconds") * 1000 + millis
        });
        assert!(
            parts.next().is_none(),
            "trailing text after an exemplar: {line}"
        );
        exemplars.push(OmExemplar {
            family: family_name.clone(),
            family_type: family_type.clone(),
            name: name.to_owned(),
            labels,
            exemplar_labels: label_map(ex_labels),
            exemplar_value: ex_value,
            exemplar_timestamp_ms: ts,
        });
    }
    OmText {
        exemplars,
        families,
    }
}

/// The label set `name="value",…` (between the braces), values unescaped (`\"`, `\\`, `\n`).
/// Written for speed in a debug build: every end-to-end assertion scrapes and reads thousands
/// of samples.
fn label_map(body: &str) -> Labels {
    let mut labels = Labels::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label has =\"");
        let (value, end) = match after.find('"') {
            // The common case: nothing escaped, the value is a slice.
            Some(i) if !after[..i].contains('\\') => (after[..i].to_owned(), i),
            _ => {
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().expect("label value closes") {
                        (i, '"') => break i,
                        (_, '\\') => match chars.next().expect("escape has a character") {
                            (_, 'n') => value.push('\n'),
                            (_, c) => value.push(c),
                        },
                        (_, c) => value.push(c),
                    }
                };
                (value, end)
            }
        };
        labels.insert(name.to_owned(), value);
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    labels
}

/// Non-zero samples of one metric, keyed by their labels.
pub(crate) fn series(samples: &[Sample], name: &str) -> BTreeMap<Labels, f64> {
    samples
        .iter()
        .filter(|s| s.name == name && s.value != 0.0)
        .map(|s| (s.labels.clone(), s.value))
        .collect()
}

pub(crate) fn labels(pairs: &[(&str, String)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

pub(crate) struct Harness {
    pub clock: Arc<ManualClock>,
    pub sim: Simulator,
    pub exporter: Option<Running>,
    pub started: Timestamp,
    pub poll_interval: Duration,
    pub lookback: Duration,
    /// The simulator's API URL, for an exporter started later (a restart).
    pub endpoint: String,
    http: reqwest::Client,
    sim_stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Webhooks in a harness: the exporter's secret, and whether the simulator sends to it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Webhooks<'a> {
    pub secret: &'a str,
    pub sim_sends: bool,
}

/// The simulator a [`Harness`] started with `config` holds, without an exporter: the world is a
/// function of the seed and the clock, so a twin on its own clock at [`START`] tells a test what
/// the harness' simulator will hold (its projects, users, busy environments) before it starts.
pub(crate) fn twin(config: SimConfig) -> Simulator {
    Simulator::new(config, Arc::new(ManualClock::new(START.parse().unwrap())))
}

impl Harness {
    /// Starts the simulator and the exporter; `extra` are exporter flags beyond endpoint and key.
    pub(crate) async fn start(sim_config: SimConfig, extra: &[&str]) -> Self {
        Self::start_with(sim_config, extra, None).await
    }

    /// Like [`start`](Self::start), with `--webhook-secret` set and, when `sim_sends`, the
    /// simulator sending its deliveries to the exporter's `/webhooks/env0`.
    pub(crate) async fn start_with(
        sim_config: SimConfig,
        extra: &[&str],
        webhooks: Option<Webhooks<'_>>,
    ) -> Self {
        Self::start_prepared(sim_config, extra, webhooks, |_| {}).await
    }

    /// Like [`start_with`](Self::start_with), handing the simulator to `prepare` before the
    /// exporter starts (to inject faults its first poll meets).
    pub(crate) async fn start_prepared(
        mut sim_config: SimConfig,
        extra: &[&str],
        webhooks: Option<Webhooks<'_>>,
        prepare: impl FnOnce(&Simulator),
    ) -> Self {
        let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
        let shared: SharedClock = clock.clone();
        // The exporter's port first: the simulator's webhooks go to it.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let exporter_addr = listener.local_addr().unwrap();
        if let Some(w) = webhooks.filter(|w| w.sim_sends) {
            sim_config.webhook = Some(WebhookTarget {
                url: format!("http://{exporter_addr}/webhooks/env0")
                    .parse()
                    .unwrap(),
                secret: w.secret.to_owned(),
            });
        }
        let sim = Simulator::new(sim_config, shared.clone());
        prepare(&sim);
        let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sim_addr = sim_listener.local_addr().unwrap();
        let (sim_stop, _task) = app::spawn_simulator(sim.clone(), sim_listener);

        let endpoint = format!("http://{sim_addr}/");
        let mut args = vec!["env0-exporter", "--api-endpoint", &endpoint];
        args.extend_from_slice(extra);
        if let Some(w) = &webhooks {
            args.extend_from_slice(&["--webhook-secret", w.secret]);
        }
        // With `--api-key` among the flags, the credentials are the flags' (a secret file, say);
        // without, the simulator's.
        let own_credentials = extra.contains(&"--api-key");
        let cli = Cli::try_parse_from(args).unwrap();
        let config = cli.exporter.validate(own_credentials).unwrap();
        let credentials = config
            .connection
            .credentials
            .clone()
            .unwrap_or_else(|| app::sim_credentials(&sim));
        let exporter = app::build(&config, &credentials, shared).unwrap();
        let running = app::start(exporter, listener);
        let harness = Self {
            started: clock.now(),
            clock,
            sim,
            exporter: Some(running),
            poll_interval: config.poller.poll_interval,
            lookback: config.poller.lookback,
            endpoint: endpoint.clone(),
            http: reqwest::Client::new(),
            sim_stop: Some(sim_stop),
        };
        harness.wait_for_polls(1).await;
        harness
    }

    /// An environment of `sim` with at least `n` runs created within a day of now.
    pub(crate) fn busy_in(sim: &Simulator, n: usize) -> String {
        Self::busy_envs_in(sim, n)
            .into_iter()
            .next()
            .expect("a busy environment")
    }

    /// The environments of `sim` with at least `n` runs created within a day of now.
    pub(crate) fn busy_envs_in(sim: &Simulator, n: usize) -> Vec<String> {
        let deployments = sim.deployments();
        let Some(now) = deployments.iter().map(|d| d.created_at).max() else {
            return Vec::new();
        };
        let cutoff = clock::sub(now, Duration::from_secs(20 * 3600));
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for d in deployments {
            if d.created_at >= cutoff {
                *counts.entry(d.environment_id).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .filter(|(_, c)| *c >= n)
            .map(|(e, _)| e)
            .collect()
    }

    pub(crate) fn polls(&self) -> u64 {
        self.exporter
            .as_ref()
            .unwrap()
            .snapshot
            .load()
            .health
            .polls_completed
    }

    pub(crate) async fn wait_for_polls(&self, n: u64) {
        let mut rx = self.exporter.as_ref().unwrap().snapshot.subscribe_polls();
        tokio::time::timeout(REAL_TIMEOUT, rx.wait_for(|p| *p >= n))
            .await
            .unwrap_or_else(|_| panic!("poll {n} did not finish in time"))
            .unwrap();
    }

    /// Advances the clock by one poll interval and waits for that poll to finish.
    pub(crate) async fn next_poll(&self) {
        let before = self.polls();
        self.clock.advance(self.poll_interval);
        self.wait_for_polls(before + 1).await;
    }

    /// Keeps nudging the clock forward (for retries and back-offs) until poll `n` is done.
    pub(crate) async fn nudge_until_poll(&self, n: u64, step: Duration) {
        let deadline = tokio::time::Instant::now() + REAL_TIMEOUT;
        while self.polls() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "poll {n} did not finish"
            );
            self.clock.advance(step);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(crate) fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.exporter.as_ref().unwrap().addr)
    }

    /// POSTs `body` with `headers` to the exporter's `/webhooks/env0`; the answer's status.
    pub(crate) async fn post_webhook(&self, body: &[u8], headers: &[(&str, &str)]) -> u16 {
        self.try_post_webhook(body, headers).await.unwrap()
    }

    /// [`post_webhook`](Self::post_webhook), the transport's error returned rather than a panic.
    pub(crate) async fn try_post_webhook(
        &self,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<u16, reqwest::Error> {
        let url = format!(
            "http://{}/webhooks/env0",
            self.exporter.as_ref().unwrap().addr
        );
        let mut req = self.http.post(url).body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Ok(req.send().await?.status().as_u16())
    }

    pub(crate) async fn scrape(&self) -> Vec<Sample> {
        self.scrape_only(&[]).await
    }

    /// [`scrape`](Self::scrape), keeping only the samples of the `families` named (all of them if
    /// none is): what the tests that scrape after every poll compare, parsed and no more.
    pub(crate) async fn scrape_only(&self, families: &[&str]) -> Vec<Sample> {
        let resp = self.http.get(self.metrics_url()).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        parse_metrics_of(&resp.text().await.unwrap(), |name| {
            families.is_empty() || families.contains(&name)
        })
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// env0's time now (the simulator's clock, offset from ours by `SimConfig::clock_offset`).
    pub(crate) fn sim_now(&self) -> Timestamp {
        self.sim.now()
    }

    /// env0's time when the exporter's first poll (its baseline) was done: the clock stands
    /// still during a poll, so runs that finished after this finished after the exporter began
    /// watching, by observation.
    pub(crate) fn sim_started(&self) -> Timestamp {
        self.started
            .checked_add(self.sim.config().clock_offset)
            .unwrap()
    }

    /// The simulator's truth for `env0_deployments` at the current time.
    pub(crate) fn expected_window(
        &self,
        keep: impl Fn(&SimDeployment) -> bool,
    ) -> BTreeMap<Labels, f64> {
        self.expected_window_at(clock::sub(self.sim_now(), self.lookback), keep)
    }

    /// [`expected_window`](Self::expected_window) with the window's old edge at `cutoff`: the
    /// runs `keep` selects, but for finished ones created before it.
    pub(crate) fn expected_window_at(
        &self,
        cutoff: Timestamp,
        keep: impl Fn(&SimDeployment) -> bool,
    ) -> BTreeMap<Labels, f64> {
        let deployments = self.sim.deployments();
        count_by_labels(
            deployments
                .iter()
                .filter(|d| keep(d) && !(is_finished(d) && d.created_at < cutoff)),
        )
    }

    /// The simulator's truth for `env0_deployments_finished_total`: runs that finished after the
    /// exporter's first poll, in env0's clock (what that poll saw finished is history).
    pub(crate) fn expected_finished(
        &self,
        keep: impl Fn(&SimDeployment) -> bool,
    ) -> BTreeMap<Labels, f64> {
        let started = self.sim_started();
        let deployments = self.sim.deployments();
        count_by_labels(
            deployments
                .iter()
                .filter(|d| keep(d) && is_finished(d) && finish_time(d) > started),
        )
    }

    /// The simulator's truth for `env0_environments`.
    pub(crate) fn expected_environments(&self) -> BTreeMap<Labels, f64> {
        let mut out = BTreeMap::new();
        for e in self.sim.environments() {
            if !e.is_archived {
                let l = labels(&[
                    ("status", expected_label(Some(&e.status))),
                    ("drift_status", expected_label(Some(&e.drift_status))),
                ]);
                *out.entry(l).or_insert(0.0) += 1.0;
            }
        }
        out
    }

    pub(crate) async fn stop(mut self) {
        if let Some(r) = self.exporter.take() {
            r.shutdown().await;
        }
        if let Some(s) = self.sim_stop.take() {
            let _ = s.send(());
        }
    }
}

/// Deployments counted by their [`deployment_labels`] (with the trigger): tallied by the raw
/// fields first, so each distinct label set is built once rather than once a deployment.
pub(crate) fn count_by_labels<'a>(
    deployments: impl Iterator<Item = &'a SimDeployment>,
) -> BTreeMap<Labels, f64> {
    type Raw<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a str>);
    let mut tally: std::collections::HashMap<Raw<'a>, (&'a SimDeployment, f64)> =
        std::collections::HashMap::new();
    for d in deployments {
        let raw = (
            d.deployment_type.as_str(),
            d.status.as_str(),
            d.blueprint_type.as_deref(),
            d.trigger_name.as_deref(),
        );
        tally.entry(raw).or_insert((d, 0.0)).1 += 1.0;
    }
    let mut out = BTreeMap::new();
    // Distinct raw values may share a label set (both shown as `other`): added up.
    for (d, n) in tally.into_values() {
        *out.entry(deployment_labels(d, true)).or_insert(0.0) += n;
    }
    out
}

pub(crate) fn deployment_labels(d: &SimDeployment, with_trigger: bool) -> Labels {
    let mut l = labels(&[
        ("deployment_type", expected_label(Some(&d.deployment_type))),
        ("status", expected_label(Some(&d.status))),
        ("iac_tool", expected_label(d.blueprint_type.as_deref())),
    ]);
    if with_trigger {
        l.insert("trigger".into(), expected_label(d.trigger_name.as_deref()));
    }
    l
}
