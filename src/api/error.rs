//! The one place where errors become OCI error bodies: `{"errors":[{"code","message","detail"}]}`.
//!
//! Statuses and codes follow distribution's `registry/api/errcode/register.go`. Every 4xx carries
//! its message in the JSON body, because that is the only text docker, skopeo and podman print;
//! for HEAD the body is dropped by the server and the message goes to the log only.

use http::StatusCode;
use serde::Serialize;

/// OCI / distribution error codes we emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    ManifestUnknown,
    ManifestInvalid,
    NameUnknown,
    NameInvalid,
    DigestInvalid,
    SizeInvalid,
    RangeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unavailable,
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::RangeInvalid => "RANGE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::Unavailable => "UNAVAILABLE",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// The status distribution uses for this code.
    pub fn default_status(self) -> StatusCode {
        match self {
            Self::BlobUnknown | Self::ManifestUnknown | Self::NameUnknown => StatusCode::NOT_FOUND,
            Self::ManifestInvalid | Self::NameInvalid | Self::DigestInvalid | Self::SizeInvalid => {
                StatusCode::BAD_REQUEST
            }
            Self::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Denied => StatusCode::FORBIDDEN,
            Self::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One error as the client will see it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// The code as it goes on the wire; a `String` so upstream codes pass through unchanged.
    pub code: String,
    pub message: String,
    pub detail: serde_json::Value,
    /// Extra response headers (`Retry-After`, `Allow`, ...).
    pub headers: Vec<(http::HeaderName, String)>,
    /// Further errors passed through from an upstream answer.
    pub more: Vec<(String, String, serde_json::Value)>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status: code.default_status(),
            code: code.as_str().to_string(),
            message: message.into(),
            detail: serde_json::Value::Null,
            headers: Vec::new(),
            more: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn with_header(mut self, name: http::HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Entry<'a> {
            code: &'a str,
            message: &'a str,
            detail: &'a serde_json::Value,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            errors: Vec<Entry<'a>>,
        }
        let mut errors = vec![Entry {
            code: &self.code,
            message: &self.message,
            detail: &self.detail,
        }];
        for (code, message, detail) in &self.more {
            errors.push(Entry {
                code,
                message,
                detail,
            });
        }
        // Serialising these plain structs cannot fail; fall back to a fixed body all the same.
        serde_json::to_vec(&Body { errors }).unwrap_or_else(|_| {
            br#"{"errors":[{"code":"UNKNOWN","message":"error","detail":null}]}"#.to_vec()
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_oci_error_json() {
        let e = ApiError::new(ErrorCode::NameInvalid, "bad name")
            .with_detail(serde_json::json!({"name": "A"}));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"errors":[{"code":"NAME_INVALID","message":"bad name","detail":{"name":"A"}}]})
        );
    }

    #[test]
    fn codes_map_to_distribution_statuses() {
        use ErrorCode::*;
        let table = [
            (BlobUnknown, 404),
            (ManifestUnknown, 404),
            (NameUnknown, 404),
            (NameInvalid, 400),
            (ManifestInvalid, 400),
            (DigestInvalid, 400),
            (Unauthorized, 401),
            (Denied, 403),
            (Unsupported, 405),
            (TooManyRequests, 429),
            (Unavailable, 503),
            (Unknown, 500),
        ];
        for (code, status) in table {
            assert_eq!(code.default_status().as_u16(), status, "{}", code.as_str());
        }
    }
}
