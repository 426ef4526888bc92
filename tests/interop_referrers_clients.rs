//! Real clients through the real trustgate binary against an upstream WITH the OCI 1.1 referrers
//! API (issues 12 and 13). The CNCF registry here has no referrers API (tests/interop_cosign.rs
//! and tests/interop_notation.rs cover the `.sig` tag and the fallback index there), so the
//! upstream is the in-process fake registry answering `/v2/<name>/referrers/<digest>`. skopeo
//! pulls a cosign-signed and a Notation-signed image whose only signatures are referrers, and is
//! refused an unsigned one with the message trustgate sends.

#[path = "support/inproc/mod.rs"]
mod inproc;
mod support;

use inproc::fake_upstream::FakeUpstream;
use support::cosign::{self, CosignKey, Signed};
use support::notation::NotationSigner;
use support::skopeo::Skopeo;
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

const REPO: &str = "demo/app";

/// A small OCI image (config and one layer): its manifest bytes and digest.
struct Image {
    manifest: Vec<u8>,
    digest: String,
}

fn put_image(fake: &FakeUpstream, tag: &str) -> Image {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","label":"{tag}"}}"#).into_bytes();
    let layer = format!("layer of {tag}").into_bytes();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": cosign::OCI_MANIFEST,
        "config": {"mediaType": cosign::OCI_CONFIG, "digest": cosign::digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": cosign::digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    fake.add_blob(&config);
    fake.add_blob(&layer);
    let digest = fake.add_manifest(REPO, tag, cosign::OCI_MANIFEST, &manifest);
    Image { manifest, digest }
}

fn put_referrer(fake: &FakeUpstream, a: &cosign::Artifact) {
    fake.add_untagged_manifest(REPO, a.media_type, &a.manifest);
    for b in &a.blobs {
        fake.add_blob(b);
    }
}

#[test]
fn skopeo_pulls_images_signed_only_through_the_referrers_api() {
    let t = TestDir::new("referrers-clients");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(FakeUpstream::start());
    fake.enable_referrers(true);
    let host = fake.base().trim_start_matches("http://").to_string();

    // cosign: a simple-signing referrer of demo/app:cosigned.
    let key = CosignKey::generate();
    let pub_key = key.write_public(&t.sub("keys"), "acme");
    let cosigned = put_image(&fake, "cosigned");
    let referrer = cosign::referrer_manifest(
        &cosigned.digest,
        cosigned.manifest.len(),
        &[Signed::by(
            &key,
            &format!("{host}/{REPO}"),
            &cosigned.digest,
        )],
    );
    put_referrer(&fake, &referrer);
    // Notation: a JWS signature manifest referring to demo/app:notarised.
    let signer = NotationSigner::generate("Acme", "acme-release");
    let root = signer.write_root(&t.sub("notation"), "acme");
    let notarised = put_image(&fake, "notarised");
    put_referrer(
        &fake,
        &signer.referrer(&notarised.manifest, cosign::OCI_MANIFEST),
    );
    // Nobody signed demo/app:unsigned.
    let unsigned = put_image(&fake, "unsigned");

    let extra = format!(
        "[[verifier]]\nname = \"acme\"\nkind = \"cosign\"\nkeys = [{:?}]\n\n\
         [[verifier]]\nname = \"acme-notation\"\nkind = \"notation\"\ntrust_store = [{:?}]\ntrusted_identities = [\"*\"]\n\n\
         [[policy]]\nrepositories = [\"{host}/{REPO}\"]\ntrust = \"enforce\"\nverifiers = [\"acme\", \"acme-notation\"]\nrequire = \"any\"\n",
        pub_key.display().to_string(),
        root.display().to_string(),
    );
    let opts = TrustgateOptions {
        upstreams: vec![UpstreamConfig {
            name: host.clone(),
            url: fake.base(),
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
    let skopeo = Skopeo::new(&t.sub("skopeo"));

    for img in [("cosigned", &cosigned), ("notarised", &notarised)] {
        let raw = skopeo.inspect_raw(&format!("{tgh}/{REPO}:{}", img.0), None);
        assert!(raw.success(), "{}: {raw}\n{}", img.0, tg.logs());
        assert_eq!(raw.stdout.as_bytes(), img.1.manifest.as_slice());
        let out = t.sub(&format!("copy-{}", img.0));
        let copy = skopeo.copy_to_dir(&format!("{tgh}/{REPO}:{}", img.0), &out, false, None);
        assert!(copy.success(), "{}: {copy}\n{}", img.0, tg.logs());
        let referrers = format!("/v2/{REPO}/referrers/{}", img.1.digest);
        assert!(
            fake.count(&referrers) >= 1,
            "{}: the signature was not looked up through the referrers API",
            img.0
        );
    }

    let refused = skopeo.inspect_raw(&format!("{tgh}/{REPO}:unsigned"), None);
    refused.assert_failure();
    assert!(
        refused.stderr.contains(&unsigned.digest) && refused.stderr.contains("signature"),
        "{refused}\n{}",
        tg.logs()
    );
    drop(tg);
    drop(rt);
}
