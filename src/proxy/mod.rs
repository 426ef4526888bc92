//! The service that answers routed requests: it ties the upstream clients (and, in later layers,
//! trust and the store) together.
//!
//! Request flow for content (see design.md): a tag is resolved to a digest first (today by the
//! upstream; with trust enforcement by signed Notary data), then content is fetched by digest
//! and checked against that digest before any byte is committed to the client.

pub mod audit;
pub mod enforced;
pub mod tag_map;
mod upstream_error;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::api::media::{self, RangeRequest};
use crate::api::server::{empty_body, full_body, stream_body, Body};
use crate::api::{ApiError, Endpoint, ErrorCode, Route, Router};
use crate::config::{Config, TrustMode, UpstreamConfig};
use crate::enforce::{system_clock, Clock, TrustService, TrustStore, UpstreamTrust};
use crate::metrics::{metrics, ContentKind, UpstreamErrorKind, UpstreamKind};
use crate::policy::Policies;
use crate::reference::{Digest, ManifestRef, Tag};
use crate::store::{FillError, Store};
use crate::trust::notary::NotaryClient;
use crate::upstream::{RegistryClient, UpstreamError, UpstreamSettings};
use enforced::{Closure, VerifiedManifest};
pub use upstream_error::to_api_error;

/// One configured upstream and its client.
pub struct Upstream {
    pub config: UpstreamConfig,
    pub client: RegistryClient,
}

/// Counters that tests and (later) metrics read.
#[derive(Debug, Default)]
pub struct Stats {
    /// Tags that audit mode served although enforce would have refused them.
    pub audit_would_refuse: AtomicU64,
}

/// Everything needed to answer requests; shared by all connections.
pub struct Proxy {
    store: Arc<Store>,
    /// One upstream fetch per missing manifest: concurrent requests wait for it.
    manifest_locks: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    /// How the last failed blob fill's upstream answered (the fill itself only keeps text), so
    /// that every waiter gets the upstream's own status and code.
    fill_errors: moka::sync::Cache<Digest, ApiError>,
    router: Router,
    upstreams: Vec<Upstream>,
    policies: Policies,
    /// The policy of each GUN seen, worked out once: matching globs and reading pinned
    /// certificates is not per-request work.
    policy_memo: moka::sync::Cache<String, Arc<crate::policy::Policy>>,
    trust: TrustService,
    /// Verified manifests by digest, bounded in bytes.
    manifests: moka::sync::Cache<Digest, Arc<VerifiedManifest>>,
    closures: Mutex<HashMap<String, Closure>>,
    tag_map: tag_map::TagMap,
    /// Repositories currently served from cache because their upstream is unreachable
    /// (logged once per repository and outage).
    stale: Mutex<std::collections::HashSet<String>>,
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
}

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
        let mut upstreams = Vec::new();
        let mut notaries = Vec::new();
        for up in &config.upstreams {
            let settings_error = |source| SetupError::Settings {
                name: up.name.clone(),
                source,
            };
            let notary = match UpstreamSettings::notary_from_config(up).map_err(settings_error)? {
                Some(s) => Some(
                    NotaryClient::new(&s).map_err(|source| SetupError::Upstream {
                        name: up.name.clone(),
                        source,
                    })?,
                ),
                None => None,
            };
            notaries.push(notary);
            let settings = UpstreamSettings::from_config(up).map_err(settings_error)?;
            let client = RegistryClient::new(&settings).map_err(|source| SetupError::Upstream {
                name: up.name.clone(),
                source,
            })?;
            upstreams.push(Upstream {
                config: up.clone(),
                client,
            });
        }
        let store = Store::open(&config.storage.path, config.storage.max_size).await?;
        let trust = TrustService::new(
            notaries,
            config.upstreams.iter().map(|u| u.name.clone()).collect(),
            TrustStore::new(&config.storage.path),
            config.trust.refresh(),
            clock,
        )
        .with_offline(
            config
                .upstreams
                .iter()
                .map(|u| UpstreamTrust { offline: u.offline })
                .collect(),
            config.trust.offline_grace().as_secs(),
        );
        let manifests = moka::sync::Cache::builder()
            .max_capacity(config.trust.manifest_cache_bytes)
            .weigher(|_k: &Digest, v: &Arc<VerifiedManifest>| {
                u32::try_from(v.bytes.len()).unwrap_or(u32::MAX)
            })
            .build();
        Ok(Arc::new(Self {
            store,
            manifest_locks: Mutex::new(HashMap::new()),
            fill_errors: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            router: Router::from_config(config),
            upstreams,
            policies,
            policy_memo: moka::sync::Cache::new(100_000),
            trust,
            manifests,
            closures: Mutex::new(HashMap::new()),
            tag_map: tag_map::TagMap::new(&config.storage.path),
            stale: Mutex::new(Default::default()),
            stats: Stats::default(),
        }))
    }

    pub(crate) fn policy_for(&self, up: &Upstream, gun: &str) -> Arc<crate::policy::Policy> {
        if let Some(p) = self.policy_memo.get(gun) {
            return p;
        }
        let p = Arc::new(self.policies.for_gun(gun, up.config.notary.is_some()));
        self.policy_memo.insert(gun.to_string(), p.clone());
        p
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn trust(&self) -> &TrustService {
        &self.trust
    }

    pub fn audit_would_refuse(&self) -> u64 {
        self.stats.audit_would_refuse.load(Ordering::Relaxed)
    }

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn upstream_name(&self, route: &Route) -> &str {
        &self.upstreams[route.upstream].config.name
    }

    /// Answers one routed request for repository content.
    pub async fn handle(
        &self,
        method: &Method,
        route: &Route,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let up = &self.upstreams[route.upstream];
        let gun = self.gun(up, route);
        let policy = self.policy_for(up, &gun);
        match (policy.mode, &route.endpoint) {
            (TrustMode::Enforce, Endpoint::Manifest(ManifestRef::Tag(tag))) => {
                return self
                    .enforced_tag(up, route, &gun, &policy, tag, method, headers)
                    .await;
            }
            (TrustMode::Enforce, Endpoint::Manifest(ManifestRef::Digest(d))) => {
                return self
                    .enforced_manifest_digest(up, route, &gun, &policy, d, method)
                    .await;
            }
            (TrustMode::Enforce, Endpoint::Blob(d)) => {
                self.require_in_closure(up, route, &gun, &policy, d).await?;
            }
            (TrustMode::Enforce, Endpoint::Tags { n, last }) => {
                return self
                    .enforced_tags(route, &gun, &policy, *n, last.as_deref())
                    .await;
            }
            (TrustMode::Audit, Endpoint::Manifest(ManifestRef::Tag(tag))) => {
                let signed = self.audit_tag(route, &gun, &policy, tag).await;
                let resp = self
                    .manifest_by_tag(up, route, tag, method, headers)
                    .await?;
                let served = resp
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok());
                if let (Some(signed), Some(served)) = (signed, served) {
                    if served != signed.to_string() {
                        self.stats
                            .audit_would_refuse
                            .fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(gun = %gun, tag = %tag, signed = %signed, served,
                            "audit: the upstream's tag differs from the signed digest; enforce would serve the signed one");
                    }
                }
                return Ok(resp);
            }
            _ => {}
        }
        match &route.endpoint {
            Endpoint::Manifest(ManifestRef::Tag(tag)) => {
                self.manifest_by_tag(up, route, tag, method, headers).await
            }
            Endpoint::Manifest(ManifestRef::Digest(digest)) => {
                self.manifest_by_digest(up, route, digest, method, headers)
                    .await
            }
            Endpoint::Blob(digest) => self.blob(up, route, digest, method, headers).await,
            Endpoint::Tags { n, last } => self.tags(up, route, *n, last.as_deref()).await,
        }
    }

    /// Unenforced resolution of a tag by the upstream. The tag is revalidated with HEAD (free
    /// against Docker Hub's pull rate limit); the bytes then come by digest, from the verified
    /// cache when present, so GET and HEAD announce the same checked facts. Registries that
    /// announce no digest on HEAD, and schema 1 manifests (whose digest is not over their
    /// bytes), fall back to a GET by tag whose bytes are kept exactly as they came.
    async fn manifest_by_tag(
        &self,
        up: &Upstream,
        route: &Route,
        tag: &Tag,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let accept = media::accepted_types(headers);
        let repo = route.repository.as_str();
        if up.config.offline {
            return self
                .manifest_from_tag_map(up, route, tag, method, None)
                .await;
        }
        // An upstream that answers HEAD with an error has its say through the GET below, whose
        // body carries its error code and message.
        let head = match up
            .client
            .manifest(repo, tag.as_str(), &accept, Method::HEAD)
            .await
        {
            Ok(h) => {
                self.upstream_back(up, route);
                Some(h)
            }
            Err(e) if e.is_unreachable() => {
                return self
                    .manifest_from_tag_map(up, route, tag, method, Some(e))
                    .await;
            }
            Err(e) if e.upstream_status().is_some() => None,
            Err(e) => return Err(to_api_error(&e)),
        };
        let schema1 = head.as_ref().is_some_and(|h| {
            h.header_str("content-type")
                .is_some_and(|t| t.starts_with("application/vnd.docker.distribution.manifest.v1"))
        });
        let announced = head
            .as_ref()
            .and_then(|h| h.header_str("docker-content-digest"))
            .and_then(|d| Digest::parse(d).ok());
        if let (Some(digest), false) = (announced, schema1) {
            let gun = self.gun(up, route);
            match self
                .verified_manifest(up, route, &digest, None, &gun, None)
                .await
            {
                Ok(m) => {
                    self.tag_map
                        .record(&up.config.name, repo, tag.as_str(), digest);
                    return manifest_response(method, &m.media_type, &digest.to_string(), m.bytes);
                }
                // The upstream named a digest it cannot serve: ask for the tag's bytes instead.
                Err(e) if e.status == StatusCode::NOT_FOUND => {
                    tracing::warn!(upstream = %up.config.name, repository = %route.repository, tag = %tag,
                        digest = %digest, "upstream announced a digest for the tag that it does not serve; fetching the tag");
                }
                Err(e) => return Err(e),
            }
        }
        metrics().cache_miss(ContentKind::Manifest);
        let resp = up
            .client
            .manifest(repo, tag.as_str(), &accept, Method::GET)
            .await
            .map_err(|e| to_api_error(&e))?;
        let content_type = resp.header_str("content-type").map(str::to_string);
        let announced = resp.header_str("docker-content-digest").map(str::to_string);
        let bytes = resp
            .bytes_limited(media::MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| to_api_error(&e))?;
        let media_type = media::manifest_media_type(content_type.as_deref(), &bytes);
        let computed = Digest::of(&bytes).to_string();
        // Schema 1 digests cover the JWS payload without signatures, so they never match the
        // bytes; for every other type the digest we announce is the hash of what we serve.
        let digest = match announced {
            Some(a)
                if media_type.starts_with("application/vnd.docker.distribution.manifest.v1") =>
            {
                a
            }
            Some(a) if a != computed => {
                tracing::warn!(upstream = %up.config.name, repository = %route.repository, tag = %tag,
                    announced = %a, computed = %computed,
                    "upstream announced a digest that does not match the manifest bytes; announcing the computed one");
                computed
            }
            _ => computed,
        };
        if let Ok(d) = Digest::parse(&digest) {
            if d == Digest::of(&bytes) {
                self.tag_map.record(&up.config.name, repo, tag.as_str(), d);
                let gun = self.gun(up, route);
                self.remember_manifest(&gun, d, &media_type, &bytes).await;
            }
        }
        manifest_response(method, &media_type, &digest, bytes)
    }

    /// The upstream is unreachable or the mirror offline: answer an unenforced tag with the
    /// digest it last resolved to, when that manifest is still held.
    async fn manifest_from_tag_map(
        &self,
        up: &Upstream,
        route: &Route,
        tag: &Tag,
        method: &Method,
        cause: Option<UpstreamError>,
    ) -> Result<Response<Body>, ApiError> {
        let repo = route.repository.as_str();
        let why = match &cause {
            Some(e) => e.to_string(),
            None => format!(
                "the mirror is offline (upstream {} has offline = true)",
                up.config.name
            ),
        };
        let Some(digest) = self.tag_map.lookup(&up.config.name, repo, tag.as_str()) else {
            return Err(match cause {
                Some(e) => to_api_error(&e),
                None => ApiError::new(
                    ErrorCode::ManifestUnknown,
                    format!("{why}, and {repo}:{tag} was never pulled through it"),
                ),
            });
        };
        if cause.is_some() {
            self.upstream_gone(up, route, &why);
        }
        let gun = self.gun(up, route);
        let m = self
            .verified_manifest(up, route, &digest, None, &gun, None)
            .await?;
        manifest_response(method, &m.media_type, &digest.to_string(), m.bytes)
    }

    /// Logs once per repository that its upstream is gone and the cache is answering.
    fn upstream_gone(&self, up: &Upstream, route: &Route, why: &str) {
        let key = format!("{}/{}", up.config.name, route.repository);
        let first = self
            .stale
            .lock()
            .map(|mut s| s.insert(key.clone()))
            .unwrap_or(false);
        if first {
            tracing::warn!(repository = %key, reason = %why, "upstream unreachable; serving this repository from the cache");
        }
    }

    fn upstream_back(&self, up: &Upstream, route: &Route) {
        let key = format!("{}/{}", up.config.name, route.repository);
        let was = self
            .stale
            .lock()
            .map(|mut s| s.remove(&key))
            .unwrap_or(false);
        if was {
            tracing::info!(repository = %key, "upstream reachable again");
        }
    }

    /// A manifest by digest is fetched from upstream and checked against that digest before
    /// anything is sent. HEAD does the same fetch, so its headers are verified facts too.
    async fn manifest_by_digest(
        &self,
        up: &Upstream,
        route: &Route,
        digest: &Digest,
        method: &Method,
        _headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let gun = self.gun(up, route);
        let m = self
            .verified_manifest(up, route, digest, None, &gun, None)
            .await?;
        manifest_response(method, &m.media_type, &digest.to_string(), m.bytes)
    }

    /// Fetches and verifies the manifest `digest`. The upstream is asked with every manifest
    /// type in `Accept` so it never converts the stored bytes.
    pub async fn fetch_manifest_by_digest(
        &self,
        up: &Upstream,
        route: &Route,
        digest: &Digest,
    ) -> Result<(String, Bytes), ApiError> {
        let accept: Vec<String> = media::ALL_MANIFEST_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let resp = up
            .client
            .manifest(
                route.repository.as_str(),
                &digest.to_string(),
                &accept,
                Method::GET,
            )
            .await
            .map_err(|e| to_api_error(&e))?;
        let content_type = resp.header_str("content-type").map(str::to_string);
        let bytes = resp
            .bytes_limited(media::MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| to_api_error(&e))?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            metrics().upstream_error(
                &up.config.name,
                UpstreamKind::Registry,
                UpstreamErrorKind::DigestMismatch,
            );
            tracing::error!(upstream = %up.config.name, repository = %route.repository,
                expected = %digest, actual = %actual,
                "upstream served manifest bytes that do not match the requested digest: possible tampering; refused");
            return Err(ApiError::new(
                ErrorCode::ManifestInvalid,
                format!(
                    "upstream {} served a manifest for {} whose bytes hash to {}; refused",
                    up.config.name, digest, actual
                ),
            )
            .with_status(StatusCode::BAD_GATEWAY));
        }
        Ok((
            media::manifest_media_type(content_type.as_deref(), &bytes),
            bytes,
        ))
    }

    /// Blobs: a stored blob is served from disk (Range and HEAD included) without re-hashing;
    /// a missing one is fetched once, however many clients ask at the same time, and streamed
    /// to all of them while it is hashed and written to the store. The whole blob is always
    /// fetched, also for a Range request: a slice cannot be verified on its own.
    async fn blob(
        &self,
        up: &Upstream,
        route: &Route,
        digest: &Digest,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        if let Some(obj) = self.store.get(digest).await {
            metrics().cache_hit(ContentKind::Blob);
            let (status, window, length) = range_plan(range_header, Some(obj.size))?;
            let mut out = blob_headers(Response::builder().status(status), digest)
                .header(header::CONTENT_LENGTH, length.unwrap_or(obj.size));
            if let Some(r) = window {
                out = out.header(header::CONTENT_RANGE, r.content_range(obj.size));
            }
            let body = if method == Method::HEAD {
                empty_body()
            } else {
                stream_body(obj.stream(window))
            };
            return out.body(body).map_err(internal);
        }
        metrics().cache_miss(ContentKind::Blob);
        if up.config.offline {
            let mut e = enforced::offline_miss(&up.config.name, digest);
            e.code = ErrorCode::BlobUnknown.as_str().into();
            return Err(e);
        }
        let repo = route.repository.to_string();
        let digest_text = digest.to_string();
        if method == Method::HEAD {
            let resp = up
                .client
                .blob(&repo, &digest_text, None, Method::HEAD)
                .await
                .map_err(|e| blob_error(&e, digest))?;
            let mut out = blob_headers(Response::builder().status(StatusCode::OK), digest);
            if let Some(len) = resp.content_length() {
                out = out.header(header::CONTENT_LENGTH, len);
            }
            return out.body(empty_body()).map_err(internal);
        }
        let client = up.client.clone();
        let errors = self.fill_errors.clone();
        let key = *digest;
        let source = Some(up.config.name.as_str());
        let fill = self
            .store
            .fill_from(source, *digest, None, None, move || async move {
                match client.blob(&repo, &digest_text, None, Method::GET).await {
                    Ok(resp) => Ok((resp.content_length(), resp.into_stream())),
                    Err(e) => {
                        errors.insert(key, blob_error(&e, &key));
                        Err(e)
                    }
                }
            });
        let total = match fill.total().await {
            Ok(t) => t,
            Err(e) => return Err(self.fill_error(digest, &e)),
        };
        let (status, window, length) = range_plan(range_header, total)?;
        let mut out = blob_headers(Response::builder().status(status), digest);
        if let Some(len) = length {
            out = out.header(header::CONTENT_LENGTH, len);
        }
        if let (Some(r), Some(total)) = (window, total) {
            out = out.header(header::CONTENT_RANGE, r.content_range(total));
        }
        out.body(stream_body(fill.reader(window))).map_err(internal)
    }

    /// The client-facing face of a failed fill: the upstream's own answer when it gave one.
    fn fill_error(&self, digest: &Digest, e: &FillError) -> ApiError {
        if let Some(api) = self.fill_errors.get(digest) {
            return api;
        }
        let status = if e.is_upstream() {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError::new(ErrorCode::Unavailable, e.to_string()).with_status(status)
    }

    async fn tags(
        &self,
        up: &Upstream,
        route: &Route,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let n_u32 = n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
        let resp = up
            .client
            .tags(route.repository.as_str(), n_u32, last)
            .await
            .map_err(|e| to_api_error(&e))?;
        let link = resp.header_str("link").map(str::to_string);
        let bytes = resp
            .bytes_limited(16 * 1024 * 1024)
            .await
            .map_err(|e| to_api_error(&e))?;
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let list: TagList = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                ErrorCode::Unavailable,
                format!(
                    "upstream {} sent an unreadable tag list: {e}",
                    up.config.name
                ),
            )
            .with_status(StatusCode::BAD_GATEWAY)
        })?;
        let tags = list.tags.unwrap_or_default();
        let next = link.as_deref().and_then(next_page_query);
        tag_list_response(route, tags, next)
    }
}

fn internal(e: http::Error) -> ApiError {
    ApiError::new(
        ErrorCode::Unknown,
        format!("internal error building the response: {e}"),
    )
}

fn blob_error(e: &UpstreamError, digest: &Digest) -> ApiError {
    let mut api = to_api_error(e);
    if api.status == StatusCode::NOT_FOUND && api.code == "NAME_UNKNOWN" {
        api.code = ErrorCode::BlobUnknown.as_str().into();
        api.message = format!("blob {digest} unknown to upstream {}", e.upstream());
    }
    api
}

/// Status, served window and Content-Length for a blob of `total` bytes and a `Range` header.
fn range_plan(
    range_header: Option<&str>,
    total: Option<u64>,
) -> Result<(StatusCode, Option<media::ByteRange>, Option<u64>), ApiError> {
    let Some(total) = total else {
        return Ok((StatusCode::OK, None, None));
    };
    match media::parse_range(range_header, total) {
        RangeRequest::Full => Ok((StatusCode::OK, None, Some(total))),
        RangeRequest::Partial(r) => Ok((StatusCode::PARTIAL_CONTENT, Some(r), Some(r.len()))),
        RangeRequest::Unsatisfiable => Err(ApiError::new(
            ErrorCode::RangeInvalid,
            format!("requested range is outside the blob of {total} bytes"),
        )
        .with_header(header::CONTENT_RANGE, format!("bytes */{total}"))),
    }
}

fn blob_headers(b: http::response::Builder, digest: &Digest) -> http::response::Builder {
    b.header(header::CONTENT_TYPE, "application/octet-stream")
        .header("docker-content-digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "max-age=31536000")
}

pub fn manifest_response(
    method: &Method,
    media_type: &str,
    digest: &str,
    bytes: Bytes,
) -> Result<Response<Body>, ApiError> {
    let len = bytes.len();
    let b = Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .unwrap_or(HeaderValue::from_static(media::OCI_MANIFEST)),
        )
        .header(header::CONTENT_LENGTH, len)
        .header("docker-content-digest", digest)
        .header(header::ETAG, format!("\"{digest}\""));
    let body = if method == Method::HEAD {
        empty_body()
    } else {
        full_body(bytes)
    };
    b.body(body).map_err(internal)
}

/// `last` and `n` of the upstream's `Link: <...?last=x&n=y>; rel="next"`.
fn next_page_query(link: &str) -> Option<(String, Option<String>)> {
    if !link.contains("rel=\"next\"") && !link.contains("rel=next") {
        return None;
    }
    let start = link.find('<')? + 1;
    let end = start + link[start..].find('>')?;
    let target = &link[start..end];
    let query = target.split_once('?')?.1;
    let mut last = None;
    let mut n = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "last" => last = Some(v.into_owned()),
            "n" => n = Some(v.into_owned()),
            _ => {}
        }
    }
    Some((last?, n))
}

pub(crate) fn tag_list_response(
    route: &Route,
    tags: Vec<String>,
    next: Option<(String, Option<String>)>,
) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_vec(&serde_json::json!({ "name": route.client_name, "tags": tags }))
        .map_err(|e| ApiError::new(ErrorCode::Unknown, e.to_string()))?;
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len());
    if let Some((last, n)) = next {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("last", &last);
        if let Some(n) = n {
            q.append_pair("n", &n);
        }
        if let Some(ns) = &route.ns {
            q.append_pair("ns", ns);
        }
        b = b.header(
            header::LINK,
            format!(
                "</v2/{}/tags/list?{}>; rel=\"next\"",
                route.client_name,
                q.finish()
            ),
        );
    }
    b.body(full_body(Bytes::from(body))).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_page_is_read_from_the_upstream_link() {
        assert_eq!(
            next_page_query("</v2/library/a/tags/list?last=b%2Bc&n=2>; rel=\"next\""),
            Some(("b+c".into(), Some("2".into())))
        );
        assert_eq!(next_page_query("</v2/x/tags/list?n=2>; rel=\"next\""), None);
        assert_eq!(
            next_page_query("</v2/x/tags/list?last=a>; rel=\"prev\""),
            None
        );
        assert_eq!(next_page_query("garbage"), None);
    }
}
