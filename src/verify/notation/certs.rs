//! Certificates of a Notation signature: the chain the envelope carries, the signing key and
//! its algorithm, validity at a time, trusted identities, and the RFC 3161 countersignature
//! (pure; aws-lc-rs for every signature check).
//!
//! Why the chain is checked here and not by a path builder such as webpki: Notation's rule is
//! not "find a path to an anchor". The envelope carries the complete chain, leaf first, ending
//! in a self-signed root; every certificate must be issued by the next; and the signature is
//! trusted when a certificate of that chain is in the trust store (a self-signed signing
//! certificate, as `notation cert generate-test` makes, is trusted by being in the store itself).
//! That is `notation-core-go`'s `ValidateCodeSigningCertChain` plus notation-go's authenticity
//! check, followed here so trustgate accepts and refuses what `notation verify` does. webpki
//! would also refuse the self-signed signing certificates Notation users run with.

use std::time::SystemTime;

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{self as oids, Oid};
use x509_parser::prelude::FromDer;

use super::envelope::Alg;

/// A chain or key problem, already phrased for the person reading the refusal.
pub type CertProblem = String;

/// A parsed certificate with its DER.
pub struct Cert<'a> {
    pub der: &'a [u8],
    pub x509: X509Certificate<'a>,
}

impl<'a> Cert<'a> {
    pub fn parse(der: &'a [u8]) -> Result<Self, CertProblem> {
        let (rest, x509) = X509Certificate::from_der(der)
            .map_err(|e| format!("a certificate does not parse: {e}"))?;
        if !rest.is_empty() {
            return Err("a certificate has trailing bytes".into());
        }
        Ok(Self { der, x509 })
    }

    pub fn subject(&self) -> String {
        self.x509.subject().to_string()
    }

    pub(super) fn self_issued(&self) -> bool {
        self.x509.subject().as_raw() == self.x509.issuer().as_raw()
    }

    pub(super) fn extension(&self, oid: &Oid<'_>) -> Option<(bool, &ParsedExtension<'_>)> {
        self.x509
            .extensions()
            .iter()
            .find(|e| &e.oid == oid)
            .map(|e| (e.critical, e.parsed_extension()))
    }

    /// The curve of an EC key, or the modulus bits of an RSA key.
    pub(super) fn key(&self) -> Result<KeyKind, CertProblem> {
        let spki = self.x509.public_key();
        let alg = &spki.algorithm.algorithm;
        if *alg == oids::OID_PKCS1_RSAENCRYPTION {
            match spki.parsed() {
                Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                    Ok(KeyKind::Rsa(rsa.key_size()))
                }
                _ => Err(format!("the RSA key of {} does not parse", self.subject())),
            }
        } else if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == oids::OID_EC_P256 => Ok(KeyKind::P256),
                Some(c) if c == oids::OID_NIST_EC_P384 => Ok(KeyKind::P384),
                Some(c) if c == oids::OID_NIST_EC_P521 => Ok(KeyKind::P521),
                _ => Err(format!(
                    "the EC key of {} is on a curve Notation does not allow",
                    self.subject()
                )),
            }
        } else {
            Err(format!(
                "the key of {} is neither RSA nor ECDSA",
                self.subject()
            ))
        }
    }

    pub(super) fn key_bytes(&self) -> &[u8] {
        &self.x509.public_key().subject_public_key.data
    }

    /// Whether `time` is within the certificate's validity.
    pub fn valid_at(&self, time: SystemTime) -> Result<(), CertProblem> {
        let t = time::OffsetDateTime::from(time).unix_timestamp();
        let v = self.x509.validity();
        if t < v.not_before.timestamp() {
            return Err(format!(
                "certificate {} is not valid before {}",
                self.subject(),
                v.not_before
            ));
        }
        if t > v.not_after.timestamp() {
            return Err(format!(
                "certificate {} expired at {}",
                self.subject(),
                v.not_after
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    Rsa(usize),
    P256,
    P384,
    P521,
}

/// The one algorithm the specification pairs with a key: RSA 2048/3072/4096 with PS256/384/512,
/// P-256/384/521 with ES256/384/512.
fn alg_for(key: KeyKind) -> Option<Alg> {
    Some(match key {
        KeyKind::Rsa(2048) => Alg::Ps256,
        KeyKind::Rsa(3072) => Alg::Ps384,
        KeyKind::Rsa(4096) => Alg::Ps512,
        KeyKind::Rsa(_) => return None,
        KeyKind::P256 => Alg::Es256,
        KeyKind::P384 => Alg::Es384,
        KeyKind::P521 => Alg::Es512,
    })
}

fn verification_alg(alg: Alg) -> &'static dyn VerificationAlgorithm {
    match alg {
        Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
        Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
        Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
        Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
        Alg::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
        Alg::Es512 => &signature::ECDSA_P521_SHA512_FIXED,
    }
}

/// Why the envelope's signature does not verify with its leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureProblem {
    /// `alg` is not the algorithm the leaf key requires.
    AlgMismatch {
        alg: Alg,
        key: String,
    },
    Invalid(String),
}

/// Checks `signature` over `input` with the leaf's key, after checking `alg` is the leaf key's.
pub fn verify_signature(
    leaf: &Cert<'_>,
    alg: Alg,
    input: &[u8],
    signature: &[u8],
) -> Result<(), SignatureProblem> {
    let key = leaf.key().map_err(SignatureProblem::Invalid)?;
    let describe = match key {
        KeyKind::Rsa(bits) => format!("RSA {bits}"),
        KeyKind::P256 => "ECDSA P-256".into(),
        KeyKind::P384 => "ECDSA P-384".into(),
        KeyKind::P521 => "ECDSA P-521".into(),
    };
    match alg_for(key) {
        Some(a) if a == alg => {}
        Some(_) => return Err(SignatureProblem::AlgMismatch { alg, key: describe }),
        None => {
            return Err(SignatureProblem::Invalid(format!(
                "the signing key is {describe}; Notation allows RSA 2048, 3072 and 4096"
            )))
        }
    }
    UnparsedPublicKey::new(verification_alg(alg), leaf.key_bytes())
        .verify(input, signature)
        .map_err(|_| {
            SignatureProblem::Invalid(format!(
                "the {} signature does not verify with the signing certificate's key",
                alg.name()
            ))
        })
}

/// Verifies `sig` over `msg` by `signer`'s key, for the X.509/CMS signature algorithm `sig_oid`
/// (dotted). `digest_oid` names the hash when `sig_oid` is bare `rsaEncryption` (CMS).
pub(super) fn verify_by(
    signer: &Cert<'_>,
    sig_oid: &str,
    digest_oid: Option<&str>,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), CertProblem> {
    const SHA256: &str = "2.16.840.1.101.3.4.2.1";
    const SHA384: &str = "2.16.840.1.101.3.4.2.2";
    const SHA512: &str = "2.16.840.1.101.3.4.2.3";
    let key = signer.key()?;
    let candidates: Vec<&'static dyn VerificationAlgorithm> = match (sig_oid, key) {
        ("1.2.840.113549.1.1.11", KeyKind::Rsa(_)) => vec![&signature::RSA_PKCS1_2048_8192_SHA256],
        ("1.2.840.113549.1.1.12", KeyKind::Rsa(_)) => vec![&signature::RSA_PKCS1_2048_8192_SHA384],
        ("1.2.840.113549.1.1.13", KeyKind::Rsa(_)) => vec![&signature::RSA_PKCS1_2048_8192_SHA512],
        ("1.2.840.113549.1.1.1", KeyKind::Rsa(_)) => match digest_oid {
            Some(SHA256) => vec![&signature::RSA_PKCS1_2048_8192_SHA256],
            Some(SHA384) => vec![&signature::RSA_PKCS1_2048_8192_SHA384],
            Some(SHA512) => vec![&signature::RSA_PKCS1_2048_8192_SHA512],
            _ => vec![],
        },
        // RSASSA-PSS: the hash is in the parameters; only the right one can verify.
        ("1.2.840.113549.1.1.10", KeyKind::Rsa(_)) => vec![
            &signature::RSA_PSS_2048_8192_SHA256,
            &signature::RSA_PSS_2048_8192_SHA384,
            &signature::RSA_PSS_2048_8192_SHA512,
        ],
        ("1.2.840.10045.4.3.2", KeyKind::P256) => vec![&signature::ECDSA_P256_SHA256_ASN1],
        ("1.2.840.10045.4.3.2", KeyKind::P384) => vec![&signature::ECDSA_P384_SHA256_ASN1],
        ("1.2.840.10045.4.3.3", KeyKind::P256) => vec![&signature::ECDSA_P256_SHA384_ASN1],
        ("1.2.840.10045.4.3.3", KeyKind::P384) => vec![&signature::ECDSA_P384_SHA384_ASN1],
        ("1.2.840.10045.4.3.4", KeyKind::P521) => vec![&signature::ECDSA_P521_SHA512_ASN1],
        // CMS may name the key type and leave the hash to digestAlgorithm.
        ("1.2.840.10045.2.1", k) => match (digest_oid, k) {
            (Some(SHA256), KeyKind::P256) => vec![&signature::ECDSA_P256_SHA256_ASN1],
            (Some(SHA256), KeyKind::P384) => vec![&signature::ECDSA_P384_SHA256_ASN1],
            (Some(SHA384), KeyKind::P256) => vec![&signature::ECDSA_P256_SHA384_ASN1],
            (Some(SHA384), KeyKind::P384) => vec![&signature::ECDSA_P384_SHA384_ASN1],
            (Some(SHA512), KeyKind::P521) => vec![&signature::ECDSA_P521_SHA512_ASN1],
            _ => vec![],
        },
        _ => vec![],
    };
    if candidates.is_empty() {
        return Err(format!(
            "signature algorithm {sig_oid} is not supported for the key of {}",
            signer.subject()
        ));
    }
    if candidates.iter().any(|a| {
        UnparsedPublicKey::new(*a, signer.key_bytes())
            .verify(msg, sig)
            .is_ok()
    }) {
        Ok(())
    } else {
        Err(format!(
            "the signature does not verify with the key of {}",
            signer.subject()
        ))
    }
}

/// Verifies that `issuer` signed `cert`.
pub(super) fn issued_by(cert: &Cert<'_>, issuer: &Cert<'_>) -> Result<(), CertProblem> {
    let sig_oid = cert.x509.signature_algorithm.algorithm.to_id_string();
    let tbs = cert.x509.tbs_certificate.as_ref();
    let sig = &cert.x509.signature_value.data;
    verify_by(issuer, &sig_oid, None, tbs, sig).map_err(|_| {
        format!(
            "certificate {} is not signed by {}",
            cert.subject(),
            issuer.subject()
        )
    })
}

fn key_usage(cert: &Cert<'_>) -> Result<(bool, bool), CertProblem> {
    match cert.extension(&oids::OID_X509_EXT_KEY_USAGE) {
        Some((true, ParsedExtension::KeyUsage(ku))) => {
            Ok((ku.digital_signature(), ku.key_cert_sign()))
        }
        Some((false, _)) => Err(format!(
            "certificate {}: the key usage extension must be critical",
            cert.subject()
        )),
        _ => Err(format!(
            "certificate {}: the key usage extension must be present",
            cert.subject()
        )),
    }
}

fn is_ca(cert: &Cert<'_>) -> bool {
    matches!(
        cert.extension(&oids::OID_X509_EXT_BASIC_CONSTRAINTS),
        Some((_, ParsedExtension::BasicConstraints(bc))) if bc.ca
    )
}

/// The signing certificate's requirements (signature specification, "Certificate
/// Requirements"): not a CA, key usage critical with digitalSignature and without keyCertSign,
/// and an extended key usage, when present, that includes code signing and none of the
/// server/client/email/time-stamping/OCSP purposes.
pub fn check_leaf(leaf: &Cert<'_>) -> Result<(), LeafProblem> {
    if is_ca(leaf) {
        return Err(LeafProblem::Other(format!(
            "signing certificate {} is a CA certificate",
            leaf.subject()
        )));
    }
    let (digital_signature, cert_sign) = key_usage(leaf).map_err(LeafProblem::Other)?;
    if !digital_signature || cert_sign {
        return Err(LeafProblem::Other(format!(
            "signing certificate {}: key usage must have digitalSignature and not keyCertSign",
            leaf.subject()
        )));
    }
    if let Some((_, ParsedExtension::ExtendedKeyUsage(eku))) =
        leaf.extension(&oids::OID_X509_EXT_EXTENDED_KEY_USAGE)
    {
        let excluded = [
            (eku.server_auth, "serverAuth"),
            (eku.client_auth, "clientAuth"),
            (eku.email_protection, "emailProtection"),
            (eku.time_stamping, "timeStamping"),
            (eku.ocsp_signing, "OCSPSigning"),
        ];
        if let Some((_, name)) = excluded.iter().find(|(set, _)| *set) {
            return Err(LeafProblem::Eku(format!(
                "signing certificate {}: extended key usage has {name}, not only code signing",
                leaf.subject()
            )));
        }
        if !eku.code_signing {
            return Err(LeafProblem::Eku(format!(
                "signing certificate {}: extended key usage lacks code signing",
                leaf.subject()
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafProblem {
    Eku(String),
    Other(String),
}

/// The chain's own consistency (each certificate issued by the next, CAs marked as CAs, the
/// last self-signed), and whether one of its certificates is in `trusted` (DER).
pub fn check_chain(chain: &[Cert<'_>], trusted: &[Vec<u8>]) -> Result<(), ChainProblem> {
    let Some(last) = chain.last() else {
        return Err(ChainProblem::Invalid(
            "the envelope carries no certificate".into(),
        ));
    };
    for pair in chain.windows(2) {
        issued_by(&pair[0], &pair[1]).map_err(ChainProblem::Invalid)?;
    }
    for ca in chain.iter().skip(1) {
        let (_, cert_sign) = key_usage(ca).map_err(ChainProblem::Invalid)?;
        if !is_ca(ca) || !cert_sign {
            return Err(ChainProblem::Invalid(format!(
                "certificate {} issues another but is not a CA with keyCertSign",
                ca.subject()
            )));
        }
    }
    if !last.self_issued() {
        return Err(ChainProblem::Invalid(format!(
            "the chain ends at {}, which is not a self-signed root",
            last.subject()
        )));
    }
    issued_by(last, last).map_err(ChainProblem::Invalid)?;
    if chain
        .iter()
        .any(|c| trusted.iter().any(|t| t.as_slice() == c.der))
    {
        Ok(())
    } else {
        Err(ChainProblem::Untrusted(format!(
            "no certificate of the chain ({}) is in the trust store",
            chain
                .iter()
                .map(Cert::subject)
                .collect::<Vec<_>>()
                .join(" <- ")
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    Invalid(String),
    Untrusted(String),
}

/// Every certificate of the chain valid at `time`.
pub fn chain_valid_at(chain: &[Cert<'_>], time: SystemTime) -> Result<(), CertProblem> {
    chain.iter().try_for_each(|c| c.valid_at(time))
}

/// A `trusted_identities` entry, `x509.subject: C=US, ST=WA, O=Acme\, Inc., CN=…` (an RFC 4514
/// distinguished name read as notation-go reads it, see [`super::dn`]): the attributes that must
/// all appear, with these values, in the signing certificate's subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIdentity {
    pub text: String,
    pub attributes: Vec<(String, String)>,
}

impl TrustedIdentity {
    pub fn parse(text: &str) -> Result<Self, String> {
        let dn = text.strip_prefix("x509.subject:").ok_or_else(|| {
            format!("{text:?} is neither \"*\" nor \"x509.subject: <distinguished name>\"")
        })?;
        if dn.trim().is_empty() {
            return Err(format!(
                "{text:?} has no distinguished name after \"x509.subject:\""
            ));
        }
        let attributes =
            super::dn::identity_attributes(dn).map_err(|p| format!("{text:?}: {p}"))?;
        Ok(Self {
            text: text.to_string(),
            attributes,
        })
    }

    /// notation-go refuses a list where one identity's attributes are a subset of another's
    /// (`validateOverlappingDNs`): the narrower one would never decide anything.
    pub fn overlapping(list: &[TrustedIdentity]) -> Option<(&TrustedIdentity, &TrustedIdentity)> {
        list.iter().enumerate().find_map(|(i, a)| {
            list.iter().enumerate().find_map(|(j, b)| {
                let subset = a.attributes.iter().all(|x| b.attributes.contains(x));
                (i != j && subset).then_some((a, b))
            })
        })
    }

    pub fn matches(&self, leaf: &Cert<'_>) -> bool {
        let subject = subject_attributes(leaf);
        self.attributes
            .iter()
            .all(|(k, v)| subject.iter().any(|(sk, sv)| sk == k && sv == v))
    }
}

fn subject_attributes(cert: &Cert<'_>) -> Vec<(String, String)> {
    let name = |oid: &Oid<'_>| -> String {
        let table = [
            (oids::OID_X509_COUNTRY_NAME, "C"),
            (oids::OID_X509_STATE_OR_PROVINCE_NAME, "ST"),
            (oids::OID_X509_LOCALITY_NAME, "L"),
            (oids::OID_X509_ORGANIZATION_NAME, "O"),
            (oids::OID_X509_ORGANIZATIONAL_UNIT, "OU"),
            (oids::OID_X509_COMMON_NAME, "CN"),
            // The other short names Go's `pkix.Name.String` prints, which notation-go matches.
            (oids::OID_X509_SERIALNUMBER, "SERIALNUMBER"),
            (oids::OID_X509_STREET_ADDRESS, "STREET"),
            (oids::OID_X509_POSTAL_CODE, "POSTALCODE"),
        ];
        table
            .iter()
            .find(|(o, _)| o == oid)
            .map(|(_, n)| n.to_string())
            .unwrap_or_else(|| oid.to_id_string())
    };
    cert.x509
        .subject()
        .iter_attributes()
        .filter_map(|a| Some((name(a.attr_type()), a.as_str().ok()?.to_string())))
        .collect()
}
