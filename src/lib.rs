//! trustgate: a pull-through registry proxy that serves only content signed with Docker Content
//! Trust (Notary v1).
//!
//! Layers, from the client inwards: [`api`] (Registry v2 front), [`proxy`] (ties the layers
//! together), [`enforce`] (verified trust per repository), [`trust`] (Notary client and the pure
//! TUF verifier), [`store`] (content-addressed disk cache), [`upstream`] (registry client),
//! [`policy`], [`seed`], [`config`]; [`metrics`] and the [`admin`] listener for operators.
#![forbid(unsafe_code)]
// Errors here are values with a client-facing face (code, message, detail, headers); they are
// built on the cold path only, so their size costs nothing worth a Box on every signature.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod body;
pub mod config;
pub mod decision;
pub mod enforce;
pub mod keyed_lock;
pub mod media;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod range;
pub mod reference;
pub mod seed;
pub mod store;
pub mod trust;
pub mod upstream;
pub mod verify;
