//! Verified trust data per repository: fetched from the Notary server, verified, kept in memory
//! for `[trust] refresh` (never past its own expiry), persisted so pins and rollback protection
//! survive restarts, and re-verified from disk when the Notary server cannot be reached.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::persist::{PersistError, TrustStore};
use crate::decision::Reason;
use crate::keyed_lock::KeyedLocks;
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
    /// Digest verifiers (cosign): the digest's signatures did not satisfy the policy.
    #[error("{0}")]
    Digest(#[from] crate::verify::digest::DigestFailure),
}

impl TrustFailure {
    pub fn kind(&self) -> TrustErrorKind {
        match self {
            Self::Verify(e) => e.kind(),
            Self::NoNotary { .. } => TrustErrorKind::NoTrustData,
            Self::Persist(_) => TrustErrorKind::Malformed,
            Self::OfflineNoData { .. } => TrustErrorKind::NoTrustData,
            Self::Digest(d) => match d.reason() {
                Reason::NoSignature => TrustErrorKind::UnsignedTag,
                Reason::Fetch => TrustErrorKind::Fetch,
                Reason::Malformed => TrustErrorKind::Malformed,
                _ => TrustErrorKind::BadSignature,
            },
        }
    }

    /// Why trust could not be established, in the refusal vocabulary.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Verify(e) => reason_of(e),
            Self::NoNotary { .. } | Self::OfflineNoData { .. } => Reason::NoTrustData,
            Self::Persist(_) => Reason::Malformed,
            Self::Digest(d) => d.reason(),
        }
    }
}

/// The reason for a verifier error; finer than its kind where the kind lumps causes an operator
/// would act on differently (a signer the policy requires is the operator's rule at work, not an
/// unsigned tag).
pub fn reason_of(e: &TrustError) -> Reason {
    match e {
        TrustError::RequiredSignerMissing { .. } => Reason::SignerMissing,
        _ => match e.kind() {
            TrustErrorKind::NoTrustData => Reason::NoTrustData,
            TrustErrorKind::UnsignedTag => Reason::UnsignedTag,
            TrustErrorKind::Expired => Reason::Expired,
            TrustErrorKind::Rollback => Reason::Rollback,
            TrustErrorKind::BadSignature => Reason::BadSignature,
            TrustErrorKind::RootMismatch => Reason::RootMismatch,
            TrustErrorKind::Malformed => Reason::Malformed,
            TrustErrorKind::Fetch => Reason::Fetch,
        },
    }
}

#[derive(Clone)]
struct Cached {
    repo: Arc<VerifiedRepository>,
    /// When it was verified, by the injected clock (so tests move time instead of sleeping).
    checked_at: OffsetDateTime,
}

/// Where one upstream's Notary v1 trust data comes from.
#[derive(Clone, Copy)]
pub struct NotarySource<'a> {
    /// The upstream's configured name, for messages.
    pub upstream: &'a str,
    /// Its Notary server, when one is configured.
    pub notary: Option<&'a NotaryClient>,
    /// `offline = true`: only stored trust data, never the Notary server.
    pub offline: bool,
}

impl NotarySource<'_> {
    /// The Notary server's `host[:port]`, for messages.
    pub fn host(&self) -> Option<&str> {
        self.notary.map(NotaryClient::host)
    }
}

/// At most this many repositories' verified trust data is held in memory (the rest is on disk
/// and re-verified when asked for again).
const MAX_CACHED_REPOSITORIES: u64 = 10_000;
/// At most this many repositories are remembered as degraded or graced (for logging once).
const MAX_FLAGGED_REPOSITORIES: u64 = 10_000;

pub struct TrustService {
    /// How long past expiry an offline mirror accepts timestamp and snapshot metadata.
    offline_grace: Option<time::Duration>,
    /// GUNs currently verified only thanks to `offline_grace` (logged at every use).
    graced: moka::sync::Cache<String, ()>,
    store: TrustStore,
    refresh: Duration,
    clock: Clock,
    cache: moka::sync::Cache<String, Cached>,
    /// One update at a time per GUN: concurrent tag requests wait for the same verification.
    /// An entry lives only while someone holds or waits for it, so names that were asked for
    /// once (real or not) leave nothing behind (issue 11).
    locks: KeyedLocks<String>,
    /// GUNs whose Notary server is unreachable right now (logged once per outage).
    degraded: moka::sync::Cache<String, ()>,
    /// The fleet's shared pins (`[storage.shared]`, issue 14).
    fleet: Option<super::FleetTrust>,
}

impl TrustService {
    pub fn new(store: TrustStore, refresh: Duration, clock: Clock) -> Self {
        Self {
            offline_grace: None,
            graced: moka::sync::Cache::new(MAX_FLAGGED_REPOSITORIES),
            store,
            refresh,
            clock,
            cache: moka::sync::Cache::new(MAX_CACHED_REPOSITORIES),
            locks: KeyedLocks::new(),
            degraded: moka::sync::Cache::new(MAX_FLAGGED_REPOSITORIES),
            fleet: None,
        }
    }

    /// Runs pending removals in its caches; the entries left ([`crate::housekeeping`]).
    pub fn housekeep(&self) -> u64 {
        use crate::housekeeping::settle;
        settle(&self.cache) + settle(&self.graced) + settle(&self.degraded)
    }

    /// Shares pins and version floors with the other replicas of a fleet ([`super::fleet`]).
    pub fn with_fleet(mut self, fleet: super::FleetTrust) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// The fleet's shared pins, when configured.
    pub fn fleet(&self) -> Option<&super::FleetTrust> {
        self.fleet.as_ref()
    }

    /// Sets the offline grace period (seconds; 0 = none).
    pub fn with_offline_grace(mut self, grace_secs: u64) -> Self {
        self.offline_grace = (grace_secs > 0).then(|| time::Duration::seconds(grace_secs as i64));
        self
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    pub fn store(&self) -> &TrustStore {
        &self.store
    }

    fn fresh(&self, gun: &str) -> Option<Arc<VerifiedRepository>> {
        let c = self.cache.get(gun)?;
        let now = self.now();
        let age = now - c.checked_at;
        (age < self.refresh && now < c.repo.expires).then_some(c.repo)
    }

    fn cached_unexpired(&self, gun: &str) -> Option<Arc<VerifiedRepository>> {
        let c = self.cache.get(gun)?;
        (self.now() < c.repo.expires).then_some(c.repo)
    }

    fn remember(&self, gun: &str, repo: Arc<VerifiedRepository>) {
        self.cache.insert(
            gun.to_string(),
            Cached {
                repo,
                checked_at: self.now(),
            },
        );
    }

    fn forget(&self, gun: &str) {
        self.cache.invalidate(gun);
    }

    /// Verified trust data for `gun`, no older than the refresh interval.
    pub async fn verified(
        &self,
        source: &NotarySource<'_>,
        gun: &str,
        policy: &Policy,
    ) -> Result<Arc<VerifiedRepository>, TrustFailure> {
        if let Some(repo) = self.fresh(gun) {
            self.log_grace_use(gun);
            return Ok(repo);
        }
        let _turn = self.locks.lock(gun.to_string()).await;
        if let Some(repo) = self.fresh(gun) {
            self.log_grace_use(gun);
            return Ok(repo);
        }
        if source.offline {
            return self.verify_offline(source, gun, policy).await;
        }
        let notary = source.notary.ok_or_else(|| TrustFailure::NoNotary {
            upstream: source.upstream.to_string(),
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
        let started = tokio::time::Instant::now();
        let source = notary.source(gun);
        let result = match &self.fleet {
            None => trust::update(&source, gun, notary.host(), pinned.as_ref(), now, &opts).await,
            Some(fleet) => {
                let (src, host, o) = (&source, notary.host(), &opts);
                let verify: super::fleet::VerifyFn<'_> = Box::new(move |pins| {
                    Box::pin(
                        async move { trust::update(src, gun, host, pins.as_ref(), now, o).await },
                    )
                });
                fleet.verify_shared(gun, pinned.as_ref(), verify).await
            }
        };
        let elapsed = started.elapsed();
        crate::metrics::metrics().verify_done(result.as_ref().err().map(reason_of), elapsed);
        tracing::debug!(
            gun,
            ms = elapsed.as_millis() as u64,
            ok = result.is_ok(),
            "trust data updated"
        );
        match result {
            Ok(repo) => {
                if self.degraded.remove(gun).is_some() {
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
        if self.graced.contains_key(gun) {
            tracing::warn!(gun, "serving with expired timestamp/snapshot metadata accepted by [trust] offline_grace");
        }
    }

    /// An air-gapped mirror: re-verify the stored trust data (signatures, hashes, versions,
    /// expiry) without any network; expired timestamp and snapshot metadata pass only within
    /// `offline_grace`, and every such use is logged.
    async fn verify_offline(
        &self,
        source: &NotarySource<'_>,
        gun: &str,
        policy: &Policy,
    ) -> Result<Arc<VerifiedRepository>, TrustFailure> {
        let name = source.upstream.to_string();
        let host = source
            .host()
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
                self.graced.invalidate(gun);
                repo
            }
            Err(TrustError::Expired { ref role, .. })
                if self.offline_grace.is_some() && (role == "timestamp" || role == "snapshot") =>
            {
                opts.expired_grace_for_timestamp_snapshot = self.offline_grace;
                let repo = trust::update(&source, gun, &host, Some(&state), now, &opts).await?;
                self.graced.insert(gun.to_string(), ());
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
    /// as Notary's own client does with its cached timestamp (TUF spec §5.3, the client update
    /// workflow: a failed fetch keeps the trusted metadata it has).
    async fn serve_while_notary_is_down(
        &self,
        gun: &str,
        host: &str,
        pinned: Option<trust::TrustState>,
        now: OffsetDateTime,
        opts: &VerifyOptions,
        error: TrustError,
    ) -> Result<Arc<VerifiedRepository>, TrustFailure> {
        let first = !self.degraded.contains_key(gun);
        self.degraded.insert(gun.to_string(), ());
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
