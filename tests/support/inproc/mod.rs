//! The in-process half of the support tree: [`app`] starts exactly what `trustgate serve`
//! starts (`trustgate::app`) on port 0 with a movable trust clock; [`fake_upstream`] is the one
//! fake registry; [`upstreams`] writes configurations over fake upstreams.
//!
//! Declared only by the test binaries that use it (`tests/inproc/main.rs`,
//! `tests/interop_trust.rs`; `tests/upstream_proxy_env.rs` takes `fake_upstream.rs` alone), with
//! `#[path = "…/support/inproc/mod.rs"] mod inproc;`: the fake registry's hyper server and the
//! app's future are then compiled once per binary that runs them, not into every interop binary.
#![allow(dead_code)]

pub mod app;
pub mod fake_upstream;
pub mod upstreams;
