//! The store seam: the one content backend the proxy reads from and fills, by digest.
//!
//! [`Content`] is what `proxy` holds; it never names the disk store's internals.
//! - [`Content::Disk`]: the local content-addressed [`Store`] alone (single-flight fills, LRU
//!   eviction, crash-safe commits). Without `[storage.shared]` this is all there is.
//! - [`Content::Tiered`] (issue 14, `[storage.shared]`): the local disk stays the hot tier that
//!   clients read from, and a bucket shared by every replica of a fleet sits behind it:
//!   - [`Content::get`] misses locally, then looks in the bucket; a small object (a manifest, a
//!     config) is filled into the local tier from it at once (through the same single-flight
//!     [`Store::fill_from`], so its bytes are hashed again on the way in: the bucket is not
//!     trusted more than an upstream); a larger one is left to the fill;
//!   - [`Content::fill_from`] fills the local tier from the bucket when the object is there,
//!     else from the upstream by one replica of the fleet (a lease per digest), teeing the
//!     bytes into the bucket as they are hashed ([`SharedStore::fill_source`]);
//!   - [`Content::put`] (verified manifests) writes both tiers;
//!   - [`Content::fetch_turn`] gives a manifest fetched by digest the fleet's single flight: the
//!     same lease per digest as a blob fill, held around the caller's fetch, check and `put`;
//!   - [`Content::shared_meta`] / [`Content::shared_range`] answer a HEAD or a `Range` request
//!     from the bucket without filling the local tier.
//!
//! The signed-closure and digest checks stay in `proxy`: every backend only ever holds bytes
//! that were checked against their digest.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::shared::{SharedMeta, SharedStore, SharedStream, Turn};
use super::{Fill, Store, StoreError, StoredObject};
use crate::body::BoxError;
use crate::metrics::metrics;
use crate::range::ByteRange;
use crate::reference::Digest;

/// Objects up to this size found in the bucket on a local miss are copied into the local tier
/// before [`Content::get`] returns (manifests are at most 4 MiB); larger ones stream through a fill.
const SMALL_OBJECT: u64 = 4 * 1024 * 1024;

/// Where content by digest lives.
#[derive(Clone)]
pub enum Content {
    /// The local disk store.
    Disk(Arc<Store>),
    /// The local disk store in front of a bucket shared by a fleet.
    Tiered {
        local: Arc<Store>,
        shared: Arc<SharedStore>,
    },
}

impl Content {
    /// The local disk tier (every backend has one: clients are served from it).
    pub fn disk(&self) -> &Arc<Store> {
        match self {
            Self::Disk(s) | Self::Tiered { local: s, .. } => s,
        }
    }

    /// The shared tier, when configured.
    pub fn shared(&self) -> Option<&Arc<SharedStore>> {
        match self {
            Self::Disk(_) => None,
            Self::Tiered { shared, .. } => Some(shared),
        }
    }

    /// A held object, or `None` on a miss.
    pub async fn get(&self, digest: &Digest) -> Option<StoredObject> {
        match self {
            Self::Disk(s) => s.get(digest).await,
            Self::Tiered { local, shared } => {
                if let Some(obj) = local.get(digest).await {
                    return Some(obj);
                }
                let meta = shared.head(digest).await.ok()??;
                if meta.size > SMALL_OBJECT {
                    return None;
                }
                let sh = shared.clone();
                let d = *digest;
                let fill = local.fill_from(
                    None,
                    d,
                    Some(meta.size),
                    meta.media_type.clone(),
                    move || async move {
                        match sh.open(&d, None).await {
                            Ok(Some((m, s))) => Ok((Some(m.size), s)),
                            Ok(None) => Err(std::io::Error::new(
                                std::io::ErrorKind::NotFound,
                                format!("{d} left the shared store"),
                            )),
                            Err(e) => Err(std::io::Error::other(e)),
                        }
                    },
                );
                fill.wait().await.ok()?;
                metrics().shared_hit();
                local.get(digest).await
            }
        }
    }

    /// Keeps bytes already checked against `digest` (manifests).
    pub async fn put(
        &self,
        digest: &Digest,
        bytes: &[u8],
        expected_len: Option<u64>,
        media_type: Option<&str>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Disk(s) => s.put(digest, bytes, expected_len, media_type).await,
            Self::Tiered { local, shared } => {
                local.put(digest, bytes, expected_len, media_type).await?;
                // `local.put` checked the digest and length: these bytes may be shared.
                if let Err(e) = shared
                    .put_verified(digest, Bytes::copy_from_slice(bytes), media_type)
                    .await
                {
                    tracing::debug!(%digest, error = %e, "manifest not written to the shared store");
                }
                Ok(())
            }
        }
    }

    /// Whether this replica fetches the missing small object `digest` from the upstream (then
    /// checks it, [`Content::put`]s it and drops the lease), or another replica of the fleet did
    /// and it is in the shared tier now. Without a shared tier it is always this replica's turn,
    /// with no lease.
    pub async fn fetch_turn(&self, digest: &Digest) -> Turn {
        match self {
            Self::Disk(_) => Turn::Alone,
            Self::Tiered { shared, .. } => shared.fetch_turn(digest).await,
        }
    }

    /// Single-flight fill of a missing object from `start` (see [`Store::fill_from`]).
    pub fn fill_from<F, Fut, S, E>(
        &self,
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
        match self {
            Self::Disk(s) => s.fill_from(source, digest, expected_len, media_type, start),
            Self::Tiered { local, shared } => {
                let sh = shared.clone();
                let mt = media_type.clone();
                local.fill_from(source, digest, expected_len, media_type, move || {
                    sh.fill_source(digest, expected_len, mt, start)
                })
            }
        }
    }

    /// The size and type of an object in the shared tier (`None` without one, or on a miss).
    pub async fn shared_meta(&self, digest: &Digest) -> Option<SharedMeta> {
        self.shared()?.head(digest).await.ok()?
    }

    /// The inclusive `range` of an object, straight from the shared tier.
    pub async fn shared_range(&self, digest: &Digest, range: ByteRange) -> Option<SharedStream> {
        let (_, stream) = self.shared()?.open(digest, Some(range)).await.ok()??;
        metrics().shared_hit();
        Some(stream)
    }
}
