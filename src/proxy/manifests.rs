//! Manifests, by tag and by digest, under each trust mode.
//!
//! - enforce: a tag is never asked of the upstream registry; the verifier resolves it to a
//!   signed digest (and length), and the manifest is fetched by that digest and checked against
//!   both before a byte is served. A digest is served only inside the signed closure.
//! - audit: the upstream resolves the tag, as with `off`; what enforce would have said is logged
//!   and counted.
//! - off: the upstream resolves the tag (revalidated with HEAD, which Docker Hub does not count
//!   against its pull rate limit); the bytes then come by digest, from the checked cache when
//!   present, so GET and HEAD announce the same checked facts.
//!
//! Whatever the mode, bytes fetched by digest are checked against that digest before they are
//! kept or served (OCI distribution-spec, "Pulling manifests": the digest is the content's
//! identity).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::audit::{self, Decision};
use super::negative::{Lookup, RegistryMiss};
use super::{CheckedManifest, Fetching, Missing, Proxy, PullError, Served, Target, Unacceptable};
use crate::config::TrustMode;
use crate::decision::{Reason, Verdict};
use crate::media;
use crate::metrics::{metrics, ContentKind, UpstreamErrorKind, UpstreamKind};
use crate::reference::{Digest, ManifestRef, Tag};
use crate::store::Turn;
use crate::upstream::UpstreamError;

const SCHEMA1_PREFIX: &str = "application/vnd.docker.distribution.manifest.v1";

impl Proxy {
    /// `GET|HEAD /v2/<name>/manifests/<reference>`.
    pub(crate) async fn manifest(
        &self,
        t: &Target<'_>,
        reference: &ManifestRef,
        headers: &HeaderMap,
    ) -> Result<Served, PullError> {
        match (t.policy.mode, reference) {
            (TrustMode::Enforce, ManifestRef::Tag(tag)) => {
                self.signed_manifest_by_tag(t, tag, headers).await
            }
            (TrustMode::Enforce, ManifestRef::Digest(d)) => {
                self.signed_manifest_by_digest(t, d).await
            }
            (TrustMode::Audit, ManifestRef::Tag(tag)) => {
                self.audited_manifest_by_tag(t, tag, headers).await
            }
            (TrustMode::Off, ManifestRef::Tag(tag)) => self.manifest_by_tag(t, tag, headers).await,
            (TrustMode::Audit | TrustMode::Off, ManifestRef::Digest(d)) => {
                let m = self.checked_manifest(t, d, None, None).await?;
                Ok(served(d.to_string(), m))
            }
        }
    }

    /// Enforce, by tag: the signed digest's bytes, or a refusal.
    async fn signed_manifest_by_tag(
        &self,
        t: &Target<'_>,
        tag: &Tag,
        headers: &HeaderMap,
    ) -> Result<Served, PullError> {
        let image = format!("{}:{tag}", t.gun);
        if let crate::policy::Signatures::Digest { .. } = t.policy.signatures {
            // Signature tags hold trust data, not images: served as they are when they are.
            if let Some((digest, m)) = self.signature_tag_manifest(t, tag).await? {
                tracing::debug!(image = %image, digest = %digest, "serving a signature artifact");
                return Ok(served(digest.to_string(), m));
            }
        }
        let signed = self
            .signed_tag(t, tag)
            .await
            .inspect_err(|e| audit::refused(e, image.clone(), None, None))?;
        let digest = signed.digest;
        let m = self
            .checked_manifest(t, &digest, signed.length, Some(tag.as_str()))
            .await
            .map_err(|e| match e {
                PullError::DigestMismatch { .. } => PullError::Tampered {
                    gun: t.gun.clone(),
                    tag: Some(tag.to_string()),
                    signed: digest,
                    what: e.to_string(),
                },
                e if not_found(&e) => PullError::SignedManifestUnavailable {
                    digest,
                    upstream: t.upstream.name().to_string(),
                    cause: Box::new(e),
                },
                e => e,
            })
            .inspect_err(|e| {
                audit::refused(e, image.clone(), Some(&signed.signer), Some(&digest))
            })?;
        if m.media_type.starts_with(SCHEMA1_PREFIX) {
            return Err(PullError::NotAcceptable {
                tag: tag.to_string(),
                media_type: m.media_type,
                why: Unacceptable::Schema1,
            });
        }
        if !acceptable(&m.media_type, &media::accepted_types(headers)) {
            return Err(PullError::NotAcceptable {
                tag: tag.to_string(),
                media_type: m.media_type,
                why: Unacceptable::NotAccepted,
            });
        }
        // Added to the closure build of the signed set that resolved the tag, and to no other.
        let at = signed
            .basis
            .as_ref()
            .map(|basis| self.closures.rebase(&t.gun, basis));
        self.closures
            .allow_manifest_at(&t.gun, at, digest, &m.bytes);
        audit::allow(image, Reason::Signed, Some(&signed.signer), Some(&digest));
        Ok(served(digest.to_string(), m))
    }

    /// Enforce, by digest: inside the signed closure, and the bytes are what the digest names.
    async fn signed_manifest_by_digest(
        &self,
        t: &Target<'_>,
        digest: &Digest,
    ) -> Result<Served, PullError> {
        let at = self.require_in_closure(t, digest, true).await?;
        let m = self
            .checked_manifest(t, digest, None, None)
            .await
            .map_err(|e| match e {
                // Other bytes under a digest of the signed closure are the same lie as under a
                // signed tag: a 403 whose reason clients print, not the pass-through 502.
                PullError::DigestMismatch { .. } => {
                    tracing::error!(gun = %t.gun, digest = %digest, error = %e,
                        "manifest bytes differ from their digest: possible tampering; refused");
                    PullError::Tampered {
                        gun: t.gun.clone(),
                        tag: None,
                        signed: *digest,
                        what: e.to_string(),
                    }
                }
                e => e,
            })
            .inspect_err(|e| {
                audit::refused(e, format!("{}@{digest}", t.gun), None, Some(digest))
            })?;
        self.closures
            .allow_manifest_at(&t.gun, at, *digest, &m.bytes);
        Ok(served(digest.to_string(), m))
    }

    /// Audit, by tag: served as with `off`; a tag whose upstream digest differs from the signed
    /// one is logged and counted.
    async fn audited_manifest_by_tag(
        &self,
        t: &Target<'_>,
        tag: &Tag,
        headers: &HeaderMap,
    ) -> Result<Served, PullError> {
        let signed = self.audit_tag(t, tag).await;
        let served = self.manifest_by_tag(t, tag, headers).await?;
        if let Some(signed) = signed {
            if served.digest != signed.to_string() {
                self.stats
                    .audit_would_refuse
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(gun = %t.gun, tag = %tag, signed = %signed, served = %served.digest,
                    "audit: the upstream's tag differs from the signed digest; enforce would serve the signed one");
            }
        }
        Ok(served)
    }

    /// Audit mode: what enforce would have said, logged and counted; nothing is refused.
    async fn audit_tag(&self, t: &Target<'_>, tag: &Tag) -> Option<Digest> {
        let image = format!("{}:{tag}", t.gun);
        match self.signed_tag(t, tag).await {
            Ok(s) => {
                audit::allow(image, Reason::Signed, Some(&s.signer), Some(&s.digest));
                Some(s.digest)
            }
            Err(e) => {
                self.stats
                    .audit_would_refuse
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(gun = %t.gun, tag = %tag, reason = %e, "audit: enforce would refuse this tag; serving it unverified");
                audit::record(Decision {
                    verdict: Verdict::AuditWouldDeny,
                    image,
                    reason: e.reason().unwrap_or(Reason::Unverifiable),
                    message: Some(e.to_string()),
                    role: None,
                    digest: None,
                });
                None
            }
        }
    }

    /// Unenforced resolution of a tag, through the registry's remembered 404s: a remembered
    /// miss is answered again without asking, and identical concurrent misses ask once
    /// (`negative.rs`).
    async fn manifest_by_tag(
        &self,
        t: &Target<'_>,
        tag: &Tag,
        headers: &HeaderMap,
    ) -> Result<Served, PullError> {
        if t.upstream.offline {
            return self.remembered_tag(t, tag, None).await;
        }
        let key = format!("{}/{}:{}", t.upstream.name(), t.repository(), tag.as_str());
        let _turn = match self.registry_misses.turn(&key).await {
            Lookup::Remembered(miss) => {
                return Err(PullError::upstream(miss.to_error(), Fetching::Manifest))
            }
            Lookup::Ask(turn) => turn,
        };
        let result = self.upstream_manifest_by_tag(t, tag, headers).await;
        match &result {
            Ok(_) => self.registry_misses.record(&key, None),
            Err(PullError::Upstream { source, .. }) => {
                if let Some(miss) = RegistryMiss::of(source) {
                    self.registry_misses.record(&key, Some(miss));
                }
            }
            Err(_) => {}
        }
        result
    }

    /// Unenforced resolution of a tag by the (online) upstream. Registries that announce no
    /// digest on HEAD, and schema 1 manifests (whose digest is not over their bytes), fall back
    /// to a GET by tag whose bytes are kept exactly as they came.
    async fn upstream_manifest_by_tag(
        &self,
        t: &Target<'_>,
        tag: &Tag,
        headers: &HeaderMap,
    ) -> Result<Served, PullError> {
        let up = t.upstream;
        let accept = media::accepted_types(headers);
        let repo = t.repository();
        // An upstream that answers HEAD with an error has its say through the GET below, whose
        // body carries its error code and message.
        let head = match up
            .client
            .manifest(repo, tag.as_str(), &accept, Method::HEAD)
            .await
        {
            Ok(h) => {
                self.upstream_back(t);
                Some(h)
            }
            Err(e) if e.is_unreachable() => return self.remembered_tag(t, tag, Some(e)).await,
            Err(e) if e.upstream_status().is_some() => None,
            Err(e) => return Err(PullError::upstream(e, Fetching::Manifest)),
        };
        let schema1 = head.as_ref().is_some_and(|h| {
            h.header_str("content-type")
                .is_some_and(|t| t.starts_with(SCHEMA1_PREFIX))
        });
        let announced = head
            .as_ref()
            .and_then(|h| h.header_str("docker-content-digest"))
            .and_then(|d| Digest::parse(d).ok());
        if let (Some(digest), false) = (announced, schema1) {
            match self.checked_manifest(t, &digest, None, None).await {
                Ok(m) => {
                    self.tag_map.record(up.name(), repo, tag.as_str(), digest);
                    return Ok(served(digest.to_string(), m));
                }
                // The upstream named a digest it cannot serve: ask for the tag's bytes instead.
                Err(e) if not_found(&e) => {
                    tracing::warn!(upstream = %up.name(), repository = %repo, tag = %tag,
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
            .map_err(|e| PullError::upstream(e, Fetching::Manifest))?;
        let content_type = resp.header_str("content-type").map(str::to_string);
        let announced = resp.header_str("docker-content-digest").map(str::to_string);
        let bytes = resp
            .bytes_limited(media::MAX_MANIFEST_BYTES)
            .await
            .map_err(|e| PullError::upstream(e, Fetching::Manifest))?;
        let media_type = media::manifest_media_type(content_type.as_deref(), &bytes);
        let computed = Digest::of(&bytes);
        // Schema 1 digests cover the JWS payload without signatures, so they never match the
        // bytes; for every other type the digest we announce is the hash of what we serve.
        let digest = match announced {
            Some(a) if media_type.starts_with(SCHEMA1_PREFIX) => a,
            Some(a) if a != computed.to_string() => {
                tracing::warn!(upstream = %up.name(), repository = %repo, tag = %tag,
                    announced = %a, computed = %computed,
                    "upstream announced a digest that does not match the manifest bytes; announcing the computed one");
                computed.to_string()
            }
            _ => computed.to_string(),
        };
        if digest == computed.to_string() {
            self.tag_map.record(up.name(), repo, tag.as_str(), computed);
            let m = CheckedManifest { media_type, bytes };
            self.keep_manifest(computed, &m).await;
            return Ok(served(digest, m));
        }
        Ok(Served {
            media_type,
            digest,
            bytes,
        })
    }

    /// The upstream is unreachable or the mirror offline: answer an unenforced tag with the
    /// digest it last resolved to, when that manifest is still held.
    async fn remembered_tag(
        &self,
        t: &Target<'_>,
        tag: &Tag,
        cause: Option<UpstreamError>,
    ) -> Result<Served, PullError> {
        let up = t.upstream;
        let Some(digest) = self.tag_map.lookup(up.name(), t.repository(), tag.as_str()) else {
            return Err(match cause {
                Some(e) => PullError::upstream(e, Fetching::Manifest),
                None => PullError::OfflineMiss {
                    upstream: up.name().to_string(),
                    missing: Missing::Tag {
                        repository: t.repository().to_string(),
                        tag: tag.to_string(),
                    },
                },
            });
        };
        if let Some(e) = &cause {
            self.upstream_gone(t, &e.to_string());
        }
        let m = self.checked_manifest(t, &digest, None, None).await?;
        Ok(served(digest.to_string(), m))
    }

    /// Logs once per repository that its upstream is gone and the cache is answering.
    pub(crate) fn upstream_gone(&self, t: &Target<'_>, why: &str) {
        if !self.stale.contains_key(&t.gun) {
            self.stale.insert(t.gun.clone(), ());
            tracing::warn!(repository = %t.gun, reason = %why, "upstream unreachable; serving this repository from the cache");
        }
    }

    fn upstream_back(&self, t: &Target<'_>) {
        if self.stale.remove(&t.gun).is_some() {
            tracing::info!(repository = %t.gun, "upstream reachable again");
        }
    }

    /// The manifest `digest`, checked against the digest (and the signed length when there is
    /// one): from the memory cache or the store, else fetched from the upstream by digest, once
    /// however many requests ask at the same time. Only checked bytes are kept.
    pub(crate) async fn checked_manifest(
        &self,
        t: &Target<'_>,
        digest: &Digest,
        signed_length: Option<u64>,
        tag: Option<&str>,
    ) -> Result<CheckedManifest, PullError> {
        if let Some(m) = self.held_manifest(digest).await {
            metrics().cache_hit(ContentKind::Manifest);
            return check_signed_length(m, signed_length, &t.gun, tag, digest);
        }
        // Single flight: the others wait for their turn and then find it held.
        let _turn = self.manifest_fetches.lock(*digest).await;
        if let Some(m) = self.held_manifest(digest).await {
            metrics().singleflight_joined(ContentKind::Manifest);
            metrics().cache_miss(ContentKind::Manifest);
            return check_signed_length(m, signed_length, &t.gun, tag, digest);
        }
        metrics().cache_miss(ContentKind::Manifest);
        if t.upstream.offline {
            return Err(PullError::OfflineMiss {
                upstream: t.upstream.name().to_string(),
                missing: Missing::Manifest(*digest),
            });
        }
        // Fleet single flight (`[storage.shared]`): one replica holds the digest's lease around
        // the fetch, the check and the store; the others wait for the object in the bucket and
        // read it from there (hashed again on the way into their local tier), or take the lease
        // over once it expired (holder killed). A manifest by tag has no digest to lease: only
        // the by-digest fetch below (which every tag resolution ends in) is coalesced fleet-wide.
        let _lease = match self.content.fetch_turn(digest).await {
            Turn::Stored => match self.held_manifest(digest).await {
                Some(m) => return check_signed_length(m, signed_length, &t.gun, tag, digest),
                // Gone again (evicted) or unreadable: fetch it here.
                None => None,
            },
            Turn::Mine(lease) => Some(lease),
            Turn::Alone => None,
        };
        let m = self.fetch_manifest(t, digest).await?;
        let m = check_signed_length(m, signed_length, &t.gun, tag, digest)?;
        // Stored (create-only, checked bytes only) before the lease is released.
        self.keep_manifest(*digest, &m).await;
        Ok(m)
    }

    /// Fetches the manifest `digest` from the upstream and checks its bytes against it. The
    /// upstream is asked with every manifest type in `Accept` so it never converts the bytes.
    async fn fetch_manifest(
        &self,
        t: &Target<'_>,
        digest: &Digest,
    ) -> Result<CheckedManifest, PullError> {
        let up = t.upstream;
        let accept: Vec<String> = media::ALL_MANIFEST_TYPES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let fail = |e| PullError::upstream(e, Fetching::Manifest);
        let resp = up
            .client
            .manifest(t.repository(), &digest.to_string(), &accept, Method::GET)
            .await
            .map_err(fail)?;
        let content_type = resp.header_str("content-type").map(str::to_string);
        let bytes = resp
            .bytes_limited(media::MAX_MANIFEST_BYTES)
            .await
            .map_err(fail)?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            metrics().upstream_error(
                up.name(),
                UpstreamKind::Registry,
                UpstreamErrorKind::DigestMismatch,
            );
            tracing::error!(upstream = %up.name(), repository = %t.repository(),
                expected = %digest, actual = %actual,
                "upstream served manifest bytes that do not match the requested digest: possible tampering; refused");
            return Err(PullError::DigestMismatch {
                upstream: up.name().to_string(),
                digest: *digest,
                actual,
            });
        }
        Ok(CheckedManifest {
            media_type: media::manifest_media_type(content_type.as_deref(), &bytes),
            bytes,
        })
    }

    /// A manifest already checked: from memory, else from the store (its file was checked
    /// against the digest before it was renamed into place).
    async fn held_manifest(&self, digest: &Digest) -> Option<CheckedManifest> {
        if let Some(m) = self.manifests.get(digest) {
            return Some((*m).clone());
        }
        let obj = self.content.get(digest).await?;
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
        let m = CheckedManifest { media_type, bytes };
        self.manifests.insert(*digest, Arc::new(m.clone()));
        Some(m)
    }

    /// Keeps manifest bytes that were checked against `digest`: in memory and in the store.
    pub(crate) async fn keep_manifest(&self, digest: Digest, m: &CheckedManifest) {
        self.manifests.insert(digest, Arc::new(m.clone()));
        if let Err(e) = self
            .content
            .put(
                &digest,
                &m.bytes,
                Some(m.bytes.len() as u64),
                Some(&m.media_type),
            )
            .await
        {
            tracing::warn!(digest = %digest, error = %e, "could not write a verified manifest to the store");
        }
    }
}

fn served(digest: String, m: CheckedManifest) -> Served {
    Served {
        media_type: m.media_type,
        digest,
        bytes: m.bytes,
    }
}

/// "Not found" as the client would be told: the upstream's 404, or an offline miss.
pub(crate) fn not_found(e: &PullError) -> bool {
    match e {
        PullError::Upstream { source, .. } => source.http_status_for_client() == 404,
        PullError::OfflineMiss { .. } => true,
        _ => false,
    }
}

/// The signed length, when there is one, must be the length of the bytes.
fn check_signed_length(
    m: CheckedManifest,
    signed_length: Option<u64>,
    gun: &str,
    tag: Option<&str>,
    digest: &Digest,
) -> Result<CheckedManifest, PullError> {
    match signed_length {
        Some(len) if m.bytes.len() as u64 != len => {
            tracing::error!(gun, tag, digest = %digest, signed_length = len, actual = m.bytes.len(),
                "manifest length differs from the signed length: possible tampering; refused");
            Err(PullError::Tampered {
                gun: gun.to_string(),
                tag: tag.map(str::to_string),
                signed: *digest,
                what: format!("{} bytes where {len} were signed", m.bytes.len()),
            })
        }
        _ => Ok(m),
    }
}

/// Is `media_type` among what the client accepts? No `Accept` at all means anything goes.
fn acceptable(media_type: &str, accept: &[String]) -> bool {
    accept.is_empty()
        || accept
            .iter()
            .any(|a| a == "*/*" || a == "application/*" || a == media_type)
}

#[cfg(test)]
mod tests {
    use super::*;

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
