//! The store seam: the one content backend the proxy reads from and fills, by digest.
//!
//! [`Content`] is what `proxy` holds; it never names the disk store's internals. Today the one
//! variant is [`Content::Disk`], the local content-addressed [`Store`] (single-flight fills,
//! LRU eviction, crash-safe commits).
//!
//! Where a shared tier joins (issue 14, an object-storage backend shared by several replicas):
//! a second variant, `Content::Tiered { local: Arc<Store>, shared: ObjectStore }`, keeps the
//! local disk as the hot tier that clients read from and adds the shared bucket behind it:
//! - [`Content::get`] misses locally, then looks in the bucket and fills the local tier from it
//!   (through the same single-flight [`Store::fill_from`], so many clients cause one download,
//!   and the bytes are hashed again on the way in: the bucket is not trusted more than an
//!   upstream);
//! - [`Content::fill_from`] commits locally as today, then uploads the committed object, so the
//!   next replica finds it in the bucket instead of asking the upstream;
//! - [`Content::put`] (verified manifests) writes both tiers.
//!
//! The signed-closure and digest checks stay in `proxy`: every backend only ever holds bytes
//! that were checked against their digest.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use super::{Fill, Store, StoreError, StoredObject};
use crate::body::BoxError;
use crate::reference::Digest;

/// Where content by digest lives.
#[derive(Clone)]
pub enum Content {
    /// The local disk store.
    Disk(Arc<Store>),
}

impl Content {
    /// The local disk tier (every backend has one: clients are served from it).
    pub fn disk(&self) -> &Arc<Store> {
        match self {
            Self::Disk(s) => s,
        }
    }

    /// A held object, or `None` on a miss.
    pub async fn get(&self, digest: &Digest) -> Option<StoredObject> {
        match self {
            Self::Disk(s) => s.get(digest).await,
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
        }
    }
}
