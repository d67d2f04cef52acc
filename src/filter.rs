//! Which deployments are watched: env0's own deployment filters (`deploymentTypes`, `statuses`,
//! `userIds`), applied the same way to every path a deployment arrives by; and which projects
//! (`--projects`, `--exclude-projects`), applied to the environment listing before any
//! deployment is read.
//!
//! The filters go to env0 as query parameters on every deployment listing, and the same test is
//! applied to whatever the exporter learns otherwise (an environment's embedded latest run, later
//! webhooks), so a filtered-out run never shows in any metric.
//!
//! **Status filters select runs by their current status.** A run shows in `env0_deployments`
//! while its current status is one of the listed ones, and counts in
//! `env0_deployments_finished_total` once, when it is first seen in a listed *finished* status.
//! A run that leaves the listed statuses (e.g. `IN_PROGRESS` → `FAILURE` with
//! `--statuses IN_PROGRESS`) is dropped from the gauges. With a filter that lists only finished
//! statuses the exporter never tracks unfinished runs, and learns of each finish when env0 lists
//! the run in its final status.

use serde::{Deserialize, Serialize};

/// env0's documented deployment types.
pub(crate) const DEPLOYMENT_TYPES: [&str; 8] = [
    "deploy",
    "destroy",
    "prPlan",
    "driftDetection",
    "task",
    "remotePlan",
    "dryRun",
    "moduleTest",
];

/// The deployment filters; an empty list lets everything through. The state file records them
/// under the flags' names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentFilter {
    /// Deployment types to watch.
    pub deployment_types: Vec<String>,
    /// Current statuses to watch.
    pub statuses: Vec<String>,
    /// Users (`startedBy`) whose runs are watched.
    pub user_ids: Vec<String>,
}

fn admits(list: &[String], value: Option<&str>) -> bool {
    list.is_empty() || value.is_some_and(|v| list.iter().any(|l| l == v))
}

/// What the deployment filters look at in a run (a deployment log as observed), borrowed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Run<'a> {
    /// `type`.
    pub(crate) deployment_type: Option<&'a str>,
    /// `status`.
    pub(crate) status: Option<&'a str>,
    /// `startedBy`.
    pub(crate) started_by: Option<&'a str>,
}

impl DeploymentFilter {
    /// Whether the run passes every filter, exactly as env0's listing would decide.
    #[must_use]
    pub(crate) fn matches(&self, run: Run<'_>) -> bool {
        admits(&self.deployment_types, run.deployment_type)
            && admits(&self.statuses, run.status)
            && admits(&self.user_ids, run.started_by)
    }

    /// Whether no filter is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.deployment_types.is_empty() && self.statuses.is_empty() && self.user_ids.is_empty()
    }
}

/// Projects to watch: by id, or by a name pattern where `*` is any run of characters and `?`
/// any one character. Empty lists watch every project.
/// The state file records them under the flags' names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectFilter {
    /// Watch only projects matching one of these (`--projects`).
    #[serde(rename = "projects")]
    pub include: Vec<String>,
    /// Never watch projects matching one of these (`--exclude-projects`); wins over `include`.
    #[serde(rename = "exclude_projects")]
    pub exclude: Vec<String>,
}

impl ProjectFilter {
    /// Whether the project with this id and name is watched.
    #[must_use]
    pub fn matches(&self, id: &str, name: Option<&str>) -> bool {
        let hit = |patterns: &[String]| {
            patterns
                .iter()
                .any(|p| p == id || name.is_some_and(|n| glob_match(p, n)))
        };
        (self.include.is_empty() || hit(&self.include)) && !hit(&self.exclude)
    }

    /// Whether no project filter is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// Whether `text` matches `pattern` (`*` any run, `?` any one character, the rest literally).
/// Iterative with one back-track point, so linear-ish and free of recursion.
fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns_take_stars_and_question_marks() {
        for (pattern, text, want) in [
            ("payments", "payments", true),
            ("pay*", "payments", true),
            ("*ments", "payments", true),
            ("p?y*s", "payments", true),
            ("*", "", true),
            ("team-*-prod", "team-a-prod", true),
            ("team-*-prod", "team-a-staging", false),
            ("pay", "payments", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("?", "", false),
        ] {
            assert_eq!(glob_match(pattern, text), want, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn projects_are_chosen_by_id_or_name_and_excludes_win() {
        let f = ProjectFilter {
            include: vec!["pay*".into(), "p-42".into()],
            exclude: vec!["payments-legacy".into()],
        };
        assert!(f.matches("p-1", Some("payments")));
        assert!(f.matches("p-42", Some("anything")));
        assert!(!f.matches("p-2", Some("payments-legacy")));
        assert!(!f.matches("p-3", Some("data")));
        assert!(!f.matches("p-4", None));
        let all = ProjectFilter::default();
        assert!(all.is_empty() && all.matches("p-4", None));
        let none_of = ProjectFilter {
            exclude: vec!["data".into()],
            ..ProjectFilter::default()
        };
        assert!(none_of.matches("p-1", Some("web")) && !none_of.matches("p-2", Some("data")));
    }

    fn run<'a>(kind: &'a str, status: &'a str, user: Option<&'a str>) -> Run<'a> {
        Run {
            deployment_type: Some(kind),
            status: Some(status),
            started_by: user,
        }
    }

    #[test]
    fn an_empty_filter_lets_everything_through() {
        let f = DeploymentFilter::default();
        assert!(f.is_empty());
        assert!(f.matches(run("prPlan", "QUEUED", None)));
    }

    #[test]
    fn every_filter_must_admit_the_run() {
        let f = DeploymentFilter {
            deployment_types: vec!["deploy".into(), "destroy".into()],
            statuses: vec![],
            user_ids: vec!["auth0|bot".into()],
        };
        assert!(f.matches(run("deploy", "SUCCESS", Some("auth0|bot"))));
        assert!(!f.matches(run("prPlan", "SUCCESS", Some("auth0|bot"))));
        assert!(!f.matches(run("deploy", "SUCCESS", Some("auth0|human"))));
        assert!(
            !f.matches(run("deploy", "SUCCESS", None)),
            "a run with no user cannot match a user filter"
        );
        let f = DeploymentFilter {
            statuses: vec!["FAILURE".into()],
            ..DeploymentFilter::default()
        };
        assert!(f.matches(run("deploy", "FAILURE", None)));
        assert!(!f.matches(run("deploy", "IN_PROGRESS", None)));
    }
}
