//! A private Sigstore made in code for the cosign tests: a test CA playing Fulcio (leaves with
//! Fulcio's issuer extension and an SCT embedded from a test CT log), a log key playing Rekor
//! (hashedrekord entries and their SETs), and the trusted_root.json naming them.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest as _, Sha256};

pub fn ecdsa() -> EcdsaKeyPair {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
        .unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap()
}

pub fn spki(key: &EcdsaKeyPair) -> Vec<u8> {
    AsDer::<PublicKeyX509Der>::as_der(key.public_key())
        .unwrap()
        .as_ref()
        .to_vec()
}

pub fn sign(key: &EcdsaKeyPair, msg: &[u8]) -> Vec<u8> {
    key.sign(&SystemRandom::new(), msg)
        .unwrap()
        .as_ref()
        .to_vec()
}

pub fn pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

pub fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

pub fn simple_signing(reference: &str, digest: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    ))
}

/// A private Sigstore: Fulcio CA, CT log, Rekor log.
pub struct Sigstore {
    pub ca_key: rcgen::KeyPair,
    pub ca_params: CertificateParams,
    pub ca_der: Vec<u8>,
    pub ct: EcdsaKeyPair,
    pub rekor: EcdsaKeyPair,
}

/// A Fulcio-style leaf and the key it certifies.
pub struct Leaf {
    pub key: EcdsaKeyPair,
    pub pem: String,
}

impl Sigstore {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test fulcio");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        ca_params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
        let ca_der = ca_params.self_signed(&ca_key).unwrap().der().to_vec();
        Self {
            ca_key,
            ca_params,
            ca_der,
            ct: ecdsa(),
            rekor: ecdsa(),
        }
    }

    pub fn trusted_root(&self) -> String {
        let log = |key: &EcdsaKeyPair, url: &str| {
            let der = spki(key);
            serde_json::json!({
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": B64.encode(&der),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": { "start": "2020-01-01T00:00:00Z" }
                },
                "logId": { "keyId": B64.encode(Sha256::digest(&der)) }
            })
        };
        serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(&self.rekor, "https://rekor.example.test")],
            "certificateAuthorities": [{
                "subject": { "organization": "test", "commonName": "test fulcio" },
                "uri": "https://fulcio.example.test",
                "certChain": { "certificates": [{ "rawBytes": B64.encode(&self.ca_der) }] },
                "validFor": { "start": "2020-01-01T00:00:00Z" }
            }],
            "ctlogs": [log(&self.ct, "https://ct.example.test")],
            "timestampAuthorities": []
        })
        .to_string()
    }

    /// A leaf for `email` from `issuer`, valid `[from, from + 10 min]`, with an SCT.
    pub fn leaf(&self, email: &str, issuer: &str, from: SystemTime) -> Leaf {
        // The leaf key is made by rcgen (which needs its own key type) and used by aws-lc-rs.
        let public = rcgen::KeyPair::generate().unwrap();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &public.serialize_der())
                .unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![SanType::Rfc822Name(email.try_into().unwrap())];
        params.serial_number = Some(SerialNumber::from(vec![0x11, 0x22, 0x33]));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
        let start = time::OffsetDateTime::from_unix_timestamp(unix(from)).unwrap();
        params.not_before = start;
        params.not_after = start + time::Duration::minutes(10);
        // Fulcio's OIDC issuer extension (1.3.6.1.4.1.57264.1.8, a DER UTF8String).
        let mut utf8 = vec![0x0c, issuer.len() as u8];
        utf8.extend_from_slice(issuer.as_bytes());
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 57264, 1, 8],
            utf8,
        )];
        let ca = Issuer::from_params(&self.ca_params, &self.ca_key);
        // The precertificate's TBS is the final TBS without the SCT extension (RFC 6962 3.2):
        // issue once without it, sign the SCT over that TBS, issue again with it appended.
        let precert = params.signed_by(&public, &ca).unwrap();
        let tbs = {
            use x509_parser::prelude::FromDer;
            let (_, cert) =
                x509_parser::certificate::X509Certificate::from_der(precert.der()).unwrap();
            cert.tbs_certificate.as_ref().to_vec()
        };
        let sct_list = self.sct(&tbs);
        let mut octets = vec![0x04];
        der_len(&mut octets, sct_list.len());
        octets.extend_from_slice(&sct_list);
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2],
                octets,
            ));
        let cert = params.signed_by(&public, &ca).unwrap();
        Leaf {
            key,
            pem: pem("CERTIFICATE", cert.der()),
        }
    }

    /// A SignedCertificateTimestampList with one SCT by the CT key over `tbs` (RFC 6962 3.2).
    pub fn sct(&self, tbs: &[u8]) -> Vec<u8> {
        let (_, ca) = {
            use x509_parser::prelude::FromDer;
            x509_parser::certificate::X509Certificate::from_der(&self.ca_der).unwrap()
        };
        let issuer_key_hash = Sha256::digest(ca.tbs_certificate.subject_pki.raw);
        let timestamp = (unix(SystemTime::now()) as u64 - 3600) * 1000;
        let mut signed = vec![0u8, 0u8];
        signed.extend_from_slice(&timestamp.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes());
        signed.extend_from_slice(&issuer_key_hash);
        signed.extend_from_slice(&(tbs.len() as u32).to_be_bytes()[1..]);
        signed.extend_from_slice(tbs);
        signed.extend_from_slice(&0u16.to_be_bytes());
        let sig = sign(&self.ct, &signed);
        let mut sct = vec![0u8];
        sct.extend_from_slice(&Sha256::digest(spki(&self.ct)));
        sct.extend_from_slice(&timestamp.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes());
        sct.extend_from_slice(&[4, 3]);
        sct.extend_from_slice(&(sig.len() as u16).to_be_bytes());
        sct.extend_from_slice(&sig);
        let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        list
    }

    /// cosign's `dev.sigstore.cosign/bundle` annotation: a hashedrekord entry for (payload,
    /// signature, public key or certificate PEM) and Rekor's SET over it, signed by `log_key`.
    pub fn rekor_bundle(
        &self,
        log_key: &EcdsaKeyPair,
        payload: &[u8],
        signature: &[u8],
        verifier_pem: &str,
        integrated: SystemTime,
    ) -> String {
        // Canonical JSON (RFC 8785): keys sorted, no spaces.
        let body = format!(
            r#"{{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{{"data":{{"hash":{{"algorithm":"sha256","value":"{}"}}}},"signature":{{"content":"{}","publicKey":{{"content":"{}"}}}}}}}}"#,
            hex::encode(Sha256::digest(payload)),
            B64.encode(signature),
            B64.encode(verifier_pem),
        );
        let body_b64 = B64.encode(body);
        let log_id = hex::encode(Sha256::digest(spki(&self.rekor)));
        let t = unix(integrated);
        let set_payload = format!(
            r#"{{"body":"{body_b64}","integratedTime":{t},"logID":"{log_id}","logIndex":7}}"#
        );
        let set = B64.encode(sign(log_key, set_payload.as_bytes()));
        format!(
            r#"{{"SignedEntryTimestamp":"{set}","Payload":{{"body":"{body_b64}","integratedTime":{t},"logIndex":7,"logID":"{log_id}"}}}}"#
        )
    }
}

pub fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}
