//! A bounded shared tier (`[storage.shared] max_size`, issue 14), the real binary on a real S3
//! server (moto_server): the fleet keeps the bucket within its bound, oldest objects first,
//! never deletes trust state, and a pull in progress on another replica while its object is
//! evicted completes with every byte right; a replica that then finds the object gone fetches
//! it again.
//!
//! The order of eviction, the sweep lease (one sweeper at a time) and a bucket read that breaks
//! off mid-object are shown on an in-memory store in `src/store/shared/tests.rs` (moto sends a
//! whole object in one go, so a read cannot be cut there on cue).

mod support;

#[path = "support/inproc/fake_upstream.rs"]
mod fake_upstream;

use std::process::Command;
use std::thread;
use std::time::Duration;

use support::http::sha256_digest;
use support::proc;
use support::s3::{aws_env, S3Server};
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

const BUCKET: &str = "trustgate-bounds";
const MIB: usize = 1024 * 1024;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i * 31 + seed as usize) % 251) as u8)
        .collect()
}

/// A client that reads the body of `url` at about `per_sec` bytes a second, pacing its own
/// reads (TCP flow control then holds the sender back). curl's `--limit-rate` was used here
/// before, but curl 7.88 lets a transfer from a fast local server through at full speed now and
/// then (measured: 6 MiB in 0.16 s with `--limit-rate 512K`), so the "pull still in progress"
/// step raced.
fn slow_get(url: &str, per_sec: usize) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut resp = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let started = tokio::time::Instant::now();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.unwrap() {
            body.extend_from_slice(&chunk);
            let due = Duration::from_secs_f64(body.len() as f64 / per_sec as f64);
            tokio::time::sleep_until(started + due).await;
        }
        body
    })
}

/// `curl` the URL to a file; the bytes.
fn curl(url: &str, dir: &std::path::Path) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(format!("body-{}", proc::free_port()));
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-f", "--max-time", "120", "-o"])
        .arg(&out)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY");
    cmd.arg(url);
    let r = proc::run(cmd, Duration::from_secs(150), dir);
    assert!(r.success(), "curl {url}: {}", r.stderr);
    std::fs::read(&out).unwrap()
}

fn shared_hits(tg: &Trustgate) -> f64 {
    let text = support::http::get(&format!("{}/metrics", tg.admin_url()))
        .unwrap()
        .text();
    text.lines()
        .filter_map(|l| l.strip_prefix("trustgate_shared_hits_total"))
        .filter_map(|rest| rest.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn bound_kept_oldest_first_trust_state_kept_and_pulls_in_progress_complete() {
    let t = TestDir::new("fleet-bounds");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let up = rt.block_on(fake_upstream::FakeUpstream::start());
    let old = pattern(6 * MIB, 1);
    let new = pattern(6 * MIB + 3, 2);
    let d_old = up.add_blob(&old);
    let d_new = up.add_blob(&new);
    let upstream = UpstreamConfig::plain_http(&up.base());
    let s3 = S3Server::start_moto(&t.path().join("s3"), BUCKET);
    // Room for one of the two blobs; every replica looks every second.
    let shared = format!(
        "{}max_size = \"7MiB\"\nsweep_interval = 1\n",
        s3.shared_toml(BUCKET, "b", 10, 30)
    );
    // Trust state another replica pinned: never swept, whatever the bound.
    let pin = "b/trust/example.test/demo/app/root.json";
    s3.put(BUCKET, pin, b"{\"pinned\":true}");
    let start = |name: &str| {
        Trustgate::start(
            &t.path().join(name),
            TrustgateOptions {
                upstreams: vec![upstream.clone()],
                extra_toml: shared.clone(),
                env: aws_env(),
                ..Default::default()
            },
        )
    };
    let a = start("a");
    let b = start("b");
    let c = start("c");
    let path = |d: &str| format!("/v2/demo/app/blobs/{d}");
    let key = |d: &str| format!("b/content/sha256/{}", d.trim_start_matches("sha256:"));
    let in_bucket = |d: &str| s3.objects(BUCKET, "b/content/sha256/").contains(&key(d));

    // A fills the older blob into the bucket (within the bound: it stays).
    let got = curl(
        &format!("{}{}", a.url(), path(&d_old)),
        &t.path().join("c1"),
    );
    assert_eq!(sha256_digest(&got), d_old);
    assert!(proc::wait_until(Duration::from_secs(10), || in_bucket(
        &d_old
    )));

    // B pulls the older blob slowly (its client reads at 512 KiB/s: the pull lasts about 12 s)
    // while A fills the newer one: the bucket goes over its bound, and a sweep evicts the
    // older blob while B's pull is still under way.
    let url_b = format!("{}{}", b.url(), path(&d_old));
    let slow = thread::spawn(move || slow_get(&url_b, 512 * 1024));
    // B has begun reading the object from the bucket before the bound is exceeded.
    assert!(proc::wait_until(Duration::from_secs(20), || {
        shared_hits(&b) >= 1.0
    }));
    let got = curl(
        &format!("{}{}", a.url(), path(&d_new)),
        &t.path().join("c3"),
    );
    assert_eq!(sha256_digest(&got), d_new);
    assert!(
        proc::wait_until(Duration::from_secs(20), || !in_bucket(&d_old)
            && in_bucket(&d_new)),
        "the oldest object is evicted, the newer one kept: {:?}",
        s3.objects(BUCKET, "b/")
    );
    assert!(
        !slow.is_finished(),
        "B's pull was still in progress at the eviction"
    );
    let got = slow.join().expect("B's pull");
    assert_eq!(sha256_digest(&got), d_old, "every byte right");

    // The bound holds, trust state is untouched, no lease is left.
    assert!(proc::wait_until(Duration::from_secs(20), || {
        s3.bytes_under(BUCKET, "b/content/") <= 7 * MIB as u64
    }));
    assert_eq!(s3.get(BUCKET, pin), b"{\"pinned\":true}");
    assert!(proc::wait_until(Duration::from_secs(10), || s3
        .objects(BUCKET, "b/leases/sha256/")
        .is_empty()));

    // C finds the evicted object gone and fetches it again (its local tier is cold).
    let before = up.count(&path(&d_old));
    let got = curl(
        &format!("{}{}", c.url(), path(&d_old)),
        &t.path().join("c4"),
    );
    assert_eq!(sha256_digest(&got), d_old);
    assert_eq!(
        up.count(&path(&d_old)),
        before + 1,
        "refetched from the upstream"
    );
    assert!(
        a.stderr().contains("deleted the oldest objects")
            || b.stderr().contains("deleted the oldest objects")
            || c.stderr().contains("deleted the oldest objects")
    );
    drop(rt);
}
