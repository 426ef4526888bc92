//! Notation (Notary Project) signature verification: pure logic, no I/O but reading the
//! verifier's own files at construction.
//!
//! A `kind = "notation"` verifier checks one envelope (JWS or COSE, [`envelope`]) found as a
//! referrer of the digest being served: the payload's `targetArtifact` must be that manifest
//! (digest, and size and media type when known); then the checks of the Notary Project
//! trust-policy specification, each enforced or only logged according to the level:
//!
//! | level      | integrity | authenticity | authentic timestamp | expiry | revocation |
//! |------------|-----------|--------------|---------------------|--------|------------|
//! | strict     | enforce   | enforce      | enforce             | enforce| not checked, logged |
//! | permissive | enforce   | enforce      | log                 | log    | not checked, logged |
//! | audit      | enforce   | log          | log                 | log    | not checked, logged |
//! | skip       | —         | —            | —                   | —      | —          |
//!
//! - integrity: the envelope parses, its critical headers are understood, `alg` is the signing
//!   key's algorithm and the signature verifies with the leaf certificate;
//! - authenticity: the chain is well formed, a certificate of it is in the trust store (`ca`
//!   stores for `notary.x509`, `signingAuthority` stores for `notary.x509.signingAuthority`), the
//!   signing certificate is a code-signing certificate, and its subject is a trusted identity;
//! - authentic timestamp: the chain was valid when the signature was made, proved by the RFC
//!   3161 countersignature verified against the TSA roots (or by the authority's signing time for
//!   the signing-authority scheme); without a timestamp, the chain must be valid now;
//! - expiry: the signature's own `io.cncf.notary.expiry` has not passed.
//!
//! Revocation (OCSP, CRL) needs the network on every verification; trustgate never checks it
//! (an air-gapped mirror could not), at any level, and says so in the log for every accepted
//! Notation signature instead of skipping silently. `level = "skip"` accepts a digest without
//! looking at any signature, as Notation's skip does.

pub mod certs;
mod dn;
pub mod envelope;
pub mod policy;
pub mod timestamp;

use std::time::SystemTime;

use bytes::Bytes;
use serde::Deserialize;

use crate::reference::Digest;

use certs::{Cert, ChainProblem, LeafProblem, SignatureProblem, TrustedIdentity};
use envelope::{EnvelopeError, EnvelopeFormat, SigningScheme};
pub use policy::{NotationConfigError, NotationVerifier};

/// The artifact type of Notation signature manifests.
pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";

/// One Notation signature envelope found in the registry.
#[derive(Debug, Clone)]
pub struct NotationEvidence {
    pub format: EnvelopeFormat,
    pub envelope: Bytes,
}

/// The manifest being served, as the payload's `targetArtifact` must describe it.
#[derive(Debug, Clone, Copy)]
pub struct TargetManifest<'a> {
    pub digest: &'a Digest,
    /// The manifest's length and media type, when the caller has the manifest.
    pub size: Option<u64>,
    pub media_type: Option<&'a str>,
}

/// `level`: the Notary Project verification levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Strict,
    Permissive,
    Audit,
    Skip,
}

/// What a level (or an `override`) does with one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Enforce,
    Log,
    Skip,
}

/// The actions of the checks a level can relax (integrity is always enforced unless skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checks {
    pub skip_all: bool,
    pub authenticity: Action,
    pub authentic_timestamp: Action,
    pub expiry: Action,
}

impl Level {
    pub fn checks(self) -> Checks {
        use Action::*;
        let (authenticity, authentic_timestamp, expiry) = match self {
            Self::Strict => (Enforce, Enforce, Enforce),
            Self::Permissive => (Enforce, Log, Log),
            Self::Audit | Self::Skip => (Log, Log, Log),
        };
        Checks {
            skip_all: self == Self::Skip,
            authenticity,
            authentic_timestamp,
            expiry,
        }
    }
}

/// Why one Notation signature was not accepted; the messages are what clients read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotationRefusal {
    #[error("Notation signature invalid: {0}")]
    Envelope(EnvelopeError),
    #[error("Notation payload is not {{\"targetArtifact\": descriptor}}: {0}")]
    Payload(String),
    #[error("Notation signature is for {signed}, not {expected}")]
    OtherArtifact { signed: String, expected: String },
    #[error("Notation signature alg {alg} does not match the signing key ({key})")]
    AlgMismatch { alg: &'static str, key: String },
    #[error("Notation signature invalid: {0}")]
    Signature(String),
    #[error("Notation certificate chain invalid: {0}")]
    Chain(String),
    #[error("Notation signature not trusted by verifier {verifier}: {detail}")]
    Untrusted { verifier: String, detail: String },
    #[error("Notation signing certificate is not for code signing: {0}")]
    NotCodeSigning(String),
    #[error("Notation signing certificate invalid: {0}")]
    Leaf(String),
    #[error("Notation signer {subject} is not a trusted identity of verifier {verifier}")]
    IdentityNotTrusted { subject: String, verifier: String },
    #[error("Notation certificate not valid at signing time: {0}")]
    NotValidAtSigningTime(String),
    #[error("Notation timestamp countersignature invalid: {0}")]
    TimestampInvalid(String),
    #[error("Notation signature expired at {0}")]
    Expired(String),
    #[error("no Notation trust policy statement of verifier {verifier} applies to {scope}")]
    NoStatement { verifier: String, scope: String },
}

/// A signature that verified (possibly with logged, unenforced failures).
#[derive(Debug, Clone)]
pub struct NotationAccepted {
    pub signer: String,
    pub signed_at: Option<SystemTime>,
    /// Failures of checks the level only logs.
    pub logged: Vec<String>,
}

/// What one trust-policy statement (or the inline configuration) trusts.
#[derive(Debug, Clone)]
pub struct TrustSet {
    pub name: String,
    pub checks: Checks,
    /// Certificates (DER) trusted for `notary.x509` signatures.
    pub ca: Vec<Vec<u8>>,
    /// Certificates (DER) trusted for `notary.x509.signingAuthority` signatures.
    pub signing_authority: Vec<Vec<u8>>,
    /// TSA roots (DER).
    pub tsa: Vec<Vec<u8>>,
    /// `None`: `"*"`, any identity.
    pub identities: Option<Vec<TrustedIdentity>>,
}

fn time_text(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t:?}"))
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "targetArtifact")]
    target: TargetDescriptor,
}

#[derive(Deserialize)]
struct TargetDescriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

/// Verifies `evidence` for `target` under one trust set (pure; `now` is the verification time).
pub fn verify_with(
    verifier: &str,
    set: &TrustSet,
    evidence: &NotationEvidence,
    target: &TargetManifest<'_>,
    now: SystemTime,
) -> Result<NotationAccepted, NotationRefusal> {
    let checks = set.checks;
    if checks.skip_all {
        return Ok(NotationAccepted {
            signer: format!("not verified (trust policy {} has level skip)", set.name),
            signed_at: None,
            logged: Vec::new(),
        });
    }
    let mut logged = Vec::new();
    let mut apply = |action: Action, refusal: NotationRefusal| -> Result<(), NotationRefusal> {
        match action {
            Action::Enforce => Err(refusal),
            Action::Log => {
                logged.push(refusal.to_string());
                Ok(())
            }
            Action::Skip => Ok(()),
        }
    };

    // Integrity (always enforced).
    let env =
        envelope::parse(evidence.format, &evidence.envelope).map_err(NotationRefusal::Envelope)?;
    let payload: Payload = serde_json::from_slice(&env.payload)
        .map_err(|e| NotationRefusal::Payload(e.to_string()))?;
    let t = &payload.target;
    let expected = target.digest.to_string();
    let size_ok = target.size.is_none_or(|s| s == t.size);
    let type_ok = target.media_type.is_none_or(|m| m == t.media_type);
    if t.digest != expected || !size_ok || !type_ok {
        return Err(NotationRefusal::OtherArtifact {
            signed: format!("{} ({}, {} bytes)", t.digest, t.media_type, t.size),
            expected: format!(
                "{expected} ({}, {} bytes)",
                target.media_type.unwrap_or("?"),
                target.size.map_or("?".to_string(), |s| s.to_string())
            ),
        });
    }
    let chain = env
        .chain
        .iter()
        .map(|d| Cert::parse(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(NotationRefusal::Chain)?;
    let leaf = chain
        .first()
        .ok_or_else(|| NotationRefusal::Chain("the envelope carries no certificate".into()))?;
    certs::verify_signature(leaf, env.alg, &env.signing_input, &env.signature).map_err(
        |p| match p {
            SignatureProblem::AlgMismatch { alg, key } => NotationRefusal::AlgMismatch {
                alg: alg.name(),
                key,
            },
            SignatureProblem::Invalid(d) => NotationRefusal::Signature(d),
        },
    )?;

    // Authenticity.
    let trusted = match env.scheme {
        SigningScheme::X509 => &set.ca,
        SigningScheme::SigningAuthority => &set.signing_authority,
    };
    let subject = leaf.subject();
    let authenticity = match certs::check_chain(&chain, trusted) {
        Err(ChainProblem::Invalid(d)) => Err(NotationRefusal::Chain(d)),
        Err(ChainProblem::Untrusted(d)) => Err(NotationRefusal::Untrusted {
            verifier: verifier.to_string(),
            detail: format!("{d} (scheme {})", env.scheme.name()),
        }),
        Ok(()) => match certs::check_leaf(leaf) {
            Err(LeafProblem::Eku(d)) => Err(NotationRefusal::NotCodeSigning(d)),
            Err(LeafProblem::Other(d)) => Err(NotationRefusal::Leaf(d)),
            Ok(()) => match &set.identities {
                Some(ids) if !ids.iter().any(|i| i.matches(leaf)) => {
                    Err(NotationRefusal::IdentityNotTrusted {
                        subject: subject.clone(),
                        verifier: verifier.to_string(),
                    })
                }
                _ => Ok(()),
            },
        },
    };
    if let Err(r) = authenticity {
        apply(checks.authenticity, r)?;
    }

    // Expiry of the signature itself.
    if let Some(expiry) = env.expiry {
        if now > expiry {
            apply(checks.expiry, NotationRefusal::Expired(time_text(expiry)))?;
        }
    }

    // Authentic timestamp: when was the chain used, and was it valid then?
    let mut signed_at = None;
    let timestamp_check = match env.scheme {
        SigningScheme::SigningAuthority => match env.signing_time {
            Some(t) => {
                signed_at = Some(t);
                certs::chain_valid_at(&chain, t).map_err(NotationRefusal::NotValidAtSigningTime)
            }
            None => Err(NotationRefusal::NotValidAtSigningTime(
                "the signing-authority scheme needs an authentic signing time".into(),
            )),
        },
        SigningScheme::X509 => match &env.timestamp {
            Some(token) if !set.tsa.is_empty() => {
                match timestamp::verify(token, &env.signature, &set.tsa) {
                    Ok(t) => {
                        signed_at = Some(t);
                        certs::chain_valid_at(&chain, t).map_err(|d| {
                            NotationRefusal::NotValidAtSigningTime(format!(
                                "{d} (timestamp {})",
                                time_text(t)
                            ))
                        })
                    }
                    Err(d) => Err(NotationRefusal::TimestampInvalid(d)),
                }
            }
            // No countersignature (or no TSA root to check one): the chain must be valid now.
            _ => certs::chain_valid_at(&chain, now).map_err(|d| {
                NotationRefusal::NotValidAtSigningTime(format!(
                    "{d}, and there is no {} to prove it was valid when signed",
                    if env.timestamp.is_some() {
                        "TSA root configured for the timestamp countersignature"
                    } else {
                        "timestamp countersignature"
                    }
                ))
            }),
        },
    };
    if let Err(r) = timestamp_check {
        apply(checks.authentic_timestamp, r)?;
    }
    Ok(NotationAccepted {
        signer: subject,
        signed_at: signed_at.or(env.signing_time),
        logged,
    })
}

#[cfg(test)]
mod tests;
