//! Notation verification: golden envelopes from notation-go's test data (tests/data/notation,
//! SOURCES.md says where each came from), and fixtures made here (a test CA and leaves signed
//! with aws-lc-rs) for the adversarial cases, one per test, each with its own refusal.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use super::envelope::EnvelopeFormat;
use super::*;
use crate::verify::config::{VerifierConfig, VerifierKind};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/notation")
        .join(p)
}

fn read(p: &str) -> Vec<u8> {
    std::fs::read(data(p)).unwrap()
}

fn at(y: i32, m: u8, d: u8) -> SystemTime {
    time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d)
        .unwrap()
        .midnight()
        .assume_utc()
        .into()
}

/// 2026-11-30: after the testTSA certificate expired (2024-06-18), before alpine's (2033).
fn now() -> SystemTime {
    at(2026, 11, 30)
}

fn evidence(format: EnvelopeFormat, bytes: Vec<u8>) -> NotationEvidence {
    NotationEvidence {
        format,
        envelope: Bytes::from(bytes),
    }
}

/// The manifest notation-go's timestamp envelopes sign.
fn golden_digest() -> Digest {
    Digest::parse("sha256:c0669ef34cdc14332c0f1ab0c2c01acb91d96014b172f1a76f3a39e63d1f0bda")
        .unwrap()
}

fn golden_target(d: &Digest) -> TargetManifest<'_> {
    TargetManifest {
        digest: d,
        size: Some(528),
        media_type: Some("application/vnd.docker.distribution.manifest.v2+json"),
    }
}

fn inline(
    trust_store: &[&str],
    tsa: &[&str],
    identities: &[&str],
    level: Level,
) -> NotationVerifier {
    let config = VerifierConfig {
        name: "acme-notation".into(),
        kind: VerifierKind::Notation,
        trust_store: trust_store.iter().map(PathBuf::from).collect(),
        tsa_roots: tsa.iter().map(PathBuf::from).collect(),
        trusted_identities: identities.iter().map(|s| s.to_string()).collect(),
        level: Some(level),
        ..Default::default()
    };
    NotationVerifier::from_config(&config, &data("")).unwrap()
}

const ALPINE: &str = "truststore/x509/ca/alpine/alpine.pem";
const GLOBALSIGN_TSA: &str = "truststore/x509/tsa/test-timestamp/globalsignRoot.cer";

// ---- golden vectors (notation-go verifier/testdata) ----

#[test]
fn golden_jws_with_timestamp_is_accepted_at_the_timestamp() {
    let v = inline(&[ALPINE], &[GLOBALSIGN_TSA], &["*"], Level::Strict);
    let d = golden_digest();
    let a = v
        .verify(
            &evidence(EnvelopeFormat::Jws, read("sigEnv/jwsWithTimestamp.sig")),
            "registry.local/app",
            &golden_target(&d),
            now(),
        )
        .unwrap();
    assert_eq!(a.signer, "C=US, ST=WA, L=Seattle, O=Notary, CN=alpine");
    let t = a.signed_at.unwrap();
    assert!(t > at(2024, 6, 18) && t < at(2024, 6, 19), "{t:?}");
    assert!(a.logged.is_empty(), "{:?}", a.logged);
}

#[test]
fn golden_cose_with_timestamp_is_accepted() {
    let v = inline(&[ALPINE], &[GLOBALSIGN_TSA], &["*"], Level::Strict);
    let d = golden_digest();
    let a = v
        .verify(
            &evidence(EnvelopeFormat::Cose, read("sigEnv/coseWithTimestamp.sig")),
            "registry.local/app",
            &golden_target(&d),
            now(),
        )
        .unwrap();
    assert_eq!(a.signer, "C=US, ST=WA, L=Seattle, O=Notary, CN=alpine");
}

#[test]
fn golden_expired_certificate_is_accepted_through_its_timestamp() {
    let v = inline(
        &["truststore/x509/ca/testtsa-expired/testTSA.pem"],
        &[GLOBALSIGN_TSA],
        &["x509.subject: C=US, ST=WA, O=Notary, CN=testTSA"],
        Level::Strict,
    );
    let d = golden_digest();
    for (format, file) in [
        (EnvelopeFormat::Jws, "sigEnv/jwsExpiredWithTimestamp.sig"),
        (EnvelopeFormat::Cose, "sigEnv/coseExpiredWithTimestamp.sig"),
    ] {
        v.verify(
            &evidence(format, read(file)),
            "r/a",
            &golden_target(&d),
            now(),
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

#[test]
fn golden_expired_certificate_without_a_tsa_root_is_refused() {
    // notation-go: "missing tsa in trust policy and expired codeSigning cert".
    let v = inline(
        &["truststore/x509/ca/testtsa-expired/testTSA.pem"],
        &[],
        &["*"],
        Level::Strict,
    );
    let d = golden_digest();
    let e = v
        .verify(
            &evidence(
                EnvelopeFormat::Cose,
                read("sigEnv/coseExpiredWithTimestamp.sig"),
            ),
            "r/a",
            &golden_target(&d),
            now(),
        )
        .unwrap_err();
    assert!(
        matches!(e, NotationRefusal::NotValidAtSigningTime(_)),
        "{e}"
    );
    assert!(e.to_string().contains("CN=testTSA expired at"), "{e}");
}

#[test]
fn golden_timestamp_from_an_untrusted_tsa_is_refused() {
    // notation-go: "tsa not trust" (the DigiCert root does not issue the token's TSA).
    let v = inline(
        &[ALPINE],
        &["truststore/x509/tsa/test-mismatch/DigiCertTSARootSHA384.cer"],
        &["*"],
        Level::Strict,
    );
    let d = golden_digest();
    let e = v
        .verify(
            &evidence(EnvelopeFormat::Cose, read("sigEnv/coseWithTimestamp.sig")),
            "r/a",
            &golden_target(&d),
            now(),
        )
        .unwrap_err();
    assert!(matches!(e, NotationRefusal::TimestampInvalid(_)), "{e}");
}

#[test]
fn golden_without_timestamp_is_judged_now() {
    let v = inline(&[ALPINE], &[GLOBALSIGN_TSA], &["*"], Level::Strict);
    let d = golden_digest();
    v.verify(
        &evidence(EnvelopeFormat::Jws, read("sigEnv/withoutTimestamp.sig")),
        "r/a",
        &golden_target(&d),
        now(),
    )
    .unwrap();
}

#[test]
fn golden_notation_go_jws_signature_is_accepted_for_its_manifest_only() {
    let v = inline(
        &["truststore/x509/ca/alpine-2123/alpine.pem"],
        &[],
        &["x509.subject: C=US, ST=WA, L=Seattle, O=Notary, CN=alpine"],
        Level::Strict,
    );
    let d =
        Digest::parse("sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0")
            .unwrap();
    let ev = evidence(EnvelopeFormat::Jws, read("jws_signature.sig"));
    let target = TargetManifest {
        digest: &d,
        size: Some(481),
        media_type: Some("application/vnd.oci.image.manifest.v1+json"),
    };
    v.verify(&ev, "r/a", &target, now()).unwrap();
    // The same signature for a manifest of another size is refused.
    let other = TargetManifest {
        size: Some(482),
        ..target
    };
    let e = v.verify(&ev, "r/a", &other, now()).unwrap_err();
    assert!(matches!(e, NotationRefusal::OtherArtifact { .. }), "{e}");
}

#[test]
fn golden_notation_go_cose_signature_verifies() {
    // The COSE signature notation-go's own tests sign with the alpine (2123) certificate.
    let v = inline(
        &["truststore/x509/ca/alpine-2123/alpine.pem"],
        &[],
        &["*"],
        Level::Strict,
    );
    let d =
        Digest::parse("sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0")
            .unwrap();
    let target = TargetManifest {
        digest: &d,
        size: None,
        media_type: None,
    };
    v.verify(
        &evidence(EnvelopeFormat::Cose, read("cose_signature.sig")),
        "r/a",
        &target,
        now(),
    )
    .unwrap();
}

#[test]
fn forged_timestamp_token_is_refused() {
    // The golden JWS with one byte of its countersignature changed (the unprotected header is
    // not covered by the signature, so only the timestamp can notice).
    let mut doc: serde_json::Value =
        serde_json::from_slice(&read("sigEnv/jwsWithTimestamp.sig")).unwrap();
    let token = doc["header"][envelope::HEADER_TIMESTAMP].as_str().unwrap();
    let mut raw = STANDARD.decode(token).unwrap();
    let n = raw.len();
    raw[n / 3] ^= 0x01;
    doc["header"][envelope::HEADER_TIMESTAMP] = STANDARD.encode(&raw).into();
    let v = inline(&[ALPINE], &[GLOBALSIGN_TSA], &["*"], Level::Strict);
    let d = golden_digest();
    let e = v
        .verify(
            &evidence(EnvelopeFormat::Jws, serde_json::to_vec(&doc).unwrap()),
            "r/a",
            &golden_target(&d),
            now(),
        )
        .unwrap_err();
    assert!(matches!(e, NotationRefusal::TimestampInvalid(_)), "{e}");
}

#[test]
fn cose_with_a_tampered_protected_header_is_refused() {
    // Change one byte of the signing time inside the COSE protected header (CBOR tag 1, a
    // 4-byte epoch: `c1 1a xx xx xx xx`).
    let mut raw = read("sigEnv/coseWithTimestamp.sig");
    let pos = raw
        .windows(2)
        .position(|w| w == [0xc1, 0x1a])
        .expect("a tagged signing time");
    raw[pos + 5] ^= 0x01;
    let v = inline(&[ALPINE], &[GLOBALSIGN_TSA], &["*"], Level::Strict);
    let d = golden_digest();
    let e = v
        .verify(
            &evidence(EnvelopeFormat::Cose, raw),
            "r/a",
            &golden_target(&d),
            now(),
        )
        .unwrap_err();
    assert!(matches!(e, NotationRefusal::Signature(_)), "{e}");
}

// ---- the operator's own Notation files ----

#[test]
fn trust_policy_and_store_directory_load_and_choose_the_statement_by_scope() {
    let config = VerifierConfig {
        name: "ops".into(),
        kind: VerifierKind::Notation,
        trust_policy: Some("trustpolicy.json".into()),
        trust_store_dir: Some("truststore".into()),
        ..Default::default()
    };
    let v = NotationVerifier::from_config(&config, &data("")).unwrap();
    let d = golden_digest();
    let ev = evidence(EnvelopeFormat::Jws, read("sigEnv/jwsWithTimestamp.sig"));
    // registry.local/alpine: strict, ca:alpine, identity CN=alpine.
    v.verify(&ev, "registry.local/alpine", &golden_target(&d), now())
        .unwrap();
    // registry.local/other: its statement trusts only the testTSA certificate.
    let e = v
        .verify(&ev, "registry.local/other", &golden_target(&d), now())
        .unwrap_err();
    assert!(matches!(e, NotationRefusal::Untrusted { .. }), "{e}");
    // The wildcard statement is level skip: anything else is accepted unverified.
    assert!(v.skips("elsewhere.io/x"));
    assert!(!v.skips("registry.local/alpine"));
}

#[test]
fn trust_policy_mistakes_name_the_file_key_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tp.json"),
        r#"{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],
            "signatureVerification":{"level":"strict"},"trustStores":["ca:missing"],
            "trustedIdentities":["*"]}]}"#,
    )
    .unwrap();
    let config = VerifierConfig {
        name: "ops".into(),
        kind: VerifierKind::Notation,
        trust_policy: Some("tp.json".into()),
        trust_store_dir: Some("store".into()),
        ..Default::default()
    };
    let e = NotationVerifier::from_config(&config, dir.path()).unwrap_err();
    assert!(e.key.starts_with("trust_policy"), "{e}");
    assert!(e.problem.contains("trust store ca:missing"), "{e}");
    let bad_identity = VerifierConfig {
        name: "x".into(),
        kind: VerifierKind::Notation,
        trust_store: vec![data(ALPINE)],
        trusted_identities: vec!["x509.subject: CN=alpine".into()],
        ..Default::default()
    };
    let e = NotationVerifier::from_config(&bad_identity, dir.path()).unwrap_err();
    assert_eq!(e.key, "trusted_identities[0]");
    assert!(e.problem.contains("must name at least C, ST and O"), "{e}");
}

// ---- fixtures made in code ----

struct Pki {
    root: rcgen::Certificate,
    issuer: Issuer<'static, KeyPair>,
}

fn name(params: &mut CertificateParams, cn: &str) {
    params.distinguished_name.push(DnType::CountryName, "US");
    params
        .distinguished_name
        .push(DnType::StateOrProvinceName, "WA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme");
    params.distinguished_name.push(DnType::CommonName, cn);
}

impl Pki {
    fn new(cn: &str) -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        name(&mut params, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let root = params.self_signed(&key).unwrap();
        Self {
            root,
            issuer: Issuer::new(params, key),
        }
    }

    fn leaf(
        &self,
        cn: &str,
        eku: Vec<ExtendedKeyUsagePurpose>,
        until: (i32, u8, u8),
    ) -> (Vec<u8>, KeyPair) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        name(&mut params, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = eku;
        params.not_before = rcgen::date_time_ymd(2021, 1, 1);
        params.not_after = rcgen::date_time_ymd(until.0, until.1, until.2);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.der().to_vec(), key)
    }

    fn root_file(&self, dir: &Path) -> PathBuf {
        let p = dir.join(format!("root-{}.pem", rand_name()));
        std::fs::write(&p, self.root.pem()).unwrap();
        p
    }
}

fn rand_name() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

fn fixture_digest() -> Digest {
    Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap()
}

const FIXTURE_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

fn fixture_target(d: &Digest) -> TargetManifest<'_> {
    TargetManifest {
        digest: d,
        size: Some(1234),
        media_type: Some(FIXTURE_TYPE),
    }
}

/// A JWS envelope over `payload_digest` signed by `key`, with these protected-header changes.
fn jws(
    key: &KeyPair,
    chain: &[&[u8]],
    payload_digest: &Digest,
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> NotationEvidence {
    let mut protected = serde_json::json!({
        "alg": "ES256",
        "cty": envelope::PAYLOAD_CONTENT_TYPE,
        "crit": [envelope::HEADER_SIGNING_SCHEME],
        envelope::HEADER_SIGNING_SCHEME: "notary.x509",
        envelope::HEADER_SIGNING_TIME: "2025-01-01T00:00:00Z",
    });
    edit(protected.as_object_mut().unwrap());
    let payload = serde_json::json!({"targetArtifact": {
        "mediaType": FIXTURE_TYPE, "digest": payload_digest.to_string(), "size": 1234}});
    let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&protected).unwrap());
    let b = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&payload).unwrap());
    let signer = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.serialize_der(),
    )
    .unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let sig = signer.sign(&rng, format!("{p}.{b}").as_bytes()).unwrap();
    let doc = serde_json::json!({
        "protected": p,
        "payload": b,
        "signature": URL_SAFE_NO_PAD.encode(sig.as_ref()),
        "header": {"x5c": chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>()},
    });
    evidence(EnvelopeFormat::Jws, serde_json::to_vec(&doc).unwrap())
}

struct Case {
    pki: Pki,
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        Self {
            pki: Pki::new("Acme Root"),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn verifier(&self, identities: &[&str], level: Level) -> NotationVerifier {
        let root = self.pki.root_file(self.dir.path());
        let config = VerifierConfig {
            name: "acme-notation".into(),
            kind: VerifierKind::Notation,
            trust_store: vec![root],
            trusted_identities: identities.iter().map(|s| s.to_string()).collect(),
            level: Some(level),
            ..Default::default()
        };
        NotationVerifier::from_config(&config, self.dir.path()).unwrap()
    }

    fn good_leaf(&self) -> (Vec<u8>, KeyPair) {
        self.pki.leaf(
            "release",
            vec![ExtendedKeyUsagePurpose::CodeSigning],
            (2035, 1, 1),
        )
    }
}

fn check(v: &NotationVerifier, ev: &NotationEvidence) -> Result<NotationAccepted, NotationRefusal> {
    let d = fixture_digest();
    v.verify(ev, "registry.local/app", &fixture_target(&d), now())
}

#[test]
fn fixture_signature_is_accepted() {
    let c = Case::new();
    let (leaf, key) = c.good_leaf();
    let root = c.pki.root.der().to_vec();
    let a = check(
        &c.verifier(
            &["x509.subject: C=US, ST=WA, O=Acme, CN=release"],
            Level::Strict,
        ),
        &jws(&key, &[&leaf, &root], &fixture_digest(), |_| {}),
    )
    .unwrap();
    assert!(a.signer.contains("CN=release"), "{}", a.signer);
}

#[test]
fn untrusted_root_is_refused() {
    let c = Case::new();
    let other = Pki::new("Other Root");
    let (leaf, key) = other.leaf(
        "release",
        vec![ExtendedKeyUsagePurpose::CodeSigning],
        (2035, 1, 1),
    );
    let root = other.root.der().to_vec();
    let e = check(
        &c.verifier(&["*"], Level::Strict),
        &jws(&key, &[&leaf, &root], &fixture_digest(), |_| {}),
    )
    .unwrap_err();
    assert!(matches!(e, NotationRefusal::Untrusted { .. }), "{e}");
    assert!(e.to_string().contains("is in the trust store"), "{e}");
}

#[test]
fn leaf_without_code_signing_eku_is_refused() {
    let c = Case::new();
    let (leaf, key) = c.pki.leaf(
        "release",
        vec![ExtendedKeyUsagePurpose::ServerAuth],
        (2035, 1, 1),
    );
    let root = c.pki.root.der().to_vec();
    let e = check(
        &c.verifier(&["*"], Level::Strict),
        &jws(&key, &[&leaf, &root], &fixture_digest(), |_| {}),
    )
    .unwrap_err();
    assert!(matches!(e, NotationRefusal::NotCodeSigning(_)), "{e}");
}

#[test]
fn identity_with_rfc4514_escapes_matches_the_subject_it_names() {
    let c = Case::new();
    let (leaf, key) = c.pki.leaf(
        "release, eu+\"1\"",
        vec![ExtendedKeyUsagePurpose::CodeSigning],
        (2035, 1, 1),
    );
    let root = c.pki.root.der().to_vec();
    let ev = jws(&key, &[&leaf, &root], &fixture_digest(), |_| {});
    let escaped = r#"x509.subject: C=US, S=WA, O=Acme, CN=release\2C eu\+\"1\""#;
    let a = check(&c.verifier(&[escaped], Level::Strict), &ev).unwrap();
    assert!(a.signer.contains("release"), "{}", a.signer);
    // The same name without its escapes is another (and here malformed) identity.
    let config = VerifierConfig {
        name: "acme-notation".into(),
        kind: VerifierKind::Notation,
        trust_store: vec![c.pki.root_file(c.dir.path())],
        trusted_identities: vec!["x509.subject: C=US, ST=WA, O=Acme, CN=release, eu".into()],
        ..Default::default()
    };
    let e = NotationVerifier::from_config(&config, c.dir.path()).unwrap_err();
    assert!(
        e.to_string().contains("\"eu\" is not ATTRIBUTE=value"),
        "{e}"
    );
}

#[test]
fn identity_not_trusted_is_refused() {
    let c = Case::new();
    let (leaf, key) = c.good_leaf();
    let root = c.pki.root.der().to_vec();
    let e = check(
        &c.verifier(
            &["x509.subject: C=US, ST=WA, O=Acme, CN=someone-else"],
            Level::Strict,
        ),
        &jws(&key, &[&leaf, &root], &fixture_digest(), |_| {}),
    )
    .unwrap_err();
    assert!(
        matches!(&e, NotationRefusal::IdentityNotTrusted { subject, verifier }
            if subject.contains("CN=release") && verifier == "acme-notation"),
        "{e}"
    );
}

#[test]
fn expired_certificate_without_timestamp_is_refused() {
    let c = Case::new();
    let (leaf, key) = c.pki.leaf(
        "release",
        vec![ExtendedKeyUsagePurpose::CodeSigning],
        (2025, 6, 1),
    );
    let root = c.pki.root.der().to_vec();
    let e = check(
        &c.verifier(&["*"], Level::Strict),
        &jws(&key, &[&leaf, &root], &fixture_digest(), |_| {}),
    )
    .unwrap_err();
    assert!(
        matches!(e, NotationRefusal::NotValidAtSigningTime(_)),
        "{e}"
    );
    assert!(
        e.to_string().contains("no timestamp countersignature"),
        "{e}"
    );
}

#[test]
fn expired_signature_is_refused() {
    let c = Case::new();
    let (leaf, key) = c.good_leaf();
    let root = c.pki.root.der().to_vec();
    let e = check(
        &c.verifier(&["*"], Level::Strict),
        &jws(&key, &[&leaf, &root], &fixture_digest(), |h| {
            h.insert(
                envelope::HEADER_EXPIRY.into(),
                "2026-01-01T00:00:00Z".into(),
            );
            h.insert(
                "crit".into(),
                serde_json::json!([envelope::HEADER_SIGNING_SCHEME, envelope::HEADER_EXPIRY]),
            );
        }),
    )
    .unwrap_err();
    assert_eq!(e, NotationRefusal::Expired("2026-01-01T00:00:00Z".into()));
}

#[test]
fn alg_not_matching_the_key_is_refused() {
    let c = Case::new();
    let (leaf, key) = c.good_leaf();
    let root = c.pki.root.der().to_vec();
    let e = check(
        &c.verifier(&["*"], Level::Strict),
        &jws(&key, &[&leaf, &root], &fixture_digest(), |h| {
            h.insert("alg".into(), "PS256".into());
        }),
    )
    .unwrap_err();
    assert_eq!(
        e,
        NotationRefusal::AlgMismatch {
            alg: "PS256",
            key: "ECDSA P-256".into()
        }
    );
}

#[test]
fn unknown_critical_header_is_refused() {
    let c = Case::new();
    let (leaf, key) = c.good_leaf();
    let root = c.pki.root.der().to_vec();
    let e = check(
        &c.verifier(&["*"], Level::Strict),
        &jws(&key, &[&leaf, &root], &fixture_digest(), |h| {
            h.insert("io.example.mustUnderstand".into(), "x".into());
            h.insert(
                "crit".into(),
                serde_json::json!([envelope::HEADER_SIGNING_SCHEME, "io.example.mustUnderstand"]),
            );
        }),
    )
    .unwrap_err();
    assert_eq!(
        e,
        NotationRefusal::Envelope(envelope::EnvelopeError::UnknownCritical(
            "io.example.mustUnderstand".into()
        ))
    );
}

#[test]
fn payload_for_another_digest_is_refused() {
    let c = Case::new();
    let (leaf, key) = c.good_leaf();
    let root = c.pki.root.der().to_vec();
    let other = Digest::parse(&format!("sha256:{}", "cd".repeat(32))).unwrap();
    let e = check(
        &c.verifier(&["*"], Level::Strict),
        &jws(&key, &[&leaf, &root], &other, |_| {}),
    )
    .unwrap_err();
    assert!(matches!(e, NotationRefusal::OtherArtifact { .. }), "{e}");
    assert!(e.to_string().contains(&other.to_string()), "{e}");
}

#[test]
fn tampered_jws_signature_is_refused() {
    let c = Case::new();
    let (leaf, key) = c.good_leaf();
    let root = c.pki.root.der().to_vec();
    let ev = jws(&key, &[&leaf, &root], &fixture_digest(), |_| {});
    let mut doc: serde_json::Value = serde_json::from_slice(&ev.envelope).unwrap();
    let mut sig = URL_SAFE_NO_PAD
        .decode(doc["signature"].as_str().unwrap())
        .unwrap();
    sig[5] ^= 1;
    doc["signature"] = URL_SAFE_NO_PAD.encode(sig).into();
    let e = check(
        &c.verifier(&["*"], Level::Strict),
        &evidence(EnvelopeFormat::Jws, serde_json::to_vec(&doc).unwrap()),
    )
    .unwrap_err();
    assert!(matches!(e, NotationRefusal::Signature(_)), "{e}");
}

// ---- levels (trust-policy specification's table) ----

#[test]
fn level_strict_enforces_the_authentic_timestamp() {
    let c = Case::new();
    let (leaf, key) = c.pki.leaf(
        "release",
        vec![ExtendedKeyUsagePurpose::CodeSigning],
        (2025, 6, 1),
    );
    let root = c.pki.root.der().to_vec();
    let ev = jws(&key, &[&leaf, &root], &fixture_digest(), |_| {});
    assert!(check(&c.verifier(&["*"], Level::Strict), &ev).is_err());
}

#[test]
fn level_permissive_logs_expiry_and_timestamp_but_enforces_authenticity() {
    let c = Case::new();
    let (leaf, key) = c.pki.leaf(
        "release",
        vec![ExtendedKeyUsagePurpose::CodeSigning],
        (2025, 6, 1),
    );
    let root = c.pki.root.der().to_vec();
    let ev = jws(&key, &[&leaf, &root], &fixture_digest(), |h| {
        h.insert(
            envelope::HEADER_EXPIRY.into(),
            "2026-01-01T00:00:00Z".into(),
        );
        h.insert(
            "crit".into(),
            serde_json::json!([envelope::HEADER_SIGNING_SCHEME, envelope::HEADER_EXPIRY]),
        );
    });
    let a = check(&c.verifier(&["*"], Level::Permissive), &ev).unwrap();
    assert_eq!(a.logged.len(), 2, "{:?}", a.logged);
    let e = check(
        &c.verifier(
            &["x509.subject: C=US, ST=WA, O=Acme, CN=nobody"],
            Level::Permissive,
        ),
        &ev,
    )
    .unwrap_err();
    assert!(
        matches!(e, NotationRefusal::IdentityNotTrusted { .. }),
        "{e}"
    );
}

#[test]
fn level_audit_logs_authenticity_but_enforces_integrity() {
    let c = Case::new();
    let other = Pki::new("Other Root");
    let (leaf, key) = other.leaf(
        "release",
        vec![ExtendedKeyUsagePurpose::CodeSigning],
        (2035, 1, 1),
    );
    let root = other.root.der().to_vec();
    let ev = jws(&key, &[&leaf, &root], &fixture_digest(), |_| {});
    let a = check(&c.verifier(&["*"], Level::Audit), &ev).unwrap();
    assert!(a.logged[0].contains("not trusted"), "{:?}", a.logged);
    let wrong_alg = jws(&key, &[&leaf, &root], &fixture_digest(), |h| {
        h.insert("alg".into(), "ES384".into());
    });
    let e = check(&c.verifier(&["*"], Level::Audit), &wrong_alg).unwrap_err();
    assert!(matches!(e, NotationRefusal::AlgMismatch { .. }), "{e}");
}

#[test]
fn level_skip_accepts_without_verifying() {
    let c = Case::new();
    let v = c.verifier(&["*"], Level::Skip);
    assert!(v.skips("registry.local/app"));
    let a = check(
        &v,
        &evidence(EnvelopeFormat::Jws, b"not even JSON".to_vec()),
    )
    .unwrap();
    assert!(a.signer.contains("level skip"), "{}", a.signer);
}

#[test]
fn a_self_signed_leaf_in_the_trust_store_needs_no_root() {
    // `notation cert generate-test` makes a self-signed signing certificate and adds it to the
    // store: Notation trusts the chain because the certificate itself is there.
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    name(&mut params, "test.io");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::CodeSigning];
    params.not_before = rcgen::date_time_ymd(2021, 1, 1);
    params.not_after = rcgen::date_time_ymd(2040, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("test.io.pem"), cert.pem()).unwrap();
    let config = VerifierConfig {
        name: "n".into(),
        kind: VerifierKind::Notation,
        trust_store: vec!["test.io.pem".into()],
        trusted_identities: vec!["*".into()],
        ..Default::default()
    };
    let v = NotationVerifier::from_config(&config, dir.path()).unwrap();
    check(&v, &jws(&key, &[cert.der()], &fixture_digest(), |_| {})).unwrap();
}

#[test]
fn signing_authority_scheme_is_judged_at_its_authentic_signing_time() {
    // notary.x509.signingAuthority: the authority's signing time is authentic, so a certificate
    // expired since is still accepted without a countersignature; a missing time is refused.
    let c = Case::new();
    let (leaf, key) = c.pki.leaf(
        "release",
        vec![ExtendedKeyUsagePurpose::CodeSigning],
        (2025, 6, 1),
    );
    let root = c.pki.root.der().to_vec();
    let authority = |time: Option<&str>| {
        let time = time.map(str::to_string);
        jws(&key, &[&leaf, &root], &fixture_digest(), move |h| {
            h.insert(
                envelope::HEADER_SIGNING_SCHEME.into(),
                "notary.x509.signingAuthority".into(),
            );
            h.remove(envelope::HEADER_SIGNING_TIME);
            let mut crit = vec![envelope::HEADER_SIGNING_SCHEME];
            if let Some(t) = time {
                h.insert(envelope::HEADER_AUTHENTIC_SIGNING_TIME.into(), t.into());
                crit.push(envelope::HEADER_AUTHENTIC_SIGNING_TIME);
            }
            h.insert("crit".into(), serde_json::json!(crit));
        })
    };
    let v = c.verifier(&["*"], Level::Strict);
    let a = check(&v, &authority(Some("2025-01-01T00:00:00Z"))).unwrap();
    assert_eq!(a.signed_at, Some(at(2025, 1, 1)));
    let e = check(&v, &authority(None)).unwrap_err();
    assert!(
        e.to_string()
            .contains("io.cncf.notary.authenticSigningTime must be listed in crit"),
        "{e}"
    );
}
