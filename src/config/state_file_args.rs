//! The state file flags: where the exporter keeps what it read, so that a restart resumes from
//! it, and how often it is written. They validate into the poller's [`StateFileConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{ConfigError, invalid, parse_duration};
use crate::state_file_format::StateFileConfig;

/// The state file.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "State file")]
pub struct StateFileArgs {
    /// File where the exporter keeps what it read, so that a restart resumes from it instead of re-reading the lookback window (e.g. on a mounted volume) [default: none]
    #[arg(long, env = "ENV0_EXPORTER_STATE_FILE", global = true)]
    pub state_file: Option<PathBuf>,
    /// Least time between two writes of --state-file after polls that read something (0 = after every such poll); it is also written at shutdown
    #[arg(long, env = "ENV0_EXPORTER_STATE_FILE_INTERVAL", default_value = "60s", value_parser = parse_duration, global = true)]
    pub state_file_interval: Duration,
}

impl StateFileArgs {
    /// The state file, `None` when off; its directory must exist (the file itself is created by
    /// the first write).
    ///
    /// # Errors
    /// A path that is a directory or whose directory does not exist.
    pub fn validate(&self) -> Result<Option<StateFileConfig>, ConfigError> {
        let Some(path) = &self.state_file else {
            return Ok(None);
        };
        if path.as_os_str().is_empty() {
            return Ok(None);
        }
        if path.file_name().is_none() || path.is_dir() {
            return Err(invalid(
                "--state-file",
                format!("{} is not a file path", path.display()),
            ));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(invalid(
                "--state-file",
                format!("directory {} does not exist", dir.display()),
            ));
        }
        Ok(Some(StateFileConfig {
            path: path.clone(),
            interval: self.state_file_interval,
        }))
    }
}
