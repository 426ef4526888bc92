//! Client authentication: who may pull through trustgate (`[auth]`).
//!
//! Placeholder: the htpasswd gate is being written (issue #6).

/// Checks the credentials of client requests.
pub struct Gate {}
