//! Content-trust enforcement at the I/O edge: verified trust data per repository (cached,
//! persisted, refreshed) and how a refusal looks to the client.

pub mod persist;
pub mod refusal;
pub mod service;

pub use persist::TrustStore;
pub use service::{system_clock, Clock, TrustFailure, TrustService, UpstreamTrust};
