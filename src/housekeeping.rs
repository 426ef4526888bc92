//! Periodic upkeep of the in-memory caches, so that memory goes back to its idle level after
//! a burst (issue 15: a flood of nonexistent names).
//!
//! moka removes expired entries only while a cache is being used: after a flood of names that
//! are never asked again, their expired negative answers and memos would stay in memory until
//! traffic for other names pushed them out. Every [`EVERY`], each cache runs its pending
//! removals. When that left fewer entries than the pass before, the heap's free pages are
//! handed back to the operating system ([`crate::heap`]): glibc keeps what a program frees for
//! reuse, and without it RSS would stay at the flood's high-water mark.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Gate;
use crate::proxy::Proxy;

/// How often the caches run their pending removals.
pub const EVERY: Duration = Duration::from_secs(10);

/// Runs `cache`'s pending removals (expired entries, evictions over its bound) and returns the
/// entries left.
pub(crate) fn settle<K, V>(cache: &moka::sync::Cache<K, V>) -> u64
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    cache.run_pending_tasks();
    cache.entry_count()
}

/// One pass over every cache of the gateway; the entries left in all of them.
pub fn pass(proxy: &Proxy, gate: Option<&Gate>) -> u64 {
    proxy.housekeep() + gate.map_or(0, Gate::housekeep)
}

/// Passes every [`EVERY`] until `stop` completes. Each pass runs on a blocking thread: removing
/// tens of thousands of expired entries is synchronous work a request must not wait behind.
pub async fn run(
    proxy: Arc<Proxy>,
    gate: Option<Arc<Gate>>,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let upkeep = async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut before = u64::MAX;
        loop {
            tick.tick().await;
            let (proxy, gate) = (proxy.clone(), gate.clone());
            let left = tokio::task::spawn_blocking(move || {
                let left = pass(&proxy, gate.as_deref());
                if left < before {
                    crate::heap::release_free_memory();
                }
                left
            })
            .await;
            match left {
                Ok(left) => {
                    crate::metrics::metrics().memory_entries(left);
                    if left != before {
                        tracing::debug!(entries = left, "cache upkeep");
                    }
                    before = left;
                }
                Err(e) => tracing::warn!(error = %e, "cache upkeep pass failed"),
            }
        }
    };
    tokio::select! {
        () = upkeep => {}
        () = stop => {}
    }
}
