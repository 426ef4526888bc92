//! Signature methods (`notary:tuf/signed/verifiers.go`) and threshold counting over distinct key
//! IDs (`notary:tuf/signed/verify.go` VerifySignatures).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

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

/// Verify one signature over `msg` (the canonical bytes) with aws-lc-rs. False on any mismatch of
/// method and key type, malformed signature bytes or a bad signature.
pub fn verify(key: &PublicKey, method: Method, msg: &[u8], sig: &[u8]) -> bool {
    let Some(material) = key.material() else {
        return false;
    };
    let parsed = match (method, material) {
        // Raw r‖s only; DER (or any other length) is invalid, as in Notary. aws-lc-rs also
        // refuses r or s of zero or not below the group order; high S is accepted, as Go does.
        (Method::Ecdsa, KeyMaterial::P256(k)) if sig.len() == 64 => k,
        (Method::Eddsa, KeyMaterial::Ed25519(k)) => {
            if sig.len() != 64 || small_order(key.public_bytes()) || small_order(&sig[..32]) {
                return false;
            }
            k
        }
        // RSA_PSS_*: MGF1 with the same hash and a salt exactly as long as the digest (32), as
        // Notary signs; the signature must be exactly as long as the modulus.
        (Method::RsaPss, KeyMaterial::Rsa { pss, .. }) => pss,
        (Method::RsaPkcs1v15, KeyMaterial::Rsa { pkcs1, .. }) => pkcs1,
        _ => return false,
    };
    parsed.verify_sig(msg, sig).is_ok()
}

/// Encodings of the points of order 1, 2, 4 and 8 on edwards25519 (y = 1, p−1, 0, and the two of
/// order 8; then y = 0 and 1 written as p and p+1), compared without the x sign bit. aws-lc
/// verifies Ed25519 like RFC 8032 (cofactorless, S < L, canonical encodings) but accepts a
/// small-order public key or R: with the identity as key, (R = identity, S = 0) verifies for any
/// message. Notary's keys never are such points, and the verifier has always refused them
/// (ed25519-dalek's `verify_strict`), so they are refused here before aws-lc is asked.
const SMALL_ORDER: [[u8; 32]; 7] = [
    [0; 32],
    [
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
    [
        0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x7f,
    ],
];

/// Whether a 32-byte Ed25519 point encoding is one of [`SMALL_ORDER`] (sign bit ignored).
fn small_order(point: &[u8]) -> bool {
    SMALL_ORDER
        .iter()
        .any(|s| point.len() == 32 && point[..31] == s[..31] && (point[31] & 0x7f) == s[31])
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
        let der = crate::trust::testkit::ecdsa_raw_to_der(&raw);
        assert!(!verify(&key, Method::Ecdsa, msg, &der));
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

    // ---- edge cases pinned when the checks moved from RustCrypto to aws-lc-rs ----
    // Vectors made independently with scripts/crypto-edge-vectors.py (Python `cryptography` and
    // integer arithmetic), over b"message", with the testkit keys.

    const ECDSA_LOW_S: &str =
        "f5020df71d9f369cac7ed20e13906b04b549f1d2c17711d78bed394942318fcb6392a0c865f7eae47478069bd5dbfcdfa35e1ffaa36763aa968f5177c78820e4";
    const ECDSA_HIGH_S: &str =
        "f5020df71d9f369cac7ed20e13906b04b549f1d2c17711d78bed394942318fcb9c6d5f369a08151c8b87f9642a2403201988dab303b03ada5d2a794b34db046d";
    const RSA_PSS_SALT_32: &str = concat!(
        "cc05ffbfcf19e899fdd77a66f4fdef3a7c0fea5bcefe341cfeb1b373787d5c387a7707c89941f973e563e0f0213c3a61",
        "d57e6721033c9ba3dd12c01424afc9126d5ce4c8ddc12086d84cd9eb1fc39bdeee13adba13b06a85a7b296d6156b1f2e",
        "b8b2f5730b386aa11f47bd83c32c5f27b942a7f5572d806602768e6a10c21d4599386c3c368133c26370f9117e189493",
        "6fd999a09a9f6dbdbc3ae1258d293b75fa35c3ed25cd51204a968ac1bfb2ff79830b91b2bc6cda3b62b9dc6d31110172",
        "6ab42d6014b6eed07421251699308976b81b9f8454367e1bb42fa920979d572fcc52c1ac44c272c4c978de42da24ee7e",
        "7b1f0515a5773f64b63d794d01848fc5",
    );
    const RSA_PSS_SALT_0: &str = concat!(
        "5b0c1707e49fa8b72880849f2ec286b3264535311690858d10354af817cff89b48b9e9f462ac3952e3959469f75eaae4",
        "368e823dfca78ab00abcfb30a9529644c8e78a774094603de348b3c452cfd68cac8a0c288364494a8e5aea4989468f43",
        "8b43b1cc1cdbb0b082365c334edb3e928f5eec8daf1c5a7b3fc8aae2e81c33c30b8de231525c26f013ea87e3d8632260",
        "bb0347c81da7b6341e65684e92a05a535452b46ee733327970cad50e09bc03bf4ac99d7917e519ae0564e43ebf53c736",
        "b9a1973959d583889e0acede1419740213f8e6d236c7890e044cf28c1a2463f7886b2cde9264030c6edfd71e4f7108da",
        "ecfe637fba9e8ae2356505b78de58e1f",
    );
    const RSA_PSS_SALT_20: &str = concat!(
        "7e01a8ad1045427de2f1aee31007671c788dc8716cc91761a431233b36bbe231854b01bc9f37f0da6f76d8e862d5a03f",
        "a8cd5c8d2b240d6d2dd2d61688ea65e0223d79d0bcb4c7183433dc2caa23974b23e83b8724634709b609843bebe0cddb",
        "ea5652886238adf9019b5eb6fc35c233834254524ce21055b9b52d84c10ba8eaf8629f500606295b317a6beee772d28b",
        "0d3832633f5fbbff9b3f8e88405fb23c15f4b1dbc5bb8139e97f62daed531a74d3d86367748e626beed9e40c9e1d67a7",
        "759a04b39974aa4844929f8a68048160dda1f5648c1e9427582e66727428d76864818e283613dbcdd9a9a5dd2842c7f9",
        "7ffc603feb21bbcd128ced1c0816a64e",
    );
    const RSA_PKCS1: &str = concat!(
        "281fbd34bf5ea3af8ea31964aff24751f3cc5c588d19b047683fdbce7173e743709ef2be1350b6774f95ac35a762ae00",
        "d5476f9bcbde775b616f5c6a3c4acfc38a8e5cc1f4a9907dc73a6554c39857efcacab2155ab7580b2834979e8998ccc7",
        "f413d7ede2a88e732ed446e13eb91cb0244271973cc8a479bb6cce9a4331e02be1587145ab22c9cac83655149416d2d0",
        "e2e84e60b51d9b36e5025aa25380ecccf64b54391c1ed6754a40b5b8b02dc4481ceeae36f9993266b6f5dbf5f1b07c35",
        "1d404e2560bc3937c240a048507a18f7054144ea2998d9344338adb3261b3c71937917c377efbe1feba223f11d9de596",
        "e2b1fee675851e6568e5b88e7b7ab375",
    );
    const ED25519_IDENTITY_R: &str =
        "0100000000000000000000000000000000000000000000000000000000000000520a2e25b0f11547a9ae2ad848ed7731c77f99f1a8712d363455d344db33ac04";

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn ecdsa9() -> PublicKey {
        let k = crate::trust::testkit::TestKey::ecdsa(9);
        PublicKey::new(&k.key_type, k.public.clone())
    }

    fn rsa_key() -> PublicKey {
        let k = crate::trust::testkit::TestKey::rsa();
        PublicKey::new(&k.key_type, k.public.clone())
    }

    /// Go's ecdsa.Verify (Notary) accepts high S, and so did the verifier before: a signature
    /// and its (r, n−s) twin both verify. Not a malleability problem here: Notary's threshold
    /// counts keys, not signatures.
    #[test]
    fn ecdsa_high_s_is_accepted_like_go() {
        let key = ecdsa9();
        assert!(verify(&key, Method::Ecdsa, b"message", &unhex(ECDSA_LOW_S)));
        assert!(verify(
            &key,
            Method::Ecdsa,
            b"message",
            &unhex(ECDSA_HIGH_S)
        ));
        assert!(!verify(
            &key,
            Method::Ecdsa,
            b"massage",
            &unhex(ECDSA_HIGH_S)
        ));
    }

    #[test]
    fn ecdsa_malformed_signatures_are_refused() {
        let key = ecdsa9();
        let good = unhex(ECDSA_LOW_S);
        let n = unhex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
        let with = |r: &[u8], s: &[u8]| [r, s].concat();
        let zero = [0u8; 32];
        let (r, s) = good.split_at(32);
        for (what, sig) in [
            ("r = 0", with(&zero, s)),
            ("s = 0", with(r, &zero)),
            ("r = n", with(&n, s)),
            ("s = n", with(r, &n)),
            ("all ones", vec![0xff; 64]),
            ("63 bytes", good[..63].to_vec()),
            ("65 bytes", [&good[..], &[0]].concat()),
            ("leading zero", [&[0], &good[..]].concat()),
            ("empty", vec![]),
            ("DER", crate::trust::testkit::ecdsa_raw_to_der(&good)),
        ] {
            assert!(!verify(&key, Method::Ecdsa, b"message", &sig), "{what}");
        }
    }

    /// Notary's RSA-PSS is SHA-256, MGF1-SHA-256, salt 32; other salt lengths are refused (the
    /// signature is otherwise valid for the key and message).
    #[test]
    fn rsa_pss_salt_length_is_exactly_32() {
        let key = rsa_key();
        assert!(verify(
            &key,
            Method::RsaPss,
            b"message",
            &unhex(RSA_PSS_SALT_32)
        ));
        assert!(!verify(
            &key,
            Method::RsaPss,
            b"message",
            &unhex(RSA_PSS_SALT_0)
        ));
        assert!(!verify(
            &key,
            Method::RsaPss,
            b"message",
            &unhex(RSA_PSS_SALT_20)
        ));
        assert!(verify(
            &key,
            Method::RsaPkcs1v15,
            b"message",
            &unhex(RSA_PKCS1)
        ));
        assert!(!verify(&key, Method::RsaPss, b"message", &unhex(RSA_PKCS1)));
    }

    /// The signature must be exactly as long as the modulus: no leading zero added or removed.
    #[test]
    fn rsa_signature_length_is_the_modulus_length() {
        let key = rsa_key();
        for good in [RSA_PSS_SALT_32, RSA_PKCS1] {
            let good = unhex(good);
            let method = if good == unhex(RSA_PKCS1) {
                Method::RsaPkcs1v15
            } else {
                Method::RsaPss
            };
            assert!(verify(&key, method, b"message", &good));
            assert!(!verify(
                &key,
                method,
                b"message",
                &[&[0], &good[..]].concat()
            ));
            assert!(!verify(&key, method, b"message", &good[1..]));
            assert!(!verify(&key, method, b"message", &[]));
        }
    }

    /// With the identity as public key, (R = identity, S = 0) satisfies the RFC 8032 equation for
    /// every message; aws-lc alone accepts it. Refused, as ed25519-dalek's verify_strict did.
    #[test]
    fn ed25519_small_order_key_is_refused() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let key = PublicKey::new("ed25519", identity.to_vec());
        let mut sig = [0u8; 64];
        sig[0] = 1;
        assert!(!verify(&key, Method::Eddsa, b"anything", &sig));
        // The same with the sign bit set (x = −0), and the other small-order encodings.
        for enc in SMALL_ORDER {
            for sign in [0, 0x80] {
                let mut a = enc;
                a[31] |= sign;
                let key = PublicKey::new("ed25519", a.to_vec());
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&a);
                assert!(!verify(&key, Method::Eddsa, b"anything", &sig));
                assert!(small_order(&a));
            }
        }
    }

    /// A real key and R = identity with S = h·a: valid for a cofactorless verifier without a
    /// small-order check (aws-lc alone), refused here.
    #[test]
    fn ed25519_small_order_r_is_refused() {
        let public = unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let key = PublicKey::new("ed25519", public);
        let sig = unhex(ED25519_IDENTITY_R);
        assert!(!verify(&key, Method::Eddsa, b"message", &sig));
    }

    /// S must be below the group order L: S + L (same point equation) is refused.
    #[test]
    fn ed25519_non_canonical_s_is_refused() {
        let public = unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let key = PublicKey::new("ed25519", public);
        // RFC 8032 test 1: the empty message.
        let good = unhex(concat!(
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155",
            "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        ));
        assert!(verify(&key, Method::Eddsa, b"", &good));
        // L, little-endian.
        let l = unhex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
        let mut s_plus_l = good.clone();
        let mut carry = 0u16;
        for i in 0..32 {
            let v = u16::from(good[32 + i]) + u16::from(l[i]) + carry;
            s_plus_l[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        assert!(!verify(&key, Method::Eddsa, b"", &s_plus_l));
        for len in [0, 63, 65] {
            let mut sig = good.clone();
            sig.resize(len, 0);
            assert!(!verify(&key, Method::Eddsa, b"", &sig), "{len} bytes");
        }
    }

    /// A key used with another key type's method never verifies, whatever the bytes.
    #[test]
    fn methods_need_their_key_type() {
        let ec = ecdsa9();
        let rsa = rsa_key();
        let ed = PublicKey::new(
            "ed25519",
            unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
        );
        let ecdsa_sig = unhex(ECDSA_LOW_S);
        assert!(!verify(&ec, Method::Eddsa, b"message", &ecdsa_sig));
        assert!(!verify(&rsa, Method::Ecdsa, b"message", &ecdsa_sig));
        assert!(!verify(&ed, Method::Ecdsa, b"message", &ecdsa_sig));
        assert!(!verify(
            &ec,
            Method::RsaPss,
            b"message",
            &unhex(RSA_PSS_SALT_32)
        ));
        assert!(!verify(
            &ed,
            Method::RsaPkcs1v15,
            b"message",
            &unhex(RSA_PKCS1)
        ));
        // The ECDSA key's SPKI declared as an RSA key (and the reverse) is unusable.
        let k = crate::trust::testkit::TestKey::ecdsa(9);
        assert!(!PublicKey::new("rsa", k.public.clone()).is_supported());
        let k = crate::trust::testkit::TestKey::rsa();
        assert!(!PublicKey::new("ecdsa", k.public.clone()).is_supported());
    }
}
