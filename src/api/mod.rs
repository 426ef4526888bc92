//! The client-facing side: the pull half of the Registry HTTP API v2 / OCI distribution API.
//!
//! [`route`] turns a request line into a validated [`route::Route`], [`error`] turns every failure
//! into an OCI error body, [`server`] runs the hyper listener and hands routes to the proxy;
//! [`tls`] holds the listener's reloadable TLS config and [`conn`] the per-connection IO below
//! HTTP (idle tracking, HTTP version choice); [`sendfile`] sends stored blobs to plain-HTTP/1.1
//! sockets without copying them.

pub mod conn;
pub mod error;
pub mod forwarded;
pub mod proxy_protocol;
pub mod pull;
pub mod route;
pub mod sendfile;
pub mod server;
pub mod tls;

/// Media types moved to [`crate::media`] (the core reads them too); kept here for old paths.
pub use crate::media;

pub use error::{ApiError, ErrorCode};
pub use route::{Endpoint, Route, Routed, Router, UpstreamId};
