//! The one place where a pull's outcome becomes HTTP: a [`Pulled`] becomes a response with its
//! headers, a [`PullError`] an OCI error (status, code, message, detail, headers).
//!
//! How refusals look to clients: clients only print the message of a 4xx answer (5xx bodies are
//! lost by docker, skopeo and podman alike). So:
//! - no trust data, unsigned tag, a required signer missing → 404 `MANIFEST_UNKNOWN` (docker
//!   prints `manifest unknown: <message>` without the misleading `docker login` hint that
//!   DENIED brings);
//! - every other failure to establish trust (expired, rollback, bad signatures, root changed,
//!   Notary unreachable with nothing verified to fall back on, tampered bytes, a digest outside
//!   the signed closure) → 403 `DENIED` with the reason.
//!
//! A refusal's `detail` names the GUN, the tag and the Notary server, and its `reason` is
//! [`crate::decision::Reason::as_str`], the audit line's and the metric's label too. Upstream
//! failures pass the upstream's own codes and messages through; failures of the upstream itself
//! name it, so the operator knows where to look.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

use super::error::{ApiError, ErrorCode};
use super::route::Route;
use crate::body::{empty_body, full_body, stream_body, Body};
use crate::decision::Reason;
use crate::media;
use crate::proxy::{
    Fetching, Missing, PullError, Pulled, Served, ServedBlob, TagList, Unacceptable,
};
use crate::upstream::UpstreamError;

impl From<PullError> for ApiError {
    fn from(e: PullError) -> Self {
        let message = e.to_string();
        match e {
            PullError::Refused {
                failure,
                gun,
                tag,
                notary,
            } => {
                let reason = failure.reason();
                let code = match reason {
                    Reason::NoTrustData | Reason::UnsignedTag | Reason::SignerMissing => {
                        ErrorCode::ManifestUnknown
                    }
                    _ => ErrorCode::Denied,
                };
                ApiError::new(code, message).with_detail(serde_json::json!({
                    "gun": gun,
                    "tag": tag,
                    "notary": notary,
                    "reason": reason.as_str(),
                }))
            }
            PullError::Tampered {
                gun, tag, signed, ..
            } => ApiError::new(ErrorCode::Denied, message).with_detail(serde_json::json!({
                "gun": gun,
                "tag": tag,
                "signed_digest": signed.to_string(),
                "reason": Reason::Tampered.as_str(),
            })),
            PullError::OutsideClosure { gun, digest } => ApiError::new(ErrorCode::Denied, message)
                .with_detail(serde_json::json!({
                    "gun": gun,
                    "digest": digest.to_string(),
                    "reason": Reason::OutsideSignedClosure.as_str(),
                })),
            PullError::Upstream { source, fetching } => upstream_error(&source, fetching),
            PullError::SignedManifestUnavailable {
                digest,
                upstream,
                cause,
            } => {
                let mut api = ApiError::from(*cause);
                if api.status == StatusCode::NOT_FOUND {
                    api.message = format!(
                        "signed manifest {digest} is not available upstream ({upstream}): {}",
                        api.message
                    );
                }
                api
            }
            PullError::DigestMismatch { .. } | PullError::UnreadableTagList { .. } => {
                let code = match e {
                    PullError::DigestMismatch { .. } => ErrorCode::ManifestInvalid,
                    _ => ErrorCode::Unavailable,
                };
                ApiError::new(code, message).with_status(StatusCode::BAD_GATEWAY)
            }
            PullError::Fill { source } => {
                match source.upstream_source::<UpstreamError>() {
                    // The upstream's own answer, whichever waiter of the fill this is.
                    Some(up) => upstream_error(up, Fetching::Blob(*fill_digest(&source))),
                    None => {
                        let status = if source.is_upstream() {
                            StatusCode::BAD_GATEWAY
                        } else {
                            StatusCode::INTERNAL_SERVER_ERROR
                        };
                        ApiError::new(ErrorCode::Unavailable, message).with_status(status)
                    }
                }
            }
            PullError::NotAcceptable { why, .. } => {
                let _: Unacceptable = why;
                ApiError::new(ErrorCode::ManifestUnknown, message)
            }
            PullError::OfflineMiss { missing, .. } => match missing {
                Missing::Blob(_) => ApiError::new(ErrorCode::BlobUnknown, message),
                Missing::Manifest(_) | Missing::Tag { .. } => {
                    ApiError::new(ErrorCode::ManifestUnknown, message)
                }
            },
            PullError::RangeUnsatisfiable { total } => {
                ApiError::new(ErrorCode::RangeInvalid, message)
                    .with_header(header::CONTENT_RANGE, format!("bytes */{total}"))
            }
            PullError::Internal(_) => ApiError::new(ErrorCode::Unknown, message),
        }
    }
}

fn fill_digest(e: &crate::store::FillError) -> &crate::reference::Digest {
    use crate::store::FillError as F;
    match e {
        F::Upstream { digest, .. }
        | F::LengthMismatch { digest, .. }
        | F::Io { digest, .. }
        | F::Aborted { digest } => digest,
        F::DigestMismatch { expected, .. } => expected,
    }
}

/// How an upstream failure looks to the client: the upstream's own codes and messages pass
/// through; failures of the upstream itself name it. A blob the upstream does not know (a bare
/// 404) is `BLOB_UNKNOWN` naming the blob.
pub fn upstream_error(e: &UpstreamError, fetching: Fetching) -> ApiError {
    let status =
        StatusCode::from_u16(e.http_status_for_client()).unwrap_or(StatusCode::BAD_GATEWAY);
    let entries = e.upstream_errors();
    let mut api = if let (Some(first), false) = (
        entries.first(),
        status == StatusCode::FORBIDDEN && e.upstream_status() == Some(401),
    ) {
        // The upstream's own error body: pass it on as it came.
        let mut api = ApiError::new(ErrorCode::Unknown, first.message.clone())
            .with_detail(first.detail.clone());
        api.code = first.code.clone();
        api.more = entries[1..]
            .iter()
            .map(|x| (x.code.clone(), x.message.clone(), x.detail.clone()))
            .collect();
        api
    } else {
        let code = match status.as_u16() {
            429 => ErrorCode::TooManyRequests,
            403 => ErrorCode::Denied,
            404 => ErrorCode::NameUnknown,
            400..=499 => ErrorCode::Unknown,
            _ => ErrorCode::Unavailable,
        };
        ApiError::new(code, e.to_string())
    };
    // A 404 for a blob that names no error, or only the repository, is about the blob: say so
    // with the blob's code (distribution's registry/api/errcode: BLOB_UNKNOWN).
    if let Fetching::Blob(digest) = fetching {
        let name_only = entries
            .first()
            .is_none_or(|f| f.code == ErrorCode::NameUnknown.as_str());
        if status == StatusCode::NOT_FOUND && name_only {
            api.code = ErrorCode::BlobUnknown.as_str().into();
            api.message = format!("blob {digest} unknown to upstream {}", e.upstream());
        }
    }
    api.status = status;
    if let Some(retry) = e.retry_after() {
        api = api.with_header(header::RETRY_AFTER, retry);
    }
    api
}

/// The HTTP answer for what the core serves. HEAD answers carry the same headers, no body.
pub fn response(method: &Method, route: &Route, pulled: Pulled) -> Result<Response<Body>, ApiError> {
    match pulled {
        Pulled::Manifest(m) => manifest_response(method, m),
        Pulled::Blob(b) => blob_response(b),
        Pulled::Tags(list) => tag_list_response(route, list),
    }
}

fn internal(e: http::Error) -> ApiError {
    ApiError::new(
        ErrorCode::Unknown,
        format!("internal error building the response: {e}"),
    )
}

pub fn manifest_response(method: &Method, m: Served) -> Result<Response<Body>, ApiError> {
    let b = Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&m.media_type)
                .unwrap_or(HeaderValue::from_static(media::OCI_MANIFEST)),
        )
        .header(header::CONTENT_LENGTH, m.bytes.len())
        .header("docker-content-digest", &m.digest)
        .header(header::ETAG, format!("\"{}\"", m.digest));
    let body = if method == Method::HEAD {
        empty_body()
    } else {
        full_body(m.bytes)
    };
    b.body(body).map_err(internal)
}

/// 200 with the whole blob, or 206 with the window a `Range` asked for (RFC 9110 §14).
pub fn blob_response(blob: ServedBlob) -> Result<Response<Body>, ApiError> {
    let status = if blob.window.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("docker-content-digest", blob.digest.to_string())
        .header(header::ETAG, format!("\"{}\"", blob.digest))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "max-age=31536000");
    if let Some(len) = blob.window.map(|w| w.len()).or(blob.total) {
        b = b.header(header::CONTENT_LENGTH, len);
    }
    if let (Some(w), Some(total)) = (blob.window, blob.total) {
        b = b.header(header::CONTENT_RANGE, w.content_range(total));
    }
    let body = match blob.body {
        Some(stream) => stream_body(stream),
        None => empty_body(),
    };
    b.body(body).map_err(internal)
}

pub fn tag_list_response(route: &Route, list: TagList) -> Result<Response<Body>, ApiError> {
    let body = serde_json::to_vec(
        &serde_json::json!({ "name": route.client_name, "tags": list.names }),
    )
    .map_err(|e| ApiError::new(ErrorCode::Unknown, e.to_string()))?;
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len());
    if let Some((last, n)) = list.next {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("last", &last);
        if let Some(n) = n {
            q.append_pair("n", &n);
        }
        if let Some(ns) = &route.ns {
            q.append_pair("ns", ns);
        }
        b = b.header(
            header::LINK,
            format!(
                "</v2/{}/tags/list?{}>; rel=\"next\"",
                route.client_name,
                q.finish()
            ),
        );
    }
    b.body(full_body(Bytes::from(body))).map_err(internal)
}
