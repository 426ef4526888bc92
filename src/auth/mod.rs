//! Client authentication: who may pull through trustgate (`[auth]`).
//!
//! Clients log in with HTTP Basic against an htpasswd file of bcrypt entries: every request,
//! `GET /v2/` included, without valid credentials is answered 401 with a `Basic` challenge, which
//! is what `docker login`, `podman login` and `skopeo --creds` expect from a registry
//! (distribution's own htpasswd mode answers the same way). Optional `[[auth.access]]` rules then
//! limit which repositories (GUN globs, as in `[[policy]]`) each user may pull.
//!
//! What a client learns from a refusal is the same for an unknown user and a wrong password:
//! the same status, body and headers, and about the same time, because an unknown user's
//! password is checked against a made-up hash of the usual cost. Repeated failures from one
//! address are slowed down ([`throttle`]). bcrypt is slow on purpose (tens to hundreds of
//! milliseconds), and a `docker pull` sends credentials with each of its dozens of requests, so
//! a successful check is remembered for a short while (keyed by a keyed hash of user and
//! password, never the password itself) and forgotten when the file is reloaded; checks run on
//! the blocking pool, a few at a time, so guessing cannot starve the async workers.
//!
//! This module owns the `[auth]` section ([`AuthConfig`]) and loads its own file:
//! [`Gate::from_config`] is what both `serve` and `check-config` call, and [`Gate::reload`]
//! (SIGHUP) re-reads the htpasswd file and swaps the `[[auth.access]]` rules together.

pub mod basic;
mod config;
pub mod htpasswd;
pub mod throttle;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{header, StatusCode};
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

use crate::api::error::{ApiError, ErrorCode};
pub use config::{AccessRule, AuthConfig};
use htpasswd::{Htpasswd, LineError};
use throttle::{Backoff, Throttle};

/// The failures of this layer, each written for the operator (and, for the request-time ones,
/// mapped once to what the client sees by [`Gate::refusal`]).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header, or one of another scheme.
    #[error("no credentials")]
    Missing,
    /// `Authorization: Basic` with something that is not base64 of `user:password`.
    #[error("malformed Basic credentials")]
    Malformed,
    /// Unknown user or wrong password: deliberately one variant, so that nothing downstream can
    /// tell the client which (the log line written at the failure says it).
    #[error("wrong user name or password (user {user:?})")]
    BadCredentials { user: String },
    /// Logged in, but no `[[auth.access]]` rule lets this user pull this repository.
    #[error("user {user} may not pull {gun}")]
    Denied { user: String, gun: String },
    /// The password check itself could not run (a panic on the blocking pool).
    #[error("the password check did not complete: {0}")]
    Verifier(String),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} {source}", path.display())]
    Htpasswd {
        path: PathBuf,
        #[source]
        source: LineError,
    },
    #[error("{} holds no user entries (create one with htpasswd -B -c FILE USER)", path.display())]
    NoUsers { path: PathBuf },
    /// A reload asked for something only a restart can do.
    #[error("{0}")]
    NeedsRestart(&'static str),
}

impl AuthError {
    /// The configuration key a load or reload error is about, for `FILE: KEY: problem` lines.
    pub fn config_key(&self) -> &'static str {
        match self {
            AuthError::NeedsRestart(_) => "auth",
            _ => "auth.htpasswd",
        }
    }
}

/// Reads and parses an htpasswd file; start-up (and so `check-config`) and reload both go
/// through here.
fn load_htpasswd(path: &Path) -> Result<Htpasswd, AuthError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file = Htpasswd::parse(&text).map_err(|source| AuthError::Htpasswd {
        path: path.to_path_buf(),
        source,
    })?;
    if file.is_empty() {
        return Err(AuthError::NoUsers {
            path: path.to_path_buf(),
        });
    }
    Ok(file)
}

/// `[[auth.access]]`: which user may pull which GUNs. Pure.
#[derive(Debug, Clone, Default)]
pub struct Access {
    rules: Vec<AccessRule>,
}

impl Access {
    pub fn new(rules: Vec<AccessRule>) -> Self {
        Self { rules }
    }

    /// Without rules everyone may pull everything; with rules, only what a rule naming the user
    /// (or `"*"`) matches.
    pub fn allows(&self, user: &str, gun: &str) -> bool {
        self.rules.is_empty()
            || self.rules.iter().any(|r| {
                r.users.iter().any(|u| u == "*" || u == user)
                    && r.repositories.iter().any(|g| crate::glob::matches(g, gun))
            })
    }

    /// Users named by rules (not `"*"`).
    fn named_users(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .flat_map(|r| r.users.iter())
            .map(String::as_str)
            .filter(|u| *u != "*")
    }
}

/// One version of the user list.
struct Users {
    file: Htpasswd,
    /// A hash of a random password at the file's usual cost, checked for unknown users.
    dummy: String,
    generation: u64,
}

/// How long a successful check is remembered. Short: a removed user or changed password takes
/// effect at the latest this long after the file changed without SIGHUP.
const VERIFIED_TTL: Duration = Duration::from_secs(120);
/// Successful checks remembered at most.
const VERIFIED_MAX: u64 = 10_000;

/// What a reload swaps as one: the file, the users it lists, the challenge and the rules.
struct Live {
    path: PathBuf,
    /// `Basic realm="…"` (the realm is checked by [`AuthConfig::validate`] to need no escaping).
    challenge: String,
    users: Users,
    access: Access,
}

/// Checks the credentials of client requests.
pub struct Gate {
    live: RwLock<Arc<Live>>,
    generation: AtomicU64,
    /// keyed hash of (user, password) → the generation it was checked against.
    verified: moka::sync::Cache<[u8; 32], u64>,
    /// Per-process random key of that hash.
    cache_key: [u8; 32],
    throttle: Throttle,
    /// bcrypt checks running at once.
    checks: tokio::sync::Semaphore,
    /// bcrypt verifications done (for tests and metrics).
    verifications: AtomicU64,
}

impl Gate {
    /// Runs pending removals in its caches; the entries left ([`crate::housekeeping`]).
    pub fn housekeep(&self) -> u64 {
        crate::housekeeping::settle(&self.verified) + self.throttle.tracked()
    }

    /// The gate `[auth]` describes, with its htpasswd file loaded, or `None` when it names no
    /// htpasswd file. Blocking, briefly: a file read and one bcrypt hash at the file's cost.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Gate>, AuthError> {
        let Some(path) = &config.htpasswd else {
            return Ok(None);
        };
        Gate::new(
            path,
            &config.realm,
            config.access.clone(),
            throttle::DEFAULT_BACKOFF,
        )
        .map(Some)
    }

    /// Loads `path` (the slow part is one bcrypt hash for the unknown-user check).
    pub fn new(
        path: &Path,
        realm: &str,
        access: Vec<AccessRule>,
        backoff: Backoff,
    ) -> Result<Gate, AuthError> {
        let live = Live::load(path, realm, access, 1)?;
        let mut cache_key = [0u8; 32];
        getrandom::fill(&mut cache_key)
            .map_err(|e| AuthError::Verifier(format!("no OS randomness: {e}")))?;
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Gate {
            live: RwLock::new(Arc::new(live)),
            generation: AtomicU64::new(1),
            verified: moka::sync::Cache::builder()
                .max_capacity(VERIFIED_MAX)
                .time_to_live(VERIFIED_TTL)
                .build(),
            cache_key,
            throttle: Throttle::new(backoff),
            checks: tokio::sync::Semaphore::new(parallel),
            verifications: AtomicU64::new(0),
        })
    }

    /// Re-reads the htpasswd file `config` names and takes its realm and `[[auth.access]]` rules
    /// (SIGHUP), all at once: a request sees either the old users and rules or the new ones.
    /// Returns one line for the log saying what changed, e.g.
    /// `/etc/trustgate/htpasswd: 3 users (1 added, 0 removed, 1 changed); 2 access rules (changed)`,
    /// where "changed" counts users whose entry (password hash) is new.
    ///
    /// On any problem everything loaded before stays in force and the error says why. Turning
    /// authentication off (no `htpasswd` any more) needs a restart: a reload never opens the
    /// proxy to everyone. Blocking, briefly: a file read and one bcrypt hash at the file's cost
    /// (tens of milliseconds at the usual costs).
    pub fn reload(&self, config: &AuthConfig) -> Result<String, AuthError> {
        let Some(path) = &config.htpasswd else {
            return Err(AuthError::NeedsRestart(
                "[auth] htpasswd was removed; turning client authentication off needs a restart \
                 (the previous users and rules stay in force)",
            ));
        };
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let new = Live::load(path, &config.realm, config.access.clone(), generation)?;
        let summary = {
            let mut live = self.live.write();
            let summary = describe_change(&live, &new);
            *live = Arc::new(new);
            summary
        };
        // Checks remembered from the old file must not outlive it (the generation check in
        // `authenticate` covers a check that was running while the file was swapped).
        self.verified.invalidate_all();
        tracing::debug!(%summary, "reloaded [auth]");
        Ok(summary)
    }

    /// Users in the file in force.
    pub fn user_count(&self) -> usize {
        self.current().users.file.len()
    }

    /// The htpasswd file in force.
    pub fn htpasswd_path(&self) -> PathBuf {
        self.current().path.clone()
    }

    /// bcrypt verifications done so far.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    fn current(&self) -> Arc<Live> {
        self.live.read().clone()
    }

    fn key_of(&self, creds: &basic::Credentials) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        h.update((creds.user.len() as u64).to_be_bytes());
        h.update(creds.user.as_bytes());
        h.update(&creds.password);
        h.finalize().into()
    }

    /// The user the `Authorization` header of a request from `client` logs in, or why not.
    /// A wrong password is answered late when `client` has failed repeatedly.
    pub async fn authenticate(
        &self,
        authorization: Option<&[u8]>,
        client: IpAddr,
    ) -> Result<String, AuthError> {
        let creds = match authorization.map(basic::parse) {
            None | Some(Err(basic::BasicError::OtherScheme)) => return Err(AuthError::Missing),
            Some(Err(basic::BasicError::Malformed)) => return Err(AuthError::Malformed),
            Some(Ok(c)) => c,
        };
        let live = self.current();
        let users = &live.users;
        let key = self.key_of(&creds);
        if self.verified.get(&key) == Some(users.generation) {
            return Ok(creds.user);
        }
        let known = users.file.hash_of(&creds.user).is_some();
        let hash = users
            .file
            .hash_of(&creds.user)
            .unwrap_or(&users.dummy)
            .to_string();
        let matched = {
            // The semaphore is never closed; a failure here would be a bug, reported as such.
            let _permit = self
                .checks
                .acquire()
                .await
                .map_err(|e| AuthError::Verifier(e.to_string()))?;
            let password = creds.password.clone();
            let checked = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                .await
                .map_err(|e| AuthError::Verifier(e.to_string()))?;
            self.verifications.fetch_add(1, Ordering::Relaxed);
            match checked {
                Ok(m) => m,
                Err(e) => {
                    // Entries are validated at load; this is not expected.
                    tracing::error!(user = creds.user.as_str(), error = %e, "bcrypt refused a stored hash");
                    false
                }
            }
        };
        tracing::debug!(
            user = creds.user.as_str(),
            matched,
            "password checked with bcrypt"
        );
        if matched && known {
            self.verified.insert(key, users.generation);
            return Ok(creds.user);
        }
        let (failures, delay) = self.throttle.failed(client, tokio::time::Instant::now());
        let reason = if known {
            "wrong password"
        } else {
            "unknown user"
        };
        if delay.is_zero() {
            tracing::warn!(%client, user = creds.user.as_str(), reason, failures, "authentication failed");
        } else {
            tracing::warn!(%client, user = creds.user.as_str(), reason, failures, delay_ms = delay.as_millis() as u64,
                "authentication failed; answer held back (repeated failures from this address)");
            tokio::time::sleep(delay).await;
        }
        Err(AuthError::BadCredentials { user: creds.user })
    }

    /// Whether `user` may pull from the repository `gun`.
    pub fn authorize(&self, user: &str, gun: &str) -> Result<(), AuthError> {
        if self.current().access.allows(user, gun) {
            Ok(())
        } else {
            Err(AuthError::Denied {
                user: user.to_string(),
                gun: gun.to_string(),
            })
        }
    }

    /// What the client sees for a refusal. Unknown user and wrong password give the very same
    /// answer.
    pub fn refusal(&self, e: &AuthError) -> ApiError {
        let challenge = |message: &str| {
            ApiError::new(ErrorCode::Unauthorized, message)
                .with_header(header::WWW_AUTHENTICATE, self.current().challenge.clone())
        };
        match e {
            AuthError::Missing | AuthError::Malformed => challenge(
                "authentication required: log in to trustgate (docker login, podman login, skopeo --creds)",
            ),
            AuthError::BadCredentials { .. } => {
                challenge("authentication failed: wrong user name or password")
            }
            AuthError::Denied { .. } => ApiError::new(ErrorCode::Denied, e.to_string()),
            AuthError::Verifier(_)
            | AuthError::Read { .. }
            | AuthError::Htpasswd { .. }
            | AuthError::NoUsers { .. }
            | AuthError::NeedsRestart(_) => ApiError::new(
                ErrorCode::Unknown,
                "trustgate could not check the credentials; see its log",
            )
            .with_status(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl Live {
    fn load(
        path: &Path,
        realm: &str,
        access: Vec<AccessRule>,
        generation: u64,
    ) -> Result<Live, AuthError> {
        let users = load_users(path, generation)?;
        let access = Access::new(access);
        for user in access.named_users() {
            if !users.file.contains(user) {
                tracing::warn!(user, htpasswd = %path.display(), "an [[auth.access]] rule names a user the htpasswd file does not have");
            }
        }
        Ok(Live {
            path: path.to_path_buf(),
            challenge: format!("Basic realm=\"{realm}\""),
            users,
            access,
        })
    }
}

/// One line saying what a reload changed.
fn describe_change(old: &Live, new: &Live) -> String {
    let (before, after) = (&old.users.file, &new.users.file);
    let old_names: BTreeSet<&str> = before.users().collect();
    let new_names: BTreeSet<&str> = after.users().collect();
    let added = new_names.difference(&old_names).count();
    let removed = old_names.difference(&new_names).count();
    let changed = new_names
        .intersection(&old_names)
        .filter(|u| before.hash_of(u) != after.hash_of(u))
        .count();
    let mut line = format!(
        "{}: {} user{} ({added} added, {removed} removed, {changed} changed); {} access rule{} ({})",
        new.path.display(),
        after.len(),
        if after.len() == 1 { "" } else { "s" },
        new.access.rules.len(),
        if new.access.rules.len() == 1 { "" } else { "s" },
        if new.access.rules == old.access.rules {
            "unchanged"
        } else {
            "changed"
        },
    );
    if new.path != old.path {
        line.push_str(&format!("; htpasswd was {}", old.path.display()));
    }
    if new.challenge != old.challenge {
        line.push_str("; realm changed");
    }
    line
}

fn load_users(path: &Path, generation: u64) -> Result<Users, AuthError> {
    let file = load_htpasswd(path)?;
    let cost = file.typical_cost().unwrap_or(bcrypt::DEFAULT_COST);
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| AuthError::Verifier(format!("no OS randomness: {e}")))?;
    let dummy = bcrypt::hash(secret, cost)
        .map_err(|e| AuthError::Verifier(format!("cannot make the unknown-user hash: {e}")))?;
    Ok(Users {
        file,
        dummy,
        generation,
    })
}

#[cfg(test)]
mod tests;
