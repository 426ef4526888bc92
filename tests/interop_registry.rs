//! Foundation interop: trustgate as a pass-through proxy in front of the real CNCF registry
//! (distribution 2.8.2), pulled through by the real clients — skopeo, podman, a real dockerd and
//! containerd/ctr — once without upstream auth and once with htpasswd auth (trustgate holds the
//! upstream credentials; the clients talk to trustgate anonymously).
//!
//! Debugging aid: `TRUSTGATE_INTEROP_DIRECT=1` points every client straight at the registry
//! instead of trustgate (with the registry's credentials), to tell harness faults from proxy
//! faults. It is off by default and never used in CI.

mod support;

use std::path::PathBuf;

use support::containerd::Containerd;
use support::docker::{Dockerd, DockerdOptions};
use support::http::{self, Req, MANIFEST_ACCEPT};
use support::image::{Format, ImageSpec, LayerSpec, Layout};
use support::podman::Podman;
use support::registry::{Creds, Registry};
use support::skopeo::{assert_same_tree, Skopeo};
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::{timed, TestDir};

fn direct_mode() -> bool {
    std::env::var_os("TRUSTGATE_INTEROP_DIRECT").is_some()
}

/// A registry with test images pushed, and trustgate in front of it.
struct Fixture {
    // Field order is drop order: trustgate first, then the registry, then the folder.
    tg: Option<Trustgate>,
    reg: Registry,
    skopeo: Skopeo,
    /// demo/app:v1 — three layers, one of them 2 MiB of incompressible bytes.
    single: Layout,
    /// demo/multi:v1 — Docker manifest list over linux/amd64 and linux/arm64/v8.
    multi_docker: Layout,
    /// demo/multi:oci — OCI index over linux/amd64 and linux/arm64/v8.
    multi_oci: Layout,
    t: TestDir,
}

impl Fixture {
    fn new(name: &str, auth: bool) -> Fixture {
        let t = TestDir::new(name);
        let reg = if auth {
            Registry::start_with_auth(&t.sub("registry"), "tguser", "tg-secret-pass")
        } else {
            Registry::start(&t.sub("registry"))
        };
        let skopeo = Skopeo::new(&t.sub("skopeo"));
        let creds = reg.creds().cloned();

        let single = Layout::image(
            &t.sub("img-single"),
            &ImageSpec::new(
                "single",
                vec![
                    LayerSpec::text("etc/motd", "trustgate interop\n"),
                    LayerSpec::random("opt/big.bin", 2 << 20, 42),
                    LayerSpec::text("usr/share/doc/readme", "third layer\n")
                        .with_text("usr/share/doc/other", "more\n"),
                ],
            ),
        );
        let platforms = [
            ImageSpec::small("multi-amd64", 2),
            ImageSpec::small("multi-arm64", 2).platform("linux", "arm64", Some("v8")),
        ];
        let multi_docker = Layout::index(&t.sub("img-multi-docker"), Format::Docker, &platforms);
        let multi_oci = Layout::index(&t.sub("img-multi-oci"), Format::Oci, &platforms);
        timed("push test images", || {
            single.push(&skopeo, &reg.host(), "demo/app", "v1", creds.as_ref());
            multi_docker.push(&skopeo, &reg.host(), "demo/multi", "v1", creds.as_ref());
            multi_oci.push(&skopeo, &reg.host(), "demo/multi", "oci", creds.as_ref());
        });

        let tg = if direct_mode() {
            None
        } else {
            Some(timed("trustgate start", || {
                Trustgate::start_for(&t.sub("trustgate"), &reg)
            }))
        };
        Fixture {
            tg,
            reg,
            skopeo,
            single,
            multi_docker,
            multi_oci,
            t,
        }
    }

    /// Where clients pull from: trustgate (or the registry in direct mode).
    fn host(&self) -> String {
        match &self.tg {
            Some(tg) => tg.host(),
            None => self.reg.host(),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    /// Credentials clients present to `host()`: none for trustgate, the registry's otherwise.
    fn client_creds(&self) -> Option<Creds> {
        match &self.tg {
            Some(_) => None,
            None => self.reg.creds().cloned(),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.t.sub(name)
    }

    /// Logs of trustgate and the registry, for failure messages.
    fn logs(&self) -> String {
        let tg = self.tg.as_ref().map(|t| t.logs()).unwrap_or_default();
        format!("{tg}\n{}", self.reg.logs())
    }
}

/// skopeo: byte-identical copies (single image and both index kinds with `--all`), inspect, and
/// a clear `manifest unknown` for a missing tag.
fn skopeo_suite(fx: &Fixture) {
    let creds = fx.client_creds();
    let upstream_creds = fx.reg.creds().cloned();
    let cases = [
        ("demo/app:v1", &fx.single, false),
        ("demo/multi:v1", &fx.multi_docker, true),
        ("demo/multi:oci", &fx.multi_oci, true),
    ];
    for (i, (name, layout, all)) in cases.iter().enumerate() {
        let direct = fx.dir(&format!("direct-{i}"));
        let through = fx.dir(&format!("through-{i}"));
        fx.skopeo
            .copy_to_dir(
                &format!("{}/{name}", fx.reg.host()),
                &direct,
                *all,
                upstream_creds.as_ref(),
            )
            .assert_success();
        let out = timed(&format!("skopeo copy {name} through trustgate"), || {
            fx.skopeo.copy_to_dir(
                &format!("{}/{name}", fx.host()),
                &through,
                *all,
                creds.as_ref(),
            )
        });
        assert!(out.success(), "{out}\n{}", fx.logs());
        assert_same_tree(&direct, &through);
        // And both equal what was pushed, byte for byte.
        assert_same_tree(&layout.dir, &through);

        let raw = fx
            .skopeo
            .inspect_raw(&format!("{}/{name}", fx.host()), creds.as_ref());
        assert!(raw.success(), "{raw}\n{}", fx.logs());
        assert_eq!(raw.stdout.as_bytes(), layout.manifest.as_slice(), "{name}");
    }

    let inspect = fx
        .skopeo
        .inspect(&format!("{}/demo/app:v1", fx.host()), creds.as_ref());
    assert!(inspect.success(), "{inspect}\n{}", fx.logs());
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("inspect json");
    assert_eq!(v["Digest"], fx.single.digest.as_str(), "{inspect}");
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(3));

    if fx.tg.is_some() {
        // trustgate is read-only: a push is refused (405 UNSUPPORTED), and nothing reaches
        // the upstream.
        let push = fx.skopeo.push_dir(
            &fx.single.dir,
            &format!("docker://{}/demo/pushed:v1", fx.host()),
            false,
            None,
        );
        push.assert_failure();
        assert!(
            push.stderr.to_lowercase().contains("unsupported"),
            "expected an UNSUPPORTED refusal: {push}"
        );
        assert_eq!(fx.reg.count_requests("PUT", "/v2/demo/pushed/"), 0);
        assert_eq!(fx.reg.count_requests("POST", "/v2/demo/pushed/"), 0);
    }

    let missing = fx.skopeo.inspect_raw(
        &format!("{}/demo/app:no-such-tag", fx.host()),
        creds.as_ref(),
    );
    missing.assert_failure();
    assert!(
        missing.stderr.contains("manifest unknown"),
        "expected `manifest unknown` from skopeo: {missing}\n{}",
        fx.logs()
    );
}

/// The raw HTTP answers clients build on: exact bytes, digest header, HEAD agreeing with GET.
fn http_suite(fx: &Fixture) {
    let auth = fx
        .client_creds()
        .map(|c| (c.username.clone(), c.password.clone()));
    let basic = auth.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
    let get = Req {
        accept: Some(MANIFEST_ACCEPT),
        basic_auth: basic,
        ..Default::default()
    };
    let ping = http::request(&format!("{}/v2/", fx.url()), &get).unwrap();
    assert_eq!(ping.status, 200, "{}", ping.text());
    assert_eq!(
        ping.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    for (path, layout) in [
        ("demo/app/manifests/v1", &fx.single),
        ("demo/multi/manifests/v1", &fx.multi_docker),
        ("demo/multi/manifests/oci", &fx.multi_oci),
    ] {
        let url = format!("{}/v2/{path}", fx.url());
        let r = http::request(&url, &get).unwrap();
        assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.text(), fx.logs());
        assert_eq!(r.body, layout.manifest, "GET {path}");
        assert_eq!(
            r.header("docker-content-digest"),
            Some(layout.digest.as_str())
        );
        assert_eq!(r.header("content-type"), Some(layout.media_type.as_str()));
        let h = http::request(
            &url,
            &Req {
                method: Some("HEAD"),
                ..get.clone()
            },
        )
        .unwrap();
        assert_eq!(h.status, 200, "HEAD {path}");
        assert_eq!(
            h.header("docker-content-digest"),
            Some(layout.digest.as_str())
        );
        assert_eq!(
            h.header("content-length"),
            Some(layout.manifest.len().to_string().as_str())
        );
        // By digest too.
        let by_digest = format!(
            "{}/v2/{}/{}",
            fx.url(),
            path.rsplit_once('/').unwrap().0,
            layout.digest
        );
        let d = http::request(&by_digest, &get).unwrap();
        assert_eq!(d.status, 200, "GET {by_digest}");
        assert_eq!(d.body, layout.manifest);
    }
    let big = &fx.single.images[0].layers[1];
    let b = http::request(
        &format!("{}/v2/demo/app/blobs/{}", fx.url(), big.digest),
        &get,
    )
    .unwrap();
    assert_eq!(b.status, 200);
    assert_eq!(b.body.len() as u64, big.size);
    assert_eq!(http::sha256_digest(&b.body), big.digest);
    let missing = http::request(&format!("{}/v2/demo/app/manifests/nope", fx.url()), &get).unwrap();
    assert_eq!(missing.status, 404);
    assert!(
        missing.text().contains("MANIFEST_UNKNOWN"),
        "{}",
        missing.text()
    );
}

#[test]
fn skopeo_through_trustgate() {
    let fx = Fixture::new("skopeo", false);
    timed("skopeo suite (no upstream auth)", || skopeo_suite(&fx));
    http_suite(&fx);
}

#[test]
fn skopeo_through_trustgate_with_upstream_auth() {
    let fx = Fixture::new("skopeo-auth", true);
    timed("skopeo suite (upstream htpasswd auth)", || {
        skopeo_suite(&fx)
    });
    http_suite(&fx);
}

#[test]
fn podman_pull_through_trustgate() {
    for auth in [false, true] {
        let fx = Fixture::new(if auth { "podman-auth" } else { "podman" }, auth);
        let podman = Podman::new(&fx.dir("podman"));
        let creds = fx.client_creds();
        let image_ref = format!("{}/demo/app:v1", fx.host());
        let out = timed(
            &format!("podman pull through trustgate (auth={auth})"),
            || podman.pull(&image_ref, creds.as_ref()),
        );
        assert!(out.success(), "{out}\n{}", fx.logs());
        assert_eq!(podman.image_digest(&image_ref), fx.single.digest);

        // A multi-arch tag: podman picks linux/amd64 and records the index digest.
        let multi_ref = format!("{}/demo/multi:v1", fx.host());
        let out = podman.pull(&multi_ref, creds.as_ref());
        assert!(out.success(), "{out}\n{}", fx.logs());
        assert_eq!(podman.image_digest(&multi_ref), fx.multi_docker.digest);

        let missing = podman.pull(
            &format!("{}/demo/app:no-such-tag", fx.host()),
            creds.as_ref(),
        );
        missing.assert_failure();
        assert!(missing.stderr.contains("manifest unknown"), "{missing}");
    }
}

#[test]
fn docker_pull_through_trustgate() {
    let fx = Fixture::new("docker", false);
    let dockerd = timed("dockerd start", || Dockerd::start(&fx.dir("dockerd")));
    // 127.0.0.0/8 is an insecure registry by default: plain http to trustgate.
    let image_ref = format!("{}/demo/app:v1", fx.host());
    let out = timed("docker pull through trustgate", || dockerd.pull(&image_ref));
    assert!(out.success(), "{out}\n{}\n{}", fx.logs(), dockerd.log());
    assert_eq!(
        dockerd.repo_digests(&image_ref),
        vec![format!("{}/demo/app@{}", fx.host(), fx.single.digest)]
    );

    // By digest: docker asks for the manifest by digest and verifies it.
    let by_digest = format!("{}/demo/app@{}", fx.host(), fx.single.digest);
    let out = dockerd.pull(&by_digest);
    assert!(out.success(), "{out}\n{}\n{}", fx.logs(), dockerd.log());

    let multi_ref = format!("{}/demo/multi:oci", fx.host());
    let out = timed("docker pull (OCI index) through trustgate", || {
        dockerd.pull(&multi_ref)
    });
    assert!(out.success(), "{out}\n{}\n{}", fx.logs(), dockerd.log());
    assert_eq!(
        dockerd.repo_digests(&multi_ref),
        vec![format!("{}/demo/multi@{}", fx.host(), fx.multi_oci.digest)]
    );

    let missing = dockerd.pull(&format!("{}/demo/app:no-such-tag", fx.host()));
    missing.assert_failure();
    assert!(missing.stderr.contains("manifest unknown"), "{missing}");
}

#[test]
fn docker_pull_through_trustgate_with_upstream_auth() {
    let fx = Fixture::new("docker-auth", true);
    let dockerd = Dockerd::start(&fx.dir("dockerd"));
    let image_ref = format!("{}/demo/app:v1", fx.host());
    if let Some(c) = fx.client_creds() {
        // Direct mode only: the registry wants credentials.
        dockerd
            .run(&["login", "-u", &c.username, "-p", &c.password, &fx.host()])
            .assert_success();
    }
    let out = timed("docker pull through trustgate (upstream auth)", || {
        dockerd.pull(&image_ref)
    });
    assert!(out.success(), "{out}\n{}\n{}", fx.logs(), dockerd.log());
    assert_eq!(
        dockerd.repo_digests(&image_ref),
        vec![format!("{}/demo/app@{}", fx.host(), fx.single.digest)]
    );
}

#[test]
fn ctr_pull_through_trustgate() {
    let fx = Fixture::new("ctr", false);
    let ctrd = timed("containerd start", || {
        Containerd::start(&fx.dir("containerd"))
    });
    let image_ref = format!("{}/demo/app:v1", fx.host());
    let out = timed("ctr pull through trustgate", || ctrd.pull(&image_ref, None));
    assert!(out.success(), "{out}\n{}\n{}", fx.logs(), ctrd.logs());
    assert_eq!(
        ctrd.image_digest(&image_ref),
        Some(fx.single.digest.clone())
    );

    let multi_ref = format!("{}/demo/multi:v1", fx.host());
    let out = ctrd.pull(&multi_ref, None);
    assert!(out.success(), "{out}\n{}", fx.logs());
    assert_eq!(
        ctrd.image_digest(&multi_ref),
        Some(fx.multi_docker.digest.clone())
    );

    // ctr resolves with HEAD only: a refusal reaches it as the status ("not found").
    let missing = ctrd.pull(&format!("{}/demo/app:no-such-tag", fx.host()), None);
    missing.assert_failure();
    assert!(missing.stderr.contains("not found"), "{missing}");
}

/// A second, non-default upstream addressed by name: as a leading path component
/// (`TG/registry.local/demo/app`, how podman mirrors and explicit users spell it) and with
/// containerd's `?ns=registry.local`.
#[test]
fn named_upstream_through_trustgate() {
    if direct_mode() {
        eprintln!("named upstreams need trustgate; nothing to check in direct mode");
        return;
    }
    let t = TestDir::new("named");
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let default_reg = Registry::start(&t.sub("registry-default"));
    let other_reg = Registry::start_with_auth(&t.sub("registry-other"), "other", "other-pass");
    let default_img = Layout::image(&t.sub("img-default"), &ImageSpec::small("default", 1));
    let other_img = Layout::image(&t.sub("img-other"), &ImageSpec::small("other", 2));
    default_img.push(&skopeo, &default_reg.host(), "demo/app", "v1", None);
    other_img.push(
        &skopeo,
        &other_reg.host(),
        "demo/app",
        "v1",
        other_reg.creds(),
    );

    let tg = Trustgate::start(
        &t.sub("trustgate"),
        TrustgateOptions {
            upstreams: vec![
                UpstreamConfig::default_for(&default_reg),
                UpstreamConfig::named("registry.local", &other_reg),
            ],
            ..Default::default()
        },
    );
    let raw = skopeo.inspect_raw(&format!("{}/demo/app:v1", tg.host()), None);
    assert!(raw.success(), "{raw}\n{}", tg.logs());
    assert_eq!(raw.stdout.as_bytes(), default_img.manifest.as_slice());

    let raw = skopeo.inspect_raw(&format!("{}/registry.local/demo/app:v1", tg.host()), None);
    assert!(raw.success(), "{raw}\n{}", tg.logs());
    assert_eq!(raw.stdout.as_bytes(), other_img.manifest.as_slice());

    let out = t.sub("copy-other");
    let copy = skopeo.copy_to_dir(
        &format!("{}/registry.local/demo/app:v1", tg.host()),
        &out,
        false,
        None,
    );
    assert!(copy.success(), "{copy}\n{}", tg.logs());
    assert_same_tree(&other_img.dir, &out);

    let ns = http::request(
        &format!("{}/v2/demo/app/manifests/v1?ns=registry.local", tg.url()),
        &Req {
            accept: Some(MANIFEST_ACCEPT),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ns.status, 200, "{}\n{}", ns.text(), tg.logs());
    assert_eq!(ns.body, other_img.manifest);

    // The real containerd, configured with a hosts.toml mirror: it sends `?ns=registry.local`.
    let ctrd = Containerd::start(&t.sub("containerd"));
    let out = timed("ctr pull via hosts.toml mirror (ns=)", || {
        ctrd.pull_via_mirror("registry.local/demo/app:v1", "registry.local", &tg.url())
    });
    assert!(out.success(), "{out}\n{}", tg.logs());
    assert_eq!(
        ctrd.image_digest("registry.local/demo/app:v1"),
        Some(other_img.digest.clone())
    );
}

/// Docker Engine's `registry-mirrors` path: a Docker Hub name (`alpine`) pulled by a dockerd whose
/// mirror is trustgate; trustgate's upstream is named `docker.io` (so `library/` applies) and
/// points at the local registry. dockerd would fall back to registry-1.docker.io if the mirror
/// failed; without internet that fails, and the upstream access log shows the mirror was used.
#[test]
fn docker_hub_mirror_through_trustgate() {
    let t = TestDir::new("mirror");
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let reg = Registry::start(&t.sub("registry"));
    let layout = Layout::image(&t.sub("img"), &ImageSpec::small("hub-alpine", 1));
    layout.push(&skopeo, &reg.host(), "library/alpine", "latest", None);
    let tg = if direct_mode() {
        None
    } else {
        Some(Trustgate::start(
            &t.sub("trustgate"),
            TrustgateOptions {
                upstreams: vec![UpstreamConfig {
                    name: "docker.io".into(),
                    ..UpstreamConfig::default_for(&reg)
                }],
                ..Default::default()
            },
        ))
    };
    let mirror = tg.as_ref().map(|t| t.url()).unwrap_or_else(|| reg.url());
    let dockerd = Dockerd::start_with(
        &t.sub("dockerd"),
        DockerdOptions {
            registry_mirrors: vec![mirror],
            ..Default::default()
        },
    );
    let out = timed("docker pull alpine via mirror", || {
        dockerd.pull("alpine:latest")
    });
    let tg_logs = tg.as_ref().map(|t| t.logs()).unwrap_or_default();
    assert!(out.success(), "{out}\n{tg_logs}\n{}", dockerd.log());
    assert_eq!(
        dockerd.repo_digests("alpine:latest"),
        vec![format!("alpine@{}", layout.digest)]
    );
    assert!(
        reg.count_requests("GET", "/v2/library/alpine/") >= 1,
        "{}",
        reg.access_log()
    );
}
