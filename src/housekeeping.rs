//! Periodic upkeep of the in-memory caches, so that memory goes back to its idle level after
//! a burst (issue 15: a flood of nonexistent names).
//!
//! moka removes expired entries only while a cache is being used: after a flood of names that
//! are never asked again, their expired negative answers and memos would stay in memory until
//! traffic for other names pushed them out. Every [`EVERY`], each cache runs its pending
//! removals. When that left at least [`TRIM_AFTER`] fewer entries than the pass before, the
//! heap's free pages are handed back to the operating system ([`crate::heap`]): glibc keeps
//! what a program frees for reuse, and without it RSS would stay at the flood's high-water
//! mark. Smaller drops are the ordinary coming and going of names, not worth a walk of the
//! heap under its locks.

use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Gate;
use crate::proxy::Proxy;

/// How often the caches run their pending removals.
pub const EVERY: Duration = Duration::from_secs(10);

/// Entries one pass must have dropped for the heap to be trimmed after it.
pub const TRIM_AFTER: u64 = 1_000;

/// Whether a pass that left `left` entries, after one that left `before`, freed enough to
/// trim the heap.
fn worth_trimming(before: u64, left: u64) -> bool {
    before.saturating_sub(left) >= TRIM_AFTER
}

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
        // The first pass trims too: start-up (indexing the store, loading trust data) frees.
        let mut before = u64::MAX;
        loop {
            tick.tick().await;
            let (proxy, gate) = (proxy.clone(), gate.clone());
            let left = tokio::task::spawn_blocking(move || {
                let left = pass(&proxy, gate.as_deref());
                if worth_trimming(before, left) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_large_drop_trims() {
        assert!(worth_trimming(u64::MAX, 0), "the first pass");
        assert!(worth_trimming(37_122, 3), "a flood expired");
        assert!(!worth_trimming(1_500, 900), "names coming and going");
        assert!(!worth_trimming(10, 40), "growing");
    }

    #[test]
    fn a_pass_reports_what_is_left_after_expiry() {
        let short = moka::sync::Cache::builder()
            .time_to_live(Duration::from_millis(30))
            .build();
        for i in 0..500u32 {
            short.insert(i, ());
        }
        assert_eq!(settle(&short), 500);
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            settle(&short),
            0,
            "expired entries leave without any other use"
        );
    }
}
