//! Trust enforcement end to end, in process, over the golden vectors made by the real `notary`
//! CLI (tests/data/golden): a fake registry serves the images, a fake Notary server with
//! Docker-style token auth serves the recorded trust data, and the clock is injected so the
//! 14-day timestamps can be verified and expired at will. The interop tests do the same against
//! the real notary-server and clients (tests/interop_trust.rs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;
use trustgate::config::Config;
use trustgate::proxy::Proxy;

use crate::inproc::app::{TestApp, TestClock};
use crate::inproc::fake_upstream::{self, FakeUpstream};
use crate::support::fake_notary::{self, FakeNotary};

fn golden(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(scenario)
}

fn expected(scenario: &str) -> serde_json::Value {
    let text = std::fs::read(golden(scenario).join("expected.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

/// A scenario served by a fake registry + the fake Notary (token auth, the scenario's GUN), and
/// the app in-process on a clock the test moves.
struct Rig {
    _storage: tempfile::TempDir,
    registry: FakeUpstream,
    notary: FakeNotary,
    clock: TestClock,
    app: TestApp,
    repo: String,
    config: Config,
}

/// Past `[trust] refresh = 1`: the next request verifies the trust data again.
const PAST_REFRESH: time::Duration = time::Duration::seconds(2);

impl Rig {
    async fn start(scenario: &str, extra_config: &str) -> Rig {
        let exp = expected(scenario);
        let gun = exp["gun"].as_str().unwrap().to_string();
        let (host, repo) = gun.split_once('/').unwrap();
        let registry = FakeUpstream::start().await;
        for (file, meta) in exp["manifests"].as_object().unwrap() {
            let bytes = std::fs::read(golden(scenario).join(file)).unwrap();
            let tag = meta["tag"].as_str().unwrap_or("untagged");
            let media = meta["media_type"].as_str().unwrap();
            registry.add_manifest(repo, tag, media, &bytes);
        }
        for entry in std::fs::read_dir(golden(scenario).join("blobs/sha256")).unwrap() {
            registry.add_blob(&std::fs::read(entry.unwrap().path()).unwrap());
        }
        let states = exp["states"].as_array().unwrap();
        let first = golden(scenario).join(states[0].as_str().unwrap());
        let notary = FakeNotary::with_token_auth(&gun, fake_notary::from_dir(&first));
        let storage = tempfile::tempdir().unwrap();
        let text = format!(
            "[storage]\nmin_free = \"0\"\npath = \"{}\"\n[[upstream]]\nname = \"{host}\"\nurl = \"{}\"\ndefault = true\nnotary = \"{}\"\n{extra_config}",
            storage.path().display(),
            registry.base(),
            notary.url()
        );
        let config = Config::from_toml(&text, Path::new("test.toml")).unwrap();
        let verify_at = OffsetDateTime::parse(
            exp["verify_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let clock = TestClock::at(verify_at);
        let app = TestApp::start(config.clone(), Some(&clock)).await;
        Rig {
            _storage: storage,
            registry,
            notary,
            clock,
            app,
            repo: repo.to_string(),
            config,
        }
    }

    fn url(&self, rest: &str) -> String {
        self.app.url(&format!("/v2/{}/{rest}", self.repo))
    }

    async fn get(&self, rest: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(rest))
            .send()
            .await
            .unwrap()
    }

    /// A fresh app over the same storage and clock (a restart).
    async fn restart(&mut self) {
        let fresh = TestApp::start(self.config.clone(), Some(&self.clock)).await;
        std::mem::replace(&mut self.app, fresh).shutdown().await;
    }

    fn advance(&self, by: time::Duration) {
        self.clock.advance(by);
    }

    /// Moves the clock past the refresh interval.
    fn past_refresh(&self) {
        self.advance(PAST_REFRESH);
    }
}

async fn json(resp: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let v = json(resp).await;
    (
        status,
        v["errors"][0]["code"].as_str().unwrap_or("").to_string(),
        v["errors"][0]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn signed_tags_are_served_by_their_signed_digest_and_the_tag_is_never_asked_upstream() {
    let rig = Rig::start("basic", "").await;
    let exp = expected("basic");
    for (tag, t) in exp["tags"].as_object().unwrap() {
        let resp = rig.get(&format!("manifests/{tag}")).await;
        assert_eq!(resp.status(), 200, "{tag}");
        let digest = format!("sha256:{}", t["sha256"].as_str().unwrap());
        assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());
        assert_eq!(
            resp.headers()["content-type"],
            t["media_type"].as_str().unwrap()
        );
        let body = resp.bytes().await.unwrap();
        assert_eq!(body.len() as u64, t["length"].as_u64().unwrap());
        assert_eq!(fake_upstream::digest(&body), digest);
        // HEAD runs the same check and answers the same facts.
        let head = reqwest::Client::new()
            .head(rig.url(&format!("manifests/{tag}")))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(head.headers()["docker-content-digest"], digest.as_str());
        assert_eq!(
            head.headers()["content-length"],
            t["length"].to_string().as_str()
        );
        assert_eq!(
            rig.registry
                .count(&format!("/v2/{}/manifests/{tag}", rig.repo)),
            0,
            "the registry must never be asked for the tag {tag}"
        );
    }
    // Docker's token flow against the Notary server, scoped to the GUN (host included).
    assert!(rig
        .notary
        .scopes()
        .iter()
        .any(|s| s == "repository:127.0.0.1:5000/golden/basic:pull"));
}

#[tokio::test]
async fn unsigned_tags_and_repositories_without_trust_data_are_refused_in_dockers_words() {
    let rig = Rig::start("basic", "").await;
    let (status, code, message) = error_of(rig.get("manifests/unsigned").await).await;
    assert_eq!((status, code.as_str()), (404, "MANIFEST_UNKNOWN"));
    assert_eq!(message, "No valid trust data for unsigned");
    // Nothing was fetched from the registry for the refused tag.
    assert_eq!(rig.registry.requests().len(), 0);

    // A repository the Notary server knows nothing about.
    let other = rig.app.url("/v2/golden/none/manifests/v1");
    let (status, code, message) = error_of(reqwest::get(other).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "MANIFEST_UNKNOWN"));
    let notary_host = rig.notary.host();
    assert_eq!(
        message,
        format!("remote trust data does not exist for 127.0.0.1:5000/golden/none: {notary_host} does not have trust data for 127.0.0.1:5000/golden/none")
    );
}

#[tokio::test]
async fn docker_searches_targets_releases_first() {
    let rig = Rig::start("releases", "").await;
    let exp = expected("releases");
    for tag in ["v1", "shadowed", "base-only"] {
        let resp = rig.get(&format!("manifests/{tag}")).await;
        assert_eq!(resp.status(), 200, "{tag}");
        let want = format!("sha256:{}", exp["tags"][tag]["sha256"].as_str().unwrap());
        assert_eq!(
            resp.headers()["docker-content-digest"],
            want.as_str(),
            "{tag}"
        );
    }
}

#[tokio::test]
async fn a_policy_can_require_a_signer_role() {
    let rig = Rig::start(
        "releases",
        "[[policy]]\nrepositories = [\"127.0.0.1:5000/golden/*\"]\ntrust = \"enforce\"\nsigners = [\"targets/releases\"]\n",
    )
    .await;
    assert_eq!(rig.get("manifests/v1").await.status(), 200);
    let (status, _, message) = error_of(rig.get("manifests/base-only").await).await;
    assert_eq!(status, 404);
    assert!(
        message.contains("required signer targets/releases"),
        "{message}"
    );
}

#[tokio::test]
async fn digests_are_served_only_inside_the_signed_closure() {
    let rig = Rig::start("multiarch", "").await;
    let exp = expected("multiarch");
    // Before any tag was pulled: the index's children are still reachable (the closure is built
    // from the signed targets on demand), through a fresh proxy as after a restart.
    let index = rig.get("manifests/multi").await;
    assert_eq!(index.status(), 200);
    let index_bytes = index.bytes().await.unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&index_bytes).unwrap();
    for child in parsed["manifests"].as_array().unwrap() {
        let d = child["digest"].as_str().unwrap();
        let resp = rig.get(&format!("manifests/{d}")).await;
        assert_eq!(resp.status(), 200, "child {d}");
        let manifest = json(resp).await;
        for blob in
            std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap())
        {
            let bd = blob["digest"].as_str().unwrap();
            let b = rig.get(&format!("blobs/{bd}")).await;
            assert_eq!(b.status(), 200, "blob {bd}");
            assert_eq!(fake_upstream::digest(&b.bytes().await.unwrap()), bd);
        }
    }
    // A manifest of this repository that no signed tag reaches.
    let unsigned = exp["manifests"]
        .as_object()
        .unwrap()
        .values()
        .find(|m| m["tag"] == "unsigned")
        .map(|m| m["digest"].as_str().unwrap().to_string());
    if let Some(d) = unsigned {
        let (status, code, message) = error_of(rig.get(&format!("manifests/{d}")).await).await;
        assert_eq!((status, code.as_str()), (403, "DENIED"));
        assert!(
            message.contains("not reachable from any signed tag"),
            "{message}"
        );
    }
    let stray = rig.registry.add_blob(b"not part of any signed image");
    let (status, code, _) = error_of(rig.get(&format!("blobs/{stray}")).await).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert_eq!(
        rig.registry
            .count(&format!("/v2/{}/blobs/{stray}", rig.repo)),
        0
    );
}

#[tokio::test]
async fn closure_rule_can_be_switched_off() {
    let rig = Rig::start(
        "basic",
        "[[policy]]\nrepositories = [\"127.0.0.1:5000/golden/basic\"]\ntrust = \"enforce\"\nrequire_signed_closure = false\n",
    )
    .await;
    let stray = rig.registry.add_blob(b"any content-addressed blob");
    assert_eq!(rig.get(&format!("blobs/{stray}")).await.status(), 200);
}

#[tokio::test]
async fn tag_lists_show_signed_tags_only() {
    let rig = Rig::start("basic", "").await;
    rig.registry
        .set_tags(&rig.repo, &["latest", "unsigned", "v1", "v2"]);
    let v = json(rig.get("tags/list").await).await;
    assert_eq!(v["tags"], serde_json::json!(["latest", "v1", "v2"]));
    let page = rig.get("tags/list?n=1&last=latest").await;
    let link = page.headers()["link"].to_str().unwrap().to_string();
    let v = json(page).await;
    assert_eq!(v["tags"], serde_json::json!(["v1"]));
    assert!(link.contains("last=v1") && link.contains("n=1"), "{link}");
}

#[tokio::test]
async fn expired_trust_data_is_refused_with_the_expiry_message() {
    let rig = Rig::start("basic", "[trust]\nrefresh = 1\n").await;
    assert_eq!(rig.get("manifests/v1").await.status(), 200);
    rig.advance(time::Duration::days(15));
    rig.past_refresh();
    let (status, code, message) = error_of(rig.get("manifests/v1").await).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(
        message.starts_with(
            "remote repository 127.0.0.1:5000/golden/basic out-of-date: timestamp expired at"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_notary_is_bridged_by_verified_data_until_it_expires() {
    let mut rig = Rig::start("basic", "[trust]\nrefresh = 1\n").await;
    assert_eq!(rig.get("manifests/v1").await.status(), 200);
    rig.notary.take_down(); // 503 from now on
                            // A restart loses the memory cache: the persisted state is re-verified offline.
    rig.restart().await;
    assert_eq!(rig.get("manifests/v2").await.status(), 200);
    rig.advance(time::Duration::days(15));
    rig.past_refresh();
    let (status, _, message) = error_of(rig.get("manifests/v1").await).await;
    assert_eq!(status, 403);
    assert!(
        message.contains("out-of-date: timestamp expired at"),
        "{message}"
    );
}

#[tokio::test]
async fn a_proper_root_rotation_is_followed_without_a_reset() {
    let rig = Rig::start("rotated", "[trust]\nrefresh = 1\n").await;
    let exp = expected("rotated");
    assert_eq!(rig.get("manifests/v1").await.status(), 200);
    rig.notary
        .replace(fake_notary::from_dir(&golden("rotated").join("state2")));
    rig.past_refresh();
    let resp = rig.get("manifests/latest").await;
    assert_eq!(resp.status(), 200);
    let want = format!(
        "sha256:{}",
        exp["tags"]["latest"]["sha256"].as_str().unwrap()
    );
    assert_eq!(resp.headers()["docker-content-digest"], want.as_str());
}

#[tokio::test]
async fn recreated_trust_data_is_refused_until_the_pins_are_reset() {
    let rig = Rig::start("recreated", "[trust]\nrefresh = 1\n").await;
    let exp = expected("recreated");
    let tag = exp["tags"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let first_tag = exp["by_state"]["state1"]["tags"]
        .as_object()
        .and_then(|t| t.keys().next().cloned())
        .unwrap_or(tag.clone());
    assert_eq!(
        rig.get(&format!("manifests/{first_tag}")).await.status(),
        200
    );
    rig.notary
        .replace(fake_notary::from_dir(&golden("recreated").join("state2")));
    rig.past_refresh();
    let (status, code, message) = error_of(rig.get(&format!("manifests/{tag}")).await).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(
        message.contains("trustgate trust reset 127.0.0.1:5000/golden/recreated"),
        "{message}"
    );
    assert!(rig
        .app
        .proxy
        .trust()
        .store()
        .reset("127.0.0.1:5000/golden/recreated")
        .unwrap());
    rig.past_refresh();
    assert_eq!(rig.get(&format!("manifests/{tag}")).await.status(), 200);
}

#[tokio::test]
async fn a_replayed_older_timestamp_is_refused_as_rollback() {
    let rig = Rig::start("rotated", "[trust]\nrefresh = 1\n").await;
    // Pin the newer state first, then let the server replay the older one.
    rig.notary
        .replace(fake_notary::from_dir(&golden("rotated").join("state2")));
    assert_eq!(rig.get("manifests/latest").await.status(), 200);
    rig.notary
        .replace(fake_notary::from_dir(&golden("rotated").join("state1")));
    rig.past_refresh();
    let (status, code, message) = error_of(rig.get("manifests/latest").await).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(
        message.contains("potential malicious behavior"),
        "{message}"
    );
}

#[tokio::test]
async fn tampered_manifest_bytes_are_refused_and_not_cached() {
    let rig = Rig::start("basic", "").await;
    let exp = expected("basic");
    let digest = format!("sha256:{}", exp["tags"]["v1"]["sha256"].as_str().unwrap());
    // The registry now answers other bytes for the signed digest.
    rig.registry.script(
        &format!("/v2/{}/manifests/{digest}", rig.repo),
        fake_upstream::Behavior::Status {
            status: 200,
            headers: vec![(
                "content-type".into(),
                "application/vnd.docker.distribution.manifest.v2+json".into(),
            )],
            body: b"{\"schemaVersion\":2,\"evil\":true}".to_vec(),
        },
    );
    let (status, code, message) = error_of(rig.get("manifests/v1").await).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(message.contains("possible tampering"), "{message}");
    // Once the registry is honest again the signed bytes are served: nothing bad was cached.
    rig.registry
        .clear_script(&format!("/v2/{}/manifests/{digest}", rig.repo));
    let resp = rig.get("manifests/v1").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["docker-content-digest"], digest.as_str());
}

#[tokio::test]
async fn audit_mode_serves_unsigned_tags_and_counts_them() {
    let rig = Rig::start(
        "basic",
        "[[policy]]\nrepositories = [\"127.0.0.1:5000/golden/*\"]\ntrust = \"audit\"\n",
    )
    .await;
    assert_eq!(rig.get("manifests/unsigned").await.status(), 200);
    assert_eq!(rig.app.proxy.audit_would_refuse(), 1);
    assert_eq!(rig.get("manifests/v1").await.status(), 200);
    assert_eq!(rig.app.proxy.audit_would_refuse(), 1);
}

#[tokio::test]
async fn a_client_that_does_not_accept_the_signed_type_gets_a_clear_404() {
    let rig = Rig::start("multiarch", "").await;
    let resp = reqwest::Client::new()
        .get(rig.url("manifests/multi"))
        .header(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (404, "MANIFEST_UNKNOWN"));
    assert!(message.contains("never converts"), "{message}");
}

impl Rig {
    /// A second proxy over the same storage and clock with this upstream marked offline.
    async fn offline_proxy(&self, grace: &str) -> Arc<Proxy> {
        let up = &self.config.upstreams[0];
        let text = format!(
            "[storage]\nmin_free = \"0\"\npath = \"{}\"\n[trust]\noffline_grace = \"{grace}\"\n[[upstream]]\nname = \"{}\"\nurl = \"http://127.0.0.1:9\"\ndefault = true\noffline = true\n",
            self.config.storage.path.display(),
            up.name
        );
        let config = Config::from_toml(&text, Path::new("offline.toml")).unwrap();
        Proxy::with_clock(&config, self.clock.clock())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn an_offline_mirror_verifies_stored_trust_data_and_honours_the_grace_period() {
    let rig = Rig::start("basic", "").await;
    assert_eq!(rig.get("manifests/v1").await.status(), 200);
    let image = "golden/basic:v1";
    // Offline, within the timestamp's validity: verified from the stored data alone.
    let offline = rig.offline_proxy("0").await;
    let report = offline.inspect(image).await.unwrap();
    assert!(report.tag.unwrap().1.is_ok());
    // Past the timestamp's expiry, no grace: refused with the expiry reason.
    rig.advance(time::Duration::days(15));
    let offline = rig.offline_proxy("0").await;
    let e = offline.inspect(image).await.err().unwrap();
    assert!(
        e.message.contains("out-of-date: timestamp expired at"),
        "{}",
        e.message
    );
    // With a grace period longer than the lapse: accepted (and logged).
    let offline = rig.offline_proxy("30d").await;
    let report = offline.inspect(image).await.unwrap();
    assert!(report.tag.unwrap().1.is_ok());
    // A repository never seeded: the offline message.
    let e = offline.inspect("golden/none:v1").await.err().unwrap();
    assert!(e.message.contains("the mirror is offline"), "{}", e.message);
}

/// The root certificate (PEM) of a golden scenario's root.json.
fn root_cert_pem(scenario: &str) -> String {
    let root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden(scenario).join("state1/root.json")).unwrap())
            .unwrap();
    let signed = &root["signed"];
    let id = signed["roles"]["root"]["keyids"][0].as_str().unwrap();
    let b64 = signed["keys"][id]["keyval"]["public"].as_str().unwrap();
    use base64::Engine as _;
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn pinned_root_certificates_replace_trust_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right.pem");
    let wrong = dir.path().join("wrong.pem");
    std::fs::write(&right, root_cert_pem("basic")).unwrap();
    std::fs::write(&wrong, root_cert_pem("releases")).unwrap();
    let policy = |pem: &Path| {
        format!(
            "[[policy]]\nrepositories = [\"127.0.0.1:5000/golden/basic\"]\ntrust = \"enforce\"\ntofu = false\nroot_certs = [\"{}\"]\n",
            pem.display()
        )
    };
    let rig = Rig::start("basic", &policy(&right)).await;
    assert_eq!(rig.get("manifests/v1").await.status(), 200);
    let rig = Rig::start("basic", &policy(&wrong)).await;
    let (status, code, message) = error_of(rig.get("manifests/v1").await).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(
        message.contains("does not match trust pinning"),
        "{message}"
    );
    // Trust on first use switched off and nothing pinned for the repository: refused.
    let rig = Rig::start(
        "basic",
        "[[policy]]\nrepositories = [\"127.0.0.1:5000/golden/*\"]\ntrust = \"enforce\"\ntofu = false\n",
    )
    .await;
    let (status, _, message) = error_of(rig.get("manifests/v1").await).await;
    assert_eq!(status, 403);
    assert!(
        message.contains("trust on first use is disabled"),
        "{message}"
    );
}

#[tokio::test]
async fn seeding_pulls_the_whole_image_through_the_verifying_path() {
    use trustgate::seed::{seed_image, PlatformFilter};
    let rig = Rig::start("multiarch", "").await;
    let exp = expected("multiarch");
    let all = seed_image(
        &rig.app.proxy,
        "golden/multiarch:multi",
        &PlatformFilter::default(),
        &(),
    )
    .await
    .unwrap();
    assert_eq!(
        all.digest.as_deref(),
        Some(
            format!(
                "sha256:{}",
                exp["tags"]["multi"]["sha256"].as_str().unwrap()
            )
            .as_str()
        )
    );
    assert_eq!(all.manifests, 3); // the index and both platforms
    assert!(all.blobs >= 2);
    let arm = seed_image(
        &rig.app.proxy,
        "golden/multiarch:multi",
        &PlatformFilter(vec!["linux/arm64".into()]),
        &(),
    )
    .await
    .unwrap();
    assert_eq!(arm.manifests, 2);
    assert!(arm.blobs < all.blobs);
    // Refused images say why.
    let e = seed_image(
        &rig.app.proxy,
        "golden/multiarch:unsigned",
        &PlatformFilter::default(),
        &(),
    )
    .await
    .unwrap_err();
    assert!(e.contains("No valid trust data for unsigned"), "{e}");
    let e = seed_image(
        &rig.app.proxy,
        "golden/multiarch:multi",
        &PlatformFilter(vec!["windows/amd64".into()]),
        &(),
    )
    .await
    .unwrap_err();
    assert!(e.contains("no platform"), "{e}");
}
