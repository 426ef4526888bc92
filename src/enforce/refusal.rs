//! How a trust refusal looks to clients.
//!
//! Clients only print the message of a 4xx answer (real-pieces.md, "How clients show a
//! refusal"): 5xx bodies are lost by docker, skopeo and podman alike. So:
//! - no trust data, unsigned tag → 404 `MANIFEST_UNKNOWN` (docker prints `manifest unknown:
//!   <message>` without the misleading `docker login` hint that DENIED brings);
//! - every other failure to establish trust (expired, rollback, bad signatures, root changed,
//!   Notary unreachable with nothing verified to fall back on, tampered bytes, a digest outside
//!   the signed closure) → 403 `DENIED` with the reason.
//!
//! The body's `detail` names the GUN, the tag and the Notary server.

use http::StatusCode;

use super::service::TrustFailure;
use crate::api::{ApiError, ErrorCode};
use crate::trust::{TrustError, TrustErrorKind};

pub fn refusal(
    failure: &TrustFailure,
    gun: &str,
    tag: Option<&str>,
    notary: Option<&str>,
) -> ApiError {
    let kind = failure.kind();
    let code = match kind {
        TrustErrorKind::NoTrustData | TrustErrorKind::UnsignedTag => ErrorCode::ManifestUnknown,
        _ => ErrorCode::Denied,
    };
    // A signer the policy requires is missing: the operator's rule at work rather than an
    // unsigned tag, so it has a reason of its own (audit log, metrics).
    let reason = match failure {
        TrustFailure::Verify(TrustError::RequiredSignerMissing { .. }) => "SignerMissing".into(),
        _ => format!("{kind:?}"),
    };
    ApiError::new(code, failure.to_string()).with_detail(serde_json::json!({
        "gun": gun,
        "tag": tag,
        "notary": notary,
        "reason": reason,
    }))
}

/// The upstream served manifest bytes that are not what was signed.
pub fn tampered(gun: &str, tag: Option<&str>, expected: &str, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Denied,
        format!("the manifest served by the upstream for {gun}{} does not match its signed digest {expected}: {what}; refused (possible tampering)",
            tag.map(|t| format!(":{t}")).unwrap_or_default()),
    )
    .with_status(StatusCode::FORBIDDEN)
    .with_detail(serde_json::json!({"gun": gun, "tag": tag, "signed_digest": expected, "reason": "Tampered"}))
}

/// A digest that no signed tag of the repository reaches.
pub fn outside_closure(gun: &str, digest: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Denied,
        format!("{digest} is not reachable from any signed tag of {gun}; refused by trust policy"),
    )
    .with_detail(
        serde_json::json!({"gun": gun, "digest": digest, "reason": "OutsideSignedClosure"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_and_missing_trust_data_are_manifest_unknown_with_dockers_words() {
        let f = TrustFailure::Verify(TrustError::NoTrustData {
            gun: "r.io/a".into(),
            host: "n.io".into(),
        });
        let e = refusal(&f, "r.io/a", Some("v1"), Some("n.io"));
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (404, "MANIFEST_UNKNOWN")
        );
        assert_eq!(
            e.message,
            "remote trust data does not exist for r.io/a: n.io does not have trust data for r.io/a"
        );
        let f = TrustFailure::Verify(TrustError::UnsignedTag { tag: "v2".into() });
        let e = refusal(&f, "r.io/a", Some("v2"), None);
        assert_eq!(
            (e.status.as_u16(), e.message.as_str()),
            (404, "No valid trust data for v2")
        );
        assert_eq!(e.detail["reason"], "UnsignedTag");
        let f = TrustFailure::Verify(TrustError::RequiredSignerMissing {
            tag: "v2".into(),
            role: "targets/releases".into(),
        });
        let e = refusal(&f, "r.io/a", Some("v2"), None);
        assert_eq!(
            (e.status.as_u16(), e.code.as_str()),
            (404, "MANIFEST_UNKNOWN")
        );
        assert_eq!(e.detail["reason"], "SignerMissing");
    }

    #[test]
    fn verification_failures_are_denied_with_the_reason() {
        let f = TrustFailure::Verify(TrustError::Expired {
            gun: "r.io/a".into(),
            role: "timestamp".into(),
            expired_at: "Sat Jan 1 00:00:00 UTC 2030".into(),
        });
        let e = refusal(&f, "r.io/a", Some("v1"), None);
        assert_eq!((e.status.as_u16(), e.code.as_str()), (403, "DENIED"));
        assert!(
            e.message.contains("out-of-date: timestamp expired at"),
            "{}",
            e.message
        );
    }
}
