//! Blobs by digest, under each trust mode (enforce: only inside the signed closure).
//!
//! A stored blob is served from disk (Range and HEAD included) without re-hashing; a missing
//! one is fetched once, however many clients ask at the same time, and streamed to all of them
//! while it is hashed and written to the store. The whole blob is always fetched, also for a
//! Range request: a slice cannot be verified on its own.

use http::{header, HeaderMap, Method};

use super::{BlobBody, BlobStream, Fetching, Missing, Proxy, PullError, ServedBlob, Target};
use crate::config::TrustMode;
use crate::metrics::{metrics, ContentKind};
use crate::range::{parse_range, ByteRange, RangeRequest};
use crate::reference::Digest;

impl Proxy {
    /// `GET|HEAD /v2/<name>/blobs/<digest>`.
    pub(crate) async fn blob(
        &self,
        t: &Target<'_>,
        digest: &Digest,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<ServedBlob, PullError> {
        match t.policy.mode {
            TrustMode::Enforce => {
                self.require_in_closure(t, digest, false).await?;
            }
            // Blobs are content-addressed: serving one checked against its digest is all
            // that audit and off promise.
            TrustMode::Audit | TrustMode::Off => {}
        }
        let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        let head = method == Method::HEAD;
        if let Some(obj) = self.content.get(digest).await {
            metrics().cache_hit(ContentKind::Blob);
            let window = window(range, obj.size)?;
            let size = obj.size;
            // The front end chooses how to send the file: zero-copy or read (issue 16).
            let body = (!head).then_some(BlobBody::Stored(obj));
            return Ok(ServedBlob {
                digest: *digest,
                total: Some(size),
                window,
                body,
            });
        }
        metrics().cache_miss(ContentKind::Blob);
        let up = t.upstream;
        if up.offline {
            return Err(PullError::OfflineMiss {
                upstream: up.name().to_string(),
                missing: Missing::Blob(*digest),
            });
        }
        // Fleet (issue 14): a HEAD or a `Range` the shared tier can answer never goes upstream.
        if head || range.is_some() {
            if let Some(meta) = self.content.shared_meta(digest).await {
                let window = window(range, meta.size)?;
                let body = match (head, window) {
                    (true, _) => None,
                    (false, Some(w)) => self.content.shared_range(digest, w).await,
                    (false, None) => None,
                };
                if head || body.is_some() {
                    return Ok(ServedBlob {
                        digest: *digest,
                        total: Some(meta.size),
                        window,
                        body: body.map(|b| BlobBody::Stream(b as BlobStream)),
                    });
                }
            }
        }
        let repo = t.repository().to_string();
        let digest_text = digest.to_string();
        if head {
            let resp = up
                .client
                .blob(&repo, &digest_text, None, Method::HEAD)
                .await
                .map_err(|e| PullError::upstream(e, Fetching::Blob(*digest)))?;
            return Ok(ServedBlob {
                digest: *digest,
                total: resp.content_length(),
                window: None,
                body: None,
            });
        }
        let client = up.client.clone();
        let fill =
            self.content
                .fill_from(Some(up.name()), *digest, None, None, move || async move {
                    let resp = client.blob(&repo, &digest_text, None, Method::GET).await?;
                    Ok((resp.content_length(), resp.into_stream()))
                });
        // Every waiter of a failed fill gets the fill's error, whose source is the upstream's.
        let total = fill.total().await?;
        let window = match total {
            Some(total) => window(range, total)?,
            None => None,
        };
        Ok(ServedBlob {
            digest: *digest,
            total,
            window,
            body: Some(BlobBody::Stream(Box::pin(fill.reader(window)))),
        })
    }
}

/// The part of a blob of `total` bytes a `Range` header asks for.
fn window(range: Option<&str>, total: u64) -> Result<Option<ByteRange>, PullError> {
    match parse_range(range, total) {
        RangeRequest::Full => Ok(None),
        RangeRequest::Partial(r) => Ok(Some(r)),
        RangeRequest::Unsatisfiable => Err(PullError::RangeUnsatisfiable { total }),
    }
}
