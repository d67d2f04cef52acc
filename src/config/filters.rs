//! The filter flags: which deployments and which projects are watched. They validate into
//! [`Filters`], which the poller applies and the state file records.

use clap::Args;

use super::{ConfigError, invalid, trimmed};
use crate::filter::{DEPLOYMENT_TYPES, DeploymentFilter, ProjectFilter};
use crate::state::STATUSES;

/// What is watched.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Filters")]
pub struct FilterArgs {
    /// Watch only these deployment types, comma-separated (e.g. deploy,destroy) [default: all]
    #[arg(
        long,
        env = "ENV0_EXPORTER_DEPLOYMENT_TYPES",
        value_delimiter = ',',
        global = true
    )]
    pub deployment_types: Vec<String>,
    /// Watch only runs whose current status is one of these, comma-separated (e.g. SUCCESS,FAILURE) [default: all]
    #[arg(
        long,
        env = "ENV0_EXPORTER_STATUSES",
        value_delimiter = ',',
        global = true
    )]
    pub statuses: Vec<String>,
    /// Watch only runs started by these env0 user ids, comma-separated [default: all]
    #[arg(
        long,
        env = "ENV0_EXPORTER_USER_IDS",
        value_delimiter = ',',
        global = true
    )]
    pub user_ids: Vec<String>,
    /// Let --deployment-types and --statuses take values env0 does not document (yet)
    #[arg(long, env = "ENV0_EXPORTER_ALLOW_UNKNOWN_FILTER_VALUES", global = true)]
    pub allow_unknown_filter_values: bool,
    /// Watch only these projects: ids or name patterns (`*`, `?`), comma-separated; environments of other projects are never read [default: all]
    #[arg(
        long,
        env = "ENV0_EXPORTER_PROJECTS",
        value_delimiter = ',',
        global = true
    )]
    pub projects: Vec<String>,
    /// Never watch these projects: ids or name patterns (`*`, `?`), comma-separated; wins over --projects
    #[arg(
        long,
        env = "ENV0_EXPORTER_EXCLUDE_PROJECTS",
        value_delimiter = ',',
        global = true
    )]
    pub exclude_projects: Vec<String>,
}

/// Validated filters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Which deployments are watched.
    pub deployments: DeploymentFilter,
    /// Which projects are watched.
    pub projects: ProjectFilter,
}

impl FilterArgs {
    /// Checks the filters.
    ///
    /// # Errors
    /// The first wrong value, naming its flag.
    pub fn validate(&self) -> Result<Filters, ConfigError> {
        Ok(Filters {
            deployments: DeploymentFilter {
                deployment_types: self.values(
                    "--deployment-types",
                    &self.deployment_types,
                    Some(&DEPLOYMENT_TYPES),
                )?,
                statuses: self.values("--statuses", &self.statuses, Some(&STATUSES))?,
                user_ids: self.values("--user-ids", &self.user_ids, None)?,
            },
            // Project names are free text: white space inside a pattern is kept.
            projects: ProjectFilter {
                include: trimmed(&self.projects),
                exclude: trimmed(&self.exclude_projects),
            },
        })
    }

    /// Trims, drops empties and duplicates, and checks values against env0's documented list.
    fn values(
        &self,
        flag: &'static str,
        values: &[String],
        known: Option<&[&str]>,
    ) -> Result<Vec<String>, ConfigError> {
        let mut out: Vec<String> = Vec::new();
        for value in values.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
            if value.contains(char::is_whitespace) {
                return Err(invalid(flag, format!("'{value}' contains white space")));
            }
            if let Some(known) = known
                && !self.allow_unknown_filter_values
                && !known.contains(&value)
            {
                return Err(invalid(
                    flag,
                    format!(
                        "'{value}' is not one of env0's values: {} (values env0 adds later can be let through with --allow-unknown-filter-values)",
                        known.join(", ")
                    ),
                ));
            }
            if !out.iter().any(|o| o == value) {
                out.push(value.to_owned());
            }
        }
        Ok(out)
    }
}
