//! Per-connection plumbing below HTTP: an IO wrapper that records when a byte last moved (for
//! `server.idle_timeout`), and the choice between HTTP/1.1 and HTTP/2 before hyper takes over.
//!
//! hyper bounds how long a request head may take (`header_read_timeout`), but only once it is
//! reading one; nothing in hyper closes a connection that simply goes quiet (an HTTP/2 client
//! that stops, a client that stops reading a response). [`ActivityIo`] counts bytes in either
//! direction, so a long download to a client that keeps reading is never cut.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// When a byte last moved on a connection (shared between the IO wrapper and the idle watch).
#[derive(Clone)]
pub struct Activity {
    inner: Arc<ActivityInner>,
}

struct ActivityInner {
    start: Instant,
    /// Milliseconds after `start` of the last read or write that moved bytes.
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(ActivityInner {
                start: Instant::now(),
                last_ms: AtomicU64::new(0),
            }),
        }
    }

    fn touch(&self) {
        let ms = self.inner.start.elapsed().as_millis() as u64;
        self.inner.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.inner.start + Duration::from_millis(self.inner.last_ms.load(Ordering::Relaxed))
    }

    /// Completes once `timeout` has passed without a byte read or written.
    pub async fn idle_for(&self, timeout: Duration) {
        loop {
            let deadline = self.last() + timeout;
            if deadline <= Instant::now() {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// An IO object that records every read or write that moved at least one byte.
pub struct ActivityIo<T> {
    inner: T,
    activity: Activity,
}

impl<T> ActivityIo<T> {
    pub fn new(inner: T, activity: Activity) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ActivityIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The HTTP version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    Http1,
    Http2,
}

/// The HTTP/2 connection preface (RFC 9113 §3.4); HTTP/2 over plain TCP is prior knowledge
/// only (h2c), so these bytes are the only way to tell.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads from `io` until the bytes either are the HTTP/2 preface or cannot be; returns the
/// version and `io` with those bytes put back in front.
///
/// hyper-util's `auto` builder does the same, but without any deadline: a client that connects
/// and sends nothing would sit there forever, before hyper's `header_read_timeout` starts. The
/// caller bounds this one.
pub async fn sniff<T: AsyncRead + Unpin>(mut io: T) -> io::Result<(HttpVersion, Prefixed<T>)> {
    let mut buf = Vec::with_capacity(H2_PREFACE.len());
    let mut chunk = [0u8; 24];
    loop {
        let want = H2_PREFACE.len() - buf.len();
        let n = io.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before sending a request",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if !H2_PREFACE.starts_with(&buf) {
            return Ok((HttpVersion::Http1, Prefixed::new(Bytes::from(buf), io)));
        }
        if buf.len() == H2_PREFACE.len() {
            return Ok((HttpVersion::Http2, Prefixed::new(Bytes::from(buf), io)));
        }
    }
}

/// `inner` with some already-read bytes served first.
#[derive(Debug)]
pub struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Self { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn sniff_tells_http1_at_the_first_differing_byte_and_replays_it() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"GET /v2/ HTTP/1.1\r\n").await.unwrap();
        let (v, mut io) = sniff(server).await.unwrap();
        assert_eq!(v, HttpVersion::Http1);
        let mut got = vec![0u8; 19];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET /v2/ HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn sniff_needs_the_whole_preface_for_http2() {
        let (mut client, server) = tokio::io::duplex(64);
        let task = tokio::spawn(sniff(server));
        // "PRI" alone is not enough to decide.
        client.write_all(&H2_PREFACE[..3]).await.unwrap();
        tokio::task::yield_now().await;
        assert!(!task.is_finished());
        client.write_all(&H2_PREFACE[3..]).await.unwrap();
        client.write_all(b"frames").await.unwrap();
        let (v, mut io) = task.await.unwrap().unwrap();
        assert_eq!(v, HttpVersion::Http2);
        let mut got = vec![0u8; H2_PREFACE.len() + 6];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[H2_PREFACE.len()..], b"frames");
    }

    #[tokio::test]
    async fn sniff_reports_a_client_that_leaves() {
        let (client, server) = tokio::io::duplex(64);
        drop(client);
        let e = sniff(server).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_for_waits_from_the_last_byte() {
        let activity = Activity::new();
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = ActivityIo::new(server, activity.clone());
        let watch = tokio::spawn({
            let a = activity.clone();
            async move { a.idle_for(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(8)).await;
        client.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        io.read_exact(&mut one).await.unwrap();
        // 8 s + 8 s: past the first deadline, but a byte moved at 8 s.
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert!(!watch.is_finished());
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(watch.is_finished());
    }
}
