//! How an upstream failure looks to the client: the upstream's own codes and messages pass
//! through; failures of the upstream itself name it, so the operator knows where to look.

use http::StatusCode;

use crate::api::{ApiError, ErrorCode};
use crate::upstream::UpstreamError;

pub fn to_api_error(e: &UpstreamError) -> ApiError {
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
    api.status = status;
    if let Some(retry) = e.retry_after() {
        api = api.with_header(http::header::RETRY_AFTER, retry);
    }
    api
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::OciErrorEntry;

    fn status(status: u16, errors: Vec<OciErrorEntry>, retry_after: Option<&str>) -> UpstreamError {
        UpstreamError::Status {
            upstream: "reg.example".into(),
            status,
            errors,
            text: None,
            retry_after: retry_after.map(str::to_string),
        }
    }

    #[test]
    fn upstream_codes_and_messages_pass_through() {
        let e = status(
            404,
            vec![OciErrorEntry {
                code: "MANIFEST_UNKNOWN".into(),
                message: "manifest unknown".into(),
                detail: serde_json::json!({"Tag": "nope"}),
            }],
            None,
        );
        let api = to_api_error(&e);
        assert_eq!(
            (api.status.as_u16(), api.code.as_str(), api.message.as_str()),
            (404, "MANIFEST_UNKNOWN", "manifest unknown")
        );
        assert_eq!(api.detail, serde_json::json!({"Tag": "nope"}));
    }

    #[test]
    fn rate_limits_keep_retry_after() {
        let e = status(
            429,
            vec![OciErrorEntry {
                code: "TOOMANYREQUESTS".into(),
                message: "slow down".into(),
                detail: serde_json::Value::Null,
            }],
            Some("30"),
        );
        let api = to_api_error(&e);
        assert_eq!(
            (api.status.as_u16(), api.code.as_str()),
            (429, "TOOMANYREQUESTS")
        );
        assert!(api
            .headers
            .iter()
            .any(|(n, v)| n == http::header::RETRY_AFTER && v == "30"));
        let bare = to_api_error(&status(429, vec![], None));
        assert_eq!(bare.code, "TOOMANYREQUESTS");
    }

    #[test]
    fn unreachable_upstreams_are_named() {
        let e = UpstreamError::Unreachable {
            upstream: "reg.example".into(),
            url: "https://reg.example".into(),
            reason: "connection refused".into(),
        };
        let api = to_api_error(&e);
        assert_eq!(api.status.as_u16(), 502);
        assert_eq!(api.code, "UNAVAILABLE");
        assert!(api.message.contains("reg.example"), "{}", api.message);
    }

    #[test]
    fn upstream_401_is_not_the_clients_problem() {
        let api = to_api_error(&status(
            401,
            vec![OciErrorEntry {
                code: "UNAUTHORIZED".into(),
                message: "authentication required".into(),
                detail: serde_json::Value::Null,
            }],
            None,
        ));
        assert_eq!((api.status.as_u16(), api.code.as_str()), (403, "DENIED"));
        assert!(api.message.contains("reg.example"));
    }
}
