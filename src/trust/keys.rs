//! Notary keys (`notary:tuf/data/keys.go`): key objects, key IDs exactly as Notary computes them, canonical key IDs
//! for x509 keys, public key parsing and the root-certificate checks of `ValidateRoot` (`notary:trustpinning/certs.go`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

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

/// Parsed verification material.
#[derive(Debug, Clone)]
pub(crate) enum KeyMaterial {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
    Rsa(Box<rsa::RsaPublicKey>),
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
            ED25519 => <[u8; 32]>::try_from(public.as_slice())
                .map_err(|_| "ed25519 key is not 32 bytes".to_string())
                .and_then(|b| {
                    ed25519_dalek::VerifyingKey::from_bytes(&b).map_err(|e| e.to_string())
                })
                .map(KeyMaterial::Ed25519),
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

fn spki_material(der: &[u8], want_rsa: bool) -> Result<KeyMaterial, String> {
    if want_rsa {
        use rsa::pkcs8::DecodePublicKey;
        use rsa::traits::PublicKeyParts;
        let k = rsa::RsaPublicKey::from_public_key_der(der)
            .map_err(|e| format!("bad RSA public key: {e}"))?;
        if k.n().bits() < MIN_RSA_BITS {
            return Err(format!(
                "RSA key of {} bits is below {MIN_RSA_BITS}",
                k.n().bits()
            ));
        }
        Ok(KeyMaterial::Rsa(Box::new(k)))
    } else {
        use p256::pkcs8::DecodePublicKey;
        // Only P-256 is supported (Notary generates P-256; P-384 keys are reported unsupported).
        let k = p256::ecdsa::VerifyingKey::from_public_key_der(der)
            .map_err(|e| format!("unsupported or bad ECDSA public key (P-256 only): {e}"))?;
        Ok(KeyMaterial::P256(k))
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
    if let Some(KeyMaterial::Rsa(_)) = key.material() {
        // size already enforced in spki_material
    } else if key.material().is_none() {
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
/// is valid at `now`. Used for CA trust pinning. Verified with p256/rsa directly (no ring).
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
    let alg = child.signature_algorithm.algorithm.to_id_string();
    use sha2::{Sha384, Sha512};
    let ok = match alg.as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.10045.4.3.3" | "1.2.840.10045.4.3.4" => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            use p256::pkcs8::DecodePublicKey;
            let key = p256::ecdsa::VerifyingKey::from_public_key_der(spki)
                .map_err(|e| format!("CA key: {e}"))?;
            let s =
                p256::ecdsa::Signature::from_der(sig).map_err(|e| format!("bad signature: {e}"))?;
            let digest: Vec<u8> = match alg.as_str() {
                "1.2.840.10045.4.3.2" => Sha256::digest(tbs).to_vec(),
                "1.2.840.10045.4.3.3" => Sha384::digest(tbs).to_vec(),
                _ => Sha512::digest(tbs).to_vec(),
            };
            key.verify_prehash(&digest, &s).is_ok()
        }
        "1.2.840.113549.1.1.11" | "1.2.840.113549.1.1.12" | "1.2.840.113549.1.1.13" => {
            use rsa::pkcs8::DecodePublicKey;
            let key =
                rsa::RsaPublicKey::from_public_key_der(spki).map_err(|e| format!("CA key: {e}"))?;
            let (scheme, digest) = match alg.as_str() {
                "1.2.840.113549.1.1.11" => (
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    Sha256::digest(tbs).to_vec(),
                ),
                "1.2.840.113549.1.1.12" => (
                    rsa::Pkcs1v15Sign::new::<Sha384>(),
                    Sha384::digest(tbs).to_vec(),
                ),
                _ => (
                    rsa::Pkcs1v15Sign::new::<Sha512>(),
                    Sha512::digest(tbs).to_vec(),
                ),
            };
            key.verify(scheme, &digest, sig).is_ok()
        }
        other => {
            return Err(format!(
                "unsupported certificate signature algorithm {other}"
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err("certificate signature does not verify with the CA key".into())
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
}
