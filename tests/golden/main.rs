//! Golden file, in the `node_exporter` manner, and `docs/metrics.md` held against what is
//! registered; the rest of the documentation held against the code in [`docs`].
//!
//! The golden file: `once` against the simulator with a fixed seed on a
//! manual clock, its `/metrics` output compared with the committed files beside this one.
//!
//! It catches an accidental metric, label, HELP or TYPE change in review: such a change shows as
//! a diff of `tests/golden/once.prom` (Prometheus text 0.0.4) or `tests/golden/once.openmetrics`.
//! When the change is meant, refresh both files with
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test --test golden
//! ```
//!
//! and commit them with the change. Two things are normalised, because they are not a function of
//! the seed: the samples of a family are sorted (prometheus-client keeps them in a `HashMap`), and
//! the values of `env0_exporter_api_request_duration_seconds` (wall time of loopback HTTP) are
//! replaced by `<wall-time>`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod docs;
mod sizes;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use env0_exporter::app;
use env0_exporter::clock::{ManualClock, SharedClock};
use env0_exporter::config::Cli;
use env0_exporter::simulator::{SimConfig, Simulator};
use tokio::net::TcpListener;

const START: &str = "2026-07-01T12:00:00Z";
/// Families whose values are wall time, not a function of the seed and the manual clock.
const WALL_TIME_FAMILIES: [&str; 1] = ["env0_exporter_api_request_duration_seconds"];

/// Runs what `once` runs: one poll of the simulator, then the encoded metrics in both formats.
/// A second poll five simulated minutes later makes runs finish after the start, so the finished
/// counter and the histograms carry values.
async fn once_output() -> (String, String) {
    once_output_with(&[]).await
}

/// [`once_output`] with more exporter flags.
async fn once_output_with(flags: &[&str]) -> (String, String) {
    let clock = Arc::new(ManualClock::new(START.parse().unwrap()));
    let shared: SharedClock = clock.clone();
    let sim = Simulator::new(
        SimConfig {
            seed: 7,
            environments: 25,
            history: Duration::from_secs(12 * 3600),
            projects: 3,
            mean_deployment_interval: Duration::from_secs(20 * 60),
            ..SimConfig::default()
        },
        shared.clone(),
    );
    let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_addr = sim_listener.local_addr().unwrap();
    let (stop, _task) = app::spawn_simulator(sim.clone(), sim_listener);

    let endpoint = format!("http://{sim_addr}/");
    let mut args = vec!["env0-exporter", "--api-endpoint", &endpoint, "once"];
    args.extend_from_slice(flags);
    let cli = Cli::try_parse_from(args).unwrap();
    let config = cli.exporter.validate(false).unwrap();
    let mut exporter = app::build(&config, &app::sim_credentials(&sim), shared).unwrap();
    assert!(exporter.poller.poll(None).await, "first poll succeeds");
    clock.advance(Duration::from_secs(300));
    assert!(exporter.poller.poll(None).await, "second poll succeeds");
    let text = exporter.metrics.encode(false).unwrap();
    let openmetrics = exporter.metrics.encode(true).unwrap();
    let _ = stop.send(());
    (normalise(&text), normalise(&openmetrics))
}

/// Sorts the samples inside each family and masks wall-time values.
fn normalise(text: &str) -> String {
    let mut out = Vec::new();
    let mut samples: Vec<String> = Vec::new();
    let flush = |out: &mut Vec<String>, samples: &mut Vec<String>| {
        samples.sort();
        out.append(samples);
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut out, &mut samples);
            out.push(line.to_owned());
            continue;
        }
        let masked = WALL_TIME_FAMILIES
            .iter()
            .any(|f| line.starts_with(f))
            .then(|| {
                line.rsplit_once(' ')
                    .map(|(head, _)| format!("{head} <wall-time>"))
            })
            .flatten();
        samples.push(masked.unwrap_or_else(|| line.to_owned()));
    }
    flush(&mut out, &mut samples);
    let mut s = out.join("\n");
    s.push('\n');
    s
}

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
        .join(name)
}

fn check(name: &str, got: &str) {
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with UPDATE_GOLDEN=1", path.display()));
    if got != want {
        let mut diff = String::new();
        let (g, w): (Vec<_>, Vec<_>) = (got.lines().collect(), want.lines().collect());
        for line in w.iter().filter(|l| !g.contains(l)).take(20) {
            let _ = writeln!(diff, "- {line}");
        }
        for line in g.iter().filter(|l| !w.contains(l)).take(20) {
            let _ = writeln!(diff, "+ {line}");
        }
        panic!(
            "{} differs from the exporter's output (- golden, + now; first 20 of each):\n{diff}\n\
             If the change is meant: UPDATE_GOLDEN=1 cargo test --test golden",
            path.display()
        );
    }
}

#[tokio::test]
async fn once_output_equals_the_golden_files() {
    let (text, openmetrics) = once_output().await;
    check("once.prom", &text);
    check("once.openmetrics", &openmetrics);
}

#[tokio::test]
async fn the_output_is_the_same_on_every_run() {
    // The golden file is only useful if the output is a function of the seed and the clock.
    let a = once_output().await;
    let b = once_output().await;
    assert_eq!(a, b);
}

/// A family as `docs/metrics.md` documents it: its type, the labels it always has, and the
/// labels (written `[label]`) that an opt-in view adds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
    optional: BTreeSet<String>,
}

/// A family as exported: its type and label names.
type Exported = (String, BTreeSet<String>);

/// The body rows of every Markdown table whose header line starts with `header` (e.g.
/// `"| metric |"`), each as its line and its trimmed cells.
pub(crate) fn table_rows<'m>(markdown: &'m str, header: &str) -> Vec<(&'m str, Vec<&'m str>)> {
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in markdown.lines() {
        if line.starts_with(header) {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        rows.push((
            line,
            line.trim_matches('|').split('|').map(str::trim).collect(),
        ));
    }
    rows
}

/// The rows of `docs/metrics.md`'s metric tables (those whose header starts `| metric |`).
fn documented_metrics(markdown: &str) -> BTreeMap<String, Documented> {
    let mut rows = BTreeMap::new();
    for (line, cells) in table_rows(markdown, "| metric |") {
        assert!(cells.len() >= 3, "docs/metrics.md: short row: {line}");
        let name = cells[0].trim_matches('`').to_owned();
        // "gauge (OpenMetrics: info)" is a gauge in the Prometheus text format.
        let kind = cells[1].split_whitespace().next().unwrap_or("").to_owned();
        let (mut labels, mut optional) = (BTreeSet::new(), BTreeSet::new());
        for label in cells[2].split(',').map(str::trim).filter(|l| !l.is_empty()) {
            match label.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                Some(opt) => optional.insert(opt.to_owned()),
                None => labels.insert(label.to_owned()),
            };
        }
        let documented = Documented {
            kind,
            labels,
            optional,
        };
        let previous = rows.insert(name, documented);
        assert!(
            previous.is_none(),
            "docs/metrics.md lists a metric twice: {line}"
        );
    }
    rows
}

/// Every family of a Prometheus text 0.0.4 rendering: name, type, label names (`le` aside).
fn exported_metrics(text: &str) -> BTreeMap<String, Exported> {
    let mut families: BTreeMap<String, Exported> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            families.insert(name.to_owned(), (kind.to_owned(), BTreeSet::new()));
        } else if !line.starts_with('#') {
            let head = line.rsplit_once(' ').unwrap().0;
            let (series, labels) = head.split_once('{').unwrap_or((head, ""));
            let family = families
                .keys()
                .filter(|f| series.starts_with(f.as_str()))
                .max_by_key(|f| f.len())
                .cloned()
                .unwrap_or_else(|| panic!("sample of no family: {line}"));
            let names = families.get_mut(&family).map(|f| &mut f.1).unwrap();
            for pair in labels.trim_end_matches('}').split(',') {
                if let Some((label, _)) = pair.split_once('=')
                    && label != "le"
                {
                    names.insert(label.to_owned());
                }
            }
        }
    }
    families
}

/// Where the documentation and the exported families disagree; `with_views` says whether the
/// opt-in labels are expected.
fn doc_differences(
    documented: &BTreeMap<String, Documented>,
    exported: &BTreeMap<String, Exported>,
    with_views: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (name, (kind, labels)) in exported {
        let Some(doc) = documented.get(name) else {
            out.push(format!("{name}: exported but not documented"));
            continue;
        };
        let mut want = doc.labels.clone();
        if with_views {
            want.extend(doc.optional.iter().cloned());
        }
        if (&doc.kind, &want) != (kind, labels) {
            out.push(format!(
                "{name}: documented as {} {want:?}, exported as {kind} {labels:?}",
                doc.kind
            ));
        }
    }
    out
}

#[tokio::test]
async fn docs_metrics_md_has_a_row_for_every_metric_and_a_metric_for_every_row() {
    let doc_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md");
    let documented = documented_metrics(&std::fs::read_to_string(&doc_path).unwrap());
    let plain = exported_metrics(&once_output().await.0);
    // The opt-in views, and the state file's metrics (registered only with --state-file).
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state");
    let views = exported_metrics(
        &once_output_with(&[
            "--project-label",
            "--environment-metrics",
            "--state-file",
            state_file.to_str().unwrap(),
        ])
        .await
        .0,
    );
    // Forwarding webhooks between shards (its family is registered only then).
    let forwarding = exported_metrics(
        &once_output_with(&[
            "--shard",
            "1/2",
            "--webhook-secret",
            "golden",
            "--webhook-forward-url-template",
            "http://127.0.0.1:9/shard-{shard}",
        ])
        .await
        .0,
    );
    let mut differences = doc_differences(&documented, &plain, false);
    differences.extend(doc_differences(&documented, &views, true));
    differences.extend(doc_differences(&documented, &forwarding, false));
    for name in documented.keys() {
        if [&plain, &views, &forwarding]
            .iter()
            .all(|exported| !exported.contains_key(name))
        {
            differences.push(format!("{name}: documented but not exported"));
        }
    }
    assert!(
        differences.is_empty(),
        "docs/metrics.md and the registered metrics differ:\n  {}",
        differences.join("\n  ")
    );
}

#[test]
fn the_docs_check_reads_rows_and_families_as_meant() {
    let md = "intro\n| metric | type | labels | meaning |\n|---|---|---|---|\n\
              | `a_total` | counter | x, y, [p] | … |\n| `b` | gauge (OpenMetrics: info) | | … |\n\n\
              | label | from | values |\n| `z` | q | r |\n";
    let docs = documented_metrics(md);
    assert_eq!(docs.len(), 2, "only metric tables count: {docs:?}");
    assert_eq!(docs["b"].kind, "gauge");
    let text = "# TYPE a_total counter\na_total{x=\"1\",y=\"2\"} 3\n\
                # TYPE h histogram\nh_bucket{k=\"v\",le=\"1\"} 0\nh_sum{k=\"v\"} 0\n";
    let exported = exported_metrics(text);
    assert_eq!(
        exported["h"].1,
        BTreeSet::from(["k".to_owned()]),
        "le is not a label of the family"
    );
    let only_a: BTreeMap<_, _> = exported
        .into_iter()
        .filter(|(n, _)| n == "a_total")
        .collect();
    assert!(doc_differences(&docs, &only_a, false).is_empty());
    let differences = doc_differences(&docs, &only_a, true);
    assert_eq!(
        differences.len(),
        1,
        "the view's [p] is missing: {differences:?}"
    );
}

#[test]
fn normalising_sorts_within_a_family_and_masks_wall_time() {
    let text = "# TYPE a counter\na{x=\"2\"} 1\na{x=\"1\"} 2\n# TYPE b gauge\nb 3\n\
                env0_exporter_api_request_duration_seconds_sum{endpoint=\"x\"} 0.0123\n";
    assert_eq!(
        normalise(text),
        "# TYPE a counter\na{x=\"1\"} 2\na{x=\"2\"} 1\n# TYPE b gauge\nb 3\n\
         env0_exporter_api_request_duration_seconds_sum{endpoint=\"x\"} <wall-time>\n"
    );
}
