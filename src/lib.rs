//! env0-exporter: polls env0 deployment logs and serves them as Prometheus metrics.
//!
//! Data flows one way: [`client`] (HTTP to env0) → [`poller`] (schedule, paging, budget) →
//! [`state`] (compact records and the immutable snapshot) → [`metrics`] (Prometheus encoding)
//! → [`http`] (the `/metrics` endpoint). The [`clock`] (and, in tests and `demo`, the simulated
//! env0 of the `env0-sim` crate, here as `simulator` with the default `simulator` feature) are
//! passed in.
//! [`webhook`] receives env0's signed deliveries and hands what they carry to the poller, which
//! takes it into the same state between polls; both turn deployment logs into what the state
//! takes through [`observation`]. [`probe`] learns what env0 leaves undocumented (the date
//! filter's field, page order), for the poller and the `doctor` command.
//!
//! A module is public only when the binary, the tests, the benches or the examples use it; the
//! others (`doctor`, `filter`, `labels`, `shard`, `state_file_format`) are `pub(crate)`, so that
//! `unreachable_pub` finds what is `pub` without need.

pub mod app;
pub mod client;
pub mod clock;
pub mod config;
pub(crate) mod doctor;
pub(crate) mod filter;
pub mod http;
pub(crate) mod labels;
pub mod metrics;
pub mod observation;
pub mod poller;
pub mod probe;
pub mod ratelimit;
pub mod secret;
pub(crate) mod shard;
pub mod state;
pub(crate) mod state_file_format;
pub(crate) mod views;
pub mod webhook;

/// The simulated env0 (the `env0-sim` crate) that `demo`, `simulate` and the tests run against.
#[cfg(feature = "simulator")]
pub use env0_sim as simulator;
