//! Image references as a person types them (`alpine`, `127.0.0.1:5101/team/app:v1`,
//! `ghcr.io/o/r@sha256:…`): routed exactly as a pull would be, for `trustgate verify` (an
//! [`Inspection`] of the trust data) and `trustgate seed`. The text rendering is the CLI's.

use std::sync::Arc;

use http::Method;

use super::Proxy;
use crate::api::{ApiError, Endpoint, ErrorCode, Route, Routed};
use crate::reference::ManifestRef;
use crate::trust::{SignedTarget, VerifiedRepository};

/// What `trustgate verify` reports for one image.
pub struct Inspection {
    pub gun: String,
    pub repo: Arc<VerifiedRepository>,
    /// The requested tag's verdict, when a tag was named.
    pub tag: Option<(String, Result<SignedTarget, ApiError>)>,
}

impl Proxy {
    /// The route a pull of `image` takes; no tag means `latest`.
    pub fn route_image(&self, image: &str) -> Result<Route, ApiError> {
        let (name, reference) = match image.split_once('@') {
            Some((n, d)) => (n, d.to_string()),
            None => match image.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n, t.to_string()),
                _ => (image, "latest".to_string()),
            },
        };
        let probe = format!("/v2/{name}/manifests/{reference}");
        match self.router().route(&Method::GET, &probe, None)? {
            Routed::Content(r) => Ok(r),
            Routed::Ping => Err(ApiError::new(
                ErrorCode::NameInvalid,
                format!("{image}: not an image reference"),
            )),
        }
    }

    /// Verifies an image reference through the same routing, policy and trust path as a pull.
    /// Errors are as a client would see them.
    pub async fn inspect(&self, image: &str) -> Result<Inspection, ApiError> {
        if image.contains('@') {
            return Err(ApiError::new(ErrorCode::ManifestInvalid, format!(
                "{image}: a digest reference needs no trust lookup; name a tag (or no tag for all tags)")));
        }
        let route = self.route_image(image)?;
        let named_tag = image
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .map(|(_, t)| t);
        let t = self.target(&route);
        let tag = match &route.endpoint {
            Endpoint::Manifest(ManifestRef::Tag(parsed)) => named_tag.map(|name| (name, parsed)),
            _ => None,
        };
        let repo = self
            .signed_set(&t, tag.map(|(name, _)| name))
            .await
            .map_err(ApiError::from)?;
        let tag = match tag {
            Some((name, parsed)) => Some((
                name.to_string(),
                self.signed_tag(&t, parsed)
                    .await
                    .map_err(ApiError::from)
                    .and_then(|s| {
                        s.target.ok_or_else(|| {
                            ApiError::new(ErrorCode::Unknown, "not a Notary v1 target".to_string())
                        })
                    }),
            )),
            None => None,
        };
        Ok(Inspection {
            gun: t.gun.clone(),
            repo,
            tag,
        })
    }
}
