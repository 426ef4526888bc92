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
