//! Enforcing Notation signatures (issue 13) against the in-process fake registry: signatures
//! found through the referrers API and through the `sha256-<hex>` fallback index, an untrusted
//! CA refused with its reason, a repository requiring cosign AND Notation, the operator's own
//! trustpolicy.json and trust-store directory, and seed → offline → pull. Signatures are made in
//! code (`support::notation`).

use std::path::Path;

use crate::inproc::app::TestApp;
use crate::inproc::fake_upstream::FakeUpstream;
use crate::inproc::upstreams::oci_error;
use crate::support::cosign::{self, Artifact, CosignKey, Signed};
use crate::support::notation::NotationSigner;

const REPO: &str = "team/app";
const REFERENCE: &str = "registry.local/team/app";

struct Image {
    manifest: Vec<u8>,
    digest: String,
    blobs: Vec<Vec<u8>>,
}

fn image(label: &str) -> Image {
    let config =
        format!(r#"{{"architecture":"amd64","os":"linux","label":"{label}"}}"#).into_bytes();
    let layer = format!("layer of {label}").into_bytes();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": cosign::OCI_MANIFEST,
        "config": {"mediaType": cosign::OCI_CONFIG, "digest": cosign::digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": cosign::digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    Image {
        digest: cosign::digest(&manifest),
        manifest,
        blobs: vec![config, layer],
    }
}

fn put_image(fake: &FakeUpstream, tag: &str, img: &Image) {
    fake.add_manifest(REPO, tag, cosign::OCI_MANIFEST, &img.manifest);
    for b in &img.blobs {
        fake.add_blob(b);
    }
}

fn put_artifact(fake: &FakeUpstream, tag: Option<&str>, a: &Artifact) {
    match tag {
        Some(t) => fake.add_manifest(REPO, t, a.media_type, &a.manifest),
        None => fake.add_untagged_manifest(REPO, a.media_type, &a.manifest),
    };
    for b in &a.blobs {
        fake.add_blob(b);
    }
}

fn header(data: &Path, url: &str, offline: bool) -> String {
    format!(
        "[storage]\nmin_free = \"0\"\npath = {:?}\n[[upstream]]\nname = \"registry.local\"\nurl = \"{url}\"\ndefault = true\noffline = {offline}\nconnect_timeout_secs = 1\n",
        data.display().to_string()
    )
}

fn notation_verifier(name: &str, root: &Path, identity: &str) -> String {
    format!(
        "[[verifier]]\nname = \"{name}\"\nkind = \"notation\"\ntrust_store = [{:?}]\ntrusted_identities = [{identity:?}]\nlevel = \"strict\"\n",
        root.display().to_string()
    )
}

fn policy(verifiers: &str, require: Option<&str>) -> String {
    let mut t = format!(
        "[[policy]]\nrepositories = [\"registry.local/*\"]\ntrust = \"enforce\"\nverifiers = {verifiers}\n"
    );
    if let Some(r) = require {
        t.push_str(&format!("require = {r}\n"));
    }
    t
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

async fn get(url: String) -> Answer {
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .header("accept", cosign::OCI_MANIFEST)
        .header("accept", cosign::OCI_INDEX)
        .send()
        .await
        .unwrap();
    Answer {
        status: r.status().as_u16(),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

async fn manifest(app: &TestApp, reference: &str) -> Answer {
    get(app.url(&format!("/v2/{REPO}/manifests/{reference}"))).await
}

fn refusal(a: &Answer) -> (u16, String, String) {
    let (code, message) = oci_error(&a.body);
    (a.status, code, message)
}

struct Env {
    fake: FakeUpstream,
    app: TestApp,
    signer: NotationSigner,
    dir: tempfile::TempDir,
}

async fn env(referrers_api: bool) -> Env {
    let fake = FakeUpstream::start().await;
    fake.enable_referrers(referrers_api);
    let dir = tempfile::tempdir().unwrap();
    let signer = NotationSigner::generate("Acme", "release");
    let root = signer.write_root(dir.path(), "acme-ca");
    let text = format!(
        "{}{}{}",
        header(&dir.path().join("data"), &fake.base(), false),
        notation_verifier("acme-notation", &root, &signer.identity),
        policy("[\"acme-notation\"]", None)
    );
    let app = TestApp::from_toml(&text, &dir.path().join("trustgate.toml")).await;
    Env {
        fake,
        app,
        signer,
        dir,
    }
}

#[tokio::test]
async fn a_notation_referrer_lets_the_image_through_and_an_unsigned_tag_is_refused() {
    let e = env(true).await;
    let signed = image("signed");
    put_image(&e.fake, "v1", &signed);
    let sig = e.signer.referrer(&signed.manifest, cosign::OCI_MANIFEST);
    put_artifact(&e.fake, None, &sig);
    let unsigned = image("unsigned");
    put_image(&e.fake, "v2", &unsigned);

    let a = manifest(&e.app, "v1").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.body, signed.manifest);
    for b in &signed.blobs {
        let got = get(e
            .app
            .url(&format!("/v2/{REPO}/blobs/{}", cosign::digest(b))))
        .await;
        assert_eq!((got.status, &got.body), (200, b));
    }
    // The signature manifest is trust data: served through trustgate (notation verify reads it).
    assert_eq!(manifest(&e.app, &sig.digest()).await.status, 200);
    let listed = get(e
        .app
        .url(&format!("/v2/{REPO}/referrers/{}", signed.digest)))
    .await;
    assert_eq!(listed.status, 200);
    assert!(String::from_utf8_lossy(&listed.body).contains(&sig.digest()));

    let (status, code, message) = refusal(&manifest(&e.app, "v2").await);
    assert_eq!((status, code.as_str()), (404, "MANIFEST_UNKNOWN"));
    assert_eq!(
        message,
        format!("no Notation signature for {REFERENCE}@{}", unsigned.digest)
    );
}

#[tokio::test]
async fn a_notation_signature_is_found_through_the_fallback_tag() {
    let e = env(false).await;
    let img = image("fallback");
    put_image(&e.fake, "v1", &img);
    let sig = e.signer.referrer(&img.manifest, cosign::OCI_MANIFEST);
    put_artifact(&e.fake, None, &sig);
    let index = cosign::fallback_index(&[(&sig, crate::support::notation::ARTIFACT_TYPE)]);
    e.fake.add_manifest(
        REPO,
        &cosign::fallback_tag(&img.digest),
        cosign::OCI_INDEX,
        &index,
    );
    let a = manifest(&e.app, "v1").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.body, img.manifest);
}

#[tokio::test]
async fn a_signature_from_another_ca_is_refused_naming_the_verifier() {
    let e = env(true).await;
    let img = image("other-ca");
    put_image(&e.fake, "v1", &img);
    let stranger = NotationSigner::generate("Acme", "release");
    put_artifact(
        &e.fake,
        None,
        &stranger.referrer(&img.manifest, cosign::OCI_MANIFEST),
    );
    let (status, code, message) = refusal(&manifest(&e.app, "v1").await);
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(
        message.contains("Notation signature not trusted by verifier acme-notation"),
        "{message}"
    );
}

#[tokio::test]
async fn a_notation_signature_for_another_image_is_refused() {
    let e = env(true).await;
    let img = image("one");
    let other = image("two");
    put_image(&e.fake, "v1", &img);
    // Attached to v1 (subject), but the envelope signs `other`.
    let envelope = e
        .signer
        .sign_jws(cosign::OCI_MANIFEST, &other.digest, other.manifest.len());
    let sig = crate::support::notation::signature_manifest(
        &img.digest,
        img.manifest.len(),
        cosign::OCI_MANIFEST,
        &envelope,
    );
    put_artifact(&e.fake, None, &sig);
    let (status, _, message) = refusal(&manifest(&e.app, "v1").await);
    assert_eq!(status, 403);
    assert!(message.contains(&other.digest), "{message}");
}

#[tokio::test]
async fn require_all_needs_both_cosign_and_notation() {
    let fake = FakeUpstream::start().await;
    fake.enable_referrers(true);
    let dir = tempfile::tempdir().unwrap();
    let signer = NotationSigner::generate("Acme", "release");
    let root = signer.write_root(dir.path(), "acme-ca");
    let key = CosignKey::generate();
    let pub_key = key.write_public(dir.path(), "acme");
    let text = format!(
        "{}[[verifier]]\nname = \"acme-cosign\"\nkind = \"cosign\"\nkeys = [{:?}]\n{}{}",
        header(&dir.path().join("data"), &fake.base(), false),
        pub_key.display().to_string(),
        notation_verifier("acme-notation", &root, &signer.identity),
        policy("[\"acme-cosign\", \"acme-notation\"]", Some("\"all\""))
    );
    let app = TestApp::from_toml(&text, &dir.path().join("trustgate.toml")).await;

    // cosign only: refused, naming what the Notation verifier said.
    let only_cosign = image("only-cosign");
    put_image(&fake, "v1", &only_cosign);
    let sig = cosign::sig_manifest(&[Signed::by(&key, REFERENCE, &only_cosign.digest)]);
    put_artifact(&fake, Some(&cosign::sig_tag(&only_cosign.digest)), &sig);
    let (status, _, message) = refusal(&manifest(&app, "v1").await);
    assert_eq!(status, 403);
    assert!(
        message.contains("2 verifiers must accept") && message.contains("1 did (acme-cosign)"),
        "{message}"
    );
    assert!(
        message.contains("acme-notation: a cosign signature"),
        "{message}"
    );

    // Notation only: refused too.
    let only_notation = image("only-notation");
    put_image(&fake, "v2", &only_notation);
    put_artifact(
        &fake,
        None,
        &signer.referrer(&only_notation.manifest, cosign::OCI_MANIFEST),
    );
    let (status, _, message) = refusal(&manifest(&app, "v2").await);
    assert_eq!(status, 403);
    assert!(message.contains("1 did (acme-notation)"), "{message}");

    // Both: served.
    let both = image("both");
    put_image(&fake, "v3", &both);
    let sig = cosign::sig_manifest(&[Signed::by(&key, REFERENCE, &both.digest)]);
    put_artifact(&fake, Some(&cosign::sig_tag(&both.digest)), &sig);
    put_artifact(
        &fake,
        None,
        &signer.referrer(&both.manifest, cosign::OCI_MANIFEST),
    );
    let a = manifest(&app, "v3").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.body, both.manifest);
}

#[tokio::test]
async fn the_operators_trust_policy_and_trust_store_directory_enforce() {
    let fake = FakeUpstream::start().await;
    fake.enable_referrers(true);
    let dir = tempfile::tempdir().unwrap();
    let signer = NotationSigner::generate("Acme", "release");
    let (policy_file, store_dir) =
        signer.write_notation_files(dir.path(), "acme", "registry.local/team/app", "strict");
    let text = format!(
        "{}[[verifier]]\nname = \"ops\"\nkind = \"notation\"\ntrust_policy = {:?}\ntrust_store_dir = {:?}\n{}",
        header(&dir.path().join("data"), &fake.base(), false),
        policy_file.display().to_string(),
        store_dir.display().to_string(),
        policy("[\"ops\"]", None)
    );
    let app = TestApp::from_toml(&text, &dir.path().join("trustgate.toml")).await;
    let img = image("policy");
    put_image(&fake, "v1", &img);
    put_artifact(
        &fake,
        None,
        &signer.referrer(&img.manifest, cosign::OCI_MANIFEST),
    );
    let a = manifest(&app, "v1").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    // Another signer with the same CA name but another key: not in the store.
    let img2 = image("policy-2");
    put_image(&fake, "v2", &img2);
    let stranger = NotationSigner::generate("Acme", "release");
    put_artifact(
        &fake,
        None,
        &stranger.referrer(&img2.manifest, cosign::OCI_MANIFEST),
    );
    let (status, _, message) = refusal(&manifest(&app, "v2").await);
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("not trusted by verifier ops"), "{message}");
}

#[tokio::test]
async fn seeded_notation_signatures_are_verified_again_by_an_offline_mirror() {
    let e = env(true).await;
    let img = image("seeded");
    put_image(&e.fake, "v1", &img);
    put_artifact(
        &e.fake,
        None,
        &e.signer.referrer(&img.manifest, cosign::OCI_MANIFEST),
    );
    let report = trustgate::seed::seed_image(&e.app.proxy, "team/app:v1", &Default::default(), &())
        .await
        .unwrap_or_else(|m| panic!("seed: {m}"));
    assert_eq!(report.digest.as_deref(), Some(img.digest.as_str()));
    let data = e.dir.path().join("data");
    let root = e.dir.path().join("acme-ca.pem");
    let identity = e.signer.identity.clone();
    drop(e.app);
    drop(e.fake);
    let text = format!(
        "{}{}{}",
        header(&data, "http://127.0.0.1:9", true),
        notation_verifier("acme-notation", &root, &identity),
        policy("[\"acme-notation\"]", None)
    );
    let offline = TestApp::from_toml(&text, Path::new("offline.toml")).await;
    let a = manifest(&offline, "v1").await;
    assert_eq!(
        (a.status, &a.body),
        (200, &img.manifest),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    for b in &img.blobs {
        assert_eq!(
            get(offline.url(&format!("/v2/{REPO}/blobs/{}", cosign::digest(b))))
                .await
                .status,
            200
        );
    }
}
