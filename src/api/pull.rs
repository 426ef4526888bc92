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
use super::sendfile::{SendfileBody, Slot};
use crate::body::{empty_body, full_body, stream_body, Body};
use crate::decision::Reason;
use crate::media;
use crate::proxy::{
    BlobBody, Fetching, Missing, PullError, Pulled, ReferrerList, Served, ServedBlob, TagList,
};
use crate::upstream::UpstreamError;
use http_body_util::BodyExt;

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
                    Reason::NoTrustData
                    | Reason::UnsignedTag
                    | Reason::SignerMissing
                    | Reason::NoSignature => ErrorCode::ManifestUnknown,
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
            PullError::DigestMismatch { .. } => ApiError::new(ErrorCode::ManifestInvalid, message)
                .with_status(StatusCode::BAD_GATEWAY),
            PullError::UnreadableTagList { .. } => {
                ApiError::new(ErrorCode::Unavailable, message).with_status(StatusCode::BAD_GATEWAY)
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
            // 404, not 406: clients print a 404's message, and pull nothing else.
            PullError::NotAcceptable { .. } => ApiError::new(ErrorCode::ManifestUnknown, message),
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
/// With a `zero_copy` slot (a plain-HTTP/1.1 connection), a stored blob is sent from its file
/// without a copy ([`super::sendfile`]).
pub fn response(
    method: &Method,
    route: &Route,
    pulled: Pulled,
    zero_copy: Option<&Slot>,
) -> Result<Response<Body>, ApiError> {
    match pulled {
        Pulled::Manifest(m) => manifest_response(method, m),
        Pulled::Blob(b) => blob_response(b, zero_copy),
        Pulled::Tags(list) => tag_list_response(route, list),
        Pulled::Referrers(list) => referrers_response(method, list),
    }
}

/// An OCI image index of referrers; `OCI-Filters-Applied: artifactType` when filtered
/// (distribution-spec 1.1, "Listing Referrers").
pub fn referrers_response(method: &Method, list: ReferrerList) -> Result<Response<Body>, ApiError> {
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, media::OCI_INDEX)
        .header(header::CONTENT_LENGTH, list.bytes.len());
    if list.filtered {
        b = b.header("oci-filters-applied", "artifactType");
    }
    let body = if method == Method::HEAD {
        empty_body()
    } else {
        full_body(list.bytes)
    };
    b.body(body).map_err(internal)
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
pub fn blob_response(
    blob: ServedBlob,
    zero_copy: Option<&Slot>,
) -> Result<Response<Body>, ApiError> {
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
        Some(BlobBody::Stream(stream)) => stream_body(stream),
        Some(BlobBody::Stored(object)) => match zero_copy {
            Some(slot) => match SendfileBody::new(object, blob.window, slot.clone()) {
                Ok(body) => body.boxed_unsync(),
                Err(object) => stream_body(object.stream(blob.window)),
            },
            None => stream_body(object.stream(blob.window)),
        },
        None => empty_body(),
    };
    b.body(body).map_err(internal)
}

pub fn tag_list_response(route: &Route, list: TagList) -> Result<Response<Body>, ApiError> {
    let body =
        serde_json::to_vec(&serde_json::json!({ "name": route.client_name, "tags": list.names }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Verdict;
    use crate::enforce::persist::PersistError;
    use crate::enforce::TrustFailure;
    use crate::proxy::audit::Decision;
    use crate::proxy::Unacceptable;
    use crate::reference::Digest;
    use crate::store::FillError;
    use crate::trust::TrustError;
    use crate::upstream::OciErrorEntry;
    use crate::verify::digest::DigestFailure;
    use crate::verify::discovery::DiscoveryError;

    const GUN: &str = "r.io/a";

    fn refused(failure: TrustFailure, tag: Option<&str>) -> PullError {
        PullError::Refused {
            failure,
            gun: GUN.into(),
            tag: tag.map(str::to_string),
            notary: Some("n.io".into()),
        }
    }

    fn verify(e: TrustError) -> PullError {
        refused(TrustFailure::Verify(e), Some("v1"))
    }

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    /// The metric label a decision with `reason` is counted under.
    fn metric_label(reason: Reason) -> String {
        let m = crate::metrics::Metrics::new();
        m.trust_decision(Verdict::Deny, reason);
        let text = m.encode(true).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with("trustgate_trust_decisions_total{"))
            .expect("a decision series");
        let start = line.find("reason=\"").expect("a reason label") + 8;
        line[start..start + line[start..].find('"').unwrap()].to_string()
    }

    /// Every refusal, from one table: the client's JSON (`code`, `message`, `detail.reason`),
    /// the audit line's reason and the metric's reason label, all the same one word.
    #[test]
    fn every_refusal_says_the_same_thing_to_the_client_the_audit_log_and_the_metrics() {
        let dg = d('a');
        #[rustfmt::skip]
        let table: Vec<(PullError, u16, &str, String, Reason, &str)> = vec![
            (verify(TrustError::NoTrustData { gun: GUN.into(), host: "n.io".into() }),
                404, "MANIFEST_UNKNOWN", "remote trust data does not exist for r.io/a: n.io does not have trust data for r.io/a".into(),
                Reason::NoTrustData, "no_trust_data"),
            (refused(TrustFailure::NoNotary { upstream: "r.io".into(), gun: GUN.into() }, Some("v1")),
                404, "MANIFEST_UNKNOWN", "no Notary server is configured for upstream r.io, so the trust data of r.io/a cannot be checked; set `notary` on the upstream or a policy with trust = \"off\"".into(),
                Reason::NoTrustData, "no_trust_data"),
            (refused(TrustFailure::OfflineNoData { upstream: "r.io".into(), gun: GUN.into() }, None),
                404, "MANIFEST_UNKNOWN", "the mirror is offline (upstream r.io has offline = true) and holds no trust data for r.io/a; seed it while connected (trustgate seed)".into(),
                Reason::NoTrustData, "no_trust_data"),
            (verify(TrustError::UnsignedTag { tag: "v2".into() }),
                404, "MANIFEST_UNKNOWN", "No valid trust data for v2".into(),
                Reason::UnsignedTag, "unsigned_tag"),
            (verify(TrustError::RequiredSignerMissing { tag: "v2".into(), role: "targets/releases".into() }),
                404, "MANIFEST_UNKNOWN", "No valid trust data for v2: required signer targets/releases did not sign it".into(),
                Reason::SignerMissing, "signer_missing"),
            (verify(TrustError::Expired { gun: GUN.into(), role: "timestamp".into(), expired_at: "Sat Jan 1 00:00:00 UTC 2030".into() }),
                403, "DENIED", "remote repository r.io/a out-of-date: timestamp expired at Sat Jan 1 00:00:00 UTC 2030".into(),
                Reason::Expired, "expired"),
            (verify(TrustError::Rollback { gun: GUN.into(), role: "timestamp".into(), found: 1, current: 2 }),
                403, "DENIED", "potential malicious behavior - trust data version is lower than expected for remote repository r.io/a: timestamp version 1 is lower than current version 2".into(),
                Reason::Rollback, "rollback"),
            (verify(TrustError::Threshold { gun: GUN.into(), role: "root".into(), valid: 0, threshold: 1 }),
                403, "DENIED", "potential malicious behavior - trust data has insufficient signatures for remote repository r.io/a: valid signatures did not meet threshold for root (0 of 1)".into(),
                Reason::BadSignature, "bad_signature"),
            (verify(TrustError::PinMismatch { gun: GUN.into(), reason: "other CA".into() }),
                403, "DENIED", "potential malicious behavior - trust data mismatch for remote repository r.io/a: root certificate does not match trust pinning (other CA)".into(),
                Reason::RootMismatch, "root_mismatch"),
            (verify(TrustError::Malformed { gun: GUN.into(), role: "targets".into(), reason: "not JSON".into() }),
                403, "DENIED", "malformed trust data for remote repository r.io/a: targets: not JSON".into(),
                Reason::Malformed, "malformed"),
            (refused(TrustFailure::Persist(PersistError::Corrupt { path: "/s/trust/x.json".into(), gun: GUN.into(), reason: "eof".into() }), None),
                403, "DENIED", "trust state /s/trust/x.json is unreadable (eof); refusing to guess. Inspect it, or forget the repository's pins with `trustgate trust reset r.io/a`".into(),
                Reason::Malformed, "malformed"),
            (verify(TrustError::Fetch { gun: GUN.into(), path: "root.json".into(), message: "connection refused".into() }),
                403, "DENIED", "error contacting notary server: fetching root.json for r.io/a: connection refused".into(),
                Reason::Fetch, "fetch"),
            (refused(TrustFailure::Digest(DigestFailure::NoSignature { kind: "cosign", image: GUN.into(), digest: dg, ignored: vec![] }), Some("v1")),
                404, "MANIFEST_UNKNOWN", format!("no cosign signature for r.io/a@{dg}"),
                Reason::NoSignature, "no_signature"),
            (refused(TrustFailure::Digest(DigestFailure::Rejected { kind: "cosign", image: GUN.into(), digest: dg, need: 1, accepted: vec![],
                    refusals: vec![("acme-release".into(), "signature not made by any key of verifier acme-release".into())] }), Some("v1")),
                403, "DENIED", format!("no cosign signature of r.io/a@{dg} was accepted: acme-release: signature not made by any key of verifier acme-release"),
                Reason::SignatureRejected, "signature_rejected"),
            (refused(TrustFailure::Digest(DigestFailure::Discovery { source: DiscoveryError::TooMany { digest: dg, what: "the referrers list".into(), items: "entries", limit: 128 } }), Some("v1")),
                403, "DENIED", format!("the referrers list of {dg} lists more than 128 entries; refused (a signature list is bounded)"),
                Reason::Malformed, "malformed"),
            (PullError::OutsideClosure { gun: GUN.into(), digest: dg },
                403, "DENIED", format!("{dg} is not reachable from any signed tag of r.io/a; refused by trust policy"),
                Reason::OutsideSignedClosure, "outside_signed_closure"),
            (PullError::Tampered { gun: GUN.into(), tag: Some("v1".into()), signed: dg, what: "3 bytes where 4 were signed".into() },
                403, "DENIED", format!("the manifest served by the upstream for r.io/a:v1 does not match its signed digest {dg}: 3 bytes where 4 were signed; refused (possible tampering)"),
                Reason::Tampered, "tampered"),
        ];
        let mut seen = std::collections::HashSet::new();
        for (e, status, code, message, reason, label) in table {
            let audit = Decision::denial(&e, "r.io/a:v1".into(), None, None)
                .expect("a refusal is a trust decision");
            let api = ApiError::from(e);
            assert_eq!(
                (api.status.as_u16(), api.code.as_str(), api.message.as_str()),
                (status, code, message.as_str()),
                "{label}"
            );
            assert_eq!(api.detail["reason"], label, "client JSON detail.reason");
            assert_eq!(audit.reason, reason, "{label}");
            assert_eq!(audit.reason.as_str(), label, "audit label");
            assert_eq!(metric_label(reason), label, "metric label");
            seen.insert(reason);
        }
        // Every refusal reason has its row (the others are verdicts of served content).
        for r in Reason::ALL {
            let served = matches!(
                r,
                Reason::Signed | Reason::InSignedClosure | Reason::Unverifiable
            );
            assert_eq!(seen.contains(&r), !served, "{r}");
        }
    }

    fn status(status: u16, errors: Vec<OciErrorEntry>, retry_after: Option<&str>) -> UpstreamError {
        UpstreamError::Status {
            upstream: "reg.example".into(),
            status,
            errors,
            text: None,
            retry_after: retry_after.map(str::to_string),
        }
    }

    fn entry(code: &str, message: &str) -> OciErrorEntry {
        OciErrorEntry {
            code: code.into(),
            message: message.into(),
            detail: serde_json::json!({"Tag": "nope"}),
        }
    }

    /// What is not a trust decision: no `reason`, no audit line, and the codes of today.
    #[test]
    fn other_failures_keep_their_codes_and_are_not_trust_decisions() {
        let dg = d('b');
        let bare_404 = || status(404, vec![], None);
        #[rustfmt::skip]
        let table: Vec<(PullError, u16, &str, String)> = vec![
            (PullError::upstream(status(404, vec![entry("MANIFEST_UNKNOWN", "manifest unknown")], None), Fetching::Manifest),
                404, "MANIFEST_UNKNOWN", "manifest unknown".into()),
            (PullError::upstream(bare_404(), Fetching::Blob(dg)),
                404, "BLOB_UNKNOWN", format!("blob {dg} unknown to upstream reg.example")),
            (PullError::upstream(status(404, vec![entry("NAME_UNKNOWN", "repository name not known")], None), Fetching::Blob(dg)),
                404, "BLOB_UNKNOWN", format!("blob {dg} unknown to upstream reg.example")),
            (PullError::Fill { source: FillError::Upstream { digest: dg, source: std::sync::Arc::new(bare_404()) } },
                404, "BLOB_UNKNOWN", format!("blob {dg} unknown to upstream reg.example")),
            (PullError::Fill { source: FillError::Io { digest: dg, message: "disk full".into() } },
                500, "UNAVAILABLE", format!("writing {dg} to the store failed: disk full")),
            (PullError::SignedManifestUnavailable { digest: dg, upstream: "reg.example".into(), cause: Box::new(PullError::upstream(bare_404(), Fetching::Manifest)) },
                404, "NAME_UNKNOWN", format!("signed manifest {dg} is not available upstream (reg.example): {}", bare_404())),
            (PullError::DigestMismatch { upstream: "reg.example".into(), digest: dg, actual: d('c') },
                502, "MANIFEST_INVALID", format!("upstream reg.example served a manifest for {dg} whose bytes hash to {}; refused", d('c'))),
            (PullError::NotAcceptable { tag: "v1".into(), media_type: media::OCI_INDEX.into(), why: Unacceptable::NotAccepted },
                404, "MANIFEST_UNKNOWN", format!("the signed manifest for v1 is {}, which this client's Accept header does not include; trustgate never converts signed manifests", media::OCI_INDEX)),
            (PullError::OfflineMiss { upstream: "reg.example".into(), missing: Missing::Blob(dg) },
                404, "BLOB_UNKNOWN", format!("the mirror is offline (upstream reg.example has offline = true) and does not hold {dg}")),
            (PullError::OfflineMiss { upstream: "reg.example".into(), missing: Missing::Tag { repository: "team/app".into(), tag: "v1".into() } },
                404, "MANIFEST_UNKNOWN", "the mirror is offline (upstream reg.example has offline = true), and team/app:v1 was never pulled through it".into()),
            (PullError::RangeUnsatisfiable { total: 10 },
                416, "RANGE_INVALID", "requested range is outside the blob of 10 bytes".into()),
        ];
        for (e, status, code, message) in table {
            assert!(
                Decision::denial(&e, "x".into(), None, None).is_none(),
                "{e}"
            );
            let api = ApiError::from(e);
            assert_eq!(
                (api.status.as_u16(), api.code.as_str(), api.message.as_str()),
                (status, code, message.as_str())
            );
            assert!(api.detail.get("reason").is_none());
        }
    }

    #[test]
    fn rate_limits_keep_retry_after() {
        let e = status(429, vec![entry("TOOMANYREQUESTS", "slow down")], Some("30"));
        let api = upstream_error(&e, Fetching::Manifest);
        assert_eq!(
            (api.status.as_u16(), api.code.as_str()),
            (429, "TOOMANYREQUESTS")
        );
        assert!(api
            .headers
            .iter()
            .any(|(n, v)| n == header::RETRY_AFTER && v == "30"));
        let bare = upstream_error(&status(429, vec![], None), Fetching::Manifest);
        assert_eq!(bare.code, "TOOMANYREQUESTS");
    }

    #[test]
    fn unreachable_upstreams_are_named() {
        let e = UpstreamError::Unreachable {
            upstream: "reg.example".into(),
            url: "https://reg.example".into(),
            reason: "connection refused".into(),
        };
        let api = upstream_error(&e, Fetching::Manifest);
        assert_eq!(
            (api.status.as_u16(), api.code.as_str()),
            (502, "UNAVAILABLE")
        );
        assert!(api.message.contains("reg.example"), "{}", api.message);
    }

    #[test]
    fn upstream_401_is_not_the_clients_problem() {
        let api = upstream_error(
            &status(
                401,
                vec![entry("UNAUTHORIZED", "authentication required")],
                None,
            ),
            Fetching::Manifest,
        );
        assert_eq!((api.status.as_u16(), api.code.as_str()), (403, "DENIED"));
        assert!(api.message.contains("reg.example"));
    }

    #[test]
    fn an_unsatisfiable_range_names_the_length() {
        let api = ApiError::from(PullError::RangeUnsatisfiable { total: 10 });
        assert!(api
            .headers
            .iter()
            .any(|(n, v)| n == header::CONTENT_RANGE && v == "bytes */10"));
    }
}
