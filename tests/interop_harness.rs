//! Self-tests of the interop harness: the real clients straight against the real registry (and
//! notary-server), no trustgate involved. When an interop test through trustgate fails, these tell
//! whether the harness or the proxy is at fault; they are also the baseline timings.

mod support;

use support::containerd::Containerd;
use support::docker::Dockerd;
use support::http::{self, Req, MANIFEST_ACCEPT};
use support::image::{Format, ImageSpec, LayerSpec, Layout};
use support::notary::{NotaryCli, NotaryServer};
use support::podman::Podman;
use support::proc::{self, ChildGuard, StopMode};
use support::registry::{Creds, Registry, RegistryOptions};
use support::skopeo::{assert_same_tree, Skopeo};
use support::{timed, TestDir};

#[test]
fn registry_serves_pushed_bytes_exactly() {
    let t = TestDir::new("h-push");
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let layout = Layout::image(
        &t.sub("img"),
        &ImageSpec::text_and_random("push", ("etc/a.txt", "a\n"), ("big.bin", 3 << 20, 7)),
    );
    timed("skopeo push (3 MiB layer)", || {
        layout.push(&skopeo, &reg.host(), "demo/app", "v1", None)
    });
    let r = http::request(
        &format!("{}/v2/demo/app/manifests/v1", reg.url()),
        &Req {
            accept: Some(MANIFEST_ACCEPT),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, layout.manifest);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(layout.digest.as_str())
    );
    let big = &layout.images[0].layers[1];
    assert!(big.size > 3 << 20, "random layer should not compress");
    let b = http::get(&format!("{}/v2/demo/app/blobs/{}", reg.url(), big.digest)).unwrap();
    assert_eq!(http::sha256_digest(&b.body), big.digest);
    assert_eq!(reg.blob_gets(&big.digest), 1, "{}", reg.access_log());

    // A round trip through skopeo's dir: transport gives back the layout's own files.
    let out = t.sub("copy");
    skopeo
        .copy_to_dir(&format!("{}/demo/app:v1", reg.host()), &out, false, None)
        .assert_success();
    assert_same_tree(&layout.dir, &out);
}

#[test]
fn registry_with_auth_and_multiarch() {
    let t = TestDir::new("h-auth");
    let reg = Registry::start_with_auth(&t.sub("registry"), "tguser", "tgpass");
    let creds = Creds::new("tguser", "tgpass");
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    for format in [Format::Docker, Format::Oci] {
        let layout = Layout::index(
            &t.sub(&format!("img-{format:?}")),
            format,
            &[
                ImageSpec::small("multi-amd64", 2),
                ImageSpec::small("multi-arm64", 2).platform("linux", "arm64", Some("v8")),
            ],
        );
        let tag = format!("{format:?}").to_lowercase();
        timed("skopeo push --all", || {
            layout.push(&skopeo, &reg.host(), "demo/multi", &tag, Some(&creds))
        });
        let raw = skopeo.inspect_raw(&format!("{}/demo/multi:{tag}", reg.host()), Some(&creds));
        raw.assert_success();
        assert_eq!(raw.stdout.as_bytes(), layout.manifest.as_slice());
        // Without credentials: refused.
        let anon = skopeo.inspect_raw(&format!("{}/demo/multi:{tag}", reg.host()), None);
        anon.assert_failure();
        let out = t.sub(&format!("copy-{tag}"));
        skopeo
            .copy_to_dir(
                &format!("{}/demo/multi:{tag}", reg.host()),
                &out,
                true,
                Some(&creds),
            )
            .assert_success();
        assert_same_tree(&layout.dir, &out);
    }
}

#[test]
fn clients_pull_directly_from_registry() {
    let t = TestDir::new("h-clients");
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let layout = Layout::image(&t.sub("img"), &ImageSpec::small("clients", 2));
    layout.push(&skopeo, &reg.host(), "demo/app", "v1", None);
    let image_ref = format!("{}/demo/app:v1", reg.host());

    let podman = Podman::new(&t.sub("podman"));
    timed("podman pull (direct)", || podman.pull(&image_ref, None)).assert_success();
    assert_eq!(podman.image_digest(&image_ref), layout.digest);

    let dockerd = timed("dockerd start", || Dockerd::start(&t.sub("dockerd")));
    timed("docker pull (direct)", || dockerd.pull(&image_ref)).assert_success();
    assert_eq!(
        dockerd.repo_digests(&image_ref),
        vec![format!("{}/demo/app@{}", reg.host(), layout.digest)]
    );

    let ctrd = timed("containerd start", || {
        Containerd::start(&t.sub("containerd"))
    });
    timed("ctr pull (direct)", || ctrd.pull(&image_ref, None)).assert_success();
    assert_eq!(ctrd.image_digest(&image_ref), Some(layout.digest.clone()));
    ctrd.pull_via_mirror("registry.local/demo/app:v1", "registry.local", &reg.url())
        .assert_success();
    assert!(
        reg.count_requests("HEAD", "/v2/demo/app/manifests/v1?ns=registry.local") >= 1,
        "{}",
        reg.access_log()
    );
}

/// distribution in proxy mode (the baseline): pulls through it work.
///
/// Quirk (observed, distribution 2.8.2): with an htpasswd (basic auth) upstream, proxy mode
/// establishes the basic challenge but then sends its requests without credentials (401, the
/// client sees `manifest unknown`): its credential store looks the request URL up in a map keyed
/// by `remoteurl`. Token-auth upstreams are what it supports; so the baseline runs without auth.
#[test]
fn registry_proxy_mode_baseline() {
    let t = TestDir::new("h-proxy");
    let upstream = Registry::start(&t.sub("upstream"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let layout = Layout::image(
        &t.sub("img"),
        &ImageSpec::new("proxy", vec![LayerSpec::random("data.bin", 1 << 20, 3)]),
    );
    layout.push(
        &skopeo,
        &upstream.host(),
        "demo/app",
        "v1",
        upstream.creds(),
    );
    let proxy = Registry::start_with(
        &t.sub("proxy"),
        RegistryOptions {
            auth: None,
            proxy_remote: Some((upstream.url(), upstream.creds().cloned())),
        },
    );
    for i in 0..2 {
        let out = t.sub(&format!("copy-{i}"));
        skopeo
            .copy_to_dir(&format!("{}/demo/app:v1", proxy.host()), &out, false, None)
            .assert_success();
        assert_same_tree(&layout.dir, &out);
    }
    let layer = &layout.images[0].layers[0].digest;
    assert_eq!(proxy.blob_gets(layer), 2, "{}", proxy.access_log());
    // Observed: distribution 2.8.2 fetched this blob from upstream twice for two sequential
    // pulls here, so only "at least once" is asserted; benchmarks report the real count.
    let upstream_gets = upstream.blob_gets(layer);
    eprintln!(
        "[baseline] upstream blob GETs for 2 pulls through distribution proxy: {upstream_gets}"
    );
    assert!(upstream_gets >= 1, "{}", upstream.access_log());
}

/// ChildGuard stops by PID on drop; a zombie counts as gone.
#[test]
fn child_guard_kills_by_pid() {
    let t = TestDir::new("h-child");
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("300");
    let mut g = ChildGuard::spawn("sleep", cmd, t.path());
    let pid = g.pid();
    assert!(g.is_alive());
    assert!(proc::pid_alive(pid));
    drop(g);
    assert!(!proc::pid_alive(pid), "state {:?}", proc::proc_state(pid));

    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"]);
    let mut g = ChildGuard::spawn("sh", cmd, t.path())
        .with_stop_mode(StopMode::Term(std::time::Duration::from_secs(5)));
    let pid = g.pid();
    g.stop();
    assert!(!proc::pid_alive(pid));
    assert!(!g.is_alive());
}

#[test]
fn notary_server_signs_like_docker() {
    let t = TestDir::new("h-notary");
    let server = timed("notary-server start", || {
        NotaryServer::start(&t.sub("notary"))
    });
    let cli = NotaryCli::new(&server, &t.sub("cli"));
    let gun = "127.0.0.1:5101/demo/app";
    let missing = server.get_metadata(gun, "root.json");
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("METADATA_NOT_FOUND"),
        "{}",
        missing.text()
    );

    timed("notary init + rotate snapshot", || {
        cli.init_with_server_snapshot(gun)
    });
    let manifest = br#"{"schemaVersion":2}"#;
    cli.sign_manifest(gun, "v1", manifest, &[]);
    let lookup = cli.lookup(gun, "v1");
    lookup.assert_success();
    let hex = http::sha256_digest(manifest);
    assert!(
        lookup.stdout.contains(hex.trim_start_matches("sha256:")),
        "{lookup}"
    );
    timed("delegation add + sign", || {
        cli.add_releases_delegation(gun);
        cli.sign_manifest(gun, "v2", b"other", &["targets/releases"]);
    });
    let list = cli.list(gun);
    list.assert_success();
    assert!(list.stdout.contains("targets/releases"), "{list}");
    let root = server.get_metadata(gun, "root.json");
    assert_eq!(root.status, 200);
    let ts = server.get_metadata(gun, "timestamp.json");
    assert_eq!(ts.status, 200);
}

/// The signing helpers produce trust data that Docker's own client-side check accepts: a tag
/// signed with `NotaryCli` pulls with `DOCKER_CONTENT_TRUST=1`, an unsigned one is refused.
#[test]
fn docker_content_trust_accepts_notary_cli_signatures() {
    let t = TestDir::new("h-dct");
    let reg = Registry::start(&t.sub("registry"));
    let notary = NotaryServer::start(&t.sub("notary"));
    let cli = NotaryCli::new(&notary, &t.sub("notary-cli"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let layout = Layout::image(&t.sub("img"), &ImageSpec::small("dct", 1));
    layout.push(&skopeo, &reg.host(), "demo/app", "signed", None);
    layout.push(&skopeo, &reg.host(), "demo/app", "unsigned", None);
    let gun = format!("{}/demo/app", reg.host());
    cli.init_with_server_snapshot(&gun);
    cli.add_releases_delegation(&gun);
    cli.sign_manifest(&gun, "signed", &layout.manifest, &["targets/releases"]);

    let dockerd = Dockerd::start(&t.sub("dockerd"));
    let out = timed("docker pull with content trust", || {
        dockerd.pull_with_content_trust(&format!("{gun}:signed"), &notary)
    });
    assert!(out.success(), "{out}\n{}", notary.logs());
    let unsigned = dockerd.pull_with_content_trust(&format!("{gun}:unsigned"), &notary);
    unsigned.assert_failure();
    assert!(
        unsigned.stderr.contains("No valid trust data for unsigned"),
        "{unsigned}"
    );
    let other = dockerd.pull_with_content_trust(&format!("{}/demo/other:v1", reg.host()), &notary);
    other.assert_failure();
    assert!(
        other.stderr.contains("does not have trust data for"),
        "{other}"
    );
}
