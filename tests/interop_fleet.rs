//! A fleet of trustgate replicas (the real binary) on one real S3 bucket (moto_server), issue 14:
//!
//! - three replicas, 30 concurrent cold pulls spread over them (skopeo and curl): exactly one
//!   upstream GET per blob in the CNCF registry's access log, every byte right, every object in
//!   the bucket hashes to its name and no lease is left behind;
//! - `kill -9` of the lease holder mid-fill (its upstream stalls the body): another replica
//!   takes the fill over once the lease expires and serves the right bytes; nothing partial
//!   became visible in the bucket, no lease is left;
//! - the object store stopped mid-run (by its PID): pulls keep working from the local tier and
//!   the upstream, `/readyz` and the metrics say the store is down; restarted: fills are stored
//!   again;
//! - trust shared: two replicas at first contact, their Notary test doubles handing different
//!   valid roots (signed in code by `trust::testkit`): one pin fleet-wide, the other refuses;
//!   replica A verifies timestamp 10, replica B is offered 9 and refuses (rollback across the
//!   fleet);
//! - SeaweedFS instead of moto: the second replica answers HEAD and Range (a ranged read) and
//!   serves every blob from the bucket, with no upstream request;
//! - a store that accepts connections and never answers: timed out, pulls go on, unstored;
//! - `[fleet]`: a waiting replica streams the running fill from the lease holder's peer endpoint
//!   (one upstream fetch); the endpoint refuses requests without the fleet's secret;
//! - `[server] trusted_proxies`: the client named by a trusted hop is the one logged;
//! - `[server] proxy_protocol`: a trusted hop's PROXY header (v1 and v2) names the client in
//!   audit lines; an untrusted peer's header is not believed; a trusted hop without a header,
//!   or with a malformed one, is closed with a log line, never a panic.
//!
//! Bounding the shared tier (`max_size`, `max_age`) is in `interop_fleet_bounds.rs`.

mod support;

#[path = "support/inproc/fake_upstream.rs"]
mod fake_upstream;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use support::http::{self, sha256_digest};
use support::image::{ImageSpec, LayerSpec, Layout};
use support::proc;
use support::registry::Registry;
use support::s3::{aws_env, S3Server};
use support::skopeo::Skopeo;
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

const BUCKET: &str = "trustgate-fleet";

fn replica(dir: &Path, up: UpstreamConfig, shared_toml: &str) -> Trustgate {
    Trustgate::start(
        dir,
        TrustgateOptions {
            upstreams: vec![up],
            extra_toml: shared_toml.to_string(),
            env: aws_env(),
            ..Default::default()
        },
    )
}

/// `curl -sf URL -o FILE`; the bytes, or the failure.
fn curl(url: &str, scratch: &Path) -> Result<Vec<u8>, String> {
    std::fs::create_dir_all(scratch).unwrap();
    let out = scratch.join(format!("body-{}", proc::free_port()));
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-f", "--max-time", "120", "-o"])
        .arg(&out)
        .arg(url)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY");
    let r = proc::run(cmd, Duration::from_secs(150), scratch);
    if !r.success() {
        return Err(format!("curl {url}: {}", r.stderr));
    }
    std::fs::read(&out).map_err(|e| e.to_string())
}

fn metric(tg: &Trustgate, name: &str) -> f64 {
    let text = http::get(&format!("{}/metrics", tg.admin_url()))
        .unwrap()
        .text();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn no_leases_left(s3: &S3Server, prefix: &str) -> bool {
    proc::wait_until(Duration::from_secs(10), || {
        s3.objects(BUCKET, &format!("{prefix}/leases/")).is_empty()
    })
}

#[test]
fn three_replicas_thirty_cold_pulls_one_upstream_fetch_per_blob() {
    let t = TestDir::new("fleet-three");
    let reg = Registry::start(&t.path().join("registry"));
    let skopeo = Skopeo::new(&t.path().join("skopeo"));
    let spec = ImageSpec::new(
        "fleet",
        vec![
            LayerSpec::text("etc/fleet.txt", "one fetch per blob\n"),
            // Larger than one 5 MiB part: stored with a multipart upload.
            LayerSpec::random("data/big.bin", 7 * 1024 * 1024, 14),
            LayerSpec::random("data/small.bin", 300 * 1024, 15),
        ],
    );
    let layout = Layout::image(&t.path().join("image"), &spec);
    layout.push(&skopeo, &reg.host(), "demo/app", "v1", None);
    let blobs = layout.blob_digests();
    let before: Vec<usize> = blobs.iter().map(|d| reg.blob_gets(d)).collect();
    let manifest_path = format!("/manifests/{}", layout.digest);
    let manifest_before = reg.count_requests("GET", &manifest_path);

    let s3 = S3Server::start_moto(&t.path().join("s3"), BUCKET);
    let shared = s3.shared_toml(BUCKET, "fleet", 10, 30);
    let replicas: Vec<Trustgate> = (0..3)
        .map(|i| {
            replica(
                &t.path().join(format!("tg{i}")),
                UpstreamConfig::default_for(&reg),
                &shared,
            )
        })
        .collect();
    let replicas = Arc::new(replicas);

    let manifest_digest = layout.digest.clone();
    let mut pulls = Vec::new();
    for i in 0..30 {
        let replicas = replicas.clone();
        let blobs = blobs.clone();
        let root = t.path().join(format!("pull{i}"));
        let skopeo_dir = t.path().join(format!("skopeo{i}"));
        let manifest_digest = manifest_digest.clone();
        pulls.push(thread::spawn(move || {
            let tg = &replicas[i % 3];
            if i % 5 == 0 {
                let s = Skopeo::new(&skopeo_dir);
                let out = s.copy_to_dir(&format!("{}/demo/app:v1", tg.host()), &root, false, None);
                out.assert_success();
                for d in &blobs {
                    let bytes = std::fs::read(root.join(d.trim_start_matches("sha256:"))).unwrap();
                    assert_eq!(&sha256_digest(&bytes), d, "pull {i} (skopeo): wrong bytes");
                }
            } else {
                let m = curl(
                    &format!("{}/v2/demo/app/manifests/{manifest_digest}", tg.url()),
                    &root,
                )
                .unwrap_or_else(|e| panic!("pull {i}: {e}"));
                assert_eq!(sha256_digest(&m), manifest_digest);
                for d in &blobs {
                    let bytes = curl(&format!("{}/v2/demo/app/blobs/{d}", tg.url()), &root)
                        .unwrap_or_else(|e| panic!("pull {i}: {e}"));
                    assert_eq!(&sha256_digest(&bytes), d, "pull {i} (curl): wrong bytes");
                }
            }
        }));
    }
    for p in pulls {
        p.join().expect("a pull failed");
    }

    for (d, b) in blobs.iter().zip(&before) {
        assert_eq!(
            reg.blob_gets(d) - b,
            1,
            "{d}: the fleet must fetch each blob from the upstream exactly once\n{}",
            reg.access_log()
        );
    }
    // The manifest, asked by digest on every replica (and resolved from the tag to that digest
    // by skopeo's pulls), is fetched once by the fleet too: one lease per digest.
    assert_eq!(
        reg.count_requests("GET", &manifest_path) - manifest_before,
        1,
        "the fleet must fetch the manifest by digest from the upstream exactly once\n{}",
        reg.access_log()
    );
    // Every blob and the manifest are in the bucket, intact; no lease is left behind.
    assert!(proc::wait_until(Duration::from_secs(10), || {
        s3.assert_content_intact(BUCKET, "fleet") > blobs.len()
    }));
    assert!(
        no_leases_left(&s3, "fleet"),
        "leases left: {:?}",
        s3.objects(BUCKET, "fleet/leases/")
    );
    let waits: f64 = replicas
        .iter()
        .map(|r| metric(r, "trustgate_shared_lease_waits_total"))
        .sum();
    let hits: f64 = replicas
        .iter()
        .map(|r| metric(r, "trustgate_shared_hits_total"))
        .sum();
    assert!(
        waits + hits >= 1.0,
        "other replicas used the bucket (waits {waits}, hits {hits})"
    );
}

#[test]
fn killed_lease_holder_is_taken_over_after_expiry() {
    let t = TestDir::new("fleet-kill");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(fake_upstream::FakeUpstream::start());
    let blob: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let d = up.add_blob(&blob);
    let path = format!("/v2/demo/app/blobs/{d}");
    // The first fetch stalls after 1 MiB: its replica is killed while it holds the lease.
    up.script(
        &path,
        fake_upstream::Behavior::Stall {
            after: 1024 * 1024,
            stall: Duration::from_secs(600),
        },
    );
    let upstream = UpstreamConfig::plain_http(&up.base());
    let s3 = S3Server::start_moto(&t.path().join("s3"), BUCKET);
    let shared = s3.shared_toml(BUCKET, "kill", 10, 3);
    let mut a = replica(&t.path().join("a"), upstream.clone(), &shared);
    let b = replica(&t.path().join("b"), upstream, &shared);

    let url_a = format!("{}{path}", a.url());
    let scratch = t.path().join("curl-a");
    let stalled = thread::spawn(move || curl(&url_a, &scratch));
    assert!(
        proc::wait_until(Duration::from_secs(20), || {
            up.count(&path) == 1 && !s3.objects(BUCKET, "kill/leases/").is_empty()
        }),
        "replica A started the fill and holds the lease"
    );
    proc::signal(a.pid(), "KILL");
    a.wait_exit(Duration::from_secs(10));
    assert!(stalled.join().unwrap().is_err(), "A's client saw the kill");
    up.clear_script(&path);

    // B waits for the dead holder's lease to expire, takes the fill over, and serves it.
    let got = curl(&format!("{}{path}", b.url()), &t.path().join("curl-b")).expect("B serves it");
    assert_eq!(sha256_digest(&got), d, "right bytes after the takeover");
    assert_eq!(up.count(&path), 2, "one stalled fetch by A, one by B");
    assert!(metric(&b, "trustgate_shared_lease_takeovers_total") >= 1.0);
    // The upload completes just after the last byte reached the client.
    assert!(
        proc::wait_until(Duration::from_secs(10), || {
            s3.assert_content_intact(BUCKET, "kill") == 1
        }),
        "exactly the one object, intact"
    );
    assert!(no_leases_left(&s3, "kill"), "no stuck lease");
    drop(rt);
}

#[test]
fn store_down_pulls_go_on_and_fills_resume_after_restart() {
    let t = TestDir::new("fleet-down");
    let reg = Registry::start(&t.path().join("registry"));
    let skopeo = Skopeo::new(&t.path().join("skopeo"));
    let mut s3 = S3Server::start_moto(&t.path().join("s3"), BUCKET);
    let shared = s3.shared_toml(BUCKET, "down", 2, 30);
    let tg = replica(
        &t.path().join("tg"),
        UpstreamConfig::default_for(&reg),
        &shared,
    );
    let push = |tag: &str, seed: u64| {
        let spec = ImageSpec::new(tag, vec![LayerSpec::random("data/x.bin", 64 * 1024, seed)]);
        let layout = Layout::image(&t.path().join(format!("image-{tag}")), &spec);
        layout.push(&skopeo, &reg.host(), "demo/app", tag, None);
        layout.blob_digests()
    };
    let pull_blobs = |blobs: &[String], scratch: &str| {
        for d in blobs {
            let bytes = curl(
                &format!("{}/v2/demo/app/blobs/{d}", tg.url()),
                &t.path().join(scratch),
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", tg.log()));
            assert_eq!(&sha256_digest(&bytes), d);
        }
    };
    let first = push("one", 21);
    pull_blobs(&first, "c1");
    assert!(proc::wait_until(Duration::from_secs(10), || {
        s3.assert_content_intact(BUCKET, "down") == first.len()
    }));
    // The operator's checks cover the bucket: check-config writes a probe object, check-store
    // re-hashes what the bucket holds.
    let check_config = |tg: &Trustgate| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_trustgate"));
        cmd.arg("check-config")
            .arg(tg.config_path())
            .envs(aws_env());
        proc::run(cmd, Duration::from_secs(60), &tg.dir().join("check"))
    };
    check_config(&tg).assert_success();
    let out = tg.cli(&["check-store"]);
    out.assert_success();
    assert!(
        out.stdout.contains(&format!("{} objects", first.len())) && out.stdout.contains("0 bad"),
        "{}",
        out.stdout
    );

    s3.stop();
    let out = check_config(&tg);
    out.assert_failure();
    assert!(out.stderr.contains("storage.shared"), "{}", out.stderr);
    // Cached locally: still served. Not cached: served from the upstream, unstored.
    pull_blobs(&first, "c2");
    let second = push("two", 22);
    pull_blobs(&second, "c3");
    let ready = http::get(&format!("{}/readyz", tg.admin_url())).unwrap();
    assert_eq!(
        ready.status, 200,
        "a down shared store does not stop serving"
    );
    assert!(
        ready.text().contains("shared store"),
        "readyz says why: {}",
        ready.text()
    );
    assert_eq!(metric(&tg, "trustgate_shared_store_up"), 0.0);
    assert!(
        tg.log().contains("shared store unavailable"),
        "{}",
        tg.log()
    );

    s3.restart(BUCKET);
    let third = push("three", 23);
    // The first request after `retry_after` finds the store again; fills are stored again.
    assert!(
        proc::wait_until(Duration::from_secs(20), || {
            pull_blobs(&third, "c4");
            s3.assert_content_intact(BUCKET, "down") >= third.len()
        }),
        "fills stored again after the restart:\n{}",
        tg.log()
    );
    assert_eq!(metric(&tg, "trustgate_shared_store_up"), 1.0);
    assert!(tg.log().contains("shared store reachable again"));
}

/// Behind a load balancer: the client named by a trusted hop's `X-Forwarded-For` is the one in
/// the request log (the same address goes to audit lines and the login throttle); an untrusted
/// peer's header is ignored.
#[test]
fn trusted_proxies_name_the_client_untrusted_headers_are_ignored() {
    let t = TestDir::new("fleet-xff");
    let reg = Registry::start(&t.path().join("registry"));
    let start = |name: &str, server_toml: &str| {
        Trustgate::start(
            &t.path().join(name),
            TrustgateOptions {
                upstreams: vec![UpstreamConfig::default_for(&reg)],
                server_toml: server_toml.into(),
                extra_toml: "[log]\nformat = \"json\"\n".into(),
                env: vec![("RUST_LOG".into(), "info".into())],
                ..Default::default()
            },
        )
    };
    let behind = start("behind", "trusted_proxies = [\"127.0.0.0/8\"]\n");
    let open = start("open", "");
    for tg in [&behind, &open] {
        let r = http::request(
            &format!("{}/v2/", tg.url()),
            &http::Req {
                headers: vec![("X-Forwarded-For", "6.6.6.6, 203.0.113.7")],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    let client_of = |tg: &Trustgate| -> String {
        tg.stderr()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "request")
            .map(|v| v["client"].as_str().unwrap_or_default().to_string())
            .expect("a request line")
    };
    assert_eq!(
        client_of(&behind),
        "203.0.113.7:0",
        "the hop next to the balancer, not the forged one"
    );
    assert!(
        client_of(&open).starts_with("127.0.0.1:"),
        "no trusted proxies: the peer"
    );
}

/// The same fleet behaviour on SeaweedFS, a real distributed object store: two replicas, a cold
/// pull through one, then the other serves every blob from the bucket without asking the
/// upstream; the bucket holds only verified objects and no lease.
#[test]
fn seaweedfs_shared_tier_serves_the_second_replica_from_the_bucket() {
    let t = TestDir::new("fleet-seaweed");
    let reg = Registry::start(&t.path().join("registry"));
    let skopeo = Skopeo::new(&t.path().join("skopeo"));
    let spec = ImageSpec::new(
        "seaweed",
        vec![
            LayerSpec::random("data/big.bin", 6 * 1024 * 1024, 31),
            LayerSpec::text("etc/x.txt", "seaweed\n"),
        ],
    );
    let layout = Layout::image(&t.path().join("image"), &spec);
    layout.push(&skopeo, &reg.host(), "demo/app", "v1", None);
    let s3 = S3Server::start_seaweedfs(&t.path().join("s3"), BUCKET);
    let shared = s3.shared_toml(BUCKET, "sw", 10, 30);
    let a = replica(
        &t.path().join("a"),
        UpstreamConfig::default_for(&reg),
        &shared,
    );
    let b = replica(
        &t.path().join("b"),
        UpstreamConfig::default_for(&reg),
        &shared,
    );
    let blobs = layout.blob_digests();
    for d in &blobs {
        let bytes = curl(
            &format!("{}/v2/demo/app/blobs/{d}", a.url()),
            &t.path().join("ca"),
        )
        .unwrap();
        assert_eq!(&sha256_digest(&bytes), d);
    }
    assert!(
        proc::wait_until(Duration::from_secs(20), || {
            s3.assert_content_intact(BUCKET, "sw") == blobs.len()
        }),
        "every blob stored in SeaweedFS:\n{}",
        a.log()
    );
    let before: Vec<usize> = blobs.iter().map(|d| reg.blob_gets(d)).collect();
    let heads_before = reg.count_requests("HEAD", "/blobs/");
    // B holds nothing locally yet: a HEAD and a Range request are answered from the bucket (a
    // ranged read), not from the upstream.
    let big = &layout.amd64().layers[0];
    let big_bytes =
        std::fs::read(layout.dir.join(big.digest.trim_start_matches("sha256:"))).unwrap();
    let url = format!("{}/v2/demo/app/blobs/{}", b.url(), big.digest);
    let head = http::request(
        &url,
        &http::Req {
            method: Some("HEAD"),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(big.size.to_string().as_str())
    );
    let part = http::request(
        &url,
        &http::Req {
            headers: vec![("Range", "bytes=1000-1999")],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(part.status, 206, "{}", part.text());
    assert_eq!(part.body, big_bytes[1000..2000]);
    assert_eq!(
        reg.count_requests("HEAD", "/blobs/"),
        heads_before,
        "no upstream HEAD"
    );
    for d in &blobs {
        let bytes = curl(
            &format!("{}/v2/demo/app/blobs/{d}", b.url()),
            &t.path().join("cb"),
        )
        .unwrap();
        assert_eq!(&sha256_digest(&bytes), d);
    }
    for (d, n) in blobs.iter().zip(before) {
        assert_eq!(
            reg.blob_gets(d),
            n,
            "{d}: B read it from the bucket, not the upstream"
        );
    }
    assert!(metric(&b, "trustgate_shared_hits_total") >= blobs.len() as f64);
    assert!(no_leases_left(&s3, "sw"));
}

/// Trust data built and signed in code (`trust::testkit`) for `gun`, tag `v1` = `manifest`,
/// under the root key of `root_seed`, with timestamp and snapshot at `version`, as the files a
/// Notary server serves.
fn trust_files(
    gun: &str,
    manifest: &[u8],
    root_seed: u8,
    version: u64,
) -> support::fake_notary::Files {
    use trustgate::trust::testkit::{TestKey, TestRepo};
    let mut repo = TestRepo::new(gun);
    repo.root.keys = vec![TestKey::root_cert(
        root_seed,
        gun,
        time::macros::datetime!(2020-01-01 0:00 UTC),
        time::macros::datetime!(2120-01-01 0:00 UTC),
    )];
    repo.timestamp.version = version;
    repo.snapshot.version = version;
    repo.target_files = [("v1".to_string(), manifest.to_vec())]
        .into_iter()
        .collect();
    let source = repo.build();
    source
        .names()
        .map(|n| (n.to_string(), source.get(n).unwrap().clone()))
        .collect()
}

/// Two real replicas on one bucket, each asked through its own Notary test double:
/// - first contact at the same instant, the doubles handing different (each valid) roots: one
///   root is pinned fleet-wide, and the other replica refuses rather than serve under a second
///   root;
/// - rollback across the fleet: replica A verifies timestamp version 10; replica B, which never
///   saw the repository itself, is offered version 9 by its (lying) double and refuses.
#[test]
fn fleet_trust_first_contact_race_and_rollback() {
    let t = TestDir::new("fleet-trust");
    let reg = Registry::start(&t.path().join("registry"));
    let skopeo = Skopeo::new(&t.path().join("skopeo"));
    let layout = Layout::image(&t.path().join("image"), &ImageSpec::small("trust", 1));
    for repo in ["demo/race", "demo/roll"] {
        layout.push(&skopeo, &reg.host(), repo, "v1", None);
    }
    let gun = |repo: &str| format!("{}/{repo}", reg.host());
    let na = support::fake_notary::FakeNotary::start(trust_files(
        &gun("demo/race"),
        &layout.manifest,
        1,
        1,
    ));
    let nb = support::fake_notary::FakeNotary::start(trust_files(
        &gun("demo/race"),
        &layout.manifest,
        9,
        1,
    ));
    let s3 = S3Server::start_moto(&t.path().join("s3"), BUCKET);
    let shared = s3.shared_toml(BUCKET, "trust", 10, 30);
    let a = replica(
        &t.path().join("a"),
        UpstreamConfig::default_for(&reg).with_notary_url(&na.url(), None),
        &shared,
    );
    let b = replica(
        &t.path().join("b"),
        UpstreamConfig::default_for(&reg).with_notary_url(&nb.url(), None),
        &shared,
    );
    let get = |tg: &Trustgate, repo: &str| {
        http::request(
            &format!("{}/v2/{repo}/manifests/v1", tg.url()),
            &http::Req {
                accept: Some(http::MANIFEST_ACCEPT),
                ..Default::default()
            },
        )
        .unwrap()
    };

    // First contact, both at once.
    let (ua, ub) = (a.url(), b.url());
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let race: Vec<_> = [ua, ub]
        .into_iter()
        .map(|u| {
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                http::request(
                    &format!("{u}/v2/demo/race/manifests/v1"),
                    &http::Req {
                        accept: Some(http::MANIFEST_ACCEPT),
                        ..Default::default()
                    },
                )
                .unwrap()
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = race.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "exactly one root serves: {statuses:?}\nA:\n{}\nB:\n{}",
        a.log(),
        b.log()
    );
    let records = s3.objects(BUCKET, "trust/trust/");
    assert_eq!(records.len(), 1, "one fleet pin for demo/race: {records:?}");
    // Asked again, the loser still refuses: it never serves under a second root.
    let loser = if statuses[0] == 200 { &b } else { &a };
    assert_ne!(get(loser, "demo/race").status, 200);

    // Rollback across the fleet.
    na.replace(trust_files(&gun("demo/roll"), &layout.manifest, 1, 10));
    nb.replace(trust_files(&gun("demo/roll"), &layout.manifest, 1, 9));
    assert_eq!(get(&a, "demo/roll").status, 200, "{}", a.log());
    let r = get(&b, "demo/roll");
    assert_ne!(r.status, 200, "B must refuse timestamp 9 after A saw 10");
    assert!(
        r.text().to_lowercase().contains("rollback") || b.log().contains("rollback"),
        "{}",
        r.text()
    );
}

/// A store that accepts connections and never answers (slow, not down): every request hits
/// `timeout`, the store is marked down, and pulls go on from the upstream, unstored, saying so.
#[test]
fn a_store_that_never_answers_is_timed_out_and_pulls_go_on() {
    let t = TestDir::new("fleet-slow");
    let reg = Registry::start(&t.path().join("registry"));
    let skopeo = Skopeo::new(&t.path().join("skopeo"));
    let spec = ImageSpec::new(
        "slow",
        vec![LayerSpec::random("data/x.bin", 200 * 1024, 41)],
    );
    let layout = Layout::image(&t.path().join("image"), &spec);
    layout.push(&skopeo, &reg.host(), "demo/app", "v1", None);
    // Bound, never accepted: connections complete in the kernel, requests get no answer.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let shared = format!(
        "\n[storage.shared]\nurl = \"s3://{BUCKET}/slow\"\nendpoint = \"http://{}\"\nallow_http = true\ntimeout = 1\nretry_after = 60\n",
        blackhole.local_addr().unwrap()
    );
    let tg = replica(
        &t.path().join("tg"),
        UpstreamConfig::default_for(&reg),
        &shared,
    );
    for d in layout.blob_digests() {
        let bytes = curl(
            &format!("{}/v2/demo/app/blobs/{d}", tg.url()),
            &t.path().join("c"),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", tg.log()));
        assert_eq!(sha256_digest(&bytes), d);
    }
    let log = tg.log();
    // Either deadline may fire first (ours, or the S3 client's own request timeout).
    assert!(log.contains("shared store unavailable"), "{log}");
    let ready = http::get(&format!("{}/readyz", tg.admin_url())).unwrap();
    assert_eq!(ready.status, 200);
    assert!(
        ready.text().contains("degraded: shared store"),
        "{}",
        ready.text()
    );
    assert_eq!(metric(&tg, "trustgate_shared_store_up"), 0.0);
    assert!(metric(&tg, "trustgate_shared_errors_total") >= 1.0);
    drop(blackhole);
}

/// `[fleet]`: a replica that finds another holding the fill lease streams the running fill from
/// the holder's peer endpoint (authenticated, on its own listener) instead of waiting for the
/// whole object to reach the bucket: one upstream fetch, right bytes on both; the endpoint
/// refuses anyone without the fleet's secret.
#[test]
fn waiting_replica_streams_the_running_fill_from_the_lease_holder() {
    let t = TestDir::new("fleet-peer");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(fake_upstream::FakeUpstream::start());
    let blob: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 241) as u8).collect();
    let d = up.add_blob(&blob);
    let path = format!("/v2/demo/app/blobs/{d}");
    // The holder's upstream pauses after 1 MiB: the other replica asks while the fill runs.
    up.script(
        &path,
        fake_upstream::Behavior::Stall {
            after: 1024 * 1024,
            stall: Duration::from_secs(3),
        },
    );
    let upstream = UpstreamConfig::plain_http(&up.base());
    let s3 = S3Server::start_moto(&t.path().join("s3"), BUCKET);
    let secret_file = t.path().join("fleet.secret");
    std::fs::write(&secret_file, "a-fleet-secret-of-some-length\n").unwrap();
    let fleet_toml = |port: u16| {
        format!(
            "{}\n[fleet]\nlisten = \"127.0.0.1:{port}\"\nadvertise = \"http://127.0.0.1:{port}\"\nsecret_file = \"{}\"\n",
            s3.shared_toml(BUCKET, "peer", 10, 30),
            secret_file.display()
        )
    };
    let (pa, pb) = (proc::free_port(), proc::free_port());
    let a = replica(&t.path().join("a"), upstream.clone(), &fleet_toml(pa));
    let b = replica(&t.path().join("b"), upstream, &fleet_toml(pb));

    let url_a = format!("{}{path}", a.url());
    let scratch = t.path().join("curl-a");
    let first = thread::spawn(move || curl(&url_a, &scratch));
    assert!(
        proc::wait_until(Duration::from_secs(20), || {
            up.count(&path) == 1 && !s3.objects(BUCKET, "peer/leases/").is_empty()
        }),
        "A holds the lease and fills"
    );
    let got = curl(&format!("{}{path}", b.url()), &t.path().join("curl-b")).expect("B serves it");
    assert_eq!(sha256_digest(&got), d);
    assert_eq!(sha256_digest(&first.join().unwrap().unwrap()), d);
    assert_eq!(up.count(&path), 1, "one upstream fetch for both replicas");
    assert!(
        metric(&b, "trustgate_shared_peer_streams_total") >= 1.0,
        "{}",
        b.log()
    );
    assert!(proc::wait_until(Duration::from_secs(10), || {
        s3.assert_content_intact(BUCKET, "peer") == 1
    }));

    // The peer endpoint wants the secret.
    let peer_url = format!("http://127.0.0.1:{pa}/fleet/v1/blobs/{d}");
    assert_eq!(http::get(&peer_url).unwrap().status, 401);
    let wrong = http::request(
        &peer_url,
        &http::Req {
            headers: vec![("Authorization", "Bearer not-the-secret")],
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(wrong.status, 401);
    drop(rt);
}

/// Sends `bytes` on a fresh connection to `tg` and reads until the server closes it.
fn raw_exchange(tg: &Trustgate, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let addr = tg.url().trim_start_matches("http://").to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: tg\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Clients named by the audit lines (`trust decision`) and request lines of `tg`'s log.
fn logged_clients(tg: &Trustgate, message: &str) -> Vec<String> {
    tg.stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .filter_map(|v| v["client"].as_str().map(str::to_string))
        .collect()
}

/// `[server] proxy_protocol`: a TCP load balancer's PROXY header (v1 text, v2 binary) names
/// the client in audit lines, from a trusted hop only; the rules for a missing or broken header
/// are in `src/api/proxy_protocol.rs`.
#[test]
fn proxy_protocol_from_trusted_hops_names_the_client() {
    let t = TestDir::new("fleet-ppp");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(fake_upstream::FakeUpstream::start());
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    up.add_manifest(
        "demo/app",
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        manifest,
    );
    let upstream = UpstreamConfig::plain_http(&up.base());
    let name = upstream.name.clone();
    let start = |dir: &str, trusted: &str| {
        Trustgate::start(
            &t.path().join(dir),
            TrustgateOptions {
                upstreams: vec![upstream.clone()],
                server_toml: format!("trusted_proxies = [\"{trusted}\"]\nproxy_protocol = true\n"),
                // Audit mode: every manifest pull writes a `trust decision` line.
                policies: vec![support::trustgate::PolicySpec::new(
                    &[&format!("{name}/demo/*")],
                    "audit",
                )],
                extra_toml: "[log]\nformat = \"json\"\n".into(),
                env: vec![("RUST_LOG".into(), "info".into())],
                ..Default::default()
            },
        )
    };
    // The test's connections come from 127.0.0.1: a trusted hop for one, not for the other.
    let behind = start("behind", "127.0.0.1/32");
    let elsewhere = start("elsewhere", "192.0.2.0/24");
    let pull = get_request("/v2/demo/app/manifests/v1");

    // v1 from the trusted hop.
    let mut req = b"PROXY TCP4 203.0.113.9 10.0.0.2 51234 5000\r\n".to_vec();
    req.extend_from_slice(&pull);
    let resp = String::from_utf8_lossy(&raw_exchange(&behind, &req)).to_string();
    assert!(resp.starts_with("HTTP/1.1 "), "{resp}");
    assert!(
        proc::wait_until(Duration::from_secs(10), || {
            logged_clients(&behind, "trust decision").contains(&"203.0.113.9:51234".to_string())
        }),
        "the audit line names the PROXY v1 client\n{}",
        behind.stderr()
    );

    // v2 from the trusted hop.
    let src: std::net::SocketAddr = "198.51.100.4:40000".parse().unwrap();
    let dst: std::net::SocketAddr = "10.0.0.2:5000".parse().unwrap();
    let mut req = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (src, dst),
    )
    .build()
    .unwrap();
    req.extend_from_slice(&pull);
    let resp = raw_exchange(&behind, &req);
    assert!(resp.starts_with(b"HTTP/1.1 "));
    assert!(
        proc::wait_until(Duration::from_secs(10), || {
            logged_clients(&behind, "trust decision").contains(&src.to_string())
        }),
        "the audit line names the PROXY v2 client"
    );

    // A trusted hop without a header, or with a malformed one: closed, logged, no guessing.
    assert!(
        raw_exchange(&behind, &pull).is_empty(),
        "no answer without a header"
    );
    let mut bad = b"PROXY TCP4 999.0.0.1 10.0.0.2 1 2\r\n".to_vec();
    bad.extend_from_slice(&pull);
    assert!(
        raw_exchange(&behind, &bad).is_empty(),
        "no answer to a broken header"
    );
    let mut bad_v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    bad_v2.extend_from_slice(&[0x2F, 0x11, 0, 0]);
    assert!(raw_exchange(&behind, &bad_v2).is_empty());
    assert!(proc::wait_until(Duration::from_secs(10), || {
        behind
            .stderr()
            .matches("did not start with a valid PROXY protocol header")
            .count()
            >= 3
    }));
    // Still serving, and no panic.
    let mut req = b"PROXY TCP4 203.0.113.10 10.0.0.2 1 5000\r\n".to_vec();
    req.extend_from_slice(&get_request("/v2/"));
    assert!(String::from_utf8_lossy(&raw_exchange(&behind, &req)).starts_with("HTTP/1.1 200"));
    assert!(!behind.stderr().contains("panicked"));

    // An untrusted peer: its header is not read as one (HTTP refuses the bytes), and the
    // address it names appears nowhere; without a header it is served as itself.
    let mut forged = b"PROXY TCP4 6.6.6.6 10.0.0.2 1 5000\r\n".to_vec();
    forged.extend_from_slice(&pull);
    let resp = String::from_utf8_lossy(&raw_exchange(&elsewhere, &forged)).to_string();
    assert!(!resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = String::from_utf8_lossy(&raw_exchange(&elsewhere, &pull)).to_string();
    assert!(resp.starts_with("HTTP/1.1 "), "{resp}");
    assert!(proc::wait_until(Duration::from_secs(10), || {
        !logged_clients(&elsewhere, "trust decision").is_empty()
    }));
    assert!(logged_clients(&elsewhere, "trust decision")
        .iter()
        .all(|c| c.starts_with("127.0.0.1:")));
    assert!(!elsewhere.stderr().contains("6.6.6.6"));
    drop(rt);
}
