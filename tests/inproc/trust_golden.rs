//! Golden vectors produced by the real `notary` CLI and notary-server (see
//! `tests/data/golden/README.md`, generated on another branch). Every scenario directory is walked;
//! its states are verified in order with the clock at `verify_at`, carrying the pinned state
//! forward, and every expected tag / unsigned tag is checked. With no `tests/data/golden/` directory
//! there is nothing to check; if it exists it must hold at least one scenario.
//!
//! `TRUSTGATE_GOLDEN_DIR` points the test at another copy of the vectors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use trustgate::trust::metadata::parse_time;
use trustgate::trust::testkit::block_on;
use trustgate::trust::{update, MemorySource, TrustError, TrustState, VerifyOptions};

/// Scenarios where a verifier pinned at the previous state must refuse the next one.
const MUST_REFUSE_WHEN_PINNED: &[&str] = &["recreated"];

#[derive(Deserialize)]
struct Tag {
    sha256: String,
    length: u64,
    role: String,
}

#[derive(Deserialize)]
struct Answers {
    tags: BTreeMap<String, Tag>,
    #[serde(default)]
    unsigned_tags: Vec<String>,
}

#[derive(Deserialize)]
struct Expected {
    gun: String,
    verify_at: String,
    #[serde(flatten)]
    last: Answers,
    states: Vec<String>,
    #[serde(default)]
    by_state: BTreeMap<String, Answers>,
}

fn load_dir(dir: &Path) -> MemorySource {
    fn walk(base: &Path, dir: &Path, out: &mut MemorySource) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let name = p
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut m = MemorySource::new();
    walk(dir, dir, &mut m);
    m
}

fn check_answers(
    scenario: &str,
    state: &str,
    repo: &trustgate::trust::VerifiedRepository,
    answers: &Answers,
) {
    for (tag, want) in &answers.tags {
        let got = repo
            .lookup(tag, None)
            .unwrap_or_else(|e| panic!("{scenario}/{state}: tag {tag}: {e}"));
        assert_eq!(
            hex::encode(got.sha256),
            want.sha256,
            "{scenario}/{state}: {tag} sha256"
        );
        assert_eq!(got.length, want.length, "{scenario}/{state}: {tag} length");
        assert_eq!(got.role, want.role, "{scenario}/{state}: {tag} role");
    }
    for tag in &answers.unsigned_tags {
        let err = repo.lookup(tag, None).unwrap_err();
        assert!(
            matches!(err, TrustError::UnsignedTag { .. }),
            "{scenario}/{state}: {tag}: {err}"
        );
        assert_eq!(err.to_string(), format!("No valid trust data for {tag}"));
    }
}

#[test]
fn golden_scenarios() {
    let dir = std::env::var_os("TRUSTGATE_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden"));
    if !dir.exists() {
        eprintln!("no golden vectors at {}; skipping", dir.display());
        return;
    }
    let mut scenarios = 0;
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for sdir in entries {
        let exp_path = sdir.join("expected.json");
        if !exp_path.is_file() {
            continue;
        }
        scenarios += 1;
        let scenario = sdir.file_name().unwrap().to_string_lossy().to_string();
        let exp: Expected = serde_json::from_slice(&std::fs::read(&exp_path).unwrap()).unwrap();
        let now = parse_time(&exp.verify_at).unwrap();
        let opts = VerifyOptions::default();
        let mut pinned: Option<TrustState> = None;
        for (i, state) in exp.states.iter().enumerate() {
            let src = load_dir(&sdir.join(state));
            let last = i + 1 == exp.states.len();
            let answers = exp
                .by_state
                .get(state)
                .or(if last { Some(&exp.last) } else { None });
            let result = block_on(update(
                &src,
                &exp.gun,
                "notary.test",
                pinned.as_ref(),
                now,
                &opts,
            ));
            let repo = if pinned.is_some() && MUST_REFUSE_WHEN_PINNED.contains(&scenario.as_str()) {
                let err = result.expect_err("pinned verifier must refuse a recreated root");
                assert!(
                    matches!(err, TrustError::RootMismatch { .. }),
                    "{scenario}/{state}: {err}"
                );
                // On first use (nothing pinned) the new data is accepted.
                block_on(update(&src, &exp.gun, "notary.test", None, now, &opts))
                    .unwrap_or_else(|e| panic!("{scenario}/{state} (fresh): {e}"))
            } else {
                result.unwrap_or_else(|e| panic!("{scenario}/{state}: {e}"))
            };
            if let Some(a) = answers {
                check_answers(&scenario, state, &repo, a);
            }
            pinned = Some(repo.new_state);
        }
    }
    assert!(
        scenarios >= 1,
        "{} exists but holds no scenario",
        dir.display()
    );
}
