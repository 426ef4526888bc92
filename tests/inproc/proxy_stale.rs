//! Serving on when the upstream is gone: unenforced tags answered from the digest they last
//! resolved to, and an offline mirror that never contacts its upstream.

use crate::inproc::app::TestApp;
use crate::inproc::fake_upstream;

use std::path::Path;

use fake_upstream::FakeUpstream;

const MT: &str = "application/vnd.docker.distribution.manifest.v2+json";
const MANIFEST: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;

async fn start(text: &str) -> (String, TestApp) {
    let app = TestApp::from_toml(text, Path::new("test.toml")).await;
    (app.base.clone(), app)
}

fn config(data: &Path, url: &str, offline: bool) -> String {
    format!(
        "[storage]\nmin_free = \"0\"\npath = \"{}\"\n[[upstream]]\nname = \"registry.local\"\nurl = \"{url}\"\ndefault = true\noffline = {offline}\nconnect_timeout_secs = 1\n",
        data.display()
    )
}

async fn get(url: String) -> (u16, Vec<u8>, Option<String>) {
    let r = reqwest::get(url).await.unwrap();
    let status = r.status().as_u16();
    let digest = r
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string());
    (status, r.bytes().await.unwrap().to_vec(), digest)
}

#[tokio::test]
async fn an_unreachable_upstream_leaves_pulled_tags_servable() {
    let data = tempfile::tempdir().unwrap();
    let fake = FakeUpstream::start().await;
    let d = fake.add_manifest("team/app", "v1", MT, MANIFEST);
    let (base, _proxy) = start(&config(data.path(), &fake.base(), false)).await;
    let (status, body, digest) = get(format!("{base}/v2/team/app/manifests/v1")).await;
    assert_eq!(
        (status, body.as_slice(), digest.as_deref()),
        (200, MANIFEST, Some(d.as_str()))
    );
    // The upstream goes down (a 5xx counts as down, like a refused connection).
    let down = fake_upstream::Behavior::Status {
        status: 503,
        headers: vec![],
        body: b"down for maintenance".to_vec(),
    };
    for path in ["/v2/team/app/manifests/v1", "/v2/team/app/manifests/v2"] {
        fake.script(path, down.clone());
    }
    fake.script(&format!("/v2/team/app/manifests/{d}"), down);
    let (status, body, digest) = get(format!("{base}/v2/team/app/manifests/v1")).await;
    assert_eq!(
        (status, body.as_slice(), digest.as_deref()),
        (200, MANIFEST, Some(d.as_str()))
    );
    // A tag never pulled cannot be answered: the client learns the upstream is unreachable.
    let (status, body, _) = get(format!("{base}/v2/team/app/manifests/v2")).await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("registry.local"));
}

#[tokio::test]
async fn an_offline_mirror_never_contacts_its_upstream() {
    let data = tempfile::tempdir().unwrap();
    let fake = FakeUpstream::start().await;
    fake.add_manifest("team/app", "v1", MT, MANIFEST);
    let blob = fake.add_blob(b"layer");
    let (base, _proxy) = start(&config(data.path(), &fake.base(), true)).await;
    let (status, body, _) = get(format!("{base}/v2/team/app/manifests/v1")).await;
    assert_eq!(status, 404);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("the mirror is offline"), "{text}");
    let (status, body, _) = get(format!("{base}/v2/team/app/blobs/{blob}")).await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("BLOB_UNKNOWN"));
    assert!(
        fake.requests().is_empty(),
        "an offline upstream was contacted"
    );
}

#[tokio::test]
async fn check_store_removes_objects_that_no_longer_match_and_they_are_fetched_again() {
    let data = tempfile::tempdir().unwrap();
    let fake = FakeUpstream::start().await;
    let blob = fake.add_blob(&vec![7u8; 300_000]);
    let text = config(data.path(), &fake.base(), false);
    let (base, proxy) = start(&text).await;
    let url = format!("{base}/v2/team/app/blobs/{blob}");
    assert_eq!(get(url.clone()).await.0, 200);
    assert_eq!(fake.count(&format!("/v2/team/app/blobs/{blob}")), 1);
    // Served from disk now; then the disk goes bad under it.
    assert!(proxy
        .proxy
        .store()
        .contains(&trustgate::reference::Digest::parse(&blob).unwrap()));
    let hex = blob.trim_start_matches("sha256:");
    let file = data.path().join("blobs/sha256").join(&hex[..2]).join(hex);
    std::fs::write(&file, b"rotten").unwrap();
    let conf = data.path().join("trustgate.toml");
    std::fs::write(&conf, &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trustgate"))
        .args(["check-store", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("removed {blob}")), "{stdout}");
    assert!(!file.exists());
    // A fresh proxy over the checked store fetches it again, correctly.
    let (base, _proxy) = start(&text).await;
    let (status, body, _) = get(format!("{base}/v2/team/app/blobs/{blob}")).await;
    assert_eq!((status, body.len()), (200, 300_000));
    assert_eq!(fake.count(&format!("/v2/team/app/blobs/{blob}")), 2);
}
