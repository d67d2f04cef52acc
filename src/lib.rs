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
pub mod poller;
pub mod probe;
pub mod ratelimit;
pub mod secret;
pub mod shard;
pub mod state;
pub mod state_file_format;
pub mod webhook;

/// The simulated env0 (the `env0-sim` crate) that `demo`, `simulate` and the tests run against.
#[cfg(feature = "simulator")]
pub use env0_sim as simulator;
