//! The polling flags: how often env0 is read, how far back, how hard, and which share of the
//! organisation. They validate into the [`PollerConfig`], with the organisation, the filters and
//! the views the other groups give.

use std::time::Duration;

use clap::Args;

use super::{ConfigError, Filters, invalid, parse_duration};
use crate::poller::PollerConfig;
use crate::shard::Shard;
use crate::state::Views;

/// `--unfinished-reread-max-interval` when not set (or `--poll-interval`, when longer).
pub const DEFAULT_UNFINISHED_REREAD_MAX_INTERVAL: Duration = Duration::from_secs(600);

/// How env0 is polled.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Polling")]
pub struct PollingArgs {
    /// Time between two polls of env0
    #[arg(long, env = "ENV0_EXPORTER_POLL_INTERVAL", default_value = "60s", value_parser = parse_duration, global = true)]
    pub poll_interval: Duration,
    /// How far back deployments are read and shown by `env0_deployments`
    #[arg(long, env = "ENV0_EXPORTER_LOOKBACK", default_value = "24h", value_parser = parse_duration, global = true)]
    pub lookback: Duration,
    /// Every environment's deployments are re-read at least this often (0 = never)
    #[arg(long, env = "ENV0_EXPORTER_FULL_SYNC_INTERVAL", default_value = "10m", value_parser = parse_duration, global = true)]
    pub full_sync_interval: Duration,
    /// Longest gap between re-reads of an environment's unfinished runs other than its latest (the next poll first, then doubling): how stale their status may get, plus one poll; at least --poll-interval [default: 10m, or --poll-interval when longer]
    #[arg(long, env = "ENV0_EXPORTER_UNFINISHED_REREAD_MAX_INTERVAL", value_parser = parse_duration, global = true)]
    pub unfinished_reread_max_interval: Option<Duration>,
    /// The exporter's own budget of env0 API requests in any 60 s (env0 allows 1000 per IP, shared with your other env0 clients)
    #[arg(long, env = "ENV0_EXPORTER_MAX_REQUESTS_PER_MINUTE", default_value_t = crate::client::DEFAULT_MAX_REQUESTS_PER_MINUTE, value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub max_requests_per_minute: u32,
    /// Read only shard N of M of the organisation's environments (by a stable hash of their ids), so that M exporters share an organisation: N/M with N from 1, or a stateful set's pod name and M (`env0-exporter-0/3` is shard 1 of 3) [default: 1/1, every environment]
    #[arg(long, env = "ENV0_EXPORTER_SHARD", value_name = "N/M", value_parser = clap::value_parser!(Shard), global = true)]
    pub shard: Option<Shard>,
}

impl PollingArgs {
    /// The poller's configuration: these settings, with the organisation to watch, what is
    /// watched and the views.
    ///
    /// # Errors
    /// The first wrong setting, naming its flag.
    pub fn validate(
        &self,
        organization_id: Option<String>,
        filters: Filters,
        views: Views,
    ) -> Result<PollerConfig, ConfigError> {
        if self.poll_interval < Duration::from_secs(1) {
            return Err(invalid("--poll-interval", "must be at least 1s"));
        }
        if self.lookback < Duration::from_secs(60) {
            return Err(invalid("--lookback", "must be at least 1m"));
        }
        Ok(PollerConfig {
            organization_id,
            poll_interval: self.poll_interval,
            lookback: self.lookback,
            full_sync_interval: (!self.full_sync_interval.is_zero())
                .then_some(self.full_sync_interval),
            unfinished_reread_max: self.unfinished_reread_max_interval()?,
            max_requests_per_minute: self.max_requests_per_minute,
            filter: filters.deployments,
            projects: filters.projects,
            views,
            shard: self.shard.unwrap_or_default(),
        })
    }

    /// `--unfinished-reread-max-interval`: at least the poll interval; unset, 10 minutes or the
    /// poll interval, whichever is longer.
    fn unfinished_reread_max_interval(&self) -> Result<Duration, ConfigError> {
        match self.unfinished_reread_max_interval {
            Some(max) if max >= self.poll_interval => Ok(max),
            None => Ok(DEFAULT_UNFINISHED_REREAD_MAX_INTERVAL.max(self.poll_interval)),
            Some(_) => Err(invalid(
                "--unfinished-reread-max-interval",
                format!(
                    "must be at least --poll-interval ({})",
                    humantime::format_duration(self.poll_interval)
                ),
            )),
        }
    }
}
