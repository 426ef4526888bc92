//! Single-flight fills: one upstream fetch per missing digest, written to a temp file while every
//! waiter reads that file as it grows.
//!
//! Progress travels on a `tokio::sync::watch` channel: `written` only counts bytes already handed
//! to the kernel (flushed), so a reader never reads past what the file holds. Memory stays
//! bounded: the writer buffers at most one 256 KiB chunk, readers read the file.
//!
//! A fill the store cannot keep goes on *unstored* (issue 15): refused up front when the
//! announced length does not fit `max_size` or `storage.min_free` after eviction, or switched
//! midway when a write, fsync or rename fails (disk full, read-only, I/O error). From then on
//! the bytes reach the readers through a [`Spill`] (the unlinked temp file for what was already
//! written, a bounded window in memory for the rest), are still hashed and length-checked (a
//! lying upstream still fails every reader), and the fill leaves the in-flight map at once so
//! the next request for the digest tries the disk again. It ends `Passed` instead of `Done`.

use std::future::Future;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, Stream, StreamExt};
use sha2::Digest as _;
use tokio::sync::watch;

use super::fs::{self, CHUNK};
use super::space::{Reservation, Unstored};
use super::spill::Spill;
use super::{FillError, Inner, Store, UseGuard};
use crate::body::BoxError;
use crate::metrics::{metrics, ContentKind, UpstreamErrorKind, UpstreamKind, WaiterGuard};
use crate::range::ByteRange;
use crate::reference::Digest;

#[derive(Debug, Clone)]
struct Progress {
    /// `None` until the upstream answered; then its announced length (or the expected one).
    total: Option<Option<u64>>,
    /// Bytes readers may read: flushed to the temp file, or (unstored) handed to the spill.
    written: u64,
    /// Set once the fill goes on without the disk: readers read through the [`Spill`].
    unstored: Option<Unstored>,
    outcome: Outcome,
}

#[derive(Debug, Clone)]
enum Outcome {
    Running,
    /// Verified and committed to the store.
    Done {
        size: u64,
    },
    /// Verified and served, not stored.
    Passed {
        size: u64,
    },
    Failed(FillError),
}

/// A running (or finished) fill of one digest. Obtained from [`Store::fill`].
pub struct Fill {
    digest: Digest,
    tmp_path: PathBuf,
    final_path: PathBuf,
    rx: watch::Receiver<Progress>,
    inner: Arc<Inner>,
    spill: Arc<Spill>,
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

    pub(crate) fn tmp_path(&self) -> &std::path::Path {
        &self.tmp_path
    }

    /// Why the fill goes on without being stored, once it does.
    pub fn unstored(&self) -> Option<Unstored> {
        self.rx.borrow().unstored
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
                    Outcome::Done { size } | Outcome::Passed { size } => return Ok(Some(*size)),
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

    /// Waits for completion: `Ok` once the object is committed to the store; `Io` when it was
    /// served but not stored.
    pub async fn wait(&self) -> Result<(), FillError> {
        let mut rx = self.rx.clone();
        loop {
            let p = rx.borrow_and_update().clone();
            match p.outcome {
                Outcome::Failed(e) => return Err(e),
                Outcome::Done { .. } => return Ok(()),
                Outcome::Passed { .. } => {
                    return Err(FillError::Io {
                        digest: self.digest,
                        message: format!(
                            "served without being stored: {}",
                            p.unstored.map(Unstored::describe).unwrap_or("disk fault")
                        ),
                    })
                }
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
            Outcome::Done { size } | Outcome::Passed { size } => Ok(*size),
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
            spill_id: self.spill.join(pos),
            tail: None,
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
    /// This reader's place among the spill's readers (what an unstored fill may drop).
    spill_id: u64,
    /// An unstored fill's last byte of this reader's range, read ahead of the verdict and held
    /// until it: see [`ReaderState::hold_tail`].
    tail: Option<Bytes>,
    _guard: UseGuard,
    /// Counts this reader as waiting on a running fill until the fill's verdict.
    waiting: Option<WaiterGuard>,
}

impl Drop for ReaderState {
    fn drop(&mut self) {
        self.fill.spill.leave(self.spill_id);
    }
}

impl ReaderState {
    /// The next chunk, `None` at a clean end.
    async fn step(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            let p = self.rx.borrow_and_update().clone();
            let (available, done) = match p.outcome {
                Outcome::Failed(e) => return Err(e.into()),
                Outcome::Done { size } | Outcome::Passed { size } => (size, true),
                Outcome::Running => (p.written, false),
            };
            if done {
                self.waiting = None;
            }
            if let Some(tail) = self.tail.take() {
                if done {
                    self.pos += tail.len() as u64;
                    return Ok(Some(tail));
                }
                self.tail = Some(tail);
                self.wait_change().await?;
                continue;
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
            if p.unstored.is_some() && !done && self.end == Some(self.pos + 1) && available >= limit
            {
                self.hold_tail().await?;
                continue;
            }
            if self.pos < cap && p.unstored.is_some() {
                let buf = self.read_unstored(cap).await?;
                self.pos += buf.len() as u64;
                self.fill.spill.advance(self.spill_id, self.pos);
                return Ok(Some(buf));
            }
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
                self.fill.spill.advance(self.spill_id, self.pos);
                return Ok(Some(buf));
            }
            self.wait_change().await?;
        }
    }

    /// Bytes of an unstored fill from `self.pos` up to `cap` (exclusive), at most one chunk.
    async fn read_unstored(&self, cap: u64) -> io::Result<Bytes> {
        let (from, prefix) = self.fill.spill.prefix();
        if self.pos >= from {
            return self.fill.spill.read(self.pos, cap);
        }
        // Bytes written before the switch: from this reader's own handle on the temp file,
        // else from the fill's (the name is gone).
        let Some(file) = self.file.clone().or(prefix) else {
            return Err(io::Error::other("store reader: unstored prefix missing"));
        };
        let want = (cap.min(from) - self.pos).min(CHUNK as u64) as usize;
        fs::read_some(&file, self.pos, want).await
    }

    /// A range that ends before an unstored fill does: its last byte is taken out of the
    /// window now and held until the verdict, and the reader stops counting among the spill's
    /// readers. Left in the window, the reader would pin it at that byte while the fill waited
    /// for the reader to move on, and the verdict the reader waits for would never come.
    async fn hold_tail(&mut self) -> io::Result<()> {
        let tail = self.read_unstored(self.pos + 1).await?;
        if tail.is_empty() {
            return Err(io::Error::other(
                "store reader: unstored byte announced but not held",
            ));
        }
        self.tail = Some(tail);
        self.fill.spill.advance(self.spill_id, u64::MAX);
        Ok(())
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
                unstored: None,
                outcome: Outcome::Done { size },
            });
            return Arc::new(Fill {
                digest,
                tmp_path: final_path.clone(),
                final_path,
                rx,
                inner: inner.clone(),
                spill: Arc::default(),
                _pin: Some(pin),
            });
        }
        let tmp_path = inner.layout.tmp_file();
        let (tx, rx) = watch::channel(Progress {
            total: None,
            written: 0,
            unstored: None,
            outcome: Outcome::Running,
        });
        let spill = Arc::new(Spill::default());
        let fill = Arc::new(Fill {
            digest,
            tmp_path: tmp_path.clone(),
            final_path,
            rx,
            inner: inner.clone(),
            spill: spill.clone(),
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
            spill,
            reservation: None,
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
    spill: Arc<Spill>,
    /// The expected length, counted against the store's bounds until commit or failure.
    reservation: Option<Reservation>,
    committed: bool,
}

impl Drop for FillTask {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp_path);
            self.inner.leave_inflight(&self.digest, &self.tmp_path);
        }
    }
}

/// Where the bytes of a fill go.
enum Sink {
    /// The temp file (opened for reading too: it serves what it holds if the fill must go on
    /// unstored), and the bytes buffered for it.
    Disk(Arc<std::fs::File>, BytesMut),
    /// The spill: readers read from memory.
    Memory,
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
                let unstored = self.tx.borrow().unstored;
                match unstored {
                    None => tracing::info!(%digest, size, "store: fill committed"),
                    Some(r) => {
                        tracing::info!(%digest, size, reason = r.as_str(), "store: served without being stored")
                    }
                }
                self.tx.send_modify(|p| {
                    p.written = size;
                    p.total.get_or_insert(Some(size));
                    p.outcome = match unstored {
                        None => Outcome::Done { size },
                        Some(_) => Outcome::Passed { size },
                    };
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
                self.reservation = None;
                // Leave the in-flight map before anyone hears the failure, so a retry starts anew.
                self.inner.leave_inflight(&digest, &self.tmp_path);
                self.tx.send_modify(|p| p.outcome = Outcome::Failed(e));
            }
        }
    }

    /// Asks the store for room (evicting if needed), then opens the temp file. `Memory` when
    /// either says no.
    async fn open_sink(&mut self, len: Option<u64>) -> Sink {
        let inner = self.inner.clone();
        let tmp = self.tmp_path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let reservation = inner.admit(len.unwrap_or(0)).map_err(|r| {
                let what = len.map_or("a pull of unknown length".into(), |l| {
                    format!("a pull of {l} bytes")
                });
                (r, format!("{what} does not fit"))
            })?;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(|e| (Unstored::from_io(&e), format!("{}: {e}", tmp.display())))?;
            Ok((reservation, file))
        })
        .await
        .unwrap_or_else(|e| Err((Unstored::WriteError, e.to_string())));
        match opened {
            Ok((reservation, file)) => {
                self.reservation = Some(reservation);
                Sink::Disk(Arc::new(file), BytesMut::with_capacity(CHUNK))
            }
            Err((reason, detail)) => {
                self.go_unstored(reason, &detail, 0, None, Bytes::new())
                    .await;
                Sink::Memory
            }
        }
    }

    /// The switch to serving without the disk, after `written` bytes reached the temp file
    /// (`file`), with `pending` bytes (already hashed) that did not.
    async fn go_unstored(
        &mut self,
        reason: Unstored,
        detail: &str,
        written: u64,
        file: Option<Arc<std::fs::File>>,
        pending: Bytes,
    ) {
        let digest = self.digest;
        // The name goes at once (no partial file is ever left); readers keep the handle.
        let tmp = self.tmp_path.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || fs::remove_if_present(&tmp)).await {
            tracing::warn!(%digest, error = %e, "store: could not remove a temp file");
        }
        self.reservation = None;
        self.inner.leave_inflight(&digest, &self.tmp_path);
        self.spill.start(written, file);
        let available = written + pending.len() as u64;
        self.spill.push(pending);
        self.tx.send_modify(|p| {
            p.unstored = Some(reason);
            p.written = available;
        });
        let needed = self.expected_len.or(self.tx.borrow().total.flatten());
        self.inner
            .condition
            .unstored(reason, detail, needed.unwrap_or(0));
    }

    /// Hands a chunk to the readers of an unstored fill, then waits while the window is full
    /// (its slowest reader sets the pace). `Err` when no reader is left to serve.
    async fn push_unstored(&mut self, chunk: Bytes, available: u64) -> Result<(), FillError> {
        self.spill.push(chunk);
        self.tx.send_modify(|p| p.written = available);
        while self.spill.trim() {
            tokio::select! {
                _ = self.spill.advanced() => {}
                _ = self.tx.closed() => break,
            }
        }
        if self.tx.receiver_count() == 0 {
            return Err(FillError::Aborted {
                digest: self.digest,
            });
        }
        Ok(())
    }

    /// Fetches, writes, verifies and commits (or serves unstored). Returns the object's size.
    async fn download<F, Fut, S, E>(&mut self, start: F) -> Result<u64, FillError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Option<u64>, S), E>>,
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: Into<BoxError>,
    {
        let digest = self.digest;
        let upstream_err = |e: E| FillError::Upstream {
            digest,
            source: Arc::from(e.into()),
        };
        let length_err = |expected, actual| FillError::LengthMismatch {
            digest,
            expected,
            actual,
        };

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
        let mut sink = self.open_sink(limit).await;

        let mut hasher = sha2::Sha256::new();
        let mut received = 0u64;
        let mut written = 0u64;
        loop {
            // Flush what we hold whenever the upstream makes us wait, so readers are never
            // starved behind our buffer (the first byte reaches them while the fetch runs).
            let item = match body.next().now_or_never() {
                Some(item) => item,
                None => {
                    self.flush_or_switch(&mut sink, &mut written).await?;
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
            match &mut sink {
                Sink::Memory => self.push_unstored(chunk, received).await?,
                Sink::Disk(_, buf) => {
                    // Flush before the buffer would outgrow its 256 KiB (a reallocation and a
                    // copy).
                    if !buf.is_empty() && buf.len() + chunk.len() > CHUNK {
                        self.flush_or_switch(&mut sink, &mut written).await?;
                    }
                    match &mut sink {
                        Sink::Memory => self.push_unstored(chunk, received).await?,
                        Sink::Disk(_, buf) => {
                            buf.extend_from_slice(&chunk);
                            if buf.len() >= CHUNK {
                                self.flush_or_switch(&mut sink, &mut written).await?;
                            }
                        }
                    }
                }
            }
        }
        self.flush_or_switch(&mut sink, &mut written).await?;
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
        let Sink::Disk(file, _) = sink else {
            return Ok(received);
        };
        let inner = self.inner.clone();
        let tmp = self.tmp_path.clone();
        let media_type = self.media_type.clone();
        let f = file.clone();
        let reservation = self.reservation.take();
        let committed = tokio::task::spawn_blocking(move || {
            f.sync_all()?;
            inner.commit_blocking(&tmp, &digest, received, media_type.as_deref(), reservation)
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        match committed {
            Ok(()) => self.committed = true,
            Err(e) => {
                // Every byte was written and checked: readers finish from the temp file's
                // handle.
                let detail = format!("{}: {e}", self.tmp_path.display());
                self.go_unstored(
                    Unstored::from_io(&e),
                    &detail,
                    received,
                    Some(file),
                    Bytes::new(),
                )
                .await;
            }
        }
        Ok(received)
    }

    /// Flushes a disk sink; on a write error switches the fill to the spill (the bytes that did
    /// not reach the file go with it).
    async fn flush_or_switch(
        &mut self,
        sink: &mut Sink,
        written: &mut u64,
    ) -> Result<(), FillError> {
        let Sink::Disk(file, buf) = sink else {
            return Ok(());
        };
        match self.flush(file, buf, written).await {
            Ok(()) => Ok(()),
            Err((e, Some(pending))) => {
                let file = file.clone();
                let detail = format!("{}: {e}", self.tmp_path.display());
                self.go_unstored(
                    Unstored::from_io(&e),
                    &detail,
                    *written,
                    Some(file),
                    pending,
                )
                .await;
                *sink = Sink::Memory;
                Ok(())
            }
            // The write task itself died: which bytes reached the file is unknown.
            Err((e, None)) => Err(FillError::Io {
                digest: self.digest,
                message: e.to_string(),
            }),
        }
    }

    /// Hands the buffered bytes to the kernel, where a reader's read finds them, then announces
    /// them. The buffer travels to the blocking thread and back: written without the copy a
    /// `tokio::fs::File` makes into its own buffer, and reused. On an error, the bytes the
    /// file did not take come back with it.
    async fn flush(
        &self,
        file: &Arc<std::fs::File>,
        buf: &mut BytesMut,
        written: &mut u64,
    ) -> Result<(), (io::Error, Option<Bytes>)> {
        if buf.is_empty() {
            return Ok(());
        }
        let (f, data) = (file.clone(), std::mem::take(buf));
        let res = tokio::task::spawn_blocking(move || {
            let mut done = 0;
            while done < data.len() {
                match (&*f).write(&data[done..]) {
                    Ok(0) => return Err((io::Error::from(io::ErrorKind::WriteZero), data, done)),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err((e, data, done)),
                }
            }
            Ok(data)
        })
        .await
        .map_err(|e| (io::Error::other(e), None))?;
        match res {
            Ok(mut data) => {
                *written += data.len() as u64;
                data.clear();
                *buf = data;
                let w = *written;
                self.tx.send_modify(|p| p.written = w);
                Ok(())
            }
            Err((e, data, done)) => {
                // The part that did reach the file is readable through its handle.
                *written += done as u64;
                Err((e, Some(data.freeze().slice(done..))))
            }
        }
    }
}
