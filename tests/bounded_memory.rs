//! Every per-key map is bounded or cleans up after itself (issue 11): 100,000 pulls of distinct
//! repository names that have no trust data leave the process's memory where it was.
//!
//! Before the fix, `TrustService.locks` kept one entry per repository name asked for under
//! enforce, real or not, and never shrank: this burst took a running trustgate from about 8 to
//! 85 MiB, for good. The test starts the real binary (as production runs it) under enforce,
//! with the fake Notary holding no trust data (404 for every file), and compares the
//! process's resident memory (`VmRSS`) when idle before and after the burst.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use support::fake_notary::{FakeNotary, Files};
use support::trustgate::{Trustgate, TrustgateOptions, UpstreamConfig};
use support::TestDir;

/// Distinct repository names asked for.
const NAMES: usize = 100_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 32;
/// The burst must finish within this (it takes well under a minute on two cores).
const DEADLINE: Duration = Duration::from_secs(300);
/// How much the idle RSS may grow over the burst. The old code grew by ~77 MiB; what remains
/// here is the allocator keeping freed pages and bounded caches (policy memo) filling up.
const MARGIN_KIB: u64 = 24 * 1024;

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonexistent_repository_names_leave_no_memory_behind() {
    let dir = TestDir::new("bounded-memory");
    // No trust data at all: every metadata file is a 404.
    let notary = FakeNotary::start(Files::new());
    let notary_url = notary.url();
    let upstream = UpstreamConfig {
        name: "registry.test".into(),
        // Never contacted: under enforce a tag is resolved by the Notary server first, and
        // there is no trust data.
        url: "http://127.0.0.1:9".into(),
        default: true,
        creds: None,
        ca_file: None,
        notary: None,
        notary_ca_file: None,
    }
    .with_notary_url(&notary_url, None);
    let path = dir.path().to_path_buf();
    let tg = tokio::task::spawn_blocking(move || {
        Trustgate::start(
            &path,
            TrustgateOptions {
                upstreams: vec![upstream],
                env: vec![("RUST_LOG".into(), "error".into())],
                ..Default::default()
            },
        )
    })
    .await
    .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let base = tg.url();

    // Warm up: the first requests allocate what every request needs once (connection pools,
    // thread-local buffers), which is idle memory, not growth.
    let ask = move |i: usize| {
        let client = client.clone();
        let url = format!("{base}/v2/gone/n{i}/manifests/latest");
        async move {
            let r = client.get(url).send().await.expect("request");
            r.status().as_u16()
        }
    };
    for i in 0..2_000 {
        assert_eq!(
            ask(NAMES + i).await,
            404,
            "no trust data: 404 MANIFEST_UNKNOWN"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(tg.pid());

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, refused, ask) = (next.clone(), refused.clone(), ask.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= NAMES || started.elapsed() > DEADLINE {
                        return;
                    }
                    if ask(i).await == 404 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    assert_eq!(
        refused.load(Ordering::Relaxed),
        NAMES,
        "every name refused within {DEADLINE:?} (took {took:?})"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(tg.pid());
    eprintln!(
        "{NAMES} names in {took:.1?}: idle RSS {} KiB before, {} KiB after (+{} KiB)",
        idle,
        after,
        after.saturating_sub(idle)
    );
    assert!(
        after <= idle + MARGIN_KIB,
        "RSS grew from {idle} KiB to {after} KiB over {NAMES} nonexistent names (margin {MARGIN_KIB} KiB): a per-key map is unbounded"
    );
    drop(tg);
    drop(notary);
}
