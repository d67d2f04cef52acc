//! The documentation held against the code and against itself, with nothing but Rust: the
//! README's metrics table against `docs/metrics.md` (which the golden test holds against a real
//! scrape), the alerts table of `docs/monitoring.md` against `rules/`, the README's length, and
//! every link of the README and `docs/` (files, GitHub heading anchors, the repository's URLs).
//! The site itself is built in strict mode by `scripts/check-docs.sh`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{documented_metrics, table_rows};

/// The repository's URL (the chart's `home`); links to files outside `docs/` are written with it.
const REPOSITORY: &str = "https://github.com/env0-exporter/env0-exporter";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Markdown files whose links are checked: the README and every page of `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The lines of a Markdown text outside fenced code blocks.
fn prose_lines(markdown: &str) -> Vec<&str> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            out.push(line);
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept),
/// each space a hyphen.
fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor of a Markdown file's headings, repeats numbered `-1`, `-2` as GitHub does.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in prose_lines(markdown) {
        let Some(text) = line
            .strip_prefix('#')
            .map(|rest| rest.trim_start_matches('#'))
            .filter(|rest| rest.starts_with(' '))
        else {
            continue;
        };
        let slug = github_slug(text);
        let n = seen.entry(slug.clone()).or_insert(0);
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of the inline links `[text](target)` outside code (fences and backticks).
fn link_targets(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose_lines(markdown) {
        // Inline code spans hold examples, not links: drop them first.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect();
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find(')') else { break };
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    out
}

/// Where one link of `file` fails to resolve, if it does.
fn broken(file: &Path, target: &str) -> Option<String> {
    let (path, anchor) = match target.split_once('#') {
        Some((path, anchor)) => (path, Some(anchor)),
        None => (target, None),
    };
    let resolved = if let Some(rest) = path.strip_prefix(REPOSITORY) {
        match rest
            .strip_prefix("/blob/main/")
            .or_else(|| rest.strip_prefix("/tree/main/"))
        {
            Some(in_repo) => root().join(in_repo),
            // The repository's front page (`#readme`) and other pages of it.
            None => return None,
        }
    } else if path.contains("://") || path.starts_with("mailto:") {
        return None;
    } else if path.is_empty() {
        file.to_path_buf()
    } else {
        file.parent().unwrap().join(path)
    };
    if !resolved.exists() {
        return Some(format!("{target}: {} does not exist", resolved.display()));
    }
    let anchor = anchor?;
    if resolved.extension().is_none_or(|e| e != "md") {
        return None;
    }
    let headings = anchors(&std::fs::read_to_string(&resolved).unwrap());
    (!headings.contains(anchor)).then(|| format!("{target}: no heading #{anchor}"))
}

#[test]
fn every_link_of_the_readme_and_the_docs_names_a_file_and_a_heading_that_exist() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for target in link_targets(&text) {
            checked += 1;
            if let Some(problem) = broken(&file, &target) {
                problems.push(format!("{}: {problem}", file.display()));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: the link reader is broken"
    );
    assert!(
        problems.is_empty(),
        "broken links:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_link_check_sees_a_missing_file_a_missing_heading_and_a_repository_path() {
    let readme = root().join("README.md");
    assert_eq!(broken(&readme, "docs/metrics.md#exemplars"), None);
    assert_eq!(broken(&readme, "docs/install.md"), None);
    assert!(broken(&readme, "docs/metrics.md#no-such-heading").is_some());
    assert!(broken(&readme, "docs/no-such-page.md").is_some());
    assert!(broken(&readme, "#no-such-heading").is_some());
    let page = root().join("docs/index.md");
    assert_eq!(broken(&page, "runbook.md#env0apifailing"), None);
    assert_eq!(
        broken(
            &page,
            &format!("{REPOSITORY}/tree/main/examples/quickstart")
        ),
        None
    );
    assert!(broken(&page, &format!("{REPOSITORY}/blob/main/no/such/file")).is_some());
    assert_eq!(
        github_slug("Cost at scale, and the full re-read interval"),
        "cost-at-scale-and-the-full-re-read-interval"
    );
    assert_eq!(github_slug("Securing /metrics"), "securing-metrics");
    assert_eq!(
        anchors("# A\n## B\n```\n# not a heading\n```\n## B\n"),
        ["a", "b", "b-1"].map(String::from).into()
    );
    assert_eq!(
        link_targets("[a](x.md) `[b](y.md)` [c](z.md#h)\n```\n[d](w.md)\n```\n"),
        ["x.md", "z.md#h"]
    );
}

#[test]
fn the_readme_fits_in_300_lines() {
    let lines = read("README.md").lines().count();
    assert!(
        lines <= 300,
        "README.md has {lines} lines: move sections into docs/"
    );
}

#[test]
fn the_readme_metrics_table_lists_every_family_of_docs_metrics_md_with_its_type_and_labels() {
    // docs/metrics.md is held against a real scrape by the test beside this module, so the
    // README's table is too.
    let readme = documented_metrics(&read("README.md"));
    let docs = documented_metrics(&read("docs/metrics.md"));
    let mut problems = Vec::new();
    for (name, doc) in &docs {
        match readme.get(name) {
            None => problems.push(format!("{name}: not in the README")),
            Some(row) if row != doc => {
                problems.push(format!("{name}: README {row:?}, docs/metrics.md {doc:?}"));
            }
            Some(_) => {}
        }
    }
    for name in readme.keys().filter(|n| !docs.contains_key(*n)) {
        problems.push(format!("{name}: in the README, not in docs/metrics.md"));
    }
    assert!(docs.len() > 30, "only {} families read", docs.len());
    assert!(
        problems.is_empty(),
        "README metrics table:\n  {}",
        problems.join("\n  ")
    );
}

/// Each alert of `rules/env0-exporter.alerts.yml`: its `for:` and its `severity` label.
fn alert_rules() -> BTreeMap<String, (String, String)> {
    let rules: serde_json::Value = serde_norway::from_str(&read("rules/env0-exporter.alerts.yml"))
        .expect("rules/env0-exporter.alerts.yml");
    let mut out = BTreeMap::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            let field = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
            let previous = out.insert(
                name.to_owned(),
                (field(&rule["for"]), field(&rule["labels"]["severity"])),
            );
            assert!(previous.is_none(), "alert {name} twice in rules/");
        }
    }
    out
}

/// The rows of the alerts table of `docs/monitoring.md` (header `| alert | fires when | for |
/// severity |`): name → (for, severity).
fn documented_alerts(markdown: &str) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for (line, cells) in table_rows(markdown, "| alert |") {
        let [name, .., for_, severity] = cells.as_slice() else {
            panic!("docs/monitoring.md: short alert row: {line}");
        };
        let previous = out.insert(
            name.trim_matches('`').to_owned(),
            ((*for_).to_owned(), (*severity).to_owned()),
        );
        assert!(
            previous.is_none(),
            "docs/monitoring.md lists an alert twice: {line}"
        );
    }
    out
}

#[test]
fn the_alerts_table_lists_every_alert_of_the_rules_with_its_for_and_severity() {
    let rules = alert_rules();
    let documented = documented_alerts(&read("docs/monitoring.md"));
    assert!(
        rules.len() >= 10,
        "only {} alerts read from rules/",
        rules.len()
    );
    let names: BTreeSet<&String> = rules.keys().chain(documented.keys()).collect();
    let problems: Vec<String> = names
        .into_iter()
        .filter(|n| rules.get(*n) != documented.get(*n))
        .map(|n| {
            format!(
                "{n}: rules/ {:?}, docs/monitoring.md {:?}",
                rules.get(n),
                documented.get(n)
            )
        })
        .collect();
    assert!(
        problems.is_empty(),
        "alerts table:\n  {}",
        problems.join("\n  ")
    );
}
