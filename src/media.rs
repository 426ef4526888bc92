//! Manifest media types and `Accept` negotiation: pure helpers shared by the API and the core.

use http::HeaderMap;

/// Byte ranges moved to [`crate::range`] (the store reads them too, and must not import `api`).
pub use crate::range::{parse_range, ByteRange, RangeRequest};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
