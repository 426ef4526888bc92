//! The in-process integration suites, one test binary (issue 11): each former `tests/<name>.rs`
//! is a module here, so reqwest, hyper and rustls are linked once instead of once per suite.
//! Run one suite with `cargo test --test inproc <name>::`.
//!
//! Suites that change the process (environment variables: `tests/upstream_proxy_env.rs`) and the
//! interop suites that start real tools (`tests/interop_*.rs`, `tests/ops_*.rs`) stay separate
//! binaries.

#[path = "../support/mod.rs"]
mod support;

#[path = "../support/inproc/mod.rs"]
mod inproc;

/// The in-code Sigstore (test Fulcio CA, CT log, Rekor key) of the cosign verifier's tests.
#[path = "../cosign_support/mod.rs"]
mod cosign_support;

mod cache_fake;
mod closure_race;
mod compose_static;
mod cosign_flow;
mod deploy_static;
mod enforce_golden;
mod notation_flow;
mod proxy_passthrough;
mod proxy_stale;
mod sendfile;
mod store;
mod trust_fixtures;
mod trust_fuzz_smoke;
mod trust_golden;
mod trust_negative;
mod upstream_client;
