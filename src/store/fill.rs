//! Single-flight fills: one upstream fetch per missing digest, written to a temp file while every
//! waiter reads that file as it grows.
//!
//! Progress travels on a `tokio::sync::watch` channel: `written` only counts bytes already handed
//! to the kernel (flushed), so a reader never reads past what the file holds. Memory stays
//! bounded: the writer buffers at most one 256 KiB chunk, readers read the file.

use std::future::Future;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};
use sha2::Digest as _;
use tokio::sync::watch;

use super::fs::{self, CHUNK};
use super::{FillError, Inner, Store, UseGuard};
use crate::body::BoxError;
use crate::metrics::{metrics, ContentKind, UpstreamErrorKind, UpstreamKind, WaiterGuard};
use crate::range::ByteRange;
use crate::reference::Digest;

#[derive(Debug, Clone)]
struct Progress {
    /// `None` until the upstream answered; then its announced length (or the expected one).
    total: Option<Option<u64>>,
    /// Bytes flushed to the temp file.
    written: u64,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
enum Outcome {
    Running,
    Done { size: u64 },
    Failed(FillError),
}

/// A running (or finished) fill of one digest. Obtained from [`Store::fill`].
pub struct Fill {
    digest: Digest,
    tmp_path: PathBuf,
    final_path: PathBuf,
    rx: watch::Receiver<Progress>,
    inner: Arc<Inner>,
    /// For a fill answered from the store: keeps the object from eviction while this lives.
    _pin: Option<UseGuard>,
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fill")
            .field("digest", &self.digest)
            .field("progress", &*self.rx.borrow())
            .finish()
    }
}

impl Fill {
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Waits until the upstream answered: the total length (the upstream's `Content-Length`,
    /// else the expected length given to [`Store::fill`], else `None`), or the fill's error.
    pub async fn total(&self) -> Result<Option<u64>, FillError> {
        let mut rx = self.rx.clone();
        loop {
            {
                let p = rx.borrow_and_update();
                match &p.outcome {
                    Outcome::Failed(e) => return Err(e.clone()),
                    Outcome::Done { size } => return Ok(Some(*size)),
                    Outcome::Running => {
                        if let Some(t) = p.total {
                            return Ok(t);
                        }
                    }
                }
            }
            if rx.changed().await.is_err() {
                return self.closed_outcome(&rx).map(Some);
            }
        }
    }

    /// Waits for completion: `Ok` once the object is committed to the store.
    pub async fn wait(&self) -> Result<(), FillError> {
        let mut rx = self.rx.clone();
        loop {
            match &rx.borrow_and_update().outcome {
                Outcome::Failed(e) => return Err(e.clone()),
                Outcome::Done { .. } => return Ok(()),
                Outcome::Running => {}
            }
            if rx.changed().await.is_err() {
                return self.closed_outcome(&rx).map(|_| ());
            }
        }
    }

    /// After the sender is gone: the final outcome, or `Aborted` if the task never set one.
    fn closed_outcome(&self, rx: &watch::Receiver<Progress>) -> Result<u64, FillError> {
        match &rx.borrow().outcome {
            Outcome::Done { size } => Ok(*size),
            Outcome::Failed(e) => Err(e.clone()),
            Outcome::Running => Err(FillError::Aborted {
                digest: self.digest,
            }),
        }
    }

    /// True once the fill ended (committed or failed).
    pub fn is_finished(&self) -> bool {
        !matches!(self.rx.borrow().outcome, Outcome::Running)
    }

    /// Bytes as they arrive, limited to the inclusive `range`: reads the temp file as it grows
    /// (the open handle survives the rename), or the final file once done. Ends with an error,
    /// never a clean end, if the fill fails, or if `range` reaches past the object's end. Holds an
    /// in-use guard while alive.
    pub fn reader(
        self: &Arc<Self>,
        range: Option<ByteRange>,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let (pos, end) = match range {
            Some(r) => (r.start, Some(r.end.saturating_add(1).max(r.start))),
            None => (0, None),
        };
        let state = ReaderState {
            fill: self.clone(),
            rx: self.rx.clone(),
            file: None,
            pos,
            end,
            _guard: UseGuard::new(&self.inner, self.digest),
            waiting: (!self.is_finished()).then(|| metrics().fill_waiter()),
        };
        futures_util::stream::unfold(Some(state), |state| async move {
            let mut st = state?;
            match st.step().await {
                Ok(Some(b)) => Some((Ok(b), Some(st))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

struct ReaderState {
    fill: Arc<Fill>,
    rx: watch::Receiver<Progress>,
    file: Option<Arc<std::fs::File>>,
    pos: u64,
    /// Exclusive end, `None` = to the end of the object.
    end: Option<u64>,
    _guard: UseGuard,
    /// Counts this reader as waiting on a running fill until the fill's verdict.
    waiting: Option<WaiterGuard>,
}

impl ReaderState {
    /// The next chunk, `None` at a clean end.
    async fn step(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            let p = self.rx.borrow_and_update().clone();
            let (available, done) = match p.outcome {
                Outcome::Failed(e) => return Err(e.into()),
                Outcome::Done { size } => (size, true),
                Outcome::Running => (p.written, false),
            };
            if done {
                self.waiting = None;
            }
            let limit = self.end.unwrap_or(u64::MAX);
            if self.pos >= limit || (done && self.end.is_none() && self.pos >= available) {
                return Ok(None);
            }
            if done && self.pos >= available {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "range reaches past the end of {} ({available} bytes)",
                        self.fill.digest
                    ),
                ));
            }
            // Until the fill's verdict, the last byte this reader would serve is held back:
            // a reader must never reach a clean end of bytes that may still fail their hash.
            let cap = if done {
                available.min(limit)
            } else {
                available.min(limit).saturating_sub(1)
            };
            if self.pos < cap {
                if self.file.is_none() {
                    let path = if done {
                        self.fill.final_path.clone()
                    } else {
                        self.fill.tmp_path.clone()
                    };
                    match tokio::task::spawn_blocking(move || std::fs::File::open(path))
                        .await
                        .map_err(io::Error::other)?
                    {
                        Ok(f) => self.file = Some(Arc::new(f)),
                        // The temp file was just renamed (Done is on its way) or removed
                        // (Failed is on its way): wait for the news.
                        Err(e) if e.kind() == io::ErrorKind::NotFound && !done => {
                            self.wait_change().await?;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                let want = (cap - self.pos).min(CHUNK as u64) as usize;
                let Some(file) = self.file.as_ref() else {
                    return Err(io::Error::other("store reader: file handle missing"));
                };
                let buf = fs::read_some(file, self.pos, want).await?;
                self.pos += buf.len() as u64;
                return Ok(Some(buf));
            }
            self.wait_change().await?;
        }
    }

    async fn wait_change(&mut self) -> io::Result<()> {
        if self.rx.changed().await.is_err() {
            // The task is gone; the loop reads its last word, unless it left none.
            if let Err(e) = self.fill.closed_outcome(&self.rx) {
                return Err(e.into());
            }
        }
        Ok(())
    }
}

impl Store {
    /// Single flight: returns the running fill for `digest`, or starts one by calling `start`
    /// (once across all concurrent callers) in a spawned task that keeps running even if every
    /// caller goes away. `start` yields the upstream's total length (if known) and the body.
    ///
    /// The fill writes to `<root>/tmp/<unique>`, hashing while writing; on success (sha256 ==
    /// `digest`, length == `expected_len` if given, == the announced length if given) it fsyncs
    /// and renames into place. On mismatch or a stream error it deletes the temp file and fails
    /// every reader. Either way it leaves the in-flight map before waiters hear the outcome, so a
    /// later call starts afresh. A digest already stored yields a finished fill over the file.
    ///
    /// Must be called within a tokio runtime.
    pub fn fill<F, Fut, S, E>(
        self: &Arc<Self>,
        digest: Digest,
        expected_len: Option<u64>,
        media_type: Option<String>,
        start: F,
    ) -> Arc<Fill>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Option<u64>, S), E>> + Send + 'static,
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        self.fill_from(None, digest, expected_len, media_type, start)
    }

    /// The fill of `digest` running now, if any (the fleet's peer endpoint streams it).
    pub fn running_fill(&self, digest: &Digest) -> Option<Arc<Fill>> {
        self.inner.lock().inflight.get(digest).cloned()
    }

    /// [`Store::fill`], naming the upstream the bytes come from: bytes that fail their digest
    /// or length are counted against it (`trustgate_upstream_errors_total`).
    pub fn fill_from<F, Fut, S, E>(
        self: &Arc<Self>,
        source: Option<&str>,
        digest: Digest,
        expected_len: Option<u64>,
        media_type: Option<String>,
        start: F,
    ) -> Arc<Fill>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Option<u64>, S), E>> + Send + 'static,
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let inner = &self.inner;
        let final_path = inner.layout.object(&digest);
        let mut st = inner.lock();
        if let Some(f) = st.inflight.get(&digest) {
            metrics().singleflight_joined(ContentKind::Blob);
            return f.clone();
        }
        if let Some(entry) = st.index.get_mut(&digest) {
            entry.last_use = fs::now();
            let size = entry.size;
            let pin = UseGuard::new_locked(inner, &mut st, digest);
            let (_tx, rx) = watch::channel(Progress {
                total: Some(Some(size)),
                written: size,
                outcome: Outcome::Done { size },
            });
            return Arc::new(Fill {
                digest,
                tmp_path: final_path.clone(),
                final_path,
                rx,
                inner: inner.clone(),
                _pin: Some(pin),
            });
        }
        let tmp_path = inner.layout.tmp_file();
        let (tx, rx) = watch::channel(Progress {
            total: None,
            written: 0,
            outcome: Outcome::Running,
        });
        let fill = Arc::new(Fill {
            digest,
            tmp_path: tmp_path.clone(),
            final_path,
            rx,
            inner: inner.clone(),
            _pin: None,
        });
        st.inflight.insert(digest, fill.clone());
        drop(st);
        tracing::debug!(%digest, ?expected_len, "store: fill started");
        let task = FillTask {
            inner: inner.clone(),
            source: source.map(str::to_string),
            digest,
            expected_len,
            media_type,
            tmp_path,
            tx,
            committed: false,
        };
        tokio::spawn(task.run(start));
        fill
    }
}

/// The spawned side of a fill. Its `Drop` cleans up even if the task is cancelled or panics.
struct FillTask {
    inner: Arc<Inner>,
    /// The upstream's name, for metrics.
    source: Option<String>,
    digest: Digest,
    expected_len: Option<u64>,
    media_type: Option<String>,
    tmp_path: PathBuf,
    tx: watch::Sender<Progress>,
    committed: bool,
}

impl Drop for FillTask {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp_path);
            self.inner.lock().inflight.remove(&self.digest);
        }
    }
}

impl FillTask {
    async fn run<F, Fut, S, E>(mut self, start: F)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Option<u64>, S), E>>,
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BoxError>,
    {
        let digest = self.digest;
        match self.download(start).await {
            Ok(size) => {
                tracing::info!(%digest, size, "store: fill committed");
                self.tx.send_modify(|p| {
                    p.written = size;
                    p.total.get_or_insert(Some(size));
                    p.outcome = Outcome::Done { size };
                });
            }
            Err(e) => {
                tracing::warn!(%digest, error = %e, "store: fill failed; nothing stored");
                if matches!(
                    e,
                    FillError::DigestMismatch { .. } | FillError::LengthMismatch { .. }
                ) {
                    metrics().upstream_error(
                        self.source.as_deref().unwrap_or("unknown"),
                        UpstreamKind::Registry,
                        UpstreamErrorKind::DigestMismatch,
                    );
                }
                let tmp = self.tmp_path.clone();
                let _ = tokio::task::spawn_blocking(move || fs::remove_if_present(&tmp)).await;
                // Leave the in-flight map before anyone hears the failure, so a retry starts anew.
                self.inner.lock().inflight.remove(&digest);
                self.tx.send_modify(|p| p.outcome = Outcome::Failed(e));
            }
        }
    }

    /// Fetches, writes, verifies and commits. Returns the object's size.
    async fn download<F, Fut, S, E>(&mut self, start: F) -> Result<u64, FillError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Option<u64>, S), E>>,
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BoxError>,
    {
        let digest = self.digest;
        let io_err = |e: io::Error| FillError::Io {
            digest,
            message: e.to_string(),
        };
        let upstream_err = |e: E| FillError::Upstream {
            digest,
            source: Arc::from(e.into()),
        };
        let length_err = |expected, actual| FillError::LengthMismatch {
            digest,
            expected,
            actual,
        };

        let tmp = self.tmp_path.clone();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(tmp)
        })
        .await
        .map_err(|e| io_err(io::Error::other(e)))?
        .map_err(io_err)?;
        let file = Arc::new(file);
        let (announced, mut body) = start().await.map_err(upstream_err)?;
        if let (Some(a), Some(x)) = (announced, self.expected_len) {
            if a != x {
                return Err(length_err(x, a));
            }
        }
        // The smaller of the two bounds is where we stop reading a runaway body.
        let limit = self.expected_len.or(announced);
        self.tx
            .send_modify(|p| p.total = Some(announced.or(self.expected_len)));

        let mut hasher = sha2::Sha256::new();
        let mut buf = BytesMut::with_capacity(CHUNK);
        let mut received = 0u64;
        let mut written = 0u64;
        loop {
            // Flush what we hold whenever the upstream makes us wait, so readers are never
            // starved behind our buffer (the first byte reaches them while the fetch runs).
            let item = match body.next().now_or_never() {
                Some(item) => item,
                None => {
                    self.flush(&file, &mut buf, &mut written)
                        .await
                        .map_err(io_err)?;
                    body.next().await
                }
            };
            let chunk = match item {
                None => break,
                Some(Err(e)) => return Err(upstream_err(e)),
                Some(Ok(chunk)) => chunk,
            };
            received += chunk.len() as u64;
            if let Some(limit) = limit {
                if received > limit {
                    return Err(length_err(limit, received));
                }
            }
            hasher.update(&chunk);
            // Flush before the buffer would outgrow its 256 KiB (a reallocation and a copy).
            if !buf.is_empty() && buf.len() + chunk.len() > CHUNK {
                self.flush(&file, &mut buf, &mut written)
                    .await
                    .map_err(io_err)?;
            }
            buf.extend_from_slice(&chunk);
            if buf.len() >= CHUNK {
                self.flush(&file, &mut buf, &mut written)
                    .await
                    .map_err(io_err)?;
            }
        }
        self.flush(&file, &mut buf, &mut written)
            .await
            .map_err(io_err)?;
        if let Some(limit) = limit {
            if received != limit {
                return Err(length_err(limit, received));
            }
        }
        let actual = Digest::from_bytes(hasher.finalize().into());
        if actual != digest {
            return Err(FillError::DigestMismatch {
                expected: digest,
                actual,
            });
        }
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(|e| io_err(io::Error::other(e)))?
            .map_err(io_err)?;

        let inner = self.inner.clone();
        let tmp = self.tmp_path.clone();
        let media_type = self.media_type.clone();
        tokio::task::spawn_blocking(move || {
            inner.commit_blocking(&tmp, &digest, received, media_type.as_deref())
        })
        .await
        .map_err(|e| FillError::Io {
            digest,
            message: e.to_string(),
        })?
        .map_err(io_err)?;
        self.committed = true;
        Ok(received)
    }

    /// Hands the buffered bytes to the kernel, where a reader's read finds them, then announces
    /// them. The buffer travels to the blocking thread and back: written without the copy a
    /// `tokio::fs::File` makes into its own buffer, and reused.
    async fn flush(
        &self,
        file: &Arc<std::fs::File>,
        buf: &mut BytesMut,
        written: &mut u64,
    ) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let (f, data) = (file.clone(), std::mem::take(buf));
        let mut data = tokio::task::spawn_blocking(move || (&*f).write_all(&data).map(|()| data))
            .await
            .map_err(io::Error::other)??;
        *written += data.len() as u64;
        data.clear();
        *buf = data;
        let w = *written;
        self.tx.send_modify(|p| p.written = w);
        Ok(())
    }
}
