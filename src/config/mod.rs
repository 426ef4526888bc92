//! The one configuration file: TOML, every key documented in `config/trustgate.toml`.
//!
//! Loading happens once at start-up. Every problem is reported with the file, the key (as a path
//! such as `upstream[1].url`) and what is wrong with it, so that `trustgate check-config` can be
//! run before a restart. Unknown keys are errors: a typo must not silently fall back to a default.
//! Relative paths in the file are taken relative to the working directory of the process.
//!
//! Each subsystem owns its section (issue 11): [`crate::auth::AuthConfig`] for `[auth]`,
//! [`crate::policy::PolicyConfig`] for `[[policy]]`; they are re-exported here. Loading the
//! configuration parses the TOML and checks what can be checked without the subsystems (types,
//! ranges, keys that go together, the password and CA files of upstreams, the PEM files of
//! policies). The files a subsystem loads itself (the htpasswd file, the listener's TLS files)
//! are loaded by that subsystem's `from_config`, which `serve` calls, and which
//! [`crate::check::check_config`] calls for `trustgate check-config`.

mod units;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::auth::{AccessRule, AuthConfig};
pub use crate::policy::{PolicyConfig, Require, TrustMode};
pub use crate::store::shared::peer::FleetConfig;
pub use crate::store::SharedStoreConfig;
pub use crate::verify::config::{IdentityConfig, Transparency, VerifierConfig, VerifierKind};
pub(crate) use units::de_opt_size;
use units::{de_rate, de_size};
pub use units::{MinFree, Seconds};

/// Where `serve` and the other subcommands look when no `--config` is given.
pub const DEFAULT_CONFIG_PATH: &str = "config/trustgate.toml";
/// Environment variable that names the config file when `--config` is absent.
pub const CONFIG_ENV: &str = "TRUSTGATE_CONFIG";

/// A configuration problem, naming the file, the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration file: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {key}: {problem}")]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
}

/// The whole configuration, validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
    #[serde(default)]
    pub trust: TrustConfig,
    #[serde(default, rename = "policy")]
    pub policies: Vec<PolicyConfig>,
    /// `[[verifier]]`: signature verifiers that policies name (issue 12).
    #[serde(default, rename = "verifier")]
    pub verifiers: Vec<VerifierConfig>,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// `[fleet]`: the internal peer endpoint of a fleet's replicas (issue 14).
    pub fleet: Option<FleetConfig>,
}

/// `[admin]`: the operator's listener (metrics, health), apart from the registry API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin_listen(),
        }
    }
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5001))
}

/// `[log]`: the format of the log lines on stderr (the level comes from `RUST_LOG`) and the
/// writer's queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// Lines held for the log writer thread; when it is full, the thread that logs waits (no
    /// line is ever dropped).
    #[serde(default = "default_log_queue_lines")]
    pub queue_lines: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            queue_lines: default_log_queue_lines(),
        }
    }
}

/// The queue's slots are allocated up front (about 40 bytes each), and a burst of 8192 lines is
/// over 4000 requests arriving at once: a larger queue only costs memory at rest (BENCHMARKS.md).
fn default_log_queue_lines() -> usize {
    8192
}

/// The largest `[log] queue_lines`: a million lines of a few hundred bytes each.
const MAX_LOG_QUEUE_LINES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[trust]`: how verified trust data is kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// How long a verified trust verdict is reused before `timestamp.json` is fetched again
    /// (never past the metadata's own expiry).
    #[serde(default = "default_refresh")]
    pub refresh: Seconds,
    /// For `offline = true` upstreams only: how long past their expiry the timestamp and
    /// snapshot metadata are still accepted (signatures, hashes and the targets' own expiry are
    /// still checked). Every use is logged. Default 0: never.
    #[serde(default)]
    pub offline_grace: Seconds,
    /// Bytes of verified manifests kept in memory.
    #[serde(default = "default_manifest_cache_bytes", deserialize_with = "de_size")]
    pub manifest_cache_bytes: u64,
    /// How long a Notary server's "no trust data for this repository" (a 404 on `root.json`) is
    /// remembered, so that a flood of nonexistent names costs the Notary server one request per
    /// name and period, not one per request (issue 15). Errors and timeouts are never
    /// remembered. `0s` turns the negative cache off.
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl: Seconds,
    /// At most this many such answers are remembered (least recently used leave first).
    #[serde(default = "default_negative_entries")]
    pub negative_entries: u64,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            refresh: default_refresh(),
            offline_grace: Seconds::ZERO,
            manifest_cache_bytes: default_manifest_cache_bytes(),
            negative_ttl: default_negative_ttl(),
            negative_entries: default_negative_entries(),
        }
    }
}

impl TrustConfig {
    pub fn refresh(&self) -> Duration {
        self.refresh.as_duration()
    }
    pub fn offline_grace(&self) -> Duration {
        self.offline_grace.as_duration()
    }
    pub fn negative_ttl(&self) -> Duration {
        self.negative_ttl.as_duration()
    }
}

fn default_refresh() -> Seconds {
    Seconds::from_secs(60)
}
fn default_manifest_cache_bytes() -> u64 {
    64 * 1024 * 1024
}
/// Long enough to absorb a flood or a retry loop, short enough that a repository signed for the
/// first time is pullable half a minute later.
fn default_negative_ttl() -> Seconds {
    Seconds::from_secs(30)
}
/// About 100 bytes each: a megabyte at most.
fn default_negative_entries() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the client-facing registry API listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// PEM certificate chain served to clients; with `tls_key`, the listener speaks HTTPS only.
    /// Both files are re-read on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: when set, every client must present a certificate chaining to it (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Connections served at once; further ones wait in the kernel's accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Largest request head (request line and headers) accepted, in bytes.
    #[serde(default = "default_max_header_bytes", deserialize_with = "de_size")]
    pub max_header_bytes: u64,
    /// Time a client has to send a complete request head (slow-loris defence).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: Seconds,
    /// Time a connection may pass without any byte read or written before it is closed.
    #[serde(default = "default_server_idle_timeout")]
    pub idle_timeout: Seconds,
    /// Time in-flight responses get to finish after SIGTERM before trustgate exits anyway.
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: Seconds,
    /// Load balancers in front (addresses or CIDR blocks): a request from one of them names its
    /// client in `X-Forwarded-For` (audit lines, logs, login throttle). Empty: nobody's header
    /// is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Every connection from a `trusted_proxies` peer starts with a PROXY protocol header (v1 or
    /// v2, HAProxy's spec) naming the client; one without it, or with a malformed one, is
    /// closed. Connections from other peers are plain: they are their own client, and a PROXY
    /// header they send is not read as one. Needs `trusted_proxies`.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Stored blobs go to plain-HTTP/1.1 clients with `sendfile(2)`, from the page cache to
    /// the socket without a copy through trustgate (issue 16). TLS and HTTP/2 always copy.
    #[serde(default = "default_sendfile")]
    pub sendfile: bool,
}

fn default_sendfile() -> bool {
    true
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            max_connections: default_max_connections(),
            max_header_bytes: default_max_header_bytes(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_server_idle_timeout(),
            shutdown_grace: default_shutdown_grace(),
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            sendfile: default_sendfile(),
        }
    }
}

impl ServerConfig {
    pub fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout.as_duration()
    }
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout.as_duration()
    }
    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace.as_duration()
    }
}

fn default_max_connections() -> usize {
    4096
}
fn default_max_header_bytes() -> u64 {
    64 * 1024
}
fn default_header_read_timeout() -> Seconds {
    Seconds::from_secs(10)
}
fn default_server_idle_timeout() -> Seconds {
    Seconds::from_secs(120)
}
fn default_shutdown_grace() -> Seconds {
    Seconds::from_secs(30)
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5000))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Folder for trust state and cached content.
    #[serde(default = "default_storage_path")]
    pub path: PathBuf,
    /// Upper bound of the content cache in bytes (`"20GiB"`, `"500MB"` or a plain number);
    /// least recently used objects are evicted above it. Unbounded when absent.
    #[serde(default, deserialize_with = "de_opt_size")]
    pub max_size: Option<u64>,
    /// Free space to leave on the store's filesystem (`"2GiB"`, `"5%"`, `0` for none): below it
    /// least recently used objects are evicted, and a pull that would go under it is served
    /// without being stored. Default: the larger of 512 MiB and 5 % of the filesystem.
    #[serde(default)]
    pub min_free: MinFree,
    /// `[storage.shared]`: an S3-compatible bucket shared by a fleet of replicas, behind the
    /// local store (issue 14). Absent: each trustgate keeps only its own disk.
    pub shared: Option<SharedStoreConfig>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: default_storage_path(),
            max_size: None,
            min_free: MinFree::Default,
            shared: None,
        }
    }
}

fn default_storage_path() -> PathBuf {
    PathBuf::from("./trustgate-data")
}

/// One upstream registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The registry host as image references spell it (`docker.io`, `ghcr.io`, `127.0.0.1:5101`).
    pub name: String,
    /// Base URL of the registry API (`https://registry-1.docker.io`).
    pub url: url::Url,
    /// Bare names (no upstream prefix, no `ns=`) go to the default upstream.
    #[serde(default)]
    pub default: bool,
    /// Air-gapped mirror: never contact this upstream (nor its Notary server); serve only what
    /// the store holds, verified against the stored trust data.
    #[serde(default)]
    pub offline: bool,
    pub username: Option<String>,
    /// File holding the password (or token) for `username`; read at start, never logged.
    pub password_file: Option<PathBuf>,
    /// PEM bundle of extra CA certificates trusted for this upstream.
    pub ca_file: Option<PathBuf>,
    /// Time allowed for the TCP+TLS connection. `connect_timeout_secs`, its name before
    /// issue 11, is still read.
    #[serde(default = "default_connect_timeout", alias = "connect_timeout_secs")]
    pub connect_timeout: Seconds,
    /// Time allowed between sending a request and receiving the response headers
    /// (`first_byte_timeout_secs` is still read).
    #[serde(
        default = "default_first_byte_timeout",
        alias = "first_byte_timeout_secs"
    )]
    pub first_byte_timeout: Seconds,
    /// Time a response body may stall between two chunks (`idle_timeout_secs` is still read).
    #[serde(default = "default_idle_timeout", alias = "idle_timeout_secs")]
    pub idle_timeout: Seconds,
    /// Slowest acceptable response body, in bytes per second (`"1KiB/s"`, `"1KiB"`, `1024`;
    /// `0` turns the floor off): a body that brings fewer than `min_rate × min_rate_window`
    /// bytes in one window is cut, the fill fails and nothing is stored. Bounds the upstream
    /// that trickles a byte now and then, which `idle_timeout` never catches. Default 1 KiB/s.
    #[serde(default = "default_min_rate", deserialize_with = "de_rate")]
    pub min_rate: u64,
    /// The window over which `min_rate` is averaged (default 60 s): a slow stretch shorter
    /// than this is forgiven when the window as a whole is fast enough.
    #[serde(default = "default_min_rate_window")]
    pub min_rate_window: Seconds,
    /// URL of the Notary server holding this registry's trust data
    /// (Docker Hub's is `https://notary.docker.io`). Without it, repositories of this upstream
    /// are not enforced unless a policy says so (and then nothing can be served).
    pub notary: Option<url::Url>,
    /// PEM bundle of extra CA certificates for the Notary server.
    pub notary_ca_file: Option<PathBuf>,
    pub notary_username: Option<String>,
    pub notary_password_file: Option<PathBuf>,
}

fn default_connect_timeout() -> Seconds {
    Seconds::from_secs(10)
}
fn default_first_byte_timeout() -> Seconds {
    Seconds::from_secs(30)
}
fn default_idle_timeout() -> Seconds {
    Seconds::from_secs(60)
}
fn default_min_rate() -> u64 {
    crate::upstream::MinRate::DEFAULT.bytes_per_sec
}
fn default_min_rate_window() -> Seconds {
    Seconds::from_secs(crate::upstream::MinRate::DEFAULT.window.as_secs())
}

impl UpstreamConfig {
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.as_duration()
    }
    pub fn first_byte_timeout(&self) -> Duration {
        self.first_byte_timeout.as_duration()
    }
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout.as_duration()
    }
    /// The body rate floor (`min_rate` over `min_rate_window`); off when `min_rate` is 0.
    pub fn min_rate(&self) -> crate::upstream::MinRate {
        crate::upstream::MinRate {
            bytes_per_sec: self.min_rate,
            window: self.min_rate_window.as_duration(),
        }
    }

    /// The checks of one entry that need no file; returns the key within the entry and the
    /// problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !is_valid_upstream_name(&self.name) {
            return Err((
                "name".into(),
                format!(
                    "{:?} is not a registry host name (expected something like docker.io, ghcr.io or 127.0.0.1:5101)",
                    self.name
                ),
            ));
        }
        match self.url.scheme() {
            "https" => {}
            "http" => tracing::warn!(
                upstream = %self.name,
                url = %self.url,
                "upstream uses plain http: traffic to it is neither encrypted nor authenticated"
            ),
            other => {
                return Err((
                    "url".into(),
                    format!("scheme {other:?} is not supported; use https:// (or http://)"),
                ))
            }
        }
        if self.url.host_str().is_none() {
            return Err(("url".into(), "the URL has no host".into()));
        }
        if self.password_file.is_some() && self.username.is_none() {
            return Err((
                "password_file".into(),
                "is set but username is not; set both or neither".into(),
            ));
        }
        if self.username.is_some() && self.password_file.is_none() {
            return Err((
                "username".into(),
                "is set but password_file is not; set both or neither".into(),
            ));
        }
        if let Some(n) = &self.notary {
            if n.scheme() != "https" && n.scheme() != "http" {
                return Err((
                    "notary".into(),
                    format!("scheme {:?} is not supported; use https://", n.scheme()),
                ));
            }
            if n.host_str().is_none() {
                return Err(("notary".into(), "the URL has no host".into()));
            }
        }
        if self.notary_username.is_some() != self.notary_password_file.is_some() {
            return Err((
                "notary_username".into(),
                "notary_username and notary_password_file go together; set both or neither".into(),
            ));
        }
        for (k, v) in [
            ("connect_timeout", self.connect_timeout),
            ("first_byte_timeout", self.first_byte_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if v.is_zero() {
                return Err((k.into(), "must be at least 1 second".into()));
            }
        }
        if self.min_rate > 0 && self.min_rate_window.is_zero() {
            return Err((
                "min_rate_window".into(),
                "must be at least 1 second (to turn the rate floor off, set min_rate = 0)".into(),
            ));
        }
        Ok(())
    }

    /// Docker Hub's single-component names live under `library/`.
    pub fn is_docker_hub(&self) -> bool {
        self.name == "docker.io"
    }
}

impl Config {
    /// Reads, parses and validates `file`.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, file)
    }

    /// Parses and validates `text`; `file` is only used in error messages (no file is read:
    /// each subsystem reads its own, see [`crate::check`]).
    pub fn from_toml(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key,
            problem,
        };
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." {
                "(top level)".into()
            } else {
                key
            };
            invalid(key, toml_problem(e.inner()))
        })?;
        config.validate(file)?;
        Ok(config)
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key,
            problem,
        };
        let mut defaults = Vec::new();
        for (i, up) in self.upstreams.iter().enumerate() {
            up.validate()
                .map_err(|(k, problem)| invalid(format!("upstream[{i}].{k}"), problem))?;
            if up.default {
                defaults.push(up.name.clone());
            }
        }
        for (i, up) in self.upstreams.iter().enumerate() {
            if self.upstreams[..i].iter().any(|u| u.name == up.name) {
                return Err(invalid(
                    format!("upstream[{i}].name"),
                    format!("{:?} is configured twice", up.name),
                ));
            }
        }
        if self.log.queue_lines == 0 || self.log.queue_lines > MAX_LOG_QUEUE_LINES {
            return Err(invalid(
                "log.queue_lines".into(),
                format!(
                    "must be between 1 and {MAX_LOG_QUEUE_LINES}, not {}",
                    self.log.queue_lines
                ),
            ));
        }
        if self.trust.refresh.is_zero() {
            return Err(invalid(
                "trust.refresh".into(),
                "must be at least 1 second".into(),
            ));
        }
        self.validate_verifiers().map_err(|(k, p)| invalid(k, p))?;
        let defined: Vec<&str> = self.verifiers.iter().map(|v| v.name.as_str()).collect();
        for (i, p) in self.policies.iter().enumerate() {
            let key = |k: &str| format!("policy[{i}].{k}");
            p.validate()
                .map_err(|(k, problem)| invalid(key(&k), problem))?;
            p.validate_verifiers(&defined)
                .map_err(|(k, problem)| invalid(key(&k), problem))?;
        }
        self.validate_server().map_err(|(k, p)| invalid(k, p))?;
        if let Some(sh) = &self.storage.shared {
            sh.validate()
                .map_err(|(k, p)| invalid(format!("storage.shared.{k}"), p))?;
        }
        if let Some(f) = &self.fleet {
            f.validate()
                .map_err(|(k, p)| invalid(format!("fleet.{k}"), p))?;
            if self.storage.shared.is_none() {
                return Err(invalid(
                    "fleet".into(),
                    "a fleet needs [storage.shared]: set it too, or remove [fleet]".into(),
                ));
            }
            if f.listen == self.server.listen || f.listen == self.admin.listen {
                return Err(invalid(
                    "fleet.listen".into(),
                    format!("{} is taken by server.listen or admin.listen; the peer endpoint needs its own address", f.listen),
                ));
            }
        }
        self.auth
            .validate()
            .map_err(|(k, p)| invalid(format!("auth.{k}"), p))?;
        if defaults.len() > 1 {
            return Err(invalid(
                "upstream.default".into(),
                format!(
                    "at most one upstream may be the default, but {} are: {}",
                    defaults.len(),
                    defaults.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// `[[verifier]]`: names are unique, usable in a policy, and not the implicit `notary`. What
    /// a verifier's files hold is checked by its kind's `from_config` (`crate::check`).
    fn validate_verifiers(&self) -> Result<(), (String, String)> {
        for (i, v) in self.verifiers.iter().enumerate() {
            let key = format!("verifier[{i}].name");
            let usable = !v.name.is_empty()
                && v.name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
            if !usable {
                return Err((
                    key,
                    format!(
                        "{:?} is not a verifier name (letters, digits, '-', '_', '.')",
                        v.name
                    ),
                ));
            }
            if v.name == crate::policy::NOTARY_VERIFIER {
                return Err((
                    key,
                    format!(
                        "{:?} is reserved for the upstream's Notary v1 server; choose another name",
                        v.name
                    ),
                ));
            }
            if let Some(j) = self.verifiers[..i].iter().position(|w| w.name == v.name) {
                return Err((
                    key,
                    format!(
                        "{:?} is already the name of verifier[{j}]; names must be unique",
                        v.name
                    ),
                ));
            }
            for (j, id) in v.identities.iter().enumerate() {
                for (k, pattern) in [
                    ("issuer_regex", &id.issuer_regex),
                    ("subject_regex", &id.subject_regex),
                ] {
                    if let Some(p) = pattern {
                        // Anchored as the verifier uses it: the whole value must match.
                        if let Err(e) = regex::Regex::new(&format!("^(?:{p})$")) {
                            return Err((
                                format!("verifier[{i}].identities[{j}].{k}"),
                                format!("{p:?} is not a regular expression: {e}"),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `[server]`: TLS files come as a pair and must be readable PEM; limits must be usable.
    fn validate_server(&self) -> Result<(), (String, String)> {
        let s = &self.server;
        match (&s.tls_cert, &s.tls_key) {
            (Some(_), None) => {
                return Err((
                    "server.tls_cert".into(),
                    "is set but tls_key is not; set both or neither".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    "server.tls_key".into(),
                    "is set but tls_cert is not; set both or neither".into(),
                ))
            }
            _ => {}
        }
        // The files themselves are loaded by `api::tls::TlsFiles::load`, as `serve` loads them.
        if s.client_ca.is_some() && s.tls_cert.is_none() {
            return Err((
                "server.client_ca".into(),
                "client certificates need TLS: set tls_cert and tls_key too".into(),
            ));
        }
        crate::api::forwarded::TrustedProxies::parse(&s.trusted_proxies)
            .map_err(|(i, p)| (format!("server.trusted_proxies[{i}]"), p))?;
        if s.proxy_protocol && s.trusted_proxies.is_empty() {
            return Err((
                "server.proxy_protocol".into(),
                "needs trusted_proxies: name the load balancers whose PROXY header is believed"
                    .into(),
            ));
        }
        if s.max_connections == 0 {
            return Err(("server.max_connections".into(), "must be at least 1".into()));
        }
        // hyper cannot parse a request head in a buffer smaller than 8 KiB.
        if s.max_header_bytes < 8192 {
            return Err((
                "server.max_header_bytes".into(),
                "must be at least 8KiB".into(),
            ));
        }
        for (k, v) in [
            ("server.header_read_timeout", s.header_read_timeout),
            ("server.idle_timeout", s.idle_timeout),
        ] {
            if v.is_zero() {
                return Err((k.into(), "must be at least 1 second".into()));
            }
        }
        if self.admin.listen == s.listen {
            return Err((
                "admin.listen".into(),
                format!(
                    "{} is also server.listen; the admin listener needs its own address",
                    s.listen
                ),
            ));
        }
        Ok(())
    }
}

/// Keys renamed by issue 11 (one duration type, no `_secs` suffix): the current name and the old
/// one, which serde still reads as an alias.
const RENAMED_KEYS: [(&str, &str); 3] = [
    ("connect_timeout", "connect_timeout_secs"),
    ("first_byte_timeout", "first_byte_timeout_secs"),
    ("idle_timeout", "idle_timeout_secs"),
];

/// toml's own message without its multi-line source excerpt (the key is reported separately);
/// a key given under both its names says so.
fn toml_problem(e: &toml::de::Error) -> String {
    let msg = e.message().trim();
    for (new, old) in RENAMED_KEYS {
        if msg == format!("duplicate field `{new}`") {
            return format!("{msg}: `{old}` is its older name; give only one of the two");
        }
    }
    msg.to_string()
}

/// A registry host as image references spell it: DNS name or IPv4 address, optional port.
fn is_valid_upstream_name(name: &str) -> bool {
    let (host, port) = match name.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (name, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    fn err(text: &str) -> String {
        load(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(c.storage.path, PathBuf::from("./trustgate-data"));
        assert!(c.upstreams.is_empty());
    }

    #[test]
    fn unknown_keys_name_file_and_key() {
        let e = err("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
        assert!(e.starts_with("test.toml: server.lisen: "), "{e}");
        assert!(e.contains("unknown field `lisen`"), "{e}");
        let e = err("[[upstream]]\nname = \"docker.io\"\nurl = \"https://x\"\nuser = \"a\"\n");
        assert!(e.starts_with("test.toml: upstream[0].user: "), "{e}");
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = err("[server]\nlisten = \"not an address\"\n");
        assert!(e.starts_with("test.toml: server.listen: "), "{e}");
        let e = err("[[upstream]]\nname = \"docker.io\"\nurl = \"::\"\n");
        assert!(e.starts_with("test.toml: upstream[0].url: "), "{e}");
    }

    #[test]
    fn the_log_queue_is_bounded_and_never_empty() {
        assert_eq!(load("").unwrap().log.queue_lines, 8192);
        assert_eq!(
            load("[log]\nqueue_lines = 500\n").unwrap().log.queue_lines,
            500
        );
        let e = err("[log]\nqueue_lines = 0\n");
        assert!(
            e.starts_with("test.toml: log.queue_lines: must be between 1 and"),
            "{e}"
        );
        let e = err("[log]\nqueue_lines = 99999999\n");
        assert!(e.contains("not 99999999"), "{e}");
    }

    #[test]
    fn only_one_default_upstream() {
        let e = err(r#"
            [[upstream]]
            name = "a.io"
            url = "https://a.io"
            default = true
            [[upstream]]
            name = "b.io"
            url = "https://b.io"
            default = true
        "#);
        assert!(e.contains("upstream.default: at most one"), "{e}");
        assert!(e.contains("a.io, b.io"), "{e}");
    }

    #[test]
    fn upstream_names_and_schemes_are_checked() {
        let e = err("[[upstream]]\nname = \"Docker.IO\"\nurl = \"https://x\"\n");
        assert!(e.contains("upstream[0].name"), "{e}");
        let e = err("[[upstream]]\nname = \"a.io\"\nurl = \"ftp://x\"\n");
        assert!(e.contains("upstream[0].url: scheme \"ftp\""), "{e}");
        let e = err("[[upstream]]\nname = \"a.io\"\nurl = \"https://a\"\n[[upstream]]\nname = \"a.io\"\nurl = \"https://b\"\n");
        assert!(
            e.contains("upstream[1].name: \"a.io\" is configured twice"),
            "{e}"
        );
        assert!(
            load("[[upstream]]\nname = \"127.0.0.1:5101\"\nurl = \"http://127.0.0.1:5101\"\n")
                .is_ok()
        );
    }

    /// The files are read by `upstream::UpstreamSettings::from_config` (see `crate::check`);
    /// configuration checks that the keys come in pairs, and reads nothing.
    #[test]
    fn credentials_come_in_pairs() {
        let e = err("[[upstream]]\nname = \"a.io\"\nurl = \"https://a\"\nusername = \"u\"\n");
        assert!(e.contains("upstream[0].username"), "{e}");
        let e =
            err("[[upstream]]\nname = \"a.io\"\nurl = \"https://a\"\npassword_file = \"/pw\"\n");
        assert!(
            e.contains("upstream[0].password_file: is set but username is not"),
            "{e}"
        );
        let e =
            err("[[upstream]]\nname = \"a.io\"\nurl = \"https://a\"\nnotary_username = \"u\"\n");
        assert!(e.contains("upstream[0].notary_username: "), "{e}");
        assert!(load("[[upstream]]\nname = \"a.io\"\nurl = \"https://a\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\nca_file = \"/nonexistent/ca\"\n").is_ok());
    }

    #[test]
    fn sizes_and_durations_take_units() {
        let c =
            load("[storage]\nmax_size = \"1GiB\"\n[trust]\noffline_grace = \"30d\"\nrefresh = 5\n")
                .unwrap();
        assert_eq!(c.storage.max_size, Some(1 << 30));
        let c2 = load("[trust]\nmanifest_cache_bytes = \"32MiB\"\n").unwrap();
        assert_eq!(c2.trust.manifest_cache_bytes, 32 << 20);
        assert_eq!(c.trust.offline_grace(), Duration::from_secs(30 * 86_400));
        assert_eq!(c.trust.refresh(), Duration::from_secs(5));
        let e = err("[storage]\nmax_size = \"lots\"\n");
        assert!(e.starts_with("test.toml: storage.max_size: "), "{e}");
        assert_eq!(c.storage.min_free, MinFree::Default);
        let c3 = load("[storage]\nmin_free = \"5%\"\n").unwrap();
        assert_eq!(c3.storage.min_free, MinFree::Percent(5));
        let e = err("[storage]\nmin_free = \"150%\"\n");
        assert!(e.starts_with("test.toml: storage.min_free: "), "{e}");
        let e = err("[trust]\nrefresh = \"soon\"\n");
        assert!(e.starts_with("test.toml: trust.refresh: "), "{e}");
        assert!(e.contains("not a duration"), "{e}");
        let e = err("[server]\nidle_timeout = -5\n");
        assert!(e.starts_with("test.toml: server.idle_timeout: "), "{e}");
    }

    /// Every key that configures a time takes both spellings: a number of seconds and a number
    /// with a unit (issue 11).
    #[test]
    fn every_duration_key_takes_a_number_or_a_unit() {
        let keys = [
            ("server", "header_read_timeout"),
            ("server", "idle_timeout"),
            ("server", "shutdown_grace"),
            ("trust", "refresh"),
            ("trust", "offline_grace"),
        ];
        for (section, key) in keys {
            let a = load(&format!("[{section}]\n{key} = 300\n")).unwrap();
            let b = load(&format!("[{section}]\n{key} = \"5m\"\n")).unwrap();
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{section}.{key}");
        }
        let up = "[[upstream]]\nname = \"a.io\"\nurl = \"https://a.io\"\n";
        for key in ["connect_timeout", "first_byte_timeout", "idle_timeout"] {
            let a = load(&format!("{up}{key} = 120\n")).unwrap();
            let b = load(&format!("{up}{key} = \"2m\"\n")).unwrap();
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "upstream.{key}");
        }
    }

    /// `min_rate` takes a rate with or without `/s`; its window must be at least a second unless
    /// the floor is off; the default is 1 KiB/s over 60 s.
    #[test]
    fn min_rate_and_its_window() {
        let up = "[[upstream]]\nname = \"a.io\"\nurl = \"https://a.io\"\n";
        let u = load(&format!(
            "{up}min_rate = \"10KiB/s\"\nmin_rate_window = \"2m\"\n"
        ))
        .unwrap()
        .upstreams
        .remove(0);
        assert_eq!(u.min_rate().bytes_per_sec, 10 << 10);
        assert_eq!(u.min_rate().window, Duration::from_secs(120));
        let d = load(up).unwrap().upstreams.remove(0);
        assert_eq!(d.min_rate(), crate::upstream::MinRate::DEFAULT);
        assert!(load(&format!("{up}min_rate = 0\nmin_rate_window = 0\n")).is_ok());
        let e = err(&format!("{up}min_rate_window = 0\n"));
        assert!(
            e.contains("upstream[0].min_rate_window: must be at least 1 second"),
            "{e}"
        );
        let e = err(&format!("{up}min_rate = \"quick\"\n"));
        assert!(e.contains("upstream[0].min_rate: "), "{e}");
    }

    /// The upstream timeouts were `*_secs` before issue 11; files written then still load, to
    /// the same configuration.
    #[test]
    fn old_secs_keys_still_load_to_the_same_config() {
        let up = "[[upstream]]\nname = \"a.io\"\nurl = \"https://a.io\"\n";
        let old = load(&format!(
            "{up}connect_timeout_secs = 2\nfirst_byte_timeout_secs = 7\nidle_timeout_secs = 9\n"
        ))
        .unwrap();
        let new = load(&format!(
            "{up}connect_timeout = \"2s\"\nfirst_byte_timeout = 7\nidle_timeout = \"9s\"\n"
        ))
        .unwrap();
        assert_eq!(format!("{old:?}"), format!("{new:?}"));
        let u = &new.upstreams[0];
        assert_eq!(u.connect_timeout(), Duration::from_secs(2));
        assert_eq!(u.first_byte_timeout(), Duration::from_secs(7));
        assert_eq!(u.idle_timeout(), Duration::from_secs(9));
        // The old keys take units too now.
        let old_units = load(&format!("{up}first_byte_timeout_secs = \"7s\"\n")).unwrap();
        assert_eq!(
            old_units.upstreams[0].first_byte_timeout(),
            Duration::from_secs(7)
        );
        // Zero is refused under either name, reported under the canonical one.
        let e = err(&format!("{up}idle_timeout_secs = 0\n"));
        assert!(
            e.contains("upstream[0].idle_timeout: must be at least 1 second"),
            "{e}"
        );
    }

    /// Giving a timeout under both its names is an error, not a silent choice of one.
    #[test]
    fn old_and_new_name_together_is_an_error() {
        let up = "[[upstream]]\nname = \"a.io\"\nurl = \"https://a.io\"\n";
        let e = err(&format!(
            "{up}connect_timeout = 5\nconnect_timeout_secs = 5\n"
        ));
        assert!(e.starts_with("test.toml: upstream[0]"), "{e}");
        assert!(
            e.ends_with("duplicate field `connect_timeout`: `connect_timeout_secs` is its older name; give only one of the two"),
            "{e}"
        );
    }

    /// Every configuration file in the repository loads: the shipped one, the compose stack's
    /// (with its certificate paths, which only exist inside the container, set aside).
    #[test]
    fn the_example_configs_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let c = Config::load(&root.join("config/trustgate.toml")).unwrap();
        assert_eq!(c.server.header_read_timeout(), Duration::from_secs(10));
        assert_eq!(c.upstreams[0].connect_timeout(), Duration::from_secs(10));
        assert_eq!(c.trust.refresh(), Duration::from_secs(60));
        assert_eq!(c.trust.offline_grace(), Duration::ZERO);
        let compose = std::fs::read_to_string(root.join("config/compose/trustgate.toml")).unwrap();
        let compose = compose.replace("notary_ca_file = \"/certs/root-ca.crt\"\n", "");
        let c = load(&compose).unwrap();
        assert_eq!(c.upstreams.len(), 2);
        assert_eq!(c.log.format, LogFormat::Json);
    }

    /// The files are loaded by `api::tls` (see `crate::check`); configuration only checks that
    /// they come in pairs.
    #[test]
    fn server_tls_files_come_in_pairs() {
        let e = err("[server]\ntls_cert = \"/nonexistent/cert.pem\"\n");
        assert!(
            e.contains("server.tls_cert: is set but tls_key is not"),
            "{e}"
        );
        let e = err("[server]\ntls_key = \"/nonexistent/key.pem\"\n");
        assert!(
            e.contains("server.tls_key: is set but tls_cert is not"),
            "{e}"
        );
        assert!(load(
            "[server]\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n",
        )
        .is_ok());
        let e = err("[server]\nclient_ca = \"/x.pem\"\n");
        assert!(
            e.contains("server.client_ca: client certificates need TLS"),
            "{e}"
        );
    }

    #[test]
    fn server_limits_and_admin_address_are_checked() {
        let c = load("[server]\nmax_header_bytes = \"16KiB\"\nheader_read_timeout = \"5s\"\nshutdown_grace = \"1m\"\n").unwrap();
        assert_eq!(c.server.max_header_bytes, 16 * 1024);
        assert_eq!(c.server.header_read_timeout(), Duration::from_secs(5));
        assert_eq!(c.server.shutdown_grace(), Duration::from_secs(60));
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:5001");
        let e = err("[server]\nmax_header_bytes = 100\n");
        assert!(
            e.contains("server.max_header_bytes: must be at least 8KiB"),
            "{e}"
        );
        let e = err("[server]\nmax_connections = 0\n");
        assert!(e.contains("server.max_connections"), "{e}");
        let e = err("[admin]\nlisten = \"127.0.0.1:5000\"\n");
        assert!(
            e.contains("admin.listen: 127.0.0.1:5000 is also server.listen"),
            "{e}"
        );
    }

    /// The htpasswd file is loaded by `auth::Gate::from_config` (see `crate::check`); the
    /// configuration checks the section itself.
    #[test]
    fn auth_rules_are_checked_without_reading_the_htpasswd() {
        assert!(load("[auth]\nhtpasswd = \"/nonexistent/htpasswd\"\n").is_ok());
        let e = err("[[auth.access]]\nusers = [\"a\"]\nrepositories = [\"*\"]\n");
        assert!(e.contains("auth.access: per-user rules need users"), "{e}");
        let base = "[auth]\nhtpasswd = \"/nonexistent/htpasswd\"\n";
        let e = err(&format!(
            "{base}[[auth.access]]\nusers = []\nrepositories = [\"*\"]\n"
        ));
        assert!(
            e.contains("auth.access[0].users: must list at least one user"),
            "{e}"
        );
        let e = err(&format!(
            "{base}[[auth.access]]\nusers = [\"a\"]\nrepositories = [\"x y\"]\n"
        ));
        assert!(
            e.contains("auth.access[0].repositories[0]: \"x y\" is not a repository glob"),
            "{e}"
        );
        let e = err("[auth]\nhtpasswd = \"/h\"\nrealm = \"a\\\"b\"\n");
        assert!(e.contains("auth.realm: "), "{e}");
        let c = load(&format!(
            "{base}[[auth.access]]\nusers = [\"alice\"]\nrepositories = [\"docker.io/library/*\"]\n"
        ))
        .unwrap();
        assert_eq!(c.auth.realm, "trustgate");
        assert_eq!(c.auth.access[0].users, vec!["alice".to_string()]);
    }

    #[test]
    fn policy_globs_and_pinning_are_checked() {
        let e = err("[[policy]]\nrepositories = []\ntrust = \"audit\"\n");
        assert!(
            e.contains("policy[0].repositories: must list at least one glob"),
            "{e}"
        );
        let e = err("[[policy]]\nrepositories = [\"\"]\ntrust = \"audit\"\n");
        assert!(e.contains("policy[0].repositories[0]: "), "{e}");
        let e = err("[[policy]]\nrepositories = [\"*\"]\ntrust = \"always\"\n");
        assert!(e.starts_with("test.toml: policy[0].trust: "), "{e}");
    }

    #[test]
    fn log_format_is_text_or_json() {
        assert_eq!(load("").unwrap().log.format, LogFormat::Text);
        assert_eq!(
            load("[log]\nformat = \"json\"\n").unwrap().log.format,
            LogFormat::Json
        );
        let e = err("[log]\nformat = \"xml\"\n");
        assert!(e.starts_with("test.toml: log.format: "), "{e}");
    }

    #[test]
    fn shipped_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let c = Config::load(&path).unwrap();
        let hub = c.upstreams.iter().find(|u| u.default).unwrap();
        assert_eq!(hub.name, "docker.io");
        assert!(hub.is_docker_hub());
    }

    #[test]
    fn fleet_needs_the_shared_store_and_its_own_address() {
        let shared = "[storage.shared]\nurl = \"s3://bkt/p\"\n";
        let fleet = |listen: &str| {
            format!("[fleet]\nlisten = \"{listen}\"\nadvertise = \"http://10.0.0.7:5003\"\nsecret_file = \"/s\"\n")
        };
        let e = err(&fleet("0.0.0.0:5003"));
        assert!(e.contains("fleet: a fleet needs [storage.shared]"), "{e}");
        let e = err(&format!("{shared}{}", fleet("127.0.0.1:5000")));
        assert!(e.contains("fleet.listen"), "{e}");
        let c = load(&format!("{shared}{}", fleet("0.0.0.0:5003"))).unwrap();
        assert_eq!(c.fleet.unwrap().listen.port(), 5003);
        let e = err("[storage.shared]\nurl = \"s3://bkt\"\naccess_key_id = \"x\"\n");
        assert!(e.contains("storage.shared"), "{e}");
        let e = err("[server]\nproxy_protocol = true\n");
        assert!(e.contains("server.proxy_protocol"), "{e}");
        let c =
            load("[server]\nproxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\"]\n").unwrap();
        assert!(c.server.proxy_protocol);
        let e = err("[storage.shared]\nurl = \"s3://bkt\"\nmax_age = \"5s\"\n");
        assert!(e.contains("storage.shared.max_age"), "{e}");
        let e = err("[server]\ntrusted_proxies = [\"lb.local\"]\n");
        assert!(e.contains("server.trusted_proxies[0]"), "{e}");
    }

    #[test]
    fn verifiers_are_named_once_and_policies_name_them() {
        let v = "[[verifier]]\nname = \"acme\"\nkind = \"cosign\"\nkeys = [\"/k.pem\"]\n";
        let c = load(&format!(
            "{v}[[policy]]\nrepositories = [\"a.io/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme\"]\nrequire = 1\n"
        ))
        .unwrap();
        assert_eq!(c.verifiers[0].name, "acme");
        assert_eq!(c.policies[0].require, Some(Require::AtLeast(1)));
        let e = err(&format!("{v}{v}"));
        assert!(
            e.starts_with(
                "test.toml: verifier[1].name: \"acme\" is already the name of verifier[0]"
            ),
            "{e}"
        );
        let e = err(&v.replace("acme", "notary"));
        assert!(
            e.contains("verifier[0].name: \"notary\" is reserved"),
            "{e}"
        );
        let e = err(&format!(
            "{v}[[policy]]\nrepositories = [\"a.io/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme\", \"acme-release\"]\n"
        ));
        assert!(
            e.starts_with("test.toml: policy[0].verifiers[1]: unknown verifier \"acme-release\""),
            "{e}"
        );
        let e = err(&format!(
            "{v}[[policy]]\nrepositories = [\"a.io/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme\"]\nrequire = 2\n"
        ));
        assert!(
            e.contains("policy[0].require: 2 verifiers must accept, but only 1 is listed"),
            "{e}"
        );
        let e = err(&format!(
            "{v}[[policy]]\nrepositories = [\"a.io/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme\"]\nrequire = \"most\"\n"
        ));
        assert!(e.starts_with("test.toml: policy[0].require: "), "{e}");
        assert!(e.contains("\"most\" is not"), "{e}");
        let e = err(&format!(
            "{v}[[policy]]\nrepositories = [\"a.io/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme\"]\nrequire = 0\n"
        ));
        assert!(e.contains("policy[0].require: must be at least 1"), "{e}");
        let e = err("[[verifier]]\nname = \"ci\"\nkind = \"cosign\"\nidentities = [{ issuer = \"https://i\", subject_regex = \"(unclosed\" }]\n");
        assert!(
            e.starts_with("test.toml: verifier[0].identities[0].subject_regex: \"(unclosed\" is not a regular expression"),
            "{e}"
        );
        let e = err("[[verifier]]\nname = \"x\"\nkind = \"ratify\"\n");
        assert!(e.starts_with("test.toml: verifier[0].kind: "), "{e}");
    }
}
