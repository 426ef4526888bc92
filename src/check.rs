//! `trustgate check-config FILE`: the configuration and every file it names, loaded the way
//! `serve` loads them, before a restart (as zot's `verify` subcommand does for its config).
//!
//! The configuration layer parses and checks the TOML ([`Config::load`]) and reads no file; each
//! subsystem then loads its own files through the same `from_config` that `serve` calls: the
//! listener's TLS files ([`TlsFiles::from_config`] and [`TlsFiles::load`]), the htpasswd file
//! ([`Gate::from_config`]), each upstream's password and CA files
//! ([`UpstreamSettings::from_config`], [`UpstreamSettings::notary_from_config`]) and the
//! certificates policies pin ([`Policies::from_config`]), and the key and trusted-root files of
//! `[[verifier]]` tables ([`DigestVerifiers::from_config`]). Nothing here listens. The one network
//! check is the fleet's shared store (`[storage.shared]`, issue 14): a probe object is written,
//! read back and deleted, so wrong credentials or an unreachable bucket show before a restart.
//! The CLI only prints what [`check_config`] returns.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::api::tls::{TlsError, TlsFiles};
use crate::auth::{AuthError, Gate};
use crate::config::{Config, ConfigError};
use crate::policy::{Policies, PolicyError};
use crate::upstream::settings::{SettingsError, UpstreamSettings};
use crate::verify::digest::{DigestVerifiers, VerifierSetupError};

/// What a valid configuration sets up; its `Display` is the summary `check-config` prints after
/// the file name: `valid (2 upstreams, listening on 127.0.0.1:5000 (HTTPS))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub upstreams: usize,
    pub listen: SocketAddr,
    pub tls: TlsMode,
    /// Users of the htpasswd file, when clients must log in.
    pub users: Option<usize>,
}

/// How the registry listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Plain,
    Https,
    /// HTTPS, and every client must present a certificate from `server.client_ca`.
    MutualTls,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = match self.tls {
            TlsMode::Plain => "",
            TlsMode::Https => " (HTTPS)",
            TlsMode::MutualTls => " (HTTPS, client certificates required)",
        };
        write!(
            f,
            "valid ({} upstream{}, listening on {}{tls})",
            self.upstreams,
            if self.upstreams == 1 { "" } else { "s" },
            self.listen
        )
    }
}

/// Why a configuration is not valid, each printed as `FILE: KEY: problem`.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The file itself: unreadable, not TOML, or a key with a bad value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `[auth]`: the htpasswd file.
    #[error("{}: {}: {source}", file.display(), source.config_key())]
    Auth {
        file: PathBuf,
        #[source]
        source: AuthError,
    },
    /// `[server]`: the TLS files (the error names its own key).
    #[error("{}: {source}", file.display())]
    Tls {
        file: PathBuf,
        #[source]
        source: TlsError,
    },
    /// `[[upstream]]`: a password or CA file of the entry at `index`.
    #[error("{}: upstream[{index}].{}: {}", file.display(), source.key, source.problem)]
    Upstream {
        file: PathBuf,
        index: usize,
        #[source]
        source: SettingsError,
    },
    /// `[storage.shared]`: the bucket is not reachable or not writable.
    #[error("{}: storage.shared: {source}", file.display())]
    SharedStore {
        file: PathBuf,
        #[source]
        source: crate::store::SharedError,
    },
    /// `[fleet]`: the secret file.
    #[error("{}: {problem}", file.display())]
    Fleet { file: PathBuf, problem: String },
    /// `[[policy]]`: a pinned certificate file (the error names its own key).
    #[error("{}: {source}", file.display())]
    Policy {
        file: PathBuf,
        #[source]
        source: PolicyError,
    },
    /// `[[verifier]]`: a key or trusted-root file, an identity pattern (the error names its own
    /// key: `verifier[0].keys[1]: …`).
    #[error("{}: {source}", file.display())]
    Verifier {
        file: PathBuf,
        #[source]
        source: VerifierSetupError,
    },
}

/// Loads `file` and every file it names, as `serve` would, without starting anything.
/// Blocking: file reads, and one bcrypt hash at the htpasswd file's cost.
pub fn check_config(file: &Path) -> Result<Summary, CheckError> {
    let config = Config::load(file)?;
    check_loaded(&config, file)
}

/// The subsystems' part of [`check_config`], for a configuration already loaded from `file`.
pub fn check_loaded(config: &Config, file: &Path) -> Result<Summary, CheckError> {
    let tls = match TlsFiles::from_config(&config.server) {
        None => TlsMode::Plain,
        Some(files) => {
            files.load().map_err(|source| CheckError::Tls {
                file: file.to_path_buf(),
                source,
            })?;
            if files.client_ca.is_some() {
                TlsMode::MutualTls
            } else {
                TlsMode::Https
            }
        }
    };
    let gate = Gate::from_config(&config.auth).map_err(|source| CheckError::Auth {
        file: file.to_path_buf(),
        source,
    })?;
    for (index, up) in config.upstreams.iter().enumerate() {
        let fail = |source| CheckError::Upstream {
            file: file.to_path_buf(),
            index,
            source,
        };
        UpstreamSettings::from_config(up).map_err(fail)?;
        UpstreamSettings::notary_from_config(up).map_err(fail)?;
    }
    Policies::from_config(&config.policies).map_err(|source| CheckError::Policy {
        file: file.to_path_buf(),
        source,
    })?;
    if let Some(f) = &config.fleet {
        f.read_secret().map_err(|problem| CheckError::Fleet {
            file: file.to_path_buf(),
            problem,
        })?;
    }
    if let Some(sh) = &config.storage.shared {
        probe_shared(sh).map_err(|source| CheckError::SharedStore {
            file: file.to_path_buf(),
            source,
        })?;
    }
    DigestVerifiers::from_config(&config.verifiers, Path::new(".")).map_err(|source| {
        CheckError::Verifier {
            file: file.to_path_buf(),
            source,
        }
    })?;
    Ok(Summary {
        upstreams: config.upstreams.len(),
        listen: config.server.listen,
        tls,
        users: gate.map(|g| g.user_count()),
    })
}

/// Writes, reads back and deletes a probe object in the shared bucket (on a runtime of its own:
/// `check_config` is called from plain threads).
fn probe_shared(sh: &crate::store::SharedStoreConfig) -> Result<(), crate::store::SharedError> {
    let shared = crate::store::SharedStore::from_config(sh)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::store::SharedError::Config(format!("no async runtime: {e}")))?;
    rt.block_on(shared.probe())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn err(dir: &Path, toml: &str) -> String {
        let file = write(dir, "t.toml", toml);
        check_config(&file).unwrap_err().to_string()
    }

    #[test]
    fn the_shipped_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/trustgate.toml");
        let s = check_config(&path).unwrap();
        assert_eq!(
            s.to_string(),
            "valid (1 upstream, listening on 127.0.0.1:5000)"
        );
        assert_eq!(s.users, None);
    }

    #[test]
    fn htpasswd_problems_name_file_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = d.join("t.toml");
        let e = err(d, "[auth]\nhtpasswd = \"/nonexistent/htpasswd\"\n");
        assert!(
            e.starts_with(&format!(
                "{}: auth.htpasswd: cannot read /nonexistent/htpasswd",
                t.display()
            )),
            "{e}"
        );
        let h = write(d, "htpasswd", "");
        let auth = format!("[auth]\nhtpasswd = {h:?}\n");
        let e = err(d, &auth);
        assert!(
            e.contains("auth.htpasswd: ") && e.contains("holds no user entries"),
            "{e}"
        );
        write(
            d,
            "htpasswd",
            "# users\nalice:$apr1$6/pqEV72$z/gHYk8zeqeBiK3/mOJb10\n",
        );
        let e = err(d, &auth);
        assert!(
            e.contains(&format!(
                "auth.htpasswd: {} line 2: user \"alice\": MD5 ($apr1$, htpasswd -m) entry; only bcrypt",
                h.display()
            )),
            "{e}"
        );
        // `htpasswd -nbB -C 4 alice alice-pw`
        write(
            d,
            "htpasswd",
            "alice:$2y$04$xhFpuB1l54acMlpkV.xFqORVpj/6YHoYQMa/5FhqHN2tqp4TxXVh2\n",
        );
        let s = check_config(&write(d, "t.toml", &auth)).unwrap();
        assert_eq!(s.users, Some(1));
    }

    #[test]
    fn tls_problems_name_file_key_and_tls_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = d.join("t.toml");
        let e = err(
            d,
            "[server]\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n",
        );
        assert!(
            e.starts_with(&format!(
                "{}: server.tls_cert: cannot read /nonexistent/cert.pem",
                t.display()
            )),
            "{e}"
        );
        let cert = write(
            d,
            "cert.pem",
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        );
        let key = write(d, "key.pem", "not a key\n");
        let e = err(
            d,
            &format!("[server]\ntls_cert = {cert:?}\ntls_key = {key:?}\n"),
        );
        assert!(e.starts_with(&format!("{}: server.", t.display())), "{e}");
        // A configuration problem is reported before any file is loaded.
        let e = err(d, "[server]\nclient_ca = \"/x.pem\"\n");
        assert!(
            e.contains("server.client_ca: client certificates need TLS"),
            "{e}"
        );
    }

    #[test]
    fn upstream_and_policy_files_name_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let t = d.join("t.toml");
        let up = "[[upstream]]\nname = \"a.io\"\nurl = \"https://a.io\"\n";
        let e = err(
            d,
            &format!("{up}{up}username = \"u\"\npassword_file = \"/nonexistent/pw\"\n")
                .replacen("a.io", "b.io", 2),
        );
        assert!(
            e.starts_with(&format!(
                "{}: upstream[1].password_file: cannot read /nonexistent/pw",
                t.display()
            )),
            "{e}"
        );
        let e = err(
            d,
            &format!("{up}notary = \"https://n.io\"\nnotary_ca_file = \"/nonexistent/ca\"\n"),
        );
        assert!(
            e.starts_with(&format!(
                "{}: upstream[0].notary_ca_file: cannot read /nonexistent/ca",
                t.display()
            )),
            "{e}"
        );
        let e = err(
            d,
            "[[policy]]\nrepositories = [\"*\"]\ntrust = \"enforce\"\nroot_ca = \"/nonexistent/ca\"\n",
        );
        assert!(
            e.starts_with(&format!(
                "{}: policy[0].root_ca: cannot read /nonexistent/ca",
                t.display()
            )),
            "{e}"
        );
    }
}
