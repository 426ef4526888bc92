//! cosign verification cost. Keyless: the first verification of a bundle (certificate chain,
//! SCT, Rekor SET and inclusion proof with checkpoint, RFC 3161 timestamp, identity) by a
//! verifier built at config load, as the proxy does it; building the verifier (config load)
//! alone; and both together, one after the other. Keyed: a `.sig` simple-signing payload, with
//! and without building the verifier from its PEM key. Target: under 1 ms for the first keyless
//! verification (issue 12). Numbers go in BENCHMARKS.md.
//!
//! Every iteration of a "first verification" is one: trustgate's verdict cache lives in the
//! proxy, not in `CosignVerifier`, and the verifier carries nothing from one call to the next
//! but what it prepared from its trusted root at construction (`verify::cosign::memo`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::Engine as _;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use sha2::{Digest as _, Sha256};
use trustgate::reference::Digest;
use trustgate::verify::config::{IdentityConfig, VerifierConfig, VerifierKind};
use trustgate::verify::cosign::{CosignVerifier, Expected, SignatureEvidence};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cosign")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("cosign");

    // Keyless: a real cosign v3 bundle (tests/data/cosign/SOURCES.md) and the production root.
    let keyless = VerifierConfig {
        name: "bench".into(),
        kind: VerifierKind::Cosign,
        keys: vec![],
        identities: vec![IdentityConfig {
            issuer: Some("https://github.com/login/oauth".into()),
            issuer_regex: None,
            subject: Some("w.vollprecht@gmail.com".into()),
            subject_regex: None,
        }],
        trusted_root: Some(data().join("sigstore-rust/trusted_roots/production-embedded.json")),
        transparency: None,
        check_reference: true,
        ..Default::default()
    };
    let blob = std::fs::read(data().join("sigstore-rust/bundles/cosign-v3-blob.txt")).unwrap();
    let digest = Digest::from_bytes(Sha256::digest(&blob).into());
    let bundle = SignatureEvidence::Bundle(Bytes::from(
        std::fs::read(data().join("sigstore-rust/bundles/cosign-v3-blob.sigstore.json")).unwrap(),
    ));
    let expected = Expected {
        registry_host: "registry.example",
        repository: "app",
        digest: &digest,
    };
    let now = SystemTime::now();
    let v = CosignVerifier::from_config(&keyless, Path::new("/")).unwrap();
    // `COSIGN_KEYLESS_ITERATIONS=N`: only N first verifications, no criterion, so that
    // `valgrind --tool=callgrind` counts instructions for a fixed amount of work.
    if let Some(n) = std::env::var("COSIGN_KEYLESS_ITERATIONS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
    {
        for _ in 0..n {
            std::hint::black_box(v.verify(&bundle, &expected, now).unwrap());
        }
        std::process::exit(0);
    }
    g.bench_function("keyless_first_verification", |b| {
        b.iter(|| v.verify(&bundle, &expected, now).unwrap())
    });
    g.bench_function("keyless_verifier_build", |b| {
        b.iter(|| CosignVerifier::from_config(&keyless, Path::new("/")).unwrap())
    });
    g.bench_function("keyless_build_then_verify", |b| {
        b.iter(|| {
            let v = CosignVerifier::from_config(&keyless, Path::new("/")).unwrap();
            v.verify(&bundle, &expected, now).unwrap()
        })
    });

    // Keyed: an ECDSA P-256 key (cosign's default) and a `.sig` payload signed with it.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spki = AsDer::<PublicKeyX509Der>::as_der(key.public_key()).unwrap();
    std::fs::write(
        dir.path().join("cosign.pub"),
        pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec())),
    )
    .unwrap();
    let keyed = VerifierConfig {
        keys: vec!["cosign.pub".into()],
        identities: vec![],
        trusted_root: None,
        ..keyless.clone()
    };
    let payload = Bytes::from(format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"registry.example/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    ));
    let signature = base64::engine::general_purpose::STANDARD
        .encode(key.sign(&rng, &payload).unwrap().as_ref());
    let sig = SignatureEvidence::SimpleSigning {
        payload,
        signature,
        certificate: None,
        chain: None,
        rekor_bundle: None,
        rfc3161_timestamp: None,
    };
    g.bench_function("keyed_first_verification", |b| {
        b.iter(|| {
            let v = CosignVerifier::from_config(&keyed, dir.path()).unwrap();
            v.verify(&sig, &expected, now).unwrap()
        })
    });
    let v = CosignVerifier::from_config(&keyed, dir.path()).unwrap();
    g.bench_function("keyed_verify_only", |b| {
        b.iter(|| v.verify(&sig, &expected, now).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
