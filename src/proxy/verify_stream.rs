//! A body stream that hashes what passes through and refuses to end cleanly on a mismatch.
//!
//! The client must never see a clean end of body for bytes that do not match their digest. The
//! stream therefore holds back its last chunk until the upstream body has ended and the sha256
//! has been compared: on a match the held chunk goes out and the body ends; on a mismatch the
//! stream yields an error instead, hyper aborts the response, and the client is left short of
//! `Content-Length` (a broken transfer, never silently wrong content).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest as _, Sha256};

use crate::api::media::ByteRange;
use crate::reference::Digest;
use crate::upstream::UpstreamError;

type Inner = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// Where the bytes came from, for the log line written on a mismatch.
#[derive(Debug, Clone)]
pub struct Origin {
    pub upstream: String,
    pub repository: String,
}

pub struct VerifyingStream {
    inner: Inner,
    expected: Digest,
    hasher: Sha256,
    /// Bytes of the upstream body consumed so far.
    position: u64,
    /// The part of the body the client asked for; `None` = all of it.
    window: Option<ByteRange>,
    held: Option<Bytes>,
    finished: bool,
    origin: Origin,
}

impl VerifyingStream {
    pub fn new(inner: Inner, expected: Digest, window: Option<ByteRange>, origin: Origin) -> Self {
        Self {
            inner,
            expected,
            hasher: Sha256::new(),
            position: 0,
            window,
            held: None,
            finished: false,
            origin,
        }
    }

    /// The part of `chunk` (which starts at `self.position`) that lies inside the window.
    fn visible(&self, chunk: &Bytes) -> Bytes {
        let start = self.position;
        let end = start + chunk.len() as u64; // exclusive
        let Some(w) = self.window else {
            return chunk.clone();
        };
        let from = w.start.max(start);
        let to = (w.end + 1).min(end);
        if from >= to {
            return Bytes::new();
        }
        chunk.slice((from - start) as usize..(to - start) as usize)
    }
}

impl Stream for VerifyingStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.finished {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    this.hasher.update(&chunk);
                    let visible = this.visible(&chunk);
                    this.position += chunk.len() as u64;
                    if visible.is_empty() {
                        continue;
                    }
                    if let Some(previous) = this.held.replace(visible) {
                        return Poll::Ready(Some(Ok(previous)));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finished = true;
                    this.held = None;
                    tracing::warn!(
                        upstream = %this.origin.upstream,
                        repository = %this.origin.repository,
                        digest = %this.expected,
                        error = %e,
                        "blob transfer from upstream broke off; aborting the client's transfer"
                    );
                    return Poll::Ready(Some(Err(io::Error::other(e.to_string()))));
                }
                Poll::Ready(None) => {
                    this.finished = true;
                    let actual: [u8; 32] = std::mem::take(&mut this.hasher).finalize().into();
                    if actual == *this.expected.bytes() {
                        return Poll::Ready(this.held.take().map(Ok));
                    }
                    this.held = None;
                    tracing::error!(
                        upstream = %this.origin.upstream,
                        repository = %this.origin.repository,
                        expected = %this.expected,
                        actual = %Digest::from_bytes(actual),
                        bytes = this.position,
                        "upstream blob does not match its digest: possible tampering; transfer aborted"
                    );
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "blob from upstream {} does not match {}",
                            this.origin.upstream, this.expected
                        ),
                    ))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{stream, StreamExt};

    fn origin() -> Origin {
        Origin {
            upstream: "test".into(),
            repository: "r".into(),
        }
    }

    fn chunks(data: &[u8], size: usize) -> Inner {
        let parts: Vec<Result<Bytes, UpstreamError>> = data
            .chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Box::pin(stream::iter(parts))
    }

    async fn collect(s: VerifyingStream) -> (Vec<u8>, Option<io::Error>) {
        let mut out = Vec::new();
        let mut s = Box::pin(s);
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn matching_bytes_pass_through_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let s = VerifyingStream::new(chunks(&data, 333), Digest::of(&data), None, origin());
        let (out, err) = collect(s).await;
        assert!(err.is_none());
        assert_eq!(out, data);
    }

    #[tokio::test]
    async fn mismatch_withholds_the_last_chunk_and_errors() {
        let data = vec![7u8; 1000];
        let s = VerifyingStream::new(chunks(&data, 100), Digest::of(b"other"), None, origin());
        let (out, err) = collect(s).await;
        assert_eq!(err.unwrap().kind(), io::ErrorKind::InvalidData);
        assert!(
            out.len() < data.len(),
            "the client must fall short of the full body"
        );
    }

    #[tokio::test]
    async fn windows_slice_across_chunk_boundaries() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        for (start, end) in [(0, 0), (5, 505), (99, 100), (999, 999), (0, 999)] {
            let w = ByteRange { start, end };
            let s = VerifyingStream::new(chunks(&data, 100), Digest::of(&data), Some(w), origin());
            let (out, err) = collect(s).await;
            assert!(err.is_none());
            assert_eq!(out, &data[start as usize..=end as usize]);
        }
    }

    #[tokio::test]
    async fn upstream_errors_end_the_stream_with_an_error() {
        let parts: Vec<Result<Bytes, UpstreamError>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Err(UpstreamError::BodyInterrupted {
                upstream: "u".into(),
                reason: "reset".into(),
            }),
        ];
        let s = VerifyingStream::new(
            Box::pin(stream::iter(parts)),
            Digest::of(b"abc"),
            None,
            origin(),
        );
        let (_, err) = collect(s).await;
        assert!(err.is_some());
    }
}
