//! cosign (Sigstore) signature verification: pure logic, no I/O but reading the verifier's own
//! files at construction.
//!
//! CONTRACT (issue 12): the discovery and policy code (`crate::verify`, `crate::proxy`) finds
//! signature evidence in the registry and calls [`CosignVerifier::verify`]; this module decides.
//! The public items below are the interface between the two; their bodies are being written.

use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;

use crate::reference::Digest;
use crate::verify::config::VerifierConfig;

/// What a signature must be about.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The upstream registry's host (and port), as clients name it when they sign
    /// (`registry.example:5000`, `index.docker.io`).
    pub registry_host: &'a str,
    /// The repository in that registry (`library/alpine`).
    pub repository: &'a str,
    /// The manifest digest being served.
    pub digest: &'a Digest,
}

/// One signature found in the registry, as stored there.
#[derive(Debug, Clone)]
pub enum SignatureEvidence {
    /// A layer of the `sha256-<hex>.sig` tag's manifest: the simple-signing payload (the layer's
    /// bytes) and the layer descriptor's annotations.
    SimpleSigning {
        payload: Bytes,
        /// `dev.cosignproject.cosign/signature`, base64.
        signature: String,
        /// `dev.sigstore.cosign/certificate`, PEM.
        certificate: Option<String>,
        /// `dev.sigstore.cosign/chain`, PEM.
        chain: Option<String>,
        /// `dev.sigstore.cosign/bundle`, JSON (Rekor SET and entry).
        rekor_bundle: Option<String>,
        /// `dev.sigstore.cosign/rfc3161timestamp`, JSON.
        rfc3161_timestamp: Option<String>,
    },
    /// A Sigstore bundle (v0.1–v0.3 JSON), the layer of a referrers artifact or of the fallback
    /// index's entry.
    Bundle(Bytes),
}

/// A signature that verified.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// Who signed: the key's name/fingerprint (keyed) or the certificate's subject (keyless).
    pub signer: String,
    /// The OIDC issuer (keyless).
    pub issuer: Option<String>,
    /// When the log or a timestamp authority saw the signature, if it did.
    pub signed_at: Option<SystemTime>,
}

/// Why a verifier cannot be built from its `[[verifier]]` table (key, problem).
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct CosignConfigError {
    /// The key within the `[[verifier]]` table (`keys[1]`, `trusted_root`, `identities[0].subject_regex`).
    pub key: String,
    pub problem: String,
}

/// Why one signature was not accepted; the messages are what clients read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignRefusal {
    #[error("signature verification is not implemented yet")]
    NotImplemented,
}

/// A `kind = "cosign"` verifier, built once from its table.
#[derive(Debug)]
pub struct CosignVerifier {
    name: String,
}

impl CosignVerifier {
    /// Builds the verifier, reading its key and trusted-root files (relative paths are taken from
    /// the working directory, like every path in the configuration).
    pub fn from_config(config: &VerifierConfig, _base: &Path) -> Result<Self, CosignConfigError> {
        Ok(Self {
            name: config.name.clone(),
        })
    }

    /// The verifier's name, as policies refer to it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies one piece of evidence for `expected` at `now`.
    pub fn verify(
        &self,
        _evidence: &SignatureEvidence,
        _expected: &Expected<'_>,
        _now: SystemTime,
    ) -> Result<Accepted, CosignRefusal> {
        Err(CosignRefusal::NotImplemented)
    }
}
