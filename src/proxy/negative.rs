//! Negative answers remembered briefly, and concurrent identical misses coalesced (issue 15).
//!
//! Under enforce, a request for a repository the Notary server has never heard of costs a
//! `root.json` fetch that ends in a 404. A client in a retry loop, or a flood of made-up names,
//! would turn every request into a Notary request. So a "no trust data" answer is remembered
//! for `[trust] negative_ttl`, bounded in entries; and lookups of a name not known to exist
//! take a turn per name, so that N identical concurrent misses cause one Notary request (the
//! first finds the 404, the others find it remembered).
//!
//! Under `off` and `audit` the same holds for the registry: a tag the registry answers 404
//! for is remembered as a [`RegistryMiss`] (same TTL and bound), so a flood of made-up
//! repositories or tags costs the registry one HEAD + GET per name and period, and N identical
//! concurrent misses cost it one. A tag pushed after its miss was remembered is seen once the
//! entry expires (`negative_ttl`, 30 s by default).
//!
//! Only a definite "does not exist" is remembered: a 5xx, a timeout or a refused connection is
//! the Notary server's trouble, not an answer, and the next request asks again. Names seen to
//! exist skip the turn, so warm pulls of one tag never queue behind each other here (the trust
//! service has its own per-name turn for refreshes).

use std::hash::Hash;
use std::time::Duration;

use crate::keyed_lock::{KeyedGuard, KeyedLocks};
use crate::upstream::{OciErrorEntry, UpstreamError};

/// A registry's 404 for a manifest, kept to give the same answer again without asking.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryMiss {
    upstream: String,
    errors: Vec<OciErrorEntry>,
    text: Option<String>,
}

impl RegistryMiss {
    /// The miss in `e`, when `e` is the registry's 404 (and nothing else: a 401, a 5xx or a
    /// timeout is not an answer about the name).
    pub fn of(e: &UpstreamError) -> Option<RegistryMiss> {
        match e {
            UpstreamError::Status {
                upstream,
                status: 404,
                errors,
                text,
                ..
            } => Some(RegistryMiss {
                upstream: upstream.clone(),
                errors: errors.clone(),
                text: text.clone(),
            }),
            _ => None,
        }
    }

    /// The registry's answer again, as it gave it.
    pub fn to_error(&self) -> UpstreamError {
        UpstreamError::Status {
            upstream: self.upstream.clone(),
            status: 404,
            errors: self.errors.clone(),
            text: self.text.clone(),
            retry_after: None,
        }
    }
}

/// Remembered "does not exist" answers of type `V` by key, with a turn per key for misses.
pub struct NegativeCache<K, V> {
    /// `None` when `negative_ttl` is zero: nothing is remembered, misses are still coalesced.
    misses: Option<moka::sync::Cache<K, V>>,
    /// Keys recently seen to exist (their lookups need no turn here).
    present: Option<moka::sync::Cache<K, ()>>,
    turns: KeyedLocks<K>,
}

/// What a lookup under [`NegativeCache::turn`] should do.
pub enum Lookup<'a, K: Hash + Eq, V> {
    /// A remembered "does not exist".
    Remembered(V),
    /// Ask; the turn (if any) is held until the answer is recorded.
    Ask(Option<KeyedGuard<'a, K>>),
}

impl<K, V> NegativeCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(ttl: Duration, max_entries: u64) -> Self {
        Self {
            misses: bounded(ttl, max_entries),
            present: bounded(ttl, max_entries),
            turns: KeyedLocks::new(),
        }
    }

    fn remembered(&self, key: &K) -> Option<V> {
        let v = self.misses.as_ref()?.get(key)?;
        crate::metrics::metrics().negative_cache_hit();
        Some(v)
    }

    /// A remembered miss, or permission to ask: at once for a key seen to exist, else after
    /// the concurrent lookup of the same key (if any) has recorded its answer.
    pub async fn turn(&self, key: &K) -> Lookup<'_, K, V> {
        if let Some(v) = self.remembered(key) {
            return Lookup::Remembered(v);
        }
        if self.present.as_ref().is_some_and(|p| p.contains_key(key)) {
            return Lookup::Ask(None);
        }
        let guard = self.turns.lock(key.clone()).await;
        match self.remembered(key) {
            Some(v) => Lookup::Remembered(v),
            None => Lookup::Ask(Some(guard)),
        }
    }

    /// The answer for `key`: `Some(miss)` for a definite "does not exist", `None` when the key
    /// exists. Errors that are not answers must not be recorded at all.
    pub fn record(&self, key: &K, miss: Option<V>) {
        match miss {
            Some(v) => {
                if let Some(p) = &self.present {
                    p.invalidate(key);
                }
                if let Some(m) = &self.misses {
                    m.insert(key.clone(), v);
                }
            }
            None => {
                if let Some(p) = &self.present {
                    p.insert(key.clone(), ());
                }
            }
        }
    }

    /// Runs pending removals (expired answers); the entries left ([`crate::housekeeping`]).
    pub fn housekeep(&self) -> u64 {
        use crate::housekeeping::settle;
        self.misses.as_ref().map_or(0, settle) + self.present.as_ref().map_or(0, settle)
    }

    /// Lookups waiting or running right now (for tests: the turn map empties itself).
    #[cfg(test)]
    pub fn turns_in_use(&self) -> usize {
        self.turns.len()
    }

    /// Misses remembered right now.
    #[cfg(test)]
    pub fn remembered_count(&self) -> u64 {
        self.misses.as_ref().map_or(0, |m| {
            m.run_pending_tasks();
            m.entry_count()
        })
    }
}

/// A cache of at most `max_entries` that forgets after `ttl`; none for a zero `ttl`.
fn bounded<K, V>(ttl: Duration, max_entries: u64) -> Option<moka::sync::Cache<K, V>>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    (!ttl.is_zero()).then(|| {
        moka::sync::Cache::builder()
            .max_capacity(max_entries)
            .time_to_live(ttl)
            .build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// One lookup as the proxy does it: the remembered miss, or ask `origin` under the turn.
    async fn lookup(
        cache: &NegativeCache<String, &'static str>,
        origin: &AtomicUsize,
        key: &str,
        exists: bool,
    ) -> Result<(), &'static str> {
        let key = key.to_string();
        match cache.turn(&key).await {
            Lookup::Remembered(v) => Err(v),
            Lookup::Ask(_turn) => {
                origin.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                if exists {
                    cache.record(&key, None);
                    Ok(())
                } else {
                    cache.record(&key, Some("no trust data"));
                    Err("no trust data")
                }
            }
        }
    }

    #[tokio::test]
    async fn a_miss_is_remembered_and_counted_as_a_hit() {
        let cache = NegativeCache::new(Duration::from_secs(30), 100);
        let origin = AtomicUsize::new(0);
        for _ in 0..5 {
            assert_eq!(
                lookup(&cache, &origin, "x/nope", false).await,
                Err("no trust data")
            );
        }
        assert_eq!(origin.load(Ordering::SeqCst), 1);
        assert_eq!(cache.turns_in_use(), 0);
    }

    #[tokio::test]
    async fn concurrent_identical_misses_ask_once() {
        let cache = Arc::new(NegativeCache::new(Duration::from_secs(30), 100));
        let origin = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (c, o) = (cache.clone(), origin.clone());
                tokio::spawn(async move { lookup(&c, &o, "x/same", false).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Err("no trust data"));
        }
        assert_eq!(origin.load(Ordering::SeqCst), 1);
        assert_eq!(cache.turns_in_use(), 0);
    }

    #[tokio::test]
    async fn with_ttl_zero_nothing_is_remembered_but_misses_still_take_turns() {
        let cache = NegativeCache::new(Duration::ZERO, 100);
        let origin = AtomicUsize::new(0);
        for _ in 0..3 {
            let _ = lookup(&cache, &origin, "x/nope", false).await;
        }
        assert_eq!(origin.load(Ordering::SeqCst), 3);
        assert_eq!(cache.remembered_count(), 0);
    }

    #[tokio::test]
    async fn existing_names_skip_the_turn() {
        let cache = NegativeCache::new(Duration::from_secs(30), 100);
        let origin = AtomicUsize::new(0);
        lookup(&cache, &origin, "x/real", true).await.unwrap();
        let at_once = matches!(cache.turn(&"x/real".to_string()).await, Lookup::Ask(None));
        assert!(at_once, "a name seen to exist must be asked at once");
    }

    #[tokio::test]
    async fn entries_are_bounded() {
        let cache = NegativeCache::new(Duration::from_secs(30), 50);
        let origin = AtomicUsize::new(0);
        for i in 0..1000 {
            let _ = lookup(&cache, &origin, &format!("x/n{i}"), false).await;
        }
        assert!(cache.remembered_count() <= 50);
        assert_eq!(cache.turns_in_use(), 0);
    }

    #[test]
    fn only_a_registry_404_is_a_miss_and_it_comes_back_the_same() {
        let status = |status| UpstreamError::Status {
            upstream: "r.io".into(),
            status,
            errors: vec![OciErrorEntry {
                code: "MANIFEST_UNKNOWN".into(),
                message: "manifest unknown".into(),
                detail: serde_json::Value::Null,
            }],
            text: None,
            retry_after: None,
        };
        let miss = RegistryMiss::of(&status(404)).expect("a 404 is a miss");
        let again = miss.to_error();
        assert_eq!(again.to_string(), status(404).to_string());
        assert_eq!(again.http_status_for_client(), 404);
        for other in [401, 429, 500, 503] {
            assert!(RegistryMiss::of(&status(other)).is_none(), "{other}");
        }
        let timeout = UpstreamError::Timeout {
            upstream: "r.io".into(),
            url: "http://r.io".into(),
            phase: crate::upstream::TimeoutPhase::FirstByte,
            after_ms: 1,
        };
        assert!(RegistryMiss::of(&timeout).is_none());
    }

    // moka's TTL runs on its own clock (not tokio's, which cannot be paused for it), so this
    // one test waits out a short real TTL.
    #[allow(clippy::disallowed_methods)]
    #[tokio::test]
    async fn a_name_that_comes_into_existence_is_asked_again_after_the_ttl() {
        let cache = NegativeCache::new(Duration::from_millis(50), 10);
        let origin = AtomicUsize::new(0);
        let _ = lookup(&cache, &origin, "x/later", false).await;
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(lookup(&cache, &origin, "x/later", true).await, Ok(()));
        assert_eq!(origin.load(Ordering::SeqCst), 2);
    }

    /// Expired answers of names never asked again leave memory at the next upkeep pass, with
    /// no other use of the cache to trigger moka's own removals.
    #[allow(clippy::disallowed_methods)]
    #[tokio::test]
    async fn upkeep_removes_expired_answers_nobody_asks_for() {
        let cache = NegativeCache::new(Duration::from_millis(50), 1_000);
        let origin = AtomicUsize::new(0);
        for i in 0..200 {
            let _ = lookup(&cache, &origin, &format!("flood/n{i}"), i % 2 == 0).await;
        }
        assert_eq!(cache.housekeep(), 200, "100 misses and 100 present answers");
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(cache.housekeep(), 0);
    }
}
