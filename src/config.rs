//! The one configuration file: TOML, every key documented in `config/trustgate.toml`.
//!
//! Loading happens once at start-up. Every problem is reported with the file, the key (as a path
//! such as `upstream[1].url`) and what is wrong with it, so that `trustgate check-config` can be
//! run before a restart. Unknown keys are errors: a typo must not silently fall back to a default.
//! Relative paths in the file are taken relative to the working directory of the process.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the client-facing registry API listens on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
        }
    }
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
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: default_storage_path(),
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
    pub username: Option<String>,
    /// File holding the password (or token) for `username`; read at start, never logged.
    pub password_file: Option<PathBuf>,
    /// PEM bundle of extra CA certificates trusted for this upstream.
    pub ca_file: Option<PathBuf>,
    /// Seconds allowed for the TCP+TLS connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Seconds allowed between sending a request and receiving the response headers.
    #[serde(default = "default_first_byte_timeout")]
    pub first_byte_timeout_secs: u64,
    /// Seconds a response body may stall between two chunks.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    /// Filled in by validation from `password_file`.
    #[serde(skip)]
    pub password: Option<Secret>,
    /// Filled in by validation from `ca_file`.
    #[serde(skip)]
    pub ca_pem: Option<Vec<u8>>,
}

fn default_connect_timeout() -> u64 {
    10
}
fn default_first_byte_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    60
}

impl UpstreamConfig {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_secs(self.first_byte_timeout_secs)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// Docker Hub's single-component names live under `library/`.
    pub fn is_docker_hub(&self) -> bool {
        self.name == "docker.io"
    }
}

/// A secret read from a file: printable only on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
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

    /// Parses and validates `text`; `file` is only used in error messages and to read the files
    /// the configuration names.
    pub fn from_toml(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key,
            problem,
        };
        let de = toml::Deserializer::new(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
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

    fn validate(&mut self, file: &Path) -> Result<(), ConfigError> {
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            key,
            problem,
        };
        let mut defaults = Vec::new();
        for (i, up) in self.upstreams.iter_mut().enumerate() {
            let key = |k: &str| format!("upstream[{i}].{k}");
            if !is_valid_upstream_name(&up.name) {
                return Err(invalid(
                    key("name"),
                    format!(
                        "{:?} is not a registry host name (expected something like docker.io, ghcr.io or 127.0.0.1:5101)",
                        up.name
                    ),
                ));
            }
            match up.url.scheme() {
                "https" => {}
                "http" => tracing::warn!(
                    upstream = %up.name,
                    url = %up.url,
                    "upstream uses plain http: traffic to it is neither encrypted nor authenticated"
                ),
                other => {
                    return Err(invalid(
                        key("url"),
                        format!("scheme {other:?} is not supported; use https:// (or http://)"),
                    ))
                }
            }
            if up.url.host_str().is_none() {
                return Err(invalid(key("url"), "the URL has no host".into()));
            }
            if up.default {
                defaults.push(up.name.clone());
            }
            if up.password_file.is_some() && up.username.is_none() {
                return Err(invalid(
                    key("password_file"),
                    "is set but username is not; set both or neither".into(),
                ));
            }
            if up.username.is_some() && up.password_file.is_none() {
                return Err(invalid(
                    key("username"),
                    "is set but password_file is not; set both or neither".into(),
                ));
            }
            if let Some(path) = &up.password_file {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    invalid(
                        key("password_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                // `echo secret > file` leaves a newline that is not part of the password.
                up.password = Some(Secret::new(text.trim_end_matches(['\r', '\n'])));
            }
            if let Some(path) = &up.ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    invalid(
                        key("ca_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(invalid(
                        key("ca_file"),
                        format!("{} holds no PEM certificate", path.display()),
                    ));
                }
                up.ca_pem = Some(pem);
            }
            for (k, v) in [
                ("connect_timeout_secs", up.connect_timeout_secs),
                ("first_byte_timeout_secs", up.first_byte_timeout_secs),
                ("idle_timeout_secs", up.idle_timeout_secs),
            ] {
                if v == 0 {
                    return Err(invalid(key(k), "must be at least 1 second".into()));
                }
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

    /// The upstream that bare names go to, if any.
    pub fn default_upstream(&self) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.default)
    }
}

/// toml's own message without its multi-line source excerpt (the key is reported separately).
fn toml_problem(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_string();
    match e.span() {
        Some(_) => msg,
        None => msg,
    }
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

    #[test]
    fn credentials_come_in_pairs_and_files_must_exist() {
        let e = err("[[upstream]]\nname = \"a.io\"\nurl = \"https://a\"\nusername = \"u\"\n");
        assert!(e.contains("upstream[0].username"), "{e}");
        let e = err("[[upstream]]\nname = \"a.io\"\nurl = \"https://a\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\n");
        assert!(
            e.contains("upstream[0].password_file: cannot read /nonexistent/pw"),
            "{e}"
        );
    }

    #[test]
    fn password_file_is_read_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let c = load(&format!(
            "[[upstream]]\nname = \"a.io\"\nurl = \"https://a\"\nusername = \"u\"\npassword_file = \"{}\"\n",
            pw.display()
        ))
        .unwrap();
        let up = &c.upstreams[0];
        assert_eq!(up.password.as_ref().unwrap().expose(), "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn shipped_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_PATH);
        let c = Config::load(&path).unwrap();
        let hub = c.default_upstream().unwrap();
        assert_eq!(hub.name, "docker.io");
        assert!(hub.is_docker_hub());
    }
}
