//! env0-exporter: polls env0 deployment logs and serves them as Prometheus metrics.
//!
//! Data flows one way: [`client`] (HTTP to env0) → [`poller`] (schedule, paging, budget) →
//! [`state`] (compact records and the immutable snapshot) → [`metrics`] (Prometheus encoding)
//! → [`http`] (the `/metrics` endpoint). The [`clock`] and the [`simulator`] are passed in.
//! [`webhook`] receives env0's signed deliveries and hands what they carry to the poller, which
//! takes it into the same state between polls; both turn deployment logs into what the state
//! takes through [`observation`]. [`probe`] learns what env0 leaves undocumented (the date
//! filter's field, page order), for the poller and the `doctor` command.

pub mod app;
pub mod client;
pub mod clock;
pub mod config;
pub mod doctor;
pub mod filter;
pub mod http;
pub mod labels;
pub mod metrics;
pub mod observation;
pub mod persist;
pub mod poller;
pub mod probe;
pub mod ratelimit;
pub mod secret;
pub mod shard;
pub mod simulator;
pub mod state;
pub mod webhook;
