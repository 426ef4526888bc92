//! Bounded fuzz smoke on stable: random bytes and mutated real metadata go through envelope
//! parsing, canonicalisation, typed parsing and a full verification. Nothing may panic. (The
//! coverage-guided target lives in `fuzz/` and needs cargo-fuzz.)

use proptest::prelude::*;
use time::macros::datetime;
use trustgate::trust::metadata::{parse_envelope, Root, Snapshot, Targets, Timestamp};
use trustgate::trust::testkit::block_on;
use trustgate::trust::{canonical, update, MemorySource, VerifyOptions};

const FIXTURES: &[(&str, &[u8])] = &[
    (
        "root.json",
        include_bytes!("../data/notary-fixtures/notary0.3/root.json"),
    ),
    (
        "timestamp.json",
        include_bytes!("../data/notary-fixtures/notary0.3/timestamp.json"),
    ),
    (
        "snapshot.json",
        include_bytes!("../data/notary-fixtures/notary0.3/snapshot.json"),
    ),
    (
        "targets.json",
        include_bytes!("../data/notary-fixtures/notary0.3/targets.json"),
    ),
    (
        "targets/releases.json",
        include_bytes!("../data/notary-fixtures/notary0.3/targets/releases.json"),
    ),
];

fn exercise(bytes: &[u8]) {
    let _ = canonical::canonicalize_bytes(bytes);
    if let Ok(env) = parse_envelope(bytes) {
        let _ = Root::from_envelope(&env);
        let _ = Timestamp::from_envelope(&env);
        let _ = Snapshot::from_envelope(&env);
        let _ = Targets::from_envelope(&env, "targets");
        if let Ok(v) = env.signed_value() {
            let _ = Targets::from_signed(v, "targets");
        }
    }
}

fn verify_with(file: usize, bytes: Vec<u8>) {
    let mut src = MemorySource::new();
    for (i, (name, b)) in FIXTURES.iter().enumerate() {
        src.insert(*name, if i == file { bytes.clone() } else { b.to_vec() });
    }
    let now = datetime!(2026-07-01 0:00 UTC);
    let r = block_on(update(
        &src,
        "docker.com/notary0.3/tst",
        "h",
        None,
        now,
        &VerifyOptions::default(),
    ));
    if let Ok(repo) = r {
        let _ = repo.lookup("hello", None);
        let _ = repo.signed_targets();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_fixtures_do_not_panic(
        file in 0..FIXTURES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = FIXTURES[file].1.to_vec();
        for (idx, b) in edits {
            let i = idx.index(bytes.len());
            bytes[i] = b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        exercise(&bytes);
        verify_with(file, bytes);
    }

    #[test]
    fn structural_json_does_not_panic(v in json_value()) {
        let doc = serde_json::json!({"signed": v, "signatures": []});
        exercise(&serde_json::to_vec(&doc).unwrap());
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| Value::Number(i.into())),
        any::<f64>()
            .prop_filter_map("finite", serde_json::Number::from_f64)
            .prop_map(Value::Number),
        prop_oneof![
            Just("Root"),
            Just("Targets"),
            Just("2030-01-01T00:00:00Z"),
            Just("sha256"),
            Just("targets/x")
        ]
        .prop_map(|s| Value::String(s.into())),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("_type".to_string()),
                    Just("version".to_string()),
                    Just("expires".to_string()),
                    Just("keys".to_string()),
                    Just("roles".to_string()),
                    Just("meta".to_string()),
                    Just("targets".to_string()),
                    Just("delegations".to_string()),
                    Just("hashes".to_string()),
                    Just("length".to_string()),
                    Just("threshold".to_string()),
                    Just("keyids".to_string()),
                    Just("paths".to_string()),
                    Just("name".to_string()),
                    Just("snapshot".to_string()),
                    ".{0,4}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
