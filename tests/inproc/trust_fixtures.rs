//! Spec §10 vector 4: real Notary metadata verifies end to end with a fixed clock, and the key IDs
//! and canonical key IDs are the ones Notary computes.

use std::path::Path;

use time::macros::datetime;
use trustgate::trust::testkit::{block_on, HOST};
use trustgate::trust::{update, MemorySource, TrustError, TrustPinning, VerifyOptions};

fn load(dir: &str) -> MemorySource {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/notary-fixtures")
        .join(dir);
    let mut src = MemorySource::new();
    for name in crate::support::fake_notary::METADATA_FILES {
        if let Ok(b) = std::fs::read(base.join(name)) {
            src.insert(name, b);
        }
    }
    src
}

#[test]
fn notary01_verifies() {
    let gun = "docker.com/notary0.1/samplerepo";
    let src = load("notary0.1");
    let now = datetime!(2026-11-28 00:00 UTC);
    let repo = block_on(update(
        &src,
        gun,
        HOST,
        None,
        now,
        &VerifyOptions::default(),
    ))
    .unwrap();
    assert_eq!(repo.root_version, 1);
    assert_eq!(
        repo.root_signers[0].key_id,
        "4ff57dc987163053a12c066f2dd36b1ae6037a92f5416d381fe311a3db1868d8"
    );
    assert_eq!(
        repo.root_signers[0].canonical_id,
        "d0c623c8e70c70d42a8a8125c44a8598588b3f6e31d5c21a83cbc338dfde8a68"
    );
    let t = repo.lookup("LICENSE", None).unwrap();
    assert_eq!(t.role, "targets");
    assert_eq!(t.length, 11309);
    assert_eq!(
        hex::encode(t.sha256),
        hex::encode(base64_decode(
            "k5W6xvzLJry1XvsIPRtLD+cqHCX5WfBWwBYSCzu1amI="
        ))
    );
    assert_eq!(repo.new_state.versions["targets"], 2);
    // The state round-trips through JSON and re-verifies offline.
    let state: trustgate::trust::TrustState =
        serde_json::from_str(&serde_json::to_string(&repo.new_state).unwrap()).unwrap();
    let again = block_on(update(
        &state.offline_source(),
        gun,
        HOST,
        Some(&state),
        now,
        &VerifyOptions::default(),
    ))
    .unwrap();
    assert_eq!(again.lookup("LICENSE", None).unwrap(), t);
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn notary03_verifies_before_cert_expiry() {
    let gun = "docker.com/notary0.3/tst";
    let src = load("notary0.3");
    let now = datetime!(2026-07-24 00:00 UTC);
    let repo = block_on(update(
        &src,
        gun,
        HOST,
        None,
        now,
        &VerifyOptions::default(),
    ))
    .unwrap();
    assert_eq!(
        repo.root_signers[0].key_id,
        "354e203ba09dbe17807b6a9d191bff887167c06d121e738d849446a9c76c2866"
    );
    assert_eq!(
        repo.root_signers[0].canonical_id,
        "f4eaf871a74aa3b3a0ff95cef2455a1e4d461639f5625418e76756fc5c948690"
    );
    let rel = repo.role("targets/releases").unwrap();
    assert_eq!(
        rel.signers[0].key_id,
        "68243a1f948be7841403f65fc8f24d5eda9050c337e727e2eacc3d3cb5227d73"
    );
    assert_eq!(
        rel.signers[0].canonical_id,
        "fa842f66cac2dc898677a8660789dcff0e3b0b93b73f8952491f6493199936d3"
    );
    // targets/releases first (rsapss by an rsa-x509 key), then targets.
    let hello = repo.lookup("hello", None).unwrap();
    assert_eq!(hello.role, "targets/releases");
    assert_eq!(hello.length, 0);
    assert_eq!(
        hex::encode(hello.sha256),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hello.key_ids,
        vec!["68243a1f948be7841403f65fc8f24d5eda9050c337e727e2eacc3d3cb5227d73".to_string()]
    );
    assert_eq!(repo.lookup("LICENSE", None).unwrap().role, "targets");
    assert_eq!(
        repo.lookup("nope", None).unwrap_err().to_string(),
        "No valid trust data for nope"
    );
    let names: Vec<_> = repo
        .signed_targets()
        .into_iter()
        .map(|t| (t.name, t.role))
        .collect();
    assert_eq!(
        names,
        vec![
            ("LICENSE".to_string(), "targets".to_string()),
            ("change".to_string(), "targets".to_string()),
            ("hello".to_string(), "targets/releases".to_string())
        ]
    );
    // Required signer: targets/releases did not sign LICENSE.
    let req = vec!["targets/releases".to_string()];
    assert!(matches!(
        repo.lookup("LICENSE", Some(&req)),
        Err(TrustError::RequiredSignerMissing { .. })
    ));
    assert!(repo.lookup("hello", Some(&req)).is_ok());
}

#[test]
fn notary03_root_certificate_expired_on_fresh_bootstrap() {
    let src = load("notary0.3");
    let now = datetime!(2026-07-26 00:00 UTC);
    let err = block_on(update(
        &src,
        "docker.com/notary0.3/tst",
        HOST,
        None,
        now,
        &VerifyOptions::default(),
    ))
    .unwrap_err();
    assert!(
        matches!(err, TrustError::InvalidRootCertificate { .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("unable to retrieve valid leaf certificates"));
}

#[test]
fn wrong_gun_is_refused() {
    let src = load("notary0.1");
    let err = block_on(update(
        &src,
        "docker.com/other",
        HOST,
        None,
        datetime!(2026-01-01 0:00 UTC),
        &VerifyOptions::default(),
    ))
    .unwrap_err();
    assert!(
        matches!(err, TrustError::InvalidRootCertificate { .. }),
        "{err}"
    );
}

#[test]
fn pinning_by_cert_id_and_canonical_id() {
    let gun = "docker.com/notary0.1/samplerepo";
    let src = load("notary0.1");
    let now = datetime!(2026-01-01 0:00 UTC);
    for id in [
        "4ff57dc987163053a12c066f2dd36b1ae6037a92f5416d381fe311a3db1868d8",
        "d0c623c8e70c70d42a8a8125c44a8598588b3f6e31d5c21a83cbc338dfde8a68",
    ] {
        let mut pinning = TrustPinning {
            tofu: false,
            ..Default::default()
        };
        pinning.certs.insert(gun.into(), vec![id.into()]);
        let opts = VerifyOptions {
            pinning,
            ..Default::default()
        };
        block_on(update(&src, gun, HOST, None, now, &opts)).unwrap();
    }
    let mut pinning = TrustPinning {
        tofu: false,
        ..Default::default()
    };
    pinning.certs.insert(gun.into(), vec!["00".repeat(32)]);
    let opts = VerifyOptions {
        pinning,
        ..Default::default()
    };
    let err = block_on(update(&src, gun, HOST, None, now, &opts)).unwrap_err();
    assert!(matches!(err, TrustError::PinMismatch { .. }), "{err}");
}

#[test]
fn no_trust_data_uses_dockers_words() {
    let src = MemorySource::new();
    let err = block_on(update(
        &src,
        "docker.io/library/foo",
        "notary.docker.io",
        None,
        datetime!(2026-01-01 0:00 UTC),
        &VerifyOptions::default(),
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "remote trust data does not exist for docker.io/library/foo: notary.docker.io does not have trust data for docker.io/library/foo"
    );
}
