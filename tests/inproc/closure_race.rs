//! Issue 15, known gap: a closure walk that runs while the trust data is refreshed must not
//! leave the previous signed set's digests servable. The walk for a digest outside the closure
//! fetches manifests from the upstream (slow here, on purpose); meanwhile the tag is re-signed to
//! another image and a tag pull installs the new signed set. The walk's finds belong to the old
//! set: neither the racing request nor any later one may be served the old image by digest.

use std::path::Path;

use time::Duration;
use trustgate::config::Config;
use trustgate::trust::testkit::{TestRepo, NOW};

use crate::inproc::app::{TestApp, TestClock};
use crate::inproc::fake_upstream::{Behavior, FakeUpstream};
use crate::support::fake_notary::{self, FakeNotary};

const UPSTREAM: &str = "registry.test";
const REPO: &str = "demo/app";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// An image (config + one layer) on the fake registry; its manifest bytes and blob digests.
fn image(registry: &FakeUpstream, name: &str) -> (Vec<u8>, String, String) {
    let config = registry.add_blob(format!("{{\"config-of\":\"{name}\"}}").as_bytes());
    let layer = registry.add_blob(format!("layer of {name}").as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":1}}]}}"#
    );
    (manifest.into_bytes(), config, layer)
}

/// The repository's trust data with `latest` signed to `manifest`, every role at `version`.
fn signed(manifest: &[u8], version: u64) -> fake_notary::Files {
    let mut r = TestRepo::new(&format!("{UPSTREAM}/{REPO}"));
    r.target_files = [("latest".to_string(), manifest.to_vec())]
        .into_iter()
        .collect();
    for role in [&mut r.targets, &mut r.snapshot, &mut r.timestamp] {
        role.version = version;
    }
    fake_notary::from_source(&r.build())
}

#[tokio::test]
async fn a_walk_racing_a_trust_refresh_admits_nothing_of_the_previous_signed_set() {
    let registry = FakeUpstream::start().await;
    let (old, _, old_layer) = image(&registry, "old");
    let (new, _, _) = image(&registry, "new");
    let old_digest = registry.add_manifest(REPO, "old", MANIFEST, &old);
    registry.add_manifest(REPO, "new", MANIFEST, &new);
    let notary = FakeNotary::start(signed(&old, 1));
    let storage = tempfile::tempdir().unwrap();
    let text = format!(
        "[storage]\nmin_free = \"0\"\npath = \"{}\"\n[[upstream]]\nname = \"{UPSTREAM}\"\nurl = \"{}\"\ndefault = true\nnotary = \"{}\"\n[trust]\nrefresh = 1\n",
        storage.path().display(),
        registry.base(),
        notary.url()
    );
    let config = Config::from_toml(&text, Path::new("test.toml")).unwrap();
    let clock = TestClock::at(NOW);
    let app = TestApp::start(config, Some(&clock)).await;
    let client = reqwest::Client::new();
    let url = |rest: &str| app.url(&format!("/v2/{REPO}/{rest}"));

    // The old image's manifest answers slowly: the walk started by a pull of its layer by
    // digest is still running when the trust data changes.
    let old_path = format!("/v2/{REPO}/manifests/{old_digest}");
    registry.script(
        &old_path,
        Behavior::Delay(std::time::Duration::from_millis(1500)),
    );
    let racing = tokio::spawn(client.get(url(&format!("blobs/{old_layer}"))).send());
    // Wait until the walk is at the upstream, then re-sign `latest` to the new image and pull
    // it, which installs the new signed set (and its closure).
    for _ in 0..100 {
        if registry.count(&old_path) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        registry.count(&old_path),
        1,
        "the walk reached the upstream"
    );
    notary.replace(signed(&new, 2));
    clock.advance(Duration::seconds(2));
    let tag = client.get(url("manifests/latest")).send().await.unwrap();
    assert_eq!(tag.status(), 200);
    assert_eq!(tag.bytes().await.unwrap(), new);

    // The racing request was answered under the new signed set: the old layer is outside it.
    let racing = racing.await.unwrap().unwrap();
    assert_eq!(racing.status(), 403, "the racing pull of the old layer");
    registry.clear_script(&old_path);
    // And nothing the walk found stayed behind in the new closure.
    for rest in [
        format!("blobs/{old_layer}"),
        format!("manifests/{old_digest}"),
    ] {
        let resp = client.get(url(&rest)).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{rest}");
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("is not reachable from any signed tag"),
            "{body}"
        );
    }
}
