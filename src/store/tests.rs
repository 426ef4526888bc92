//! Unit tests for the store internals: layout, LRU order and guards in an eviction pass, and the
//! fill shortcuts. The end-to-end behaviour is in `tests/inproc/store.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::*;

fn digest_of(s: &str) -> Digest {
    Digest::of(s.as_bytes())
}

#[test]
fn layout_shards_by_the_first_two_hex_digits() {
    let l = Layout::new(Path::new("/cache"));
    let d = digest_of("x");
    let hex = d.hex();
    assert_eq!(
        l.object(&d),
        Path::new("/cache/blobs/sha256").join(&hex[..2]).join(&hex)
    );
    assert_eq!(
        l.sidecar(&d).file_name().unwrap().to_str().unwrap(),
        format!("{hex}.type")
    );
    assert!(l.tmp_file().starts_with("/cache/tmp"));
    assert_ne!(l.tmp_file(), l.tmp_file());
}

#[tokio::test]
async fn eviction_pass_follows_lru_order_and_respects_guards() {
    let dir = tempfile::tempdir().unwrap();
    // No background evictor: the test drives passes itself.
    let store = Store::open(dir.path(), None).await.unwrap();
    let names = ["a", "b", "c", "d"];
    let ds: Vec<Digest> = names.iter().map(|n| digest_of(n)).collect();
    for (n, d) in names.iter().zip(&ds) {
        store.put(d, n.as_bytes(), None, None).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(store.total_size(), 4);
    // "a" is the oldest but is being served; "b" was used recently.
    let held = store.get(&ds[0]).await.unwrap();
    drop(store.get(&ds[1]).await.unwrap());
    let evicted_before = metric("trustgate_cache_evictions_total");
    let bytes_before = metric("trustgate_cache_evicted_bytes_total");
    assert_eq!(evict::pass(&store.inner, 2), 2);
    assert!(metric("trustgate_cache_evictions_total") - evicted_before >= 2.0);
    assert!(metric("trustgate_cache_evicted_bytes_total") - bytes_before >= 2.0);
    assert!(store.contains(&ds[0]), "guarded");
    assert!(store.contains(&ds[1]), "recently used");
    assert!(!store.contains(&ds[2]) && !store.contains(&ds[3]));
    assert_eq!(store.evictions(), 2);
    assert_eq!(store.total_size(), 2);
    // Nothing left that may go: the pass gives up rather than touch the guarded object.
    assert_eq!(evict::pass(&store.inner, 0), 1);
    assert!(store.contains(&ds[0]));
    drop(held);
    assert!(store.inner.lock().in_use.is_empty(), "guards released");
    assert_eq!(evict::pass(&store.inner, 0), 1);
    assert_eq!(store.total_size(), 0);
}

#[tokio::test]
async fn fill_of_a_stored_digest_is_finished_and_never_calls_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).await.unwrap();
    let d = digest_of("stored");
    store
        .put(&d, b"stored", None, Some("text/plain"))
        .await
        .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let f = store.fill(d, None, None, move || {
        c.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, String>((None, futures_util::stream::empty::<Result<Bytes, String>>())) }
    });
    assert!(f.is_finished());
    assert_eq!(f.total().await.unwrap(), Some(6));
    f.wait().await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // The finished fill pins the object against eviction while it lives.
    assert_eq!(evict::pass(&store.inner, 0), 0);
    drop(f);
    assert_eq!(evict::pass(&store.inner, 0), 1);
}

#[test]
fn fill_errors_say_who_failed_and_keep_their_source() {
    let digest = digest_of("e");
    let up = FillError::Upstream {
        digest,
        source: std::sync::Arc::new(std::io::Error::other("reset")),
    };
    let wrong = FillError::DigestMismatch {
        expected: digest,
        actual: digest_of("f"),
    };
    let disk = FillError::Io {
        digest,
        message: "No space left on device".into(),
    };
    assert!(up.is_upstream() && wrong.is_upstream() && !disk.is_upstream());
    assert_eq!(
        up.upstream_source::<std::io::Error>()
            .map(|e| e.to_string()),
        Some("reset".to_string())
    );
    assert!(disk.upstream_source::<std::io::Error>().is_none());
    assert!(wrong.to_string().contains(&digest.to_string()));
}

/// The value of one series in the process-wide metrics (other tests count there too: only
/// lower bounds hold, or exact values under labels no other test uses).
fn metric(series: &str) -> f64 {
    let text = crate::metrics::metrics().encode(true).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn single_flight_joins_waiters_and_bad_bytes_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).await.unwrap();
    // Bytes that do not hash to the digest asked for.
    let d = digest_of("the signed bytes");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, String>>(1);
    let body = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let joined = "trustgate_singleflight_joined_total{content=\"blob\"}";
    let joined_before = metric(joined);
    let f = store.fill_from(Some("unit-upstream"), d, None, None, move || async move {
        Ok::<_, String>((None, body))
    });
    let again = store.fill(d, None, None, || async {
        Ok::<_, String>((None, futures_util::stream::empty::<Result<Bytes, String>>()))
    });
    assert!(
        Arc::ptr_eq(&f, &again),
        "the second caller joins the running fill"
    );
    assert!(metric(joined) > joined_before);

    let reader = f.reader(None);
    assert!(metric("trustgate_singleflight_waiters") >= 1.0);
    tx.send(Ok(Bytes::from_static(b"other bytes")))
        .await
        .unwrap();
    drop(tx);
    assert!(matches!(
        f.wait().await,
        Err(FillError::DigestMismatch { .. })
    ));
    let charged = "trustgate_upstream_errors_total{upstream=\"unit-upstream\",kind=\"registry\",error=\"digest_mismatch\"}";
    assert_eq!(metric(charged), 1.0);
    drop(reader);
}

type Chunks = futures_util::stream::Iter<std::vec::IntoIter<Result<Bytes, String>>>;
type Answer = std::future::Ready<Result<(Option<u64>, Chunks), String>>;

/// A body of `data` in chunks of 64 KiB, with `Content-Length` when `announce`.
fn upstream_body(data: Bytes, announce: bool) -> impl FnOnce() -> Answer + Send + 'static {
    move || {
        let len = data.len() as u64;
        let chunks: Vec<Result<Bytes, String>> = data
            .chunks(64 * 1024)
            .map(|c| Ok(data.slice_ref(c)))
            .collect();
        std::future::ready(Ok((
            announce.then_some(len),
            futures_util::stream::iter(chunks),
        )))
    }
}

async fn read_all(fill: &Arc<Fill>) -> Result<Vec<u8>, std::io::Error> {
    use futures_util::StreamExt;
    let mut r = Box::pin(fill.reader(None));
    let mut out = Vec::new();
    while let Some(c) = r.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

fn tmp_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("tmp")).unwrap().count()
}

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

#[tokio::test]
async fn a_fill_over_max_size_is_served_unstored_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(1 << 20)).await.unwrap();
    let data = pattern(3 << 20, 1);
    let d = Digest::of(&data);
    let series = "trustgate_store_unstored_total{reason=\"too_large\"}";
    let before = metric(series);
    let fill = store.fill(d, None, None, upstream_body(data.clone(), true));
    assert_eq!(fill.total().await.unwrap(), Some(3 << 20));
    let got = read_all(&fill).await.unwrap();
    assert!(got == data[..], "every byte, in order");
    assert_eq!(fill.unstored(), Some(Unstored::TooLarge));
    assert!(matches!(fill.wait().await, Err(FillError::Io { .. })));
    assert!(!store.contains(&d));
    assert_eq!(tmp_files(dir.path()), 0, "no temp file");
    assert!(metric(series) > before);
    assert_eq!(store.reserved(), 0);
    // A bound of the configuration is not a disk fault: /readyz stays quiet.
    assert_eq!(store.degraded().await, None);
}

/// Every range reader of `fill`, collected; `None` when one did not finish in 20 s.
async fn read_ranges(fill: &Arc<Fill>, ranges: &[(u64, u64)]) -> Option<Vec<Vec<u8>>> {
    use futures_util::StreamExt;
    let readers = ranges.iter().map(|&(start, end)| {
        let mut r = Box::pin(fill.reader(Some(crate::range::ByteRange { start, end })));
        async move {
            let mut out = Vec::new();
            while let Some(c) = r.next().await {
                out.extend_from_slice(&c.expect("range reader"));
            }
            out
        }
    });
    let all = futures_util::future::join_all(readers);
    tokio::time::timeout(std::time::Duration::from_secs(20), all)
        .await
        .ok()
}

/// A range that ends well before an unstored fill does (more than the spill's window before
/// the end) must not hold the fill back: the fill cannot reach its verdict while it waits for
/// the reader, and the reader's last byte waits for the verdict.
#[tokio::test]
async fn a_range_ending_early_in_an_unstored_fill_completes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(1 << 20)).await.unwrap();
    let len = spill::WINDOW + (3 << 20);
    let data = pattern(len, 11);
    let d = Digest::of(&data);
    let fill = store.fill(d, None, None, upstream_body(data.clone(), true));
    let ranges = [(5, 1_048_580), (0, 0), (2 << 20, (len - 1) as u64)];
    let got = read_ranges(&fill, &ranges)
        .await
        .expect("every range completes");
    for ((start, end), got) in ranges.iter().zip(&got) {
        assert!(
            got[..] == data[*start as usize..=*end as usize],
            "bytes {start}-{end}"
        );
    }
    assert_eq!(fill.unstored(), Some(Unstored::TooLarge));
}

/// The same when the switch comes midway (disk full): the early range's bytes are in the temp
/// file written before the switch, and the fill still must not wait for it.
#[tokio::test]
async fn a_range_in_the_bytes_written_before_a_disk_full_completes() {
    let fs = Tmpfs::mount("2m");
    let store = Store::open(fs.path(), None).await.unwrap();
    let len = spill::WINDOW + (4 << 20);
    let data = pattern(len, 12);
    let fill = store.fill(
        Digest::of(&data),
        None,
        None,
        upstream_body(data.clone(), false),
    );
    let ranges = [(100, 1_000_000), (len as u64 - 10, len as u64 - 1)];
    let got = read_ranges(&fill, &ranges)
        .await
        .expect("every range completes");
    assert!(got[0][..] == data[100..=1_000_000]);
    assert!(got[1][..] == data[len - 10..]);
    assert_eq!(fill.unstored(), Some(Unstored::NoSpace));
    drop(fill);
    assert_eq!(tmp_files(fs.path()), 0, "no partial file left");
}

/// A range reader held for the verdict still fails with a lying upstream, never a clean end.
#[tokio::test]
async fn a_held_range_of_an_unstored_fill_fails_with_a_lying_upstream() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(1 << 20)).await.unwrap();
    let data = pattern(spill::WINDOW + (2 << 20), 13);
    let fill = store.fill(
        digest_of("what the signature named"),
        None,
        None,
        upstream_body(data, true),
    );
    let mut r = Box::pin(fill.reader(Some(crate::range::ByteRange { start: 0, end: 99 })));
    let mut last = None;
    while let Some(c) = r.next().await {
        last = Some(c.is_ok());
    }
    assert_eq!(last, Some(false), "the range ends with the fill's error");
}

#[tokio::test]
async fn an_unstored_fill_still_fails_a_lying_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(1 << 20)).await.unwrap();
    let data = pattern(2 << 20, 2);
    let claimed = digest_of("what the signature named");
    let fill = store.fill(claimed, None, None, upstream_body(data, true));
    let r = read_all(&fill).await;
    assert!(
        r.is_err(),
        "a reader never reaches a clean end of wrong bytes"
    );
    assert!(matches!(
        fill.wait().await,
        Err(FillError::DigestMismatch { .. })
    ));
    assert_eq!(tmp_files(dir.path()), 0);
}

#[tokio::test]
async fn running_fills_reserve_their_length_against_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(3 << 20)).await.unwrap();
    // A fill of 2 MiB whose body waits: its length is reserved from the upstream's answer.
    let data = pattern(2 << 20, 3);
    let d = Digest::of(&data);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let body = data.clone();
    let slow = store.fill(d, None, None, move || async move {
        let s = futures_util::stream::once(async move {
            let _ = rx.await;
            Ok::<_, String>(body)
        });
        Ok::<_, String>((Some(2 << 20), Box::pin(s)))
    });
    assert_eq!(slow.total().await.unwrap(), Some(2 << 20));
    while store.reserved() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(store.reserved(), 2 << 20);
    // A second cold fill of 2 MiB would overshoot 3 MiB with the first: served unstored.
    let other = pattern(2 << 20, 4);
    let fill = store.fill(
        Digest::of(&other),
        None,
        None,
        upstream_body(other.clone(), true),
    );
    assert!(read_all(&fill).await.unwrap() == other[..]);
    assert_eq!(fill.unstored(), Some(Unstored::MaxSize));
    // The first settles on commit: stored, nothing reserved.
    tx.send(()).unwrap();
    slow.wait().await.unwrap();
    assert_eq!(store.reserved(), 0);
    assert_eq!(store.total_size(), 2 << 20);
}

#[tokio::test]
async fn a_file_changed_under_the_store_is_a_miss_never_wrong_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), None).await.unwrap();
    let (a, b, c) = (digest_of("aaaa"), digest_of("bbbb"), digest_of("cccc"));
    for (d, t) in [(a, "aaaa"), (b, "bbbb"), (c, "cccc")] {
        store.put(&d, t.as_bytes(), None, None).await.unwrap();
    }
    let l = &store.inner.layout;
    // Deleted.
    std::fs::remove_file(l.object(&a)).unwrap();
    assert!(store.get(&a).await.is_none());
    assert!(!store.contains(&a));
    // Truncated in place.
    std::fs::OpenOptions::new()
        .write(true)
        .open(l.object(&b))
        .unwrap()
        .set_len(2)
        .unwrap();
    assert!(store.get(&b).await.is_none());
    assert!(!store.contains(&b) && !l.object(&b).exists(), "dropped");
    // Replaced by another file of the same length.
    let stranger = dir.path().join("stranger");
    std::fs::write(&stranger, b"xxxx").unwrap();
    std::fs::rename(&stranger, l.object(&c)).unwrap();
    assert!(store.get(&c).await.is_none());
    assert!(!store.contains(&c) && !l.object(&c).exists(), "dropped");
    // A refetch restores it.
    let fill = store.fill(
        c,
        None,
        None,
        upstream_body(Bytes::from_static(b"cccc"), true),
    );
    fill.wait().await.unwrap();
    assert_eq!(store.get(&c).await.unwrap().size, 4);
    assert_eq!(store.total_size(), 4);
}

#[tokio::test]
async fn a_put_the_bounds_refuse_is_counted_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Some(4)).await.unwrap();
    let d = digest_of("too long for four bytes");
    let series = "trustgate_store_unstored_total{reason=\"too_large\"}";
    let before = metric(series);
    store
        .put(&d, b"too long for four bytes", None, None)
        .await
        .unwrap();
    assert!(!store.contains(&d));
    assert!(metric(series) > before);
    assert_eq!(tmp_files(dir.path()), 0);
}

/// A tmpfs of `size` mounted on a temp dir (the tests run as root), unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "mounting a tmpfs needs root (the store's disk-fault tests)"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {mode}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test]
async fn disk_full_midway_switches_to_unstored_and_recovers() {
    let fs = Tmpfs::mount("2m");
    let store = Store::open(fs.path(), None).await.unwrap();
    // No length announced: nothing to refuse up front, the disk fills midway.
    let data = pattern(5 << 20, 5);
    let d = Digest::of(&data);
    let series = "trustgate_store_unstored_total{reason=\"no_space\"}";
    let before = metric(series);
    let fill = store.fill(d, None, None, upstream_body(data.clone(), false));
    let got = read_all(&fill).await.unwrap();
    assert!(
        got == data[..],
        "every byte, the ones from disk and the ones after"
    );
    assert_eq!(fill.unstored(), Some(Unstored::NoSpace));
    assert!(!store.contains(&d));
    assert_eq!(tmp_files(fs.path()), 0, "no partial file left");
    assert!(metric(series) > before);
    drop(fill);
    // Space is back once the readers let go; a small fill is stored, and the report clears.
    let small = pattern(100_000, 6);
    let f = store.fill(
        Digest::of(&small),
        None,
        None,
        upstream_body(small.clone(), true),
    );
    f.wait().await.unwrap();
    assert!(store.contains(&Digest::of(&small)));
    assert_eq!(store.degraded().await, None);
}

#[tokio::test]
async fn a_read_only_store_serves_unstored_and_recovers_when_writable() {
    let fs = Tmpfs::mount("8m");
    let store = Store::open(fs.path(), None).await.unwrap();
    let kept = pattern(1000, 7);
    store
        .put(&Digest::of(&kept), &kept, None, None)
        .await
        .unwrap();
    fs.remount("ro");
    let data = pattern(1 << 20, 8);
    let d = Digest::of(&data);
    let fill = store.fill(d, None, None, upstream_body(data.clone(), true));
    assert!(read_all(&fill).await.unwrap() == data[..]);
    assert_eq!(fill.unstored(), Some(Unstored::ReadOnly));
    let line = store.degraded().await.unwrap();
    assert!(line.contains("read-only"), "{line}");
    // Cached content keeps being served.
    assert_eq!(store.get(&Digest::of(&kept)).await.unwrap().size, 1000);
    fs.remount("rw");
    assert_eq!(
        store.degraded().await,
        None,
        "the probe sees the disk writable"
    );
    let fill = store.fill(d, None, None, upstream_body(data, true));
    fill.wait().await.unwrap();
    assert!(store.contains(&d));
}

#[tokio::test]
async fn the_floor_evicts_then_refuses() {
    let fs = Tmpfs::mount("4m");
    let limits = Limits {
        max_size: None,
        min_free: crate::config::MinFree::Bytes(1 << 20),
    };
    let store = Store::open_with(fs.path(), limits).await.unwrap();
    let old = pattern(1 << 20, 9);
    store
        .put(&Digest::of(&old), &old, None, None)
        .await
        .unwrap();
    // 2.5 MiB more would leave under 1 MiB free: the old object goes to make room.
    let data = pattern(5 << 19, 10);
    let fill = store.fill(
        Digest::of(&data),
        None,
        None,
        upstream_body(data.clone(), true),
    );
    fill.wait().await.unwrap();
    assert!(!store.contains(&Digest::of(&old)), "evicted for the floor");
    // 3.5 MiB can never fit above the floor: served unstored, the cache kept.
    let big = pattern(7 << 19, 11);
    let fill = store.fill(
        Digest::of(&big),
        None,
        None,
        upstream_body(big.clone(), true),
    );
    assert!(read_all(&fill).await.unwrap() == big[..]);
    assert_eq!(fill.unstored(), Some(Unstored::MinFree));
    assert!(
        store.contains(&Digest::of(&data)),
        "not evicted for nothing"
    );
}
