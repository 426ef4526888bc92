//! Trust interop: the real registry with trust data in a real notary-server, signed with the
//! `notary` CLI exactly as `DOCKER_CONTENT_TRUST=1 docker push` would (GUN = `<registry
//! host:port>/<repository>`, a `targets/releases` delegation), and trustgate enforcing it for
//! real clients that have no trust support of their own (skopeo, podman, docker without
//! DOCKER_CONTENT_TRUST, ctr).
//!
//! Expected refusal faces (README "What clients see when trust is refused"): 404
//! `MANIFEST_UNKNOWN` with `No valid trust data for <tag>` for an unsigned tag, and
//! `remote trust data does not exist for <GUN>` for a repository without trust data.

mod support;

use support::containerd::Containerd;
use support::docker::Dockerd;
use support::image::{ImageSpec, Layout};
use support::notary::{NotaryCli, NotaryServer};
use support::podman::Podman;
use support::registry::Registry;
use support::skopeo::{assert_same_tree, Skopeo};
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::{timed, TestDir};

struct TrustFixture {
    tg: Trustgate,
    notary: NotaryServer,
    /// The upstream registry (its storage is on disk under the test folder).
    reg: Registry,
    skopeo: Skopeo,
    /// demo/app:signed (signed via targets/releases) and demo/app:unsigned (same repo, no
    /// signature); demo/nodata:v1 lives in a repository without trust data.
    signed: Layout,
    unsigned: Layout,
    t: TestDir,
}

impl TrustFixture {
    fn new(name: &str) -> TrustFixture {
        let t = TestDir::new(name);
        let reg = Registry::start(&t.sub("registry"));
        let notary = timed("notary-server start", || {
            NotaryServer::start(&t.sub("notary"))
        });
        let skopeo = Skopeo::new(&t.sub("skopeo"));
        let signed = Layout::image(
            &t.sub("img-signed"),
            &ImageSpec::text_and_random(
                "signed",
                ("etc/signed", "signed\n"),
                ("opt/blob.bin", 1 << 20, 9),
            ),
        );
        let unsigned = Layout::image(&t.sub("img-unsigned"), &ImageSpec::small("unsigned", 1));
        signed.push(&skopeo, &reg.host(), "demo/app", "signed", None);
        unsigned.push(&skopeo, &reg.host(), "demo/app", "unsigned", None);
        unsigned.push(&skopeo, &reg.host(), "demo/nodata", "v1", None);

        let cli = NotaryCli::new(&notary, &t.sub("notary-cli"));
        let gun = format!("{}/demo/app", reg.host());
        timed("sign demo/app:signed", || {
            cli.init_with_server_snapshot(&gun);
            cli.add_releases_delegation(&gun);
            cli.sign_manifest(&gun, "signed", &signed.manifest, &["targets/releases"]);
        });

        let tg = Trustgate::start(
            &t.sub("trustgate"),
            TrustgateOptions {
                upstreams: vec![UpstreamConfig::default_for(&reg).with_notary(&notary)],
                ..Default::default()
            },
        );
        TrustFixture {
            tg,
            notary,
            reg,
            skopeo,
            signed,
            unsigned,
            t,
        }
    }

    fn logs(&self) -> String {
        format!("{}\n{}", self.tg.logs(), self.notary.logs())
    }
}

#[test]
fn trust_enforced_for_skopeo_and_podman() {
    let fx = TrustFixture::new("trust-skopeo");
    let tg = fx.tg.host();

    let raw = fx
        .skopeo
        .inspect_raw(&format!("{tg}/demo/app:signed"), None);
    assert!(raw.success(), "{raw}\n{}", fx.logs());
    assert_eq!(raw.stdout.as_bytes(), fx.signed.manifest.as_slice());
    let out = fx.t.sub("copy-signed");
    let copy = timed("skopeo copy signed through trustgate", || {
        fx.skopeo
            .copy_to_dir(&format!("{tg}/demo/app:signed"), &out, false, None)
    });
    assert!(copy.success(), "{copy}\n{}", fx.logs());
    assert_same_tree(&fx.signed.dir, &out);

    let unsigned = fx
        .skopeo
        .inspect_raw(&format!("{tg}/demo/app:unsigned"), None);
    unsigned.assert_failure();
    assert!(
        unsigned.stderr.contains("No valid trust data for unsigned"),
        "{unsigned}\n{}",
        fx.logs()
    );
    let nodata = fx.skopeo.inspect_raw(&format!("{tg}/demo/nodata:v1"), None);
    nodata.assert_failure();
    assert!(
        nodata.stderr.contains("remote trust data does not exist"),
        "{nodata}\n{}",
        fx.logs()
    );
    // The unsigned manifest was never served: skopeo could not copy its blobs either.
    let by_digest = fx
        .skopeo
        .inspect_raw(&format!("{tg}/demo/app@{}", fx.unsigned.digest), None);
    by_digest.assert_failure();

    let podman = Podman::new(&fx.t.sub("podman"));
    let pull = timed("podman pull signed through trustgate", || {
        podman.pull(&format!("{tg}/demo/app:signed"), None)
    });
    assert!(pull.success(), "{pull}\n{}", fx.logs());
    assert_eq!(
        podman.image_digest(&format!("{tg}/demo/app:signed")),
        fx.signed.digest
    );
    let refused = podman.pull(&format!("{tg}/demo/app:unsigned"), None);
    refused.assert_failure();
    assert!(
        refused.stderr.contains("No valid trust data for unsigned"),
        "{refused}"
    );
}

#[test]
fn trust_enforced_for_docker_and_ctr() {
    let fx = TrustFixture::new("trust-docker");
    let tg = fx.tg.host();
    let dockerd = Dockerd::start(&fx.t.sub("dockerd"));
    let signed_ref = format!("{tg}/demo/app:signed");
    let out = timed("docker pull signed through trustgate", || {
        dockerd.pull(&signed_ref)
    });
    assert!(out.success(), "{out}\n{}", fx.logs());
    assert_eq!(
        dockerd.repo_digests(&signed_ref),
        vec![format!("{tg}/demo/app@{}", fx.signed.digest)]
    );
    let refused = dockerd.pull(&format!("{tg}/demo/app:unsigned"));
    refused.assert_failure();
    assert!(
        refused.stderr.contains("manifest unknown")
            && refused.stderr.contains("No valid trust data for unsigned"),
        "{refused}"
    );
    let nodata = dockerd.pull(&format!("{tg}/demo/nodata:v1"));
    nodata.assert_failure();
    assert!(
        nodata.stderr.contains("remote trust data does not exist"),
        "{nodata}"
    );

    let ctrd = Containerd::start(&fx.t.sub("containerd"));
    let out = timed("ctr pull signed through trustgate", || {
        ctrd.pull(&signed_ref, None)
    });
    assert!(out.success(), "{out}\n{}", fx.logs());
    assert_eq!(
        ctrd.image_digest(&signed_ref),
        Some(fx.signed.digest.clone())
    );
    // ctr resolves with HEAD only: the refusal reaches it as a 404 ("not found").
    let refused = ctrd.pull(&format!("{tg}/demo/app:unsigned"), None);
    refused.assert_failure();
    assert!(refused.stderr.contains("not found"), "{refused}");
}

/// The upstream registry moves the signed tag to other content after signing (a registry that
/// lies about a tag): trustgate resolves tags through trust data and fetches by digest, so the
/// clients still get the signed manifest.
#[test]
fn retagged_upstream_cannot_swap_signed_content() {
    let fx = TrustFixture::new("trust-retag");
    let tg = fx.tg.host();
    let upstream_host = fx.reg.host();
    // Overwrite demo/app:signed upstream with the unsigned image.
    fx.unsigned
        .push(&fx.skopeo, &upstream_host, "demo/app", "signed", None);
    let upstream_now = fx
        .skopeo
        .inspect_raw(&format!("{upstream_host}/demo/app:signed"), None);
    upstream_now.assert_success();
    assert_eq!(
        upstream_now.stdout.as_bytes(),
        fx.unsigned.manifest.as_slice()
    );

    let raw = fx
        .skopeo
        .inspect_raw(&format!("{tg}/demo/app:signed"), None);
    assert!(raw.success(), "{raw}\n{}", fx.logs());
    assert_eq!(
        raw.stdout.as_bytes(),
        fx.signed.manifest.as_slice(),
        "trustgate served the retagged (unsigned) manifest"
    );
    let podman = Podman::new(&fx.t.sub("podman"));
    let pull = podman.pull(&format!("{tg}/demo/app:signed"), None);
    assert!(pull.success(), "{pull}\n{}", fx.logs());
    assert_eq!(
        podman.image_digest(&format!("{tg}/demo/app:signed")),
        fx.signed.digest
    );
}

/// A layer's bytes are corrupted in the upstream registry's storage (same length): the pull of
/// the signed image through trustgate fails, the bad bytes are not cached (a retry fails too),
/// and once upstream is repaired the pull succeeds byte for byte.
#[test]
fn corrupted_upstream_blob_is_not_served_or_cached() {
    let fx = TrustFixture::new("trust-blob");
    let tg = fx.tg.host();
    let layer = &fx.signed.images[0].layers[1];
    let hex = layer.digest.trim_start_matches("sha256:");
    let data = fx
        .reg
        .dir()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let original = std::fs::read(&data).expect("read upstream blob");
    let mut bad = original.clone();
    for b in bad.iter_mut().skip(1000).take(64) {
        *b ^= 0xff;
    }
    std::fs::write(&data, &bad).expect("corrupt upstream blob");

    for attempt in 0..2 {
        let out = fx.t.sub(&format!("copy-bad-{attempt}"));
        let copy = fx
            .skopeo
            .copy_to_dir(&format!("{tg}/demo/app:signed"), &out, false, None);
        assert!(
            !copy.success(),
            "attempt {attempt}: corrupted blob was served\n{}",
            fx.logs()
        );
    }

    // trustgate streams while hashing and aborts the transfer at the end (skopeo: "unexpected
    // EOF"); its log names the mismatch.
    assert!(
        fx.tg.log().contains("upstream sent wrong content for"),
        "{}",
        fx.logs()
    );

    std::fs::write(&data, &original).expect("repair upstream blob");
    let out = fx.t.sub("copy-good");
    let copy = fx
        .skopeo
        .copy_to_dir(&format!("{tg}/demo/app:signed"), &out, false, None);
    assert!(copy.success(), "{copy}\n{}", fx.logs());
    assert_same_tree(&fx.signed.dir, &out);
}
