//! Settings for one upstream (a registry or its Notary server), built from its `[[upstream]]`
//! entry by [`UpstreamSettings::from_config`] and [`UpstreamSettings::notary_from_config`], which
//! read the files the entry names (password files, CA bundles). `serve` builds its clients
//! through them and `trustgate check-config` ([`crate::check`]) calls them too, so both read the
//! same files the same way; the configuration layer itself reads no file (issue 11).

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::rate::MinRate;
use crate::config::UpstreamConfig;

/// How to reach one upstream registry (or Notary server).
#[derive(Clone)]
pub struct UpstreamSettings {
    /// Name used in logs and errors: `docker.io`, `ghcr.io`, `127.0.0.1:5101`.
    pub name: String,
    /// Base URL, e.g. `https://registry-1.docker.io`. `http://` is allowed (the config layer
    /// warns). A path prefix is kept: requests go to `<url>/v2/…`.
    pub url: url::Url,
    /// Credentials for the upstream, never the client's: a client logs in to trustgate, and its
    /// credentials are not forwarded. With a `Bearer` challenge they are sent as Basic to the
    /// token service (Docker "Token Authentication Specification"); with a `Basic` challenge to
    /// the registry. Anonymous when `None`.
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

/// A file named by an `[[upstream]]` entry that cannot be used: the key within the entry
/// (`password_file`, `ca_file`, `notary_password_file`, `notary_ca_file`) and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct SettingsError {
    pub key: &'static str,
    pub problem: String,
}

impl UpstreamSettings {
    /// The registry's settings: its credentials (the password read from `password_file`), its
    /// extra CA bundle (`ca_file`) and its timeouts.
    pub fn from_config(up: &UpstreamConfig) -> Result<UpstreamSettings, SettingsError> {
        let mut s = UpstreamSettings::new(up.name.clone(), up.url.clone());
        s.username = up.username.clone();
        s.password = up
            .password_file
            .as_deref()
            .map(|p| read_secret("password_file", p))
            .transpose()?;
        s.ca_pem = up
            .ca_file
            .as_deref()
            .map(|p| read_pem("ca_file", p))
            .transpose()?;
        s.timeouts = Timeouts {
            connect: up.connect_timeout(),
            first_byte: up.first_byte_timeout(),
            idle: up.idle_timeout(),
            min_rate: up.min_rate(),
        };
        Ok(s)
    }

    /// The settings of the upstream's Notary server (`notary`), or `None` when it has none:
    /// the registry's timeouts, the Notary credentials and CA bundle (not the registry's).
    pub fn notary_from_config(
        up: &UpstreamConfig,
    ) -> Result<Option<UpstreamSettings>, SettingsError> {
        let Some(url) = &up.notary else {
            return Ok(None);
        };
        let mut s = UpstreamSettings::new(format!("Notary server of {}", up.name), url.clone());
        // Errors then read "upstream Notary server of docker.io (https://…)"; the metrics keep
        // the configured upstream's name.
        s.role = UpstreamRole::Notary;
        s.metrics_name = Some(up.name.clone());
        s.username = up.notary_username.clone();
        s.password = up
            .notary_password_file
            .as_deref()
            .map(|p| read_secret("notary_password_file", p))
            .transpose()?;
        s.ca_pem = up
            .notary_ca_file
            .as_deref()
            .map(|p| read_pem("notary_ca_file", p))
            .transpose()?;
        s.timeouts = Timeouts {
            connect: up.connect_timeout(),
            first_byte: up.first_byte_timeout(),
            idle: up.idle_timeout(),
            min_rate: up.min_rate(),
        };
        Ok(Some(s))
    }

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

/// A password (or token) file: its text without the line ending `echo secret > file` leaves,
/// which is not part of the password.
fn read_secret(key: &'static str, path: &Path) -> Result<String, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| SettingsError {
        key,
        problem: format!("cannot read {}: {e}", path.display()),
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

/// A PEM bundle of CA certificates (the TLS client parses it; this checks there is one).
fn read_pem(key: &'static str, path: &Path) -> Result<Vec<u8>, SettingsError> {
    let pem = std::fs::read(path).map_err(|e| SettingsError {
        key,
        problem: format!("cannot read {}: {e}", path.display()),
    })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(SettingsError {
            key,
            problem: format!("{} holds no PEM certificate", path.display()),
        });
    }
    Ok(pem)
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
    /// Slowest acceptable body: a window with fewer bytes ends the body with a timeout
    /// (default 1 KiB/s over 60 s; see [`super::rate`]).
    pub min_rate: MinRate,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            min_rate: MinRate::DEFAULT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn upstream(extra: &str) -> UpstreamConfig {
        let toml = format!("[[upstream]]\nname = \"a.io\"\nurl = \"https://a.io\"\n{extra}");
        Config::from_toml(&toml, Path::new("test.toml"))
            .unwrap()
            .upstreams
            .remove(0)
    }

    #[test]
    fn password_files_are_read_without_the_newline_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let npw = dir.path().join("npw");
        std::fs::write(&npw, "n0tary\r\n").unwrap();
        let up = upstream(&format!(
            "username = \"u\"\npassword_file = {pw:?}\nnotary = \"https://n.a.io\"\nnotary_username = \"nu\"\nnotary_password_file = {npw:?}\nconnect_timeout = \"3s\"\n"
        ));
        let s = UpstreamSettings::from_config(&up).unwrap();
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        assert_eq!(s.timeouts.connect, Duration::from_secs(3));
        assert_eq!(s.role, UpstreamRole::Registry);
        assert!(!format!("{s:?}").contains("s3cret"));
        let n = UpstreamSettings::notary_from_config(&up).unwrap().unwrap();
        assert_eq!(n.name, "Notary server of a.io");
        assert_eq!(n.url.as_str(), "https://n.a.io/");
        assert_eq!(n.username.as_deref(), Some("nu"));
        assert_eq!(n.password.as_deref(), Some("n0tary"));
        assert_eq!(n.role, UpstreamRole::Notary);
        assert_eq!(n.metrics_name.as_deref(), Some("a.io"));
        assert_eq!(n.timeouts.connect, Duration::from_secs(3));
        assert!(UpstreamSettings::notary_from_config(&upstream(""))
            .unwrap()
            .is_none());
    }

    #[test]
    fn missing_and_non_pem_files_name_their_key() {
        let e = UpstreamSettings::from_config(&upstream(
            "username = \"u\"\npassword_file = \"/nonexistent/pw\"\n",
        ))
        .unwrap_err();
        assert_eq!(e.key, "password_file");
        assert!(e.problem.starts_with("cannot read /nonexistent/pw"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let e = UpstreamSettings::from_config(&upstream(&format!("ca_file = {not_pem:?}\n")))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("ca_file: {} holds no PEM certificate", not_pem.display())
        );
        let e = UpstreamSettings::notary_from_config(&upstream(&format!(
            "notary = \"https://n.a.io\"\nnotary_ca_file = {not_pem:?}\n"
        )))
        .unwrap_err();
        assert_eq!(e.key, "notary_ca_file");
    }
}
