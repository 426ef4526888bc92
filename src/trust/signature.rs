//! Signature methods (`notary:tuf/signed/verifiers.go`) and threshold counting over distinct key
//! IDs (`notary:tuf/signed/verify.go` VerifySignatures).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::trust::keys::{KeyMaterial, PublicKey};

/// One entry of an envelope's `signatures` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureJson {
    /// Key ID of the signing key.
    pub keyid: String,
    /// Method name; compared case-insensitively.
    pub method: String,
    /// Base64 (standard) signature bytes.
    pub sig: String,
}

/// Supported signature methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// ECDSA P-256 over SHA-256, raw `r‖s` (64 bytes).
    Ecdsa,
    /// Ed25519 (Notary calls it `eddsa`).
    Eddsa,
    /// RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length 32.
    RsaPss,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1v15,
}

impl Method {
    /// Parse a method name (case-insensitive). The legacy `pycrypto-pkcs#1 pss` is unsupported.
    pub fn parse(name: &str) -> Option<Method> {
        match name.to_ascii_lowercase().as_str() {
            "ecdsa" => Some(Method::Ecdsa),
            "eddsa" => Some(Method::Eddsa),
            "rsapss" => Some(Method::RsaPss),
            "rsapkcs1v15" => Some(Method::RsaPkcs1v15),
            _ => None,
        }
    }

    /// The name Notary writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ecdsa => "ecdsa",
            Method::Eddsa => "eddsa",
            Method::RsaPss => "rsapss",
            Method::RsaPkcs1v15 => "rsapkcs1v15",
        }
    }
}

/// Verify one signature over `msg` (the canonical bytes). False on any mismatch of method and key
/// type, malformed signature bytes or a bad signature.
pub fn verify(key: &PublicKey, method: Method, msg: &[u8], sig: &[u8]) -> bool {
    let Some(material) = key.material() else {
        return false;
    };
    match (method, material) {
        (Method::Ecdsa, KeyMaterial::P256(k)) => {
            use p256::ecdsa::signature::Verifier;
            // Raw r‖s only; DER (or any other length) is invalid, as in Notary.
            if sig.len() != 64 {
                return false;
            }
            match p256::ecdsa::Signature::from_slice(sig) {
                Ok(s) => k.verify(msg, &s).is_ok(),
                Err(_) => false,
            }
        }
        (Method::Eddsa, KeyMaterial::Ed25519(k)) => match ed25519_dalek::Signature::from_slice(sig)
        {
            Ok(s) => k.verify_strict(msg, &s).is_ok(),
            Err(_) => false,
        },
        (Method::RsaPss, KeyMaterial::Rsa(k)) => {
            // Pss::new::<Sha256>() uses a salt length of 32 (the digest size), as Notary does.
            k.verify(rsa::Pss::new::<Sha256>(), &Sha256::digest(msg), sig)
                .is_ok()
        }
        (Method::RsaPkcs1v15, KeyMaterial::Rsa(k)) => k
            .verify(
                rsa::Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(msg),
                sig,
            )
            .is_ok(),
        _ => false,
    }
}

/// A role's keys and threshold, as declared by its parent.
#[derive(Debug, Clone)]
pub struct RoleKeys<'a> {
    /// Role name (for messages).
    pub role: &'a str,
    /// Key IDs allowed to sign.
    pub key_ids: &'a [String],
    /// Keys by ID (may contain keys of other roles).
    pub keys: &'a BTreeMap<String, PublicKey>,
    /// Required number of distinct valid keys.
    pub threshold: u32,
}

/// Why a threshold check failed (mapped to a [`crate::trust::TrustError`] by the caller, who knows the GUN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThresholdFailure {
    /// No signatures at all.
    NoSignatures,
    /// Threshold < 1.
    BadThreshold,
    /// A signature names a role key whose content hashes to another ID.
    KeyIdMismatch(String),
    /// Not enough valid signatures, and a signature used an unknown method.
    UnsupportedMethod(String),
    /// Not enough valid signatures, and a role key has an unsupported type.
    UnsupportedKeyType { key_id: String, key_type: String },
    /// Not enough valid signatures.
    Threshold { valid: usize },
}

/// Count distinct role keys with a valid signature over `msg`; returns their IDs (sorted) when the
/// threshold is met. Signatures by keys outside the role are ignored; two signatures by one key
/// count once.
pub fn check_threshold(
    role: &RoleKeys<'_>,
    msg: &[u8],
    sigs: &[SignatureJson],
) -> Result<Vec<String>, ThresholdFailure> {
    use base64::Engine as _;
    if sigs.is_empty() {
        return Err(ThresholdFailure::NoSignatures);
    }
    if role.threshold < 1 {
        return Err(ThresholdFailure::BadThreshold);
    }
    let mut valid: BTreeSet<&str> = BTreeSet::new();
    let mut unsupported_method = None;
    let mut unsupported_key = None;
    for s in sigs {
        if !role.key_ids.contains(&s.keyid) || valid.contains(s.keyid.as_str()) {
            continue;
        }
        let Some(key) = role.keys.get(&s.keyid) else {
            continue;
        };
        if key.id() != s.keyid {
            return Err(ThresholdFailure::KeyIdMismatch(s.keyid.clone()));
        }
        let Some(method) = Method::parse(&s.method) else {
            unsupported_method.get_or_insert_with(|| s.method.clone());
            continue;
        };
        if !key.is_supported() {
            unsupported_key
                .get_or_insert_with(|| (key.id().to_string(), key.key_type().to_string()));
            continue;
        }
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(s.sig.as_bytes()) else {
            continue;
        };
        if verify(key, method, msg, &sig) {
            valid.insert(s.keyid.as_str());
        }
    }
    if valid.len() >= role.threshold as usize {
        return Ok(valid.into_iter().map(str::to_string).collect());
    }
    if let Some(m) = unsupported_method {
        return Err(ThresholdFailure::UnsupportedMethod(m));
    }
    if let Some((key_id, key_type)) = unsupported_key {
        return Err(ThresholdFailure::UnsupportedKeyType { key_id, key_type });
    }
    Err(ThresholdFailure::Threshold { valid: valid.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// Reference vector 3 (computed independently with Python's `cryptography`): the RFC 8032 test-1 key signs a timestamp.
    #[test]
    fn vector_3_timestamp_signature() {
        let public =
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap();
        let key = PublicKey::new("ed25519", public);
        let msg = br#"{"_type":"Timestamp","expires":"2030-01-01T00:00:00Z","meta":{"snapshot":{"hashes":{"sha256":"LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="},"length":5}},"version":1}"#;
        let sig = base64::engine::general_purpose::STANDARD
            .decode("Yt5TzM6qaVeFwVtSnYC3AvG3wZJpa+zPx46zIJrUe3qJJ8xtdhznEVAxsDwETpC0ZhZr5h0pfrWrW3w/DJuCCg==")
            .unwrap();
        assert!(verify(&key, Method::Eddsa, msg, &sig));
        assert!(!verify(&key, Method::Ecdsa, msg, &sig));
        let mut bad = msg.to_vec();
        bad[10] ^= 1;
        assert!(!verify(&key, Method::Eddsa, &bad, &sig));
        // Threshold: one key, signed twice, threshold 2 → one distinct key only.
        let keys: BTreeMap<String, PublicKey> =
            [(key.id().to_string(), key.clone())].into_iter().collect();
        let ids = vec![key.id().to_string()];
        let s = SignatureJson {
            keyid: key.id().to_string(),
            method: "EdDSA".into(),
            sig: base64::engine::general_purpose::STANDARD.encode(&sig),
        };
        let role = RoleKeys {
            role: "timestamp",
            key_ids: &ids,
            keys: &keys,
            threshold: 1,
        };
        assert_eq!(
            check_threshold(&role, msg, std::slice::from_ref(&s)).unwrap(),
            ids
        );
        let role2 = RoleKeys {
            threshold: 2,
            ..role.clone()
        };
        assert_eq!(
            check_threshold(&role2, msg, &[s.clone(), s.clone()]),
            Err(ThresholdFailure::Threshold { valid: 1 })
        );
        assert_eq!(
            check_threshold(&role, msg, &[]),
            Err(ThresholdFailure::NoSignatures)
        );
        let unk = SignatureJson {
            method: "dsa".into(),
            ..s
        };
        assert_eq!(
            check_threshold(&role, msg, &[unk]),
            Err(ThresholdFailure::UnsupportedMethod("dsa".into()))
        );
    }

    #[test]
    fn ecdsa_raw_only_and_rsa_methods() {
        use crate::trust::testkit::TestKey;
        let msg = b"message";
        let k = TestKey::ecdsa(9);
        let key = PublicKey::new(&k.key_type, k.public.clone());
        let (_, raw) = k.sign(msg);
        assert_eq!(raw.len(), 64);
        assert!(verify(&key, Method::Ecdsa, msg, &raw));
        // The same signature DER-encoded is rejected (Notary uses raw r||s).
        let der = p256::ecdsa::Signature::from_slice(&raw).unwrap().to_der();
        assert!(!verify(&key, Method::Ecdsa, msg, der.as_bytes()));
        for m in ["rsapss", "rsapkcs1v15"] {
            let k = TestKey::rsa().with_method(m);
            let key = PublicKey::new(&k.key_type, k.public.clone());
            let (method, sig) = k.sign(msg);
            let method = Method::parse(&method).unwrap();
            assert!(verify(&key, method, msg, &sig), "{m}");
            assert!(!verify(&key, method, b"other", &sig), "{m}");
            let other = if method == Method::RsaPss {
                Method::RsaPkcs1v15
            } else {
                Method::RsaPss
            };
            assert!(!verify(&key, other, msg, &sig), "{m}");
        }
    }
}
