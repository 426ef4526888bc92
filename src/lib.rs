//! trustgate: a pull-through registry proxy that serves only content signed with Docker Content
//! Trust (Notary v1).
//!
//! Layers, from the client inwards: [`api`] (Registry v2 front: routing, and the one mapping of
//! a pull's outcome to HTTP), [`proxy`] (the core: one file per resource, returning what it
//! serves or a typed `PullError`), [`verify`] (the verifier seam) over [`enforce`] (verified
//! Notary v1 trust per repository) and [`trust`] (Notary client and the pure TUF verifier),
//! [`store`] (the store seam over the content-addressed disk cache), [`upstream`] (registry
//! client), [`policy`], [`seed`], [`config`]; [`decision`] (the refusal vocabulary), [`metrics`]
//! and the [`admin`] listener for operators. Small shared pieces: [`body`] (response bodies),
//! [`media`] (manifest types), [`range`] (`Range` requests), [`keyed_lock`] (single flight).
//! [`app`] assembles them into the server `trustgate serve` runs (and the integration tests
//! start); [`cli`] holds the other subcommands.
// Denied, not forbidden: `heap` alone allows it, for one libc call its comment proves sound.
#![deny(unsafe_code)]
// No unwrap or expect in the server: a bad byte from the network is an error answer, never a
// panic (unit tests may unwrap what they built: clippy.toml allows it in tests).
#![deny(clippy::unwrap_used, clippy::expect_used)]
// Errors here are values with a client-facing face (code, message, detail, headers); they are
// built on the cold path only, so their size costs nothing worth a Box on every signature.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod api;
pub mod app;
pub mod auth;
pub mod body;
pub mod check;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod decision;
pub mod enforce;
pub mod glob;
pub mod heap;
pub mod housekeeping;
pub mod keyed_lock;
pub mod media;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod range;
pub mod reference;
pub mod request_context;
pub mod seed;
pub mod store;
pub mod trust;
pub mod upstream;
pub mod verify;
