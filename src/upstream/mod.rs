//! Upstream side: the client trustgate uses to talk to upstream registries (Docker Hub, ghcr.io,
//! a CNCF distribution registry) and, through the same [`AuthClient`], Notary servers.
//!
//! - [`challenge`]: pure `WWW-Authenticate` parser.
//! - [`AuthClient`]: pooled reqwest client per upstream, TLS from [`tls`] (rustls, aws-lc-rs); Bearer token flow with a token
//!   cache keyed by (realm, service, scope), Basic auth, redirects followed by hand so that
//!   `Authorization` never leaves the upstream's origin, connect / first-byte / idle timeouts and a
//!   minimum body rate ([`rate`]).
//! - [`RegistryClient`]: `ping`, `manifest`, `blob`, `tags`, `referrers` (`referrers.rs`).
//! - [`UpstreamResponse`]: a 2xx answer; body as a stream that fails (never ends cleanly) when the
//!   connection drops early, or as bytes with a size limit.
//! - [`UpstreamError`]: who failed, whether to retry, and a client status hint.
//! - [`reachability`]: whether each upstream answers (for `/readyz`, a gauge and the log).
//!
//! Proxies: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (and lower-case forms) are
//! honoured, read once when the client is built (reqwest's environment proxy support, left on;
//! see `tests/upstream_proxy_env.rs`). Credentials for an upstream are only ever sent to that
//! upstream's origin and to the token realm it names.
//!
//! Registry quirks handled here: Docker Hub redirects blob GETs to a CDN with 307 (seen on
//! registry-1.docker.io); Docker Hub answers 401 rather than 404 for unknown repositories, and rate-limits with
//! `429 TOOMANYREQUESTS` + `Retry-After`.

pub mod auth;
pub mod challenge;
pub mod client;
pub mod error;
pub mod rate;
pub mod reachability;
pub mod referrers;
pub mod response;
pub mod settings;
pub mod tls;

pub use auth::AuthClient;
pub use challenge::{BearerChallenge, Challenge, Scheme};
pub use client::RegistryClient;
pub use error::{OciErrorEntry, TimeoutPhase, UpstreamError};
pub use rate::MinRate;
pub use response::{BodyStream, UpstreamResponse};
pub use settings::{Timeouts, UpstreamRole, UpstreamSettings};
