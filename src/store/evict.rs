//! Background LRU eviction down to `storage.max_size` and up to `storage.min_free`.
//!
//! Woken after each commit and every [`PERIOD`]; removes least-recently-used objects until the
//! total (plus the reservations of running fills) fits `max_size` and the filesystem has
//! `min_free` free, skipping objects with live in-use guards and digests being filled. Deletion
//! happens under the store lock, so it cannot race a commit of the same digest. A fill that
//! needs room evicts the same way before it starts ([`super::Inner::admit`]).
//!
//! Each periodic pass also re-probes a disk fault the store reported, so `/readyz` recovers by
//! itself when the disk does.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::{fs, Inner, State};

const PERIOD: Duration = Duration::from_secs(30);

pub(crate) fn spawn(inner: Weak<Inner>, wake: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            let periodic = tokio::select! {
                _ = wake.notified() => false,
                _ = tokio::time::sleep(PERIOD) => true,
            };
            let Some(strong) = inner.upgrade() else { break };
            let res = tokio::task::spawn_blocking(move || {
                run_pass(&strong);
                if periodic {
                    strong.degraded_blocking();
                }
            })
            .await;
            if let Err(e) = res {
                tracing::error!(error = %e, "store evictor pass failed");
            }
        }
        tracing::debug!("store evictor stopped: store dropped");
    });
}

/// One pass against the configured bounds. Returns how many objects it removed.
pub(crate) fn run_pass(inner: &Inner) -> usize {
    let space = inner.space();
    let mut st = inner.lock();
    let for_max = inner
        .limits
        .max_size
        .map(|max| (st.total + st.reserved).saturating_sub(max))
        .unwrap_or(0);
    let for_floor = space
        .map(|s| inner.limits.min_free.bytes(s.size).saturating_sub(s.avail))
        .unwrap_or(0);
    let need = for_max.max(for_floor);
    let before = inner.evictions.load(Ordering::Relaxed);
    let freed = free_locked(inner, &mut st, need, false);
    st.short = freed < need;
    if st.short {
        tracing::debug!(
            need,
            freed,
            total = st.total,
            "store: still over its bounds; the rest is in use or being filled"
        );
    }
    (inner.evictions.load(Ordering::Relaxed) - before) as usize
}

/// One pass down to `max` committed bytes (tests drive passes with explicit budgets).
#[cfg(test)]
pub(crate) fn pass(inner: &Inner, max: u64) -> usize {
    let mut st = inner.lock();
    let need = st.total.saturating_sub(max);
    let before = inner.evictions.load(Ordering::Relaxed);
    free_locked(inner, &mut st, need, false);
    (inner.evictions.load(Ordering::Relaxed) - before) as usize
}

/// Removes least recently used objects (not in use, not being filled) until `need` bytes are
/// freed. With `all_or_nothing`, removes nothing unless that is reachable: a fill that cannot
/// get its room anyway goes unstored without emptying the cache for nothing. Returns the bytes
/// freed.
pub(crate) fn free_locked(inner: &Inner, st: &mut State, need: u64, all_or_nothing: bool) -> u64 {
    if need == 0 {
        return 0;
    }
    let mut candidates: Vec<_> = st
        .index
        .iter()
        .filter(|(d, _)| !st.in_use.contains_key(*d) && !st.inflight.contains_key(*d))
        .map(|(d, e)| (e.last_use, *d, e.size))
        .collect();
    if all_or_nothing && candidates.iter().map(|c| c.2).sum::<u64>() < need {
        return 0;
    }
    candidates.sort_unstable();
    let mut freed = 0;
    for (_, digest, _) in candidates {
        if freed >= need {
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
            freed += e.size;
            inner.evictions.fetch_add(1, Ordering::Relaxed);
            crate::metrics::metrics().evicted(e.size);
            tracing::info!(%digest, size = e.size, total = st.total, "store: evicted least recently used object");
        }
    }
    freed
}
