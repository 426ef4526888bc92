//! Content-trust enforcement at the I/O edge: verified trust data per repository (cached,
//! persisted, refreshed), the Notary v1 side of the verifier seam (`crate::verify`).

pub mod fleet;
pub mod persist;
pub mod service;

pub use fleet::FleetTrust;
pub use persist::TrustStore;
pub use service::{reason_of, system_clock, Clock, NotarySource, TrustFailure, TrustService};
