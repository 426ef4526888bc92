//! Public keys of keyed cosign verifiers (`keys = ["cosign.pub", …]`) and the signature check
//! over the payload bytes, with aws-lc-rs (the binary's one crypto provider).
//!
//! Which algorithm a key implies follows cosign's `verify --key`: it loads the PEM with
//! `signature.LoadVerifier(pub, crypto.SHA256)` (sigstore/cosign `pkg/signature/keys.go`), so
//! - ECDSA P-256: ASN.1 DER signature over SHA-256;
//! - ECDSA P-384: SHA-256 is what `cosign verify` checks by default, but cosign's signer picks
//!   the curve's own SHA-384 when it loads a P-384 key with default options; both hashes are
//!   accepted (both are sound for the key's holder, and signers of both kinds exist);
//! - RSA: PKCS#1 v1.5 with SHA-256 (sigstore's `LoadVerifier` never picks PSS for an RSA key,
//!   so neither does trustgate);
//! - Ed25519: pure Ed25519 over the payload.

use std::fmt;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use sha2::{Digest as _, Sha256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The key algorithms cosign keys come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    Rsa,
    Ed25519,
}

impl KeyKind {
    /// The signature algorithms accepted for this kind of key (see the module comment).
    fn algorithms(self) -> &'static [&'static dyn VerificationAlgorithm] {
        match self {
            KeyKind::EcdsaP256 => &[&signature::ECDSA_P256_SHA256_ASN1],
            KeyKind::EcdsaP384 => &[
                &signature::ECDSA_P384_SHA384_ASN1,
                &signature::ECDSA_P384_SHA256_ASN1,
            ],
            KeyKind::Rsa => &[&signature::RSA_PKCS1_2048_8192_SHA256],
            KeyKind::Ed25519 => &[&signature::ED25519],
        }
    }
}

/// One public key, parsed once at start-up.
pub struct PublicKey {
    kind: KeyKind,
    /// The SubjectPublicKeyInfo's key bits: the SEC1 point (ECDSA), the PKCS#1 `RSAPublicKey`
    /// (RSA), the 32-byte key (Ed25519); what aws-lc-rs's `UnparsedPublicKey` takes.
    raw: Vec<u8>,
    /// The DER SubjectPublicKeyInfo (what `sigstore-verify` takes for keyed bundles).
    der: Vec<u8>,
    /// SHA-256 of the DER SubjectPublicKeyInfo, hex: how operators tell keys apart
    /// (the same value as `cosign public-key | openssl pkey -pubin -outform der | sha256sum`).
    fingerprint: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} key sha256:{}", self.kind, self.fingerprint)
    }
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `cosign generate-key-pair` and
    /// `openssl pkey -pubout` write it. The error says what the file is instead.
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, String> {
        let block = pem::parse(pem_bytes).map_err(|e| format!("not a PEM file ({e})"))?;
        if block.tag() != "PUBLIC KEY" {
            return Err(format!(
                "not a public key: the PEM block is \"{}\", expected \"PUBLIC KEY\"",
                block.tag()
            ));
        }
        Self::from_spki_der(block.contents())
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, String> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| format!("not a SubjectPublicKeyInfo ({e})"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the SubjectPublicKeyInfo".to_string());
        }
        let oid = &spki.algorithm.algorithm;
        let kind = if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == OID_EC_P256 => KeyKind::EcdsaP256,
                Some(c) if c == OID_NIST_EC_P384 => KeyKind::EcdsaP384,
                Some(c) => return Err(format!("unsupported elliptic curve {c}")),
                None => return Err("ECDSA key without a named curve".to_string()),
            }
        } else if *oid == OID_PKCS1_RSAENCRYPTION {
            KeyKind::Rsa
        } else if *oid == OID_SIG_ED25519 {
            KeyKind::Ed25519
        } else {
            return Err(format!(
                "unsupported key algorithm {oid} (cosign keys are ECDSA P-256/P-384, RSA or Ed25519)"
            ));
        };
        let raw = spki.subject_public_key.data.to_vec();
        // Reject a malformed key now rather than at the first signature: aws-lc-rs parses the
        // key on every verify, so an empty message with an empty signature exercises the parse.
        // (A bad key fails the same way as a bad signature, so check the encodings directly.)
        let plausible = match kind {
            KeyKind::EcdsaP256 => raw.len() == 65 && raw[0] == 4,
            KeyKind::EcdsaP384 => raw.len() == 97 && raw[0] == 4,
            KeyKind::Ed25519 => raw.len() == 32,
            KeyKind::Rsa => raw.first() == Some(&0x30),
        };
        if !plausible {
            return Err(format!("malformed {kind:?} public key"));
        }
        let fingerprint = hex::encode(Sha256::digest(der));
        Ok(Self {
            kind,
            raw,
            der: der.to_vec(),
            fingerprint,
        })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.der
    }

    /// `sha256:<hex>` of the SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> String {
        format!("sha256:{}", self.fingerprint)
    }

    /// Whether `signature` over `message` was made with this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.kind.algorithms().iter().any(|alg| {
            UnparsedPublicKey::new(*alg, &self.raw)
                .verify(message, signature)
                .is_ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    fn spki_pem(der: &[u8]) -> String {
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.to_vec()))
    }

    #[test]
    fn ecdsa_p256_signature_verifies_and_another_message_does_not() {
        let rng = SystemRandom::new();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
                .unwrap();
        let spki = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
            pair.public_key(),
        )
        .unwrap();
        let key = PublicKey::from_pem(spki_pem(spki.as_ref()).as_bytes()).unwrap();
        assert_eq!(key.kind(), KeyKind::EcdsaP256);
        let sig = pair.sign(&rng, b"payload").unwrap();
        assert!(key.verifies(b"payload", sig.as_ref()));
        assert!(!key.verifies(b"payloaD", sig.as_ref()));
    }

    #[test]
    fn ed25519_key_parses() {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let spki = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
            pair.public_key(),
        )
        .unwrap();
        let key = PublicKey::from_spki_der(spki.as_ref()).unwrap();
        assert_eq!(key.kind(), KeyKind::Ed25519);
        assert!(key.verifies(b"m", pair.sign(b"m").as_ref()));
    }

    #[test]
    fn refuses_what_is_not_a_public_key() {
        let err =
            PublicKey::from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .unwrap_err();
        assert!(err.contains("not a public key"), "{err}");
        assert!(PublicKey::from_pem(b"hello")
            .unwrap_err()
            .contains("not a PEM file"));
        let err = PublicKey::from_pem(spki_pem(b"\x30\x03\x02\x01\x01").as_bytes()).unwrap_err();
        assert!(err.contains("SubjectPublicKeyInfo"), "{err}");
    }
}
