//! Where the cosign signatures of a digest live, and reading them: pure parsing over bytes, the
//! fetching behind the small [`SignatureSource`] trait (the upstream registry while connected,
//! the store for an offline mirror; `crate::proxy` implements it).
//!
//! Three places, all tried (a publisher may have signed with cosign 2 and cosign 3):
//! - the OCI 1.1 referrers API, `GET /v2/<name>/referrers/<digest>`: an image index of the
//!   manifests whose `subject` is the digest (cosign 3 stores Sigstore bundles there);
//! - when the registry has no referrers API, the fallback index under the tag `sha256-<hex>`
//!   (OCI distribution-spec 1.1, "Referrers Tag Schema"), which clients keep up to date;
//! - the legacy tag `sha256-<hex>.sig` (cosign ≤ 2): one manifest whose layers are
//!   simple-signing payloads, the signature and certificates in each layer's annotations
//!   (sigstore/cosign `specs/SIGNATURE_SPEC.md`).
//!
//! Artifacts are selected by their LAYERS' media types, not by the index entry's `artifactType`
//! alone: cosign 3's fallback entries can carry `application/vnd.oci.empty.v1+json` there, and
//! kyverno missed signatures that way (kyverno/kyverno#16664). A referrer whose manifest names
//! another `subject` than the digest asked about is ignored (and said so): the index is the
//! registry's word, the subject is the artifact's.
//!
//! Everything read is bounded: the index (bytes and entries), each signature manifest (bytes and
//! layers) and each signature blob; a registry that lists more is refused with a message naming
//! the limit, never read to the end.

use std::fmt;

use bytes::Bytes;
use serde::Deserialize;

use crate::reference::Digest;
use crate::verify::cosign::SignatureEvidence;
use crate::verify::notation::envelope::EnvelopeFormat;
use crate::verify::notation::NotationEvidence;

/// The simple-signing payload layer of a `.sig` manifest.
pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Sigstore bundles: `application/vnd.dev.sigstore.bundle.v0.3+json` (v0.3) and
/// `application/vnd.dev.sigstore.bundle+json;version=0.1|0.2` (older).
pub const BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
pub const ANNOTATION_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
pub const ANNOTATION_CERTIFICATE: &str = "dev.sigstore.cosign/certificate";
pub const ANNOTATION_CHAIN: &str = "dev.sigstore.cosign/chain";
pub const ANNOTATION_BUNDLE: &str = "dev.sigstore.cosign/bundle";
pub const ANNOTATION_TIMESTAMP: &str = "dev.sigstore.cosign/rfc3161timestamp";

/// The largest referrers list (or fallback index) read, in bytes.
pub const MAX_INDEX_BYTES: u64 = 1024 * 1024;
/// The most entries of a referrers list considered before refusing.
pub const MAX_REFERRERS: usize = 128;
/// The largest signature manifest read, in bytes.
pub const MAX_SIGNATURE_MANIFEST_BYTES: u64 = 256 * 1024;
/// The most signature layers read from one manifest.
pub const MAX_LAYERS: usize = 64;
/// The largest signature blob (payload or bundle) read, in bytes. Bundles with a certificate
/// chain and a log entry are a few KiB.
pub const MAX_SIGNATURE_BLOB_BYTES: u64 = 1024 * 1024;
/// The most signatures of one digest collected before refusing.
pub const MAX_SIGNATURES: usize = 256;

/// A failure of a [`SignatureSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// The registry (or the store) has no such thing.
    NotFound,
    /// Larger than the limit it was asked with.
    TooLarge { limit: u64 },
    /// Anything else (unreachable, bytes not matching their digest): the message says what.
    Failed(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("not found"),
            Self::TooLarge { limit } => write!(f, "larger than the limit of {limit} bytes"),
            Self::Failed(m) => f.write_str(m),
        }
    }
}

/// Where discovery reads from. Each call returns bytes already checked against the digest they
/// were asked by (the tag's bytes against the digest returned).
#[allow(async_fn_in_trait)]
pub trait SignatureSource {
    /// The referrers list of `digest`, or `None` when the registry has no referrers API (it
    /// answered 404 or another sign of not implementing it).
    async fn referrers(&self, digest: &Digest) -> Result<Option<Bytes>, SourceError>;
    /// A manifest by tag (the `.sig` and fallback tags): its digest and bytes.
    async fn tagged(&self, tag: &str, max: u64) -> Result<(Digest, Bytes), SourceError>;
    /// A manifest by digest.
    async fn manifest(&self, digest: &Digest, max: u64) -> Result<Bytes, SourceError>;
    /// A blob by digest, into memory.
    async fn blob(&self, digest: &Digest, max: u64) -> Result<Bytes, SourceError>;
}

/// Where one signature was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A manifest listed by the referrers API.
    Referrer { manifest: Digest },
    /// A manifest listed by the `sha256-<hex>` fallback index.
    FallbackTag { manifest: Digest },
    /// Layer `layer` of the `sha256-<hex>.sig` manifest.
    SigTag { manifest: Digest, layer: usize },
    /// No signature: a Notation verifier at level `skip` accepted without one.
    NotNeeded,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Referrer { manifest } => write!(f, "referrer {manifest}"),
            Self::FallbackTag { manifest } => write!(f, "fallback-tag referrer {manifest}"),
            Self::SigTag { manifest, layer } => write!(f, ".sig tag {manifest} layer {layer}"),
            Self::NotNeeded => f.write_str("no signature needed (level skip)"),
        }
    }
}

/// A signature of either kind, as found.
#[derive(Debug, Clone)]
pub enum Evidence {
    Cosign(SignatureEvidence),
    /// A Notation envelope: the layer of a manifest whose artifact type is
    /// `application/vnd.cncf.notary.signature`.
    Notation(NotationEvidence),
}

impl Evidence {
    /// What kind of signature, for `trustgate verify`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cosign(SignatureEvidence::Bundle(_)) => "bundle",
            Self::Cosign(SignatureEvidence::SimpleSigning { .. }) => "simple-signing",
            Self::Notation(n) => match n.format {
                EnvelopeFormat::Jws => "notation-jws",
                EnvelopeFormat::Cose => "notation-cose",
            },
        }
    }
}

/// One signature found for a digest.
#[derive(Debug, Clone)]
pub struct Found {
    pub evidence: Evidence,
    pub location: Location,
}

/// What discovery found, and what it looked at and set aside (said in refusals and in
/// `trustgate verify`).
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    pub found: Vec<Found>,
    pub ignored: Vec<String>,
    /// The digests of every signature artifact read (manifests, indexes, blobs): trust data
    /// that may be served under enforce and that `trustgate seed` keeps.
    pub artifacts: Vec<Digest>,
    /// The signature manifests read that are signature artifacts ([`is_signature_artifact`]):
    /// their config and layers may be served too.
    pub signature_manifests: Vec<(Digest, Bytes)>,
    /// Whether the upstream answered the referrers API.
    pub referrers_api: bool,
}

/// Why the signatures of a digest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("reading the signatures of {digest}: {what}: {problem}")]
    Fetch {
        digest: Digest,
        what: String,
        problem: SourceError,
    },
    #[error(
        "{what} of {digest} lists more than {limit} {items}; refused (a signature list is bounded)"
    )]
    TooMany {
        digest: Digest,
        what: String,
        items: &'static str,
        limit: usize,
    },
    #[error("{what} of {digest} is not usable: {problem}")]
    Malformed {
        digest: Digest,
        what: String,
        problem: String,
    },
}

impl DiscoveryError {
    /// A network or store failure (as opposed to a registry serving something refused).
    pub fn is_fetch(&self) -> bool {
        matches!(self, Self::Fetch { problem, .. } if !matches!(problem, SourceError::TooLarge { .. }))
    }
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct IndexShape {
    #[serde(default)]
    manifests: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct ManifestShape {
    #[serde(default)]
    layers: Vec<serde_json::Value>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

/// One entry of a referrers list or fallback index, as the registry described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub size: Option<u64>,
}

/// The entries of a referrers list or fallback index (pure). Entries that are not manifests
/// with a usable digest are left out; more than [`MAX_REFERRERS`] is refused.
pub fn parse_referrers(
    bytes: &[u8],
    subject: &Digest,
    what: &str,
) -> Result<Vec<Referrer>, DiscoveryError> {
    let malformed = |problem: String| DiscoveryError::Malformed {
        digest: *subject,
        what: what.to_string(),
        problem,
    };
    let index: IndexShape = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("not an OCI image index: {e}")))?;
    if index.manifests.len() > MAX_REFERRERS {
        return Err(DiscoveryError::TooMany {
            digest: *subject,
            what: what.to_string(),
            items: "entries",
            limit: MAX_REFERRERS,
        });
    }
    let mut out = Vec::new();
    for entry in index.manifests {
        let Ok(d) = serde_json::from_value::<Descriptor>(entry) else {
            continue;
        };
        let Ok(digest) = Digest::parse(&d.digest) else {
            continue;
        };
        if out.iter().any(|r: &Referrer| r.digest == digest) {
            continue;
        }
        out.push(Referrer {
            digest,
            media_type: d.media_type,
            artifact_type: d.artifact_type,
            size: d.size,
        });
    }
    Ok(out)
}

/// A signature layer of a manifest: what to fetch and how to wrap it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLayer {
    pub index: usize,
    pub digest: Digest,
    pub size: Option<u64>,
    pub kind: LayerKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerKind {
    /// A Sigstore bundle (JSON).
    Bundle,
    /// A Notation signature envelope (`application/jose+json` or `application/cose`).
    Notation(EnvelopeFormat),
    /// A simple-signing payload with its signature annotations.
    SimpleSigning {
        signature: String,
        certificate: Option<String>,
        chain: Option<String>,
        rekor_bundle: Option<String>,
        rfc3161_timestamp: Option<String>,
    },
}

/// The signature layers of a signature manifest (pure), selected by each layer's media type,
/// and the manifest's `subject` digest when it has one. A simple-signing layer without its
/// signature annotation is not a signature. Layers of other types are skipped.
pub fn signature_layers(
    bytes: &[u8],
    of: &Digest,
    what: &str,
) -> Result<(Vec<SignatureLayer>, Option<Digest>), DiscoveryError> {
    let malformed = |problem: String| DiscoveryError::Malformed {
        digest: *of,
        what: what.to_string(),
        problem,
    };
    let m: ManifestShape = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("not an image manifest: {e}")))?;
    if m.layers.len() > MAX_LAYERS {
        return Err(DiscoveryError::TooMany {
            digest: *of,
            what: what.to_string(),
            items: "layers",
            limit: MAX_LAYERS,
        });
    }
    let subject = match &m.subject {
        Some(s) => Some(
            Digest::parse(&s.digest)
                .map_err(|e| malformed(format!("its subject digest is unusable: {e}")))?,
        ),
        None => None,
    };
    let mut out = Vec::new();
    for (index, layer) in m.layers.into_iter().enumerate() {
        let Ok(d) = serde_json::from_value::<Descriptor>(layer) else {
            continue;
        };
        let Ok(digest) = Digest::parse(&d.digest) else {
            continue;
        };
        let media_type = d.media_type.split(';').next().unwrap_or("").trim();
        let kind = if media_type.starts_with(BUNDLE_PREFIX) {
            LayerKind::Bundle
        } else if let Some(format) = EnvelopeFormat::from_media_type(media_type) {
            LayerKind::Notation(format)
        } else if media_type == SIMPLESIGNING {
            let Some(signature) = d.annotations.get(ANNOTATION_SIGNATURE) else {
                continue;
            };
            let a = |k: &str| d.annotations.get(k).filter(|v| !v.is_empty()).cloned();
            LayerKind::SimpleSigning {
                signature: signature.clone(),
                certificate: a(ANNOTATION_CERTIFICATE),
                chain: a(ANNOTATION_CHAIN),
                rekor_bundle: a(ANNOTATION_BUNDLE),
                rfc3161_timestamp: a(ANNOTATION_TIMESTAMP),
            }
        } else {
            continue;
        };
        out.push(SignatureLayer {
            index,
            digest,
            size: d.size,
            kind,
        });
    }
    Ok((out, subject))
}

/// The fallback index tag of a digest: `sha256-<hex>`.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("sha256-{}", digest.hex())
}

/// The legacy signature tag of a digest: `sha256-<hex>.sig`.
pub fn sig_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// Finds and reads every signature of `digest` in `src`.
pub async fn discover(
    src: &impl SignatureSource,
    digest: &Digest,
) -> Result<Discovered, DiscoveryError> {
    let mut out = Discovered::default();
    let fetch = |what: String| {
        move |problem: SourceError| DiscoveryError::Fetch {
            digest: *digest,
            what,
            problem,
        }
    };
    // 1. The referrers API, else the fallback index.
    let listed = match src
        .referrers(digest)
        .await
        .map_err(fetch("the referrers list".into()))?
    {
        Some(bytes) => {
            out.referrers_api = true;
            Some((bytes, "the referrers list".to_string(), true))
        }
        None => match src.tagged(&fallback_tag(digest), MAX_INDEX_BYTES).await {
            Ok((index_digest, bytes)) => {
                out.artifacts.push(index_digest);
                Some((
                    bytes,
                    format!("the fallback index {}", fallback_tag(digest)),
                    false,
                ))
            }
            Err(SourceError::NotFound) => None,
            Err(e) => {
                return Err(fetch(format!(
                    "the fallback index {}",
                    fallback_tag(digest)
                ))(e))
            }
        },
    };
    if let Some((bytes, what, api)) = listed {
        for r in parse_referrers(&bytes, digest, &what)? {
            let location = if api {
                Location::Referrer { manifest: r.digest }
            } else {
                Location::FallbackTag { manifest: r.digest }
            };
            let manifest = match src.manifest(&r.digest, MAX_SIGNATURE_MANIFEST_BYTES).await {
                Ok(m) => m,
                Err(e) => {
                    out.ignored.push(format!("{location}: {e}"));
                    continue;
                }
            };
            out.artifacts.push(r.digest);
            if is_signature_artifact(&manifest) {
                out.signature_manifests.push((r.digest, manifest.clone()));
            }
            let what = location.to_string();
            let (layers, subject) = match signature_layers(&manifest, digest, &what) {
                Ok(x) => x,
                Err(e) => {
                    out.ignored.push(e.to_string());
                    continue;
                }
            };
            if subject != Some(*digest) {
                out.ignored.push(match subject {
                    Some(s) => format!("{location} names subject {s}, not {digest}"),
                    None => format!("{location} names no subject"),
                });
                continue;
            }
            if layers.is_empty() {
                out.ignored.push(format!(
                    "{location} ({}) holds no signature layer",
                    r.artifact_type.as_deref().unwrap_or("no artifactType")
                ));
                continue;
            }
            collect(src, digest, layers, &location, &mut out).await?;
        }
    }
    // 2. The legacy `.sig` tag.
    match src
        .tagged(&sig_tag(digest), MAX_SIGNATURE_MANIFEST_BYTES)
        .await
    {
        Ok((sig_digest, manifest)) => {
            out.artifacts.push(sig_digest);
            if is_signature_artifact(&manifest) {
                out.signature_manifests.push((sig_digest, manifest.clone()));
            }
            let what = format!("the signature tag {}", sig_tag(digest));
            let (layers, _) = signature_layers(&manifest, digest, &what)?;
            if layers.is_empty() {
                out.ignored
                    .push(format!("{what} ({sig_digest}) holds no signature layer"));
            }
            for l in layers {
                let location = Location::SigTag {
                    manifest: sig_digest,
                    layer: l.index,
                };
                collect(src, digest, vec![l], &location, &mut out).await?;
            }
        }
        Err(SourceError::NotFound) => {}
        Err(e) => return Err(fetch(format!("the signature tag {}", sig_tag(digest)))(e)),
    }
    Ok(out)
}

/// Reads the blobs of `layers` into evidence.
async fn collect(
    src: &impl SignatureSource,
    digest: &Digest,
    layers: Vec<SignatureLayer>,
    location: &Location,
    out: &mut Discovered,
) -> Result<(), DiscoveryError> {
    for l in layers {
        if out.found.len() >= MAX_SIGNATURES {
            return Err(DiscoveryError::TooMany {
                digest: *digest,
                what: "the signatures".into(),
                items: "signatures",
                limit: MAX_SIGNATURES,
            });
        }
        if l.size.is_some_and(|s| s > MAX_SIGNATURE_BLOB_BYTES) {
            out.ignored.push(format!(
                "{location}: layer {} is larger than {MAX_SIGNATURE_BLOB_BYTES} bytes",
                l.digest
            ));
            continue;
        }
        let bytes = match src.blob(&l.digest, MAX_SIGNATURE_BLOB_BYTES).await {
            Ok(b) => b,
            Err(e) => {
                out.ignored
                    .push(format!("{location}: layer {}: {e}", l.digest));
                continue;
            }
        };
        out.artifacts.push(l.digest);
        let evidence = match l.kind {
            LayerKind::Bundle => Evidence::Cosign(SignatureEvidence::Bundle(bytes)),
            LayerKind::Notation(format) => Evidence::Notation(NotationEvidence {
                format,
                envelope: bytes,
            }),
            LayerKind::SimpleSigning {
                signature,
                certificate,
                chain,
                rekor_bundle,
                rfc3161_timestamp,
            } => Evidence::Cosign(SignatureEvidence::SimpleSigning {
                payload: bytes,
                signature,
                certificate,
                chain,
                rekor_bundle,
                rfc3161_timestamp,
            }),
        };
        out.found.push(Found {
            evidence,
            location: location.clone(),
        });
    }
    Ok(())
}

/// Is this manifest a signature artifact (trust data that may be served under enforce)? Every
/// layer must be a signature type and small, the config small: a manifest that carries anything
/// else under a signature tag is content, and is refused like any unsigned content.
pub fn is_signature_artifact(bytes: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Shape {
        #[serde(default)]
        config: Option<Descriptor>,
        #[serde(default)]
        layers: Vec<Descriptor>,
        #[serde(default)]
        manifests: Option<Vec<serde_json::Value>>,
    }
    let Ok(s) = serde_json::from_slice::<Shape>(bytes) else {
        return false;
    };
    if s.manifests.is_some() || s.layers.is_empty() || s.layers.len() > MAX_LAYERS {
        return false;
    }
    let small = |d: &Descriptor| d.size.is_some_and(|n| n <= MAX_SIGNATURE_BLOB_BYTES);
    let config_ok = s.config.as_ref().is_none_or(small);
    config_ok
        && s.layers.iter().all(|l| {
            let t = l.media_type.split(';').next().unwrap_or("").trim();
            small(l) && is_signature_layer_type(t)
        })
}

/// Layer media types of signature artifacts (cosign simple signing, Sigstore bundles, Notation
/// JWS and COSE envelopes).
pub fn is_signature_layer_type(t: &str) -> bool {
    t == SIMPLESIGNING
        || t.starts_with(BUNDLE_PREFIX)
        || EnvelopeFormat::from_media_type(t).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    /// An in-memory registry: referrers lists, tags and content by digest.
    #[derive(Default)]
    struct Mem {
        referrers: Option<HashMap<Digest, Bytes>>,
        tags: HashMap<String, Bytes>,
        content: HashMap<Digest, Bytes>,
    }

    impl Mem {
        fn put(&mut self, bytes: &[u8]) -> Digest {
            let dg = Digest::of(bytes);
            self.content.insert(dg, Bytes::copy_from_slice(bytes));
            dg
        }
    }

    impl SignatureSource for Mem {
        async fn referrers(&self, digest: &Digest) -> Result<Option<Bytes>, SourceError> {
            Ok(self.referrers.as_ref().map(|r| {
                r.get(digest)
                    .cloned()
                    .unwrap_or_else(|| Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#))
            }))
        }
        async fn tagged(&self, tag: &str, max: u64) -> Result<(Digest, Bytes), SourceError> {
            let b = self.tags.get(tag).ok_or(SourceError::NotFound)?;
            if b.len() as u64 > max {
                return Err(SourceError::TooLarge { limit: max });
            }
            Ok((Digest::of(b), b.clone()))
        }
        async fn manifest(&self, digest: &Digest, max: u64) -> Result<Bytes, SourceError> {
            self.blob(digest, max).await
        }
        async fn blob(&self, digest: &Digest, max: u64) -> Result<Bytes, SourceError> {
            let b = self.content.get(digest).ok_or(SourceError::NotFound)?;
            if b.len() as u64 > max {
                return Err(SourceError::TooLarge { limit: max });
            }
            Ok(b.clone())
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn bundle_manifest(subject: &Digest, layer: &Digest, layer_type: &str) -> String {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": d('e').to_string(), "size": 2},
            "layers": [{"mediaType": layer_type, "digest": layer.to_string(), "size": 10}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject.to_string(), "size": 100},
        })
        .to_string()
    }

    fn index(entries: &[(Digest, &str)]) -> String {
        let m: Vec<_> = entries
            .iter()
            .map(|(dg, at)| serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": dg.to_string(), "size": 1, "artifactType": at}))
            .collect();
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": m}).to_string()
    }

    #[test]
    fn bundles_come_from_the_referrers_api() {
        let image = d('a');
        let mut mem = Mem::default();
        let bundle = mem.put(b"{\"bundle\":1}");
        let m = mem.put(
            bundle_manifest(
                &image,
                &bundle,
                "application/vnd.dev.sigstore.bundle.v0.3+json",
            )
            .as_bytes(),
        );
        mem.referrers = Some(HashMap::from([(
            image,
            Bytes::from(index(&[(
                m,
                "application/vnd.dev.sigstore.bundle.v0.3+json",
            )])),
        )]));
        let got = block_on(discover(&mem, &image)).unwrap();
        assert!(got.referrers_api);
        assert_eq!(got.found.len(), 1);
        assert!(
            matches!(&got.found[0].evidence, Evidence::Cosign(SignatureEvidence::Bundle(b)) if &b[..] == b"{\"bundle\":1}")
        );
        assert_eq!(got.found[0].location, Location::Referrer { manifest: m });
        assert!(got.artifacts.contains(&m) && got.artifacts.contains(&bundle));
        assert_eq!(got.signature_manifests.len(), 1);
    }

    /// kyverno#16664: the fallback entry's artifactType is the empty type; the layer decides.
    #[test]
    fn the_fallback_index_is_read_by_layer_type_not_artifact_type() {
        let image = d('a');
        let mut mem = Mem::default();
        let bundle = mem.put(b"{\"bundle\":2}");
        let m = mem.put(
            bundle_manifest(
                &image,
                &bundle,
                "application/vnd.dev.sigstore.bundle.v0.3+json",
            )
            .as_bytes(),
        );
        mem.tags.insert(
            fallback_tag(&image),
            Bytes::from(index(&[(m, "application/vnd.oci.empty.v1+json")])),
        );
        let got = block_on(discover(&mem, &image)).unwrap();
        assert!(!got.referrers_api);
        assert_eq!(got.found.len(), 1);
        assert_eq!(got.found[0].location, Location::FallbackTag { manifest: m });
    }

    #[test]
    fn a_referrer_naming_another_subject_is_ignored_and_said_so() {
        let image = d('a');
        let mut mem = Mem::default();
        let bundle = mem.put(b"{}");
        let m = mem.put(
            bundle_manifest(
                &d('b'),
                &bundle,
                "application/vnd.dev.sigstore.bundle.v0.3+json",
            )
            .as_bytes(),
        );
        mem.referrers = Some(HashMap::from([(image, Bytes::from(index(&[(m, "x")])))]));
        let got = block_on(discover(&mem, &image)).unwrap();
        assert!(got.found.is_empty());
        assert_eq!(
            got.ignored,
            vec![format!(
                "referrer {m} names subject {}, not {image}",
                d('b')
            )]
        );
    }

    #[test]
    fn an_empty_fallback_entry_is_no_signature() {
        let image = d('a');
        let mut mem = Mem::default();
        let empty = serde_json::json!({"schemaVersion":2,"layers":[],"subject":{"digest": image.to_string()}}).to_string();
        let m = mem.put(empty.as_bytes());
        mem.tags.insert(
            fallback_tag(&image),
            Bytes::from(index(&[(m, "application/vnd.oci.empty.v1+json")])),
        );
        let got = block_on(discover(&mem, &image)).unwrap();
        assert!(got.found.is_empty());
        assert!(
            got.ignored[0].contains("holds no signature layer"),
            "{:?}",
            got.ignored
        );
    }

    #[test]
    fn legacy_sig_tags_carry_their_annotations() {
        let image = d('a');
        let mut mem = Mem::default();
        let payload = mem.put(b"{\"critical\":{}}");
        let sig = serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d('c').to_string(), "size": 200},
            "layers": [
                {"mediaType": SIMPLESIGNING, "digest": payload.to_string(), "size": 15,
                 "annotations": {ANNOTATION_SIGNATURE: "c2ln", ANNOTATION_CERTIFICATE: "", ANNOTATION_BUNDLE: "{}"}},
                {"mediaType": SIMPLESIGNING, "digest": payload.to_string(), "size": 15},
            ],
        })
        .to_string();
        mem.tags.insert(sig_tag(&image), Bytes::from(sig.clone()));
        let got = block_on(discover(&mem, &image)).unwrap();
        assert_eq!(
            got.found.len(),
            1,
            "the layer without a signature annotation is none"
        );
        match &got.found[0].evidence {
            Evidence::Cosign(SignatureEvidence::SimpleSigning {
                signature,
                certificate,
                rekor_bundle,
                payload: p,
                ..
            }) => {
                assert_eq!(signature, "c2ln");
                assert_eq!(certificate, &None);
                assert_eq!(rekor_bundle.as_deref(), Some("{}"));
                assert_eq!(&p[..], b"{\"critical\":{}}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            got.found[0].location,
            Location::SigTag {
                manifest: Digest::of(sig.as_bytes()),
                layer: 0
            }
        );
    }

    #[test]
    fn huge_lists_are_refused_not_read() {
        let image = d('a');
        let mut mem = Mem::default();
        let entries: Vec<(Digest, &str)> = (0..=MAX_REFERRERS)
            .map(|i| (Digest::of(&i.to_le_bytes()), "x"))
            .collect();
        mem.referrers = Some(HashMap::from([(image, Bytes::from(index(&entries)))]));
        let e = block_on(discover(&mem, &image)).unwrap_err();
        assert_eq!(e.to_string(), format!("the referrers list of {image} lists more than {MAX_REFERRERS} entries; refused (a signature list is bounded)"));
        // A fallback index larger than the byte limit: the source refuses to read it.
        let mut mem = Mem::default();
        mem.tags.insert(
            fallback_tag(&image),
            Bytes::from(vec![b' '; MAX_INDEX_BYTES as usize + 1]),
        );
        let e = block_on(discover(&mem, &image)).unwrap_err();
        assert!(e.to_string().contains("larger than the limit"), "{e}");
        assert!(!e.is_fetch());
    }

    #[test]
    fn signature_artifacts_are_recognised_by_their_layers() {
        let sig = serde_json::json!({"config": {"mediaType":"x","digest": d('c').to_string(),"size": 10},
            "layers": [{"mediaType": SIMPLESIGNING, "digest": d('b').to_string(), "size": 100}]});
        assert!(is_signature_artifact(sig.to_string().as_bytes()));
        let image = serde_json::json!({"config": {"mediaType":"x","digest": d('c').to_string(),"size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d('b').to_string(), "size": 100}]});
        assert!(!is_signature_artifact(image.to_string().as_bytes()));
        let huge = serde_json::json!({"layers": [{"mediaType": SIMPLESIGNING, "digest": d('b').to_string(), "size": 1u64 << 40}]});
        assert!(!is_signature_artifact(huge.to_string().as_bytes()));
        assert!(!is_signature_artifact(b"{\"manifests\":[]}"));
    }
}
