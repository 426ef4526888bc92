//! Notation interop (issue 13): the real CNCF registry (2.8: no referrers API) holding images
//! whose Notation signatures are stored as Notation stores them on such a registry — a
//! signature manifest (`artifactType: application/vnd.cncf.notary.signature`, a JWS layer,
//! `subject` = the image) listed in the `sha256-<hex>` fallback index — made in code
//! (`support::notation`: no notation binary exists here). trustgate enforces a `kind =
//! "notation"` verifier for clients that check nothing themselves: skopeo, podman and docker
//! pull the signed image and are refused the unsigned one with a message they print; a
//! repository requiring cosign AND Notation is served only the image both signed; `trustgate
//! seed`, then an offline mirror with the registry gone, serves the Notation-signed image
//! verified again from the store.

mod support;

use support::cosign::{self, Artifact, CosignKey, Signed};
use support::docker::Dockerd;
use support::image::{ImageSpec, Layout};
use support::notation::{NotationSigner, ARTIFACT_TYPE};
use support::podman::Podman;
use support::registry::Registry;
use support::skopeo::{assert_same_tree, Skopeo};
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::{timed, TestDir};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn verifiers_toml(
    root: &std::path::Path,
    identity: &str,
    key: &std::path::Path,
    upstream: &str,
) -> String {
    format!(
        "[[verifier]]\nname = \"acme-notation\"\nkind = \"notation\"\ntrust_store = [{:?}]\ntrusted_identities = [{identity:?}]\n\n\
         [[verifier]]\nname = \"acme-cosign\"\nkind = \"cosign\"\nkeys = [{:?}]\n\n\
         [[policy]]\nrepositories = [\"{upstream}/demo/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme-notation\"]\n\n\
         [[policy]]\nrepositories = [\"{upstream}/both/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme-cosign\", \"acme-notation\"]\nrequire = \"all\"\n",
        root.display().to_string(),
        key.display().to_string()
    )
}

/// Pushes a Notation signature of `img` as Notation does on a registry without the referrers
/// API: the signature manifest by digest, then the fallback index listing it.
fn push_notation(base: &str, repo: &str, signer: &NotationSigner, img: &Layout) -> Artifact {
    let sig = signer.referrer(&img.manifest, &img.media_type);
    let index = cosign::fallback_index(&[(&sig, ARTIFACT_TYPE)]);
    block_on(async {
        cosign::push(
            base,
            repo,
            &sig.digest(),
            sig.media_type,
            &sig.manifest,
            &sig.blobs,
        )
        .await;
        cosign::push(
            base,
            repo,
            &cosign::fallback_tag(&img.digest),
            cosign::OCI_INDEX,
            &index,
            &[],
        )
        .await;
    });
    sig
}

fn push_cosign(base: &str, repo: &str, key: &CosignKey, reference: &str, img: &Layout) {
    let sig = cosign::sig_manifest(&[Signed::by(key, reference, &img.digest)]);
    block_on(cosign::push(
        base,
        repo,
        &cosign::sig_tag(&img.digest),
        sig.media_type,
        &sig.manifest,
        &sig.blobs,
    ));
}

#[test]
fn notation_enforced_for_skopeo_podman_and_docker_against_the_cncf_registry() {
    let t = TestDir::new("notation-interop");
    let mut reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let host = reg.host();
    let base = reg.url();

    let signed = Layout::image(
        &t.sub("img-signed"),
        &ImageSpec::text_and_random(
            "notation-signed",
            ("etc/signed", "signed\n"),
            ("opt/b.bin", 1 << 20, 5),
        ),
    );
    signed.push(&skopeo, &host, "demo/app", "signed", None);
    let unsigned = Layout::image(&t.sub("img-unsigned"), &ImageSpec::small("unsigned", 1));
    unsigned.push(&skopeo, &host, "demo/app", "unsigned", None);
    // both/app: one image signed with cosign and Notation, one with cosign only.
    let both = Layout::image(&t.sub("img-both"), &ImageSpec::small("both", 2));
    both.push(&skopeo, &host, "both/app", "both", None);
    let cosign_only = Layout::image(
        &t.sub("img-cosign-only"),
        &ImageSpec::small("cosign-only", 3),
    );
    cosign_only.push(&skopeo, &host, "both/app", "cosign-only", None);

    let signer = NotationSigner::generate("Acme", "release");
    let root = signer.write_root(&t.sub("keys"), "acme-ca");
    let key = CosignKey::generate();
    let pub_key = key.write_public(&t.sub("keys"), "acme");
    let sig = push_notation(&base, "demo/app", &signer, &signed);
    push_notation(&base, "both/app", &signer, &both);
    push_cosign(&base, "both/app", &key, &format!("{host}/both/app"), &both);
    push_cosign(
        &base,
        "both/app",
        &key,
        &format!("{host}/both/app"),
        &cosign_only,
    );

    let toml = verifiers_toml(&root, &signer.identity, &pub_key, &host);
    let opts = TrustgateOptions {
        upstreams: vec![UpstreamConfig::default_for(&reg)],
        extra_toml: toml.clone(),
        ..Default::default()
    };
    let mut tg = Trustgate::start(&t.sub("trustgate"), opts.clone());
    let tgh = tg.host();

    // skopeo: the signed image byte for byte; the unsigned one refused, readably.
    let out = t.sub("copy-signed");
    let copy = timed("skopeo copy notation-signed through trustgate", || {
        skopeo.copy_to_dir(&format!("{tgh}/demo/app:signed"), &out, false, None)
    });
    assert!(copy.success(), "{copy}\n{}", tg.logs());
    assert_same_tree(&signed.dir, &out);
    let want = format!(
        "no Notation signature for {host}/demo/app@{}",
        unsigned.digest
    );
    let refused = skopeo.inspect_raw(&format!("{tgh}/demo/app:unsigned"), None);
    refused.assert_failure();
    assert!(refused.stderr.contains(&want), "{refused}\n{}", tg.logs());

    // The signature manifest is served through trustgate, and listed by its referrers endpoint.
    let list = support::http::get(&format!(
        "{}/v2/demo/app/referrers/{}",
        tg.url(),
        signed.digest
    ))
    .expect("GET through trustgate");
    assert_eq!(list.status, 200, "{}", list.text());
    let v: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(v["manifests"][0]["digest"], sig.digest());
    assert_eq!(v["manifests"][0]["artifactType"], ARTIFACT_TYPE);

    // require = "all": cosign and Notation both, or nothing.
    let raw = skopeo.inspect_raw(&format!("{tgh}/both/app:both"), None);
    assert!(raw.success(), "{raw}\n{}", tg.logs());
    assert_eq!(raw.stdout.as_bytes(), both.manifest.as_slice());
    let refused = skopeo.inspect_raw(&format!("{tgh}/both/app:cosign-only"), None);
    refused.assert_failure();
    assert!(
        refused.stderr.contains("2 verifiers must accept")
            && refused.stderr.contains("1 did (acme-cosign)"),
        "{refused}\n{}",
        tg.logs()
    );

    // `trustgate verify` names the Notation signature and its signer.
    let out = tg.cli(&["verify", "demo/app:signed"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("notation-jws"), "{out}");
    assert!(out.stdout.contains("CN=release"), "{out}");

    // podman.
    let podman = Podman::new(&t.sub("podman"));
    let pull = podman.pull(&format!("{tgh}/demo/app:signed"), None);
    assert!(pull.success(), "{pull}\n{}", tg.logs());
    assert_eq!(
        podman.image_digest(&format!("{tgh}/demo/app:signed")),
        signed.digest
    );
    let refused = podman.pull(&format!("{tgh}/demo/app:unsigned"), None);
    refused.assert_failure();
    assert!(refused.stderr.contains(&want), "{refused}");

    // docker.
    let dockerd = Dockerd::start(&t.sub("dockerd"));
    let signed_ref = format!("{tgh}/demo/app:signed");
    let out = dockerd.pull(&signed_ref);
    assert!(out.success(), "{out}\n{}", tg.logs());
    assert_eq!(
        dockerd.repo_digests(&signed_ref),
        vec![format!("{tgh}/demo/app@{}", signed.digest)]
    );
    let refused = dockerd.pull(&format!("{tgh}/demo/app:unsigned"));
    refused.assert_failure();
    assert!(refused.stderr.contains(&want), "{refused}");
    drop(dockerd);

    // Air gap: seed, the registry gone, an offline mirror over the same store.
    let list_file = t.sub("seed").join("images.txt");
    std::fs::write(&list_file, "demo/app:signed\n").unwrap();
    let seeded = tg.cli(&["seed", list_file.to_str().unwrap()]);
    assert!(seeded.success(), "{seeded}");
    tg.stop();
    reg.stop();
    let offline = TrustgateOptions {
        extra_toml: format!("offline = true\n\n{toml}"),
        ..opts
    };
    let tg = Trustgate::start(&t.sub("trustgate"), offline);
    let out = t.sub("copy-offline");
    let copy = skopeo.copy_to_dir(&format!("{}/demo/app:signed", tg.host()), &out, false, None);
    assert!(copy.success(), "{copy}\n{}", tg.logs());
    assert_same_tree(&signed.dir, &out);
}
