//! [`RegistryClient`]: the Registry v2 calls the proxy makes to one upstream.

use super::auth::AuthClient;
use super::error::UpstreamError;
use super::response::UpstreamResponse;
use super::settings::UpstreamSettings;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, RANGE};
use reqwest::Method;

/// Media types asked for when the caller passes no `Accept` (what containerd
/// sends when resolving a name, minus `*/*`).
pub const DEFAULT_MANIFEST_ACCEPT: [&str; 4] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// Client for one upstream registry. Cheap to clone; one connection pool and token cache per
/// upstream. `repo` arguments are already validated and mapped (`library/alpine`).
#[derive(Clone, Debug)]
pub struct RegistryClient {
    auth: AuthClient,
}

impl RegistryClient {
    /// Build the client for `settings` (see [`AuthClient::new`]).
    pub fn new(settings: &UpstreamSettings) -> Result<Self, UpstreamError> {
        Ok(RegistryClient {
            auth: AuthClient::new(settings)?,
        })
    }

    /// The upstream's name, as in the settings.
    pub fn name(&self) -> &str {
        self.auth.name()
    }

    /// The authenticating transport (for callers that need another endpoint).
    pub fn auth_client(&self) -> &AuthClient {
        &self.auth
    }

    /// Token scope for pulling `repo` (distribution `docs/content/spec/auth/scope.md`).
    pub fn pull_scope(repo: &str) -> String {
        format!("repository:{repo}:pull")
    }

    /// `GET /v2/`: reachable, speaks v2, and our credentials (if any) are accepted. A Bearer
    /// challenge is answered with a token for the challenge's own scope (usually none).
    pub async fn ping(&self) -> Result<(), UpstreamError> {
        let url = self.auth.url_for("v2/")?;
        let resp = self
            .auth
            .send(Method::GET, url, HeaderMap::new(), None)
            .await?;
        // Drain a little so the connection can go back to the pool; content does not matter.
        let _ = resp.bytes_limited(64 * 1024).await;
        Ok(())
    }

    /// `GET`/`HEAD /v2/<repo>/manifests/<reference>`. `accept` entries are sent as separate
    /// `Accept` headers; empty → [`DEFAULT_MANIFEST_ACCEPT`].
    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        accept: &[String],
        method: Method,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let url = self
            .auth
            .url_for(&format!("v2/{repo}/manifests/{reference}"))?;
        let mut headers = HeaderMap::new();
        if accept.is_empty() {
            for a in DEFAULT_MANIFEST_ACCEPT {
                headers.append(ACCEPT, HeaderValue::from_static(a));
            }
        } else {
            for a in accept {
                let v = HeaderValue::from_str(a).map_err(|_| self.bad_arg("Accept", a))?;
                headers.append(ACCEPT, v);
            }
        }
        self.auth
            .send(method, url, headers, Some(&Self::pull_scope(repo)))
            .await
    }

    /// `GET`/`HEAD /v2/<repo>/blobs/<digest>`, with `Range` passed on verbatim
    /// (`bytes=<start>-[<end>]`). Redirects to storage are followed without credentials.
    pub async fn blob(
        &self,
        repo: &str,
        digest: &str,
        range: Option<&str>,
        method: Method,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let url = self.auth.url_for(&format!("v2/{repo}/blobs/{digest}"))?;
        let mut headers = HeaderMap::new();
        if let Some(r) = range {
            let v = HeaderValue::from_str(r).map_err(|_| self.bad_arg("Range", r))?;
            headers.insert(RANGE, v);
        }
        self.auth
            .send(method, url, headers, Some(&Self::pull_scope(repo)))
            .await
    }

    /// `GET /v2/<repo>/tags/list[?n=&last=]`. The upstream's `Link` header is in the response.
    pub async fn tags(
        &self,
        repo: &str,
        n: Option<u32>,
        last: Option<&str>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let mut url = self.auth.url_for(&format!("v2/{repo}/tags/list"))?;
        if n.is_some() || last.is_some() {
            let mut q = url.query_pairs_mut();
            if let Some(n) = n {
                q.append_pair("n", &n.to_string());
            }
            if let Some(l) = last {
                q.append_pair("last", l);
            }
        }
        self.auth
            .send(
                Method::GET,
                url,
                HeaderMap::new(),
                Some(&Self::pull_scope(repo)),
            )
            .await
    }

    fn bad_arg(&self, what: &str, value: &str) -> UpstreamError {
        UpstreamError::Protocol {
            upstream: self.name().to_string(),
            reason: format!("{what} value {value:?} is not a valid header value"),
        }
    }
}
