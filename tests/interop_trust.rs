//! Content-trust enforcement interop (issue 4): the real CNCF registry as upstream, a real
//! notary-server (local trust service, memory storage) holding trust data signed with the real
//! `notary` CLI exactly as `DOCKER_CONTENT_TRUST=1 docker push` signs it (GUN =
//! `<registry host:port>/<repository>`, target = tag, sha256 and length of the exact manifest
//! bytes, in `targets` or through a `targets/releases` delegation), and the real clients (skopeo,
//! podman, a real dockerd) pulling through trustgate.
//!
//! The trustgate upstream is named after the registry (`127.0.0.1:PORT`) and is the default
//! upstream, so clients pull `<trustgate>/<repository>:<tag>` and trustgate checks the GUN the
//! content was signed under.
//!
//! Each test has its own registry, notary-server and trustgate; two tests run trustgate
//! in-process where the clock must move (expiry) or a counter must be read (audit).
// The interop harness drives real processes (registry, notary-server, dockerd, the trustgate
// binary) and waits on them in wall-clock time with blocking calls, so std's Instant and
// thread::sleep are right here; clippy.toml bans them where time is injected.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

#[path = "support/inproc/mod.rs"]
mod inproc;

use std::fs;
use std::time::Duration;

use inproc::app::InProcess;
use support::docker::Dockerd;
use support::fake_notary::{self, FakeNotary};
use support::http::{self, Req, Response, MANIFEST_ACCEPT};
use support::image::{Format, ImageSpec, Layout};
use support::notary::NotaryCli;
use support::podman::Podman;
use support::signed::SignedEnv;
use support::skopeo::assert_same_tree;
use support::timed;
use support::trustgate::{self as tgc, PolicySpec, Trustgate, TrustgateOptions, UpstreamConfig};

/// A bit more than `[trust] refresh = 1`.
const PAST_REFRESH: Duration = Duration::from_millis(1500);

/// 15 days: past the 14-day expiry of the timestamp notary-server signs.
const FIFTEEN_DAYS: i64 = 15 * 24 * 3600;

/// `GET <base>/v2/<repo>/manifests/<reference>` with every manifest type in `Accept`.
fn get_manifest(base: &str, repo: &str, reference: &str) -> Response {
    http::request(
        &format!("{base}/v2/{repo}/manifests/{reference}"),
        &Req {
            accept: Some(MANIFEST_ACCEPT),
            ..Default::default()
        },
    )
    .expect("manifest request")
}

fn get_blob(base: &str, repo: &str, digest: &str) -> Response {
    http::get(&format!("{base}/v2/{repo}/blobs/{digest}")).expect("blob request")
}

/// The first OCI error of a response: (code, message).
fn oci_error(r: &Response) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("status {} body is not JSON ({e}): {}", r.status, r.text()));
    let e = &v["errors"][0];
    (
        e["code"].as_str().unwrap_or_default().to_string(),
        e["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// Assert a 200 answer carrying exactly `layout`'s manifest.
fn assert_serves(r: &Response, layout: &Layout, context: &str) {
    assert_eq!(r.status, 200, "{}: {}", context, r.text());
    assert_eq!(
        r.header("docker-content-digest"),
        Some(layout.digest.as_str())
    );
    assert!(r.body == layout.manifest, "{context}: other bytes served");
}

/// Assert a refusal with this status and OCI code whose message contains `needle`.
fn assert_refused(r: &Response, status: u16, code: &str, needle: &str, context: &str) {
    assert_eq!(r.status, status, "{context}: {}", r.text());
    let (c, m) = oci_error(r);
    assert_eq!(c, code, "{context}: {m}");
    assert!(m.contains(needle), "{context}: {m:?} lacks {needle:?}");
}

fn no_trust_data_message(gun: &str, notary_host: &str) -> String {
    format!("remote trust data does not exist for {gun}: {notary_host} does not have trust data for {gun}")
}

/// Items 1 and 2: skopeo, podman and docker pull signed tags (a single image signed in `targets`,
/// a multi-arch manifest list signed through `targets/releases`) through trustgate and get the
/// signed bytes; an unsigned tag of a signed repository and a repository without trust data are
/// refused, and each client prints trustgate's reason in Docker's words.
#[test]
fn clients_pull_signed_tags_and_show_refusals() {
    let env = SignedEnv::new("t-clients");
    let single = Layout::image(
        &env.dir("img-single"),
        &ImageSpec::text_and_random(
            "signed-single",
            ("etc/motd", "signed\n"),
            ("opt/big.bin", 1 << 20, 11),
        ),
    );
    let multi = Layout::index(
        &env.dir("img-multi"),
        Format::Docker,
        &[
            ImageSpec::small("signed-amd64", 2),
            ImageSpec::small("signed-arm64", 2).platform("linux", "arm64", Some("v8")),
        ],
    );
    let multi_oci = Layout::index(
        &env.dir("img-multi-oci"),
        Format::Oci,
        &[
            ImageSpec::small("signed-oci-amd64", 1),
            ImageSpec::small("signed-oci-arm64", 1).platform("linux", "arm64", Some("v8")),
        ],
    );
    let unsigned = env.image("unsigned", 1);
    let nosig = env.image("nosig", 1);
    env.push(&single, "demo/app", "v1");
    env.push(&unsigned, "demo/app", "unsigned");
    env.push(&multi, "demo/multi", "v1");
    env.push(&multi_oci, "demo/multi", "oci");
    env.push(&nosig, "demo/nosig", "v1");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &single, &[]);
    env.init_trust("demo/multi");
    env.cli.add_releases_delegation(&env.gun("demo/multi"));
    env.sign("demo/multi", "v1", &multi, &["targets/releases"]);
    env.sign("demo/multi", "oci", &multi_oci, &["targets/releases"]);

    let tg = env.trustgate("trustgate", None, vec![]);
    let unsigned_msg = "No valid trust data for unsigned";
    let nosig_gun = env.gun("demo/nosig");
    let nosig_msg = no_trust_data_message(&nosig_gun, &env.notary.host());

    // skopeo: byte-identical to a copy straight from the registry.
    for (i, (name, all)) in [
        ("demo/app:v1", false),
        ("demo/multi:v1", true),
        ("demo/multi:oci", true),
    ]
    .iter()
    .enumerate()
    {
        let direct = env.dir(&format!("direct-{i}"));
        let through = env.dir(&format!("through-{i}"));
        env.skopeo
            .copy_to_dir(&format!("{}/{name}", env.reg.host()), &direct, *all, None)
            .assert_success();
        let out = timed(&format!("skopeo copy {name} through trustgate"), || {
            env.skopeo
                .copy_to_dir(&format!("{}/{name}", tg.host()), &through, *all, None)
        });
        assert!(out.success(), "{out}\n{}", env.logs(Some(&tg)));
        assert_same_tree(&direct, &through);
    }
    let out = env.skopeo.copy_to_dir(
        &format!("{}/demo/app:unsigned", tg.host()),
        &env.dir("refused-0"),
        false,
        None,
    );
    out.assert_failure();
    assert!(out.stderr.contains(unsigned_msg), "{out}");
    let out = env.skopeo.copy_to_dir(
        &format!("{}/demo/nosig:v1", tg.host()),
        &env.dir("refused-1"),
        false,
        None,
    );
    out.assert_failure();
    assert!(out.stderr.contains(&nosig_msg), "{out}");

    // podman: the pulled image's digest is the signed one (the list's for the multi-arch tag).
    let podman = Podman::new(&env.dir("podman"));
    for (name, layout) in [("demo/app:v1", &single), ("demo/multi:v1", &multi)] {
        let r = format!("{}/{name}", tg.host());
        let out = timed(&format!("podman pull {name}"), || podman.pull(&r, None));
        assert!(out.success(), "{out}\n{}", env.logs(Some(&tg)));
        assert_eq!(podman.image_digest(&r), layout.digest, "{name}");
    }
    let out = podman.pull(&format!("{}/demo/app:unsigned", tg.host()), None);
    out.assert_failure();
    assert!(out.stderr.contains(unsigned_msg), "{out}");
    let out = podman.pull(&format!("{}/demo/nosig:v1", tg.host()), None);
    out.assert_failure();
    assert!(out.stderr.contains(&nosig_msg), "{out}");

    // docker (a real dockerd, no content trust of its own).
    let dockerd = timed("dockerd start", || Dockerd::start(&env.dir("dockerd")));
    for (name, layout) in [("demo/app:v1", &single), ("demo/multi:v1", &multi)] {
        let r = format!("{}/{name}", tg.host());
        let out = timed(&format!("docker pull {name}"), || dockerd.pull(&r));
        assert!(
            out.success(),
            "{out}\n{}\n{}",
            env.logs(Some(&tg)),
            dockerd.log()
        );
        let repo = name.split(':').next().unwrap();
        assert_eq!(
            dockerd.repo_digests(&r),
            vec![format!("{}/{repo}@{}", tg.host(), layout.digest)]
        );
    }
    let out = dockerd.pull(&format!("{}/demo/app:unsigned", tg.host()));
    out.assert_failure();
    assert!(
        out.stderr
            .contains(&format!("manifest unknown: {unsigned_msg}")),
        "{out}"
    );
    let out = dockerd.pull(&format!("{}/demo/nosig:v1", tg.host()));
    out.assert_failure();
    assert!(
        out.stderr
            .contains(&format!("manifest unknown: {nosig_msg}")),
        "{out}"
    );

    // By digest, as content-trust clients pull: the signed image is served, an image no signed
    // tag reaches is refused with the reason.
    let by_digest = format!("{}/demo/app@{}", tg.host(), single.digest);
    let out = dockerd.pull(&by_digest);
    assert!(out.success(), "{out}\n{}", env.logs(Some(&tg)));
    let out = dockerd.pull(&format!("{}/demo/app@{}", tg.host(), unsigned.digest));
    out.assert_failure();
    assert!(
        out.stderr.contains("denied:") && out.stderr.contains("not reachable from any signed tag"),
        "{out}"
    );

    // A client that does not accept the signed manifest's type gets no converted manifest.
    let r = http::request(
        &format!("{}/v2/demo/multi/manifests/v1", tg.url()),
        &Req {
            accept: Some("application/vnd.docker.distribution.manifest.v2+json"),
            ..Default::default()
        },
    )
    .unwrap();
    assert_refused(
        &r,
        404,
        "MANIFEST_UNKNOWN",
        "never converts signed manifests",
        "list not accepted",
    );

    // The answers behind those messages.
    assert_refused(
        &get_manifest(&tg.url(), "demo/app", "unsigned"),
        404,
        "MANIFEST_UNKNOWN",
        unsigned_msg,
        "unsigned tag",
    );
    assert_refused(
        &get_manifest(&tg.url(), "demo/nosig", "v1"),
        404,
        "MANIFEST_UNKNOWN",
        &nosig_msg,
        "no trust data",
    );
}

/// Item 3: the upstream lies. (a) The tag is re-pushed with another manifest after signing:
/// trustgate never asks the upstream for the tag, so it keeps serving the signed bytes.
/// (b) The registry serves other bytes for the signed digest itself (its storage was edited):
/// refused with 403 DENIED mentioning possible tampering, logged, and not cached — once the
/// upstream serves the right bytes again, the same tag is served.
#[test]
fn tampered_upstream_is_refused_logged_and_not_cached() {
    let env = SignedEnv::new("t-tamper");
    let signed = env.image("tamper-signed", 2);
    let other = env.image("tamper-other", 2);
    let second = env.image("tamper-second", 1);
    env.push(&signed, "demo/app", "v1");
    env.push(&second, "demo/app", "v2");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &signed, &[]);
    env.sign("demo/app", "v2", &second, &[]);

    // (a) The tag moves upstream after signing.
    env.push(&other, "demo/app", "v1");
    assert_serves(
        &get_manifest(&env.reg.url(), "demo/app", "v1"),
        &other,
        "registry after the re-push",
    );
    let tg = env.trustgate("trustgate", None, vec![]);
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", "v1"),
        &signed,
        "trustgate after the re-push",
    );
    let copied = env.dir("copy-v1");
    let out = env
        .skopeo
        .copy_to_dir(&format!("{}/demo/app:v1", tg.host()), &copied, false, None);
    assert!(out.success(), "{out}\n{}", env.logs(Some(&tg)));
    assert_same_tree(&signed.dir, &copied);

    // (b) The registry serves other bytes under the signed digest of v2.
    let data = env.blob_data_path(&second.digest);
    assert_eq!(
        fs::read(&data).expect("manifest data file"),
        second.manifest
    );
    fs::write(&data, &other.manifest).expect("tamper");
    let r = get_manifest(&tg.url(), "demo/app", "v2");
    assert_refused(&r, 403, "DENIED", "possible tampering", "tampered v2");
    let (_, msg) = oci_error(&r);
    assert!(msg.contains(&second.digest), "{msg}");
    let out = env
        .skopeo
        .inspect_raw(&format!("{}/demo/app:v2", tg.host()), None);
    out.assert_failure();
    assert!(
        out.stderr.contains("denied") && out.stderr.contains("possible tampering"),
        "{out}"
    );
    assert!(
        tg.log().contains("tampering"),
        "trustgate did not log the tampering:\n{}",
        tg.log()
    );
    // By digest too (as content-trust clients pull): the same refusal, not a 5xx.
    let r = get_manifest(&tg.url(), "demo/app", &second.digest);
    assert_refused(
        &r,
        403,
        "DENIED",
        "possible tampering",
        "tampered, by digest",
    );

    // A correct upstream again: served (the bad bytes were not cached).
    fs::write(&data, &second.manifest).expect("restore");
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", "v2"),
        &second,
        "after restoring the upstream",
    );
    let copied = env.dir("copy-v2");
    let out = env
        .skopeo
        .copy_to_dir(&format!("{}/demo/app:v2", tg.host()), &copied, false, None);
    assert!(out.success(), "{out}\n{}", env.logs(Some(&tg)));
    assert_same_tree(&second.dir, &copied);

    // A signed image's layer with other bytes upstream after it was cached: the verified copy
    // keeps being served (the cache answers; the upstream is not asked again). A layer that is
    // tampered before it was ever cached is never delivered whole:
    // interop_trust_clients.rs, corrupted_upstream_blob_is_not_served_or_cached.
    let layer = &signed.images[0].layers[1];
    let layer_data = env.blob_data_path(&layer.digest);
    let good = fs::read(&layer_data).expect("layer data file");
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    fs::write(&layer_data, &bad).expect("tamper layer");
    let r = get_blob(&tg.url(), "demo/app", &layer.digest);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(http::sha256_digest(&r.body), layer.digest);
    let copied = env.dir("copy-after-layer-tamper");
    let out = env
        .skopeo
        .copy_to_dir(&format!("{}/demo/app:v1", tg.host()), &copied, false, None);
    assert!(out.success(), "{out}\n{}", env.logs(Some(&tg)));
    assert_same_tree(&signed.dir, &copied);
    fs::write(&layer_data, &good).expect("restore layer");
}

/// Item 4 (refresh, rollback): a tag re-signed to a new digest is served once the refresh
/// interval has passed; a Notary server that replays older metadata (files captured from the
/// real notary-server before the re-signing) is refused as a rollback.
#[test]
fn resigned_tag_served_after_refresh_and_replayed_metadata_refused() {
    let env = SignedEnv::new("t-refresh");
    let first = env.image("refresh-first", 1);
    let second = env.image("refresh-second", 1);
    env.push(&first, "demo/app", "v1");
    env.push(&second, "demo/app", "next");
    let gun = env.gun("demo/app");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &first, &[]);
    let before = fake_notary::capture(&env.notary, &gun);

    let tg = env.trustgate("trustgate", Some(1), vec![]);
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", "v1"),
        &first,
        "first signature",
    );

    // Re-sign v1 to the other image.
    env.sign("demo/app", "v1", &second, &[]);
    let after = fake_notary::capture(&env.notary, &gun);
    assert_ne!(before["timestamp.json"], after["timestamp.json"]);
    std::thread::sleep(PAST_REFRESH);
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", "v1"),
        &second,
        "re-signed, after the refresh interval",
    );
    let out = env
        .skopeo
        .inspect_raw(&format!("{}/demo/app:v1", tg.host()), None);
    assert!(out.success(), "{out}");
    assert_eq!(out.stdout.as_bytes(), second.manifest.as_slice());
    // The image v1 no longer names is no longer reachable from a signed tag: its manifest and
    // blobs are refused by digest, although trustgate served them before the re-signing.
    let needle = format!("is not reachable from any signed tag of {gun}");
    assert_refused(
        &get_manifest(&tg.url(), "demo/app", &first.digest),
        403,
        "DENIED",
        &needle,
        "previously signed manifest",
    );
    let old_layer = &first.images[0].layers[0].digest;
    assert_refused(
        &get_blob(&tg.url(), "demo/app", old_layer),
        403,
        "DENIED",
        &needle,
        "previously signed blob",
    );
    // A tag removed from the trust data is refused after the refresh interval.
    env.cli.run(&["remove", &gun, "v1", "-p"]).assert_success();
    std::thread::sleep(PAST_REFRESH);
    assert_refused(
        &get_manifest(&tg.url(), "demo/app", "v1"),
        404,
        "MANIFEST_UNKNOWN",
        "No valid trust data for v1",
        "removed tag",
    );
    assert_refused(
        &get_manifest(&tg.url(), "demo/app", &second.digest),
        403,
        "DENIED",
        &needle,
        "image of the removed tag",
    );

    // A Notary server (plain http) serving the current files, then replaying the older ones.
    let fake = FakeNotary::start(after);
    let replay = timed("trustgate (fake notary) start", || {
        Trustgate::start(
            &env.dir("trustgate-replay"),
            TrustgateOptions {
                upstreams: vec![
                    UpstreamConfig::default_for(&env.reg).with_notary_url(&fake.url(), None)
                ],
                refresh: Some(1),
                ..Default::default()
            },
        )
    });
    assert_serves(
        &get_manifest(&replay.url(), "demo/app", "v1"),
        &second,
        "current metadata from the fake notary",
    );
    assert!(
        fake.requests()
            .iter()
            .any(|p| p == &format!("/v2/{gun}/_trust/tuf/timestamp.json")),
        "{:?}",
        fake.requests()
    );
    fake.replace(before);
    std::thread::sleep(PAST_REFRESH);
    let r = get_manifest(&replay.url(), "demo/app", "v1");
    assert_refused(&r, 403, "DENIED", "is lower than current version", "replay");
    let out = env
        .skopeo
        .inspect_raw(&format!("{}/demo/app:v1", replay.host()), None);
    out.assert_failure();
    assert!(out.stderr.contains("potential malicious behavior"), "{out}");
    assert!(
        replay.log().contains("lower than current version"),
        "{}",
        replay.log()
    );
    // The versions seen are persisted: a restarted trustgate still refuses the replay.
    let mut replay = replay;
    timed("trustgate (fake notary) restart", || replay.restart());
    assert_refused(
        &get_manifest(&replay.url(), "demo/app", "v1"),
        403,
        "DENIED",
        "is lower than current version",
        "replay after restart",
    );
}

/// Items 4 (expiry), 5 (Notary down, clock moved) and 7 (the audit counter), with the proxy
/// in-process and a clock the test moves: after a good pull, a clock 15 days ahead makes the
/// timestamp expired (refused with Docker's `out-of-date` words); with the real clock again the
/// tag is served; with notary-server stopped, the verified trust data keeps serving until the
/// clock passes its expiry, then the refusal says why. An unsigned tag in an `audit` repository is
/// served and counted.
#[test]
fn in_process_expiry_outage_and_audit_counter() {
    let mut env = SignedEnv::new("t-inproc");
    let signed = env.image("inproc-signed", 1);
    let audited = env.image("inproc-audited", 1);
    env.push(&signed, "demo/app", "v1");
    env.push(&audited, "demo/audit", "unsigned");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &signed, &[]);
    env.init_trust("demo/audit");
    env.sign("demo/audit", "v1", &signed, &[]);
    let gun = env.gun("demo/app");

    let dir = env.dir("inproc");
    let toml = tgc::config_toml(
        &dir,
        "127.0.0.1:0",
        &dir.join("data"),
        &env.options(
            Some(1),
            vec![PolicySpec::new(&[&env.gun("demo/audit")], "audit")],
        ),
    );
    let tg = InProcess::start(&toml, &dir.join("trustgate.toml"));
    assert_serves(&get_manifest(&tg.url(), "demo/app", "v1"), &signed, "good");

    // Expired (notary-server up, but its timestamp is 14 days valid).
    tg.set_clock_offset(FIFTEEN_DAYS);
    let r = get_manifest(&tg.url(), "demo/app", "v1");
    assert_refused(
        &r,
        403,
        "DENIED",
        &format!("remote repository {gun} out-of-date: timestamp expired at"),
        "expired",
    );
    tg.set_clock_offset(0);
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", "v1"),
        &signed,
        "real clock again",
    );

    // Audit: served although enforce would refuse, and counted.
    assert_eq!(tg.proxy.audit_would_refuse(), 0);
    assert_serves(
        &get_manifest(&tg.url(), "demo/audit", "unsigned"),
        &audited,
        "audit mode, unsigned tag",
    );
    assert_eq!(tg.proxy.audit_would_refuse(), 1);
    // A signed tag the upstream now serves differently: served as the upstream has it, counted.
    env.push(&audited, "demo/audit", "v1");
    assert_serves(
        &get_manifest(&tg.url(), "demo/audit", "v1"),
        &audited,
        "audit mode, tag moved upstream",
    );
    assert_eq!(tg.proxy.audit_would_refuse(), 2);

    // Notary down: cached trust keeps serving while it is unexpired...
    env.notary.stop();
    std::thread::sleep(PAST_REFRESH);
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", "v1"),
        &signed,
        "notary down, trust cached",
    );
    // ...and no longer once it has expired, saying why.
    tg.set_clock_offset(FIFTEEN_DAYS);
    let r = get_manifest(&tg.url(), "demo/app", "v1");
    assert_refused(
        &r,
        403,
        "DENIED",
        "out-of-date: timestamp expired at",
        "notary down, expired",
    );
}

/// `skopeo copy TG/demo/app:v1 dir:` gives exactly `layout`'s files.
fn pull_same(env: &SignedEnv, tg: &Trustgate, layout: &Layout, n: &str) {
    let out_dir = env.dir(&format!("copy-{n}"));
    let out = env
        .skopeo
        .copy_to_dir(&format!("{}/demo/app:v1", tg.host()), &out_dir, false, None);
    assert!(out.success(), "{n}: {out}\n{}", tg.logs());
    assert_same_tree(&layout.dir, &out_dir);
}

/// Item 5 (process): after a good pull the notary-server stops; the cached trust keeps serving,
/// also after trustgate restarts (the persisted state under storage.path is re-verified
/// offline); an unsigned tag stays refused.
#[test]
fn notary_down_serves_cached_and_persisted_trust() {
    let mut env = SignedEnv::new("t-outage");
    let signed = env.image("outage-signed", 2);
    let unsigned = env.image("outage-unsigned", 1);
    env.push(&signed, "demo/app", "v1");
    env.push(&unsigned, "demo/app", "unsigned");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &signed, &[]);
    let mut tg = env.trustgate("trustgate", Some(1), vec![]);
    pull_same(&env, &tg, &signed, "good");
    assert!(tg.dir().join("data/trust").read_dir().unwrap().count() > 0);

    let never = env.image("outage-never", 1);
    env.push(&never, "demo/never", "v1");
    env.init_trust("demo/never");
    env.sign("demo/never", "v1", &never, &[]);
    env.notary.stop();
    std::thread::sleep(PAST_REFRESH);
    // Never verified before the outage: nothing to fall back on, refused with the reason.
    assert_refused(
        &get_manifest(&tg.url(), "demo/never", "v1"),
        403,
        "DENIED",
        "error contacting notary server",
        "notary down, nothing verified",
    );
    pull_same(&env, &tg, &signed, "notary-down");
    assert!(
        tg.log().contains("Notary server unreachable"),
        "{}",
        tg.log()
    );

    timed("trustgate restart", || tg.restart());
    pull_same(&env, &tg, &signed, "restarted-notary-down");
    assert_refused(
        &get_manifest(&tg.url(), "demo/app", "unsigned"),
        404,
        "MANIFEST_UNKNOWN",
        "No valid trust data for unsigned",
        "unsigned, offline",
    );
}

/// Item 6: trust data deleted and re-created under a new root key is refused with a message that
/// names `trustgate trust reset`; after running that command the re-signed tag is served.
#[test]
fn new_root_refused_until_trust_reset() {
    let env = SignedEnv::new("t-reset");
    let first = env.image("reset-first", 1);
    let second = env.image("reset-second", 1);
    env.push(&first, "demo/app", "v1");
    env.push(&second, "demo/app", "v2");
    let gun = env.gun("demo/app");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &first, &[]);
    let tg = env.trustgate("trustgate", Some(1), vec![]);
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", "v1"),
        &first,
        "first root",
    );
    // A proper root rotation (the new root signed by the old key too) is followed, no reset.
    let root_version = || -> u64 {
        let r = env.notary.get_metadata(&gun, "root.json");
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("root.json");
        v["signed"]["version"].as_u64().expect("root version")
    };
    let before = root_version();
    let rotate = env.cli.run_confirmed(&["key", "rotate", &gun, "root"]);
    rotate.assert_success();
    std::thread::sleep(PAST_REFRESH);
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", "v1"),
        &first,
        "after a proper root rotation",
    );
    assert!(root_version() > before, "the root was not rotated");

    // Delete the trust data and start over from a fresh trust dir: a new root key.
    env.cli.run(&["delete", &gun, "--remote"]).assert_success();
    let cli2 = NotaryCli::new(&env.notary, &env.dir("notary-cli-2"));
    timed("notary init (new root)", || {
        cli2.init_with_server_snapshot(&gun)
    });
    cli2.sign_manifest(&gun, "v1", &second.manifest, &[]);
    std::thread::sleep(PAST_REFRESH);

    let r = get_manifest(&tg.url(), "demo/app", "v1");
    assert_refused(
        &r,
        403,
        "DENIED",
        &format!("trustgate trust reset {gun}"),
        "new root",
    );
    let out = env
        .skopeo
        .inspect_raw(&format!("{}/demo/app:v1", tg.host()), None);
    out.assert_failure();
    assert!(out.stderr.contains("trustgate trust reset"), "{out}");

    let reset = tg.cli(&["trust", "reset", &gun]);
    reset.assert_success();
    assert!(reset.stdout.contains(&gun), "{reset}");
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", "v1"),
        &second,
        "after trust reset",
    );
}

/// Item 7: in an enforced repository, a digest that no signed tag reaches (another image pushed
/// to the same repository) is refused, manifest and blob alike, while the signed image's own
/// manifest and blobs are served by digest. A repository under an `audit` policy serves its
/// unsigned tag and logs that enforce would have refused it.
#[test]
fn digests_outside_the_signed_closure_refused_and_audit_serves() {
    let env = SignedEnv::new("t-closure");
    let signed = env.image("closure-signed", 2);
    let stray = env.image("closure-stray", 2);
    let audited = env.image("closure-audited", 1);
    env.push(&signed, "demo/app", "v1");
    env.push(&stray, "demo/app", "stray");
    env.push(&signed, "demo/audit", "v1");
    env.push(&audited, "demo/audit", "unsigned");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &signed, &[]);
    env.init_trust("demo/audit");
    env.sign("demo/audit", "v1", &signed, &[]);
    env.push(&audited, "free/app", "latest");
    let tg = env.trustgate(
        "trustgate",
        None,
        vec![
            PolicySpec::new(&[&env.gun("demo/audit")], "audit"),
            // A glob: everything under free/ is plain pull-through.
            PolicySpec::new(&[&format!("{}/free/*", env.reg.host())], "off"),
        ],
    );

    // Nothing was pulled by tag yet: the closure is built from the signed targets.
    for blob in signed.blob_digests() {
        let r = get_blob(&tg.url(), "demo/app", &blob);
        assert_eq!(r.status, 200, "signed blob {blob}: {}", r.text());
        assert_eq!(http::sha256_digest(&r.body), blob);
    }
    assert_serves(
        &get_manifest(&tg.url(), "demo/app", &signed.digest),
        &signed,
        "signed manifest by digest",
    );
    let needle = format!(
        "is not reachable from any signed tag of {}",
        env.gun("demo/app")
    );
    assert_refused(
        &get_manifest(&tg.url(), "demo/app", &stray.digest),
        403,
        "DENIED",
        &needle,
        "stray manifest",
    );
    let stray_layer = &stray.images[0].layers[0].digest;
    assert!(!signed.blob_digests().contains(stray_layer));
    assert_refused(
        &get_blob(&tg.url(), "demo/app", stray_layer),
        403,
        "DENIED",
        &needle,
        "stray blob",
    );
    let out = env
        .skopeo
        .inspect_raw(&format!("{}/demo/app@{}", tg.host(), stray.digest), None);
    out.assert_failure();
    assert!(
        out.stderr.contains("not reachable from any signed tag"),
        "{out}"
    );

    // Audit mode: the unsigned tag is served as the upstream has it, and logged.
    let out_dir = env.dir("copy-audit");
    let out = env.skopeo.copy_to_dir(
        &format!("{}/demo/audit:unsigned", tg.host()),
        &out_dir,
        false,
        None,
    );
    assert!(out.success(), "{out}\n{}", tg.logs());
    assert_same_tree(&audited.dir, &out_dir);
    let log = tg.log();
    assert!(
        log.lines()
            .any(|l| l.contains("audit") && l.contains("unsigned")),
        "no audit line in the log:\n{log}"
    );

    // trust = "off": served without any trust data.
    assert_serves(
        &get_manifest(&tg.url(), "free/app", "latest"),
        &audited,
        "policy off",
    );
}

/// Item 8: `trustgate verify` prints the signed tags with digest and signer role, exits 0 for a
/// signed tag and non-zero with the reason for an unsigned one; `tags/list` through trustgate
/// lists only the signed tags.
#[test]
fn verify_command_and_signed_tags_list() {
    let env = SignedEnv::new("t-verify");
    let admin = env.image("verify-admin", 1);
    let release = env.image("verify-release", 1);
    let unsigned = env.image("verify-unsigned", 1);
    env.push(&admin, "demo/app", "v1");
    env.push(&release, "demo/app", "v2");
    env.push(&unsigned, "demo/app", "unsigned");
    let gun = env.gun("demo/app");
    env.init_trust("demo/app");
    env.sign("demo/app", "v1", &admin, &[]);
    env.cli.add_releases_delegation(&gun);
    env.sign("demo/app", "v2", &release, &["targets/releases"]);
    let tg = env.trustgate("trustgate", None, vec![]);

    let hex = |l: &Layout| l.digest.trim_start_matches("sha256:").to_string();
    let out = tg.cli(&["verify", &gun]);
    assert!(out.success(), "{out}");
    let line = |tag: &str| {
        out.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(tag))
            .unwrap_or_else(|| panic!("no line for {tag}: {out}"))
            .to_string()
    };
    let v1 = line("v1");
    assert!(
        v1.contains(&hex(&admin)) && v1.contains("Repo Admin"),
        "{v1}"
    );
    let v2 = line("v2");
    assert!(
        v2.contains(&hex(&release)) && v2.contains("releases"),
        "{v2}"
    );
    assert!(!out.stdout.contains("unsigned"), "{out}");

    let out = tg.cli(&["verify", &format!("{gun}:v2")]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .contains(&format!("{gun}:v2 is trusted: {}", release.digest)),
        "{out}"
    );
    // A bare name goes to the default upstream: the same GUN.
    let out = tg.cli(&["verify", "demo/app:v1"]);
    assert!(out.success(), "{out}");
    assert!(
        out.stdout
            .contains(&format!("{gun}:v1 is trusted: {}", admin.digest)),
        "{out}"
    );
    let out = tg.cli(&["verify", &format!("{gun}:unsigned")]);
    out.assert_failure();
    assert!(
        out.stderr.contains("No valid trust data for unsigned"),
        "{out}"
    );

    let tags = |base: &str| -> Vec<String> {
        let r = http::get(&format!("{base}/v2/demo/app/tags/list")).expect("tags/list");
        assert_eq!(r.status, 200, "{}", r.text());
        let v: serde_json::Value = serde_json::from_slice(&r.body).expect("tags json");
        let mut t: Vec<String> = v["tags"]
            .as_array()
            .expect("tags array")
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    assert_eq!(tags(&env.reg.url()), vec!["unsigned", "v1", "v2"]);

    // A policy requiring the releases signer refuses the tag only the repository key signed.
    let strict = env.trustgate(
        "trustgate-strict",
        None,
        vec![PolicySpec {
            signers: vec!["targets/releases".into()],
            ..PolicySpec::new(&[&gun], "enforce")
        }],
    );
    assert_serves(
        &get_manifest(&strict.url(), "demo/app", "v2"),
        &release,
        "signed by releases",
    );
    assert_refused(
        &get_manifest(&strict.url(), "demo/app", "v1"),
        404,
        "MANIFEST_UNKNOWN",
        "required signer targets/releases did not sign it",
        "signed by the repository key only",
    );
    let out = strict.cli(&["verify", &format!("{gun}:v1")]);
    out.assert_failure();
    assert!(out.stderr.contains("targets/releases"), "{out}");
    assert_eq!(tags(&tg.url()), vec!["v1", "v2"]);
    // Paginated by trustgate over the signed tags.
    let r = http::get(&format!("{}/v2/demo/app/tags/list?n=1", tg.url())).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["v1"]));
    let link = r.header("link").unwrap_or_default().to_string();
    assert!(
        link.contains("last=v1") && link.contains("rel=\"next\""),
        "{link}"
    );
    let r = http::get(&format!("{}/v2/demo/app/tags/list?n=1&last=v1", tg.url())).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["tags"], serde_json::json!(["v2"]));

    // A repository without trust data: no tags to list, and `verify` says why.
    let nosig = env.image("verify-nosig", 1);
    env.push(&nosig, "demo/nosig", "v1");
    let nosig_msg = no_trust_data_message(&env.gun("demo/nosig"), &env.notary.host());
    let r = http::get(&format!("{}/v2/demo/nosig/tags/list", tg.url())).unwrap();
    assert_refused(
        &r,
        404,
        "MANIFEST_UNKNOWN",
        &nosig_msg,
        "tags/list, no trust data",
    );
    let out = tg.cli(&["verify", &format!("{}:v1", env.gun("demo/nosig"))]);
    out.assert_failure();
    assert!(out.stderr.contains(&nosig_msg), "{out}");

    // HEAD of an unsigned tag: the status only (no body), the reason in trustgate's log.
    let r = http::request(
        &format!("{}/v2/demo/app/manifests/unsigned", tg.url()),
        &Req {
            method: Some("HEAD"),
            accept: Some(MANIFEST_ACCEPT),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty());
    assert!(
        tg.log()
            .lines()
            .any(|l| l.contains("HEAD") && l.contains("No valid trust data for unsigned")),
        "{}",
        tg.log()
    );
}
