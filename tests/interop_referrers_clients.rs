//! Real clients through the real trustgate binary against an upstream WITH the OCI 1.1 referrers
//! API (issues 12 and 13). The CNCF registry here has no referrers API (tests/interop_cosign.rs
//! and tests/interop_notation.rs cover the `.sig` tag and the fallback index there), so the
//! upstream is the in-process fake registry answering `/v2/<name>/referrers/<digest>`, holding
//! images with real gzipped tar layers (`support::image`) whose only signatures are referrers.
//!
//! One upstream, one trustgate and one dockerd serve every case: skopeo, podman and docker each
//! pull a cosign-signed image and a Notation-signed one (digest checked), are refused an
//! unsigned one with trustgate's message, and pull from a repository requiring cosign AND
//! Notation (`require = "all"`) only the image both signed.

#[path = "support/inproc/mod.rs"]
mod inproc;
mod support;

use support::cosign::{self, CosignKey, Signed};
use support::docker::Dockerd;
use support::image::{Format, ImageSpec, Layout};
use support::notation::NotationSigner;
use support::podman::Podman;
use support::proc::CmdOutput;
use support::skopeo::Skopeo;
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

use inproc::fake_upstream::FakeUpstream;

/// What the upstream holds, and the signers.
struct World {
    fake: FakeUpstream,
    host: String,
    key: CosignKey,
    signer: NotationSigner,
    dir: TestDir,
}

impl World {
    /// An OCI image with real layers stored under `repo:tag` (blobs, manifest by tag and digest).
    fn image(&self, repo: &str, tag: &str, layers: usize) -> Layout {
        let label = format!("{repo}:{tag}");
        let img = Layout::image(
            &self
                .dir
                .sub(&format!("img-{}-{tag}", repo.replace('/', "-"))),
            &ImageSpec::small(&label, layers).format(Format::Oci),
        );
        for b in img.blob_bytes() {
            self.fake.add_blob(&b);
        }
        self.fake
            .add_manifest(repo, tag, &img.media_type, &img.manifest);
        img
    }

    fn put_referrer(&self, repo: &str, a: &cosign::Artifact) {
        self.fake
            .add_untagged_manifest(repo, a.media_type, &a.manifest);
        for b in &a.blobs {
            self.fake.add_blob(b);
        }
    }

    /// A cosign simple-signing signature of `img`, stored only as a referrer.
    fn cosign(&self, repo: &str, img: &Layout) {
        let reference = format!("{}/{repo}", self.host);
        let referrer = cosign::referrer_manifest(
            &img.digest,
            img.manifest.len(),
            &[Signed::by(&self.key, &reference, &img.digest)],
        );
        self.put_referrer(repo, &referrer);
    }

    /// A Notation JWS signature manifest of `img`, stored only as a referrer.
    fn notation(&self, repo: &str, img: &Layout) {
        self.put_referrer(repo, &self.signer.referrer(&img.manifest, &img.media_type));
    }
}

fn assert_refused(what: &str, out: &CmdOutput, want: &str, tg: &Trustgate) {
    out.assert_failure();
    assert!(
        out.stderr.contains(want),
        "{what}: the client should print {want:?}\n{out}\n{}",
        tg.logs()
    );
}

#[test]
fn skopeo_podman_and_docker_pull_images_signed_only_through_the_referrers_api() {
    let t = TestDir::new("referrers-clients");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeUpstream::start());
    fake.enable_referrers(true);
    let host = fake.base().trim_start_matches("http://").to_string();
    let w = World {
        fake,
        host: host.clone(),
        key: CosignKey::generate(),
        signer: NotationSigner::generate("Acme, Inc.", "acme-release"),
        dir: t,
    };
    let t = &w.dir;
    let pub_key = w.key.write_public(&t.sub("keys"), "acme");
    let root = w.signer.write_root(&t.sub("notation"), "acme");

    // cosign/app: a cosign policy. notation/app: a Notation policy. both/app: both required.
    let cosigned = w.image("cosign/app", "signed", 2);
    w.cosign("cosign/app", &cosigned);
    let cosign_unsigned = w.image("cosign/app", "unsigned", 1);
    let notarised = w.image("notation/app", "signed", 2);
    w.notation("notation/app", &notarised);
    let notation_unsigned = w.image("notation/app", "unsigned", 1);
    let both = w.image("both/app", "both", 2);
    w.cosign("both/app", &both);
    w.notation("both/app", &both);
    let cosign_only = w.image("both/app", "cosign-only", 1);
    w.cosign("both/app", &cosign_only);
    let notation_only = w.image("both/app", "notation-only", 1);
    w.notation("both/app", &notation_only);

    let extra = format!(
        "[[verifier]]\nname = \"acme-cosign\"\nkind = \"cosign\"\nkeys = [{:?}]\n\n\
         [[verifier]]\nname = \"acme-notation\"\nkind = \"notation\"\ntrust_store = [{:?}]\ntrusted_identities = [{:?}]\n\n\
         [[policy]]\nrepositories = [\"{host}/cosign/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme-cosign\"]\n\n\
         [[policy]]\nrepositories = [\"{host}/notation/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme-notation\"]\n\n\
         [[policy]]\nrepositories = [\"{host}/both/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme-cosign\", \"acme-notation\"]\nrequire = \"all\"\n",
        pub_key.display().to_string(),
        root.display().to_string(),
        w.signer.identity,
    );
    let opts = TrustgateOptions {
        upstreams: vec![UpstreamConfig {
            name: host.clone(),
            url: w.fake.base(),
            default: true,
            creds: None,
            ca_file: None,
            notary: None,
            notary_ca_file: None,
        }],
        extra_toml: extra,
        ..Default::default()
    };
    let tg = Trustgate::start(&t.sub("trustgate"), opts);
    let tgh = tg.host();

    let signed = [
        ("cosign/app:signed", &cosigned),
        ("notation/app:signed", &notarised),
        ("both/app:both", &both),
    ];
    let no_cosign = format!(
        "no cosign signature for {host}/cosign/app@{}",
        cosign_unsigned.digest
    );
    let no_notation = format!(
        "no Notation signature for {host}/notation/app@{}",
        notation_unsigned.digest
    );
    // require = "all" names how many verifiers accepted and which.
    let cosign_only_refusal = "1 did (acme-cosign)";
    let notation_only_refusal = "1 did (acme-notation)";
    let refused = [
        ("cosign/app:unsigned", no_cosign.as_str()),
        ("notation/app:unsigned", no_notation.as_str()),
        ("both/app:cosign-only", cosign_only_refusal),
        ("both/app:notation-only", notation_only_refusal),
    ];

    // skopeo: the exact manifest bytes, the signature found through the referrers API.
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    for (name, img) in signed {
        let raw = skopeo.inspect_raw(&format!("{tgh}/{name}"), None);
        assert!(raw.success(), "skopeo {name}: {raw}\n{}", tg.logs());
        assert_eq!(raw.stdout.as_bytes(), img.manifest.as_slice(), "{name}");
        let out = t.sub(&format!("copy-{}", name.replace(['/', ':'], "-")));
        let copy = skopeo.copy_to_dir(&format!("{tgh}/{name}"), &out, false, None);
        assert!(copy.success(), "skopeo {name}: {copy}\n{}", tg.logs());
        let repo = name.split(':').next().unwrap();
        let referrers = format!("/v2/{repo}/referrers/{}", img.digest);
        assert!(
            w.fake.count(&referrers) >= 1,
            "{name}: the signature was not looked up through the referrers API"
        );
    }
    for (name, want) in refused {
        let out = skopeo.inspect_raw(&format!("{tgh}/{name}"), None);
        assert_refused(&format!("skopeo {name}"), &out, want, &tg);
    }
    // Revocation is never checked (it needs the network); each acceptance says so in the log.
    let logs = tg.logs();
    assert!(
        logs.contains("Notation signature accepted")
            && logs.contains("certificate revocation (OCSP/CRL) was not checked"),
        "{logs}"
    );

    // podman: unpacks the layers into its store; the digest it records is the signed one.
    let podman = Podman::new(&t.sub("podman"));
    for (name, img) in signed {
        let image_ref = format!("{tgh}/{name}");
        let pull = podman.pull(&image_ref, None);
        assert!(pull.success(), "podman {name}: {pull}\n{}", tg.logs());
        assert_eq!(podman.image_digest(&image_ref), img.digest, "podman {name}");
    }
    for (name, want) in refused {
        let out = podman.pull(&format!("{tgh}/{name}"), None);
        assert_refused(&format!("podman {name}"), &out, want, &tg);
    }

    // docker: one real dockerd for every case.
    let dockerd = Dockerd::start(&t.sub("dockerd"));
    for (name, img) in signed {
        let image_ref = format!("{tgh}/{name}");
        let pull = dockerd.pull(&image_ref);
        assert!(pull.success(), "docker {name}: {pull}\n{}", tg.logs());
        let repo = name.split(':').next().unwrap();
        assert_eq!(
            dockerd.repo_digests(&image_ref),
            vec![format!("{tgh}/{repo}@{}", img.digest)],
            "docker {name}"
        );
    }
    for (name, want) in refused {
        let out = dockerd.pull(&format!("{tgh}/{name}"));
        assert_refused(&format!("docker {name}"), &out, want, &tg);
    }
    drop(dockerd);
    drop(tg);
    drop(w);
    drop(rt);
}
