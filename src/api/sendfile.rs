//! Zero-copy cache hits (issue 16): a stored blob goes from its file to a plain-HTTP/1.1 socket
//! with `sendfile(2)`, while hyper still writes the response head and runs the connection.
//!
//! How the body gets past hyper without its bytes:
//! - hyper's HTTP/1 writer with the *queue* strategy (forced by `http1::Builder::writev(true)`)
//!   keeps each body `Bytes` as its own buffer and hands the socket an `IoSlice` that points into
//!   that buffer's memory; a Content-Length body is written as it is, without framing.
//! - [`SendfileBody`] therefore yields *placeholders*: slices of one static region,
//!   [`PLACEHOLDER`], one per chunk of the file, and for each it queues the chunk's
//!   (file, offset, length) in the connection's [`Slot`].
//! - [`SendfileIo`], the socket under hyper, recognises a slice that lies inside the region by
//!   its address and sends the queued chunk with `sendfile(2)` instead of writing the
//!   placeholder; every other slice is written as usual. A partial send is reported as such and
//!   hyper hands the rest of the same slice back.
//!
//! Soundness: a placeholder that reached the socket as bytes would give the client wrong bytes.
//! [`SendfileIo`] refuses (fails the write, so hyper closes the connection before the bytes go
//! out, and logs an error) every sequence that differs from the one above: a placeholder with no
//! chunk queued, one whose address or length differs from the front chunk's unsent part (hyper
//! copied, split or reordered it), ordinary bytes between two parts of one chunk, and a
//! non-vectored write while chunks are queued (hyper's *flatten* strategy, which copies every
//! buffer, including placeholders, into its own and writes that). `tests/inproc/sendfile.rs`
//! pins the behaviour of the hyper in `Cargo.lock`: an upgrade that flattens fails it.
//!
//! TLS and HTTP/2 connections get no slot, so their blobs are read and copied
//! ([`crate::store::StoredObject::stream`]); so is a chunk that is not in the page cache, which
//! `sendfile(2)` would read from disk on the runtime thread.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::body::BoxError;
use crate::metrics::metrics;
use crate::range::ByteRange;
use crate::store::StoredObject;

/// The largest chunk one placeholder stands for: one body frame, one residency probe, and as
/// many `sendfile(2)` calls as the socket buffer needs for it.
const CHUNK: usize = 1024 * 1024;

/// The placeholder region. Never written to a socket: its address is all that is used. A
/// `static` has one address for the whole program, so no other buffer can lie inside it.
static PLACEHOLDER: [u8; CHUNK] = [0; CHUNK];

/// Where `s` starts inside [`PLACEHOLDER`], if it is a (non-empty) slice of it.
fn placeholder_offset(s: &[u8]) -> Option<usize> {
    let base = PLACEHOLDER.as_ptr() as usize;
    let at = s.as_ptr() as usize;
    (!s.is_empty() && at >= base && at < base + CHUNK).then(|| at - base)
}

/// The chunks of stored files queued on one connection, in the order hyper will write their
/// placeholders. Shared by the connection's [`SendfileIo`] and the bodies of its responses
/// (through a request extension).
#[derive(Clone, Default)]
pub struct Slot {
    chunks: Arc<Mutex<VecDeque<Chunk>>>,
}

struct Chunk {
    file: Arc<File>,
    /// File offset of the chunk's first byte.
    pos: u64,
    len: usize,
    /// Bytes already sent; the placeholder hyper writes next starts here.
    sent: usize,
}

impl Slot {
    pub fn new() -> Self {
        Self::default()
    }

    fn push(&self, chunk: Chunk) {
        self.chunks.lock().push_back(chunk);
    }

    /// Chunks queued and not yet sent whole (for tests and checks).
    pub fn pending(&self) -> usize {
        self.chunks.lock().len()
    }
}

/// The write was not the one a zero-copy body expects: the connection is closed rather than
/// risk sending placeholder bytes.
fn desync(what: &str) -> io::Error {
    tracing::error!(
        what,
        "zero-copy send out of step with hyper's writes; closing the connection (set [server] sendfile = false if this repeats)"
    );
    io::Error::other(format!("zero-copy send out of step: {what}"))
}

/// A plain TCP socket that sends queued file chunks where their placeholders are written. With
/// no slot it is the socket and nothing else (TLS, HTTP/2, `sendfile = false`).
pub struct SendfileIo {
    stream: TcpStream,
    slot: Option<Slot>,
}

impl SendfileIo {
    pub fn new(stream: TcpStream, slot: Option<Slot>) -> Self {
        Self { stream, slot }
    }

    /// Sends the front chunk's next bytes for the placeholder slice `buf`.
    fn poll_send_chunk(
        &mut self,
        cx: &mut Context<'_>,
        slot: &Slot,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut chunks = slot.chunks.lock();
        let Some(chunk) = chunks.front_mut() else {
            return Poll::Ready(Err(desync("a placeholder with no chunk queued")));
        };
        if placeholder_offset(buf) != Some(chunk.sent) || buf.len() != chunk.len - chunk.sent {
            return Poll::Ready(Err(desync(
                "a placeholder that is not the queued chunk's unsent part",
            )));
        }
        loop {
            let mut offset = chunk.pos + chunk.sent as u64;
            let sent = self.stream.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.stream, &*chunk.file, Some(&mut offset), buf.len())
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stored object is shorter than recorded",
                    )))
                }
                Ok(n) => {
                    chunk.sent += n;
                    if chunk.sent == chunk.len {
                        chunks.pop_front();
                    }
                    metrics().sendfile_sent(n as u64);
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.stream.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// Ordinary bytes may go out unless they would land inside a chunk already started.
fn check_between_chunks(slot: &Slot) -> io::Result<()> {
    match slot.chunks.lock().front() {
        Some(c) if c.sent > 0 => Err(desync("other bytes in the middle of a chunk")),
        _ => Ok(()),
    }
}

impl AsyncRead for SendfileIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(slot) = &self.slot {
            // hyper's queue strategy writes vectored only; a plain write while chunks are
            // queued is its flatten strategy, whose buffer holds placeholder copies.
            if placeholder_offset(buf).is_some() || slot.pending() > 0 {
                return Poll::Ready(Err(desync("a flattened write while chunks are queued")));
            }
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let Some(slot) = this.slot.clone() else {
            return Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        };
        // Ordinary slices up to the first placeholder go out in one writev; a placeholder
        // first goes out with sendfile. hyper calls again for the rest.
        let ordinary = bufs
            .iter()
            .position(|b| placeholder_offset(b).is_some())
            .unwrap_or(bufs.len());
        if ordinary == 0 {
            return this.poll_send_chunk(cx, &slot, &bufs[0]);
        }
        check_between_chunks(&slot)?;
        Pin::new(&mut this.stream).poll_write_vectored(cx, &bufs[..ordinary])
    }

    fn is_write_vectored(&self) -> bool {
        // hyper picks its queue strategy from this (and `writev(true)` forces it anyway).
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

type Reading = Pin<Box<dyn Future<Output = io::Result<Bytes>> + Send>>;

/// A stored object's bytes (or a window of them) as placeholders for [`SendfileIo`]; a chunk
/// that is not in the page cache is read and yielded as real bytes instead.
pub struct SendfileBody {
    file: Arc<File>,
    pos: u64,
    remaining: u64,
    slot: Slot,
    /// A cold chunk being read on the copy path.
    reading: Option<Reading>,
    /// Keeps the evictor off the object until the body is done (the queued chunks hold the
    /// open file, so even an eviction after that cannot change their bytes).
    _guard: crate::store::UseGuard,
}

impl SendfileBody {
    /// The body for `object` (the inclusive `window` of it), or the object back when the window
    /// does not lie inside it (the read path reports that).
    pub fn new(
        object: StoredObject,
        window: Option<ByteRange>,
        slot: Slot,
    ) -> Result<Self, StoredObject> {
        let (pos, remaining) = match window {
            None => (0, object.size),
            Some(w) if w.start <= w.end && w.end < object.size => (w.start, w.end - w.start + 1),
            Some(_) => return Err(object),
        };
        let (file, guard) = object.into_file();
        Ok(Self {
            file,
            pos,
            remaining,
            slot,
            reading: None,
            _guard: guard,
        })
    }
}

impl HttpBody for SendfileBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.reading.is_none() {
            if this.remaining == 0 {
                return Poll::Ready(None);
            }
            let len = this.remaining.min(CHUNK as u64);
            if crate::store::is_cached(&this.file, this.pos, len) {
                let len = len as usize;
                this.slot.push(Chunk {
                    file: this.file.clone(),
                    pos: this.pos,
                    len,
                    sent: 0,
                });
                this.pos += len as u64;
                this.remaining -= len as u64;
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                    &PLACEHOLDER[..len],
                )))));
            }
            metrics().sendfile_cold_chunk();
            let (file, pos) = (this.file.clone(), this.pos);
            let want = this.remaining.min(crate::store::READ_CHUNK as u64) as usize;
            this.reading = Some(Box::pin(async move {
                crate::store::read_some(&file, pos, want).await
            }));
        }
        let Some(reading) = this.reading.as_mut() else {
            return Poll::Ready(None);
        };
        let read = ready!(reading.as_mut().poll(cx));
        this.reading = None;
        match read {
            Ok(bytes) => {
                let n = (bytes.len() as u64).min(this.remaining);
                this.pos += n;
                this.remaining -= n;
                Poll::Ready(Some(Ok(Frame::data(bytes.slice(..n as usize)))))
            }
            Err(e) => {
                this.remaining = 0;
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.reading.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slices_of_the_region_are_placeholders() {
        assert_eq!(placeholder_offset(&PLACEHOLDER[..10]), Some(0));
        assert_eq!(placeholder_offset(&PLACEHOLDER[5..10]), Some(5));
        assert_eq!(
            placeholder_offset(&PLACEHOLDER[CHUNK - 1..]),
            Some(CHUNK - 1)
        );
        assert_eq!(placeholder_offset(&PLACEHOLDER[CHUNK..]), None, "empty");
        let copy = PLACEHOLDER[..10].to_vec();
        assert_eq!(placeholder_offset(&copy), None, "a copy is ordinary bytes");
        assert_eq!(placeholder_offset(b"GET"), None);
    }
}
