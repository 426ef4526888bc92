//! On-disk layout and the blocking file-system steps: naming, scanning at open, committing a
//! verified temp file into place, and streaming a stored object back.
//!
//! ```text
//! <root>/blobs/sha256/<2 hex>/<64 hex>        the object, only ever created by rename
//! <root>/blobs/sha256/<2 hex>/<64 hex>.type   optional media type (written before the object)
//! <root>/tmp/<unique>                         fills and puts in progress; emptied at open
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::Stream;

use super::UseGuard;
use crate::range::ByteRange;
use crate::reference::Digest;

/// Read size for serving, and the write-buffer size of a fill: 256 KiB kept peak RSS lowest at 16
/// clients with no throughput lost against bigger chunks (what a connection holds with it is
/// in BENCHMARKS.md).
pub(crate) const CHUNK: usize = 256 * 1024;

const TYPE_SUFFIX: &str = ".type";

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) blobs: PathBuf,
    pub(crate) tmp: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            blobs: root.join("blobs").join("sha256"),
            tmp: root.join("tmp"),
        }
    }

    pub(crate) fn dir(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(&digest.hex()[..2])
    }

    pub(crate) fn object(&self, digest: &Digest) -> PathBuf {
        self.dir(digest).join(digest.hex())
    }

    pub(crate) fn sidecar(&self, digest: &Digest) -> PathBuf {
        self.dir(digest)
            .join(format!("{}{TYPE_SUFFIX}", digest.hex()))
    }

    /// A fresh, unique temp path: pid + process-wide counter + clock, so two stores (or two
    /// processes) on one root never collide. `create_new` guards the rest.
    pub(crate) fn tmp_file(&self) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        self.tmp
            .join(format!("{}-{n}-{nanos:08x}", std::process::id()))
    }
}

/// Nanoseconds since the epoch: the LRU clock (comparable with file mtimes after a restart).
pub(crate) fn now() -> u64 {
    time_to_nanos(SystemTime::now())
}

fn time_to_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Creates the layout and removes whatever a crash left in tmp/: those files never matched (or
/// were never checked against) their digest, so they are not worth keeping.
pub(crate) fn prepare_blocking(layout: &Layout) -> io::Result<usize> {
    fs::create_dir_all(&layout.blobs)?;
    fs::create_dir_all(&layout.tmp)?;
    let mut removed = 0;
    for entry in fs::read_dir(&layout.tmp)? {
        let entry = entry?;
        let path = entry.path();
        let res = if entry.file_type()?.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match res {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// One object found at open.
pub(crate) struct Scanned {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) last_use: u64,
    pub(crate) ino: u64,
}

/// Lists the stored objects (size, last use from mtime). Objects are not re-hashed here: only a
/// verified file is ever renamed into place. Orphaned sidecars (a crash between the sidecar and
/// the object rename) and foreign names are removed or skipped.
pub(crate) fn scan_blocking(layout: &Layout) -> io::Result<Vec<Scanned>> {
    let mut out = Vec::new();
    for shard in fs::read_dir(&layout.blobs)? {
        let shard = shard?;
        if !shard.file_type()?.is_dir() {
            continue;
        }
        for entry in fs::read_dir(shard.path())? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(hex) = name.strip_suffix(TYPE_SUFFIX) {
                if !shard.path().join(hex).exists() {
                    let _ = fs::remove_file(entry.path());
                }
                continue;
            }
            let Ok(digest) = Digest::parse(&format!("sha256:{name}")) else {
                tracing::warn!(path = %entry.path().display(), "store: ignoring a foreign file");
                continue;
            };
            let meta = entry.metadata()?;
            if !meta.is_file() {
                continue;
            }
            out.push(Scanned {
                digest,
                size: meta.len(),
                last_use: meta.modified().map(time_to_nanos).unwrap_or(0),
                ino: meta.ino(),
            });
        }
    }
    Ok(out)
}

/// Writes the media-type sidecar (itself via temp + rename) and creates the shard directory.
/// Done before the object's rename, so a visible object always has its sidecar.
pub(crate) fn prepare_commit_blocking(
    layout: &Layout,
    digest: &Digest,
    media_type: Option<&str>,
) -> io::Result<()> {
    fs::create_dir_all(layout.dir(digest))?;
    if let Some(mt) = media_type {
        let tmp = layout.tmp_file();
        let res = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            io::Write::write_all(&mut f, mt.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, layout.sidecar(digest))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res?;
    }
    Ok(())
}

/// Writes `bytes` to a new temp file and fsyncs it.
pub(crate) fn write_tmp_blocking(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        io::Write::write_all(&mut f, bytes)?;
        f.sync_all()
    })();
    if res.is_err() {
        let _ = fs::remove_file(path);
    }
    res
}

pub(crate) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A stored object's file as opened for serving.
pub(crate) struct Opened {
    pub(crate) file: fs::File,
    pub(crate) size: u64,
    /// Compared with the inode recorded at commit: another file at the path is not ours.
    pub(crate) ino: u64,
    pub(crate) media_type: Option<String>,
}

/// Opens a stored object for serving and touches its mtime, so the LRU order survives a restart.
pub(crate) fn open_object_blocking(layout: &Layout, digest: &Digest) -> io::Result<Opened> {
    let file = fs::File::open(layout.object(digest))?;
    let meta = file.metadata()?;
    // Best effort: a read-only store still serves.
    let _ = file.set_modified(SystemTime::now());
    let media_type = match fs::read_to_string(layout.sidecar(digest)) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(Opened {
        file,
        size: meta.len(),
        ino: meta.ino(),
        media_type,
    })
}

/// A stored object ready to serve: an open handle (so a concurrent eviction or a later
/// replacement cannot change what this response sends), its size, its media type, and an in-use
/// guard that keeps the evictor off it while this value or its stream lives.
pub struct StoredObject {
    pub size: u64,
    pub media_type: Option<String>,
    pub(crate) file: fs::File,
    pub(crate) guard: UseGuard,
}

impl std::fmt::Debug for StoredObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredObject")
            .field("digest", &self.guard.digest)
            .field("size", &self.size)
            .field("media_type", &self.media_type)
            .finish()
    }
}

impl StoredObject {
    /// The object's bytes (or the inclusive `range` of them) read from disk in 256 KiB chunks.
    /// No re-hash: the file was verified before it was renamed into place. A range that starts
    /// past the end yields one error; an `end` past the end is clipped (callers validate ranges
    /// with `crate::range::parse_range` against `size` first).
    pub fn stream(
        self,
        range: Option<ByteRange>,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let (start, remaining) = match range {
            None => (0, self.size),
            Some(r) if r.start >= self.size || r.end < r.start => (r.start, u64::MAX),
            Some(r) => (r.start, r.end.min(self.size - 1) - r.start + 1),
        };
        let state = ReadState {
            file: Arc::new(self.file),
            pos: start,
            remaining,
            _guard: self.guard,
        };
        futures_util::stream::unfold(Some(state), |state| async move {
            let mut st = state?;
            if st.remaining == u64::MAX {
                let e = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "range starts past the end of the stored object",
                );
                return Some((Err(e), None));
            }
            if st.remaining == 0 {
                return None;
            }
            let want = st.remaining.min(CHUNK as u64) as usize;
            match read_some(&st.file, st.pos, want).await {
                Ok(buf) => {
                    st.remaining -= buf.len() as u64;
                    st.pos += buf.len() as u64;
                    Some((Ok(buf), Some(st)))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

impl StoredObject {
    /// The open file and the in-use guard, for a sender that reads the file itself (the
    /// zero-copy path, `api::sendfile`).
    pub(crate) fn into_file(self) -> (Arc<fs::File>, UseGuard) {
        (Arc::new(self.file), self.guard)
    }
}

struct ReadState {
    file: Arc<fs::File>,
    pos: u64,
    remaining: u64,
    _guard: UseGuard,
}

/// Reads up to `want` bytes at offset `pos` (`pread`, so a handle has no position to keep). At
/// least one byte, or an `UnexpectedEof` error: the callers only ask for bytes they know the
/// file holds.
///
/// Bytes in the page cache (a warm blob; a fill's bytes, just written) are read right here with
/// `RWF_NOWAIT`, which never waits for the disk: no hand-off to the blocking pool and back. Only
/// what is not cached goes to the blocking pool. perf on a cold pull showed those hand-offs as a
/// quarter of trustgate's time (BENCHMARKS.md, "Against the peers").
///
/// The bytes land directly in the buffer that is handed on to the response, and `Bytes::from`
/// keeps that allocation. (A `tokio::fs::File` reads into a buffer of its own and copies from
/// there: one more pass over every byte served, and one more 256 KiB buffer per open stream.)
pub(crate) async fn read_some(file: &Arc<fs::File>, pos: u64, want: usize) -> io::Result<Bytes> {
    // Allocated here, on a runtime thread, not on the blocking thread: glibc gives each thread
    // that allocates its own arena, and buffers freed elsewhere would pile up in a dozen arenas
    // (measured: +8 MiB peak RSS at 16 clients).
    let mut buf = vec![0u8; want];
    if let Some(n) = read_cached(file, pos, &mut buf) {
        buf.truncate(n);
        return Ok(Bytes::from(buf));
    }
    let file = file.clone();
    let buf = tokio::task::spawn_blocking(move || {
        let mut got = 0;
        while got < want {
            match file.read_at(&mut buf[got..], pos + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf)
    })
    .await
    .map_err(io::Error::other)??;
    if buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "stored object is shorter than recorded",
        ));
    }
    Ok(Bytes::from(buf))
}

/// `preadv2(RWF_NOWAIT)`: the bytes at `pos` that the page cache holds, without blocking.
/// `None` when nothing could be read that way (not cached, end of file, or a kernel or file
/// system without `RWF_NOWAIT`): the caller then reads on the blocking pool, which also reports
/// errors.
#[cfg(target_os = "linux")]
fn read_cached(file: &fs::File, pos: u64, buf: &mut [u8]) -> Option<usize> {
    use rustix::io::{preadv2, ReadWriteFlags};
    match preadv2(
        file,
        &mut [io::IoSliceMut::new(buf)],
        pos,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(n) if n > 0 => Some(n),
        _ => None,
    }
}

/// Whether the bytes at `pos` and at `pos + len - 1` are in the page cache, asked without
/// waiting for the disk (`preadv2(RWF_NOWAIT)` of one byte each). A zero-copy send of the range
/// in between (`sendfile(2)`) runs on a runtime thread and would wait for any page that is not
/// cached; its two ends stand for it (pages of a stored file leave the cache in runs, and the
/// kernel's readahead brings them back in runs). A page missing in the middle costs one disk
/// read on that thread, never wrong bytes.
pub(crate) fn is_cached(file: &fs::File, pos: u64, len: u64) -> bool {
    let mut one = [0u8; 1];
    len > 0
        && read_cached(file, pos, &mut one).is_some()
        && (len == 1 || read_cached(file, pos + len - 1, &mut one).is_some())
}

#[cfg(not(target_os = "linux"))]
fn read_cached(_file: &fs::File, _pos: u64, _buf: &mut [u8]) -> Option<usize> {
    None
}
