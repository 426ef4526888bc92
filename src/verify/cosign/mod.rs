//! cosign (Sigstore) signature verification: pure logic, no I/O but reading the verifier's own
//! files at construction.
//!
//! CONTRACT (issue 12): the discovery and policy code (`crate::verify`, `crate::proxy`) finds
//! signature evidence in the registry and calls [`CosignVerifier::verify`]; this module decides.
//!
//! Submodules, one job each: [`payload`] (the simple-signing document and its digest and
//! repository claims), [`keys`] (public keys and the keyed signature check).

pub mod keys;
pub mod payload;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;

use crate::reference::Digest;
use crate::verify::config::{Transparency, VerifierConfig};

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
    #[error("signature verification is not implemented yet")]
    NotImplemented,
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
}

/// A `kind = "cosign"` verifier, built once from its table.
#[derive(Debug)]
pub struct CosignVerifier {
    name: String,
    /// Keyed: (the key's file as configured, the key).
    keys: Vec<(PathBuf, PublicKey)>,
    transparency: Transparency,
    check_reference: bool,
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
            keys.push((path.clone(), public));
        }
        let transparency = config
            .transparency
            .unwrap_or(if config.identities.is_empty() {
                Transparency::Skip
            } else {
                Transparency::Require
            });
        Ok(Self {
            name: config.name.clone(),
            keys,
            transparency,
            check_reference: config.check_reference,
        })
    }

    /// The verifier's name, as policies refer to it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Verifies one piece of evidence for `expected` at `now`.
    pub fn verify(
        &self,
        evidence: &SignatureEvidence,
        expected: &Expected<'_>,
        _now: SystemTime,
    ) -> Result<Accepted, CosignRefusal> {
        match evidence {
            SignatureEvidence::SimpleSigning {
                payload: bytes,
                signature,
                ..
            } => {
                let claims = payload::parse(bytes)?;
                payload::check(&claims, expected, self.check_reference)?;
                self.verify_keyed(bytes, signature)
            }
            SignatureEvidence::Bundle(_) => Err(CosignRefusal::NotImplemented),
        }
    }

    /// The keyed check: the signature over the payload bytes, by any configured key.
    fn verify_keyed(&self, payload: &[u8], signature: &str) -> Result<Accepted, CosignRefusal> {
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| CosignRefusal::SignatureEncoding)?;
        // Checking a log entry needs the trusted root's log keys (the keyless path); until a
        // keyed signature's entry is checked here, `require` fails closed.
        if self.transparency == Transparency::Require {
            return Err(CosignRefusal::TransparencyMissing);
        }
        self.keys
            .iter()
            .find(|(_, key)| key.verifies(payload, &signature))
            .map(|(path, key)| Accepted {
                signer: format!("key {} ({})", path.display(), key.fingerprint()),
                issuer: None,
                signed_at: None,
            })
            .ok_or_else(|| CosignRefusal::NoMatchingKey {
                verifier: self.name.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
    use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

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
