//! cosign interop (issue 12): the real CNCF registry (2.8: no referrers API) holding images
//! signed the two ways such a registry stores cosign signatures — the `sha256-<hex>.sig` tag
//! (cosign ≤ 2) and a referrer manifest listed in the `sha256-<hex>` fallback index (clients of
//! registries without the referrers API) — made in code (`support::cosign`: no cosign binary
//! exists here). trustgate enforces a cosign `[[verifier]]` for real clients that check nothing
//! themselves: skopeo, podman and docker pull the signed images and are refused the unsigned one
//! with a message they print; OCI 1.1 discovery through trustgate's referrers endpoint returns
//! the signatures; `trustgate verify` prints them; `trustgate seed`, then an offline mirror with
//! the registry gone, serves the signed image verified again from the store.

mod support;

use support::cosign::{self, CosignKey, Signed};
use support::docker::Dockerd;
use support::image::{ImageSpec, Layout};
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

fn verifier_toml(key: &std::path::Path, upstream: &str) -> String {
    format!(
        "[[verifier]]\nname = \"acme\"\nkind = \"cosign\"\nkeys = [{:?}]\n\n[[policy]]\nrepositories = [\"{upstream}/demo/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme\"]\n",
        key.display().to_string()
    )
}

#[test]
fn cosign_enforced_for_skopeo_podman_and_docker_against_the_cncf_registry() {
    let t = TestDir::new("cosign-interop");
    let mut reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let host = reg.host();
    let reference = format!("{host}/demo/app");

    // demo/app:signed, signed under its `.sig` tag.
    let signed = Layout::image(
        &t.sub("img-signed"),
        &ImageSpec::text_and_random(
            "signed",
            ("etc/signed", "signed\n"),
            ("opt/b.bin", 1 << 20, 3),
        ),
    );
    signed.push(&skopeo, &host, "demo/app", "signed", None);
    // demo/app:v3, signed as a referrer listed in the fallback index (kyverno#16664's shape:
    // the index entry's artifactType is the empty type).
    let v3 = Layout::image(&t.sub("img-v3"), &ImageSpec::small("v3", 2));
    v3.push(&skopeo, &host, "demo/app", "v3", None);
    // demo/app:unsigned: nobody signed it.
    let unsigned = Layout::image(&t.sub("img-unsigned"), &ImageSpec::small("unsigned", 1));
    unsigned.push(&skopeo, &host, "demo/app", "unsigned", None);

    let key = CosignKey::generate();
    let pub_key = key.write_public(&t.sub("keys"), "acme");
    let sig = cosign::sig_manifest(&[Signed::by(&key, &reference, &signed.digest)]);
    let referrer = cosign::referrer_manifest(
        &v3.digest,
        v3.manifest.len(),
        &[Signed::by(&key, &reference, &v3.digest)],
    );
    let index = cosign::fallback_index(&[(&referrer, cosign::EMPTY)]);
    let base = reg.url();
    block_on(async {
        cosign::push(
            &base,
            "demo/app",
            &cosign::sig_tag(&signed.digest),
            sig.media_type,
            &sig.manifest,
            &sig.blobs,
        )
        .await;
        cosign::push(
            &base,
            "demo/app",
            &referrer.digest(),
            referrer.media_type,
            &referrer.manifest,
            &referrer.blobs,
        )
        .await;
        cosign::push(
            &base,
            "demo/app",
            &cosign::fallback_tag(&v3.digest),
            cosign::OCI_INDEX,
            &index,
            &[],
        )
        .await;
    });

    let opts = TrustgateOptions {
        upstreams: vec![UpstreamConfig::default_for(&reg)],
        extra_toml: verifier_toml(&pub_key, &host),
        ..Default::default()
    };
    let mut tg = Trustgate::start(&t.sub("trustgate"), opts.clone());
    let tgh = tg.host();
    let logs = |tg: &Trustgate| format!("{}\n{}", tg.logs(), reg_logs(&t));

    // skopeo: both signed images, byte for byte; the unsigned one refused, readably.
    let raw = skopeo.inspect_raw(&format!("{tgh}/demo/app:signed"), None);
    assert!(raw.success(), "{raw}\n{}", logs(&tg));
    assert_eq!(raw.stdout.as_bytes(), signed.manifest.as_slice());
    let out = t.sub("copy-signed");
    let copy = timed("skopeo copy cosign-signed through trustgate", || {
        skopeo.copy_to_dir(&format!("{tgh}/demo/app:signed"), &out, false, None)
    });
    assert!(copy.success(), "{copy}\n{}", logs(&tg));
    assert_same_tree(&signed.dir, &out);
    let raw = skopeo.inspect_raw(&format!("{tgh}/demo/app:v3"), None);
    assert!(raw.success(), "{raw}\n{}", logs(&tg));
    assert_eq!(raw.stdout.as_bytes(), v3.manifest.as_slice());
    let refused = skopeo.inspect_raw(&format!("{tgh}/demo/app:unsigned"), None);
    refused.assert_failure();
    let want = format!(
        "no cosign signature for {host}/demo/app@{}",
        unsigned.digest
    );
    assert!(refused.stderr.contains(&want), "{refused}\n{}", logs(&tg));

    // podman.
    let podman = Podman::new(&t.sub("podman"));
    let pull = timed("podman pull cosign-signed through trustgate", || {
        podman.pull(&format!("{tgh}/demo/app:signed"), None)
    });
    assert!(pull.success(), "{pull}\n{}", logs(&tg));
    assert_eq!(
        podman.image_digest(&format!("{tgh}/demo/app:signed")),
        signed.digest
    );
    let refused = podman.pull(&format!("{tgh}/demo/app:unsigned"), None);
    refused.assert_failure();
    assert!(refused.stderr.contains(&want), "{refused}");

    // docker (no content trust of its own).
    let dockerd = Dockerd::start(&t.sub("dockerd"));
    let signed_ref = format!("{tgh}/demo/app:signed");
    let out = timed("docker pull cosign-signed through trustgate", || {
        dockerd.pull(&signed_ref)
    });
    assert!(out.success(), "{out}\n{}", logs(&tg));
    assert_eq!(
        dockerd.repo_digests(&signed_ref),
        vec![format!("{tgh}/demo/app@{}", signed.digest)]
    );
    let refused = dockerd.pull(&format!("{tgh}/demo/app:unsigned"));
    refused.assert_failure();
    assert!(
        refused.stderr.contains("manifest unknown") && refused.stderr.contains(&want),
        "{refused}"
    );

    // OCI 1.1 discovery through trustgate, although the registry has no referrers API.
    let list = support::http::get(&format!("{}/v2/demo/app/referrers/{}", tg.url(), v3.digest))
        .expect("GET through trustgate");
    assert_eq!(list.status, 200, "{}", list.text());
    let v: serde_json::Value = serde_json::from_slice(&list.body).unwrap();
    assert_eq!(v["manifests"][0]["digest"], referrer.digest());
    assert_eq!(
        v["manifests"][0]["artifactType"],
        cosign::COSIGN_SIG_ARTIFACT
    );
    let m = support::http::get(&format!(
        "{}/v2/demo/app/manifests/{}",
        tg.url(),
        referrer.digest()
    ))
    .expect("GET through trustgate");
    assert_eq!(
        (m.status, m.body.as_slice()),
        (200, referrer.manifest.as_slice())
    );
    let s = support::http::get(&format!(
        "{}/v2/demo/app/manifests/{}",
        tg.url(),
        cosign::sig_tag(&signed.digest)
    ))
    .expect("GET through trustgate");
    assert_eq!(
        (s.status, s.body.as_slice()),
        (200, sig.manifest.as_slice())
    );

    // `trustgate verify`: every signature, its verifier and the verdict.
    let out = tg.cli(&["verify", "demo/app:signed"]);
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains(".sig tag"), "{out}");
    assert!(
        out.stdout.contains("acme: accepted, signed by key"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains(&format!("is trusted: {}", signed.digest)),
        "{out}"
    );
    let out = tg.cli(&["verify", "demo/app:unsigned"]);
    out.assert_failure();
    assert!(out.stderr.contains(&want), "{out}");

    // Air gap: seed, the registry gone, an offline mirror over the same store.
    let list_file = t.sub("seed").join("images.txt");
    std::fs::write(&list_file, "demo/app:v3\n").unwrap();
    let seeded = tg.cli(&["seed", list_file.to_str().unwrap()]);
    assert!(seeded.success(), "{seeded}");
    tg.stop();
    reg.stop();
    let offline = TrustgateOptions {
        // Appended right after the [[upstream]] table: it belongs to it.
        extra_toml: format!("offline = true\n\n{}", verifier_toml(&pub_key, &host)),
        ..opts
    };
    let tg = Trustgate::start(&t.sub("trustgate"), offline);
    let out = t.sub("copy-offline");
    let copy = skopeo.copy_to_dir(&format!("{}/demo/app:v3", tg.host()), &out, false, None);
    assert!(copy.success(), "{copy}\n{}", tg.logs());
    assert_same_tree(&v3.dir, &out);
    let refused = skopeo.inspect_raw(&format!("{}/demo/app:unsigned", tg.host()), None);
    refused.assert_failure();
}

fn reg_logs(t: &TestDir) -> String {
    std::fs::read_to_string(t.sub("registry").join("registry.log")).unwrap_or_default()
}
