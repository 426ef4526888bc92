//! `[auth]`: the section of the configuration this module owns. Parsing and the checks that
//! need no file live here; the htpasswd file itself is loaded by [`super::Gate::from_config`],
//! which both `check-config` and `serve` call.

use std::path::PathBuf;

use serde::Deserialize;

use crate::glob;

/// `[auth]`: who may pull through trustgate. Without `htpasswd`, anyone who can reach the
/// listener may pull.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// htpasswd file with bcrypt entries (`htpasswd -B`). Re-read on SIGHUP.
    pub htpasswd: Option<PathBuf>,
    /// The realm of the Basic challenge.
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Per-user repository globs. Without any rule every authenticated user may pull every
    /// repository; with rules, a user may pull only what a rule naming them (or `"*"`) matches.
    #[serde(default)]
    pub access: Vec<AccessRule>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            htpasswd: None,
            realm: default_realm(),
            access: Vec::new(),
        }
    }
}

fn default_realm() -> String {
    "trustgate".into()
}

/// `[[auth.access]]`: these users may pull these repositories (GUN globs, as in `[[policy]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRule {
    pub users: Vec<String>,
    pub repositories: Vec<String>,
}

impl AuthConfig {
    /// The checks that need no file: rules need users, the realm must fit in a challenge, and
    /// each rule names users and usable globs. Returns the key under `auth` (e.g.
    /// `access[0].users`) and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.htpasswd.is_none() && !self.access.is_empty() {
            return Err((
                "access".into(),
                "per-user rules need users: set auth.htpasswd too".into(),
            ));
        }
        // The realm goes into `WWW-Authenticate: Basic realm="…"` unescaped (RFC 7617 §2).
        if self.realm.is_empty() || self.realm.contains(['"', '\\', '\r', '\n']) {
            return Err((
                "realm".into(),
                format!("{:?} cannot be used in a Basic challenge", self.realm),
            ));
        }
        for (i, rule) in self.access.iter().enumerate() {
            if rule.users.is_empty() {
                return Err((
                    format!("access[{i}].users"),
                    "must list at least one user (or \"*\")".into(),
                ));
            }
            if rule.repositories.is_empty() {
                return Err((
                    format!("access[{i}].repositories"),
                    "must list at least one glob".into(),
                ));
            }
            for (j, g) in rule.repositories.iter().enumerate() {
                if let Some(problem) = glob::problem(g) {
                    return Err((format!("access[{i}].repositories[{j}]"), problem));
                }
            }
        }
        Ok(())
    }
}
