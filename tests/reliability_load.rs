//! Reliability, load (issue 15): the real binary in front of the real registry and
//! notary-server, enforcing, under
//! - 500 concurrent connections on a warm signed tag (`wrk`), and
//! - 64 concurrent skopeo-style pulls (manifest by tag, then every blob, hash-checked) of
//!   multi-layer signed images from a tokio client, plus a few real `skopeo copy` runs,
//!
//! each for `pick(10 s, 10 min)`. Zero non-2xx, zero socket errors, p99 reported, RSS sampled
//! every second: flat after warm-up (the last third's maximum within 10 % of the first's).
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::faults::quantile;
use support::http::{runtime, MANIFEST_ACCEPT};
use support::image::{ImageSpec, LayerSpec, Layout};
use support::load::{self, ms, rss_flat, RssSampler};
use support::proc;
use support::reliability::{pick, report};
use support::signed::SignedEnv;
use support::trustgate::Trustgate;

/// Seconds of RSS samples dropped as warm-up before judging flatness.
const WARMUP_SAMPLES: usize = 3;

fn start(name: &str, images: &[(&str, usize)]) -> (SignedEnv, Trustgate) {
    let env = SignedEnv::new(name);
    for (i, (repo, layers)) in images.iter().enumerate() {
        // Layers of 256 KiB of random bytes (gzip cannot shrink them): real transfers.
        let spec = ImageSpec::new(
            repo,
            (0..*layers)
                .map(|l| {
                    LayerSpec::random(&format!("l{l}/data.bin"), 256 << 10, (i * 100 + l) as u64)
                })
                .collect(),
        );
        let layout = Layout::image(&env.dir(&format!("img-{}", repo.replace('/', "-"))), &spec);
        env.push(&layout, repo, "v1");
        env.init_trust(repo);
        env.sign(repo, "v1", &layout, &[]);
    }
    let mut opts = env.options(None, Vec::new());
    opts.env = vec![("RUST_LOG".into(), "warn".into())];
    let tg = Trustgate::start(&env.dir("tg"), opts);
    (env, tg)
}

/// One figure of wrk's text output, e.g. `Non-2xx or 3xx responses: 12`.
fn wrk_field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(key).map(str::trim))
}

#[test]
fn five_hundred_connections_on_a_warm_signed_tag() {
    let secs = pick(Duration::from_secs(10), Duration::from_secs(600));
    let (env, tg) = start("rel-load-wrk", &[("demo/app", 3)]);
    let url = format!("{}/v2/demo/app/manifests/v1", tg.url());
    runtime()
        .block_on(load::pull(&load::client(1), &tg.url(), "demo/app", "v1"))
        .expect("warm pull");

    let rss = RssSampler::start(tg.pid());
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t2",
        "-c500",
        &format!("-d{}s", secs.as_secs()),
        "--latency",
    ])
    .args(["-H", &format!("Accept: {MANIFEST_ACCEPT}")])
    .arg(&url);
    let out = proc::run(cmd, secs + Duration::from_secs(60), &env.dir("wrk"));
    let samples = rss.finish();
    out.assert_success();
    let text = &out.stdout;
    let non2xx = wrk_field(text, "Non-2xx or 3xx responses:").unwrap_or("0");
    let socket = wrk_field(text, "Socket errors:").unwrap_or("none");
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .unwrap_or("?")
        .trim();
    let rate = wrk_field(text, "Requests/sec:").unwrap_or("?");
    let p50 = wrk_field(text, "50%").unwrap_or("?");
    let p99 = wrk_field(text, "99%").unwrap_or("?");
    assert_eq!(
        non2xx,
        "0",
        "wrk saw non-2xx answers:\n{text}\n{}",
        tg.logs()
    );
    assert_eq!(socket, "none", "wrk saw socket errors: {socket}\n{text}");
    let (first, last, flat) = rss_flat(&samples, WARMUP_SAMPLES, 0.10);
    assert!(
        flat,
        "RSS not flat: first window max {first} KiB, last {last} KiB: {samples:?}"
    );
    report(
        "load",
        "500 connections on a warm signed tag",
        &format!(
            "wrk -t2 -c500 -d{}s manifest GET by tag under enforce: {requests}, {rate} req/s, p50 {p50}, p99 {p99}, 0 non-2xx, 0 socket errors; RSS max first third {} MiB, last third {} MiB ({} samples)",
            secs.as_secs(),
            first / 1024,
            last / 1024,
            samples.len()
        ),
    );
}

#[test]
fn sixty_four_concurrent_pulls_of_multi_layer_images() {
    let secs = pick(Duration::from_secs(10), Duration::from_secs(600));
    let repos = ["demo/a", "demo/b", "demo/c", "demo/d"];
    let images: Vec<(&str, usize)> = repos.iter().map(|r| (*r, 5)).collect();
    let (env, tg) = start("rel-load-pulls", &images);
    let base = tg.url();

    // Cold first: the 64 pullers start together on empty caches (single flight under load).
    let rss = RssSampler::start(tg.pid());
    let deadline = Instant::now() + secs;
    let pulls = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (lat, errors) = runtime().block_on(async {
        let c = load::client(64);
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (c, base, pulls, bytes, stop) = (
                    c.clone(),
                    base.clone(),
                    pulls.clone(),
                    bytes.clone(),
                    stop.clone(),
                );
                let repo = repos[i % repos.len()];
                tokio::spawn(async move {
                    let (mut lat, mut errs) = (Vec::new(), Vec::new());
                    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
                        let t0 = Instant::now();
                        match load::pull(&c, &base, repo, "v1").await {
                            Ok(n) => {
                                lat.push(t0.elapsed());
                                pulls.fetch_add(1, Ordering::Relaxed);
                                bytes.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(e) => errs.push(e),
                        }
                    }
                    (lat, errs)
                })
            })
            .collect();
        let (mut lat, mut errs) = (Vec::new(), Vec::new());
        for t in tasks {
            let (l, e) = t.await.expect("puller task");
            lat.extend(l);
            errs.extend(e);
        }
        (lat, errs)
    });
    // A few real skopeo copies after the load, through the same process.
    let mut skopeo_ok = 0;
    for repo in &repos[..2] {
        let dest = env.dir(&format!("copy-{}", repo.replace('/', "-")));
        let out = env.skopeo.copy(
            &format!("docker://{}/{repo}:v1", tg.host()),
            &format!("dir:{}", dest.display()),
            false,
            None,
            None,
        );
        assert!(out.success(), "skopeo copy {repo}: {out}\n{}", tg.logs());
        skopeo_ok += 1;
    }
    let samples = rss.finish();
    assert!(
        errors.is_empty(),
        "{} failed pulls, e.g. {:?}\n{}",
        errors.len(),
        &errors[..errors.len().min(5)],
        tg.logs()
    );
    let mut lat = lat;
    assert!(!lat.is_empty());
    let (first, last, flat) = rss_flat(&samples, WARMUP_SAMPLES, 0.10);
    assert!(
        flat,
        "RSS not flat: first window max {first} KiB, last {last} KiB: {samples:?}"
    );
    let n = pulls.load(Ordering::Relaxed);
    let mib = bytes.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0);
    report(
        "load",
        "64 concurrent pulls of multi-layer images",
        &format!(
            "64 tokio pullers over 4 signed images of 5 layers × 256 KiB for {} s (manifest by tag + 6 blobs, each hash-checked): {n} pulls, {mib:.0} MiB, 0 non-2xx, 0 socket errors, 0 wrong bytes, pull p50 {}, p99 {}; then {skopeo_ok} real skopeo copies OK; RSS max first third {} MiB, last third {} MiB",
            secs.as_secs(),
            ms(quantile(&mut lat, 0.5)),
            ms(quantile(&mut lat, 0.99)),
            first / 1024,
            last / 1024
        ),
    );
}
