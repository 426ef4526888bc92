//! An independent verifier agrees: sigstore-python (PyPI `sigstore`, installed by
//! scripts/install-test-deps.sh into its own venv) verifies the same bundles offline against
//! the same trusted roots, and accepts exactly what trustgate accepts. The bundles are the real
//! tools' golden vectors (tests/data/cosign/SOURCES.md), accepted and broken ones.
//!
//! Not covered here: `.sig` signatures. Their Rekor annotation carries only a promise (SET), and
//! sigstore-python 4 refuses any bundle whose log entry has no inclusion proof (its bundle model
//! requires `inclusionProof`), so it cannot judge them; tests/cosign_fixtures.rs does.

use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use trustgate::reference::Digest;
use trustgate::verify::config::{IdentityConfig, VerifierConfig, VerifierKind};
use trustgate::verify::cosign::CosignVerifier;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cosign")
}

fn sigstore_cli() -> PathBuf {
    let path = std::env::var_os("TRUSTGATE_SIGSTORE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/trustgate-sigstore/bin/sigstore"));
    assert!(
        path.exists(),
        "sigstore-python not found at {} (run scripts/install-test-deps.sh)",
        path.display()
    );
    path
}

/// sigstore-python's verdict: `sigstore --trust-config … verify identity --offline`.
fn python_accepts(
    root: &Path,
    bundle: &Path,
    artifact: &Path,
    subject: &str,
    issuer: &str,
) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let trusted_root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root).unwrap()).unwrap();
    // A client trust configuration: the root, and a signing config with no services (nothing
    // is signed, and --offline contacts nothing).
    let config = serde_json::json!({
        "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
        "trustedRoot": trusted_root,
        "signingConfig": {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [], "oidcUrls": [], "rekorTlogUrls": [], "tsaUrls": [],
            "rekorTlogConfig": { "selector": "ANY" }, "tsaConfig": { "selector": "ANY" }
        }
    });
    let config_path = dir.path().join("trust_config.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let out = Command::new(sigstore_cli())
        .arg("--trust-config")
        .arg(&config_path)
        .args(["verify", "identity", "--offline", "--bundle"])
        .arg(bundle)
        .args(["--cert-identity", subject, "--cert-oidc-issuer", issuer])
        .arg(artifact)
        .output()
        .unwrap();
    eprintln!(
        "sigstore-python on {}: {}{}",
        bundle.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success()
}

fn verifier(root: &Path, subject: &str, issuer: &str) -> CosignVerifier {
    let config = VerifierConfig {
        name: "agree".into(),
        kind: VerifierKind::Cosign,
        keys: vec![],
        identities: vec![IdentityConfig {
            issuer: Some(issuer.into()),
            issuer_regex: None,
            subject: Some(subject.into()),
            subject_regex: None,
        }],
        trusted_root: Some(root.to_path_buf()),
        transparency: None,
        check_reference: true,
        ..Default::default()
    };
    CosignVerifier::from_config(&config, Path::new("/")).unwrap()
}

fn sha256_of(path: &Path) -> Digest {
    Digest::from_bytes(Sha256::digest(std::fs::read(path).unwrap()).into())
}

const BEACON: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const GITHUB_ACTIONS: &str = "https://token.actions.githubusercontent.com";

#[test]
fn sigstore_python_agrees_on_golden_bundles() {
    let production = data().join("sigstore-rust/trusted_roots/production-embedded.json");
    let blob = data().join("sigstore-rust/bundles/cosign-v3-blob.txt");
    let v3 = data().join("sigstore-rust/bundles/cosign-v3-blob.sigstore.json");
    let oauth = "https://github.com/login/oauth";
    let mut cases: Vec<(String, PathBuf, PathBuf, PathBuf, &str, &str)> = vec![
        (
            "cosign v3".into(),
            production.clone(),
            v3.clone(),
            blob.clone(),
            "w.vollprecht@gmail.com",
            oauth,
        ),
        (
            "cosign v3, other subject".into(),
            production.clone(),
            v3.clone(),
            blob.clone(),
            "x@gmail.com",
            oauth,
        ),
        (
            "cosign v3, other issuer".into(),
            production.clone(),
            v3,
            blob,
            "w.vollprecht@gmail.com",
            GITHUB_ACTIONS,
        ),
    ];
    for case in [
        "happy-path-v0.1",
        "happy-path-v0.2",
        "happy-path-v0.3",
        "rekor2-happy-path",
        "signature-mismatch_fail",
        "set-invalid-signature_fail",
        "invalid-inclusion-proof_fail",
        "wrong-hashedrekord-entry_fail",
        "intoto-expired-certificate_fail",
        "bundle-from-wrong-instance_fail",
    ] {
        let dir = data().join("conformance").join(case);
        let root = if dir.join("trusted_root.json").exists() {
            dir.join("trusted_root.json")
        } else {
            production.clone()
        };
        let artifact = if dir.join("artifact").exists() {
            dir.join("artifact")
        } else {
            data().join("conformance/a.txt")
        };
        cases.push((
            case.into(),
            root,
            dir.join("bundle.sigstore.json"),
            artifact,
            BEACON,
            GITHUB_ACTIONS,
        ));
    }
    let mut disagree = Vec::new();
    for (name, root, bundle, artifact, subject, issuer) in cases {
        let ours = verifier(&root, subject, issuer)
            .verify_bundle_for_artifact(&std::fs::read(&bundle).unwrap(), &sha256_of(&artifact));
        let theirs = python_accepts(&root, &bundle, &artifact, subject, issuer);
        eprintln!("{name}: trustgate {ours:?}, sigstore-python accepts: {theirs}");
        if ours.is_ok() != theirs {
            disagree.push(format!(
                "{name}: trustgate {ours:?}, sigstore-python {theirs}"
            ));
        }
    }
    assert!(
        disagree.is_empty(),
        "verdicts differ:\n{}",
        disagree.join("\n")
    );
}
