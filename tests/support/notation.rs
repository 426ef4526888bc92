//! Notation signatures made in code, from the Notary Project specifications (no notation binary
//! exists here): a test CA and a code-signing leaf (rcgen, ECDSA P-256), a JWS envelope signed
//! with aws-lc-rs (`ES256`, signing scheme `notary.x509`), and the signature manifest Notation
//! stores beside the image (`artifactType: application/vnd.cncf.notary.signature`, one
//! `application/jose+json` layer, `subject` = the image).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use super::cosign::{digest, Artifact, EMPTY, OCI_MANIFEST};

pub const ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
pub const JWS: &str = "application/jose+json";
pub const COSE: &str = "application/cose";
/// Where Notation puts the RFC 3161 countersignature (JWS and COSE unprotected headers).
pub const TIMESTAMP_HEADER: &str = "io.cncf.notary.timestampSignature";

/// Makes the RFC 3161 token for a signature value (see [`TestTsa::token`]).
pub type Stamp<'a> = &'a dyn Fn(&[u8]) -> Vec<u8>;

/// A CA and one signing certificate under it.
pub struct NotationSigner {
    root_pem: String,
    root_der: Vec<u8>,
    leaf_der: Vec<u8>,
    leaf_key: KeyPair,
    /// The signing certificate's subject as a `trusted_identities` entry.
    pub identity: String,
}

impl NotationSigner {
    /// A fresh CA `O=<org>` and a leaf `CN=<cn>` with code signing, valid 2021 to 2060.
    pub fn generate(org: &str, cn: &str) -> Self {
        Self::generate_valid(org, cn, (2021, 1, 1), (2060, 1, 1))
    }

    /// As [`Self::generate`], with a leaf valid from `not_before` to `not_after` (y, m, d).
    pub fn generate_valid(
        org: &str,
        cn: &str,
        not_before: (i32, u8, u8),
        not_after: (i32, u8, u8),
    ) -> Self {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
        for (t, v) in [
            (DnType::CountryName, "US"),
            (DnType::StateOrProvinceName, "WA"),
            (DnType::OrganizationName, org),
            (DnType::CommonName, "Test Root"),
        ] {
            rp.distinguished_name.push(t, v);
        }
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        rp.not_before = rcgen::date_time_ymd(2020, 1, 1);
        rp.not_after = rcgen::date_time_ymd(2060, 1, 1);
        let root = rp.self_signed(&root_key).unwrap();
        let issuer = Issuer::new(rp, root_key);
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
        for (t, v) in [
            (DnType::CountryName, "US"),
            (DnType::StateOrProvinceName, "WA"),
            (DnType::OrganizationName, org),
            (DnType::CommonName, cn),
        ] {
            lp.distinguished_name.push(t, v);
        }
        lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        lp.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        lp.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let leaf = lp.signed_by(&leaf_key, &issuer).unwrap();
        Self {
            root_pem: root.pem(),
            root_der: root.der().to_vec(),
            leaf_der: leaf.der().to_vec(),
            leaf_key,
            identity: format!(
                "x509.subject: C=US, ST=WA, O={}, CN={}",
                rfc4514_escape(org),
                rfc4514_escape(cn)
            ),
        }
    }

    /// Writes the CA certificate (what `notation cert add --type ca` stores) and returns its path.
    pub fn write_root(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(format!("{name}.pem"));
        std::fs::write(&p, &self.root_pem).unwrap();
        p
    }

    /// Writes a Notation trust-store directory (`x509/ca/<store>/root.pem`) and a
    /// `trustpolicy.json` with one statement for `scope`, as the Notation CLI keeps them.
    pub fn write_notation_files(
        &self,
        dir: &Path,
        store: &str,
        scope: &str,
        level: &str,
    ) -> (PathBuf, PathBuf) {
        let store_dir = dir.join("truststore");
        let ca = store_dir.join("x509/ca").join(store);
        std::fs::create_dir_all(&ca).unwrap();
        std::fs::write(ca.join("root.pem"), &self.root_pem).unwrap();
        let policy = dir.join("trustpolicy.json");
        let doc = serde_json::json!({
            "version": "1.0",
            "trustPolicies": [{
                "name": "gateway",
                "registryScopes": [scope],
                "signatureVerification": {"level": level},
                "trustStores": [format!("ca:{store}")],
                "trustedIdentities": [self.identity],
            }]
        });
        std::fs::write(&policy, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        (policy, store_dir)
    }

    /// A JWS envelope over `{"targetArtifact": {mediaType, digest, size}}`.
    pub fn sign_jws(&self, media_type: &str, target_digest: &str, size: usize) -> Vec<u8> {
        self.sign_jws_stamped(media_type, target_digest, size, None)
    }

    /// As [`Self::sign_jws`]; `stamp` (given the signature value) makes the RFC 3161 token
    /// Notation puts in the unprotected header as `io.cncf.notary.timestampSignature`.
    pub fn sign_jws_stamped(
        &self,
        media_type: &str,
        target_digest: &str,
        size: usize,
        stamp: Option<Stamp<'_>>,
    ) -> Vec<u8> {
        let protected = serde_json::json!({
            "alg": "ES256",
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "crit": ["io.cncf.notary.signingScheme"],
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": "2026-01-01T00:00:00Z",
        });
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&protected).unwrap());
        let b = URL_SAFE_NO_PAD.encode(target_payload(media_type, target_digest, size));
        let sig = p256_sign(&self.leaf_key, true, format!("{p}.{b}").as_bytes());
        let mut header = serde_json::json!({
            "x5c": [STANDARD.encode(&self.leaf_der), STANDARD.encode(&self.root_der)],
            "io.cncf.notary.signingAgent": "trustgate-tests",
        });
        if let Some(stamp) = stamp {
            header[TIMESTAMP_HEADER] = STANDARD.encode(stamp(&sig)).into();
        }
        serde_json::to_vec(&serde_json::json!({
            "protected": p,
            "payload": b,
            "signature": URL_SAFE_NO_PAD.encode(&sig),
            "header": header,
        }))
        .unwrap()
    }

    /// A COSE_Sign1 envelope (tagged, ES256, scheme `notary.x509`) over the same payload, the
    /// chain in `x5chain` (label 33) and `stamp`'s token in the unprotected header.
    pub fn sign_cose_stamped(
        &self,
        media_type: &str,
        target_digest: &str,
        size: usize,
        stamp: Option<Stamp<'_>>,
    ) -> Vec<u8> {
        use coset::cbor::value::Value;
        use coset::{iana, HeaderBuilder, TaggedCborSerializable};
        let payload = target_payload(media_type, target_digest, size);
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::ES256)
            .content_type("application/vnd.cncf.notary.payload.v1+json".into())
            .add_critical_label(coset::RegisteredLabelWithPrivate::Text(
                "io.cncf.notary.signingScheme".into(),
            ))
            .text_value(
                "io.cncf.notary.signingScheme".into(),
                Value::Text("notary.x509".into()),
            )
            .text_value(
                "io.cncf.notary.signingTime".into(),
                Value::Tag(1, Box::new(Value::Integer(1_767_225_600.into()))),
            )
            .build();
        let mut sign1 = coset::CoseSign1Builder::new()
            .protected(protected)
            .payload(payload)
            .create_signature(b"", |tbs| p256_sign(&self.leaf_key, true, tbs))
            .build();
        let mut unprotected = HeaderBuilder::new()
            .value(
                33,
                Value::Array(vec![
                    Value::Bytes(self.leaf_der.clone()),
                    Value::Bytes(self.root_der.clone()),
                ]),
            )
            .text_value(
                "io.cncf.notary.signingAgent".into(),
                Value::Text("trustgate-tests".into()),
            );
        if let Some(stamp) = stamp {
            unprotected = unprotected.text_value(
                TIMESTAMP_HEADER.into(),
                Value::Bytes(stamp(&sign1.signature)),
            );
        }
        sign1.unprotected = unprotected.build();
        sign1.to_tagged_vec().unwrap()
    }

    /// The signature manifest of the image `manifest` (its digest, size and media type signed).
    pub fn referrer(&self, manifest: &[u8], media_type: &str) -> Artifact {
        let envelope = self.sign_jws(media_type, &digest(manifest), manifest.len());
        signature_manifest(&digest(manifest), manifest.len(), media_type, &envelope)
    }
}

/// The Notation payload: `{"targetArtifact": {mediaType, digest, size}}`.
fn target_payload(media_type: &str, target_digest: &str, size: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"targetArtifact": {
        "mediaType": media_type, "digest": target_digest, "size": size}}))
    .unwrap()
}

/// An ECDSA P-256 / SHA-256 signature by `key` (aws-lc-rs): `fixed` r||s as JWS and COSE carry
/// it, else ASN.1 DER as CMS does.
fn p256_sign(key: &KeyPair, fixed: bool, data: &[u8]) -> Vec<u8> {
    let alg = if fixed {
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING
    } else {
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING
    };
    aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, &key.serialize_der())
        .unwrap()
        .sign(&aws_lc_rs::rand::SystemRandom::new(), data)
        .unwrap()
        .as_ref()
        .to_vec()
}

/// `value` escaped for an RFC 4514 distinguished name (the characters notation's DN parser
/// treats as special, and leading or trailing spaces).
pub fn rfc4514_escape(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        let edge_space = c == ' ' && (i == 0 || i + 1 == value.chars().count());
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' | '#') || edge_space {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A Notation signature manifest holding `envelope`.
pub fn signature_manifest(
    subject: &str,
    subject_size: usize,
    subject_type: &str,
    envelope: &[u8],
) -> Artifact {
    let empty = b"{}".to_vec();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY, "digest": digest(&empty), "size": 2},
        "layers": [{"mediaType": JWS, "digest": digest(envelope), "size": envelope.len()}],
        "subject": {"mediaType": subject_type, "digest": subject, "size": subject_size},
        "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": "[]"},
    }))
    .unwrap();
    Artifact {
        manifest,
        media_type: OCI_MANIFEST,
        blobs: vec![empty, envelope.to_vec()],
    }
}

/// A test time-stamping authority made in code (RFC 3161): a root and a TSA certificate under it
/// (ECDSA P-256, the timeStamping extended key usage unless [`TestTsa::without_eku`]), issuing
/// timestamp tokens: CMS SignedData (RFC 5652) over a TSTInfo whose message imprint is the
/// SHA-256 of the bytes given, as a TSA answers Notation's request for a signature value. Built
/// with the `cms`/`der` types trustgate reads them with; signed with aws-lc-rs.
pub struct TestTsa {
    pub root_pem: String,
    pub root_der: Vec<u8>,
    cert_der: Vec<u8>,
    key: KeyPair,
}

impl TestTsa {
    /// A TSA `CN=<cn>` whose certificate has the timeStamping EKU, valid 2000 to 2050.
    pub fn generate(cn: &str) -> Self {
        Self::build(cn, vec![ExtendedKeyUsagePurpose::TimeStamping])
    }

    /// A TSA whose certificate is for code signing, not time stamping.
    pub fn without_eku(cn: &str) -> Self {
        Self::build(cn, vec![ExtendedKeyUsagePurpose::CodeSigning])
    }

    fn build(cn: &str, eku: Vec<ExtendedKeyUsagePurpose>) -> Self {
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut rp = CertificateParams::new(Vec::<String>::new()).unwrap();
        rp.distinguished_name
            .push(DnType::OrganizationName, "Test TSA");
        rp.distinguished_name
            .push(DnType::CommonName, format!("{cn} Root"));
        rp.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        rp.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        rp.not_before = rcgen::date_time_ymd(2000, 1, 1);
        rp.not_after = rcgen::date_time_ymd(2050, 1, 1);
        let root = rp.self_signed(&root_key).unwrap();
        let issuer = Issuer::new(rp, root_key);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut cp = CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.distinguished_name
            .push(DnType::OrganizationName, "Test TSA");
        cp.distinguished_name.push(DnType::CommonName, cn);
        cp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        cp.extended_key_usages = eku;
        cp.not_before = rcgen::date_time_ymd(2000, 1, 1);
        cp.not_after = rcgen::date_time_ymd(2050, 1, 1);
        let cert = cp.signed_by(&key, &issuer).unwrap();
        Self {
            root_pem: root.pem(),
            root_der: root.der().to_vec(),
            cert_der: cert.der().to_vec(),
            key,
        }
    }

    /// Writes the TSA root (what `notation cert add --type tsa` stores) and returns its path.
    pub fn write_root(&self, dir: &Path, name: &str) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join(format!("{name}.pem"));
        std::fs::write(&p, &self.root_pem).unwrap();
        p
    }

    /// A timestamp token attesting `time` (UTC y, m, d) for `signature`.
    pub fn token(&self, signature: &[u8], time: (i32, u8, u8)) -> Vec<u8> {
        use cms::cert::x509::spki::AlgorithmIdentifierOwned;
        use cms::cert::x509::{attr::Attribute, Certificate};
        use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
        use cms::content_info::{CmsVersion, ContentInfo};
        use cms::signed_data::{
            CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo,
            SignerInfos,
        };
        use der::asn1::{GeneralizedTime, ObjectIdentifier, OctetString, SetOfVec};
        use der::{Any, Decode, Encode, Sequence};

        #[derive(Sequence)]
        struct MessageImprint {
            hash_algorithm: AlgorithmIdentifierOwned,
            hashed_message: OctetString,
        }
        #[derive(Sequence)]
        struct TstInfo {
            version: u8,
            policy: ObjectIdentifier,
            message_imprint: MessageImprint,
            serial_number: u64,
            gen_time: GeneralizedTime,
        }

        let oid = ObjectIdentifier::new_unwrap;
        let sha256 = || AlgorithmIdentifierOwned {
            oid: oid("2.16.840.1.101.3.4.2.1"),
            parameters: None,
        };
        let hash = |b: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
        let when =
            time::Date::from_calendar_date(time.0, time::Month::try_from(time.1).unwrap(), time.2)
                .unwrap()
                .midnight()
                .assume_utc();
        let tst = TstInfo {
            version: 1,
            policy: oid("1.2.3.4.1"),
            message_imprint: MessageImprint {
                hash_algorithm: sha256(),
                hashed_message: OctetString::new(hash(signature).as_ref()).unwrap(),
            },
            serial_number: 1,
            gen_time: GeneralizedTime::from_system_time(when.into()).unwrap(),
        }
        .to_der()
        .unwrap();
        let id_tst_info = oid("1.2.840.113549.1.9.16.1.4");
        // RFC 5652 5.3: contentType and messageDigest are the signed attributes every signer has.
        let attr = |o: &str, v: Any| Attribute {
            oid: oid(o),
            values: SetOfVec::try_from(vec![v]).unwrap(),
        };
        let signed_attrs = SetOfVec::try_from(vec![
            attr(
                "1.2.840.113549.1.9.3",
                Any::encode_from(&id_tst_info).unwrap(),
            ),
            attr(
                "1.2.840.113549.1.9.4",
                Any::encode_from(&OctetString::new(hash(&tst).as_ref()).unwrap()).unwrap(),
            ),
        ])
        .unwrap();
        let sig = p256_sign(&self.key, false, &signed_attrs.to_der().unwrap());
        let cert = Certificate::from_der(&self.cert_der).unwrap();
        let signed = SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![sha256()]).unwrap(),
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: id_tst_info,
                econtent: Some(Any::encode_from(&OctetString::new(tst).unwrap()).unwrap()),
            },
            certificates: Some(CertificateSet(
                SetOfVec::try_from(vec![CertificateChoices::Certificate(cert.clone())]).unwrap(),
            )),
            crls: None,
            signer_infos: SignerInfos(
                SetOfVec::try_from(vec![SignerInfo {
                    version: CmsVersion::V1,
                    sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                        issuer: cert.tbs_certificate.issuer.clone(),
                        serial_number: cert.tbs_certificate.serial_number.clone(),
                    }),
                    digest_alg: sha256(),
                    signed_attrs: Some(signed_attrs),
                    // ecdsa-with-SHA256
                    signature_algorithm: AlgorithmIdentifierOwned {
                        oid: oid("1.2.840.10045.4.3.2"),
                        parameters: None,
                    },
                    signature: OctetString::new(sig).unwrap(),
                    unsigned_attrs: None,
                }])
                .unwrap(),
            ),
        };
        ContentInfo {
            content_type: oid("1.2.840.113549.1.7.2"),
            content: Any::encode_from(&signed).unwrap(),
        }
        .to_der()
        .unwrap()
    }
}
