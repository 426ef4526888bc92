//! cosign (Sigstore) signature verification: pure logic, no I/O but reading the verifier's own
//! files at construction.
//!
//! CONTRACT (issue 12): the discovery and policy code (`crate::verify`, `crate::proxy`) finds
//! signature evidence in the registry and calls [`CosignVerifier::verify`]; this module decides.
//!
//! Submodules, one job each: [`payload`] (the simple-signing document and its digest and
//! repository claims), [`keys`] (public keys and the keyed signature check, aws-lc-rs),
//! [`identity`] (keyless signer identities), [`bundle`] (what a Sigstore bundle signs, and the
//! mapping of `sigstore-verify`'s failures to refusals), [`sig_tag`] (the `.sig` tag's
//! certificate and Rekor annotations as the bundle they amount to), [`memo`] (signature checks
//! already answered: the trusted root's own links once per verifier, repeats within a call).
//!
//! Which check runs:
//! - a `.sig` layer with a certificate, on a verifier with `identities`: keyless (Fulcio chain,
//!   SCT, Rekor SET, certificate valid at the integrated time, identity);
//! - a `.sig` layer otherwise, on a verifier with `keys`: the signature over the payload by one
//!   of the keys, and with `transparency = "require"` also its Rekor entry;
//! - a bundle: keyless if it carries a certificate, keyed if it names a public key.
//!
//! In every case the signed digest must be the digest served (and, for `.sig` payloads, the
//! `docker-reference` must name the repository unless `check_reference = false`).

pub mod bundle;
pub mod identity;
pub mod keys;
pub mod memo;
pub mod payload;
pub mod sig_tag;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use sigstore_verify::trust_root::TrustedRoot;
use sigstore_verify::types::bundle::VerificationMaterialContent;
use sigstore_verify::types::{Artifact, Bundle, DerPublicKey, SignatureContent};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, VerificationResult};

use crate::reference::Digest;
use crate::verify::config::{Transparency, VerifierConfig};

use identity::{Identity, Mismatch};
use keys::PublicKey;

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

impl CosignConfigError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

/// Why one signature was not accepted; the messages are what clients read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CosignRefusal {
    /// The simple-signing payload is not JSON of the expected shape.
    #[error("cosign payload is not a simple-signing document: {problem}")]
    PayloadInvalid { problem: String },
    /// `critical.type` is not cosign's.
    #[error("cosign payload type is \"{found}\", not \"{}\"", payload::COSIGN_TYPE)]
    PayloadType { found: String },
    /// The payload signs another manifest.
    #[error("signature is for {signed} not {expected}")]
    DigestMismatch { signed: String, expected: String },
    /// The payload names another repository (`check_reference = true`).
    #[error("signature is for repository {signed}, not {expected}")]
    RepositoryMismatch { signed: String, expected: String },
    /// The bundle's artifact is another manifest.
    #[error("bundle is for {signed} not {expected}")]
    BundleDigestMismatch { signed: String, expected: String },
    /// The `dev.cosignproject.cosign/signature` annotation is not base64.
    #[error("signature annotation is not base64")]
    SignatureEncoding,
    /// No configured key verifies the signature.
    #[error("signature not made by any key of verifier {verifier}")]
    NoMatchingKey { verifier: String },
    /// The verifier requires a transparency-log proof and the signature has none.
    #[error("no transparency log proof (transparency = \"require\")")]
    TransparencyMissing,
    /// The log entry, its promise (SET), inclusion proof or checkpoint does not verify, or does
    /// not describe this signature.
    #[error("transparency log proof invalid: {detail}")]
    TransparencyInvalid { detail: String },
    /// The certificate does not chain to a Fulcio CA of the trusted root.
    #[error("certificate not issued by a trusted Fulcio CA: {detail}")]
    CertificateUntrusted { detail: String },
    /// The certificate was not valid when the log or a timestamp authority saw the signature.
    #[error("certificate expired at signing time ({detail})")]
    CertificateExpired { detail: String },
    /// The certificate's Signed Certificate Timestamp is missing or not from a trusted CT log.
    #[error("certificate has no valid SCT from a trusted CT log: {detail}")]
    SctInvalid { detail: String },
    /// The certificate is malformed or not a code-signing certificate.
    #[error("certificate invalid: {detail}")]
    CertificateInvalid { detail: String },
    /// No identity of the verifier names the certificate's subject.
    #[error("certificate identity {subject} does not match")]
    IdentityMismatch { subject: String },
    /// An identity names the subject, but with another OIDC issuer.
    #[error("certificate identity {subject} does not match: issuer {issuer} is not accepted")]
    IssuerMismatch { subject: String, issuer: String },
    /// Neither a log integrated time nor a timestamp says when the certificate was used.
    #[error(
        "no verified signing time: neither a transparency log integrated time nor a trusted timestamp"
    )]
    NoSigningTime,
    /// An RFC 3161 timestamp does not verify.
    #[error("timestamp invalid: {detail}")]
    TimestampInvalid { detail: String },
    /// The signature does not verify with the certificate's or the named key.
    #[error("signature invalid: {detail}")]
    SignatureInvalid { detail: String },
    /// A keyless signature (a certificate) for a verifier without `identities`, or a keyed one
    /// for a verifier without `keys`.
    #[error("{what} signature, and verifier {verifier} accepts only {accepts} signatures")]
    WrongKind {
        what: &'static str,
        verifier: String,
        accepts: &'static str,
    },
    /// A bundle that is not an image signature (an attestation, another payload type).
    #[error("bundle is {what}, not a cosign image signature")]
    NotASignature { what: String },
    /// The bundle is malformed or unsupported.
    #[error("Sigstore bundle invalid: {problem}")]
    BundleInvalid { problem: String },
    /// A `.sig` layer annotation is malformed.
    #[error("annotation {annotation} invalid: {problem}")]
    AnnotationInvalid { annotation: String, problem: String },
}

/// A configured key: its file as written in the configuration, and the key.
#[derive(Debug)]
struct NamedKey {
    path: PathBuf,
    key: PublicKey,
}

impl NamedKey {
    fn signer(&self) -> String {
        format!("key {} ({})", self.path.display(), self.key.fingerprint())
    }
}

/// A `kind = "cosign"` verifier, built once from its table.
pub struct CosignVerifier {
    name: String,
    keys: Vec<NamedKey>,
    identities: Vec<Identity>,
    /// `sigstore-verify` prepared from the trusted root (log keys, Fulcio anchors, CT keys, TSAs);
    /// an empty root when none is configured (keyed verifiers that skip the log).
    trust: sigstore_verify::Verifier,
    /// The trusted root's own certificate links, verified once here rather than per bundle
    /// ([`memo`]).
    prepared: Arc<memo::Prepared>,
    transparency: Transparency,
    check_reference: bool,
}

impl fmt::Debug for CosignVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignVerifier")
            .field("name", &self.name)
            .field("keys", &self.keys)
            .field("identities", &self.identities.len())
            .field("transparency", &self.transparency)
            .field("check_reference", &self.check_reference)
            .finish_non_exhaustive()
    }
}

/// A trusted root with no authorities: what a keyed verifier without `trusted_root` verifies
/// against (signatures only; anything needing a log key or CA then fails closed).
const EMPTY_TRUSTED_ROOT: &str = r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1","tlogs":[],"certificateAuthorities":[],"ctlogs":[],"timestampAuthorities":[]}"#;

/// The trusted root prepared for verification: the crate's verifier (parsed keys and anchors)
/// and the root's certificate links checked once ([`memo::Prepared`]).
fn prepare(
    root: &TrustedRoot,
) -> Result<(sigstore_verify::Verifier, memo::Prepared), sigstore_verify::Error> {
    memo::install();
    let verifier = sigstore_verify::Verifier::new(root)?;
    Ok((verifier, memo::Prepared::from_trusted_root(root)))
}

fn load_trusted_root(
    path: &Path,
) -> Result<(sigstore_verify::Verifier, memo::Prepared), CosignConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CosignConfigError::new(
            "trusted_root",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let root = TrustedRoot::from_json(&text).map_err(|e| {
        CosignConfigError::new(
            "trusted_root",
            format!("{} is not a Sigstore trusted root: {e}", path.display()),
        )
    })?;
    prepare(&root).map_err(|e| {
        CosignConfigError::new(
            "trusted_root",
            format!("{} cannot be used: {e}", path.display()),
        )
    })
}

impl CosignVerifier {
    /// Builds the verifier, reading its key and trusted-root files (relative paths are taken from
    /// the working directory, like every path in the configuration).
    pub fn from_config(config: &VerifierConfig, base: &Path) -> Result<Self, CosignConfigError> {
        if config.keys.is_empty() && config.identities.is_empty() {
            return Err(CosignConfigError::new(
                "keys",
                "a cosign verifier needs `keys` (keyed signatures) or `identities` with \
                 `trusted_root` (keyless signatures)",
            ));
        }
        let mut keys = Vec::with_capacity(config.keys.len());
        for (i, path) in config.keys.iter().enumerate() {
            let key = format!("keys[{i}]");
            let file = base.join(path);
            let bytes = std::fs::read(&file).map_err(|e| {
                CosignConfigError::new(&key, format!("cannot read {}: {e}", file.display()))
            })?;
            let public = PublicKey::from_pem(&bytes)
                .map_err(|p| CosignConfigError::new(&key, format!("{}: {p}", file.display())))?;
            keys.push(NamedKey {
                path: path.clone(),
                key: public,
            });
        }
        let identities = config
            .identities
            .iter()
            .enumerate()
            .map(|(i, id)| Identity::from_config(i, id))
            .collect::<Result<Vec<_>, _>>()?;
        let transparency = config.transparency.unwrap_or(if identities.is_empty() {
            Transparency::Skip
        } else {
            Transparency::Require
        });
        let (trust, prepared) = match &config.trusted_root {
            Some(path) => load_trusted_root(&base.join(path))?,
            None if !identities.is_empty() => {
                return Err(CosignConfigError::new(
                    "trusted_root",
                    "keyless verification (`identities`) needs a Sigstore trusted root file \
                     (Fulcio CAs, Rekor and CT log keys)",
                ))
            }
            None if transparency == Transparency::Require => {
                return Err(CosignConfigError::new(
                    "trusted_root",
                    "`transparency = \"require\"` needs a Sigstore trusted root file for the \
                     transparency log's keys",
                ))
            }
            None => {
                let empty = TrustedRoot::from_json(EMPTY_TRUSTED_ROOT)
                    .map_err(|e| CosignConfigError::new("trusted_root", e.to_string()))?;
                prepare(&empty)
                    .map_err(|e| CosignConfigError::new("trusted_root", e.to_string()))?
            }
        };
        Ok(Self {
            name: config.name.clone(),
            keys,
            identities,
            trust,
            prepared: Arc::new(prepared),
            transparency,
            check_reference: config.check_reference,
        })
    }

    /// The verifier's name, as policies refer to it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies one piece of evidence for `expected`.
    ///
    /// `now` is not needed by the checks themselves: certificates are judged at the time the log
    /// or a timestamp authority saw the signature, not at `now`; `sigstore-verify` reads the
    /// clock only to refuse a log entry integrated in the future.
    pub fn verify(
        &self,
        evidence: &SignatureEvidence,
        expected: &Expected<'_>,
        _now: SystemTime,
    ) -> Result<Accepted, CosignRefusal> {
        let _scope = memo::Scope::enter(&self.prepared);
        match evidence {
            SignatureEvidence::SimpleSigning {
                payload: bytes,
                signature,
                certificate,
                chain,
                rekor_bundle,
                rfc3161_timestamp,
            } => {
                let claims = payload::parse(bytes)?;
                payload::check(&claims, expected, self.check_reference)?;
                match certificate {
                    Some(leaf) if !self.identities.is_empty() => {
                        if self.transparency == Transparency::Require && rekor_bundle.is_none() {
                            return Err(CosignRefusal::TransparencyMissing);
                        }
                        let bundle = sig_tag::to_bundle(
                            bytes,
                            signature,
                            sig_tag::Material::Certificate {
                                leaf,
                                chain: chain.as_deref(),
                            },
                            rekor_bundle.as_deref(),
                            rfc3161_timestamp.as_deref(),
                        )?;
                        self.verify_keyless(&bundle, Artifact::from(bytes.as_ref()))
                    }
                    _ if !self.keys.is_empty() => self.verify_keyed_simple(
                        bytes,
                        signature,
                        rekor_bundle.as_deref(),
                        rfc3161_timestamp.as_deref(),
                    ),
                    _ => Err(self.wrong_kind(certificate.is_some())),
                }
            }
            SignatureEvidence::Bundle(json) => {
                let bundle = bundle::parse(json)?;
                bundle::check_binding(&bundle, expected)?;
                self.verify_parsed_bundle(&bundle, Artifact::from(bundle::artifact(expected)))
            }
        }
    }

    /// The Sigstore bundle check alone, for an artifact given by its SHA-256: no cosign
    /// predicate or `docker-reference` rule. This is what the Sigstore conformance suite's
    /// vectors (signatures over files) exercise; images go through [`Self::verify`].
    pub fn verify_bundle_for_artifact(
        &self,
        bundle_json: &[u8],
        artifact_sha256: &Digest,
    ) -> Result<Accepted, CosignRefusal> {
        let _scope = memo::Scope::enter(&self.prepared);
        let bundle = bundle::parse(bundle_json)?;
        let artifact = Artifact::from(sigstore_verify::types::Sha256Hash::from(
            *artifact_sha256.bytes(),
        ));
        self.verify_parsed_bundle(&bundle, artifact)
    }

    /// A bundle whose binding to the artifact is established: keyed or keyless by its material.
    fn verify_parsed_bundle(
        &self,
        bundle: &Bundle,
        artifact: Artifact<'_>,
    ) -> Result<Accepted, CosignRefusal> {
        if self.transparency == Transparency::Require
            && bundle.verification_material.tlog_entries.is_empty()
        {
            return Err(CosignRefusal::TransparencyMissing);
        }
        match &bundle.verification_material.content {
            VerificationMaterialContent::PublicKey(_) if !self.keys.is_empty() => {
                self.verify_keyed_bundle(bundle, artifact)
            }
            VerificationMaterialContent::PublicKey(_) => Err(self.wrong_kind(false)),
            _ if !self.identities.is_empty() => self.verify_keyless(bundle, artifact),
            _ => Err(self.wrong_kind(true)),
        }
    }

    fn wrong_kind(&self, keyless: bool) -> CosignRefusal {
        let (what, accepts) = if keyless {
            ("keyless (certificate)", "keyed")
        } else {
            ("keyed", "keyless")
        };
        CosignRefusal::WrongKind {
            what,
            verifier: self.name.clone(),
            accepts,
        }
    }

    /// A keyed `.sig` signature: the signature over the payload bytes by any configured key
    /// (aws-lc-rs), then, under `transparency = "require"`, its Rekor entry.
    fn verify_keyed_simple(
        &self,
        payload: &[u8],
        signature: &str,
        rekor_bundle: Option<&str>,
        rfc3161_timestamp: Option<&str>,
    ) -> Result<Accepted, CosignRefusal> {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| CosignRefusal::SignatureEncoding)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.key.verifies(payload, &raw))
            .ok_or_else(|| CosignRefusal::NoMatchingKey {
                verifier: self.name.clone(),
            })?;
        let mut accepted = Accepted {
            signer: key.signer(),
            issuer: None,
            signed_at: None,
        };
        if self.transparency == Transparency::Require {
            let Some(rekor_bundle) = rekor_bundle else {
                return Err(CosignRefusal::TransparencyMissing);
            };
            let bundle = sig_tag::to_bundle(
                payload,
                signature,
                sig_tag::Material::PublicKey,
                Some(rekor_bundle),
                rfc3161_timestamp,
            )?;
            let policy =
                PublicKeyVerificationPolicy::new(DerPublicKey::new(key.key.spki_der().to_vec()));
            let result = self
                .trust
                .verify(Artifact::from(payload), &bundle, &policy)
                .map_err(bundle::refusal)?;
            accepted.signed_at = signed_at(&result);
        }
        Ok(accepted)
    }

    /// A bundle naming a public key: verified with each configured key in turn.
    fn verify_keyed_bundle(
        &self,
        bundle: &Bundle,
        artifact: Artifact<'_>,
    ) -> Result<Accepted, CosignRefusal> {
        // A keyed DSSE signature made without the log (`cosign sign --tlog-upload=false`) and
        // without a timestamp has nothing for `sigstore-verify` to check but the signature, and
        // the crate refuses a bundle with no time evidence at all; under `transparency = "skip"`
        // the envelope's signature is what cosign checks then, so it is checked here.
        let material = &bundle.verification_material;
        if self.transparency == Transparency::Skip
            && material.tlog_entries.is_empty()
            && material
                .timestamp_verification_data
                .rfc3161_timestamps
                .is_empty()
        {
            if let SignatureContent::DsseEnvelope(envelope) = &bundle.content {
                let pae = envelope.pae();
                return self
                    .keys
                    .iter()
                    .find(|k| k.key.verifies(&pae, envelope.signature.sig.as_bytes()))
                    .map(|k| Accepted {
                        signer: k.signer(),
                        issuer: None,
                        signed_at: None,
                    })
                    .ok_or_else(|| CosignRefusal::NoMatchingKey {
                        verifier: self.name.clone(),
                    });
            }
        }
        let mut first_other = None;
        for key in &self.keys {
            let mut policy =
                PublicKeyVerificationPolicy::new(DerPublicKey::new(key.key.spki_der().to_vec()));
            if self.transparency == Transparency::Skip {
                policy = policy.skip_tlog_unsafe();
            }
            match self.trust.verify(artifact.clone(), bundle, &policy) {
                Ok(result) => {
                    return Ok(Accepted {
                        signer: key.signer(),
                        issuer: None,
                        signed_at: signed_at(&result),
                    })
                }
                // Another key's signature: try the next key.
                Err(sigstore_verify::Error::SignatureInvalid(_))
                | Err(sigstore_verify::Error::Crypto(_)) => {}
                Err(other) => {
                    first_other.get_or_insert(other);
                }
            }
        }
        Err(match first_other {
            Some(err) => bundle::refusal(err),
            None => CosignRefusal::NoMatchingKey {
                verifier: self.name.clone(),
            },
        })
    }

    /// A certificate-based bundle: the crate checks chain, SCT, log and signature for any
    /// identity; the identity rule (exact or anchored regex) is applied to what it verified.
    fn verify_keyless(
        &self,
        bundle: &Bundle,
        artifact: Artifact<'_>,
    ) -> Result<Accepted, CosignRefusal> {
        let mut policy = VerificationPolicy::any_identity();
        if self.transparency == Transparency::Skip {
            policy = policy.skip_tlog_unsafe();
        }
        let result = self
            .trust
            .verify(artifact, bundle, &policy)
            .map_err(bundle::refusal)?;
        let subject = result
            .identity()
            .map(|san| san.as_str().to_string())
            .unwrap_or_else(|| "(none)".to_string());
        let issuer = result.issuer().unwrap_or_default().to_string();
        match identity::check(&self.identities, &subject, &issuer) {
            Ok(()) => Ok(Accepted {
                signed_at: signed_at(&result),
                signer: subject,
                issuer: Some(issuer),
            }),
            Err(Mismatch::Subject) => Err(CosignRefusal::IdentityMismatch { subject }),
            Err(Mismatch::Issuer) => Err(CosignRefusal::IssuerMismatch { subject, issuer }),
        }
    }
}

/// The log's integrated time, else the earliest verified timestamp.
fn signed_at(result: &VerificationResult) -> Option<SystemTime> {
    result
        .integrated_time()
        .or_else(|| result.verified_timestamps().iter().min().copied())
        .map(SystemTime::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
    use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
    use base64::Engine as _;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    /// A signing key of each kind cosign uses, with its PEM public key.
    enum Signer {
        Ecdsa(EcdsaKeyPair),
        Rsa(RsaKeyPair),
        Ed(Ed25519KeyPair),
    }

    impl Signer {
        fn ecdsa(alg: &'static signature::EcdsaSigningAlgorithm) -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            Signer::Ecdsa(EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap())
        }
        fn rsa() -> Self {
            let key = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
            let der = key.as_der().unwrap();
            Signer::Rsa(RsaKeyPair::from_pkcs8(der.as_ref()).unwrap())
        }
        fn ed25519() -> Self {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            Signer::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
        }
        fn public_pem(&self) -> String {
            let der = match self {
                Signer::Ecdsa(k) => AsDer::<PublicKeyX509Der>::as_der(k.public_key())
                    .unwrap()
                    .as_ref()
                    .to_vec(),
                Signer::Rsa(k) => AsDer::<PublicKeyX509Der>::as_der(k.public_key())
                    .unwrap()
                    .as_ref()
                    .to_vec(),
                Signer::Ed(k) => AsDer::<PublicKeyX509Der>::as_der(k.public_key())
                    .unwrap()
                    .as_ref()
                    .to_vec(),
            };
            pem::encode(&pem::Pem::new("PUBLIC KEY", der))
        }
        fn sign(&self, msg: &[u8], rsa_padding: &'static dyn signature::RsaEncoding) -> String {
            let rng = SystemRandom::new();
            let sig = match self {
                Signer::Ecdsa(k) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
                Signer::Rsa(k) => {
                    let mut out = vec![0; k.public_modulus_len()];
                    k.sign(rsa_padding, &rng, msg, &mut out).unwrap();
                    out
                }
                Signer::Ed(k) => k.sign(msg).as_ref().to_vec(),
            };
            base64::engine::general_purpose::STANDARD.encode(sig)
        }
    }

    fn payload(reference: &str, digest: &str) -> Bytes {
        Bytes::from(format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        ))
    }

    fn keyed_verifier(dir: &Path, pems: &[String]) -> CosignVerifier {
        let mut keys = Vec::new();
        for (i, pem) in pems.iter().enumerate() {
            let name = format!("k{i}.pub");
            std::fs::write(dir.join(&name), pem).unwrap();
            keys.push(PathBuf::from(name));
        }
        let config = VerifierConfig {
            name: "acme-release".into(),
            kind: crate::verify::config::VerifierKind::Cosign,
            keys,
            identities: vec![],
            trusted_root: None,
            transparency: None,
            check_reference: true,
            ..Default::default()
        };
        CosignVerifier::from_config(&config, dir).unwrap()
    }

    fn evidence(payload: Bytes, signature: String) -> SignatureEvidence {
        SignatureEvidence::SimpleSigning {
            payload,
            signature,
            certificate: None,
            chain: None,
            rekor_bundle: None,
            rfc3161_timestamp: None,
        }
    }

    fn check(
        signer: &Signer,
        sig_of: impl Fn(&Signer, &[u8]) -> String,
    ) -> Result<Accepted, CosignRefusal> {
        let dir = tempfile::tempdir().unwrap();
        let other = Signer::ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING);
        let verifier = keyed_verifier(dir.path(), &[other.public_pem(), signer.public_pem()]);
        let digest = Digest::parse(DIGEST).unwrap();
        let p = payload("registry.example/team/app", DIGEST);
        let sig = sig_of(signer, &p);
        let expected = Expected {
            registry_host: "registry.example",
            repository: "team/app",
            digest: &digest,
        };
        verifier.verify(&evidence(p, sig), &expected, SystemTime::now())
    }

    #[test]
    fn every_cosign_key_kind_verifies() {
        let pkcs1 = |s: &Signer, m: &[u8]| s.sign(m, &signature::RSA_PKCS1_SHA256);
        for signer in [
            Signer::ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING),
            Signer::ecdsa(&signature::ECDSA_P384_SHA384_ASN1_SIGNING),
            Signer::rsa(),
            Signer::ed25519(),
        ] {
            let accepted = check(&signer, pkcs1).unwrap();
            assert!(
                accepted.signer.starts_with("key k1.pub (sha256:"),
                "{}",
                accepted.signer
            );
            assert_eq!(accepted.issuer, None);
        }
    }

    #[test]
    fn rsa_pss_is_refused_as_cosign_refuses_it() {
        let err = check(&Signer::rsa(), |s, m| s.sign(m, &signature::RSA_PSS_SHA256)).unwrap_err();
        assert_eq!(
            err,
            CosignRefusal::NoMatchingKey {
                verifier: "acme-release".into()
            }
        );
    }

    #[test]
    fn wrong_key_is_refused_naming_the_verifier() {
        let stranger = Signer::ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING);
        let dir = tempfile::tempdir().unwrap();
        let verifier = keyed_verifier(
            dir.path(),
            &[Signer::ecdsa(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).public_pem()],
        );
        let digest = Digest::parse(DIGEST).unwrap();
        let p = payload("registry.example/team/app", DIGEST);
        let sig = stranger.sign(&p, &signature::RSA_PKCS1_SHA256);
        let expected = Expected {
            registry_host: "registry.example",
            repository: "team/app",
            digest: &digest,
        };
        let err = verifier
            .verify(&evidence(p, sig), &expected, SystemTime::now())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "signature not made by any key of verifier acme-release"
        );
    }

    #[test]
    fn a_signature_over_other_bytes_is_refused() {
        let err = check(&Signer::ed25519(), |s, m| {
            let mut other = m.to_vec();
            other.push(b' ');
            s.sign(&other, &signature::RSA_PKCS1_SHA256)
        })
        .unwrap_err();
        assert!(matches!(err, CosignRefusal::NoMatchingKey { .. }));
        let err = check(&Signer::ed25519(), |_, _| "not base64!".into()).unwrap_err();
        assert_eq!(err, CosignRefusal::SignatureEncoding);
    }

    #[test]
    fn config_errors_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cert.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let mut config = VerifierConfig {
            name: "v".into(),
            kind: crate::verify::config::VerifierKind::Cosign,
            keys: vec![],
            identities: vec![],
            trusted_root: None,
            transparency: None,
            check_reference: true,
            ..Default::default()
        };
        let err = CosignVerifier::from_config(&config, dir.path()).unwrap_err();
        assert_eq!(err.key, "keys");
        config.keys = vec!["missing.pub".into()];
        let err = CosignVerifier::from_config(&config, dir.path()).unwrap_err();
        assert_eq!(err.key, "keys[0]");
        assert!(err.problem.contains("cannot read"), "{err}");
        config.keys = vec![PathBuf::from("missing.pub"), PathBuf::from("cert.pem")];
        config.keys.swap(0, 1);
        let err = CosignVerifier::from_config(&config, dir.path()).unwrap_err();
        assert_eq!(err.key, "keys[0]");
        assert!(err.problem.contains("not a public key"), "{err}");
    }
}
