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
    /// A fresh CA `O=<org>` and a leaf `CN=<cn>` with code signing.
    pub fn generate(org: &str, cn: &str) -> Self {
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
        lp.not_before = rcgen::date_time_ymd(2021, 1, 1);
        lp.not_after = rcgen::date_time_ymd(2060, 1, 1);
        let leaf = lp.signed_by(&leaf_key, &issuer).unwrap();
        Self {
            root_pem: root.pem(),
            root_der: root.der().to_vec(),
            leaf_der: leaf.der().to_vec(),
            leaf_key,
            identity: format!("x509.subject: C=US, ST=WA, O={org}, CN={cn}"),
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
        let protected = serde_json::json!({
            "alg": "ES256",
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "crit": ["io.cncf.notary.signingScheme"],
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": "2026-01-01T00:00:00Z",
        });
        let payload = serde_json::json!({"targetArtifact": {
            "mediaType": media_type, "digest": target_digest, "size": size}});
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&protected).unwrap());
        let b = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
        let signer = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &self.leaf_key.serialize_der(),
        )
        .unwrap();
        let sig = signer
            .sign(
                &aws_lc_rs::rand::SystemRandom::new(),
                format!("{p}.{b}").as_bytes(),
            )
            .unwrap();
        serde_json::to_vec(&serde_json::json!({
            "protected": p,
            "payload": b,
            "signature": URL_SAFE_NO_PAD.encode(sig.as_ref()),
            "header": {
                "x5c": [STANDARD.encode(&self.leaf_der), STANDARD.encode(&self.root_der)],
                "io.cncf.notary.signingAgent": "trustgate-tests",
            },
        }))
        .unwrap()
    }

    /// The signature manifest of the image `manifest` (its digest, size and media type signed).
    pub fn referrer(&self, manifest: &[u8], media_type: &str) -> Artifact {
        let envelope = self.sign_jws(media_type, &digest(manifest), manifest.len());
        signature_manifest(&digest(manifest), manifest.len(), media_type, &envelope)
    }
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
