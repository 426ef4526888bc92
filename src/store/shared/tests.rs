//! The shared tier over `object_store`'s in-memory store (which honours create-only and
//! compare-and-swap puts like S3): two "replicas" are two local stores over one bucket. The
//! same behaviour against real S3 servers is in `tests/interop_fleet.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::lease::{now_ms, LeaseRecord};
use super::*;
use crate::store::{Content, Store};

fn shared_over(mem: &Arc<InMemory>, ttl: Duration) -> Arc<SharedStore> {
    SharedStore::in_memory_for_tests(mem, ttl, Duration::from_secs(1))
}

async fn replica(mem: &Arc<InMemory>, ttl: Duration) -> (tempfile::TempDir, Content) {
    let dir = tempfile::tempdir().unwrap();
    let local = Store::open(dir.path(), None).await.unwrap();
    let shared = shared_over(mem, ttl);
    (dir, Content::Tiered { local, shared })
}

type Upstream = Result<
    (
        Option<u64>,
        futures_util::stream::Iter<std::vec::IntoIter<Result<Bytes, std::io::Error>>>,
    ),
    std::io::Error,
>;

/// An "upstream" that counts its fetches and sends `data` in 64 KiB chunks.
fn upstream(
    data: Bytes,
    count: Arc<AtomicUsize>,
) -> impl FnOnce() -> std::future::Ready<Upstream> + Send + 'static {
    move || {
        count.fetch_add(1, Ordering::SeqCst);
        let chunks: Vec<_> = data
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        std::future::ready(Ok((
            Some(data.len() as u64),
            futures_util::stream::iter(chunks),
        )))
    }
}

async fn read_all(fill: &Arc<crate::store::Fill>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Box::pin(fill.reader(None));
    while let Some(c) = r.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn content_key(d: &Digest) -> ObjPath {
    ObjPath::from(format!("fleet/content/sha256/{}", d.hex()))
}

async fn wait_for_object(mem: &InMemory, d: &Digest) -> Bytes {
    for _ in 0..500 {
        if let Ok(r) = mem.get(&content_key(d)).await {
            return r.bytes().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{d} never appeared in the bucket");
}

#[tokio::test]
async fn a_fill_is_stored_once_and_the_next_replica_reads_the_bucket() {
    let mem = Arc::new(InMemory::new());
    let (_a_dir, a) = replica(&mem, Duration::from_secs(30)).await;
    let (_b_dir, b) = replica(&mem, Duration::from_secs(30)).await;
    // Larger than one part: a multipart upload.
    let data = Bytes::from(crate::store::shared::tests::pattern(12 * 1024 * 1024 + 17));
    let d = Digest::of(&data);
    let count = Arc::new(AtomicUsize::new(0));

    let fill = a.fill_from(None, d, None, None, upstream(data.clone(), count.clone()));
    assert_eq!(read_all(&fill).await, data);
    assert_eq!(wait_for_object(&mem, &d).await, data);
    // The lease is gone once the object is complete.
    let lease = ObjPath::from(format!("fleet/leases/sha256/{}", d.hex()));
    for _ in 0..100 {
        if mem.head(&lease).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(mem.head(&lease).await.is_err(), "lease released");

    // Replica B misses locally and reads the bucket: no second upstream fetch.
    assert!(
        b.get(&d).await.is_none(),
        "large objects stream through a fill"
    );
    let fill = b.fill_from(None, d, None, None, upstream(data.clone(), count.clone()));
    assert_eq!(read_all(&fill).await, data);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(b.disk().contains(&d), "B's local tier holds it now");
}

#[tokio::test]
async fn wrong_bytes_never_reach_the_bucket() {
    let mem = Arc::new(InMemory::new());
    let (_dir, a) = replica(&mem, Duration::from_secs(30)).await;
    for size in [1000usize, 6 * 1024 * 1024] {
        let data = Bytes::from(pattern(size));
        let claimed = Digest::of(b"something else");
        let count = Arc::new(AtomicUsize::new(0));
        let fill = a.fill_from(None, claimed, None, None, upstream(data, count));
        assert!(fill.wait().await.is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            mem.head(&content_key(&claimed)).await.is_err(),
            "{size}: nothing stored"
        );
    }
    // Nothing but (possibly) released leases: no content object at all.
    let listed: Vec<_> = mem
        .list(Some(&ObjPath::from("fleet/content")))
        .collect()
        .await;
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn manifests_written_to_both_tiers_and_read_back_on_another_replica() {
    let mem = Arc::new(InMemory::new());
    let (_a_dir, a) = replica(&mem, Duration::from_secs(30)).await;
    let (_b_dir, b) = replica(&mem, Duration::from_secs(30)).await;
    let bytes = br#"{"schemaVersion":2}"#;
    let d = Digest::of(bytes);
    let mt = "application/vnd.oci.image.manifest.v1+json";
    a.put(&d, bytes, Some(bytes.len() as u64), Some(mt))
        .await
        .unwrap();
    let obj = b.get(&d).await.expect("found through the bucket");
    assert_eq!(obj.size, bytes.len() as u64);
    assert_eq!(obj.media_type.as_deref(), Some(mt));
}

#[tokio::test]
async fn concurrent_fills_on_two_replicas_fetch_upstream_once() {
    let mem = Arc::new(InMemory::new());
    let (_a_dir, a) = replica(&mem, Duration::from_secs(30)).await;
    let (_b_dir, b) = replica(&mem, Duration::from_secs(30)).await;
    let data = Bytes::from(pattern(3 * 1024 * 1024));
    let d = Digest::of(&data);
    let count = Arc::new(AtomicUsize::new(0));
    let fa = a.fill_from(None, d, None, None, upstream(data.clone(), count.clone()));
    let fb = b.fill_from(None, d, None, None, upstream(data.clone(), count.clone()));
    let (ra, rb) = tokio::join!(read_all(&fa), read_all(&fb));
    assert_eq!(ra, data);
    assert_eq!(rb, data);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "one upstream fetch for the fleet"
    );
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_a_live_one_waited_for() {
    let mem = Arc::new(InMemory::new());
    let (_dir, a) = replica(&mem, Duration::from_secs(30)).await;
    let data = Bytes::from(pattern(2000));
    let d = Digest::of(&data);
    // A dead replica's lease, already expired.
    let lease = ObjPath::from(format!("fleet/leases/sha256/{}", d.hex()));
    let dead = LeaseRecord::new("dead-replica", now_ms() - 10_000, 1_000);
    mem.put(&lease, dead.encode().into()).await.unwrap();
    let before = metric("trustgate_shared_lease_takeovers_total");
    let count = Arc::new(AtomicUsize::new(0));
    let fill = a.fill_from(None, d, None, None, upstream(data.clone(), count.clone()));
    assert_eq!(read_all(&fill).await, data);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert!(metric("trustgate_shared_lease_takeovers_total") > before);
    assert_eq!(wait_for_object(&mem, &d).await, data);
}

/// A manifest fetch by digest as the proxy makes it under [`Content::fetch_turn`]: the lease
/// holder fetches (counted), stores the checked bytes with [`Content::put`] and releases the
/// lease; the others read what it stored.
async fn manifest_by_digest(
    c: Content,
    d: Digest,
    bytes: Bytes,
    count: Arc<AtomicUsize>,
) -> Vec<u8> {
    let mt = "application/vnd.oci.image.manifest.v1+json";
    let lease = match c.fetch_turn(&d).await {
        crate::store::Turn::Stored => {
            let obj = c.get(&d).await.expect("stored by the holder");
            let mut out = Vec::new();
            let mut s = Box::pin(obj.stream(None));
            while let Some(chunk) = s.next().await {
                out.extend_from_slice(&chunk.unwrap());
            }
            return out;
        }
        crate::store::Turn::Mine(lease) => Some(lease),
        crate::store::Turn::Alone => None,
    };
    count.fetch_add(1, Ordering::SeqCst);
    // A slow upstream: the others must be waiting meanwhile, not fetching.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.put(&d, &bytes, Some(bytes.len() as u64), Some(mt))
        .await
        .unwrap();
    drop(lease);
    bytes.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_by_digest_is_fetched_once_by_the_fleet() {
    let mem = Arc::new(InMemory::new());
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(replica(&mem, Duration::from_secs(30)).await);
    }
    let bytes = Bytes::from_static(br#"{"schemaVersion":2,"layers":[]}"#);
    let d = Digest::of(&bytes);
    let count = Arc::new(AtomicUsize::new(0));
    let mut pulls = Vec::new();
    for i in 0..12 {
        let c = replicas[i % 3].1.clone();
        let (bytes, count) = (bytes.clone(), count.clone());
        pulls.push(tokio::spawn(manifest_by_digest(c, d, bytes, count)));
    }
    for p in pulls {
        assert_eq!(
            p.await.unwrap(),
            bytes.to_vec(),
            "every answer byte-identical"
        );
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "one upstream fetch for the fleet"
    );
    assert_eq!(wait_for_object(&mem, &d).await, bytes);
}

#[tokio::test]
async fn a_dead_holders_manifest_lease_is_taken_over_after_expiry() {
    let mem = Arc::new(InMemory::new());
    let (_dir, a) = replica(&mem, Duration::from_secs(30)).await;
    let bytes = Bytes::from_static(br#"{"schemaVersion":2,"config":{}}"#);
    let d = Digest::of(&bytes);
    // A replica killed mid-fetch: its lease is live for a moment more, then expires, and
    // nothing was stored.
    let lease = ObjPath::from(format!("fleet/leases/sha256/{}", d.hex()));
    let dead = LeaseRecord::new("dead-replica", now_ms(), 600);
    mem.put(&lease, dead.encode().into()).await.unwrap();
    let waits = metric("trustgate_shared_lease_waits_total");
    let count = Arc::new(AtomicUsize::new(0));
    let got = manifest_by_digest(a, d, bytes.clone(), count.clone()).await;
    assert_eq!(got, bytes.to_vec());
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "fetched once, after the takeover"
    );
    assert!(
        metric("trustgate_shared_lease_waits_total") > waits,
        "it waited first"
    );
    assert_eq!(wait_for_object(&mem, &d).await, bytes);
}

#[tokio::test]
async fn records_are_create_only_and_compare_and_swap() {
    let mem = Arc::new(InMemory::new());
    let s = shared_over(&mem, Duration::from_secs(30));
    let key = s.record_key("trust/x/root.json");
    assert_eq!(
        s.create_record(&key, b"one".to_vec()).await.unwrap(),
        Written::Done
    );
    assert_eq!(
        s.create_record(&key, b"two".to_vec()).await.unwrap(),
        Written::Lost
    );
    let r = s.read_record(&key).await.unwrap().unwrap();
    assert_eq!(r.bytes.as_ref(), b"one");
    assert_eq!(
        s.update_record(&key, b"three".to_vec(), r.version.clone())
            .await
            .unwrap(),
        Written::Done
    );
    // The version read before the update is stale now.
    assert_eq!(
        s.update_record(&key, b"four".to_vec(), r.version)
            .await
            .unwrap(),
        Written::Lost
    );
    s.probe().await.unwrap();
}

pub(crate) fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn metric(name: &str) -> f64 {
    let text = crate::metrics::metrics().encode(false).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_damaged_bucket_object_is_refused_deleted_and_fetched_again() {
    let mem = Arc::new(InMemory::new());
    let (_dir, a) = replica(&mem, Duration::from_secs(30)).await;
    let data = Bytes::from(pattern(5000));
    let d = Digest::of(&data);
    // Written around trustgate, with other bytes under the digest's name.
    mem.put(&content_key(&d), Bytes::from(pattern(4999)).into())
        .await
        .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let fill = a.fill_from(None, d, None, None, upstream(data.clone(), count.clone()));
    assert!(
        fill.wait().await.is_err(),
        "the damaged copy is never served"
    );
    assert!(!a.disk().contains(&d));
    for _ in 0..100 {
        if mem.head(&content_key(&d)).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        mem.head(&content_key(&d)).await.is_err(),
        "deleted from the bucket"
    );
    // The next request goes upstream and stores the right bytes.
    let fill = a.fill_from(None, d, None, None, upstream(data.clone(), count.clone()));
    assert_eq!(read_all(&fill).await, data);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(wait_for_object(&mem, &d).await, data);
}

#[tokio::test]
async fn a_bucket_read_that_breaks_off_is_finished_from_the_upstream() {
    let data = Bytes::from(pattern(300 * 1024 + 5));
    let d = Digest::of(&data);
    // The bucket hands out 100 KiB, then the object is gone (a sweep on another replica).
    let first = data.slice(..100 * 1024);
    let bucket: SharedStream = Box::pin(futures_util::stream::iter(vec![
        Ok(first),
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "object deleted",
        )),
    ]));
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = source::resume_from_upstream(d, bucket, upstream(data.clone(), count.clone()));
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    assert_eq!(Bytes::from(out), data, "every byte right, none twice");
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // A read that does not break never asks the upstream.
    let whole: SharedStream = Box::pin(futures_util::stream::iter(vec![Ok(data.clone())]));
    let count = Arc::new(AtomicUsize::new(0));
    let mut s = source::resume_from_upstream(d, whole, upstream(data.clone(), count.clone()));
    while s.next().await.is_some() {}
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn sweep_keeps_the_bound_oldest_first_and_spares_trust_state_and_fills() {
    let mem = Arc::new(InMemory::new());
    let a = shared_over(&mem, Duration::from_secs(30));
    let b = shared_over(&mem, Duration::from_secs(30));
    let objs: Vec<Bytes> = (0..4).map(|i| Bytes::from(pattern(1000 + i))).collect();
    for o in &objs {
        a.put_verified(&Digest::of(o), o.clone(), None)
            .await
            .unwrap();
        // Distinct Last-Modified times, oldest first.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pin = a.record_key("trust/docker.io/library/alpine/root.json");
    a.create_record(&pin, b"{}".to_vec()).await.unwrap();
    // The oldest object has a fill lease: it is not deleted.
    let leased = Digest::of(&objs[0]);
    let lease = ObjPath::from(format!("fleet/leases/sha256/{}", leased.hex()));
    mem.put(&lease, Bytes::from_static(b"{}").into())
        .await
        .unwrap();

    // While A holds the sweep lease, B does not sweep.
    let held = match a.claim_key(&a.record_key("leases/sweep")).await.unwrap() {
        source::Claim::Mine(h) => h,
        source::Claim::Theirs { .. } => panic!("nobody else sweeps"),
    };
    let bounds = sweep::Bounds {
        max_size: Some(2100),
        max_age: None,
    };
    assert_eq!(b.sweep(bounds).await.unwrap(), None);
    drop(held);
    let mut swept = None;
    for _ in 0..100 {
        swept = b.sweep(bounds).await.unwrap();
        if swept.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let swept = swept.expect("B sweeps once A released the lease");
    assert_eq!(swept.objects, 2);
    assert!(swept.remaining_bytes <= 2100);
    let present = |o: &Bytes| {
        let k = content_key(&Digest::of(o));
        let mem = mem.clone();
        async move { mem.head(&k).await.is_ok() }
    };
    assert!(present(&objs[0]).await, "an object being filled is kept");
    assert!(
        !present(&objs[1]).await && !present(&objs[2]).await,
        "oldest go"
    );
    assert!(present(&objs[3]).await, "the newest stays");
    assert!(
        a.read_record(&pin).await.unwrap().is_some(),
        "trust pins are never swept"
    );
}
