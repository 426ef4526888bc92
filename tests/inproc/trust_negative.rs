//! One change per test, each rejected for its own reason with its own error variant. Repositories
//! are built and signed by `trust::testkit`; the clock is fixed at `testkit::NOW`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::Value;
use time::macros::datetime;
use time::Duration;
use trustgate::trust::testkit::{
    ca_and_leaf, verify, verify_opts, DelegationSpec, RoleSpec, Stage, TestKey, TestRepo, NOW,
};
use trustgate::trust::{TrustError, TrustErrorKind, TrustPinning, TrustState, VerifyOptions};

const GUN: &str = "docker.io/library/app";

fn repo() -> TestRepo {
    TestRepo::new(GUN).with_releases()
}

fn state_of(r: &TestRepo) -> TrustState {
    verify(&r.build(), GUN, None)
        .expect("baseline verifies")
        .new_state
}

fn edit_json(bytes: &mut Vec<u8>, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(bytes).unwrap();
    f(&mut v);
    *bytes = serde_json::to_vec(&v).unwrap();
}

#[test]
fn baseline_verifies_and_resolves() {
    let r = repo();
    let v = verify(&r.build(), GUN, None).unwrap();
    assert_eq!(v.lookup("v1", None).unwrap().role, "targets/releases");
    let latest = v.lookup("latest", None).unwrap();
    assert_eq!(latest.role, "targets");
    assert_eq!(latest.length, b"manifest-latest".len() as u64);
    assert_eq!(latest.key_ids, vec![TestKey::ecdsa(2).id()]);
    assert_eq!(v.expires, datetime!(2100-01-01 0:00 UTC));
    // Equal versions are not a rollback: verify again against the new state.
    verify(&r.build(), GUN, Some(&v.new_state)).unwrap();
}

#[test]
fn flipped_byte_in_signature() {
    let src = repo().build_with(|s| {
        if let Stage::Bytes("targets", b) = s {
            edit_json(b, |v| {
                let sig = v["signatures"][0]["sig"].as_str().unwrap();
                let mut raw = B64.decode(sig).unwrap();
                raw[5] ^= 0x01;
                v["signatures"][0]["sig"] = Value::String(B64.encode(raw));
            });
        }
    });
    let err = verify(&src, GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::Threshold { ref role, valid: 0, threshold: 1, .. } if role == "targets"),
        "{err}"
    );
    assert_eq!(err.kind(), TrustErrorKind::BadSignature);
}

#[test]
fn flipped_byte_in_signed_body() {
    let src = repo().build_with(|s| {
        if let Stage::Bytes("snapshot", b) = s {
            let text = String::from_utf8(b.clone()).unwrap();
            *b = text
                .replacen("\"version\":1", "\"version\":2", 1)
                .into_bytes();
        }
    });
    let err = verify(&src, GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::Threshold { ref role, valid: 0, .. } if role == "snapshot"),
        "{err}"
    );
}

#[test]
fn signature_by_key_not_in_role() {
    let mut r = repo();
    r.timestamp.signers = Some(vec![TestKey::ed25519(40)]);
    let err = verify(&r.build(), GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::Threshold { ref role, valid: 0, .. } if role == "timestamp"),
        "{err}"
    );
}

#[test]
fn threshold_not_met() {
    let mut r = repo();
    r.targets.keys.push(TestKey::ecdsa(6));
    r.targets.threshold = 2;
    r.targets.signers = Some(vec![TestKey::ecdsa(2)]);
    let err = verify(&r.build(), GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::Threshold { ref role, valid: 1, threshold: 2, .. } if role == "targets"),
        "{err}"
    );
    // With both keys it passes.
    r.targets.signers = None;
    verify(&r.build(), GUN, None).unwrap();
}

#[test]
fn two_signatures_by_one_key_count_once() {
    let mut r = repo();
    r.targets.keys.push(TestKey::ecdsa(6));
    r.targets.threshold = 2;
    r.targets.signers = Some(vec![TestKey::ecdsa(2), TestKey::ecdsa(2)]);
    let err = verify(&r.build(), GUN, None).unwrap_err();
    assert!(
        matches!(
            err,
            TrustError::Threshold {
                valid: 1,
                threshold: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn expired_roles() {
    let past = datetime!(2030-01-01 0:00 UTC);
    for role in ["timestamp", "snapshot", "targets", "root"] {
        let mut r = repo();
        match role {
            "timestamp" => r.timestamp.expires = past,
            "snapshot" => r.snapshot.expires = past,
            "targets" => r.targets.expires = past,
            _ => r.root.expires = past,
        }
        let err = verify(&r.build(), GUN, None).unwrap_err();
        assert!(
            matches!(err, TrustError::Expired { role: ref x, .. } if x == role),
            "{role}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("remote repository {GUN} out-of-date: {role} expired at Tue Jan 1 00:00:00 UTC 2030")
        );
    }
}

#[test]
fn expired_delegation_is_dropped_not_fatal() {
    let mut r = repo();
    r.delegation_mut("targets/releases").role.expires = datetime!(2030-01-01 0:00 UTC);
    let v = verify(&r.build(), GUN, None).unwrap();
    assert!(v.role("targets/releases").is_none());
    assert!(matches!(
        v.lookup("v1", None),
        Err(TrustError::UnsignedTag { .. })
    ));
    assert!(v.lookup("latest", None).is_ok());
}

#[test]
fn delegation_threshold_failure_is_dropped() {
    let mut r = repo();
    r.delegation_mut("targets/releases").role.signers = Some(vec![TestKey::ecdsa(41)]);
    let v = verify(&r.build(), GUN, None).unwrap();
    assert!(v.role("targets/releases").is_none());
}

#[test]
fn grace_for_expired_timestamp_and_snapshot() {
    let mut r = repo();
    r.timestamp.expires = datetime!(2030-05-30 0:00 UTC);
    r.snapshot.expires = datetime!(2030-05-31 0:00 UTC);
    let src = r.build();
    let opts = VerifyOptions {
        expired_grace_for_timestamp_snapshot: Some(Duration::days(7)),
        ..Default::default()
    };
    let v = verify_opts(&src, GUN, None, NOW, &opts).unwrap();
    assert_eq!(v.expires, datetime!(2030-05-30 0:00 UTC));
    // Beyond the grace period.
    let err = verify_opts(&src, GUN, None, NOW + Duration::days(7), &opts).unwrap_err();
    assert!(
        matches!(err, TrustError::Expired { ref role, .. } if role == "timestamp"),
        "{err}"
    );
    // The grace does not cover targets.
    let mut r = repo();
    r.targets.expires = datetime!(2030-05-31 0:00 UTC);
    let err = verify_opts(&r.build(), GUN, None, NOW, &opts).unwrap_err();
    assert!(
        matches!(err, TrustError::Expired { ref role, .. } if role == "targets"),
        "{err}"
    );
}

#[test]
fn rollback_of_each_role() {
    for role in [
        "timestamp",
        "snapshot",
        "targets",
        "targets/releases",
        "root",
    ] {
        let mut newer = repo();
        match role {
            "timestamp" => newer.timestamp.version = 2,
            "snapshot" => newer.snapshot.version = 2,
            "targets" => newer.targets.version = 2,
            "targets/releases" => newer.delegation_mut(role).role.version = 2,
            _ => newer.root.version = 2,
        }
        let state = state_of(&newer);
        let err = verify(&repo().build(), GUN, Some(&state)).unwrap_err();
        assert!(
            matches!(err, TrustError::Rollback { role: ref x, found: 1, current: 2, .. } if x == role),
            "{role}: {err}"
        );
        assert_eq!(err.kind(), TrustErrorKind::Rollback);
    }
}

#[test]
fn snapshot_hash_mismatch() {
    let mut src = repo().build();
    // Same length, different bytes: change one character of the signature's base64.
    let b = src.get_mut("snapshot.json").unwrap();
    let pos = b.windows(7).position(|w| w == b"\"sig\":\"").unwrap() + 8;
    b[pos] = if b[pos] == b'A' { b'B' } else { b'A' };
    let err = verify(&src, GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::HashMismatch { ref role, ref alg, .. } if role == "snapshot" && alg == "sha256"),
        "{err}"
    );
}

#[test]
fn targets_length_mismatch() {
    let src = repo().build_with(|s| {
        if let Stage::Signed("snapshot", v) = s {
            let len = v["meta"]["targets"]["length"].as_u64().unwrap();
            v["meta"]["targets"]["length"] = (len + 1).into();
        }
    });
    let err = verify(&src, GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::LengthMismatch { ref role, .. } if role == "targets"),
        "{err}"
    );
}

#[test]
fn root_cn_not_the_gun() {
    let mut r = repo();
    let k = TestKey::root_cert(
        1,
        "docker.io/library/other",
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2120-01-01 0:00 UTC),
    );
    r.root = RoleSpec::new(k);
    let err = verify(&r.build(), GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::InvalidRootCertificate { ref reason, .. } if reason.contains("common name")),
        "{err}"
    );
    // A wildcard CN prefix is accepted.
    let mut r = repo();
    r.root = RoleSpec::new(TestKey::root_cert(
        1,
        "docker.io/library/*",
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2120-01-01 0:00 UTC),
    ));
    verify(&r.build(), GUN, None).unwrap();
}

#[test]
fn root_certificate_expired() {
    let mut r = repo();
    r.root = RoleSpec::new(TestKey::root_cert(
        1,
        GUN,
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2030-01-01 0:00 UTC),
    ));
    let err = verify(&r.build(), GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::InvalidRootCertificate { ref reason, .. } if reason.contains("expired")),
        "{err}"
    );
}

#[test]
fn plain_key_cannot_be_root() {
    let mut r = repo();
    r.root = RoleSpec::new(TestKey::ecdsa(1));
    let err = verify(&r.build(), GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::InvalidRootCertificate { .. }),
        "{err}"
    );
}

#[test]
fn not_pinned_when_tofu_off() {
    let r = repo();
    let opts = VerifyOptions {
        pinning: TrustPinning {
            tofu: false,
            ..Default::default()
        },
        ..Default::default()
    };
    let err = verify_opts(&r.build(), GUN, None, NOW, &opts).unwrap_err();
    assert!(matches!(err, TrustError::NotPinned { .. }), "{err}");
    // With a pinned state, TOFU off still works: the pinned root anchors.
    let state = state_of(&r);
    verify_opts(&r.build(), GUN, Some(&state), NOW, &opts).unwrap();
}

#[test]
fn ca_pinning() {
    let (ca_pem, leaf) = ca_and_leaf(20, 21, GUN);
    let mut r = repo();
    r.root = RoleSpec::new(leaf);
    let mut pinning = TrustPinning {
        tofu: false,
        ..Default::default()
    };
    pinning.ca.insert("docker.io/library/".into(), ca_pem);
    let opts = VerifyOptions {
        pinning: pinning.clone(),
        ..Default::default()
    };
    verify_opts(&r.build(), GUN, None, NOW, &opts).unwrap();
    // A different CA for the same prefix.
    let (other_ca, _) = ca_and_leaf(22, 23, GUN);
    pinning.ca.insert("docker.io/library/".into(), other_ca);
    let opts = VerifyOptions {
        pinning,
        ..Default::default()
    };
    let err = verify_opts(&r.build(), GUN, None, NOW, &opts).unwrap_err();
    assert!(matches!(err, TrustError::PinMismatch { .. }), "{err}");
}

#[test]
fn delegation_signing_outside_its_paths() {
    let mut r = repo();
    r.delegation_mut("targets/releases").paths = vec!["stable-".into()];
    let v = verify(&r.build(), GUN, None).unwrap();
    let err = v.lookup("v1", None).unwrap_err();
    assert!(
        matches!(err, TrustError::OutsideDelegationPaths { ref role, .. } if role == "targets/releases"),
        "{err}"
    );
    assert!(v.signed_targets().iter().all(|t| t.name != "v1"));
}

#[test]
fn child_paths_restricted_by_parent() {
    let mut r = repo();
    r.delegation_mut("targets/releases").paths = vec!["v".into()];
    r.delegations.push(DelegationSpec {
        name: "targets/releases/ci".into(),
        role: RoleSpec::new(TestKey::ecdsa(7)),
        paths: vec!["v2".into(), "x".into()],
        targets: [
            ("x1".to_string(), b"x".to_vec()),
            ("v2".to_string(), b"y".to_vec()),
        ]
        .into_iter()
        .collect(),
    });
    let v = verify(&r.build(), GUN, None).unwrap();
    assert_eq!(
        v.role("targets/releases/ci").unwrap().paths,
        Some(vec!["v2".to_string()])
    );
    // Found in a role Docker does not accept.
    assert!(matches!(
        v.lookup("v2", None),
        Err(TrustError::TagInOtherDelegation { .. })
    ));
    assert!(matches!(
        v.lookup("x1", None),
        Err(TrustError::OutsideDelegationPaths { .. })
    ));
}

#[test]
fn unknown_signature_method() {
    let mut r = repo();
    r.snapshot.signers = Some(vec![TestKey::ecdsa(3).with_method("ecdsa-sha3")]);
    let err = verify(&r.build(), GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::UnsupportedMethod { ref method, .. } if method == "ecdsa-sha3"),
        "{err}"
    );
}

#[test]
fn unknown_key_type() {
    let mut r = repo();
    let k = TestKey::ecdsa(2).with_key_type("ecdsa-brainpool");
    r.targets = RoleSpec::new(k);
    let err = verify(&r.build(), GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::UnsupportedKeyType { ref key_type, .. } if key_type == "ecdsa-brainpool"),
        "{err}"
    );
}

#[test]
fn key_id_not_matching_key_content() {
    let targets_id = TestKey::ecdsa(2).id();
    let src = repo().build_with(|s| {
        if let Stage::Signed("root", v) = s {
            v["keys"][&targets_id] = TestKey::ecdsa(9).key_json();
        }
    });
    let err = verify(&src, GUN, None).unwrap_err();
    assert!(matches!(err, TrustError::KeyIdMismatch { .. }), "{err}");
}

#[test]
fn oversized_metadata() {
    let mut src = repo().build();
    let b = src.get_mut("timestamp.json").unwrap();
    b.resize((1 << 20) + 1, b' ');
    let err = verify(&src, GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::TooLarge { ref role, limit, .. } if role == "timestamp" && limit == 1 << 20),
        "{err}"
    );
}

#[test]
fn missing_timestamp() {
    let mut src = repo().build();
    src.remove("timestamp.json");
    let err = verify(&src, GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::MissingMetadata { ref role, .. } if role == "timestamp"),
        "{err}"
    );
}

#[test]
fn missing_sha256_on_target() {
    let src = repo().build_with(|s| {
        if let Stage::Signed("targets", v) = s {
            v["targets"]["latest"]["hashes"]
                .as_object_mut()
                .unwrap()
                .remove("sha256");
        }
    });
    let v = verify(&src, GUN, None).unwrap();
    let err = v.lookup("latest", None).unwrap_err();
    assert_eq!(err.to_string(), "no valid hash, expecting sha256");
}

#[test]
fn no_signatures() {
    let mut r = repo();
    r.timestamp.signers = Some(vec![]);
    let err = verify(&r.build(), GUN, None).unwrap_err();
    assert!(matches!(err, TrustError::NoSignatures { .. }), "{err}");
}

#[test]
fn rsa_methods_verify() {
    for method in ["rsapss", "rsapkcs1v15"] {
        let mut r = repo();
        r.targets = RoleSpec::new(TestKey::rsa().with_method(method));
        let v = verify(&r.build(), GUN, None).unwrap();
        assert_eq!(
            v.lookup("latest", None).unwrap().key_ids,
            vec![TestKey::rsa().id()]
        );
    }
}

#[test]
fn root_rotation_signed_by_old_root() {
    let r1 = repo();
    let state = state_of(&r1);
    let mut r2 = repo();
    r2.root = RoleSpec {
        version: 2,
        ..RoleSpec::new(TestKey::root_cert(
            11,
            GUN,
            datetime!(2020-01-01 0:00 UTC),
            datetime!(2120-01-01 0:00 UTC),
        ))
    };
    r2.extra_root_signers = vec![r1.root.keys[0].clone()];
    let v = verify(&r2.build(), GUN, Some(&state)).unwrap();
    assert_eq!(v.root_version, 2);
    assert_eq!(v.new_state.versions["root"], 2);
}

#[test]
fn root_rotation_walks_versions() {
    let cert = |seed| {
        TestKey::root_cert(
            seed,
            GUN,
            datetime!(2020-01-01 0:00 UTC),
            datetime!(2120-01-01 0:00 UTC),
        )
    };
    let r1 = repo();
    let state = state_of(&r1);
    let mut r2 = repo();
    r2.root = RoleSpec {
        version: 2,
        ..RoleSpec::new(cert(11))
    };
    r2.extra_root_signers = vec![cert(1)];
    let mut r3 = repo();
    r3.root = RoleSpec {
        version: 3,
        ..RoleSpec::new(cert(12))
    };
    r3.extra_root_signers = vec![cert(11)];
    let mut src = r3.build();
    // Without 2.root.json the chain cannot be followed.
    let err = verify(&src, GUN, Some(&state)).unwrap_err();
    assert!(matches!(err, TrustError::RootMismatch { .. }), "{err}");
    src.insert("2.root.json", r2.build().get("root.json").unwrap().clone());
    let v = verify(&src, GUN, Some(&state)).unwrap();
    assert_eq!(v.root_version, 3);
}

#[test]
fn root_recreated_under_new_key_is_a_mismatch() {
    let state = state_of(&repo());
    let mut r = repo();
    r.root = RoleSpec::new(TestKey::root_cert(
        30,
        GUN,
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2120-01-01 0:00 UTC),
    ));
    let err = verify(&r.build(), GUN, Some(&state)).unwrap_err();
    assert!(matches!(err, TrustError::RootMismatch { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("trustgate trust reset {GUN}")),
        "{err}"
    );
    assert_eq!(err.kind(), TrustErrorKind::RootMismatch);
}

/// Trust data re-created under a new key after the pinned root had been rotated: the new root's
/// version is lower than the pinned one, but it is a key change (with the reset hint), not a
/// rollback of the pinned root.
#[test]
fn root_recreated_under_new_key_with_lower_version_is_a_mismatch() {
    let mut pinned = repo();
    pinned.root.version = 3;
    let state = state_of(&pinned);
    let mut r = repo();
    r.root = RoleSpec::new(TestKey::root_cert(
        31,
        GUN,
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2120-01-01 0:00 UTC),
    ));
    let err = verify(&r.build(), GUN, Some(&state)).unwrap_err();
    assert!(matches!(err, TrustError::RootMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("trustgate trust reset {GUN}")) && text.contains("lower than"),
        "{err}"
    );
}

#[test]
fn root_hash_checked_against_snapshot() {
    // Serve a root that is valid but not the one the snapshot describes.
    let r = repo();
    let mut src = r.build();
    let mut other = repo();
    other.root.expires = datetime!(2099-01-01 0:00 UTC);
    src.insert("root.json", other.build().get("root.json").unwrap().clone());
    let err = verify(&src, GUN, None).unwrap_err();
    assert!(
        matches!(err, TrustError::LengthMismatch { ref role, .. } | TrustError::HashMismatch { ref role, .. } if role == "root"),
        "{err}"
    );
}

#[test]
fn pinned_state_for_other_gun_is_refused() {
    let state = state_of(&repo());
    let other = TestRepo::new("docker.io/library/zzz");
    let err = verify(&other.build(), "docker.io/library/zzz", Some(&state)).unwrap_err();
    assert!(matches!(err, TrustError::BadPinnedState { .. }), "{err}");
}

#[test]
fn unchanged_pinned_root_still_has_its_certificate_checked() {
    let mut r = repo();
    r.root = RoleSpec::new(TestKey::root_cert(
        1,
        GUN,
        datetime!(2020-01-01 0:00 UTC),
        datetime!(2031-01-01 0:00 UTC),
    ));
    let state = state_of(&r);
    // Same bytes as pinned: signatures are not re-verified, but certificate validity is.
    let v = verify_opts(
        &r.build(),
        GUN,
        Some(&state),
        NOW,
        &VerifyOptions::default(),
    )
    .unwrap();
    assert_eq!(v.root_signers.len(), 1);
    let later = datetime!(2031-06-01 0:00 UTC);
    let err = verify_opts(
        &r.build(),
        GUN,
        Some(&state),
        later,
        &VerifyOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, TrustError::InvalidRootCertificate { .. }),
        "{err}"
    );
}

#[test]
fn unchanged_files_are_reverified_after_the_root_changes() {
    let r1 = repo();
    let state = state_of(&r1);
    // Steady state: same files, stored signer lists reused, same answer.
    let v = verify(&r1.build(), GUN, Some(&state)).unwrap();
    assert_eq!(
        v.lookup("latest", None).unwrap().key_ids,
        vec![TestKey::ecdsa(2).id()]
    );
    assert_eq!(v.new_state.signers["targets"], vec![TestKey::ecdsa(2).id()]);
    // Root v2 (same root key) names a new targets key, but targets.json is byte-identical (still
    // signed by the old key): it must be verified again, and fail.
    let mut r2 = repo();
    r2.root.version = 2;
    r2.targets.keys = vec![TestKey::ecdsa(8)];
    r2.targets.signers = Some(vec![TestKey::ecdsa(2)]);
    let src = r2.build();
    assert_eq!(src.get("targets.json"), r1.build().get("targets.json"));
    let err = verify(&src, GUN, Some(&state)).unwrap_err();
    assert!(
        matches!(err, TrustError::Threshold { ref role, .. } if role == "targets"),
        "{err}"
    );
}

#[test]
fn cached_timestamp_used_when_download_fails() {
    let r = repo();
    let state = state_of(&r);
    let mut src = r.build();
    src.remove("timestamp.json");
    // Nothing cached: the missing timestamp is an error.
    assert!(matches!(
        verify(&src, GUN, None),
        Err(TrustError::MissingMetadata { .. })
    ));
    // Cached: it is used, and still checked (here: expiry).
    verify(&src, GUN, Some(&state)).unwrap();
    let mut r2 = repo();
    r2.timestamp.expires = datetime!(2030-03-01 0:00 UTC);
    let state2 = verify_opts(
        &r2.build(),
        GUN,
        None,
        datetime!(2030-02-01 0:00 UTC),
        &VerifyOptions::default(),
    )
    .unwrap()
    .new_state;
    let err = verify(&src, GUN, Some(&state2)).unwrap_err();
    assert!(
        matches!(err, TrustError::Expired { ref role, .. } if role == "timestamp"),
        "{err}"
    );
}
