//! Enforcing cosign signatures (issue 12) against the in-process fake registry: the three places
//! signatures live (the `.sig` tag, the referrers API, the `sha256-<hex>` fallback index), the
//! policy's `verifiers` and `require`, the referrers endpoint through trustgate, the remembered
//! tag map, seeding and the offline mirror, and the adversarial registries (another subject, an
//! empty fallback entry, a huge signature list, content under a signature tag). Signatures are
//! made in code (`support::cosign`).

use std::path::Path;

use crate::inproc::app::{TestApp, TestClock};
use crate::inproc::fake_upstream::FakeUpstream;
use crate::inproc::upstreams::oci_error;
use crate::support::cosign::{self, Artifact, CosignKey, Signed};

const REPO: &str = "team/app";
const REFERENCE: &str = "registry.local/team/app";

/// An image in the fake: config, one layer, the manifest.
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

/// The `.sig` tag of `img`, signed by `key`.
fn sign_sig_tag(fake: &FakeUpstream, img: &Image, key: &CosignKey) -> Artifact {
    let sig = cosign::sig_manifest(&[Signed::by(key, REFERENCE, &img.digest)]);
    put_artifact(fake, Some(&cosign::sig_tag(&img.digest)), &sig);
    sig
}

/// Configuration: the fake as `registry.local`, verifiers `acme` (and `ops` when given), and a
/// policy enforcing `verifiers` with `require`.
fn config(
    data: &Path,
    url: &str,
    offline: bool,
    keys: &[(&str, &Path)],
    verifiers: &str,
    require: Option<&str>,
) -> String {
    let mut t = format!(
        "[storage]\nmin_free = \"0\"\npath = {:?}\n[[upstream]]\nname = \"registry.local\"\nurl = \"{url}\"\ndefault = true\noffline = {offline}\nconnect_timeout_secs = 1\n",
        data.display().to_string()
    );
    for (name, key) in keys {
        t.push_str(&format!(
            "[[verifier]]\nname = \"{name}\"\nkind = \"cosign\"\nkeys = [{:?}]\n",
            key.display().to_string()
        ));
    }
    t.push_str(&format!(
        "[[policy]]\nrepositories = [\"registry.local/*\"]\ntrust = \"enforce\"\nverifiers = {verifiers}\n"
    ));
    if let Some(r) = require {
        t.push_str(&format!("require = {r}\n"));
    }
    t
}

struct Env {
    fake: FakeUpstream,
    app: TestApp,
    key: CosignKey,
    dir: tempfile::TempDir,
}

async fn env_with(fake: FakeUpstream, key: CosignKey) -> Env {
    env_with_storage(fake, key, "").await
}

/// [`env_with`], with `storage` (TOML keys) added to the `[storage]` table.
async fn env_with_storage(fake: FakeUpstream, key: CosignKey, storage: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let pub_key = key.write_public(dir.path(), "acme");
    let text = config(
        &dir.path().join("data"),
        &fake.base(),
        false,
        &[("acme", &pub_key)],
        "[\"acme\"]",
        None,
    )
    .replacen("[storage]\n", &format!("[storage]\n{storage}"), 1);
    let app = TestApp::from_toml(&text, &dir.path().join("trustgate.toml")).await;
    Env {
        fake,
        app,
        key,
        dir,
    }
}

async fn env() -> Env {
    env_with(FakeUpstream::start().await, CosignKey::generate()).await
}

struct Answer {
    status: u16,
    body: Vec<u8>,
    digest: Option<String>,
    headers: reqwest::header::HeaderMap,
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
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let digest = headers
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string());
    Answer {
        status,
        body: r.bytes().await.unwrap().to_vec(),
        digest,
        headers,
    }
}

impl Env {
    async fn manifest(&self, reference: &str) -> Answer {
        get(self.app.url(&format!("/v2/{REPO}/manifests/{reference}"))).await
    }
    async fn blob(&self, digest: &str) -> Answer {
        get(self.app.url(&format!("/v2/{REPO}/blobs/{digest}"))).await
    }
}

fn refusal(a: &Answer) -> (u16, String, String) {
    let (code, message) = oci_error(&a.body);
    (a.status, code, message)
}

#[tokio::test]
async fn a_sig_tag_signature_lets_the_image_through_and_an_unsigned_tag_is_refused() {
    let e = env().await;
    let signed = image("signed");
    put_image(&e.fake, "v1", &signed);
    let sig = sign_sig_tag(&e.fake, &signed, &e.key);
    let unsigned = image("unsigned");
    put_image(&e.fake, "v2", &unsigned);

    let a = e.manifest("v1").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.body, signed.manifest);
    assert_eq!(a.digest.as_deref(), Some(signed.digest.as_str()));
    for b in &signed.blobs {
        let got = e.blob(&cosign::digest(b)).await;
        assert_eq!((got.status, &got.body), (200, b));
    }
    // By digest too (inside the signed closure).
    assert_eq!(e.manifest(&signed.digest).await.status, 200);
    // The signature artifact is trust data: its manifest, config and payload are served.
    let m = e.manifest(&sig.digest()).await;
    assert_eq!((m.status, &m.body), (200, &sig.manifest));
    for b in &sig.blobs {
        let got = e.blob(&cosign::digest(b)).await;
        assert_eq!((got.status, &got.body), (200, b));
    }

    let (status, code, message) = refusal(&e.manifest("v2").await);
    assert_eq!((status, code.as_str()), (404, "MANIFEST_UNKNOWN"));
    assert_eq!(
        message,
        format!(
            "no cosign signature for registry.local/team/app@{}",
            unsigned.digest
        )
    );
    // Its blobs are outside the closure; its digest has no signature of its own.
    let (status, code, _) = refusal(&e.blob(&cosign::digest(&unsigned.blobs[1])).await);
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    let (status, _, message) = refusal(&e.manifest(&unsigned.digest).await);
    assert_eq!(status, 404);
    assert!(message.starts_with("no cosign signature for"), "{message}");
}

#[tokio::test]
async fn a_signature_by_another_key_names_the_verifier() {
    let e = env().await;
    let img = image("other-key");
    put_image(&e.fake, "v1", &img);
    sign_sig_tag(&e.fake, &img, &CosignKey::generate());
    let (status, code, message) = refusal(&e.manifest("v1").await);
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(
        message.contains("signature not made by any key of verifier acme"),
        "{message}"
    );
}

#[tokio::test]
async fn a_signature_over_another_digest_is_refused() {
    let e = env().await;
    let img = image("one");
    let other = image("two");
    put_image(&e.fake, "v1", &img);
    // A valid signature, by the right key, of another image, stored under this image's tag.
    let sig = cosign::sig_manifest(&[Signed::by(&e.key, REFERENCE, &other.digest)]);
    put_artifact(&e.fake, Some(&cosign::sig_tag(&img.digest)), &sig);
    let (status, _, message) = refusal(&e.manifest("v1").await);
    assert_eq!(status, 403);
    assert!(message.contains(&other.digest), "{message}");
}

#[tokio::test]
async fn signatures_are_found_through_the_referrers_api_and_listed_through_trustgate() {
    let fake = FakeUpstream::start().await;
    fake.enable_referrers(true);
    let e = env_with(fake, CosignKey::generate()).await;
    let img = image("referred");
    put_image(&e.fake, "v1", &img);
    let sig = cosign::referrer_manifest(
        &img.digest,
        img.manifest.len(),
        &[Signed::by(&e.key, REFERENCE, &img.digest)],
    );
    put_artifact(&e.fake, None, &sig);

    let a = e.manifest("v1").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert!(
        e.fake
            .count(&format!("/v2/{REPO}/referrers/{}", img.digest))
            > 0
    );

    // Discovery through trustgate: the list, filtered, and the artifact it names.
    let list = get(e.app.url(&format!("/v2/{REPO}/referrers/{}", img.digest))).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.headers["content-type"], cosign::OCI_INDEX);
    let v: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(v["manifests"][0]["digest"], sig.digest());
    assert_eq!(
        v["manifests"][0]["artifactType"],
        cosign::COSIGN_SIG_ARTIFACT
    );
    let filtered = get(e.app.url(&format!(
        "/v2/{REPO}/referrers/{}?artifactType=application%2Fspdx%2Bjson",
        img.digest
    )))
    .await;
    assert_eq!(filtered.headers["oci-filters-applied"], "artifactType");
    let v: serde_json::Value = serde_json::from_slice(&filtered.body).unwrap();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 0);
    // The signature artifact and its payload are trust data: served under enforce.
    let m = e.manifest(&sig.digest()).await;
    assert_eq!((m.status, &m.body), (200, &sig.manifest));
    let payload = e.blob(&cosign::digest(&sig.blobs[1])).await;
    assert_eq!((payload.status, &payload.body), (200, &sig.blobs[1]));
}

/// cosign 3's layout: a Sigstore bundle as a referrer, found through the referrers API and
/// handed to the verifier, which decides (a keyed bundle with neither a log entry nor a trusted
/// timestamp has no verified signing time: refused, naming why; a bundle attached to another
/// image than it signs is refused naming both).
#[tokio::test]
async fn bundles_found_through_the_referrers_api_reach_the_verifier() {
    let fake = FakeUpstream::start().await;
    fake.enable_referrers(true);
    let e = env_with(fake, CosignKey::generate()).await;
    let img = image("bundled");
    put_image(&e.fake, "v1", &img);
    let other = image("not-bundled");
    put_image(&e.fake, "v2", &other);
    let bundle = cosign::keyed_bundle(&e.key, &img.manifest);
    put_artifact(
        &e.fake,
        None,
        &cosign::bundle_referrer(&img.digest, img.manifest.len(), &bundle),
    );
    put_artifact(
        &e.fake,
        None,
        &cosign::bundle_referrer(&other.digest, other.manifest.len(), &bundle),
    );
    let (status, code, message) = refusal(&e.manifest("v1").await);
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(
        message.contains("acme: no verified signing time"),
        "{message}"
    );
    let (status, _, message) = refusal(&e.manifest("v2").await);
    assert_eq!(status, 403, "{message}");
    assert!(
        message.contains(&other.digest) && message.contains(&img.digest),
        "{message}"
    );
}

/// kyverno#16664: cosign 3's fallback entries carry the empty type as `artifactType`; the layer's
/// media type is what tells a signature.
#[tokio::test]
async fn the_fallback_index_is_read_by_layer_type_and_served_as_a_referrers_list() {
    let e = env().await;
    let img = image("fallback");
    put_image(&e.fake, "v1", &img);
    let sig = cosign::referrer_manifest(
        &img.digest,
        img.manifest.len(),
        &[Signed::by(&e.key, REFERENCE, &img.digest)],
    );
    put_artifact(&e.fake, None, &sig);
    let index = cosign::fallback_index(&[(&sig, cosign::EMPTY)]);
    e.fake.add_manifest(
        REPO,
        &cosign::fallback_tag(&img.digest),
        cosign::OCI_INDEX,
        &index,
    );

    let a = e.manifest("v1").await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    // The fake has no referrers API: trustgate builds the list from the fallback tag, with the
    // artifact's own type.
    let list = get(e.app.url(&format!(
        "/v2/{REPO}/referrers/{}?artifactType={}",
        img.digest,
        cosign::COSIGN_SIG_ARTIFACT
            .replace('/', "%2F")
            .replace('+', "%2B")
    )))
    .await;
    assert_eq!(list.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(v["manifests"][0]["digest"], sig.digest());
    assert_eq!(
        v["manifests"][0]["artifactType"],
        cosign::COSIGN_SIG_ARTIFACT
    );
    // The fallback tag itself is served (trust data), as the upstream has it.
    let t = e.manifest(&cosign::fallback_tag(&img.digest)).await;
    assert_eq!((t.status, &t.body), (200, &index));
}

#[tokio::test]
async fn a_referrer_naming_another_subject_does_not_sign() {
    let e = env().await;
    let img = image("subject");
    let other = image("elsewhere");
    put_image(&e.fake, "v1", &img);
    // Signed correctly for THIS image, but the manifest says it is about another one.
    let sig = cosign::referrer_manifest(
        &other.digest,
        other.manifest.len(),
        &[Signed::by(&e.key, REFERENCE, &img.digest)],
    );
    put_artifact(&e.fake, None, &sig);
    let index = cosign::fallback_index(&[(&sig, cosign::COSIGN_SIG_ARTIFACT)]);
    e.fake.add_manifest(
        REPO,
        &cosign::fallback_tag(&img.digest),
        cosign::OCI_INDEX,
        &index,
    );
    let (status, _, message) = refusal(&e.manifest("v1").await);
    assert_eq!(status, 404);
    assert_eq!(
        message,
        format!(
            "no cosign signature for registry.local/team/app@{} (set aside: fallback-tag referrer {} names subject {}, not {})",
            img.digest,
            sig.digest(),
            other.digest,
            img.digest
        )
    );
}

#[tokio::test]
async fn an_empty_fallback_entry_is_no_signature() {
    let e = env().await;
    let img = image("empty-entry");
    put_image(&e.fake, "v1", &img);
    let empty = cosign::referrer_manifest(&img.digest, img.manifest.len(), &[]);
    put_artifact(&e.fake, None, &empty);
    let index = cosign::fallback_index(&[(&empty, cosign::EMPTY)]);
    e.fake.add_manifest(
        REPO,
        &cosign::fallback_tag(&img.digest),
        cosign::OCI_INDEX,
        &index,
    );
    let (status, _, message) = refusal(&e.manifest("v1").await);
    assert_eq!(status, 404);
    assert!(message.contains("holds no signature layer"), "{message}");
}

#[tokio::test]
async fn a_huge_signature_list_is_refused_not_read() {
    let fake = FakeUpstream::start().await;
    fake.enable_referrers(true);
    let e = env_with(fake, CosignKey::generate()).await;
    let img = image("huge");
    put_image(&e.fake, "v1", &img);
    let path = format!("/v2/{REPO}/referrers/{}", img.digest);
    // 129 entries: over the count bound.
    let entries: Vec<serde_json::Value> = (0..129)
        .map(|i: u32| serde_json::json!({"mediaType": cosign::OCI_MANIFEST, "digest": cosign::digest(&i.to_le_bytes()), "size": 1}))
        .collect();
    let body =
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": entries})).unwrap();
    let json = vec![("Content-Type".to_string(), cosign::OCI_INDEX.to_string())];
    e.fake.script(
        &path,
        crate::inproc::fake_upstream::Behavior::Status {
            status: 200,
            headers: json.clone(),
            body,
        },
    );
    let (status, code, message) = refusal(&e.manifest("v1").await);
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert_eq!(
        message,
        format!(
            "the referrers list of {} lists more than 128 entries; refused (a signature list is bounded)",
            img.digest
        )
    );
    // Over the byte bound: refused by its Content-Length, never read.
    e.fake.script(
        &path,
        crate::inproc::fake_upstream::Behavior::Status {
            status: 200,
            headers: json,
            body: vec![b' '; 2 * 1024 * 1024],
        },
    );
    let (status, _, message) = refusal(&e.manifest("v1").await);
    assert_eq!(status, 403);
    assert!(
        message.contains("larger than the limit of 1048576 bytes"),
        "{message}"
    );
    // An endless list (no Content-Length, never ends): read up to the bound, then refused.
    e.fake.script(
        &path,
        crate::inproc::fake_upstream::Behavior::Endless {
            headers: vec![("Content-Type".to_string(), cosign::OCI_INDEX.to_string())],
            chunk: br#"{"schemaVersion":2,"manifests":["#.repeat(64),
        },
    );
    let (status, _, message) = refusal(&e.manifest("v1").await);
    assert_eq!(status, 403);
    assert!(
        message.contains("larger than the limit of 1048576 bytes"),
        "{message}"
    );
}

#[tokio::test]
async fn an_image_under_a_signature_tag_is_not_trust_data() {
    let e = env().await;
    let img = image("real");
    put_image(&e.fake, "v1", &img);
    // Someone pushes a runnable image under the image's `.sig` tag.
    let smuggled = image("smuggled");
    put_image(&e.fake, &cosign::sig_tag(&img.digest), &smuggled);
    let (status, _, message) = refusal(&e.manifest(&cosign::sig_tag(&img.digest)).await);
    assert_eq!(status, 404);
    assert!(
        message.starts_with(&format!(
            "no cosign signature for registry.local/team/app@{}",
            smuggled.digest
        )),
        "{message}"
    );
    let (status, _, _) = refusal(&e.blob(&cosign::digest(&smuggled.blobs[1])).await);
    assert_eq!(status, 403);
}

#[tokio::test]
async fn require_counts_the_verifiers_that_accept() {
    let fake = FakeUpstream::start().await;
    let (acme, ops) = (CosignKey::generate(), CosignKey::generate());
    let img = image("two-keys");
    put_image(&fake, "v1", &img);
    sign_sig_tag(&fake, &img, &acme);
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        ("acme", acme.write_public(dir.path(), "acme")),
        ("ops", ops.write_public(dir.path(), "ops")),
    ];
    let keys: Vec<(&str, &Path)> = keys.iter().map(|(n, p)| (*n, p.as_path())).collect();
    for (require, want) in [
        (None, 200),
        (Some("\"any\""), 200),
        (Some("1"), 200),
        (Some("\"all\""), 403),
        (Some("2"), 403),
    ] {
        let data = tempfile::tempdir().unwrap();
        let text = config(
            data.path(),
            &fake.base(),
            false,
            &keys,
            "[\"acme\", \"ops\"]",
            require,
        );
        let app = TestApp::from_toml(&text, &dir.path().join("t.toml")).await;
        let a = get(app.url(&format!("/v2/{REPO}/manifests/v1"))).await;
        assert_eq!(a.status, want, "require = {require:?}");
        if want == 403 {
            let (_, _, message) = refusal(&a);
            assert_eq!(
                message,
                format!("2 verifiers must accept registry.local/team/app@{}, 1 did (acme): ops: signature not made by any key of verifier ops", img.digest)
            );
        }
    }
}

#[tokio::test]
async fn a_tag_moving_back_to_an_older_signed_digest_is_counted() {
    let fake = FakeUpstream::start().await;
    let key = CosignKey::generate();
    let (old, new) = (image("old"), image("new"));
    for img in [&old, &new] {
        for b in &img.blobs {
            fake.add_blob(b);
        }
        fake.add_untagged_manifest(REPO, cosign::OCI_MANIFEST, &img.manifest);
        sign_sig_tag(&fake, img, &key);
    }
    let dir = tempfile::tempdir().unwrap();
    let pub_key = key.write_public(dir.path(), "acme");
    let text = config(
        &dir.path().join("data"),
        &fake.base(),
        false,
        &[("acme", &pub_key)],
        "[\"acme\"]",
        None,
    );
    let config = trustgate::config::Config::from_toml(&text, Path::new("t.toml")).unwrap();
    let clock = TestClock::real();
    let app = TestApp::start(config, Some(&clock)).await;
    let moved_back = || async {
        let text = reqwest::get(format!("{}/metrics", app.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| {
                l.starts_with("trustgate_signed_tag_moved_back_total{upstream=\"registry.local\"}")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = moved_back().await;
    let pull = |img: &Image| {
        fake.add_manifest(REPO, "v1", cosign::OCI_MANIFEST, &img.manifest);
        let url = app.url(&format!("/v2/{REPO}/manifests/v1"));
        async move { get(url).await }
    };
    assert_eq!(
        pull(&old).await.digest.as_deref(),
        Some(old.digest.as_str())
    );
    // Within `[trust] refresh` the tag's digest is reused: the upstream is not asked again.
    let a = pull(&new).await;
    assert_eq!(a.digest.as_deref(), Some(old.digest.as_str()));
    clock.advance(time::Duration::seconds(61));
    assert_eq!(
        pull(&new).await.digest.as_deref(),
        Some(new.digest.as_str())
    );
    assert_eq!(moved_back().await, before);
    clock.advance(time::Duration::seconds(61));
    // Back to the old (still validly signed) digest: served, but logged and counted.
    assert_eq!(
        pull(&old).await.digest.as_deref(),
        Some(old.digest.as_str())
    );
    assert_eq!(moved_back().await, before + 1);
}

/// The upstream goes down after a pull: a fresh process (no verdict held) verifies the tag's
/// last digest again from the signatures it stored, and serves it.
#[tokio::test]
async fn while_the_upstream_is_down_stored_signatures_are_verified_again() {
    let e = env().await;
    let img = image("stale");
    put_image(&e.fake, "v1", &img);
    sign_sig_tag(&e.fake, &img, &e.key);
    assert_eq!(e.manifest("v1").await.status, 200);
    let down = crate::inproc::fake_upstream::Behavior::Status {
        status: 503,
        headers: vec![],
        body: b"down".to_vec(),
    };
    for path in [
        format!("/v2/{REPO}/manifests/v1"),
        format!("/v2/{REPO}/manifests/{}", cosign::sig_tag(&img.digest)),
        format!("/v2/{REPO}/manifests/{}", cosign::fallback_tag(&img.digest)),
        format!("/v2/{REPO}/referrers/{}", img.digest),
    ] {
        e.fake.script(&path, down.clone());
    }
    let config = e.app.config.clone();
    drop(e.app);
    let fresh = TestApp::start(config, None).await;
    let a = get(fresh.url(&format!("/v2/{REPO}/manifests/v1"))).await;
    assert_eq!(
        (a.status, &a.body),
        (200, &img.manifest),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
}

/// A seed the store cannot keep (here `max_size` is below the image) fails and says why,
/// instead of a mirror found empty once it is cut off.
#[tokio::test]
async fn a_seed_the_store_cannot_keep_fails_naming_why() {
    let e = env_with_storage(
        FakeUpstream::start().await,
        CosignKey::generate(),
        "max_size = \"8\"\n",
    )
    .await;
    let img = image("unkept");
    put_image(&e.fake, "v1", &img);
    sign_sig_tag(&e.fake, &img, &e.key);
    let err = trustgate::seed::seed_image(&e.app.proxy, "team/app:v1", &Default::default(), &())
        .await
        .expect_err("nothing was kept: the seed must fail");
    assert!(
        err.contains("did not keep") && err.contains("larger than storage.max_size"),
        "{err}"
    );
    // Served all the same: a pull through the gateway gets the signed image.
    let a = get(e.app.url(&format!("/v2/{REPO}/manifests/v1"))).await;
    assert_eq!((a.status, &a.body), (200, &img.manifest));
}

#[tokio::test]
async fn seeded_signatures_are_verified_again_by_an_offline_mirror() {
    let e = env().await;
    let img = image("seeded");
    put_image(&e.fake, "v1", &img);
    sign_sig_tag(&e.fake, &img, &e.key);
    let unsigned = image("never-seeded");
    put_image(&e.fake, "v2", &unsigned);
    let report = trustgate::seed::seed_image(&e.app.proxy, "team/app:v1", &Default::default(), &())
        .await
        .unwrap_or_else(|m| panic!("seed: {m}"));
    assert_eq!(report.digest.as_deref(), Some(img.digest.as_str()));
    // The same storage, the upstream gone and `offline = true`.
    let data = e.dir.path().join("data");
    let pub_key = e.dir.path().join("acme.pub");
    drop(e.app);
    drop(e.fake);
    let text = config(
        &data,
        "http://127.0.0.1:9",
        true,
        &[("acme", &pub_key)],
        "[\"acme\"]",
        None,
    );
    let offline = TestApp::from_toml(&text, Path::new("offline.toml")).await;
    let a = get(offline.url(&format!("/v2/{REPO}/manifests/v1"))).await;
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
    // Verified from the store, not remembered: a fresh process held no verdict.
    let (status, _, message) =
        refusal(&get(offline.url(&format!("/v2/{REPO}/manifests/v2"))).await);
    assert_eq!(status, 404);
    assert!(message.contains("never resolved through it"), "{message}");
}

/// Keyless (issue 12): a `.sig` signature by a Fulcio-style certificate with its Rekor SET,
/// seeded while connected, then verified again from the store by an offline mirror: chain to
/// the trusted root's CA, SCT, SET and the certificate's validity at the integrated time, with no
/// network at all (the upstream is gone, the Sigstore is only a trusted_root.json file).
#[tokio::test]
async fn a_keyless_signature_is_seeded_and_verified_offline_with_no_network() {
    use base64::Engine as _;
    use std::time::{Duration, SystemTime};
    let sigstore = crate::cosign_support::Sigstore::new();
    let fake = FakeUpstream::start().await;
    let img = image("keyless");
    put_image(&fake, "v1", &img);
    let issued = SystemTime::now() - Duration::from_secs(600);
    let leaf = sigstore.leaf("alice@example.com", "https://accounts.example.test", issued);
    let payload = cosign::payload(REFERENCE, &img.digest);
    let raw = crate::cosign_support::sign(&leaf.key, &payload);
    let rekor_bundle = sigstore.rekor_bundle(
        &sigstore.rekor,
        &payload,
        &raw,
        &leaf.pem,
        issued + Duration::from_secs(60),
    );
    let signed = Signed {
        payload,
        signature: base64::engine::general_purpose::STANDARD.encode(&raw),
        certificate: Some(leaf.pem.clone()),
        chain: None,
        rekor_bundle: Some(rekor_bundle),
    };
    let sig = cosign::sig_manifest(&[signed]);
    put_artifact(&fake, Some(&cosign::sig_tag(&img.digest)), &sig);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("trusted_root.json");
    std::fs::write(&root, sigstore.trusted_root()).unwrap();
    let data = dir.path().join("data");
    let text = |url: &str, offline: bool, subject: &str| {
        format!(
            "[storage]\nmin_free = \"0\"\npath = {:?}\n[[upstream]]\nname = \"registry.local\"\nurl = \"{url}\"\ndefault = true\noffline = {offline}\nconnect_timeout_secs = 1\n\
             [[verifier]]\nname = \"ci\"\nkind = \"cosign\"\nidentities = [{{ issuer = \"https://accounts.example.test\", subject = \"{subject}\" }}]\ntrusted_root = {:?}\n\
             [[policy]]\nrepositories = [\"registry.local/*\"]\ntrust = \"enforce\"\nverifiers = [\"ci\"]\n",
            data.display().to_string(),
            root.display().to_string()
        )
    };
    // Another identity is refused, naming it.
    let other = TestApp::from_toml(
        &text(&fake.base(), false, "mallory@example.com"),
        &dir.path().join("other.toml"),
    )
    .await;
    let (status, _, message) = refusal(&get(other.url(&format!("/v2/{REPO}/manifests/v1"))).await);
    assert_eq!(status, 403);
    assert!(message.contains("alice@example.com"), "{message}");
    drop(other);

    let online = TestApp::from_toml(
        &text(&fake.base(), false, "alice@example.com"),
        &dir.path().join("t.toml"),
    )
    .await;
    let report =
        trustgate::seed::seed_image(&online.proxy, "team/app:v1", &Default::default(), &())
            .await
            .unwrap_or_else(|m| panic!("seed: {m}"));
    assert_eq!(report.digest.as_deref(), Some(img.digest.as_str()));
    drop(online);
    drop(fake);
    let offline = TestApp::from_toml(
        &text("http://127.0.0.1:9", true, "alice@example.com"),
        &dir.path().join("offline.toml"),
    )
    .await;
    let a = get(offline.url(&format!("/v2/{REPO}/manifests/v1"))).await;
    assert_eq!(
        (a.status, &a.body),
        (200, &img.manifest),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    for b in &img.blobs {
        let got = get(offline.url(&format!("/v2/{REPO}/blobs/{}", cosign::digest(b)))).await;
        assert_eq!((got.status, &got.body), (200, b));
    }
}
