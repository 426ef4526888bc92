//! Requests in repositories whose trust policy is `enforce` (or `audit`).
//!
//! A tag is never asked of the upstream registry here: it is resolved through verified Notary
//! data to a signed (sha256, length), and the manifest is fetched by that digest and checked
//! against both before a byte is served (design.md, "Decisions already taken"). Digests are served
//! only when reachable from a signed tag: the signed manifest or index, its child manifests, and
//! their configs and layers.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Response};

use super::audit;
use super::{manifest_response, tag_list_response, Proxy, Upstream};
use crate::api::media;
use crate::api::server::Body;
use crate::api::{ApiError, ErrorCode, Route};
use crate::enforce::refusal::{outside_closure, refusal, tampered};
use crate::metrics::{metrics, ContentKind};
use crate::policy::Policy;
use crate::reference::{Digest, Tag};
use crate::trust::{SignedTarget, VerifiedRepository};

/// A manifest whose bytes matched the digest they were fetched by.
#[derive(Debug, Clone)]
pub struct VerifiedManifest {
    pub media_type: String,
    pub bytes: Bytes,
}

/// Digests reachable from the signed tags of one repository.
#[derive(Default)]
pub(crate) struct Closure {
    allowed: HashSet<Digest>,
    /// Manifests whose references are in `allowed` already: serving one again (every warm pull
    /// of a tag) need not parse it again (BENCHMARKS.md, "Against the peers": the parse was a
    /// tenth of a cached tag's cost).
    expanded: HashSet<Digest>,
    /// The trust data whose every signed target has been walked (so a miss is final).
    walked_for: Option<Arc<VerifiedRepository>>,
    /// The trust data `allowed` was built from. When the signed targets change (a tag re-signed
    /// to another image, or removed), the closure starts over: the old image is no longer
    /// reachable from a signed tag and must not stay servable by digest.
    basis: Option<Arc<VerifiedRepository>>,
}

/// What decides a closure: the signed (sha256, length) pairs.
fn target_digests(repo: &VerifiedRepository) -> Vec<([u8; 32], u64)> {
    let mut v: Vec<_> = repo
        .signed_targets()
        .iter()
        .map(|t| (t.sha256, t.length))
        .collect();
    v.sort_unstable();
    v
}

/// At most this many manifests are walked to build a repository's closure.
const MAX_CLOSURE_MANIFESTS: usize = 10_000;

/// What a manifest refers to: child manifests (of an index) and blobs (config, layers).
pub fn references(bytes: &[u8]) -> (Vec<Digest>, Vec<Digest>) {
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(default)]
        manifests: Vec<Descriptor>,
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let Ok(shape) = serde_json::from_slice::<Shape>(bytes) else {
        return (Vec::new(), Vec::new());
    };
    let parse = |d: &Descriptor| d.digest.as_deref().and_then(|s| Digest::parse(s).ok());
    let manifests = shape.manifests.iter().filter_map(parse).collect();
    let blobs = shape
        .config
        .iter()
        .chain(shape.layers.iter())
        .filter_map(parse)
        .collect();
    (manifests, blobs)
}

/// The signed length, when there is one, must be the length of the bytes.
fn check_signed_length(
    m: VerifiedManifest,
    signed_length: Option<u64>,
    gun: &str,
    tag: Option<&str>,
    digest: &Digest,
) -> Result<VerifiedManifest, ApiError> {
    match signed_length {
        Some(len) if m.bytes.len() as u64 != len => {
            tracing::error!(gun, tag, digest = %digest, signed_length = len, actual = m.bytes.len(),
                "manifest length differs from the signed length: possible tampering; refused");
            Err(tampered(
                gun,
                tag,
                &digest.to_string(),
                &format!("{} bytes where {len} were signed", m.bytes.len()),
            ))
        }
        _ => Ok(m),
    }
}

/// What an offline mirror says about content it does not hold.
pub(crate) fn offline_miss(upstream: &str, digest: &Digest) -> ApiError {
    ApiError::new(
        ErrorCode::ManifestUnknown,
        format!("the mirror is offline (upstream {upstream} has offline = true) and does not hold {digest}"),
    )
}

/// Is `media_type` among what the client accepts? No `Accept` at all means anything goes.
fn acceptable(media_type: &str, accept: &[String]) -> bool {
    accept.is_empty()
        || accept
            .iter()
            .any(|a| a == "*/*" || a == "application/*" || a == media_type)
}

impl Proxy {
    pub(crate) fn gun(&self, up: &Upstream, route: &Route) -> String {
        format!("{}/{}", up.config.name, route.repository)
    }

    async fn verified(
        &self,
        route: &Route,
        gun: &str,
        policy: &Policy,
        tag: Option<&str>,
    ) -> Result<Arc<VerifiedRepository>, ApiError> {
        self.trust
            .verified(route.upstream, gun, policy)
            .await
            .map_err(|f| refusal(&f, gun, tag, self.trust.notary_host(route.upstream)))
    }

    /// Tag → signed target, through verified trust data.
    pub(crate) async fn signed_target(
        &self,
        route: &Route,
        gun: &str,
        policy: &Policy,
        tag: &Tag,
    ) -> Result<SignedTarget, ApiError> {
        let repo = self
            .verified(route, gun, policy, Some(tag.as_str()))
            .await?;
        let signers = (!policy.signers.is_empty()).then_some(policy.signers.as_slice());
        repo.lookup(tag.as_str(), signers).map_err(|e| {
            refusal(
                &e.into(),
                gun,
                Some(tag.as_str()),
                self.trust.notary_host(route.upstream),
            )
        })
    }

    /// A manifest by digest from the memory cache, else from the upstream by digest, checked
    /// against the digest (and the signed length when there is one). Only checked bytes are cached.
    pub(crate) async fn verified_manifest(
        &self,
        up: &Upstream,
        route: &Route,
        digest: &Digest,
        signed_length: Option<u64>,
        gun: &str,
        tag: Option<&str>,
    ) -> Result<VerifiedManifest, ApiError> {
        if let Some(m) = self.held_manifest(digest).await {
            metrics().cache_hit(ContentKind::Manifest);
            return check_signed_length(m, signed_length, gun, tag, digest);
        }
        // Single flight: one upstream fetch per missing manifest; the others wait and then
        // find it held.
        let lock = {
            let mut locks = self
                .manifest_locks
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            locks.entry(*digest).or_default().clone()
        };
        let _turn = lock.lock().await;
        let result = self
            .fetch_and_keep_manifest(up, route, digest, signed_length, gun, tag)
            .await;
        self.manifest_locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        result
    }

    async fn fetch_and_keep_manifest(
        &self,
        up: &Upstream,
        route: &Route,
        digest: &Digest,
        signed_length: Option<u64>,
        gun: &str,
        tag: Option<&str>,
    ) -> Result<VerifiedManifest, ApiError> {
        if let Some(m) = self.held_manifest(digest).await {
            // Another request fetched it while this one waited for its turn.
            metrics().singleflight_joined(ContentKind::Manifest);
            metrics().cache_miss(ContentKind::Manifest);
            return check_signed_length(m, signed_length, gun, tag, digest);
        }
        metrics().cache_miss(ContentKind::Manifest);
        if up.config.offline {
            return Err(offline_miss(&up.config.name, digest));
        }
        let fetched = self.fetch_manifest_by_digest(up, route, digest).await;
        let (media_type, bytes) = match fetched {
            Ok(x) => x,
            Err(e) if e.code == ErrorCode::ManifestInvalid.as_str() && tag.is_some() => {
                return Err(tampered(gun, tag, &digest.to_string(), &e.message));
            }
            Err(mut e) if e.status == http::StatusCode::NOT_FOUND && tag.is_some() => {
                e.message = format!(
                    "signed manifest {digest} is not available upstream ({}): {}",
                    up.config.name, e.message
                );
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let m = check_signed_length(
            VerifiedManifest { media_type, bytes },
            signed_length,
            gun,
            tag,
            digest,
        )?;
        self.remember_manifest(gun, *digest, &m.media_type, &m.bytes)
            .await;
        Ok(m)
    }

    /// A manifest already verified: from memory, else from the store (its file was checked
    /// against the digest before it was renamed into place).
    async fn held_manifest(&self, digest: &Digest) -> Option<VerifiedManifest> {
        if let Some(m) = self.manifests.get(digest) {
            return Some((*m).clone());
        }
        let obj = self.store.get(digest).await?;
        if obj.size > media::MAX_MANIFEST_BYTES {
            return None;
        }
        let stored_type = obj.media_type.clone();
        let mut bytes = Vec::with_capacity(obj.size as usize);
        let mut stream = Box::pin(obj.stream(None));
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            bytes.extend_from_slice(&chunk.ok()?);
        }
        let bytes = Bytes::from(bytes);
        let media_type = stored_type.unwrap_or_else(|| media::manifest_media_type(None, &bytes));
        let m = VerifiedManifest { media_type, bytes };
        self.manifests.insert(*digest, Arc::new(m.clone()));
        Some(m)
    }

    /// Keeps manifest bytes that were checked against `digest`: in memory and in the store.
    pub(crate) async fn remember_manifest(
        &self,
        _gun: &str,
        digest: Digest,
        media_type: &str,
        bytes: &Bytes,
    ) {
        self.manifests.insert(
            digest,
            Arc::new(VerifiedManifest {
                media_type: media_type.to_string(),
                bytes: bytes.clone(),
            }),
        );
        if let Err(e) = self
            .store
            .put(&digest, bytes, Some(bytes.len() as u64), Some(media_type))
            .await
        {
            tracing::warn!(digest = %digest, error = %e, "could not write a verified manifest to the store");
        }
    }

    fn allow(&self, gun: &str, manifest_digest: Digest, bytes: &[u8]) {
        {
            let closures = self.closures.lock().unwrap_or_else(|p| p.into_inner());
            if closures
                .get(gun)
                .is_some_and(|c| c.expanded.contains(&manifest_digest))
            {
                return;
            }
        }
        let (manifests, blobs) = references(bytes);
        let mut closures = self.closures.lock().unwrap_or_else(|p| p.into_inner());
        let c = closures.entry(gun.to_string()).or_default();
        c.allowed.insert(manifest_digest);
        c.allowed.extend(manifests);
        c.allowed.extend(blobs);
        c.expanded.insert(manifest_digest);
    }

    /// Keep the closure of `gun` only while it was built from the same signed targets as `repo`.
    fn rebase_closure(&self, gun: &str, repo: &Arc<VerifiedRepository>) {
        let mut closures = self.closures.lock().unwrap_or_else(|p| p.into_inner());
        // The usual case, a verdict already rebased on: no allocation for the key.
        if closures
            .get(gun)
            .and_then(|c| c.basis.as_ref())
            .is_some_and(|b| Arc::ptr_eq(b, repo))
        {
            return;
        }
        let c = closures.entry(gun.to_string()).or_default();
        let same = match &c.basis {
            Some(b) if Arc::ptr_eq(b, repo) => return,
            Some(b) => target_digests(b) == target_digests(repo),
            None => false,
        };
        if same {
            c.basis = Some(repo.clone());
        } else {
            tracing::debug!(gun, "signed targets changed: the signed closure is rebuilt");
            *c = Closure {
                basis: Some(repo.clone()),
                ..Closure::default()
            };
        }
    }

    fn is_allowed(&self, gun: &str, digest: &Digest) -> bool {
        let closures = self.closures.lock().unwrap_or_else(|p| p.into_inner());
        closures
            .get(gun)
            .is_some_and(|c| c.allowed.contains(digest))
    }

    /// Enforced `GET|HEAD manifests/<tag>`.
    #[allow(clippy::too_many_arguments)] // the request's facts, each needed once
    pub(crate) async fn enforced_tag(
        &self,
        up: &Upstream,
        route: &Route,
        gun: &str,
        policy: &Policy,
        tag: &Tag,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Response<Body>, ApiError> {
        let image = format!("{gun}:{tag}");
        let target = self
            .signed_target(route, gun, policy, tag)
            .await
            .inspect_err(|e| audit::refused(e, image.clone(), None, None))?;
        let digest = Digest::from_bytes(target.sha256);
        let m = self
            .verified_manifest(
                up,
                route,
                &digest,
                Some(target.length),
                gun,
                Some(tag.as_str()),
            )
            .await
            .inspect_err(|e| {
                audit::refused(
                    e,
                    image.clone(),
                    Some(&target.role),
                    Some(digest.to_string()),
                )
            })?;
        if m.media_type
            .starts_with("application/vnd.docker.distribution.manifest.v1")
        {
            return Err(ApiError::new(ErrorCode::ManifestUnknown, format!(
                "the signed manifest for {tag} is a Docker schema 1 manifest ({}), which current clients no longer pull; refused", m.media_type)));
        }
        let accept = media::accepted_types(headers);
        if !acceptable(&m.media_type, &accept) {
            return Err(ApiError::new(ErrorCode::ManifestUnknown, format!(
                "the signed manifest for {tag} is {}, which this client's Accept header does not include; trustgate never converts signed manifests",
                m.media_type)));
        }
        // The same verdict as `signed_target`'s (a cache hit while fresh).
        let repo = self
            .verified(route, gun, policy, Some(tag.as_str()))
            .await
            .inspect_err(|e| audit::refused(e, image.clone(), None, None))?;
        self.rebase_closure(gun, &repo);
        self.allow(gun, digest, &m.bytes);
        audit::allow(
            image,
            "signed",
            Some(&target.role),
            Some(digest.to_string()),
        );
        manifest_response(method, &m.media_type, &digest.to_string(), m.bytes)
    }

    /// Enforced digest requests: allowed only inside the signed closure (unless the policy
    /// switches that rule off). Builds the closure by walking every signed target on a miss.
    pub(crate) async fn require_in_closure(
        &self,
        up: &Upstream,
        route: &Route,
        gun: &str,
        policy: &Policy,
        digest: &Digest,
    ) -> Result<(), ApiError> {
        if !policy.require_signed_closure {
            return Ok(());
        }
        let image = format!("{gun}@{digest}");
        // Reachability is decided by the current trust data (a cache hit while fresh).
        let repo = self
            .verified(route, gun, policy, None)
            .await
            .inspect_err(|e| audit::refused(e, image.clone(), None, Some(digest.to_string())))?;
        self.rebase_closure(gun, &repo);
        if self.is_allowed(gun, digest) {
            audit::allow(image, "in_signed_closure", None, Some(digest.to_string()));
            return Ok(());
        }
        let already_walked = {
            let closures = self.closures.lock().unwrap_or_else(|p| p.into_inner());
            closures
                .get(gun)
                .and_then(|c| c.walked_for.as_ref())
                .is_some_and(|w| Arc::ptr_eq(w, &repo))
        };
        if !already_walked {
            self.walk_closure(up, route, gun, &repo).await;
        }
        if self.is_allowed(gun, digest) {
            audit::allow(image, "in_signed_closure", None, Some(digest.to_string()));
            Ok(())
        } else {
            let e = outside_closure(gun, &digest.to_string());
            audit::refused(&e, image, None, Some(digest.to_string()));
            Err(e)
        }
    }

    async fn walk_closure(
        &self,
        up: &Upstream,
        route: &Route,
        gun: &str,
        repo: &Arc<VerifiedRepository>,
    ) {
        let mut queue: Vec<(Digest, Option<u64>)> = repo
            .signed_targets()
            .iter()
            .map(|t| (Digest::from_bytes(t.sha256), Some(t.length)))
            .collect();
        let mut seen = HashSet::new();
        while let Some((digest, length)) = queue.pop() {
            if !seen.insert(digest) || seen.len() > MAX_CLOSURE_MANIFESTS {
                continue;
            }
            match self
                .verified_manifest(up, route, &digest, length, gun, None)
                .await
            {
                Ok(m) => {
                    self.allow(gun, digest, &m.bytes);
                    let (children, _) = references(&m.bytes);
                    queue.extend(children.into_iter().map(|c| (c, None)));
                }
                // A signed target that is a blob rather than a manifest, or gone upstream: it
                // adds nothing to walk; the digest itself stays allowed.
                Err(e) => {
                    tracing::debug!(gun, digest = %digest, error = %e, "closure walk: manifest not fetched");
                    let mut closures = self.closures.lock().unwrap_or_else(|p| p.into_inner());
                    closures
                        .entry(gun.to_string())
                        .or_default()
                        .allowed
                        .insert(digest);
                }
            }
        }
        let mut closures = self.closures.lock().unwrap_or_else(|p| p.into_inner());
        closures.entry(gun.to_string()).or_default().walked_for = Some(repo.clone());
    }

    /// Enforced `GET|HEAD manifests/<digest>`.
    pub(crate) async fn enforced_manifest_digest(
        &self,
        up: &Upstream,
        route: &Route,
        gun: &str,
        policy: &Policy,
        digest: &Digest,
        method: &Method,
    ) -> Result<Response<Body>, ApiError> {
        self.require_in_closure(up, route, gun, policy, digest)
            .await?;
        let m = self
            .verified_manifest(up, route, digest, None, gun, None)
            .await
            .map_err(|e| {
                // Other bytes under a digest of the signed closure are the same lie as under a
                // signed tag: a 403 whose reason clients print, not the pass-through 502.
                if e.code == ErrorCode::ManifestInvalid.as_str() {
                    tracing::error!(gun, digest = %digest, error = %e.message,
                        "manifest bytes differ from their digest: possible tampering; refused");
                    tampered(gun, None, &digest.to_string(), &e.message)
                } else {
                    e
                }
            })
            .inspect_err(|e| {
                audit::refused(e, format!("{gun}@{digest}"), None, Some(digest.to_string()))
            })?;
        self.allow(gun, *digest, &m.bytes);
        manifest_response(method, &m.media_type, &digest.to_string(), m.bytes)
    }

    /// Enforced `tags/list`: only the signed tags, sorted, paginated here.
    pub(crate) async fn enforced_tags(
        &self,
        route: &Route,
        gun: &str,
        policy: &Policy,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let repo = self
            .verified(route, gun, policy, None)
            .await
            .inspect_err(|e| audit::refused(e, format!("{gun} (tag list)"), None, None))?;
        let mut names: Vec<String> = repo.signed_targets().into_iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        let after: Vec<String> = names
            .into_iter()
            .filter(|t| last.is_none_or(|l| t.as_str() > l))
            .collect();
        let (page, next) = match n {
            Some(n) if after.len() > n => {
                let page: Vec<String> = after[..n].to_vec();
                let next = page.last().cloned().map(|l| (l, Some(n.to_string())));
                (page, next)
            }
            _ => (after, None),
        };
        tag_list_response(route, page, next)
    }

    /// Audit mode: what enforce would have said, logged and counted; nothing is refused.
    pub(crate) async fn audit_tag(
        &self,
        route: &Route,
        gun: &str,
        policy: &Policy,
        tag: &Tag,
    ) -> Option<Digest> {
        let image = format!("{gun}:{tag}");
        match self.signed_target(route, gun, policy, tag).await {
            Ok(t) => {
                let digest = Digest::from_bytes(t.sha256);
                audit::allow(image, "signed", Some(&t.role), Some(digest.to_string()));
                Some(digest)
            }
            Err(e) => {
                self.stats
                    .audit_would_refuse
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(gun, tag = %tag, reason = %e.message, "audit: enforce would refuse this tag; serving it unverified");
                audit::record(audit::Decision {
                    verdict: audit::Verdict::AuditWouldDeny,
                    image,
                    reason: audit::trust_reason(&e).unwrap_or_else(|| "unverifiable".into()),
                    message: Some(&e.message),
                    role: None,
                    digest: None,
                });
                None
            }
        }
    }
}

/// What `trustgate verify` reports for one image.
pub struct Inspection {
    pub gun: String,
    pub repo: Arc<VerifiedRepository>,
    /// The requested tag's verdict, when a tag was named.
    pub tag: Option<(String, Result<SignedTarget, ApiError>)>,
}

impl Proxy {
    /// The route a pull of `image` takes (`alpine`, `127.0.0.1:5101/team/app:v1`,
    /// `ghcr.io/o/r@sha256:…`); no tag means `latest`.
    pub fn route_image(&self, image: &str) -> Result<Route, ApiError> {
        let (name, reference) = match image.split_once('@') {
            Some((n, d)) => (n, d.to_string()),
            None => match image.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n, t.to_string()),
                _ => (image, "latest".to_string()),
            },
        };
        let probe = format!("/v2/{name}/manifests/{reference}");
        match self.router().route(&Method::GET, &probe, None)? {
            crate::api::Routed::Content(r) => Ok(r),
            crate::api::Routed::Ping => Err(ApiError::new(
                ErrorCode::NameInvalid,
                format!("{image}: not an image reference"),
            )),
        }
    }

    /// Verifies an image reference as a client would name it (`alpine`, `127.0.0.1:5101/team/app:v1`,
    /// `ghcr.io/o/r:tag`), through the same routing, policy and trust path as a pull.
    pub async fn inspect(&self, image: &str) -> Result<Inspection, ApiError> {
        if image.contains('@') {
            return Err(ApiError::new(ErrorCode::ManifestInvalid, format!(
                "{image}: a digest reference needs no trust lookup; name a tag (or no tag for all tags)")));
        }
        let route = self.route_image(image)?;
        let tag = match &route.endpoint {
            crate::api::Endpoint::Manifest(crate::reference::ManifestRef::Tag(_))
                if image
                    .rsplit_once(':')
                    .is_some_and(|(_, t)| !t.contains('/')) =>
            {
                image.rsplit_once(':').map(|(_, t)| t)
            }
            _ => None,
        };
        let up = &self.upstreams[route.upstream];
        let gun = self.gun(up, &route);
        let policy = self.policy_for(up, &gun);
        let repo = self.verified(&route, &gun, &policy, tag).await?;
        let tag = match (tag, &route.endpoint) {
            (
                Some(t),
                crate::api::Endpoint::Manifest(crate::reference::ManifestRef::Tag(parsed)),
            ) => Some((
                t.to_string(),
                self.signed_target(&route, &gun, &policy, parsed).await,
            )),
            _ => None,
        };
        Ok(Inspection { gun, repo, tag })
    }
}

/// Docker's name for a signer role: `targets/releases` → `releases`, `targets` → `Repo Admin`.
fn signer_name(role: &str) -> String {
    match role.strip_prefix("targets/") {
        Some(r) => r.to_string(),
        None => "(Repo Admin)".to_string(),
    }
}

/// The `docker trust inspect --pretty`-like text of an inspection.
pub fn render_inspection(report: &Inspection) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Signatures for {}\n", report.gun);
    let _ = writeln!(out, "{:<24}{:<67}SIGNERS", "SIGNED TAG", "DIGEST");
    let mut targets = report.repo.signed_targets();
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &targets {
        let _ = writeln!(
            out,
            "{:<24}{:<67}{}",
            t.name,
            hex::encode(t.sha256),
            signer_name(&t.role)
        );
    }
    let delegations: Vec<_> = report
        .repo
        .roles
        .iter()
        .filter(|r| r.name != "targets")
        .collect();
    if !delegations.is_empty() {
        let _ = writeln!(
            out,
            "\nList of signers and their keys for {}:\n",
            report.gun
        );
        let _ = writeln!(out, "{:<24}KEYS", "SIGNER");
        for r in delegations {
            let keys: Vec<&str> = r.signers.iter().map(|k| k.canonical_id.as_str()).collect();
            let _ = writeln!(out, "{:<24}{}", signer_name(&r.name), keys.join(", "));
        }
    }
    let _ = writeln!(out, "\nAdministrative keys for {}:\n", report.gun);
    if let Some(t) = report.repo.role("targets") {
        let keys: Vec<&str> = t.signers.iter().map(|k| k.canonical_id.as_str()).collect();
        let _ = writeln!(out, "  Repository Key:\t{}", keys.join(", "));
    }
    let roots: Vec<&str> = report
        .repo
        .root_signers
        .iter()
        .map(|k| k.canonical_id.as_str())
        .collect();
    let _ = writeln!(out, "  Root Key:\t{}", roots.join(", "));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_of_indexes_and_manifests() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}"}},{{"digest":"{}"}}]}}"#,
            d('a'),
            d('b')
        );
        let (m, b) = references(index.as_bytes());
        assert_eq!(m.len(), 2);
        assert!(b.is_empty());
        let manifest = format!(
            r#"{{"config":{{"digest":"{}"}},"layers":[{{"digest":"{}"}},{{"digest":"bogus"}}]}}"#,
            d('c'),
            d('e')
        );
        let (m, b) = references(manifest.as_bytes());
        assert!(m.is_empty());
        assert_eq!(
            b,
            vec![
                Digest::parse(&d('c')).unwrap(),
                Digest::parse(&d('e')).unwrap()
            ]
        );
        assert_eq!(references(b"not json"), (vec![], vec![]));
    }

    #[test]
    fn accept_negotiation_never_converts() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(acceptable(media::OCI_INDEX, &[]));
        assert!(acceptable(media::OCI_INDEX, &a(&["*/*"])));
        assert!(acceptable(
            media::OCI_INDEX,
            &a(&[media::DOCKER_MANIFEST_V2, media::OCI_INDEX])
        ));
        assert!(!acceptable(
            media::OCI_INDEX,
            &a(&[media::DOCKER_MANIFEST_V2])
        ));
    }
}
