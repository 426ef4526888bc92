//! Background LRU eviction down to `storage.max_size`.
//!
//! Woken after each commit and every [`PERIOD`]; removes least-recently-used objects until the
//! total fits, skipping objects with live in-use guards and digests being filled. Deletion happens
//! under the store lock, so it cannot race a commit of the same digest.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{fs, Inner};

const PERIOD: Duration = Duration::from_secs(30);

pub(crate) fn spawn(inner: Weak<Inner>, wake: Arc<Notify>, max: u64) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(PERIOD) => {}
            }
            let Some(strong) = inner.upgrade() else { break };
            let res = tokio::task::spawn_blocking(move || pass(&strong, max)).await;
            if let Err(e) = res {
                tracing::error!(error = %e, "store evictor pass failed");
            }
        }
        tracing::debug!("store evictor stopped: store dropped");
    });
}

/// One eviction pass. Returns how many objects it removed.
pub(crate) fn pass(inner: &Inner, max: u64) -> usize {
    let mut st = inner.lock();
    if st.total <= max {
        return 0;
    }
    let mut candidates: Vec<_> = st
        .index
        .iter()
        .filter(|(d, _)| !st.in_use.contains_key(*d) && !st.inflight.contains_key(*d))
        .map(|(d, e)| (e.last_use, *d))
        .collect();
    candidates.sort_unstable();
    let mut removed = 0;
    for (_, digest) in candidates {
        if st.total <= max {
            break;
        }
        let path = inner.layout.object(&digest);
        if let Err(e) = fs::remove_if_present(&path) {
            tracing::warn!(%digest, error = %e, path = %path.display(), "store: eviction failed to remove an object");
            continue;
        }
        let _ = fs::remove_if_present(&inner.layout.sidecar(&digest));
        if let Some(e) = st.index.remove(&digest) {
            st.total -= e.size;
            removed += 1;
            inner.evictions.fetch_add(1, Ordering::Relaxed);
            crate::metrics::metrics().evicted(e.size);
            tracing::info!(%digest, size = e.size, total = st.total, max, "store: evicted least recently used object");
        }
    }
    if st.total > max {
        tracing::debug!(
            total = st.total,
            max,
            "store: still over max_size; the rest is in use or being filled"
        );
    }
    removed
}
