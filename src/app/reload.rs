//! Reloads (SIGHUP): re-read the configuration file, apply every section that can change
//! safely, and say in the log what changed.
//!
//! Applied in place: the server TLS files (`tls_cert`, `tls_key`, `client_ca`: re-read, new
//! handshakes use them) and client authentication (`[auth]`: the htpasswd file re-read, its
//! path, the realm and the `[[auth.access]]` rules swapped, together or not at all, by
//! [`Gate::reload`]). Logged at warn as needing a restart: every other
//! section that differs from the one in force (listen addresses, storage, upstreams, trust,
//! policies, log format, TLS file paths, turning client authentication on or off). A configuration file that does
//! not parse or validate changes no setting (the error names the file, key and problem); the
//! files the configuration in force names are still re-read. Open connections are
//! not touched: what a reload changes applies to what comes after it.

use std::path::PathBuf;
use std::sync::Arc;

use crate::api::tls::ReloadableTls;
use crate::auth::Gate;
use crate::config::Config;

/// What asks for a reload.
pub enum ReloadTrigger {
    /// SIGHUP (`None`: the handler could not be installed; reloads need a restart).
    #[cfg(unix)]
    Signal(Option<tokio::signal::unix::Signal>),
    /// A message on a channel (tests).
    Channel(tokio::sync::mpsc::Receiver<()>),
    /// Never.
    Never,
}

impl ReloadTrigger {
    /// Catches SIGHUP from now on (its default action would end the process).
    pub fn sighup() -> ReloadTrigger {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::hangup()) {
                Ok(s) => ReloadTrigger::Signal(Some(s)),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; reloads need a restart");
                    ReloadTrigger::Signal(None)
                }
            }
        }
        #[cfg(not(unix))]
        ReloadTrigger::Never
    }

    /// Completes at the next request; `None` when none can come any more.
    async fn next(&mut self) -> Option<()> {
        match self {
            #[cfg(unix)]
            ReloadTrigger::Signal(Some(s)) => s.recv().await,
            #[cfg(unix)]
            ReloadTrigger::Signal(None) => None,
            ReloadTrigger::Channel(rx) => rx.recv().await,
            ReloadTrigger::Never => None,
        }
    }
}

/// What a reload can change, and the configuration in force.
pub(crate) struct Reloader {
    /// The configuration file, re-read at each reload (`None`: only the files it names are).
    pub file: Option<PathBuf>,
    /// The settings in force: `[auth]` follows successful reloads; the sections that need a
    /// restart keep their start-up values (so each reload warns again while they differ).
    pub current: Config,
    pub tls: Option<Arc<ReloadableTls>>,
    pub gate: Option<Arc<Gate>>,
}

impl Reloader {
    pub async fn run(mut self, mut trigger: ReloadTrigger) {
        while trigger.next().await.is_some() {
            // File reads and one bcrypt hash: off the async workers.
            self = match tokio::task::spawn_blocking(move || {
                self.reload_once();
                self
            })
            .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: the reload task failed; reloads stop");
                    return;
                }
            };
        }
    }

    /// One reload, logged line by line.
    pub fn reload_once(&mut self) {
        let next = match &self.file {
            None => self.current.clone(),
            Some(file) => match Config::load(file) {
                Ok(c) => {
                    tracing::info!(file = %file.display(), "SIGHUP: configuration re-read");
                    c
                }
                // The files it names (TLS, htpasswd) are still re-read below, as before the
                // configuration file itself was re-read.
                Err(e) => {
                    tracing::error!(
                        "SIGHUP: reload failed, keeping the configuration in force: {e}"
                    );
                    self.current.clone()
                }
            },
        };
        for section in needs_restart(&self.current, &next) {
            tracing::warn!(
                section,
                "SIGHUP: changed in the file, but takes effect only after a restart"
            );
        }
        let mut applied = false;
        if let Some(tls) = &self.tls {
            applied = true;
            match tls.reload() {
                Ok(summary) => {
                    tracing::info!(what = "server TLS (tls_cert, tls_key, client_ca)", %summary, "SIGHUP: reloaded")
                }
                Err(e) => tracing::error!(
                    what = "server TLS (tls_cert, tls_key, client_ca)",
                    "SIGHUP: reload failed, keeping the previous one: {e}"
                ),
            }
        }
        if let Some(gate) = &self.gate {
            applied = true;
            match gate.reload(&next.auth) {
                Ok(summary) => {
                    tracing::info!(what = "client logins (auth.htpasswd, auth.access)", %summary, "SIGHUP: reloaded");
                    self.current.auth = next.auth.clone();
                }
                Err(e) => tracing::error!(
                    what = "client logins (auth.htpasswd, auth.access)",
                    "SIGHUP: reload failed, keeping the previous one: {}: {e}",
                    e.config_key()
                ),
            }
        }
        if !applied {
            tracing::info!("SIGHUP: nothing to reload");
        }
    }
}

/// The sections of `next` that differ from `current` and cannot be applied in place.
fn needs_restart(current: &Config, next: &Config) -> Vec<&'static str> {
    // Debug text as the comparison: every section derives Debug (secrets print redacted, so a
    // changed password file content is not seen; its path is).
    fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    let mut out = Vec::new();
    let (a, b) = (&current.server, &next.server);
    if a.listen != b.listen {
        out.push("server.listen");
    }
    if a.tls_cert != b.tls_cert || a.tls_key != b.tls_key || a.client_ca != b.client_ca {
        out.push("server TLS file paths (tls_cert, tls_key, client_ca)");
    }
    let mut server_rest_a = a.clone();
    let mut server_rest_b = b.clone();
    for s in [&mut server_rest_a, &mut server_rest_b] {
        s.listen = a.listen;
        s.tls_cert = None;
        s.tls_key = None;
        s.client_ca = None;
    }
    if differs(&server_rest_a, &server_rest_b) {
        out.push("server (connection limits and timeouts)");
    }
    if current.admin.listen != next.admin.listen {
        out.push("admin.listen");
    }
    if differs(&current.storage, &next.storage) {
        out.push("storage");
    }
    if differs(&current.upstreams, &next.upstreams) {
        out.push("upstream");
    }
    if differs(&current.trust, &next.trust) {
        out.push("trust");
    }
    if differs(&current.policies, &next.policies) {
        out.push("policy");
    }
    if current.log.format != next.log.format {
        out.push("log.format");
    }
    if current.log.queue_lines != next.log.queue_lines {
        out.push("log.queue_lines");
    }
    // The htpasswd path, realm and rules are applied by `Gate::reload`; turning client
    // authentication on or off is not.
    if current.auth.htpasswd.is_some() != next.auth.htpasswd.is_some() {
        out.push("auth.htpasswd (turning client authentication on or off)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::from_toml(text, Path::new("t.toml")).unwrap()
    }

    const BASE: &str = "[storage]\npath = \"/tmp/tg\"\n[[upstream]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\ndefault = true\n";

    #[test]
    fn sections_that_need_a_restart_are_named() {
        let a = config(BASE);
        assert!(needs_restart(&a, &a.clone()).is_empty());
        let b = config(&format!(
            "[server]\nlisten = \"127.0.0.1:6000\"\nidle_timeout = \"5s\"\n[admin]\nlisten = \"127.0.0.1:6001\"\n{}",
            BASE.replace("/tmp/tg", "/tmp/other")
        ));
        assert_eq!(
            needs_restart(&a, &b),
            [
                "server.listen",
                "server (connection limits and timeouts)",
                "admin.listen",
                "storage"
            ]
        );
        // Access rules apply in place (with the same htpasswd file).
        let dir = tempfile::tempdir().unwrap();
        let htpasswd = dir.path().join("htpasswd");
        let hash = bcrypt::hash("pw", 4).unwrap();
        std::fs::write(&htpasswd, format!("a:{hash}\n")).unwrap();
        let auth = format!("[auth]\nhtpasswd = {:?}\n", htpasswd.display().to_string());
        let c = config(&format!("{BASE}{auth}"));
        let d = config(&format!(
            "{BASE}{auth}[[auth.access]]\nusers = [\"a\"]\nrepositories = [\"*\"]\n"
        ));
        assert!(needs_restart(&c, &d).is_empty());
        assert_eq!(
            needs_restart(&a, &c),
            ["auth.htpasswd (turning client authentication on or off)"]
        );
    }
}
