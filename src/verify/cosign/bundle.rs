//! Sigstore bundles (v0.1–v0.3): what a cosign bundle signs, and the cryptographic checks
//! (certificate chain to the trusted root's Fulcio CAs, SCT, Rekor SET / inclusion proof with
//! checkpoint, RFC 3161 timestamps, certificate validity at the signing time) delegated to the
//! maintained `sigstore-verify` crate.
//!
//! What a bundle attached to an image signs (sigstore/cosign `cmd/cosign/cli/sign/sign.go`,
//! `signDigestBundle`, cosign v3's default): a DSSE envelope whose payload is an in-toto
//! Statement with one subject `{"digest": {"sha256": "<manifest digest hex>"}}` and predicate
//! type `https://sigstore.dev/cosign/sign/v1` (an empty predicate). `cosign verify` checks the
//! subject digest against the image digest (`WithArtifactDigest`). There is no repository in
//! the statement, so `check_reference` has nothing to check for bundles.
//!
//! A bundle with a `messageSignature` is also accepted when its `messageDigest` is the manifest
//! digest: that is a signature over the manifest bytes themselves (what `cosign sign-blob` or any
//! Sigstore client makes of a manifest file). Other DSSE predicates (SBOMs, provenance) are
//! attestations *about* the image, not signatures of it, and are refused.

use serde::Deserialize;
use sigstore_verify::types::{Bundle, HashAlgorithm, Sha256Hash, SignatureContent};
use sigstore_verify::{CertificateError, Error, TimestampError, TransparencyLogError};

use super::payload::{self, DigestOf};
use super::{CosignRefusal, Expected};

/// The predicate type of a cosign image signature in a bundle.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// Parses a bundle's JSON.
pub fn parse(bytes: &[u8]) -> Result<Bundle, CosignRefusal> {
    let text = std::str::from_utf8(bytes).map_err(|_| CosignRefusal::BundleInvalid {
        problem: "not UTF-8".to_string(),
    })?;
    Bundle::from_json(text).map_err(|e| CosignRefusal::BundleInvalid {
        problem: e.to_string(),
    })
}

#[derive(Deserialize)]
struct Statement {
    #[serde(rename = "predicateType")]
    predicate_type: String,
    subject: Vec<StatementSubject>,
}

#[derive(Deserialize)]
struct StatementSubject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
}

/// Checks that the bundle signs `expected.digest` as an image signature (see the module
/// comment), before any cryptography: a bundle for another image is refused with both digests
/// named. `sigstore-verify` checks the same binding again while verifying.
pub fn check_binding(bundle: &Bundle, expected: &Expected<'_>) -> Result<(), CosignRefusal> {
    match &bundle.content {
        SignatureContent::DsseEnvelope(envelope) => {
            if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
                return Err(CosignRefusal::NotASignature {
                    what: format!("a DSSE envelope of type {}", envelope.payload_type),
                });
            }
            let statement: Statement = serde_json::from_slice(envelope.payload.as_bytes())
                .map_err(|e| CosignRefusal::BundleInvalid {
                    problem: format!("the DSSE payload is not an in-toto statement: {e}"),
                })?;
            if statement.predicate_type != COSIGN_SIGN_PREDICATE {
                return Err(CosignRefusal::NotASignature {
                    what: format!("an attestation of type {}", statement.predicate_type),
                });
            }
            let want = expected.digest.hex();
            let mut signed = statement
                .subject
                .iter()
                .filter_map(|s| s.digest.get("sha256"));
            if signed.clone().any(|d| *d == want) {
                return Ok(());
            }
            let first = signed.next().map_or_else(
                || "no sha256 subject".to_string(),
                |d| format!("sha256:{d}"),
            );
            payload::check_digest(&first, expected, DigestOf::Bundle)
        }
        SignatureContent::MessageSignature(message) => {
            let Some(digest) = &message.message_digest else {
                return Err(CosignRefusal::BundleInvalid {
                    problem: "the message signature has no messageDigest to bind it to an image"
                        .to_string(),
                });
            };
            let signed = match digest.algorithm {
                HashAlgorithm::Sha2256 => {
                    format!("sha256:{}", hex::encode(digest.digest.as_bytes()))
                }
                other => format!("{other:?} digest"),
            };
            payload::check_digest(&signed, expected, DigestOf::Bundle)
        }
        _ => Err(CosignRefusal::BundleInvalid {
            problem: "unsupported bundle content".to_string(),
        }),
    }
}

/// The artifact `sigstore-verify` checks the bundle against: the manifest by its digest.
pub fn artifact(expected: &Expected<'_>) -> Sha256Hash {
    Sha256Hash::from(*expected.digest.bytes())
}

/// Maps `sigstore-verify`'s typed failure to the refusal clients read.
pub fn refusal(err: Error) -> CosignRefusal {
    match err {
        // webpki judges the whole chain at the signing time, so a leaf outside its validity then
        // comes back as a chain failure; the crate gives only webpki's text for it.
        Error::Certificate(CertificateError::ChainInvalid(detail))
            if detail.contains("CertExpired") || detail.contains("CertNotValidYet") =>
        {
            CosignRefusal::CertificateExpired { detail }
        }
        Error::Certificate(CertificateError::ChainInvalid(detail)) => {
            CosignRefusal::CertificateUntrusted { detail }
        }
        Error::Certificate(CertificateError::NoValidAuthority { time }) => {
            CosignRefusal::CertificateUntrusted {
                detail: format!("no trusted Fulcio CA is valid at {time}"),
            }
        }
        Error::Certificate(CertificateError::Expired { time, not_after }) => {
            CosignRefusal::CertificateExpired {
                detail: format!("signed at {time}, certificate valid until {not_after}"),
            }
        }
        Error::Certificate(CertificateError::NotYetValid { time, not_before }) => {
            CosignRefusal::CertificateExpired {
                detail: format!("signed at {time}, certificate valid from {not_before}"),
            }
        }
        Error::Certificate(CertificateError::Sct(detail)) => CosignRefusal::SctInvalid { detail },
        Error::Certificate(other) => CosignRefusal::CertificateInvalid {
            detail: other.to_string(),
        },
        Error::TransparencyLog(e) => CosignRefusal::TransparencyInvalid {
            detail: match e {
                TransparencyLogError::UnknownLog { log_id } => {
                    format!("entry from a log not in the trusted root ({log_id})")
                }
                other => other.to_string(),
            },
        },
        Error::Timestamp(TimestampError::NoVerifiedTimestamp(_)) => CosignRefusal::NoSigningTime,
        Error::Timestamp(other) => CosignRefusal::TimestampInvalid {
            detail: other.to_string(),
        },
        Error::SignatureInvalid(detail) => CosignRefusal::SignatureInvalid { detail },
        // The crate reports a log entry naming another artifact as an artifact mismatch.
        Error::ArtifactMismatch(detail) if detail.contains("entry") => {
            CosignRefusal::TransparencyInvalid {
                detail: format!("the log entry is for another signature ({detail})"),
            }
        }
        Error::ArtifactMismatch(detail) => CosignRefusal::BundleInvalid {
            problem: format!("it signs another artifact ({detail})"),
        },
        Error::Bundle(e) => match e {
            sigstore_verify::bundle::Error::MissingInclusionProof(_)
            | sigstore_verify::bundle::Error::MissingInclusionPromise(_) => {
                CosignRefusal::TransparencyMissing
            }
            // Without log entries (the caller refuses that first under `require`) and
            // without a timestamp, nothing says when the certificate was used.
            sigstore_verify::bundle::Error::MissingSigningTimeEvidence => {
                CosignRefusal::NoSigningTime
            }
            other => CosignRefusal::BundleInvalid {
                problem: other.to_string(),
            },
        },
        other => CosignRefusal::BundleInvalid {
            problem: other.to_string(),
        },
    }
}
