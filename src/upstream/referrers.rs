//! `GET /v2/<repo>/referrers/<digest>[?artifactType=]` (OCI distribution-spec 1.1, "Listing
//! Referrers"): the artifacts whose `subject` is a digest. Registries without the API (the CNCF
//! registry 2.8, most mirrors) answer 404 or another 4xx; [`RegistryClient::referrers`] says so
//! with `Ok(None)` so the caller falls back to the `sha256-<hex>` tag.

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT};
use reqwest::Method;

use super::client::RegistryClient;
use super::error::UpstreamError;
use super::response::UpstreamResponse;

/// Statuses that mean "no referrers API here" rather than a failure: 404 (the spec's signal),
/// 400/405 (servers that route the path elsewhere) and 501.
const NO_API: [u16; 4] = [400, 404, 405, 501];

impl RegistryClient {
    /// The upstream's referrers list for `digest`, or `None` when it has no referrers API.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Option<UpstreamResponse>, UpstreamError> {
        let auth = self.auth_client();
        let mut url = auth.url_for(&format!("v2/{repo}/referrers/{digest}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        );
        match auth
            .send(Method::GET, url, headers, Some(&Self::pull_scope(repo)))
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.upstream_status().is_some_and(|s| NO_API.contains(&s)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}
