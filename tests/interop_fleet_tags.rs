//! The signed tag history as a fleet record (issue 14: "the same for the cosign/Notation verdict
//! and tag-map records"), against real pieces: the CNCF registry holding cosign-signed images
//! (`.sig` tags made in code), moto as the shared S3 store, and two trustgate replicas. Replica
//! A serves the tag at digest 1, then at digest 2; the tag then moves back to digest 1, and
//! replica B, which never served the tag itself, counts the move back because it reads the
//! fleet's record. The in-process tests of `src/proxy/fleet_tags.rs` cover the store-down and
//! foreign-record cases.

mod support;

use std::path::Path;
use std::time::Duration;

use support::cosign::{self, CosignKey, Signed};
use support::http;
use support::image::{ImageSpec, Layout};
use support::registry::Registry;
use support::s3::{aws_env, S3Server};
use support::skopeo::Skopeo;
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

const BUCKET: &str = "trustgate-fleet-tags";

fn moved_back(tg: &Trustgate) -> f64 {
    let text = http::get(&format!("{}/metrics", tg.admin_url()))
        .unwrap()
        .text();
    text.lines()
        .filter_map(|l| l.strip_prefix("trustgate_signed_tag_moved_back_total"))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn sign(base: &str, key: &CosignKey, reference: &str, digest: &str) {
    let sig = cosign::sig_manifest(&[Signed::by(key, reference, digest)]);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(cosign::push(
            base,
            "demo/app",
            &cosign::sig_tag(digest),
            sig.media_type,
            &sig.manifest,
            &sig.blobs,
        ));
}

fn replica(dir: &Path, reg: &Registry, toml: &str) -> Trustgate {
    Trustgate::start(
        dir,
        TrustgateOptions {
            upstreams: vec![UpstreamConfig::default_for(reg)],
            extra_toml: toml.to_string(),
            env: aws_env(),
            ..Default::default()
        },
    )
}

#[test]
fn a_tag_moving_back_is_noticed_by_a_replica_that_never_served_it() {
    let t = TestDir::new("fleet-tags");
    let reg = Registry::start(&t.sub("registry"));
    let skopeo = Skopeo::new(&t.sub("skopeo"));
    let host = reg.host();
    let reference = format!("{host}/demo/app");
    let one = Layout::image(&t.sub("img-1"), &ImageSpec::small("one", 1));
    let two = Layout::image(&t.sub("img-2"), &ImageSpec::small("two", 1));
    let key = CosignKey::generate();
    let pub_key = key.write_public(&t.sub("keys"), "acme");
    one.push(&skopeo, &host, "demo/app", "t", None);
    two.push(&skopeo, &host, "demo/app", "two", None);
    sign(&reg.url(), &key, &reference, &one.digest);
    sign(&reg.url(), &key, &reference, &two.digest);

    let s3 = S3Server::start_moto(&t.path().join("s3"), BUCKET);
    let toml = format!(
        "{}\n[trust]\nrefresh = 1\n\n[[verifier]]\nname = \"acme\"\nkind = \"cosign\"\nkeys = [{:?}]\n\n[[policy]]\nrepositories = [\"{host}/demo/*\"]\ntrust = \"enforce\"\nverifiers = [\"acme\"]\n",
        s3.shared_toml(BUCKET, "tags", 10, 30),
        pub_key.display().to_string()
    );
    let a = replica(&t.sub("a"), &reg, &toml);
    let b = replica(&t.sub("b"), &reg, &toml);
    let raw = |tg: &Trustgate| {
        let out = skopeo.inspect_raw(&format!("{}/demo/app:t", tg.host()), None);
        assert!(out.success(), "{out}\n{}", tg.logs());
        out.stdout.into_bytes()
    };

    // A serves the tag at digest 1, then (the tag moved forward upstream) at digest 2.
    assert_eq!(raw(&a), one.manifest);
    two.push(&skopeo, &host, "demo/app", "t", None);
    // Past `refresh` A asks the upstream again and serves digest 2.
    let moved_on = support::proc::wait_until(Duration::from_secs(15), || {
        skopeo
            .inspect_raw(&format!("{}/demo/app:t", a.host()), None)
            .stdout
            .as_bytes()
            == two.manifest.as_slice()
    });
    assert!(moved_on, "A never served digest 2\n{}", a.logs());
    assert_eq!(moved_back(&a), 0.0, "{}", a.logs());

    // The tag moves back to digest 1 (still validly signed). B has never served it: only the
    // fleet's record tells it that digest 2 came after digest 1.
    one.push(&skopeo, &host, "demo/app", "t", None);
    assert_eq!(
        raw(&b),
        one.manifest,
        "the move back is counted, not refused"
    );
    assert_eq!(moved_back(&b), 1.0, "{}", b.logs());
    let records = s3.objects(BUCKET, "tags/");
    assert!(
        records.iter().any(|k| k.contains("signed-tags")),
        "the tag's fleet record lives in the bucket: {records:?}"
    );
}
