//! Content-addressed disk store (sha256) with single-flight fills and LRU eviction, behind the
//! store seam [`Content`], where the shared object-storage tier of a fleet joins ([`shared`],
//! issue 14).
//!
//! Invariants:
//! - an object under `blobs/` was hashed (and, when known, length-checked) before a rename made it
//!   visible; temp files live in `tmp/` and are removed at open, so a crash leaves nothing half
//!   written where a reader could see it;
//! - a hit is served from the file without re-hashing ([`StoredObject::stream`]);
//! - one upstream fetch per missing digest at a time ([`Store::fill`]); every waiter reads the
//!   temp file as it grows, so the first byte reaches each client before the fetch completes;
//! - the evictor never removes an object held by an in-use guard or being filled.
//!
//! Use from the proxy (blob by digest):
//!
//! ```ignore
//! if let Some(obj) = store.get(&digest).await {
//!     // 200/206 from disk: obj.size, obj.media_type, obj.stream(range)
//! } else {
//!     let fill = store.fill(digest, signed_len, media_type, move || upstream.get_blob(digest));
//!     let total = fill.total().await?;          // Content-Length, or the fill's error
//!     let body = fill.reader(range);            // bytes as they land; ends in Err on failure
//! }
//! ```
//!
//! One process per root: `open` empties `tmp/`, which would break another live process's fills.
//! `max_size` bounds committed objects; bytes of fills in progress are not counted until they
//! commit (the evictor then catches up).
//!
//! Locking: one `parking_lot::Mutex` over the index, the in-flight map and the in-use counts. The
//! renames that make an object visible and the evictor's deletions both happen under it, so an
//! eviction can never delete a file a concurrent commit has just put in place.

mod content;
mod error;
mod evict;
mod fill;
mod fs;
pub mod shared;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use tokio::sync::Notify;

pub use content::Content;
pub use error::{FillError, StoreError};
pub use fill::Fill;
pub use fs::StoredObject;
pub use shared::{SharedError, SharedStore, SharedStoreConfig};

use crate::reference::Digest;
use fs::Layout;

/// The content-addressed store. Shared as `Arc<Store>`.
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    layout: Layout,
    max_size: Option<u64>,
    state: Mutex<State>,
    evictions: AtomicU64,
    /// Wakes the evictor (after each commit, when an object in use is released while the store
    /// is over budget, and on drop of the store so it exits).
    wake: Arc<Notify>,
}

#[derive(Default)]
pub(crate) struct State {
    index: HashMap<Digest, Entry>,
    inflight: HashMap<Digest, Arc<Fill>>,
    in_use: HashMap<Digest, usize>,
    total: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    last_use: u64,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// Makes a verified temp file visible: sidecar first, then (under the lock) the rename and
    /// the index entry, then the directory fsync so the rename survives a power cut.
    fn commit_blocking(
        &self,
        tmp: &Path,
        digest: &Digest,
        size: u64,
        media_type: Option<&str>,
    ) -> std::io::Result<()> {
        fs::prepare_commit_blocking(&self.layout, digest, media_type)?;
        {
            let mut st = self.lock();
            std::fs::rename(tmp, self.layout.object(digest))?;
            let entry = Entry {
                size,
                last_use: fs::now(),
            };
            if st.index.insert(*digest, entry).is_none() {
                st.total += size;
            }
            st.inflight.remove(digest);
        }
        fs::sync_dir(&self.layout.dir(digest))?;
        self.wake.notify_one();
        Ok(())
    }
}

/// Keeps the evictor off one digest while alive (an open response, a fill reader).
pub(crate) struct UseGuard {
    inner: Arc<Inner>,
    digest: Digest,
}

impl UseGuard {
    fn new_locked(inner: &Arc<Inner>, st: &mut State, digest: Digest) -> Self {
        *st.in_use.entry(digest).or_insert(0) += 1;
        Self {
            inner: inner.clone(),
            digest,
        }
    }

    pub(crate) fn new(inner: &Arc<Inner>, digest: Digest) -> Self {
        let mut st = inner.lock();
        Self::new_locked(inner, &mut st, digest)
    }
}

impl Drop for UseGuard {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        let mut released = false;
        if let Some(n) = st.in_use.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                st.in_use.remove(&self.digest);
                released = true;
            }
        }
        // An eviction pass skips objects in use; when the last user of one lets go while the
        // store is over budget, run the pass again rather than wait for the periodic one.
        let over = self.inner.max_size.is_some_and(|max| st.total > max);
        drop(st);
        if released && over {
            self.inner.wake.notify_one();
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))
}

impl Store {
    /// Opens (creating) `<root>/blobs/sha256/<2 hex>/<64 hex>`, removes leftovers in `<root>/tmp/`
    /// from a crash, builds the in-memory index (size, last use from mtime) and starts the
    /// background evictor when `max_size` is `Some`.
    pub async fn open(root: &Path, max_size: Option<u64>) -> Result<Arc<Store>, StoreError> {
        let layout = Layout::new(root);
        let l = layout.clone();
        let (removed, scanned) = blocking(move || {
            let removed = fs::prepare_blocking(&l).map_err(|e| StoreError::io(&l.tmp, e))?;
            let scanned = fs::scan_blocking(&l).map_err(|e| StoreError::io(&l.blobs, e))?;
            Ok::<_, StoreError>((removed, scanned))
        })
        .await??;
        let mut state = State::default();
        for s in scanned {
            state.total += s.size;
            state.index.insert(
                s.digest,
                Entry {
                    size: s.size,
                    last_use: s.last_use,
                },
            );
        }
        tracing::info!(
            root = %root.display(),
            objects = state.index.len(),
            bytes = state.total,
            tmp_removed = removed,
            ?max_size,
            "store opened"
        );
        let inner = Arc::new(Inner {
            layout,
            max_size,
            state: Mutex::new(state),
            evictions: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
        });
        if let Some(max) = max_size {
            evict::spawn(Arc::downgrade(&inner), inner.wake.clone(), max);
            // Already over budget from a previous run (or a smaller max_size): evict now.
            inner.wake.notify_one();
        }
        Ok(Arc::new(Store { inner }))
    }

    /// A stored object: an open file handle, its size, its media type and an in-use guard.
    /// Touches its last-use time. `None` on a miss (or when the file vanished under the index).
    pub async fn get(&self, digest: &Digest) -> Option<StoredObject> {
        let digest = *digest;
        let guard = {
            let mut st = self.inner.lock();
            let entry = st.index.get_mut(&digest)?;
            entry.last_use = fs::now();
            UseGuard::new_locked(&self.inner, &mut st, digest)
        };
        let layout = self.inner.layout.clone();
        match blocking(move || fs::open_object_blocking(&layout, &digest)).await {
            Ok(Ok((file, size, media_type))) => Some(StoredObject {
                size,
                media_type,
                file,
                guard,
            }),
            Ok(Err(e)) => {
                tracing::warn!(%digest, error = %e, "store: indexed object cannot be opened; dropping it from the index");
                drop(guard);
                self.forget(&digest);
                None
            }
            Err(_) => None,
        }
    }

    fn forget(&self, digest: &Digest) {
        let mut st = self.inner.lock();
        if let Some(e) = st.index.remove(digest) {
            st.total -= e.size;
        }
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.inner.lock().index.contains_key(digest)
    }

    /// Small objects (manifests): verifies sha256 (and `expected_len` if `Some`), then temp file +
    /// fsync + rename + directory fsync, with the media type in a sidecar. Storing an object that
    /// is already present is a no-op (content addressing: same digest, same bytes).
    pub async fn put(
        &self,
        digest: &Digest,
        bytes: &[u8],
        expected_len: Option<u64>,
        media_type: Option<&str>,
    ) -> Result<(), StoreError> {
        if let Some(expected) = expected_len {
            if bytes.len() as u64 != expected {
                return Err(StoreError::LengthMismatch {
                    digest: *digest,
                    expected,
                    actual: bytes.len() as u64,
                });
            }
        }
        let actual = Digest::of(bytes);
        if actual != *digest {
            return Err(StoreError::DigestMismatch {
                expected: *digest,
                actual,
            });
        }
        if self.contains(digest) {
            return Ok(());
        }
        let inner = self.inner.clone();
        let digest = *digest;
        let data = bytes::Bytes::copy_from_slice(bytes);
        let media_type = media_type.map(str::to_owned);
        blocking(move || {
            let tmp = inner.layout.tmp_file();
            let res = fs::write_tmp_blocking(&tmp, &data).and_then(|()| {
                inner.commit_blocking(&tmp, &digest, data.len() as u64, media_type.as_deref())
            });
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res.map_err(|e| StoreError::io(&tmp, e))
        })
        .await?
    }

    /// Re-hashes a stored object. `Ok(true)`: intact. `Ok(false)`: it did not match (or its
    /// size differs from the index) and was removed, with a warning. `Err(NotFound)` on a miss.
    pub async fn check(&self, digest: &Digest) -> Result<bool, StoreError> {
        let digest = *digest;
        let obj = self
            .get(&digest)
            .await
            .ok_or(StoreError::NotFound(digest))?;
        let file = obj.file;
        let path = self.inner.layout.object(&digest);
        let p = path.clone();
        let (actual, len) = blocking(move || hash_file(file))
            .await?
            .map_err(|e| StoreError::io(&p, e))?;
        // The guard stays alive until the removal below: the evictor cannot race it, and while
        // the digest is indexed no fill can replace the file.
        let guard = obj.guard;
        if actual == digest {
            return Ok(true);
        }
        tracing::warn!(%digest, %actual, len, path = %path.display(), "store: object failed its hash check; removing it");
        let inner = self.inner.clone();
        blocking(move || {
            let mut st = inner.lock();
            // Removed even while another response holds it open: corrupt bytes are never served
            // again (an already open handle on Linux keeps its own view).
            fs::remove_if_present(&inner.layout.object(&digest))?;
            fs::remove_if_present(&inner.layout.sidecar(&digest))?;
            if let Some(e) = st.index.remove(&digest) {
                st.total -= e.size;
            }
            Ok::<_, std::io::Error>(())
        })
        .await?
        .map_err(|e| StoreError::io(&path, e))?;
        drop(guard);
        Ok(false)
    }

    /// Bytes currently stored (committed objects only).
    pub fn total_size(&self) -> u64 {
        self.inner.lock().total
    }

    /// How many objects the evictor has removed since open.
    pub fn evictions(&self) -> u64 {
        self.inner.evictions.load(Ordering::Relaxed)
    }

    /// The configured budget, if any.
    pub fn max_size(&self) -> Option<u64> {
        self.inner.max_size
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Let the evictor notice the store is gone.
        self.inner.wake.notify_one();
    }
}

fn hash_file(mut file: std::fs::File) -> std::io::Result<(Digest, u64)> {
    use sha2::Digest as _;
    use std::io::Read;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; fs::CHUNK];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((Digest::from_bytes(hasher.finalize().into()), len))
}

#[cfg(test)]
mod tests;
