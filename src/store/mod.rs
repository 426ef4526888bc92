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
//!
//! Bounds ([`Limits`], [`space`]): `max_size` counts committed objects plus a reservation of each
//! running fill's expected length (taken when the upstream answers, released on failure, settled
//! on commit); `min_free` keeps that much of the filesystem free. A fill that would break either
//! bound after evicting what may go, or whose disk refuses a write (full, read-only, I/O error),
//! is not an error: its bytes are streamed to the clients unstored, still hashed, and counted
//! (`trustgate_store_unstored_total{reason}`); see [`Fill`]. `/readyz` reports the disk fault
//! ([`Store::degraded`]) until a write succeeds again.
//!
//! A hit checks the file against what the commit recorded (size and inode): a file deleted,
//! truncated, extended or replaced under the running store is dropped and read as a miss, so it
//! is fetched (and, if the disk allows, stored) again. A rewrite in place that keeps the size is
//! not seen on open; [`Store::check`] re-hashes.
//!
//! Locking: one `parking_lot::Mutex` over the index, the in-flight map and the in-use counts. The
//! renames that make an object visible and the evictor's deletions both happen under it, so an
//! eviction can never delete a file a concurrent commit has just put in place.

mod condition;
mod content;
mod error;
mod evict;
mod fill;
mod fs;
pub mod shared;
mod space;
mod spill;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use tokio::sync::Notify;

pub use content::Content;
pub use error::{FillError, StoreError};
pub use fill::Fill;
pub use fs::StoredObject;
pub(crate) use fs::{is_cached, read_some, CHUNK as READ_CHUNK};
pub use shared::{SharedError, SharedStore, SharedStoreConfig, Turn};
pub use space::{Limits, Unstored};

use crate::reference::Digest;
use condition::Condition;
use fs::Layout;
use space::{FsSpace, Reservation, Usage};

/// The content-addressed store. Shared as `Arc<Store>`.
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    root: PathBuf,
    layout: Layout,
    limits: Limits,
    condition: Condition,
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
    /// Expected bytes of the fills in progress that will be stored ([`Reservation`]).
    reserved: u64,
    /// The last eviction pass could not bring the store within its bounds (objects in use):
    /// releasing one wakes the evictor.
    short: bool,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    last_use: u64,
    /// The file's inode when it was committed (or found at open): a different file at the
    /// path later was put there by someone else.
    ino: u64,
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
        reservation: Option<Reservation>,
    ) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        fs::prepare_commit_blocking(&self.layout, digest, media_type)?;
        let ino = std::fs::metadata(tmp)?.ino();
        {
            let mut st = self.lock();
            std::fs::rename(tmp, self.layout.object(digest))?;
            let entry = Entry {
                size,
                last_use: fs::now(),
                ino,
            };
            if st.index.insert(*digest, entry).is_none() {
                st.total += size;
            }
            // Settled in the same step: the evictor never sees the bytes twice.
            if let Some(r) = reservation {
                r.settle_locked(&mut st);
            }
            st.inflight.remove(digest);
        }
        // The object is in place and indexed: a failed directory sync only means a power cut
        // may lose it (a later scan then does not find it), not that it was not stored.
        if let Err(e) = fs::sync_dir(&self.layout.dir(digest)) {
            tracing::warn!(%digest, error = %e, "store: directory sync after a commit failed");
        }
        self.condition.write_succeeded();
        self.wake.notify_one();
        Ok(())
    }

    /// Leaves the in-flight map if the entry for `digest` is still the fill writing `tmp` (an
    /// unstored fill leaves early, and a new fill of the same digest may have taken its place).
    pub(crate) fn leave_inflight(&self, digest: &Digest, tmp: &Path) {
        let mut st = self.lock();
        if st.inflight.get(digest).is_some_and(|f| f.tmp_path() == tmp) {
            st.inflight.remove(digest);
        }
    }

    fn usage(st: &State) -> Usage {
        Usage {
            total: st.total,
            reserved: st.reserved,
        }
    }

    /// The filesystem under the store, `None` (with a debug line) when it cannot be asked.
    fn space(&self) -> Option<FsSpace> {
        match space::statvfs(&self.layout.blobs) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(error = %e, "store: statvfs failed; min_free not applied");
                None
            }
        }
    }

    /// May `len` more bytes be stored? Evicts least recently used objects to make room when
    /// that is enough, and then reserves `len`. Blocking (statvfs, file removals).
    pub(crate) fn admit(self: &Arc<Self>, len: u64) -> Result<Reservation, Unstored> {
        let space = self.space();
        let mut st = self.lock();
        let (for_max, for_floor) = space::shortfall(&self.limits, Self::usage(&st), space, len)?;
        let need = for_max.max(for_floor);
        if need > 0 && evict::free_locked(self, &mut st, need, true) < need {
            return Err(if for_max >= for_floor {
                Unstored::MaxSize
            } else {
                Unstored::MinFree
            });
        }
        Ok(Reservation::new_locked(self, &mut st, len))
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
        let over = st.short || self.inner.limits.max_size.is_some_and(|max| st.total > max);
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
    /// [`Store::open_with`] bounded by `max_size` alone (no free-space floor).
    pub async fn open(root: &Path, max_size: Option<u64>) -> Result<Arc<Store>, StoreError> {
        Self::open_with(root, Limits::max_size_only(max_size)).await
    }

    /// Opens (creating) `<root>/blobs/sha256/<2 hex>/<64 hex>`, removes leftovers in `<root>/tmp/`
    /// from a crash, builds the in-memory index (size, last use from mtime) and starts the
    /// background evictor when a bound is set.
    pub async fn open_with(root: &Path, limits: Limits) -> Result<Arc<Store>, StoreError> {
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
                    ino: s.ino,
                },
            );
        }
        tracing::info!(
            root = %root.display(),
            objects = state.index.len(),
            bytes = state.total,
            tmp_removed = removed,
            max_size = ?limits.max_size,
            min_free = %limits.min_free,
            "store opened"
        );
        let inner = Arc::new(Inner {
            root: root.to_path_buf(),
            layout,
            limits,
            condition: Condition::default(),
            state: Mutex::new(state),
            evictions: AtomicU64::new(0),
            wake: Arc::new(Notify::new()),
        });
        if !limits.unbounded() {
            evict::spawn(Arc::downgrade(&inner), inner.wake.clone());
            // Already over budget from a previous run (or smaller bounds): evict now.
            inner.wake.notify_one();
        }
        Ok(Arc::new(Store { inner }))
    }

    /// A stored object: an open file handle, its size, its media type and an in-use guard.
    /// Touches its last-use time. `None` on a miss, and when the file is not the one committed
    /// (deleted, truncated, extended or replaced under the store): that one is dropped, so
    /// the caller fetches the content again instead of serving wrong bytes.
    pub async fn get(&self, digest: &Digest) -> Option<StoredObject> {
        let digest = *digest;
        let (guard, recorded) = {
            let mut st = self.inner.lock();
            let entry = st.index.get_mut(&digest)?;
            entry.last_use = fs::now();
            let recorded = *entry;
            (UseGuard::new_locked(&self.inner, &mut st, digest), recorded)
        };
        let layout = self.inner.layout.clone();
        match blocking(move || fs::open_object_blocking(&layout, &digest)).await {
            Ok(Ok(found)) if found.size == recorded.size && found.ino == recorded.ino => {
                Some(StoredObject {
                    size: found.size,
                    media_type: found.media_type,
                    file: found.file,
                    guard,
                })
            }
            Ok(Ok(found)) => {
                tracing::warn!(
                    %digest,
                    size = found.size,
                    recorded_size = recorded.size,
                    replaced = found.ino != recorded.ino,
                    "store: a stored file changed under the store (truncated, extended or \
                     replaced); dropping it and fetching the content again"
                );
                drop(found);
                drop(guard);
                self.forget(&digest, true).await;
                None
            }
            Ok(Err(e)) => {
                tracing::warn!(%digest, error = %e, "store: indexed object cannot be opened; dropping it from the index");
                drop(guard);
                self.forget(&digest, false).await;
                None
            }
            Err(_) => None,
        }
    }

    /// Drops `digest` from the index, and its files when `remove` (a stranger's file at the
    /// object's path is not ours to serve, and must not block the rename of a refetch).
    async fn forget(&self, digest: &Digest, remove: bool) {
        let inner = self.inner.clone();
        let digest = *digest;
        let res = blocking(move || {
            let mut st = inner.lock();
            if st.in_use.contains_key(&digest) {
                // Another response holds it open: its own checks see the change; the next
                // `get` after it drops it.
                return Ok(());
            }
            if remove {
                fs::remove_if_present(&inner.layout.object(&digest))?;
                fs::remove_if_present(&inner.layout.sidecar(&digest))?;
            }
            if let Some(e) = st.index.remove(&digest) {
                st.total -= e.size;
            }
            Ok::<_, std::io::Error>(())
        })
        .await;
        if let Ok(Err(e)) = res {
            tracing::warn!(%digest, error = %e, "store: could not remove a changed object");
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
        let res = blocking(move || {
            let reservation = inner.admit(data.len() as u64).map_err(|r| (r, None))?;
            let tmp = inner.layout.tmp_file();
            let res = fs::write_tmp_blocking(&tmp, &data).and_then(|()| {
                inner.commit_blocking(
                    &tmp,
                    &digest,
                    data.len() as u64,
                    media_type.as_deref(),
                    Some(reservation),
                )
            });
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res.map_err(|e| (Unstored::from_io(&e), Some(StoreError::io(&tmp, e))))
        })
        .await?;
        // The caller keeps the checked bytes (and serves them) either way: a disk that cannot
        // take them is counted, logged and reported by `/readyz`, not an error of this put.
        if let Err((reason, err)) = res {
            let detail = err
                .map(|e| e.to_string())
                .unwrap_or_else(|| format!("a manifest of {} bytes does not fit", bytes.len()));
            self.inner
                .condition
                .unstored(reason, &detail, bytes.len() as u64);
        }
        Ok(())
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
        self.inner.limits.max_size
    }

    /// Bytes reserved by fills in progress (counted against the bounds until they commit).
    pub fn reserved(&self) -> u64 {
        self.inner.lock().reserved
    }

    /// How many pulls and puts were served without being stored since the store opened, and
    /// why the last one was: a caller that needs the content kept (seeding) compares the count
    /// before and after.
    pub fn unstored_so_far(&self) -> (u64, Option<String>) {
        self.inner.condition.unstored_so_far()
    }

    /// Why the store cannot keep content right now, as one line for `/readyz` (`None` when it
    /// can): a disk fault seen by the last write (disk full, read-only, write errors), or free
    /// space under `storage.min_free` that eviction could not restore. The gateway serves all
    /// the same, unstored. A disk fault is re-probed here (a small file written, synced and
    /// removed, and the free space checked), so the report clears by itself once the disk
    /// recovers, also when no pull comes to show it.
    pub async fn degraded(&self) -> Option<String> {
        let inner = self.inner.clone();
        blocking(move || inner.degraded_blocking()).await.ok()?
    }
}

impl Inner {
    pub(crate) fn degraded_blocking(&self) -> Option<String> {
        let root = self.root.display();
        let space = self.space();
        let floor = space.map(|s| self.limits.min_free.bytes(s.size));
        let below = match (space, floor) {
            (Some(s), Some(f)) if s.avail < f => Some((s.avail, f)),
            _ => None,
        };
        if let Some(condition::Fault {
            reason,
            detail,
            needed,
        }) = self.condition.fault()
        {
            let probe = self
                .layout
                .tmp
                .join(format!("probe-{}", std::process::id()));
            // Disk full clears once there is room again; a pull refused for the floor clears
            // when one is stored (the probe's few bytes say nothing about the next layer).
            let room = match reason {
                Unstored::NoSpace => below.is_none(),
                Unstored::MinFree => match (space, floor) {
                    (Some(s), Some(f)) => s.avail >= f + self.lock().reserved + needed,
                    _ => false,
                },
                _ => true,
            };
            match fs::write_tmp_blocking(&probe, b"trustgate store probe\n")
                .and_then(|()| std::fs::remove_file(&probe))
            {
                Ok(()) if room => self.condition.clear(),
                _ => {
                    return Some(format!(
                        "store {root}: {} ({detail}): pulls are served without being stored",
                        reason.describe()
                    ))
                }
            }
        }
        below.map(|(avail, floor)| {
            format!(
                "store {root}: {avail} bytes free, below storage.min_free ({floor} bytes): \
                 pulls that do not fit are served without being stored"
            )
        })
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("root", &self.inner.root)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
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
