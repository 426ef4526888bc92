//! Verified trust data per repository: fetched from the Notary server, verified, kept in memory
//! for `[trust] refresh` (never past its own expiry), persisted so pins and rollback protection
//! survive restarts, and re-verified from disk when the Notary server cannot be reached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use time::OffsetDateTime;

use super::persist::{PersistError, TrustStore};
use crate::policy::Policy;
use crate::trust::notary::NotaryClient;
use crate::trust::{self, TrustError, TrustErrorKind, VerifiedRepository, VerifyOptions};

/// The time trust data is checked against; a parameter so tests can move it.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// Why trust could not be established.
#[derive(Debug, thiserror::Error)]
pub enum TrustFailure {
    #[error("{0}")]
    Verify(#[from] TrustError),
    #[error("no Notary server is configured for upstream {upstream}, so the trust data of {gun} cannot be checked; set `notary` on the upstream or a policy with trust = \"off\"")]
    NoNotary { upstream: String, gun: String },
    #[error("{0}")]
    Persist(#[from] PersistError),
    #[error("the mirror is offline (upstream {upstream} has offline = true) and holds no trust data for {gun}; seed it while connected (trustgate seed)")]
    OfflineNoData { upstream: String, gun: String },
}

impl TrustFailure {
    pub fn kind(&self) -> TrustErrorKind {
        match self {
            Self::Verify(e) => e.kind(),
            Self::NoNotary { .. } => TrustErrorKind::NoTrustData,
            Self::Persist(_) => TrustErrorKind::Malformed,
            Self::OfflineNoData { .. } => TrustErrorKind::NoTrustData,
        }
    }
}

struct Cached {
    repo: Arc<VerifiedRepository>,
    /// When it was verified, by the injected clock: the refresh interval and the expiry are
    /// measured on the same clock (issue 11).
    checked_at: OffsetDateTime,
}

/// How an upstream's trust data is reached.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpstreamTrust {
    /// `offline = true`: only stored trust data, never the Notary server.
    pub offline: bool,
}

pub struct TrustService {
    notaries: Vec<Option<NotaryClient>>,
    modes: Vec<UpstreamTrust>,
    /// How long past expiry an offline mirror accepts timestamp and snapshot metadata.
    offline_grace: Option<time::Duration>,
    /// GUNs currently verified only thanks to `offline_grace` (logged at every use).
    graced: Mutex<std::collections::HashSet<String>>,
    upstream_names: Vec<String>,
    store: TrustStore,
    refresh: Duration,
    clock: Clock,
    cache: Mutex<HashMap<String, Cached>>,
    /// One update at a time per GUN: concurrent tag requests wait for the same verification.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// GUNs whose Notary server is unreachable right now (logged once per outage).
    degraded: Mutex<std::collections::HashSet<String>>,
}

impl TrustService {
    pub fn new(
        notaries: Vec<Option<NotaryClient>>,
        upstream_names: Vec<String>,
        store: TrustStore,
        refresh: Duration,
        clock: Clock,
    ) -> Self {
        let modes = vec![UpstreamTrust::default(); notaries.len()];
        Self {
            notaries,
            modes,
            offline_grace: None,
            graced: Mutex::new(Default::default()),
            upstream_names,
            store,
            refresh,
            clock,
            cache: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            degraded: Mutex::new(Default::default()),
        }
    }

    /// Marks upstreams offline and sets the offline grace period (seconds; 0 = none).
    pub fn with_offline(mut self, modes: Vec<UpstreamTrust>, grace_secs: u64) -> Self {
        self.modes = modes;
        self.offline_grace = (grace_secs > 0).then(|| time::Duration::seconds(grace_secs as i64));
        self
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    pub fn store(&self) -> &TrustStore {
        &self.store
    }

    /// The Notary server's `host[:port]` for an upstream, for messages.
    pub fn notary_host(&self, upstream: usize) -> Option<&str> {
        self.notaries.get(upstream)?.as_ref().map(|n| n.host())
    }

    fn fresh(&self, gun: &str) -> Option<Arc<VerifiedRepository>> {
        let cache = self.cache.lock().ok()?;
        let c = cache.get(gun)?;
        let now = self.now();
        (now - c.checked_at < self.refresh && now < c.repo.expires).then(|| c.repo.clone())
    }

    fn cached_unexpired(&self, gun: &str) -> Option<Arc<VerifiedRepository>> {
        let cache = self.cache.lock().ok()?;
        let c = cache.get(gun)?;
        (self.now() < c.repo.expires).then(|| c.repo.clone())
    }

    fn remember(&self, gun: &str, repo: Arc<VerifiedRepository>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                gun.to_string(),
                Cached {
                    repo,
                    checked_at: self.now(),
                },
            );
        }
    }

    fn forget(&self, gun: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(gun);
        }
    }

    fn lock_for(&self, gun: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(gun.to_string()).or_default().clone()
    }

    /// Verified trust data for `gun`, no older than the refresh interval.
    pub async fn verified(
        &self,
        upstream: usize,
        gun: &str,
        policy: &Policy,
    ) -> Result<Arc<VerifiedRepository>, TrustFailure> {
        if let Some(repo) = self.fresh(gun) {
            self.log_grace_use(gun);
            return Ok(repo);
        }
        let lock = self.lock_for(gun);
        let _guard = lock.lock().await;
        if let Some(repo) = self.fresh(gun) {
            self.log_grace_use(gun);
            return Ok(repo);
        }
        if self.modes.get(upstream).is_some_and(|m| m.offline) {
            return self.verify_offline(upstream, gun, policy).await;
        }
        let notary = self
            .notaries
            .get(upstream)
            .and_then(|n| n.as_ref())
            .ok_or_else(|| TrustFailure::NoNotary {
                upstream: self
                    .upstream_names
                    .get(upstream)
                    .cloned()
                    .unwrap_or_default(),
                gun: gun.to_string(),
            })?;
        // The disk is the source of pins, read at every refresh, so that `trustgate trust
        // reset` takes effect on a running server.
        let pinned = self.store.load(gun)?;
        let opts = VerifyOptions {
            pinning: policy.pinning.clone(),
            expired_grace_for_timestamp_snapshot: None,
        };
        let now = self.now();
        let started = std::time::Instant::now();
        let result = trust::update(
            &notary.source(gun),
            gun,
            notary.host(),
            pinned.as_ref(),
            now,
            &opts,
        )
        .await;
        let elapsed = started.elapsed();
        crate::metrics::metrics().verify_done(
            result.as_ref().err().map(crate::metrics::Reason::of_error),
            elapsed,
        );
        tracing::debug!(
            gun,
            ms = elapsed.as_millis() as u64,
            ok = result.is_ok(),
            "trust data updated"
        );
        match result {
            Ok(repo) => {
                if self
                    .degraded
                    .lock()
                    .map(|mut d| d.remove(gun))
                    .unwrap_or(false)
                {
                    tracing::info!(gun, notary = notary.host(), "Notary server reachable again");
                }
                if pinned.as_ref() != Some(&repo.new_state) {
                    if let Err(e) = self.store.save(&repo.new_state) {
                        // Serving on is safe (the verdict is sound); what is lost is rollback
                        // protection across a restart, which the operator must hear about.
                        tracing::error!(gun, error = %e, "could not persist verified trust state");
                    }
                }
                let repo = Arc::new(repo);
                self.remember(gun, repo.clone());
                Ok(repo)
            }
            Err(e) if e.kind() == TrustErrorKind::Fetch => {
                self.serve_while_notary_is_down(gun, notary.host(), pinned, now, &opts, e)
                    .await
            }
            Err(e) => {
                self.forget(gun);
                Err(e.into())
            }
        }
    }

    fn log_grace_use(&self, gun: &str) {
        if self.graced.lock().map(|g| g.contains(gun)).unwrap_or(false) {
            tracing::warn!(gun, "serving with expired timestamp/snapshot metadata accepted by [trust] offline_grace");
        }
    }

    /// An air-gapped mirror: re-verify the stored trust data (signatures, hashes, versions,
    /// expiry) without any network; expired timestamp and snapshot metadata pass only within
    /// `offline_grace`, and every such use is logged.
    async fn verify_offline(
        &self,
        upstream: usize,
        gun: &str,
        policy: &Policy,
    ) -> Result<Arc<VerifiedRepository>, TrustFailure> {
        let name = self
            .upstream_names
            .get(upstream)
            .cloned()
            .unwrap_or_default();
        let host = self
            .notary_host(upstream)
            .map(str::to_string)
            .unwrap_or_else(|| name.clone());
        let Some(state) = self.store.load(gun)? else {
            return Err(TrustFailure::OfflineNoData {
                upstream: name,
                gun: gun.to_string(),
            });
        };
        let now = self.now();
        let mut opts = VerifyOptions {
            pinning: policy.pinning.clone(),
            expired_grace_for_timestamp_snapshot: None,
        };
        let source = state.offline_source();
        let first = trust::update(&source, gun, &host, Some(&state), now, &opts).await;
        let repo = match first {
            Ok(repo) => {
                if let Ok(mut g) = self.graced.lock() {
                    g.remove(gun);
                }
                repo
            }
            Err(TrustError::Expired { ref role, .. })
                if self.offline_grace.is_some() && (role == "timestamp" || role == "snapshot") =>
            {
                opts.expired_grace_for_timestamp_snapshot = self.offline_grace;
                let repo = trust::update(&source, gun, &host, Some(&state), now, &opts).await?;
                if let Ok(mut g) = self.graced.lock() {
                    g.insert(gun.to_string());
                }
                tracing::warn!(gun, role = %role, "offline mirror: accepting expired {role} metadata within [trust] offline_grace");
                repo
            }
            Err(e) => return Err(e.into()),
        };
        let repo = Arc::new(repo);
        self.remember(gun, repo.clone());
        Ok(repo)
    }

    /// The Notary server did not answer: keep using what was verified while it is unexpired,
    /// as Notary's own client does with its cached timestamp (notary-v1.md §7, update step 1).
    async fn serve_while_notary_is_down(
        &self,
        gun: &str,
        host: &str,
        pinned: Option<trust::TrustState>,
        now: OffsetDateTime,
        opts: &VerifyOptions,
        error: TrustError,
    ) -> Result<Arc<VerifiedRepository>, TrustFailure> {
        let first = self
            .degraded
            .lock()
            .map(|mut d| d.insert(gun.to_string()))
            .unwrap_or(true);
        let fallback = if let Some(repo) = self.cached_unexpired(gun) {
            Some(Ok(repo))
        } else if let Some(state) = pinned {
            Some(
                trust::update(&state.offline_source(), gun, host, Some(&state), now, opts)
                    .await
                    .map(Arc::new),
            )
        } else {
            None
        };
        if first {
            match &fallback {
                Some(Ok(_)) => tracing::warn!(gun, notary = host, error = %error,
                    "Notary server unreachable; serving from verified trust data while it is unexpired"),
                _ => tracing::warn!(gun, notary = host, error = %error,
                    "Notary server unreachable and no unexpired verified trust data to fall back on; refusing"),
            }
        }
        match fallback {
            Some(Ok(repo)) => {
                self.remember(gun, repo.clone());
                Ok(repo)
            }
            Some(Err(e)) => Err(e.into()),
            None => Err(error.into()),
        }
    }
}
