//! cosign signatures made in code from the specifications: a test CA plays Fulcio (with an
//! embedded SCT from a test CT log), a log key plays Rekor (SETs over hashedrekord entries),
//! and a trusted_root.json names them. Each adversarial case breaks one thing and expects its
//! own refusal.

mod cosign_support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::EcdsaKeyPair;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use cosign_support::{ecdsa, pem, sign, simple_signing, spki, unix, Leaf, Sigstore};
use trustgate::reference::Digest;
use trustgate::verify::config::{IdentityConfig, Transparency, VerifierConfig, VerifierKind};
use trustgate::verify::cosign::{
    Accepted, CosignRefusal, CosignVerifier, Expected, SignatureEvidence,
};

const ISSUER: &str = "https://accounts.example.test";
const EMAIL: &str = "alice@example.com";
const HOST: &str = "registry.example.test";
const REPO: &str = "team/app";
const DIGEST: &str = "sha256:4242424242424242424242424242424242424242424242424242424242424242";
const OTHER_DIGEST: &str =
    "sha256:1313131313131313131313131313131313131313131313131313131313131313";

/// A verifier built from files in a temporary directory.
struct Setup {
    _dir: tempfile::TempDir,
    verifier: CosignVerifier,
}

fn verifier(
    store: Option<&Sigstore>,
    keys: &[&EcdsaKeyPair],
    identities: Vec<IdentityConfig>,
    transparency: Option<Transparency>,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let trusted_root = store.map(|s| {
        std::fs::write(dir.path().join("trusted_root.json"), s.trusted_root()).unwrap();
        "trusted_root.json".into()
    });
    let keys = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let name = format!("key{i}.pub");
            std::fs::write(dir.path().join(&name), pem("PUBLIC KEY", &spki(k))).unwrap();
            name.into()
        })
        .collect();
    let config = VerifierConfig {
        name: "acme-release".into(),
        kind: VerifierKind::Cosign,
        keys,
        identities,
        trusted_root,
        transparency,
        check_reference: true,
        ..Default::default()
    };
    let verifier = CosignVerifier::from_config(&config, dir.path()).unwrap();
    Setup {
        _dir: dir,
        verifier,
    }
}

fn alice() -> Vec<IdentityConfig> {
    vec![IdentityConfig {
        issuer: Some(ISSUER.into()),
        issuer_regex: None,
        subject: Some(EMAIL.into()),
        subject_regex: None,
    }]
}

fn check(setup: &Setup, evidence: &SignatureEvidence) -> Result<Accepted, CosignRefusal> {
    let digest = Digest::parse(DIGEST).unwrap();
    let expected = Expected {
        registry_host: HOST,
        repository: REPO,
        digest: &digest,
    };
    setup
        .verifier
        .verify(evidence, &expected, SystemTime::now())
}

/// A keyless `.sig` layer: payload signed by a fresh Fulcio-style leaf, logged in Rekor.
struct Keyless {
    payload: Bytes,
    signature: Vec<u8>,
    leaf: Leaf,
    rekor_bundle: Option<String>,
}

impl Keyless {
    fn new(store: &Sigstore, email: &str, issuer: &str) -> Self {
        let issued = SystemTime::now() - Duration::from_secs(3600);
        let leaf = store.leaf(email, issuer, issued);
        Self::with_leaf(
            store,
            leaf,
            issued + Duration::from_secs(60),
            &simple_signing(&format!("{HOST}/{REPO}"), DIGEST),
        )
    }

    fn with_leaf(store: &Sigstore, leaf: Leaf, integrated: SystemTime, payload: &Bytes) -> Self {
        let signature = sign(&leaf.key, payload);
        let rekor_bundle =
            Some(store.rekor_bundle(&store.rekor, payload, &signature, &leaf.pem, integrated));
        Self {
            payload: payload.clone(),
            signature,
            leaf,
            rekor_bundle,
        }
    }

    fn evidence(&self) -> SignatureEvidence {
        SignatureEvidence::SimpleSigning {
            payload: self.payload.clone(),
            signature: B64.encode(&self.signature),
            certificate: Some(self.leaf.pem.clone()),
            chain: None,
            rekor_bundle: self.rekor_bundle.clone(),
            rfc3161_timestamp: None,
        }
    }
}

#[test]
fn keyless_sig_tag_signature_verifies_offline() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), None);
    let sig = Keyless::new(&store, EMAIL, ISSUER);
    let accepted = check(&setup, &sig.evidence()).unwrap();
    assert_eq!(accepted.signer, EMAIL);
    assert_eq!(accepted.issuer.as_deref(), Some(ISSUER));
    assert!(accepted.signed_at.is_some());
}

#[test]
fn keyless_subject_mismatch() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), None);
    let sig = Keyless::new(&store, "mallory@example.com", ISSUER);
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate identity mallory@example.com does not match"
    );
}

#[test]
fn keyless_issuer_mismatch() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), None);
    let sig = Keyless::new(&store, EMAIL, "https://lax-issuer.example.test");
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert!(matches!(err, CosignRefusal::IssuerMismatch { .. }), "{err}");
}

#[test]
fn keyless_subject_regex_is_anchored() {
    let store = Sigstore::new();
    let ids = vec![IdentityConfig {
        issuer: Some(ISSUER.into()),
        issuer_regex: None,
        subject: None,
        subject_regex: Some(r"alice@example\.com".into()),
    }];
    let setup = verifier(Some(&store), &[], ids, None);
    check(&setup, &Keyless::new(&store, EMAIL, ISSUER).evidence()).unwrap();
    // Unanchored, this regex would accept both.
    let err = check(
        &setup,
        &Keyless::new(&store, "evil-alice@example.com", ISSUER).evidence(),
    )
    .unwrap_err();
    assert!(
        matches!(err, CosignRefusal::IdentityMismatch { .. }),
        "{err}"
    );
    let err = check(
        &setup,
        &Keyless::new(&store, "alice@example.com.evil", ISSUER).evidence(),
    )
    .unwrap_err();
    assert!(
        matches!(err, CosignRefusal::IdentityMismatch { .. }),
        "{err}"
    );
}

#[test]
fn keyless_certificate_from_an_untrusted_ca() {
    let store = Sigstore::new();
    let impostor = Sigstore {
        ct: ecdsa(),
        rekor: ecdsa(),
        ..Sigstore::new()
    };
    let setup = verifier(Some(&store), &[], alice(), None);
    let issued = SystemTime::now() - Duration::from_secs(3600);
    let sig = Keyless::with_leaf(
        &store,
        impostor.leaf(EMAIL, ISSUER, issued),
        issued + Duration::from_secs(60),
        &simple_signing(&format!("{HOST}/{REPO}"), DIGEST),
    );
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert!(
        matches!(err, CosignRefusal::CertificateUntrusted { .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with("certificate not issued by a trusted Fulcio CA"));
}

#[test]
fn keyless_certificate_expired_at_signing_time() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), None);
    let issued = SystemTime::now() - Duration::from_secs(7200);
    // Logged 20 minutes after issuance: the 10-minute certificate had expired.
    let sig = Keyless::with_leaf(
        &store,
        store.leaf(EMAIL, ISSUER, issued),
        issued + Duration::from_secs(1200),
        &simple_signing(&format!("{HOST}/{REPO}"), DIGEST),
    );
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert!(
        matches!(err, CosignRefusal::CertificateExpired { .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with("certificate expired at signing time"));
}

#[test]
fn keyless_log_promise_forged() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), None);
    let issued = SystemTime::now() - Duration::from_secs(3600);
    let mut sig = Keyless::new(&store, EMAIL, ISSUER);
    // A SET signed by some other key than the trusted Rekor key.
    sig.rekor_bundle = Some(store.rekor_bundle(
        &ecdsa(),
        &sig.payload,
        &sig.signature,
        &sig.leaf.pem,
        issued + Duration::from_secs(60),
    ));
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert!(
        matches!(err, CosignRefusal::TransparencyInvalid { .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .starts_with("transparency log proof invalid"));
}

#[test]
fn keyless_log_entry_for_another_signature() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), None);
    let issued = SystemTime::now() - Duration::from_secs(3600);
    let mut sig = Keyless::new(&store, EMAIL, ISSUER);
    // A genuine entry, but for another payload: it says nothing about this signature.
    let other = simple_signing(&format!("{HOST}/{REPO}"), OTHER_DIGEST);
    let other_sig = sign(&sig.leaf.key, &other);
    sig.rekor_bundle = Some(store.rekor_bundle(
        &store.rekor,
        &other,
        &other_sig,
        &sig.leaf.pem,
        issued + Duration::from_secs(60),
    ));
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert!(
        matches!(err, CosignRefusal::TransparencyInvalid { .. }),
        "{err}"
    );
}

#[test]
fn keyless_log_entry_missing_when_required() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), None);
    let mut sig = Keyless::new(&store, EMAIL, ISSUER);
    sig.rekor_bundle = None;
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no transparency log proof (transparency = \"require\")"
    );
    // With `skip`, nothing then says when the certificate was used: still refused, saying so.
    let setup = verifier(Some(&store), &[], alice(), Some(Transparency::Skip));
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert_eq!(err, CosignRefusal::NoSigningTime);
}

#[test]
fn keyless_signature_over_another_digest() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), None);
    let issued = SystemTime::now() - Duration::from_secs(3600);
    let sig = Keyless::with_leaf(
        &store,
        store.leaf(EMAIL, ISSUER, issued),
        issued + Duration::from_secs(60),
        &simple_signing(&format!("{HOST}/{REPO}"), OTHER_DIGEST),
    );
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("signature is for {OTHER_DIGEST} not {DIGEST}")
    );
}

#[test]
fn keyless_payload_for_another_repository() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), None);
    let issued = SystemTime::now() - Duration::from_secs(3600);
    let sig = Keyless::with_leaf(
        &store,
        store.leaf(EMAIL, ISSUER, issued),
        issued + Duration::from_secs(60),
        &simple_signing(&format!("{HOST}/team/other"), DIGEST),
    );
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("signature is for repository {HOST}/team/other, not {HOST}/{REPO}")
    );
}

#[test]
fn keyless_signature_tampered() {
    let store = Sigstore::new();
    let setup = verifier(Some(&store), &[], alice(), Some(Transparency::Skip));
    let mut sig = Keyless::new(&store, EMAIL, ISSUER);
    // The logged entry still names the original signature, so corrupt both consistently:
    // a signature by another key over the same payload, logged as such.
    let impostor = ecdsa();
    sig.signature = sign(&impostor, &sig.payload);
    let issued = SystemTime::now() - Duration::from_secs(3600);
    sig.rekor_bundle = Some(store.rekor_bundle(
        &store.rekor,
        &sig.payload,
        &sig.signature,
        &sig.leaf.pem,
        issued + Duration::from_secs(60),
    ));
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert!(
        matches!(err, CosignRefusal::SignatureInvalid { .. }),
        "{err}"
    );
}

// ---- keyed ----

fn keyed_sig(
    key: &EcdsaKeyPair,
    payload: &Bytes,
    rekor_bundle: Option<String>,
) -> SignatureEvidence {
    SignatureEvidence::SimpleSigning {
        payload: payload.clone(),
        signature: B64.encode(sign(key, payload)),
        certificate: None,
        chain: None,
        rekor_bundle,
        rfc3161_timestamp: None,
    }
}

#[test]
fn keyed_with_required_log_entry() {
    let store = Sigstore::new();
    let key = ecdsa();
    let setup = verifier(Some(&store), &[&key], vec![], Some(Transparency::Require));
    let payload = simple_signing(&format!("{HOST}/{REPO}"), DIGEST);
    let signature = sign(&key, &payload);
    let logged = SystemTime::now() - Duration::from_secs(600);
    let rekor = store.rekor_bundle(
        &store.rekor,
        &payload,
        &signature,
        &pem("PUBLIC KEY", &spki(&key)),
        logged,
    );
    let evidence = SignatureEvidence::SimpleSigning {
        payload: payload.clone(),
        signature: B64.encode(&signature),
        certificate: None,
        chain: None,
        rekor_bundle: Some(rekor),
        rfc3161_timestamp: None,
    };
    let accepted = check(&setup, &evidence).unwrap();
    assert_eq!(accepted.signed_at.map(unix), Some(unix(logged)));
    // The same signature without its entry is refused under `require`.
    let err = check(&setup, &keyed_sig(&key, &payload, None)).unwrap_err();
    assert_eq!(err, CosignRefusal::TransparencyMissing);
    // And with a SET from another key, the proof is invalid.
    let forged = store.rekor_bundle(
        &ecdsa(),
        &payload,
        &signature,
        &pem("PUBLIC KEY", &spki(&key)),
        logged,
    );
    let evidence = SignatureEvidence::SimpleSigning {
        payload,
        signature: B64.encode(&signature),
        certificate: None,
        chain: None,
        rekor_bundle: Some(forged),
        rfc3161_timestamp: None,
    };
    let err = check(&setup, &evidence).unwrap_err();
    assert!(
        matches!(err, CosignRefusal::TransparencyInvalid { .. }),
        "{err}"
    );
}

/// A cosign v3 bundle for an image, signed with a key and not logged: a DSSE envelope over an
/// in-toto statement with predicate type https://sigstore.dev/cosign/sign/v1.
fn keyed_bundle(key: &EcdsaKeyPair, subject_hex: &str, predicate_type: &str) -> SignatureEvidence {
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"digest":{{"sha256":"{subject_hex}"}}}}],"predicateType":"{predicate_type}","predicate":{{}}}}"#
    );
    let payload_type = "application/vnd.in-toto+json";
    let pae = format!(
        "DSSEv1 {} {payload_type} {} {statement}",
        payload_type.len(),
        statement.len()
    );
    let sig = sign(key, pae.as_bytes());
    let bundle = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": { "publicKey": { "hint": "" }, "tlogEntries": [] },
        "dsseEnvelope": {
            "payload": B64.encode(&statement),
            "payloadType": payload_type,
            "signatures": [{ "sig": B64.encode(sig), "keyid": "" }]
        }
    });
    SignatureEvidence::Bundle(Bytes::from(bundle.to_string()))
}

#[test]
fn keyed_bundle_verifies_and_binds_the_digest() {
    let key = ecdsa();
    let setup = verifier(None, &[&key], vec![], None);
    let hex = DIGEST.trim_start_matches("sha256:");
    let accepted = check(
        &setup,
        &keyed_bundle(&key, hex, "https://sigstore.dev/cosign/sign/v1"),
    )
    .unwrap();
    assert!(
        accepted.signer.starts_with("key key0.pub"),
        "{}",
        accepted.signer
    );
}

#[test]
fn keyed_bundle_for_another_digest() {
    let key = ecdsa();
    let setup = verifier(None, &[&key], vec![], None);
    let other = OTHER_DIGEST.trim_start_matches("sha256:");
    let err = check(
        &setup,
        &keyed_bundle(&key, other, "https://sigstore.dev/cosign/sign/v1"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("bundle is for {OTHER_DIGEST} not {DIGEST}")
    );
}

#[test]
fn keyed_bundle_by_another_key() {
    let key = ecdsa();
    let setup = verifier(None, &[&key], vec![], None);
    let hex = DIGEST.trim_start_matches("sha256:");
    let err = check(
        &setup,
        &keyed_bundle(&ecdsa(), hex, "https://sigstore.dev/cosign/sign/v1"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "signature not made by any key of verifier acme-release"
    );
}

#[test]
fn keyed_bundle_attestation_is_not_a_signature() {
    let key = ecdsa();
    let setup = verifier(None, &[&key], vec![], None);
    let hex = DIGEST.trim_start_matches("sha256:");
    let err = check(
        &setup,
        &keyed_bundle(&key, hex, "https://spdx.dev/Document"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bundle is an attestation of type https://spdx.dev/Document, not a cosign image signature"
    );
}

#[test]
fn keyed_bundle_without_log_entry_when_required() {
    let store = Sigstore::new();
    let key = ecdsa();
    let setup = verifier(Some(&store), &[&key], vec![], Some(Transparency::Require));
    let hex = DIGEST.trim_start_matches("sha256:");
    let err = check(
        &setup,
        &keyed_bundle(&key, hex, "https://sigstore.dev/cosign/sign/v1"),
    )
    .unwrap_err();
    assert_eq!(err, CosignRefusal::TransparencyMissing);
}

#[test]
fn keyless_signature_for_a_keyed_verifier() {
    let store = Sigstore::new();
    let key = ecdsa();
    let setup = verifier(None, &[&key], vec![], None);
    let sig = Keyless::new(&store, EMAIL, ISSUER);
    // cosign verify --key checks the signature with the key, whatever certificate rides along.
    let err = check(&setup, &sig.evidence()).unwrap_err();
    assert!(matches!(err, CosignRefusal::NoMatchingKey { .. }), "{err}");
}

#[test]
fn config_problems_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = VerifierConfig {
        name: "v".into(),
        kind: VerifierKind::Cosign,
        keys: vec![],
        identities: alice(),
        trusted_root: None,
        transparency: None,
        check_reference: true,
        ..Default::default()
    };
    let err = CosignVerifier::from_config(&base, dir.path()).unwrap_err();
    assert_eq!(err.key, "trusted_root");
    std::fs::write(dir.path().join("root.json"), "{}").unwrap();
    let config = VerifierConfig {
        trusted_root: Some("root.json".into()),
        ..base.clone()
    };
    let err = CosignVerifier::from_config(&config, dir.path()).unwrap_err();
    assert_eq!(err.key, "trusted_root");
    assert!(err.problem.contains("not a Sigstore trusted root"), "{err}");
    let config = VerifierConfig {
        trusted_root: Some("missing.json".into()),
        ..base.clone()
    };
    let err = CosignVerifier::from_config(&config, dir.path()).unwrap_err();
    assert!(err.problem.contains("cannot read"), "{err}");
    let mut ids = alice();
    ids[0].subject = None;
    ids[0].subject_regex = Some("(unclosed".into());
    std::fs::write(dir.path().join("root.json"), Sigstore::new().trusted_root()).unwrap();
    let config = VerifierConfig {
        trusted_root: Some("root.json".into()),
        identities: ids,
        ..base.clone()
    };
    let err = CosignVerifier::from_config(&config, dir.path()).unwrap_err();
    assert_eq!(err.key, "identities[0].subject_regex");
    let key = ecdsa();
    std::fs::write(dir.path().join("k.pub"), pem("PUBLIC KEY", &spki(&key))).unwrap();
    let config = VerifierConfig {
        keys: vec!["k.pub".into()],
        identities: vec![],
        transparency: Some(Transparency::Require),
        ..base
    };
    let err = CosignVerifier::from_config(&config, dir.path()).unwrap_err();
    assert_eq!(err.key, "trusted_root");
    let _ = Path::new("");
}
