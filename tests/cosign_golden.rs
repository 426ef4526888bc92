//! cosign / Sigstore verification against the real tools' public test vectors (tests/data/cosign,
//! SOURCES.md says where each file comes from), accepted and refused as the real verifiers do,
//! plus single-fault mutations of them, one refusal each.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use trustgate::reference::Digest;
use trustgate::verify::config::{IdentityConfig, Transparency, VerifierConfig, VerifierKind};
use trustgate::verify::cosign::{
    CosignConfigError, CosignRefusal, CosignVerifier, Expected, SignatureEvidence,
};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cosign")
}

const BEACON_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn exact(issuer: &str, subject: &str) -> IdentityConfig {
    IdentityConfig {
        issuer: Some(issuer.to_string()),
        issuer_regex: None,
        subject: Some(subject.to_string()),
        subject_regex: None,
    }
}

fn keyless(root: &Path, identities: Vec<IdentityConfig>) -> VerifierConfig {
    VerifierConfig {
        name: "golden".into(),
        kind: VerifierKind::Cosign,
        keys: vec![],
        identities,
        trusted_root: Some(root.to_path_buf()),
        transparency: None,
        check_reference: true,
        ..Default::default()
    }
}

fn build(config: &VerifierConfig) -> Result<CosignVerifier, CosignConfigError> {
    CosignVerifier::from_config(config, Path::new("/"))
}

fn sha256_of(path: &Path) -> Digest {
    Digest::from_bytes(Sha256::digest(std::fs::read(path).unwrap()).into())
}

/// One case of the Sigstore conformance suite (`test/assets/bundle-verify/<case>`), verified
/// the way its harness drives a client: key.pub if present, else the identity and issuer (files
/// or the suite's defaults); trusted_root.json if present, else the production root.
fn conformance_case(dir: &Path) -> Result<(), String> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let root = if dir.join("trusted_root.json").exists() {
        dir.join("trusted_root.json")
    } else {
        data().join("sigstore-rust/trusted_roots/production-embedded.json")
    };
    let mut config = keyless(
        &root,
        vec![exact(
            read("issuer").as_deref().map_or(GITHUB_ISSUER, str::trim),
            read("identity")
                .as_deref()
                .map_or(BEACON_IDENTITY, str::trim),
        )],
    );
    if dir.join("key.pub").exists() {
        config.identities.clear();
        config.keys = vec![dir.join("key.pub")];
        // The suite's clients check the log for managed keys too.
        config.transparency = Some(Transparency::Require);
    }
    let verifier = build(&config).map_err(|e| format!("config: {e}"))?;
    let artifact = if dir.join("artifact").exists() {
        dir.join("artifact")
    } else {
        data().join("conformance/a.txt")
    };
    let bundle = std::fs::read(dir.join("bundle.sigstore.json")).unwrap();
    verifier
        .verify_bundle_for_artifact(&bundle, &sha256_of(&artifact))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn conformance_suite_verdicts_match() {
    let mut wrong = Vec::new();
    let mut count = 0;
    for entry in std::fs::read_dir(data().join("conformance")).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        count += 1;
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let must_fail = name.ends_with("_fail");
        match (conformance_case(&dir), must_fail) {
            (Ok(()), true) => wrong.push(format!("{name}: accepted, the suite says it must fail")),
            (Err(e), false) => {
                wrong.push(format!("{name}: refused ({e}), the suite says it verifies"))
            }
            (Err(e), true) => eprintln!("{name}: refused as it must be: {e}"),
            (Ok(()), false) => eprintln!("{name}: accepted"),
        }
    }
    assert!(count > 60, "only {count} conformance cases found");
    assert!(
        wrong.is_empty(),
        "{} verdicts differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

// ---- single bundles from cosign's and sigstore-rust's test data, and mutations of them ----

/// cosign v3 `sign-blob` bundle from sigstore-rust's test data (v0.3, messageSignature,
/// hashedrekord entry with inclusion proof and SET, TSA timestamp), signed by
/// w.vollprecht@gmail.com through GitHub's OAuth.
const V3_SUBJECT: &str = "w.vollprecht@gmail.com";
const GITHUB_OAUTH: &str = "https://github.com/login/oauth";

fn v3_bundle() -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(data().join("sigstore-rust/bundles/cosign-v3-blob.sigstore.json")).unwrap(),
    )
    .unwrap()
}

fn v3_digest() -> Digest {
    sha256_of(&data().join("sigstore-rust/bundles/cosign-v3-blob.txt"))
}

fn production_root() -> PathBuf {
    data().join("sigstore-rust/trusted_roots/production-embedded.json")
}

/// Verifies `bundle` as an image signature whose manifest digest is the blob's digest (a
/// messageSignature bundle signs the manifest bytes themselves).
fn verify_as_image(
    config: &VerifierConfig,
    bundle: &serde_json::Value,
    digest: &Digest,
) -> Result<trustgate::verify::cosign::Accepted, CosignRefusal> {
    let verifier = build(config).unwrap();
    let expected = Expected {
        registry_host: "registry.example",
        repository: "app",
        digest,
    };
    let evidence = SignatureEvidence::Bundle(Bytes::from(bundle.to_string()));
    verifier.verify(&evidence, &expected, SystemTime::now())
}

fn v3_config() -> VerifierConfig {
    keyless(&production_root(), vec![exact(GITHUB_OAUTH, V3_SUBJECT)])
}

#[test]
fn cosign_v3_bundle_verifies() {
    let accepted = verify_as_image(&v3_config(), &v3_bundle(), &v3_digest()).unwrap();
    assert_eq!(accepted.signer, V3_SUBJECT);
    assert_eq!(accepted.issuer.as_deref(), Some(GITHUB_OAUTH));
    assert!(accepted.signed_at.is_some());
}

#[test]
fn bundle_for_another_digest() {
    let other = Digest::of(b"another manifest");
    let err = verify_as_image(&v3_config(), &v3_bundle(), &other).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("bundle is for {} not {other}", v3_digest())
    );
}

#[test]
fn bundle_identity_mismatch() {
    let config = keyless(
        &production_root(),
        vec![exact(GITHUB_OAUTH, "someone@example.com")],
    );
    let err = verify_as_image(&config, &v3_bundle(), &v3_digest()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("certificate identity {V3_SUBJECT} does not match")
    );
}

#[test]
fn bundle_issuer_mismatch() {
    let config = keyless(&production_root(), vec![exact(GITHUB_ISSUER, V3_SUBJECT)]);
    let err = verify_as_image(&config, &v3_bundle(), &v3_digest()).unwrap_err();
    assert!(matches!(err, CosignRefusal::IssuerMismatch { .. }), "{err}");
}

#[test]
fn bundle_identity_regexes_are_anchored() {
    let regex = |subject: &str| IdentityConfig {
        issuer: None,
        issuer_regex: Some(r"https://github\.com/login/.*".into()),
        subject: None,
        subject_regex: Some(subject.into()),
    };
    let config = keyless(&production_root(), vec![regex(r"[a-z.]+@gmail\.com")]);
    verify_as_image(&config, &v3_bundle(), &v3_digest()).unwrap();
    // Each of these matches a part of the subject, so an unanchored search would accept.
    for partial in [r"vollprecht@gmail\.com", r"w\.vollprecht@gmail", "gmail"] {
        let config = keyless(&production_root(), vec![regex(partial)]);
        let err = verify_as_image(&config, &v3_bundle(), &v3_digest()).unwrap_err();
        assert!(
            matches!(err, CosignRefusal::IdentityMismatch { .. }),
            "{partial}: {err}"
        );
    }
}

#[test]
fn bundle_certificate_from_an_untrusted_ca() {
    // The production root with its Fulcio CAs replaced by another instance's: the log keys
    // still vouch for the entry, but the certificate chains to no trusted CA.
    let mut root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(production_root()).unwrap()).unwrap();
    let other: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data().join("sigstore-rust/trusted_roots/scaffolding.json")).unwrap(),
    )
    .unwrap();
    root["certificateAuthorities"] = other["certificateAuthorities"].clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.json");
    std::fs::write(&path, root.to_string()).unwrap();
    let config = keyless(&path, vec![exact(GITHUB_OAUTH, V3_SUBJECT)]);
    let err = verify_as_image(&config, &v3_bundle(), &v3_digest()).unwrap_err();
    assert!(
        matches!(err, CosignRefusal::CertificateUntrusted { .. }),
        "{err}"
    );
}

#[test]
fn bundle_log_promise_forged() {
    let mut bundle = v3_bundle();
    let entry = &mut bundle["verificationMaterial"]["tlogEntries"][0];
    // Another valid-looking ECDSA signature: the SET of a different entry.
    let set = entry["inclusionPromise"]["signedEntryTimestamp"]
        .as_str()
        .unwrap()
        .to_string();
    let mut raw = base64_decode(&set);
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    entry["inclusionPromise"]["signedEntryTimestamp"] = base64_encode(&raw).into();
    let err = verify_as_image(&v3_config(), &bundle, &v3_digest()).unwrap_err();
    assert!(
        matches!(err, CosignRefusal::TransparencyInvalid { .. }),
        "{err}"
    );
}

#[test]
fn bundle_inclusion_proof_forged() {
    let mut bundle = v3_bundle();
    let proof = &mut bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"];
    let hash = proof["hashes"][0].as_str().unwrap().to_string();
    let mut raw = base64_decode(&hash);
    raw[0] ^= 0x80;
    proof["hashes"][0] = base64_encode(&raw).into();
    let err = verify_as_image(&v3_config(), &bundle, &v3_digest()).unwrap_err();
    assert!(
        matches!(err, CosignRefusal::TransparencyInvalid { .. }),
        "{err}"
    );
}

#[test]
fn bundle_without_log_entry_when_required() {
    let mut bundle = v3_bundle();
    bundle["verificationMaterial"]["tlogEntries"] = serde_json::json!([]);
    let err = verify_as_image(&v3_config(), &bundle, &v3_digest()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no transparency log proof (transparency = \"require\")"
    );
}

#[test]
fn bundle_signature_tampered() {
    let mut bundle = v3_bundle();
    let sig = bundle["messageSignature"]["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let mut raw = base64_decode(&sig);
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    bundle["messageSignature"]["signature"] = base64_encode(&raw).into();
    let err = verify_as_image(&v3_config(), &bundle, &v3_digest()).unwrap_err();
    // The TSA timestamp and the log entry both cover the original signature, so they speak
    // first (tests/cosign_fixtures.rs has the case where only the signature is wrong).
    assert!(
        matches!(
            err,
            CosignRefusal::SignatureInvalid { .. }
                | CosignRefusal::TransparencyInvalid { .. }
                | CosignRefusal::TimestampInvalid { .. }
        ),
        "{err}"
    );
}

/// cosign's own test attestation (pkg/cosign/testdata/oci-attestation.sigstore.json): an OCI
/// artifact's bundle with an in-toto statement of predicate cosign.sigstore.dev/attestation/v1.
#[test]
fn cosign_oci_attestation_is_verified_but_is_not_a_signature() {
    let root = data().join("cosign/trusted_root_pgi.json");
    let config = keyless(
        &root,
        vec![exact("https://github.com/login/oauth", "cody@soyland.com")],
    );
    let bundle = std::fs::read(data().join("cosign/oci-attestation.sigstore.json")).unwrap();
    let subject =
        Digest::parse("sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4")
            .unwrap();
    let verifier = build(&config).unwrap();
    // The Sigstore checks pass (the real bundle verifies for its subject)...
    let accepted = verifier
        .verify_bundle_for_artifact(&bundle, &subject)
        .unwrap();
    assert_eq!(accepted.signer, "cody@soyland.com");
    // ...but an attestation about an image is not a signature of it.
    let expected = Expected {
        registry_host: "127.0.0.1:60943",
        repository: "repo",
        digest: &subject,
    };
    let err = verifier
        .verify(
            &SignatureEvidence::Bundle(Bytes::from(bundle)),
            &expected,
            SystemTime::now(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bundle is an attestation of type https://cosign.sigstore.dev/attestation/v1, not a cosign image signature"
    );
}

/// sigstore-rust's managed-key bundle: keyed, with a log entry.
#[test]
fn managed_key_bundle_verifies_with_its_key_only() {
    let dir = data().join("sigstore-rust/managed-key");
    let config = VerifierConfig {
        keys: vec![dir.join("key.pub")],
        identities: vec![],
        transparency: Some(Transparency::Require),
        ..keyless(&production_root(), vec![])
    };
    let bundle = std::fs::read(dir.join("bundle.sigstore.json")).unwrap();
    let digest = sha256_of(&dir.join("artifact.txt"));
    let accepted = build(&config)
        .unwrap()
        .verify_bundle_for_artifact(&bundle, &digest)
        .unwrap();
    assert!(accepted.signer.contains("key.pub"), "{}", accepted.signer);
    // Another key does not verify it.
    let tmp = tempfile::tempdir().unwrap();
    let other = tmp.path().join("other.pub");
    std::fs::write(&other, other_public_key_pem()).unwrap();
    let config = VerifierConfig {
        keys: vec![other],
        ..config
    };
    let err = build(&config)
        .unwrap()
        .verify_bundle_for_artifact(&bundle, &digest)
        .unwrap_err();
    assert!(
        matches!(
            err,
            CosignRefusal::NoMatchingKey { .. } | CosignRefusal::TransparencyInvalid { .. }
        ),
        "{err}"
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn other_public_key_pem() -> String {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let der = AsDer::<PublicKeyX509Der>::as_der(pair.public_key()).unwrap();
    pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_ref().to_vec()))
}
