//! The Notary server as a [`MetadataSource`]: the I/O edge of the verifier.
//!
//! Files live under `<server>/v2/<GUN>/_trust/tuf/<file>` with the GUN in the path verbatim
//! (theupdateframework/notary `storage/httpstore.go`, routes in `server/server.go`). Token auth is Docker's: the challenge comes from the server and the scope
//! is `repository:<GUN>:pull`, with the GUN including the registry host (notary#1023).

use crate::trust::{FetchError, MetadataPath, MetadataSource};
use crate::upstream::{AuthClient, UpstreamError, UpstreamSettings};

/// A client for one Notary server.
#[derive(Clone)]
pub struct NotaryClient {
    auth: AuthClient,
    host: String,
}

impl NotaryClient {
    pub fn new(settings: &UpstreamSettings) -> Result<Self, UpstreamError> {
        let host = match (settings.url.host_str(), settings.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => settings.url.to_string(),
        };
        Ok(Self {
            auth: AuthClient::new(settings)?,
            host,
        })
    }

    /// `host[:port]` of the server, as Docker names it in `does not have trust data` messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The HTTP client (for its reachability).
    pub fn auth_client(&self) -> &AuthClient {
        &self.auth
    }

    /// A source for one repository.
    pub fn source<'a>(&'a self, gun: &'a str) -> NotarySource<'a> {
        NotarySource { client: self, gun }
    }
}

/// [`MetadataSource`] for one GUN on one Notary server.
pub struct NotarySource<'a> {
    client: &'a NotaryClient,
    gun: &'a str,
}

impl MetadataSource for NotarySource<'_> {
    async fn fetch(&self, path: &MetadataPath, max_len: u64) -> Result<Vec<u8>, FetchError> {
        let url_path = format!("v2/{}/_trust/tuf/{}", self.gun, path.file_name());
        let scope = format!("repository:{}:pull", self.gun);
        let resp = self
            .client
            .auth
            .get(&url_path, Some(&scope))
            .await
            .map_err(fetch_error)?;
        if resp.content_length().is_some_and(|l| l > max_len) {
            return Err(FetchError::TooLarge { limit: max_len });
        }
        let bytes = resp.bytes_limited(max_len).await.map_err(fetch_error)?;
        Ok(bytes.to_vec())
    }
}

fn fetch_error(e: UpstreamError) -> FetchError {
    match &e {
        UpstreamError::Status { status: 404, .. } => FetchError::NotFound,
        UpstreamError::TooLarge { limit, .. } => FetchError::TooLarge { limit: *limit },
        _ => FetchError::Other {
            message: e.to_string(),
        },
    }
}
