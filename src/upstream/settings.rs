//! Settings for one upstream, built by the config layer.

use std::fmt;
use std::time::Duration;

/// How to reach one upstream registry (or Notary server).
#[derive(Clone)]
pub struct UpstreamSettings {
    /// Name used in logs and errors: `docker.io`, `ghcr.io`, `127.0.0.1:5101`.
    pub name: String,
    /// Base URL, e.g. `https://registry-1.docker.io`. `http://` is allowed (the config layer
    /// warns). A path prefix is kept: requests go to `<url>/v2/…`.
    pub url: url::Url,
    /// Credentials for the upstream (never the client's, registry-api.md §3). With a `Bearer`
    /// challenge they are sent as Basic to the token service; with a `Basic` challenge to the
    /// registry. Anonymous when `None`.
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM bundle of extra trusted roots (added to the built-in webpki roots).
    pub ca_pem: Option<Vec<u8>>,
    pub timeouts: Timeouts,
    /// A registry or a Notary server (the `kind` label of the upstream metrics).
    pub role: UpstreamRole,
    /// The `upstream` label of its metrics: the configured upstream's name, also for its Notary
    /// server (whose `name` reads "Notary server of …"). `name` when `None`.
    pub metrics_name: Option<String>,
}

/// What an upstream is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamRole {
    #[default]
    Registry,
    Notary,
}

impl UpstreamSettings {
    /// Settings with defaults: anonymous, no extra roots, default timeouts.
    pub fn new(name: impl Into<String>, url: url::Url) -> Self {
        UpstreamSettings {
            name: name.into(),
            url,
            username: None,
            password: None,
            ca_pem: None,
            timeouts: Timeouts::default(),
            role: UpstreamRole::Registry,
            metrics_name: None,
        }
    }
}

impl fmt::Debug for UpstreamSettings {
    /// Never prints the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamSettings")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("timeouts", &self.timeouts)
            .field("role", &self.role)
            .field("metrics_name", &self.metrics_name)
            .finish()
    }
}

/// Network timeouts for one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect (default 10 s).
    pub connect: Duration,
    /// From sending the request to receiving the response headers (default 30 s).
    pub first_byte: Duration,
    /// Longest silence while streaming a body; also how long idle pooled connections are kept
    /// (default 60 s).
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }
}
