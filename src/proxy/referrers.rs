//! `GET /v2/<name>/referrers/<digest>[?artifactType=]` through trustgate, so OCI 1.1 clients
//! (`cosign verify`, `notation verify`, `oras discover`) find signatures through it even when
//! the upstream is an old registry.
//!
//! The list comes from the upstream's referrers API when it has one; otherwise it is built from
//! the `sha256-<hex>` fallback index (an OCI image index of the same descriptors), with each
//! entry's `artifactType` filled in from its manifest when the index left it empty or gave the
//! empty type (kyverno/kyverno#16664: cosign 3 writes fallback entries that way); with neither,
//! an empty index (the spec: a registry that supports the API never answers 404 for it).
//!
//! The list itself is the registry's word and signs nothing: the artifacts it names are checked
//! when fetched (a signature artifact is trust data; anything else is content under the
//! repository's policy).

use bytes::Bytes;

use super::signed_digests::ProxySource;
use super::{Fetching, Proxy, PullError, ReferrerList, Target};
use crate::reference::Digest;
use crate::upstream::UpstreamError;
use crate::verify::discovery::{self, SignatureSource, SourceError};

/// The empty type cosign 3 puts in fallback entries.
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";

impl Proxy {
    pub(crate) async fn referrers(
        &self,
        t: &Target<'_>,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<ReferrerList, PullError> {
        let src = ProxySource { proxy: self, t };
        let (entries, from_api) = match src.referrers(digest).await {
            Ok(Some(bytes)) => (entries_of(&bytes, digest, &t.gun)?, true),
            Ok(None) => {
                let tag = discovery::fallback_tag(digest);
                match src.tagged(&tag, discovery::MAX_INDEX_BYTES).await {
                    Ok((_, bytes)) => (entries_of(&bytes, digest, &t.gun)?, false),
                    Err(SourceError::NotFound) => (Vec::new(), false),
                    Err(e) => return Err(source_failure(t, e)),
                }
            }
            Err(e) => return Err(source_failure(t, e)),
        };
        let mut out = Vec::with_capacity(entries.len());
        for mut e in entries {
            let listed = e
                .get("artifactType")
                .and_then(|v| v.as_str())
                .filter(|s| !s.is_empty() && *s != EMPTY_TYPE)
                .map(str::to_string);
            let kind = match listed {
                Some(k) => Some(k),
                None if !from_api => self.artifact_type_of(&src, &e).await,
                None => None,
            };
            if let Some(k) = &kind {
                e["artifactType"] = serde_json::Value::String(k.clone());
            }
            if artifact_type.is_none_or(|want| kind.as_deref() == Some(want)) {
                out.push(e);
            }
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": crate::media::OCI_INDEX,
            "manifests": out,
        });
        let bytes = serde_json::to_vec(&index).map_err(|e| {
            PullError::upstream(
                UpstreamError::Protocol {
                    upstream: t.upstream.name().to_string(),
                    reason: format!("referrers list: {e}"),
                },
                Fetching::Manifest,
            )
        })?;
        Ok(ReferrerList {
            bytes: Bytes::from(bytes),
            filtered: artifact_type.is_some(),
        })
    }

    /// What an entry of a fallback index is, from its manifest: `artifactType`, else the config's
    /// media type (the older convention), unless that is the empty type.
    async fn artifact_type_of(
        &self,
        src: &ProxySource<'_>,
        entry: &serde_json::Value,
    ) -> Option<String> {
        let d = Digest::parse(entry.get("digest")?.as_str()?).ok()?;
        let bytes = src
            .manifest(&d, discovery::MAX_SIGNATURE_MANIFEST_BYTES)
            .await
            .ok()?;
        let m: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        let at = m.get("artifactType").and_then(|v| v.as_str());
        let config = m
            .get("config")
            .and_then(|c| c.get("mediaType"))
            .and_then(|v| v.as_str());
        at.or(config)
            .filter(|s| !s.is_empty() && *s != EMPTY_TYPE)
            .map(str::to_string)
    }
}

/// The entries of a referrers list or fallback index, bounded like discovery's.
fn entries_of(
    bytes: &[u8],
    digest: &Digest,
    gun: &str,
) -> Result<Vec<serde_json::Value>, PullError> {
    // The same bounds and parse errors as discovery (count, shape).
    let checked = discovery::parse_referrers(bytes, digest, "the referrers list");
    let refused = |problem: String| PullError::Refused {
        failure: crate::enforce::TrustFailure::Digest(
            crate::verify::digest::DigestFailure::Discovery {
                source: crate::verify::discovery::DiscoveryError::Malformed {
                    digest: *digest,
                    what: "the referrers list".into(),
                    problem,
                },
            },
        ),
        gun: gun.to_string(),
        tag: None,
        notary: None,
    };
    if let Err(e) = checked {
        return Err(refused(e.to_string()));
    }
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| refused(e.to_string()))?;
    Ok(v.get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default())
}

fn source_failure(t: &Target<'_>, e: SourceError) -> PullError {
    PullError::upstream(
        UpstreamError::Protocol {
            upstream: t.upstream.name().to_string(),
            reason: format!("reading the referrers: {e}"),
        },
        Fetching::Manifest,
    )
}
