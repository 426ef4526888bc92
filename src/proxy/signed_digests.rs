//! Enforcement under digest verifiers (cosign; a policy with `verifiers = [...]`).
//!
//! The flow for a tag: resolve it to a digest by asking the upstream (HEAD; the answer is only
//! a candidate), find the signatures of that digest (`crate::verify::discovery`) and decide with
//! the policy's verifiers and `require` (`crate::verify::digest`); only then are the digest's
//! bytes fetched and checked against it, and the signed closure (children, config, layers)
//! grows from it exactly as under Notary v1.
//!
//! - A digest's verdict is cached per repository and verifier set: it cannot change for the same
//!   signatures and trust roots. Refusals are not cached (a signature may be pushed later).
//! - The tag → digest mapping is reused for `[trust] refresh`, then asked of the upstream again.
//! - Every digest a tag resolves to is remembered ([`super::tag_history`]); a tag moving back to
//!   an older signed digest is logged and counted.
//! - Signature artifacts (the `.sig` and fallback tags, referrer manifests and their blobs) are
//!   trust data: served under enforce when their layers are signature types, kept in the store
//!   like other content, and read from there by an offline mirror, which re-verifies them.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::Method;

use super::audit;
use super::manifests::not_found;
use super::{CheckedManifest, Fetching, Proxy, PullError, Target};
use crate::decision::Reason;
use crate::enforce::TrustFailure;
use crate::media;
use crate::policy::Signatures;
use crate::reference::{Digest, Tag};
use crate::upstream::UpstreamError;
use crate::verify::cosign::Expected;
use crate::verify::digest::{decide, DigestFailure, DigestVerdict, ManifestFacts};
use crate::verify::discovery::{self, Discovered, SignatureSource, SourceError};
use crate::verify::SignedTag;

/// The largest manifest read to compare with a Notation payload's size and media type (the OCI
/// distribution specification's manifest limit).
const MAX_SIGNED_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Verified digests remembered (per repository and verifier set).
pub(crate) const VERDICT_ENTRIES: u64 = 100_000;
/// Signed roots remembered per repository, for rebuilding its closure.
const MAX_ROOTS: usize = 1_000;

/// The tag-map key of a digest's referrers list (kept for offline mirrors).
fn referrers_key(digest: &Digest) -> String {
    format!("{}.referrers", discovery::fallback_tag(digest))
}

/// Is `tag` one of the tags cosign and OCI clients keep signatures under (`sha256-<hex>` or
/// `sha256-<hex>.sig`)?
pub(crate) fn signature_tag(tag: &str) -> Option<Digest> {
    let hex = tag.strip_prefix("sha256-")?;
    let hex = hex.strip_suffix(".sig").unwrap_or(hex);
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Where discovery reads: the upstream while connected (everything read is checked against its
/// digest and kept), the store when offline.
pub(crate) struct ProxySource<'a> {
    pub proxy: &'a Proxy,
    pub t: &'a Target<'a>,
}

fn source_error(e: PullError) -> SourceError {
    if not_found(&e) {
        return SourceError::NotFound;
    }
    match e.upstream_error() {
        Some(UpstreamError::TooLarge { limit, .. }) => SourceError::TooLarge { limit: *limit },
        _ => SourceError::Failed(e.to_string()),
    }
}

fn bounded(bytes: Bytes, max: u64) -> Result<Bytes, SourceError> {
    if bytes.len() as u64 > max {
        Err(SourceError::TooLarge { limit: max })
    } else {
        Ok(bytes)
    }
}

impl SignatureSource for ProxySource<'_> {
    async fn referrers(&self, digest: &Digest) -> Result<Option<Bytes>, SourceError> {
        let (p, t) = (self.proxy, self.t);
        let up = t.upstream;
        let key = referrers_key(digest);
        let stored = || async {
            let d = p.tag_map.lookup(up.name(), t.repository(), &key)?;
            p.checked_manifest(t, &d, None, None)
                .await
                .ok()
                .map(|m| m.bytes)
        };
        if up.offline {
            return Ok(stored().await);
        }
        let resp = match up
            .client
            .referrers(t.repository(), &digest.to_string(), None)
            .await
        {
            Ok(r) => r,
            // The upstream is down: the list read last time, when there was one (else the
            // tags, as for a registry without the API; what they hold is verified all the same).
            Err(e) if e.is_unreachable() => return Ok(stored().await),
            Err(e) => return Err(SourceError::Failed(e.to_string())),
        };
        let Some(resp) = resp else {
            return Ok(None);
        };
        let bytes = resp
            .bytes_limited(discovery::MAX_INDEX_BYTES)
            .await
            .map_err(|e| match e {
                UpstreamError::TooLarge { limit, .. } => SourceError::TooLarge { limit },
                e => SourceError::Failed(e.to_string()),
            })?;
        // Kept so an offline mirror finds the same list (it is content-addressed like the rest).
        let d = Digest::of(&bytes);
        let m = CheckedManifest {
            media_type: media::OCI_INDEX.to_string(),
            bytes: bytes.clone(),
        };
        p.keep_manifest(d, &m).await;
        p.tag_map.record(up.name(), t.repository(), &key, d);
        Ok(Some(bytes))
    }

    async fn tagged(&self, tag: &str, max: u64) -> Result<(Digest, Bytes), SourceError> {
        let (p, t) = (self.proxy, self.t);
        let up = t.upstream;
        let remembered = || {
            p.tag_map
                .lookup(up.name(), t.repository(), tag)
                .ok_or(SourceError::NotFound)
        };
        let digest = if up.offline {
            remembered()?
        } else {
            match p.upstream_digest_of_tag(t, tag).await {
                Ok(d) => d,
                // The upstream is down: the signature tag as read last time (its bytes are in
                // the store, checked by digest); one never read counts as absent, which can
                // only take signatures away, never add one.
                Err(e)
                    if e.upstream_error()
                        .is_some_and(UpstreamError::is_unreachable) =>
                {
                    remembered()?
                }
                Err(e) => return Err(source_error(e)),
            }
        };
        let m = p
            .checked_manifest(t, &digest, None, None)
            .await
            .map_err(source_error)?;
        if !up.offline {
            p.tag_map.record(up.name(), t.repository(), tag, digest);
        }
        Ok((digest, bounded(m.bytes, max)?))
    }

    async fn manifest(&self, digest: &Digest, max: u64) -> Result<Bytes, SourceError> {
        let m = self
            .proxy
            .checked_manifest(self.t, digest, None, None)
            .await
            .map_err(source_error)?;
        bounded(m.bytes, max)
    }

    async fn blob(&self, digest: &Digest, max: u64) -> Result<Bytes, SourceError> {
        let (p, t) = (self.proxy, self.t);
        if let Some(obj) = p.content.get(digest).await {
            if obj.size > max {
                return Err(SourceError::TooLarge { limit: max });
            }
            let mut buf = Vec::with_capacity(obj.size as usize);
            let mut stream = Box::pin(obj.stream(None));
            while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
                buf.extend_from_slice(&chunk.map_err(|e| SourceError::Failed(e.to_string()))?);
            }
            return Ok(Bytes::from(buf));
        }
        let up = t.upstream;
        if up.offline {
            return Err(SourceError::NotFound);
        }
        let resp = up
            .client
            .blob(t.repository(), &digest.to_string(), None, Method::GET)
            .await
            .map_err(|e| source_error(PullError::upstream(e, Fetching::Blob(*digest))))?;
        let bytes = resp.bytes_limited(max).await.map_err(|e| match e {
            UpstreamError::TooLarge { limit, .. } => SourceError::TooLarge { limit },
            e => SourceError::Failed(e.to_string()),
        })?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(SourceError::Failed(format!(
                "upstream {} served blob bytes for {digest} that hash to {actual}",
                up.name()
            )));
        }
        if let Err(e) = p
            .content
            .put(digest, &bytes, Some(bytes.len() as u64), None)
            .await
        {
            tracing::warn!(digest = %digest, error = %e, "could not write a signature blob to the store");
        }
        Ok(bytes)
    }
}

impl Proxy {
    /// The policy's digest verifiers, when it has them.
    fn digest_policy<'p>(t: &'p Target<'_>) -> Option<(&'p [String], usize)> {
        match &t.policy.signatures {
            Signatures::Digest { verifiers, need } => Some((verifiers.as_slice(), *need)),
            Signatures::NotaryV1 => None,
        }
    }

    /// The digest the upstream names for `tag` now (HEAD; a GET by tag when it names none).
    pub(crate) async fn upstream_digest_of_tag(
        &self,
        t: &Target<'_>,
        tag: &str,
    ) -> Result<Digest, PullError> {
        let up = t.upstream;
        let accept: Vec<String> = media::ALL_MANIFEST_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let fail = |e| PullError::upstream(e, Fetching::Manifest);
        let head = up
            .client
            .manifest(t.repository(), tag, &accept, Method::HEAD)
            .await
            .map_err(fail)?;
        if let Some(d) = head
            .header_str("docker-content-digest")
            .and_then(|d| Digest::parse(d).ok())
        {
            return Ok(d);
        }
        let resp = up
            .client
            .manifest(t.repository(), tag, &accept, Method::GET)
            .await
            .map_err(fail)?;
        let content_type = resp.header_str("content-type").map(str::to_string);
        let bytes = resp
            .bytes_limited(media::MAX_MANIFEST_BYTES)
            .await
            .map_err(fail)?;
        let d = Digest::of(&bytes);
        let m = CheckedManifest {
            media_type: media::manifest_media_type(content_type.as_deref(), &bytes),
            bytes,
        };
        self.keep_manifest(d, &m).await;
        Ok(d)
    }

    /// Under digest verifiers: the verified digest `tag` serves.
    pub(crate) async fn digest_signed_tag(
        &self,
        t: &Target<'_>,
        tag: &Tag,
    ) -> Result<SignedTag, PullError> {
        let up = t.upstream;
        let key = format!("{}:{tag}", t.gun);
        let now = self.trust().now();
        let fresh = self
            .signed_tag_cache
            .get(&key)
            .filter(|(_, at)| now - *at < self.refresh);
        // A fresh entry keeps the time it was resolved at: stamping it again on every hit would
        // keep a tag pulled more often than `refresh` from ever being asked of the upstream.
        let resolved_at = fresh.as_ref().map_or(now, |(_, at)| *at);
        let digest = match fresh {
            Some((d, _)) => d,
            None if up.offline => self
                .tag_history
                .last(up.name(), t.repository(), tag.as_str())
                .ok_or_else(|| {
                    self.refused_digest(
                        t,
                        Some(tag.as_str()),
                        DigestFailure::OfflineNoTag {
                            upstream: up.name().to_string(),
                            image: key.clone(),
                        },
                    )
                })?,
            None => match self.upstream_digest_of_tag(t, tag.as_str()).await {
                Ok(d) => d,
                // The upstream is gone: the tag's last verified digest, verified again below
                // (from the verdict cache or the stored signatures).
                Err(e)
                    if e.upstream_error()
                        .is_some_and(UpstreamError::is_unreachable) =>
                {
                    match self
                        .tag_history
                        .last(up.name(), t.repository(), tag.as_str())
                    {
                        Some(d) => {
                            self.upstream_gone(t, &e.to_string());
                            d
                        }
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            },
        };
        let verdict = self.verified_digest(t, &digest, Some(tag.as_str())).await?;
        match self
            .tag_history
            .observe_shared(up.name(), t.repository(), tag.as_str(), digest)
            .await
        {
            super::tag_history::Movement::Back { from } => {
                crate::metrics::metrics().signed_tag_moved_back(up.name());
                tracing::warn!(image = %key, from = %from, to = %digest,
                    "signed tag moved back to a digest it resolved to before (cosign signs digests, not tags: a registry can point a tag at any digest the key ever signed)");
            }
            super::tag_history::Movement::Forward { from } => {
                tracing::info!(image = %key, from = %from, to = %digest, "signed tag moved to a new signed digest");
            }
            _ => {}
        }
        self.signed_tag_cache.insert(key, (digest, resolved_at));
        Ok(SignedTag {
            digest,
            length: None,
            signer: verdict.signers(),
            basis: None,
            target: None,
        })
    }

    fn refused_digest(&self, t: &Target<'_>, tag: Option<&str>, f: DigestFailure) -> PullError {
        PullError::Refused {
            failure: TrustFailure::Digest(f),
            gun: t.gun.clone(),
            tag: tag.map(str::to_string),
            notary: None,
        }
    }

    /// The verdict on `digest` under `t`'s digest verifiers: cached, or found and decided now.
    pub(crate) async fn verified_digest(
        &self,
        t: &Target<'_>,
        digest: &Digest,
        tag: Option<&str>,
    ) -> Result<Arc<DigestVerdict>, PullError> {
        let Some((names, need)) = Self::digest_policy(t) else {
            return Err(self.refused_digest(
                t,
                tag,
                DigestFailure::UnknownVerifier("notary".into()),
            ));
        };
        let key = (
            format!("{}|{}", t.gun, t.policy.signatures.describe()),
            *digest,
        );
        if let Some(v) = self.verdicts.get(&key) {
            return Ok(v);
        }
        let _turn = self.verifications.lock(*digest).await;
        if let Some(v) = self.verdicts.get(&key) {
            return Ok(v);
        }
        let started = tokio::time::Instant::now();
        let (discovered, result) = self.decide_digest(t, digest, names, need).await;
        crate::metrics::metrics().verify_done(
            result.as_ref().err().map(DigestFailure::reason),
            started.elapsed(),
        );
        if let Some(d) = &discovered {
            self.allow_artifacts(t, d);
        }
        match result {
            Ok(v) => {
                let v = Arc::new(v);
                self.verdicts.insert(key, v.clone());
                self.remember_root(t, *digest);
                Ok(v)
            }
            Err(f) => Err(self.refused_digest(t, tag, f)),
        }
    }

    /// The length and media type of the manifest `digest` (read by digest through the proxy,
    /// so checked and kept): what a Notation payload's `targetArtifact` must state.
    pub(crate) async fn manifest_facts(
        &self,
        t: &Target<'_>,
        digest: &Digest,
    ) -> Result<(u64, String), SourceError> {
        let src = ProxySource { proxy: self, t };
        let bytes = src.manifest(digest, MAX_SIGNED_MANIFEST_BYTES).await?;
        Ok((bytes.len() as u64, media::manifest_media_type(None, &bytes)))
    }

    /// Discovery and decision for one digest (what `trustgate verify` prints, too).
    pub(crate) async fn decide_digest(
        &self,
        t: &Target<'_>,
        digest: &Digest,
        names: &[String],
        need: usize,
    ) -> (Option<Discovered>, Result<DigestVerdict, DigestFailure>) {
        let src = ProxySource { proxy: self, t };
        let discovered = match discovery::discover(&src, digest).await {
            Ok(d) => d,
            Err(source) => return (None, Err(DigestFailure::Discovery { source })),
        };
        let mut verifiers = Vec::with_capacity(names.len());
        for n in names {
            match self.digest_verifiers.get(n) {
                Some(v) => verifiers.push((n.as_str(), v.as_ref())),
                None => {
                    return (
                        Some(discovered),
                        Err(DigestFailure::UnknownVerifier(n.clone())),
                    )
                }
            }
        }
        let expected = Expected {
            registry_host: t.upstream.name(),
            repository: t.repository(),
            digest,
        };
        // Notation signs the manifest's size and media type as well as its digest: read the
        // manifest (by digest, through the proxy, so it is checked and kept) when a Notation
        // verifier will look at a signature.
        let manifest =
            if verifiers.iter().any(|(_, v)| v.is_notation()) && !discovered.found.is_empty() {
                match self.manifest_facts(t, digest).await {
                    Ok(facts) => Some(facts),
                    Err(e) => {
                        return (
                            Some(discovered),
                            Err(DigestFailure::Discovery {
                                source: crate::verify::discovery::DiscoveryError::Fetch {
                                    digest: *digest,
                                    what: "the signed manifest".into(),
                                    problem: e,
                                },
                            }),
                        )
                    }
                }
            } else {
                None
            };
        let facts = manifest.as_ref().map(|(size, media_type)| ManifestFacts {
            size: *size,
            media_type: media_type.as_str(),
        });
        let now: SystemTime = self.trust().now().into();
        let result = decide(
            &verifiers,
            need,
            &discovered.found,
            &discovered.ignored,
            &t.gun,
            &expected,
            facts,
            now,
        );
        (Some(discovered), result)
    }

    /// Signature artifacts read for a digest are trust data: servable by digest under enforce,
    /// with the config and layers of those that are signature manifests (bounded, signature
    /// layer types only); an index's entries or another manifest's references are not.
    fn allow_artifacts(&self, t: &Target<'_>, d: &Discovered) {
        for (digest, bytes) in &d.signature_manifests {
            self.closures.allow_manifest(&t.gun, *digest, bytes);
        }
        for a in &d.artifacts {
            self.closures.allow_trust_data(&t.gun, *a);
        }
    }

    fn remember_root(&self, t: &Target<'_>, digest: Digest) {
        let roots = self.signed_roots.get_with(t.gun.clone(), Default::default);
        let mut r = roots.lock();
        if !r.contains(&digest) {
            r.push(digest);
            if r.len() > MAX_ROOTS {
                r.remove(0);
            }
        }
    }

    /// Under digest verifiers, a digest outside the closure so far: the closure of every digest
    /// verified for the repository is walked once; then a digest may be signed itself (a pull
    /// by digest), or be a signature artifact (trust data). Blobs only pass through the closure.
    pub(crate) async fn require_in_digest_closure(
        &self,
        t: &Target<'_>,
        digest: &Digest,
        manifest: bool,
    ) -> Result<(), PullError> {
        let image = format!("{}@{digest}", t.gun);
        if self.closures.contains(&t.gun, digest) {
            audit::allow(image, Reason::InSignedClosure, None, Some(digest));
            return Ok(());
        }
        let roots: Vec<Digest> = self
            .signed_roots
            .get(&t.gun)
            .map(|r| r.lock().clone())
            .unwrap_or_default();
        let unwalked: Vec<(Digest, Option<u64>)> = roots
            .into_iter()
            .filter(|r| !self.closures.contains_expanded(&t.gun, r))
            .map(|r| (r, None))
            .collect();
        if !unwalked.is_empty() {
            self.walk_from(t, unwalked).await;
            if self.closures.contains(&t.gun, digest) {
                audit::allow(image, Reason::InSignedClosure, None, Some(digest));
                return Ok(());
            }
        }
        if !manifest {
            let e = PullError::OutsideClosure {
                gun: t.gun.clone(),
                digest: *digest,
            };
            audit::refused(&e, image, None, Some(digest));
            return Err(e);
        }
        match self.verified_digest(t, digest, None).await {
            Ok(v) => {
                audit::allow(image, Reason::Signed, Some(&v.signers()), Some(digest));
                Ok(())
            }
            Err(refusal) => {
                // Not signed itself: a signature artifact is still trust data.
                if let Ok(m) = self.checked_manifest(t, digest, None, None).await {
                    if discovery::is_signature_artifact(&m.bytes) {
                        self.closures.allow_manifest(&t.gun, *digest, &m.bytes);
                        return Ok(());
                    }
                }
                audit::refused(&refusal, image, None, Some(digest));
                Err(refusal)
            }
        }
    }

    /// Enforce under digest verifiers, a signature tag (`sha256-<hex>.sig`, the `sha256-<hex>`
    /// fallback index): trust data, served as the upstream has it when it is one; anything
    /// else under such a tag is content like any other, refused unless signed.
    pub(crate) async fn signature_tag_manifest(
        &self,
        t: &Target<'_>,
        tag: &Tag,
    ) -> Result<Option<(Digest, CheckedManifest)>, PullError> {
        let Some(subject) = signature_tag(tag.as_str()) else {
            return Ok(None);
        };
        let src = ProxySource { proxy: self, t };
        let (digest, bytes) = match src.tagged(tag.as_str(), media::MAX_MANIFEST_BYTES).await {
            Ok(x) => x,
            Err(SourceError::NotFound) => return Ok(None),
            Err(e) => {
                tracing::warn!(gun = %t.gun, tag = %tag, error = %e, "signature tag not readable");
                return Ok(None);
            }
        };
        let m = self.checked_manifest(t, &digest, None, None).await?;
        let fallback_index = !tag.as_str().ends_with(".sig")
            && discovery::parse_referrers(&bytes, &subject, "the fallback index").is_ok()
            && m.media_type == media::OCI_INDEX;
        if fallback_index {
            // Its entries are checked one by one when fetched (each must be an artifact).
            return Ok(Some((digest, m)));
        }
        if discovery::is_signature_artifact(&bytes) {
            self.closures.allow_manifest(&t.gun, digest, &bytes);
            return Ok(Some((digest, m)));
        }
        Ok(None)
    }
}
