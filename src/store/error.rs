//! The store's errors: one for the store's own operations, one (cloneable, shared by every waiter)
//! for a single-flight fill.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::reference::Digest;

/// An operation on the store itself failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Refused: the bytes are not what the digest names. Nothing was written.
    #[error("refused to store {expected}: the content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// Refused: the length differs from the signed (or announced) length. Nothing was written.
    #[error("refused to store {digest}: {actual} bytes where {expected} were expected")]
    LengthMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("{0} is not in the store")]
    NotFound(Digest),
    /// A blocking store task panicked or was cancelled (a bug or a runtime shutdown).
    #[error("store task failed: {0}")]
    Task(String),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Why a single-flight fill failed. Every waiter receives a clone of the same value; nothing was
/// stored, and the next request for the digest starts a new fill.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FillError {
    /// The upstream could not be reached, refused, or broke off mid-body. `source` is the fetch's
    /// own error (the proxy's is an `UpstreamError`), shared by every waiter, so each can answer
    /// with the upstream's own status and code.
    #[error("upstream fetch of {digest} failed: {source}")]
    Upstream {
        digest: Digest,
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The upstream sent other bytes than the digest names: never stored, never served complete.
    #[error("upstream sent wrong content for {expected}: it hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The body length differs from the expected (signed) or announced length.
    #[error("upstream sent {actual} bytes for {digest} where {expected} were expected")]
    LengthMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    /// Our own disk failed (full, read-only, removed directory).
    #[error("writing {digest} to the store failed: {message}")]
    Io { digest: Digest, message: String },
    /// The fill task ended without an outcome (runtime shut down, or a panic).
    #[error("the fill of {digest} was aborted before it completed")]
    Aborted { digest: Digest },
}

impl FillError {
    /// True when the upstream (not our disk) is at fault: a proxy answers 502, not 500.
    pub fn is_upstream(&self) -> bool {
        matches!(
            self,
            Self::Upstream { .. } | Self::DigestMismatch { .. } | Self::LengthMismatch { .. }
        )
    }

    /// The fetch's own error, when the upstream is at fault and it is of type `E`.
    pub fn upstream_source<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Upstream { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }
}

impl From<FillError> for io::Error {
    fn from(e: FillError) -> Self {
        io::Error::other(e)
    }
}
