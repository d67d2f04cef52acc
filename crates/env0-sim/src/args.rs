//! The simulator's setup flags (`--sim-*`, each with its `ENV0_SIM_*` variable), a clap group
//! that a command line flattens (env0-exporter's `demo` and `simulate` do), and the
//! [`SimConfig`] they give.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::{DateFilterField, PageOrder, SimConfig, WebhookEventTypes, WebhookSigning};

/// A share between 0 and 1.
fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share between 0 and 1 (e.g. 0.05)")),
    }
}

/// The preset size of the simulated organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum SimScale {
    /// 150 environments in 6 projects, a run every 30 minutes per environment.
    #[default]
    Default,
    /// 10,000 environments in 500 projects, a run every 72 minutes per environment, long
    /// approval waits and long-unfinished plans.
    Large,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 90s, 5m, 24h)"))
}

/// Settings of the simulated env0 organisation.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Simulated env0 organisation")]
pub struct SimArgs {
    /// Seed of the simulated organisation (same seed, same organisation)
    #[arg(long, env = "ENV0_SIM_SEED", default_value_t = 42)]
    pub sim_seed: u64,
    /// Size and shape of the simulated organisation: `default` (150 environments in 6 projects,
    /// a run every 30 minutes per environment) or `large` (10,000 environments in 500 projects, a
    /// run every 72 minutes: about 200,000 runs a day, with long approval waits and plans left
    /// unfinished for hours). The flags below, when given, win over the preset
    #[arg(long, env = "ENV0_SIM_SCALE", value_enum, default_value_t = SimScale::Default)]
    pub sim_scale: SimScale,
    /// Number of simulated environments [default: 150; 10000 with --sim-scale large]
    #[arg(long, env = "ENV0_SIM_ENVIRONMENTS", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sim_environments: Option<u32>,
    /// Number of simulated organisations (only the first has projects and environments)
    #[arg(long, env = "ENV0_SIM_ORGANIZATIONS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub sim_organizations: u32,
    /// Number of simulated projects [default: 6; 500 with --sim-scale large]
    #[arg(long, env = "ENV0_SIM_PROJECTS", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub sim_projects: Option<u32>,
    /// Mean time between two runs of one simulated environment [default: 30m; 72m with
    /// --sim-scale large]
    #[arg(long, env = "ENV0_SIM_MEAN_DEPLOYMENT_INTERVAL", value_parser = parse_duration)]
    pub sim_mean_deployment_interval: Option<Duration>,
    /// Share (0..1) of the runs stopping for approval that then wait 2 to 12 hours, whatever
    /// the time scale [default: 0; 0.25 with --sim-scale large]
    #[arg(long, env = "ENV0_SIM_LONG_APPROVAL_SHARE", value_parser = parse_share)]
    pub sim_long_approval_share: Option<f64>,
    /// Share (0..1) of the prPlan and driftDetection runs left unfinished (queued or waiting
    /// for approval) for 1.5 to 10 hours while their environment's later runs go on [default:
    /// 0; 0.05 with --sim-scale large]
    #[arg(long, env = "ENV0_SIM_STUCK_SHARE", value_parser = parse_share)]
    pub sim_stuck_share: Option<f64>,
    /// The simulated env0 refuses (400) any query parameter env0's own clients do not send, and
    /// lists workflow sub-environments by default
    #[arg(long, env = "ENV0_SIM_VALIDATING_API")]
    pub sim_validating_api: bool,
    /// The simulated env0 sends no `Date` header (as behind a proxy that drops it)
    #[arg(long, env = "ENV0_SIM_NO_DATE_HEADER")]
    pub sim_no_date_header: bool,
    /// Which timestamp the simulated env0's `fromDate`/`toDate` filter on (env0 does not
    /// document it); with `queued-at` or `started-at`, runs are queued 3 s after they are created
    /// so that the three timestamps differ
    #[arg(long, env = "ENV0_SIM_DATE_FILTER_FIELD", value_enum, default_value_t = DateFilterField::CreatedAt)]
    pub sim_date_filter_field: DateFilterField,
    /// The order of the simulated env0's deployment pages (env0 does not document it)
    #[arg(long, env = "ENV0_SIM_PAGE_ORDER", value_enum, default_value_t = PageOrder::NewestFirst)]
    pub sim_page_order: PageOrder,
    /// What the simulated env0's webhook signatures cover: the body as sent, or its canonical
    /// re-serialisation (`JSON.stringify` of the parsed body; the body is then sent
    /// pretty-printed)
    #[arg(long, env = "ENV0_SIM_WEBHOOK_SIGNING", value_enum, default_value_t = WebhookSigning::RawBody)]
    pub sim_webhook_signing: WebhookSigning,
    /// Give each simulated webhook's `x-env0-event-id` header an id of its own, unlike the
    /// body's `id` (as in env0's sample delivery)
    #[arg(long, env = "ENV0_SIM_WEBHOOK_IDS_DIFFER")]
    pub sim_webhook_ids_differ: bool,
    /// How the simulated env0 spells webhook event types: `com.env0.deploy.*` (and destroy,
    /// drift, …), `com.env0.deployment.*`, or `com.env-zero.*` with `x-env-zero-*` headers
    #[arg(long, env = "ENV0_SIM_WEBHOOK_EVENT_TYPES", value_enum, default_value_t = WebhookEventTypes::Deploy)]
    pub sim_webhook_event_types: WebhookEventTypes,
    /// Deployment types whose changes the simulated env0 never delivers by webhook, comma
    /// separated (as when a notification target's projects leave those events out)
    #[arg(
        long,
        env = "ENV0_SIM_WEBHOOK_SILENT_TYPES",
        value_delimiter = ',',
        value_parser = ["deploy", "destroy", "prPlan", "driftDetection", "task", "remotePlan", "dryRun", "moduleTest"]
    )]
    pub sim_webhook_silent_types: Vec<String>,
    /// Speed of simulated runs: 1.0 = IaC-like durations, 0.1 = ten times faster
    #[arg(long, env = "ENV0_SIM_TIME_SCALE", default_value_t = 0.5)]
    pub sim_time_scale: f64,
    /// Where `simulate` serves the simulated API (`demo` always uses a free loopback port)
    #[arg(
        long,
        env = "ENV0_SIM_LISTEN_ADDRESS",
        default_value = "127.0.0.1:19181"
    )]
    pub sim_listen_address: SocketAddr,
}

impl SimArgs {
    /// The simulated organisation these flags describe: the `--sim-scale` preset, with the
    /// sizing flags given on top of it.
    #[must_use]
    pub fn config(&self) -> SimConfig {
        let args = self;
        let preset = match args.sim_scale {
            SimScale::Default => SimConfig {
                environments: 150,
                projects: 6,
                mean_deployment_interval: Duration::from_secs(30 * 60),
                ..SimConfig::default()
            },
            SimScale::Large => SimConfig::large(),
        };
        let size = |flag: Option<u32>, preset: usize| {
            flag.map_or(preset, |n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        SimConfig {
            seed: args.sim_seed,
            environments: size(args.sim_environments, preset.environments),
            projects: size(args.sim_projects, preset.projects),
            organizations: usize::try_from(args.sim_organizations).unwrap_or(usize::MAX),
            mean_deployment_interval: args
                .sim_mean_deployment_interval
                .unwrap_or(preset.mean_deployment_interval),
            time_scale: args.sim_time_scale,
            long_approval_share: args
                .sim_long_approval_share
                .unwrap_or(preset.long_approval_share),
            stuck_share: args.sim_stuck_share.unwrap_or(preset.stuck_share),
            date_filter_field: args.sim_date_filter_field,
            page_order: args.sim_page_order,
            queued_after_created: if args.sim_date_filter_field == DateFilterField::CreatedAt {
                preset.queued_after_created
            } else {
                Duration::from_secs(3)
            },
            validating_api: args.sim_validating_api,
            send_date_header: !args.sim_no_date_header,
            webhook_signing: args.sim_webhook_signing,
            webhook_ids_differ: args.sim_webhook_ids_differ,
            webhook_event_types: args.sim_webhook_event_types,
            webhook_silent_types: args.sim_webhook_silent_types.clone(),
            record_requests: false,
            ..preset
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command line of the flags alone, as a command that flattens them parses it (the first
    /// word, a command name in these tests, is the program's).
    #[derive(Debug, clap::Parser)]
    struct Line {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<Line, clap::Error> {
        <Line as clap::Parser>::try_parse_from(args)
    }

    fn sim_args(args: &[&str]) -> SimArgs {
        parse(args).unwrap().sim
    }

    fn sim_config(args: &SimArgs) -> SimConfig {
        args.config()
    }

    #[test]
    fn the_default_sim_scale_is_the_organisation_it_always_was() {
        let c = sim_config(&sim_args(&["simulate"]));
        assert_eq!((c.environments, c.projects), (150, 6));
        assert_eq!(c.mean_deployment_interval, Duration::from_secs(30 * 60));
        assert_eq!(c.history, Duration::from_secs(48 * 3600));
        assert!(c.long_approval_share == 0.0 && c.stuck_share == 0.0);
    }

    #[test]
    fn the_sim_webhook_flags_choose_the_simulators_webhook_variants() {
        use crate::{WebhookEventTypes, WebhookSigning};
        let c = sim_config(&sim_args(&["demo"]));
        assert_eq!(c.webhook_signing, WebhookSigning::RawBody);
        assert!(!c.webhook_ids_differ);
        assert_eq!(c.webhook_event_types, WebhookEventTypes::Deploy);
        let c = sim_config(&sim_args(&[
            "demo",
            "--sim-webhook-signing",
            "canonical",
            "--sim-webhook-ids-differ",
            "--sim-webhook-event-types",
            "env-zero",
        ]));
        assert_eq!(c.webhook_signing, WebhookSigning::Canonical);
        assert!(c.webhook_ids_differ);
        assert_eq!(c.webhook_event_types, WebhookEventTypes::EnvZero);
        let c = sim_config(&sim_args(&[
            "simulate",
            "--sim-webhook-event-types",
            "deployment",
        ]));
        assert_eq!(c.webhook_event_types, WebhookEventTypes::Deployment);
        assert!(c.webhook_silent_types.is_empty());
        let c = sim_config(&sim_args(&[
            "simulate",
            "--sim-webhook-silent-types",
            "prPlan,remotePlan",
        ]));
        assert_eq!(c.webhook_silent_types, ["prPlan", "remotePlan"]);
        assert!(parse(&["demo", "--sim-webhook-signing", "pretty"]).is_err());
        assert!(parse(&["demo", "--sim-webhook-silent-types", "plan"]).is_err());
    }

    #[test]
    fn the_sim_date_filter_and_page_order_flags_choose_the_simulators_listing_variants() {
        use crate::{DateFilterField, PageOrder};
        let c = sim_config(&sim_args(&["demo"]));
        assert_eq!(c.date_filter_field, DateFilterField::CreatedAt);
        assert_eq!(c.page_order, PageOrder::NewestFirst);
        assert_eq!(c.queued_after_created, Duration::ZERO, "the default world");
        let c = sim_config(&sim_args(&[
            "simulate",
            "--sim-date-filter-field",
            "queued-at",
            "--sim-page-order",
            "oldest-first",
        ]));
        assert_eq!(c.date_filter_field, DateFilterField::QueuedAt);
        assert_eq!(c.page_order, PageOrder::OldestFirst);
        assert_eq!(
            c.queued_after_created,
            Duration::from_secs(3),
            "queuedAt must differ from createdAt for the field to show"
        );
        let c = sim_config(&sim_args(&[
            "demo",
            "--sim-date-filter-field",
            "started-at",
        ]));
        assert_eq!(c.date_filter_field, DateFilterField::StartedAt);
        assert!(parse(&["demo", "--sim-page-order", "random"]).is_err());
    }

    #[test]
    fn the_large_sim_scale_is_ten_thousand_environments_and_explicit_flags_win() {
        let c = sim_config(&sim_args(&["demo", "--sim-scale", "large"]));
        assert_eq!((c.environments, c.projects), (10_000, 500));
        assert_eq!(c.mean_deployment_interval, Duration::from_secs(72 * 60));
        assert!(c.long_approval_share > 0.0 && c.stuck_share > 0.0);
        let c = sim_config(&sim_args(&[
            "simulate",
            "--sim-scale",
            "large",
            "--sim-environments",
            "2000",
            "--sim-mean-deployment-interval",
            "1h",
            "--sim-stuck-share",
            "0",
        ]));
        assert_eq!((c.environments, c.projects), (2000, 500));
        assert_eq!(c.mean_deployment_interval, Duration::from_secs(3600));
        assert!(c.long_approval_share > 0.0);
        assert!(c.stuck_share == 0.0);
        let c = sim_config(&sim_args(&["demo", "--sim-long-approval-share", "0.5"]));
        assert_eq!(c.environments, 150);
        assert!((c.long_approval_share - 0.5).abs() < f64::EPSILON);
    }

    #[test]
    fn the_sim_variant_flags_make_a_validating_api_without_a_date_header() {
        let c = sim_config(&sim_args(&["demo"]));
        assert!(!c.validating_api && c.send_date_header);
        let c = sim_config(&sim_args(&[
            "demo",
            "--sim-validating-api",
            "--sim-no-date-header",
        ]));
        assert!(c.validating_api && !c.send_date_header);
        let c = sim_config(&sim_args(&["simulate", "--sim-no-date-header"]));
        assert!(!c.validating_api && !c.send_date_header);
        assert!(parse(&["simulate", "--sim-validating-api=yes"]).is_err());
    }

    #[test]
    fn sim_shares_outside_zero_to_one_are_refused() {
        for bad in ["1.5", "-0.1", "NaN", "much"] {
            for flag in ["--sim-long-approval-share", "--sim-stuck-share"] {
                assert!(parse(&["simulate", flag, bad]).is_err(), "{flag} {bad}");
            }
        }
        assert!(parse(&["simulate", "--sim-scale", "huge"]).is_err());
    }
}
