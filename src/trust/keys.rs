//! Notary keys (`notary:tuf/data/keys.go`): key objects, key IDs exactly as Notary computes them, canonical key IDs
//! for x509 keys, public key parsing and the root-certificate checks of `ValidateRoot` (`notary:trustpinning/certs.go`).

use aws_lc_rs::signature::{self as alg, ParsedPublicKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey as SpkiKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// Key types Notary knows (`notary:tuf/data/types.go`).
pub const ED25519: &str = "ed25519";
/// ECDSA key, DER SubjectPublicKeyInfo.
pub const ECDSA: &str = "ecdsa";
/// RSA key, DER SubjectPublicKeyInfo.
pub const RSA: &str = "rsa";
/// ECDSA key inside a PEM certificate.
pub const ECDSA_X509: &str = "ecdsa-x509";
/// RSA key inside a PEM certificate.
pub const RSA_X509: &str = "rsa-x509";

/// Minimum RSA modulus size Notary accepts.
pub const MIN_RSA_BITS: usize = 2048;

/// Maximum RSA modulus size. Notary has none; this is the limit of the RustCrypto `rsa` crate
/// the verifier used before aws-lc-rs, kept so that changing the crypto library did not change
/// which keys are usable.
pub const MAX_RSA_BITS: usize = 4096;

/// A key object as it appears in metadata: `{"keytype":…,"keyval":{"private":null,"public":…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyJson {
    /// Key type string as written.
    pub keytype: String,
    /// Key values.
    pub keyval: KeyVal,
}

/// The `keyval` member. `private` is ignored (public metadata carries `null`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyVal {
    /// Base64 (standard) public key bytes.
    pub public: String,
}

/// Parsed verification material: aws-lc-rs keys, parsed once when the metadata is read so that
/// each signature check is only the check. An RSA key may sign with either of Notary's two RSA
/// methods, and aws-lc-rs binds a parsed key to one algorithm: hence two.
#[derive(Debug, Clone)]
pub(crate) enum KeyMaterial {
    Ed25519(ParsedPublicKey),
    P256(ParsedPublicKey),
    Rsa {
        pss: ParsedPublicKey,
        pkcs1: ParsedPublicKey,
    },
}

/// A public key from metadata, with its Notary key ID.
#[derive(Debug, Clone)]
pub struct PublicKey {
    key_type: String,
    public: Vec<u8>,
    id: String,
    /// DER certificates of an x509 key (leaf first).
    certs: Vec<Vec<u8>>,
    material: Result<KeyMaterial, String>,
}

/// Notary key ID: hex SHA-256 of `{"keytype":<t>,"keyval":{"private":null,"public":<b64>}}`.
pub fn key_id(key_type: &str, public: &[u8]) -> String {
    let mut buf = Vec::with_capacity(64 + public.len() * 2);
    buf.extend_from_slice(b"{\"keytype\":");
    crate::trust::canonical::write_string(key_type, &mut buf);
    buf.extend_from_slice(b",\"keyval\":{\"private\":null,\"public\":");
    crate::trust::canonical::write_string(&B64.encode(public), &mut buf);
    buf.extend_from_slice(b"}}");
    hex::encode(Sha256::digest(&buf))
}

impl PublicKey {
    /// Build from a metadata key object. Fails only when `public` is not base64; unsupported key
    /// types or unparseable keys are kept (they can never sign) so that thresholds count correctly.
    pub fn from_json(json: &KeyJson) -> Result<Self, String> {
        let public = B64
            .decode(json.keyval.public.as_bytes())
            .map_err(|e| format!("key public value is not base64: {e}"))?;
        Ok(Self::new(&json.keytype, public))
    }

    /// Build from a key type and the decoded public bytes.
    pub fn new(key_type: &str, public: Vec<u8>) -> Self {
        let id = key_id(key_type, &public);
        let mut certs = Vec::new();
        let material = match key_type {
            // Exactly the 32 raw bytes: aws-lc-rs would also take a SubjectPublicKeyInfo.
            // aws-lc-rs does not decode the point here, so a 32-byte value that is not a curve
            // point is a key that never verifies (Threshold), not an unsupported key.
            ED25519 if public.len() != alg::ED25519_PUBLIC_KEY_LEN => {
                Err("ed25519 key is not 32 bytes".to_string())
            }
            ED25519 => ParsedPublicKey::new(&alg::ED25519, &public)
                .map(KeyMaterial::Ed25519)
                .map_err(|e| format!("bad ed25519 key: {e}")),
            ECDSA => spki_material(&public, false),
            RSA => spki_material(&public, true),
            ECDSA_X509 | RSA_X509 => match parse_pem_certs(&public) {
                Ok(ders) if !ders.is_empty() => {
                    let m = cert_spki(&ders[0])
                        .and_then(|spki| spki_material(&spki, key_type == RSA_X509));
                    certs = ders;
                    m
                }
                Ok(_) => Err("no certificate in PEM".to_string()),
                Err(e) => Err(e),
            },
            other => Err(format!("unsupported key type {other:?}")),
        };
        PublicKey {
            key_type: key_type.to_string(),
            public,
            id,
            certs,
            material,
        }
    }

    /// The key ID used in metadata.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key type as written.
    pub fn key_type(&self) -> &str {
        &self.key_type
    }

    /// Decoded public bytes.
    pub fn public_bytes(&self) -> &[u8] {
        &self.public
    }

    /// Whether this key type is one we can verify with.
    pub fn is_supported(&self) -> bool {
        self.material.is_ok()
    }

    /// Why the key is unusable, if it is.
    pub fn unsupported_reason(&self) -> Option<&str> {
        self.material.as_ref().err().map(String::as_str)
    }

    pub(crate) fn material(&self) -> Option<&KeyMaterial> {
        self.material.as_ref().ok()
    }

    /// DER certificates (x509 keys only; leaf first).
    pub fn certificates(&self) -> &[Vec<u8>] {
        &self.certs
    }

    /// Canonical key ID (`notary:tuf/utils/x509.go` CanonicalKeyID): for x509 keys the ID of the
    /// first certificate's public key as plain `ecdsa`/`rsa`; for other keys the key ID itself.
    pub fn canonical_id(&self) -> String {
        let plain = match self.key_type.as_str() {
            ECDSA_X509 => ECDSA,
            RSA_X509 => RSA,
            _ => return self.id.clone(),
        };
        match self.certs.first().map(|c| cert_spki(c)) {
            Some(Ok(spki)) => key_id(plain, &spki),
            _ => self.id.clone(),
        }
    }
}

/// The kind of key a SubjectPublicKeyInfo holds, checked before aws-lc-rs sees it.
enum SpkiKind {
    P256,
    Rsa,
}

/// Check that `der` is exactly one DER SubjectPublicKeyInfo (nothing after it) of a kind we
/// verify with: a P-256 key named by its curve OID, or an RSA key whose modulus and exponent
/// pass the checks Notary's keys always passed here (2048..=4096 bits, odd modulus, odd
/// exponent in 3..2^33). aws-lc-rs is more lenient in what it parses (a bare point or a PKCS#1
/// key instead of an SPKI, explicit curve parameters, trailing bytes), so these checks keep
/// keys that Notary (Go's `x509.ParsePKIXPublicKey`) would refuse unusable.
fn spki_kind(der: &[u8]) -> Result<SpkiKind, String> {
    let (rest, spki) =
        SubjectPublicKeyInfo::from_der(der).map_err(|e| format!("bad public key: {e}"))?;
    if !rest.is_empty() {
        return Err("bad public key: bytes after the SubjectPublicKeyInfo".into());
    }
    let oid = &spki.algorithm.algorithm;
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki.algorithm.parameters.as_ref().map(|p| p.as_oid());
        return match curve {
            Some(Ok(c)) if c == OID_EC_P256 => Ok(SpkiKind::P256),
            // Only P-256 is supported (Notary generates P-256; P-384 keys are reported
            // unsupported). Explicit curve parameters are refused, as Go refuses them.
            _ => Err("unsupported ECDSA curve (P-256 only, named by its OID)".into()),
        };
    }
    if *oid != OID_PKCS1_RSAENCRYPTION {
        return Err(format!("unsupported public key algorithm {oid}"));
    }
    let Ok(SpkiKey::RSA(k)) = spki.parsed() else {
        return Err("bad RSA public key".into());
    };
    let bits = bit_len(k.modulus);
    if bits < MIN_RSA_BITS {
        return Err(format!("RSA key of {bits} bits is below {MIN_RSA_BITS}"));
    }
    if bits > MAX_RSA_BITS {
        return Err(format!("RSA key of {bits} bits is above {MAX_RSA_BITS}"));
    }
    let e_bits = bit_len(k.exponent);
    let odd = |b: &[u8]| b.last().is_some_and(|l| l & 1 == 1);
    if !odd(k.modulus) || !odd(k.exponent) || !(2..=33).contains(&e_bits) {
        return Err("bad RSA public key: modulus or exponent out of range".into());
    }
    Ok(SpkiKind::Rsa)
}

/// Bit length of a big-endian unsigned integer (leading zero bytes allowed).
fn bit_len(be: &[u8]) -> usize {
    let digits: &[u8] = match be.iter().position(|b| *b != 0) {
        Some(i) => &be[i..],
        None => &[],
    };
    match digits.first() {
        Some(top) => digits.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

fn spki_material(der: &[u8], want_rsa: bool) -> Result<KeyMaterial, String> {
    let parse = |a: &'static dyn alg::VerificationAlgorithm| {
        ParsedPublicKey::new(a, der).map_err(|e| format!("bad public key: {e}"))
    };
    match (spki_kind(der)?, want_rsa) {
        (SpkiKind::P256, false) => Ok(KeyMaterial::P256(parse(&alg::ECDSA_P256_SHA256_FIXED)?)),
        (SpkiKind::Rsa, true) => Ok(KeyMaterial::Rsa {
            pss: parse(&alg::RSA_PSS_2048_8192_SHA256)?,
            pkcs1: parse(&alg::RSA_PKCS1_2048_8192_SHA256)?,
        }),
        (SpkiKind::P256, true) => Err("bad RSA public key: the key is an ECDSA key".into()),
        (SpkiKind::Rsa, false) => {
            Err("unsupported or bad ECDSA public key (P-256 only): the key is an RSA key".into())
        }
    }
}

/// Parse a PEM bundle into DER certificates (non-certificate blocks are an error).
pub(crate) fn parse_pem_certs(pem_bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let blocks = pem::parse_many(pem_bytes).map_err(|e| format!("bad PEM: {e}"))?;
    blocks
        .into_iter()
        .map(|b| {
            if b.tag() == "CERTIFICATE" {
                Ok(b.into_contents())
            } else {
                Err(format!("unexpected PEM block {:?}", b.tag()))
            }
        })
        .collect()
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|e| format!("bad certificate: {e}"))
}

fn cert_spki(der: &[u8]) -> Result<Vec<u8>, String> {
    Ok(parse_cert(der)?.public_key().raw.to_vec())
}

const SHA1_SIG_OIDS: &[&str] = &[
    "1.2.840.113549.1.1.5",
    "1.2.840.10045.4.1",
    "1.2.840.10040.4.3",
    "1.3.14.3.2.29",
];

/// ValidateRoot's leaf checks (`notary:trustpinning/certs.go`) for one root key. `check_expiry` is true for the root
/// being installed and false for the previously trusted root.
pub(crate) fn check_root_leaf(
    key: &PublicKey,
    gun: &str,
    now: OffsetDateTime,
    check_expiry: bool,
) -> Result<(), String> {
    if key.certs.is_empty() {
        return Err(format!(
            "root key {} of type {} is not an x509 certificate",
            key.id, key.key_type
        ));
    }
    let mut parsed = Vec::with_capacity(key.certs.len());
    for der in &key.certs {
        parsed.push(parse_cert(der)?);
    }
    let leaves = parsed.iter().filter(|c| !c.is_ca()).count();
    if leaves != 1 || parsed[0].is_ca() {
        return Err(format!(
            "root key {} must hold exactly one leaf certificate, first",
            key.id
        ));
    }
    let leaf = &parsed[0];
    let cn = leaf
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| format!("root certificate {} has no common name", key.id))?;
    let cn_ok = match cn.strip_suffix('*') {
        Some(prefix) => gun.starts_with(prefix),
        None => cn == gun,
    };
    if !cn_ok {
        return Err(format!(
            "root certificate common name {cn:?} is not the repository name {gun:?}"
        ));
    }
    check_cert_common(leaf, now, check_expiry)?;
    // RSA key size is enforced when the key is parsed (spki_kind).
    if key.material().is_none() {
        return Err(format!(
            "root certificate key unusable: {}",
            key.unsupported_reason().unwrap_or("?")
        ));
    }
    Ok(())
}

fn check_cert_common(
    cert: &X509Certificate<'_>,
    now: OffsetDateTime,
    check_expiry: bool,
) -> Result<(), String> {
    let nb = cert.validity().not_before.timestamp();
    let na = cert.validity().not_after.timestamp();
    if nb >= na {
        return Err("certificate validity window is empty".into());
    }
    if check_expiry {
        let t = now.unix_timestamp();
        // Notary allows NotBefore up to one day in the future (clock skew).
        if nb > t + 86_400 {
            return Err("certificate is not valid yet".into());
        }
        if t > na {
            return Err(format!(
                "certificate expired at {}",
                crate::trust::update::go_time_unix(na)
            ));
        }
    }
    let alg = cert.signature_algorithm.algorithm.to_id_string();
    if SHA1_SIG_OIDS.contains(&alg.as_str()) {
        return Err("certificate is signed with SHA-1".into());
    }
    Ok(())
}

/// Check that `child_der` was signed by the certificate `issuer_der`, that the issuer is a CA and
/// is valid at `now`. Used for CA trust pinning. The signature is checked with aws-lc-rs; the CA
/// key must be P-256 or RSA 2048..=4096 bits, as for keys in metadata.
pub(crate) fn cert_signed_by(
    child_der: &[u8],
    issuer_der: &[u8],
    now: OffsetDateTime,
) -> Result<(), String> {
    let child = parse_cert(child_der)?;
    let issuer = parse_cert(issuer_der)?;
    if !issuer.is_ca() {
        return Err("issuer is not a CA certificate".into());
    }
    if child.issuer().as_raw() != issuer.subject().as_raw() {
        return Err("issuer name does not match".into());
    }
    check_cert_common(&issuer, now, true).map_err(|e| format!("CA certificate: {e}"))?;
    let tbs = child.tbs_certificate.as_ref();
    let sig = child.signature_value.data.as_ref();
    let spki = issuer.public_key().raw;
    let kind = spki_kind(spki).map_err(|e| format!("CA key: {e}"))?;
    let oid = child.signature_algorithm.algorithm.to_id_string();
    let algorithm: &'static dyn alg::VerificationAlgorithm = match (oid.as_str(), kind) {
        ("1.2.840.10045.4.3.2", SpkiKind::P256) => &alg::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", SpkiKind::P256) => &alg::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.4", SpkiKind::P256) => &alg::ECDSA_P256_SHA512_ASN1,
        ("1.2.840.113549.1.1.11", SpkiKind::Rsa) => &alg::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", SpkiKind::Rsa) => &alg::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", SpkiKind::Rsa) => &alg::RSA_PKCS1_2048_8192_SHA512,
        (
            "1.2.840.10045.4.3.2"
            | "1.2.840.10045.4.3.3"
            | "1.2.840.10045.4.3.4"
            | "1.2.840.113549.1.1.11"
            | "1.2.840.113549.1.1.12"
            | "1.2.840.113549.1.1.13",
            _,
        ) => return Err("certificate signature algorithm does not match the CA key".into()),
        (other, _) => {
            return Err(format!(
                "unsupported certificate signature algorithm {other}"
            ))
        }
    };
    let key = ParsedPublicKey::new(algorithm, spki).map_err(|e| format!("CA key: {e}"))?;
    match key.verify_sig(tbs, sig) {
        Ok(()) => Ok(()),
        Err(_) => Err("certificate signature does not verify with the CA key".into()),
    }
}

/// Whether a DER certificate is a CA.
pub(crate) fn cert_is_ca(der: &[u8]) -> bool {
    parse_cert(der).map(|c| c.is_ca()).unwrap_or(false)
}

/// Subject/issuer raw names (for chain building).
pub(crate) fn cert_names(der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let c = parse_cert(der).ok()?;
    Some((c.subject().as_raw().to_vec(), c.issuer().as_raw().to_vec()))
}

/// Go's `pem.Encode` of certificates (LF line endings, 64-column base64).
pub(crate) fn pem_encode_certs(ders: &[Vec<u8>]) -> Vec<u8> {
    let cfg = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let mut out = String::new();
    for d in ders {
        out.push_str(&pem::encode_config(
            &pem::Pem::new("CERTIFICATE", d.clone()),
            cfg,
        ));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference vector 2 (computed independently with Python's `cryptography`).
    #[test]
    fn ed25519_key_id() {
        let public =
            hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
                .unwrap();
        let key = PublicKey::from_json(&KeyJson {
            keytype: "ed25519".into(),
            keyval: KeyVal {
                public: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into(),
            },
        })
        .unwrap();
        assert_eq!(key.public_bytes(), public.as_slice());
        assert_eq!(
            key.id(),
            "4297585c0fe23f11d05ccfdfe00ddc1543e428febcd6de32ddeb1d5cf16942b6"
        );
        assert_eq!(key.canonical_id(), key.id());
        assert!(key.is_supported());
    }

    #[test]
    fn unknown_key_type_is_kept_but_unsupported() {
        let key = PublicKey::new("dsa", vec![1, 2, 3]);
        assert!(!key.is_supported());
        assert_eq!(key.id().len(), 64);
    }

    use crate::trust::testkit::{der, seq, TestKey, NOW};

    const EC_OID: [u8; 7] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const P256_OID: [u8; 8] = [0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const RSA_OID: [u8; 9] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

    fn bit_string(b: &[u8]) -> Vec<u8> {
        der(0x03, &[&[0], b].concat())
    }

    fn ec_spki(point: &[u8]) -> Vec<u8> {
        seq(&[
            seq(&[der(0x06, &EC_OID), der(0x06, &P256_OID)]),
            bit_string(point),
        ])
    }

    /// SPKI of an RSA "key" with modulus `n` (big-endian, no sign byte) and exponent `e`. aws-lc
    /// does not factor: any odd modulus parses.
    fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
        // DER INTEGER: a zero byte only in front of a set top bit.
        let int = |b: &[u8]| match b.first() {
            Some(top) if top & 0x80 != 0 => der(0x02, &[&[0], b].concat()),
            _ => der(0x02, b),
        };
        seq(&[
            seq(&[der(0x06, &RSA_OID), der(0x05, &[])]),
            bit_string(&seq(&[int(n), int(e)])),
        ])
    }

    /// The uncompressed point of the testkit key ecdsa(9) (the last 65 bytes of its SPKI).
    fn point9() -> Vec<u8> {
        let spki = TestKey::ecdsa(9).public;
        spki[spki.len() - 65..].to_vec()
    }

    #[test]
    fn ecdsa_keys_must_be_p256_spki() {
        let point = point9();
        assert_eq!(point[0], 4);
        assert!(PublicKey::new(ECDSA, ec_spki(&point)).is_supported());
        // A bare point (aws-lc-rs would take it), trailing bytes, no curve, an RSA OID.
        assert!(!PublicKey::new(ECDSA, point.clone()).is_supported());
        let mut trailing = ec_spki(&point);
        trailing.push(0);
        assert!(!PublicKey::new(ECDSA, trailing).is_supported());
        let no_curve = seq(&[seq(&[der(0x06, &EC_OID)]), bit_string(&point)]);
        assert!(!PublicKey::new(ECDSA, no_curve).is_supported());
        // A point not on the curve, and the identity encoding.
        let mut off = point.clone();
        off[64] ^= 1;
        assert!(!PublicKey::new(ECDSA, ec_spki(&off)).is_supported());
        assert!(!PublicKey::new(ECDSA, ec_spki(&[0])).is_supported());
        // P-384 (aws-lc-rs makes one): unsupported, as before.
        let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        )
        .unwrap();
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::KeyPair as _;
        let der384 = p384.public_key().as_der().unwrap().as_ref().to_vec();
        let k = PublicKey::new(ECDSA, der384);
        assert!(k.unsupported_reason().unwrap().contains("P-256 only"));
    }

    /// The compressed form of a P-256 point was accepted before (the p256 crate) and still is.
    #[test]
    fn compressed_p256_points_still_verify() {
        let point = point9();
        let mut compressed = vec![2 + (point[64] & 1)];
        compressed.extend_from_slice(&point[1..33]);
        let key = PublicKey::new(ECDSA, ec_spki(&compressed));
        assert!(key.is_supported());
        let (_, sig) = TestKey::ecdsa(9).sign(b"msg");
        let m = crate::trust::signature::Method::Ecdsa;
        assert!(crate::trust::signature::verify(&key, m, b"msg", &sig));
    }

    #[test]
    fn rsa_key_limits_are_the_previous_ones() {
        let e = [1, 0, 1];
        let n = |bits: usize| {
            let mut n = vec![0xff; bits.div_ceil(8)];
            if bits % 8 != 0 {
                n[0] >>= 8 - bits % 8;
            }
            n
        };
        assert!(PublicKey::new(RSA, rsa_spki(&n(2048), &e)).is_supported());
        assert!(PublicKey::new(RSA, rsa_spki(&n(4096), &e)).is_supported());
        for (bits, want) in [
            (2047, "below 2048"),
            (1024, "below 2048"),
            (4097, "above 4096"),
        ] {
            let k = PublicKey::new(RSA, rsa_spki(&n(bits), &e));
            let why = k.unsupported_reason().unwrap();
            assert!(
                why.contains(&format!("{bits} bits")) && why.contains(want),
                "{why}"
            );
        }
        // Even modulus, even exponent, exponent 1, exponent of 34 bits.
        let mut even = n(2048);
        even[255] = 0xfe;
        for (n, e) in [
            (even, vec![1, 0, 1]),
            (n(2048), vec![1, 0, 0]),
            (n(2048), vec![1]),
            (n(2048), vec![3, 0, 0, 0, 1]),
        ] {
            assert!(
                !PublicKey::new(RSA, rsa_spki(&n, &e)).is_supported(),
                "{e:?}"
            );
        }
        // A PKCS#1 RSAPublicKey without the SPKI wrapper (aws-lc-rs would take it).
        let spki = TestKey::rsa().public;
        let (_, info) = SubjectPublicKeyInfo::from_der(&spki).unwrap();
        let pkcs1 = info.subject_public_key.data.to_vec();
        assert!(!PublicKey::new(RSA, pkcs1).is_supported());
        assert!(PublicKey::new(RSA, spki).is_supported());
    }

    #[test]
    fn ed25519_keys_are_32_raw_bytes() {
        let k = TestKey::ed25519(3);
        assert!(PublicKey::new(ED25519, k.public.clone()).is_supported());
        // The same key as an SPKI (aws-lc-rs would take it) and other lengths.
        let spki = seq(&[
            seq(&[der(0x06, &[0x2b, 0x65, 0x70])]),
            bit_string(&k.public),
        ]);
        assert!(!PublicKey::new(ED25519, spki).is_supported());
        assert!(!PublicKey::new(ED25519, k.public[..31].to_vec()).is_supported());
    }

    /// CA pinning with an RSA CA (PKCS#1 v1.5, SHA-256) issuing an ECDSA leaf, made with rcgen.
    #[test]
    fn cert_signed_by_rsa_ca() {
        let ca_key = rcgen::KeyPair::from_pem(crate::trust::testkit::RSA_PEM.trim()).unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "RSA CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "docker.io/library/app");
        let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
        assert_eq!(cert_signed_by(leaf.der(), ca.der(), NOW), Ok(()));
        let mut bad = leaf.der().to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            cert_signed_by(&bad, ca.der(), NOW),
            Err("certificate signature does not verify with the CA key".into())
        );
        // The leaf is not a CA: it cannot be the issuer of anything.
        assert!(cert_signed_by(ca.der(), leaf.der(), NOW).is_err());
    }

    #[test]
    fn cert_signed_by_ecdsa_ca() {
        let (ca_pem, leaf) = crate::trust::testkit::ca_and_leaf(1, 2, "docker.io/library/app");
        let ca = parse_pem_certs(ca_pem.as_bytes()).unwrap().remove(0);
        let leaf_der = parse_pem_certs(&leaf.public).unwrap().remove(0);
        assert_eq!(cert_signed_by(&leaf_der, &ca, NOW), Ok(()));
        let mut bad = leaf_der.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(cert_signed_by(&bad, &ca, NOW).is_err());
    }
}
