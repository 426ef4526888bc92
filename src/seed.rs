//! `trustgate seed`: pull images through the same verifying path clients use, so that the store
//! holds them (and the trust data that signs them) for an air-gapped mirror.
//!
//! Seeding is a client of the proxy's own request handler: every manifest and blob goes through
//! routing, policy, trust verification, the signed-closure rule and digest checks exactly as a
//! pull would, and draining a blob's stream is what fills the cache.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, Method};

use crate::api::{ApiError, Endpoint, Route};
use crate::media;
use crate::proxy::{Proxy, Pulled};
use crate::reference::{Digest, ManifestRef};

/// Which platforms of a multi-arch index to take (`os/arch[/variant]`); empty = all.
#[derive(Debug, Clone, Default)]
pub struct PlatformFilter(pub Vec<String>);

impl PlatformFilter {
    fn wants(&self, platform: Option<&serde_json::Value>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(p) = platform else {
            return false;
        };
        let os = p["os"].as_str().unwrap_or("");
        let arch = p["architecture"].as_str().unwrap_or("");
        let variant = p["variant"].as_str();
        self.0.iter().any(|want| {
            let mut parts = want.split('/');
            let (wo, wa, wv) = (parts.next(), parts.next(), parts.next());
            wo == Some(os) && wa == Some(arch) && (wv.is_none() || wv == variant)
        })
    }
}

/// What seeding one image did.
#[derive(Debug, Default, Clone)]
pub struct SeedReport {
    /// The digest the reference resolved to (signed digest for enforced repositories).
    pub digest: Option<String>,
    pub manifests: usize,
    pub blobs: usize,
    pub bytes: u64,
}

/// Progress callbacks (a progress bar in the CLI, nothing in tests).
pub trait Progress: Send + Sync {
    fn set_total(&self, _bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
    fn message(&self, _text: &str) {}
}

impl Progress for () {}

/// One request through the proxy's own handler: the digest announced (for a manifest), the
/// manifest's bytes (a blob's are drained, which is what fills the store) and the byte count.
async fn fetch(
    proxy: &Proxy,
    route: &Route,
    progress: &dyn Progress,
) -> Result<(Option<String>, Bytes, u64), String> {
    let mut headers = HeaderMap::new();
    let accept = media::ALL_MANIFEST_TYPES.join(", ");
    if let Ok(v) = HeaderValue::from_str(&accept) {
        headers.insert(http::header::ACCEPT, v);
    }
    let pulled = proxy
        .handle(&Method::GET, route, &headers)
        .await
        .map_err(|e| {
            let e = ApiError::from(e);
            format!("{} {}", e.code, e.message)
        })?;
    match pulled {
        Pulled::Manifest(m) => {
            let n = m.bytes.len() as u64;
            progress.advance(n);
            Ok((Some(m.digest), m.bytes, n))
        }
        Pulled::Blob(b) => {
            let mut n = 0u64;
            if let Some(mut body) = b.into_stream() {
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| format!("transfer failed: {e}"))?;
                    n += chunk.len() as u64;
                    progress.advance(chunk.len() as u64);
                }
            }
            Ok((None, Bytes::new(), n))
        }
        Pulled::Tags(_) | Pulled::Referrers(_) => Err("a list is not content to seed".into()),
    }
}

fn child(route: &Route, endpoint: Endpoint) -> Route {
    Route {
        endpoint,
        ..route.clone()
    }
}

/// Seeds one image reference (`name:tag`, `name@sha256:…` or `name`, meaning `latest`).
pub async fn seed_image(
    proxy: &Arc<Proxy>,
    image: &str,
    platforms: &PlatformFilter,
    progress: &dyn Progress,
) -> Result<SeedReport, String> {
    let route = proxy.route_image(image).map_err(|e| e.message)?;
    let (unstored_before, _) = proxy.store().unstored_so_far();
    let report = pull_image(proxy, &route, platforms, progress).await?;
    // Served is not seeded: content the disk did not keep (full, under `storage.min_free`,
    // over `max_size`, read-only) would be missing from the mirror once it is cut off. With a
    // shared store the disk is only the local tier, and the shared one holds the content.
    let (unstored_after, why) = proxy.store().unstored_so_far();
    if unstored_after > unstored_before && proxy.content().shared().is_none() {
        return Err(format!(
            "verified, but the store did not keep all of it, so an offline mirror would not \
             have it: {}",
            why.as_deref().unwrap_or("no reason recorded")
        ));
    }
    Ok(report)
}

/// Pulls the manifests and blobs of one image through the proxy's handler.
async fn pull_image(
    proxy: &Arc<Proxy>,
    route: &Route,
    platforms: &PlatformFilter,
    progress: &dyn Progress,
) -> Result<SeedReport, String> {
    let mut report = SeedReport::default();
    progress.message("resolving");
    let (digest, top, n) = fetch(proxy, route, progress).await?;
    report.bytes += n;
    report.manifests += 1;
    report.digest = digest;
    let mut manifests = vec![top];
    let index: serde_json::Value = serde_json::from_slice(&manifests[0]).unwrap_or_default();
    if let Some(children) = index["manifests"].as_array() {
        manifests.clear();
        for c in children
            .iter()
            .filter(|c| platforms.wants(c.get("platform")))
        {
            let Some(d) = c["digest"].as_str().and_then(|d| Digest::parse(d).ok()) else {
                continue;
            };
            let (_, bytes, n) = fetch(
                proxy,
                &child(route, Endpoint::Manifest(ManifestRef::Digest(d))),
                progress,
            )
            .await?;
            report.bytes += n;
            report.manifests += 1;
            manifests.push(bytes);
        }
        if manifests.is_empty() {
            return Err(format!(
                "no platform of the index matches {:?}",
                platforms.0
            ));
        }
    }
    let mut blobs: Vec<(Digest, u64)> = Vec::new();
    for m in &manifests {
        let v: serde_json::Value = serde_json::from_slice(m).unwrap_or_default();
        let descriptors =
            std::iter::once(&v["config"]).chain(v["layers"].as_array().into_iter().flatten());
        for d in descriptors {
            if let Some(digest) = d["digest"].as_str().and_then(|s| Digest::parse(s).ok()) {
                if !blobs.iter().any(|(b, _)| *b == digest) {
                    blobs.push((digest, d["size"].as_u64().unwrap_or(0)));
                }
            }
        }
    }
    progress.set_total(blobs.iter().map(|(_, s)| s).sum());
    progress.message("blobs");
    for (digest, _) in blobs {
        let (_, _, n) = fetch(proxy, &child(route, Endpoint::Blob(digest)), progress).await?;
        report.bytes += n;
        report.blobs += 1;
    }
    Ok(report)
}

/// The image references of a seed file: one per line, `#` starts a comment.
pub fn parse_seed_file(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_files_skip_comments_and_blank_lines() {
        let refs =
            parse_seed_file("# mirror list\nalpine:3.20\n\n  team/app:v1  # the app\n#done\n");
        assert_eq!(refs, ["alpine:3.20", "team/app:v1"]);
    }

    #[test]
    fn platform_filters() {
        let p = serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"});
        assert!(PlatformFilter::default().wants(None));
        assert!(PlatformFilter(vec!["linux/arm64".into()]).wants(Some(&p)));
        assert!(PlatformFilter(vec!["linux/arm64/v8".into()]).wants(Some(&p)));
        assert!(!PlatformFilter(vec!["linux/amd64".into()]).wants(Some(&p)));
        assert!(!PlatformFilter(vec!["linux/amd64".into()]).wants(None));
    }
}
