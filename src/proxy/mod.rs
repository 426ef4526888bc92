//! The core: answers one routed pull with what it serves, or a typed [`PullError`].
//!
//! A request becomes a [`Target`] once (`target.rs`: its upstream, GUN, policy and route), then
//! goes to the handler of its resource, each in its own file and each matching exhaustively on
//! the policy's mode (enforce, audit, off):
//! - `manifests.rs`: manifests by tag and by digest; a tag is resolved to a digest first (by the
//!   verifier under enforce, by the upstream otherwise) and the bytes are fetched by digest and
//!   checked against it before anything is served;
//! - `blobs.rs`: blobs from the store, or one single-flight fill from the upstream streamed to
//!   every waiting client;
//! - `tags.rs`: tag lists (only signed tags under enforce);
//! - `closure.rs`: the signed closure, the digests reachable from signed tags;
//! - `audit.rs`: the audit line and the decision metric of every trust decision;
//! - `tag_map.rs`: the last digest of each unenforced tag, for serving while the upstream is gone;
//! - `inspect.rs`: `trustgate verify` and `trustgate seed`'s entry (image reference → route).
//!
//! The core returns [`Pulled`] values (a manifest's bytes and type, a blob's stream and window,
//! a tag list); `api` makes the HTTP answer and the headers. Signatures are checked through the
//! verifier seam ([`crate::verify`]); content lives behind the store seam
//! ([`crate::store::Content`]).

pub mod audit;
mod blobs;
mod closure;
pub mod error;
pub mod fleet_tags;
mod inspect;
mod manifests;
mod negative;
mod referrers;
mod signed_digests;
pub mod tag_history;
pub mod tag_map;
mod tags;
mod target;

use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, Method};

use crate::api::{Endpoint, Route, Router};
use crate::config::{Config, UpstreamConfig};
use crate::enforce::{system_clock, Clock, TrustService, TrustStore};
use crate::keyed_lock::KeyedLocks;
use crate::policy::{Policies, Policy};
use crate::range::ByteRange;
use crate::reference::Digest;
use crate::store::{Content, Store};
use crate::trust::notary::NotaryClient;
use crate::upstream::{RegistryClient, UpstreamError, UpstreamSettings};
use crate::verify::Verifier;

pub use crate::api::UpstreamId;
pub use error::{Fetching, Missing, Origin, PullError, Unacceptable};
pub use inspect::{Inspection, SignatureLine, SignatureReport};
pub use target::{Target, Upstream};

/// A manifest as served: its bytes exactly as they came, their media type and the digest
/// announced for them (the hash of the bytes, except for Docker schema 1, whose digest covers
/// the payload without its signatures).
#[derive(Debug, Clone)]
pub struct Served {
    pub media_type: String,
    pub digest: String,
    pub bytes: Bytes,
}

/// A blob's bytes, as they are read from the store or arrive from a running fill.
pub type BlobStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A blob as served.
pub struct ServedBlob {
    pub digest: Digest,
    /// The whole blob's length, when known.
    pub total: Option<u64>,
    /// The part asked for by `Range` (inclusive), when one was and it applies.
    pub window: Option<ByteRange>,
    /// `None` for HEAD.
    pub body: Option<BlobBody>,
}

/// Where a served blob's bytes come from.
pub enum BlobBody {
    /// A running fill, or the shared tier.
    Stream(BlobStream),
    /// A stored object (a cache hit): the front end may send its file without copying it
    /// (issue 16), or read it with [`StoredObject::stream`]. `ServedBlob::window` applies.
    Stored(crate::store::StoredObject),
}

impl ServedBlob {
    /// The body's bytes as a stream (a stored object read from its file), `None` for HEAD.
    pub fn into_stream(self) -> Option<BlobStream> {
        match self.body? {
            BlobBody::Stream(s) => Some(s),
            BlobBody::Stored(object) => Some(Box::pin(object.stream(self.window))),
        }
    }
}

/// A page of a tag list.
#[derive(Debug, Clone)]
pub struct TagList {
    pub names: Vec<String>,
    /// `last` and `n` of the next page, when there is one.
    pub next: Option<(String, Option<String>)>,
}

/// What the core serves for one request.
pub enum Pulled {
    Manifest(Served),
    Blob(ServedBlob),
    Tags(TagList),
    Referrers(ReferrerList),
}

/// A referrers list as served: an OCI image index, and whether `artifactType` filtered it.
#[derive(Debug, Clone)]
pub struct ReferrerList {
    pub bytes: Bytes,
    pub filtered: bool,
}

/// Counters that tests read.
#[derive(Debug, Default)]
pub struct Stats {
    /// Tags that audit mode served although enforce would have refused them.
    pub audit_would_refuse: AtomicU64,
}

/// A manifest whose bytes matched the digest they were fetched by.
#[derive(Debug, Clone)]
pub(crate) struct CheckedManifest {
    pub media_type: String,
    pub bytes: Bytes,
}

/// Everything needed to answer requests; shared by all connections.
pub struct Proxy {
    content: Content,
    router: Router,
    upstreams: Vec<Upstream>,
    policies: Policies,
    /// The policy of each GUN seen, worked out once: matching globs and reading pinned
    /// certificates is not per-request work.
    policy_memo: moka::sync::Cache<String, Arc<Policy>>,
    verifier: Verifier,
    /// Checked manifests by digest, bounded in bytes.
    manifests: moka::sync::Cache<Digest, Arc<CheckedManifest>>,
    /// One upstream fetch per missing manifest: concurrent requests wait for it.
    manifest_fetches: KeyedLocks<Digest>,
    closures: closure::Closures,
    tag_map: tag_map::TagMap,
    /// `[[verifier]]`: the digest verifiers (cosign) policies name.
    digest_verifiers: crate::verify::digest::DigestVerifiers,
    /// Accepted digests, by (`<gun>|<verifier set>`, digest): a verdict cannot change.
    verdicts: moka::sync::Cache<(String, Digest), Arc<crate::verify::digest::DigestVerdict>>,
    /// One verification per digest at a time: concurrent pulls wait for it.
    verifications: KeyedLocks<Digest>,
    /// Tags under digest verifiers: the digest and when the upstream named it.
    signed_tag_cache: moka::sync::Cache<String, (Digest, time::OffsetDateTime)>,
    /// `[trust] refresh`: how long a tag's digest is reused before asking the upstream again.
    refresh: time::Duration,
    /// Every digest each tag under digest verifiers resolved to (on disk).
    tag_history: tag_history::TagHistory,
    /// Digests verified per repository: the roots its signed closure is rebuilt from.
    signed_roots: moka::sync::Cache<String, Arc<parking_lot::Mutex<Vec<Digest>>>>,
    /// Repositories currently served from cache because their upstream is unreachable
    /// (logged once per repository and outage; bounded).
    stale: moka::sync::Cache<String, ()>,
    /// GUNs the Notary server has no trust data for, remembered for `[trust] negative_ttl`;
    /// concurrent lookups of an unknown GUN take turns (one Notary request for N of them).
    no_trust_data: negative::NegativeCache<String, crate::trust::TrustError>,
    /// Unenforced tags (`off`, `audit`) the registry answered 404 for, by
    /// `upstream/repository:tag`, remembered and coalesced the same way (`negative_ttl`).
    registry_misses: negative::NegativeCache<String, negative::RegistryMiss>,
    pub stats: Stats,
}

/// Failure to build the proxy from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("upstream {name}: {source}")]
    Upstream {
        name: String,
        #[source]
        source: UpstreamError,
    },
    #[error("storage.path: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    SharedStore(#[from] crate::store::SharedError),
    /// `[fleet]`: the secret file, or the peer client.
    #[error("{0}")]
    Fleet(String),
    /// A file an `[[upstream]]` entry names (password, CA bundle).
    #[error("upstream {name}: {source}")]
    Settings {
        name: String,
        #[source]
        source: crate::upstream::settings::SettingsError,
    },
    /// A file a `[[policy]]` entry pins.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// A file a `[[verifier]]` names (keys, trusted root).
    #[error(transparent)]
    Verifier(#[from] crate::verify::digest::VerifierSetupError),
}

/// Distinct policies remembered (one per GUN asked for).
const POLICY_MEMO_ENTRIES: u64 = 10_000;
/// A GUN's policy is forgotten once unused this long: the names of a flood (every one asked
/// once) leave memory a minute after it instead of filling the memo for good, while a GUN in
/// use works its policy out at most once a minute.
const POLICY_MEMO_IDLE: std::time::Duration = std::time::Duration::from_secs(60);
/// Repositories remembered as served stale (for logging once per outage).
const STALE_ENTRIES: u64 = 10_000;

impl Proxy {
    /// Builds the proxy and opens its store (cleaning up after a crash, indexing the cache).
    pub async fn new(config: &Config) -> Result<Arc<Self>, SetupError> {
        Self::with_clock(config, system_clock()).await
    }

    /// As [`Proxy::new`], checking trust data against `clock` instead of the system time.
    pub async fn with_clock(config: &Config, clock: Clock) -> Result<Arc<Self>, SetupError> {
        // The files the configuration names first (policy pins, upstream passwords and CAs): a
        // missing one must not wait for the store to be indexed.
        let policies = Policies::from_config(&config.policies)?;
        let digest_verifiers =
            crate::verify::digest::DigestVerifiers::from_config(&config.verifiers, Path::new("."))?;
        let upstreams = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(i, up)| upstream(UpstreamId::new(i), up))
            .collect::<Result<Vec<_>, _>>()?;
        let limits = crate::store::Limits {
            max_size: config.storage.max_size,
            min_free: config.storage.min_free,
        };
        let store = Store::open_with(&config.storage.path, limits).await?;
        let content = match &config.storage.shared {
            None => Content::Disk(store),
            Some(sh) => {
                let shared = crate::store::SharedStore::from_config(sh)?;
                if let Some(f) = &config.fleet {
                    let secret = f.read_secret().map_err(SetupError::Fleet)?;
                    let peering = crate::store::shared::peer::Peering::new(f, secret)
                        .map_err(SetupError::Fleet)?;
                    shared.set_peering(peering);
                }
                Content::Tiered {
                    local: store,
                    shared,
                }
            }
        };
        let trust = TrustService::new(
            TrustStore::new(&config.storage.path),
            config.trust.refresh(),
            clock,
        )
        .with_offline_grace(config.trust.offline_grace().as_secs());
        let trust = match content.shared() {
            Some(shared) => trust.with_fleet(crate::enforce::FleetTrust::new(shared.clone())),
            None => trust,
        };
        let tag_history = tag_history::TagHistory::new(&config.storage.path);
        let tag_history = match content.shared() {
            Some(shared) => tag_history.with_fleet(shared.clone()),
            None => tag_history,
        };
        let manifests = moka::sync::Cache::builder()
            .max_capacity(config.trust.manifest_cache_bytes)
            .weigher(|_k: &Digest, v: &Arc<CheckedManifest>| {
                u32::try_from(v.bytes.len()).unwrap_or(u32::MAX)
            })
            .build();
        Ok(Arc::new(Self {
            content,
            router: Router::from_config(config),
            upstreams,
            policies,
            policy_memo: moka::sync::Cache::builder()
                .max_capacity(POLICY_MEMO_ENTRIES)
                .time_to_idle(POLICY_MEMO_IDLE)
                .build(),
            verifier: Verifier::NotaryV1(trust),
            manifests,
            manifest_fetches: KeyedLocks::new(),
            closures: closure::Closures::new(),
            tag_map: tag_map::TagMap::new(&config.storage.path),
            digest_verifiers,
            verdicts: moka::sync::Cache::new(signed_digests::VERDICT_ENTRIES),
            verifications: KeyedLocks::new(),
            signed_tag_cache: moka::sync::Cache::new(signed_digests::VERDICT_ENTRIES),
            refresh: time::Duration::try_from(config.trust.refresh())
                .unwrap_or(time::Duration::MAX),
            tag_history,
            signed_roots: moka::sync::Cache::new(signed_digests::VERDICT_ENTRIES),
            stale: moka::sync::Cache::new(STALE_ENTRIES),
            no_trust_data: negative::NegativeCache::new(
                config.trust.negative_ttl(),
                config.trust.negative_entries,
            ),
            registry_misses: negative::NegativeCache::new(
                config.trust.negative_ttl(),
                config.trust.negative_entries,
            ),
            stats: Stats::default(),
        }))
    }

    /// The local disk store.
    /// The HTTP client of every upstream registry and Notary server (offline mirrors left out:
    /// they are never asked), for `/readyz`.
    pub fn upstream_clients(&self) -> Vec<crate::upstream::AuthClient> {
        let mut clients = Vec::new();
        for u in self.upstreams.iter().filter(|u| !u.offline) {
            clients.push(u.client.auth_client().clone());
            clients.extend(u.notary.as_ref().map(|n| n.auth_client().clone()));
        }
        clients
    }

    pub fn store(&self) -> &Arc<Store> {
        self.content.disk()
    }

    /// The store seam (local tier, and the shared tier when configured).
    pub fn content(&self) -> &Content {
        &self.content
    }

    /// The Notary v1 trust service (pins on disk, `trustgate trust reset`).
    /// Runs pending removals (expired and evicted entries) in every in-memory cache; the
    /// entries left in all of them ([`crate::housekeeping`]).
    pub fn housekeep(&self) -> u64 {
        use crate::housekeeping::settle;
        settle(&self.policy_memo)
            + settle(&self.manifests)
            + settle(&self.verdicts)
            + settle(&self.signed_tag_cache)
            + settle(&self.signed_roots)
            + settle(&self.stale)
            + self.no_trust_data.housekeep()
            + self.registry_misses.housekeep()
            + self.closures.housekeep()
            + self.tag_map.housekeep()
            + self.tag_history.housekeep()
            + self.trust().housekeep()
    }

    pub fn trust(&self) -> &TrustService {
        self.verifier.notary_v1()
    }

    pub fn audit_would_refuse(&self) -> u64 {
        self.stats.audit_would_refuse.load(Ordering::Relaxed)
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The upstream an id names.
    pub fn upstream(&self, id: UpstreamId) -> &Upstream {
        &self.upstreams[id.index()]
    }

    pub fn upstream_name(&self, route: &Route) -> &str {
        self.upstream(route.upstream).name()
    }

    /// Answers one routed request for repository content.
    pub async fn handle(
        &self,
        method: &Method,
        route: &Route,
        headers: &HeaderMap,
    ) -> Result<Pulled, PullError> {
        let t = self.target(route);
        match &route.endpoint {
            Endpoint::Manifest(reference) => self
                .manifest(&t, reference, headers)
                .await
                .map(Pulled::Manifest),
            Endpoint::Blob(digest) => self
                .blob(&t, digest, method, headers)
                .await
                .map(Pulled::Blob),
            Endpoint::Referrers {
                digest,
                artifact_type,
            } => self
                .referrers(&t, digest, artifact_type.as_deref())
                .await
                .map(Pulled::Referrers),
            Endpoint::Tags { n, last } => {
                self.tags(&t, *n, last.as_deref()).await.map(Pulled::Tags)
            }
        }
    }

    /// The request's facts, worked out once.
    pub(crate) fn target<'a>(&'a self, route: &'a Route) -> Target<'a> {
        let upstream = self.upstream(route.upstream);
        let gun = format!("{}/{}", upstream.name(), route.repository);
        let policy = match self.policy_memo.get(&gun) {
            Some(p) => p,
            None => {
                let p = Arc::new(self.policies.for_gun(&gun, upstream.notary.is_some()));
                self.policy_memo.insert(gun.clone(), p.clone());
                p
            }
        };
        Target {
            upstream,
            gun,
            policy,
            route,
        }
    }
}

/// One configured upstream, with its clients (reading the password and CA files it names).
fn upstream(id: UpstreamId, up: &UpstreamConfig) -> Result<Upstream, SetupError> {
    let settings_error = |source| SetupError::Settings {
        name: up.name.clone(),
        source,
    };
    let setup = |source| SetupError::Upstream {
        name: up.name.clone(),
        source,
    };
    let notary = match UpstreamSettings::notary_from_config(up).map_err(settings_error)? {
        Some(s) => Some(NotaryClient::new(&s).map_err(setup)?),
        None => None,
    };
    let settings = UpstreamSettings::from_config(up).map_err(settings_error)?;
    let client = RegistryClient::new(&settings).map_err(setup)?;
    Ok(Upstream {
        id,
        offline: up.offline,
        config: up.clone(),
        client,
        notary,
    })
}

impl Proxy {
    /// Every signed target of `t`'s repository, through the verifier seam; a failure is a
    /// refusal naming the repository (and the tag asked for, if any).
    pub(crate) async fn signed_set(
        &self,
        t: &Target<'_>,
        tag: Option<&str>,
    ) -> Result<Arc<crate::trust::VerifiedRepository>, PullError> {
        let _turn = match self.no_trust_data.turn(&t.gun).await {
            negative::Lookup::Remembered(e) => return Err(refused(t, e.into(), tag)),
            negative::Lookup::Ask(turn) => turn,
        };
        let result = self.verifier.signed_set(&t.subject(), &t.policy).await;
        self.record_trust_answer(t, result.as_ref().err());
        result.map_err(|failure| refused(t, failure, tag))
    }

    /// Remembers a definite "no trust data" for `t`'s GUN, or that it has trust data; any
    /// other failure (Notary down, bad metadata) is left unremembered and asked again.
    fn record_trust_answer(&self, t: &Target<'_>, failure: Option<&crate::enforce::TrustFailure>) {
        use crate::enforce::TrustFailure;
        use crate::trust::{TrustError, TrustErrorKind};
        match failure {
            None => self.no_trust_data.record(&t.gun, None),
            Some(TrustFailure::Verify(e @ TrustError::NoTrustData { .. })) => {
                self.no_trust_data.record(&t.gun, Some(e.clone()))
            }
            // The repository's trust data exists; the tag is what is missing or wrong.
            Some(TrustFailure::Verify(e))
                if matches!(
                    e.kind(),
                    TrustErrorKind::UnsignedTag | TrustErrorKind::BadSignature
                ) =>
            {
                self.no_trust_data.record(&t.gun, None)
            }
            Some(_) => {}
        }
    }

    /// The signed digest of `tag`, through the verifier seam (Notary v1), or found and
    /// verified by the policy's digest verifiers (cosign).
    pub(crate) async fn signed_tag(
        &self,
        t: &Target<'_>,
        tag: &crate::reference::Tag,
    ) -> Result<crate::verify::SignedTag, PullError> {
        if let crate::policy::Signatures::Digest { .. } = t.policy.signatures {
            return self.digest_signed_tag(t, tag).await;
        }
        let _turn = match self.no_trust_data.turn(&t.gun).await {
            negative::Lookup::Remembered(e) => {
                return Err(refused(t, e.into(), Some(tag.as_str())))
            }
            negative::Lookup::Ask(turn) => turn,
        };
        let result = self
            .verifier
            .resolve_tag(&t.subject(), &t.policy, tag)
            .await;
        self.record_trust_answer(t, result.as_ref().err());
        result.map_err(|failure| refused(t, failure, Some(tag.as_str())))
    }
}

fn refused(t: &Target<'_>, failure: crate::enforce::TrustFailure, tag: Option<&str>) -> PullError {
    PullError::Refused {
        failure,
        gun: t.gun.clone(),
        tag: tag.map(str::to_string),
        notary: t.notary_host(),
    }
}
