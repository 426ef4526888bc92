//! What a pull can fail with, as the core sees it (issue 11).
//!
//! The core returns a [`PullError`]; it never builds an HTTP answer. Each variant says what went
//! wrong in typed values (the trust failure, the upstream's own error, the fill's error with its
//! source), [`PullError::origin`] says who failed and [`PullError::is_retryable`] whether the same
//! request may succeed later, the way pingora's error carries its source and retry decision.
//! `api` alone turns a `PullError` into a status, an OCI error code, a message, a `detail` and
//! headers (`impl From<PullError> for ApiError` in `api::pull`). Trust refusals carry a
//! [`Reason`], whose one spelling is the JSON `detail.reason`, the audit label and the metric
//! label.

use crate::decision::Reason;
use crate::enforce::TrustFailure;
use crate::reference::Digest;
use crate::store::FillError;
use crate::upstream::UpstreamError;

/// Who failed (pingora's `ErrorSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The upstream registry (or its Notary server) failed or misbehaved.
    Upstream,
    /// Trust policy refused: nothing failed, the content is not trusted.
    Policy,
    /// The client asked for something this proxy will not or cannot serve.
    Client,
    /// trustgate itself (its disk, a bug).
    Internal,
}

/// What an upstream fetch was for: it decides the code and message the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetching {
    Manifest,
    Blob(Digest),
    Tags,
}

/// Why a signed manifest is refused to this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unacceptable {
    /// A Docker schema 1 manifest: current clients no longer pull them.
    Schema1,
    /// The client's `Accept` header excludes the signed manifest's type (trustgate never
    /// converts a signed manifest).
    NotAccepted,
}

/// What an offline mirror does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Manifest(Digest),
    Blob(Digest),
    /// An unenforced tag never resolved through this mirror.
    Tag {
        repository: String,
        tag: String,
    },
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// Trust could not be established for the repository or the tag.
    #[error("{failure}")]
    Refused {
        failure: TrustFailure,
        gun: String,
        tag: Option<String>,
        /// The Notary server's `host[:port]`, when one is configured.
        notary: Option<String>,
    },
    /// The upstream served other bytes than were signed.
    #[error("the manifest served by the upstream for {gun}{} does not match its signed digest {signed}: {what}; refused (possible tampering)", tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default())]
    Tampered {
        gun: String,
        tag: Option<String>,
        signed: Digest,
        /// What differs (the hash, or the length).
        what: String,
    },
    /// A digest that no signed tag of the repository reaches.
    #[error("{digest} is not reachable from any signed tag of {gun}; refused by trust policy")]
    OutsideClosure { gun: String, digest: Digest },
    /// The upstream failed or answered with an error of its own.
    #[error("{source}")]
    Upstream {
        #[source]
        source: UpstreamError,
        fetching: Fetching,
    },
    /// The signed manifest of a tag could not be had (`cause` says why); the message names it.
    #[error("signed manifest {digest} is not available upstream ({upstream}): {cause}")]
    SignedManifestUnavailable {
        digest: Digest,
        upstream: String,
        #[source]
        cause: Box<PullError>,
    },
    /// Manifest bytes that do not hash to the digest they were fetched by (not under a signature:
    /// under one, the enforcing handler turns this into [`PullError::Tampered`]).
    #[error(
        "upstream {upstream} served a manifest for {digest} whose bytes hash to {actual}; refused"
    )]
    DigestMismatch {
        upstream: String,
        digest: Digest,
        actual: Digest,
    },
    /// The upstream's tag list is not JSON of the expected shape.
    #[error("upstream {upstream} sent an unreadable tag list: {source}")]
    UnreadableTagList {
        upstream: String,
        #[source]
        source: serde_json::Error,
    },
    /// A blob fill failed; every waiter of the fill gets the same error, with its source.
    #[error("{source}")]
    Fill {
        #[source]
        source: FillError,
    },
    /// The signed manifest exists but this client may not have it.
    #[error("{}", unacceptable_message(tag, media_type, *why))]
    NotAcceptable {
        tag: String,
        media_type: String,
        why: Unacceptable,
    },
    /// An offline mirror (or one whose upstream is unreachable) does not hold the content.
    #[error("{}", offline_message(upstream, missing))]
    OfflineMiss { upstream: String, missing: Missing },
    /// A `Range` outside the blob.
    #[error("requested range is outside the blob of {total} bytes")]
    RangeUnsatisfiable { total: u64 },
}

impl PullError {
    pub(crate) fn upstream(source: UpstreamError, fetching: Fetching) -> Self {
        Self::Upstream { source, fetching }
    }

    /// The refusal reason, when this is a trust decision (an upstream outage or a content
    /// negotiation failure is not one, and is left to the request log).
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::Refused { failure, .. } => Some(failure.reason()),
            Self::Tampered { .. } => Some(Reason::Tampered),
            Self::OutsideClosure { .. } => Some(Reason::OutsideSignedClosure),
            Self::SignedManifestUnavailable { cause, .. } => cause.reason(),
            Self::Upstream { .. }
            | Self::DigestMismatch { .. }
            | Self::UnreadableTagList { .. }
            | Self::Fill { .. }
            | Self::NotAcceptable { .. }
            | Self::OfflineMiss { .. }
            | Self::RangeUnsatisfiable { .. } => None,
        }
    }

    /// Who failed.
    pub fn origin(&self) -> Origin {
        match self {
            Self::Refused { .. } | Self::OutsideClosure { .. } => Origin::Policy,
            Self::Tampered { .. }
            | Self::Upstream { .. }
            | Self::DigestMismatch { .. }
            | Self::UnreadableTagList { .. } => Origin::Upstream,
            Self::SignedManifestUnavailable { cause, .. } => cause.origin(),
            Self::Fill { source } if source.is_upstream() => Origin::Upstream,
            Self::Fill { .. } => Origin::Internal,
            Self::NotAcceptable { .. }
            | Self::OfflineMiss { .. }
            | Self::RangeUnsatisfiable { .. } => Origin::Client,
        }
    }

    /// Would the same request, tried again later, plausibly succeed?
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Upstream { source, .. } => source.is_retryable(),
            Self::Fill { source } => source
                .upstream_source::<UpstreamError>()
                .is_some_and(UpstreamError::is_retryable),
            Self::SignedManifestUnavailable { cause, .. } => cause.is_retryable(),
            Self::Refused { failure, .. } => failure.reason() == Reason::Fetch,
            _ => false,
        }
    }

    /// The upstream's own error, when the upstream answered or failed (directly or in a fill).
    pub fn upstream_error(&self) -> Option<&UpstreamError> {
        match self {
            Self::Upstream { source, .. } => Some(source),
            Self::Fill { source } => source.upstream_source::<UpstreamError>(),
            Self::SignedManifestUnavailable { cause, .. } => cause.upstream_error(),
            _ => None,
        }
    }
}

fn unacceptable_message(tag: &str, media_type: &str, why: Unacceptable) -> String {
    match why {
        Unacceptable::Schema1 => format!("the signed manifest for {tag} is a Docker schema 1 manifest ({media_type}), which current clients no longer pull; refused"),
        Unacceptable::NotAccepted => format!("the signed manifest for {tag} is {media_type}, which this client's Accept header does not include; trustgate never converts signed manifests"),
    }
}

fn offline_message(upstream: &str, missing: &Missing) -> String {
    let offline = format!("the mirror is offline (upstream {upstream} has offline = true)");
    match missing {
        Missing::Manifest(d) | Missing::Blob(d) => format!("{offline} and does not hold {d}"),
        Missing::Tag { repository, tag } => {
            format!("{offline}, and {repository}:{tag} was never pulled through it")
        }
    }
}

impl From<FillError> for PullError {
    fn from(source: FillError) -> Self {
        Self::Fill { source }
    }
}
