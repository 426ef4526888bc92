//! One async lock per key, for single flight ("one upstream fetch per key at a time, the others
//! wait for it"), whose map holds an entry only while someone holds or waits for that key.
//!
//! A plain `HashMap<K, Arc<Mutex<()>>>` that is never pruned grows with every distinct key ever
//! asked for, real or not (issue 11: 100,000 nonexistent repository names took a running
//! trustgate from 8 to 85 MiB, for good). Here each claimant is counted, and the last one out
//! removes the entry, also when its request is cancelled while waiting.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use parking_lot::Mutex;

struct Entry {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Holders and waiters.
    users: usize,
}

/// Async locks by key.
pub struct KeyedLocks<K> {
    map: Mutex<HashMap<K, Entry>>,
}

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone> KeyedLocks<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for `key`'s turn. The turn ends when the guard is dropped.
    pub async fn lock(&self, key: K) -> KeyedGuard<'_, K> {
        let lock = {
            let mut map = self.map.lock();
            let e = map.entry(key.clone()).or_insert_with(|| Entry {
                lock: Arc::default(),
                users: 0,
            });
            e.users += 1;
            e.lock.clone()
        };
        // Counted before waiting, so a cancelled wait still leaves through `Claim::drop`.
        let claim = Claim { locks: self, key };
        let guard = lock.lock_owned().await;
        KeyedGuard {
            _guard: guard,
            _claim: claim,
        }
    }

    /// Keys held or waited for right now.
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Claim<'a, K: Hash + Eq> {
    locks: &'a KeyedLocks<K>,
    key: K,
}

impl<K: Hash + Eq> Drop for Claim<'_, K> {
    fn drop(&mut self) {
        let mut map = self.locks.map.lock();
        if let Some(e) = map.get_mut(&self.key) {
            e.users -= 1;
            if e.users == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// A held turn. Fields drop in order: the lock is released before the claim leaves the map.
pub struct KeyedGuard<'a, K: Hash + Eq> {
    _guard: tokio::sync::OwnedMutexGuard<()>,
    _claim: Claim<'a, K>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_leave_with_their_last_user() {
        let locks = KeyedLocks::new();
        for i in 0..1000 {
            let _g = locks.lock(i).await;
        }
        assert!(locks.is_empty());
        let g = locks.lock(1).await;
        let mut waiter = Box::pin(locks.lock(1));
        // The waiter queues behind `g`, then is cancelled.
        assert!(futures_util::poll!(waiter.as_mut()).is_pending());
        assert_eq!(locks.len(), 1);
        drop(waiter);
        drop(g);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn one_holder_at_a_time() {
        let locks = Arc::new(KeyedLocks::new());
        let g = locks.lock("a").await;
        let l2 = locks.clone();
        let other = tokio::spawn(async move {
            let _g = l2.lock("a").await;
        });
        tokio::task::yield_now().await;
        assert!(!other.is_finished());
        drop(g);
        other.await.unwrap();
        assert!(locks.is_empty());
    }
}
