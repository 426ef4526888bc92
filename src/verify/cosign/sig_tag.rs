//! The `.sig` tag's keyless and log annotations, turned into the Sigstore bundle (v0.1) they
//! amount to, so one verifier (`sigstore-verify`) checks both storage formats.
//!
//! cosign (≤ v2, `specs/SIGNATURE_SPEC.md` and `pkg/cosign/bundle/rekor.go`) stores beside the
//! simple-signing layer:
//! - `dev.sigstore.cosign/certificate` and `dev.sigstore.cosign/chain`: PEM, leaf then chain;
//! - `dev.sigstore.cosign/bundle`: `{"SignedEntryTimestamp": b64, "Payload": {"body": b64,
//!   "integratedTime": n, "logIndex": n, "logID": hex}}`, Rekor's promise (SET) over exactly the
//!   fields a v0.1 bundle's `tlogEntries[0]` carries (`inclusionPromise`, `canonicalizedBody`,
//!   `integratedTime`, `logIndex`, `logId`);
//! - `dev.sigstore.cosign/rfc3161timestamp`: `{"SignedRFC3161Timestamp": b64}`, a timestamp
//!   over the signature, the bundle's `timestampVerificationData`.
//!
//! The signed artifact is the payload (the layer's bytes), and the signature is a message
//! signature over it: exactly a v0.1 bundle with `messageSignature` whose `messageDigest` is
//! the payload's SHA-256. The conversion only moves fields; every check (the SET signature by a
//! trusted Rekor key, that the logged `hashedrekord` names this signature, certificate and
//! payload digest, the chain, SCT and validity at the integrated time) is the crate's.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sigstore_verify::types::Bundle;

use super::CosignRefusal;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Deserialize)]
struct RekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: RekorPayload,
}

#[derive(Deserialize)]
struct RekorPayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

#[derive(Deserialize)]
struct Rfc3161 {
    #[serde(rename = "SignedRFC3161Timestamp")]
    signed: String,
}

/// What the signer's key is, in the bundle's terms.
pub enum Material<'a> {
    /// PEM leaf certificate and optional PEM chain (keyless).
    Certificate {
        leaf: &'a str,
        chain: Option<&'a str>,
    },
    /// A managed key, supplied by the verifier (keyed signatures with a log entry).
    PublicKey,
}

fn invalid(what: &str, problem: impl std::fmt::Display) -> CosignRefusal {
    CosignRefusal::AnnotationInvalid {
        annotation: what.to_string(),
        problem: problem.to_string(),
    }
}

/// The DER certificates of a PEM text, in order.
fn pem_certificates(annotation: &str, text: &str) -> Result<Vec<Value>, CosignRefusal> {
    let blocks = pem::parse_many(text).map_err(|e| invalid(annotation, e))?;
    let mut out = Vec::with_capacity(blocks.len());
    for block in blocks {
        if block.tag() != "CERTIFICATE" {
            return Err(invalid(
                annotation,
                format!("a PEM {} is not a certificate", block.tag()),
            ));
        }
        out.push(json!({ "rawBytes": B64.encode(block.contents()) }));
    }
    if out.is_empty() {
        return Err(invalid(annotation, "no certificate in it"));
    }
    Ok(out)
}

/// Builds the v0.1 bundle equivalent to a `.sig` layer.
pub fn to_bundle(
    payload: &[u8],
    signature_b64: &str,
    material: Material<'_>,
    rekor_bundle: Option<&str>,
    rfc3161_timestamp: Option<&str>,
) -> Result<Bundle, CosignRefusal> {
    let verification_material_key = match material {
        Material::Certificate { leaf, chain } => {
            let mut certificates = pem_certificates("dev.sigstore.cosign/certificate", leaf)?;
            if let Some(chain) = chain {
                certificates.extend(pem_certificates("dev.sigstore.cosign/chain", chain)?);
            }
            (
                "x509CertificateChain",
                json!({ "certificates": certificates }),
            )
        }
        Material::PublicKey => ("publicKey", json!({ "hint": "" })),
    };
    let mut tlog_entries = Vec::new();
    if let Some(text) = rekor_bundle {
        let rekor: RekorBundle =
            serde_json::from_str(text).map_err(|e| invalid("dev.sigstore.cosign/bundle", e))?;
        let body = B64
            .decode(&rekor.payload.body)
            .map_err(|e| invalid("dev.sigstore.cosign/bundle", format!("body: {e}")))?;
        let entry: Value = serde_json::from_slice(&body)
            .map_err(|e| invalid("dev.sigstore.cosign/bundle", format!("body: {e}")))?;
        let kind = entry
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let version = entry
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let log_id = hex::decode(&rekor.payload.log_id)
            .map_err(|e| invalid("dev.sigstore.cosign/bundle", format!("logID: {e}")))?;
        tlog_entries.push(json!({
            "logIndex": rekor.payload.log_index.to_string(),
            "logId": { "keyId": B64.encode(log_id) },
            "kindVersion": { "kind": kind, "version": version },
            "integratedTime": rekor.payload.integrated_time.to_string(),
            "inclusionPromise": { "signedEntryTimestamp": rekor.signed_entry_timestamp },
            "canonicalizedBody": rekor.payload.body,
        }));
    }
    let mut timestamps = Vec::new();
    if let Some(text) = rfc3161_timestamp {
        let ts: Rfc3161 = serde_json::from_str(text)
            .map_err(|e| invalid("dev.sigstore.cosign/rfc3161timestamp", e))?;
        timestamps.push(json!({ "signedTimestamp": ts.signed }));
    }
    let signature = B64
        .decode(signature_b64.trim())
        .map_err(|_| CosignRefusal::SignatureEncoding)?;
    // v0.1 is the format whose log entries carry only a promise (SET), as cosign's annotation
    // does; it requires one, so a signature without a log entry becomes a v0.2 bundle (v0.3
    // would not take a certificate chain).
    let media_type = if tlog_entries.is_empty() {
        "application/vnd.dev.sigstore.bundle+json;version=0.2"
    } else {
        "application/vnd.dev.sigstore.bundle+json;version=0.1"
    };
    let bundle = json!({
        "mediaType": media_type,
        "verificationMaterial": {
            verification_material_key.0: verification_material_key.1,
            "tlogEntries": tlog_entries,
            "timestampVerificationData": { "rfc3161Timestamps": timestamps },
        },
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": B64.encode(Sha256::digest(payload)),
            },
            "signature": B64.encode(signature),
        },
    });
    Bundle::from_json(&bundle.to_string()).map_err(|e| CosignRefusal::BundleInvalid {
        problem: format!("the .sig annotations do not make a bundle: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";

    fn annotation_of(err: CosignRefusal) -> String {
        match err {
            CosignRefusal::AnnotationInvalid { annotation, .. } => annotation,
            other => panic!("not an annotation refusal: {other}"),
        }
    }

    #[test]
    fn malformed_annotations_are_named() {
        let leaf = Material::Certificate {
            leaf: "-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----\n",
            chain: None,
        };
        let err = to_bundle(b"{}", "MAA=", leaf, None, None).err().unwrap();
        assert_eq!(annotation_of(err), "dev.sigstore.cosign/certificate");
        let leaf = Material::Certificate {
            leaf: CERT,
            chain: Some("no PEM here"),
        };
        let err = to_bundle(b"{}", "MAA=", leaf, None, None).err().unwrap();
        assert_eq!(annotation_of(err), "dev.sigstore.cosign/chain");
        let err = to_bundle(
            b"{}",
            "MAA=",
            Material::PublicKey,
            Some("{\"Payload\":1}"),
            None,
        )
        .err()
        .unwrap();
        assert_eq!(annotation_of(err), "dev.sigstore.cosign/bundle");
        let err = to_bundle(b"{}", "MAA=", Material::PublicKey, None, Some("[]"))
            .err()
            .unwrap();
        assert_eq!(annotation_of(err), "dev.sigstore.cosign/rfc3161timestamp");
    }

    #[test]
    fn a_signature_that_is_not_base64_is_refused() {
        let err = to_bundle(b"{}", "%%%", Material::PublicKey, None, None)
            .err()
            .unwrap();
        assert_eq!(err, CosignRefusal::SignatureEncoding);
    }
}
