//! Self-tests of the interop harness: the real clients straight against the real registry (and
//! notary-server), no trustgate involved. When an interop test through trustgate fails, these tell
//! whether the harness or the proxy is at fault; they are also the baseline timings.

mod common;

use common::containerd::Containerd;
use common::docker::Dockerd;
use common::http::{self, Req, MANIFEST_ACCEPT};
use common::image::{Format, ImageSpec, LayerSpec, Layout};
use common::notary::{NotaryCli, NotaryServer};
use common::podman::Podman;
use common::registry::{Creds, Registry};
use common::skopeo::{assert_same_tree, Skopeo};
use common::{timed, TestDir};

#[test]
fn registry_serves_pushed_bytes_exactly() {
    let t = TestDir::new("h-push");
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let layout = Layout::image(
        &t.sub("img"),
        &ImageSpec::new(
            "push",
            vec![
                LayerSpec::text("etc/a.txt", "a\n"),
                LayerSpec::random("big.bin", 3 << 20, 7),
            ],
        ),
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
