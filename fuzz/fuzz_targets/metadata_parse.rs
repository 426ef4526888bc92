//! Fuzz Notary metadata parsing: envelope parsing, canonicalisation, typed role parsing, and a full
//! verification where the input replaces one file of a real repository (fixed root, fixed clock).
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::macros::datetime;
use trustgate::trust::metadata::{parse_envelope, Root, Snapshot, Targets, Timestamp};
use trustgate::trust::testkit::block_on;
use trustgate::trust::{canonical, update, MemorySource, VerifyOptions};

const FILES: &[(&str, &[u8])] = &[
    ("root.json", include_bytes!("../../tests/data/notary-fixtures/notary0.3/root.json")),
    ("timestamp.json", include_bytes!("../../tests/data/notary-fixtures/notary0.3/timestamp.json")),
    ("snapshot.json", include_bytes!("../../tests/data/notary-fixtures/notary0.3/snapshot.json")),
    ("targets.json", include_bytes!("../../tests/data/notary-fixtures/notary0.3/targets.json")),
    ("targets/releases.json", include_bytes!("../../tests/data/notary-fixtures/notary0.3/targets/releases.json")),
];

fuzz_target!(|data: &[u8]| {
    let _ = canonical::canonicalize_bytes(data);
    if let Ok(env) = parse_envelope(data) {
        let _ = Root::from_envelope(&env);
        let _ = Timestamp::from_envelope(&env);
        let _ = Snapshot::from_envelope(&env);
        let _ = Targets::from_envelope(&env, "targets");
        if let Ok(v) = env.signed_value() {
            let _ = Targets::from_signed(v, "targets");
        }
    }
    // The first byte picks which file of the real repository the rest replaces.
    let Some((&which, rest)) = data.split_first() else { return };
    let which = which as usize % FILES.len();
    let mut src = MemorySource::new();
    for (i, (name, bytes)) in FILES.iter().enumerate() {
        src.insert(*name, if i == which { rest.to_vec() } else { bytes.to_vec() });
    }
    let now = datetime!(2026-07-01 0:00 UTC);
    if let Ok(repo) = block_on(update(&src, "docker.com/notary0.3/tst", "h", None, now, &VerifyOptions::default())) {
        let _ = repo.lookup("hello", None);
        let _ = repo.signed_targets();
    }
});
