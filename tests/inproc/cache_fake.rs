//! The disk cache in-process, against the scriptable fake upstream (counts at the fake):
//! - a second pull and a pull after a restart over the same storage make no upstream blob
//!   requests; HEAD and Range are answered from disk;
//! - 32 concurrent GETs of one cold 64 MiB blob: one upstream GET, identical bytes, and every
//!   client's first byte while the upstream is still stalled mid-blob; a failed fill fails every
//!   waiter and the next request fetches again;
//! - `max_size` below the working set: evictions happen, every byte served is right, evicted
//!   blobs are fetched again.

use crate::inproc::app::TestApp;
use crate::inproc::fake_upstream;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use fake_upstream::{Behavior, FakeUpstream};
use futures_util::StreamExt;
use trustgate::config::Config;
use trustgate::reference::Digest;

const MT: &str = "application/vnd.docker.distribution.manifest.v2+json";
const REPO: &str = "team/app";

fn config(data: &Path, upstream: &str, max_size: Option<&str>) -> Config {
    let max = max_size
        .map(|m| format!("max_size = {m:?}\n"))
        .unwrap_or_default();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nmin_free = \"0\"\npath = {:?}\n{max}[[upstream]]\nname = \"registry.local\"\nurl = {upstream:?}\ndefault = true\nconnect_timeout_secs = 2\nfirst_byte_timeout_secs = 10\nidle_timeout_secs = 20\n",
        data.display().to_string()
    );
    Config::from_toml(&text, &data.join("trustgate.toml")).expect("valid test config")
}

fn client() -> reqwest::Client {
    crate::inproc::upstreams::client_with_timeout(Duration::from_secs(120))
}

/// Deterministic pseudo-random bytes (xorshift64*), distinct per seed.
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn blob_path(digest: &str) -> String {
    format!("/v2/{REPO}/blobs/{digest}")
}

/// A schema-2 manifest over a config blob and layers (all added to the fake), stored as `tag`.
fn add_image(
    fake: &FakeUpstream,
    tag: &str,
    layers: &[Vec<u8>],
) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let config =
        format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"tag\":{tag:?}}}").into_bytes();
    let config_digest = fake.add_blob(&config);
    let mut blobs = vec![(config_digest.clone(), config.clone())];
    let mut layer_json = Vec::new();
    for l in layers {
        let d = fake.add_blob(l);
        layer_json.push(serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": l.len(),
            "digest": d,
        }));
        blobs.push((d, l.clone()));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config.len(),
            "digest": config_digest,
        },
        "layers": layer_json,
    }))
    .unwrap();
    fake.add_manifest(REPO, tag, MT, &manifest);
    (manifest, blobs)
}

/// Upstream requests (any method) to any of these blobs.
fn upstream_blob_requests(fake: &FakeUpstream, blobs: &[(String, Vec<u8>)]) -> usize {
    blobs.iter().map(|(d, _)| fake.count(&blob_path(d))).sum()
}

/// A pull as a client does it: the manifest by tag, then every blob; checks every byte.
async fn pull(
    c: &reqwest::Client,
    proxy: &TestApp,
    tag: &str,
    manifest: &[u8],
    blobs: &[(String, Vec<u8>)],
) {
    let r = c
        .get(proxy.url(&format!("/v2/{REPO}/manifests/{tag}")))
        .header("Accept", MT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), manifest);
    for (d, bytes) in blobs {
        let r = c.get(proxy.url(&blob_path(d))).send().await.unwrap();
        assert_eq!(r.status(), 200, "blob {d}");
        let body = r.bytes().await.unwrap();
        assert!(
            body.as_ref() == bytes.as_slice(),
            "bytes of blob {d} differ"
        );
    }
}

#[tokio::test]
async fn second_pull_and_pull_after_restart_make_no_upstream_blob_requests() {
    let data = tempfile::tempdir().unwrap();
    let fake = FakeUpstream::start().await;
    let layers: Vec<Vec<u8>> = (0..4)
        .map(|i| random_bytes(300_000 + i * 7_919, i as u64 + 1))
        .collect();
    let (manifest, blobs) = add_image(&fake, "v1", &layers);
    let cfg = config(data.path(), &fake.base(), None);
    let c = client();

    let proxy = TestApp::start(cfg.clone(), None).await;
    pull(&c, &proxy, "v1", &manifest, &blobs).await;
    assert_eq!(
        upstream_blob_requests(&fake, &blobs),
        blobs.len(),
        "first pull: one GET per blob"
    );

    pull(&c, &proxy, "v1", &manifest, &blobs).await;
    assert_eq!(
        upstream_blob_requests(&fake, &blobs),
        blobs.len(),
        "second pull made upstream blob requests"
    );
    proxy.shutdown().await;

    // A new proxy over the same storage folder (a restart): blobs come from disk.
    let proxy = TestApp::start(cfg.clone(), None).await;
    pull(&c, &proxy, "v1", &manifest, &blobs).await;
    assert_eq!(
        upstream_blob_requests(&fake, &blobs),
        blobs.len(),
        "pull after restart made upstream blob requests"
    );

    // HEAD and Range on a cached blob, still without the upstream.
    let (d, bytes) = &blobs[1];
    let r = c.head(proxy.url(&blob_path(d))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        bytes.len().to_string()
    );
    assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), d);
    let r = c
        .get(proxy.url(&blob_path(d)))
        .header("Range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 1000-1999/{}", bytes.len())
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[1000..2000]);
    let r = c
        .get(proxy.url(&blob_path(d)))
        .header("Range", format!("bytes={}-", bytes.len() - 10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.bytes().await.unwrap().as_ref(),
        &bytes[bytes.len() - 10..]
    );
    assert_eq!(upstream_blob_requests(&fake, &blobs), blobs.len());
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_clients_share_one_streamed_upstream_fetch() {
    const CLIENTS: usize = 32;
    const SIZE: usize = 64 << 20;
    const STALL: Duration = Duration::from_secs(6);
    let data = tempfile::tempdir().unwrap();
    let fake = FakeUpstream::start().await;
    let source = Arc::new(random_bytes(SIZE, 64));
    let d = fake.add_blob(&source);
    let path = blob_path(&d);
    // The upstream sends 1 MiB, then holds the rest back for STALL.
    fake.script(
        &path,
        Behavior::Stall {
            after: 1 << 20,
            stall: STALL,
        },
    );
    let proxy = TestApp::start(config(data.path(), &fake.base(), None), None).await;
    let c = client();

    let start = Instant::now();
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel::<Duration>();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let c = c.clone();
        let url = proxy.url(&path);
        let source = source.clone();
        let first_tx = first_tx.clone();
        tasks.push(tokio::spawn(async move {
            let r = c.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let mut stream = r.bytes_stream();
            let mut off = 0usize;
            let mut signalled = false;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.expect("body chunk");
                if chunk.is_empty() {
                    continue;
                }
                if !signalled {
                    signalled = true;
                    let _ = first_tx.send(start.elapsed());
                }
                assert!(off + chunk.len() <= SIZE, "body longer than the blob");
                assert!(
                    chunk.as_ref() == &source[off..off + chunk.len()],
                    "bytes differ at offset {off}"
                );
                off += chunk.len();
            }
            assert_eq!(off, SIZE, "body length");
        }));
    }
    drop(first_tx);
    // The upstream request was made after `start`, so its stall cannot end before start + STALL:
    // every first byte that arrived earlier arrived while the upstream fetch was incomplete.
    let mut firsts = Vec::new();
    while firsts.len() < CLIENTS {
        match tokio::time::timeout_at(start + STALL, first_rx.recv()).await {
            Ok(Some(t)) => firsts.push(t),
            Ok(None) => panic!("a client ended without a first chunk"),
            Err(_) => panic!(
                "only {} of {CLIENTS} clients had their first byte before the stalled upstream could finish",
                firsts.len()
            ),
        }
    }
    assert!(firsts.iter().all(|t| *t < STALL));
    for t in tasks {
        t.await.expect("client task");
    }
    assert!(
        start.elapsed() >= STALL,
        "the upstream stall was not applied"
    );
    assert_eq!(
        fake.requests_to(&path)
            .iter()
            .filter(|r| r.method == hyper::Method::GET)
            .count(),
        1,
        "exactly one upstream GET"
    );
    assert_eq!(
        fake.count(&path),
        1,
        "no other upstream request for the blob"
    );
    assert!(proxy.proxy.store().contains(&Digest::parse(&d).unwrap()));
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_fill_fails_every_waiter_and_the_next_request_fetches_again() {
    const CLIENTS: usize = 32;
    const SIZE: usize = 8 << 20;
    let data = tempfile::tempdir().unwrap();
    let fake = FakeUpstream::start().await;
    let source = Arc::new(random_bytes(SIZE, 99));
    let d = fake.add_blob(&source);
    let path = blob_path(&d);
    // The one fetch sends 1 MiB, then the upstream drops the connection.
    fake.script(&path, Behavior::Truncate { after: 1 << 20 });
    let proxy = TestApp::start(config(data.path(), &fake.base(), None), None).await;
    let c = client();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let c = c.clone();
        let url = proxy.url(&path);
        tasks.push(tokio::spawn(async move {
            let r = match c.get(url).send().await {
                Ok(r) => r,
                Err(e) => return format!("request error: {e}"),
            };
            let status = r.status();
            if status != 200 {
                return format!("status {status}");
            }
            let mut n = 0usize;
            let mut stream = r.bytes_stream();
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(b) => n += b.len(),
                    Err(e) => return format!("broken transfer after {n} bytes: {e}"),
                }
            }
            panic!("a client got a complete body ({n} bytes) from a truncated upstream");
        }));
    }
    for t in tasks {
        let why = t.await.expect("client task");
        assert!(
            why.starts_with("status 502")
                || why.starts_with("broken transfer")
                || why.starts_with("request error"),
            "{why}"
        );
    }
    let failed_fetches = fake.count(&path);
    // All 32 joined the one fill (the fake holds the connection 50 ms after the first MiB).
    assert_eq!(failed_fetches, 1, "one upstream fetch for all waiters");
    assert!(!proxy.proxy.store().contains(&Digest::parse(&d).unwrap()));

    fake.clear_script(&path);
    let r = c.get(proxy.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert!(body.as_ref() == source.as_slice(), "bytes after the retry");
    assert_eq!(
        fake.count(&path),
        failed_fetches + 1,
        "the retry fetched again"
    );
    // And now it is cached.
    let r = c.get(proxy.url(&path)).send().await.unwrap();
    assert!(r.bytes().await.unwrap().as_ref() == source.as_slice());
    assert_eq!(fake.count(&path), failed_fetches + 1);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_size_below_the_working_set_evicts_and_refetches_correctly() {
    const BLOBS: usize = 8;
    let data = tempfile::tempdir().unwrap();
    let fake = FakeUpstream::start().await;
    let blobs: Vec<(String, Vec<u8>)> = (0..BLOBS)
        .map(|i| {
            let b = random_bytes(1 << 20, 1000 + i as u64);
            (fake.add_blob(&b), b)
        })
        .collect();
    let proxy = TestApp::start(config(data.path(), &fake.base(), Some("3MiB")), None).await;
    let c = client();
    let get_all = |round: usize| {
        let c = c.clone();
        let blobs = blobs.clone();
        let urls: Vec<String> = blobs
            .iter()
            .map(|(d, _)| proxy.url(&blob_path(d)))
            .collect();
        async move {
            for ((d, bytes), url) in blobs.iter().zip(urls) {
                let r = c.get(url).send().await.unwrap();
                assert_eq!(r.status(), 200, "round {round} blob {d}");
                let body = r.bytes().await.unwrap();
                assert!(
                    body.as_ref() == bytes.as_slice(),
                    "round {round}: bytes of {d} differ"
                );
            }
        }
    };
    get_all(1).await;
    let store = proxy.proxy.store().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.evictions() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        store.evictions() > 0,
        "no eviction with 8 MiB through a 3 MiB store"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.total_size() > 3 << 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        store.total_size() <= 3 << 20,
        "store holds {} bytes",
        store.total_size()
    );
    let evicted: Vec<&(String, Vec<u8>)> = blobs
        .iter()
        .filter(|(d, _)| !store.contains(&Digest::parse(d).unwrap()))
        .collect();
    assert!(!evicted.is_empty());

    // Evicted blobs come back from the upstream with the right bytes.
    get_all(2).await;
    for (d, _) in &evicted {
        assert!(
            fake.count(&blob_path(d)) >= 2,
            "evicted {d} was not fetched again"
        );
    }
    for (d, _) in &blobs {
        assert!(fake.count(&blob_path(d)) >= 1);
    }
    // Files on disk are within budget too (after the evictor catches up) and hash to their names.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.total_size() > 3 << 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut on_disk = 0u64;
    for dir in std::fs::read_dir(data.path().join("blobs/sha256")).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let f = f.unwrap();
            let name = f.file_name().to_string_lossy().into_owned();
            if name.len() != 64 {
                continue; // sidecars
            }
            let bytes = std::fs::read(f.path()).unwrap();
            assert_eq!(fake_upstream::digest(&bytes), format!("sha256:{name}"));
            on_disk += bytes.len() as u64;
        }
    }
    assert!(on_disk <= 3 << 20, "{on_disk} bytes of blobs on disk");
    proxy.shutdown().await;
}
