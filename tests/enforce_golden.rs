//! Trust enforcement end to end, in process, over the golden vectors made by the real `notary`
//! CLI (tests/data/golden): a fake registry serves the images, a fake Notary server with
//! Docker-style token auth serves the recorded trust data, and the clock is injected so the
//! 14-day timestamps can be verified and expired at will. The interop tests do the same against
//! the real notary-server and clients (tests/interop_trust.rs).

mod fake_upstream;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fake_upstream::FakeUpstream;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use trustgate::config::Config;
use trustgate::proxy::Proxy;

fn golden(scenario: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(scenario)
}

fn expected(scenario: &str) -> serde_json::Value {
    let text = std::fs::read(golden(scenario).join("expected.json")).unwrap();
    serde_json::from_slice(&text).unwrap()
}

/// A Notary server stand-in: serves one recorded state directory of a golden scenario at
/// `/v2/<GUN>/_trust/tuf/<file>` behind Docker-style token auth (401 + Bearer challenge, token
/// from `/token` for `repository:<GUN>:pull`). It can be switched to another state or taken down.
struct FakeNotary {
    addr: SocketAddr,
    state: Arc<Mutex<NotaryState>>,
    task: tokio::task::JoinHandle<()>,
}

struct NotaryState {
    gun: String,
    dir: Option<PathBuf>,
    /// Scopes asked of the token endpoint.
    scopes: Vec<String>,
    /// Files served (by name).
    served: Vec<String>,
    /// Overrides: file name → bytes (for replay/rollback tests).
    overrides: HashMap<String, Vec<u8>>,
}

impl Drop for FakeNotary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeNotary {
    async fn start(gun: &str, dir: &Path) -> FakeNotary {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(NotaryState {
            gun: gun.to_string(),
            dir: Some(dir.to_path_buf()),
            scopes: vec![],
            served: vec![],
            overrides: HashMap::new(),
        }));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(notary_answer(&st, req, addr)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        FakeNotary { addr, state, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_dir(&self, dir: Option<&Path>) {
        self.state.lock().unwrap().dir = dir.map(Path::to_path_buf);
    }

    fn scopes(&self) -> Vec<String> {
        self.state.lock().unwrap().scopes.clone()
    }
}

fn notary_answer(
    st: &Mutex<NotaryState>,
    req: hyper::Request<hyper::body::Incoming>,
    addr: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let mut st = st.lock().unwrap();
    let path = req.uri().path().to_string();
    let reply = |status: u16, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    if path == "/token" {
        let query = req.uri().query().unwrap_or("");
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k == "scope" {
                st.scopes.push(v.into_owned());
            }
        }
        return reply(
            200,
            br#"{"token":"notary-token","expires_in":300}"#.to_vec(),
        );
    }
    let authorized = req
        .headers()
        .get("authorization")
        .is_some_and(|v| v == "Bearer notary-token");
    let prefix = format!("/v2/{}/_trust/tuf/", st.gun);
    if !authorized {
        let challenge = format!(
            "Bearer realm=\"http://{addr}/token\",service=\"notary-server\",scope=\"repository:{}:pull\"",
            st.gun
        );
        return hyper::Response::builder()
            .status(401)
            .header("www-authenticate", challenge)
            .body(Full::new(Bytes::from_static(
                b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
            )))
            .unwrap();
    }
    let Some(file) = path.strip_prefix(&prefix) else {
        return reply(404, b"{}".to_vec());
    };
    let Some(dir) = st.dir.clone() else {
        return reply(503, b"down".to_vec());
    };
    st.served.push(file.to_string());
    if let Some(b) = st.overrides.get(file) {
        return reply(200, b.clone());
    }
    // By-checksum names (`snapshot.<hex>.json`) are served from the plain file: the verifier
    // checks the hash anyway.
    let plain = match file.rsplit_once('.') {
        Some((stem, "json")) => match stem.rsplit_once('.') {
            Some((role, hex)) if hex.len() == 64 => format!("{role}.json"),
            _ => file.to_string(),
        },
        _ => file.to_string(),
    };
    match std::fs::read(dir.join(&plain)) {
        Ok(b) => reply(200, b),
        Err(_) => reply(
            404,
            br#"{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":{}}]}"#.to_vec(),
        ),
    }
}

/// A scenario served by a fake registry + fake notary, and an in-process trustgate.
struct Rig {
    _storage: tempfile::TempDir,
    registry: FakeUpstream,
    notary: FakeNotary,
    clock: Arc<Mutex<OffsetDateTime>>,
    proxy: Arc<Proxy>,
    base: String,
    repo: String,
    config: Config,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
    }
}

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
        let notary = FakeNotary::start(&gun, &first).await;
        let storage = tempfile::tempdir().unwrap();
        let text = format!(
            "[storage]\npath = \"{}\"\n[[upstream]]\nname = \"{host}\"\nurl = \"{}\"\ndefault = true\nnotary = \"{}\"\n{extra_config}",
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
        let clock = Arc::new(Mutex::new(verify_at));
        let c = clock.clone();
        let proxy = Proxy::with_clock(&config, Arc::new(move || *c.lock().unwrap()))
            .await
            .unwrap();
        let (base, shutdown) = serve(proxy.clone()).await;
        Rig {
            _storage: storage,
            registry,
            notary,
            clock,
            proxy,
            base,
            repo: repo.to_string(),
            config,
            shutdown: Some(shutdown),
        }
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base, self.repo)
    }

    async fn get(&self, rest: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(rest))
            .send()
            .await
            .unwrap()
    }

    /// A fresh proxy over the same storage and clock (a restart).
    async fn restart(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        let c = self.clock.clone();
        self.proxy = Proxy::with_clock(&self.config, Arc::new(move || *c.lock().unwrap()))
            .await
            .unwrap();
        let (base, shutdown) = serve(self.proxy.clone()).await;
        self.base = base;
        self.shutdown = Some(shutdown);
    }

    fn advance(&self, by: time::Duration) {
        *self.clock.lock().unwrap() += by;
    }
}

async fn serve(proxy: Arc<Proxy>) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = trustgate::api::server::serve(listener, proxy, async {
            let _ = rx.await;
        })
        .await;
    });
    (format!("http://{addr}"), tx)
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
    let other = format!("{}/v2/golden/none/manifests/v1", rig.base);
    let (status, code, message) = error_of(reqwest::get(other).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "MANIFEST_UNKNOWN"));
    let notary_host = rig.notary.addr.to_string();
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
    rig.advance(time::Duration::milliseconds(1100)); // past `refresh = 1`, by the injected clock
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
    rig.notary.set_dir(None); // 503 from now on
                              // A restart loses the memory cache: the persisted state is re-verified offline.
    rig.restart().await;
    assert_eq!(rig.get("manifests/v2").await.status(), 200);
    rig.advance(time::Duration::days(15));
    rig.advance(time::Duration::milliseconds(1100)); // past `refresh = 1`, by the injected clock
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
    rig.notary.set_dir(Some(&golden("rotated").join("state2")));
    rig.advance(time::Duration::milliseconds(1100)); // past `refresh = 1`, by the injected clock
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
        .set_dir(Some(&golden("recreated").join("state2")));
    rig.advance(time::Duration::milliseconds(1100)); // past `refresh = 1`, by the injected clock
    let (status, code, message) = error_of(rig.get(&format!("manifests/{tag}")).await).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"));
    assert!(
        message.contains("trustgate trust reset 127.0.0.1:5000/golden/recreated"),
        "{message}"
    );
    assert!(rig
        .proxy
        .trust()
        .store()
        .reset("127.0.0.1:5000/golden/recreated")
        .unwrap());
    rig.advance(time::Duration::milliseconds(1100)); // past `refresh = 1`, by the injected clock
    assert_eq!(rig.get(&format!("manifests/{tag}")).await.status(), 200);
}

#[tokio::test]
async fn a_replayed_older_timestamp_is_refused_as_rollback() {
    let rig = Rig::start("rotated", "[trust]\nrefresh = 1\n").await;
    // Pin the newer state first, then let the server replay the older one.
    rig.notary.set_dir(Some(&golden("rotated").join("state2")));
    assert_eq!(rig.get("manifests/latest").await.status(), 200);
    rig.notary.set_dir(Some(&golden("rotated").join("state1")));
    rig.advance(time::Duration::milliseconds(1100)); // past `refresh = 1`, by the injected clock
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
    assert_eq!(rig.proxy.audit_would_refuse(), 1);
    assert_eq!(rig.get("manifests/v1").await.status(), 200);
    assert_eq!(rig.proxy.audit_would_refuse(), 1);
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
            "[storage]\npath = \"{}\"\n[trust]\noffline_grace = \"{grace}\"\n[[upstream]]\nname = \"{}\"\nurl = \"http://127.0.0.1:9\"\ndefault = true\noffline = true\n",
            self.config.storage.path.display(),
            up.name
        );
        let config = Config::from_toml(&text, Path::new("offline.toml")).unwrap();
        let c = self.clock.clone();
        Proxy::with_clock(&config, Arc::new(move || *c.lock().unwrap()))
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
        &rig.proxy,
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
        &rig.proxy,
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
        &rig.proxy,
        "golden/multiarch:unsigned",
        &PlatformFilter::default(),
        &(),
    )
    .await
    .unwrap_err();
    assert!(e.contains("No valid trust data for unsigned"), "{e}");
    let e = seed_image(
        &rig.proxy,
        "golden/multiarch:multi",
        &PlatformFilter(vec!["windows/amd64".into()]),
        &(),
    )
    .await
    .unwrap_err();
    assert!(e.contains("no platform"), "{e}");
}
