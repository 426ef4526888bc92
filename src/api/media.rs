//! Manifest media types, `Accept` negotiation and `Range` parsing: pure helpers for the API.

use http::HeaderMap;

pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// What we ask an upstream for when fetching a manifest by digest: every type, so the upstream
/// never converts, plus `*/*` as containerd sends.
pub const ALL_MANIFEST_TYPES: [&str; 5] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST_V2,
    "*/*",
];

/// Largest manifest we read: distribution refuses manifests over 4 MiB too.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// The media types in the request's `Accept` headers, parameters stripped, in order. Several
/// headers and comma-separated lists both occur (distribution's `GetManifest` handles both).
pub fn accepted_types(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// The media type of manifest bytes: the upstream's `Content-Type` when it names a manifest type,
/// else the body's `mediaType` field, else a guess from its shape (OCI manifests may omit
/// `mediaType`; a `manifests` array means an index).
pub fn manifest_media_type(content_type: Option<&str>, body: &[u8]) -> String {
    let header = content_type
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|c| {
            !c.is_empty()
                && c != "application/json"
                && c != "text/plain"
                && c != "application/octet-stream"
        });
    if let Some(h) = header {
        return h;
    }
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
    }
    match serde_json::from_slice::<Shape>(body) {
        Ok(Shape {
            media_type: Some(t),
            ..
        }) => t,
        Ok(Shape {
            manifests: Some(_), ..
        }) => OCI_INDEX.to_string(),
        Ok(Shape {
            schema_version: Some(1),
            ..
        }) => DOCKER_SCHEMA1_SIGNED.to_string(),
        _ => OCI_MANIFEST.to_string(),
    }
}

/// A single byte range resolved against a length: `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

/// What a `Range` header asks of a body of `total` bytes (RFC 9110 §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve the whole body with 200. Multi-range and malformed headers land
    /// here too; ignoring `Range` is always allowed.
    Full,
    Partial(ByteRange),
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable,
}

pub fn parse_range(header: Option<&str>, total: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(n) if total > 0 => RangeRequest::Partial(ByteRange {
                start: total.saturating_sub(n),
                end: total - 1,
            }),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Full,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeRequest::Full;
            };
            let end = if b.is_empty() {
                None
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeRequest::Full,
                }
            };
            if start >= total {
                return RangeRequest::Unsatisfiable;
            }
            let end = end.map_or(total - 1, |e| e.min(total - 1));
            RangeRequest::Partial(ByteRange { start, end })
        }
        (true, true) => RangeRequest::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accept_headers_are_split_and_stripped() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::ACCEPT,
            "application/A; q=0.5, application/b".parse().unwrap(),
        );
        h.append(http::header::ACCEPT, "*/*".parse().unwrap());
        assert_eq!(
            accepted_types(&h),
            ["application/a", "application/b", "*/*"]
        );
    }

    #[test]
    fn media_type_from_header_then_body() {
        assert_eq!(
            manifest_media_type(
                Some("application/vnd.oci.image.index.v1+json; charset=x"),
                b"{}"
            ),
            OCI_INDEX
        );
        assert_eq!(
            manifest_media_type(
                None,
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            DOCKER_MANIFEST_V2
        );
        assert_eq!(
            manifest_media_type(
                Some("application/json"),
                br#"{"schemaVersion":2,"manifests":[]}"#
            ),
            OCI_INDEX
        );
        assert_eq!(
            manifest_media_type(None, br#"{"schemaVersion":2,"config":{}}"#),
            OCI_MANIFEST
        );
        assert_eq!(manifest_media_type(None, b"not json"), OCI_MANIFEST);
    }

    #[test]
    fn ranges() {
        let p = |h| parse_range(Some(h), 100);
        let part = |start, end| RangeRequest::Partial(ByteRange { start, end });
        assert_eq!(p("bytes=0-9"), part(0, 9));
        assert_eq!(p("bytes=10-"), part(10, 99));
        assert_eq!(p("bytes=90-200"), part(90, 99));
        assert_eq!(p("bytes=-10"), part(90, 99));
        assert_eq!(p("bytes=-1000"), part(0, 99));
        assert_eq!(p("bytes=100-"), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=-0"), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=5-1"), RangeRequest::Full);
        assert_eq!(p("bytes=0-1,5-6"), RangeRequest::Full);
        assert_eq!(p("items=0-1"), RangeRequest::Full);
        assert_eq!(p("bytes=x-1"), RangeRequest::Full);
        assert_eq!(parse_range(None, 100), RangeRequest::Full);
        assert_eq!(
            parse_range(Some("bytes=0-"), 0),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            ByteRange { start: 3, end: 4 }.content_range(10),
            "bytes 3-4/10"
        );
    }

    proptest! {
        #[test]
        fn partial_ranges_always_lie_inside_the_body(h in "bytes=[0-9]{0,4}-[0-9]{0,4}", total in 0u64..5000) {
            if let RangeRequest::Partial(r) = parse_range(Some(&h), total) {
                prop_assert!(r.start <= r.end);
                prop_assert!(r.end < total);
            }
        }

        #[test]
        fn arbitrary_range_headers_never_panic(h in ".{0,40}", total in any::<u64>()) {
            let _ = parse_range(Some(&h), total);
        }
    }
}
