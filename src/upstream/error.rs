//! [`UpstreamError`]: what went wrong talking to an upstream registry (or Notary server), *who*
//! failed and whether trying again makes sense.
//!
//! Every variant names the upstream (`UpstreamSettings::name`) so that a log line read at 3 a.m.
//! says which of several upstreams is in trouble. The mapping to a client-facing HTTP status is a
//! *hint* ([`UpstreamError::http_status_for_client`]); the front (`api`) owns the final OCI error
//! body.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One entry of an OCI / Registry v2 error body: `{"errors":[{"code","message","detail"}]}`
/// (OCI distribution-spec, "Error Codes"). Upstream entries are kept as they came so they can be passed through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OciErrorEntry {
    /// Upper-case code such as `MANIFEST_UNKNOWN`; `UNKNOWN` when the upstream omitted it.
    #[serde(default = "unknown_code")]
    pub code: String,
    /// Human text; may be empty.
    #[serde(default)]
    pub message: String,
    /// Arbitrary JSON; `null` when absent.
    #[serde(default)]
    pub detail: serde_json::Value,
}

fn unknown_code() -> String {
    "UNKNOWN".to_string()
}

/// The phase in which a timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// TCP/TLS connect took longer than `Timeouts::connect`.
    Connect,
    /// The response headers did not arrive within `Timeouts::first_byte`.
    FirstByte,
    /// No body bytes arrived for `Timeouts::idle` while streaming.
    Idle,
    /// A whole `min_rate` window passed with fewer body bytes than the floor asks
    /// (`received` of them; the floor is `min_rate` bytes per second).
    BelowMinRate { received: u64, min_rate: u64 },
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeoutPhase::Connect => f.write_str("connecting"),
            TimeoutPhase::FirstByte => f.write_str("waiting for the response headers"),
            TimeoutPhase::Idle => f.write_str("waiting for more body bytes"),
            TimeoutPhase::BelowMinRate { received, min_rate } => write!(
                f,
                "receiving the body: {received} bytes in that time, below the minimum rate of {min_rate} bytes/s (min_rate)"
            ),
        }
    }
}

/// An error talking to an upstream. See the module docs.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The settings cannot produce a client (bad CA bundle, bad URL). Raised at start-up.
    #[error("upstream {upstream}: invalid settings: {reason}")]
    Config { upstream: String, reason: String },

    /// Connection refused, DNS failure, TLS failure, connection reset before an answer, proxy
    /// refused the tunnel. `url` is what we tried to reach (the registry, its token service or
    /// a redirect target).
    #[error("upstream {upstream} ({url}) is unreachable: {reason}")]
    Unreachable {
        upstream: String,
        url: String,
        reason: String,
    },

    /// A timeout fired; see [`TimeoutPhase`].
    #[error("upstream {upstream} ({url}) timed out after {after_ms} ms {phase}")]
    Timeout {
        upstream: String,
        url: String,
        phase: TimeoutPhase,
        after_ms: u64,
    },

    /// The upstream answered with a status other than 2xx (after auth and redirects).
    /// `errors` is its OCI error body when it had one, `text` a short excerpt otherwise.
    #[error("upstream {upstream} answered {status}{}", status_suffix(errors, text))]
    Status {
        upstream: String,
        status: u16,
        errors: Vec<OciErrorEntry>,
        text: Option<String>,
        /// The upstream's `Retry-After` header, verbatim (seconds or an HTTP date).
        retry_after: Option<String>,
    },

    /// Authentication with the upstream failed: the token service refused or answered nonsense,
    /// or the registry still said 401 after we presented credentials / a fresh token.
    /// `status` is the HTTP status that caused it, when there was one.
    #[error("upstream {upstream}: authentication failed: {reason}")]
    Auth {
        upstream: String,
        reason: String,
        status: Option<u16>,
    },

    /// The upstream broke the protocol: redirect without (valid) `Location`, too many redirects,
    /// unreadable headers.
    #[error("upstream {upstream}: protocol error: {reason}")]
    Protocol { upstream: String, reason: String },

    /// The body stream ended early (connection dropped, fewer bytes than `Content-Length`).
    #[error("upstream {upstream}: body interrupted: {reason}")]
    BodyInterrupted { upstream: String, reason: String },

    /// A body was larger than the caller allowed (`UpstreamResponse::bytes_limited`).
    #[error("upstream {upstream}: response body larger than the limit of {limit} bytes")]
    TooLarge { upstream: String, limit: u64 },
}

fn status_suffix(errors: &[OciErrorEntry], text: &Option<String>) -> String {
    if !errors.is_empty() {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| {
                if e.message.is_empty() {
                    e.code.clone()
                } else {
                    format!("{}: {}", e.code, e.message)
                }
            })
            .collect();
        format!(": {}", parts.join("; "))
    } else if let Some(t) = text.as_deref().filter(|t| !t.trim().is_empty()) {
        format!(": {}", t.trim())
    } else {
        String::new()
    }
}

impl UpstreamError {
    /// The upstream's name (`UpstreamSettings::name`).
    pub fn upstream(&self) -> &str {
        match self {
            UpstreamError::Config { upstream, .. }
            | UpstreamError::Unreachable { upstream, .. }
            | UpstreamError::Timeout { upstream, .. }
            | UpstreamError::Status { upstream, .. }
            | UpstreamError::Auth { upstream, .. }
            | UpstreamError::Protocol { upstream, .. }
            | UpstreamError::BodyInterrupted { upstream, .. }
            | UpstreamError::TooLarge { upstream, .. } => upstream,
        }
    }

    /// The upstream's HTTP status, when the error is an upstream answer.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            UpstreamError::Status { status, .. } => Some(*status),
            UpstreamError::Auth { status, .. } => *status,
            _ => None,
        }
    }

    /// Would the same request, tried again later, plausibly succeed? True for network failures,
    /// timeouts, interrupted bodies, 429 (after `Retry-After`) and 500/502/503/504.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Unreachable { .. }
            | UpstreamError::Timeout { .. }
            | UpstreamError::BodyInterrupted { .. } => true,
            UpstreamError::Status { status, .. } => {
                matches!(*status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            UpstreamError::Auth { status, .. } => status.is_some_and(|s| s >= 500 || s == 429),
            UpstreamError::Config { .. }
            | UpstreamError::Protocol { .. }
            | UpstreamError::TooLarge { .. } => false,
        }
    }

    /// The class of this error, as the `error` label of `trustgate_upstream_errors_total`.
    pub fn kind(&self) -> crate::metrics::UpstreamErrorKind {
        use crate::metrics::UpstreamErrorKind as K;
        let by_status = |s: u16| if s >= 500 { K::Status5xx } else { K::Status4xx };
        match self {
            UpstreamError::Unreachable { .. } => K::Connect,
            UpstreamError::Timeout { .. } => K::Timeout,
            UpstreamError::Status { status, .. } => by_status(*status),
            UpstreamError::Auth {
                status: Some(s), ..
            } => by_status(*s),
            UpstreamError::Auth { status: None, .. } => K::Auth,
            UpstreamError::BodyInterrupted { .. } => K::BodyInterrupted,
            UpstreamError::Config { .. }
            | UpstreamError::Protocol { .. }
            | UpstreamError::TooLarge { .. } => K::Protocol,
        }
    }

    /// Is the upstream down (as opposed to answering "no")? Refused connections, timeouts and
    /// 5xx answers (from the registry or its token service). Used to decide whether serving a
    /// stale cached copy is acceptable.
    pub fn is_unreachable(&self) -> bool {
        match self {
            UpstreamError::Unreachable { .. } | UpstreamError::Timeout { .. } => true,
            UpstreamError::Status { status, .. } => *status >= 500,
            UpstreamError::Auth { status, .. } => status.is_some_and(|s| s >= 500),
            _ => false,
        }
    }

    /// `Retry-After` from a 429 (or 503), verbatim.
    pub fn retry_after(&self) -> Option<&str> {
        match self {
            UpstreamError::Status { retry_after, .. } => retry_after.as_deref(),
            _ => None,
        }
    }

    /// The OCI error entries the upstream sent (empty when none).
    pub fn upstream_errors(&self) -> &[OciErrorEntry] {
        match self {
            UpstreamError::Status { errors, .. } => errors,
            _ => &[],
        }
    }

    /// Suggested status for the proxy's answer to its own client:
    ///
    /// - upstream 429 → 429 (pass [`retry_after`](Self::retry_after) on as `Retry-After`);
    /// - upstream 4xx → the same status, codes and messages passed through, **except 401**,
    ///   which becomes 403: the client authenticated with *us*, and a 401 from us would make it
    ///   retry its own credentials, which cannot fix the proxy's relationship with the upstream
    ///   (the proxy's credentials are its own, never the client's). Docker Hub also answers 401 for a
    ///   repository that does not exist.
    /// - upstream 5xx, unreachable, protocol errors, interrupted bodies, auth failures → 502
    ///   (bad gateway), or 503 when the upstream itself said 503 or its token service is down;
    /// - timeouts → 504 (gateway timeout: the upstream did not answer in time).
    pub fn http_status_for_client(&self) -> u16 {
        match self {
            UpstreamError::Status { status, .. } => match *status {
                401 => 403,
                503 => 503,
                s if (400..500).contains(&s) => s,
                _ => 502,
            },
            UpstreamError::Timeout { .. } => 504,
            UpstreamError::Auth {
                status: Some(s), ..
            } if *s >= 500 => 503,
            UpstreamError::Auth {
                status: Some(429), ..
            } => 429,
            UpstreamError::Config { .. } => 500,
            UpstreamError::Unreachable { .. }
            | UpstreamError::Auth { .. }
            | UpstreamError::Protocol { .. }
            | UpstreamError::BodyInterrupted { .. }
            | UpstreamError::TooLarge { .. } => 502,
        }
    }
}

/// Parse an upstream error body. Returns the OCI entries when the body is `{"errors":[…]}`,
/// otherwise a short, printable excerpt of the text. Never fails.
pub(crate) fn parse_error_body(body: &[u8]) -> (Vec<OciErrorEntry>, Option<String>) {
    #[derive(Deserialize)]
    struct Body {
        errors: Vec<OciErrorEntry>,
    }
    if let Ok(b) = serde_json::from_slice::<Body>(body) {
        if !b.errors.is_empty() {
            return (b.errors, None);
        }
    }
    let text = String::from_utf8_lossy(body);
    let short: String = text
        .chars()
        .filter(|c| !c.is_control() || *c == ' ')
        .take(200)
        .collect();
    if short.trim().is_empty() {
        (Vec::new(), None)
    } else {
        (Vec::new(), Some(short))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classed_for_metrics() {
        use crate::metrics::UpstreamErrorKind as K;
        let status = |s| UpstreamError::Status {
            upstream: "u".into(),
            status: s,
            errors: vec![],
            text: None,
            retry_after: None,
        };
        assert_eq!(status(503).kind(), K::Status5xx);
        assert_eq!(status(404).kind(), K::Status4xx);
        let unreachable = UpstreamError::Unreachable {
            upstream: "u".into(),
            url: "http://u".into(),
            reason: "refused".into(),
        };
        assert_eq!(unreachable.kind(), K::Connect);
        let auth = UpstreamError::Auth {
            upstream: "u".into(),
            reason: "no".into(),
            status: Some(401),
        };
        assert_eq!(auth.kind(), K::Status4xx);
    }

    fn status(code: u16) -> UpstreamError {
        UpstreamError::Status {
            upstream: "docker.io".into(),
            status: code,
            errors: vec![],
            text: None,
            retry_after: None,
        }
    }

    #[test]
    fn client_status_mapping() {
        assert_eq!(status(404).http_status_for_client(), 404);
        assert_eq!(status(429).http_status_for_client(), 429);
        assert_eq!(status(401).http_status_for_client(), 403);
        assert_eq!(status(500).http_status_for_client(), 502);
        assert_eq!(status(503).http_status_for_client(), 503);
        assert!(status(503).is_unreachable());
        assert!(!status(404).is_unreachable());
        assert!(status(429).is_retryable());
        assert!(!status(404).is_retryable());
        let t = UpstreamError::Timeout {
            upstream: "x".into(),
            url: "http://x".into(),
            phase: TimeoutPhase::FirstByte,
            after_ms: 5,
        };
        assert_eq!(t.http_status_for_client(), 504);
        assert!(t.is_unreachable() && t.is_retryable());
    }

    #[test]
    fn display_names_the_upstream() {
        let e = UpstreamError::Unreachable {
            upstream: "docker.io".into(),
            url: "https://registry-1.docker.io".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            e.to_string(),
            "upstream docker.io (https://registry-1.docker.io) is unreachable: connection refused"
        );
        let (errors, text) = parse_error_body(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
        );
        assert!(text.is_none());
        let e = UpstreamError::Status {
            upstream: "ghcr.io".into(),
            status: 404,
            errors,
            text: None,
            retry_after: None,
        };
        assert_eq!(
            e.to_string(),
            "upstream ghcr.io answered 404: MANIFEST_UNKNOWN: manifest unknown"
        );
    }

    #[test]
    fn error_body_fallbacks() {
        let (e, t) = parse_error_body(b"<html>bad gateway</html>\n");
        assert!(e.is_empty());
        assert_eq!(t.as_deref(), Some("<html>bad gateway</html>"));
        let (e, t) = parse_error_body(b"");
        assert!(e.is_empty() && t.is_none());
        let (e, _) = parse_error_body(br#"{"errors":[{}]}"#);
        assert_eq!(e[0].code, "UNKNOWN");
        let long = vec![b'a'; 10_000];
        let (_, t) = parse_error_body(&long);
        assert_eq!(t.map(|t| t.len()), Some(200));
    }
}
