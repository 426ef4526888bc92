//! A verified copy of a fill into the shared store, written while the fill streams.
//!
//! [`SharedStore::tee`] wraps the upstream body on its way to the local tier: each chunk is also
//! handed to an upload task over a small bounded channel. The task hashes what it receives and
//! buffers up to one part; a body that ends within one part is stored with a single create-only
//! put, a larger one as a multipart upload (parts of 5 MiB, at most two in flight). Only after
//! the end of the body, with the sha256 equal to the digest and the length equal to the expected
//! one, is the upload completed: before that it is invisible to every reader, and on any failure
//! (wrong bytes, a body that broke off, a store that failed) it is aborted.
//!
//! S3 completes a multipart upload unconditionally through `object_store` (create-only applies
//! to single puts), so the task looks first and aborts when another replica completed the same
//! digest meanwhile; if both complete in the same instant, the later one replaces verified bytes
//! by the same verified bytes.
//!
//! A store slower than the upstream never slows the client: when the task cannot take a chunk
//! within the store timeout, the upload is abandoned (aborted, logged, counted) and the fill goes
//! on without it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use object_store::{PutMode, PutMultipartOptions, PutOptions, PutPayload, WriteMultipart};
use sha2::Digest as _;
use tokio::sync::mpsc;

use super::lease::LeaseHandle;
use super::{attributes, Failure, SharedStore};
use crate::body::BoxError;
use crate::metrics::metrics;
use crate::reference::Digest;

/// S3's smallest part (every part but the last must be at least this long).
const PART: usize = 5 * 1024 * 1024;
/// Parts uploading at once per upload.
const PARTS_IN_FLIGHT: usize = 2;
/// Chunks queued between the fill and its upload task.
const QUEUE: usize = 32;

enum Msg {
    Chunk(Bytes),
    End,
}

struct TeeState<S> {
    body: S,
    tx: Option<mpsc::Sender<Msg>>,
    store: Arc<SharedStore>,
    digest: Digest,
}

impl SharedStore {
    /// `body`, unchanged, while a copy goes to the shared store (see the module comment). The
    /// lease, if any, is released when the upload ends either way.
    pub(super) fn tee<S, E>(
        self: &Arc<Self>,
        digest: Digest,
        expected_len: Option<u64>,
        media_type: Option<String>,
        lease: Option<LeaseHandle>,
        body: S,
    ) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + Unpin + 'static
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: Into<BoxError> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        let me = self.clone();
        tokio::spawn(async move {
            let outcome = me.upload(digest, expected_len, media_type, rx).await;
            match outcome {
                Ok(true) => {
                    tracing::info!(%digest, store = %me.describe, "shared store: object stored")
                }
                Ok(false) => {
                    tracing::debug!(%digest, "shared store: object already stored by another replica")
                }
                Err(reason) => {
                    metrics().shared_upload_abandoned();
                    tracing::warn!(%digest, store = %me.describe, %reason, "shared store: object not stored (the pull itself goes on)");
                }
            }
            drop(lease);
        });
        let state = TeeState {
            body,
            tx: Some(tx),
            store: self.clone(),
            digest,
        };
        Box::pin(futures_util::stream::unfold(
            Some(state),
            |state| async move {
                let mut st = state?;
                match st.body.next().await {
                    Some(Ok(chunk)) => {
                        st.send(Msg::Chunk(chunk.clone())).await;
                        Some((Ok(chunk), Some(st)))
                    }
                    // Dropping the sender without `End` aborts the upload.
                    Some(Err(e)) => Some((Err(e.into()), None)),
                    None => {
                        st.send(Msg::End).await;
                        None
                    }
                }
            },
        ))
    }

    /// Receives a fill's bytes; `Ok(true)` once stored, `Ok(false)` when another replica had
    /// stored it, `Err(why)` when nothing was stored.
    async fn upload(
        &self,
        digest: Digest,
        expected_len: Option<u64>,
        media_type: Option<String>,
        mut rx: mpsc::Receiver<Msg>,
    ) -> Result<bool, String> {
        let key = self.content_key(&digest);
        let mut hasher = sha2::Sha256::new();
        let mut len = 0u64;
        let mut small = BytesMut::new();
        let mut multi: Option<WriteMultipart> = None;
        let ended = loop {
            let msg = rx.recv().await;
            let chunk = match msg {
                Some(Msg::Chunk(c)) => c,
                Some(Msg::End) => break true,
                None => break false,
            };
            hasher.update(&chunk);
            len += chunk.len() as u64;
            if expected_len.is_some_and(|x| len > x) {
                break false;
            }
            match multi.as_mut() {
                Some(w) => {
                    w.put(chunk);
                    if let Err(e) = self
                        .call("put part", w.wait_for_capacity(PARTS_IN_FLIGHT))
                        .await
                    {
                        if let Some(w) = multi.take() {
                            let _ = w.abort().await;
                        }
                        return Err(e.to_string());
                    }
                }
                None => {
                    small.extend_from_slice(&chunk);
                    if small.len() >= PART {
                        let opts = PutMultipartOptions {
                            attributes: attributes(media_type.as_deref()),
                            ..PutMultipartOptions::default()
                        };
                        let up = match self
                            .call("start upload", self.store.put_multipart_opts(&key, opts))
                            .await
                            .map_err(|e| e.to_string())?
                        {
                            Ok(up) => up,
                            Err(_) => return Err("the store refused a multipart upload".into()),
                        };
                        let mut w = WriteMultipart::new_with_chunk_size(up, PART);
                        w.put(small.split().freeze());
                        multi = Some(w);
                    }
                }
            }
        };
        let abort = |multi: Option<WriteMultipart>| async move {
            if let Some(w) = multi {
                let _ = w.abort().await;
            }
        };
        if !ended {
            abort(multi).await;
            return Err(match expected_len {
                Some(x) if len > x => format!("more than the expected {x} bytes"),
                _ => "the fill broke off before its end".into(),
            });
        }
        let actual = Digest::from_bytes(hasher.finalize().into());
        if actual != digest {
            abort(multi).await;
            return Err(format!("the bytes hash to {actual}"));
        }
        if let Some(x) = expected_len.filter(|x| *x != len) {
            abort(multi).await;
            return Err(format!("{len} bytes where {x} were expected"));
        }
        match multi {
            None => {
                let opts = PutOptions {
                    mode: PutMode::Create,
                    attributes: attributes(media_type.as_deref()),
                    ..PutOptions::default()
                };
                let put = self
                    .store
                    .put_opts(&key, PutPayload::from(small.freeze()), opts);
                match self.call("put", put).await.map_err(|e| e.to_string())? {
                    Ok(_) => {
                        metrics().shared_bytes_written(len);
                        Ok(true)
                    }
                    Err(Failure::Conflict) => Ok(false),
                    Err(_) => Err("the store refused the put".into()),
                }
            }
            Some(w) => {
                if matches!(self.head(&digest).await, Ok(Some(_))) {
                    abort(Some(w)).await;
                    return Ok(false);
                }
                match self
                    .call("complete upload", w.finish())
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Ok(_) => {
                        metrics().shared_bytes_written(len);
                        Ok(true)
                    }
                    Err(Failure::Conflict) => Ok(false),
                    Err(_) => Err("the store refused to complete the upload".into()),
                }
            }
        }
    }
}

impl<S> TeeState<S> {
    /// Hands `msg` to the upload task; a task that cannot take it within the store timeout is
    /// left behind (the upload is then aborted) rather than slowing the fill.
    async fn send(&mut self, msg: Msg) {
        let Some(tx) = self.tx.as_ref() else { return };
        match tokio::time::timeout(self.store.timeout, tx.send(msg)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => self.tx = None,
            Err(_) => {
                tracing::warn!(digest = %self.digest, store = %self.store.describe,
                    "shared store upload is slower than the fill: abandoning it");
                self.tx = None;
            }
        }
    }
}
