//! cosign signatures made in code, from the specifications (no cosign binary exists here):
//! sigstore/cosign `specs/SIGNATURE_SPEC.md` for the simple-signing payload and the `.sig` tag,
//! the OCI distribution-spec 1.1 for referrers and the `sha256-<hex>` fallback index.
//!
//! A keyed cosign signature is ECDSA P-256 with SHA-256 (ASN.1 DER, base64 in the layer's
//! `dev.cosignproject.cosign/signature` annotation) over the payload bytes exactly as stored in
//! the layer blob; the public key is a PEM `PUBLIC KEY` (SPKI), what `cosign generate-key-pair`
//! writes to `cosign.pub`.
//!
//! The builders return bytes (manifests, blobs); [`push`] writes them to a real registry
//! through its HTTP API (monolithic blob upload, manifest PUT), for the interop tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// cosign 2's artifact type for signatures stored as referrers (`COSIGN_EXPERIMENTAL` OCI 1.1).
pub const COSIGN_SIG_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// `sha256:<hex>`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256-<hex>` of a digest (the fallback tag), and with `.sig` the legacy signature tag.
pub fn fallback_tag(image_digest: &str) -> String {
    image_digest.replace("sha256:", "sha256-")
}

pub fn sig_tag(image_digest: &str) -> String {
    format!("{}.sig", fallback_tag(image_digest))
}

/// A cosign key pair (ECDSA P-256), made fresh.
pub struct CosignKey {
    pair: EcdsaKeyPair,
}

impl CosignKey {
    pub fn generate() -> CosignKey {
        CosignKey {
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("P-256 key"),
        }
    }

    /// The public key as `cosign.pub` holds it.
    pub fn public_pem(&self) -> String {
        let der = self.pair.public_key().as_der().expect("SPKI DER");
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_ref().to_vec()))
    }

    /// Writes the public key to `dir/<name>.pub`.
    pub fn write_public(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(format!("{name}.pub"));
        std::fs::write(&p, self.public_pem()).expect("write public key");
        p
    }

    /// base64 of the ASN.1 ECDSA signature over `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        let sig = self.pair.sign(&SystemRandom::new(), message).expect("sign");
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }
}

/// The simple-signing payload cosign signs for `docker_reference` (`host/repo`) at `digest`.
pub fn payload(docker_reference: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    }))
    .expect("payload")
}

/// A manifest and the blobs it refers to.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub manifest: Vec<u8>,
    pub media_type: &'static str,
    pub blobs: Vec<Vec<u8>>,
}

impl Artifact {
    pub fn digest(&self) -> String {
        digest(&self.manifest)
    }
}

/// One simple-signing layer: the payload, its base64 signature and, for keyless signatures,
/// the certificate annotations (`dev.sigstore.cosign/certificate`, `/chain`, `/bundle`).
pub struct Signed {
    pub payload: Vec<u8>,
    pub signature: String,
    pub certificate: Option<String>,
    pub chain: Option<String>,
    pub rekor_bundle: Option<String>,
}

impl Signed {
    /// `key` signs `payload(reference, image_digest)`.
    pub fn by(key: &CosignKey, reference: &str, image_digest: &str) -> Signed {
        let payload = payload(reference, image_digest);
        Signed {
            signature: key.sign(&payload),
            payload,
            certificate: None,
            chain: None,
            rekor_bundle: None,
        }
    }
}

fn layer(s: &Signed) -> serde_json::Value {
    let mut annotations = serde_json::json!({"dev.cosignproject.cosign/signature": s.signature});
    for (k, v) in [
        ("dev.sigstore.cosign/certificate", &s.certificate),
        ("dev.sigstore.cosign/chain", &s.chain),
        ("dev.sigstore.cosign/bundle", &s.rekor_bundle),
    ] {
        if let Some(v) = v {
            annotations[k] = serde_json::Value::String(v.clone());
        }
    }
    serde_json::json!({
        "mediaType": SIMPLESIGNING,
        "digest": digest(&s.payload),
        "size": s.payload.len(),
        "annotations": annotations,
    })
}

/// The `sha256-<hex>.sig` manifest (cosign ≤ 2): one simple-signing layer per signature, an
/// image config listing them (as cosign writes it).
pub fn sig_manifest(signatures: &[Signed]) -> Artifact {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": signatures.iter().map(|s| digest(&s.payload)).collect::<Vec<_>>()},
    }))
    .expect("config");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest(&config), "size": config.len()},
        "layers": signatures.iter().map(layer).collect::<Vec<_>>(),
    }))
    .expect("manifest");
    let mut blobs = vec![config];
    blobs.extend(signatures.iter().map(|s| s.payload.clone()));
    Artifact {
        manifest,
        media_type: OCI_MANIFEST,
        blobs,
    }
}

/// A signature stored as a referrer of `subject` (cosign 2's OCI 1.1 mode): the same
/// simple-signing layers, with `subject` and `artifactType`.
pub fn referrer_manifest(subject: &str, subject_size: usize, signatures: &[Signed]) -> Artifact {
    let empty = b"{}".to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": COSIGN_SIG_ARTIFACT,
        "config": {"mediaType": EMPTY, "digest": digest(&empty), "size": 2},
        "layers": signatures.iter().map(layer).collect::<Vec<_>>(),
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
    }))
    .expect("manifest");
    let mut blobs = vec![empty];
    blobs.extend(signatures.iter().map(|s| s.payload.clone()));
    Artifact {
        manifest,
        media_type: OCI_MANIFEST,
        blobs,
    }
}

/// A Sigstore bundle stored as a referrer (cosign 3's layout): one bundle layer.
pub fn bundle_referrer(subject: &str, subject_size: usize, bundle: &[u8]) -> Artifact {
    let empty = b"{}".to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_V03,
        "config": {"mediaType": EMPTY, "digest": digest(&empty), "size": 2},
        "layers": [{"mediaType": BUNDLE_V03, "digest": digest(bundle), "size": bundle.len()}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size},
    }))
    .expect("manifest");
    Artifact {
        manifest,
        media_type: OCI_MANIFEST,
        blobs: vec![empty, bundle.to_vec()],
    }
}

/// The `sha256-<hex>` fallback index listing `entries` (manifest, artifactType as listed).
pub fn fallback_index(entries: &[(&Artifact, &str)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries.iter().map(|(a, at)| serde_json::json!({
            "mediaType": a.media_type, "digest": a.digest(), "size": a.manifest.len(), "artifactType": at,
        })).collect::<Vec<_>>(),
    }))
    .expect("index")
}

/// Pushes blobs and a manifest (under `reference`: a tag, or the digest) to a real registry at
/// `base` (`http://127.0.0.1:port`), through its HTTP API.
pub async fn push(
    base: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    manifest: &[u8],
    blobs: &[Vec<u8>],
) {
    let c = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    for b in blobs {
        let d = digest(b);
        let head = c
            .head(format!("{base}/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .expect("HEAD blob");
        if head.status().is_success() {
            continue;
        }
        let start = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .expect("start upload");
        assert_eq!(start.status().as_u16(), 202, "start upload");
        let location = start.headers()["location"]
            .to_str()
            .expect("location")
            .to_string();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{base}{location}")
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let put = c
            .put(format!("{url}{sep}digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(b.clone())
            .send()
            .await
            .expect("PUT blob");
        assert_eq!(put.status().as_u16(), 201, "PUT blob {d}");
    }
    let put = c
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(manifest.to_vec())
        .send()
        .await
        .expect("PUT manifest");
    let status = put.status().as_u16();
    assert_eq!(
        status,
        201,
        "PUT manifest: {}",
        put.text().await.unwrap_or_default()
    );
}

/// A keyed Sigstore bundle v0.3 as `cosign sign --key --new-bundle-format` stores it without a
/// transparency log (`--tlog-upload=false`): a `messageSignature` over the manifest bytes, the
/// public key named by a hint, no log entry.
pub fn keyed_bundle(key: &CosignKey, manifest: &[u8]) -> Vec<u8> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    serde_json::to_vec(&serde_json::json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {
            "publicKey": {"hint": "acme"},
            "tlogEntries": [],
        },
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": b64(&Sha256::digest(manifest))},
            "signature": key.sign(manifest),
        },
    }))
    .expect("bundle")
}
